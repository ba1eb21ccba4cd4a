//! `import --from-credstash-table` and `import --from-ssm-path` through the real binary
//! against moto. The credstash tables are written by the real credstash (its CLI, through
//! boto3's `AWS_ENDPOINT_URL`), so the format checked is credstash's, not ours.

mod common;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use common::*;
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

const CREDSTASH_MISSING: &str =
    "credstash not found on PATH: install it with `pip install credstash` (scripts/deps.sh)";

/// The shared moto with the destination table and key (`setup` through the binary), and
/// one KMS key for credstash.
fn ready() -> &'static (String, String) {
    static READY: OnceLock<(String, String)> = OnceLock::new();
    READY.get_or_init(|| {
        let ep = moto().endpoint.clone();
        assert_ok(&run(ddb(&ep).args(["setup", "--path", "/import/setup"])));
        let key = create_key(&ep, None);
        (ep, key)
    })
}

fn ddb(endpoint: &str) -> Command {
    let mut c = ecs(endpoint);
    c.env("ECS_SECRETS_BACKEND", "dynamodb");
    c
}

fn unique_table() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cs-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the real credstash against moto; panics (saying how to install it) when missing.
#[track_caller]
fn credstash(endpoint: &str, table: &str, args: &[&str]) -> String {
    let home = TempDir::new("credstash-home");
    let mut c = Command::new("credstash");
    c.arg("-t")
        .arg(table)
        .args(args)
        .env("HOME", home.path())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    let out = match c.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{CREDSTASH_MISSING}"),
        Err(e) => panic!("credstash: {e}"),
    };
    assert!(
        out.status.success(),
        "credstash {args:?}\n{}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A credstash table made by `credstash setup`.
fn credstash_table(endpoint: &str) -> String {
    let t = unique_table();
    credstash(endpoint, &t, &["setup"]);
    t
}

fn put(endpoint: &str, table: &str, key: &str, name: &str, value: &str, extra: &[&str]) {
    let mut args = vec!["put", "-k", key];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[name, value]);
    credstash(endpoint, table, &args);
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Every version under `path`, as (name, serial, active).
fn listed(endpoint: &str, path: &str) -> Vec<(String, u64, bool)> {
    let out = assert_ok(&run(ddb(endpoint).args([
        "list",
        "--path",
        path,
        "--all-versions",
    ])));
    lines(&out)
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["serial"].as_u64().unwrap(),
                v["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[track_caller]
fn fetched(endpoint: &str, path: &str, name: &str, serial: u64) -> String {
    let out = assert_ok(&run(ddb(endpoint).args([
        "fetch",
        "--path",
        path,
        "--name",
        name,
        "--serial",
        &serial.to_string(),
    ])));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["active"], true, "{out}");
    v["payload"].as_str().unwrap().to_string()
}

fn import(endpoint: &str, path: &str, source: &[&str]) -> std::process::Output {
    run(ddb(endpoint).args(["import", "--path", path]).args(source))
}

#[test]
fn credstash_import_copies_every_version_exactly_with_its_serial() {
    let (ep, key) = ready();
    let table = credstash_table(ep);
    let long: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    // (name, version, value, put options): versions 1-3 by autoversion, an explicit
    // version 10 with a gap, every digest ecs-secrets verifies, values of 1 byte, of
    // exactly one AES block, multi-line and non-ASCII, and many blocks.
    let puts: Vec<(&str, u64, String, Vec<&str>)> = vec![
        ("db.pw", 1, "hunter2".into(), vec![]),
        ("db.pw", 2, "0123456789abcdef".into(), vec!["-a"]),
        (
            "db.pw",
            3,
            "line one\nline \"two\" $HOME\n".into(),
            vec!["-a"],
        ),
        ("api_key", 10, "ключ ✓ 🔑".into(), vec!["-v", "10"]),
        ("one", 1, "x".into(), vec!["-d", "SHA"]),
        ("big-384", 1, long.clone(), vec!["-d", "SHA384"]),
        ("nested/five12", 1, "n".repeat(33), vec!["-d", "SHA512"]),
    ];
    for (name, _, value, extra) in &puts {
        put(ep, &table, key, name, value, extra);
    }
    let path = unique_path("import-credstash");
    let out = import(ep, &path, &["--from-credstash-table", &table]);
    let mut got: Vec<(String, u64)> = lines(&assert_ok(&out))
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["serial"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, u64)> = puts.iter().map(|p| (p.0.to_string(), p.1)).collect();
    want.sort();
    assert_eq!(got, want, "{}", describe(&out));
    for (name, serial, value, _) in &puts {
        assert_eq!(&fetched(ep, &path, name, *serial), value, "{name} {serial}");
    }
    // Every version stays active; the newest is what readers get, and a create continues
    // after the highest imported serial.
    assert!(listed(ep, &path).iter().all(|v| v.2));
    let env = assert_ok(&run(ddb(ep).args(["env", "--path", &path])));
    assert!(env.contains("export db_pw='line one\n"), "{env}");
    let out = stdin_run(
        ddb(ep).args([
            "create",
            "--path",
            &path,
            "--name",
            "api_key",
            "--payload-stdin",
        ]),
        b"next",
    );
    assert!(
        assert_ok(&out).contains("\"serial\":11"),
        "{}",
        describe(&out)
    );
    // No value on stderr.
    let out = import(
        ep,
        &unique_path("import-credstash-2"),
        &["--from-credstash-table", &table],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn credstash_encryption_context_must_be_given_and_match() {
    let (ep, key) = ready();
    let table = credstash_table(ep);
    put(ep, &table, key, "svc.token", "t0ken-value", &[]);
    // credstash takes the context after the value.
    credstash(
        ep,
        &table,
        &[
            "put",
            "-k",
            key,
            "-a",
            "svc.token",
            "t0ken-value-2",
            "app=web",
            "env=prod",
        ],
    );
    // Version 1 has no context, version 2 has one: no single --context opens both.
    let path = unique_path("import-context");
    let src = ["--from-credstash-table", table.as_str()];
    let stderr = assert_fail(&import(ep, &path, &src));
    assert!(stderr.contains("\"svc.token\" version 2"), "{stderr}");
    assert!(stderr.contains("--context"), "{stderr}");
    assert!(listed(ep, &path).is_empty(), "nothing may be written");

    let table = credstash_table(ep);
    for v in ["a-1", "a-2"] {
        credstash(
            ep,
            &table,
            &[
                "put",
                "-k",
                key,
                "-a",
                "svc.token",
                v,
                "app=web",
                "env=prod",
            ],
        );
    }
    let with = |ctx: &[&str]| {
        let mut a = vec!["--from-credstash-table", table.as_str()];
        for c in ctx {
            a.extend_from_slice(&["--context", c]);
        }
        import(ep, &path, &a)
    };
    let stderr = assert_fail(&with(&[]));
    assert!(stderr.contains("pass it with --context"), "{stderr}");
    let stderr = assert_fail(&with(&["app=web", "env=dev"]));
    assert!(stderr.contains("may not be the ones"), "{stderr}");
    assert!(listed(ep, &path).is_empty(), "nothing may be written");
    assert_ok(&with(&["env=prod", "app=web"]));
    assert_eq!(fetched(ep, &path, "svc.token", 2), "a-2");
    assert_eq!(fetched(ep, &path, "svc.token", 1), "a-1");
}

/// Changes one hex digit of an item's `hmac`, or one byte of its `contents`.
fn tamper(endpoint: &str, table: &str, name: &str, attr: &str) {
    let ddb = dynamodb(endpoint);
    let k = |n: &str, v: &str| (n.to_string(), Av::S(v.to_string()));
    let keyv: std::collections::HashMap<String, Av> =
        [k("name", name), k("version", "0000000000000000001")].into();
    let item = block_on(
        ddb.get_item()
            .table_name(table)
            .set_key(Some(keyv.clone()))
            .send(),
    )
    .unwrap()
    .item
    .expect("the credstash item");
    let new = match (attr, &item[attr]) {
        ("hmac", Av::B(b)) => {
            let mut h = b.as_ref().to_vec();
            h[0] = if h[0] == b'0' { b'1' } else { b'0' };
            Av::B(aws_smithy_types::Blob::new(h))
        }
        ("contents", Av::S(s)) => {
            let mut c = aws_smithy_types::base64::decode(s).unwrap();
            c[0] ^= 1;
            Av::S(aws_smithy_types::base64::encode(&c))
        }
        other => panic!("unexpected attribute {other:?}"),
    };
    block_on(
        ddb.update_item()
            .table_name(table)
            .set_key(Some(keyv))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", new)
            .send(),
    )
    .unwrap();
}

#[test]
fn a_tampered_credstash_hmac_or_ciphertext_is_refused_and_nothing_is_written() {
    let (ep, key) = ready();
    for attr in ["hmac", "contents"] {
        let table = credstash_table(ep);
        // The damaged one sorts between good ones: nothing before or after it is written.
        for name in ["a.first", "m.middle", "z.last"] {
            put(ep, &table, key, name, &format!("value-of-{name}"), &[]);
        }
        tamper(ep, &table, "m.middle", attr);
        let path = unique_path("import-tampered");
        let out = import(ep, &path, &["--from-credstash-table", &table]);
        let stderr = assert_fail(&out);
        assert!(
            stderr.contains("\"m.middle\" version 1") && stderr.contains("HMAC does not match"),
            "{attr}: {stderr}"
        );
        assert!(!stderr.contains("value-of"), "{stderr}");
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        assert!(
            listed(ep, &path).is_empty(),
            "{attr}: nothing may be written"
        );
    }
}

/// Issue 25 item 9: the refusal says what changed, not more (the HMAC covers the
/// ciphertext only), and what credstash's HMAC cannot see is exactly what docs/imports.md
/// says: a sealed value moved to another credential verifies there and is imported under
/// that name.
#[test]
fn a_sealed_value_moved_to_another_name_is_not_detected_as_documented() {
    let (ep, key) = ready();
    let table = credstash_table(ep);
    put(ep, &table, key, "a.secret", "value-of-a", &[]);
    let ddb = dynamodb(ep);
    let k = |n: &str, v: &str| (n.to_string(), Av::S(v.to_string()));
    let mut item = block_on(
        ddb.get_item()
            .table_name(&table)
            .set_key(Some(
                [k("name", "a.secret"), k("version", "0000000000000000001")].into(),
            ))
            .send(),
    )
    .unwrap()
    .item
    .expect("the credstash item");
    item.insert("name".into(), Av::S("b.moved".into()));
    block_on(
        ddb.put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send(),
    )
    .unwrap();
    let path = unique_path("import-moved");
    assert_ok(&import(ep, &path, &["--from-credstash-table", &table]));
    assert_eq!(fetched(ep, &path, "b.moved", 1), "value-of-a");
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/imports.md")).unwrap();
    assert!(
        doc.contains("neither the credential's name nor its version"),
        "docs/imports.md must say what the HMAC does not bind"
    );
    // And the refusal of a changed item names what the HMAC does cover.
    let table = credstash_table(ep);
    put(ep, &table, key, "m.middle", "value", &[]);
    tamper(ep, &table, "m.middle", "contents");
    let e = assert_fail(&import(
        ep,
        &unique_path("import-changed"),
        &["--from-credstash-table", &table],
    ));
    assert!(
        e.contains("`contents`, `hmac` or `key` attribute was changed or damaged")
            && !e.contains("tampered"),
        "{e}"
    );
}

#[test]
fn credstash_items_that_cannot_be_imported_are_named_and_nothing_is_written() {
    let (ep, key) = ready();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "md5.digest",
            &["-d", "MD5"],
            "digest \"MD5\" cannot be verified",
        ),
        ("bad:name", &[], "its name cannot be used here"),
        ("version.word", &["-v", "abc"], "not a positive number"),
    ];
    for (name, extra, why) in cases {
        let table = credstash_table(ep);
        put(ep, &table, key, "good", "fine", &[]);
        put(ep, &table, key, name, "v", extra);
        let path = unique_path("import-refused");
        let stderr = assert_fail(&import(ep, &path, &["--from-credstash-table", &table]));
        assert!(
            stderr.contains(name) && stderr.contains(why),
            "{name}: {stderr}"
        );
        assert!(
            listed(ep, &path).is_empty(),
            "{name}: nothing may be written"
        );
    }
    let stderr = assert_fail(&import(
        ep,
        "/import/none",
        &["--from-credstash-table", "no-such-table"],
    ));
    assert!(stderr.contains("--from-credstash-table"), "{stderr}");
}

#[test]
fn an_import_never_merges_into_names_that_exist() {
    let (ep, key) = ready();
    let table = credstash_table(ep);
    put(ep, &table, key, "shared", "from-credstash", &[]);
    put(ep, &table, key, "other", "o", &[]);
    let path = unique_path("import-clash");
    let out = stdin_run(
        ddb(ep).args([
            "create",
            "--path",
            &path,
            "--name",
            "shared",
            "--payload-stdin",
        ]),
        b"mine",
    );
    assert_ok(&out);
    let stderr = assert_fail(&import(ep, &path, &["--from-credstash-table", &table]));
    // (Since issue 20: the same name and serial with another value is the conflict named.)
    assert!(
        stderr.contains(&format!("{path}/shared serial 1")) && stderr.contains("another value"),
        "{stderr}"
    );
    assert_eq!(listed(ep, &path), vec![("shared".into(), 1, true)]);
    assert_eq!(fetched(ep, &path, "shared", 1), "mine");
}

#[test]
fn names_that_would_share_an_environment_name_are_refused() {
    let (ep, key) = ready();
    // Within the source: two credstash names, one variable.
    let table = credstash_table(ep);
    put(ep, &table, key, "db.pw", "a", &[]);
    put(ep, &table, key, "db-pw", "b", &[]);
    let path = unique_path("import-env-clash");
    let stderr = assert_fail(&import(ep, &path, &["--from-credstash-table", &table]));
    assert!(
        stderr.contains("db-pw and ")
            && stderr.contains("/db.pw would both set the environment name db_pw"),
        "{stderr}"
    );
    assert!(listed(ep, &path).is_empty());
    // Against the destination: ssm's nested `db/pw` next to a `db_pw` the path holds.
    let src = unique_path("import-env-clash-src");
    put_secure(ep, &format!("{src}/db/pw"), "nested");
    let out = stdin_run(
        ddb(ep).args([
            "create",
            "--path",
            &path,
            "--name",
            "db_pw",
            "--payload-stdin",
        ]),
        b"mine",
    );
    assert_ok(&out);
    let stderr = assert_fail(&import(ep, &path, &["--from-ssm-path", &src]));
    assert!(
        stderr.contains("/db/pw and the active secret ")
            && stderr.contains("/db_pw would both set the environment name db_pw"),
        "{stderr}"
    );
    assert_eq!(listed(ep, &path), vec![("db_pw".into(), 1, true)]);
}

fn ssm_cmd(endpoint: &str, args: &[&str]) -> String {
    assert_ok(&run(ecs(endpoint).args(args)))
}

#[test]
fn ssm_import_takes_the_newest_active_version_with_its_ssm_serial() {
    let (ep, _) = ready();
    let src = unique_path("import-ssm-src");
    let create = |name: &str, value: &str| {
        let out = stdin_run(
            ecs(ep).args(["create", "--path", &src, "--name", name, "--payload-stdin"]),
            value.as_bytes(),
        );
        assert_ok(&out);
    };
    // A: serials 1-3, newest revoked (ssm then writes an internal copy of 2 as version 4).
    for v in ["a1", "a2", "a3"] {
        create("A", v);
    }
    ssm_cmd(
        ep,
        &["revoke", "--path", &src, "--name", "A", "--serial", "3"],
    );
    // B: one version. C: every version revoked (a tombstone is written). D: nested.
    create("B", "b1");
    create("C", "c1");
    ssm_cmd(
        ep,
        &["revoke", "--path", &src, "--name", "C", "--serial", "1"],
    );
    create("sub/D", "d1");
    // A parameter some other tool wrote, as a plain String, at version 2.
    put_secure(ep, &format!("{src}/E"), "e1");
    block_on(
        ssm(ep)
            .put_parameter()
            .name(format!("{src}/E"))
            .value("e2 plain")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send(),
    )
    .unwrap();

    let path = unique_path("import-ssm");
    let out = import(ep, &path, &["--from-ssm-path", &src]);
    let mut got: Vec<(String, u64)> = lines(&assert_ok(&out))
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["serial"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("A".into(), 2),
            ("B".into(), 1),
            ("E".into(), 2),
            ("sub/D".into(), 1)
        ],
        "{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/C: every version is revoked"), "{stderr}");
    assert!(!stderr.contains("a2") && !stderr.contains("b1"), "{stderr}");
    assert_eq!(fetched(ep, &path, "A", 2), "a2");
    assert_eq!(fetched(ep, &path, "B", 1), "b1");
    assert_eq!(fetched(ep, &path, "E", 2), "e2 plain");
    assert_eq!(fetched(ep, &path, "sub/D", 1), "d1");
    // Only what was imported exists: no revoked serial, no copy, no tombstone.
    assert_eq!(listed(ep, &path).len(), 4);
}

