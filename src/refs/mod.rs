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
pub mod parse;
mod sm;
mod ssm;

use crate::config::{Env, StoreConfig};
use crate::error::{Error, Result};
use crate::inject::env::{env_name, is_refused, printable};
use crate::secret::{Payload, Secret};
use aws_config::SdkConfig;
use parse::Target;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::sync::Arc;

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
    out.sort_by(|a, b| a.var.cmp(&b.var));
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

/// `--resolve-refs`' own next step for an access denied (the generic one points at a path's
/// policy, which references do not use).
pub(crate) fn with_hint(mut e: Error, grant: &str) -> Error {
    if let Error::Aws { kind, hint, .. } = &mut e {
        if *kind == crate::error::AwsKind::AccessDenied {
            *hint = format!("; grant the task role {grant} (README \"References\")");
        }
    }
    e
}

/// For messages: the variables that refer to each requested name or id.
#[derive(Default)]
pub(crate) struct LabelMap(HashMap<String, String>);
pub(crate) type Labels = Arc<LabelMap>;

impl LabelMap {
    fn add(&mut self, id: &str, r: &Ref) {
        let e = self.0.entry(id.to_string()).or_default();
        if !e.is_empty() {
            e.push_str(", ");
        }
        e.push_str(&r.label());
    }
    pub(crate) fn of(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| printable(id))
    }
    pub(crate) fn list(&self, ids: &[String]) -> String {
        ids.iter()
            .map(|i| self.of(i))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What one request answers for: a parameter, a secret's AWSCURRENT, or a pinned version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Ssm(Option<String>, String),
    Sm(Option<String>, String),
    Pin(Option<String>, String, Option<String>, Option<String>),
}

fn key(t: &Target, default_region: Option<&str>) -> Key {
    // A reference in the client's own region shares its requests.
    let region = t
        .region()
        .filter(|r| Some(*r) != default_region)
        .map(String::from);
    match t {
        Target::Ssm { name, .. } => Key::Ssm(region, name.clone()),
        Target::Sm {
            id,
            stage,
            version_id,
            ..
        } if t.is_pinned() => Key::Pin(region, id.clone(), stage.clone(), version_id.clone()),
        Target::Sm { id, .. } => Key::Sm(region, id.clone()),
    }
}

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<(Key, Payload)>>>>>;

/// Fetch every reference: returns, per reference (in `refs` order), its value.
pub async fn resolve(sdk: &SdkConfig, cfg: &StoreConfig, refs: &[Ref]) -> Result<Vec<Payload>> {
    let default_region = sdk.region().map(|r| r.as_ref().to_string());
    let keys: Vec<Key> = refs
        .iter()
        .map(|r| key(&r.target, default_region.as_deref()))
        .collect();
    // Distinct keys, grouped by (service, region) for batching.
    let mut ssm_groups: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let mut sm_groups: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let mut pins: Vec<(Key, String)> = Vec::new();
    let mut labels = LabelMap::default();
    for (r, k) in refs.iter().zip(&keys) {
        match k {
            Key::Ssm(region, name) => {
                let g = ssm_groups.entry(region.clone()).or_default();
                if !g.contains(name) {
                    g.push(name.clone());
                }
                labels.add(name, r);
            }
            Key::Sm(region, id) => {
                let g = sm_groups.entry(region.clone()).or_default();
                if !g.contains(id) {
                    g.push(id.clone());
                }
                labels.add(id, r);
            }
            Key::Pin(..) => match pins.iter_mut().find(|(pk, _)| pk == k) {
                Some((_, l)) => {
                    l.push_str(", ");
                    l.push_str(&r.label());
                }
                None => pins.push((k.clone(), r.label())),
            },
        }
    }
    let labels: Labels = Arc::new(labels);
    let attempts = || crate::aws::Attempts { debug: cfg.debug };
    let ssm_client = |region: &Option<String>| {
        let mut b = aws_sdk_ssm::config::Builder::from(sdk).interceptor(attempts());
        if let Some(r) = region {
            b = b.region(aws_config::Region::new(r.clone()));
        }
        aws_sdk_ssm::Client::from_conf(b.build())
    };
    let sm_client = |region: &Option<String>| {
        let mut b = aws_sdk_secretsmanager::config::Builder::from(sdk).interceptor(attempts());
        if let Some(r) = region {
            b = b.region(aws_config::Region::new(r.clone()));
        }
        aws_sdk_secretsmanager::Client::from_conf(b.build())
    };

    let mut jobs: Vec<Job> = Vec::new();
    let (mut n_ssm, mut n_sm) = (0, 0);
    for (region, names) in &ssm_groups {
        let client = ssm_client(region);
        for chunk in names.chunks(ssm::BATCH) {
            n_ssm += 1;
            let (client, chunk, labels, region) = (
                client.clone(),
                chunk.to_vec(),
                labels.clone(),
                region.clone(),
            );
            jobs.push(Box::pin(async move {
                let got = ssm::batch(client, chunk, labels).await?;
                Ok(got
                    .into_iter()
                    .map(|(n, p)| (Key::Ssm(region.clone(), n), p))
                    .collect())
            }));
        }
    }
    for (region, ids) in &sm_groups {
        let client = sm_client(region);
        for chunk in ids.chunks(sm::BATCH) {
            n_sm += 1;
            let (client, chunk, labels, region) = (
                client.clone(),
                chunk.to_vec(),
                labels.clone(),
                region.clone(),
            );
            jobs.push(Box::pin(async move {
                let got = sm::batch(client, chunk, labels).await?;
                Ok(got
                    .into_iter()
                    .map(|(i, p)| (Key::Sm(region.clone(), i), p))
                    .collect())
            }));
        }
    }
    let n_pins = pins.len();
    for (k, label) in pins {
        let Key::Pin(region, id, stage, vid) = &k else {
            continue;
        };
        let client = sm_client(region);
        let (id, stage, vid) = (id.clone(), stage.clone(), vid.clone());
        jobs.push(Box::pin(async move {
            let p = sm::pinned(client, id, stage, vid, label).await?;
            Ok(vec![(k, p)])
        }));
    }
    crate::log::debug(format_args!(
        "{} reference(s): {n_ssm} GetParameters, {n_sm} BatchGetSecretValue, {n_pins} GetSecretValue request(s)",
        refs.len()
    ));
    let mut got: Vec<(Key, Payload)> = Vec::new();
    for r in try_all(jobs).await? {
        got.extend(r);
    }
    keys.iter()
        .zip(refs)
        .map(|(k, r)| {
            got.iter()
                .find(|(g, _)| g == k)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| Error::data(format!("cannot resolve {}: no answer", r.label())))
        })
        .collect()
}

