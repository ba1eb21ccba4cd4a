//! The async runtime every AWS request runs on, and the signal mask of its threads.

use crate::error::{Error, Result};

/// A single-threaded runtime: start-up work is a handful of requests, and one thread keeps
/// RSS small and leaves nothing running when we execve.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Terminating signals go to the main thread only (see `cmd::env::install_signal_guard`).
        .on_thread_start(block_signals)
        .build()
        .map_err(|e| Error::io(format!("cannot start the async runtime: {e}")))
}

/// The signals whose default action ends the process and that a caller (a `timeout`, an
/// orchestrator, a terminal) may send while secrets are being fetched. SIGKILL cannot be
/// caught: a caller that uses it must check the exit status.
pub const TERMINATING: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGALRM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Block the terminating signals in the calling thread: in the runtime's threads (so a
/// signal is always handled by the main thread, whose writes it must not interleave with),
/// and in the main thread once the output is ready.
pub fn block_signals() {
    // SAFETY: plain signal-mask calls on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in TERMINATING {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
