//! Signals, from one table: every signal's fate in the supervisor (`exec --refresh`), in
//! `sync --refresh` and in the daemon ([`TABLE`]). The sets each of them blocks, ignores
//! and takes are built from it, and docs/security.md shows it (a test compares the two).
//!
//! A supervising process blocks everything it takes in every thread and takes it
//! synchronously with sigtimedwait(2) in the main thread, so no handler runs at an awkward
//! moment and nothing is lost while CMD is being started or stopped.
//!
//! Never blocked: the signals the kernel sends for our own faults (SEGV, BUS, FPE, ILL,
//! TRAP, SYS) — blocking those would hide a crash —, KILL/STOP, which cannot be caught, and
//! PIPE, which is ignored. A blocked signal stays pending even when ignored: blocked, the
//! SIGPIPE of our own write to a closed stderr would be taken and forwarded, and kill CMD.

use std::time::Duration;

/// What one process does with a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Taken (blocked, then sigtimedwait) and sent on to CMD's pid.
    Forwarded,
    /// Taken and acted on by ecs-secrets itself; it never reaches CMD.
    Taken,
    /// Ignored (SIG_IGN, never blocked): discarded when raised, never pending, never
    /// forwarded.
    Ignored,
    /// The kernel's default action (faults the kernel raises for a crash; KILL and STOP,
    /// which cannot be caught; signals a tool has no use for), or ignored when ecs-secrets
    /// was started with it ignored (nohup).
    Default,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Forwarded => "forwarded",
            Fate::Taken => "taken",
            Fate::Ignored => "ignored",
            Fate::Default => "default",
        }
    }
}

/// Which process of ecs-secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `exec --refresh`.
    Supervisor,
    /// `sync --refresh`.
    Sync,
    /// `daemon`.
    Daemon,
}

/// The signals of one row: one, or the real-time range (known only at run time).
#[derive(Debug, Clone, Copy)]
pub enum Sigs {
    One(i32),
    RealTime,
}

/// One signal (or the real-time range) and its fate in each tool.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub sigs: Sigs,
    pub name: &'static str,
    pub supervisor: Fate,
    pub sync: Fate,
    pub daemon: Fate,
    /// From outside, it asks the supervisor's CMD to stop: once one is taken, in whatever
    /// phase, CMD is never started again.
    pub stopping: bool,
    /// Its default action is not to terminate: taken before CMD started, it is ignored
    /// (any other signal then ends ecs-secrets as it would have without a supervisor).
    pub harmless: bool,
    pub note: &'static str,
}

impl Row {
    pub fn fate(&self, tool: Tool) -> Fate {
        match tool {
            Tool::Supervisor => self.supervisor,
            Tool::Sync => self.sync,
            Tool::Daemon => self.daemon,
        }
    }

    pub fn numbers(&self) -> Vec<i32> {
        match self.sigs {
            Sigs::One(s) => vec![s],
            Sigs::RealTime => (libc::SIGRTMIN()..=libc::SIGRTMAX()).collect(),
        }
    }
}

const fn row(
    sig: i32,
    name: &'static str,
    [supervisor, sync, daemon]: [Fate; 3],
    stopping: bool,
    harmless: bool,
    note: &'static str,
) -> Row {
    Row {
        sigs: Sigs::One(sig),
        name,
        supervisor,
        sync,
        daemon,
        stopping,
        harmless,
        note,
    }
}

use Fate::{Default as D, Forwarded as F, Ignored as I, Taken as T};

const FAULT: &str = "the kernel's signal for a crash: never blocked, so a real crash is not \
                     hidden. Sent from outside (`kill -ILL`), it ends the supervisor and, \
                     through the parent-death signal, CMD: to stop, send TERM; to reach CMD, \
                     send a forwarded signal";
const PLAIN: &str = "forwarded to CMD; sync and the daemon keep the default action";

