//! `--resolve-refs`: references in the environment (ECS `valueFrom` ARNs, `ssm:/…`,
//! `secretsmanager:…`) resolved through the real binary against moto, requests counted
//! server side by the loopback proxy.
//!
//! moto gaps (README "References"): moto's GetParameters does not accept ARNs (real SSM
//! does), which is why SSM ARNs are sent as the names they contain; moto never answers a
//! per-secret `Errors` entry for access denied, so the proxy adds one.

mod common;

use aws_sdk_secretsmanager::config::Region;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

const ACCOUNT: &str = "123456789012";

fn sm_in(endpoint: &str, region: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        secretsmanager_config(endpoint)
            .region(Region::new(region.to_string()))
            .build(),
    )
}

fn ssm_in(endpoint: &str, region: &str) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(
        ssm_config(endpoint)
            .region(aws_sdk_ssm::config::Region::new(region.to_string()))
            .build(),
    )
}

/// Creates a secret; returns its full ARN (with the random suffix).
#[track_caller]
fn put_sm(endpoint: &str, region: &str, name: &str, value: &str) -> String {
    block_on(
        sm_in(endpoint, region)
            .create_secret()
            .name(name)
            .secret_string(value)
            .send(),
    )
    .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"))
    .arn
    .unwrap()
}

#[track_caller]
fn put_ssm_in(endpoint: &str, region: &str, name: &str, value: &str) {
    block_on(
        ssm_in(endpoint, region)
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send(),
    )
    .unwrap_or_else(|e| panic!("PutParameter {name}: {e:?}"));
}

fn ssm_arn(region: &str, name: &str) -> String {
    format!(
        "arn:aws:ssm:{region}:{ACCOUNT}:parameter/{}",
        name.trim_start_matches('/')
    )
}

