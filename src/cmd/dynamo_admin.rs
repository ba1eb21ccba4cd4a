//! dynamodb-only administration: rotate-key and import. Not built yet.

use crate::config::StoreConfig;
use crate::error::{Error, ExitCode, Result};

pub fn rotate_key(_cfg: &StoreConfig) -> Result<ExitCode> {
    Err(Error::usage("rotate-key is not available yet"))
}

pub fn import(_cfg: &StoreConfig, _table: &str) -> Result<ExitCode> {
    Err(Error::usage("import is not available yet"))
}
