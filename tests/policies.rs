//! Policy sufficiency (issue 25 item 4): every command runs with nothing but the actions of
//! the policy `setup` prints for its role, on every backend. moto enforces IAM *actions*
//! once its count of unauthenticated requests is used up (`/moto-api/reset-auth`, the
//! runtime form of `INITIAL_NO_AUTH_ACTION_COUNT`); it does not evaluate resources or
//! conditions, so each printed policy is reduced to its allowed actions on `*` here, and the
//! resource scoping stays checked by the policy unit tests (src/cmd/setup/policy.rs, sm.rs).
//!
//! Roles: `fetch` (exec, env, sync), `daemon` (the sidecar's start and reads), `create`
//! (create, rotate, revoke, list, fetch; import from Parameter Store with the source path's
//! daemon policy, as docs say).

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

/// Creates an IAM user with one inline policy and prints its access key (boto3, before
/// moto enforces anything).
const MAKE_USER: &str = r#"
import json, sys
import boto3
endpoint, name, policy = sys.argv[1], sys.argv[2], sys.argv[3]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
iam.create_user(UserName=name)
iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
k = iam.create_access_key(UserName=name)["AccessKey"]
print(json.dumps({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
"#;

/// The allowed actions of a printed policy, on `*`, without conditions.
fn actions_only(policies: &[&Value]) -> Value {
    let mut actions: Vec<Value> = Vec::new();
    for p in policies {
        for s in p["Statement"].as_array().unwrap() {
            if s["Effect"] != "Allow" {
                continue;
            }
            match &s["Action"] {
                Value::Array(a) => actions.extend(a.iter().cloned()),
                a => actions.push(a.clone()),
            }
        }
    }
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": "*"}
    ]})
}

struct User {
    id: String,
    secret: String,
}

