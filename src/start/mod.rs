//! The start pipeline: from validated configuration to the secrets a process is given, one
//! straight road. Every start takes it — `exec` (once, then execve), `exec --refresh` (the
//! first start and every refresh), `sync` (no command: no environment) and `env` (steps 1–4,
//! then printed). The supervisor (supervise/) only schedules the fetches and applies what
//! the road yields.
//!
//! | step | what                                                      | file                      |
//! |------|-----------------------------------------------------------|---------------------------|
//! | 0    | the `--user` target, the `--files` directory (by callers) | privs.rs, inject/files.rs |
//! | 1    | fetch: paths and references, concurrently, `--timeout`    | start/fetch.rs            |
//! | 2    | expand: `--json-keys`, one secret per key                 | start/expand.rs           |
//! | 3    | merge: references become secrets named by their variable  | start/merge.rs, json_key.rs |
//! | 4    | plan: names, refusals, collisions, `--require`            | start/prepare.rs → inject/env.rs |
//! | 5    | environment: `--file-env`, the child's variables, E2BIG   | start/prepare.rs → inject/env.rs, exec.rs |
//! | 6    | files and templates: rendered, written atomically, stale ones removed | start/prepare.rs → inject/outputs.rs, template.rs, files.rs |
//!
//! Steps 2–4 are `prepare::secrets`; steps 5–6 are `deliver`. Any error stops the road:
//! nothing after the failing step happens (fail closed).

pub mod expand;
pub mod fetch;
mod json_key;
mod merge;
pub mod prepare;

pub use fetch::Fetched;
pub use merge::GROUP;

use crate::config::{Env, EnvConfig, ExecConfig, KeyCase, StoreConfig};
use crate::error::Result;
use crate::inject::env::EnvEntry;
use crate::inject::outputs::Outputs;
use crate::privs::Target;
use crate::refs::Ref;

/// The rules steps 2–4 follow, which `exec`, `sync` and `env` share.
pub struct Rules<'a> {
    pub refs: &'a [Ref],
    pub json_keys: bool,
    pub json_keys_case: KeyCase,
    pub allow_names: &'a [String],
    pub require: &'a [String],
}

impl<'a> From<&'a ExecConfig> for Rules<'a> {
    fn from(c: &'a ExecConfig) -> Self {
        Rules {
            refs: &c.refs,
            json_keys: c.json_keys,
            json_keys_case: c.json_keys_case,
            allow_names: &c.allow_names,
            require: &c.require,
        }
    }
}

impl<'a> From<&'a EnvConfig> for Rules<'a> {
    fn from(c: &'a EnvConfig) -> Self {
        Rules {
            refs: &c.refs,
            json_keys: c.json_keys,
            json_keys_case: c.json_keys_case,
            allow_names: &c.allow_names,
            require: &c.require,
        }
    }
}

/// Step 1 for a start that fetches once (`exec`, `sync`, `env` without `--refresh`), with a
/// start's warnings, on a runtime of its own that is gone when this returns (no thread
/// outlives it into the execve).
pub fn fetch_once(cfg: &StoreConfig, refs: &[Ref]) -> Result<Fetched> {
    let rt = crate::runtime::runtime()?;
    let r = rt.block_on(fetch::fetch(cfg, refs));
    drop(rt);
    r
}

/// The whole road once (`exec` and `sync` without `--refresh`): CMD's environment (empty
/// for `sync`, which has no command), the files written. The plaintext is left only in
/// what is returned.
pub fn once(
    cfg: &ExecConfig,
    env: &Env,
    target: Option<&Target>,
    outputs: &Outputs,
) -> Result<Vec<EnvEntry>> {
    // 1. Fetch.
    let fetched = fetch_once(&cfg.store, &cfg.refs)?;
    // 2. Expand, 3. merge, 4. plan.
    let secrets = prepare::secrets(fetched, cfg)?;
    // 5. The environment, 6. the files and templates.
    deliver(cfg, env, &secrets, target, outputs)
}

/// Steps 5 and 6 for planned secrets: CMD's environment, checked as execve will check it
/// (none when there is no command: `sync`), then the files. Nothing is written when the
/// environment is refused.
pub fn deliver(
    cfg: &ExecConfig,
    env: &Env,
    secrets: &[crate::inject::env::Injection],
    target: Option<&Target>,
    outputs: &Outputs,
) -> Result<Vec<EnvEntry>> {
    // 5. The environment.
    let envp = if cfg.cmd.is_empty() {
        Vec::new()
    } else {
        prepare::environment(cfg, env, secrets, target)?
    };
    // 6. The files and the rendered templates (every template rendered before anything is
    // written), grouped by directory (inject/outputs.rs).
    prepare::write_files(outputs, secrets, target)?;
    Ok(envp)
}
