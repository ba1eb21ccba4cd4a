//! `env`: print the secrets for `eval`, docker compose or a JSON reader — all or nothing.

use crate::config::{EnvConfig, Format};
use crate::error::{ExitCode, Result};
use crate::inject::{env::plan, output};
use std::io::Write;

pub fn run(cfg: EnvConfig) -> Result<ExitCode> {
    let result = render(&cfg);
    let mut stdout = std::io::stdout().lock();
    match result {
        Ok(buf) => {
            stdout
                .write_all(&buf)
                .and_then(|_| stdout.flush())
                .map_err(|e| crate::error::Error::io(format!("cannot write to stdout: {e}")))?;
            Ok(ExitCode::Success)
        }
        Err(e) => {
            if cfg.format == Format::Shell {
                let _ = stdout.write_all(output::SHELL_FAILURE.as_bytes());
                let _ = stdout.flush();
            }
            Err(e)
        }
    }
}

fn render(cfg: &EnvConfig) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let rt = super::runtime()?;
    let (mut per_path, ref_values) = rt.block_on(crate::refs::fetch(&cfg.store, &cfg.refs))?;
    if cfg.json_keys {
        per_path = crate::inject::json::expand_all(per_path)?;
    }
    let per_path = crate::refs::merge(
        per_path,
        &cfg.refs,
        ref_values,
        cfg.json_keys,
        &cfg.allow_names,
    )?;
    let secrets = plan(per_path, &cfg.allow_names, &cfg.require)?;
    output::render(cfg.format, &secrets)
}
