//! ecs-secrets: secrets from SSM Parameter Store or DynamoDB+KMS into containers.
//!
//! `run` is the whole program: argv[0] → mode, flags + environment → config, then one command.

// The daemon's connection future nests every store operation's future (create now re-reads,
// repairs and checks collisions), which passes rustc's default layout query depth of 128.
#![recursion_limit = "256"]

pub mod argv;
pub mod aws;
pub mod build_info;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod duration;
pub mod error;
pub mod exec;
pub mod fsread;
pub mod inject;
pub mod log;
pub mod names;
pub mod privs;
pub mod refs;
pub mod runtime;
pub mod secret;
pub mod sort;
pub mod start;
pub mod store;
pub mod supervise;
pub mod tls;

use argh::FromArgs;
use cli::{Command, HasShared, TopLevel};
use config::{Env, PathArity};
use error::{Error, ExitCode, Result};
use std::ffi::OsString;

pub const VERSION: &str = build_info::VERSION;

/// `VERSION (COMMIT TARGET)`, what `--version` prints (src/build_info.rs).
pub use build_info::long_version;

/// Run the program with these arguments (argv[0] included) and return the exit status.
pub fn run(args: Vec<OsString>) -> i32 {
    harden();
    let (args, implied) = with_mode(args);
    // `env` in shell format is evaluated by a shell that may ignore our exit status: every
    // failure, whatever its cause (a panic included), must leave on stdout only the line that
    // makes that shell exit.
    let shell_line = cmd::env::wants_failure_line(&args);
    if shell_line {
        cmd::env::install_signal_guard();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            cmd::env::print_failure_line();
        }));
    }
    match dispatch(args, implied) {
        Ok(code) => code.into(),
        Err(e) => {
            log::error(format_args!("{e}"));
            if shell_line {
                cmd::env::print_failure_line();
            }
            e.exit_code().into()
        }
    }
}

/// No core dumps while plaintext is in memory (panics abort in release builds, and abort
/// would otherwise dump). PR_SET_DUMPABLE is reset by execve, so the application keeps
/// its own core-dump settings.
fn harden() {
    // SAFETY: prctl with these constant arguments has no memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// The mode implied by the program's file name (multi-call binary).
fn mode_from_argv0(argv0: &OsString) -> Option<&'static str> {
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    match name {
        "ecs-secrets-exec" => Some("exec"),
        "ecs-secrets-env" => Some("env"),
        _ => None,
    }
}

/// The arguments after argv[0], with the mode its file name implies put first (and whether
/// it did).
fn with_mode(args: Vec<OsString>) -> (Vec<OsString>, bool) {
    let mut args = args.into_iter();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("ecs-secrets"));
    let mut rest: Vec<OsString> = args.collect();
    let mode = mode_from_argv0(&argv0);
    if let Some(mode) = mode {
        rest.insert(0, OsString::from(mode));
    }
    (rest, mode.is_some())
}