#[test]
fn import_sources_are_one_at_a_time() {
    let (ep, _) = ready();
    let cases: &[&[&str]] = &[
        &[],
        &["--from-credstash-table", "t", "--from-ssm-path", "/a/b"],
        &["--from-ssm-path", "/a/b", "--context", "k=v"],
        &["--from-credstash-table", "t", "--context", "novalue"],
        &["--from-ssm-path", "no-slash"],
    ];
    for args in cases {
        let out = import(ep, "/import/usage", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
    }
    // The ssm backend cannot be an import's destination.
    let out = run(ecs(ep).args(["import", "--path", "/a/b", "--from-ssm-path", "/c/d"]));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// Runs the import with every TransactWriteItems throttled past its `--timeout`, checks that
/// it failed having written and printed nothing (no value on stderr either: the test values
/// start with "value-" or "hunter"), then runs it again unhindered and returns that run.
fn interrupted_then_run_again(ep: &str, dst: &str, args: &[&str]) -> std::process::Output {
    let proxy = Proxy::start(ep);
    proxy.set_faults(Faults {
        throttle: 1.0,
        only_op: Some("TransactWriteItems".into()),
        ..Default::default()
    });
    let out = import(&proxy.endpoint(), dst, args);
    assert_fail(&out);
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert!(proxy.count("TransactWriteItems") > 0, "{:?}", proxy.ops());
    // (One PutItem: the new path's data key, which is no version and nothing a reader sees.)
    assert!(proxy.count("PutItem") <= 1, "{:?}", proxy.ops());
    assert!(listed(ep, dst).is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("value-") && !err.contains("hunter"), "{err}");
    proxy.clear_faults();
    import(&proxy.endpoint(), dst, args)
}

/// Issue 20, finding 5: an import that fits one DynamoDB transaction (here 30 versions) is
/// all or nothing — interrupted (every TransactWriteItems throttled past `--timeout`), no
/// reader sees any of it and nothing is printed; run again it completes; run once more it
/// skips what is there unchanged.
#[test]
fn an_interrupted_transactional_import_writes_nothing_and_completes_when_run_again() {
    let (ep, _) = ready();
    let src = unique_path("resume-ssm-src");
    let dst = unique_path("resume-ssm-dst");
    put_many(ep, &src, 30);
    let args = ["--from-ssm-path", src.as_str(), "--timeout", "10"];
    let out = interrupted_then_run_again(ep, &dst, &args);
    assert_eq!(lines(&assert_ok(&out)).len(), 30, "{}", describe(&out));
    assert_eq!(listed(ep, &dst).len(), 30);
    assert_eq!(fetched(ep, &dst, "p007", 1), format!("value-007-{src}"));
    let out = import(ep, &dst, &args);
    assert!(assert_ok(&out).is_empty(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("30 version(s) already imported unchanged")
    );
}

/// Too many versions for one transaction (105): written one by one. Interrupted at the 13th
/// PutItem (held until the deadline passed), the 12 written are printed; the held write
/// lands late; run again, the import skips all 13 and completes. Fails on the old binary
/// (nothing printed, and the second run refused "has these names already").
#[test]
fn an_interrupted_large_import_prints_what_it_wrote_and_completes_when_run_again() {
    let (ep, _) = ready();
    let src = unique_path("resume-big-src");
    let dst = unique_path("resume-big-dst");
    put_many(ep, &src, 105);
    let proxy = Proxy::start(ep);
    // The first PutItem is the new path's data key; the 14th is the 13th version.
    proxy.hold("PutItem", 14);
    let (pe, d, sr) = (proxy.endpoint(), dst.clone(), src.clone());
    let run =
        std::thread::spawn(move || import(&pe, &d, &["--from-ssm-path", &sr, "--timeout", "25"]));
    assert!(proxy.wait_held(std::time::Duration::from_secs(60)));
    // A request that stalls is sent again after half of --timeout: hold the second attempt
    // too, so that the import really is interrupted at its 13th version.
    proxy.hold("PutItem", 1);
    let out = run.join().unwrap();
    assert_fail(&out);
    let first = lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(first.len(), 12, "{}", describe(&out));
    proxy.release();
    assert!(proxy.wait_idle(std::time::Duration::from_secs(10)));
    let out = import(ep, &dst, &["--from-ssm-path", &src]);
    let second = lines(&assert_ok(&out));
    assert!(
        second.len() == 92 || second.len() == 93,
        "{}",
        describe(&out)
    );
    let mut names: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), first.len() + second.len(), "printed twice");
    let all = listed(ep, &dst);
    assert_eq!(all.len(), 105);
    assert!(all.iter().all(|(_, s, a)| *s == 1 && *a));
    for i in [0, 11, 12, 13, 104] {
        let n = format!("p{i:03}");
        assert_eq!(fetched(ep, &dst, &n, 1), format!("value-{i:03}-{src}"));
    }
}

/// A version already at that name and serial with another value is a real conflict: refused
/// before anything is written, naming it.
#[test]
fn an_import_refuses_a_different_value_at_the_same_serial() {
    let (ep, _) = ready();
    let src = unique_path("resume-conflict-src");
    let dst = unique_path("resume-conflict-dst");
    put_many(ep, &src, 3);
    let out = stdin_run(
        ddb(ep).args([
            "create",
            "--path",
            &dst,
            "--name",
            "p001",
            "--payload-stdin",
        ]),
        b"someone-else",
    );
    assert_ok(&out);
    let out = import(ep, &dst, &["--from-ssm-path", &src]);
    let err = assert_fail(&out);
    assert!(
        err.contains(&format!("{dst}/p001 serial 1")) && err.contains("another value"),
        "{err}"
    );
    assert!(
        !err.contains("someone-else") && !err.contains("value-001"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(listed(ep, &dst).len(), 1);
}

/// Issue 20, finding 5, for the credstash source: interrupted (every TransactWriteItems
/// throttled past `--timeout`), nothing is written or printed; run again it completes; run
/// once more it skips what is there unchanged.
#[test]
fn an_interrupted_credstash_import_writes_nothing_and_completes_when_run_again() {
    let (ep, key) = ready();
    let table = credstash_table(ep);
    put(ep, &table, key, "db.pw", "hunter2", &[]);
    put(ep, &table, key, "db.pw", "hunter3", &["-a"]);
    put(ep, &table, key, "api_key", "k-1", &[]);
    let dst = unique_path("resume-credstash-dst");
    let args = ["--from-credstash-table", table.as_str(), "--timeout", "10"];
    let out = interrupted_then_run_again(ep, &dst, &args);
    assert_eq!(lines(&assert_ok(&out)).len(), 3, "{}", describe(&out));
    assert_eq!(fetched(ep, &dst, "db.pw", 2), "hunter3");
    let out = import(ep, &dst, &args);
    assert!(assert_ok(&out).is_empty(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 version(s) already imported unchanged"),
        "{}",
        describe(&out)
    );
}
