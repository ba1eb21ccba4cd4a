//! `exec`: fetch, check, (write files,) drop privileges, become CMD. Any failure before the
//! execve means CMD is never started.

use crate::config::{Env, ExecConfig};
use crate::error::{ExitCode, Result};
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

    // The same road as every start and refresh of a supervised CMD (start/). The plaintext
    // now lives only in `envp`: the fetched copies are wiped.
    let envp = crate::start::once(&cfg, env, target.as_ref())?;

    if let Some(t) = &target {
        privs::drop_to(t)?;
    }
    let code = crate::exec::exec(&cfg.cmd, &envp, env.get_os("PATH"));
    Ok(code)
}
