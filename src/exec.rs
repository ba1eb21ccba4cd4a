//! Becoming the application: reset signal state, find CMD through PATH, execve. No fork, no
//! supervising parent — CMD gets our PID (PID 1 in a container) and its signals directly.

use crate::error::{Error, ExitCode, Result};
use crate::inject::env::{EnvEntry, Injection};
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

/// Linux's limit on one argument or environment string, its NUL included (MAX_ARG_STRLEN,
/// 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Linux's limit on what execve copies (fs/exec.c, `bprm_stack_limits`): a quarter of the
/// stack limit, at most 6 MiB (¾ of _STK_LIM), at least ARG_MAX (128 KiB). The strings
/// (file name, arguments, environment, each with its NUL) and one pointer per argument and
/// variable must fit in it.
pub fn arg_limit() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let stack = if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut rl) } == 0
        && rl.rlim_cur != libc::RLIM_INFINITY
    {
        usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    (stack / 4).clamp(MAX_ARG_STRLEN, 6 << 20)
}

/// Refuse, before anything is written or started, what execve would refuse with E2BIG: one
/// variable over `MAX_ARG_STRLEN`, or everything over `arg_limit()`. The message names the
/// secret (or the sizes), never a value, and says what to do.
pub fn check_size(
    cmd: &[OsString],
    env: &[EnvEntry],
    path_var: Option<&OsStr>,
    secrets: &[Injection],
) -> Result<()> {
    check_size_against(cmd, env, path_var, secrets, arg_limit())
}

fn check_size_against(
    cmd: &[OsString],
    env: &[EnvEntry],
    path_var: Option<&OsStr>,
    secrets: &[Injection],
    limit: usize,
) -> Result<()> {
    let var_name = |e: &[u8]| {
        let n = e.iter().position(|&b| b == b'=').unwrap_or(e.len());
        String::from_utf8_lossy(&e[..n]).into_owned()
    };
    let secret_of = |name: &str| secrets.iter().find(|s| s.env_name == name);
    let instead = "put the secrets in files instead: --files DIR --no-env (add --file-env \
                   for <NAME>_FILE variables)";
    for e in env {
        if e.len() > MAX_ARG_STRLEN {
            let name = var_name(e);
            let what = match secret_of(&name) {
                Some(s) => format!("secret {} (as {name})", s.full_name()),
                None => format!(
                    "the environment variable {}",
                    crate::inject::env::printable(&name)
                ),
            };
            return Err(Error::data(format!(
                "{what} is {} bytes, over Linux's limit of {MAX_ARG_STRLEN} bytes for one \
                 environment variable, so the command could not start: {instead}",
                e.len()
            )));
        }
    }
    // The longest name execve may be given for CMD (one candidate per PATH entry).
    let program = cmd.first().map(|c| c.as_bytes()).unwrap_or_default();
    let filename = if program.contains(&b'/') {
        program.len()
    } else {
        let path = path_var
            .map(|p| p.as_bytes())
            .unwrap_or(DEFAULT_PATH.as_bytes());
        path.split(|&b| b == b':')
            .map(|d| d.len().max(1) + 1 + program.len())
            .max()
            .unwrap_or(program.len())
    } + 1;
    let strings: usize = filename
        + cmd.iter().map(|a| a.len() + 1).sum::<usize>()
        + env.iter().map(|e| e.len()).sum::<usize>();
    let pointers = (cmd.len().max(1) + env.len()) * std::mem::size_of::<usize>();
    let total = strings + pointers;
    if total <= limit {
        return Ok(());
    }
    let mut in_env: Vec<(usize, String)> = env
        .iter()
        .filter_map(|e| {
            let name = var_name(e);
            secret_of(&name).map(|s| (e.len(), s.full_name()))
        })
        .collect();
    let secret_bytes: usize = in_env.iter().map(|(n, _)| n).sum();
    crate::sort::sort_by(&mut in_env, |a, b| b.0.cmp(&a.0));
    let largest: Vec<String> = in_env
        .iter()
        .take(3)
        .map(|(n, name)| format!("{name} {n} bytes"))
        .collect();
    Err(Error::data(format!(
        "the command's environment and arguments would be {total} bytes, over Linux's limit \
         of {limit} bytes for starting a program (a quarter of the stack limit, `ulimit -s`, \
         at most 6 MiB), so it could not start; {} secret{} in the environment take \
         {secret_bytes} bytes{}: {instead}",
        in_env.len(),
        if in_env.len() == 1 { "" } else { "s" },
        if largest.is_empty() {
            String::new()
        } else {
            format!(" (largest: {})", largest.join(", "))
        },
    )))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::env::{child_env, plan};
    use crate::secret::{Payload, Secret};

    fn envp(values: &[(&str, usize)]) -> (Vec<Injection>, Vec<EnvEntry>) {
        let secrets = plan(
            vec![(
                "/p".into(),
                values
                    .iter()
                    .map(|(n, len)| Secret {
                        name: n.to_string(),
                        serial: 1,
                        payload: Payload::new(vec![b'x'; *len]),
                    })
                    .collect(),
            )],
            &[],
            &[],
        )
        .unwrap();
        let env = child_env(&[], &secrets, &[], &[], true, false, &mut |_| {});
        (secrets, env)
    }

    #[test]
    fn one_value_over_the_string_limit_is_named() {
        let cmd = vec![OsString::from("/bin/true")];
        let (s, env) = envp(&[("SMALL", 10), ("HUGE", MAX_ARG_STRLEN)]);
        let e = check_size_against(&cmd, &env, None, &s, 6 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("secret /p/HUGE (as HUGE) is 131078 bytes"),
            "{e}"
        );
        assert!(
            e.contains("--files DIR --no-env") && !e.contains("xxx"),
            "{e}"
        );
        // Just under: fine.
        let (s, env) = envp(&[("HUGE", MAX_ARG_STRLEN - 6)]);
        assert!(check_size_against(&cmd, &env, None, &s, 6 << 20).is_ok());
    }

    #[test]
    fn the_total_is_checked_with_pointers_and_the_file_name() {
        let cmd = vec![OsString::from("sh"), OsString::from("-c")];
        let (s, env) = envp(&[("A", 1000), ("B", 2000), ("C", 3000)]);
        let strings: usize = env.iter().map(|e| e.len()).sum();
        let path = OsStr::new("/usr/local/bin:/bin");
        // "/usr/local/bin/sh\0" + "sh\0" + "-c\0" + the entries + 5 pointers.
        let exact = 18 + 3 + 3 + strings + 5 * 8;
        assert!(check_size_against(&cmd, &env, Some(path), &s, exact).is_ok());
        let e = check_size_against(&cmd, &env, Some(path), &s, exact - 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("would be {exact} bytes")), "{e}");
        assert!(
            e.contains("3 secrets in the environment take 6009 bytes"),
            "{e}"
        );
        assert!(
            e.contains("largest: /p/C 3003 bytes, /p/B 2003 bytes"),
            "{e}"
        );
        assert!(arg_limit() >= MAX_ARG_STRLEN && arg_limit() <= 6 << 20);
    }
}
