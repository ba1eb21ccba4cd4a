//! `setup` through the real binary against moto: idempotent provisioning for both
//! backends, least-privilege policies, and a CloudFormation template deployed into moto's
//! CloudFormation and then used.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

const ACCOUNT: &str = "123456789012"; // moto's default account

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A name usable as a table or alias suffix, unique in this test process.
fn unique(tag: &str) -> String {
    unique_path(tag).trim_start_matches('/').replace('/', "-")
}

fn show(endpoint: &str, args: &[&str], var: &str) -> Command {
    let mut c = ecs(endpoint);
    c.arg("exec").args(args).args(["--", "sh", "-c"]);
    c.arg(format!("printf '%s' \"${var}\""));
    c
}

#[test]
fn dynamodb_setup_twice_changes_nothing_the_second_time_and_works() {
    let m = moto();
    let path = unique_path("setup-ddb");
    let table = unique("tbl");
    let alias = format!("alias/{}", unique("key"));
    let role = format!("arn:aws:iam::{ACCOUNT}:role/app-task");
    let writer = format!("arn:aws:iam::{ACCOUNT}:user/ops");
    let args = [
        "setup",
        "--backend",
        "dynamodb",
        "--path",
        &path,
        "--table",
        &table,
        "--kms-key",
        &alias,
        "--fetch-role",
        &role,
        "--create-principal",
        &writer,
    ];
    let proxy = Proxy::start(&m.endpoint);
    let first = run(ecs(&proxy.endpoint()).args(args));
    let out1 = assert_ok(&first);
    for op in [
        "CreateTable",
        "CreateKey",
        "CreateAlias",
        "EnableKeyRotation",
    ] {
        assert_eq!(proxy.count(op), 1, "{op}: {:?}", proxy.ops());
    }
    let err1 = String::from_utf8_lossy(&first.stderr);
    assert!(err1.contains("created"), "{err1}");

    proxy.reset();
    let second = run(ecs(&proxy.endpoint()).args(args));
    let out2 = assert_ok(&second);
    assert_eq!(
        proxy.ops(),
        [
            "TrentService.DescribeKey",
            "DynamoDB_20120810.DescribeTable"
        ],
        "only lookups the second time"
    );
    assert_eq!(out1, out2, "the same policies");
    assert!(String::from_utf8_lossy(&second.stderr).contains("exists"));

    let policies = lines(&out1);
    assert_eq!(policies.len(), 3, "{out1}");
    assert_eq!(policies[2]["access"], "daemon");
    let (fetch, create) = (&policies[0], &policies[1]);
    assert_eq!(fetch["access"], "fetch");
    assert_eq!(fetch["principals"], serde_json::json!([role]));
    assert_eq!(create["principals"], serde_json::json!([writer]));
    let read = &fetch["policy"]["Statement"];
    assert_eq!(
        read[0]["Resource"],
        format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}")
    );
    assert_eq!(
        read[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
        serde_json::json!([path])
    );
    let key_arn = read[1]["Resource"].as_str().unwrap();
    assert!(
        key_arn.starts_with(&format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/")),
        "{key_arn}"
    );
    assert_eq!(
        read[1]["Condition"]["StringEquals"]["kms:EncryptionContext:ecs-secrets:path"],
        path
    );

    // The table is what the backend needs, and the key works for it.
    let desc = block_on(
        dynamodb(&m.endpoint)
            .describe_table()
            .table_name(&table)
            .send(),
    )
    .unwrap();
    let t = desc.table().unwrap();
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
    );
    let common = [
        "--backend",
        "dynamodb",
        "--path",
        &path,
        "--table",
        &table,
        "--kms-key",
        &alias,
    ];
    assert_ok(&run(ecs(&m.endpoint).arg("create").args(common).args([
        "--name",
        "DB",
        "--payload",
        "from-setup",
    ])));
    let s = assert_ok(&run(&mut show(&m.endpoint, &common, "DB")));
    assert_eq!(s, "from-setup");
}

