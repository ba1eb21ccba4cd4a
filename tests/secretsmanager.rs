//! The secretsmanager backend and `--json-keys`, through the real binary against moto's
//! Secrets Manager. Where moto cannot produce an answer real Secrets Manager gives (a
//! per-secret `Errors` entry), the loopback proxy rewrites moto's answer.

mod common;

use aws_sdk_secretsmanager::primitives::Blob;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

const SM: [&str; 2] = ["--backend", "secretsmanager"];

/// `prod/x` for `/prod/x`.
fn prefix(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

#[track_caller]
fn put(endpoint: &str, name: &str, value: &str) {
    block_on(
        secretsmanager(endpoint)
            .create_secret()
            .name(name)
            .secret_string(value)
            .send(),
    )
    .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
}

#[track_caller]
fn put_binary(endpoint: &str, name: &str, value: &[u8]) {
    block_on(
        secretsmanager(endpoint)
            .create_secret()
            .name(name)
            .secret_binary(Blob::new(value))
            .send(),
    )
    .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
}

/// `env --format json` on the secretsmanager backend.
#[track_caller]
fn env_json(endpoint: &str, args: &[&str]) -> Value {
    let out = run(ecs(endpoint)
        .args(["env", "--format", "json"])
        .args(SM)
        .args(args));
    serde_json::from_str(&assert_ok(&out)).unwrap()
}

fn admin(endpoint: &str, path: &str, args: &[&str]) -> std::process::Output {
    run(ecs(endpoint)
        .args(&args[..1])
        .args(SM)
        .args(["--path", path])
        .args(&args[1..]))
}

#[track_caller]
fn admin_json(endpoint: &str, path: &str, args: &[&str]) -> Vec<Value> {
    let out = admin(endpoint, path, args);
    assert_ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Labels of every version of a secret, straight from Secrets Manager.
fn stages(endpoint: &str, name: &str) -> Vec<(String, Vec<String>)> {
    let out = block_on(
        secretsmanager(endpoint)
            .list_secret_version_ids()
            .secret_id(name)
            .include_deprecated(true)
            .send(),
    )
    .unwrap();
    let mut v: Vec<(String, Vec<String>)> = out
        .versions()
        .iter()
        .map(|v| {
            (
                v.version_id().unwrap_or_default().to_string(),
                v.version_stages().to_vec(),
            )
        })
        .collect();
    v.sort();
    v
}

fn get_stage(endpoint: &str, name: &str, stage: &str) -> Option<String> {
    block_on(
        secretsmanager(endpoint)
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .send(),
    )
    .ok()
    .and_then(|o| o.secret_string().map(String::from))
}

#[test]
fn a_path_of_45_is_read_exact_in_3_pages_and_nothing_else() {
    let m = moto();
    let path = unique_path("sm45");
    let mut want = serde_json::Map::new();
    for i in 0..45 {
        let v = format!("value-{i:02}-{path}");
        put(&m.endpoint, &format!("{}/S{i:02}", prefix(&path)), &v);
        want.insert(format!("S{i:02}"), json!(v));
    }
    let proxy = Proxy::start(&m.endpoint);
    let got = env_json(&proxy.endpoint(), &["--path", &path]);
    assert_eq!(got, Value::Object(want));
    assert_eq!(proxy.count("BatchGetSecretValue"), 3, "{:?}", proxy.ops());
    assert_eq!(proxy.total(), 3, "only the pages: {:?}", proxy.ops());
}

#[test]
fn lookalikes_and_nested_secrets_are_dropped_unless_recursive() {
    let m = moto();
    let path = unique_path("smlook");
    let p = prefix(&path);
    put(&m.endpoint, &format!("{p}/TOP"), "top");
    put(&m.endpoint, &format!("{p}2/LOOKALIKE"), "no");
    put(&m.endpoint, &format!("{p}-x/DASHED"), "no");
    put(&m.endpoint, &format!("{p}/db/password"), "nested");
    put(&m.endpoint, &format!("{p}/db/deep/er"), "deeper");
    assert_eq!(
        env_json(&m.endpoint, &["--path", &path]),
        json!({"TOP": "top"})
    );
    assert_eq!(
        env_json(&m.endpoint, &["--path", &path, "--recursive"]),
        json!({"TOP": "top", "db_password": "nested", "db_deep_er": "deeper"})
    );
    let out = run(ecs(&m.endpoint)
        .args(["env", "--format", "json", "--path", &path])
        .args(SM)
        .env("ECS_SECRETS_RECURSIVE", "1"));
    let v: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(v["db_password"], "nested");
}

#[test]
fn binary_secrets_are_injected_as_bytes() {
    let m = moto();
    let path = unique_path("smbin");
    let bytes: Vec<u8> = (1u8..=255).chain([b'\n', b'\'', 0xff, 0xfe]).collect();
    put_binary(&m.endpoint, &format!("{}/BIN", prefix(&path)), &bytes);
    let dir = TempDir::new("smbin");
    let target = dir.join("out");
    let out = run(ecs(&m.endpoint)
        .args(["exec", "--path", &path])
        .args(SM)
        .args(["--", "sh", "-c", "printf '%s' \"$BIN\" > \"$0\""])
        .arg(&target));
    assert_ok(&out);
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    // And through eval of `env` in bash.
    let script = "eval \"$(ecs-secrets env --backend secretsmanager --path \"$P\")\" && printf '%s' \"$BIN\" > \"$OUT\"";
    let target2 = dir.join("out2");
    let mut c = Command::new("bash");
    c.arg("-c").arg(script);
    shell_env(&mut c, &m.endpoint)
        .env("P", &path)
        .env("OUT", &target2);
    assert_ok(&run(&mut c));
    assert_eq!(std::fs::read(&target2).unwrap(), bytes);
}

fn shell_env<'a>(c: &'a mut Command, endpoint: &str) -> &'a mut Command {
    scrub_env(c, endpoint);
    let bin_dir = bin_dir();
    c.env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir))
}

