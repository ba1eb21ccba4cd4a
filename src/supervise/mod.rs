//! `exec --refresh`: ecs-secrets stays CMD's parent (PID 1 in a container) and keeps its
//! secrets current.
//!
//! The main thread only waits for signals (what `signals::TABLE` says it takes is blocked in
//! every thread and taken with sigtimedwait), reaps every child, and turns what happens —
//! a signal, CMD's exit, a timer, an answer of the refresher thread (which does the
//! fetching) — into events for the state machine (`machine.rs`), whose actions it carries
//! out: forward, stop, start, refresh, exit. CMD is started with fork + execve (see
//! `child.rs`) in its own process group; signals go to its pid. Nothing it writes can
//! block it or reach CMD (`crate::log::never_block`, SIGPIPE ignored).
//!
//! The supervisor keeps the identity it was started with (root, when `--user` is given):
//! it must go on reading the AWS credentials and writing files owned by the `--user`
//! target, which a process running as that user could not do safely (it could not chown,
//! and CMD could then tamper with its memory). CMD cannot read the supervisor's memory:
//! the process is non-dumpable, which also forbids ptrace by a process of the same user.
//!
//! Between refreshes no plaintext is kept: a keyed digest (`digest.rs`) detects changes,
//! and every fetched value is dropped (zeroized) once the files are written and CMD started.

pub mod caps;
pub mod child;
pub mod digest;
pub mod machine;
pub mod memory;
pub mod refresher;
pub mod signals;

// The refresh flags are configuration (config/refresh.rs).
pub use crate::config::refresh as config;

pub use config::{OnChange, Refresh};

use crate::config::{Env, ExecConfig};
use crate::error::{Error, ExitCode, Result};
use crate::inject::env::EnvEntry;
use crate::inject::outputs::Outputs;
use crate::privs::{self, Target};
use crate::start::{self, prepare};
use child::Program;
use machine::{Action, Event, Note, Outcome, State};
use refresher::{Fetched, Refresher};
use std::time::{Duration, Instant};

pub fn run(cfg: ExecConfig, r: Refresh, env: &Env) -> Result<ExitCode> {
    let target = match &cfg.user {
        Some(spec) => Some(privs::resolve(spec)?),
        None => None,
    };
    if let Some(t) = &target {
        caps::check(
            t.uid,
            true,
            cfg.files.is_some() || !cfg.templates.is_empty(),
            "exec",
        )?;
    }
    let outputs = Outputs::prepare(&cfg)?;
    let mut program = Program::new(&cfg.cmd, env.get_os("PATH"), target.clone())?;
    if let OnChange::Signal(s) = r.on_change {
        program = program.with_on_change_signal(s as i32);
    }
    memory::wipe_freed();
    crate::log::never_block();
    // Before any thread exists.
    let set = signals::install(signals::Tool::Supervisor);
    let refresher = Refresher::start(
        cfg.store.clone(),
        cfg.refs.clone(),
        signals::Waker::current(),
    )?;
    let mut d = Driver {
        sup: Supervisor {
            cfg: &cfg,
            env,
            r,
            target: target.as_ref(),
            outputs: &outputs,
        },
        program,
        refresher,
        key: digest::Key::random(),
        state: State::Stopped,
        pid: None,
        current: None,
        prepared: None,
        answer: None,
        error: None,
        fetching: false,
        next_refresh: None,
        grace_at: None,
    };
    let (state, first) = machine::start();
    d.state = state;
    for a in first {
        d.act(a)?;
    }
    let mut poll_now = false;
    loop {
        let now = Instant::now();
        let until = if poll_now {
            Some(Duration::ZERO)
        } else {
            [d.next_refresh, d.grace_at]
                .into_iter()
                .flatten()
                .min()
                .map(|t| t.saturating_duration_since(now))
        };
        poll_now = false;
        // Every signal that is pending, in the order taken; then CMD's exit, the timers,
        // the refresher's answer.
        let mut events = Vec::new();
        let mut sig = signals::wait(&set, until);
        while let Some(s) = sig {
            if s != libc::SIGCHLD {
                events.push(Event::Signal(s));
            }
            sig = signals::wait(&set, Some(Duration::ZERO));
        }
        let status = child::reap(d.pid.unwrap_or(0));
        if let Some(st) = status {
            d.pid = None;
            events.push(Event::Exited(child::exit_status(st)));
        }
        let now = Instant::now();
        if d.grace_at.is_some_and(|t| now >= t) {
            d.grace_at = None;
            events.push(Event::GraceOver);
        }
        if d.next_refresh.is_some_and(|t| now >= t) {
            d.next_refresh = None;
            events.push(Event::RefreshDue);
        }
        if d.fetching {
            if let Some(f) = d.refresher.answer() {
                d.fetching = false;
                d.answer = Some(f);
                events.push(Event::Fetched);
            }
        }
        for e in events {
            d.handle(e)?;
        }
        // Ready to start CMD: a signal that came meanwhile is taken first, so that a stop
        // is never followed by a start.
        while matches!(d.state, State::Launching { .. }) {
            match signals::wait(&set, Some(Duration::ZERO)) {
                Some(libc::SIGCHLD) => poll_now = true,
                Some(s) => d.handle(Event::Signal(s))?,
                None => d.handle(Event::Launch)?,
            }
        }
    }
}

