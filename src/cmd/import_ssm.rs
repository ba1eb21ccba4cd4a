//! `import --from-ssm-path P`: the newest active version of every secret under the SSM
//! Parameter Store path P, nested ones included (`P/sub/name` becomes the name `sub/name`,
//! which a dynamodb path holds as it is), re-created under the dynamodb `--path` with the
//! same names and serial = SSM version.
//!
//! Revocation as the ssm backend records it (see `store::ssm`) is honoured through that
//! backend's own reader: a revoked version is never imported, the internal copies and
//! tombstones a revocation writes are never serials, and a name whose every version is
//! revoked is skipped with a warning. Values are all read and checked before the first write.

use crate::error::{Error, ExitCode, Result};
use crate::inject::env::printable;
use crate::secret::Payload;
use crate::store::dynamodb::MAX_PAYLOAD;
use crate::store::ssm::SsmStore;
use std::collections::BTreeMap;

pub fn run(cfg: &crate::config::StoreConfig, source: &str) -> Result<ExitCode> {
    let source = crate::config::validate_path(source)
        .map_err(|e| Error::usage(format!("--from-ssm-path: {e}")))?;
    let path = cfg.path();
    let what = format!("importing the SSM path {source} into {path}");
    let written = std::sync::Mutex::new(Vec::new());
    let r = super::dynamo_admin::with_dynamo_sdk(cfg, &what, async |dest, sdk| {
        let client = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(sdk)
                .interceptor(crate::aws::Attempts { debug: cfg.debug })
                .build(),
        );
        let ssm = SsmStore::new(client, None, true);
        let versions = read(&ssm, &source).await?;
        super::import_credstash::write(dest, path, &versions, &written).await
    });
    super::dynamo_admin::finish_import(r, written, &format!("SSM path {source}"))
}

/// For each name under `source`, its newest active serial and value, sorted by name.
async fn read(ssm: &SsmStore, source: &str) -> Result<Vec<(String, u64, Payload)>> {
    // Every real version of every name (copies and tombstones are resolved by the reader).
    let mut newest: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for v in ssm.list(source, true).await? {
        let entry = newest.entry(v.name).or_insert(None);
        if v.active && entry.is_none_or(|s| v.serial > s) {
            *entry = Some(v.serial);
        }
    }
    let mut out = Vec::new();
    for (raw, serial) in newest {
        let shown = format!("{source}/{}", printable(&raw));
        let Some(serial) = serial else {
            crate::log::warn(format_args!(
                "{shown}: every version is revoked: not imported"
            ));
            continue;
        };
        let name = crate::config::validate_name(&raw).map_err(|e| {
            Error::data(format!(
                "{shown} cannot be imported: {e}; rename it in Parameter Store first; nothing imported"
            ))
        })?;
        let fetched = ssm.fetch(source, &raw, Some(serial)).await?;
        let Some(payload) = fetched.payload.filter(|_| fetched.active) else {
            return Err(Error::data(format!(
                "{shown} serial {serial} was revoked during the import; nothing imported: run it again"
            )));
        };
        if payload.is_empty() || payload.as_bytes().contains(&0) || payload.len() > MAX_PAYLOAD {
            return Err(Error::data(format!(
                "{shown} serial {serial}: its value ({} bytes) cannot be stored here (empty, NUL byte, or over {MAX_PAYLOAD} bytes); nothing imported",
                payload.len()
            )));
        }
        out.push((name, serial, payload));
    }
    Ok(out)
}
