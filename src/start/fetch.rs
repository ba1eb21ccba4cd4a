//! Step 1 of a start: the secrets of every path and, with `--resolve-refs`, every
//! reference's value, concurrently, under the one `--timeout`.

use crate::config::StoreConfig;
use crate::error::Result;
use crate::refs::Ref;
use crate::secret::{Payload, Secret};
use crate::store::{self, Store};

/// What a fetch brings: the secrets of each path, and each reference's value.
pub type Fetched = (Vec<(String, Vec<Secret>)>, Vec<Payload>);

/// A start's fetch, with a start's warnings (a path without secrets; nothing to fetch at
/// all).
pub async fn fetch(cfg: &StoreConfig, refs: &[Ref]) -> Result<Fetched> {
    if refs.is_empty() && cfg.paths.is_empty() {
        crate::log::warn(format_args!(
            "--resolve-refs: no path given and no variable holds a reference: nothing to fetch"
        ));
        return Ok((Vec::new(), Vec::new()));
    }
    let fetched = again(cfg, refs, &mut None).await?;
    super::prepare::warn_empty(&super::prepare::empty_paths(&fetched.0), cfg);
    Ok(fetched)
}

/// The same fetch without warnings (a refresh repeats them only when it applies a new
/// set). Without references the store connection is kept in `store` from one call to the
/// next (the refresher's thread lives as long as the process).
pub async fn again(cfg: &StoreConfig, refs: &[Ref], store: &mut Option<Store>) -> Result<Fetched> {
    if !refs.is_empty() {
        return with_refs(cfg, refs).await;
    }
    let what = format!("fetching the secrets of {}", cfg.paths.join(", "));
    crate::aws::with_deadline(cfg.timeout, &what, async {
        if store.is_none() {
            *store = Some(store::connect(cfg).await);
        }
        let s = store.as_ref().expect("connected above");
        store::read_paths_checked(s, cfg).await
    })
    .await
    .map(|per_path| (per_path, Vec::new()))
}

/// The paths and the references, concurrently, under the one `--timeout`.
async fn with_refs(cfg: &StoreConfig, refs: &[Ref]) -> Result<Fetched> {
    let what = if cfg.paths.is_empty() {
        format!("resolving {} reference(s)", refs.len())
    } else {
        format!(
            "fetching the secrets of {} and {} reference(s)",
            cfg.paths.join(", "),
            refs.len()
        )
    };
    crate::aws::with_deadline(cfg.timeout, &what, async {
        let sdk = crate::aws::load(cfg).await;
        let paths = async {
            if cfg.paths.is_empty() {
                return Ok(Vec::new());
            }
            let store = store::open(cfg, &sdk);
            store::read_paths_checked(&store, cfg).await
        };
        tokio::try_join!(paths, crate::refs::resolve(&sdk, cfg, refs))
    })
    .await
}
