//! Where secrets live. `Store` is a closed set of backends (an enum, so the async methods
//! need no boxing); each backend takes its AWS clients in `new()`, so tests can hand it
//! clients pointed anywhere.

pub mod collide;
pub mod dynamodb;
pub mod empty;
pub mod secretsmanager;
pub mod ssm;

use crate::config::{Backend, StoreConfig};
use crate::error::{Error, Result};
use crate::secret::{Fetched, Payload, Secret, VersionInfo};
use aws_config::SdkConfig;

#[derive(Clone)]
pub enum Store {
    Ssm(ssm::SsmStore),
    Dynamodb(dynamodb::DynamoStore),
    SecretsManager(secretsmanager::SmStore),
}

fn attempts(cfg: &StoreConfig) -> crate::aws::Attempts {
    crate::aws::Attempts { debug: cfg.debug }
}

/// Load the SDK configuration and open the configured backend.
pub async fn connect(cfg: &StoreConfig) -> Store {
    let sdk = crate::aws::load(cfg).await;
    open(cfg, &sdk)
}

/// Build the AWS clients a backend needs from the shared SDK config.
pub fn open(cfg: &StoreConfig, sdk: &SdkConfig) -> Store {
    match cfg.backend {
        Backend::Ssm => {
            let b = aws_sdk_ssm::config::Builder::from(sdk).interceptor(attempts(cfg));
            Store::Ssm(ssm::SsmStore::new(
                aws_sdk_ssm::Client::from_conf(b.build()),
                cfg.kms_key.clone(),
                cfg.recursive,
            ))
        }
        Backend::Dynamodb => {
            let d = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(attempts(cfg));
            let k = aws_sdk_kms::config::Builder::from(sdk).interceptor(attempts(cfg));
            Store::Dynamodb(dynamodb::DynamoStore::new(
                aws_sdk_dynamodb::Client::from_conf(d.build()),
                aws_sdk_kms::Client::from_conf(k.build()),
                cfg.table.clone(),
                cfg.kms_key.clone(),
            ))
        }
        Backend::SecretsManager => {
            let b = aws_sdk_secretsmanager::config::Builder::from(sdk).interceptor(attempts(cfg));
            Store::SecretsManager(secretsmanager::SmStore::new(
                aws_sdk_secretsmanager::Client::from_conf(b.build()),
                cfg.kms_key.clone(),
                cfg.recursive,
            ))
        }
    }
}

impl Store {
    /// The region its clients send to, for messages (`unset` when none was configured).
    pub fn region(&self) -> String {
        let r = match self {
            Store::Ssm(s) => s.region(),
            Store::Dynamodb(d) => d.region(),
            Store::SecretsManager(m) => m.region(),
        };
        r.unwrap_or_else(|| "unset".into())
    }

    /// Every secret of one path: for each name, its newest active version.
    pub async fn read_path(&self, path: &str) -> Result<Vec<Secret>> {
        let secrets = match self {
            Store::Ssm(s) => s.read_path(path).await,
            Store::Dynamodb(d) => d.read_path(path).await,
            Store::SecretsManager(m) => m.read_path(path).await,
        }?;
        for s in &secrets {
            check_read(path, &s.name, s.serial, &s.payload)?;
        }
        Ok(secrets)
    }

    /// Store a new version; returns its serial. Refused, before writing, when the name's
    /// environment name collides with another active secret of the path (see `collide`).
    pub async fn create(&self, path: &str, name: &str, payload: &Payload) -> Result<u64> {
        self.check_payload(payload)?;
        self.check_collision(path, name).await?;
        let serial = match self {
            Store::Ssm(s) => s.create(path, name, payload).await,
            Store::Dynamodb(d) => d.create(path, name, payload).await,
            Store::SecretsManager(m) => m.create(path, name, payload).await,
        }?;
        self.undo_if_collided(path, name, serial).await?;
        Ok(serial)
    }

    /// Revoke one version. An unknown name or serial is `Error::NotFound` and changes nothing.
    pub async fn revoke(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        match self {
            Store::Ssm(s) => s.revoke(path, name, serial).await,
            Store::Dynamodb(d) => d.revoke(path, name, serial).await,
            Store::SecretsManager(m) => m.revoke(path, name, serial).await,
        }
    }

    /// The newest active version, or the given serial (revoked: no payload).
    pub async fn fetch(&self, path: &str, name: &str, serial: Option<u64>) -> Result<Fetched> {
        let fetched = match self {
            Store::Ssm(s) => s.fetch(path, name, serial).await,
            Store::Dynamodb(d) => d.fetch(path, name, serial).await,
            Store::SecretsManager(m) => m.fetch(path, name, serial).await,
        }?;
        if let Some(p) = &fetched.payload {
            check_read(path, &fetched.name, fetched.serial, p)?;
        }
        Ok(fetched)
    }

