//! `exec`: fetch, check, (write files,) drop privileges, become CMD. Any failure before the
//! execve means CMD is never started.

use crate::config::{Env, ExecConfig};
use crate::error::{ExitCode, Result};
use crate::inject::outputs::Outputs;
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
    // A --files or --template directory that would be refused, or a template that cannot
    // be read or parsed, is refused before anything is fetched (and SRC is read with the
    // privileges ecs-secrets was started with).
    let outputs = Outputs::prepare(&cfg)?;

    // The same road as every start and refresh of a supervised CMD (start/). The plaintext
    // now lives only in `envp`: the fetched copies are wiped.
    let envp = crate::start::once(&cfg, env, target.as_ref(), &outputs)?;

    if let Some(t) = &target {
        privs::drop_to(t)?;
    }
    let code = crate::exec::exec(&cfg.cmd, &envp, env.get_os("PATH"));
    Ok(code)
}
