//! What a start checks and builds, for the first start and for every refresh alike: the
//! plan (names, refusals, collisions, `--require`), the `--file-env` variables, the child's
//! environment and its size, then the files (templates rendered first, see
//! `inject::outputs`). `exec` without `--refresh` and `sync` use the
//! same steps.

use super::{Fetched, Rules};
use crate::config::{Env, ExecConfig, StoreConfig};
use crate::error::Result;
use crate::inject::env::{child_env, plan, EnvEntry, ExtraVar, Injection};
use crate::inject::files;
use crate::inject::outputs::Outputs;
use crate::privs::Target;
use crate::secret::Secret;

/// The fetched secrets as a start injects them: JSON objects expanded (`--json-keys`),
/// references merged in under their variables' names (`--resolve-refs`), then planned.
pub fn secrets<'a>(fetched: Fetched, rules: impl Into<Rules<'a>>) -> Result<Vec<Injection>> {
    planned(fetched, &rules.into())
}

fn planned(fetched: Fetched, cfg: &Rules) -> Result<Vec<Injection>> {
    let (per_path, ref_values) = fetched;
    let per_path = if cfg.json_keys {
        super::expand::expand_all(per_path, cfg.json_keys_case)?
    } else {
        per_path
    };
    let per_path = super::merge::merge(
        per_path,
        cfg.refs,
        ref_values,
        cfg.json_keys.then_some(cfg.json_keys_case),
        cfg.allow_names,
    )?;
    plan(per_path, cfg.allow_names, cfg.require)
}

/// The paths that had no secrets, for the warning a start gives (and a refresh that applies
/// such a set gives again: an empty path is not an error, but it is worth a line).
pub fn empty_paths(per_path: &[(String, Vec<Secret>)]) -> Vec<String> {
    per_path
        .iter()
        .filter(|(_, s)| s.is_empty())
        .map(|(p, _)| p.clone())
        .collect()
}

pub fn warn_empty(paths: &[String], cfg: &StoreConfig) {
    for path in paths {
        crate::log::warn(format_args!(
            "no secrets under {path} (check the path and the {} backend)",
            cfg.backend.as_str()
        ));
    }
}

/// CMD's environment, checked as exec checks it (nothing is written yet).
pub fn environment(
    cfg: &ExecConfig,
    env: &Env,
    secrets: &[Injection],
    target: Option<&Target>,
) -> Result<Vec<EnvEntry>> {
    let mut extras: Vec<ExtraVar> = Vec::new();
    if let Some(dir) = &cfg.files {
        if cfg.file_env && !cfg.no_env {
            files::check_file_env_names(secrets)?;
        }
        if cfg.file_env {
            extras = files::file_env_vars(dir, secrets)?;
        }
    }
    let forced: Vec<ExtraVar> = target
        .iter()
        .map(|t| ExtraVar {
            name: "HOME".into(),
            value: t.home.clone().into_bytes(),
        })
        .collect();
    let mut warn = |msg: String| crate::log::warn(format_args!("{msg}"));
    // The variables that held references are replaced, never kept beside their values.
    let inherited = crate::refs::without_refs(env.vars(), &cfg.refs);
    let envp = child_env(
        &inherited,
        secrets,
        &extras,
        &forced,
        !cfg.no_env,
        cfg.no_override,
        &mut warn,
    );
    // What execve would refuse (E2BIG) is refused now, before a file is written.
    crate::exec::check_size(&cfg.cmd, &envp, env.get_os("PATH"), secrets)?;
    Ok(envp)
}

/// `--files` and `--template`: every template rendered, then every file written atomically,
/// the files of secrets (and templates) that are gone removed.
pub fn write_files(
    outputs: &Outputs,
    secrets: &[Injection],
    target: Option<&Target>,
) -> Result<()> {
    outputs.write(secrets, target.map(|t| (t.uid, t.gid)))
}