/// Run the futures concurrently; the first error wins and the rest are dropped.
async fn try_all(jobs: Vec<Job>) -> Result<Vec<Vec<(Key, Payload)>>> {
    let mut pending: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    let mut out: Vec<Vec<(Key, Payload)>> = Vec::with_capacity(pending.len());
    std::future::poll_fn(|cx| {
        for slot in pending.iter_mut() {
            if let Some(f) = slot {
                if let std::task::Poll::Ready(r) = f.as_mut().poll(cx) {
                    *slot = None;
                    match r {
                        Ok(v) => out.push(v),
                        Err(e) => return std::task::Poll::Ready(Err(e)),
                    }
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    })
    .await?;
    Ok(out)
}

/// What `fetch` brings: the secrets of each path, and each reference's value.
pub type Fetched = (Vec<(String, Vec<Secret>)>, Vec<Payload>);

/// The paths and the references, concurrently, under the one `--timeout`. Without
/// references this is exactly `cmd::fetch_paths`.
pub async fn fetch(cfg: &StoreConfig, refs: &[Ref]) -> Result<Fetched> {
    if refs.is_empty() {
        if cfg.paths.is_empty() {
            crate::log::warn(format_args!(
                "--resolve-refs: no path given and no variable holds a reference: nothing to fetch"
            ));
            return Ok((Vec::new(), Vec::new()));
        }
        return Ok((crate::cmd::fetch_paths(cfg).await?, Vec::new()));
    }
    let what = if cfg.paths.is_empty() {
        format!("resolving {} reference(s)", refs.len())
    } else {
        format!(
            "fetching the secrets of {} and {} reference(s)",
            cfg.paths.join(", "),
            refs.len()
        )
    };
    let (per_path, values) = crate::aws::with_deadline(cfg.timeout, &what, async {
        let sdk = crate::aws::load(cfg).await;
        let paths = async {
            if cfg.paths.is_empty() {
                return Ok(Vec::new());
            }
            let store = crate::store::open(cfg, &sdk);
            crate::store::read_paths(&store, &cfg.paths).await
        };
        tokio::try_join!(paths, resolve(&sdk, cfg, refs))
    })
    .await?;
    for (path, secrets) in &per_path {
        if secrets.is_empty() {
            crate::log::warn(format_args!(
                "no secrets under {path} (check the path and the {} backend)",
                cfg.backend.as_str()
            ));
        }
    }
    Ok((per_path, values))
}

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
    json_keys: bool,
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
        let secrets = if json_keys && r.target.json_key().is_none() {
            let mut x = crate::inject::json::expand_all(vec![(printable(&r.text), vec![one])])?;
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
        let e = merge(path, &r[..1], vec![p("hunter2")], false, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/p/DB") && e.contains("$DB (ssm:/a)"), "{e}");
        assert!(!e.contains("hunter2"));
        let e = merge(vec![], &r[1..], vec![p("hunter2")], false, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("LD_PRELOAD") && !e.contains("hunter2"), "{e}");
        assert!(merge(vec![], &r[1..], vec![p("v")], false, &["LD_PRELOAD".into()]).is_ok());
        // A JSON key of one reference and another reference for the same name.
        let r = collect(&env(&[("J", "secretsmanager:j"), ("J_user", "ssm:/u")])).unwrap();
        let e = merge(
            vec![],
            &r,
            vec![p(r#"{"user":"hunter2"}"#), p("x")],
            true,
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
