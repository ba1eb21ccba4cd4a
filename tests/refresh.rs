//! `exec --refresh`: picking rotated secrets up without a redeploy — restart, signal, exit
//! or files only — while a refresh that fails (AWS faults, a check a start would fail)
//! leaves CMD untouched. Through the real binary against moto; timeouts are generous (a
//! loaded machine), intervals short (`--refresh 1 --splay 0`). The supervisor itself
//! (signals, reaping, status, identity, memory) is tests/supervisor.rs.

mod common;
mod supervised;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};
use supervised::*;

/// Whether `word` stands in `text` as a word of its own: the test values ("one", "two") are
/// also parts of ordinary words of messages ("none", "network").
fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w == word)
}

#[test]
fn restart_starts_the_new_command_with_the_new_value_after_the_old_one_exited() {
    let m = moto();
    let path = unique_path("restart");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "1", "--splay", "0"],
        START_STOP,
    ));
    let first = r.line("start ", PATIENCE);
    assert!(first.ends_with(" A=one"), "{first}");
    let old_pid = first.split(' ').nth(1).unwrap().to_string();
    put_secure(&m.endpoint, &format!("{path}/A"), "two'$(x)\"");
    let stop = r.line("stop ", PATIENCE);
    assert_eq!(stop, format!("stop {old_pid}"));
    let second = r.line("start ", PATIENCE);
    assert!(second.ends_with(" A=two'$(x)\""), "{second}");
    assert_ne!(second.split(' ').nth(1).unwrap(), old_pid);
    // The stop line came first: the new CMD started only after the old one had exited.
    let at = |p: &str| r.seen.iter().position(|l| l.starts_with(p)).unwrap();
    assert!(
        at("stop ")
            < r.seen
                .iter()
                .rposition(|l| l.starts_with("start "))
                .unwrap()
    );
    // No plaintext in what ecs-secrets said about it.
    let err = r.stderr();
    assert!(
        err.contains("secrets changed: restarting the command"),
        "{err}"
    );
    assert!(!has_word(&err, "two") && !has_word(&err, "one"), "{err}");
    // Unchanged since: nothing more happens.
    let more = r.drain(Duration::from_secs(3));
    assert!(!more.iter().any(|l| l.starts_with("st")), "{more:?}");
    assert!(r.running());
}

#[test]
fn signal_on_change_runs_the_commands_handler_after_the_file_changed() {
    let m = moto();
    let path = unique_path("sighup");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let dir = Scratch::shm("sighup");
    let d = dir.0.to_str().unwrap().to_string();
    let script = format!(
        "echo \"start $$\"; trap 'echo \"hup $(cat {d}/A)\"' HUP; while :; do sleep 0.1; done"
    );
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &[
            "--files",
            &d,
            "--refresh",
            "1",
            "--splay",
            "0",
            "--on-change",
            "signal:SIGHUP",
        ],
        &script,
    ));
    r.line("start ", PATIENCE);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    assert_eq!(r.line("hup ", PATIENCE), "hup two");
    // Nothing was restarted.
    let more = r.drain(Duration::from_secs(2));
    assert!(!more.iter().any(|l| l.starts_with("start")), "{more:?}");
    assert!(r.running());
}

/// Started with SIGHUP ignored (nohup, some init systems), a shell could not trap it: the
/// `--on-change` signal goes back to its default action in CMD, so its handler still runs.
#[test]
fn an_on_change_signal_ignored_at_start_still_reaches_the_commands_handler() {
    use std::os::unix::process::CommandExt;
    let m = moto();
    let path = unique_path("sighup-ignored");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let script = "echo \"start $$\"; trap 'echo \"hup $A\"' HUP; while :; do sleep 0.1; done";
    let mut c = exec_sh(
        &m.endpoint,
        &path,
        &[
            "--refresh",
            "1",
            "--splay",
            "0",
            "--on-change",
            "signal:SIGHUP",
        ],
        script,
    );
    // SAFETY: only signal(2) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut r = Running::start(c);
    r.line("start ", PATIENCE);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    // The environment of a running process does not change: the handler runs, A is as it was.
    assert_eq!(r.line("hup ", PATIENCE), "hup one");
    assert!(r.running());
}

