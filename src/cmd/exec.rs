//! `exec`: fetch, check, (write files,) drop privileges, become CMD. Any failure before the
//! execve means CMD is never started.

use crate::config::{Env, ExecConfig};
use crate::error::{ExitCode, Result};
use crate::inject::env::{child_env, plan, ExtraVar};
use crate::inject::files;
use crate::privs;

pub fn run(cfg: ExecConfig, env: &Env) -> Result<ExitCode> {
    if let Some(r) = cfg.refresh {
        return crate::supervise::run(cfg, r, env);
    }
    // Resolve the target user first: an unknown user fails before anything is fetched or
    // written.
    let target = match &cfg.user {
        Some(spec) => Some(privs::resolve(spec)?),
        None => None,
    };
    // A --files directory that would be refused is refused before anything is fetched.
    if let Some(dir) = &cfg.files {
        files::check_dir(dir, cfg.allow_disk)?;
    }

    let per_path = {
        let rt = super::runtime()?;
        let r = rt.block_on(super::fetch_paths(&cfg.store));
        // Dropping the runtime here stops its threads before the execve.
        drop(rt);
        r?
    };
    let secrets = plan(per_path, &cfg.allow_names, &cfg.require)?;

    let mut extras: Vec<ExtraVar> = Vec::new();
    if let Some(dir) = &cfg.files {
        if cfg.file_env && !cfg.no_env {
            files::check_file_env_names(&secrets)?;
        }
        if cfg.file_env {
            extras = files::file_env_vars(dir, &secrets)?;
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
    let envp = child_env(
        env.vars(),
        &secrets,
        &extras,
        &forced,
        !cfg.no_env,
        cfg.no_override,
        &mut warn,
    );
    // What execve would refuse (E2BIG) is refused now, before a file is written.
    crate::exec::check_size(&cfg.cmd, &envp, env.get_os("PATH"), &secrets)?;
    if let Some(dir) = &cfg.files {
        let owner = target.as_ref().map(|t| (t.uid, t.gid));
        files::write_all(dir, &secrets, owner, cfg.allow_disk)?;
    }
    // The plaintext now lives only in `envp`; wipe the fetched copies.
    drop(secrets);

    if let Some(t) = &target {
        privs::drop_to(t)?;
    }
    let code = crate::exec::exec(&cfg.cmd, &envp, env.get_os("PATH"));
    Ok(code)
}
