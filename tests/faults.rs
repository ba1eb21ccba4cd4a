//! Faults between the binary and AWS (a fault-injecting proxy in front of moto): a start
//! either succeeds with every secret exactly right, or fails closed — the command is not
//! started, `env` prints nothing partial — within `--timeout` + 1 s. Never a hang.
//! The run writes a fault × outcome table to target/fault-report.md.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT_SECS: u64 = 4;
const SECRETS: usize = 25; // three pages

/// Runs one command against an endpoint and checks its all-or-nothing result.
type Runner = fn(&str, &str, &[(String, String)]) -> (Outcome, Duration, String);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Complete,
    FailedClosed,
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
fn run_exec(
    endpoint: &str,
    path: &str,
    expected: &[(String, String)],
) -> (Outcome, Duration, String) {
    let dir = TempDir::new("fault-exec");
    let dump = dir.join("env");
    let mut c = ecs(endpoint);
    c.args([
        "exec",
        "--path",
        path,
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
        (Outcome::Complete, took, stderr)
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(!dump.exists(), "exec failed but the command was started");
        assert!(stderr.contains("ecs-secrets: error:"), "{stderr}");
        (Outcome::FailedClosed, took, stderr)
    }
}

/// `env`: stdout is either every export, exactly, or only the failure line.
fn run_env(
    endpoint: &str,
    path: &str,
    expected: &[(String, String)],
) -> (Outcome, Duration, String) {
    let mut c = ecs(endpoint);
    c.args([
        "env",
        "--path",
        path,
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
        (Outcome::Complete, took, stderr)
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(stdout.lines().count(), 1, "partial output: {stdout}");
        assert!(
            stdout.contains("exit 1") && !stdout.contains("export"),
            "{stdout}"
        );
        (Outcome::FailedClosed, took, stderr)
    }
}

#[test]
fn every_fault_gives_all_or_nothing_within_the_deadline() {
    let m = moto();
    let path = unique_path("faults");
    let expected = put_many(&m.endpoint, &path, SECRETS);
    let modes: [(&str, Runner); 2] = [("exec", run_exec), ("env", run_env)];
    let mut table: BTreeMap<(usize, &str), String> = BTreeMap::new();
    for (mode, runner) in modes {
        // Cases run concurrently (each with its own proxy) to keep the wall time down.
        let rows: Vec<(usize, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = cases()
                .into_iter()
                .enumerate()
                .map(|(i, case)| {
                    let (path, expected) = (&path, &expected);
                    s.spawn(move || {
                        let proxy = Proxy::start(&m.endpoint);
                        proxy.set_faults(case.faults.clone());
                        let (outcome, took, stderr) = runner(&proxy.endpoint(), path, expected);
                        assert!(
                            took <= Duration::from_secs(TIMEOUT_SECS + 1),
                            "{mode} under {}: took {took:?} (deadline {TIMEOUT_SECS} s)\n{stderr}",
                            case.name
                        );
                        if case.name == "none"
                            || case.name.starts_with("latency")
                            || case.name == "throttle 30%"
                        {
                            assert_eq!(
                                outcome,
                                Outcome::Complete,
                                "{mode} under {} must succeed\n{stderr}",
                                case.name
                            );
                        }
                        if case.name.ends_with("100%") {
                            assert_eq!(
                                outcome,
                                Outcome::FailedClosed,
                                "{mode} under {}",
                                case.name
                            );
                        }
                        let cause = stderr
                            .lines()
                            .find(|l| l.starts_with("ecs-secrets: error:"))
                            .map(|l| {
                                // The part worth a table cell: the deadline and the last cause.
                                let l = l.split_once("within").map(|(_, r)| r).unwrap_or(l);
                                l.split("; check")
                                    .next()
                                    .unwrap_or(l)
                                    .chars()
                                    .take(110)
                                    .collect::<String>()
                            })
                            .unwrap_or_default();
                        (
                            i,
                            format!(
                                "| {} | {mode} | {} | {:.2} s | {} | {} | {} |",
                                case.name,
                                match outcome {
                                    Outcome::Complete => "all secrets, exact",
                                    Outcome::FailedClosed => "failed closed",
                                },
                                took.as_secs_f64(),
                                proxy.total(),
                                proxy.faults_injected(),
                                cause.replace('|', "/"),
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
    let mut report = format!(
        "Fault × outcome, {SECRETS} secrets (3 pages), --timeout {TIMEOUT_SECS}\n\n\
         | fault | command | outcome | time | requests | faults injected | error (if any) |\n\
         |---|---|---|---:|---:|---:|---|\n"
    );
    for row in table.values() {
        report.push_str(row);
        report.push('\n');
    }
    println!("{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::write(target.join("fault-report.md"), &report).unwrap();
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
