//! setup: create what the backend needs, idempotently, and print least-privilege IAM
//! policies for the readers and writers of one path; or, with `--cloudformation`, print a
//! template that does the same without calling AWS.
//!
//! dynamodb: the table (PAY_PER_REQUEST, waited for until ACTIVE) and the KMS key with its
//! alias. ssm: the key and alias only. A second run finds everything in place, changes
//! nothing, and prints the same policies.
//!
//! The account and partition come from the key's ARN and the region from the SDK
//! configuration, so no STS client is needed.

use crate::config::{Backend, StoreConfig, DEFAULT_DYNAMODB_KEY};
use crate::error::{Error, ExitCode, Result};
use crate::inject::env::printable;
use crate::store::dynamodb::{A_PATH, A_SK, CONTEXT_KEY};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// How long setup may take at least, whatever `--timeout` says: a new table takes a while
/// to become ACTIVE.
const SETUP_DEADLINE: Duration = Duration::from_secs(300);

/// An IAM principal given with `--fetch-role` or `--create-principal`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Principal {
    arn: String,
    kind: PrincipalKind,
    /// The name (last path segment), which CloudFormation attaches policies by.
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalKind {
    Role,
    User,
    Group,
}

fn parse_principal(flag: &str, arn: &str) -> Result<Principal> {
    let bad = || {
        Error::usage(format!(
            "{flag} {:?}: expected an IAM role, user or group ARN, e.g. arn:aws:iam::123456789012:role/my-task-role",
            printable(arn)
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" || !parts[3].is_empty() {
        return Err(bad());
    }
    let (kind, rest) = if let Some(r) = parts[5].strip_prefix("role/") {
        (PrincipalKind::Role, r)
    } else if let Some(r) = parts[5].strip_prefix("user/") {
        (PrincipalKind::User, r)
    } else if let Some(r) = parts[5].strip_prefix("group/") {
        (PrincipalKind::Group, r)
    } else {
        return Err(bad());
    };
    let name = rest.rsplit('/').next().unwrap_or_default();
    let ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || !name.chars().all(ok) || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(Principal {
        arn: arn.to_string(),
        kind,
        name: name.to_string(),
    })
}

/// What the policies refer to: plain strings when setup ran against AWS, or CloudFormation
/// expressions in a template.
struct Scope {
    path: Value,
    table_arn: Value,
    key_arn: Value,
    /// `arn:…:parameter/<path>` and `arn:…:parameter/<path>/*`.
    ssm_path_arn: Value,
    ssm_children_arn: Value,
    /// `ssm.<region>.amazonaws.com`.
    ssm_service: Value,
    /// secretsmanager: the path's secrets and the service (`setup_sm`).
    sm_secrets_arn: Value,
    sm_service: Value,
}

fn sm(scope: &Scope) -> super::setup_sm::SmScope {
    super::setup_sm::SmScope {
        secrets_arn: scope.sm_secrets_arn.clone(),
        service: scope.sm_service.clone(),
        key_arn: scope.key_arn.clone(),
    }
}

fn statement(sid: &str, actions: &[&str], resource: Value, condition: Option<Value>) -> Value {
    let mut s = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resource,
    });
    if let Some(c) = condition {
        s["Condition"] = c;
    }
    s
}

fn document(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn leading_keys(scope: &Scope) -> Value {
    json!({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [scope.path.clone()]}})
}

fn path_context(scope: &Scope) -> Value {
    json!({"StringEquals": {format!("kms:EncryptionContext:{CONTEXT_KEY}"): scope.path.clone()}})
}

fn via_ssm(scope: &Scope) -> Value {
    json!({
        "StringEquals": {"kms:ViaService": scope.ssm_service.clone()},
        "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": scope.ssm_children_arn.clone()},
    })
}

