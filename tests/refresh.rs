//! `exec --refresh`: ecs-secrets stays CMD's parent, forwards signals, reaps children,
//! mirrors CMD's exit status, and picks rotated secrets up without a redeploy — restart,
//! signal, exit or files only — while a refresh that fails (AWS faults, a check a start
//! would fail) leaves CMD untouched. Through the real binary against moto; timeouts are
//! generous (a loaded machine), intervals short (`--refresh 1 --splay 0`).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something that should take about a second.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `ecs-secrets exec --refresh …`; its stdout (CMD's too) line by line, its
/// stderr collected. Killed on drop (CMD dies with it: PDEATHSIG).
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only prctl between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn ecs-secrets");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let buf = stderr.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                let mut b = buf.lock().unwrap();
                b.push_str(&l);
                b.push('\n');
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first line from now on that starts with `prefix` (panics after `within`).
    fn line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {within:?}\nstdout so far: \
                     {:?}\n--- stderr ---\n{}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Every line that arrives within `d`.
    fn drain(&mut self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l.clone());
            got.push(l);
        }
        got
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to the process we started.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "ecs-secrets did not exit within {within:?}\nstdout: {:?}\n--- stderr \
                     ---\n{}",
                    self.seen,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ecs-secrets exec --path PATH ARGS… -- sh -c SCRIPT` against `endpoint`.
fn exec_sh(endpoint: &str, path: &str, args: &[&str], script: &str) -> Command {
    let mut c = ecs(endpoint);
    c.args(["exec", "--path", path])
        .args(args)
        .args(["--", "sh", "-c", script]);
    c
}

/// A CMD that says when it starts (its pid and A) and stops, and otherwise waits.
const START_STOP: &str = "echo \"start $$ A=$A\"; trap 'echo \"stop $$\"; exit 0' TERM; \
                          while :; do sleep 0.1; done";

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
    assert!(!err.contains("two") && !err.contains("one"), "{err}");
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
fn every_forwarded_signal_reaches_the_command() {
    let m = moto();
    let path = unique_path("forward");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let sigs = [
        ("INT", libc::SIGINT),
        ("HUP", libc::SIGHUP),
        ("QUIT", libc::SIGQUIT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("WINCH", libc::SIGWINCH),
    ];
    let mut script = String::new();
    for (n, _) in sigs {
        script.push_str(&format!("trap 'echo got {n}' {n}; "));
    }
    script.push_str("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done");
    let mut r = Running::start(exec_sh(&m.endpoint, &path, &["--refresh", "600"], &script));
    r.line("ready", PATIENCE);
    for (n, sig) in sigs {
        r.signal(sig);
        r.line(&format!("got {n}"), PATIENCE);
    }
    r.signal(libc::SIGTERM);
    r.line("got TERM", PATIENCE);
    assert_eq!(r.wait(PATIENCE).code(), Some(0), "{}", r.stderr());
}

#[test]
fn the_exit_status_mirrors_the_commands_and_it_is_never_restarted() {
    let m = moto();
    let path = unique_path("status");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    for (script, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("kill -USR1 $$", 128 + libc::SIGUSR1),
        ("kill -KILL $$", 128 + libc::SIGKILL),
        ("kill -TERM $$", 128 + libc::SIGTERM),
    ] {
        let out = run(&mut exec_sh(
            &m.endpoint,
            &path,
            &["--refresh", "1", "--splay", "0"],
            &format!("echo started; {script}"),
        ));
        assert_eq!(
            out.status.code(),
            Some(code),
            "{script}: {}",
            describe(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "started\n",
            "{script}"
        );
    }
    // exec's rules when CMD cannot start: 127 not found, 126 not executable.
    let dir = TempDir::new("noexec");
    let plain = dir.join("plain");
    std::fs::write(&plain, "#!/bin/sh\necho no\n").unwrap();
    for (cmd, code) in [
        ("no-such-command-ecs-secrets", 127),
        (plain.to_str().unwrap(), 126),
    ] {
        let mut c = ecs(&m.endpoint);
        c.args(["exec", "--path", &path, "--refresh", "1", "--", cmd]);
        let out = run(&mut c);
        assert_eq!(out.status.code(), Some(code), "{cmd}: {}", describe(&out));
    }
}

#[test]
fn as_pid_1_the_orphans_of_the_command_are_reaped() {
    let m = moto();
    let path = unique_path("reap");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    // Orphans: each inner shell exits at once, leaving its `sleep` to PID 1.
    let script = "for i in 1 2 3 4 5 6; do sh -c 'sleep 0.2 &'; done; sleep 3; \
                  echo pid1=$(cat /proc/1/comm); \
                  z=0; for s in /proc/[0-9]*/stat; do \
                    case $(cut -d' ' -f3 $s 2>/dev/null) in Z) z=$((z+1));; esac; done; \
                  echo zombies=$z; exit 3";
    let mut c = Command::new("unshare");
    scrub_env(&mut c, &m.endpoint);
    c.args(["--fork", "--pid", "--mount-proc", "--", bin()])
        .args(["exec", "--path", &path, "--refresh", "600", "--"])
        .args(["sh", "-c", script]);
    let out = run(&mut c);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("pid1=ecs-secrets"), "{}", describe(&out));
    assert!(s.contains("zombies=0\n"), "{}", describe(&out));
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
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
    assert!(!err.contains("evil") && !err.contains("two"), "{err}");
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
    let more = r.drain(Duration::from_secs(6));
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
                        assert!(!err.contains("two"), "{err}");
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
    let _ = ExitStatus::from_raw(0);
}

#[test]
fn with_user_the_command_runs_as_the_user_and_the_supervisor_stays_root() {
    let m = moto();
    let path = unique_path("user");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let dir = Scratch::shm("user");
    let d = dir.0.to_str().unwrap().to_string();
    let script = format!(
        "echo \"start $(id -u):$(id -g) HOME=$HOME $(stat -c '%u:%g %a' {d}/A) $(cat {d}/A)\"; \
         trap 'exit 0' TERM; while :; do sleep 0.1; done"
    );
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &[
            "--user",
            "4242:4242",
            "--files",
            &d,
            "--refresh",
            "1",
            "--splay",
            "0",
        ],
        &script,
    ));
    assert_eq!(
        r.line("start ", PATIENCE),
        "start 4242:4242 HOME=/ 4242:4242 400 one"
    );
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    assert_eq!(
        r.line("start ", PATIENCE),
        "start 4242:4242 HOME=/ 4242:4242 400 two"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", r.child.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some("0"), "{uid}");
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
fn a_signal_before_the_command_started_ends_ecs_secrets_and_nothing_starts() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    let path = unique_path("early");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    proxy.set_faults(Faults {
        stall: 1.0,
        ..Default::default()
    });
    let mut r = Running::start(exec_sh(
        &proxy.endpoint(),
        &path,
        &["--refresh", "1", "--timeout", "60"],
        "echo started",
    ));
    let deadline = Instant::now() + PATIENCE;
    while proxy.total() == 0 {
        assert!(Instant::now() < deadline, "no request\n{}", r.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    r.signal(libc::SIGTERM);
    let st = r.wait(PATIENCE);
    assert_eq!(st.code(), Some(128 + libc::SIGTERM), "{}", r.stderr());
    assert!(r.drain(Duration::from_millis(200)).is_empty());
}

/// Where `needle` occurs in the readable memory of process `pid` (names of the mappings).
fn find_in_memory(pid: u32, needle: &[u8]) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut hits = Vec::new();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if !f[1].starts_with('r') || f.get(5).is_some_and(|n| n.starts_with("[v")) {
            continue;
        }
        let (a, b) = f[0].split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            hits.push(line.to_string());
        }
    }
    hits
}

#[test]
fn between_refreshes_the_supervisor_holds_no_plaintext() {
    let m = moto();
    let path = unique_path("plain");
    let (one, two) = ("Plain1-k9Qz7wXv", "Plain2-r4Tm8yLb");
    put_secure(&m.endpoint, &format!("{path}/A"), one);
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &["--refresh", "1", "--splay", "0"],
        START_STOP,
    ));
    r.line("start ", PATIENCE);
    // A few refreshes that find nothing new.
    std::thread::sleep(Duration::from_secs(3));
    let pid = r.child.id();
    assert_eq!(find_in_memory(pid, one.as_bytes()), Vec::<String>::new());
    put_secure(&m.endpoint, &format!("{path}/A"), two);
    r.line("start ", PATIENCE);
    std::thread::sleep(Duration::from_secs(3));
    for v in [one, two] {
        assert_eq!(
            find_in_memory(pid, v.as_bytes()),
            Vec::<String>::new(),
            "{v}"
        );
    }
    // The scan does find what is there: CMD holds the value in its environment.
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let cmd: u32 = cmd.split_whitespace().next().unwrap().parse().unwrap();
    assert!(!find_in_memory(cmd, two.as_bytes()).is_empty());
}

#[test]
fn a_stalled_refresh_delays_no_signal_and_no_exit() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    let path = unique_path("stalled");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let script = "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 9' TERM; echo ready; \
                  while :; do sleep 0.1; done";
    let mut r = Running::start(exec_sh(
        &proxy.endpoint(),
        &path,
        &["--refresh", "1", "--splay", "0", "--timeout", "120"],
        script,
    ));
    r.line("ready", PATIENCE);
    proxy.set_faults(Faults {
        stall: 1.0,
        ..Default::default()
    });
    proxy.reset();
    let deadline = Instant::now() + PATIENCE;
    while proxy.total() == 0 {
        assert!(Instant::now() < deadline, "no refresh\n{}", r.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A refresh now hangs for up to 120 s; signals and CMD's exit must not wait for it.
    let t = Instant::now();
    r.signal(libc::SIGUSR1);
    r.line("got USR1", PATIENCE);
    r.signal(libc::SIGTERM);
    r.line("got TERM", PATIENCE);
    assert_eq!(r.wait(PATIENCE).code(), Some(9), "{}", r.stderr());
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
}

#[test]
fn as_pid_1_sigterm_from_outside_is_forwarded_and_the_status_mirrored() {
    let m = moto();
    let path = unique_path("pid1term");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let script = "trap 'echo got TERM; exit 42' TERM; echo ready $$; while :; do sleep 0.1; done";
    let mut c = Command::new("unshare");
    scrub_env(&mut c, &m.endpoint);
    c.args(["--fork", "--pid", "--mount-proc", "--", bin()])
        .args(["exec", "--path", &path, "--refresh", "600", "--"])
        .args(["sh", "-c", script]);
    let mut r = Running::start(c);
    // ecs-secrets is PID 1 of the namespace, CMD its child.
    let ready = r.line("ready", PATIENCE);
    assert_ne!(ready, "ready 1");
    let kids =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", r.child.id())).unwrap();
    let pid1: i32 = kids.split_whitespace().next().unwrap().parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid1}/comm")).unwrap();
    assert_eq!(comm.trim(), "ecs-secrets");
    // As `docker stop` / ECS do: SIGTERM to the container's PID 1 from outside.
    // SAFETY: a signal to a process we started.
    assert_eq!(unsafe { libc::kill(pid1, libc::SIGTERM) }, 0);
    r.line("got TERM", PATIENCE);
    assert_eq!(r.wait(PATIENCE).code(), Some(42), "{}", r.stderr());
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
fn with_user_the_capabilities_a_supervisor_needs_are_checked_before_the_start() {
    let m = moto();
    let base = "+chown,+setuid,+setgid";
    for (caps, refused) in [
        ("+kill,+dac_override", None),
        ("+dac_override", Some("KILL")),
        ("+kill", Some("DAC_OVERRIDE")),
    ] {
        let path = unique_path("caps");
        put_secure(&m.endpoint, &format!("{path}/A"), "one");
        let dir = Scratch::shm("caps");
        let d = dir.join("app");
        let d = d.to_str().unwrap();
        let mut c = Command::new("setpriv");
        scrub_env(&mut c, &m.endpoint);
        c.arg(format!("--bounding-set=-all,{base},{caps}"))
            .args([
                bin(),
                "exec",
                "--path",
                &path,
                "--user",
                "4242:4242",
                "--files",
                d,
            ])
            .args([
                "--refresh",
                "1",
                "--splay",
                "0",
                "--on-change",
                "signal:SIGHUP",
                "--",
            ])
            .args(["sh", "-c"])
            .arg(format!(
                "trap 'echo \"hup $(cat {d}/A)\"' HUP; echo start; while :; do sleep 0.1; done"
            ));
        if let Some(cap) = refused {
            let out = run(&mut c);
            assert_eq!(out.status.code(), Some(2), "{caps}: {}", describe(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("needs the capability {cap}")),
                "{caps}: {err}"
            );
            assert!(out.stdout.is_empty() && !dir.join("app").exists(), "{caps}");
            continue;
        }
        let mut r = Running::start(c);
        r.line("start", PATIENCE);
        put_secure(&m.endpoint, &format!("{path}/A"), "two");
        assert_eq!(r.line("hup ", PATIENCE), "hup two", "{caps}");
        r.signal(libc::SIGTERM);
        assert_eq!(r.wait(PATIENCE).code(), Some(128 + libc::SIGTERM));
    }
    // sync --refresh --user rewrites the user's files: DAC_OVERRIDE.
    let dir = Scratch::shm("caps-sync");
    let mut c = Command::new("setpriv");
    scrub_env(&mut c, &m.endpoint);
    c.arg("--bounding-set=-all,+chown")
        .args([
            bin(),
            "sync",
            "--path",
            "/x/y",
            "--user",
            "4242",
            "--refresh",
            "1",
        ])
        .arg("--files")
        .arg(dir.join("app"));
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("capability DAC_OVERRIDE"));
}

#[test]
fn a_path_that_became_empty_is_applied_with_the_starts_warning_unless_required() {
    let m = moto();
    for require in [false, true] {
        let path = unique_path("emptied");
        put_secure(&m.endpoint, &format!("{path}/A"), "one");
        let mut args = vec!["--refresh", "1", "--splay", "0"];
        if require {
            args.extend(["--require", "A"]);
        }
        let mut r = Running::start(exec_sh(&m.endpoint, &path, &args, START_STOP));
        assert!(r.line("start ", PATIENCE).ends_with(" A=one"));
        assert_ok(&run(ecs(&m.endpoint).args([
            "revoke", "--path", &path, "--name", "A", "--serial", "1",
        ])));
        if require {
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
