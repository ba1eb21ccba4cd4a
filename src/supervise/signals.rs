//! Signals for a supervising process: everything catchable is blocked in every thread and
//! taken synchronously with sigtimedwait(2) by the main thread, so no handler runs at an
//! awkward moment and nothing is lost while CMD is being started or stopped.
//!
//! Left unblocked: the signals the kernel sends for our own faults (SEGV, BUS, FPE, ILL,
//! TRAP, SYS) — blocking those would hide a crash —, KILL/STOP, which cannot be caught, and
//! PIPE, which the Rust runtime ignores: blocked, the SIGPIPE of our own write to a closed
//! stderr would be taken and forwarded, and kill CMD.

use std::time::Duration;

const SYNCHRONOUS: [i32; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// A set of signals taken by [`wait`].
#[derive(Clone, Copy)]
pub struct Set(libc::sigset_t);

impl Set {
    /// Every signal a supervisor takes (and forwards): all catchable ones but the
    /// synchronous faults.
    pub fn catchable() -> Set {
        // SAFETY: sigfillset/sigdelset write into the set we own.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut s);
            for sig in SYNCHRONOUS
                .into_iter()
                .chain([libc::SIGKILL, libc::SIGSTOP])
            {
                libc::sigdelset(&mut s, sig);
            }
            Set(s)
        }
    }

    /// Just these signals.
    pub fn of(sigs: &[i32]) -> Set {
        // SAFETY: as above.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            for &sig in sigs {
                libc::sigaddset(&mut s, sig);
            }
            Set(s)
        }
    }

    /// Block the set in the calling thread; threads started afterwards inherit the mask.
    /// Call before any other thread exists, so no thread can take a signal by default
    /// action.
    pub fn block(&self) {
        // SAFETY: pthread_sigmask with a valid set and no old-set out-pointer.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut());
        }
    }
}

/// SIGCHLD back to its default (an inherited SIG_IGN would make the kernel reap CMD for us
/// and lose its exit status).
pub fn default_sigchld() {
    // SAFETY: installing SIG_DFL has no handler to be unsafe about.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

/// Wait for one signal of `set` for at most `timeout` (forever with `None`). `None` on
/// timeout or interruption.
pub fn wait(set: &Set, timeout: Option<Duration>) -> Option<i32> {
    // SAFETY: valid set; the siginfo out-pointer may be null; the timespec lives on the
    // stack for the call.
    let r = unsafe {
        match timeout {
            None => libc::sigwaitinfo(&set.0, std::ptr::null_mut()),
            Some(t) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                libc::sigtimedwait(&set.0, std::ptr::null_mut(), &ts)
            }
        }
    };
    (r > 0).then_some(r)
}

/// Wakes the main thread out of [`wait`] from another thread, with a SIGCHLD aimed at that
/// thread alone: it is never forwarded, and a spurious one only makes the main loop reap
/// (nothing) and look at its inbox.
#[derive(Clone, Copy)]
pub struct Waker(libc::pthread_t);

// SAFETY: a pthread_t is an identifier; pthread_kill may be called from any thread.
unsafe impl Send for Waker {}

impl Waker {
    /// For the calling thread.
    pub fn current() -> Waker {
        // SAFETY: pthread_self has no preconditions.
        Waker(unsafe { libc::pthread_self() })
    }

    pub fn wake(&self) {
        // SAFETY: the main thread lives as long as the process (it is the one that exits).
        unsafe {
            libc::pthread_kill(self.0, libc::SIGCHLD);
        }
    }
}

/// The name of a signal for messages (`SIGTERM`), or its number.
pub fn name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Signals whose default action is to ignore or stop rather than to terminate.
pub fn is_harmless(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD
            | libc::SIGWINCH
            | libc::SIGURG
            | libc::SIGCONT
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
    )
}