/// Readers: exec, env, daemon reads.
fn fetch_policy(backend: Backend, scope: &Scope) -> Value {
    match backend {
        Backend::SecretsManager => super::setup_sm::fetch_policy(&sm(scope)),
        Backend::Dynamodb => document(vec![
            statement(
                "ReadSecretsOfPath",
                &["dynamodb:GetItem", "dynamodb:Query"],
                scope.table_arn.clone(),
                Some(leading_keys(scope)),
            ),
            statement(
                "DecryptDataKeysOfPath",
                &["kms:Decrypt"],
                scope.key_arn.clone(),
                Some(path_context(scope)),
            ),
        ]),
        Backend::Ssm => document(vec![
            statement(
                "ReadParametersOfPath",
                &["ssm:GetParametersByPath"],
                json!([scope.ssm_path_arn.clone(), scope.ssm_children_arn.clone()]),
                None,
            ),
            statement(
                "DecryptThroughSsm",
                &["kms:Decrypt"],
                scope.key_arn.clone(),
                Some(via_ssm(scope)),
            ),
        ]),
    }
}

/// Writers: create, rotate, revoke, fetch, list, rotate-key (DeleteItem: retired data keys).
fn create_policy(backend: Backend, scope: &Scope) -> Value {
    match backend {
        Backend::SecretsManager => super::setup_sm::create_policy(&sm(scope)),
        Backend::Dynamodb => document(vec![
            statement(
                "WriteSecretsOfPath",
                &[
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                scope.table_arn.clone(),
                Some(leading_keys(scope)),
            ),
            statement(
                "DataKeysOfPath",
                &["kms:GenerateDataKey", "kms:Decrypt"],
                scope.key_arn.clone(),
                Some(path_context(scope)),
            ),
        ]),
        Backend::Ssm => document(vec![
            statement(
                "WriteParametersOfPath",
                &[
                    "ssm:PutParameter",
                    "ssm:GetParameter",
                    "ssm:GetParameterHistory",
                    "ssm:LabelParameterVersion",
                    "ssm:GetParametersByPath",
                ],
                json!([scope.ssm_path_arn.clone(), scope.ssm_children_arn.clone()]),
                None,
            ),
            statement(
                "EncryptThroughSsm",
                &["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                scope.key_arn.clone(),
                Some(via_ssm(scope)),
            ),
        ]),
    }
}

/// `ecs-secrets-fetch-prod-grafana` for `/prod/grafana` (IAM names: at most 128 chars).
fn policy_name(access: &str, path: Option<&str>) -> String {
    let mut n = format!("ecs-secrets-{access}");
    if let Some(p) = path {
        n.push_str(&p.replace('/', "-"));
    }
    n.truncate(128);
    n
}

/// The key setup creates or checks: `--kms-key`, else `alias/ecs-secrets` (for ssm too:
/// SSM's own default key cannot be confined to a path).
fn key_spec(cfg: &StoreConfig) -> &str {
    cfg.kms_key.as_deref().unwrap_or(DEFAULT_DYNAMODB_KEY)
}

fn is_alias(key: &str) -> bool {
    key.starts_with("alias/")
}

pub fn run(
    cfg: &StoreConfig,
    fetch_roles: &[String],
    create_principals: &[String],
    cloudformation: bool,
) -> Result<ExitCode> {
    let readers = fetch_roles
        .iter()
        .map(|a| parse_principal("--fetch-role", a))
        .collect::<Result<Vec<_>>>()?;
    let writers = create_principals
        .iter()
        .map(|a| parse_principal("--create-principal", a))
        .collect::<Result<Vec<_>>>()?;
    let key = key_spec(cfg);
    if key.starts_with("alias/aws/") {
        return Err(Error::usage(format!(
            "--kms-key {key}: alias/aws/ names AWS managed keys, which cannot be confined to a path; use a key of your own, e.g. alias/ecs-secrets"
        )));
    }
    if cloudformation {
        let t = template(cfg, &readers, &writers);
        print(&format!("{t}\n"))?;
        return Ok(ExitCode::Success);
    }
    let path = cfg.path();
    let rt = super::runtime()?;
    let what = format!("setting up the {} backend", cfg.backend.as_str());
    let lines = rt.block_on(crate::aws::with_deadline(
        cfg.timeout.max(SETUP_DEADLINE),
        &what,
        provision(cfg, path, key, &readers, &writers),
    ))?;
    print(&lines)?;
    Ok(ExitCode::Success)
}

/// A human diagnostic on stderr (stdout carries only the policies).
fn note(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "ecs-secrets: {args}");
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))
}

