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

// Every command family runs its requests on the one kind of runtime and store connection.
pub use crate::runtime::runtime;
pub use crate::store::connect;

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