/// What the main loop holds beside the machine's state.
struct Driver<'a> {
    sup: Supervisor<'a>,
    program: Program,
    refresher: Refresher,
    key: digest::Key,
    state: State,
    /// CMD's pid while it runs (not yet reaped).
    pid: Option<i32>,
    /// The digest of the values CMD has (or is about to get).
    current: Option<digest::Digest>,
    /// The environment of the next start: between a changed refresh and the start only.
    prepared: Option<Vec<EnvEntry>>,
    /// The refresher's answer, between `Fetched` and `Apply`/`Discard`.
    answer: Option<Fetched>,
    /// Why the last apply failed.
    error: Option<Error>,
    fetching: bool,
    next_refresh: Option<Instant>,
    grace_at: Option<Instant>,
}

impl Driver<'_> {
    fn handle(&mut self, e: Event) -> Result<()> {
        let (state, actions) = machine::step(self.state, self.sup.r.on_change, e);
        self.state = state;
        for a in actions {
            self.act(a)?;
        }
        // The new environment is kept only until it is started.
        if !matches!(
            self.state,
            State::Restarting { .. } | State::Launching { .. }
        ) {
            self.prepared = None;
        }
        Ok(())
    }

    fn act(&mut self, a: Action) -> Result<()> {
        let r = self.sup.r;
        match a {
            Action::Forward(sig) => self.send(sig),
            Action::Terminate => {
                self.send(libc::SIGTERM);
                self.grace_at = Some(Instant::now() + r.grace);
            }
            Action::Kill => self.send(libc::SIGKILL),
            Action::Start => {
                let envp = self.prepared.take().ok_or_else(|| {
                    Error::io("internal error: no environment to start the command with")
                })?;
                self.pid = Some(self.program.spawn(&envp)?);
                drop(envp);
                self.grace_at = None;
                memory::scrub_stack();
            }
            Action::AskRefresh => {
                self.refresher.ask();
                self.fetching = true;
            }
            Action::ScheduleRefresh => self.next_refresh = Some(self.sup.schedule()),
            Action::Apply => {
                let f = self
                    .answer
                    .take()
                    .unwrap_or_else(|| Err(Error::io("internal error: no answer to apply")));
                let first = self.current.is_none();
                let outcome = match self
                    .sup
                    .try_apply(f, &self.key, self.current.as_ref(), first)
                {
                    Ok(None) => Outcome::Unchanged,
                    Ok(Some((digest, envp))) => {
                        self.current = Some(digest);
                        self.prepared = Some(envp);
                        Outcome::Changed
                    }
                    Err(e) => {
                        self.error = Some(e);
                        Outcome::Failed
                    }
                };
                memory::scrub_stack();
                self.handle(Event::Applied(outcome))?;
            }
            Action::Discard => self.answer = None,
            Action::Exit(code) => std::process::exit(code),
            Action::Fail => {
                return Err(self
                    .error
                    .take()
                    .unwrap_or_else(|| Error::io("internal error: the start failed")))
            }
            Action::Note(n) => self.note(n),
        }
        Ok(())
    }

    fn send(&self, sig: i32) {
        if let Some(pid) = self.pid {
            child::send(pid, sig);
        }
    }

    fn note(&mut self, n: Note) {
        let r = self.sup.r;
        match n {
            Note::SignalBeforeStart(sig) => crate::log::error(format_args!(
                "{} before the command started: it was not started",
                signals::name(sig)
            )),
            Note::Stopping(sig) => crate::log::debug(format_args!(
                "{} from outside: the command stops and is not started again",
                signals::name(sig)
            )),
            Note::RefreshFailed => {
                let e = self
                    .error
                    .take()
                    .map_or_else(String::new, |e| e.to_string());
                crate::log::warn(format_args!(
                    "refresh failed, the command keeps its current secrets (next try in about \
                     {}): {e}",
                    config::shown_secs(r.every)
                ));
            }
            Note::Restarting => crate::log::warn(format_args!(
                "secrets changed: restarting the command (SIGTERM, SIGKILL after {} s)",
                r.grace.as_secs_f64()
            )),
            Note::Exiting => crate::log::warn(format_args!(
                "secrets changed: stopping the command and exiting (--on-change exit)"
            )),
            Note::Signalled(s) => crate::log::warn(format_args!(
                "secrets changed: sending {} to the command",
                signals::name(s)
            )),
            Note::FilesRewritten => {
                crate::log::warn(format_args!("secrets changed: files rewritten"))
            }
        }
    }
}

struct Supervisor<'a> {
    cfg: &'a ExecConfig,
    env: &'a Env,
    r: Refresh,
    target: Option<&'a Target>,
    outputs: &'a Outputs,
}

impl Supervisor<'_> {
    /// When the next refresh is due: SECS plus a random 0–splay from now.
    fn schedule(&self) -> Instant {
        Instant::now() + self.r.every + digest::random_upto(self.r.splay)
    }

    /// Check one fetch as a start does: unchanged → `None`; changed → write the files and
    /// return the new digest and CMD's new environment. A failure at any step changes
    /// nothing (the files are replaced only once every new one is in place). `first`: the
    /// first start, which warns about an empty path whatever the values.
    fn try_apply(
        &self,
        f: Fetched,
        key: &digest::Key,
        current: Option<&digest::Digest>,
        first: bool,
    ) -> Result<Option<(digest::Digest, Vec<EnvEntry>)>> {
        let f = f?;
        let empty = prepare::empty_paths(&f.0);
        if first {
            prepare::warn_empty(&empty, &self.cfg.store);
        }
        let secrets = prepare::secrets(f, self.cfg)?;
        let d = key.digest(&secrets);
        if current == Some(&d) {
            return Ok(None);
        }
        let envp = start::deliver(self.cfg, self.env, &secrets, self.target, self.outputs)?;
        if !first {
            prepare::warn_empty(&empty, &self.cfg.store);
        }
        drop(secrets);
        Ok(Some((d, envp)))
    }
}
