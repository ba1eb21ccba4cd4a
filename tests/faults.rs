//! Faults between the binary and AWS (a fault-injecting proxy in front of moto): a start
//! either succeeds with every secret exactly right, or fails closed — the command is not
//! started, `env` prints nothing partial — within `--timeout` + 1 s. Never a hang. The
//! daemon, started before the faults, answers each read with the exact payload or a JSON
//! 502/504 within `--timeout` + 1 s, and serves again once upstream recovers.
//! The same matrix runs for ssm and for dynamodb, whose reads are faulted on the Query, on
//! the KMS Decrypt, and on both. The runs write fault × outcome tables to
//! target/fault-report.md (ssm) and target/fault-report-dynamodb.md.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT_SECS: u64 = 4;
const SECRETS: usize = 25; // three pages
/// Concurrent reads of single secrets per daemon case.
const DAEMON_GETS: usize = 4;

/// Runs one command through the proxy under `faults` (the runner sets them when it is
/// ready) and checks its all-or-nothing result.
type Runner = fn(&Proxy, &Faults, &Target, &[(String, String)]) -> Run;

/// What is read: a path of one backend.
struct Target {
    path: String,
    /// `ECS_SECRETS_BACKEND`, when not the default (ssm).
    backend: Option<&'static str>,
}

impl Target {
    /// The binary against `endpoint`, with this target's backend.
    fn ecs(&self, endpoint: &str) -> std::process::Command {
        let mut c = ecs(endpoint);
        if let Some(b) = self.backend {
            c.env("ECS_SECRETS_BACKEND", b);
        }
        c
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Complete,
    FailedClosed,
    /// The daemon: some reads exact, the others failed closed (502/504).
    Mixed,
}

struct Run {
    outcome: Outcome,
    /// The table cell for the outcome.
    cell: String,
    /// exec/env: the whole run; daemon: the slowest answer.
    took: Duration,
    /// Requests the proxy received (daemon: the reads, not the start-up check) and how
    /// many of them it disturbed.
    requests: usize,
    injected: usize,
    /// The first error message, if any.
    error: String,
}

impl Run {
    fn one_shot(proxy: &Proxy, outcome: Outcome, took: Duration, stderr: &str) -> Run {
        let cell = match outcome {
            Outcome::Complete => "all secrets, exact",
            _ => "failed closed",
        };
        let error = stderr
            .lines()
            .find(|l| l.starts_with("ecs-secrets: error:"))
            .unwrap_or_default();
        Run {
            outcome,
            cell: cell.into(),
            took,
            requests: proxy.total(),
            injected: proxy.faults_injected(),
            error: error.into(),
        }
    }
}

/// The part of an error worth a table cell: the deadline and the last cause.
fn cause_cell(msg: &str) -> String {
    let l = msg.split_once("within").map(|(_, r)| r).unwrap_or(msg);
    l.split("; check")
        .next()
        .unwrap_or(l)
        .chars()
        .take(110)
        .collect::<String>()
        .replace('|', "/")
}

struct Case {
    name: &'static str,
    faults: Faults,
}

fn cases() -> Vec<Case> {
    let f = |name, faults| Case { name, faults };
    vec![
        f("none", Faults::default()),
        f(
            "latency 300 ms",
            Faults {
                latency_ms: 300,
                ..Default::default()
            },
        ),
        f(
            "throttle 30%",
            Faults {
                throttle: 0.3,
                seed: 7,
                ..Default::default()
            },
        ),
        f(
            "HTTP 500 30%",
            Faults {
                error500: 0.3,
                seed: 8,
                ..Default::default()
            },
        ),
        f(
            "reset 30%",
            Faults {
                reset: 0.3,
                seed: 9,
                ..Default::default()
            },
        ),
        f(
            "truncate 30%",
            Faults {
                truncate: 0.3,
                seed: 10,
                ..Default::default()
            },
        ),
        f(
            "stall 30%",
            Faults {
                stall: 0.3,
                seed: 11,
                ..Default::default()
            },
        ),
        f(
            "throttle 100%",
            Faults {
                throttle: 1.0,
                ..Default::default()
            },
        ),
        f(
            "HTTP 500 100%",
            Faults {
                error500: 1.0,
                ..Default::default()
            },
        ),
        f(
            "reset 100%",
            Faults {
                reset: 1.0,
                ..Default::default()
            },
        ),
        f(
            "truncate 100%",
            Faults {
                truncate: 1.0,
                ..Default::default()
            },
        ),
        f(
            "stall 100%",
            Faults {
                stall: 1.0,
                ..Default::default()
            },
        ),
    ]
}

/// `exec`: the command dumps the environment to a file only if it is started.
fn run_exec(proxy: &Proxy, faults: &Faults, target: &Target, expected: &[(String, String)]) -> Run {
    proxy.set_faults(faults.clone());
    let dir = TempDir::new("fault-exec");
    let dump = dir.join("env");
    let mut c = target.ecs(&proxy.endpoint());
    c.args([
        "exec",
        "--path",
        &target.path,
        "--timeout",
        &TIMEOUT_SECS.to_string(),
        "--",
    ])
    .args(["sh", "-c", "env > \"$1\"", "sh"])
    .arg(&dump);
    let start = Instant::now();
    let out = run_with(&mut c, None, Duration::from_secs(TIMEOUT_SECS + 10))
        .unwrap_or_else(|o| panic!("exec hung\n{}", describe(&o)));
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        let env = std::fs::read_to_string(&dump).expect("started means the dump exists");
        for (name, value) in expected {
            let var = name.rsplit('/').next().unwrap();
            assert!(
                env.contains(&format!("\n{var}={value}\n"))
                    || env.starts_with(&format!("{var}={value}\n")),
                "exec started with a wrong or missing {var}\n{stderr}"
            );
        }
        Run::one_shot(proxy, Outcome::Complete, took, &stderr)
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(!dump.exists(), "exec failed but the command was started");
        assert!(stderr.contains("ecs-secrets: error:"), "{stderr}");
        Run::one_shot(proxy, Outcome::FailedClosed, took, &stderr)
    }
}

