//! Concurrent admin commands on one Parameter Store name (issue 10 item 1): whatever the
//! interleaving of create / rotate / revoke (CLI or daemon), once every command has returned,
//! readers get exactly the newest active version, `fetch` agrees, and no revoked payload is
//! readable through the path.

mod common;

use common::*;
use serde_json::Value;

/// A small deterministic generator (the seed is printed, so a failing round can be rerun).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// What `env --format json` injects for `name` (None: not injected).
fn reader_value(e: &str, path: &str, name: &str) -> Option<String> {
    // (Every version of the name may be revoked: an empty path is expected here.)
    let out = run(ecs(e)
        .args(["env", "--path", path, "--format", "json"])
        .env("ECS_SECRETS_ALLOW_EMPTY", "1"));
    let v: Value = serde_json::from_str(assert_ok(&out).trim())
        .unwrap_or_else(|err| panic!("{err}: {}", describe(&out)));
    v.get(name).map(|s| s.as_str().unwrap().to_string())
}

/// Issue 10 item 1: concurrent create / rotate / revoke on one name. Once every command has
/// returned, readers get exactly the newest active version, `fetch` agrees, and no revoked
/// payload is readable through the path.
#[test]
fn concurrent_admin_commands_on_one_name_converge() {
    let m = moto();
    let e = &m.endpoint;
    let seed = std::env::var("RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("RACE_SEED={seed}");
    let mut rng = Lcg(seed);
    const SEEDED: u64 = 6;
    for round in 0..12 {
        let path = unique_path("race");
        // serial → payload, of every version written in this round.
        let mut payloads = std::collections::BTreeMap::new();
        for i in 1..=SEEDED {
            let p = format!("r{round}-seed{i}");
            assert_ok(&run(ecs(e).args([
                "create",
                "--path",
                &path,
                "--name",
                "K",
                "--payload",
                &p,
            ])));
            payloads.insert(i, p);
        }
        let commands: Vec<Vec<String>> = (0..20)
            .map(|j| {
                // Mostly revokes of the newest seeded serials (what readers see: the
                // revokes that must write copies), some creates and rotates to race them;
                // some rounds revoke everything.
                let writes = [0, 2, 5][round % 3];
                let mut args: Vec<String> = if rng.below(20) >= writes {
                    let span = if rng.below(4) == 0 { SEEDED } else { 3 };
                    let serial = SEEDED - rng.below(span);
                    vec!["revoke".into(), "--serial".into(), serial.to_string()]
                } else {
                    let verb = if rng.below(2) == 0 {
                        "create"
                    } else {
                        "rotate"
                    };
                    vec![verb.into(), "--payload".into(), format!("r{round}-c{j}")]
                };
                args.extend(["--path".into(), path.clone(), "--name".into(), "K".into()]);
                args
            })
            .collect();
        // A quarter of the creates and revokes go through the sidecar's POST routes, which
        // use the same store code.
        let daemon = DaemonProcess::start(e, &path, &["--cache-ttl", "0"]);
        let via_daemon: Vec<bool> = commands
            .iter()
            .map(|a| a[0] != "rotate" && rng.below(4) == 0)
            .collect();
        let outs: Vec<Value> = std::thread::scope(|s| {
            let handles: Vec<_> = commands
                .iter()
                .zip(&via_daemon)
                .map(|(args, &http)| {
                    let daemon = &daemon;
                    s.spawn(move || {
                        if !http {
                            return assert_ok_json(&run(ecs(e).args(args)));
                        }
                        let r = if args[0] == "revoke" {
                            daemon.post(&format!("/latest/revoke/K/{}", args[2]), "")
                        } else {
                            daemon.post(
                                "/latest/secrets/K",
                                &format!(r#"{{"payload":"{}"}}"#, args[2]),
                            )
                        }
                        .unwrap();
                        let body = String::from_utf8_lossy(&r.body).into_owned();
                        assert_eq!(r.status, 200, "{args:?}: {body}");
                        serde_json::from_str(&body).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        daemon.stop();
        for (args, v) in commands.iter().zip(&outs) {
            if args[0] != "revoke" {
                payloads.insert(v["serial"].as_u64().unwrap(), args[2].clone());
            }
        }
        let all = assert_ok_lines(&run(ecs(e).args([
            "list",
            "--path",
            &path,
            "--all-versions",
        ])));
        let newest = all
            .iter()
            .filter(|v| v["active"] == true)
            .map(|v| v["serial"].as_u64().unwrap())
            .max();
        let revoked: Vec<&String> = all
            .iter()
            .filter(|v| v["active"] == false)
            .map(|v| &payloads[&v["serial"].as_u64().unwrap()])
            .collect();
        let seen = reader_value(e, &path, "K");
        let why = format!("seed {seed} round {round}: {commands:?}\nversions {all:?}");
        if let Some(s) = &seen {
            assert!(
                !revoked.contains(&s),
                "a revoked payload is read: {s}\n{why}"
            );
        }
        let fetched = run(ecs(e).args(["fetch", "--path", &path, "--name", "K"]));
        match newest {
            Some(n) => {
                let f = assert_ok_json(&fetched);
                assert_eq!(f["serial"], n, "fetch disagrees with list\n{why}");
                assert_eq!(f["payload"].as_str(), Some(payloads[&n].as_str()), "{why}");
                assert_eq!(seen.as_deref(), Some(payloads[&n].as_str()), "{why}");
            }
            None => {
                assert_eq!(fetched.status.code(), Some(1), "{}", describe(&fetched));
                assert_eq!(seen, None, "every serial is revoked\n{why}");
            }
        }
    }
}

/// Starts `revoke --serial S` of `K` through a proxy that holds every PutParameter for
/// `hold_ms`, and returns once its first PutParameter (the copy that hides S) is parked.
fn revoke_held_at_its_copy(
    e: &str,
    path: &str,
    serial: u64,
    hold_ms: u64,
) -> (Proxy, std::process::Child) {
    let proxy = Proxy::start(e);
    proxy.set_faults(Faults {
        latency_ms: hold_ms,
        only_op: Some("PutParameter".into()),
        ..Default::default()
    });
    let child = ecs(&proxy.endpoint())
        .args([
            "revoke",
            "--path",
            path,
            "--name",
            "K",
            "--serial",
            &serial.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while proxy.count("PutParameter") == 0 {
        assert!(
            t0.elapsed().as_secs() < 60,
            "no PutParameter: {:?}",
            proxy.ops()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (proxy, child)
}

/// Seeds v1, v2, v3 of `K`, parks `revoke --serial 3` at its copy of serial 2, runs
/// `other` to completion, releases the revoke; then readers and `fetch` must both give
/// `(serial, payload)`.
fn late_copy_after(tag: &str, other: &[&str], want: (u64, &str)) {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path(tag);
    for p in ["v1", "v2", "v3"] {
        assert_ok(&run(ecs(e).args([
            "create",
            "--path",
            &path,
            "--name",
            "K",
            "--payload",
            p,
        ])));
    }
    let (_proxy, child) = revoke_held_at_its_copy(e, &path, 3, 2000);
    assert_ok(&run(ecs(e)
        .args(&other[..1])
        .args(["--path", &path, "--name", "K"])
        .args(&other[1..])));
    assert_ok(&child.wait_with_output().unwrap());
    let f = assert_ok_json(&run(ecs(e).args(["fetch", "--path", &path, "--name", "K"])));
    assert_eq!(
        (&f["serial"], &f["payload"]),
        (&Value::from(want.0), &Value::from(want.1))
    );
    assert_eq!(
        reader_value(e, &path, "K").as_deref(),
        Some(want.1),
        "readers agree with fetch"
    );
}

/// Issue 10 item 1, forced: a revoke's copy lands after a create of a newer serial.
#[test]
fn a_revoke_copy_landing_after_a_create_is_repaired() {
    late_copy_after(
        "late-copy-create",
        &["create", "--payload", "v4"],
        (4, "v4"),
    );
}

/// Issue 10 item 1, forced: revoke 3 and revoke 2 at once; 3's copy of 2 lands last.
#[test]
fn a_revoke_copy_of_a_serial_revoked_meanwhile_is_repaired() {
    late_copy_after("late-copy-revoke", &["revoke", "--serial", "2"], (1, "v1"));
}

/// An interrupted revoke can leave a revoked payload as the latest version; revoking that
/// serial again (already revoked) repairs it.
#[test]
fn revoking_a_revoked_serial_again_repairs_a_stale_latest_version() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("repair");
    for p in ["v1", "v2"] {
        assert_ok(&run(ecs(e).args([
            "create",
            "--path",
            &path,
            "--name",
            "K",
            "--payload",
            p,
        ])));
    }
    // What a revoke of 2 killed between its label and its copy leaves: 2 labelled, latest.
    block_on(
        ssm(e)
            .label_parameter_version()
            .name(format!("{path}/K"))
            .parameter_version(2)
            .labels("revoked-2")
            .send(),
    )
    .unwrap();
    assert_eq!(reader_value(e, &path, "K").as_deref(), Some("v2"));
    assert_ok(&run(ecs(e).args([
        "revoke", "--path", &path, "--name", "K", "--serial", "2",
    ])));
    assert_eq!(reader_value(e, &path, "K").as_deref(), Some("v1"));
}
