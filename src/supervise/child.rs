//! Starting CMD as a child: fork + execve, with everything the child needs prepared before
//! the fork. The supervisor has other threads (the refresher), and after fork(2) in a
//! threaded process only async-signal-safe calls are allowed — so the child allocates
//! nothing, locks nothing, formats nothing: it sets its process group, drops privileges with
//! raw system calls, restores signals and tries the prepared candidates.
//!
//! Exit statuses when CMD cannot start are exec's: 127 not found, 126 not executable (or
//! privileges could not be dropped). The supervisor cannot tell them from CMD exiting 127 by
//! itself, and does not need to: either way CMD has exited, and so does the supervisor.

use crate::error::{Error, Result};
use crate::inject::env::EnvEntry;
use crate::privs::Target;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// CMD, resolved once: its arguments, the files execve will try, who it runs as, and the
/// messages the child may have to print.
pub struct Program {
    argv: Vec<CString>,
    candidates: Vec<CString>,
    target: Option<Target>,
    not_found: Vec<u8>,
    denied: Vec<u8>,
    failed: Vec<u8>,
    no_drop: Vec<u8>,
    /// The `--on-change` signal: back to its default action in CMD, so that a signal this
    /// process was started with ignored (nohup, some init systems) can still be handled —
    /// a shell cannot trap a signal that was ignored when it started.
    on_change: Option<i32>,
}

