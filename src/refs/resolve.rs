//! Fetching references: distinct names and ids grouped per service and region, in batches
//! at the request floor, every request concurrent.

use super::parse::Target;
use super::{sm, ssm, Ref};
use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::names::printable;
use crate::secret::Payload;
use aws_config::SdkConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// `--resolve-refs`' own next step for an access denied (the generic one points at a path's
/// policy, which references do not use).
pub(crate) fn with_hint(mut e: Error, grant: &str) -> Error {
    if let Error::Aws { kind, hint, .. } = &mut e {
        if *kind == crate::error::AwsKind::AccessDenied {
            *hint = format!("; grant the task role {grant} (docs/references.md)");
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
    // Distinct keys, grouped by (service, region) for batching, each group with the
    // variables that refer to each of its names.
    type Groups = BTreeMap<Option<String>, (Vec<String>, LabelMap)>;
    let mut ssm_groups: Groups = BTreeMap::new();
    let mut sm_groups: Groups = BTreeMap::new();
    let mut pins: Vec<(Key, String)> = Vec::new();
    for (r, k) in refs.iter().zip(&keys) {
        match k {
            Key::Ssm(region, name) => {
                let (g, labels) = ssm_groups.entry(region.clone()).or_default();
                if !g.contains(name) {
                    g.push(name.clone());
                }
                labels.add(name, r);
            }
            Key::Sm(region, id) => {
                let (g, labels) = sm_groups.entry(region.clone()).or_default();
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
    for (region, (names, labels)) in ssm_groups {
        let (client, labels): (_, Labels) = (ssm_client(&region), Arc::new(labels));
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
    for (region, (ids, labels)) in sm_groups {
        let (client, labels): (_, Labels) = (sm_client(&region), Arc::new(labels));
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
