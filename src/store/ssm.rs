//! Parameter Store backend. A secret is the SecureString `<path>/<name>`; its serial is the
//! parameter version.
//!
//! Revocation, designed so that start-up reads stay one GetParametersByPath page per ten
//! secrets and nothing more:
//! - GetParametersByPath only ever sees a parameter's latest version, so the latest version
//!   must always hold the newest *active* payload.
//! - Revoking a version labels it `revoked-<serial>` (a version label; labels are per version
//!   and visible in GetParameterHistory).
//! - When the revoked version is what readers currently see, a new version is written first:
//!   a copy of the newest remaining active version (description `ecs-secrets: copy of serial
//!   K`), or, when none remains, a tombstone whose value readers skip. Copies and tombstones
//!   are internal: they are not serials, and `list`/`fetch` resolve a copy to its original.
//! - So readers never need history; admin commands read GetParameterHistory.

use crate::error::{Error, Result};
use crate::secret::{Fetched, Payload, Secret, VersionInfo};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_types::date_time::Format as DateFormat;

/// SSM standard tier limit (advanced parameters cost money and are not used).
pub const MAX_PAYLOAD: usize = 4096;
/// Page size of GetParametersByPath (SSM's maximum).
const PAGE: i32 = 10;
/// The value of a tombstone version: what readers see once every version is revoked.
pub const TOMBSTONE: &str = "ecs-secrets:revoked:no-active-version";
const COPY_PREFIX: &str = "ecs-secrets: copy of serial ";
const TOMBSTONE_DESCRIPTION: &str = "ecs-secrets: every version revoked";
/// Set on every ordinary version: SSM carries a parameter's description over to a new
/// version written without one, so a version after a copy must say what it is.
const VERSION_DESCRIPTION: &str = "ecs-secrets: secret version";

fn revoked_label(serial: u64) -> String {
    format!("revoked-{serial}")
}

pub(crate) fn check_payload(p: &Payload) -> Result<()> {
    match p.as_str() {
        None => Err(Error::usage(
            "the payload is not UTF-8 text, which Parameter Store cannot hold: use the dynamodb backend for binary values",
        )),
        Some(TOMBSTONE) => Err(Error::usage(
            "that payload is reserved by ecs-secrets to mark revoked secrets",
        )),
        Some(_) => Ok(()),
    }
}

#[derive(Clone)]
pub struct SsmStore {
    client: aws_sdk_ssm::Client,
    kms_key: Option<String>,
    recursive: bool,
}

/// One entry of a parameter's history, as we interpret it.
#[derive(Debug)]
struct Hist {
    version: u64,
    kind: Kind,
    revoked: bool,
    created: String,
}

#[derive(Debug, PartialEq)]
enum Kind {
    Real,
    Copy(u64),
    Tombstone,
}

fn full(path: &str, name: &str) -> String {
    format!("{path}/{name}")
}

fn date(d: Option<&aws_smithy_types::DateTime>) -> String {
    d.and_then(|d| d.fmt(DateFormat::DateTime).ok())
        .unwrap_or_default()
}

impl SsmStore {
    pub fn new(client: aws_sdk_ssm::Client, kms_key: Option<String>, recursive: bool) -> Self {
        SsmStore {
            client,
            kms_key,
            recursive,
        }
    }

