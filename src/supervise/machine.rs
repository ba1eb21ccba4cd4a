//! The supervisor's life as a state machine: [`step`]`(state, event) -> (state, actions)`,
//! pure (no clock, no system call), so that every event can be tried in every state (the
//! model test below) and the main loop (`mod.rs`) only turns what happens into events and
//! carries the actions out.
//!
//! The rules it keeps:
//! - once a stopping signal (TERM, INT, QUIT, HUP) has come from outside, in whatever
//!   state, CMD is never started again, and no refresh is asked for or applied;
//! - a CMD that exited by itself is never restarted: only one the supervisor stopped to
//!   restart it is started again, and only after it exited;
//! - the exit status is CMD's (128+N when killed by signal N); before CMD ever ran, a
//!   signal that would have ended ecs-secrets ends it with 128+N;
//! - every signal from outside reaches a running CMD (the table in `signals.rs` says which
//!   ones are taken at all).

use super::config::OnChange;
use super::signals;

/// Where a refresh is, while CMD runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refresh {
    /// None under way; the next one is scheduled.
    Idle,
    /// Asked; the answer has not come.
    Fetching,
    /// The answer is being checked and applied (`Event::Applied` comes next).
    Applying,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// The first fetch and its checks; CMD has never run. `applying`: the answer came.
    Starting {
        applying: bool,
    },
    /// Ready to start CMD: the first time (`last` is `None`) or again after a restart's
    /// stop (`last`: the old CMD's status). The main loop takes every pending signal
    /// before it sends `Launch`, so that one which came meanwhile is not forwarded to a
    /// CMD started after it.
    Launching {
        last: Option<i32>,
    },
    Running {
        refresh: Refresh,
    },
    /// CMD was sent SIGTERM, to be started again with the new secrets once it exits.
    /// `killed`: the grace period is over and it was sent SIGKILL.
    Restarting {
        killed: bool,
    },
    /// CMD was asked to stop, from outside or by `--on-change exit`; the supervisor exits
    /// with its status. `grace`: SIGKILL is due when the grace period ends (`--on-change
    /// exit`, or an outside stop during a restart); after an outside stop alone, the
    /// outsider's own timeout rules (ECS's stopTimeout), not ours.
    Stopping {
        grace: bool,
    },
    /// Exited (or exiting): nothing happens any more.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Unchanged,
    /// Fetching or a check a start makes failed: nothing was changed.
    Failed,
    /// The values changed: the files are rewritten, the new environment is ready.
    Changed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A signal from outside (never SIGCHLD, on which the main loop reaps).
    Signal(i32),
    /// CMD exited with this status (its code, or 128+N).
    Exited(i32),
    /// The refresh timer.
    RefreshDue,
    /// The refresher answered.
    Fetched,
    /// What checking and applying that answer found (right after `Action::Apply`).
    Applied(Outcome),
    /// The grace period after the supervisor's SIGTERM is over.
    GraceOver,
    /// No signal is pending: CMD may start now.
    Launch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Note {
    /// An error line: this signal came before CMD started, which was not started.
    SignalBeforeStart(i32),
    /// A stopping signal from outside: CMD will not be started again.
    Stopping(i32),
    RefreshFailed,
    Restarting,
    Exiting,
    Signalled(i32),
    FilesRewritten,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send this signal to CMD.
    Forward(i32),
    /// SIGTERM to CMD, and the grace period starts.
    Terminate,
    /// SIGKILL to CMD.
    Kill,
    /// Start CMD with the newest environment.
    Start,
    /// Ask the refresher for a fetch.
    AskRefresh,
    /// The next refresh in SECS plus the splay.
    ScheduleRefresh,
    /// Check and apply the answer (files first), then send `Event::Applied`.
    Apply,
    /// Throw the answer away unread.
    Discard,
    /// Exit with this status.
    Exit(i32),
    /// The first start failed: exit with its error, CMD never started.
    Fail,
    /// Say something on stderr.
    Note(Note),
}

/// The state before anything happened, and what to do first.
pub fn start() -> (State, Vec<Action>) {
    (
        State::Starting { applying: false },
        vec![Action::AskRefresh],
    )
}

