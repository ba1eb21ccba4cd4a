//! Secrets Manager backend. A secret of path `/prod/grafana` named `DB_PASSWORD` is the
//! Secrets Manager secret `prod/grafana/DB_PASSWORD`.
//!
//! Serials: a version this tool writes has the version id `ecs-secrets-serial-<N>` (N zero-
//! padded to 20 digits; the first, `-<random hex>` appended), set through ClientRequestToken. Secrets Manager refuses a second,
//! different version under a token already used for that secret, so deriving the token from
//! the serial makes every write a conditional write: of two writers choosing serial N, one
//! wins and the other re-reads and takes N+1. Versions written by others (console, rotation
//! Lambdas, RDS) have other ids: they have no serial.
//!
//! Active and revoked: a version is active while it carries a staging label and is not
//! marked revoked. Revoking first marks the version revoked, durably, with a tag on the
//! secret (`ecs-secrets-revoked:<version id>`): labels alone cannot say it, because Secrets
//! Manager puts AWSPREVIOUS back on whatever version AWSCURRENT leaves, and a concurrent
//! revoke reading before ours may move AWSCURRENT onto our version. Then every label comes
//! off every marked version: AWSCURRENT moves to the newest version that carries a label of
//! its own (not only AWSPENDING: a rotation's untested value is never promoted) and is not
//! marked, or, when none is certain, to a tombstone version that readers skip. The revoke
//! re-reads until no marked version keeps a label (see `write::settle`). Secrets Manager
//! cannot delete a single version: anyone allowed `secretsmanager:GetSecretValue` with a
//! version id can still read a revoked version until Secrets Manager ages it out. `setup`
//! therefore denies the readers reads by version id (README "Secrets Manager").
//!
//! Reading a path is `read` (BatchGetSecretValue pages); admin operations are `write`.

mod read;
mod write;

use crate::error::{Error, Result};
use crate::secret::{Fetched, Payload, Secret, VersionInfo};
use aws_smithy_types::date_time::Format as DateFormat;

/// Secrets Manager's limit for SecretString and SecretBinary.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// BatchGetSecretValue's page maximum.
const PAGE: i32 = 20;
const SERIAL_PREFIX: &str = "ecs-secrets-serial-";
const TOMBSTONE_PREFIX: &str = "ecs-secrets-tombstone-";
/// The key of the secret's tag marking one version revoked: this prefix + the version id.
const REVOKED_TAG: &str = "ecs-secrets-revoked:";
/// The label a rotation Lambda puts on the version it is testing.
pub const PENDING: &str = "AWSPENDING";
/// The value of a tombstone: what AWSCURRENT holds once every version is revoked.
pub const TOMBSTONE: &str = "ecs-secrets:revoked:no-active-version";
pub const CURRENT: &str = "AWSCURRENT";

#[derive(Clone)]
pub struct SmStore {
    client: aws_sdk_secretsmanager::Client,
    kms_key: Option<String>,
    recursive: bool,
}

/// The version id (and ClientRequestToken) of serial `n`: 39 characters, within the
/// 32–64 Secrets Manager asks of a token.
fn serial_id(n: u64) -> String {
    format!("{SERIAL_PREFIX}{n:020}")
}

