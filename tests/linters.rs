//! AWS's own linters over what we print and ship, kept strict: every CloudFormation template
//! `setup --cloudformation` prints passes `cfn-lint` (informational and experimental checks
//! included, in the commercial, China and GovCloud partitions); every IAM policy `setup`
//! prints — directly, or deployed from a template — and every policy in `examples/iam/` has
//! no finding from `parliament` (community auditors included, down to INFO); every task
//! definition in `examples/` passes botocore's parameter validation and registers in moto's
//! ECS. Findings are fixed in our output, never by loosening a linter; a missing linter fails
//! the test saying how to install it (`scripts/deps.sh` does).

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ACCOUNT: &str = "123456789012"; // moto's default account

/// A name usable as a table, alias or stack suffix, unique in this test process.
fn unique(tag: &str) -> String {
    unique_path(tag).trim_start_matches('/').replace('/', "-")
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// Runs a linter (stdin from /dev/null: parliament reads stdin when it is not a terminal);
/// a missing one fails the test with the way to install it.
fn lint(program: &str, args: &[&str], install: &str) -> Output {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install it with `{install}` (scripts/deps.sh does)")
        });
    if out.status.code() == Some(127) {
        panic!("{program} is not installed: `{install}` (scripts/deps.sh does)");
    }
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cfn-lint` over `files`, as strict as it goes.
fn cfn_lint(files: &[PathBuf]) -> Output {
    let mut args = vec![
        "--include-checks",
        "I",
        "--include-experimental",
        "--regions",
        "us-east-1",
        "cn-north-1",
        "us-gov-west-1",
        "--",
    ];
    let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    args.extend(names);
    lint("cfn-lint", &args, "pip install cfn-lint")
}

/// `parliament` over `files`, as strict as it goes.
fn parliament(files: &[PathBuf]) -> Output {
    let list: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let list = list.join(",");
    lint(
        "parliament",
        &[
            "--include-community-auditors",
            "--minimum_severity",
            "INFO",
            "--files",
            &list,
        ],
        "pip install parliament",
    )
}

#[test]
fn every_cloudformation_template_passes_cfn_lint() {
    let m = moto();
    let dir = TempDir::new("cfn-lint");
    let principals: [&[&str]; 5] = [
        &[],
        &["--fetch-role", "arn:aws:iam::123456789012:role/app-task"],
        // Another partition: the template's rule names it.
        &[
            "--fetch-role",
            "arn:aws-us-gov:iam::123456789012:role/app-task",
        ],
        &["--create-principal", "arn:aws:iam::123456789012:user/ops"],
        &[
            "--fetch-role",
            "arn:aws:iam::123456789012:role/svc/app-task",
            "--fetch-role",
            "arn:aws:iam::123456789012:group/readers",
            "--create-principal",
            "arn:aws:iam::123456789012:user/ops",
            "--create-principal",
            "arn:aws:iam::123456789012:role/deployer",
        ],
    ];
    let keys: [&[&str]; 4] = [
        &[],
        &["--kms-key", "alias/team-secrets"],
        &["--kms-key", "1234abcd-12ab-34cd-56ef-1234567890ab"],
        &[
            "--kms-key",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ],
    ];
    let mut files = Vec::new();
    for backend in ["ssm", "dynamodb"] {
        for (i, p) in principals.iter().enumerate() {
            for (j, k) in keys.iter().enumerate() {
                let mut c = ecs(&m.endpoint);
                c.args(["setup", "--cloudformation", "--backend", backend]);
                // With and without a default path, and another table name.
                if (i + j) % 2 == 0 {
                    c.args(["--path", "/prod/orders-api"]);
                }
                if j == 1 {
                    c.args(["--table", "team-secrets"]);
                }
                c.args(*p).args(*k);
                let template = assert_ok(&run(&mut c));
                let f = dir.join(format!("{backend}-{i}-{j}.json"));
                std::fs::write(&f, template).unwrap();
                files.push(f);
            }
        }
    }
    let out = cfn_lint(&files);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint findings:\n{}",
        text(&out)
    );

    // The linter does find things: the same template with one misspelt property.
    let mut t: Value = serde_json::from_str(&std::fs::read_to_string(&files[4]).unwrap()).unwrap();
    t["Resources"]["SecretsKey"]["Properties"]["EnableKeyRotaton"] = Value::Bool(true);
    let broken = dir.join("broken.json");
    std::fs::write(&broken, t.to_string()).unwrap();
    let out = cfn_lint(&[broken]);
    assert!(
        !out.status.success() && text(&out).contains("EnableKeyRotaton"),
        "cfn-lint must flag a misspelt property:\n{}",
        text(&out)
    );
}

/// The policy document of a deployed managed policy (moto resolves the template's
/// intrinsic functions).
fn deployed_policy(endpoint: &str, arn: &str) -> Value {
    let r = aws_query(
        endpoint,
        "iam",
        &[
            ("Action", "GetPolicyVersion"),
            ("Version", "2010-05-08"),
            ("PolicyArn", arn),
            ("VersionId", "v1"),
        ],
    );
    let body = r.text();
    let doc = body
        .split("<Document>")
        .nth(1)
        .and_then(|rest| rest.split("</Document>").next())
        .unwrap_or_else(|| panic!("no policy document for {arn}: {body}"));
    let doc = percent_decode(doc)
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"))
}

fn output_value(describe_stacks: &str, key: &str) -> String {
    describe_stacks
        .split(&format!("<OutputKey>{key}</OutputKey>"))
        .nth(1)
        .and_then(|rest| rest.split("<OutputValue>").nth(1))
        .and_then(|rest| rest.split("</OutputValue>").next())
        .unwrap_or_else(|| panic!("no {key} output: {describe_stacks}"))
        .to_string()
}

#[test]
fn every_printed_and_example_policy_passes_parliament() {
    let m = moto();
    let dir = TempDir::new("parliament");
    let mut files = Vec::new();
    let mut save = |tag: &str, policy: &Value| {
        assert!(policy["Statement"].is_array(), "{tag}: {policy}");
        let f = dir.join(format!("{tag}.json"));
        std::fs::write(&f, serde_json::to_string_pretty(policy).unwrap()).unwrap();
        files.push(f);
    };
    for backend in ["ssm", "dynamodb"] {
        // Printed by setup against AWS.
        let path = unique_path(&format!("lint-{backend}"));
        let out = run(ecs(&m.endpoint).args([
            "setup",
            "--backend",
            backend,
            "--path",
            &path,
            "--table",
            &unique("lint"),
            "--kms-key",
            &format!("alias/{}", unique("lint")),
            "--fetch-role",
            &format!("arn:aws:iam::{ACCOUNT}:role/app-task"),
            "--create-principal",
            &format!("arn:aws:iam::{ACCOUNT}:user/ops"),
        ]));
        let printed = assert_ok(&out);
        let lines: Vec<Value> = printed
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "fetch, create, daemon: {printed}");
        for l in &lines {
            save(
                &format!("{backend}-{}", l["access"].as_str().unwrap()),
                &l["policy"],
            );
        }
        // Printed in a template, as CloudFormation deploys it.
        let out = run(ecs(&m.endpoint).args([
            "setup",
            "--cloudformation",
            "--backend",
            backend,
            "--path",
            &path,
            "--table",
            &unique("lint-cfn"),
            "--kms-key",
            &format!("alias/{}", unique("lint-cfn")),
        ]));
        let template = assert_ok(&out);
        let stacks = deploy_stack(&m.endpoint, &unique("lint-stack"), &template).text();
        for logical in ["FetchPolicy", "CreatePolicy", "DaemonPolicy"] {
            let arn = output_value(&stacks, &format!("{logical}Arn"));
            save(
                &format!("{backend}-template-{logical}"),
                &deployed_policy(&m.endpoint, &arn),
            );
        }
    }
    let examples = json_files(&repo("examples/iam"));
    assert!(examples.len() >= 3, "{examples:?}");
    files.extend(examples);
    let out = parliament(&files);
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "parliament findings over {files:?}:\n{}",
        text(&out)
    );

    // The linter does find things: an unknown action, and a resource of the wrong type.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:Querry","Resource":"arn:aws:kms:us-east-1:123456789012:key/k"}]}"#,
    )
    .unwrap();
    let out = parliament(&[bad]);
    assert!(
        !out.status.success() && text(&out).contains("dynamodb:Querry"),
        "parliament must flag an unknown action:\n{}",
        text(&out)
    );
}

/// Registers each task definition file in moto's ECS through boto3, whose botocore
/// validates every parameter against ECS's API model first (unknown fields, types,
/// required members); prints one JSON line per registered file.
const REGISTER: &str = r#"
import json, sys
import boto3, botocore.exceptions
from botocore.config import Config

endpoint, files = sys.argv[1], sys.argv[2:]
ecs = boto3.client(
    "ecs", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id="testing", aws_secret_access_key="testing",
    config=Config(parameter_validation=True, retries={"max_attempts": 1}),
)
failed = 0
for f in files:
    with open(f) as fh:
        td = json.load(fh)
    try:
        got = ecs.register_task_definition(**td)["taskDefinition"]
    except botocore.exceptions.ParamValidationError as e:
        print(f"{f}: botocore parameter validation failed: {e}")
        failed += 1
        continue
    except botocore.exceptions.ClientError as e:
        print(f"{f}: ECS refused it: {e}")
        failed += 1
        continue
    print(json.dumps({"file": f, "family": got["family"], "containers": got["containerDefinitions"],
                      "requiresCompatibilities": got.get("requiresCompatibilities", [])}))
sys.exit(1 if failed else 0)
"#;

fn register(endpoint: &str, files: &[PathBuf]) -> Output {
    let mut c = Command::new("python3");
    c.arg("-c").arg(REGISTER).arg(endpoint).args(files);
    // Nothing of the machine's AWS settings: only the test moto is ever contacted.
    for v in [
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ECS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "https_proxy",
        "http_proxy",
    ] {
        c.env_remove(v);
    }
    c.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    let out = c.output().unwrap_or_else(|e| {
        panic!(
            "cannot run python3 ({e}): install python3 and `pip install boto3` (scripts/deps.sh)"
        )
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named"),
        "boto3 is missing: `pip install boto3` (moto[server] brings it; scripts/deps.sh)\n{err}"
    );
    out
}

#[test]
fn every_example_task_definition_passes_botocore_validation_and_registers_in_ecs() {
    let m = moto();
    let files = json_files(&repo("examples"));
    assert!(files.len() >= 7, "{files:?}");
    let out = register(&m.endpoint, &files);
    assert!(out.status.success(), "{}", text(&out));
    let registered: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(registered.len(), files.len(), "{}", text(&out));

    // The Fargate variant of the files example is one, and ECS kept its tmpfs.
    let fargate = registered
        .iter()
        .find(|r| {
            r["file"]
                .as_str()
                .unwrap()
                .ends_with("files-postgres-fargate.json")
        })
        .unwrap_or_else(|| panic!("no Fargate files example: {files:?}"));
    assert_eq!(
        fargate["requiresCompatibilities"],
        serde_json::json!(["FARGATE"])
    );
    let tmpfs = &fargate["containers"][0]["linuxParameters"]["tmpfs"][0];
    assert_eq!(tmpfs["containerPath"], "/run/secrets", "{fargate}");

    // The validation does refuse things: a misspelt field, and a size of the wrong type.
    let dir = TempDir::new("ecs-validate");
    let mut td: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("examples/files-postgres-fargate.json")).unwrap(),
    )
    .unwrap();
    td["containerDefinitions"][0]["linuxParameters"]["tmpfs"][0]["sizee"] = Value::from(1);
    let misspelt = dir.join("misspelt.json");
    std::fs::write(&misspelt, td.to_string()).unwrap();
    td["containerDefinitions"][0]["linuxParameters"]["tmpfs"][0] =
        serde_json::json!({"containerPath": "/run/secrets", "size": "1"});
    let mistyped = dir.join("mistyped.json");
    std::fs::write(&mistyped, td.to_string()).unwrap();
    for (f, want) in [(misspelt, "sizee"), (mistyped, "size")] {
        let out = register(&m.endpoint, std::slice::from_ref(&f));
        let t = text(&out);
        assert!(
            !out.status.success() && t.contains("parameter validation failed") && t.contains(want),
            "{}: {t}",
            f.display()
        );
    }
}
