//! dynamodb writers cannot lose data or take a path down: overlapping rotate-keys, writes
//! that land late (held in a proxy, their process killed), serial and generation limits,
//! and a randomized interleaving of every admin command with random delays and kills.

mod common;
mod ddb;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use common::*;
use ddb::*;
use ecs_secrets::store::dynamodb::{key_sk, version_sk};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ecs-secrets")
}

fn generation_of(ep: &str, path: &str, name: &str, serial: u64) -> Av {
    get_raw(ep, TABLE, path, &version_sk(name, serial)).expect("version item")["generation"].clone()
}

#[test]
fn two_overlapping_rotate_keys_lose_nothing_and_the_older_one_stops() {
    let ep = moto_ready();
    let path = unique_path("ddb-rotate-overlap");
    for (name, value) in [("A", "a1"), ("B", "b1"), ("C", "c1")] {
        create(ep, &path, name, value.as_bytes());
    }
    // The first rotation is held at its second Query (its read after retiring generation
    // 1) while a second one runs from start to end.
    let proxy = Proxy::start(ep);
    proxy.hold("Query", 2);
    let first = spawn(ddb(&proxy.endpoint()).args(["rotate-key", "--path", &path]));
    assert!(proxy.wait_held(LONG), "{}", ops_summary(&proxy));
    let out = assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
    assert!(out.contains(r#""generation":3,"resealed":3"#), "{out}");
    proxy.release();
    let out = first.wait_with_output().unwrap();
    // The older rotation finds the newer generation, stops, and says so.
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 3 appeared") && err.contains("nothing is lost"),
        "{err}"
    );
    for name in ["A", "B", "C"] {
        assert_eq!(
            generation_of(ep, &path, name, 1),
            Av::N("3".into()),
            "{name}"
        );
    }
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A", "B", "C"])));
    assert!(s.contains("A=a1\nB=b1\nC=c1\n"), "{s}");
    assert!(get_raw(ep, TABLE, &path, &key_sk(1)).is_none());
    assert!(get_raw(ep, TABLE, &path, &key_sk(3)).is_some());
}

#[test]
fn a_create_that_lands_after_rotate_key_finished_stays_readable_and_the_next_rotation_moves_it() {
    let ep = moto_ready();
    let path = unique_path("ddb-late-create");
    create(ep, &path, "A", b"a1");
    // The create has chosen generation 1; its PutItem is held in the network.
    let proxy = Proxy::start(ep);
    proxy.hold("PutItem", 1);
    let mut writer = spawn(ddb(&proxy.endpoint()).args([
        "create",
        "--path",
        &path,
        "--name",
        "B",
        "--payload",
        "b1",
    ]));
    assert!(proxy.wait_held(LONG), "{}", ops_summary(&proxy));
    let out = assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
    assert!(out.contains(r#""generation":2,"resealed":1"#), "{out}");
    assert!(get_raw(ep, TABLE, &path, &key_sk(1)).is_none());
    // The create dies (a crash, or its deadline) after sending the write; the write lands.
    writer.kill().unwrap();
    writer.wait().unwrap();
    proxy.release();
    assert!(proxy.wait_idle(LONG), "{}", ops_summary(&proxy));
    assert_eq!(generation_of(ep, &path, "B", 1), Av::N("1".into()));
    // Its data key is gone from the key items, but the version carries its own copy.
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A", "B"])));
    assert!(s.contains("A=a1\nB=b1\n"), "{s}");
    let out = assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
    assert!(out.contains(r#""generation":3,"resealed":2"#), "{out}");
    assert_eq!(generation_of(ep, &path, "B", 1), Av::N("3".into()));
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A", "B"])));
    assert!(s.contains("A=a1\nB=b1\n"), "{s}");
}

#[test]
fn a_write_that_races_rotate_keys_delete_is_found_and_resealed() {
    let ep = moto_ready();
    let path = unique_path("ddb-race-delete");
    create(ep, &path, "A", b"a1");
    // A create under generation 1, its PutItem held in one proxy ...
    let p_create = Proxy::start(ep);
    p_create.hold("PutItem", 1);
    let mut writer = spawn(ddb(&p_create.endpoint()).args([
        "create",
        "--path",
        &path,
        "--name",
        "B",
        "--payload",
        "b1",
    ]));
    assert!(p_create.wait_held(LONG), "{}", ops_summary(&p_create));
    // ... and a rotation held in another at the delete of generation 1, which it decided
    // from a read that did not show B yet.
    let p_rotate = Proxy::start(ep);
    p_rotate.hold("DeleteItem", 1);
    let rotation = spawn(ddb(&p_rotate.endpoint()).args(["rotate-key", "--path", &path]));
    assert!(p_rotate.wait_held(LONG), "{}", ops_summary(&p_rotate));
    // B lands (its writer killed first, so nothing of the create repairs it), then the
    // delete does.
    writer.kill().unwrap();
    writer.wait().unwrap();
    p_create.release();
    assert!(p_create.wait_idle(LONG), "{}", ops_summary(&p_create));
    p_rotate.release();
    let out = rotation.wait_with_output().unwrap();
    assert!(
        assert_ok(&out).contains(r#""generation":2,"resealed":2"#),
        "the rotation re-read after its delete and re-sealed B: {}",
        describe(&out)
    );
    assert_eq!(generation_of(ep, &path, "B", 1), Av::N("2".into()));
    assert!(get_raw(ep, TABLE, &path, &key_sk(1)).is_none());
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A", "B"])));
    assert!(s.contains("A=a1\nB=b1\n"), "{s}");
}

#[test]
fn serials_and_generations_stop_at_their_largest_value() {
    let ep = moto_ready();
    let path = unique_path("ddb-overflow");
    create(ep, &path, "A", b"a1");
    // A forged revoked version at the largest serial.
    let mut item = get_raw(ep, TABLE, &path, &version_sk("A", 1)).unwrap();
    for a in ["ciphertext", "nonce", "generation", "encrypted_key"] {
        item.remove(a);
    }
    item.insert("sk".into(), Av::S(version_sk("A", u64::MAX)));
    item.insert("serial".into(), Av::N(u64::MAX.to_string()));
    item.insert("active".into(), Av::Bool(false));
    put_raw(ep, TABLE, item);
    for cmd in ["create", "rotate"] {
        let out = run(ddb(ep).args([cmd, "--path", &path, "--name", "A", "--payload", "a2"]));
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{path}/A")) && err.contains("largest"),
            "{cmd}: {err}"
        );
        assert!(out.stdout.is_empty(), "{cmd}: {}", describe(&out));
    }
    assert!(get_raw(ep, TABLE, &path, &version_sk("A", 0)).is_none());
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A"])));
    assert!(s.contains("A=a1\n"), "nothing lost: {s}");
    // A forged data key at the largest generation: rotate-key refuses, nothing changes.
    let mut k = get_raw(ep, TABLE, &path, &key_sk(1)).unwrap();
    k.insert("sk".into(), Av::S(key_sk(u64::MAX)));
    k.insert("generation".into(), Av::N(u64::MAX.to_string()));
    put_raw(ep, TABLE, k);
    let out = run(ddb(ep).args(["rotate-key", "--path", &path]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("largest"),
        "{}",
        describe(&out)
    );
    assert_eq!(generation_of(ep, &path, "A", 1), Av::N("1".into()));
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A"])));
    assert!(s.contains("A=a1\n"), "{s}");
}

/// xorshift64*, for the randomized test's own choices (its seed is printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One admin command of a round and what it was asked to do.
struct Writer {
    what: String,
    /// `(name, payload)` of a create or rotate.
    writes: Option<(String, String)>,
    /// `(name, serial)` of a revoke.
    revokes: Option<(String, u64)>,
    /// Spawned at `start_at`.
    cmd: Option<Command>,
    proxy: Proxy,
    /// How long its held request is held (once it arrived), if it has one.
    hold_ms: Option<u64>,
    release_at: Option<Instant>,
    start_at: Instant,
    child: Option<Child>,
    /// Killed (SIGKILL) this long after its start, if still running.
    kill_after: Option<Duration>,
    kill_at: Option<Instant>,
    killed: bool,
    out: Option<Output>,
}

/// Every version of the path as stored: `(name, serial) -> item`.
fn versions(ep: &str, path: &str) -> BTreeMap<(String, u64), HashMap<String, Av>> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let resp = block_on(
            dynamodb(ep)
                .query()
                .table_name(TABLE)
                .consistent_read(true)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", "path")
                .expression_attribute_values(":p", Av::S(path.into()))
                .set_exclusive_start_key(start.take())
                .send(),
        )
        .unwrap();
        for item in resp.items.unwrap_or_default() {
            let Av::S(sk) = &item["sk"] else { panic!("sk") };
            if !sk.starts_with("v#") {
                continue;
            }
            let Av::S(name) = &item["name"] else {
                panic!("name")
            };
            let Av::N(serial) = &item["serial"] else {
                panic!("serial")
            };
            out.insert((name.clone(), serial.parse().unwrap()), item);
        }
        match resp.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", describe(out)))
}

/// After every command of a round returned or was killed, and every request they sent
/// has landed: every active version reads back (through `fetch`) as one of the values
/// written for its name, and every revoked one does not; a start serves each name's
/// newest active version; every acknowledged write and revoke holds; no active version
/// points at a data key that is gone.
fn check_round(
    ep: &str,
    path: &str,
    round: usize,
    issued: &BTreeMap<String, BTreeSet<String>>,
    writers: &[Writer],
) {
    let stored = versions(ep, path);
    let mut newest: BTreeMap<String, String> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let ctx = |what: &str| format!("round {round}, {path}: {what}");
    for ((name, serial), item) in &stored {
        let active = item["active"] == Av::Bool(true);
        let out = run(ddb(ep).args([
            "fetch",
            "--path",
            path,
            "--name",
            name,
            "--serial",
            &serial.to_string(),
        ]));
        assert!(
            !active || out.status.success(),
            "{}",
            ctx(&format!(
                "{name} {serial} is active but unreadable: {}",
                describe(&out)
            ))
        );
        let f = json(&out);
        assert_eq!(
            f["active"],
            active,
            "{}",
            ctx(&format!("{name} {serial}: {}", describe(&out)))
        );
        if !active {
            // A revoked version's fetch prints an empty payload.
            assert_eq!(
                f["payload"],
                "",
                "{}",
                ctx(&format!("{name} {serial} revoked yet readable"))
            );
            continue;
        }
        // Its data key is reachable: carried along, or its key item still there.
        if !item.contains_key("encrypted_key") {
            let Av::N(g) = &item["generation"] else {
                panic!("generation")
            };
            assert!(
                get_raw(ep, TABLE, path, &key_sk(g.parse().unwrap())).is_some(),
                "{}",
                ctx(&format!("{name} {serial}: key {g} deleted"))
            );
        }
        let payload = f["payload"].as_str().unwrap().to_string();
        assert!(
            issued[name].contains(&payload),
            "{}",
            ctx(&format!(
                "{name} {serial} holds a value never written for it"
            ))
        );
        assert!(
            seen.insert(payload.clone()),
            "{}",
            ctx(&format!("{payload} stored twice"))
        );
        newest.insert(name.clone(), payload);
    }
    // fetch of a name agrees with what a start serves.
    for (name, want) in &newest {
        let out = run(ddb(ep).args(["fetch", "--path", path, "--name", name]));
        assert_eq!(
            json(&out)["payload"],
            want.as_str(),
            "{}",
            ctx(&format!("fetch {name}"))
        );
    }
    let names: Vec<&str> = issued.keys().map(String::as_str).collect();
    let s = assert_ok(&run(&mut show(ep, &["--path", path], &names)));
    for name in &names {
        let want = newest.get(*name).map_or("<unset>", String::as_str);
        assert!(
            s.contains(&format!("{name}={want}\n")),
            "{}",
            ctx(&format!("start served {s}"))
        );
    }
    for w in writers.iter().filter(|w| !w.killed) {
        let out = w.out.as_ref().unwrap();
        if !out.status.success() {
            continue;
        }
        if let Some((name, payload)) = &w.writes {
            let serial = json(out)["serial"].as_u64().unwrap();
            let item = stored.get(&(name.clone(), serial)).unwrap_or_else(|| {
                panic!(
                    "{}",
                    ctx(&format!("{}: acknowledged serial {serial} missing", w.what))
                )
            });
            if item["active"] == Av::Bool(true) {
                let f = json(&run(ddb(ep).args([
                    "fetch",
                    "--path",
                    path,
                    "--name",
                    name,
                    "--serial",
                    &serial.to_string(),
                ])));
                assert_eq!(f["payload"], payload.as_str(), "{}", ctx(&w.what));
            }
        }
        if let Some((name, serial)) = &w.revokes {
            assert_eq!(
                stored[&(name.clone(), *serial)]["active"],
                Av::Bool(false),
                "{}",
                ctx(&format!("{}: acknowledged, yet active", w.what))
            );
        }
    }
}

/// Rounds of 8 concurrent create / rotate / revoke / rotate-key on one path, started at
/// random moments, each through a proxy of its own that delays every request at random and
/// makes some slow; three writers in eight get one random request held for up to seconds;
/// a third of the writers are killed at a random moment. Each
/// round is checked once everything has landed ([`check_round`]), then once more after a
/// final rotate-key. About 90 s; `ECS_TEST_ROUNDS=N` sets the number of rounds and
/// `ECS_TEST_VERBOSE=1` prints what each writer answered.
#[test]
fn randomized_interleavings_of_every_writer_with_kills_never_lose_a_version() {
    let ep = moto_ready();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("randomized interleavings: seed {seed}");
    let mut rng = Rng(seed);
    let budget = Duration::from_secs(90);
    let t0 = Instant::now();
    let mut round = 0;
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    let max_rounds = std::env::var("ECS_TEST_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(40);
    while round < 3.min(max_rounds) || (round < max_rounds && t0.elapsed() < budget) {
        round += 1;
        let path = unique_path("ddb-random");
        let mut issued: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in ["A", "B", "C"] {
            let v = format!("{name}-{round}-seed");
            create(ep, &path, name, v.as_bytes());
            issued.entry(name.into()).or_default().insert(v);
        }
        let jitter = 10 + rng.below(100);
        let t_round = Instant::now();
        let mut writers = Vec::new();
        for i in 0..8 {
            let name = ["A", "B", "C"][rng.below(3) as usize].to_string();
            let payload = format!("{name}-{round}-{i}");
            // Each writer talks through a proxy of its own, so that a hold picks one
            // writer's request. Every request waits a little, at random, and one in fifty
            // a long time (a slow round trip).
            let proxy = Proxy::start(ep);
            proxy.set_jitter(jitter, 0.02, 2000, rng.next());
            // Three writers in eight get one request (a random one of their first ten)
            // held for a random while: everything else may run meanwhile (and the held
            // writer may be killed meanwhile, its request landing later).
            let hold_ms = (rng.below(8) < 3).then(|| {
                proxy.hold("", 1 + rng.below(10) as usize);
                300 + rng.below(3000)
            });
            let mut cmd = ddb(&proxy.endpoint());
            let (what, writes, revokes) = match rng.below(10) {
                0..=1 => {
                    cmd.args([
                        "create",
                        "--path",
                        &path,
                        "--name",
                        &name,
                        "--payload",
                        &payload,
                    ]);
                    ("create", Some((name.clone(), payload.clone())), None)
                }
                2..=3 => {
                    cmd.args([
                        "rotate",
                        "--path",
                        &path,
                        "--name",
                        &name,
                        "--payload",
                        &payload,
                    ]);
                    ("rotate", Some((name.clone(), payload.clone())), None)
                }
                4..=5 => {
                    let serial = 1 + rng.below(3);
                    cmd.args([
                        "revoke",
                        "--path",
                        &path,
                        "--name",
                        &name,
                        "--serial",
                        &serial.to_string(),
                    ]);
                    ("revoke", None, Some((name.clone(), serial)))
                }
                _ => {
                    cmd.args(["rotate-key", "--path", &path]);
                    ("rotate-key", None, None)
                }
            };
            if writes.is_some() {
                issued.get_mut(&name).unwrap().insert(payload);
            }
            *totals.entry(what).or_default() += 1;
            let kill_after =
                (rng.below(3) == 0).then(|| Duration::from_millis(50 + rng.below(2500)));
            writers.push(Writer {
                what: format!("{what} #{i} {writes:?} {revokes:?}"),
                writes,
                revokes,
                cmd: Some(cmd),
                proxy,
                hold_ms,
                release_at: None,
                start_at: t_round + Duration::from_millis(rng.below(2000)),
                child: None,
                kill_after,
                kill_at: None,
                killed: false,
                out: None,
            });
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while writers.iter().any(|w| w.cmd.is_some() || w.child.is_some()) {
            assert!(Instant::now() < deadline, "round {round}: writers hung");
            for w in writers.iter_mut() {
                match (w.release_at, w.hold_ms) {
                    (None, Some(ms)) if w.proxy.held() > 0 => {
                        w.release_at = Some(Instant::now() + Duration::from_millis(ms));
                    }
                    (Some(t), Some(_)) if Instant::now() >= t => {
                        w.proxy.release();
                        w.hold_ms = None;
                    }
                    _ => {}
                }
                if w.start_at <= Instant::now() {
                    if let Some(mut cmd) = w.cmd.take() {
                        w.child = Some(spawn(&mut cmd));
                        w.kill_at = w.kill_after.map(|d| Instant::now() + d);
                    }
                }
                let Some(child) = w.child.as_mut() else {
                    continue;
                };
                if child.try_wait().unwrap().is_some() {
                    w.out = Some(w.child.take().unwrap().wait_with_output().unwrap());
                } else if w.kill_at.is_some_and(|t| Instant::now() >= t) {
                    let _ = child.kill();
                    child.wait().unwrap();
                    w.child = None;
                    w.killed = true;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for w in &writers {
            w.proxy.release();
        }
        if std::env::var_os("ECS_TEST_VERBOSE").is_some() {
            for w in &writers {
                let o = w.out.as_ref().map(|o| {
                    format!(
                        "{:?} {} {}",
                        o.status.code(),
                        String::from_utf8_lossy(&o.stdout).trim(),
                        String::from_utf8_lossy(&o.stderr)
                            .lines()
                            .next()
                            .unwrap_or("")
                    )
                });
                eprintln!("round {round}: {} killed={} {o:?}", w.what, w.killed);
            }
        }
        // Requests of killed writers may still be on their way: let them land.
        for w in &writers {
            assert!(
                w.proxy.wait_idle(LONG),
                "round {round}: {}: {}",
                w.what,
                ops_summary(&w.proxy)
            );
        }
        *totals.entry("killed").or_default() += writers.iter().filter(|w| w.killed).count();
        check_round(ep, &path, round, &issued, &writers);
        // What rotate-key leaves behind is converged by the next rotate-key.
        let out = assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
        let g = json_line(&out)["generation"].as_u64().unwrap();
        for ((name, serial), item) in versions(ep, &path) {
            if item["active"] == Av::Bool(true) {
                assert_eq!(
                    item["generation"],
                    Av::N(g.to_string()),
                    "round {round}: {name} {serial}"
                );
            }
        }
        check_round(ep, &path, round, &issued, &[]);
    }
    eprintln!(
        "randomized interleavings: {round} rounds in {:?}, {totals:?}",
        t0.elapsed()
    );
}

fn json_line(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"))
}
