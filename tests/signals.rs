//! The signal table (`supervise::signals::TABLE`, shown in docs/security.md): every row
//! holds for the real binary — the supervisor (`exec --refresh`), `sync --refresh` and the
//! daemon each do with each signal what the table says. Against moto.

mod common;
mod supervised;

use common::*;
use ecs_secrets::supervise::signals::{Fate, Row, Tool, TABLE};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::time::{Duration, Instant};
use supervised::*;

/// A CMD that reports every signal it receives (`got N`) and exits 6 once `STOP_FILE`
/// exists. Unbuffered writes: a handler that runs while a buffered write is under way fails
/// ("reentrant call").
const REPORTER: &str = r#"
import os, signal, sys, time
def h(n, f):
    os.write(1, b"got %d\n" % n)
for n in range(1, signal.SIGRTMAX + 1):
    if n in (signal.SIGKILL, signal.SIGSTOP):
        continue
    try:
        signal.signal(n, h)
    except (OSError, ValueError):
        pass
os.write(1, b"ready %d\n" % os.getpid())
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
sys.exit(6)
"#;

fn python() -> &'static str {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 is needed for the signal-reporting CMD: install it (apt-get install python3)"
    );
    "python3"
}

/// No core file from the signals whose default action dumps one.
/// No core file, and a process group of its own. The kernel discards SIGTSTP, SIGTTIN and
/// SIGTTOU sent to a process in an orphaned process group (POSIX job control), and the
/// test's own group is orphaned when whatever started the suite has exited or sits outside
/// its session (a CI runner, a detached job): then "stops" would be seen as "keeps running".
/// A group of its own, whose parent (this test) is in another group of the same session, is
/// never orphaned.
fn isolate(c: &mut Command) {
    c.process_group(0);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &rl);
            Ok(())
        });
    }
}

fn supervisor(endpoint: &str, path: &str, stop_file: &std::path::Path) -> Running {
    let mut c = ecs(endpoint);
    c.args(["exec", "--path", path, "--refresh", "600", "--"])
        .args([python(), "-c", REPORTER])
        .arg(stop_file);
    isolate(&mut c);
    Running::start(c)
}

/// What a signal's default action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dfl {
    Terminate,
    Ignore,
    Stop,
}

fn default_action(sig: i32) -> Dfl {
    match sig {
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => Dfl::Stop,
        libc::SIGCHLD | libc::SIGWINCH | libc::SIGURG | libc::SIGCONT => Dfl::Ignore,
        _ => Dfl::Terminate,
    }
}

/// The signals of a row that are tried: all of them, but only the ends of the real-time
/// range.
fn tried(r: &Row) -> Vec<i32> {
    let n = r.numbers();
    if n.len() > 2 {
        vec![n[0], n[n.len() - 1]]
    } else {
        n
    }
}