    /// Every parameter under `path` (recursively when configured), page by page, handed to
    /// `each` with its name relative to the path. A page may be short or even empty and still
    /// carry a token: it is followed until absent. Returns the number of pages.
    async fn by_path(
        &self,
        path: &str,
        decrypt: bool,
        what: &str,
        mut each: impl FnMut(String, aws_sdk_ssm::types::Parameter),
    ) -> Result<u32> {
        let prefix = format!("{path}/");
        let mut token: Option<String> = None;
        let mut pages = 0u32;
        loop {
            let resp = self
                .client
                .get_parameters_by_path()
                .path(path)
                .recursive(self.recursive)
                .with_decryption(decrypt)
                .max_results(PAGE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    crate::aws::error(format!("{what} {path} in SSM Parameter Store"), e)
                })?;
            pages += 1;
            for p in resp.parameters.unwrap_or_default() {
                if let Some(rel) = p.name.as_deref().and_then(|n| n.strip_prefix(&prefix)) {
                    each(rel.to_string(), p);
                }
            }
            match resp.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(pages),
            }
        }
    }

    pub async fn read_path(&self, path: &str) -> Result<Vec<Secret>> {
        let mut out = Vec::new();
        let pages = self
            .by_path(path, true, "reading", |name, p| {
                let Some(value) = p.value else { return };
                let payload = Payload::from_string(value);
                if payload.as_bytes() != TOMBSTONE.as_bytes() {
                    out.push(Secret {
                        name,
                        serial: p.version.max(0) as u64,
                        payload,
                    });
                }
            })
            .await?;
        crate::log::debug(format_args!(
            "{path}: {} secrets in {pages} GetParametersByPath page(s)",
            out.len()
        ));
        Ok(out)
    }

    async fn history(&self, path: &str, name: &str) -> Result<Vec<Hist>> {
        let full_name = full(path, name);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .get_parameter_history()
                .name(&full_name)
                .with_decryption(false)
                .max_results(50)
                .set_next_token(token.take())
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_parameter_not_found()) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => {
                    return Err(crate::aws::error(
                        format!("reading the history of {full_name}"),
                        e,
                    ))
                }
            };
            for h in resp.parameters.unwrap_or_default() {
                let version = h.version.max(0) as u64;
                let labels = h.labels.unwrap_or_default();
                let desc = h.description.unwrap_or_default();
                let kind = if desc == TOMBSTONE_DESCRIPTION {
                    Kind::Tombstone
                } else if let Some(k) = desc
                    .strip_prefix(COPY_PREFIX)
                    .and_then(|k| k.parse::<u64>().ok())
                {
                    Kind::Copy(k)
                } else {
                    Kind::Real
                };
                out.push(Hist {
                    version,
                    kind,
                    revoked: labels.contains(&revoked_label(version)),
                    created: date(h.last_modified_date.as_ref()),
                });
            }
            match resp.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        out.sort_by_key(|h| h.version);
        Ok(out)
    }

    async fn put(&self, full_name: &str, value: &str, description: &str) -> Result<u64> {
        let resp = self
            .client
            .put_parameter()
            .name(full_name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .set_key_id(self.kms_key.clone())
            .description(description)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| {
                crate::aws::error_redacted(
                    format!("writing {full_name} to SSM Parameter Store"),
                    e,
                    Some(value.as_bytes()),
                )
            })?;
        Ok(resp.version.max(0) as u64)
    }

    pub async fn create(&self, path: &str, name: &str, payload: &Payload) -> Result<u64> {
        let value = payload
            .as_str()
            .expect("checked as UTF-8 by Store::check_payload");
        self.put(&full(path, name), value, VERSION_DESCRIPTION)
            .await
    }

    /// The value of one version, decrypted.
    async fn value_of(&self, path: &str, name: &str, serial: u64) -> Result<Payload> {
        let selector = format!("{}:{serial}", full(path, name));
        let resp = self
            .client
            .get_parameter()
            .name(&selector)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("reading {selector}"), e))?;
        let value = resp
            .parameter
            .and_then(|p| p.value)
            .ok_or_else(|| Error::data(format!("{selector} came back without a value")))?;
        Ok(Payload::from_string(value))
    }

    pub async fn revoke(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        let hist = self.history(path, name).await?;
        let full_name = full(path, name);
        if hist.is_empty() {
            return Err(Error::not_found(format!("no secret {full_name}")));
        }
        let Some(target) = hist
            .iter()
            .find(|h| h.version == serial && h.kind == Kind::Real)
        else {
            return Err(Error::not_found(format!(
                "{full_name} has no serial {serial} (serials: {})",
                serial_list(&hist)
            )));
        };
        let already = target.revoked;
        // What readers must see once `serial` is revoked, and what they see now.
        let wanted = hist
            .iter()
            .filter(|h| h.kind == Kind::Real && !h.revoked && h.version != serial)
            .map(|h| h.version)
            .max();
        let current = visible(&hist);
        let up_to_date = match (&current, wanted) {
            (Visible::Active(v), Some(w)) => *v == w,
            (Visible::Nothing, None) => true,
            _ => false,
        };
        if !up_to_date {
            match wanted {
                Some(k) => {
                    let v = self.value_of(path, name, k).await?;
                    let value = v.as_str().unwrap_or_default();
                    self.put(&full_name, value, &format!("{COPY_PREFIX}{k}"))
                        .await?;
                }
                None => {
                    self.put(&full_name, TOMBSTONE, TOMBSTONE_DESCRIPTION)
                        .await?;
                }
            }
        }
        if !already {
            let resp = self
                .client
                .label_parameter_version()
                .name(&full_name)
                .parameter_version(serial as i64)
                .labels(revoked_label(serial))
                .send()
                .await
                .map_err(|e| {
                    crate::aws::error(format!("labelling {full_name} serial {serial} revoked"), e)
                })?;
            if resp.invalid_labels.is_some_and(|l| !l.is_empty()) {
                return Err(Error::data(format!(
                    "SSM refused the revocation label on {full_name} serial {serial}; \
                     a version holds at most 10 labels: remove one and revoke again"
                )));
            }
        }
        Ok(())
    }

    pub async fn fetch(&self, path: &str, name: &str, serial: Option<u64>) -> Result<Fetched> {
        let hist = self.history(path, name).await?;
        let full_name = full(path, name);
        if hist.is_empty() {
            return Err(Error::not_found(format!("no secret {full_name}")));
        }
        let h = match serial {
            None => hist
                .iter()
                .filter(|h| h.kind == Kind::Real && !h.revoked)
                .max_by_key(|h| h.version)
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "{full_name} has no active version: every serial is revoked"
                    ))
                })?,
            Some(s) => hist
                .iter()
                .find(|h| h.version == s && h.kind == Kind::Real)
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "{full_name} has no serial {s} (serials: {})",
                        serial_list(&hist)
                    ))
                })?,
        };
        if h.revoked {
            return Ok(Fetched {
                name: name.to_string(),
                serial: h.version,
                active: false,
                payload: None,
            });
        }
        let payload = self.value_of(path, name, h.version).await?;
        Ok(Fetched {
            name: name.to_string(),
            serial: h.version,
            active: true,
            payload: Some(payload),
        })
    }

    pub async fn versions(&self, path: &str, name: &str) -> Result<Vec<VersionInfo>> {
        Ok(self
            .history(path, name)
            .await?
            .into_iter()
            .filter(|h| h.kind == Kind::Real)
            .map(|h| VersionInfo {
                name: name.to_string(),
                serial: h.version,
                active: !h.revoked,
                created: h.created,
                version_id: None,
            })
            .collect())
    }

    pub async fn list(&self, path: &str, all_versions: bool) -> Result<Vec<VersionInfo>> {
        let mut names = Vec::new();
        self.by_path(path, false, "listing", |name, _| names.push(name))
            .await?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let versions = self.versions(path, &name).await?;
            if all_versions {
                out.extend(versions);
            } else if let Some(v) = versions
                .into_iter()
                .filter(|v| v.active)
                .max_by_key(|v| v.serial)
            {
                out.push(v);
            }
        }
        Ok(out)
    }
}