/// `env`: stdout is either every export, exactly, or only the failure line.
fn run_env(proxy: &Proxy, faults: &Faults, target: &Target, expected: &[(String, String)]) -> Run {
    proxy.set_faults(faults.clone());
    let mut c = target.ecs(&proxy.endpoint());
    c.args([
        "env",
        "--path",
        &target.path,
        "--timeout",
        &TIMEOUT_SECS.to_string(),
    ]);
    let start = Instant::now();
    let out = run_with(&mut c, None, Duration::from_secs(TIMEOUT_SECS + 10))
        .unwrap_or_else(|o| panic!("env hung\n{}", describe(&o)));
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        let mut want: Vec<String> = expected
            .iter()
            .map(|(n, v)| format!("export {}='{v}'", n.rsplit('/').next().unwrap()))
            .collect();
        want.sort();
        let got: Vec<String> = stdout.lines().map(String::from).collect();
        assert_eq!(got, want, "env printed something other than every secret");
        Run::one_shot(proxy, Outcome::Complete, took, &stderr)
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(stdout.lines().count(), 1, "partial output: {stdout}");
        assert!(
            stdout.contains("exit 1") && !stdout.contains("export"),
            "{stdout}"
        );
        Run::one_shot(proxy, Outcome::FailedClosed, took, &stderr)
    }
}

