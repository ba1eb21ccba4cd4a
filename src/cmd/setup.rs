//! setup: create what the backend needs and print IAM policies. Not built yet.

use crate::config::StoreConfig;
use crate::error::{Error, ExitCode, Result};

pub fn run(
    _cfg: &StoreConfig,
    _fetch_roles: &[String],
    _create_principals: &[String],
    _cloudformation: bool,
) -> Result<ExitCode> {
    Err(Error::usage("setup is not available yet"))
}