#[test]
fn exit_on_change_stops_the_command_and_exits_with_its_status() {
    let m = moto();
    let path = unique_path("exit");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let script = "echo start; trap 'echo stopping; exit 5' TERM; while :; do sleep 0.1; done";
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "1", "--splay", "0", "--on-change", "exit"],
        script,
    ));
    r.line("start", PATIENCE);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    r.line("stopping", PATIENCE);
    let st = r.wait(PATIENCE);
    assert_eq!(st.code(), Some(5), "{}", r.stderr());
    assert!(!r.seen.iter().skip(1).any(|l| l == "start"));
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let m = moto();
    let path = unique_path("grace");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let script = "echo \"start A=$A\"; trap 'echo ignored' TERM; while :; do sleep 0.1; done";
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "1", "--splay", "0", "--grace", "1"],
        script,
    ));
    r.line("start A=one", PATIENCE);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    r.line("ignored", PATIENCE);
    r.line("start A=two", PATIENCE);
    assert!(r.running());
}

#[test]
fn a_refresh_that_a_start_would_refuse_changes_nothing() {
    let m = moto();
    let path = unique_path("refuse");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    put_secure(&m.endpoint, &format!("{path}/B"), "b");
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "1", "--splay", "0", "--require", "B"],
        START_STOP,
    ));
    r.line("start ", PATIENCE);
    // A refused name appears, together with a change that would otherwise restart.
    put_secure(&m.endpoint, &format!("{path}/LD_PRELOAD"), "/tmp/evil.so");
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    let deadline = Instant::now() + PATIENCE;
    while !r.stderr().contains("LD_PRELOAD") {
        assert!(Instant::now() < deadline, "no warning\n{}", r.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = r.stderr();
    let warn = err.lines().find(|l| l.contains("LD_PRELOAD")).unwrap();
    assert!(
        warn.starts_with("ecs-secrets: warning: refresh failed, the command keeps"),
        "{warn}"
    );
    assert!(!err.contains("evil") && !has_word(&err, "two"), "{err}");
    let more = r.drain(Duration::from_secs(2));
    assert!(!more.iter().any(|l| l.starts_with("st")), "{more:?}");
    assert!(r.running());
}

/// One fault case: start cleanly through the proxy, turn the fault on, rotate the secret
/// in moto directly, and watch a few intervals. Returns what CMD did: `None` untouched,
/// `Some(line)` the restart's start line.
fn under_fault(faults: Faults, tag: &str) -> (Option<String>, String) {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    let path = unique_path(tag);
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let mut r = Running::start(exec_sh(
        &proxy.endpoint(),
        &path,
        &["--refresh", "1", "--splay", "0", "--timeout", "2"],
        START_STOP,
    ));
    r.line("start ", PATIENCE);
    proxy.set_faults(faults);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    let more = r.drain(Duration::from_secs(8));
    assert!(r.running(), "{tag}: CMD was taken down\n{}", r.stderr());
    let restarted = more.iter().find(|l| l.starts_with("start ")).cloned();
    if let Some(l) = &restarted {
        assert!(l.ends_with(" A=two"), "{tag}: restarted with {l}");
    } else {
        assert!(
            !more.iter().any(|l| l.starts_with("stop ")),
            "{tag}: stopped without a restart: {more:?}"
        );
    }
    let err = r.stderr();
    // Once the fault is gone, the change is picked up: never stuck.
    if restarted.is_none() {
        proxy.clear_faults();
        let l = r.line("start ", PATIENCE);
        assert!(l.ends_with(" A=two"), "{tag}: {l}");
    }
    (restarted, err)
}

#[test]
fn a_refresh_under_every_fault_leaves_the_command_running() {
    let full = |f: Faults| Faults { seed: 3, ..f };
    let cases: Vec<(&str, Faults, bool)> = vec![
        // (name, faults, must fail)
        ("none", Faults::default(), false),
        (
            "latency",
            Faults {
                latency_ms: 300,
                ..Default::default()
            },
            false,
        ),
        (
            "throttle30",
            full(Faults {
                throttle: 0.3,
                ..Default::default()
            }),
            false,
        ),
        (
            "err500_30",
            full(Faults {
                error500: 0.3,
                ..Default::default()
            }),
            false,
        ),
        (
            "reset30",
            full(Faults {
                reset: 0.3,
                ..Default::default()
            }),
            false,
        ),
        (
            "truncate30",
            full(Faults {
                truncate: 0.3,
                ..Default::default()
            }),
            false,
        ),
        (
            "stall30",
            full(Faults {
                stall: 0.3,
                ..Default::default()
            }),
            false,
        ),
        (
            "throttle100",
            Faults {
                throttle: 1.0,
                ..Default::default()
            },
            true,
        ),
        (
            "err500_100",
            Faults {
                error500: 1.0,
                ..Default::default()
            },
            true,
        ),
        (
            "reset100",
            Faults {
                reset: 1.0,
                ..Default::default()
            },
            true,
        ),
        (
            "truncate100",
            Faults {
                truncate: 1.0,
                ..Default::default()
            },
            true,
        ),
        (
            "stall100",
            Faults {
                stall: 1.0,
                ..Default::default()
            },
            true,
        ),
    ];
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .into_iter()
            .map(|(name, f, must_fail)| {
                s.spawn(move || {
                    let (restarted, err) = under_fault(f, name);
                    if must_fail {
                        assert!(restarted.is_none(), "{name}: {restarted:?}");
                        let warn = err
                            .lines()
                            .find(|l| l.contains("refresh failed"))
                            .unwrap_or_else(|| panic!("{name}: no warning\n{err}"));
                        assert!(warn.starts_with("ecs-secrets: warning: "), "{warn}");
                        assert!(!has_word(&err, "two"), "{err}");
                    }
                    if name == "none" || name == "latency" {
                        assert!(restarted.is_some(), "{name}\n{err}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn a_revoked_secret_disappears_from_the_files_and_the_command_is_untouched() {
    let m = moto();
    let path = unique_path("revoked");
    put_secure(&m.endpoint, &format!("{path}/A"), "a");
    put_secure(&m.endpoint, &format!("{path}/B"), "b");
    let dir = Scratch::shm("revoked");
    let d = dir.0.to_str().unwrap().to_string();
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &[
            "--files",
            &d,
            "--no-env",
            "--refresh",
            "1",
            "--splay",
            "0",
            "--on-change",
            "none",
        ],
        START_STOP,
    ));
    r.line("start ", PATIENCE);
    assert_eq!(std::fs::read_to_string(dir.join("B")).unwrap(), "b");
    let out =
        run(ecs(&m.endpoint).args(["revoke", "--path", &path, "--name", "B", "--serial", "1"]));
    assert_ok(&out);
    let deadline = Instant::now() + PATIENCE;
    while dir.join("B").exists() {
        assert!(
            Instant::now() < deadline,
            "B is still there\n{}",
            r.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read_to_string(dir.join("A")).unwrap(), "a");
    assert!(r.running());
    assert!(
        !r.seen.iter().skip(1).any(|l| l.starts_with("st")),
        "{:?}",
        r.seen
    );
}

#[test]
fn sigterm_during_a_restart_stops_for_good() {
    let m = moto();
    let path = unique_path("stopforgood");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let script = "echo \"start A=$A\"; trap 'echo stopping; sleep 2; echo stopped; exit 4' \
                  TERM; while :; do sleep 0.1; done";
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "1", "--splay", "0"],
        script,
    ));
    r.line("start A=one", PATIENCE);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    r.line("stopping", PATIENCE);
    // As ECS stopping the task while the restart is under way.
    r.signal(libc::SIGTERM);
    let st = r.wait(PATIENCE);
    assert_eq!(st.code(), Some(4), "{}", r.stderr());
    assert!(!r.seen.iter().any(|l| l == "start A=two"), "{:?}", r.seen);
}

#[test]
fn refresh_flags_are_checked() {
    let m = moto();
    for (args, msg) in [
        (&["--splay", "1"][..], "--splay needs --refresh SECS"),
        (
            &["--on-change", "exit"][..],
            "--on-change needs --refresh SECS",
        ),
        (&["--refresh", "0"][..], "--refresh is out of range"),
        (
            &["--refresh", "1", "--on-change", "none"][..],
            "it needs --files DIR",
        ),
        (
            &["--refresh", "1", "--on-change", "signal:NOPE"][..],
            "invalid --on-change signal",
        ),
        (
            &["--refresh", "1", "--on-change", "reload"][..],
            "invalid --on-change",
        ),
    ] {
        let mut c = ecs(&m.endpoint);
        c.args(["exec", "--path", "/x/y"])
            .args(args)
            .args(["--", "true"]);
        let out = run(&mut c);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // An initial fetch that fails: exec's rules, CMD not started.
    let out = run(exec_sh(
        &m.endpoint,
        "/x/y",
        &["--refresh", "1", "--require", "NOPE"],
        "echo started",
    )
    .stdin(Stdio::null()));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
}

#[test]
fn a_restart_whose_command_cannot_start_exits_with_execs_status() {
    let m = moto();
    let path = unique_path("gone");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let dir = TempDir::new("gone");
    let app = dir.join("app");
    std::fs::write(
        &app,
        "#!/bin/sh\necho \"start A=$A\"\ntrap 'exit 0' TERM\nwhile :; do sleep 0.1; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = ecs(&m.endpoint);
    c.args([
        "exec",
        "--path",
        &path,
        "--refresh",
        "1",
        "--splay",
        "0",
        "--",
    ])
    .arg(&app);
    let mut r = Running::start(c);
    r.line("start A=one", PATIENCE);
    std::fs::remove_file(&app).unwrap();
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    let st = r.wait(PATIENCE);
    assert_eq!(st.code(), Some(127), "{}", r.stderr());
    assert!(r.stderr().contains("command not found"), "{}", r.stderr());
}

#[test]
fn dynamodb_rotation_and_revocation_are_picked_up_too() {
    let m = moto();
    let path = unique_path("ddb");
    let ddb = |args: &[&str]| {
        let mut c = ecs(&m.endpoint);
        c.env("ECS_SECRETS_BACKEND", "dynamodb")
            .env("ECS_SECRETS_TABLE", "refresh-tests")
            .args(args);
        c
    };
    assert_ok(&run(&mut ddb(&["setup", "--path", &path])));
    let put = |name: &str, value: &str| {
        assert_ok(&stdin_run(
            &mut ddb(&["rotate", "--path", &path, "--name", name, "--payload-stdin"]),
            value.as_bytes(),
        ));
    };
    put("A", "one");
    put("B", "b");
    let mut c = ddb(&[
        "exec",
        "--path",
        &path,
        "--refresh",
        "1",
        "--splay",
        "0",
        "--",
    ]);
    c.args([
        "sh",
        "-c",
        "echo \"start A=$A B=${B-unset}\"; trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    let mut r = Running::start(c);
    assert_eq!(r.line("start ", PATIENCE), "start A=one B=b");
    put("A", "two");
    assert_eq!(r.line("start ", PATIENCE), "start A=two B=b");
    assert_ok(&run(&mut ddb(&[
        "revoke", "--path", &path, "--name", "B", "--serial", "1",
    ])));
    assert_eq!(r.line("start ", PATIENCE), "start A=two B=unset");
}

#[test]
fn a_path_that_became_empty_is_a_failed_refresh_unless_allowed_and_not_required() {
    let m = moto();
    for (require, allow) in [(false, true), (true, true), (false, false)] {
        let path = unique_path("emptied");
        put_secure(&m.endpoint, &format!("{path}/A"), "one");
        let mut args = vec!["--refresh", "1", "--splay", "0"];
        if require {
            args.extend(["--require", "A"]);
        }
        if allow {
            args.push("--allow-empty");
        }
        let mut r = Running::start(exec_sh(&m.endpoint, &path, &args, START_STOP));
        assert!(r.line("start ", PATIENCE).ends_with(" A=one"));
        assert_ok(&run(ecs(&m.endpoint).args([
            "revoke", "--path", &path, "--name", "A", "--serial", "1",
        ])));
        if !allow {
            // An emptied path is a failed refresh: CMD keeps A=one, nothing restarts.
            let deadline = Instant::now() + PATIENCE;
            while !r.stderr().contains("refresh failed") {
                assert!(Instant::now() < deadline, "{}", r.stderr());
                std::thread::sleep(Duration::from_millis(100));
            }
            let err = r.stderr();
            assert!(err.contains(&format!("no secrets under {path} ")), "{err}");
            assert!(!r
                .drain(Duration::from_secs(1))
                .iter()
                .any(|l| l.starts_with("st")));
        } else if require {
            let deadline = Instant::now() + PATIENCE;
            while !r.stderr().contains("required secret A not found") {
                assert!(Instant::now() < deadline, "{}", r.stderr());
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(!r
                .drain(Duration::from_secs(1))
                .iter()
                .any(|l| l.starts_with("st")));
        } else {
            assert!(r.line("start ", PATIENCE).ends_with(" A="));
            let err = r.stderr();
            assert!(err.contains(&format!("no secrets under {path}")), "{err}");
        }
        assert!(r.running());
    }
}

#[test]
fn a_refresh_applies_json_keys_and_references_as_a_start_does() {
    let m = moto();
    let path = unique_path("refresh-json-refs");
    let refd = unique_path("refresh-refd");
    put_secure(
        &m.endpoint,
        &format!("{path}/DB"),
        r#"{"user":"u","pw":"one"}"#,
    );
    put_secure(&m.endpoint, &format!("{refd}/a"), "r1");
    let script = "echo \"start $$ A=$A pw=$DB_pw user=$DB_user\"; \
                  trap 'echo \"stop $$\"; exit 0' TERM; while :; do sleep 0.1; done";
    let mut c = exec_sh(
        &m.endpoint,
        &path,
        &[
            "--refresh",
            "1",
            "--splay",
            "0",
            "--json-keys",
            "--resolve-refs",
        ],
        script,
    );
    c.env("A", format!("ssm:{refd}/a"));
    let mut r = Running::start(c);
    let first = r.line("start ", PATIENCE);
    assert!(first.ends_with(" A=r1 pw=one user=u"), "{first}");
    // The referenced parameter rotates: the new CMD gets its new value under A.
    put_secure(&m.endpoint, &format!("{refd}/a"), "r2");
    r.line("stop ", PATIENCE);
    let second = r.line("start ", PATIENCE);
    assert!(second.ends_with(" A=r2 pw=one user=u"), "{second}");
    // A key of the JSON secret rotates: expanded again.
    put_secure(
        &m.endpoint,
        &format!("{path}/DB"),
        r#"{"user":"u","pw":"two"}"#,
    );
    r.line("stop ", PATIENCE);
    let third = r.line("start ", PATIENCE);
    assert!(third.ends_with(" A=r2 pw=two user=u"), "{third}");
    let err = r.stderr();
    assert!(!has_word(&err, "r1") && !has_word(&err, "two"), "{err}");
    assert!(r.running());
}

/// The container credentials' token file turned into a FIFO while CMD runs: the refresh
/// that renews the credentials fails at once, saying why (it used to stall the refresher
/// for ever, silently), CMD keeps running, and once the file is back the next change is
/// picked up.
#[test]
fn a_token_file_that_became_a_fifo_fails_the_refresh_instead_of_stalling_it() {
    let m = moto();
    let path = unique_path("tokfifo-refresh");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let dir = TempDir::new("tokfifo-refresh");
    let token = dir.join("token");
    std::fs::write(&token, "pod-token").unwrap();
    let agent = EcsCredsServer::start(Some("pod-token"));
    // Credentials that expire at once: every refresh resolves them again.
    agent.set_lifetime(Duration::from_secs(1));
    let mut cmd = exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "1", "--splay", "0", "--timeout", "5"],
        START_STOP,
    );
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token);
    let mut r = Running::start(cmd);
    r.line("start ", PATIENCE);
    std::fs::remove_file(&token).unwrap();
    let c = std::ffi::CString::new(token.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let deadline = Instant::now() + PATIENCE;
    while !r.stderr().contains("it is a FIFO") {
        assert!(Instant::now() < deadline, "no warning\n{}", r.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = r.stderr();
    let warn = err.lines().find(|l| l.contains("it is a FIFO")).unwrap();
    assert!(
        warn.starts_with("ecs-secrets: warning: refresh failed, the command keeps")
            && warn.contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="),
        "{warn}"
    );
    assert!(r.running());
    std::fs::remove_file(&token).unwrap();
    std::fs::write(&token, "pod-token").unwrap();
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    let l = r.line("start ", PATIENCE);
    assert!(l.ends_with(" A=two"), "{l}");
}

/// Issue 20, finding 2: a SIGTERM from outside while CMD runs (ECS stopping the task) used
/// to be forwarded and forgotten; a refresh that then found a change restarted CMD with the
/// new secrets after the old one exited. Now a stop from outside is final.
#[test]
fn after_sigterm_from_outside_a_change_never_restarts_the_command() {
    let m = moto();
    let path = unique_path("stopfinal");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let script = "trap 'echo stopping; sleep 3; echo stopped; exit 5' TERM; \
                  echo \"start A=$A\"; while :; do sleep 0.1; done";
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "0.5", "--splay", "0"],
        script,
    ));
    r.line("start A=one", PATIENCE);
    r.signal(libc::SIGTERM);
    r.line("stopping", PATIENCE);
    // Several refreshes would find this before CMD exits.
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    let st = r.wait(PATIENCE);
    assert_eq!(st.code(), Some(5), "{}", r.stderr());
    r.drain(Duration::from_millis(300));
    assert!(r.seen.iter().any(|l| l == "stopped"), "{:?}", r.seen);
    assert!(
        !r.seen.iter().any(|l| l == "start A=two"),
        "restarted after the stop: {:?}",
        r.seen
    );
    assert!(!r.stderr().contains("restarting"), "{}", r.stderr());
}

/// A SIGTERM while a refresh is being fetched: the answer (a change) is thrown away, CMD is
/// stopped once and never started again.
#[test]
fn sigterm_during_a_refresh_fetch_stops_for_good() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    let path = unique_path("stopfetch");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let script = "trap 'echo stopping; sleep 2; exit 8' TERM; echo \"start A=$A\"; \
                  while :; do sleep 0.1; done";
    let mut r = Running::start(exec_sh(
        &proxy.endpoint(),
        &path,
        &["--refresh", "1", "--splay", "0", "--timeout", "30"],
        script,
    ));
    r.line("start A=one", PATIENCE);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    // The next refresh's answer is held back (1.5 s late) while SIGTERM arrives.
    proxy.set_faults(Faults {
        latency_ms: 1500,
        ..Default::default()
    });
    proxy.reset();
    let deadline = Instant::now() + PATIENCE;
    while proxy.total() == 0 {
        assert!(Instant::now() < deadline, "no refresh\n{}", r.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    r.signal(libc::SIGTERM);
    r.line("stopping", PATIENCE);
    assert_eq!(r.wait(PATIENCE).code(), Some(8), "{}", r.stderr());
    assert!(!r.seen.iter().any(|l| l == "start A=two"), "{:?}", r.seen);
}
