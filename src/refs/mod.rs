//! `--resolve-refs`: inherited variables whose whole value is a reference (ECS's
//! `valueFrom` forms, `ssm:/…`, `secretsmanager:…`; see `parse`) are replaced by what they
//! refer to, keeping their names.
//!
//! Requests are at the floor: one GetParameters per 10 distinct parameters and one
//! BatchGetSecretValue per 20 distinct secrets in each region, plus one GetSecretValue per
//! distinct pinned version; all of them, and the path reads, run concurrently under the one
//! `--timeout`. A resolved reference is then a secret named by its variable, so `--require`,
//! `--files`, `--no-env`, refused names and `--json-keys` (when no json-key was given) apply
//! as to path secrets. Any failure names the variable and the reference (references are not
//! secret; values are).
//!
//! Hooks: `collect` (config), `fetch` (instead of `cmd::fetch_paths`), `merge` (before
//! `inject::env::plan`), `without_refs` (the inherited environment of `exec`). `sync` uses
//! the same four.

mod json_key;
mod merge;
pub mod parse;
mod resolve;
mod sm;
mod ssm;

pub use merge::{merge, GROUP};
pub use resolve::resolve;
pub(crate) use resolve::{with_hint, Labels};

use crate::config::{Env, StoreConfig};
use crate::error::{Error, Result};
use crate::inject::env::printable;
use crate::secret::{Payload, Secret};
use parse::Target;
use std::ffi::OsString;

/// One inherited variable holding a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub var: String,
    /// The reference as written (not secret).
    pub text: String,
    pub target: Target,
}

impl Ref {
    /// `$DB_PASSWORD (ssm:/prod/db)`, for messages.
    pub fn label(&self) -> String {
        format!("${} ({})", self.var, printable(&self.text))
    }
}

fn valid_var(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The references among the inherited variables (the last value of a repeated name, as
/// `getenv` sees it). A malformed reference is an error naming the variable.
pub fn collect(env: &Env) -> Result<Vec<Ref>> {
    let vars = env.vars();
    let mut out: Vec<Ref> = Vec::new();
    for (i, (k, v)) in vars.iter().enumerate() {
        if vars[i + 1..].iter().any(|(k2, _)| k2 == k) {
            continue;
        }
        let lossy = v.to_string_lossy();
        let parsed = parse::parse(&lossy);
        if parsed == Ok(None) {
            continue;
        }
        let k = k.to_string_lossy();
        // Meant as a reference but not UTF-8: malformed, never passed through.
        let parsed = match v.to_str() {
            Some(_) => parsed,
            None => Err("it is not valid UTF-8".into()),
        };
        let (k, v) = (k.as_ref(), lossy.as_ref());
        let target = match parsed {
            Ok(None) => continue,
            Ok(Some(t)) => t,
            Err(why) => {
                return Err(Error::usage(format!(
                    "--resolve-refs: malformed reference ${} ({}): {why}",
                    printable(k),
                    printable(v)
                )))
            }
        };
        if !valid_var(k) {
            return Err(Error::usage(format!(
                "--resolve-refs: the variable {:?} holds the reference {} but its name is not a valid environment name",
                printable(k),
                printable(v)
            )));
        }
        out.push(Ref {
            var: k.to_string(),
            text: v.to_string(),
            target,
        });
    }
    crate::sort::sort_by(&mut out, |a, b| a.var.cmp(&b.var));
    Ok(out)
}

/// The inherited environment without the variables that held references: they are
/// replaced by their values (or, with `--no-env`, only by files).
pub fn without_refs(vars: &[(OsString, OsString)], refs: &[Ref]) -> Vec<(OsString, OsString)> {
    vars.iter()
        .filter(|(k, _)| !refs.iter().any(|r| k.to_str() == Some(r.var.as_str())))
        .cloned()
        .collect()
}

/// What `fetch` brings: the secrets of each path, and each reference's value.
pub type Fetched = (Vec<(String, Vec<Secret>)>, Vec<Payload>);

/// The paths and the references, concurrently, under the one `--timeout`, with a start's
/// warnings (a path without secrets; nothing to fetch at all). Without references this is
/// exactly `cmd::fetch_paths`.
pub async fn fetch(cfg: &StoreConfig, refs: &[Ref]) -> Result<Fetched> {
    if refs.is_empty() && cfg.paths.is_empty() {
        crate::log::warn(format_args!(
            "--resolve-refs: no path given and no variable holds a reference: nothing to fetch"
        ));
        return Ok((Vec::new(), Vec::new()));
    }
    if refs.is_empty() {
        return Ok((crate::cmd::fetch_paths(cfg).await?, Vec::new()));
    }
    let fetched = fetch_quiet(cfg, refs).await?;
    for (path, secrets) in &fetched.0 {
        if secrets.is_empty() {
            crate::log::warn(format_args!(
                "no secrets under {path} (check the path and the {} backend)",
                cfg.backend.as_str()
            ));
        }
    }
    Ok(fetched)
}

/// The paths and the references, concurrently, under the one `--timeout`, without
/// warnings (a refresh repeats them only when it applies a new set).
pub async fn fetch_quiet(cfg: &StoreConfig, refs: &[Ref]) -> Result<Fetched> {
    let what = if cfg.paths.is_empty() {
        format!("resolving {} reference(s)", refs.len())
    } else {
        format!(
            "fetching the secrets of {} and {} reference(s)",
            cfg.paths.join(", "),
            refs.len()
        )
    };
    crate::aws::with_deadline(cfg.timeout, &what, async {
        let sdk = crate::aws::load(cfg).await;
        let paths = async {
            if cfg.paths.is_empty() {
                return Ok(Vec::new());
            }
            let store = crate::store::open(cfg, &sdk);
            crate::store::read_paths_checked(&store, cfg).await
        };
        tokio::try_join!(paths, resolve(&sdk, cfg, refs))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn collect_takes_whole_values_and_the_last_of_a_name() {
        let e = env(&[
            ("A", "ssm:/old"),
            ("B", "see ssm:/x"),
            ("A", "ssm:/new"),
            ("C", "arn:aws:iam::123456789012:role/r"),
            ("D", "secretsmanager:db:password"),
        ]);
        let r = collect(&e).unwrap();
        assert_eq!(
            r.iter()
                .map(|r| (r.var.as_str(), r.text.as_str()))
                .collect::<Vec<_>>(),
            vec![("A", "ssm:/new"), ("D", "secretsmanager:db:password")]
        );
        let e = collect(&env(&[("X", "ssm:nope")])).unwrap_err().to_string();
        assert!(e.contains("$X") && e.contains("ssm:nope"), "{e}");
        let e = collect(&env(&[("X.Y", "ssm:/a")])).unwrap_err().to_string();
        assert!(e.contains("X.Y"), "{e}");
        use std::os::unix::ffi::OsStringExt;
        let bad = Env::from_pairs([(
            OsString::from("B"),
            OsString::from_vec(b"ssm:/a\xff".to_vec()),
        )]);
        let e = collect(&bad).unwrap_err().to_string();
        assert!(e.contains("$B") && e.contains("UTF-8"), "{e}");
        let fine = Env::from_pairs([(OsString::from("B"), OsString::from_vec(b"x\xff".to_vec()))]);
        assert!(collect(&fine).unwrap().is_empty());
    }
}
