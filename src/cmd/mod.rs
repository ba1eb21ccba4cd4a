//! One module per command family. Each takes validated configuration and returns an exit
//! code or an error; printing of errors happens once, in `lib.rs`.

pub mod admin;
pub mod dynamo_admin;
pub mod env;
pub mod exec;
pub mod import_credstash;
pub mod import_ssm;
pub mod links;
pub mod setup;
pub mod sync;

use crate::config::StoreConfig;
use crate::error::{Error, ExitCode, Result};
use crate::secret::Secret;
use crate::store::{self, Store};

/// A single-threaded runtime: start-up work is a handful of requests, and one thread keeps
/// RSS small and leaves nothing running when we execve.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Terminating signals go to the main thread only (see `env::install_signal_guard`).
        .on_thread_start(env::block_signals)
        .build()
        .map_err(|e| Error::io(format!("cannot start the async runtime: {e}")))
}

/// `import`: exactly one source; `--context` only with credstash.
pub fn import_source(cfg: &StoreConfig, a: &crate::cli::ImportArgs) -> Result<ExitCode> {
    let ecs = a.from_ecs_secrets_table.as_deref();
    let credstash = a.from_credstash_table.as_deref();
    let ssm = a.from_ssm_path.as_deref();
    if !a.context.is_empty() && credstash.is_none() {
        return Err(Error::usage(
            "--context applies to --from-credstash-table only",
        ));
    }
    match (ecs, credstash, ssm) {
        (Some(t), None, None) => dynamo_admin::import(cfg, t),
        (None, Some(t), None) => import_credstash::run(cfg, t, &a.context),
        (None, None, Some(p)) => import_ssm::run(cfg, p),
        (None, None, None) => Err(Error::usage(
            "import needs a source: --from-ecs-secrets-table T, --from-credstash-table T or --from-ssm-path P",
        )),
        _ => Err(Error::usage(
            "import takes one source at a time: --from-ecs-secrets-table, --from-credstash-table or --from-ssm-path",
        )),
    }
}

pub async fn connect(cfg: &StoreConfig) -> Store {
    let sdk = crate::aws::load(cfg).await;
    store::open(cfg, &sdk)
}

/// Fetch the secrets of every configured path under the overall deadline. A path with no
/// secrets fails (`store::empty`), or with `--allow-empty` is a warning.
pub async fn fetch_paths(cfg: &StoreConfig) -> Result<Vec<(String, Vec<Secret>)>> {
    let what = format!("fetching the secrets of {}", cfg.paths.join(", "));
    let per_path = crate::aws::with_deadline(cfg.timeout, &what, async {
        let store = connect(cfg).await;
        store::read_paths_checked(&store, cfg).await
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
    Ok(per_path)
}
