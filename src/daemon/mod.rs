//! The sidecar REST API. Not built yet.

use crate::cli::DaemonArgs;
use crate::config::{Env, StoreConfig};
use crate::error::{Error, ExitCode, Result};

pub fn run(_cfg: &StoreConfig, _args: &DaemonArgs, _env: &Env) -> Result<ExitCode> {
    Err(Error::usage("daemon is not available yet"))
}
