//! `exec --refresh` as a supervisor: every catchable signal forwarded to CMD, children
//! reaped as PID 1, CMD's exit status mirrored, CMD as the `--user` while the supervisor
//! stays root (with the capabilities that needs checked up front), no plaintext kept between
//! refreshes, and nothing delayed by a slow AWS. Through the real binary against moto.

mod common;
mod supervised;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use supervised::*;

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
    // The kernel's name for it: the binary's file name, cut at 15 bytes.
    let name = std::path::Path::new(bin())
        .file_name()
        .unwrap()
        .as_encoded_bytes();
    assert_eq!(comm.trim().as_bytes(), &name[..name.len().min(15)]);
    // As `docker stop` / ECS do: SIGTERM to the container's PID 1 from outside.
    // SAFETY: a signal to a process we started.
    assert_eq!(unsafe { libc::kill(pid1, libc::SIGTERM) }, 0);
    r.line("got TERM", PATIENCE);
    assert_eq!(r.wait(PATIENCE).code(), Some(42), "{}", r.stderr());
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

/// A CMD that must survive: `sleep 1000`, with SIGPIPE at its default (a forwarded SIGPIPE
/// would kill it, 141).
const SLEEPER: &str = "echo ready; exec sleep 1000";

/// CMD is still running (the supervisor's only child), then a SIGTERM ends it normally.
fn survives_and_stops_on_sigterm(r: &mut Running, what: &str) {
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        r.running(),
        "{what}: the supervisor is gone: {:?}",
        r.child.try_wait()
    );
    assert_eq!(children(r.child.id()).len(), 1, "{what}: CMD is gone");
    r.signal(libc::SIGTERM);
    assert_eq!(
        r.wait(PATIENCE).code(),
        Some(128 + libc::SIGTERM),
        "{what}: CMD did not end by the SIGTERM"
    );
}

