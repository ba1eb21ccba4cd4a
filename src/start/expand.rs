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
pub fn expand_all(per_path: Vec<(String, Vec<Secret>)>) -> Result<Vec<(String, Vec<Secret>)>> {
    per_path
        .into_iter()
        .map(|(path, secrets)| {
            let mut out = Vec::with_capacity(secrets.len());
            for s in secrets {
                expand(&path, s, &mut out)?;
            }
            Ok((path, out))
        })
        .collect()
}

fn expand(path: &str, s: Secret, out: &mut Vec<Secret>) -> Result<()> {
    let members = match s.payload.as_str() {
        Some(text) if text.trim_start().starts_with('{') => {
            serde_json::from_str::<Members>(text).ok()
        }
        _ => None,
    };
    let Some(members) = members else {
        out.push(s);
        return Ok(());
    };
    if members.0.is_empty() {
        out.push(s); // `{}` has no leaves: it stays one variable
        return Ok(());
    }
    let full = format!("{path}/{}", printable(&s.name));
    let mut leaves = Vec::new();
    flatten(&full, &s.name, members, 1, &mut leaves)?;
    out.extend(leaves.into_iter().map(|(name, payload)| Secret {
        name,
        serial: s.serial,
        payload,
    }));
    Ok(())
}

fn flatten(
    full: &str,
    prefix: &str,
    members: Members,
    depth: usize,
    out: &mut Vec<(String, Payload)>,
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
        let name = format!("{prefix}_{key}");
        let text = raw.get();
        let leaf = match text.as_bytes().first() {
            Some(b'{') => {
                let inner: Members = serde_json::from_str(text)
                    .map_err(|e| Error::data(format!("secret {full}: bad JSON: {e}")))?;
                if !inner.0.is_empty() {
                    flatten(full, &name, inner, depth + 1, out)?;
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
        let out = expand_all(vec![("/p".into(), vec![secret("DB", v)])])?;
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
    fn compact_keeps_strings_verbatim() {
        assert_eq!(compact(r#"[ "a \" b" , 1 ]"#), r#"["a \" b",1]"#);
    }
}
