//! dynamodb items and tables that are not what ecs-secrets wrote fail closed, naming the
//! item: every attribute of both item kinds must have its exact type, a table with other
//! keys is not read as "no secrets", and import accounts for every item of the source.

mod common;
mod ddb;

use aws_sdk_dynamodb::types::{AttributeValue as Av, ScalarAttributeType as T};
use aws_smithy_types::Blob;
use common::*;
use ddb::*;
use ecs_secrets::store::dynamodb::{key_sk, version_sk};

/// Command-line arguments.
type Cmd<'a> = &'a [&'a str];

#[test]
fn every_attribute_must_have_its_type_or_the_read_fails_closed_naming_the_item() {
    let ep = moto_ready();
    let path = unique_path("ddb-types");
    create(ep, &path, "A", b"a1");
    create(ep, &path, "A", b"a2");
    let v2 = get_raw(ep, TABLE, &path, &version_sk("A", 2)).unwrap();
    let shown = format!("{path}/A serial 2");
    let exec = ["exec", "--path", &path, "--", "true"];
    let fetch = ["fetch", "--path", &path, "--name", "A"];
    let list = ["list", "--path", &path];
    let fetch2 = ["fetch", "--path", &path, "--name", "A", "--serial", "2"];
    let bin = |b: &[u8]| Av::B(Blob::new(b.to_vec()));
    // (attribute, its forged value or None for removed, commands that read it)
    let forged: Vec<(&str, Option<Av>, Vec<Cmd>)> = vec![
        // A wrong or missing `active` must not roll back to serial 1.
        (
            "active",
            Some(Av::S("true".into())),
            vec![&exec, &fetch, &list],
        ),
        (
            "active",
            Some(Av::N("1".into())),
            vec![&exec, &fetch, &list],
        ),
        ("active", None, vec![&exec, &fetch, &list]),
        ("serial", Some(Av::S("2".into())), vec![&exec, &fetch]),
        ("serial", Some(Av::N("2.0".into())), vec![&exec, &fetch]),
        ("name", Some(bin(b"A")), vec![&exec, &fetch]),
        ("generation", Some(Av::S("1".into())), vec![&exec, &fetch2]),
        ("generation", Some(Av::N("-1".into())), vec![&exec, &fetch2]),
        ("nonce", Some(Av::S("n".into())), vec![&exec, &fetch2]),
        ("ciphertext", Some(Av::S("c".into())), vec![&exec, &fetch2]),
        (
            "encrypted_key",
            Some(Av::S("k".into())),
            vec![&exec, &fetch2],
        ),
        ("created", Some(Av::N("1".into())), vec![&list, &fetch2]),
        ("token", Some(Av::S("t".into())), vec![&fetch2]),
        ("kind", Some(Av::S("datakey".into())), vec![&fetch2]),
    ];
    for (attr, value, cmds) in forged {
        let mut item = v2.clone();
        match &value {
            Some(v) => item.insert(attr.into(), v.clone()),
            None => item.remove(attr),
        };
        put_raw(ep, TABLE, item);
        for cmd in cmds {
            let out = run(ddb(ep).args(cmd));
            let what = format!("{attr} = {value:?}, {cmd:?}: {}", describe(&out));
            assert_eq!(out.status.code(), Some(1), "{what}");
            assert!(!out.stdout.windows(2).any(|w| w == b"a1"), "{what}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(&shown), "{what}");
            if attr != "serial" && attr != "name" {
                assert!(err.contains(&format!("`{attr}`")), "{what}");
            }
        }
    }
    put_raw(ep, TABLE, v2);
    // The data-key item: its attributes too.
    let k1 = get_raw(ep, TABLE, &path, &key_sk(1)).unwrap();
    let rotate_key = ["rotate-key", "--path", &path];
    for (attr, value) in [
        ("retired", Some(Av::S("false".into()))),
        ("encrypted_key", Some(Av::S("k".into()))),
        ("encrypted_key", None),
        ("generation", Some(Av::S("1".into()))),
        ("kms_key", Some(Av::N("1".into()))),
        ("kind", Some(Av::S("version".into()))),
    ] {
        let mut item = k1.clone();
        match &value {
            Some(v) => item.insert(attr.into(), v.clone()),
            None => item.remove(attr),
        };
        put_raw(ep, TABLE, item);
        // rotate-key reads the whole partition; exec reads what it projects (retired,
        // encrypted_key, generation).
        let mut cmds: Vec<&[&str]> = vec![&rotate_key];
        if ["retired", "encrypted_key", "generation"].contains(&attr) {
            cmds.push(&exec);
        }
        for cmd in cmds {
            let out = run(ddb(ep).args(cmd));
            let what = format!("key {attr} = {value:?}, {cmd:?}: {}", describe(&out));
            assert_eq!(out.status.code(), Some(1), "{what}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(&key_sk(1)),
                "{what}"
            );
        }
    }
    put_raw(ep, TABLE, k1);
    let s = assert_ok(&run(&mut show(ep, &["--path", &path], &["A"])));
    assert!(s.contains("A=a2\n"), "{s}");
}

#[test]
fn a_start_against_a_table_that_is_not_ours_fails_closed() {
    let ep = moto_ready();
    let path = unique_path("ddb-foreign");
    let tables = [
        ("foreign-sk-n", ("path", T::S), Some(("sk", T::N))),
        ("foreign-path-n", ("path", T::N), Some(("sk", T::S))),
        ("foreign-other-range", ("path", T::S), Some(("id", T::S))),
        ("foreign-hash-only", ("path", T::S), None),
    ];
    for (name, hash, range) in tables {
        let table = format!("{name}-{}", std::process::id());
        make_foreign_table(ep, &table, hash, range);
        let e = assert_exec_not_started(ddb(ep), &["--path", &path, "--table", &table]);
        assert!(
            e.contains(&table) && e.contains("ecs-secrets table") && !e.contains("no secrets"),
            "{table}: {e}"
        );
        let out = run(ddb(ep).args(["env", "--path", &path, "--table", &table]));
        assert_ne!(out.status.code(), Some(0), "{table}: {}", describe(&out));
    }
}

#[test]
fn import_refuses_an_item_whose_active_is_missing_or_not_a_boolean() {
    let ep = moto_ready();
    let source = legacy_table(ep, &[("DB", 1, b"db-1", true), ("X", 1, b"x-1", true)]);
    let key = |name: &str| {
        [
            ("Name".to_string(), Av::S(name.into())),
            ("Serial".to_string(), Av::N("1".into())),
        ]
    };
    let x = block_on(
        dynamodb(ep)
            .get_item()
            .table_name(&source)
            .set_key(Some(key("X").into_iter().collect()))
            .send(),
    )
    .unwrap()
    .item
    .unwrap();
    for active in [Some(Av::S("true".into())), Some(Av::N("1".into())), None] {
        let mut item = x.clone();
        match &active {
            Some(v) => item.insert("Active".into(), v.clone()),
            None => item.remove("Active"),
        };
        put_raw(ep, &source, item);
        let path = unique_path("ddb-import-active");
        let out = run(ddb(ep).args([
            "import",
            "--path",
            &path,
            "--from-ecs-secrets-table",
            &source,
        ]));
        let what = format!("Active = {active:?}: {}", describe(&out));
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert!(out.stdout.is_empty(), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{source}: X serial 1"))
                && err.contains("`Active`")
                && err.contains("nothing was imported"),
            "{what}"
        );
        let l = assert_ok(&run(ddb(ep).args([
            "list",
            "--path",
            &path,
            "--all-versions",
        ])));
        assert!(l.trim().is_empty(), "nothing imported: {l}");
    }
    // Active false: left out as revoked, as the original tool meant.
    let mut item = x;
    item.insert("Active".into(), Av::Bool(false));
    put_raw(ep, &source, item);
    let path = unique_path("ddb-import-active");
    let out = run(ddb(ep).args([
        "import",
        "--path",
        &path,
        "--from-ecs-secrets-table",
        &source,
    ]));
    assert_eq!(assert_ok(&out), "{\"name\":\"DB\",\"serial\":1}\n");
}
