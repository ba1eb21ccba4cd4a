//! Becoming the application: reset signal state, find CMD through PATH, execve. No fork, no
//! supervising parent — CMD gets our PID (PID 1 in a container) and its signals directly.

use crate::error::ExitCode;
use crate::inject::env::EnvEntry;
use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Undo what the Rust runtime changed: it ignores SIGPIPE at start-up, and an ignored signal
/// survives execve. Other dispositions are left as inherited (so `nohup` keeps working); the
/// signal mask is cleared.
pub fn reset_signals() {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL has no handler to be unsafe about.
    let _ = unsafe { sigaction(Signal::SIGPIPE, &dfl) };
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Replace this process with `cmd`. Returns only on failure, with the exit status to use
/// (127: not found, 126: found but not executable) after printing why.
pub fn exec(cmd: &[OsString], env: &[EnvEntry], path_var: Option<&OsStr>) -> ExitCode {
    let argv: Vec<CString> = match cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
    {
        Ok(v) => v,
        Err(_) => {
            crate::log::error(format_args!("the command line contains a NUL byte"));
            return ExitCode::CannotExecute;
        }
    };
    // Each entry ends in its one NUL; a NUL inside (never from a store, which refuses them)
    // fails here without naming or showing the value.
    let envp: Vec<&CStr> = match env
        .iter()
        .map(|e| CStr::from_bytes_with_nul(e))
        .collect::<Result<_, _>>()
    {
        Ok(v) => v,
        Err(_) => {
            crate::log::error(format_args!(
                "an environment variable for the command contains a NUL byte"
            ));
            return ExitCode::CannotExecute;
        }
    };
    let program = cmd[0].as_bytes();
    let shown = crate::inject::env::printable(&cmd[0].to_string_lossy());

    reset_signals();

    let candidates: Vec<Vec<u8>> = if program.contains(&b'/') {
        vec![program.to_vec()]
    } else {
        let path = path_var
            .map(|p| p.as_bytes())
            .unwrap_or(DEFAULT_PATH.as_bytes());
        path.split(|&b| b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { &b"."[..] } else { dir };
                let mut c = dir.to_vec();
                c.push(b'/');
                c.extend_from_slice(program);
                c
            })
            .collect()
    };

    let mut denied: Option<Errno> = None;
    for c in candidates {
        let Ok(file) = CString::new(c) else { continue };
        // execve only returns on failure.
        let err = nix::unistd::execve(&file, &argv, &envp).unwrap_err();
        match err {
            Errno::ENOENT | Errno::ENOTDIR => continue,
            Errno::EACCES => {
                denied = Some(err);
                continue;
            }
            other => {
                crate::log::error(format_args!("cannot execute {shown}: {}", other.desc()));
                return ExitCode::CannotExecute;
            }
        }
    }
    match denied {
        Some(e) => {
            crate::log::error(format_args!(
                "cannot execute {shown}: {} (check its mode and the user it runs as)",
                e.desc()
            ));
            ExitCode::CannotExecute
        }
        None => {
            crate::log::error(format_args!(
                "{shown}: command not found{}",
                if program.contains(&b'/') {
                    String::new()
                } else {
                    " in PATH".to_string()
                }
            ));
            ExitCode::NotFound
        }
    }
}
