//! `exec --refresh`: ecs-secrets stays CMD's parent (PID 1 in a container) and keeps its
//! secrets current.
//!
//! The main thread only waits for signals (all catchable ones are blocked in every thread
//! and taken with sigtimedwait), forwards them to CMD, reaps every child, and acts on the
//! answers of the refresher thread, which does the fetching. CMD is started with fork +
//! execve (see `child.rs`) in its own process group; signals go to its pid.
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
pub mod memory;
pub mod refresher;
pub mod signals;

// The refresh flags are configuration (config/refresh.rs).
pub use crate::config::refresh as config;
pub use config::{OnChange, Refresh};

use crate::config::{Env, ExecConfig};
use crate::error::{ExitCode, Result};
use crate::inject::env::EnvEntry;
use crate::inject::files;
use crate::privs::{self, Target};
use crate::start::{self, prepare};
use child::Program;
use refresher::{Fetched, Refresher};
use std::time::Instant;

/// Signals that end a supervised CMD's life when they come from outside: after one, a
/// restart in progress does not start CMD again.
const STOPPING: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];

enum After {
    Restart(Vec<EnvEntry>),
    Exit,
}

enum Phase {
    Running,
    /// CMD was sent SIGTERM; SIGKILL at `deadline` unless it exited.
    Stopping {
        deadline: Instant,
        killed: bool,
        then: After,
    },
}

pub fn run(cfg: ExecConfig, r: Refresh, env: &Env) -> Result<ExitCode> {
    let target = match &cfg.user {
        Some(spec) => Some(privs::resolve(spec)?),
        None => None,
    };
    if let Some(t) = &target {
        caps::check(t.uid, true, cfg.files.is_some(), "exec")?;
    }
    if let Some(dir) = &cfg.files {
        files::check_dir(dir, cfg.allow_disk)?;
    }
    let mut program = Program::new(&cfg.cmd, env.get_os("PATH"), target.clone())?;
    if let OnChange::Signal(s) = r.on_change {
        program = program.with_on_change_signal(s as i32);
    }
    memory::wipe_freed();
    // Before any thread exists.
    let set = signals::Set::catchable();
    set.block();
    signals::default_sigchld();
    let refresher = Refresher::start(
        cfg.store.clone(),
        cfg.refs.clone(),
        signals::Waker::current(),
    )?;
    let key = digest::Key::random();

    // The first start: as exec, fail closed on anything. A signal that would have ended
    // ecs-secrets before CMD started still does.
    refresher.ask();
    let fetched = loop {
        if let Some(f) = refresher.answer() {
            break f;
        }
        if let Some(sig) = signals::wait(&set, None) {
            if !signals::is_harmless(sig) {
                crate::log::error(format_args!(
                    "{} before the command started: it was not started",
                    signals::name(sig)
                ));
                std::process::exit(128 + sig);
            }
        }
    };
    let fetched = fetched?;
    prepare::warn_empty(&prepare::empty_paths(&fetched.0), &cfg.store);
    let secrets = prepare::secrets(fetched, &cfg)?;
    let envp = start::deliver(&cfg, env, &secrets, target.as_ref())?;
    let mut current = key.digest(&secrets);
    drop(secrets);
    let mut pid = program.spawn(&envp)?;
    drop(envp);
    memory::scrub_stack();

    let sup = Supervisor {
        cfg: &cfg,
        env,
        r,
        target: target.as_ref(),
    };
    let mut phase = Phase::Running;
    let mut next = Some(sup.schedule());
    let mut in_flight = false;
    let mut stop_requested = false;
    loop {
        let now = Instant::now();
        let until = match &phase {
            Phase::Running if !in_flight => next.map(|n| n.saturating_duration_since(now)),
            Phase::Stopping {
                deadline,
                killed: false,
                ..
            } => Some(deadline.saturating_duration_since(now)),
            _ => None,
        };
        if let Some(sig) = signals::wait(&set, until) {
            if sig != libc::SIGCHLD {
                child::send(pid, sig);
                if matches!(phase, Phase::Stopping { .. }) && STOPPING.contains(&sig) {
                    stop_requested = true;
                }
            }
        }
        if let Some(status) = child::reap(pid) {
            let code = child::exit_status(status);
            match std::mem::replace(&mut phase, Phase::Running) {
                Phase::Stopping {
                    then: After::Restart(envp),
                    ..
                } if !stop_requested => {
                    pid = program.spawn(&envp)?;
                    drop(envp);
                    memory::scrub_stack();
                    next = Some(sup.schedule());
                }
                _ => std::process::exit(code),
            }
        }
        if let Phase::Stopping {
            deadline, killed, ..
        } = &mut phase
        {
            if !*killed && Instant::now() >= *deadline {
                child::send(pid, libc::SIGKILL);
                *killed = true;
            }
        }
        if in_flight {
            if let Some(f) = refresher.answer() {
                in_flight = false;
                next = Some(sup.schedule());
                let action = sup.apply(f, &key, &mut current);
                memory::scrub_stack();
                match action {
                    None | Some(Action::Nothing) => {}
                    Some(Action::Signal(s)) => child::send(pid, s),
                    Some(Action::Stop(then)) => {
                        child::send(pid, libc::SIGTERM);
                        phase = Phase::Stopping {
                            deadline: Instant::now() + r.grace,
                            killed: false,
                            then,
                        };
                    }
                }
            }
        }
        if matches!(phase, Phase::Running)
            && !in_flight
            && next.is_some_and(|n| Instant::now() >= n)
        {
            refresher.ask();
            in_flight = true;
        }
    }
}