/// Create (or find) the resources, then render the two policy lines.
async fn provision(
    cfg: &StoreConfig,
    path: &str,
    key: &str,
    readers: &[Principal],
    writers: &[Principal],
) -> Result<String> {
    let sdk = crate::aws::load(cfg).await;
    let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
        Error::usage("no AWS region configured: set AWS_REGION (or a profile with a region)")
    })?;
    let attempts = || crate::aws::Attempts { debug: cfg.debug };
    let k = aws_sdk_kms::config::Builder::from(&sdk).interceptor(attempts());
    let kms = aws_sdk_kms::Client::from_conf(k.build());

    if cfg.backend == Backend::Dynamodb {
        let d = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(attempts());
        let ddb = aws_sdk_dynamodb::Client::from_conf(d.build());
        let created = ensure_table(&ddb, &cfg.table).await?;
        note(format_args!(
            "DynamoDB table {}: {}",
            cfg.table,
            if created {
                "created, ACTIVE"
            } else {
                "exists, ACTIVE"
            }
        ));
    }
    let (key_arn, created) = ensure_key(&kms, key).await?;
    note(format_args!(
        "KMS key {key_arn} ({key}): {}",
        if created { "created" } else { "exists" }
    ));
    if cfg.backend != Backend::Dynamodb {
        note(format_args!(
            "create {} secrets with --kms-key {key} (or ECS_SECRETS_KMS_KEY={key}) so that they are encrypted under this key and the policies below apply",
            cfg.backend.as_str()
        ));
    }
    // arn:PARTITION:kms:REGION:ACCOUNT:key/ID
    let parts: Vec<&str> = key_arn.splitn(6, ':').collect();
    let (partition, account) = match parts.as_slice() {
        ["arn", partition, "kms", _, account, _] => (*partition, *account),
        _ => {
            return Err(Error::data(format!(
                "KMS returned an unexpected key ARN {key_arn:?}"
            )))
        }
    };
    let scope = Scope {
        path: json!(path),
        table_arn: json!(format!(
            "arn:{partition}:dynamodb:{region}:{account}:table/{}",
            cfg.table
        )),
        key_arn: json!(key_arn),
        ssm_path_arn: json!(format!(
            "arn:{partition}:ssm:{region}:{account}:parameter{path}"
        )),
        ssm_children_arn: json!(format!(
            "arn:{partition}:ssm:{region}:{account}:parameter{path}/*"
        )),
        ssm_service: json!(format!("ssm.{region}.amazonaws.com")),
        sm_secrets_arn: super::setup_sm::secrets_arn(partition, &region, account, path),
        sm_service: super::setup_sm::service(&region),
    };
    let mut out = String::new();
    for (access, principals, policy) in [
        ("fetch", readers, fetch_policy(cfg.backend, &scope)),
        ("create", writers, create_policy(cfg.backend, &scope)),
    ] {
        let name = policy_name(access, Some(path));
        for p in principals {
            let (cmd, flag) = match p.kind {
                PrincipalKind::Role => ("put-role-policy", "--role-name"),
                PrincipalKind::User => ("put-user-policy", "--user-name"),
                PrincipalKind::Group => ("put-group-policy", "--group-name"),
            };
            note(format_args!(
                "attach the {access} policy to {}: aws iam {cmd} {flag} {} --policy-name {name} --policy-document <the \"policy\" object of the {access} line>",
                p.arn, p.name
            ));
        }
        let line = json!({
            "access": access,
            "principals": principals.iter().map(|p| p.arn.clone()).collect::<Vec<_>>(),
            "policy_name": name,
            "policy": policy,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// The table, created when missing; an existing table must have our key schema. Returns
/// whether it was created.
async fn ensure_table(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<bool> {
    let created = match ddb.describe_table().table_name(table).send().await {
        Ok(out) => {
            let schema: Vec<(String, String)> = out
                .table
                .as_ref()
                .map(|t| t.key_schema())
                .unwrap_or_default()
                .iter()
                .map(|k| {
                    (
                        k.attribute_name().to_string(),
                        k.key_type().as_str().to_string(),
                    )
                })
                .collect();
            let want = vec![
                (A_PATH.to_string(), "HASH".to_string()),
                (A_SK.to_string(), "RANGE".to_string()),
            ];
            if schema != want {
                return Err(Error::data(format!(
                    "DynamoDB table {table} exists but is not an ecs-secrets table (its keys are {}; expected {A_PATH} HASH, {A_SK} RANGE): choose another --table",
                    schema
                        .iter()
                        .map(|(n, t)| format!("{n} {t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
                return Ok(false);
            }
            false
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let attr = |n: &str| {
                AttributeDefinition::builder()
                    .attribute_name(n)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("name and type are set")
            };
            let key = |n: &str, t| {
                KeySchemaElement::builder()
                    .attribute_name(n)
                    .key_type(t)
                    .build()
                    .expect("name and type are set")
            };
            let r = ddb
                .create_table()
                .table_name(table)
                .attribute_definitions(attr(A_PATH))
                .attribute_definitions(attr(A_SK))
                .key_schema(key(A_PATH, KeyType::Hash))
                .key_schema(key(A_SK, KeyType::Range))
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await;
            match r {
                Ok(_) => true,
                // Another setup created it meanwhile.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception()) =>
                {
                    false
                }
                Err(e) => {
                    return Err(crate::aws::error(
                        format!("creating DynamoDB table {table}"),
                        e,
                    ))
                }
            }
        }
        Err(e) => {
            return Err(crate::aws::error(
                format!("describing DynamoDB table {table}"),
                e,
            ))
        }
    };
    // Until ACTIVE (the overall deadline bounds the wait).
    loop {
        let out = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("describing DynamoDB table {table}"), e))?;
        match out.table.and_then(|t| t.table_status) {
            Some(TableStatus::Active) => return Ok(created),
            Some(TableStatus::Creating) | Some(TableStatus::Updating) | None => {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            Some(other) => {
                return Err(Error::data(format!(
                    "DynamoDB table {table} is {}: it cannot be used until it is ACTIVE",
                    other.as_str()
                )))
            }
        }
    }
}

/// The KMS key: found, or created with its alias when `key` is an alias. Returns its ARN
/// and whether it was created.
async fn ensure_key(kms: &aws_sdk_kms::Client, key: &str) -> Result<(String, bool)> {
    let check = |m: &aws_sdk_kms::types::KeyMetadata| -> Result<String> {
        use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
        let usable = m.key_state() == Some(&KeyState::Enabled)
            && m.key_usage()
                .is_none_or(|u| u == &KeyUsageType::EncryptDecrypt)
            && m.key_spec().is_none_or(|s| s == &KeySpec::SymmetricDefault);
        if !usable {
            return Err(Error::data(format!(
                "KMS key {key} is not an enabled symmetric encryption key: choose another --kms-key"
            )));
        }
        m.arn()
            .map(String::from)
            .ok_or_else(|| Error::data(format!("KMS did not return the ARN of {key}")))
    };
    match kms.describe_key().key_id(key).send().await {
        Ok(out) => {
            let m = out
                .key_metadata
                .ok_or_else(|| Error::data(format!("KMS described {key} without metadata")))?;
            Ok((check(&m)?, false))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            if !is_alias(key) {
                return Err(Error::not_found(format!(
                    "KMS key {key} does not exist: pass an existing key, or an alias (alias/NAME) for setup to create"
                )));
            }
            let created = kms
                .create_key()
                .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
                .key_spec(aws_sdk_kms::types::KeySpec::SymmetricDefault)
                .description(
                    "ecs-secrets: envelope encryption of secrets (created by ecs-secrets setup)",
                )
                .tags(
                    aws_sdk_kms::types::Tag::builder()
                        .tag_key("created-by")
                        .tag_value("ecs-secrets")
                        .build()
                        .expect("key and value are set"),
                )
                .send()
                .await
                .map_err(|e| crate::aws::error(format!("creating a KMS key for {key}"), e))?;
            let m = created
                .key_metadata
                .ok_or_else(|| Error::data("KMS created a key without metadata"))?;
            let alias = kms
                .create_alias()
                .alias_name(key)
                .target_key_id(m.key_id())
                .send()
                .await;
            match alias {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception()) =>
                {
                    // A concurrent setup won: schedule ours for deletion, use theirs.
                    let _ = kms
                        .schedule_key_deletion()
                        .key_id(m.key_id())
                        .pending_window_in_days(7)
                        .send()
                        .await;
                    return Box::pin(ensure_key(kms, key)).await;
                }
                Err(e) => {
                    return Err(crate::aws::error(
                        format!("creating KMS alias {key} for key {}", m.key_id()),
                        e,
                    ))
                }
            }
            kms.enable_key_rotation()
                .key_id(m.key_id())
                .send()
                .await
                .map_err(|e| {
                    crate::aws::error(
                        format!("enabling automatic rotation of KMS key {}", m.key_id()),
                        e,
                    )
                })?;
            Ok((check(&m)?, true))
        }
        Err(e) => Err(crate::aws::error(format!("describing KMS key {key}"), e)),
    }
}

/// The CloudFormation template (JSON): table (dynamodb), key and alias (unless `--kms-key`
/// names an existing key by id or ARN), and one managed policy each for readers and
/// writers, attached to the given principals. The path is a parameter, defaulting to
/// `--path` when given.
fn template(cfg: &StoreConfig, readers: &[Principal], writers: &[Principal]) -> Value {
    let key = key_spec(cfg);
    let path = cfg.paths.first().map(String::as_str);
    let mut resources = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();

    if cfg.backend == Backend::Dynamodb {
        resources.insert(
            "SecretsTable".into(),
            json!({
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "TableName": cfg.table,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [
                        {"AttributeName": A_PATH, "AttributeType": "S"},
                        {"AttributeName": A_SK, "AttributeType": "S"},
                    ],
                    "KeySchema": [
                        {"AttributeName": A_PATH, "KeyType": "HASH"},
                        {"AttributeName": A_SK, "KeyType": "RANGE"},
                    ],
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": true},
                },
            }),
        );
        outputs.insert(
            "TableName".into(),
            json!({"Value": {"Ref": "SecretsTable"}}),
        );
    }

    let key_arn = if is_alias(key) {
        resources.insert(
            "SecretsKey".into(),
            json!({
                "Type": "AWS::KMS::Key",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "Description": "ecs-secrets: envelope encryption of secrets",
                    "EnableKeyRotation": true,
                    // As a JSON string (CloudFormation takes Json properties either way),
                    // which moto also deploys; it mishandles the object form.
                    "KeyPolicy": {"Fn::Sub": json!({
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Sid": "AccountIamPoliciesDecide",
                            "Effect": "Allow",
                            "Principal": {"AWS": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"},
                            "Action": "kms:*",
                            "Resource": "*",
                        }],
                    }).to_string()},
                },
            }),
        );
        resources.insert(
            "SecretsKeyAlias".into(),
            json!({
                "Type": "AWS::KMS::Alias",
                "Properties": {"AliasName": key, "TargetKeyId": {"Ref": "SecretsKey"}},
            }),
        );
        outputs.insert("KmsKeyAlias".into(), json!({"Value": key}));
        json!({"Fn::GetAtt": ["SecretsKey", "Arn"]})
    } else if key.starts_with("arn:") {
        json!(key)
    } else {
        json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:kms:${{AWS::Region}}:${{AWS::AccountId}}:key/{key}")})
    };
    outputs.insert("KmsKeyArn".into(), json!({"Value": key_arn.clone()}));

    let scope = Scope {
        path: json!({"Ref": "SecretsPath"}),
        table_arn: json!({"Fn::GetAtt": ["SecretsTable", "Arn"]}),
        key_arn,
        ssm_path_arn: json!({"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SecretsPath}"}),
        ssm_children_arn: json!({"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SecretsPath}/*"}),
        ssm_service: json!({"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}),
        sm_secrets_arn: super::setup_sm::template_secrets_arn(),
        sm_service: super::setup_sm::template_service(),
    };
    for (logical, access, principals, policy, description) in [
        (
            "FetchPolicy",
            "fetch",
            readers,
            fetch_policy(cfg.backend, &scope),
            "ecs-secrets: read the secrets of one path",
        ),
        (
            "CreatePolicy",
            "create",
            writers,
            create_policy(cfg.backend, &scope),
            "ecs-secrets: write the secrets of one path",
        ),
    ] {
        let mut props = json!({"Description": description, "PolicyDocument": policy});
        for (kind, prop) in [
            (PrincipalKind::Role, "Roles"),
            (PrincipalKind::User, "Users"),
            (PrincipalKind::Group, "Groups"),
        ] {
            let names: Vec<&str> = principals
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.name.as_str())
                .collect();
            if !names.is_empty() {
                props[prop] = json!(names);
            }
        }
        resources.insert(
            logical.into(),
            json!({"Type": "AWS::IAM::ManagedPolicy", "Properties": props}),
        );
        outputs.insert(
            format!("{logical}Arn"),
            json!({"Value": {"Ref": logical}, "Description": format!("attach to the principals that {access} the path's secrets")}),
        );
    }

    let mut parameter = json!({
        "Type": "String",
        "Description": "The path whose secrets the policies cover, e.g. /prod/grafana",
        "AllowedPattern": "^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
    });
    if let Some(p) = path {
        parameter["Default"] = json!(p);
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("ecs-secrets ({} backend): storage, KMS key and least-privilege policies", cfg.backend.as_str()),
        "Parameters": {"SecretsPath": parameter},
        "Resources": resources,
        "Outputs": outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(backend: Backend, path: Option<&str>, key: Option<&str>) -> StoreConfig {
        StoreConfig {
            backend,
            paths: path.into_iter().map(String::from).collect(),
            recursive: false,
            table: "ecs-secrets".into(),
            kms_key: key.map(String::from),
            timeout: Duration::from_secs(30),
            debug: false,
        }
    }

    fn scope() -> Scope {
        Scope {
            path: json!("/prod/app"),
            table_arn: json!("arn:aws:dynamodb:eu-west-1:111122223333:table/ecs-secrets"),
            key_arn: json!("arn:aws:kms:eu-west-1:111122223333:key/k"),
            ssm_path_arn: json!("arn:aws:ssm:eu-west-1:111122223333:parameter/prod/app"),
            ssm_children_arn: json!("arn:aws:ssm:eu-west-1:111122223333:parameter/prod/app/*"),
            ssm_service: json!("ssm.eu-west-1.amazonaws.com"),
            sm_secrets_arn: json!(
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/app/*"
            ),
            sm_service: json!("secretsmanager.eu-west-1.amazonaws.com"),
        }
    }

    #[test]
    fn principals_are_iam_roles_users_or_groups() {
        let p = parse_principal(
            "--fetch-role",
            "arn:aws:iam::123456789012:role/svc/app-task",
        )
        .unwrap();
        assert_eq!((p.kind, p.name.as_str()), (PrincipalKind::Role, "app-task"));
        let p = parse_principal("--x", "arn:aws-cn:iam::123456789012:user/ops").unwrap();
        assert_eq!(p.kind, PrincipalKind::User);
        for bad in [
            "app-task",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam::abc:role/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(parse_principal("--fetch-role", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dynamodb_readers_get_their_partition_and_their_path_context_only() {
        let p = fetch_policy(Backend::Dynamodb, &scope());
        let s = &p["Statement"];
        assert_eq!(
            s[0]["Action"],
            json!(["dynamodb:GetItem", "dynamodb:Query"])
        );
        assert_eq!(
            s[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
            json!(["/prod/app"])
        );
        assert_eq!(s[1]["Action"], json!(["kms:Decrypt"]));
        assert_eq!(
            s[1]["Condition"]["StringEquals"]["kms:EncryptionContext:ecs-secrets:path"],
            "/prod/app"
        );
        let text = p.to_string();
        assert!(!text.contains("Scan") && !text.contains("\"*\""), "{text}");
        let w = create_policy(Backend::Dynamodb, &scope());
        assert!(w["Statement"][0]["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("dynamodb:PutItem")));
        assert_eq!(
            w["Statement"][1]["Action"],
            json!(["kms:GenerateDataKey", "kms:Decrypt"])
        );
    }

    #[test]
    fn ssm_readers_get_the_path_through_ssm_only() {
        let p = fetch_policy(Backend::Ssm, &scope());
        let s = &p["Statement"];
        assert_eq!(
            s[0]["Resource"],
            json!([
                "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/app",
                "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/app/*"
            ])
        );
        assert_eq!(
            s[1]["Condition"]["StringEquals"]["kms:ViaService"],
            "ssm.eu-west-1.amazonaws.com"
        );
        let w = create_policy(Backend::Ssm, &scope());
        let actions = w["Statement"][0]["Action"].as_array().unwrap();
        for a in [
            "ssm:PutParameter",
            "ssm:GetParameterHistory",
            "ssm:GetParameter",
            "ssm:LabelParameterVersion",
        ] {
            assert!(actions.contains(&json!(a)), "{a}");
        }
    }

    #[test]
    fn policy_names_follow_the_path() {
        assert_eq!(
            policy_name("fetch", Some("/prod/grafana")),
            "ecs-secrets-fetch-prod-grafana"
        );
        assert_eq!(policy_name("create", None), "ecs-secrets-create");
    }

    #[test]
    fn templates_hold_table_key_alias_and_attached_policies() {
        let r = parse_principal("--fetch-role", "arn:aws:iam::1:role/task").unwrap();
        let w = parse_principal("--create-principal", "arn:aws:iam::1:user/ops").unwrap();
        let t = template(&cfg(Backend::Dynamodb, Some("/prod/app"), None), &[r], &[w]);
        let res = &t["Resources"];
        assert_eq!(
            res["SecretsTable"]["Properties"]["BillingMode"],
            "PAY_PER_REQUEST"
        );
        assert_eq!(
            res["SecretsKeyAlias"]["Properties"]["AliasName"],
            "alias/ecs-secrets"
        );
        assert_eq!(res["FetchPolicy"]["Properties"]["Roles"], json!(["task"]));
        assert_eq!(res["CreatePolicy"]["Properties"]["Users"], json!(["ops"]));
        assert_eq!(t["Parameters"]["SecretsPath"]["Default"], "/prod/app");

        // ssm: no table; an existing key by id: no key resources.
        let t = template(&cfg(Backend::Ssm, None, Some("1234abcd")), &[], &[]);
        let res = t["Resources"].as_object().unwrap();
        assert!(!res.contains_key("SecretsTable") && !res.contains_key("SecretsKey"));
        assert!(t["Parameters"]["SecretsPath"].get("Default").is_none());
        assert!(t.to_string().contains(":key/1234abcd"));
    }
}
