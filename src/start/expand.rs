//! `--json-keys`: a secret whose value is a JSON object becomes one secret per leaf,
//! `<NAME>_<KEY>`, nested objects flattened with `_` (`DB` = `{"a":{"b":"x"},"port":5432}`
//! gives `DB_a_b` = `x` and `DB_port` = `5432`). Strings give themselves; numbers, booleans,
//! null and arrays their JSON text as written (numbers verbatim, arrays without
//! insignificant whitespace), so a large integer is never rounded through a float.
//!
//! The leaf secrets then go through the usual name rule, refusals and collision checks
//! (`env::plan`), so `{"a-b":1,"a_b":2}` is a collision and `{"PRELOAD":…}` under `LD`
//! is refused like any secret named `LD_PRELOAD`.
//!
//! A value that is not a JSON object, or not valid JSON (or not UTF-8), stays one secret.
//! Refused with an error naming the secret: a key given twice in one object, nesting deeper
//! than `MAX_DEPTH`, more than `MAX_LEAVES` leaves, a leaf holding a NUL byte.

use crate::config::KeyCase;
use crate::error::{Error, Result};
use crate::names::printable;
use crate::secret::{Payload, Secret};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Objects nested deeper than this are refused (the top object is depth 1).
pub const MAX_DEPTH: usize = 32;
/// Leaves one secret may expand into.
pub const MAX_LEAVES: usize = 1000;

/// An object's members in document order, duplicates kept (serde_json's maps would
/// silently keep only the last one).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Expand the JSON-object secrets of every path; others pass through unchanged.
pub fn expand_all(
    per_path: Vec<(String, Vec<Secret>)>,
    case: KeyCase,
) -> Result<Vec<(String, Vec<Secret>)>> {
    per_path
        .into_iter()
        .map(|(path, secrets)| {
            let mut out = Vec::with_capacity(secrets.len());
            // For each secret of `out`: the JSON secret and key it came from, if any.
            let mut from: Vec<Option<(String, String)>> = Vec::with_capacity(secrets.len());
            for s in secrets {
                let (before, origin) = (out.len(), s.name.clone());
                if expand(&path, s, &mut out, case)? {
                    from.extend(out[before..].iter().map(|leaf| {
                        Some((origin.clone(), leaf.name[origin.len() + 1..].to_string()))
                    }));
                } else {
                    from.push(None);
                }
            }
            check_leaf_collisions(&path, &out, &from)?;
            Ok((path, out))
        })
        .collect()
}

/// A leaf whose environment name is another secret's (or another leaf's): an error naming
/// both secrets and the JSON key, since the leaf's own name (`A_B`) alone would name the
/// same string twice. Collisions between plain secrets are `env::plan`'s.
fn check_leaf_collisions(
    path: &str,
    out: &[Secret],
    from: &[Option<(String, String)>],
) -> Result<()> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let what = |i: usize| match &from[i] {
        Some((origin, key)) => format!(
            "secret {path}/{} (its JSON key {:?})",
            printable(origin),
            printable(key)
        ),
        None => format!("secret {path}/{}", printable(&out[i].name)),
    };
    for (i, s) in out.iter().enumerate() {
        let name = crate::names::env_name(&s.name);
        match seen.get(&name) {
            Some(&j) if from[i].is_some() || from[j].is_some() => {
                return Err(Error::data(format!(
                    "{} and {} both map to the environment name {}: rename one",
                    what(j),
                    what(i),
                    printable(&name)
                )))
            }
            Some(_) => {}
            None => {
                seen.insert(name, i);
            }
        }
    }
    Ok(())
}

/// Appends `s`, or its leaves when it is a JSON object; returns whether it was expanded.
fn expand(path: &str, s: Secret, out: &mut Vec<Secret>, case: KeyCase) -> Result<bool> {
    let members = match s.payload.as_str() {
        // A lone surrogate escape (`"\ud800"`) is not valid JSON text either: the value
        // stays one variable rather than failing the start.
        Some(text) if text.trim_start().starts_with('{') && !lone_surrogate(text) => {
            serde_json::from_str::<Members>(text).ok()
        }
        _ => None,
    };
    let Some(members) = members else {
        out.push(s);
        return Ok(false);
    };
    if members.0.is_empty() {
        out.push(s); // `{}` has no leaves: it stays one variable
        return Ok(false);
    }
    let full = format!("{path}/{}", printable(&s.name));
    let mut leaves = Vec::new();
    flatten(&full, &s.name, members, 1, &mut leaves, case)?;
    out.extend(leaves.into_iter().map(|(name, payload)| Secret {
        name,
        serial: s.serial,
        payload,
    }));
    Ok(true)
}

