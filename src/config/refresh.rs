//! The refresh flags (`--refresh SECS [--splay S] [--on-change …] [--grace S]`), validated.

use crate::error::{Error, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;
use std::time::Duration;

/// What to do when a refresh finds changed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    /// SIGTERM, SIGKILL after the grace period, then start CMD again with the new values.
    Restart,
    /// Send this signal to CMD; nothing is restarted.
    Signal(Signal),
    /// Stop CMD as for a restart, then exit with its status (so ECS replaces the task).
    Exit,
    /// Files only.
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refresh {
    pub every: Duration,
    pub splay: Duration,
    pub on_change: OnChange,
    pub grace: Duration,
}

/// Bounds: below a tenth of a second is a busy loop; above a week is no refresh at all.
pub const MIN_REFRESH_SECS: f64 = 0.1;
pub const MAX_REFRESH_SECS: f64 = 7.0 * 24.0 * 3600.0;
pub const DEFAULT_GRACE_SECS: f64 = 10.0;
pub const MAX_GRACE_SECS: f64 = 3600.0;

/// The refresh flags as typed.
#[derive(Debug, Default, Clone)]
pub struct RefreshArgs<'a> {
    pub refresh: Option<&'a str>,
    pub splay: Option<&'a str>,
    pub on_change: Option<&'a str>,
    pub grace: Option<&'a str>,
}

/// A duration for messages: `300 s`, `0.5 s`.
pub fn shown_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

fn secs(v: &str, flag: &str, min: f64, max: f64) -> Result<Duration> {
    crate::duration::parse(v, flag, min, max)
}

/// `signal:NAME` takes `SIGHUP`, `HUP` (any case) or a number.
fn signal(name: &str) -> Result<Signal> {
    let bad = || {
        Error::usage(
            "invalid --on-change signal: use signal:NAME with a signal name such as SIGHUP \
             or SIGUSR1",
        )
    };
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match Signal::from_str(&full) {
        Ok(Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGCHLD) | Err(_) => Err(bad()),
        Ok(s) => Ok(s),
    }
}

/// `None` without `--refresh` (then the other three must be absent too). `has_files`:
/// `--on-change none` rewrites files only, so it needs `--files`. `sync` passes no
/// on-change and no grace.
pub fn parse(a: &RefreshArgs<'_>, has_files: bool) -> Result<Option<Refresh>> {
    let Some(r) = a.refresh else {
        for (given, flag) in [
            (a.splay.is_some(), "--splay"),
            (a.on_change.is_some(), "--on-change"),
            (a.grace.is_some(), "--grace"),
        ] {
            if given {
                return Err(Error::usage(format!("{flag} needs --refresh SECS")));
            }
        }
        return Ok(None);
    };
    let every = secs(r, "--refresh", MIN_REFRESH_SECS, MAX_REFRESH_SECS)?;
    let splay = match a.splay {
        Some(s) => secs(s, "--splay", 0.0, MAX_REFRESH_SECS)?,
        None => every / 10,
    };
    let on_change =
        match a.on_change.map(str::trim) {
            None | Some("restart") => OnChange::Restart,
            Some("exit") => OnChange::Exit,
            Some("none") => {
                if !has_files {
                    return Err(Error::usage(
                        "--on-change none only rewrites files: it needs --files DIR or --template \
                         SRC:DEST",
                    ));
                }
                OnChange::Nothing
            }
            Some(s) if s.starts_with("signal:") => OnChange::Signal(signal(&s["signal:".len()..])?),
            Some(_) => return Err(Error::usage(
                "invalid --on-change: use restart, signal:NAME (e.g. signal:SIGHUP), exit or none",
            )),
        };
    let grace = match a.grace {
        Some(g) => secs(g, "--grace", 0.0, MAX_GRACE_SECS)?,
        None => Duration::from_secs_f64(DEFAULT_GRACE_SECS),
    };
    Ok(Some(Refresh {
        every,
        splay,
        on_change,
        grace,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(r: &str, s: Option<&str>, o: Option<&str>, files: bool) -> Result<Option<Refresh>> {
        parse(
            &RefreshArgs {
                refresh: Some(r),
                splay: s,
                on_change: o,
                grace: None,
            },
            files,
        )
    }

    #[test]
    fn defaults_and_forms() {
        let r = p("60", None, None, false).unwrap().unwrap();
        assert_eq!(r.every, Duration::from_secs(60));
        assert_eq!(r.splay, Duration::from_secs(6));
        assert_eq!(r.on_change, OnChange::Restart);
        assert_eq!(r.grace, Duration::from_secs(10));
        for (s, sig) in [
            ("signal:SIGHUP", Signal::SIGHUP),
            ("signal:hup", Signal::SIGHUP),
            ("signal:USR2", Signal::SIGUSR2),
            ("signal:10", Signal::SIGUSR1),
        ] {
            let r = p("1", Some("0"), Some(s), false).unwrap().unwrap();
            assert_eq!(r.on_change, OnChange::Signal(sig), "{s}");
            assert_eq!(r.splay, Duration::ZERO);
        }
        assert_eq!(
            p("1", None, Some("none"), true).unwrap().unwrap().on_change,
            OnChange::Nothing
        );
    }

    #[test]
    fn refused() {
        for r in ["0", "-1", "x", "NaN", "0.01", "1e9", " 5", "5 ", "\t5"] {
            assert!(p(r, None, None, false).is_err(), "{r}");
        }
        for o in [
            "signal:",
            "signal:NOPE",
            "signal:KILL",
            "signal:0",
            "reload",
            "none",
        ] {
            assert!(p("1", None, Some(o), false).is_err(), "{o}");
        }
        let e = parse(
            &RefreshArgs {
                splay: Some("1"),
                ..Default::default()
            },
            true,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "--splay needs --refresh SECS");
    }
}