#[test]
fn setup_of_both_backends_with_the_default_key_and_table() {
    // A private moto: the default alias and table names are global to a moto.
    let m = fresh_moto();
    let path = unique_path("setup-default");
    let proxy = Proxy::start(&m.endpoint);
    let out = run(ecs(&proxy.endpoint()).args(["setup", "--path", &path]));
    let ssm = lines(&assert_ok(&out));
    assert_eq!(proxy.count("CreateKey"), 1, "{:?}", proxy.ops());
    assert_eq!(
        proxy.count("CreateTable"),
        0,
        "ssm needs no table: {:?}",
        proxy.ops()
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--kms-key alias/ecs-secrets"), "{e}");
    let read = &ssm[0]["policy"]["Statement"];
    assert_eq!(
        read[0]["Action"],
        serde_json::json!(["ssm:GetParametersByPath"])
    );
    assert_eq!(
        read[0]["Resource"],
        serde_json::json!([
            format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{path}"),
            format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{path}/*")
        ])
    );
    assert_eq!(
        read[1]["Condition"]["StringEquals"]["kms:ViaService"],
        "ssm.us-east-1.amazonaws.com"
    );
    proxy.reset();
    assert_ok(&run(ecs(&proxy.endpoint()).args(["setup", "--path", &path])));
    assert_eq!(proxy.ops().len(), 1, "one DescribeKey: {:?}", proxy.ops());
    // ssm secrets under that key.
    assert_ok(&run(ecs(&m.endpoint).args([
        "create",
        "--path",
        &path,
        "--kms-key",
        "alias/ecs-secrets",
        "--name",
        "S",
        "--payload",
        "ssm-value",
    ])));
    assert_eq!(
        assert_ok(&run(&mut show(&m.endpoint, &["--path", &path], "S"))),
        "ssm-value"
    );

    // dynamodb: the default table is created, the key reused.
    proxy.reset();
    let out = run(ecs(&proxy.endpoint()).args(["setup", "--backend", "dynamodb", "--path", &path]));
    assert_ok(&out);
    assert_eq!(proxy.count("CreateTable"), 1, "{:?}", proxy.ops());
    assert_eq!(proxy.count("CreateKey"), 0, "{:?}", proxy.ops());
    proxy.reset();
    let out = run(ecs(&proxy.endpoint()).args(["setup", "--backend", "dynamodb", "--path", &path]));
    assert_ok(&out);
    assert!(
        proxy.ops().iter().all(|o| o.contains("Describe")),
        "{:?}",
        proxy.ops()
    );
    let ddb = ["--backend", "dynamodb", "--path", &path];
    assert_ok(&run(ecs(&m.endpoint).arg("create").args(ddb).args([
        "--name",
        "D",
        "--payload",
        "ddb-value",
    ])));
    assert_eq!(
        assert_ok(&run(&mut show(&m.endpoint, &ddb, "D"))),
        "ddb-value"
    );
}

#[test]
fn setup_refuses_foreign_tables_keys_and_principals() {
    let m = moto();
    let path = unique_path("setup-refuse");
    // A table of another layout (the original tool's).
    let table = unique("foreign");
    let attr = |n: &str, t| {
        aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    block_on(
        dynamodb(&m.endpoint)
            .create_table()
            .table_name(&table)
            .attribute_definitions(attr(
                "Name",
                aws_sdk_dynamodb::types::ScalarAttributeType::S,
            ))
            .attribute_definitions(attr(
                "Serial",
                aws_sdk_dynamodb::types::ScalarAttributeType::N,
            ))
            .key_schema(key("Name", aws_sdk_dynamodb::types::KeyType::Hash))
            .key_schema(key("Serial", aws_sdk_dynamodb::types::KeyType::Range))
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .send(),
    )
    .unwrap();
    let alias = format!("alias/{}", unique("refuse"));
    let out = run(ecs(&m.endpoint).args([
        "setup",
        "--backend",
        "dynamodb",
        "--path",
        &path,
        "--table",
        &table,
        "--kms-key",
        &alias,
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let e = assert_fail(&out);
    assert!(
        e.contains(&table) && e.contains("not an ecs-secrets table"),
        "{e}"
    );
    assert!(out.stdout.is_empty());

    // A key id that does not exist is not created.
    let out = run(ecs(&m.endpoint).args([
        "setup",
        "--path",
        &path,
        "--kms-key",
        "11111111-2222-3333-4444-555555555555",
    ]));
    assert!(
        assert_fail(&out).contains("does not exist"),
        "{}",
        describe(&out)
    );

    for (flag, arn) in [
        ("--fetch-role", "my-role"),
        (
            "--create-principal",
            "arn:aws:sts::123456789012:assumed-role/r/s",
        ),
    ] {
        let out = run(ecs(&m.endpoint).args(["setup", "--path", &path, flag, arn]));
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(assert_fail(&out).contains(flag));
    }
}

#[test]
fn the_cloudformation_template_deploys_and_works() {
    let m = moto();
    let path = unique_path("setup-cfn");
    let table = unique("cfn");
    let alias = format!("alias/{}", unique("cfnkey"));
    let role = unique("cfn-role");
    let user = unique("cfn-user");

    // Printing the template calls no AWS service.
    let proxy = Proxy::start(&m.endpoint);
    let out = run(ecs(&proxy.endpoint()).args([
        "setup",
        "--backend",
        "dynamodb",
        "--cloudformation",
        "--path",
        &path,
        "--table",
        &table,
        "--kms-key",
        &alias,
        "--fetch-role",
        &format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
        "--create-principal",
        &format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
    ]));
    let template = assert_ok(&out);
    assert_eq!(proxy.total(), 0, "{:?}", proxy.ops());
    assert_eq!(template.lines().count(), 1, "one compact JSON object");
    let t: Value = serde_json::from_str(&template).unwrap();
    assert_eq!(
        t["Resources"]["SecretsTable"]["Properties"]["TableName"],
        table
    );

    // The principals exist before the stack attaches policies to them.
    let r = aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", &role),
            (
                "AssumeRolePolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            ),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "CreateUser"),
            ("Version", "2010-05-08"),
            ("UserName", &user),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let stack = unique("stack");
    deploy_stack(&m.endpoint, &stack, &template);
    let r = aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "ListAttachedRolePolicies"),
            ("Version", "2010-05-08"),
            ("RoleName", &role),
        ],
    );
    assert!(
        r.text().contains("<PolicyArn>"),
        "fetch policy attached: {}",
        r.text()
    );
    let r = aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "ListAttachedUserPolicies"),
            ("Version", "2010-05-08"),
            ("UserName", &user),
        ],
    );
    assert!(
        r.text().contains("<PolicyArn>"),
        "create policy attached: {}",
        r.text()
    );

    // The stack's table and key serve the backend.
    let common = [
        "--backend",
        "dynamodb",
        "--path",
        &path,
        "--table",
        &table,
        "--kms-key",
        &alias,
    ];
    assert_ok(&run(ecs(&m.endpoint).arg("create").args(common).args([
        "--name",
        "DB",
        "--payload",
        "from-cfn",
    ])));
    assert_eq!(
        assert_ok(&run(&mut show(&m.endpoint, &common, "DB"))),
        "from-cfn"
    );
    // And setup on top of it finds everything in place.
    let proxy = Proxy::start(&m.endpoint);
    assert_ok(&run(ecs(&proxy.endpoint()).arg("setup").args(common)));
    assert!(
        proxy.ops().iter().all(|o| o.contains("Describe")),
        "{:?}",
        proxy.ops()
    );
}

#[test]
fn the_ssm_cloudformation_template_deploys_and_works() {
    let m = moto();
    let path = unique_path("setup-cfn-ssm");
    let alias = format!("alias/{}", unique("cfnssm"));
    let out = run(ecs(&m.endpoint).args([
        "setup",
        "--cloudformation",
        "--path",
        &path,
        "--kms-key",
        &alias,
    ]));
    let template = assert_ok(&out);
    let t: Value = serde_json::from_str(&template).unwrap();
    assert!(
        t["Resources"].get("SecretsTable").is_none(),
        "ssm needs no table"
    );
    let stack = unique("ssm-stack");
    let r = deploy_stack(&m.endpoint, &stack, &template);
    // The deployed fetch policy resolved the path into SSM parameter ARNs.
    let text = r.text();
    let arn = text
        .split("<OutputKey>FetchPolicyArn</OutputKey>")
        .nth(1)
        .and_then(|rest| rest.split("<OutputValue>").nth(1))
        .and_then(|rest| rest.split("</OutputValue>").next())
        .unwrap_or_else(|| panic!("no FetchPolicyArn output: {text}"))
        .to_string();
    let r = aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "GetPolicyVersion"),
            ("Version", "2010-05-08"),
            ("PolicyArn", &arn),
            ("VersionId", "v1"),
        ],
    );
    let doc = percent_decode(&r.text());
    for want in [
        format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{path}/*"),
        "ssm.us-east-1.amazonaws.com".to_string(),
        "ssm:GetParametersByPath".to_string(),
    ] {
        assert!(doc.contains(&want), "{want} in {doc}");
    }
    assert_ok(&run(ecs(&m.endpoint).args([
        "create",
        "--path",
        &path,
        "--kms-key",
        &alias,
        "--name",
        "S",
        "--payload",
        "via-cfn",
    ])));
    assert_eq!(
        assert_ok(&run(&mut show(&m.endpoint, &["--path", &path], "S"))),
        "via-cfn"
    );
}

/// setup's exit and output for `args` (no AWS call needed for templates).
fn setup(endpoint: &str, args: &[&str]) -> std::process::Output {
    run(ecs(endpoint).arg("setup").args(args))
}

#[test]
fn principals_of_another_account_or_partition_are_refused() {
    let m = moto();
    let path = unique_path("setup-account");
    let alias = format!("alias/{}", unique("acct"));
    // The issue's command: a stack would attach to same-named principals of whatever
    // account deploys it.
    let issue = [
        "--cloudformation",
        "--path",
        &path,
        "--fetch-role",
        "arn:aws:iam::999999999999:role/app",
        "--create-principal",
        "arn:aws-us-gov:iam::111111111111:user/ops",
    ];
    let out = setup(&m.endpoint, &issue);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let e = assert_fail(&out);
    assert!(
        e.contains("999999999999") && e.contains("111111111111"),
        "{e}"
    );
    assert!(out.stdout.is_empty(), "nothing partial: {}", describe(&out));
    // Same account, different partitions: still two places.
    let out = setup(
        &m.endpoint,
        &[
            "--cloudformation",
            "--fetch-role",
            "arn:aws:iam::111111111111:role/app",
            "--create-principal",
            "arn:aws-cn:iam::111111111111:user/ops",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    // One account: the template says which, and CloudFormation checks it.
    let out = setup(
        &m.endpoint,
        &[
            "--cloudformation",
            "--fetch-role",
            "arn:aws:iam::999999999999:role/app",
            "--create-principal",
            "arn:aws:iam::999999999999:user/ops",
        ],
    );
    let t: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    let assertion = &t["Rules"]["PrincipalsAreInTheDeployingAccount"]["Assertions"][0];
    assert_eq!(
        assertion["Assert"]["Fn::And"],
        serde_json::json!([
            {"Fn::Equals": [{"Ref": "AWS::AccountId"}, "999999999999"]},
            {"Fn::Equals": [{"Ref": "AWS::Partition"}, "aws"]},
        ])
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("account 999999999999 (aws)"), "{e}");

    // Against AWS: the account is the key's (moto's), refused before the table is created.
    let table = unique("acct-tbl");
    let proxy = Proxy::start(&m.endpoint);
    for principal in [
        "arn:aws:iam::999999999999:role/app".to_string(),
        format!("arn:aws-us-gov:iam::{ACCOUNT}:role/app"),
    ] {
        let out = run(ecs(&proxy.endpoint()).args([
            "setup",
            "--backend",
            "dynamodb",
            "--path",
            &path,
            "--table",
            &table,
            "--kms-key",
            &alias,
            "--fetch-role",
            &principal,
        ]));
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let e = assert_fail(&out);
        assert!(e.contains(&principal) && e.contains(ACCOUNT), "{e}");
        assert!(out.stdout.is_empty(), "{}", describe(&out));
    }
    assert_eq!(proxy.count("CreateTable"), 0, "{:?}", proxy.ops());
}

#[test]
fn malformed_principal_arns_are_refused() {
    let m = moto();
    for bad in [
        // The issue's three.
        "arn:aws:iam:::role/app",
        "arn:evil:iam::123456789012:role/app",
        "arn::iam::123456789012:role/app",
        "arn:aws:iam::1:role/app",
        "arn:aws:iam:us-east-1:123456789012:role/app",
        "arn:aws:iam::123456789012:role//app",
        "arn:aws:iam::123456789012:policy/app",
        "arn:aws:iam::123456789012:role/app name",
    ] {
        for flag in ["--fetch-role", "--create-principal"] {
            let out = setup(&m.endpoint, &["--cloudformation", flag, bad]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{flag} {bad}: {}",
                describe(&out)
            );
            let e = assert_fail(&out);
            assert!(e.contains(flag), "{e}");
            assert!(out.stdout.is_empty(), "{}", describe(&out));
        }
    }
    // A role name longer than IAM allows.
    let long = format!("arn:aws:iam::{ACCOUNT}:role/{}", "r".repeat(65));
    let out = setup(&m.endpoint, &["--cloudformation", "--fetch-role", &long]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn policy_names_of_different_paths_differ_and_attach_side_by_side() {
    let m = moto();
    let alias = format!("alias/{}", unique("names"));
    let prefix = unique("names");
    let long = format!("/{prefix}/{}", "x".repeat(150));
    let role = unique("names-role");
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/{role}");
    let r = aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", &role),
            (
                "AssumeRolePolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            ),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Paths that read alike once / becomes -, and long paths that agree in their first 128
    // characters.
    let paths = [
        format!("/{prefix}/a-b"),
        format!("/{prefix}-a/b"),
        format!("{long}/one"),
        format!("{long}/two"),
    ];
    let mut names = Vec::new();
    for path in &paths {
        let out = setup(
            &m.endpoint,
            &["--path", path, "--kms-key", &alias, "--fetch-role", &arn],
        );
        let fetch = lines(&assert_ok(&out)).remove(0);
        let name = fetch["policy_name"].as_str().unwrap().to_string();
        assert!(name.len() <= 128, "{name}");
        // Following the printed put-role-policy line.
        let r = aws_query(
            &m.endpoint,
            "iam",
            &[
                ("Action", "PutRolePolicy"),
                ("Version", "2010-05-08"),
                ("RoleName", &role),
                ("PolicyName", &name),
                ("PolicyDocument", &fetch["policy"].to_string()),
            ],
        );
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        names.push(name);
    }
    let r = aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "ListRolePolicies"),
            ("Version", "2010-05-08"),
            ("RoleName", &role),
        ],
    );
    let listed = r.text().matches("<member>").count();
    assert_eq!(
        listed,
        paths.len(),
        "none overwrote another: {names:?}\n{}",
        r.text()
    );
}

/// Creates `table` in moto with our attribute names and key roles but the given types.
fn create_typed_table(
    endpoint: &str,
    table: &str,
    pk: &aws_sdk_dynamodb::types::ScalarAttributeType,
    sk: &aws_sdk_dynamodb::types::ScalarAttributeType,
) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType};
    let attr = |n: &str, t: &aws_sdk_dynamodb::types::ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t.clone())
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
        dynamodb(endpoint)
            .create_table()
            .table_name(table)
            .attribute_definitions(attr("path", pk))
            .attribute_definitions(attr("sk", sk))
            .key_schema(key("path", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send(),
    )
    .unwrap();
}

#[test]
fn a_table_whose_keys_are_not_strings_is_refused() {
    use aws_sdk_dynamodb::types::ScalarAttributeType;
    let m = moto();
    let path = unique_path("setup-types");
    let alias = format!("alias/{}", unique("types"));
    for (pk, sk) in [
        (ScalarAttributeType::S, ScalarAttributeType::N),
        (ScalarAttributeType::B, ScalarAttributeType::S),
    ] {
        // Our attribute names and key roles, but not our types.
        let table = unique("types");
        create_typed_table(&m.endpoint, &table, &pk, &sk);
        let out = setup(
            &m.endpoint,
            &[
                "--backend",
                "dynamodb",
                "--path",
                &path,
                "--table",
                &table,
                "--kms-key",
                &alias,
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let e = assert_fail(&out);
        assert!(
            e.contains(&table) && e.contains("not an ecs-secrets table"),
            "{e}"
        );
        assert!(
            e.contains(&format!("path HASH {}", pk.as_str()))
                && e.contains(&format!("sk RANGE {}", sk.as_str())),
            "{e}"
        );
        assert!(out.stdout.is_empty(), "{}", describe(&out));
    }
}

/// Our CreateTable loses to another one (held at the proxy while a table of the wrong types
/// is created under the same name): the winner's table is checked like any existing one.
#[test]
fn a_table_created_meanwhile_by_someone_else_is_checked_too() {
    use aws_sdk_dynamodb::types::ScalarAttributeType;
    let m = moto();
    let path = unique_path("setup-race");
    let alias = format!("alias/{}", unique("race"));
    let table = unique("race");
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        // Under an attempt's 10 s, and ample to create a table in moto meanwhile.
        latency_ms: 4_000,
        only_op: Some("CreateTable".into()),
        ..Default::default()
    });
    let mut c = ecs(&proxy.endpoint());
    c.args([
        "setup",
        "--backend",
        "dynamodb",
        "--path",
        &path,
        "--table",
        &table,
        "--kms-key",
        &alias,
        // Attempts of 10 s (a quarter, at most 10 s): longer than the hold.
        "--timeout",
        "120",
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while proxy.count("CreateTable") == 0 {
        assert!(
            t0.elapsed().as_secs() < 60,
            "no CreateTable: {:?}",
            proxy.ops()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    create_typed_table(
        &m.endpoint,
        &table,
        &ScalarAttributeType::S,
        &ScalarAttributeType::N,
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let e = assert_fail(&out);
    assert!(
        e.contains("not an ecs-secrets table") && e.contains("sk RANGE N"),
        "{e}"
    );
    assert!(out.stdout.is_empty(), "{}", describe(&out));
}

/// Issue 25 item 9: `setup --path /` said "it must start with /"; it says what is wrong.
#[test]
fn the_root_path_is_refused_saying_why() {
    let m = moto();
    for p in ["/", "//"] {
        let out = run(ecs(&m.endpoint).args(["setup", "--path", p]));
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("the root, not a path") && !err.contains("must start with /"),
            "{p}: {err}"
        );
    }
}