fn flatten(
    full: &str,
    prefix: &str,
    members: Members,
    depth: usize,
    out: &mut Vec<(String, Payload)>,
    case: KeyCase,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::data(format!(
            "secret {full} is a JSON object nested deeper than {MAX_DEPTH} levels: --json-keys refuses it"
        )));
    }
    let mut seen: Vec<&str> = Vec::with_capacity(members.0.len());
    for (k, _) in &members.0 {
        if seen.contains(&k.as_str()) {
            return Err(Error::data(format!(
                "secret {full} has the JSON key {:?} twice in one object: --json-keys refuses it",
                printable(k)
            )));
        }
        seen.push(k);
    }
    for (key, raw) in members.0 {
        // `--json-keys-case upper`: the key part in ASCII upper case (RDS-managed secrets'
        // `username` → `DB_USERNAME`); other characters become `_` in the name rule anyway.
        let name = match case {
            KeyCase::Keep => format!("{prefix}_{key}"),
            KeyCase::Upper => format!("{prefix}_{}", key.to_ascii_uppercase()),
        };
        let text = raw.get();
        let leaf = match text.as_bytes().first() {
            Some(b'{') => {
                let inner: Members = serde_json::from_str(text)
                    .map_err(|e| Error::data(format!("secret {full}: bad JSON: {e}")))?;
                if !inner.0.is_empty() {
                    flatten(full, &name, inner, depth + 1, out, case)?;
                    continue;
                }
                Payload::from_string("{}".into())
            }
            Some(b'"') => Payload::from_string(
                serde_json::from_str::<String>(text)
                    .map_err(|e| Error::data(format!("secret {full}: bad JSON: {e}")))?,
            ),
            Some(b'[') => Payload::from_string(compact(text)),
            _ => Payload::from_string(text.to_string()),
        };
        if leaf.as_bytes().contains(&0) {
            return Err(Error::data(format!(
                "secret {full}: the JSON key {:?} holds a NUL byte, which no environment variable can carry",
                printable(&key)
            )));
        }
        if out.len() >= MAX_LEAVES {
            return Err(Error::data(format!(
                "secret {full} expands into more than {MAX_LEAVES} variables: --json-keys refuses it"
            )));
        }
        out.push((name, leaf));
    }
    Ok(())
}

/// Whether `text` has a `\u` escape of a UTF-16 surrogate that is not part of a pair
/// (serde_json skips escapes unchecked until a string is decoded, so a document holding
/// one parses as an object and fails only at the leaf).
pub(crate) fn lone_surrogate(text: &str) -> bool {
    let b = text.as_bytes();
    let hex = |i: usize| -> Option<u16> {
        let h = b.get(i..i + 4)?;
        u16::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b.get(i + 1) != Some(&b'u') {
            i += 2; // `\\`, `\"`, …: the escaped character is skipped
            continue;
        }
        match hex(i + 2) {
            Some(0xD800..=0xDBFF) => {
                let low = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                    .then(|| hex(i + 8))
                    .flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return true;
                }
                i += 12;
            }
            Some(0xDC00..=0xDFFF) => return true,
            _ => i += 6,
        }
    }
    false
}