fn dispatch(mut rest: Vec<OsString>, implied: bool) -> Result<ExitCode> {
    // Everything after `--` is exec's command, passed on byte for byte (it may not be UTF-8).
    let mut raw_cmd: Option<Vec<OsString>> = None;
    if rest.first().is_some_and(|a| a == "exec") {
        if let Some(pos) = rest.iter().position(|a| a == "--") {
            raw_cmd = Some(rest.split_off(pos + 1));
            rest.pop();
        }
    }
    let strs: Vec<String> = rest
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.to_str().map(String::from).ok_or_else(|| {
                let n = if implied { i } else { i + 1 };
                Error::usage(format!("argument {n} is not valid UTF-8"))
            })
        })
        .collect::<Result<_>>()?;
    let walked = argv::walk(&strs, implied)?;
    let refs: Vec<&str> = walked.args.iter().map(String::as_str).collect();
    let top = match TopLevel::from_args(&["ecs-secrets"], &refs) {
        Ok(t) => t,
        Err(early) => {
            return if early.status.is_ok() {
                println!("{}", early.output.trim_end());
                Ok(ExitCode::Success)
            } else {
                Err(Error::usage(format!(
                    "{}\nRun `ecs-secrets --help` for usage.",
                    argv::argh_message(&early.output, &walked)
                )))
            };
        }
    };
    if top.version {
        println!("ecs-secrets {}", long_version());
        return Ok(ExitCode::Success);
    }
    let Some(command) = top.command else {
        // `ecs-secrets` alone: the help, on stderr (stdout may be read by a script), exit 2.
        if let Err(help) = TopLevel::from_args(&["ecs-secrets"], &["--help"]) {
            eprintln!("{}", help.output.trim_end());
        }
        return Ok(ExitCode::Usage);
    };

    let env = Env::from_process();
    let store_cfg = |a: &dyn HasShared, arity| {
        let c = config::store_config(&a.shared(), &env, arity)?;
        log::set_debug(c.debug);
        Ok::<_, Error>(c)
    };
    match command {
        Command::Exec(mut a) => {
            let cfg = match raw_cmd {
                Some(cmd) => {
                    a.cmd.clear();
                    config::exec_config_with_cmd(&a, &env, cmd)?
                }
                None => config::exec_config(&a, &env)?,
            };
            log::set_debug(cfg.store.debug);
            cmd::exec::run(cfg, &env)
        }
        Command::Env(a) => {
            let cfg = config::env_config(&a, &env)?;
            log::set_debug(cfg.store.debug);
            cmd::env::run(cfg)
        }
        Command::Create(a) => {
            let cfg = store_cfg(&a, PathArity::One)?;
            let name = config::validate_name(&a.name)?;
            let src =
                config::payload_source(&a.payload, &a.payload_location, a.payload_stdin, None)?;
            cmd::admin::create(&cfg, &name, src)
        }
        Command::Rotate(a) => {
            let cfg = store_cfg(&a, PathArity::One)?;
            let name = config::validate_name(&a.name)?;
            let src = config::payload_source(
                &a.payload,
                &a.payload_location,
                a.payload_stdin,
                a.generate.as_ref(),
            )?;
            cmd::admin::rotate(&cfg, &name, src)
        }
        Command::Revoke(a) => {
            let cfg = store_cfg(&a, PathArity::One)?;
            let name = config::validate_name(&a.name)?;
            let serial = config::parse_serial(&a.serial)?;
            cmd::admin::revoke(&cfg, &name, serial)
        }
        Command::Fetch(a) => {
            let cfg = store_cfg(&a, PathArity::One)?;
            let name = config::validate_name(&a.name)?;
            let serial = a.serial.as_deref().map(config::parse_serial).transpose()?;
            cmd::admin::fetch(&cfg, &name, serial)
        }
        Command::List(a) => {
            let cfg = store_cfg(&a, PathArity::Many)?;
            cmd::admin::list(&cfg, a.all_versions)
        }
        Command::RotateKey(a) => {
            let cfg = store_cfg(&a, PathArity::One)?;
            cmd::dynamo_admin::rotate_key(&cfg)
        }
        Command::Import(a) => {
            let cfg = store_cfg(&a, PathArity::One)?;
            cmd::import_source(&cfg, &a)
        }
        Command::Setup(a) => {
            let arity = if a.cloudformation {
                PathArity::Optional
            } else {
                PathArity::One
            };
            let cfg = store_cfg(&a, arity)?;
            cmd::setup::run(&cfg, &a)
        }
        Command::Daemon(a) => {
            let cfg = store_cfg(&a, PathArity::One)?;
            daemon::run(&cfg, &a, &env)
        }
        Command::Sync(a) => {
            let cfg = cmd::sync::config(&a, &env)?;
            log::set_debug(cfg.exec.store.debug);
            cmd::sync::run(cfg)
        }
        Command::InstallLinks(a) => cmd::links::run(&a.dir),
        Command::Completions(a) => cli::generate::completions(&a.shell),
        Command::Man(_) => cli::generate::man(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_selects_the_mode() {
        assert_eq!(
            mode_from_argv0(&"/usr/bin/ecs-secrets-exec".into()),
            Some("exec")
        );
        assert_eq!(mode_from_argv0(&"ecs-secrets-env".into()), Some("env"));
        assert_eq!(mode_from_argv0(&"/ecs-secrets".into()), None);
    }
}