/// `env --format json --resolve-refs` with `vars` in the environment.
fn env_json(endpoint: &str, vars: &[(String, String)], args: &[&str]) -> std::process::Output {
    let mut c = ecs(endpoint);
    c.args(["env", "--format", "json", "--resolve-refs"])
        .args(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    run(&mut c)
}

#[track_caller]
fn ok_json(out: &std::process::Output) -> Value {
    serde_json::from_str(&assert_ok(out)).unwrap()
}

fn tag() -> String {
    unique_path("r").trim_start_matches("/t/").replace('/', "-")
}

#[test]
fn seventy_references_and_a_path_at_the_request_floor() {
    let m = moto();
    let t = tag();
    let path = unique_path("refpath");
    put_secure(&m.endpoint, &format!("{path}/FROM_PATH"), "path-value");
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut want = serde_json::Map::new();
    want.insert("FROM_PATH".into(), json!("path-value"));
    // 25 SSM references: half short, half ARNs as ECS writes them.
    for i in 0..25 {
        let name = format!("/{t}/ssm/p{i:02}");
        put_secure(&m.endpoint, &name, &format!("ssm-{i}"));
        let r = if i % 2 == 0 {
            format!("ssm:{name}")
        } else {
            ssm_arn("us-east-1", &name)
        };
        vars.push((format!("SSM_{i:02}"), r));
        want.insert(format!("SSM_{i:02}"), json!(format!("ssm-{i}")));
    }
    // 40 plain secrets: by name, by full ARN, by ARN without its suffix.
    for i in 0..40 {
        let name = format!("{t}/sm/s{i:02}");
        let arn = put_sm(&m.endpoint, "us-east-1", &name, &format!("sm-{i}"));
        let r = match i % 3 {
            0 => format!("secretsmanager:{name}"),
            1 => arn,
            _ => arn[..arn.len() - 7].to_string(),
        };
        vars.push((format!("SM_{i:02}"), r));
        want.insert(format!("SM_{i:02}"), json!(format!("sm-{i}")));
    }
    // 4 keys of one JSON secret (one request slot), ECS's verbatim forms included.
    let db = json!({"username": "admin", "password": "p@ss:w'rd", "port": 5432, "opts": {"ssl": true, "l": [1, "a b"]}});
    let db_arn = put_sm(
        &m.endpoint,
        "us-east-1",
        &format!("{t}/db"),
        &db.to_string(),
    );
    for (var, r, v) in [
        ("DB_USER", format!("{db_arn}:username::"), json!("admin")),
        (
            "DB_PASSWORD",
            format!("{db_arn}:password"),
            json!("p@ss:w'rd"),
        ),
        (
            "DB_PORT",
            format!("secretsmanager:{t}/db:port"),
            json!("5432"),
        ),
        (
            "DB_OPTS",
            format!("secretsmanager:{t}/db:opts::"),
            // json! sorts keys; the value keeps the stored order, compacted
            json!(r#"{"l":[1,"a b"],"ssl":true}"#),
        ),
    ] {
        vars.push((var.into(), r));
        want.insert(var.into(), v);
    }
    // 1 pinned to AWSPREVIOUS, in a second region: a request of its own.
    let west = put_sm(&m.endpoint, "us-west-2", &format!("{t}/west"), "west-old");
    block_on(
        sm_in(&m.endpoint, "us-west-2")
            .put_secret_value()
            .secret_id(&west)
            .secret_string("west-new")
            .send(),
    )
    .unwrap();
    vars.push(("WEST_PREVIOUS".into(), format!("{west}::AWSPREVIOUS:")));
    want.insert("WEST_PREVIOUS".into(), json!("west-old"));
    // Not references: left alone, and not printed by `env` (which prints secrets only).
    vars.push(("NOTE".into(), format!("see ssm:/{t}/ssm/p00")));
    vars.push(("ROLE".into(), format!("arn:aws:iam::{ACCOUNT}:role/app")));
    assert_eq!(vars.len(), 25 + 40 + 4 + 1 + 2);

    let proxy = Proxy::start(&m.endpoint);
    let out = env_json(&proxy.endpoint(), &vars, &["--path", &path]);
    assert_eq!(ok_json(&out), Value::Object(want));
    assert_eq!(proxy.count(".GetParameters"), 3, "{:?}", proxy.ops());
    assert_eq!(proxy.count(".BatchGetSecretValue"), 3, "{:?}", proxy.ops());
    assert_eq!(proxy.count(".GetSecretValue"), 1, "{:?}", proxy.ops());
    assert_eq!(proxy.count(".GetParametersByPath"), 1, "{:?}", proxy.ops());
    // SSM ARNs are asked for by ARN (so that the ARN's account is the one read). Real SSM
    // answers them in GetParameters; moto does not, and each costs one GetParameter more.
    assert_eq!(proxy.count(".GetParameter"), 12, "{:?}", proxy.ops());
    assert_eq!(proxy.total(), 8 + 12, "{:?}", proxy.ops());
}

#[test]
fn references_in_another_region_use_that_region() {
    let m = moto();
    let t = tag();
    put_ssm_in(&m.endpoint, "eu-west-1", &format!("/{t}/p"), "from-eu");
    // The same name in the default region holds something else: the region must be used.
    put_secure(&m.endpoint, &format!("/{t}/p"), "from-us");
    let arn = put_sm(&m.endpoint, "eu-west-1", &format!("{t}/s"), "sm-from-eu");
    let vars = vec![
        ("EU_P".to_string(), ssm_arn("eu-west-1", &format!("/{t}/p"))),
        ("US_P".to_string(), format!("ssm:/{t}/p")),
        ("EU_S".to_string(), arn),
    ];
    let proxy = Proxy::start(&m.endpoint);
    let got = ok_json(&env_json(&proxy.endpoint(), &vars, &[]));
    assert_eq!(
        got,
        json!({"EU_P": "from-eu", "US_P": "from-us", "EU_S": "sm-from-eu"})
    );
    assert_eq!(proxy.count(".GetParameters"), 2, "{:?}", proxy.ops());
    assert_eq!(
        proxy.count(".GetParameter"),
        1,
        "moto gap: {:?}",
        proxy.ops()
    );
    assert_eq!(proxy.count(".BatchGetSecretValue"), 1, "{:?}", proxy.ops());
}

#[test]
fn a_task_definition_valuefrom_works_verbatim() {
    let m = moto();
    let t = tag();
    put_secure(&m.endpoint, &format!("/{t}/app/api_key"), "k-123");
    let arn = put_sm(
        &m.endpoint,
        "us-east-1",
        &format!("{t}/rds"),
        r#"{"username":"u","password":"pw"}"#,
    );
    // As `aws ecs describe-task-definition` prints containerDefinitions[].secrets.
    let secrets = json!([
        {"name": "API_KEY", "valueFrom": ssm_arn("us-east-1", &format!("/{t}/app/api_key"))},
        {"name": "DB_PASSWORD", "valueFrom": format!("{arn}:password::")},
        {"name": "DB", "valueFrom": arn},
    ]);
    let vars: Vec<(String, String)> = secrets
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["valueFrom"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let dir = TempDir::new("refexec");
    let out_file = dir.join("out");
    let mut c = ecs(&m.endpoint);
    c.args(["exec", "--resolve-refs", "--", "sh", "-c"])
        .arg(r#"printf '%s|%s|%s' "$API_KEY" "$DB_PASSWORD" "$DB" > "$OUT""#)
        .env("OUT", &out_file);
    for (k, v) in &vars {
        c.env(k, v);
    }
    assert_ok(&run(&mut c));
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        r#"k-123|pw|{"username":"u","password":"pw"}"#
    );
}

#[test]
fn references_are_secrets_files_require_and_json_keys() {
    let m = moto();
    let t = tag();
    put_secure(&m.endpoint, &format!("/{t}/a"), "value-a");
    put_sm(
        &m.endpoint,
        "us-east-1",
        &format!("{t}/j"),
        r#"{"user":"u","n":{"k":1}}"#,
    );
    // --json-keys expands a whole JSON reference, not one with a json-key.
    let vars = vec![
        ("J".to_string(), format!("secretsmanager:{t}/j")),
        ("J_ONE".to_string(), format!("secretsmanager:{t}/j:user")),
    ];
    let got = ok_json(&env_json(&m.endpoint, &vars, &["--json-keys"]));
    assert_eq!(got, json!({"J_user": "u", "J_n_k": "1", "J_ONE": "u"}));
    // --require sees references; a missing one fails.
    let vars = vec![("A".to_string(), format!("ssm:/{t}/a"))];
    ok_json(&env_json(&m.endpoint, &vars, &["--require", "A"]));
    let out = env_json(&m.endpoint, &vars, &["--require", "B"]);
    assert!(assert_fail(&out).contains("B"));
    // --files --file-env --no-env: the variable that held the reference is gone, A_FILE is set.
    let dir = Scratch::shm("reffiles");
    let files = dir.join("s");
    let res = TempDir::new("reffiles-out");
    let out_file = res.join("out");
    let mut c = ecs(&m.endpoint);
    c.args(["exec", "--resolve-refs", "--files"])
        .arg(&files)
        .args(["--file-env", "--no-env", "--", "sh", "-c"])
        .arg(r#"printf '%s|%s' "${A-unset}" "$A_FILE" > "$OUT""#)
        .env("OUT", &out_file)
        .env("A", format!("ssm:/{t}/a"));
    assert_ok(&run(&mut c));
    let got = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(got, format!("unset|{}", files.join("A").display()));
    assert_eq!(std::fs::read_to_string(files.join("A")).unwrap(), "value-a");
    // --no-override does not keep the reference text.
    let out_file2 = res.join("out2");
    let mut c = ecs(&m.endpoint);
    c.args(["exec", "--resolve-refs", "--no-override", "--", "sh", "-c"])
        .arg(r#"printf '%s' "$A" > "$OUT""#)
        .env("OUT", &out_file2)
        .env("A", format!("ssm:/{t}/a"));
    assert_ok(&run(&mut c));
    assert_eq!(std::fs::read_to_string(&out_file2).unwrap(), "value-a");
}

#[test]
fn without_the_flag_nothing_is_resolved_and_lookalikes_are_left_alone() {
    let m = moto();
    let t = tag();
    let path = unique_path("refnoflag");
    put_secure(&m.endpoint, &format!("{path}/X"), "x");
    put_secure(&m.endpoint, &format!("/{t}/a"), "value-a");
    let dir = TempDir::new("refnoflag");
    let lookalikes = [
        ("MID", format!("prefix ssm:/{t}/a")),
        ("S3", "arn:aws:s3:::bucket/ssm:/x".to_string()),
        ("IAM", format!("arn:aws:iam::{ACCOUNT}:role/app")),
        ("DOC", format!("arn:aws:ssm:us-east-1:{ACCOUNT}:document/d")),
        ("URL", "postgres://u:p@h:5432/db".to_string()),
    ];
    for flag in [false, true] {
        let out_file = dir.join(format!("out-{flag}"));
        let proxy = Proxy::start(&m.endpoint);
        let mut c = ecs(&proxy.endpoint());
        c.args(["exec", "--path", &path]);
        if flag {
            c.arg("--resolve-refs");
        }
        c.args(["--", "sh", "-c"])
            .arg(r#"printf '%s|%s|%s|%s|%s|%s' "$A" "$MID" "$S3" "$IAM" "$DOC" "$URL" > "$OUT""#)
            .env("OUT", &out_file)
            .env("A", format!("ssm:/{t}/a"));
        for (k, v) in &lookalikes {
            c.env(k, v);
        }
        assert_ok(&run(&mut c));
        let a = if flag {
            "value-a".to_string()
        } else {
            format!("ssm:/{t}/a")
        };
        let rest: Vec<&str> = lookalikes.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            std::fs::read_to_string(&out_file).unwrap(),
            format!("{a}|{}", rest.join("|"))
        );
        assert_eq!(
            proxy.count(".GetParameters"),
            flag as usize,
            "{:?}",
            proxy.ops()
        );
    }
}

/// Adds `entry` to the `Errors` of every BatchGetSecretValue answer.
#[test]
fn every_failure_fails_closed_naming_the_variable_and_the_reference() {
    let m = moto();
    let t = tag();
    let path = unique_path("reffail");
    const SECRET: &str = "hunter2-never-shown";
    put_secure(&m.endpoint, &format!("{path}/DB"), SECRET);
    put_secure(&m.endpoint, &format!("/{t}/ok"), SECRET);
    put_sm(&m.endpoint, "us-east-1", &format!("{t}/plain"), SECRET);
    put_sm(
        &m.endpoint,
        "us-east-1",
        &format!("{t}/json"),
        &json!({"k": SECRET}).to_string(),
    );
    let deleted = format!("{t}/deleted");
    put_sm(&m.endpoint, "us-east-1", &deleted, SECRET);
    block_on(
        secretsmanager(&m.endpoint)
            .delete_secret()
            .secret_id(&deleted)
            .send(),
    )
    .unwrap();
    let ok = ("OK".to_string(), format!("ssm:/{t}/ok"));
    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "MISSING_P",
            format!("ssm:/{t}/nope"),
            vec![],
            "no parameter",
        ),
        (
            "MISSING_ARN",
            ssm_arn("us-east-1", &format!("/{t}/nope")),
            vec![],
            "no parameter",
        ),
        (
            "MISSING_S",
            format!("secretsmanager:{t}/nope"),
            vec![],
            "ResourceNotFound",
        ),
        (
            "DELETED_S",
            format!("secretsmanager:{deleted}"),
            vec![],
            "marked deleted",
        ),
        (
            "NO_KEY",
            format!("secretsmanager:{t}/json:other"),
            vec![],
            "no JSON key",
        ),
        (
            "NOT_JSON",
            format!("secretsmanager:{t}/plain:k"),
            vec![],
            "not a JSON object",
        ),
        (
            "NO_STAGE",
            format!("secretsmanager:{t}/plain::NOSUCHSTAGE"),
            vec![],
            "NOSUCHSTAGE",
        ),
        ("MALFORMED", format!("ssm:{t}/x"), vec![], "malformed"),
        (
            "BAD_ACCOUNT",
            format!("arn:aws:ssm:us-east-1:123:parameter/{t}/ok"),
            vec![],
            "12 digits",
        ),
        (
            "BAD_PARTITION",
            format!("arn:aws-iso:secretsmanager:us-east-1:{ACCOUNT}:secret:{t}/plain"),
            vec![],
            "partition",
        ),
        (
            "DB",
            format!("ssm:/{t}/ok"),
            vec!["--path", path.as_str()],
            "both set DB",
        ),
        (
            "LD_PRELOAD",
            format!("ssm:/{t}/ok"),
            vec![],
            "--allow-name LD_PRELOAD",
        ),
    ];
    for (var, r, args, why) in &cases {
        let label = format!("${var} ({r})");
        // exec: the command never starts.
        let mut c = ecs(&m.endpoint);
        c.env(var, r).env(&ok.0, &ok.1);
        let mut a = vec!["--resolve-refs"];
        a.extend(args);
        let stderr = assert_exec_not_started(c, &a);
        assert!(stderr.contains(&label), "{var}: {stderr}");
        assert!(stderr.contains(why), "{var}: {stderr}");
        assert!(!stderr.contains(SECRET), "{var}: {stderr}");
        if *var == "DB" {
            assert!(stderr.contains(&format!("{path}/DB")), "{stderr}");
        }
        // env: nothing but the failure line on stdout.
        let mut c = ecs(&m.endpoint);
        c.arg("env").args(&a).env(var, r).env(&ok.0, &ok.1);
        let out = run(&mut c);
        let stderr = assert_fail(&out);
        assert!(stderr.contains(&label), "{var}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("export") && !stdout.contains(SECRET),
            "{stdout}"
        );
        // ... and that line stops an evaluating shell that ignores the exit status
        // (malformed references are configuration errors, caught before any fetch).
        let e = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "eval '{}'; echo CONTINUED",
                stdout.replace('\'', "'\\''")
            ))
            .output()
            .unwrap();
        assert!(!e.status.success(), "{var}: {stdout}");
        assert!(
            !String::from_utf8_lossy(&e.stdout).contains("CONTINUED"),
            "{var}: {stdout}"
        );
    }
    // Access denied on one secret of a batch (an `Errors` entry; moto never sends one).
    let proxy = Proxy::start(&m.endpoint);
    let id = format!("{t}/plain");
    proxy.inject_batch_error(
        json!({"SecretId": id, "ErrorCode": "AccessDeniedException", "Message": "not allowed"}),
    );
    let mut c = ecs(&proxy.endpoint());
    c.env("DENIED", format!("secretsmanager:{id}"));
    let stderr = assert_exec_not_started(c, &["--resolve-refs"]);
    assert!(
        stderr.contains(&format!("$DENIED (secretsmanager:{id})"))
            && stderr.contains("AccessDenied"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
}

#[test]
fn references_and_paths_run_concurrently_under_one_deadline() {
    let m = moto();
    let t = tag();
    let path = unique_path("refconc");
    put_secure(&m.endpoint, &format!("{path}/P"), "p");
    let mut vars = Vec::new();
    for i in 0..20 {
        put_secure(&m.endpoint, &format!("/{t}/c{i}"), "v");
        vars.push((format!("S{i}"), format!("ssm:/{t}/c{i}")));
    }
    for i in 0..4 {
        put_sm(&m.endpoint, "us-east-1", &format!("{t}/c{i}"), "v");
        vars.push((format!("M{i}"), format!("secretsmanager:{t}/c{i}")));
    }
    vars.push(("PIN".into(), format!("secretsmanager:{t}/c0::AWSCURRENT:")));
    // 4 requests (2 GetParameters, 1 BatchGetSecretValue, 1 GetParametersByPath; the
    // AWSCURRENT "pin" is no pin), each held 1.5 s by the proxy: run together, each needs
    // its own connection; one after another they would share one kept-alive connection.
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        latency_ms: 1500,
        ..Default::default()
    });
    let out = env_json(&proxy.endpoint(), &vars, &["--path", &path]);
    let got = ok_json(&out);
    assert_eq!(got.as_object().unwrap().len(), 26);
    assert_eq!(proxy.total(), 4, "{:?}", proxy.ops());
    assert_eq!(proxy.connections(), 4, "{:?}", proxy.ops());
}

/// Values that break naive quoting, as SSM parameters and Secrets Manager secrets.
fn hostile() -> Vec<(&'static str, String)> {
    let ascii: String = (1u8..=127).map(char::from).collect();
    vec![
        ("ASCII_ALL", ascii.clone()),
        ("UTF8", "é 中文 🔑 \u{202E}rtl \u{2028}ls".to_string()),
        ("QUOTES", r#"'single' "double" '\'' it's"#.to_string()),
        (
            "SUBST",
            "$(touch PWNED) `touch PWNED` ${HOME} $((1+1)) ;|&>".to_string(),
        ),
        ("BACKSLASHES", r"\ \\ \n \0 \x41 \' C:\dir\".to_string()),
        ("NEWLINES", "\nfirst\n\nsecond\r\nthird\n\n".to_string()),
        ("BLANKS", "  \t leading and trailing \t  ".to_string()),
        ("DASHES", "--help".to_string()),
        ("LOOKS_LIKE_A_REF", "ssm:/not/followed".to_string()),
    ]
}

#[test]
fn hostile_values_survive_eval_in_every_shell() {
    let m = moto();
    let t = tag();
    let values = hostile();
    let mut vars: Vec<(String, String)> = Vec::new();
    for (k, v) in &values {
        put_secure(&m.endpoint, &format!("/{t}/{k}"), v);
        vars.push((format!("P_{k}"), format!("ssm:/{t}/{k}")));
        put_sm(&m.endpoint, "us-east-1", &format!("{t}/{k}"), v);
        vars.push((format!("S_{k}"), format!("secretsmanager:{t}/{k}")));
    }
    let j: serde_json::Map<String, Value> = values
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let jarn = put_sm(
        &m.endpoint,
        "us-east-1",
        &format!("{t}/json"),
        &Value::Object(j).to_string(),
    );
    for (k, _) in &values {
        vars.push((format!("J_{k}"), format!("{jarn}:{k}::")));
    }
    let dir = TempDir::new("refeval");
    let bin_dir = bin_dir();
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
            "vars=$(ecs-secrets env --resolve-refs) || exit 1; eval \"$vars\" || exit 9\n",
        );
        for (var, _) in &vars {
            script.push_str(&format!("printf '%s' \"${var}\" > \"$OUT/{var}\"\n"));
        }
        let mut c = Command::new(shell[0]);
        c.args(&shell[1..]).arg("-c").arg(&script);
        scrub_env(&mut c, &m.endpoint)
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir))
            .env("OUT", &out_dir)
            .current_dir(&out_dir);
        for (k, v) in &vars {
            c.env(k, v);
        }
        let out = run(&mut c);
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not found") {
            panic!(
                "{}: missing? install it (scripts/deps.sh)\n{}",
                shell[0],
                describe(&out)
            );
        }
        assert_ok(&out);
        for (var, _) in &vars {
            let k = var[2..].to_string();
            let want = &values.iter().find(|(n, _)| *n == k).unwrap().1;
            let got = std::fs::read_to_string(out_dir.join(var)).unwrap();
            assert_eq!(&got, want, "{tag}: {var} differs");
        }
        assert!(
            !out_dir.join("PWNED").exists(),
            "{tag}: a value was executed"
        );
    }
}

