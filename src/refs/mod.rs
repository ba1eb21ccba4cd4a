//! `--resolve-refs`: inherited variables whose whole value is a reference (ECS's
//! `valueFrom` forms, `ssm:/…`, `secretsmanager:…`; see `parse`) are replaced by what they
//! refer to, keeping their names.
//!
//! Requests are at the floor: one GetParameters per 10 distinct parameters and one
//! BatchGetSecretValue per 20 distinct secrets in each region, plus one GetSecretValue per
//! distinct pinned version; all of them, and the path reads, run concurrently under the one
//! `--timeout`. A resolved reference is then a secret named by its variable, so `--require`,
//! `--files`, `--no-env`, refused names and `--json-keys` (when no json-key was given) apply
//! as to path secrets. Any failure names the variable and the reference (references are not
//! secret; values are).
//!
//! Hooks: `collect` (config/refs.rs, with the reference syntax), `resolve` (here, called
//! by the start pipeline's fetch, start/fetch.rs), `merge` (start/merge.rs, before
//! `inject::env::plan`), `without_refs` (here: the inherited environment of `exec`). `sync`
//! uses the same four.

mod resolve;
mod sm;
mod ssm;

pub use crate::config::refs::{collect, Ref};
pub use resolve::resolve;
pub(crate) use resolve::{with_hint, Labels};

// The reference syntax lives with the configuration that collects it (config/refs.rs).
use crate::config::refs as parse;
use std::ffi::OsString;

/// The inherited environment without the variables that held references: they are
/// replaced by their values (or, with `--no-env`, only by files).
pub fn without_refs(vars: &[(OsString, OsString)], refs: &[Ref]) -> Vec<(OsString, OsString)> {
    vars.iter()
        .filter(|(k, _)| !refs.iter().any(|r| k.to_str() == Some(r.var.as_str())))
        .cloned()
        .collect()
}