impl Program {
    pub fn new(cmd: &[OsString], path_var: Option<&OsStr>, target: Option<Target>) -> Result<Self> {
        let argv: Vec<CString> = cmd
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::usage("the command line contains a NUL byte"))?;
        let program = cmd[0].as_bytes();
        let shown = crate::inject::env::printable(&cmd[0].to_string_lossy());
        let searched = !program.contains(&b'/');
        let candidates: Vec<CString> = if !searched {
            vec![argv[0].clone()]
        } else {
            path_var
                .map(|p| p.as_bytes())
                .unwrap_or(DEFAULT_PATH.as_bytes())
                .split(|&b| b == b':')
                .filter_map(|dir| {
                    let dir = if dir.is_empty() { &b"."[..] } else { dir };
                    let mut c = dir.to_vec();
                    c.push(b'/');
                    c.extend_from_slice(program);
                    CString::new(c).ok()
                })
                .collect()
        };
        let line = |s: String| format!("ecs-secrets: error: {s}\n").into_bytes();
        Ok(Program {
            argv,
            candidates,
            not_found: line(format!(
                "{shown}: command not found{}",
                if searched { " in PATH" } else { "" }
            )),
            denied: line(format!(
                "cannot execute {shown}: Permission denied (check its mode and the user it \
                 runs as)"
            )),
            failed: line(format!("cannot execute {shown}: execve failed with errno ")),
            no_drop: line(format!(
                "cannot drop privileges to uid {} gid {} for {shown}: the container needs the \
                 SETUID and SETGID capabilities; the command was not started",
                target.as_ref().map_or(0, |t| t.uid),
                target.as_ref().map_or(0, |t| t.gid)
            )),
            target,
            on_change: None,
        })
    }

    /// CMD receives `sig` when the secrets change: it starts with that signal's default
    /// action rather than an inherited "ignore".
    pub fn with_on_change_signal(mut self, sig: i32) -> Self {
        self.on_change = Some(sig);
        self
    }

    /// Fork and exec CMD with `env`. Returns the child's pid; an exec failure shows up as
    /// the child's exit status (127/126), after the child printed why.
    pub fn spawn(&self, env: &[EnvEntry]) -> Result<i32> {
        // Everything the child touches is built here, before the fork.
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = Vec::with_capacity(env.len() + 1);
        for e in env {
            // Each entry ends in its one NUL; a NUL inside cannot be passed on.
            if e.last() != Some(&0) || e[..e.len() - 1].contains(&0) {
                return Err(Error::data(
                    "an environment variable for the command contains a NUL byte",
                ));
            }
            envp.push(e.as_ptr().cast());
        }
        envp.push(std::ptr::null());
        let groups: Vec<libc::gid_t> = self
            .target
            .as_ref()
            .map(|t| t.groups.clone())
            .unwrap_or_default();
        let parent = std::process::id() as libc::pid_t;

        // SAFETY: fork; the child below calls only async-signal-safe functions on memory
        // prepared above, and always ends in execve or _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io(format!(
                "cannot start the command: fork failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        if pid > 0 {
            return Ok(pid);
        }
        // SAFETY: (the child) see above.
        unsafe { self.in_child(&argv, &envp, &groups, parent) }
    }

    /// The child's side, up to execve. Never returns.
    unsafe fn in_child(
        &self,
        argv: &[*const libc::c_char],
        envp: &[*const libc::c_char],
        groups: &[libc::gid_t],
        parent: libc::pid_t,
    ) -> ! {
        // Its own process group, so a terminal's signals (which go to the foreground group)
        // are not delivered twice — once by the kernel and once forwarded — and, on a
        // terminal, that group in the foreground (SIGTTOU is still blocked here, so
        // tcsetpgrp from the background is allowed).
        libc::setpgid(0, 0);
        if libc::isatty(0) == 1 {
            libc::tcsetpgrp(0, libc::getpid());
        }
        if let Some(t) = &self.target {
            let ok = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                && libc::setresgid(t.gid, t.gid, t.gid) == 0
                && libc::setresuid(t.uid, t.uid, t.uid) == 0
                && (t.uid == 0 || libc::setuid(0) != 0);
            if !ok {
                write_all(&self.no_drop);
                libc::_exit(126);
            }
        }
        // CMD dies with its supervisor (set after the identity change, which clears it); the
        // parent may already be gone.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::getppid() != parent {
            libc::_exit(126);
        }
        // As for exec: SIGPIPE back to default (Rust ignores it), an empty mask; the
        // --on-change signal back to default too (see `on_change`).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if let Some(sig) = self.on_change {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

        let mut denied = false;
        for c in &self.candidates {
            libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr());
            match *libc::__errno_location() {
                libc::ENOENT | libc::ENOTDIR => continue,
                libc::EACCES => {
                    denied = true;
                    continue;
                }
                other => {
                    write_all(&self.failed);
                    write_number(other);
                    libc::_exit(126);
                }
            }
        }
        if denied {
            write_all(&self.denied);
            libc::_exit(126);
        }
        write_all(&self.not_found);
        libc::_exit(127)
    }
}

fn write_all(b: &[u8]) {
    let mut rest = b;
    while !rest.is_empty() {
        // SAFETY: write(2) from a buffer we own.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// `N\n` to stderr without allocating.
fn write_number(n: i32) {
    let mut buf = [0u8; 12];
    let mut i = buf.len() - 1;
    buf[i] = b'\n';
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    write_all(&buf[i..]);
}

/// A wait status as an exit status: the code, or 128+N for signal N.
pub fn exit_status(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Reap every child that has exited (CMD's orphans reach us when we are PID 1); returns
/// CMD's wait status if CMD was among them.
pub fn reap(cmd: i32) -> Option<i32> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a status out-pointer we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == cmd {
            found = Some(status);
        }
    }
}

/// Send `sig` to CMD (its pid only, not its group: CMD decides what its own children get,
/// as it would if it were PID 1 itself).
pub fn send(pid: i32, sig: i32) {
    // SAFETY: kill(2) on our own child.
    if unsafe { libc::kill(pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        // ESRCH: CMD is exiting (a zombie still has its pid, so this is not a reused pid).
        if e.raw_os_error() != Some(libc::ESRCH) {
            crate::log::warn(format_args!(
                "cannot send {} to the command: {e}",
                super::signals::name(sig)
            ));
        }
    }
}
