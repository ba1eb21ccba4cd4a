//! dynamodb-only administration: rotate-key and import.

use crate::config::{Backend, StoreConfig};
use crate::error::{Error, ExitCode, Result};
use crate::store::dynamodb::DynamoStore;
use crate::store::Store;
use std::io::Write;

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serializes")
}

/// Run `f` on the dynamodb store under the deadline; other backends are a usage error.
fn with_dynamo<T>(
    cfg: &StoreConfig,
    command: &str,
    what: &str,
    f: impl AsyncFnOnce(&DynamoStore, usize) -> Result<T>,
) -> Result<T> {
    if cfg.backend != Backend::Dynamodb {
        return Err(Error::usage(format!(
            "{command} applies to the dynamodb backend only: pass --backend dynamodb (or set ECS_SECRETS_BACKEND=dynamodb)"
        )));
    }
    let rt = super::runtime()?;
    rt.block_on(crate::aws::with_deadline(cfg.timeout, what, async {
        match super::connect(cfg).await {
            Store::Dynamodb(d) => f(&d, crate::store::dynamodb::MAX_PAYLOAD).await,
            Store::Ssm(_) | Store::SecretsManager(_) => unreachable!("backend checked above"),
        }
    }))
}

/// Like `with_dynamo`, for imports that read another source too: `f` also gets the SDK
/// configuration the store's clients were built from.
pub(super) fn with_dynamo_sdk<T>(
    cfg: &StoreConfig,
    what: &str,
    f: impl AsyncFnOnce(&DynamoStore, &aws_config::SdkConfig) -> Result<T>,
) -> Result<T> {
    if cfg.backend != Backend::Dynamodb {
        return Err(Error::usage(
            "import applies to the dynamodb backend only: pass --backend dynamodb (or set ECS_SECRETS_BACKEND=dynamodb)",
        ));
    }
    let rt = super::runtime()?;
    rt.block_on(crate::aws::with_deadline(cfg.timeout, what, async {
        let sdk = crate::aws::load(cfg).await;
        match crate::store::open(cfg, &sdk) {
            Store::Dynamodb(d) => f(&d, &sdk).await,
            Store::Ssm(_) | Store::SecretsManager(_) => unreachable!("backend checked above"),
        }
    }))
}

/// The end of every import: one line per version written — also when it failed or its
/// deadline passed, so that what an interrupted import wrote is known (running it again
/// completes it) — then its error, if any.
pub(super) fn finish_import(
    r: Result<()>,
    written: std::sync::Mutex<Vec<(String, u64)>>,
    source: &str,
) -> Result<ExitCode> {
    let written = written.into_inner().unwrap_or_else(|e| e.into_inner());
    match r {
        Ok(()) => {
            print_imported(&written, source)?;
            Ok(ExitCode::Success)
        }
        Err(e) => {
            let lines: String = written
                .iter()
                .map(|(name, serial)| {
                    format!("{{\"name\":{},\"serial\":{serial}}}\n", json_str(name))
                })
                .collect();
            // The error is what matters: a closed stdout does not hide it.
            let _ = print(&lines);
            Err(e)
        }
    }
}

/// One line per imported version; a warning when there was nothing to import.
pub(super) fn print_imported(imported: &[(String, u64)], source: &str) -> Result<()> {
    if imported.is_empty() {
        crate::log::warn(format_args!("{source}: nothing imported"));
    }
    let lines: String = imported
        .iter()
        .map(|(name, serial)| format!("{{\"name\":{},\"serial\":{serial}}}\n", json_str(name)))
        .collect();
    print(&lines)
}

fn print(lines: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(lines.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))
}

pub fn rotate_key(cfg: &StoreConfig) -> Result<ExitCode> {
    let path = cfg.path();
    let what = format!("rotating the data key of {path}");
    let (generation, resealed) = with_dynamo(cfg, "rotate-key", &what, async |d, _| {
        d.rotate_key(path).await
    })?;
    print(&format!(
        "{{\"path\":{},\"generation\":{generation},\"resealed\":{resealed}}}\n",
        json_str(path)
    ))?;
    Ok(ExitCode::Success)
}

pub fn import(cfg: &StoreConfig, table: &str) -> Result<ExitCode> {
    let path = cfg.path();
    if table.is_empty() {
        return Err(Error::usage(
            "--from-ecs-secrets-table needs the original table's name",
        ));
    }
    let what = format!("importing {table} into {path}");
    let written = std::sync::Mutex::new(Vec::new());
    let r = with_dynamo(cfg, "import", &what, async |d, max| {
        d.import_legacy(path, table, max, &written).await
    });
    finish_import(r, written, table)
}
