//! The dynamodb backend through the real binary against a real moto server: reads, request
//! costs, concurrent creates, tampering, revoke, rotate-key, binary payloads.

mod common;
mod ddb;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use common::*;
use ddb::*;
use ecs_secrets::store::dynamodb::{key_sk, version_sk};
use std::collections::HashMap;
use std::process::{Command, Stdio};

#[test]
fn create_fetch_list_and_exec_round_trip() {
    let ep = moto_ready();
    let path = unique_path("ddb-basic");
    assert_eq!(create(ep, &path, "DB_PASSWORD", b"first"), 1);
    assert_eq!(create(ep, &path, "DB_PASSWORD", b"p@ss w'rd $x `y`"), 2);
    assert_eq!(create(ep, &path, "api.key-v2", b"k"), 1);

    let s = assert_ok(&run(&mut show(
        ep,
        &["--path", &path],
        &["DB_PASSWORD", "api_key_v2"],
    )));
    assert!(s.contains("DB_PASSWORD=p@ss w'rd $x `y`\n"), "{s}");
    assert!(s.contains("api_key_v2=k\n"), "{s}");

    let f = assert_ok(&run(ddb(ep).args([
        "fetch",
        "--path",
        &path,
        "--name",
        "DB_PASSWORD",
    ])));
    let v: serde_json::Value = serde_json::from_str(f.trim()).unwrap();
    assert_eq!(v["serial"], 2);
    assert_eq!(v["payload"], "p@ss w'rd $x `y`");
    assert_eq!(v["active"], true);
    let f = assert_ok(&run(ddb(ep).args([
        "fetch",
        "--path",
        &path,
        "--name",
        "DB_PASSWORD",
        "--serial",
        "1",
    ])));
    assert!(f.contains("\"payload\":\"first\""), "{f}");

    let l = assert_ok(&run(ddb(ep).args(["list", "--path", &path])));
    let rows: Vec<serde_json::Value> = l
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{l}");
    assert_eq!(rows[0]["name"], "DB_PASSWORD");
    assert_eq!(rows[0]["serial"], 2);
    let created = rows[0]["created"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "RFC 3339 UTC: {created}"
    );
    assert!(
        !l.contains("first") && !l.contains("p@ss"),
        "never payloads: {l}"
    );
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert_eq!(l.lines().count(), 3, "{l}");

    // The env command reads the same.
    let j = assert_ok(&run(
        ddb(ep).args(["env", "--path", &path, "--format", "json"])
    ));
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(j["DB_PASSWORD"], "p@ss w'rd $x `y`");

    // Unknown names and serials.
    let out = run(ddb(ep).args(["fetch", "--path", &path, "--name", "NOPE"]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(assert_fail(&out).contains("no secret"));
    let out = run(ddb(ep).args([
        "fetch",
        "--path",
        &path,
        "--name",
        "DB_PASSWORD",
        "--serial",
        "7",
    ]));
    let e = assert_fail(&out);
    assert!(
        e.contains("no serial 7") && e.contains("serials: 1, 2"),
        "{e}"
    );
}

#[test]
fn two_hundred_secrets_cost_one_query_and_one_decrypt() {
    let ep = moto_ready();
    let path = unique_path("ddb-200");
    // Seeding is not under test: write through the library, several at a time.
    let store =
        ecs_secrets::store::dynamodb::DynamoStore::new(dynamodb(ep), kms(ep), TABLE.into(), None);
    block_on(store.create(
        &path,
        "S000",
        &ecs_secrets::secret::Payload::from_string(format!("value-000-{path}")),
    ))
    .unwrap();
    block_on(async {
        let names: Vec<usize> = (1..200).collect();
        for chunk in names.chunks(8) {
            let mut set = tokio::task::JoinSet::new();
            for &i in chunk {
                let (store, path) = (store.clone(), path.clone());
                set.spawn(async move {
                    let p =
                        ecs_secrets::secret::Payload::from_string(format!("value-{i:03}-{path}"));
                    store.create(&path, &format!("S{i:03}"), &p).await
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap().unwrap();
            }
        }
    });

    let proxy = Proxy::start(ep);
    let out = run(&mut show(
        &proxy.endpoint(),
        &["--path", &path],
        &["S000", "S123", "S199"],
    ));
    let s = assert_ok(&out);
    for i in [0, 123, 199] {
        assert!(s.contains(&format!("S{i:03}=value-{i:03}-{path}\n")), "{s}");
    }
    assert_eq!(
        proxy.count("DynamoDB_20120810.Query"),
        1,
        "{}",
        ops_summary(&proxy)
    );
    assert_eq!(
        proxy.count("TrentService.Decrypt"),
        1,
        "{}",
        ops_summary(&proxy)
    );
    assert_eq!(proxy.total(), 2, "nothing else: {}", ops_summary(&proxy));
    eprintln!("exec of 200 secrets: {}", ops_summary(&proxy));
}

#[test]
fn twenty_concurrent_creates_get_serials_one_to_twenty() {
    let ep = moto_ready();
    let path = unique_path("ddb-race");
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut c = ddb(ep);
            c.args(["create", "--path", &path, "--name", "RACE", "--payload"])
                .arg(format!("value-{i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut by_serial = HashMap::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let v: serde_json::Value = serde_json::from_str(assert_ok(&out).trim()).unwrap();
        let serial = v["serial"].as_u64().unwrap();
        assert!(
            by_serial.insert(serial, i).is_none(),
            "serial {serial} handed out twice"
        );
    }
    let mut serials: Vec<u64> = by_serial.keys().copied().collect();
    serials.sort();
    assert_eq!(serials, (1..=20).collect::<Vec<u64>>());
    // Nothing was lost: every serial holds the value of the process that got it.
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert_eq!(l.lines().count(), 20, "{l}");
    for (serial, i) in [1u64, 7, 20].map(|s| (s, by_serial[&s])) {
        let f = assert_ok(&run(ddb(ep).args([
            "fetch",
            "--path",
            &path,
            "--name",
            "RACE",
            "--serial",
            &serial.to_string(),
        ])));
        assert!(
            f.contains(&format!("\"payload\":\"value-{i}\"")),
            "{serial}: {f}"
        );
    }
}

const SEALED: &[&str] = &["ciphertext", "nonce", "generation"];

#[test]
fn a_ciphertext_copied_to_another_name_fails_closed() {
    let ep = moto_ready();
    let path = unique_path("ddb-tamper-name");
    create(ep, &path, "ADMIN_TOKEN", b"admin-secret");
    create(ep, &path, "GUEST_TOKEN", b"guest-secret");
    copy_attrs(
        ep,
        (&path, &version_sk("ADMIN_TOKEN", 1)),
        (&path, &version_sk("GUEST_TOKEN", 1)),
        SEALED,
    );
    let e = assert_not_started(ep, &path);
    assert!(e.contains(&format!("{path}/GUEST_TOKEN serial 1")), "{e}");
    assert!(
        !e.contains("secret\"") && !e.contains("admin-secret"),
        "{e}"
    );
}

#[test]
fn a_ciphertext_copied_to_another_serial_fails_closed() {
    let ep = moto_ready();
    let path = unique_path("ddb-tamper-serial");
    create(ep, &path, "TOKEN", b"old-value");
    create(ep, &path, "TOKEN", b"new-value");
    // Roll serial 2 back to serial 1's ciphertext.
    copy_attrs(
        ep,
        (&path, &version_sk("TOKEN", 1)),
        (&path, &version_sk("TOKEN", 2)),
        SEALED,
    );
    let e = assert_not_started(ep, &path);
    assert!(e.contains(&format!("{path}/TOKEN serial 2")), "{e}");
}

#[test]
fn a_ciphertext_copied_to_another_path_fails_closed() {
    let ep = moto_ready();
    let (a, b) = (unique_path("ddb-tamper-a"), unique_path("ddb-tamper-b"));
    create(ep, &a, "TOKEN", b"value-of-a");
    create(ep, &b, "TOKEN", b"value-of-b");
    // Same name, serial and generation number: only the path (and its data key) differ.
    copy_attrs(
        ep,
        (&a, &version_sk("TOKEN", 1)),
        (&b, &version_sk("TOKEN", 1)),
        SEALED,
    );
    let e = assert_not_started(ep, &b);
    assert!(e.contains(&format!("{b}/TOKEN serial 1")), "{e}");
    // Moving the data key along (the copy the version carries) does not help: KMS binds
    // it to its path.
    copy_attrs(
        ep,
        (&a, &version_sk("TOKEN", 1)),
        (&b, &version_sk("TOKEN", 1)),
        &["encrypted_key"],
    );
    let e = assert_not_started(ep, &b);
    assert!(
        e.contains(&format!("data key generation 1 of {b}"))
            && e.contains(&format!("needed by {b}/TOKEN serial 1"))
            && e.contains("InvalidCiphertextException"),
        "{e}"
    );
}

#[test]
fn a_whole_item_copied_under_another_key_fails_closed() {
    let ep = moto_ready();
    let path = unique_path("ddb-tamper-item");
    create(ep, &path, "TOKEN", b"revoked-later");
    create(ep, &path, "TOKEN", b"current");
    // Replay serial 1 as a newer serial 3, attributes adjusted to match the new key.
    let mut item = get_raw(ep, TABLE, &path, &version_sk("TOKEN", 1)).unwrap();
    item.insert("sk".into(), Av::S(version_sk("TOKEN", 3)));
    item.insert("serial".into(), Av::N("3".into()));
    put_raw(ep, TABLE, item.clone());
    let e = assert_not_started(ep, &path);
    assert!(e.contains(&format!("{path}/TOKEN serial 3")), "{e}");
    // Attributes left as they were: caught as a mismatch.
    item.insert("serial".into(), Av::N("1".into()));
    put_raw(ep, TABLE, item);
    let e = assert_not_started(ep, &path);
    assert!(e.contains(&format!("{path}/TOKEN serial 3")), "{e}");
}

#[test]
fn a_missing_data_key_or_generation_change_fails_closed() {
    let ep = moto_ready();
    let path = unique_path("ddb-tamper-key");
    create(ep, &path, "TOKEN", b"v");
    let mut item = get_raw(ep, TABLE, &path, &version_sk("TOKEN", 1)).unwrap();
    item.insert("generation".into(), Av::N("2".into()));
    put_raw(ep, TABLE, item.clone());
    let e = assert_not_started(ep, &path);
    assert!(e.contains(&format!("{path}/TOKEN serial 1")), "{e}");
    // A version written before versions carried their data key, whose key item is gone:
    // it cannot be served, and the start fails naming it (the documented choice).
    item.remove("encrypted_key");
    put_raw(ep, TABLE, item.clone());
    let e = assert_not_started(ep, &path);
    assert!(
        e.contains(&format!("{path}/TOKEN serial 1")) && e.contains("generation 2 is missing"),
        "{e}"
    );
    // A generation that exists but is not the one it was sealed under.
    item.insert("generation".into(), Av::N("1".into()));
    put_raw(ep, TABLE, item);
    let mut k2 = get_raw(ep, TABLE, &path, &key_sk(1)).unwrap();
    k2.insert("sk".into(), Av::S(key_sk(2)));
    k2.insert("generation".into(), Av::N("2".into()));
    put_raw(ep, TABLE, k2);
    assert_ok(&run(&mut show(ep, &["--path", &path], &["TOKEN"])));
    let mut item = get_raw(ep, TABLE, &path, &version_sk("TOKEN", 1)).unwrap();
    item.insert("generation".into(), Av::N("2".into()));
    put_raw(ep, TABLE, item);
    let e = assert_not_started(ep, &path);
    assert!(e.contains(&format!("{path}/TOKEN serial 1")), "{e}");
}

#[test]
fn revoke_removes_the_ciphertext_and_is_idempotent() {
    let ep = moto_ready();
    let path = unique_path("ddb-revoke");
    create(ep, &path, "TOKEN", b"one");
    create(ep, &path, "TOKEN", b"two");
    let out = run(ddb(ep).args([
        "revoke", "--path", &path, "--name", "TOKEN", "--serial", "2",
    ]));
    assert_eq!(
        assert_ok(&out).trim(),
        r#"{"name":"TOKEN","serial":2,"active":false}"#
    );
    let item = get_raw(ep, TABLE, &path, &version_sk("TOKEN", 2)).unwrap();
    assert_eq!(item["active"], Av::Bool(false));
    for gone in ["ciphertext", "nonce", "generation"] {
        assert!(!item.contains_key(gone), "{gone} still there: {item:?}");
    }
    // Readers fall back to the newest active version.
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["TOKEN"])));
    assert!(s.contains("TOKEN=one\n"), "{s}");
    let out = run(ddb(ep).args(["fetch", "--path", &path, "--name", "TOKEN", "--serial", "2"]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"name":"TOKEN","serial":2,"payload":"","active":false}"#
    );
    // Again: fine, and still revoked.
    assert_ok(&run(ddb(ep).args([
        "revoke", "--path", &path, "--name", "TOKEN", "--serial", "2",
    ])));
    // Every version revoked: the name disappears from reads.
    assert_ok(&run(ddb(ep).args([
        "revoke", "--path", &path, "--name", "TOKEN", "--serial", "1",
    ])));
    // (The path is now empty: an error since 0.2.0 unless --allow-empty.)
    let s = assert_ok(&run(&mut show(
        ep,
        &["--path", &path, "--allow-empty"],
        &["TOKEN"],
    )));
    assert!(s.contains("TOKEN=<unset>"), "{s}");
    let out = run(ddb(ep).args(["fetch", "--path", &path, "--name", "TOKEN"]));
    assert!(
        assert_fail(&out).contains("no active version"),
        "{}",
        describe(&out)
    );
    // A revoked version marked active again by hand has nothing to give: fail closed.
    let mut item = get_raw(ep, TABLE, &path, &version_sk("TOKEN", 2)).unwrap();
    item.insert("active".into(), Av::Bool(true));
    put_raw(ep, TABLE, item);
    let e = assert_not_started(ep, &path);
    assert!(e.contains(&format!("{path}/TOKEN serial 2")), "{e}");
}

#[test]
fn revoking_an_unknown_name_or_serial_fails_and_creates_nothing() {
    let ep = moto_ready();
    let path = unique_path("ddb-revoke-unknown");
    create(ep, &path, "TOKEN", b"one");
    let out = run(ddb(ep).args([
        "revoke", "--path", &path, "--name", "TOKEN", "--serial", "9",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("no serial 9") && e.contains("serials: 1"), "{e}");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert!(get_raw(ep, TABLE, &path, &version_sk("TOKEN", 9)).is_none());

    let out = run(ddb(ep).args(["revoke", "--path", &path, "--name", "NOPE", "--serial", "1"]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no secret {path}/NOPE")));
    assert!(get_raw(ep, TABLE, &path, &version_sk("NOPE", 1)).is_none());
    // A data-key item is not a version either.
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert_eq!(l.lines().count(), 1, "{l}");
}

#[test]
fn rotate_key_reseals_active_versions_and_reads_cost_one_decrypt() {
    let ep = moto_ready();
    let path = unique_path("ddb-rotate-key");
    create(ep, &path, "A", b"a1");
    create(ep, &path, "A", b"a2");
    create(ep, &path, "B", b"b1");
    create(ep, &path, "GONE", b"revoked");
    assert_ok(&run(ddb(ep).args([
        "revoke", "--path", &path, "--name", "GONE", "--serial", "1",
    ])));

    let out = assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
    assert_eq!(
        out.trim(),
        format!(r#"{{"path":"{path}","generation":2,"resealed":3}}"#)
    );
    // Every active version now under generation 2; the old key is gone; revoked stays so.
    for (name, serial) in [("A", 1), ("A", 2), ("B", 1)] {
        let item = get_raw(ep, TABLE, &path, &version_sk(name, serial)).unwrap();
        assert_eq!(item["generation"], Av::N("2".into()), "{name} {serial}");
    }
    let gone = get_raw(ep, TABLE, &path, &version_sk("GONE", 1)).unwrap();
    assert_eq!(gone["active"], Av::Bool(false));
    assert!(!gone.contains_key("ciphertext"));
    assert!(
        get_raw(ep, TABLE, &path, &key_sk(1)).is_none(),
        "old key deleted"
    );
    assert!(get_raw(ep, TABLE, &path, &key_sk(2)).is_some());

    let proxy = Proxy::start(ep);
    let s = assert_ok(&run(&mut show(
        &proxy.endpoint(),
        &["--path", &path],
        &["A", "B", "GONE"],
    )));
    assert!(s.contains("A=a2\nB=b1\nGONE=<unset>\n"), "{s}");
    assert_eq!(
        proxy.count("TrentService.Decrypt"),
        1,
        "{}",
        ops_summary(&proxy)
    );
    assert_eq!(proxy.count("Query"), 1, "{}", ops_summary(&proxy));
    let f = assert_ok(&run(
        ddb(ep).args(["fetch", "--path", &path, "--name", "A", "--serial", "1"])
    ));
    assert!(f.contains("\"payload\":\"a1\""), "{f}");

    // New versions use the new generation; another rotation moves everything again.
    create(ep, &path, "C", b"c1");
    let item = get_raw(ep, TABLE, &path, &version_sk("C", 1)).unwrap();
    assert_eq!(item["generation"], Av::N("2".into()));
    let out = assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
    assert!(out.contains(r#""generation":3,"resealed":4"#), "{out}");
    assert!(get_raw(ep, TABLE, &path, &key_sk(2)).is_none());
}

#[test]
fn a_create_racing_rotate_key_reseals_itself_under_the_new_key() {
    let ep = moto_ready();
    let path = unique_path("ddb-race-rotate");
    create(ep, &path, "A", b"a1");
    // Hold the create's PutItem in the proxy while a rotation starts: a new generation is
    // written and the old one retired (what rotate-key does before it re-reads and
    // re-seals), so the rotation may not see the version the create is writing.
    let (proxy, child) = create_held_at(ep, &path, "PutItem", 2000);
    let mut k1 = get_raw(ep, TABLE, &path, &key_sk(1)).unwrap();
    let mut k2 = k1.clone();
    k2.insert("sk".into(), Av::S(key_sk(2)));
    k2.insert("generation".into(), Av::N("2".into()));
    put_raw(ep, TABLE, k2);
    k1.insert("retired".into(), Av::Bool(true));
    put_raw(ep, TABLE, k1);
    let out = child.wait_with_output().unwrap();
    assert!(
        assert_ok(&out).contains(r#""serial":1"#),
        "{}",
        describe(&out)
    );
    let item = get_raw(ep, TABLE, &path, &version_sk("B", 1)).unwrap();
    assert_eq!(
        item["generation"],
        Av::N("2".into()),
        "re-sealed under the new key"
    );
    assert_eq!(proxy.count("UpdateItem"), 1, "{}", ops_summary(&proxy));
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A", "B"])));
    assert!(s.contains("A=a1\nB=b1\n"), "{s}");
    // The rotation finishing now re-seals A and deletes generation 1.
    assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
    assert!(get_raw(ep, TABLE, &path, &key_sk(1)).is_none());
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A", "B"])));
    assert!(s.contains("A=a1\nB=b1\n"), "{s}");
}

#[test]
fn binary_payloads_round_trip_through_env_shell_and_exec() {
    let ep = moto_ready();
    let path = unique_path("ddb-binary");
    let value: Vec<u8> = b"\xff\xfe quote' dq\" $HOME `id` \\ \n\tline2 \x80\x01 end\n".to_vec();
    create(ep, &path, "BIN", &value);

    let env = run(ddb(ep).args(["env", "--path", &path]));
    assert_ok(&env);
    assert!(
        env.stdout.starts_with(b"export BIN='"),
        "{}",
        describe(&env)
    );
    let dir = TempDir::new("binary");
    let script = dir.join("env.sh");
    std::fs::write(&script, &env.stdout).unwrap();
    // Every shell the contract names (CI installs them all): none is skipped.
    let shells: Vec<Vec<&str>> = vec![
        vec!["sh"],
        vec!["bash"],
        vec!["dash"],
        vec!["zsh"],
        vec!["busybox", "sh"],
    ];
    for sh in &shells {
        let out_file = dir.join(format!("out-{}", sh.join("-")));
        let mut c = Command::new(sh[0]);
        c.args(&sh[1..]).arg("-c").arg(format!(
            "eval \"$(cat '{}')\" && printf '%s' \"$BIN\" > '{}'",
            script.display(),
            out_file.display()
        ));
        let out = run(&mut c);
        assert_ok(&out);
        assert_eq!(std::fs::read(&out_file).unwrap(), value, "{sh:?}");
    }

    let out_file = dir.join("exec-out");
    assert_ok(&run(ddb(ep)
        .args(["exec", "--path", &path, "--", "sh", "-c"])
        .arg(format!("printf '%s' \"$BIN\" > '{}'", out_file.display()))));
    assert_eq!(std::fs::read(&out_file).unwrap(), value);

    // JSON cannot carry it: refused naming the secret, nothing partial printed.
    let out = run(ddb(ep).args(["env", "--path", &path, "--format", "json"]));
    assert!(assert_fail(&out).contains("BIN"));
    assert!(out.stdout.is_empty());
}

#[test]
fn payloads_that_cannot_be_stored_are_refused_before_writing() {
    let ep = moto_ready();
    let path = unique_path("ddb-refuse");
    let too_big = vec![b'x'; 64 * 1024 + 1];
    for (value, why) in [
        (&b""[..], "empty"),
        (&b"a\0b"[..], "NUL"),
        (&too_big[..], "larger than 65536"),
    ] {
        let out = stdin_run(
            ddb(ep).args(["create", "--path", &path, "--name", "X", "--payload-stdin"]),
            value,
        );
        assert_eq!(out.status.code(), Some(2), "{why}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{}",
            describe(&out)
        );
    }
    assert!(get_raw(ep, TABLE, &path, &version_sk("X", 1)).is_none());
    // Exactly the limit is fine.
    create(ep, &path, "X", &too_big[1..]);
}

#[test]
fn an_empty_path_allowed_warns_and_runs_the_command() {
    let ep = moto_ready();
    let path = unique_path("ddb-empty");
    let proxy = Proxy::start(ep);
    let out = run(&mut show(
        &proxy.endpoint(),
        &["--path", &path, "--allow-empty"],
        &["X"],
    ));
    assert!(assert_ok(&out).contains("X=<unset>"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no secrets under"));
    assert_eq!(
        short_ops(&proxy),
        ["Query", "DescribeTable"],
        "one Query, the table's layout checked (an empty read only), no Decrypt: {}",
        ops_summary(&proxy)
    );
}

#[test]
fn a_missing_table_fails_closed_with_the_next_step() {
    let ep = moto_ready();
    let path = unique_path("ddb-notable");
    let dir = TempDir::new("marker");
    let marker = dir.join("started");
    let out = run(ddb(ep)
        .args([
            "exec",
            "--path",
            &path,
            "--table",
            "no-such-table",
            "--",
            "touch",
        ])
        .arg(&marker));
    let e = assert_fail(&out);
    assert!(!marker.exists());
    assert!(
        e.contains("no-such-table") && e.contains("ecs-secrets setup --backend dynamodb"),
        "{e}"
    );
}

#[test]
fn debug_output_counts_requests_and_never_shows_values() {
    let ep = moto_ready();
    let path = unique_path("ddb-debug");
    create(ep, &path, "A", b"debug-secret-value");
    let out = run(&mut show(ep, &["--path", &path, "--debug"], &["A"]));
    assert!(assert_ok(&out).contains("A=debug-secret-value"));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("1 secrets in 1 Query page(s) and 1 KMS Decrypt(s)"),
        "{e}"
    );
    assert!(
        e.contains("DynamoDB.Query") && e.contains("KMS.Decrypt"),
        "{e}"
    );
    assert!(!e.contains("debug-secret-value"), "{e}");
}

#[test]
fn several_paths_later_wins() {
    let ep = moto_ready();
    let (a, b) = (unique_path("ddb-multi-a"), unique_path("ddb-multi-b"));
    create(ep, &a, "X", b"from-a");
    create(ep, &a, "ONLY_A", b"a");
    create(ep, &b, "X", b"from-b");
    let s = assert_ok(&run(&mut show(
        ep,
        &["--path", &a, "--path", &b],
        &["X", "ONLY_A"],
    )));
    assert!(s.contains("X=from-b") && s.contains("ONLY_A=a"), "{s}");
}

#[test]
fn dynamodb_commands_refuse_the_ssm_backend() {
    let ep = moto_ready();
    for args in [
        vec!["rotate-key", "--path", "/a/b"],
        vec!["import", "--path", "/a/b", "--from-ecs-secrets-table", "T"],
    ] {
        let out = run(ecs(ep).args(&args));
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--backend dynamodb"));
    }
}

#[test]
fn import_copies_the_active_versions_of_an_original_table() {
    let ep = moto_ready();
    let source = legacy_table(
        ep,
        &[
            ("DB_PASSWORD", 1, b"revoked-one", false),
            ("DB_PASSWORD", 2, b"pw-two", true),
            ("DB_PASSWORD", 3, b"pw-three", true),
            ("API_KEY", 1, b"api \xff bytes", true),
            ("OLD", 1, b"old", false),
        ],
    );
    let path = unique_path("ddb-import");
    let out = run(ddb(ep).args([
        "import",
        "--path",
        &path,
        "--from-ecs-secrets-table",
        &source,
    ]));
    assert_eq!(
        assert_ok(&out),
        "{\"name\":\"API_KEY\",\"serial\":1}\n{\"name\":\"DB_PASSWORD\",\"serial\":2}\n{\"name\":\"DB_PASSWORD\",\"serial\":3}\n"
    );
    let s = assert_ok(&run(&mut show(
        ep,
        &["--path", &path],
        &["DB_PASSWORD", "OLD"],
    )));
    assert!(s.contains("DB_PASSWORD=pw-three\nOLD=<unset>\n"), "{s}");
    let dir = TempDir::new("import");
    let f = dir.join("api");
    assert_ok(&run(ddb(ep)
        .args(["exec", "--path", &path, "--", "sh", "-c"])
        .arg(format!("printf '%s' \"$API_KEY\" > '{}'", f.display()))));
    assert_eq!(std::fs::read(&f).unwrap(), b"api \xff bytes");
    let f2 = assert_ok(&run(ddb(ep).args([
        "fetch",
        "--path",
        &path,
        "--name",
        "DB_PASSWORD",
        "--serial",
        "2",
    ])));
    assert!(f2.contains("\"payload\":\"pw-two\""), "{f2}");
    let e = assert_fail(&run(ddb(ep).args([
        "fetch",
        "--path",
        &path,
        "--name",
        "DB_PASSWORD",
        "--serial",
        "1",
    ])));
    assert!(e.contains("no serial 1 (serials: 2, 3)"), "{e}");
    // Serials continue after the imported ones.
    assert_eq!(create(ep, &path, "DB_PASSWORD", b"pw-four"), 4);

    // Importing again (0.2.0: an import completes when run again) finds every version
    // already imported unchanged: nothing is written, nothing printed.
    let out = run(ddb(ep).args([
        "import",
        "--path",
        &path,
        "--from-ecs-secrets-table",
        &source,
    ]));
    let e = String::from_utf8_lossy(
        &{
            assert_ok(&out);
            &out
        }
        .stderr,
    )
    .into_owned();
    assert!(e.contains("already imported unchanged"), "{e}");
    assert!(out.stdout.is_empty());
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert_eq!(l.lines().count(), 4, "{l}");
}

#[test]
fn import_fails_closed_on_a_value_that_does_not_decrypt() {
    let ep = moto_ready();
    let source = legacy_table(ep, &[("A", 1, b"a", true), ("B", 1, b"b", true)]);
    // Corrupt B's ciphertext (keep it valid base64).
    let item = block_on(
        dynamodb(ep)
            .get_item()
            .table_name(&source)
            .key("Name", Av::S("B".into()))
            .key("Serial", Av::N("1".into()))
            .send(),
    )
    .unwrap()
    .item
    .unwrap();
    let mut data = aws_smithy_types::base64::decode(item["EncryptedData"].as_s().unwrap()).unwrap();
    data[13] ^= 1;
    let mut item = item;
    item.insert(
        "EncryptedData".into(),
        Av::S(aws_smithy_types::base64::encode(&data)),
    );
    block_on(
        dynamodb(ep)
            .put_item()
            .table_name(&source)
            .set_item(Some(item))
            .send(),
    )
    .unwrap();
    let path = unique_path("ddb-import-bad");
    let out = run(ddb(ep).args([
        "import",
        "--path",
        &path,
        "--from-ecs-secrets-table",
        &source,
    ]));
    let e = assert_fail(&out);
    assert!(e.contains(&format!("{source}: B serial 1")), "{e}");
    assert!(out.stdout.is_empty());
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert!(l.is_empty(), "nothing imported: {l}");

    let out = run(ddb(ep).args([
        "import",
        "--path",
        &path,
        "--from-ecs-secrets-table",
        "No-Such-Table",
    ]));
    let e = assert_fail(&out);
    assert!(
        e.contains("No-Such-Table") && e.contains("--from-ecs-secrets-table"),
        "{e}"
    );
}

#[test]
fn a_retried_put_whose_first_attempt_landed_is_not_a_second_version() {
    let ep = moto_ready();
    let path = unique_path("ddb-retry-put");
    create(ep, &path, "OTHER", b"x"); // the data key exists: only the version PutItem is left
    let proxy = Proxy::start(ep);
    // The PutItem reaches moto, then the connection is reset: the SDK retries a write that
    // already happened. (Seed chosen so that the first attempt is reset and the retry not.)
    proxy.set_faults(Faults {
        reset: 0.5,
        seed: 1, // draws 0.29 (reset), then 0.84 (forwarded)
        only_op: Some("PutItem".into()),
        ..Default::default()
    });
    let out = stdin_run(
        ddb(&proxy.endpoint()).args([
            "create",
            "--path",
            &path,
            "--name",
            "ONCE",
            "--payload-stdin",
        ]),
        b"once",
    );
    assert!(
        assert_ok(&out).contains(r#""serial":1"#),
        "{}",
        describe(&out)
    );
    assert_eq!(proxy.faults_injected(), 1, "{}", ops_summary(&proxy));
    assert_eq!(proxy.count("PutItem"), 2, "{}", ops_summary(&proxy));
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert_eq!(l.matches("\"ONCE\"").count(), 1, "one version: {l}");
}

#[test]
fn throttling_is_retried_and_a_stalled_decrypt_fails_closed_at_the_deadline() {
    let ep = moto_ready();
    let path = unique_path("ddb-faults");
    create(ep, &path, "A", b"a");
    let proxy = Proxy::start(ep);
    proxy.set_faults(Faults {
        throttle: 0.5,
        seed: 11,
        ..Default::default()
    });
    let s = assert_ok(&run(&mut show(
        &proxy.endpoint(),
        &["--path", &path],
        &["A"],
    )));
    assert!(s.contains("A=a"), "{s}");
    assert!(proxy.faults_injected() > 0, "{}", ops_summary(&proxy));

    proxy.set_faults(Faults {
        stall: 1.0,
        only_op: Some("Decrypt".into()),
        ..Default::default()
    });
    let t0 = std::time::Instant::now();
    let dir = TempDir::new("marker");
    let marker = dir.join("started");
    let out = run(ddb(&proxy.endpoint())
        .args(["exec", "--path", &path, "--timeout", "2", "--", "touch"])
        .arg(&marker));
    let e = assert_fail(&out);
    assert!(!marker.exists());
    assert!(t0.elapsed().as_secs() < 20, "bounded by --timeout");
    assert!(e.contains(&path) && e.contains("--timeout"), "{e}");
}

#[test]
fn rotate_creates_a_version_and_revokes_the_older_ones() {
    let ep = moto_ready();
    let path = unique_path("ddb-rotate");
    create(ep, &path, "PW", b"one");
    create(ep, &path, "PW", b"two");
    let out = assert_ok(&run(ddb(ep).args([
        "rotate",
        "--path",
        &path,
        "--name",
        "PW",
        "--generate",
        "24",
    ])));
    assert_eq!(out.trim(), r#"{"name":"PW","serial":3,"revoked":[1,2]}"#);
    let item = get_raw(ep, TABLE, &path, &version_sk("PW", 1)).unwrap();
    assert!(!item.contains_key("ciphertext"));
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["PW"])));
    let v = s.trim().strip_prefix("PW=").unwrap();
    assert_eq!(v.len(), 24, "{s}");
}

#[test]
fn request_costs_of_each_command() {
    let ep = moto_ready();
    let path = unique_path("ddb-costs");
    let proxy = Proxy::start(ep);
    let pe = proxy.endpoint();
    let short = |p: &Proxy| -> Vec<String> {
        p.ops()
            .iter()
            .map(|o| o.rsplit('.').next().unwrap().to_string())
            .collect()
    };
    let costs = |p: &Proxy, cmd: &[&str], want: &[&str]| {
        p.reset();
        let out = run(ddb(&pe).args(cmd));
        assert!(out.status.code().is_some(), "{}", describe(&out));
        assert_eq!(short(p), want, "{cmd:?}");
        eprintln!("{cmd:?}: {} requests {:?}", want.len(), want);
    };
    let create = ["create", "--path", &path, "--name", "A", "--payload", "a"];
    // The first create of a path makes its data key. Every create lists the path's names
    // before and after its write (the environment-name collision check).
    costs(
        &proxy,
        &create,
        &[
            "Query",
            "Query",
            "GenerateDataKey",
            "PutItem",
            "Query",
            "PutItem",
            "GetItem",
            "GetItem",
            "Query",
        ],
    );
    costs(
        &proxy,
        &create,
        &[
            "Query", "Query", "Decrypt", "Query", "PutItem", "GetItem", "GetItem", "Query",
        ],
    );
    costs(
        &proxy,
        &["fetch", "--path", &path, "--name", "A"],
        &["Query", "Decrypt"],
    );
    costs(
        &proxy,
        &["fetch", "--path", &path, "--name", "A", "--serial", "1"],
        &["GetItem", "Decrypt"],
    );
    costs(&proxy, &["list", "--path", &path], &["Query"]);
    costs(
        &proxy,
        &["revoke", "--path", &path, "--name", "A", "--serial", "1"],
        &["UpdateItem"],
    );
    costs(
        &proxy,
        &["exec", "--path", &path, "--", "true"],
        &["Query", "Decrypt"],
    );
    // rotate-key with one active version under one older generation.
    costs(
        &proxy,
        &["rotate-key", "--path", &path],
        &[
            "Query",
            "GenerateDataKey",
            "PutItem",
            "UpdateItem",
            "Query",
            "Decrypt",
            "UpdateItem",
            "Query",
            "DeleteItem",
            "Query",
        ],
    );
}

#[test]
fn a_create_whose_version_rotate_key_resealed_meanwhile_keeps_its_serial() {
    let ep = moto_ready();
    let path = unique_path("ddb-race-reseal");
    create(ep, &path, "A", b"a1");
    // Hold the create's first check (a GetItem, right after its PutItem landed) while a
    // whole rotate-key runs: the rotation re-seals the new version (its nonce and
    // generation change) and deletes the old key.
    let (_proxy, child) = create_held_at(ep, &path, "GetItem", 1500);
    let out = assert_ok(&run(ddb(ep).args(["rotate-key", "--path", &path])));
    assert!(out.contains(r#""generation":2,"resealed":2"#), "{out}");
    let out = child.wait_with_output().unwrap();
    assert!(
        assert_ok(&out).contains(r#""serial":1"#),
        "the serial stays the create's: {}",
        describe(&out)
    );
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert_eq!(l.matches("\"B\"").count(), 1, "no duplicate version: {l}");
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A", "B"])));
    assert!(s.contains("A=a1\nB=b1\n"), "{s}");
}

#[test]
fn rotate_key_survives_a_retried_put_of_its_new_data_key() {
    let ep = moto_ready();
    let path = unique_path("ddb-rotate-retry");
    create(ep, &path, "A", b"a1");
    let proxy = Proxy::start(ep);
    // rotate-key's only PutItem is the new data key: its first attempt lands, then the
    // connection is reset, and the retry meets the item it wrote itself.
    proxy.set_faults(Faults {
        reset: 0.5,
        seed: 1, // draws 0.29 (reset), then 0.84 (forwarded)
        only_op: Some("PutItem".into()),
        ..Default::default()
    });
    let out = run(ddb(&proxy.endpoint()).args(["rotate-key", "--path", &path]));
    assert!(
        assert_ok(&out).contains(r#""generation":2,"resealed":1"#),
        "{}",
        describe(&out)
    );
    assert_eq!(proxy.faults_injected(), 1, "{}", ops_summary(&proxy));
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A"])));
    assert!(s.contains("A=a1"), "{s}");
}

#[test]
fn import_refuses_names_that_would_set_one_environment_name_twice() {
    let ep = moto_ready();
    // Two legacy names that both map to db_password: nothing is written.
    let source = legacy_table(
        ep,
        &[
            ("db.password", 1, b"p1", true),
            ("db-password", 1, b"p2", true),
        ],
    );
    let path = unique_path("ddb-import-collide");
    let out = run(ddb(ep).args([
        "import",
        "--path",
        &path,
        "--from-ecs-secrets-table",
        &source,
    ]));
    let e = assert_fail(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("db.password") && e.contains("db-password"),
        "{e}"
    );
    assert!(e.contains("nothing written"), "{e}");
    assert!(!e.contains("p1") && !e.contains("p2"), "{e}");
    assert!(out.stdout.is_empty());
    let l = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert!(l.is_empty(), "{l}");

    // One legacy name colliding with an active secret of the path: refused too.
    let source = legacy_table(ep, &[("API-KEY", 1, b"k", true)]);
    create(ep, &path, "API_KEY", b"mine");
    let out = run(ddb(ep).args([
        "import",
        "--path",
        &path,
        "--from-ecs-secrets-table",
        &source,
    ]));
    let e = assert_fail(&out);
    assert!(e.contains("API-KEY") && e.contains("API_KEY"), "{e}");
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["API_KEY"])));
    assert!(s.contains("API_KEY=mine"), "{s}");
}

/// Issue 20, finding 5, for the original ecs-secrets table as the source: interrupted (every
/// TransactWriteItems throttled past `--timeout`), nothing is written or printed; run again
/// it completes with every active version.
#[test]
fn an_interrupted_import_from_the_original_table_writes_nothing_and_completes_when_run_again() {
    let ep = moto_ready();
    let source = legacy_table(
        ep,
        &[
            ("DB_PASSWORD", 1, b"pw-one", true),
            ("DB_PASSWORD", 2, b"pw-two", true),
            ("API_KEY", 1, b"api", true),
        ],
    );
    let path = unique_path("ddb-import-resume");
    let proxy = Proxy::start(ep);
    proxy.set_faults(Faults {
        throttle: 1.0,
        only_op: Some("TransactWriteItems".into()),
        ..Default::default()
    });
    let args = [
        "import",
        "--path",
        path.as_str(),
        "--from-ecs-secrets-table",
        source.as_str(),
        "--timeout",
        "10",
    ];
    let out = run(ddb(&proxy.endpoint()).args(args));
    assert_fail(&out);
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert!(proxy.count("TransactWriteItems") > 0, "{:?}", proxy.ops());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pw-"));
    let listed = assert_ok(&run(ddb(ep).args([
        "list",
        "--path",
        &path,
        "--all-versions",
    ])));
    assert!(listed.is_empty(), "{listed}");
    proxy.clear_faults();
    let out = run(ddb(&proxy.endpoint()).args(args));
    assert_eq!(
        assert_ok(&out),
        "{\"name\":\"API_KEY\",\"serial\":1}\n{\"name\":\"DB_PASSWORD\",\"serial\":1}\n{\"name\":\"DB_PASSWORD\",\"serial\":2}\n"
    );
}
