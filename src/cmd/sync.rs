//! `sync`: the secrets to files with exec's rules, once (an init container the application
//! `dependsOn` with condition SUCCESS) or kept current with `--refresh` (a sidecar sharing
//! a volume) until SIGTERM, SIGINT or SIGQUIT, then exit 0. SIGHUP asks for a refresh now.

use crate::cli::{HasShared, SyncArgs};
use crate::config::{self, Env, ExecConfig};
use crate::error::{Error, ExitCode, Result};
use crate::inject::outputs::Outputs;
use crate::privs;
use crate::start::{self, prepare};
use crate::supervise::{caps, config as rconfig, digest, memory, refresher::Refresher, signals};
use std::path::PathBuf;
use std::time::Instant;

pub struct SyncConfig {
    /// The file rules of exec (no command, no environment).
    pub exec: ExecConfig,
    pub refresh: Option<rconfig::Refresh>,
}

pub fn config(a: &SyncArgs, env: &Env) -> Result<SyncConfig> {
    let (arity, refs) = config::refs_config(a.resolve_refs, env)?;
    let mut store = config::store_config(&a.shared(), env, arity)?;
    store.allow_empty = config::allow_empty(a.allow_empty, env)?;
    config::check_nothing(&store, refs.len())?;
    let templates = config::templates(&a.template, env)?;
    let files = match a.files.as_deref() {
        None if templates.is_empty() => {
            return Err(Error::usage(
                "sync needs --files DIR or --template SRC:DEST: it writes the secrets to files",
            ))
        }
        None => None,
        Some("") => return Err(Error::usage("--files needs a directory")),
        Some(d) => Some(PathBuf::from(d)),
    };
    if let Some(u) = &a.user {
        if u.is_empty() || u.starts_with(':') || u.ends_with(':') || u.matches(':').count() > 1 {
            return Err(Error::usage(
                "invalid --user: use USER or USER:GROUP (names or numbers)",
            ));
        }
    }
    let refresh = rconfig::parse(
        &rconfig::RefreshArgs {
            refresh: a.refresh.as_deref(),
            splay: a.splay.as_deref(),
            on_change: None,
            grace: None,
        },
        true,
    )?;
    Ok(SyncConfig {
        exec: ExecConfig {
            store,
            files,
            file_env: false,
            no_env: true,
            allow_disk: a.allow_disk,
            no_override: false,
            user: a.user.clone(),
            require: a.require.clone(),
            allow_names: a.allow_name.clone(),
            cmd: Vec::new(),
            json_keys: config::json_keys(a.json_keys, env)?,
            json_keys_case: config::json_keys_case(
                a.json_keys_case.as_deref(),
                config::json_keys(a.json_keys, env)?,
                env,
            )?,
            refs,
            refresh: None,
            templates,
        },
        refresh,
    })
}

/// A signal sync takes that ends it (exit 0): TERM, INT, QUIT (`signals::TABLE`). HUP, the
/// other one it takes, asks for a refresh now; CHLD only wakes it.
fn stops(sig: i32) -> bool {
    sig != libc::SIGHUP && signals::is_stopping(sig)
}

pub fn run(cfg: SyncConfig) -> Result<ExitCode> {
    let c = &cfg.exec;
    let target = match &c.user {
        Some(spec) => Some(privs::resolve(spec)?),
        None => None,
    };
    let outputs = Outputs::prepare(c)?;

    if let (Some(t), Some(_)) = (&target, &cfg.refresh) {
        caps::check(t.uid, false, true, "sync")?;
    }
    // No command: the start pipeline's environment step is skipped.
    let no_env = Env::default();
    let Some(r) = cfg.refresh else {
        start::once(c, &no_env, target.as_ref(), &outputs)?;
        return Ok(ExitCode::Success);
    };

    memory::wipe_freed();
    crate::log::never_block();
    // Before any thread exists: what signals::TABLE says sync takes, blocked; PIPE ignored.
    let set = signals::install(signals::Tool::Sync);
    let refresher = Refresher::start(c.store.clone(), c.refs.clone(), signals::Waker::current())?;
    let key = digest::Key::random();
    refresher.ask();
    let first = loop {
        if let Some(f) = refresher.answer() {
            break f;
        }
        if signals::wait(&set, None).is_some_and(stops) {
            return Ok(ExitCode::Success);
        }
    };
    let first = first?;
    prepare::warn_empty(&prepare::empty_paths(&first.0), &c.store);
    let secrets = prepare::secrets(first, c)?;
    start::deliver(c, &no_env, &secrets, target.as_ref(), &outputs)?;
    let mut current = key.digest(&secrets);
    drop(secrets);
    memory::scrub_stack();

    let schedule = || Instant::now() + r.every + digest::random_upto(r.splay);
    let mut next = schedule();
    let mut in_flight = false;
    loop {
        let until = (!in_flight).then(|| next.saturating_duration_since(Instant::now()));
        match signals::wait(&set, until) {
            Some(s) if stops(s) => return Ok(ExitCode::Success),
            Some(libc::SIGHUP) => next = Instant::now(),
            _ => {}
        }
        if in_flight {
            if let Some(f) = refresher.answer() {
                in_flight = false;
                next = schedule();
                let applied = (|| {
                    let f = f?;
                    let empty = prepare::empty_paths(&f.0);
                    let secrets = prepare::secrets(f, c)?;
                    let d = key.digest(&secrets);
                    if d != current {
                        start::deliver(c, &no_env, &secrets, target.as_ref(), &outputs)?;
                        prepare::warn_empty(&empty, &c.store);
                        current = d;
                        crate::log::warn(format_args!("secrets changed: files rewritten"));
                    }
                    Ok::<_, Error>(())
                })();
                memory::scrub_stack();
                if let Err(e) = applied {
                    crate::log::warn(format_args!(
                        "refresh failed, the files keep the current secrets (next try in \
                         about {}): {e}",
                        rconfig::shown_secs(r.every)
                    ));
                }
            }
        }
        if !in_flight && Instant::now() >= next {
            refresher.ask();
            in_flight = true;
        }
    }
}