#[test]
fn the_supervisor_forwards_takes_and_ignores_what_the_table_says() {
    let m = moto();
    let path = unique_path("table-sup");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let dir = TempDir::new("table-sup");
    let stop = dir.join("stop");
    let mut r = supervisor(&m.endpoint, &path, &stop);
    r.line("ready", PATIENCE);
    // Forwarded rows: each reaches CMD; the stopping ones last (after them CMD is only
    // never started again — it goes on running here).
    let mut forwarded: Vec<(bool, i32)> = TABLE
        .iter()
        .filter(|r| r.supervisor == Fate::Forwarded)
        .flat_map(|r| r.numbers().into_iter().map(|s| (r.stopping, s)))
        .collect();
    forwarded.sort_by_key(|&(stopping, _)| stopping);
    for (_, sig) in &forwarded {
        r.signal(*sig);
        assert_eq!(
            r.line("got ", PATIENCE),
            format!("got {sig}"),
            "{:?}",
            r.seen
        );
    }
    // Taken and ignored rows: never reach CMD, and the supervisor goes on.
    for row in TABLE
        .iter()
        .filter(|r| matches!(r.supervisor, Fate::Taken | Fate::Ignored))
    {
        for sig in row.numbers() {
            r.signal(sig);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGUSR1);
    assert_eq!(
        r.line("got ", PATIENCE),
        format!("got {}", libc::SIGUSR1),
        "a taken or ignored signal reached CMD"
    );
    std::fs::write(&stop, "").unwrap();
    assert_eq!(r.wait(PATIENCE).code(), Some(6), "{}", r.stderr());
}

#[test]
fn the_supervisors_default_rows_end_it_with_the_command_or_stop_it_alone() {
    let m = moto();
    let path = unique_path("table-dfl");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    for row in TABLE.iter().filter(|r| r.supervisor == Fate::Default) {
        for sig in tried(row) {
            let dir = TempDir::new("table-dfl");
            let stop = dir.join("stop");
            let mut r = supervisor(&m.endpoint, &path, &stop);
            let cmd: u32 = r.line("ready", PATIENCE)[6..].parse().unwrap();
            r.signal(sig);
            match default_action(sig) {
                Dfl::Terminate => {
                    // The supervisor ends, and CMD with it (parent-death signal).
                    let st = r.wait(PATIENCE);
                    assert_eq!(st.signal(), Some(sig), "{}: {st:?}", row.name);
                    let deadline = Instant::now() + PATIENCE;
                    while proc_state(cmd).is_some_and(|s| s != 'Z') {
                        assert!(Instant::now() < deadline, "{}: CMD survived", row.name);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Dfl::Stop => {
                    let deadline = Instant::now() + PATIENCE;
                    while proc_state(r.child.id()) != Some('T') {
                        assert!(Instant::now() < deadline, "{}: not stopped", row.name);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    assert_ne!(proc_state(cmd), Some('T'), "{}: CMD stopped", row.name);
                    r.signal(libc::SIGCONT);
                    assert_eq!(r.line("got ", PATIENCE), format!("got {}", libc::SIGCONT));
                    std::fs::write(&stop, "").unwrap();
                    assert_eq!(r.wait(PATIENCE).code(), Some(6));
                }
                Dfl::Ignore => panic!("{}: no default row is ignored by default", row.name),
            }
        }
    }
}

/// What became of a process after a signal.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Exited(i32),
    Killed(i32),
    Stopped,
    Running,
}

/// What the table (and the kernel's default actions) say `tool` does with `sig`, for a
/// process idle between refreshes.
fn expected(tool: Tool, row: &Row, sig: i32) -> Seen {
    match row.fate(tool) {
        Fate::Forwarded => unreachable!("only the supervisor forwards"),
        Fate::Taken if row.stopping && sig != libc::SIGHUP => Seen::Exited(0),
        Fate::Taken | Fate::Ignored => Seen::Running,
        Fate::Default => match default_action(sig) {
            Dfl::Terminate => Seen::Killed(sig),
            Dfl::Ignore => Seen::Running,
            Dfl::Stop => Seen::Stopped,
        },
    }
}

fn observe(child: &mut std::process::Child, expect: &Seen) -> Seen {
    let pid = child.id();
    let wait = match expect {
        Seen::Exited(_) | Seen::Killed(_) => PATIENCE,
        _ => Duration::from_millis(700),
    };
    let deadline = Instant::now() + wait;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return match st.signal() {
                Some(s) => Seen::Killed(s),
                None => Seen::Exited(st.code().unwrap()),
            };
        }
        if *expect == Seen::Stopped && proc_state(pid) == Some('T') {
            return Seen::Stopped;
        }
        if Instant::now() > deadline {
            return if proc_state(pid) == Some('T') {
                Seen::Stopped
            } else {
                Seen::Running
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sync_does_what_the_table_says() {
    let m = moto();
    let path = unique_path("table-sync");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let mut runs = Vec::new();
    for row in TABLE {
        for sig in tried(row) {
            let dir = Scratch::shm("table-sync");
            let mut c = ecs(&m.endpoint);
            c.args(["sync", "--path", &path, "--refresh", "600", "--files"])
                .arg(&dir.0);
            isolate(&mut c);
            runs.push((row, sig, dir, Running::start(c)));
        }
    }
    for (row, _, dir, _) in &runs {
        let deadline = Instant::now() + PATIENCE;
        while !dir.0.join("A").exists() {
            assert!(
                Instant::now() < deadline,
                "{}: sync did not start",
                row.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Give every sync the time to reach its wait for signals.
    std::thread::sleep(Duration::from_millis(300));
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    for (row, sig, dir, r) in &mut runs {
        r.signal(*sig);
        let want = expected(Tool::Sync, row, *sig);
        let seen = observe(&mut r.child, &want);
        assert_eq!(seen, want, "sync, {} ({sig})", row.name);
        // HUP: a refresh now (the next one is 600 s away).
        if *sig == libc::SIGHUP {
            let deadline = Instant::now() + PATIENCE;
            while std::fs::read_to_string(dir.0.join("A")).unwrap() != "two" {
                assert!(Instant::now() < deadline, "HUP did not refresh");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn the_daemon_does_what_the_table_says() {
    let m = moto();
    let path = unique_path("table-daemon");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let mut runs = Vec::new();
    for row in TABLE {
        for sig in tried(row) {
            let mut c = ecs(&m.endpoint);
            c.args(["daemon", "--path", &path, "--listen", "127.0.0.1:0"]);
            isolate(&mut c);
            runs.push((row, sig, DaemonProcess::spawn(c)));
        }
    }
    for (row, sig, d) in &mut runs {
        d.signal(*sig);
        let want = expected(Tool::Daemon, row, *sig);
        let deadline = Instant::now()
            + match want {
                Seen::Exited(_) | Seen::Killed(_) => PATIENCE,
                _ => Duration::from_millis(700),
            };
        let seen = loop {
            if let Some(st) = d.wait(Duration::from_millis(20)) {
                break match st.signal() {
                    Some(s) => Seen::Killed(s),
                    None => Seen::Exited(st.code().unwrap()),
                };
            }
            let state = proc_state(d.pid());
            if state == Some('T') && want == Seen::Stopped {
                break Seen::Stopped;
            }
            if Instant::now() > deadline {
                break if state == Some('T') {
                    Seen::Stopped
                } else {
                    Seen::Running
                };
            }
        };
        assert_eq!(seen, want, "daemon, {} ({sig})\n{}", row.name, d.stderr());
        if seen == Seen::Running {
            assert_eq!(d.get("/ping").unwrap().status, 200, "{}", row.name);
        }
    }
}