/// Adds `entry` to the `Errors` of every BatchGetSecretValue answer.
#[test]
fn access_denied_for_one_secret_fails_closed_naming_it() {
    let m = moto();
    let path = unique_path("smdenied");
    let p = prefix(&path);
    put(&m.endpoint, &format!("{p}/OK"), "fine");
    put(&m.endpoint, &format!("{p}/DB"), "hunter2-db");
    let proxy = Proxy::start(&m.endpoint);
    proxy.inject_batch_error(
        json!({"SecretId": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{p}/DB-AbC123"),
               "ErrorCode": "AccessDeniedException",
               "Message": "Access to KMS is not allowed"}),
    );
    let e = assert_exec_not_started(
        ecs(&proxy.endpoint()),
        &["--backend", "secretsmanager", "--path", &path],
    );
    assert!(e.contains(&format!("{p}/DB")), "{e}");
    assert!(e.contains("AccessDeniedException"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    // env prints nothing of the other secret, only the line that stops an eval.
    let out = run(ecs(&proxy.endpoint())
        .args(["env", "--path", &path])
        .args(SM));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("fine") && !stdout.contains("export"),
        "{stdout}"
    );

    // An error about a secret that is not one of the path's (a prefix look-alike the
    // case-insensitive filter matched) is not ours to fail on.
    proxy.inject_batch_error(
        json!({"SecretId": format!("{p}2/OTHER"), "ErrorCode": "AccessDeniedException", "Message": "no"}),
    );
    let got = env_json(&proxy.endpoint(), &["--path", &path]);
    assert_eq!(got, json!({"OK": "fine", "DB": "hunter2-db"}));
    // An entry we cannot attribute fails closed.
    proxy.inject_batch_error(
        json!({"SecretId": "arn:aws:secretsmanager:garbled", "ErrorCode": "InternalServiceError", "Message": "x"}),
    );
    let out = run(ecs(&proxy.endpoint())
        .args(["env", "--path", &path])
        .args(SM));
    assert!(assert_fail(&out).contains("garbled"));
}

/// moto's BatchGetSecretValue fails the whole call when a secret under the filter is
/// scheduled for deletion; real Secrets Manager leaves it out or reports it per secret.
/// The per-secret form is what this checks (the proxy adds it), next to a live secret.
#[test]
fn a_secret_scheduled_for_deletion_is_skipped() {
    let m = moto();
    let path = unique_path("smdeleted");
    let p = prefix(&path);
    put(&m.endpoint, &format!("{p}/LIVE"), "here");
    let proxy = Proxy::start(&m.endpoint);
    proxy.inject_batch_error(
        json!({"SecretId": format!("{p}/GONE"), "ErrorCode": "InvalidRequestException",
               "Message": "You can't perform this operation on the secret because it was marked for deletion."}),
    );
    assert_eq!(
        env_json(&proxy.endpoint(), &["--path", &path]),
        json!({"LIVE": "here"})
    );
    // list leaves a deleted secret out (ListSecrets shows DeletedDate).
    put(&m.endpoint, &format!("{p}/GONE"), "bye");
    block_on(
        secretsmanager(&m.endpoint)
            .delete_secret()
            .secret_id(format!("{p}/GONE"))
            .recovery_window_in_days(7)
            .send(),
    )
    .unwrap();
    let names: Vec<Value> = admin_json(&m.endpoint, &path, &["list"])
        .into_iter()
        .map(|l| l["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("LIVE")]);
    // Writing to it says what to do rather than resurrecting it.
    let out = admin(
        &m.endpoint,
        &path,
        &["create", "--name", "GONE", "--payload", "x"],
    );
    assert!(assert_fail(&out).contains("restore"), "{}", describe(&out));
}

#[test]
fn json_keys_expand_objects_and_leave_everything_else_whole() {
    let m = moto();
    let path = unique_path("smjson");
    let p = prefix(&path);
    put(
        &m.endpoint,
        &format!("{p}/DB"),
        r#"{"username":"app","password":"p'w\"d$","host":"db.local","port":5432,"tls":true,"opts":{"pool":{"max":10},"name-x":"n"},"tags":[1, "a"],"big":12345678901234567890123}"#,
    );
    put(&m.endpoint, &format!("{p}/PLAIN"), "just text");
    put(&m.endpoint, &format!("{p}/ARRAY"), "[1,2]");
    put(&m.endpoint, &format!("{p}/BROKEN"), r#"{"a": "#);
    let got = env_json(&m.endpoint, &["--path", &path, "--json-keys"]);
    assert_eq!(
        got,
        json!({
            "DB_username": "app", "DB_password": "p'w\"d$", "DB_host": "db.local",
            "DB_port": "5432", "DB_tls": "true", "DB_opts_pool_max": "10", "DB_opts_name_x": "n",
            "DB_tags": "[1,\"a\"]", "DB_big": "12345678901234567890123",
            "PLAIN": "just text", "ARRAY": "[1,2]", "BROKEN": "{\"a\": ",
        })
    );
    // Without the flag the object stays one variable; the variable turns it on too.
    let whole = env_json(&m.endpoint, &["--path", &path]);
    assert!(whole["DB"].as_str().unwrap().starts_with('{'));
    let out = run(ecs(&m.endpoint)
        .args(["exec", "--path", &path])
        .args(SM)
        .env("ECS_SECRETS_JSON_KEYS", "1")
        .args([
            "--require",
            "DB_opts_pool_max",
            "--",
            "sh",
            "-c",
            "printf %s \"$DB_password\"",
        ]));
    assert_eq!(assert_ok(&out), "p'w\"d$");
}

#[test]
fn json_keys_apply_to_files_too() {
    let m = moto();
    let path = unique_path("smjsonfiles");
    put(
        &m.endpoint,
        &format!("{}/DB", prefix(&path)),
        r#"{"user":"app","pw":{"v":"s3cr'et"}}"#,
    );
    let dir = TempDir::new("smjsonfiles");
    let files = dir.join("secrets");
    let out = run(ecs(&m.endpoint)
        .args([
            "exec",
            "--json-keys",
            "--allow-disk",
            "--no-env",
            "--path",
            &path,
        ])
        .args(SM)
        .arg("--files")
        .arg(&files)
        .args(["--", "sh", "-c", "printf %s \"${DB_user-unset}\""]));
    assert_eq!(assert_ok(&out), "unset");
    assert_eq!(std::fs::read(files.join("DB_user")).unwrap(), b"app");
    assert_eq!(std::fs::read(files.join("DB_pw_v")).unwrap(), b"s3cr'et");
    assert!(!files.join("DB").exists());
}

#[test]
fn json_keys_collisions_and_refusals_fail_closed_naming_them() {
    let m = moto();
    let path = unique_path("smjsonbad");
    let p = prefix(&path);
    put(&m.endpoint, &format!("{p}/DB"), r#"{"port":"1"}"#);
    put(&m.endpoint, &format!("{p}/DB_port"), "2");
    let e = assert_exec_not_started(
        ecs(&m.endpoint),
        &[
            "--backend",
            "secretsmanager",
            "--json-keys",
            "--path",
            &path,
        ],
    );
    assert!(e.contains("DB_port") && e.contains("both map"), "{e}");

    let path2 = unique_path("smjsonref");
    let p2 = prefix(&path2);
    put(
        &m.endpoint,
        &format!("{p2}/LD"),
        r#"{"PRELOAD":"/tmp/evil.so"}"#,
    );
    let e = assert_exec_not_started(
        ecs(&m.endpoint),
        &[
            "--backend",
            "secretsmanager",
            "--json-keys",
            "--path",
            &path2,
        ],
    );
    assert!(
        e.contains("LD_PRELOAD") && e.contains("--allow-name"),
        "{e}"
    );

    let path3 = unique_path("smjsondup");
    put(
        &m.endpoint,
        &format!("{}/K", prefix(&path3)),
        r#"{"a":"hunter2","a":"x"}"#,
    );
    let out = run(ecs(&m.endpoint)
        .args(["env", "--json-keys", "--path", &path3])
        .args(SM));
    let e = assert_fail(&out);
    assert!(e.contains("twice") && !e.contains("hunter2"), "{e}");
}

#[test]
fn json_keys_work_on_the_ssm_backend_too() {
    let m = moto();
    let path = unique_path("ssmjson");
    put_secure(
        &m.endpoint,
        &format!("{path}/DB"),
        r#"{"a":{"b":"x"},"port":5432}"#,
    );
    let out =
        run(ecs(&m.endpoint).args(["env", "--format", "json", "--json-keys", "--path", &path]));
    let v: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(v, json!({"DB_a_b": "x", "DB_port": "5432"}));
}

#[test]
fn twenty_concurrent_creates_get_twenty_distinct_serials() {
    let m = moto();
    let path = unique_path("smrace");
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let (endpoint, path) = (m.endpoint.clone(), path.clone());
            std::thread::spawn(move || {
                let value = format!("value-{i}");
                let mut c = ecs(&endpoint);
                c.args(["create", "--backend", "secretsmanager", "--path", &path])
                    .args(["--name", "DB", "--payload-stdin", "--timeout", "120"]);
                let out = stdin_run(&mut c, value.as_bytes());
                let v: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
                (v["serial"].as_u64().unwrap(), value)
            })
        })
        .collect();
    let mut got: Vec<(u64, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    got.sort();
    let serials: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(serials, (1..=20).collect::<Vec<u64>>());
    for (serial, value) in &got {
        let out = admin(
            &m.endpoint,
            &path,
            &["fetch", "--name", "DB", "--serial", &serial.to_string()],
        );
        let f: Value = serde_json::from_slice(&out.stdout).unwrap();
        // Only AWSCURRENT and AWSPREVIOUS keep labels (Secrets Manager's own rule), so
        // older serials answer inactive; the value is checked in Secrets Manager itself.
        // (serial 1's id carries a random suffix: it was written by CreateSecret)
        let want = format!("ecs-secrets-serial-{serial:020}");
        let vid = stages(&m.endpoint, &format!("{}/DB", prefix(&path)))
            .into_iter()
            .map(|v| v.0)
            .find(|v| v == &want || v.starts_with(&format!("{want}-")))
            .unwrap_or_else(|| panic!("no version for serial {serial}"));
        let stored = block_on(
            secretsmanager(&m.endpoint)
                .get_secret_value()
                .secret_id(format!("{}/DB", prefix(&path)))
                .version_id(&vid)
                .send(),
        )
        .unwrap();
        assert_eq!(
            stored.secret_string(),
            Some(value.as_str()),
            "serial {serial}"
        );
        if *serial >= 19 {
            assert_eq!(f["payload"], json!(value), "serial {serial}");
        } else {
            assert_eq!(
                (f["active"].clone(), f["payload"].clone()),
                (json!(false), json!(""))
            );
        }
    }
    let cur = env_json(&m.endpoint, &["--path", &path]);
    assert_eq!(cur["DB"], json!(got[19].1));
}

/// Secrets Manager ignores a repeated token with the same value, so writers racing with
/// identical payloads must still end up with distinct serials.
#[test]
fn concurrent_creates_of_one_identical_value_get_distinct_serials() {
    let m = moto();
    let path = unique_path("smsame");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (endpoint, path) = (m.endpoint.clone(), path.clone());
            std::thread::spawn(move || {
                let out = run(ecs(&endpoint)
                    .args(["create", "--backend", "secretsmanager", "--path", &path])
                    .args(["--name", "DB", "--payload", "same", "--timeout", "120"]));
                let v: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
                v["serial"].as_u64().unwrap()
            })
        })
        .collect();
    let mut serials: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    serials.sort();
    assert_eq!(serials, (1..=8).collect::<Vec<u64>>());
    // No writer's private label is left behind.
    let id = format!("{}/DB", prefix(&path));
    for (vid, s) in stages(&m.endpoint, &id) {
        assert!(s.iter().all(|l| l.starts_with("AWS")), "{vid}: {s:?}");
    }
}

#[test]
fn rotate_and_revoke_take_every_label_off_as_the_readme_says() {
    let m = moto();
    let path = unique_path("smrot");
    let id = format!("{}/DB", prefix(&path));
    for v in ["one", "two", "three"] {
        admin_json(
            &m.endpoint,
            &path,
            &["create", "--name", "DB", "--payload", v],
        );
    }
    // A version written by someone else (a rotation Lambda, the console): no serial.
    block_on(
        secretsmanager(&m.endpoint)
            .put_secret_value()
            .secret_id(&id)
            .secret_string("by-lambda")
            .send(),
    )
    .unwrap();
    let listed = admin_json(&m.endpoint, &path, &["list"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["serial"], Value::Null, "{listed:?}");
    assert!(listed[0]["version_id"].is_string(), "{listed:?}");
    assert_eq!(env_json(&m.endpoint, &["--path", &path])["DB"], "by-lambda");

    let r = admin_json(
        &m.endpoint,
        &path,
        &["rotate", "--name", "DB", "--payload", "four"],
    );
    assert_eq!(r[0]["serial"], 4);
    // Serial 3 held AWSPREVIOUS until the Lambda's write; serials 1 and 2 had lost their
    // labels to Secrets Manager already. The Lambda's version is de-labelled too.
    assert_eq!(r[0]["revoked"], json!([]), "{r:?}");
    let labelled: Vec<_> = stages(&m.endpoint, &id)
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .collect();
    assert_eq!(
        labelled,
        vec![(
            format!("ecs-secrets-serial-{:020}", 4),
            vec!["AWSCURRENT".to_string()]
        )]
    );
    assert_eq!(get_stage(&m.endpoint, &id, "AWSPREVIOUS"), None);
    assert_eq!(env_json(&m.endpoint, &["--path", &path])["DB"], "four");

    // rotate again: the previous serial is revoked and named.
    let r = admin_json(
        &m.endpoint,
        &path,
        &["rotate", "--name", "DB", "--payload", "five"],
    );
    assert_eq!(
        (r[0]["serial"].clone(), r[0]["revoked"].clone()),
        (json!(5), json!([4]))
    );
    assert_eq!(get_stage(&m.endpoint, &id, "AWSPREVIOUS"), None);
    let out = admin(
        &m.endpoint,
        &path,
        &["fetch", "--name", "DB", "--serial", "4"],
    );
    assert_eq!(out.status.code(), Some(1));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        f,
        json!({"name": "DB", "serial": 4, "payload": "", "active": false})
    );

    // Revoking the last active version: AWSCURRENT goes to a tombstone readers skip.
    let r = admin_json(
        &m.endpoint,
        &path,
        &["revoke", "--name", "DB", "--serial", "5"],
    );
    assert_eq!(r[0], json!({"name": "DB", "serial": 5, "active": false}));
    for (vid, s) in stages(&m.endpoint, &id) {
        if !vid.starts_with("ecs-secrets-tombstone-") {
            assert!(s.is_empty(), "{vid} keeps {s:?}");
        }
    }
    assert_eq!(get_stage(&m.endpoint, &id, "AWSPREVIOUS"), None);
    let out = run(ecs(&m.endpoint)
        .args(["env", "--format", "json", "--allow-empty", "--path", &path])
        .args(SM));
    assert_eq!(assert_ok(&out).trim(), "{}");
    assert!(
        assert_fail(&admin(&m.endpoint, &path, &["fetch", "--name", "DB"]))
            .contains("no active version")
    );
    // An unknown serial is an error and writes nothing.
    let before = stages(&m.endpoint, &id);
    let out = admin(
        &m.endpoint,
        &path,
        &["revoke", "--name", "DB", "--serial", "99"],
    );
    assert!(assert_fail(&out).contains("99"));
    let out = admin(
        &m.endpoint,
        &path,
        &["revoke", "--name", "NOPE", "--serial", "1"],
    );
    assert_fail(&out);
    assert_eq!(stages(&m.endpoint, &id), before);
    // A new version after a full revocation continues the serials.
    let c = admin_json(
        &m.endpoint,
        &path,
        &["create", "--name", "DB", "--payload", "six"],
    );
    assert_eq!(c[0]["serial"], 6);
    assert_eq!(env_json(&m.endpoint, &["--path", &path])["DB"], "six");
    // Revoking everything again writes a new tombstone (the same one again would be an
    // ignored retry, leaving AWSCURRENT where it was).
    admin_json(
        &m.endpoint,
        &path,
        &["revoke", "--name", "DB", "--serial", "6"],
    );
    let labelled: Vec<_> = stages(&m.endpoint, &id)
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .collect();
    assert_eq!(labelled.len(), 1, "{labelled:?}");
    assert!(
        labelled[0].0.starts_with("ecs-secrets-tombstone-"),
        "{labelled:?}"
    );
    assert_eq!(labelled[0].1, vec!["AWSCURRENT".to_string()]);
    assert_eq!(
        env_json(&m.endpoint, &["--allow-empty", "--path", &path]),
        json!({})
    );
}

/// Revoking AWSCURRENT while an older version is still active moves AWSCURRENT to it.
/// (moto's BatchGetSecretValue keeps answering the version that was current before a label
/// move, without its AWSCURRENT label; ecs-secrets refuses such an answer, so this checks
/// the labels and `fetch`, which reads by label, rather than `env`.)
#[test]
fn revoking_the_current_version_hands_awscurrent_to_the_previous_one() {
    let m = moto();
    let path = unique_path("smheir");
    let id = format!("{}/DB", prefix(&path));
    for v in ["one", "two"] {
        admin_json(
            &m.endpoint,
            &path,
            &["create", "--name", "DB", "--payload", v],
        );
    }
    admin_json(
        &m.endpoint,
        &path,
        &["revoke", "--name", "DB", "--serial", "2"],
    );
    let st = stages(&m.endpoint, &id);
    assert_eq!(st.len(), 2, "{st:?}");
    assert!(
        st[0]
            .0
            .starts_with(&format!("ecs-secrets-serial-{:020}-", 1)),
        "{st:?}"
    );
    assert_eq!(st[0].1, vec!["AWSCURRENT".to_string()]);
    assert_eq!(st[1], (format!("ecs-secrets-serial-{:020}", 2), vec![]));
    assert_eq!(
        get_stage(&m.endpoint, &id, "AWSCURRENT").as_deref(),
        Some("one")
    );
    assert_eq!(get_stage(&m.endpoint, &id, "AWSPREVIOUS"), None);
    let f = admin_json(&m.endpoint, &path, &["fetch", "--name", "DB"]);
    assert_eq!(
        f[0],
        json!({"name": "DB", "serial": 1, "payload": "one", "active": true})
    );
    let listed = admin_json(&m.endpoint, &path, &["list", "--all-versions"]);
    let active: Vec<(Value, Value)> = listed
        .iter()
        .map(|l| (l["serial"].clone(), l["active"].clone()))
        .collect();
    assert_eq!(
        active,
        vec![(json!(1), json!(true)), (json!(2), json!(false))]
    );
}

#[test]
fn the_daemon_serves_a_secrets_manager_path() {
    let m = moto();
    let path = unique_path("smdaemon");
    put(&m.endpoint, &format!("{}/DB", prefix(&path)), "from-sm");
    let d = DaemonProcess::start(&m.endpoint, &path, &SM);
    let r = d.get("/latest/secrets/DB").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(
        (v["payload"].clone(), v["active"].clone()),
        (json!("from-sm"), json!(true))
    );
    let r = d
        .post("/latest/secrets/NEW", r#"{"payload":"posted"}"#)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["serial"], 1);
    let r = d.get("/latest/secrets/NEW/1").unwrap();
    assert!(r.text().contains("posted"), "{}", r.text());
    let r = d.get("/latest/secrets").unwrap();
    assert!(
        r.text().contains("\"NEW\"") && r.text().contains("\"DB\""),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("from-sm"), "{}", r.text());
    let r = d.post("/latest/revoke/NEW/1", "").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(d.get("/latest/secrets/NEW/1").unwrap().status, 410);
    assert_eq!(d.get("/latest/secrets/MISSING").unwrap().status, 404);
    d.stop();
}

/// Values Secrets Manager can hold as text that break naive quoting, plus bytes it can
/// only hold as SecretBinary.
fn hostile() -> Vec<(&'static str, Vec<u8>)> {
    let ascii: String = (1u8..=127).map(char::from).collect();
    vec![
        ("ASCII_ALL", ascii.clone().into_bytes()),
        ("QUOTES", br#"'single' "double" '\'' it's"#.to_vec()),
        (
            "SUBST",
            b"$(touch PWNED) `touch PWNED` ${HOME} $((1+1))".to_vec(),
        ),
        ("BACKSLASHES", br"\ \\ \n \0 \x41 \' C:\dir\".to_vec()),
        ("NEWLINES", b"\nfirst\n\nsecond\r\nthird\n\n".to_vec()),
        (
            "UTF8",
            "é 中文 🔑 \u{202E}rtl \u{2028}ls".as_bytes().to_vec(),
        ),
        ("BLANKS", b"  \t leading and trailing \t  ".to_vec()),
        ("DASHES", b"--help".to_vec()),
        ("JSONISH", br#"{"payload":"x"} \u0000"#.to_vec()),
        ("BINARY", (1u8..=255).collect()),
        ("db.password", format!("dotted {ascii}").into_bytes()),
    ]
}

#[test]
fn hostile_values_survive_eval_in_every_shell() {
    let m = moto();
    let path = unique_path("smeval");
    let values = hostile();
    for (k, v) in &values {
        let name = format!("{}/{k}", prefix(&path));
        match std::str::from_utf8(v) {
            Ok(t) => put(&m.endpoint, &name, t),
            Err(_) => put_binary(&m.endpoint, &name, v),
        }
    }
    let dir = TempDir::new("smeval");
    for shell in [
        vec!["dash"],
        vec!["bash"],
        vec!["zsh"],
        vec!["busybox", "sh"],
    ] {
        let tag = shell.join("-");
        let out_dir = dir.join(&tag);
        std::fs::create_dir(&out_dir).unwrap();
        let mut script = String::from(
            "vars=$(ecs-secrets env --backend secretsmanager --path \"$P\") || exit 1; eval \"$vars\" || exit 9\n",
        );
        for (k, _) in &values {
            let var = k.replace('.', "_");
            script.push_str(&format!("printf '%s' \"${var}\" > \"$OUT/{var}\"\n"));
        }
        let mut c = Command::new(shell[0]);
        c.args(&shell[1..]).arg("-c").arg(&script);
        shell_env(&mut c, &m.endpoint)
            .env("P", &path)
            .env("OUT", &out_dir)
            .current_dir(&out_dir);
        assert_ok(&run(&mut c));
        for (k, v) in &values {
            let got = std::fs::read(out_dir.join(k.replace('.', "_"))).unwrap();
            assert_eq!(&got, v, "{tag}: {k} differs");
        }
        assert!(
            !out_dir.join("PWNED").exists(),
            "{tag}: a value was executed"
        );
    }
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let m = moto();
    let path = unique_path("smbad");
    let out = admin(
        &m.endpoint,
        &path,
        &[
            "create",
            "--name",
            "DB",
            "--payload",
            "ecs-secrets:revoked:no-active-version",
        ],
    );
    assert!(assert_fail(&out).contains("reserved"));
    let big = "x".repeat(64 * 1024 + 1);
    let mut c = ecs(&m.endpoint);
    c.args(["create", "--path", &path, "--name", "DB", "--payload-stdin"])
        .args(SM);
    let out = stdin_run(&mut c, big.as_bytes());
    assert!(assert_fail(&out).contains("larger than 65536 bytes"));
    assert!(admin_json(&m.endpoint, &path, &["list", "--all-versions"]).is_empty());
    // --recursive is accepted here, unlike on dynamodb.
    let out = run(ecs(&m.endpoint)
        .args(["env", "--recursive", "--allow-empty", "--path", &path])
        .args(SM));
    assert_ok(&out);
}

/// Runs a linter; a missing one fails the test saying how to install it.
fn lint(tool: &str, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(tool);
    c.args(args).stdin(std::process::Stdio::null());
    c.output().unwrap_or_else(|e| {
        panic!("{tool} not runnable ({e}): install it with `pip install parliament cfn-lint` (scripts/deps.sh)")
    })
}

#[test]
fn setup_policies_and_template_pass_the_aws_linters() {
    let m = moto();
    let path = unique_path("smsetup");
    let out = run(ecs(&m.endpoint)
        .args(["setup", "--path", &path])
        .args(SM)
        .args(["--fetch-role", "arn:aws:iam::123456789012:role/task"]));
    let lines: Vec<Value> = assert_ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "fetch, create, daemon");
    let arn = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}/*",
        prefix(&path)
    );
    for l in &lines {
        let policy = l["policy"].to_string();
        assert!(policy.contains(&arn), "{policy}");
        let o = lint("parliament", &["--string", &policy]);
        let findings = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success() && findings.trim().is_empty(),
            "{}: {findings}",
            l["access"]
        );
    }
    let fetch = lines[0]["policy"].to_string();
    assert!(
        fetch.contains("\"Effect\":\"Deny\"") && fetch.contains("secretsmanager:VersionId"),
        "{fetch}"
    );
    assert!(
        !fetch.contains("PutSecretValue") && !fetch.contains("UpdateSecretVersionStage"),
        "{fetch}"
    );

    let out = run(ecs(&m.endpoint)
        .args(["setup", "--cloudformation", "--path", &path])
        .args(SM));
    let dir = TempDir::new("smcfn");
    let file = dir.join("template.json");
    std::fs::write(&file, assert_ok(&out)).unwrap();
    let o = lint("cfn-lint", &[file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe(&o));
}