struct Supervisor<'a> {
    cfg: &'a ExecConfig,
    env: &'a Env,
    r: Refresh,
    target: Option<&'a Target>,
}

enum Action {
    Nothing,
    Signal(i32),
    Stop(After),
}

impl Supervisor<'_> {
    /// When the next refresh is due: SECS plus a random 0–splay from now.
    fn schedule(&self) -> Instant {
        Instant::now() + self.r.every + digest::random_upto(self.r.splay)
    }

    /// Act on one fetch: unchanged → nothing; changed → check everything a start checks,
    /// write the files, and say what to do to CMD. A failure at any step changes nothing
    /// (the files are replaced only once every new one is in place) and is one warning.
    fn apply(&self, f: Fetched, key: &digest::Key, current: &mut digest::Digest) -> Option<Action> {
        match self.try_apply(f, key, current) {
            Ok(a) => a,
            Err(e) => {
                crate::log::warn(format_args!(
                    "refresh failed, the command keeps its current secrets (next try in about \
                     {}): {e}",
                    config::shown_secs(self.r.every)
                ));
                None
            }
        }
    }

    fn try_apply(
        &self,
        f: Fetched,
        key: &digest::Key,
        current: &mut digest::Digest,
    ) -> Result<Option<Action>> {
        let f = f?;
        let empty = prepare::empty_paths(&f.0);
        let secrets = prepare::secrets(f, self.cfg)?;
        let d = key.digest(&secrets);
        if d == *current {
            return Ok(None);
        }
        let envp = start::deliver(self.cfg, self.env, &secrets, self.target)?;
        prepare::warn_empty(&empty, &self.cfg.store);
        drop(secrets);
        *current = d;
        let action = match self.r.on_change {
            OnChange::Restart => {
                crate::log::warn(format_args!(
                    "secrets changed: restarting the command (SIGTERM, SIGKILL after {} s)",
                    self.r.grace.as_secs_f64()
                ));
                Action::Stop(After::Restart(envp))
            }
            OnChange::Exit => {
                crate::log::warn(format_args!(
                    "secrets changed: stopping the command and exiting (--on-change exit)"
                ));
                Action::Stop(After::Exit)
            }
            OnChange::Signal(s) => {
                crate::log::warn(format_args!(
                    "secrets changed: sending {} to the command",
                    s.as_str()
                ));
                Action::Signal(s as i32)
            }
            OnChange::Nothing => {
                crate::log::warn(format_args!("secrets changed: files rewritten"));
                Action::Nothing
            }
        };
        Ok(Some(action))
    }
}
