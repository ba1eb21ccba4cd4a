//! One module per command family. Each takes validated configuration and returns an exit
//! code or an error; printing of errors happens once, in `lib.rs`.

pub mod admin;
pub mod dynamo_admin;
pub mod env;
pub mod exec;
pub mod links;
pub mod setup;
pub mod sync;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
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

pub async fn connect(cfg: &StoreConfig) -> Store {
    let sdk = crate::aws::load(cfg).await;
    store::open(cfg, &sdk)
}

/// Fetch the secrets of every configured path under the overall deadline. Warns (does not
/// fail) for a path with no secrets.
pub async fn fetch_paths(cfg: &StoreConfig) -> Result<Vec<(String, Vec<Secret>)>> {
    let what = format!("fetching the secrets of {}", cfg.paths.join(", "));
    let per_path = crate::aws::with_deadline(cfg.timeout, &what, async {
        let store = connect(cfg).await;
        store::read_paths(&store, &cfg.paths).await
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
