//! `env`: print the secrets for `eval`, docker compose or a JSON reader — all or nothing.

use crate::config::EnvConfig;
use crate::error::{Error, ExitCode, Result};
use crate::inject::output;
use crate::runtime::{block_signals, TERMINATING};
use std::ffi::OsString;
use std::io::Write;

pub fn run(cfg: EnvConfig) -> Result<ExitCode> {
    let buf = render(&cfg)?;
    // From here on a terminating signal must not cut the output short (a cut quote would
    // swallow the failure line): they wait, blocked, until the process has exited.
    block_signals();
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&buf)
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))?;
    Ok(ExitCode::Success)
}

fn render(cfg: &EnvConfig) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    // Steps 1–4 of the start pipeline (start/), then the text instead of a process.
    let fetched = crate::start::fetch_once(&cfg.store, &cfg.refs)?;
    let secrets = crate::start::prepare::secrets(fetched, cfg)?;
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

/// A signal ending `env` before its output is written leaves the failure line, not an
/// empty stdout that `eval` would take as "nothing to do".
pub fn install_signal_guard() {
    extern "C" fn on_signal(sig: libc::c_int) {
        const WHY: &[u8] =
            b"ecs-secrets: error: stopped by a signal before the secrets were printed\n";
        let line = output::SHELL_FAILURE.as_bytes();
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffers are static.
        unsafe {
            libc::write(2, WHY.as_ptr().cast(), WHY.len());
            libc::write(1, line.as_ptr().cast(), line.len());
            libc::_exit(128 + sig);
        }
    }
    for sig in TERMINATING {
        // SAFETY: installs a handler that only calls async-signal-safe functions. A signal
        // the caller set to be ignored stays ignored.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
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