/// Every signal's fate. The supervisor blocks and takes the `Forwarded` and `Taken` rows,
/// ignores the `Ignored` ones and leaves the rest at their default; so do `sync --refresh`
/// and the daemon with their columns.
#[rustfmt::skip]
pub const TABLE: &[Row] = &[
    row(libc::SIGTERM, "TERM", [F, T, T], true, false,
        "stops: forwarded, and CMD is never started again; sync exits 0; the daemon stops \
         accepting, lets requests in flight finish (at most 20 s) and exits 0"),
    row(libc::SIGINT, "INT", [F, T, T], true, false, "as TERM"),
    row(libc::SIGQUIT, "QUIT", [F, T, D], true, false,
        "stops: forwarded, and CMD is never started again; sync exits 0"),
    row(libc::SIGHUP, "HUP", [F, T, D], true, false,
        "stops: forwarded, and CMD is never started again; sync refreshes now"),
    row(libc::SIGUSR1, "USR1", [F, D, D], false, false, PLAIN),
    row(libc::SIGUSR2, "USR2", [F, D, D], false, false, "as USR1"),
    row(libc::SIGALRM, "ALRM", [F, D, D], false, false, "as USR1"),
    row(libc::SIGABRT, "ABRT", [F, D, D], false, false,
        "forwarded (a panic of ecs-secrets aborts by raising it unblocked)"),
    row(libc::SIGSTKFLT, "STKFLT", [F, D, D], false, false, "as USR1"),
    row(libc::SIGXCPU, "XCPU", [F, D, D], false, false, "as USR1"),
    row(libc::SIGXFSZ, "XFSZ", [F, D, D], false, false, "as USR1"),
    row(libc::SIGVTALRM, "VTALRM", [F, D, D], false, false, "as USR1"),
    row(libc::SIGPROF, "PROF", [F, D, D], false, false, "as USR1"),
    row(libc::SIGIO, "IO", [F, D, D], false, false, "as USR1"),
    row(libc::SIGPWR, "PWR", [F, D, D], false, false, "as USR1"),
    row(libc::SIGWINCH, "WINCH", [F, D, D], false, true, "as USR1"),
    row(libc::SIGURG, "URG", [F, D, D], false, true, "as USR1"),
    row(libc::SIGCONT, "CONT", [F, D, D], false, true, "as USR1"),
    row(libc::SIGTSTP, "TSTP", [F, D, D], false, true,
        "forwarded: CMD decides whether it stops; the supervisor does not"),
    row(libc::SIGTTIN, "TTIN", [F, D, D], false, true, "as TSTP"),
    row(libc::SIGTTOU, "TTOU", [F, D, D], false, true, "as TSTP"),
    Row {
        sigs: Sigs::RealTime,
        name: "RTMIN…RTMAX",
        supervisor: F,
        sync: D,
        daemon: D,
        stopping: false,
        harmless: false,
        note: "as USR1",
    },
    row(libc::SIGCHLD, "CHLD", [T, T, D], false, true,
        "taken: the supervisor reaps its children (every orphan, as PID 1), never forwards \
         it; it also wakes the main thread when a refresh is done"),
    row(libc::SIGPIPE, "PIPE", [I, I, I], false, false,
        "ignored, never forwarded: a write of ecs-secrets to a closed stderr fails (the line \
         is dropped) and reaches neither ecs-secrets nor CMD"),
    row(libc::SIGILL, "ILL", [D, D, D], false, false, FAULT),
    row(libc::SIGSEGV, "SEGV", [D, D, D], false, false, "as ILL"),
    row(libc::SIGBUS, "BUS", [D, D, D], false, false, "as ILL"),
    row(libc::SIGFPE, "FPE", [D, D, D], false, false, "as ILL"),
    row(libc::SIGTRAP, "TRAP", [D, D, D], false, false, "as ILL"),
    row(libc::SIGSYS, "SYS", [D, D, D], false, false, "as ILL"),
    row(libc::SIGKILL, "KILL", [D, D, D], false, false,
        "cannot be caught: ends the supervisor and, through the parent-death signal, CMD"),
    row(libc::SIGSTOP, "STOP", [D, D, D], false, false,
        "cannot be caught: stops the supervisor only; CMD runs on"),
];

/// The row of `sig` (every signal number of Linux has one).
pub fn row_of(sig: i32) -> Option<&'static Row> {
    TABLE.iter().find(|r| match r.sigs {
        Sigs::One(s) => s == sig,
        Sigs::RealTime => (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig),
    })
}

/// The supervisor's fate for `sig` (`Default` for a number outside the table).
pub fn fate(tool: Tool, sig: i32) -> Fate {
    row_of(sig).map_or(Fate::Default, |r| r.fate(tool))
}

/// TERM, INT, QUIT, HUP: from outside, CMD is to stop and is never started again.
pub fn is_stopping(sig: i32) -> bool {
    row_of(sig).is_some_and(|r| r.stopping)
}

/// Signals whose default action is to ignore or stop rather than to terminate.
pub fn is_harmless(sig: i32) -> bool {
    row_of(sig).is_some_and(|r| r.harmless)
}

/// The table as Markdown, as docs/security.md shows it.
pub fn markdown() -> String {
    let mut s = String::from(
        "| signal | `exec --refresh` | `sync --refresh` | `daemon` | what happens |\n\
         |---|---|---|---|---|\n",
    );
    for r in TABLE {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.name,
            r.supervisor.as_str(),
            r.sync.as_str(),
            r.daemon.as_str(),
            r.note
        ));
    }
    s
}

/// A set of signals taken by [`wait`].
#[derive(Clone, Copy)]
pub struct Set(libc::sigset_t);

