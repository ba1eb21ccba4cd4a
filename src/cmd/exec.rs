//! `exec`: fetch, check, (write files,) drop privileges, become CMD. Any failure before the
//! execve means CMD is never started.

use crate::config::{Env, ExecConfig};
use crate::error::{ExitCode, Result};
use crate::inject::outputs::Outputs;
use crate::privs;
use crate::supervise::prepare;

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

    let fetched = {
        let rt = super::runtime()?;
        let r = rt.block_on(crate::refs::fetch(&cfg.store, &cfg.refs));
        // Dropping the runtime here stops its threads before the execve.
        drop(rt);
        r?
    };
    // The same checks and steps as every start and refresh of a supervised CMD.
    let secrets = prepare::secrets(fetched, &cfg)?;
    let envp = prepare::environment(&cfg, env, &secrets, target.as_ref())?;
    prepare::write_files(&outputs, &secrets, target.as_ref())?;
    // The plaintext now lives only in `envp`; wipe the fetched copies.
    drop(secrets);

    if let Some(t) = &target {
        privs::drop_to(t)?;
    }
    let code = crate::exec::exec(&cfg.cmd, &envp, env.get_os("PATH"));
    Ok(code)
}