    /// Every version of one name, oldest first; empty when the name does not exist.
    pub async fn versions(&self, path: &str, name: &str) -> Result<Vec<VersionInfo>> {
        match self {
            Store::Ssm(s) => s.versions(path, name).await,
            Store::Dynamodb(d) => d.versions(path, name).await,
            Store::SecretsManager(m) => m.versions(path, name).await,
        }
    }

    /// The versions under a path: every version, or only each name's newest active one.
    pub async fn list(&self, path: &str, all_versions: bool) -> Result<Vec<VersionInfo>> {
        match self {
            Store::Ssm(s) => s.list(path, all_versions).await,
            Store::Dynamodb(d) => d.list(path, all_versions).await,
            Store::SecretsManager(m) => m.list(path, all_versions).await,
        }
    }

    /// Rotation's second half: revoke every active version older than `serial`; returns the
    /// serials revoked. On secretsmanager every other version loses its labels.
    pub async fn revoke_older(&self, path: &str, name: &str, serial: u64) -> Result<Vec<u64>> {
        if let Store::SecretsManager(m) = self {
            return m.revoke_older(path, name, serial).await;
        }
        let mut revoked = Vec::new();
        for v in self.versions(path, name).await? {
            if v.active && v.serial < serial {
                self.revoke(path, name, v.serial).await?;
                revoked.push(v.serial);
            }
        }
        Ok(revoked)
    }

    /// The largest payload the backend stores.
    pub fn max_payload(&self) -> usize {
        match self {
            Store::Ssm(_) => ssm::MAX_PAYLOAD,
            Store::Dynamodb(_) => dynamodb::MAX_PAYLOAD,
            Store::SecretsManager(_) => secretsmanager::MAX_PAYLOAD,
        }
    }

    /// Refuse a payload that cannot be stored, before anything is written.
    pub fn check_payload(&self, payload: &Payload) -> Result<()> {
        if payload.is_empty() {
            return Err(Error::usage("the payload is empty: a secret needs a value"));
        }
        if payload.as_bytes().contains(&0) {
            return Err(Error::usage(
                "the payload contains a NUL byte, which no environment variable can carry",
            ));
        }
        if payload.len() > self.max_payload() {
            // Not its size: a payload from a file or stdin is read only up to one byte
            // past the limit, so its length here is not the length of the input.
            return Err(Error::usage(format!(
                "the payload is larger than {} bytes, the most this backend stores",
                self.max_payload()
            )));
        }
        match self {
            Store::Ssm(_) => ssm::check_payload(payload)?,
            Store::SecretsManager(_) => secretsmanager::check_payload(payload)?,
            Store::Dynamodb(_) => {}
        }
        Ok(())
    }
}

/// Every value read goes through here (`read_path`, `fetch`): a value that another tool
/// wrote with a NUL byte inside cannot be an environment variable (execve would cut it, a
/// shell's `eval` silently drops it), so it fails the read naming the secret, whatever the
/// backend or the consumer (exec, env, files, fetch, the daemon).
fn check_read(path: &str, name: &str, serial: u64, payload: &Payload) -> Result<()> {
    if payload.as_bytes().contains(&0) {
        return Err(Error::data(format!(
            "secret {path}/{} (serial {serial}) contains a NUL byte, which no environment \
             variable can carry (it was not written by ecs-secrets, which refuses such \
             values): store a new version without it, or revoke that version",
            crate::names::printable(name)
        )));
    }
    Ok(())
}

/// `read_paths` of every configured path, then a path that yields no secret is an error
/// (unless `--allow-empty`; see `empty`). Every start and every refresh reads through here.
pub async fn read_paths_checked(
    store: &Store,
    cfg: &StoreConfig,
) -> Result<Vec<(String, Vec<Secret>)>> {
    let per_path = read_paths(store, &cfg.paths).await?;
    empty::check(&per_path, cfg, &store.region())?;
    Ok(per_path)
}

/// Read several paths concurrently; results in the order of `paths`.
pub async fn read_paths(store: &Store, paths: &[String]) -> Result<Vec<(String, Vec<Secret>)>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, p) in paths.iter().enumerate() {
        let (store, p) = (store.clone(), p.clone());
        set.spawn(async move { (i, store.read_path(&p).await.map(|s| (p, s))) });
    }
    let mut out: Vec<Option<(String, Vec<Secret>)>> = (0..paths.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| Error::data(format!("internal error: {e}")))?;
        out[i] = Some(r?);
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every path joined"))
        .collect())
}
