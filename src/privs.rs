//! `--user USER[:GROUP]`: resolve (names through the image's /etc/passwd and /etc/group,
//! numbers without them), then drop in the order setgroups → setgid → setuid.

use crate::error::{Error, Result};

/// A resolved target identity.
#[derive(Debug, Clone)]
pub struct Target {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolve `USER[:GROUP]` before anything is written, so an unknown user fails early.
pub fn resolve(spec: &str) -> Result<Target> {
    let _ = spec;
    Err(Error::usage("--user is not available yet"))
}

/// Drop to `t`. Never leaves the process half-dropped: any failure is fatal to the caller.
pub fn drop_to(t: &Target) -> Result<()> {
    let _ = t;
    Err(Error::usage("--user is not available yet"))
}