/// `daemon`: started (and its start-up check passed) before the faults, then
/// `DAEMON_GETS` concurrent reads of single secrets without a cache. Each answer is the
/// exact payload or a JSON 502/504, within the deadline; afterwards, with the faults
/// cleared, it serves again.
fn run_daemon(
    proxy: &Proxy,
    faults: &Faults,
    target: &Target,
    expected: &[(String, String)],
) -> Run {
    let timeout = TIMEOUT_SECS.to_string();
    let mut c = target.ecs(&proxy.endpoint());
    c.args(["daemon", "--path", &target.path, "--listen", "127.0.0.1:0"])
        .args(["--cache-ttl", "0", "--timeout", &timeout]);
    let d = DaemonProcess::spawn(c);
    proxy.reset(); // count only the reads
    proxy.set_faults(faults.clone());
    let read = |(full, value): &(String, String)| {
        let name = full.rsplit('/').next().unwrap();
        let start = Instant::now();
        let r = d
            .get(&format!("/latest/secrets/{name}"))
            .unwrap_or_else(|e| panic!("GET {name}: {e} (a hang?)\n{}", d.stderr()));
        let took = start.elapsed();
        assert!(
            took <= Duration::from_secs(TIMEOUT_SECS + 1),
            "GET {name} took {took:?} (deadline {TIMEOUT_SECS} s)\n{}",
            d.stderr()
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        let error = match r.status {
            200 => {
                let want = serde_json::json!({
                    "name": name, "serial": 1, "payload": value, "active": true
                });
                assert_eq!(v, want, "GET {name} answered 200 with something else");
                None
            }
            502 | 504 => {
                let msg = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
                assert_eq!(v.as_object().unwrap().len(), 1, "more than the error: {v}");
                assert!(
                    !msg.contains(value.as_str()),
                    "the value is in the error: {v}"
                );
                Some(msg.to_string())
            }
            s => panic!("GET {name}: HTTP {s}, expected 200, 502 or 504: {v}"),
        };
        (r.status, took, error)
    };
    let picks: Vec<&(String, String)> = expected
        .iter()
        .step_by(expected.len() / DAEMON_GETS)
        .take(DAEMON_GETS)
        .collect();
    let answers: Vec<(u16, Duration, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = picks.iter().map(|p| s.spawn(|| read(p))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let exact = answers.iter().filter(|a| a.0 == 200).count();
    let mut failed: Vec<u16> = answers.iter().map(|a| a.0).filter(|s| *s != 200).collect();
    failed.sort();
    failed.dedup();
    let failed_n = answers.len() - exact;
    let statuses = failed
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("/");
    let (outcome, cell) = match (exact, failed_n) {
        (_, 0) => (Outcome::Complete, format!("{exact} reads, all exact")),
        (0, _) => (
            Outcome::FailedClosed,
            format!("{failed_n} reads, all failed closed ({statuses})"),
        ),
        _ => (
            Outcome::Mixed,
            format!("{exact} exact, {failed_n} failed closed ({statuses})"),
        ),
    };
    let (requests, injected) = (proxy.total(), proxy.faults_injected());
    // Upstream is back: so is the daemon (no poisoned connection or cache entry).
    proxy.clear_faults();
    let (status, _, _) = read(picks[0]);
    assert_eq!(status, 200, "the daemon did not recover\n{}", d.stderr());
    let error = answers.iter().find_map(|a| a.2.clone()).unwrap_or_default();
    Run {
        outcome,
        cell,
        took: answers.iter().map(|a| a.1).max().unwrap(),
        requests,
        injected,
        error,
    }
}

/// Runs every case for exec, env and the daemon against `target` with the faults limited
/// to `only_op` (all operations when `None`); returns the table rows, in order.
fn matrix(
    m: &Moto,
    target: &Target,
    only_op: Option<&str>,
    expected: &[(String, String)],
) -> Vec<String> {
    let modes: [(&str, Runner); 3] = [("exec", run_exec), ("env", run_env), ("daemon", run_daemon)];
    let faulted = only_op.unwrap_or("all");
    let backend = target.backend.unwrap_or("ssm");
    let mut table: BTreeMap<(usize, &str), String> = BTreeMap::new();
    for (mode, runner) in modes {
        // Cases run concurrently (each with its own proxy) to keep the wall time down.
        let rows: Vec<(usize, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = cases()
                .into_iter()
                .enumerate()
                .map(|(i, case)| {
                    s.spawn(move || {
                        let proxy = Proxy::start(&m.endpoint);
                        let faults = Faults {
                            only_op: only_op.map(String::from),
                            ..case.faults.clone()
                        };
                        let run = runner(&proxy, &faults, target, expected);
                        let what = format!("{backend} {mode} under {} ({faulted})", case.name);
                        assert!(
                            run.took <= Duration::from_secs(TIMEOUT_SECS + 1),
                            "{what}: took {:?} (deadline {TIMEOUT_SECS} s)\n{}",
                            run.took,
                            run.error
                        );
                        if case.name == "none"
                            || case.name.starts_with("latency")
                            || case.name == "throttle 30%"
                        {
                            assert_eq!(
                                run.outcome,
                                Outcome::Complete,
                                "{what} must succeed\n{}",
                                run.error
                            );
                        }
                        if case.name.ends_with("100%") {
                            assert_eq!(run.outcome, Outcome::FailedClosed, "{what}");
                        }
                        if mode != "daemon" {
                            assert_ne!(run.outcome, Outcome::Mixed, "{what}");
                        }
                        (
                            i,
                            format!(
                                "| {} | {faulted} | {mode} | {} | {:.2} s | {} | {} | {} |",
                                case.name,
                                run.cell,
                                run.took.as_secs_f64(),
                                run.requests,
                                run.injected,
                                cause_cell(&run.error),
                            ),
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("case thread"))
                .collect()
        });
        for (i, row) in rows {
            table.insert((i, mode), row);
        }
    }
    table.into_values().collect()
}

fn write_report(file: &str, title: &str, rows: &[String]) {
    let mut report = format!(
        "{title}, {SECRETS} secrets, --timeout {TIMEOUT_SECS}. daemon: started \
         before the faults, then {DAEMON_GETS} concurrent GET /latest/secrets/{{name}} with \
         --cache-ttl 0; its time is the slowest answer, its requests exclude the start-up \
         check.\n\n\
         | fault | faulted operations | command | outcome | time | requests | faults injected | error (if any) |\n\
         |---|---|---|---|---:|---:|---:|---|\n"
    );
    for row in rows {
        report.push_str(row);
        report.push('\n');
    }
    println!("{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::write(target.join(file), &report).unwrap();
}

#[test]
fn every_fault_gives_all_or_nothing_within_the_deadline() {
    let m = moto();
    let target = Target {
        path: unique_path("faults"),
        backend: None,
    };
    let expected = put_many(&m.endpoint, &target.path, SECRETS);
    let rows = matrix(m, &target, None, &expected);
    write_report("fault-report.md", "Fault × outcome, ssm (3 pages)", &rows);
}

/// dynamodb: `setup`, then `SECRETS` secrets created through the binary. Returns the
/// (path/NAME, value) pairs, as `put_many` does for ssm.
fn seed_dynamodb(m: &Moto, target: &Target) -> Vec<(String, String)> {
    assert_ok(&run(target.ecs(&m.endpoint).args([
        "setup",
        "--path",
        &target.path,
    ])));
    let expected: Vec<(String, String)> = (0..SECRETS)
        .map(|i| {
            (
                format!("{}/S{i:02}", target.path),
                format!("value-{i:02}-dynamo"),
            )
        })
        .collect();
    std::thread::scope(|s| {
        for chunk in expected.chunks(SECRETS.div_ceil(4)) {
            s.spawn(move || {
                for (full, value) in chunk {
                    let name = full.rsplit('/').next().unwrap();
                    let out = stdin_run(
                        target.ecs(&m.endpoint).args([
                            "create",
                            "--path",
                            &target.path,
                            "--name",
                            name,
                            "--payload-stdin",
                        ]),
                        value.as_bytes(),
                    );
                    assert_ok(&out);
                }
            });
        }
    });
    expected
}

#[test]
fn dynamodb_faults_on_query_decrypt_or_both_give_all_or_nothing_within_the_deadline() {
    let m = moto();
    let target = Target {
        path: unique_path("faults-ddb"),
        backend: Some("dynamodb"),
    };
    let expected = seed_dynamodb(m, &target);
    let mut rows = Vec::new();
    for only_op in [Some("Query"), Some("Decrypt"), None] {
        rows.extend(matrix(m, &target, only_op, &expected));
    }
    write_report(
        "fault-report-dynamodb.md",
        "Fault × outcome, dynamodb (one Query page, one KMS Decrypt)",
        &rows,
    );
}

#[test]
fn throttling_30_percent_on_200_secrets_still_starts() {
    let m = moto();
    let path = unique_path("throttle-200");
    let expected = put_many(&m.endpoint, &path, 200);
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        throttle: 0.3,
        seed: 42,
        ..Default::default()
    });
    let mut c = ecs(&proxy.endpoint());
    c.args([
        "env",
        "--format",
        "json",
        "--path",
        &path,
        "--timeout",
        "20",
    ]);
    let out = run(&mut c);
    let got: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(got.as_object().unwrap().len(), expected.len());
    for (name, value) in &expected {
        assert_eq!(
            got[name.rsplit('/').next().unwrap()].as_str(),
            Some(value.as_str())
        );
    }
    assert!(
        proxy.faults_injected() > 3,
        "faults were injected: {}",
        proxy.faults_injected()
    );
}

/// One start that fails on the first `n` requests, then works: it keeps retrying while the
/// deadline has time (there is no attempt count to run out of first).
#[test]
fn server_errors_are_retried_until_the_deadline_not_for_ten_attempts() {
    let m = moto();
    let path = unique_path("eleven-500s");
    let expected = put_many(&m.endpoint, &path, 3);
    let proxy = Proxy::start(&m.endpoint);
    // Eleven failures: more than the 10 attempts a start used to have. The backoff windows
    // after them add up to at most 36.2 s, so they fit in the deadline whatever the jitter.
    proxy.set_faults(Faults {
        error500: 1.0,
        first: 11,
        ..Default::default()
    });
    let mut c = ecs(&proxy.endpoint());
    c.args([
        "env",
        "--format",
        "json",
        "--path",
        &path,
        "--timeout",
        "50",
    ]);
    let out = run_with(&mut c, None, Duration::from_secs(70))
        .unwrap_or_else(|o| panic!("hung\n{}", describe(&o)));
    let got: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(got.as_object().unwrap().len(), expected.len(), "{got}");
    assert_eq!(proxy.faults_injected(), 11);
    assert_eq!(proxy.count("GetParametersByPath"), 12, "{:?}", proxy.ops());
}

/// An answer that arrives slowly but steadily (a piece every 400 ms, 4 s in all) is read to
/// the end: attempts are given up when no byte arrives for a while (half the deadline),
/// never because the whole answer takes long. Cutting it off would re-send it forever.
#[test]
fn a_slow_answer_that_keeps_arriving_is_not_cut_off_and_resent() {
    let m = moto();
    let path = unique_path("trickle");
    let expected = put_many(&m.endpoint, &path, 2);
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        trickle_ms: 400,
        only_op: Some("GetParametersByPath".into()),
        ..Default::default()
    });
    let dir = TempDir::new("trickle");
    let dump = dir.join("env");
    let mut c = ecs(&proxy.endpoint());
    c.args(["exec", "--path", &path, "--timeout", "8", "--"])
        .args(["sh", "-c", "env > \"$1\"", "sh"])
        .arg(&dump);
    let out = run_with(&mut c, None, Duration::from_secs(30))
        .unwrap_or_else(|o| panic!("hung\n{}", describe(&o)));
    assert_ok(&out);
    let env = std::fs::read_to_string(&dump).unwrap();
    for (name, value) in &expected {
        let var = name.rsplit('/').next().unwrap();
        assert!(env.contains(&format!("{var}={value}\n")), "{var} missing");
    }
    assert_eq!(
        proxy.count("GetParametersByPath"),
        1,
        "the slow answer was cut off and re-sent: {:?}",
        proxy.ops()
    );
}

/// The error at the deadline says what happened — attempts, time, how they failed, the
/// last failure — and gives advice that fits: more time helps a throttled fleet, not a
/// refused connection.
#[test]
fn deadline_errors_name_attempts_and_cause_and_advise_what_would_help() {
    let m = moto();
    let path = unique_path("deadline-words");
    put_many(&m.endpoint, &path, 1);
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        throttle: 1.0,
        ..Default::default()
    });
    let start = Instant::now();
    let e = assert_exec_not_started(ecs(&proxy.endpoint()), &["--path", &path, "--timeout", "6"]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "gave up early: {took:?}\n{e}"
    );
    // "N attempts in T s: N throttled", N as the proxy counted (± the one in flight).
    let n: usize = e
        .split(" attempts in ")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count: {e}"));
    assert!(
        n >= 2 && n.abs_diff(proxy.total()) <= 1,
        "{n} vs {}",
        proxy.total()
    );
    for want in [
        path.as_str(),
        "6s deadline",
        " throttled",
        "ThrottlingException",
        "quota",
        "raise --timeout",
        "dynamodb",
    ] {
        assert!(e.contains(want), "{want:?} missing: {e}");
    }

    // Nothing listens: retried until the deadline too, but more time would not help.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = assert_exec_not_started(
        ecs(&format!("http://127.0.0.1:{port}")),
        &["--path", &path, "--timeout", "3"],
    );
    for want in [
        "3s deadline",
        "attempts in",
        "connections failed",
        "Connection refused",
    ] {
        assert!(e.contains(want), "{want:?} missing: {e}");
    }
    assert!(!e.contains("--timeout"), "more time would not help: {e}");
}