fn make_user(endpoint: &str, name: &str, policy: &Value) -> User {
    let out = Command::new("python3")
        .arg("-c")
        .arg(MAKE_USER)
        .args([endpoint, name, &policy.to_string()])
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install python3 and `pip install boto3` (scripts/deps.sh)")
        });
    assert!(
        out.status.success(),
        "boto3 (`pip install boto3`, scripts/deps.sh): {}",
        describe(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    User {
        id: v["id"].as_str().unwrap().into(),
        secret: v["secret"].as_str().unwrap().into(),
    }
}

/// From now on moto checks every request's actions against the caller's IAM policies.
fn enforce(m: &Moto) {
    let r = http_request(
        "POST",
        &format!("{}/moto-api/reset-auth", m.endpoint),
        &[],
        b"0",
    )
    .expect("POST /moto-api/reset-auth");
    assert_eq!(r.status, 200, "{}", r.text());
}

fn as_user(endpoint: &str, u: &User, backend: &str) -> Command {
    let mut c = ecs(endpoint);
    c.env("AWS_ACCESS_KEY_ID", &u.id)
        .env("AWS_SECRET_ACCESS_KEY", &u.secret)
        .env("ECS_SECRETS_BACKEND", backend);
    c
}

/// `setup`'s lines by access: fetch, create, daemon.
fn printed(endpoint: &str, backend: &str, path: &str) -> Vec<Value> {
    let out = run(ecs(endpoint).args(["setup", "--backend", backend, "--path", path]));
    let lines = assert_ok_lines(&out);
    let by = |a: &str| {
        lines
            .iter()
            .find(|l| l["access"] == a)
            .unwrap_or_else(|| panic!("setup printed no {a} policy: {lines:?}"))["policy"]
            .clone()
    };
    vec![by("fetch"), by("create"), by("daemon")]
}

#[track_caller]
fn ok(c: &mut Command, what: &str) -> String {
    let out = run(c);
    assert!(out.status.success(), "{what}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sufficiency(backend: &str) {
    let m = fresh_moto();
    let e = &m.endpoint;
    let path = format!("/pol/{}", backend.replace("secretsmanager", "sm"));
    let p = printed(e, backend, &path);
    let (fetch, create, daemon) = (&p[0], &p[1], &p[2]);
    // Seeded as the unrestricted test user, before anything is enforced.
    for (name, v) in [("K", "k1"), ("R", "r1")] {
        ok(
            ecs(e).args([
                "create",
                "--backend",
                backend,
                "--path",
                &path,
                "--name",
                name,
                "--payload",
                v,
            ]),
            "seed",
        );
    }
    let ssm_src = "/pol/src";
    if backend == "dynamodb" {
        ok(
            ecs(e).args([
                "create",
                "--path",
                ssm_src,
                "--name",
                "S",
                "--payload",
                "s1",
            ]),
            "seed the ssm source",
        );
    }
    let ssm_daemon = printed(e, "ssm", ssm_src).remove(2);
    let reader = make_user(e, "reader", &actions_only(&[fetch]));
    let writer = make_user(e, "writer", &actions_only(&[create]));
    let sidecar = make_user(e, "sidecar", &actions_only(&[daemon]));
    // AWS authorizes a TransactWriteItems (an import that fits one transaction) by the
    // actions inside it (PutItem, which the writer policy grants); moto's IAM enforcement asks
    // for its own action name instead, which no real policy can name. Grant that one moto-only
    // action to the importer, and nothing else beyond the printed policies.
    let moto_transact =
        json!({"Statement": [{"Effect": "Allow", "Action": "dynamodb:TransactWriteItems"}]});
    let importer = make_user(
        e,
        "importer",
        &actions_only(&[create, &ssm_daemon, &moto_transact]),
    );
    enforce(&m);

    // The enforcement is real: a reader cannot write.
    let out = run(as_user(e, &reader, backend).args([
        "create",
        "--path",
        &path,
        "--name",
        "X",
        "--payload",
        "x",
    ]));
    assert!(
        !out.status.success(),
        "moto enforces nothing: {}",
        describe(&out)
    );

    // fetch role: env, exec, sync.
    let env = ok(
        as_user(e, &reader, backend).args(["env", "--path", &path, "--format", "json"]),
        "env",
    );
    assert_eq!(serde_json::from_str::<Value>(&env).unwrap()["K"], "k1");
    ok(
        as_user(e, &reader, backend).args(["exec", "--path", &path, "--", "/bin/true"]),
        "exec",
    );
    let dir = TempDir::new("pol-sync");
    ok(
        as_user(e, &reader, backend)
            .args(["sync", "--allow-disk", "--path", &path, "--files"])
            .arg(dir.path()),
        "sync",
    );
    assert_eq!(std::fs::read_to_string(dir.join("K")).unwrap(), "k1");

    // daemon role: start-up check and every read route.
    let mut c = as_user(e, &sidecar, backend);
    c.args([
        "daemon",
        "--read-only",
        "--path",
        &path,
        "--listen",
        "127.0.0.1:0",
    ]);
    let d = DaemonProcess::spawn(c);
    for route in [
        "/latest/secrets/K",
        "/latest/secrets/K/1",
        "/latest/secrets",
    ] {
        let r = d.get(route).unwrap();
        assert_eq!(r.status, 200, "{backend} daemon {route}: {}", r.text());
    }
    d.stop();

    // create role: every admin command.
    let w = |args: &[&str]| {
        let mut c = as_user(e, &writer, backend);
        c.arg(args[0]).args(["--path", &path]).args(&args[1..]);
        c
    };
    ok(
        &mut w(&["create", "--name", "N", "--payload", "n1"]),
        "create",
    );
    ok(
        &mut w(&["create", "--name", "N", "--payload", "n2"]),
        "create again",
    );
    ok(
        &mut w(&["rotate", "--name", "N", "--payload", "n3"]),
        "rotate",
    );
    ok(
        &mut w(&["revoke", "--name", "R", "--serial", "1"]),
        "revoke",
    );
    ok(
        &mut w(&["revoke", "--name", "N", "--serial", "3"]),
        "revoke the current",
    );
    ok(&mut w(&["list", "--all-versions"]), "list");
    ok(&mut w(&["fetch", "--name", "K"]), "fetch");
    ok(
        &mut w(&["fetch", "--name", "K", "--serial", "1"]),
        "fetch a serial",
    );
    if backend == "dynamodb" {
        ok(&mut w(&["rotate-key"]), "rotate-key");
        ok(
            as_user(e, &importer, backend).args([
                "import",
                "--path",
                "/pol/imported",
                "--from-ssm-path",
                ssm_src,
            ]),
            "import from ssm",
        );
    }
}

#[test]
fn ssm_commands_need_only_their_printed_policy() {
    sufficiency("ssm");
}

#[test]
fn dynamodb_commands_need_only_their_printed_policy() {
    sufficiency("dynamodb");
}

#[test]
fn secretsmanager_commands_need_only_their_printed_policy() {
    sufficiency("secretsmanager");
}