/// What readers currently get through GetParametersByPath.
#[derive(Debug, PartialEq)]
enum Visible {
    /// The payload of this active real serial (itself or a copy of it).
    Active(u64),
    /// Nothing: a tombstone.
    Nothing,
    /// A payload that has since been revoked: must be replaced.
    Stale,
}

fn visible(hist: &[Hist]) -> Visible {
    let Some(latest) = hist.last() else {
        return Visible::Nothing;
    };
    let original = match latest.kind {
        Kind::Real => latest,
        Kind::Copy(k) => match hist.iter().find(|h| h.version == k && h.kind == Kind::Real) {
            Some(o) => o,
            None => return Visible::Stale,
        },
        Kind::Tombstone => return Visible::Nothing,
    };
    if original.revoked {
        Visible::Stale
    } else {
        Visible::Active(original.version)
    }
}

fn serial_list(hist: &[Hist]) -> String {
    let s: Vec<String> = hist
        .iter()
        .filter(|h| h.kind == Kind::Real)
        .map(|h| h.version.to_string())
        .collect();
    if s.is_empty() {
        "none".into()
    } else {
        s.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(version: u64, kind: Kind, revoked: bool) -> Hist {
        Hist {
            version,
            kind,
            revoked,
            created: String::new(),
        }
    }

    #[test]
    fn visible_follows_copies_and_tombstones() {
        assert_eq!(visible(&[h(1, Kind::Real, false)]), Visible::Active(1));
        assert_eq!(visible(&[h(1, Kind::Real, true)]), Visible::Stale);
        assert_eq!(
            visible(&[
                h(1, Kind::Real, false),
                h(2, Kind::Real, true),
                h(3, Kind::Copy(1), false)
            ]),
            Visible::Active(1)
        );
        // The copy's original was revoked later: readers get a revoked payload until repaired.
        assert_eq!(
            visible(&[
                h(1, Kind::Real, true),
                h(2, Kind::Real, true),
                h(3, Kind::Copy(1), false)
            ]),
            Visible::Stale
        );
        assert_eq!(
            visible(&[h(1, Kind::Real, true), h(2, Kind::Tombstone, false)]),
            Visible::Nothing
        );
    }
}