impl Set {
    /// What `tool` takes: its `Forwarded` and `Taken` rows.
    pub fn taken_by(tool: Tool) -> Set {
        let sigs: Vec<i32> = TABLE
            .iter()
            .filter(|r| matches!(r.fate(tool), Fate::Forwarded | Fate::Taken))
            .flat_map(|r| r.numbers())
            .collect();
        Set::of(&sigs)
    }

    /// Just these signals.
    pub fn of(sigs: &[i32]) -> Set {
        // SAFETY: sigemptyset/sigaddset write into the set we own.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            for &sig in sigs {
                libc::sigaddset(&mut s, sig);
            }
            Set(s)
        }
    }

    pub fn contains(&self, sig: i32) -> bool {
        // SAFETY: sigismember reads the set we own.
        unsafe { libc::sigismember(&self.0, sig) == 1 }
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

/// Set up `tool`'s signals from the table, before any other thread exists: its `Ignored`
/// and `Default` rows as [`dispositions`] sets them, SIGCHLD
/// at its default when taken (an inherited SIG_IGN would make the kernel reap CMD for us
/// and lose its exit status), and what it takes blocked. Returns the set to wait on.
pub fn install(tool: Tool) -> Set {
    dispositions(tool);
    // SAFETY: installing SIG_DFL has no handler to be unsafe about.
    unsafe {
        if fate(tool, libc::SIGCHLD) == Fate::Taken {
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        }
    }
    let set = Set::taken_by(tool);
    set.block();
    set
}

/// `tool`'s `Ignored` rows ignored and its `Default` rows at their default action (unless
/// inherited as ignored, as under nohup), both
/// unblocked (a blocked signal stays pending even when ignored). The Rust runtime handles
/// SEGV and BUS to report a stack overflow, and its handler returns from one sent from
/// outside: the process goes on, unlike what the table says; at their default, they end it.
/// The daemon, whose runtime takes its signals with handlers, needs only this.
pub fn dispositions(tool: Tool) {
    let of = |fate: Fate| -> Vec<i32> {
        TABLE
            .iter()
            .filter(|r| r.fate(tool) == fate)
            .flat_map(|r| r.numbers())
            .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP)
            .collect()
    };
    let (ignored, default) = (of(Fate::Ignored), of(Fate::Default));
    // SAFETY: installing SIG_IGN / SIG_DFL has no handler to be unsafe about;
    // pthread_sigmask with a set we own.
    unsafe {
        for &sig in &ignored {
            libc::signal(sig, libc::SIG_IGN);
        }
        // A handler (the runtime's) goes; an inherited "ignore" (nohup) stays.
        for &sig in &default {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
            {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let unblock = Set::of(&[ignored, default].concat());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &unblock.0, std::ptr::null_mut());
    }
}

/// What `tool` takes, as numbers.
pub fn taken(tool: Tool) -> Vec<i32> {
    TABLE
        .iter()
        .filter(|r| r.fate(tool) == Fate::Taken)
        .flat_map(|r| r.numbers())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_has_exactly_one_row() {
        for sig in 1..=libc::SIGRTMAX() {
            // glibc keeps 32 and 33 for itself (thread cancellation, setxid).
            if (32..libc::SIGRTMIN()).contains(&sig) {
                assert!(row_of(sig).is_none(), "{sig}");
                continue;
            }
            let rows = TABLE.iter().filter(|r| r.numbers().contains(&sig)).count();
            assert_eq!(rows, 1, "signal {sig}");
        }
    }

    #[test]
    fn the_sets_follow_the_table() {
        let sup = Set::taken_by(Tool::Supervisor);
        for r in TABLE {
            for sig in r.numbers() {
                let f = r.supervisor;
                assert_eq!(
                    sup.contains(sig),
                    matches!(f, Fate::Forwarded | Fate::Taken),
                    "{}",
                    r.name
                );
            }
        }
        // What must never be blocked.
        for sig in [
            libc::SIGPIPE,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            for tool in [Tool::Supervisor, Tool::Sync, Tool::Daemon] {
                assert!(!Set::taken_by(tool).contains(sig), "{sig} {tool:?}");
            }
        }
        let stopping: Vec<&str> = TABLE
            .iter()
            .filter(|r| r.stopping)
            .map(|r| r.name)
            .collect();
        assert_eq!(stopping, ["TERM", "INT", "QUIT", "HUP"]);
        // Only the supervisor forwards.
        assert!(TABLE
            .iter()
            .all(|r| r.sync != Fate::Forwarded && r.daemon != Fate::Forwarded));
    }

    #[test]
    fn docs_security_shows_the_table() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
            .expect("docs/security.md");
        assert!(
            doc.contains(&markdown()),
            "docs/security.md must contain the signal table exactly as \
             `signals::markdown()` renders it:\n{}",
            markdown()
        );
    }
}
