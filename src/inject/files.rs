//! `--files DIR`: each secret written to DIR/<NAME>, mode 0400, owned by the `--user`
//! target, on tmpfs/ramfs only (unless `--allow-disk`), without following symlinks, replaced
//! atomically.

use super::env::{ExtraVar, Injection};
use crate::error::{Error, Result};
use std::path::Path;

/// Write every secret into `dir`; returns the `<NAME>_FILE` variables when `file_env`.
pub fn write_all(
    dir: &Path,
    secrets: &[Injection],
    owner: Option<(u32, u32)>,
    allow_disk: bool,
    file_env: bool,
) -> Result<Vec<ExtraVar>> {
    let _ = (dir, secrets, owner, allow_disk, file_env);
    Err(Error::usage("--files is not available yet"))
}