#[test]
fn throttled_batches_are_retried_and_debug_shows_no_value() {
    let m = moto();
    let t = tag();
    const VALUE: &str = "debug-never-shows-this";
    let mut vars = Vec::new();
    for i in 0..12 {
        put_secure(&m.endpoint, &format!("/{t}/d{i}"), VALUE);
        vars.push((format!("P{i}"), format!("ssm:/{t}/d{i}")));
        put_sm(&m.endpoint, "us-east-1", &format!("{t}/d{i}"), VALUE);
        vars.push((format!("S{i}"), format!("secretsmanager:{t}/d{i}")));
    }
    vars.push(("PIN".into(), format!("secretsmanager:{t}/d0::AWSPREVIOUS")));
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        throttle: 0.4,
        seed: 12,
        ..Default::default()
    });
    // d0 has no AWSPREVIOUS: that pin must fail, naming it, after retries of the rest.
    let out = env_json(&proxy.endpoint(), &vars, &["--debug"]);
    let stderr = assert_fail(&out);
    assert!(
        stderr.contains(&format!("$PIN (secretsmanager:{t}/d0::AWSPREVIOUS)")),
        "{stderr}"
    );
    assert!(!stderr.contains(VALUE), "{stderr}");
    vars.pop();
    let out = env_json(&proxy.endpoint(), &vars, &["--debug"]);
    let got = ok_json(&out);
    assert_eq!(got.as_object().unwrap().len(), 24);
    assert!(got.as_object().unwrap().values().all(|v| v == VALUE));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("24 reference(s): 2 GetParameters, 1 BatchGetSecretValue, 0 GetSecretValue"),
        "{stderr}"
    );
    assert!(!stderr.contains(VALUE), "{stderr}");
    assert!(proxy.faults_injected() > 0);
}