/// One event in one state.
pub fn step(state: State, on_change: OnChange, event: Event) -> (State, Vec<Action>) {
    use Action as A;
    use State as S;
    let same = (state, Vec::new());
    match (state, event) {
        (S::Stopped, _) => same,
        (_, Event::Signal(libc::SIGCHLD)) => same,

        // Before CMD ever ran: as if there were no supervisor.
        (S::Starting { .. } | S::Launching { last: None }, Event::Signal(sig)) => {
            if signals::is_harmless(sig) {
                same
            } else {
                (
                    S::Stopped,
                    vec![A::Note(Note::SignalBeforeStart(sig)), A::Exit(128 + sig)],
                )
            }
        }
        // Between a restart's old CMD and its new one: nobody to forward to.
        (S::Launching { last: Some(code) }, Event::Signal(sig)) => {
            if signals::is_stopping(sig) {
                (
                    S::Stopped,
                    vec![A::Note(Note::Stopping(sig)), A::Exit(code)],
                )
            } else {
                same
            }
        }
        (S::Running { .. }, Event::Signal(sig)) => {
            if signals::is_stopping(sig) {
                (
                    S::Stopping { grace: false },
                    vec![A::Note(Note::Stopping(sig)), A::Forward(sig)],
                )
            } else {
                (state, vec![A::Forward(sig)])
            }
        }
        (S::Restarting { killed }, Event::Signal(sig)) => {
            if signals::is_stopping(sig) {
                (
                    S::Stopping { grace: !killed },
                    vec![A::Note(Note::Stopping(sig)), A::Forward(sig)],
                )
            } else {
                (state, vec![A::Forward(sig)])
            }
        }
        (S::Stopping { .. }, Event::Signal(sig)) => (state, vec![A::Forward(sig)]),

        (S::Running { .. } | S::Stopping { .. }, Event::Exited(code)) => {
            (S::Stopped, vec![A::Exit(code)])
        }
        (S::Restarting { .. }, Event::Exited(code)) => (S::Launching { last: Some(code) }, vec![]),
        (_, Event::Exited(_)) => same,

        (S::Launching { .. }, Event::Launch) => (
            S::Running {
                refresh: Refresh::Idle,
            },
            vec![A::Start, A::ScheduleRefresh],
        ),
        (_, Event::Launch) => same,

        (
            S::Running {
                refresh: Refresh::Idle,
            },
            Event::RefreshDue,
        ) => (
            S::Running {
                refresh: Refresh::Fetching,
            },
            vec![A::AskRefresh],
        ),
        (_, Event::RefreshDue) => same,

        (S::Starting { applying: false }, Event::Fetched) => {
            (S::Starting { applying: true }, vec![A::Apply])
        }
        (
            S::Running {
                refresh: Refresh::Fetching,
            },
            Event::Fetched,
        ) => (
            S::Running {
                refresh: Refresh::Applying,
            },
            vec![A::Apply],
        ),
        (_, Event::Fetched) => (state, vec![A::Discard]),

        (S::Starting { applying: true }, Event::Applied(o)) => match o {
            Outcome::Failed => (S::Stopped, vec![A::Fail]),
            Outcome::Changed | Outcome::Unchanged => (S::Launching { last: None }, vec![]),
        },
        (
            S::Running {
                refresh: Refresh::Applying,
            },
            Event::Applied(o),
        ) => {
            let idle = S::Running {
                refresh: Refresh::Idle,
            };
            match o {
                Outcome::Unchanged => (idle, vec![A::ScheduleRefresh]),
                Outcome::Failed => (idle, vec![A::Note(Note::RefreshFailed), A::ScheduleRefresh]),
                Outcome::Changed => match on_change {
                    OnChange::Restart => (
                        S::Restarting { killed: false },
                        vec![A::Note(Note::Restarting), A::Terminate],
                    ),
                    OnChange::Exit => (
                        S::Stopping { grace: true },
                        vec![A::Note(Note::Exiting), A::Terminate],
                    ),
                    OnChange::Signal(s) => (
                        idle,
                        vec![
                            A::Note(Note::Signalled(s as i32)),
                            A::Forward(s as i32),
                            A::ScheduleRefresh,
                        ],
                    ),
                    OnChange::Nothing => (
                        idle,
                        vec![A::Note(Note::FilesRewritten), A::ScheduleRefresh],
                    ),
                },
            }
        }
        (_, Event::Applied(_)) => same,

        (S::Restarting { killed: false }, Event::GraceOver) => {
            (S::Restarting { killed: true }, vec![A::Kill])
        }
        (S::Stopping { grace: true }, Event::GraceOver) => {
            (S::Stopping { grace: false }, vec![A::Kill])
        }
        (_, Event::GraceOver) => same,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use std::collections::{HashSet, VecDeque};

    /// What the world knows, beside the machine's state: the invariants are checked
    /// against it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    struct World {
        /// A CMD is running (started, not yet exited).
        alive: bool,
        started: bool,
        /// CMD's last exit status.
        last: Option<i32>,
        /// A stopping signal came from outside.
        stop: bool,
        /// The supervisor sent SIGTERM to restart the running CMD.
        restart_asked: bool,
        /// A fetch was asked and its answer has not been taken.
        fetching: bool,
        /// A refresh is scheduled (the timer is armed).
        scheduled: bool,
        /// The last actions asked for Apply: `Applied` is what comes next.
        applying: bool,
        /// Exited or failed.
        over: bool,
    }

    const SIGNALS: [i32; 8] = [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGWINCH,
        libc::SIGALRM,
        libc::SIGCHLD,
    ];

    fn events() -> Vec<Event> {
        let mut e: Vec<Event> = SIGNALS.iter().map(|&s| Event::Signal(s)).collect();
        e.extend([
            Event::Exited(0),
            Event::Exited(3),
            Event::Exited(128 + libc::SIGTERM),
            Event::Exited(128 + libc::SIGKILL),
            Event::RefreshDue,
            Event::Fetched,
            Event::Applied(Outcome::Unchanged),
            Event::Applied(Outcome::Failed),
            Event::Applied(Outcome::Changed),
            Event::GraceOver,
            Event::Launch,
        ]);
        e
    }

    /// Whether the world could produce `e` now (the main loop only reports a CMD exit of
    /// a running CMD, an answer that was asked for, `Applied` right after `Apply`, …).
    fn possible(w: &World, e: Event) -> bool {
        if w.applying {
            return matches!(e, Event::Applied(_));
        }
        match e {
            Event::Exited(_) => w.alive,
            Event::Fetched => w.fetching,
            Event::Applied(_) => false,
            Event::RefreshDue => w.scheduled,
            _ => true,
        }
    }

    /// Step, check every invariant, and return the new world.
    fn check(st: State, w: World, e: Event, on_change: OnChange, path: &[Event]) -> (State, World) {
        let (next, actions) = step(st, on_change, e);
        let ctx =
            || format!("{on_change:?} after {path:?}: {st:?} + {e:?} -> {next:?} {actions:?}");
        let mut w2 = w;
        w2.applying = false;
        if w.over {
            assert!(actions.is_empty(), "acted after the end: {}", ctx());
        }
        match e {
            Event::Signal(s) if signals::is_stopping(s) => w2.stop = true,
            Event::Exited(code) if w.alive => {
                w2.alive = false;
                w2.last = Some(code);
            }
            Event::Fetched if w.fetching => w2.fetching = false,
            Event::RefreshDue if w.scheduled => w2.scheduled = false,
            _ => {}
        }
        // Every outside signal reaches a running CMD (SIGCHLD is never taken from outside).
        if let Event::Signal(s) = e {
            if w.alive && !w.over && s != libc::SIGCHLD {
                assert!(
                    actions.contains(&Action::Forward(s)),
                    "not forwarded: {}",
                    ctx()
                );
            }
        }
        for a in &actions {
            match *a {
                Action::Start => {
                    assert!(!w2.stop, "started after a stopping signal: {}", ctx());
                    assert!(!w2.alive, "two CMDs at once: {}", ctx());
                    assert!(
                        !w2.started || w2.restart_asked,
                        "restarted a CMD that exited by itself: {}",
                        ctx()
                    );
                    w2.alive = true;
                    w2.started = true;
                    w2.restart_asked = false;
                }
                Action::Forward(_) | Action::Terminate | Action::Kill => {
                    assert!(w2.alive, "signalled no CMD (a reused pid?): {}", ctx());
                    if *a == Action::Terminate && next == (State::Restarting { killed: false }) {
                        w2.restart_asked = true;
                    }
                }
                Action::AskRefresh => {
                    assert!(!w2.fetching, "two fetches at once: {}", ctx());
                    assert!(!w2.stop, "refreshing after a stopping signal: {}", ctx());
                    w2.fetching = true;
                }
                Action::ScheduleRefresh => {
                    assert!(!w2.stop, "scheduled after a stopping signal: {}", ctx());
                    w2.scheduled = true;
                }
                Action::Apply => {
                    assert_eq!(e, Event::Fetched, "{}", ctx());
                    assert!(!w2.stop, "applied after a stopping signal: {}", ctx());
                    w2.applying = true;
                }
                Action::Discard => assert_eq!(e, Event::Fetched, "{}", ctx()),
                Action::Exit(code) => {
                    if w2.started {
                        assert!(!w2.alive, "exited with CMD running: {}", ctx());
                        assert_eq!(Some(code), w2.last, "not CMD's status: {}", ctx());
                    } else {
                        let Event::Signal(s) = e else {
                            panic!("exit before a start without a signal: {}", ctx())
                        };
                        assert_eq!(code, 128 + s, "{}", ctx());
                    }
                    w2.over = true;
                }
                Action::Fail => {
                    assert!(!w2.started, "{}", ctx());
                    w2.over = true;
                }
                Action::Note(_) => {}
            }
        }
        assert_eq!(next == State::Stopped, w2.over, "{}", ctx());
        // Never stuck: whenever CMD runs with no refresh under way, one is scheduled, and
        // a state that waits on the refresher has a fetch outstanding.
        if next
            == (State::Running {
                refresh: Refresh::Idle,
            })
        {
            assert!(w2.scheduled, "no refresh will ever come: {}", ctx());
        }
        if matches!(
            next,
            State::Starting { applying: false }
                | State::Running {
                    refresh: Refresh::Fetching
                }
        ) {
            assert!(w2.fetching, "waiting on no fetch: {}", ctx());
        }
        if matches!(next, State::Running { .. } | State::Restarting { .. }) {
            assert!(w2.alive, "no CMD in {next:?}: {}", ctx());
        }
        (next, w2)
    }

    /// Every reachable (state, world) pair, every possible event in each: all interleavings
    /// of any length (the pairs are finitely many).
    fn explore(on_change: OnChange) -> usize {
        let (st, first) = start();
        assert_eq!(first, vec![Action::AskRefresh]);
        let w = World {
            fetching: true,
            ..Default::default()
        };
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([(st, w, Vec::new())]);
        while let Some((st, w, path)) = queue.pop_front() {
            if !seen.insert((st, w)) {
                continue;
            }
            for e in events() {
                if !possible(&w, e) {
                    continue;
                }
                let (n, w2) = check(st, w, e, on_change, &path);
                let mut p = path.clone();
                p.push(e);
                queue.push_back((n, w2, p));
            }
        }
        seen.len()
    }

    #[test]
    fn every_interleaving_keeps_the_invariants() {
        for oc in [
            OnChange::Restart,
            OnChange::Exit,
            OnChange::Signal(Signal::SIGHUP),
            OnChange::Signal(Signal::SIGUSR1),
            OnChange::Nothing,
        ] {
            let n = explore(oc);
            assert!(n > 20, "{oc:?}: only {n} states");
        }
    }

    /// Every event in every state, even those the main loop never produces there: nothing
    /// starts after a stop, nothing happens after the end, and nothing panics.
    #[test]
    fn every_event_in_every_state_is_safe() {
        let states = [
            State::Starting { applying: false },
            State::Starting { applying: true },
            State::Launching { last: None },
            State::Launching { last: Some(7) },
            State::Running {
                refresh: Refresh::Idle,
            },
            State::Running {
                refresh: Refresh::Fetching,
            },
            State::Running {
                refresh: Refresh::Applying,
            },
            State::Restarting { killed: false },
            State::Restarting { killed: true },
            State::Stopping { grace: false },
            State::Stopping { grace: true },
            State::Stopped,
        ];
        for st in states {
            for e in events() {
                let (n, actions) = step(st, OnChange::Restart, e);
                if st == State::Stopped {
                    assert!(actions.is_empty() && n == State::Stopped);
                }
                if matches!(st, State::Stopping { .. }) {
                    assert!(!actions.contains(&Action::Start), "{st:?} {e:?}");
                    assert!(
                        matches!(n, State::Stopping { .. } | State::Stopped),
                        "{st:?} {e:?}"
                    );
                }
                if let Event::Signal(s) = e {
                    if signals::is_stopping(s) {
                        assert!(
                            matches!(n, State::Stopping { .. } | State::Stopped),
                            "{st:?} {e:?} -> {n:?}"
                        );
                    }
                }
                // Starting only from Launching, and only on Launch.
                if actions.contains(&Action::Start) {
                    assert!(matches!(st, State::Launching { .. }) && e == Event::Launch);
                }
            }
        }
    }

    /// The interleavings of the issue, spelled out.
    #[test]
    fn a_stop_from_outside_wins_over_any_change_found_later() {
        let r = OnChange::Restart;
        let run = |events: &[Event]| {
            let (mut st, _) = start();
            let mut all = Vec::new();
            for &e in events {
                let (n, a) = step(st, r, e);
                st = n;
                all.extend(a);
            }
            (st, all)
        };
        let up = [
            Event::Fetched,
            Event::Applied(Outcome::Changed),
            Event::Launch,
        ];
        // TERM while running, then a change: no restart, CMD's status.
        let mut ev = up.to_vec();
        ev.extend([
            Event::Signal(libc::SIGTERM),
            Event::RefreshDue,
            Event::Fetched,
            Event::Applied(Outcome::Changed),
            Event::Exited(3),
        ]);
        let (st, a) = run(&ev);
        assert_eq!(st, State::Stopped);
        assert_eq!(
            a.iter().filter(|a| **a == Action::Start).count(),
            1,
            "{a:?}"
        );
        assert_eq!(a.last(), Some(&Action::Exit(3)));
        assert!(!a.contains(&Action::Terminate), "{a:?}");
        // TERM while a refresh is being fetched: its answer is thrown away.
        let mut ev = up.to_vec();
        ev.extend([
            Event::RefreshDue,
            Event::Signal(libc::SIGTERM),
            Event::Fetched,
            Event::Exited(143),
        ]);
        let (_, a) = run(&ev);
        assert!(
            a.contains(&Action::Discard) && !a[3..].contains(&Action::Apply),
            "{a:?}"
        );
        assert_eq!(a.last(), Some(&Action::Exit(143)));
        // TERM in a restart's grace period, and between the old CMD's exit and the start.
        for tail in [
            vec![Event::Signal(libc::SIGTERM), Event::Exited(4)],
            vec![
                Event::Exited(4),
                Event::Signal(libc::SIGTERM),
                Event::Launch,
            ],
            vec![
                Event::GraceOver,
                Event::Signal(libc::SIGINT),
                Event::Exited(4),
            ],
        ] {
            let mut ev = up.to_vec();
            ev.extend([
                Event::RefreshDue,
                Event::Fetched,
                Event::Applied(Outcome::Changed),
            ]);
            ev.extend(tail.iter().copied());
            let (st, a) = run(&ev);
            assert_eq!(st, State::Stopped, "{tail:?}");
            assert_eq!(
                a.iter().filter(|a| **a == Action::Start).count(),
                1,
                "{tail:?}"
            );
            assert_eq!(a.last(), Some(&Action::Exit(4)), "{tail:?}");
        }
    }
}
