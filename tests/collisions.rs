//! Issue 16 item 5: a write whose environment name collides with another active secret of
//! the path (`a.b` and `a-b` both set `a_b`) would make every start of the path fail; create,
//! rotate and the daemon's POST refuse it before writing, on both backends, and two such
//! creates at once never both stay active.

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use common::*;
use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;

/// moto with the dynamodb backend's table and key in place.
fn moto_ready() -> &'static str {
    static READY: OnceLock<String> = OnceLock::new();
    READY.get_or_init(|| {
        let m = moto();
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key = |n: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .unwrap()
        };
        block_on(
            dynamodb(&m.endpoint)
                .create_table()
                .table_name("ecs-secrets")
                .attribute_definitions(attr("path"))
                .attribute_definitions(attr("sk"))
                .key_schema(key("path", KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .billing_mode(BillingMode::PayPerRequest)
                .send(),
        )
        .unwrap();
        create_key(&m.endpoint, Some("alias/ecs-secrets"));
        m.endpoint.clone()
    })
}

const BACKENDS: [&str; 2] = ["ssm", "dynamodb"];

fn cli(e: &str, backend: &str, path: &str, args: &[&str]) -> Command {
    let mut c = ecs(e);
    c.args(&args[..1])
        .args(["--backend", backend, "--path", path])
        .args(&args[1..]);
    c
}

/// The active (name, serial) pairs of the path.
fn active(e: &str, backend: &str, path: &str) -> Vec<(String, u64)> {
    assert_ok(&run(&mut cli(e, backend, path, &["list"])))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["name"].as_str().unwrap().to_string(),
                v["serial"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `env --format json` of the path: it must succeed (no collision among what it reads).
fn env_json(e: &str, backend: &str, path: &str) -> Value {
    // (A path whose every name was undone is empty: expected here.)
    let out = run(
        cli(e, backend, path, &["env", "--format", "json"]).env("ECS_SECRETS_ALLOW_EMPTY", "1")
    );
    serde_json::from_str(assert_ok(&out).trim()).unwrap()
}

#[track_caller]
fn assert_refused(out: &std::process::Output, path: &str, name: &str, other: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{path}/{name}"))
            && err.contains(&format!("{path}/{other}"))
            && err.contains("a_b"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", describe(out));
}

#[test]
fn colliding_names_are_refused_before_writing_on_both_backends() {
    let e = moto_ready();
    for backend in BACKENDS {
        let path = unique_path(&format!("collide-{backend}"));
        assert_ok(&run(&mut cli(
            e,
            backend,
            &path,
            &["create", "--name", "a.b", "--payload", "first"],
        )));
        let out = run(&mut cli(
            e,
            backend,
            &path,
            &["create", "--name", "a-b", "--payload", "second"],
        ));
        assert_refused(&out, &path, "a-b", "a.b");
        let out = run(&mut cli(
            e,
            backend,
            &path,
            &["rotate", "--name", "a_b", "--generate", "16"],
        ));
        assert_refused(&out, &path, "a_b", "a.b");
        // The daemon's POST goes through the same check.
        let d = DaemonProcess::start(e, &path, &["--backend", backend]);
        let r = d
            .post("/latest/secrets/a-b", r#"{"payload":"third"}"#)
            .unwrap();
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, 400, "{body}");
        assert!(
            body.contains(&format!("{path}/a-b")) && body.contains(&format!("{path}/a.b")),
            "{body}"
        );
        d.stop();
        // Nothing was written: one active secret, and starts still work.
        assert_eq!(active(e, backend, &path), vec![("a.b".to_string(), 1)]);
        let all = assert_ok(&run(&mut cli(
            e,
            backend,
            &path,
            &["list", "--all-versions"],
        )));
        assert_eq!(all.lines().count(), 1, "{backend}: {all}");
        assert_eq!(env_json(e, backend, &path)["a_b"], "first");
        // A new version of the same name is no collision; nor is a name differing in case.
        assert_ok(&run(&mut cli(
            e,
            backend,
            &path,
            &["rotate", "--name", "a.b", "--payload", "first-2"],
        )));
        assert_ok(&run(&mut cli(
            e,
            backend,
            &path,
            &["create", "--name", "A.b", "--payload", "upper"],
        )));
        // Once every version of a.b is revoked, a-b is free.
        assert_ok(&run(&mut cli(
            e,
            backend,
            &path,
            &["revoke", "--name", "a.b", "--serial", "2"],
        )));
        assert_ok(&run(&mut cli(
            e,
            backend,
            &path,
            &["create", "--name", "a-b", "--payload", "second"],
        )));
        let v = env_json(e, backend, &path);
        assert_eq!(
            (&v["a_b"], &v["A_b"]),
            (&Value::from("second"), &Value::from("upper"))
        );
    }
}

/// ssm: a nested name is seen by recursive readers, so it counts even for an admin command
/// run without --recursive.
#[test]
fn nested_names_collide_with_flat_ones_on_ssm() {
    let e = moto_ready();
    let path = unique_path("collide-nested");
    put_secure(e, &format!("{path}/a/b"), "nested");
    let out = run(&mut cli(
        e,
        "ssm",
        &path,
        &["create", "--name", "a_b", "--payload", "flat"],
    ));
    assert_refused(&out, &path, "a_b", "a/b");
    assert_eq!(get_plain(e, &format!("{path}/a_b")), None);
}

/// Two creates of colliding names at once both pass the check before writing; the one that
/// sees the other after its write revokes its own version. Never are both left active, and
/// the path stays readable.
#[test]
fn concurrent_colliding_creates_never_both_stay_active() {
    let e = moto_ready();
    for backend in BACKENDS {
        for round in 0..8 {
            let path = unique_path(&format!("collide-race-{backend}"));
            let outs: Vec<std::process::Output> = std::thread::scope(|s| {
                let hs: Vec<_> = ["a.b", "a-b"]
                    .map(|n| {
                        let path = &path;
                        s.spawn(move || {
                            run(&mut cli(
                                e,
                                backend,
                                path,
                                &["create", "--name", n, "--payload", n],
                            ))
                        })
                    })
                    .into_iter()
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let why = format!(
                "{backend} round {round}:\n{}\n{}",
                describe(&outs[0]),
                describe(&outs[1])
            );
            for o in &outs {
                assert!(matches!(o.status.code(), Some(0 | 2)), "{why}");
            }
            let ok: Vec<&str> = ["a.b", "a-b"]
                .into_iter()
                .zip(&outs)
                .filter(|(_, o)| o.status.success())
                .map(|(n, _)| n)
                .collect();
            assert!(ok.len() <= 1, "both creates succeeded: {why}");
            let names: Vec<String> = active(e, backend, &path)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(names, ok, "{why}");
            let v = env_json(e, backend, &path);
            assert_eq!(
                v.get("a_b").and_then(Value::as_str),
                ok.first().copied(),
                "{why}"
            );
        }
    }
}

/// A name that readers refuse without --allow-name is written (the flag exists for it), with
/// a warning that every start needs that flag.
#[test]
fn a_name_readers_refuse_is_written_with_a_warning() {
    let e = moto_ready();
    let path = unique_path("collide-refused");
    let out = run(&mut cli(
        e,
        "ssm",
        &path,
        &["create", "--name", "LD_PRELOAD", "--payload", "x.so"],
    ));
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-name LD_PRELOAD"), "{err}");
}