/// Issue 20, finding 1: the supervisor's warning to a stderr pipe whose reader is gone used
/// to raise SIGPIPE, which the supervisor took and forwarded: CMD died (141). Each trigger
/// (a failed refresh, a files-only change, the start's "replaces inherited variable") is a
/// test.
#[test]
fn a_failed_refresh_with_a_closed_stderr_never_reaches_the_command() {
    let m = moto();
    // A failed refresh (every request throttled).
    let proxy = Proxy::start(&m.endpoint);
    let path = unique_path("pipe-fail");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let mut r = Running::start_with(
        exec_sh(
            &proxy.endpoint(),
            &path,
            &["--refresh", "1", "--splay", "0", "--timeout", "1"],
            SLEEPER,
        ),
        Some(closed_pipe()),
    );
    r.line("ready", PATIENCE);
    proxy.set_faults(Faults {
        throttle: 1.0,
        ..Default::default()
    });
    proxy.reset();
    let deadline = Instant::now() + PATIENCE;
    while proxy.faults_injected() == 0 {
        assert!(Instant::now() < deadline, "no refresh");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The refresh gives up after --timeout 1 and warns.
    std::thread::sleep(Duration::from_secs(2));
    survives_and_stops_on_sigterm(&mut r, "failed refresh");
}

#[test]
fn a_files_only_change_with_a_closed_stderr_never_reaches_the_command() {
    let m = moto();
    let path = unique_path("pipe-none");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let dir = Scratch::shm("pipe-none");
    let d = dir.0.to_str().unwrap().to_string();
    let mut r = Running::start_with(
        exec_sh(
            &m.endpoint,
            &path,
            &[
                "--refresh",
                "1",
                "--splay",
                "0",
                "--files",
                &d,
                "--on-change",
                "none",
            ],
            SLEEPER,
        ),
        Some(closed_pipe()),
    );
    r.line("ready", PATIENCE);
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read_to_string(dir.0.join("A")).unwrap_or_default() != "two" {
        assert!(Instant::now() < deadline, "the file was not rewritten");
        std::thread::sleep(Duration::from_millis(50));
    }
    survives_and_stops_on_sigterm(&mut r, "files-only change");
}

/// The start's warning (a secret replaces an inherited variable) left a SIGPIPE pending,
/// taken and forwarded once CMD had started.
#[test]
fn the_starts_warning_to_a_closed_stderr_never_reaches_the_command() {
    let m = moto();
    let path = unique_path("pipe-start");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let mut c = exec_sh(&m.endpoint, &path, &["--refresh", "600"], SLEEPER);
    c.env("A", "inherited");
    let mut r = Running::start_with(c, Some(closed_pipe()));
    r.line("ready", PATIENCE);
    survives_and_stops_on_sigterm(&mut r, "start warning");
}

/// The same class with a full stderr pipe whose reader stalls: a blocking write would hang
/// the supervisor (no signal forwarded, no exit mirrored) — before CMD starts (the start's
/// warning) and while it runs (failed refreshes). Lines are dropped instead.
#[test]
fn a_full_stderr_pipe_never_blocks_the_supervisor() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    let path = unique_path("pipe-full");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let mut pipe = FullPipe::new();
    let mut c = exec_sh(
        &proxy.endpoint(),
        &path,
        &["--refresh", "1", "--splay", "0", "--timeout", "1"],
        "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 7' TERM; echo \"ready A=$A\"; \
         while :; do sleep 0.1; done",
    );
    c.env("A", "inherited");
    let mut r = Running::start_with(c, Some(pipe.stdio()));
    assert_eq!(r.line("ready", PATIENCE), "ready A=one");
    proxy.set_faults(Faults {
        throttle: 1.0,
        ..Default::default()
    });
    proxy.reset();
    let deadline = Instant::now() + PATIENCE;
    while proxy.faults_injected() == 0 {
        assert!(Instant::now() < deadline, "no refresh");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    r.signal(libc::SIGUSR1);
    r.line("got USR1", Duration::from_secs(10));
    r.signal(libc::SIGTERM);
    r.line("got TERM", Duration::from_secs(10));
    assert_eq!(r.wait(Duration::from_secs(10)).code(), Some(7));
}

/// `sync --refresh` (a sidecar) with a stderr that is closed or full: its warnings are
/// dropped, it keeps the files current and exits on SIGTERM.
#[test]
fn sync_with_a_closed_or_full_stderr_keeps_working() {
    let m = moto();
    for full in [false, true] {
        let proxy = Proxy::start(&m.endpoint);
        let path = unique_path("sync-pipe");
        put_secure(&m.endpoint, &format!("{path}/A"), "one");
        let dir = Scratch::shm("sync-pipe");
        let mut pipe = FullPipe::new();
        let stderr = if full { pipe.stdio() } else { closed_pipe() };
        let mut c = ecs(&proxy.endpoint());
        c.args(["sync", "--path", &path, "--refresh", "1", "--splay", "0"])
            .args(["--timeout", "1", "--files"])
            .arg(&dir.0);
        let mut r = Running::start_with(c, Some(stderr));
        let file = dir.0.join("A");
        let wait_for = |v: &str| {
            let deadline = Instant::now() + PATIENCE;
            while std::fs::read_to_string(&file).unwrap_or_default() != v {
                assert!(Instant::now() < deadline, "full={full}: A is not {v}");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_for("one");
        // Failed refreshes (warnings), then a change.
        proxy.set_faults(Faults {
            throttle: 1.0,
            ..Default::default()
        });
        std::thread::sleep(Duration::from_secs(3));
        proxy.clear_faults();
        put_secure(&m.endpoint, &format!("{path}/A"), "two");
        wait_for("two");
        r.signal(libc::SIGTERM);
        assert_eq!(
            r.wait(Duration::from_secs(10)).code(),
            Some(0),
            "full={full}"
        );
    }
}

/// The daemon with a full stderr and `--debug` (a line per request): every request is
/// still answered; a stalled log never blocks a worker.
#[test]
fn the_daemon_with_a_full_stderr_keeps_answering() {
    let m = moto();
    let path = unique_path("daemon-pipe");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let port = free_port();
    let mut pipe = FullPipe::new();
    let mut c = ecs(&m.endpoint);
    c.args(["daemon", "--debug", "--path", &path, "--listen"])
        .arg(format!("127.0.0.1:{port}"));
    let mut r = Running::start_with(c, Some(pipe.stdio()));
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let deadline = Instant::now() + PATIENCE;
    while http_request("GET", &url("/ping"), &[], b"").is_err() {
        assert!(Instant::now() < deadline, "the daemon never answered /ping");
        assert!(r.running(), "the daemon exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..40 {
        let resp = http_request("GET", &url("/latest/secrets/A"), &[], b"")
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status, 200, "request {i}");
    }
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(Duration::from_secs(30)).code(), Some(0));
}
