//! Resolved references become secrets named by their variables, checked against the path
//! secrets and each other before `inject::env::plan` sees them.

use super::json_key;
use crate::error::{Error, Result};
use crate::inject::env::{env_name, is_refused, printable};
use crate::refs::Ref;
use crate::secret::{Payload, Secret};
use std::collections::HashMap;

/// The group name resolved references carry into `inject::env::plan`.
pub const GROUP: &str = "references";

/// Turn the values into secrets named by their variables (a json-key decoded; with
/// `--json-keys`, an object without one expanded) and append them to `per_path` as one
/// more group, after checking that no name is refused or set twice: a reference and a path
/// secret (or two references) for one name is an error naming both.
pub fn merge(
    mut per_path: Vec<(String, Vec<Secret>)>,
    refs: &[Ref],
    values: Vec<Payload>,
    json_keys: Option<crate::config::KeyCase>,
    allow: &[String],
) -> Result<Vec<(String, Vec<Secret>)>> {
    if refs.is_empty() {
        return Ok(per_path);
    }
    let mut taken: HashMap<String, String> = HashMap::new();
    for (path, secrets) in &per_path {
        for s in secrets {
            taken.insert(
                env_name(&s.name),
                format!("the secret {path}/{}", printable(&s.name)),
            );
        }
    }
    let mut out: Vec<Secret> = Vec::new();
    for (r, payload) in refs.iter().zip(values) {
        let payload = match r.target.json_key() {
            Some(k) => json_key::extract(&payload, k)
                .map_err(|why| Error::data(format!("cannot resolve {}: {why}", r.label())))?,
            None => payload,
        };
        if payload.as_bytes().contains(&0) {
            return Err(Error::data(format!(
                "cannot resolve {}: the value holds a NUL byte, which no environment variable can carry",
                r.label()
            )));
        }
        let one = Secret {
            name: r.var.clone(),
            serial: 0,
            payload,
        };
        let secrets = if let (Some(case), None) = (json_keys, r.target.json_key()) {
            let mut x = super::expand::expand_all(vec![(printable(&r.text), vec![one])], case)?;
            x.pop().map(|(_, s)| s).unwrap_or_default()
        } else {
            vec![one]
        };
        for s in secrets {
            let name = env_name(&s.name);
            let me = if s.name == r.var {
                format!("the reference {}", r.label())
            } else {
                format!(
                    "the JSON key {} of the reference {}",
                    printable(&s.name),
                    r.label()
                )
            };
            if is_refused(&name) && !allow.iter().any(|a| a == &name) {
                return Err(Error::data(format!(
                    "{me} would set {name}, which changes how programs load or start: refused; pass --allow-name {name} if this is intended"
                )));
            }
            if let Some(other) = taken.get(&name) {
                return Err(Error::data(format!(
                    "{other} and {me} both set {name}: drop one"
                )));
            }
            taken.insert(name, me);
            out.push(s);
        }
    }
    per_path.push((GROUP.to_string(), out));
    Ok(per_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::refs::collect;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn merge_refuses_collisions_and_refused_names_naming_both() {
        let r = collect(&env(&[("DB", "ssm:/a"), ("LD_PRELOAD", "ssm:/b")])).unwrap();
        let p = |v: &str| Payload::from_string(v.into());
        let path = vec![(
            "/p".to_string(),
            vec![Secret {
                name: "DB".into(),
                serial: 1,
                payload: p("x"),
            }],
        )];
        let e = merge(path, &r[..1], vec![p("hunter2")], None, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/p/DB") && e.contains("$DB (ssm:/a)"), "{e}");
        assert!(!e.contains("hunter2"));
        let e = merge(vec![], &r[1..], vec![p("hunter2")], None, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("LD_PRELOAD") && !e.contains("hunter2"), "{e}");
        assert!(merge(vec![], &r[1..], vec![p("v")], None, &["LD_PRELOAD".into()]).is_ok());
        // A JSON key of one reference and another reference for the same name.
        let r = collect(&env(&[("J", "secretsmanager:j"), ("J_user", "ssm:/u")])).unwrap();
        let e = merge(
            vec![],
            &r,
            vec![p(r#"{"user":"hunter2"}"#), p("x")],
            Some(crate::config::KeyCase::Keep),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("$J (secretsmanager:j)") && e.contains("$J_user (ssm:/u)"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
}