/// Valid JSON text without whitespace outside strings (what serde_json would print,
/// without re-encoding numbers or strings). Also used for reference json-keys (start/json_key.rs).
pub(crate) fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_str, mut escaped) = (false, false);
    for c in text.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, v: &str) -> Secret {
        Secret {
            name: name.into(),
            serial: 1,
            payload: Payload::from_string(v.into()),
        }
    }

    fn run(v: &str) -> Result<Vec<(String, String)>> {
        let out = expand_all(vec![("/p".into(), vec![secret("DB", v)])], KeyCase::Keep)?;
        Ok(out[0]
            .1
            .iter()
            .map(|s| (s.name.clone(), s.payload.as_str().unwrap().to_string()))
            .collect())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn objects_flatten_and_everything_else_stays_whole() {
        assert_eq!(
            run(r#"{"a":{"b":"x"},"port":5432, "big": 123456789012345678901234567890, "l":[1, "a b" ,{"c" : null}],"t":true,"n":null,"e":{}}"#).unwrap(),
            pairs(&[
                ("DB_a_b", "x"),
                ("DB_port", "5432"),
                ("DB_big", "123456789012345678901234567890"),
                ("DB_l", r#"[1,"a b",{"c":null}]"#),
                ("DB_t", "true"),
                ("DB_n", "null"),
                ("DB_e", "{}"),
            ])
        );
        for whole in [
            "[1,2]", "\"s\"", "42", "{\"a\":", "{oops}", "not json", "{}", " ",
        ] {
            assert_eq!(run(whole).unwrap(), pairs(&[("DB", whole)]), "{whole}");
        }
    }

    #[test]
    fn duplicates_depth_and_nul_are_refused_without_the_value() {
        let e = run(r#"{"k":"hunter2","k":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("twice") && !e.contains("hunter2"), "{e}");
        let deep = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert!(run(&deep).unwrap_err().to_string().contains("deeper"));
        let ok = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(run(&ok).unwrap().len(), 1);
        let e = run(r#"{"k":"a\u0000hunter2"}"#).unwrap_err().to_string();
        assert!(e.contains("NUL") && !e.contains("hunter2"), "{e}");
        let many: Vec<String> = (0..=MAX_LEAVES).map(|i| format!("\"k{i}\":1")).collect();
        assert!(run(&format!("{{{}}}", many.join(",")))
            .unwrap_err()
            .to_string()
            .contains("more than"));
    }

    #[test]
    fn lone_surrogates_leave_the_value_whole() {
        // Issue 20, finding 6: invalid JSON, lone surrogates included, stays one variable.
        for whole in [
            r#"{"k":"\ud800"}"#,
            r#"{"k":"\uDC00x"}"#,
            r#"{"k":"a\ud800\u0041"}"#,
            r#"{"k":{"n":"\udbff"}}"#,
            r#"{"k":"\\\ud800"}"#,
        ] {
            assert_eq!(run(whole).unwrap(), pairs(&[("DB", whole)]), "{whole}");
        }
        // A pair is fine, and so is an escaped backslash before `ud800`.
        assert_eq!(
            run(r#"{"k":"\ud83d\ude00","b":"\\ud800"}"#).unwrap(),
            pairs(&[("DB_k", "\u{1F600}"), ("DB_b", "\\ud800")])
        );
    }

    #[test]
    fn upper_case_keys_upper_case_every_key_part_only() {
        let out = expand_all(
            vec![(
                "/p".into(),
                vec![secret(
                    "db",
                    r#"{"username":"u","opts":{"ssl-mode":"x"},"Port":5432}"#,
                )],
            )],
            KeyCase::Upper,
        )
        .unwrap();
        let names: Vec<&str> = out[0].1.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db_USERNAME", "db_OPTS_SSL-MODE", "db_PORT"]);
    }

    #[test]
    fn a_leaf_colliding_names_both_secrets_and_the_key() {
        let e = expand_all(
            vec![(
                "/p".into(),
                vec![secret("A", r#"{"B":"x"}"#), secret("A_B", "y")],
            )],
            KeyCase::Keep,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("secret /p/A (its JSON key \"B\")")
                && e.contains("secret /p/A_B both")
                && e.contains("A_B: rename one"),
            "{e}"
        );
        let e = expand_all(
            vec![(
                "/p".into(),
                vec![secret("A", r#"{"B_C":"x"}"#), secret("A_B", r#"{"C":"y"}"#)],
            )],
            KeyCase::Keep,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("(its JSON key \"B_C\")") && e.contains("(its JSON key \"C\")"),
            "{e}"
        );
    }

    #[test]
    fn compact_keeps_strings_verbatim() {
        assert_eq!(compact(r#"[ "a \" b" , 1 ]"#), r#"["a \" b",1]"#);
    }
}
