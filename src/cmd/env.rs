//! `env`: print the secrets for `eval`, docker compose or a JSON reader — all or nothing.

use crate::config::EnvConfig;
use crate::error::{Error, ExitCode, Result};
use crate::inject::{env::plan, output};
use std::ffi::OsString;
use std::io::Write;

pub fn run(cfg: EnvConfig) -> Result<ExitCode> {
    let buf = render(&cfg)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&buf)
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))?;
    Ok(ExitCode::Success)
}

fn render(cfg: &EnvConfig) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let rt = super::runtime()?;
    let per_path = rt.block_on(super::fetch_paths(&cfg.store))?;
    let secrets = plan(per_path, &cfg.allow_names, &cfg.require)?;
    output::render(cfg.format, &secrets)
}

/// Whether a failure of this invocation (arguments after argv[0], mode first) must print
/// `output::SHELL_FAILURE`: it is `env`, and its format is shell or could not be read
/// (missing, unknown, repeated, or beyond an argument that could not be parsed). Only a
/// format given exactly once as `dotenv` or `json`, before any mistake, is trusted.
pub fn wants_failure_line(args: &[OsString]) -> bool {
    // The command is the first argument that is not a top-level switch.
    let first = args.iter().find(|a| !a.to_string_lossy().starts_with('-'));
    if first.is_none_or(|a| a != "env") {
        return false;
    }
    let strs: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let walked = crate::argv::walk_partial(&strs);
    if walked.command.as_deref() != Some("env") {
        return true;
    }
    let formats: Vec<&str> = walked
        .options
        .iter()
        .filter(|(f, _)| f == "--format")
        .map(|(_, v)| v.as_str())
        .collect();
    !matches!(formats[..], ["dotenv"] | ["json"])
}

/// Write the failure line to stdout (best effort: there is nothing else to do if stdout is
/// gone).
pub fn print_failure_line() {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(output::SHELL_FAILURE.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(a: &[&str]) -> bool {
        wants_failure_line(&a.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn failure_line_unless_a_non_shell_format_was_read() {
        assert!(wants(&["env"]));
        assert!(wants(&["env", "--format", "shell"]));
        assert!(wants(&["env", "--format", "yaml"]));
        assert!(wants(&["env", "--format"]));
        assert!(wants(&["env", "--format", "json", "--format", "json"]));
        assert!(wants(&["env", "--bogus", "--format", "json"]));
        assert!(wants(&["env", "--require", "--format", "json"]));
        assert!(wants(&["--version", "env", "--path", "/a/b"]));
        assert!(!wants(&["env", "--format", "json"]));
        assert!(!wants(&["env", "--format=dotenv", "--bogus"]));
        assert!(!wants(&["exec", "--", "env"]));
        assert!(!wants(&["create", "--name", "env"]));
    }
}