#[test]
fn a_stalled_batch_fails_closed_at_the_deadline() {
    let m = moto();
    let t = tag();
    put_secure(&m.endpoint, &format!("/{t}/a"), "a");
    put_sm(&m.endpoint, "us-east-1", &format!("{t}/b"), "b");
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        stall: 1.0,
        only_op: Some("BatchGetSecretValue".into()),
        ..Default::default()
    });
    let mut c = ecs(&proxy.endpoint());
    c.env("A", format!("ssm:/{t}/a"))
        .env("B", format!("secretsmanager:{t}/b"));
    let stderr = assert_exec_not_started(c, &["--resolve-refs", "--timeout", "3"]);
    assert!(
        stderr.contains("resolving 2 reference(s)") && stderr.contains("deadline"),
        "{stderr}"
    );
}

/// Issue 20, finding 4: a reference is read from the account, region and partition its ARN
/// names, or refused: never served from our parameter or secret of the same name. Every
/// ARN field is changed in turn; the resource type is `without_the_flag_…`'s lookalikes.
#[test]
fn a_reference_is_read_where_its_arn_says_or_refused_never_substituted() {
    let m = moto();
    let t = tag();
    const OURS: &str = "ours-never-served";
    let name = format!("/{t}/ref/db");
    let sm_name = format!("{t}/ref/sm");
    // Ours, under the same names, in every region an ARN below names.
    for region in ["us-east-1", "eu-west-1", "cn-north-1"] {
        put_ssm_in(&m.endpoint, region, &name, OURS);
    }
    let sm_arn = put_sm(&m.endpoint, "us-east-1", &sm_name, OURS);
    block_on(
        sm_in(&m.endpoint, "us-east-1")
            .put_secret_value()
            .secret_id(&sm_arn)
            .secret_string(OURS)
            .send(),
    )
    .unwrap();
    let suffix = &sm_arn[sm_arn.len() - 6..];
    let rest = name.trim_start_matches('/');
    let cases: Vec<(&str, String, &str)> = vec![
        // account
        (
            "OTHER_ACCOUNT",
            format!("arn:aws:ssm:us-east-1:999999999999:parameter/{rest}"),
            "no parameter",
        ),
        (
            "OTHER_ACCOUNT_SM",
            format!("arn:aws:secretsmanager:us-east-1:999999999999:secret:{sm_name}"),
            "",
        ),
        (
            "OTHER_ACCOUNT_SM_FULL",
            format!("arn:aws:secretsmanager:us-east-1:999999999999:secret:{sm_name}-{suffix}"),
            "",
        ),
        (
            "OTHER_ACCOUNT_SM_STAGE",
            format!("arn:aws:secretsmanager:us-east-1:999999999999:secret:{sm_name}::AWSPREVIOUS:"),
            "",
        ),
        // partition: a region outside it names nothing; inside it, the partition is kept
        (
            "CN_IN_EU",
            format!("arn:aws-cn:ssm:eu-west-1:{ACCOUNT}:parameter/{rest}"),
            "partition",
        ),
        (
            "AWS_IN_CN",
            format!("arn:aws:ssm:cn-north-1:{ACCOUNT}:parameter/{rest}"),
            "partition",
        ),
        (
            "GOV_IN_US",
            format!("arn:aws-us-gov:secretsmanager:us-east-1:{ACCOUNT}:secret:{sm_name}"),
            "partition",
        ),
        // region: read there (nothing there under that name), not here
        (
            "OTHER_REGION",
            format!("arn:aws:ssm:us-west-2:{ACCOUNT}:parameter/{rest}"),
            "no parameter",
        ),
        (
            "OTHER_REGION_SM",
            format!("arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:{sm_name}"),
            "",
        ),
    ];
    for (var, r, why) in &cases {
        let out = env_json(&m.endpoint, &[(var.to_string(), r.clone())], &[]);
        let err = assert_fail(&out);
        assert!(err.contains(&format!("${var}")), "{var}: {err}");
        assert!(err.contains(why), "{var}: {err}");
        assert!(!err.contains(OURS), "{var}: {err}");
        assert!(out.stdout.is_empty(), "{var}: {}", describe(&out));
    }
    // Our own account's ARN of the same parameter and secret still reads them, by ARN.
    let ours = vec![
        ("P".to_string(), ssm_arn("us-east-1", &name)),
        ("S".to_string(), sm_arn.clone()),
        ("EU".to_string(), ssm_arn("eu-west-1", &name)),
    ];
    assert_eq!(
        ok_json(&env_json(&m.endpoint, &ours, &[])),
        json!({"P": OURS, "S": OURS, "EU": OURS})
    );
}