/// The serial of a version id we wrote; `None` for versions written by others. The first
/// version's id has a random suffix (`-<hex>`, see `write::create`).
fn serial_of(id: &str) -> Option<u64> {
    let rest = id.strip_prefix(SERIAL_PREFIX)?;
    let (digits, tail) = rest.split_at_checked(20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(tail.is_empty() || tail.starts_with('-')) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

fn is_tombstone(id: &str) -> bool {
    id.starts_with(TOMBSTONE_PREFIX)
}

/// `/prod/grafana` → `prod/grafana/`, the name prefix of the path's secrets.
fn prefix(path: &str) -> String {
    format!("{}/", path.trim_start_matches('/'))
}

fn secret_id(path: &str, name: &str) -> String {
    format!("{}{name}", prefix(path))
}

fn date(d: Option<&aws_smithy_types::DateTime>) -> String {
    d.and_then(|d| d.fmt(DateFormat::DateTime).ok())
        .unwrap_or_default()
}

/// One version of a secret, as ListSecretVersionIds shows it.
#[derive(Debug, Clone)]
struct Ver {
    id: String,
    stages: Vec<String>,
    created: String,
    created_at: Option<aws_smithy_types::DateTime>,
    /// Marked revoked by a tag on the secret.
    revoked: bool,
}

impl Ver {
    fn serial(&self) -> Option<u64> {
        serial_of(&self.id)
    }
    fn active(&self) -> bool {
        !self.stages.is_empty() && !is_tombstone(&self.id) && !self.revoked
    }
    /// Whether AWSCURRENT may move here when the version holding it is revoked: active
    /// through a label other than AWSPENDING (a rotation's version is untested until its
    /// Lambda makes it current itself).
    fn can_inherit(&self) -> bool {
        self.active() && self.stages.iter().any(|s| s != PENDING)
    }
    fn current(&self) -> bool {
        self.stages.iter().any(|s| s == CURRENT)
    }
    fn info(&self, name: &str) -> VersionInfo {
        VersionInfo {
            name: name.to_string(),
            serial: self.serial().unwrap_or(0),
            active: self.active(),
            created: self.created.clone(),
            version_id: self.serial().is_none().then(|| self.id.clone()),
        }
    }
}

fn bad_payload() -> Error {
    Error::usage("that payload is reserved by ecs-secrets to mark revoked secrets")
}

pub(crate) fn check_payload(p: &Payload) -> Result<()> {
    if p.as_bytes() == TOMBSTONE.as_bytes() {
        return Err(bad_payload());
    }
    Ok(())
}

impl SmStore {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        kms_key: Option<String>,
        recursive: bool,
    ) -> Self {
        SmStore {
            client,
            kms_key,
            recursive,
        }
    }

    pub async fn read_path(&self, path: &str) -> Result<Vec<Secret>> {
        read::read_path(self, path).await
    }

    pub async fn create(&self, path: &str, name: &str, payload: &Payload) -> Result<u64> {
        write::create(self, path, name, payload).await
    }

    pub async fn revoke(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        write::revoke(self, path, name, serial).await
    }

    /// Rotation's second half: every other version loses its labels, so only `serial` is
    /// left for readers. Returns the serials revoked (versions of others are de-labelled too,
    /// and named on stderr).
    pub async fn revoke_older(&self, path: &str, name: &str, serial: u64) -> Result<Vec<u64>> {
        write::revoke_older(self, path, name, serial).await
    }

    pub async fn fetch(&self, path: &str, name: &str, serial: Option<u64>) -> Result<Fetched> {
        read::fetch(self, path, name, serial).await
    }

    pub async fn versions(&self, path: &str, name: &str) -> Result<Vec<VersionInfo>> {
        let vs = self.vers(path, name).await?;
        Ok(vs.iter().map(|v| v.info(name)).collect())
    }

    pub async fn list(&self, path: &str, all_versions: bool) -> Result<Vec<VersionInfo>> {
        read::list(self, path, all_versions).await
    }

    /// The names of the path's secrets, without reading their versions.
    pub async fn names(&self, path: &str) -> Result<Vec<String>> {
        read::names(self, path).await
    }

    /// Every version of one secret, deprecated ones included, oldest first; empty when the
    /// secret does not exist.
    async fn vers(&self, path: &str, name: &str) -> Result<Vec<Ver>> {
        let id = secret_id(path, name);
        // DescribeSecret first: it says cleanly whether the secret exists and whether it is
        // scheduled for deletion (moto answers ListSecretVersionIds of a missing secret
        // with HTTP 500, which the SDK would retry until the deadline).
        let revoked: Vec<String> = match self.client.describe_secret().secret_id(&id).send().await {
            Ok(d) if d.deleted_date.is_some() => {
                return Err(Error::not_found(format!(
                    "{id} is scheduled for deletion in Secrets Manager: restore it (aws secretsmanager restore-secret) to use it again"
                )))
            }
            Ok(d) => d
                .tags
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.key?.strip_prefix(REVOKED_TAG).map(String::from))
                .collect(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(Vec::new())
            }
            Err(e) => {
                return Err(crate::aws::error(
                    format!("describing {id} in Secrets Manager"),
                    e,
                ))
            }
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_secret_version_ids()
                .secret_id(&id)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(token.take())
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => {
                    return Err(crate::aws::error(
                        format!("reading the versions of {id} in Secrets Manager"),
                        e,
                    ))
                }
            };
            for v in resp.versions.unwrap_or_default() {
                let Some(vid) = v.version_id else { continue };
                out.push(Ver {
                    revoked: revoked.contains(&vid),
                    id: vid,
                    stages: v.version_stages.unwrap_or_default(),
                    created: date(v.created_date.as_ref()),
                    created_at: v.created_date,
                });
            }
            match resp.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        // Oldest first: by creation time, then by serial (versions created in one second).
        crate::sort::sort_by(&mut out, |a, b| {
            let ka = (
                a.created_at.map(|d| (d.secs(), d.subsec_nanos())),
                a.serial(),
            );
            let kb = (
                b.created_at.map(|d| (d.secs(), d.subsec_nanos())),
                b.serial(),
            );
            ka.cmp(&kb)
        });
        Ok(out)
    }
}

impl SmStore {
    /// The region the clients send to, for messages.
    pub fn region(&self) -> Option<String> {
        self.client
            .config()
            .region()
            .map(|r| r.as_ref().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_carry_serials_and_others_do_not() {
        assert_eq!(serial_id(7), "ecs-secrets-serial-00000000000000000007");
        assert!((32..=64).contains(&serial_id(u64::MAX).len()));
        assert_eq!(serial_of(&serial_id(7)), Some(7));
        assert_eq!(serial_of(&serial_id(u64::MAX)), Some(u64::MAX));
        assert_eq!(serial_of("ecs-secrets-serial-7"), None);
        assert_eq!(serial_of(&format!("{}-0a1b", serial_id(1))), Some(1));
        assert_eq!(serial_of(&format!("{}0", serial_id(1))), None);
        assert_eq!(serial_of(&serial_id(0)), None);
        assert_eq!(serial_of("b8f9e1c2-0000-4000-8000-000000000000"), None);
        assert_eq!(prefix("/prod/grafana"), "prod/grafana/");
        assert_eq!(secret_id("/prod/grafana", "DB"), "prod/grafana/DB");
    }
}
