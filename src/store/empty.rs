//! A path that yields no secret. A mistyped `--path`, the wrong `AWS_REGION` or the wrong
//! table all look the same from here: an empty answer. Starting the application with
//! nothing would hide the mistake, so it is an error naming the path, the backend and the
//! region, unless `--allow-empty` (`ECS_SECRETS_ALLOW_EMPTY=1`) says an empty path is
//! expected (then the callers warn).
//!
//! Each path given must yield something: with `--path /a --path /b`, a typo in `/b` is the
//! same mistake as a typo in a single path, even though `/a` has secrets.

use crate::config::{Backend, StoreConfig};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// `Err` for the first path with no secret, unless `cfg.allow_empty`.
pub fn check(per_path: &[(String, Vec<Secret>)], cfg: &StoreConfig, region: &str) -> Result<()> {
    if cfg.allow_empty {
        return Ok(());
    }
    match per_path.iter().find(|(_, s)| s.is_empty()) {
        Some((path, _)) => Err(Error::not_found(message(path, cfg, region))),
        None => Ok(()),
    }
}

/// `no secrets under /prod/grafana (backend ssm, region eu-west-1): …`.
pub fn message(path: &str, cfg: &StoreConfig, region: &str) -> String {
    let place = match cfg.backend {
        Backend::Dynamodb => format!("backend dynamodb, table {}, region {region}", cfg.table),
        b => format!("backend {}, region {region}", b.as_str()),
    };
    let nested = match cfg.backend {
        Backend::Dynamodb => "",
        _ if cfg.recursive => "",
        _ => ", or --recursive for nested names",
    };
    format!(
        "no secrets under {path} ({place}): check the path{nested}, AWS_REGION and --backend; \
         pass --allow-empty (ECS_SECRETS_ALLOW_EMPTY=1) if an empty path is expected"
    )
}
