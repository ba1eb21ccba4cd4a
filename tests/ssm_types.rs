//! Issue 10 item 5: parameters under the path that are not SecureStrings. A String (what
//! aws-env and chamber users may have) is read as a secret by every command, with a warning
//! that it is stored unencrypted; a StringList is refused by every command that meets it,
//! naming it; ecs-secrets never writes over either.

mod common;

use aws_sdk_ssm::types::ParameterType;
use common::*;
use serde_json::Value;

fn put_typed(e: &str, name: &str, value: &str, t: ParameterType) {
    block_on(
        ssm(e)
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(t)
            .overwrite(true)
            .send(),
    )
    .unwrap_or_else(|err| panic!("PutParameter {name}: {err:?}"));
}

/// The type and version of the latest version of `name`.
fn type_and_version(e: &str, name: &str) -> (ParameterType, i64) {
    let p = block_on(ssm(e).get_parameter().name(name).send())
        .unwrap()
        .parameter
        .unwrap();
    (p.r#type.unwrap(), p.version)
}

#[test]
fn string_parameters_are_read_everywhere_with_a_warning() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("string");
    put_typed(
        e,
        &format!("{path}/PLAIN"),
        "plain-value",
        ParameterType::String,
    );
    put_secure(e, &format!("{path}/SECURE"), "secure-value");
    let warned = |err: &str| {
        assert!(
            err.contains(&format!("{path}/PLAIN is a String parameter"))
                && err.contains("unencrypted")
                && !err.contains("SECURE")
                && !err.contains("plain-value"),
            "{err}"
        );
    };
    let out = run(ecs(e).args(["env", "--path", &path, "--format", "json"]));
    let v: Value = serde_json::from_str(assert_ok(&out).trim()).unwrap();
    assert_eq!(
        (&v["PLAIN"], &v["SECURE"]),
        (&Value::from("plain-value"), &Value::from("secure-value"))
    );
    warned(&String::from_utf8_lossy(&out.stderr));
    let out = run(ecs(e).args([
        "exec",
        "--path",
        &path,
        "--",
        "sh",
        "-c",
        "printf %s \"$PLAIN\"",
    ]));
    assert_eq!(assert_ok(&out), "plain-value");
    warned(&String::from_utf8_lossy(&out.stderr));
    let out = run(ecs(e).args(["fetch", "--path", &path, "--name", "PLAIN"]));
    let v: Value = serde_json::from_str(assert_ok(&out).trim()).unwrap();
    assert_eq!(
        (&v["payload"], &v["serial"]),
        (&Value::from("plain-value"), &Value::from(1))
    );
    warned(&String::from_utf8_lossy(&out.stderr));
    let listed = assert_ok(&run(ecs(e).args(["list", "--path", &path])));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let d = DaemonProcess::start(e, &path, &[]);
    let r = d.get("/latest/secrets/PLAIN").unwrap();
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["payload"], "plain-value");
    warned(&d.stop());
}

#[test]
fn admin_writes_never_write_over_a_string_or_string_list() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("string-write");
    for (name, t) in [
        ("PLAIN", ParameterType::String),
        ("LIST", ParameterType::StringList),
    ] {
        let full = format!("{path}/{name}");
        put_typed(e, &full, "a,b", t.clone());
        for args in [
            vec!["create", "--payload", "new"],
            vec!["rotate", "--payload", "new"],
            vec!["revoke", "--serial", "1"],
        ] {
            let out = run(ecs(e)
                .args(&args[..1])
                .args(["--path", &path, "--name", name])
                .args(&args[1..]));
            let err = assert_fail(&out);
            assert!(
                err.contains(&full) && err.contains("nothing was written") && !err.contains("a,b"),
                "{args:?}: {err}"
            );
            assert!(out.stdout.is_empty(), "{}", describe(&out));
            assert_eq!(type_and_version(e, &full), (t.clone(), 1), "{args:?}");
        }
        let d = DaemonProcess::start(e, &path, &[]);
        let r = d
            .post(&format!("/latest/secrets/{name}"), r#"{"payload":"new"}"#)
            .unwrap();
        assert_ne!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        d.stop();
        assert_eq!(type_and_version(e, &full), (t.clone(), 1));
    }
}

#[test]
fn string_lists_are_refused_by_every_command_naming_them() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("stringlist");
    put_typed(e, &format!("{path}/LIST"), "x,y", ParameterType::StringList);
    put_secure(e, &format!("{path}/SECURE"), "secure-value");
    let named = |err: &str| {
        assert!(
            err.contains(&format!("{path}/LIST is a StringList parameter")) && !err.contains("x,y"),
            "{err}"
        );
    };
    for format in ["shell", "json", "dotenv"] {
        let out = run(ecs(e).args(["env", "--path", &path, "--format", format]));
        named(&assert_fail(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("secure-value") && !stdout.contains("x,y"),
            "{stdout}"
        );
    }
    named(&assert_exec_not_started(ecs(e), &["--path", &path]));
    named(&assert_fail(&run(
        ecs(e).args(["fetch", "--path", &path, "--name", "LIST"])
    )));
    named(&assert_fail(&run(ecs(e).args(["list", "--path", &path]))));
    let d = DaemonProcess::start(e, &path, &[]);
    for route in ["/latest/secrets/LIST", "/latest/secrets"] {
        let r = d.get(route).unwrap();
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert_ne!(r.status, 200, "{route}: {body}");
        assert!(
            body.contains("StringList") && !body.contains("x,y"),
            "{route}: {body}"
        );
    }
    d.stop();
}
