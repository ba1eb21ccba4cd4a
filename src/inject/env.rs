//! Environment names, refused names, collisions, `--require`, and the child's environment.

use crate::error::{Error, Result};
use crate::secret::Secret;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use zeroize::Zeroizing;

pub use crate::names::{env_name, is_refused, printable};

/// One secret on its way into a process.
#[derive(Debug)]
pub struct Injection {
    pub env_name: String,
    /// The path it was read from.
    pub path: String,
    pub secret: Secret,
}

impl Injection {
    /// `path/name` for messages.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.path, printable(&self.secret.name))
    }
}

/// Merge the secrets of several paths (a later path wins for the same env name), check
/// names, refusals, collisions within a path, and `--require`. Sorted by env name.
pub fn plan(
    per_path: Vec<(String, Vec<Secret>)>,
    allow: &[String],
    require: &[String],
) -> Result<Vec<Injection>> {
    let mut merged: Vec<Injection> = Vec::new();
    for (path, mut secrets) in per_path {
        crate::sort::sort_by(&mut secrets, |a, b| a.name.cmp(&b.name));
        let mut this_path: Vec<Injection> = Vec::with_capacity(secrets.len());
        for secret in secrets {
            let name = env_name(&secret.name);
            let full = format!("{}/{}", path, printable(&secret.name));
            if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
                return Err(Error::data(format!(
                    "secret {full} maps to the environment name {name:?}, which is invalid \
                     (it must not start with a digit): rename the secret"
                )));
            }
            if is_refused(&name) && !allow.iter().any(|a| a == &name) {
                return Err(Error::data(format!(
                    "secret {full} would set {name}, which changes how programs load or start: \
                     refused; pass --allow-name {name} if this is intended"
                )));
            }
            if let Some(other) = this_path.iter().find(|i| i.env_name == name) {
                return Err(Error::data(format!(
                    "secrets {} and {full} both map to the environment name {name}: rename one",
                    other.full_name()
                )));
            }
            this_path.push(Injection {
                env_name: name,
                path: path.clone(),
                secret,
            });
        }
        for inj in this_path {
            merged.retain(|m| m.env_name != inj.env_name);
            merged.push(inj);
        }
    }
    let missing: Vec<&str> = require
        .iter()
        .filter(|r| {
            !merged
                .iter()
                .any(|m| &m.env_name == *r || &m.secret.name == *r)
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let paths: Vec<&str> = {
            let mut p: Vec<&str> = merged.iter().map(|m| m.path.as_str()).collect();
            p.dedup();
            p
        };
        return Err(Error::data(format!(
            "required secret{} {} not found{}: create {} or drop --require",
            if missing.len() > 1 { "s" } else { "" },
            missing
                .iter()
                .map(|m| printable(m))
                .collect::<Vec<_>>()
                .join(", "),
            if paths.is_empty() {
                String::new()
            } else {
                format!(" (fetched from {})", paths.join(", "))
            },
            if missing.len() > 1 { "them" } else { "it" },
        )));
    }
    crate::sort::sort_by(&mut merged, |a, b| a.env_name.cmp(&b.env_name));
    Ok(merged)
}

/// One `NAME=value` entry of an environment block, NUL-terminated for execve and wiped on
/// drop (it may hold a secret).
pub type EnvEntry = Zeroizing<Vec<u8>>;

fn entry(name: &[u8], value: &[u8]) -> EnvEntry {
    let mut e = Zeroizing::new(Vec::with_capacity(name.len() + value.len() + 2));
    e.extend_from_slice(name);
    e.push(b'=');
    e.extend_from_slice(value);
    e.push(0);
    e
}

/// What to add beside the secrets themselves (`--files` with `--file-env`).
pub struct ExtraVar {
    pub name: String,
    pub value: Vec<u8>,
}

