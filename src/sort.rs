//! One stable sort for the whole program.
//!
//! Every `slice::sort_by` on a new element type or comparator is a new copy of the standard
//! library's stable sort in the binary (~3.5 KB each: quicksort, drift sort, small sorts).
//! `sort_by` here sorts indices with one shared, non-generic copy and then moves the
//! elements into that order: the same result as `slice::sort_by` (stable, same comparator),
//! for a few hundred bytes per caller.

use std::cmp::Ordering;

/// Sort `v` stably by `cmp`, exactly as `v.sort_by(cmp)` would.
pub fn sort_by<T>(v: &mut Vec<T>, cmp: impl Fn(&T, &T) -> Ordering) {
    let order = {
        let items: &[T] = v;
        order(items.len(), &|a, b| cmp(&items[a], &items[b]))
    };
    let mut old: Vec<Option<T>> = std::mem::take(v).into_iter().map(Some).collect();
    v.extend(
        order
            .into_iter()
            .map(|i| old[i].take().expect("the order names each index once")),
    );
}

/// Sort `v` stably by its own order, as `v.sort()` would.
pub fn sort<T: Ord>(v: &mut Vec<T>) {
    sort_by(v, T::cmp);
}

/// The indices `0..n` in stable sorted order under `cmp`.
#[inline(never)]
fn order(n: usize, cmp: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| cmp(a, b));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_result_as_the_standard_stable_sort() {
        // Keys with many ties, tagged with their original position to check stability.
        let mut seed = 0x2545_f491_u32;
        for n in [0usize, 1, 2, 3, 7, 20, 33, 100, 1000] {
            let v: Vec<(u32, usize)> = (0..n)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed % 7, i)
                })
                .collect();
            let mut ours = v.clone();
            sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
            let mut std = v.clone();
            std.sort_by_key(|a| a.0);
            assert_eq!(ours, std, "n = {n}");
            let mut ours = v.clone();
            sort(&mut ours);
            let mut std = v;
            std.sort();
            assert_eq!(ours, std, "n = {n}");
        }
        let mut s = vec!["b".to_string(), "a".to_string(), "c".to_string()];
        sort(&mut s);
        assert_eq!(s, ["a", "b", "c"]);
    }
}
