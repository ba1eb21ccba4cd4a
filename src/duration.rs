//! Durations as users type them (contract §2): plain seconds (`90`, `0.5`) or numbers with
//! units `h`, `m`, `s` (`90s`, `5m`, `1h`, `1m30s`, `1.5m`). One parser for every duration
//! flag and variable (`--timeout`, `--refresh`, `--splay`, `--grace`, `--cache-ttl`).
//!
//! Nothing else is accepted: no spaces (`' 5'` is refused: a stray space usually means a
//! variable was built wrong), no signs, no exponents, no `inf`/`nan`, no empty parts, units
//! in decreasing order and each at most once.

use crate::error::{Error, Result};
use std::time::Duration;

/// `v` as a duration between `min` and `max` seconds; `what` names the flag or variable in
/// the error.
pub fn parse(v: &str, what: &str, min: f64, max: f64) -> Result<Duration> {
    let range = format!("use from {min} to {max} seconds");
    let secs = seconds(v).ok_or_else(|| {
        Error::usage(format!(
            "{what} is not a number of seconds or a duration such as 90s, 5m, 1h or 1m30s: {range}"
        ))
    })?;
    // Written so that NaN fails too (it cannot get here, but the bound check stays total).
    if !(min..=max).contains(&secs) {
        return Err(Error::usage(format!("{what} is out of range: {range}")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The seconds `v` stands for, or None when it is not a duration.
fn seconds(v: &str) -> Option<f64> {
    if v.is_empty() || v.len() > 32 {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return number(v);
    }
    let mut total = 0.0;
    let mut rest = v;
    // Units must come in this order, each at most once.
    let mut units: &[(u8, f64)] = &[(b'h', 3600.0), (b'm', 60.0), (b's', 1.0)];
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n = number(&rest[..end])?;
        let unit = rest.as_bytes()[end];
        let at = units.iter().position(|(u, _)| *u == unit)?;
        total += n * units[at].1;
        units = &units[at + 1..];
        rest = &rest[end + 1..];
    }
    Some(total)
}

/// Digits with at most one `.` and at least one digit.
fn number(s: &str) -> Option<f64> {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let dots = s.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != s.len() {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> f64 {
        parse(v, "--x", 0.0, 1e9).unwrap().as_secs_f64()
    }

    #[test]
    fn seconds_and_units() {
        assert_eq!(ok("90"), 90.0);
        assert_eq!(ok("0.5"), 0.5);
        assert_eq!(ok("90s"), 90.0);
        assert_eq!(ok("5m"), 300.0);
        assert_eq!(ok("1h"), 3600.0);
        assert_eq!(ok("1m30s"), 90.0);
        assert_eq!(ok("1h2m3s"), 3723.0);
        assert_eq!(ok("1.5m"), 90.0);
        assert_eq!(ok("0"), 0.0);
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "", " 5", "5 ", "5 s", "-5", "+5", "1e3", "inf", "nan", "NaN", "5x", "s", "m5", "1s1m",
            "1m1m", "1.2.3", ".", "5ms", "5M", "1h 2m", "0x10", "5m30", "１",
        ] {
            let e = parse(bad, "--x", 0.0, 1e9).unwrap_err().to_string();
            assert!(e.contains("--x is not a number of seconds"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn bounds_apply_after_units() {
        assert!(parse("2h", "--timeout", 0.1, 3600.0)
            .unwrap_err()
            .to_string()
            .contains("--timeout is out of range: use from 0.1 to 3600 seconds"));
        assert_eq!(
            parse("1h", "--timeout", 0.1, 3600.0).unwrap(),
            Duration::from_secs(3600)
        );
    }
}