/// The child's environment: the inherited variables plus the secrets and `extras` (the
/// `<NAME>_FILE` variables, which follow the secrets' rules), then `forced` (HOME after
/// `--user`), which always wins, silently. A secret replaces an inherited variable of the
/// same name unless `no_override`; either way stderr names the variable, never a value.
/// Returns NUL-terminated entries for execve.
pub fn child_env(
    inherited: &[(OsString, OsString)],
    secrets: &[Injection],
    extras: &[ExtraVar],
    forced: &[ExtraVar],
    inject_values: bool,
    no_override: bool,
    warn: &mut dyn FnMut(String),
) -> Vec<EnvEntry> {
    let mut out: Vec<(Vec<u8>, EnvEntry)> = Vec::with_capacity(inherited.len() + secrets.len());
    for (k, v) in inherited {
        let k = k.as_bytes();
        // A variable with '=' in its name or an empty name cannot be passed on faithfully.
        if k.is_empty() || k.contains(&b'=') {
            continue;
        }
        out.retain(|(n, _)| n != k);
        out.push((k.to_vec(), entry(k, v.as_bytes())));
    }
    let mut set = |name: &str, value: &[u8], out: &mut Vec<(Vec<u8>, EnvEntry)>| {
        let k = name.as_bytes();
        if let Some(pos) = out.iter().position(|(n, _)| n == k) {
            if no_override {
                warn(format!(
                    "keeping the inherited {name}; a secret of that name was not injected (--no-override)"
                ));
                return;
            }
            warn(format!("secret replaces the inherited variable {name}"));
            out.remove(pos);
        }
        out.push((k.to_vec(), entry(k, value)));
    };
    if inject_values {
        for s in secrets {
            set(&s.env_name, s.secret.payload.as_bytes(), &mut out);
        }
    }
    for x in extras {
        set(&x.name, &x.value, &mut out);
    }
    for x in forced {
        let k = x.name.as_bytes();
        out.retain(|(n, _)| n != k);
        out.push((k.to_vec(), entry(k, &x.value)));
    }
    out.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Payload;

    fn s(name: &str, v: &str) -> Secret {
        Secret {
            name: name.into(),
            serial: 1,
            payload: Payload::from_string(v.into()),
        }
    }

    #[test]
    fn refused_names_unless_allowed() {
        for n in [
            "LD_PRELOAD",
            "PATH",
            "BASH_FUNC_x%%",
            "DYLD_INSERT",
            "IFS",
            "NODE_OPTIONS",
        ] {
            assert!(is_refused(&env_name(n)), "{n}");
        }
        assert!(!is_refused("PATHS") && !is_refused("MY_LD_X"));
        let e = plan(vec![("/p".into(), vec![s("LD_PRELOAD", "x")])], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("--allow-name LD_PRELOAD"), "{e}");
        let ok = plan(
            vec![("/p".into(), vec![s("LD_PRELOAD", "x")])],
            &["LD_PRELOAD".into()],
            &[],
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn collisions_name_both_and_later_path_wins() {
        let e = plan(
            vec![("/p".into(), vec![s("a.b", "1"), s("a-b", "2")])],
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/p/a-b") && e.contains("/p/a.b") && e.contains("a_b"),
            "{e}"
        );
        assert!(
            !e.contains('1') && !e.contains('2'),
            "no values in errors: {e}"
        );
        let ok = plan(
            vec![
                ("/a".into(), vec![s("X", "one"), s("Y", "y")]),
                ("/b".into(), vec![s("X", "two")]),
            ],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].env_name, "X");
        assert_eq!(ok[0].path, "/b");
        assert_eq!(ok[0].secret.payload.as_bytes(), b"two");
    }

    #[test]
    fn invalid_and_required() {
        let e = plan(vec![("/p".into(), vec![s("1X", "v")])], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("/p/1X"), "{e}");
        let e = plan(vec![("/p".into(), vec![s("A", "v")])], &[], &["B".into()]).unwrap_err();
        assert!(e.to_string().contains("required secret B"), "{e}");
        assert!(plan(
            vec![("/p".into(), vec![s("a.b", "v")])],
            &[],
            &["a_b".into()]
        )
        .is_ok());
    }

    #[test]
    fn child_env_overrides_or_keeps() {
        let inherited = vec![
            (OsString::from("HOME"), OsString::from("/root")),
            (OsString::from("X"), OsString::from("old")),
        ];
        let secrets = plan(vec![("/p".into(), vec![s("X", "new")])], &[], &[]).unwrap();
        let mut warnings = Vec::new();
        let env = child_env(&inherited, &secrets, &[], &[], true, false, &mut |w| {
            warnings.push(w)
        });
        let strs: Vec<&[u8]> = env.iter().map(|e| &e[..]).collect();
        assert!(strs.contains(&&b"X=new\0"[..]));
        assert!(!strs.contains(&&b"X=old\0"[..]));
        assert!(warnings[0].contains("replaces") && !warnings[0].contains("new"));
        let env = child_env(&inherited, &secrets, &[], &[], true, true, &mut |_| {});
        let strs: Vec<&[u8]> = env.iter().map(|e| &e[..]).collect();
        assert!(strs.contains(&&b"X=old\0"[..]));
        let env = child_env(&inherited, &secrets, &[], &[], false, false, &mut |_| {});
        assert_eq!(env.len(), 2);
    }
}
