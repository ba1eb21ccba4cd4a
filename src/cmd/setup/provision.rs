//! setup against AWS: the table (dynamodb) and the KMS key with its alias, created when
//! missing and checked when present.
//!
//! The account and partition come from the key's ARN and the region from the SDK
//! configuration, so no STS client is needed.

use super::policy::{create_policy, daemon_policy, fetch_policy, policy_name, Scope};
use super::principal::check_account;
use super::{is_alias, note, Principal, PrincipalKind};
use crate::config::{Backend, StoreConfig};
use crate::error::{Error, Result};
use crate::store::dynamodb::{A_PATH, A_SK};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};
use serde_json::json;
use std::time::Duration;

/// How setup runs: for real, or as a dry run that only looks; and where the policy files go.
pub(super) struct Plan<'a> {
    pub dry_run: bool,
    pub policy_dir: Option<&'a std::path::Path>,
}

/// Create (or find) the resources, then render the two policy lines.
pub(super) async fn provision(
    cfg: &StoreConfig,
    path: &str,
    key: &str,
    readers: &[Principal],
    writers: &[Principal],
    daemons: &[Principal],
    plan: &Plan<'_>,
) -> Result<String> {
    let sdk = crate::aws::load(cfg).await;
    let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
        Error::usage("no AWS region configured: set AWS_REGION (or a profile with a region)")
    })?;
    let attempts = || crate::aws::Attempts { debug: cfg.debug };
    let k = aws_sdk_kms::config::Builder::from(&sdk).interceptor(attempts());
    let kms = aws_sdk_kms::Client::from_conf(k.build());

    let (key_arn, created) = if plan.dry_run {
        match find_key(&kms, key).await? {
            Some(arn) => (arn, false),
            None => {
                // Not created in a dry run: the policies name it by a placeholder in the
                // principals' account.
                let (partition, account) =
                    super::principal::one_account(readers.iter().chain(writers))?
                        .unwrap_or_else(|| ("aws".to_string(), "ACCOUNT_ID".to_string()));
                (
                    format!(
                        "arn:{partition}:kms:{region}:{account}:key/KEY_ID_OF_{}",
                        key.trim_start_matches("alias/")
                            .replace(['/', '-'], "_")
                            .to_uppercase()
                    ),
                    true,
                )
            }
        }
    } else {
        ensure_key(&kms, key).await?
    };
    note(format_args!(
        "KMS key {key_arn} ({key}): {}",
        match (created, plan.dry_run) {
            (true, true) => "would be created, with its alias and automatic rotation (dry run: the policies below name it by a placeholder)",
            (true, false) => "created",
            (false, _) => "exists",
        }
    ));
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
    // Before anything else is created: the principals are in this account.
    check_account(
        readers.iter().chain(writers).chain(daemons),
        partition,
        account,
    )?;
    if cfg.backend == Backend::Dynamodb {
        let d = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(attempts());
        let ddb = aws_sdk_dynamodb::Client::from_conf(d.build());
        if plan.dry_run {
            let exists = find_table(&ddb, &cfg.table).await?;
            note(format_args!(
                "DynamoDB table {}: {}",
                cfg.table,
                if exists {
                    "exists"
                } else {
                    "would be created (PAY_PER_REQUEST)"
                }
            ));
        } else {
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
    }
    if cfg.backend != Backend::Dynamodb {
        note(format_args!(
            "create {} secrets with --kms-key {key} (or ECS_SECRETS_KMS_KEY={key}) so that they are encrypted under this key and the policies below apply",
            cfg.backend.as_str()
        ));
    }
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
        sm_secrets_arn: super::sm::secrets_arn(partition, &region, account, path),
        sm_service: super::sm::service(&region),
    };
    let mut out = String::new();
    for (access, principals, policy) in [
        ("fetch", readers, fetch_policy(cfg.backend, &scope)),
        ("create", writers, create_policy(cfg.backend, &scope)),
        ("daemon", daemons, daemon_policy(cfg.backend, &scope)),
    ] {
        let name = policy_name(access, path);
        for p in principals {
            let (cmd, flag) = match p.kind {
                PrincipalKind::Role => ("put-role-policy", "--role-name"),
                PrincipalKind::User => ("put-user-policy", "--user-name"),
                PrincipalKind::Group => ("put-group-policy", "--group-name"),
            };
            let document = match plan.policy_dir {
                Some(dir) => format!("file://{}/{name}.json", dir.display()),
                None => format!(
                    "<the \"policy\" object of the {access} line, or --policy-dir DIR for files>"
                ),
            };
            note(format_args!(
                "attach the {access} policy to {}: aws iam {cmd} {flag} {} --policy-name {name} --policy-document {document}",
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

/// An existing table is ours only with our key schema and both key attributes strings:
/// with another layout (or a sort key of type N) every write would fail and every read
/// find nothing.
fn check_schema(table: &str, t: Option<&aws_sdk_dynamodb::types::TableDescription>) -> Result<()> {
    let defs = t.map(|t| t.attribute_definitions()).unwrap_or_default();
    let schema: Vec<String> = t
        .map(|t| t.key_schema())
        .unwrap_or_default()
        .iter()
        .map(|k| {
            let ty = defs
                .iter()
                .find(|d| d.attribute_name() == k.attribute_name())
                .map_or("of no declared type", |d| d.attribute_type().as_str());
            format!("{} {} {ty}", k.attribute_name(), k.key_type().as_str())
        })
        .collect();
    let want = [format!("{A_PATH} HASH S"), format!("{A_SK} RANGE S")];
    if schema != want {
        return Err(Error::data(format!(
            "DynamoDB table {table} exists but is not an ecs-secrets table (its keys are {}; expected {}): choose another --table",
            if schema.is_empty() { "missing".to_string() } else { schema.join(", ") },
            want.join(", ")
        )));
    }
    Ok(())
}

/// The table, created when missing; an existing table must have our key schema. Returns
/// whether it was created.
async fn ensure_table(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<bool> {
    let created = match ddb.describe_table().table_name(table).send().await {
        Ok(out) => {
            check_schema(table, out.table.as_ref())?;
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
    // Until ACTIVE (the overall deadline bounds the wait). The schema is checked every time:
    // when our CreateTable lost to another one, the winner's table may be anything.
    loop {
        let out = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("describing DynamoDB table {table}"), e))?;
        check_schema(table, out.table.as_ref())?;
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

/// The ARN of `key` when it exists (a dry run: nothing is created). An existing key that
/// setup could not use fails as it would without the dry run.
async fn find_key(kms: &aws_sdk_kms::Client, key: &str) -> Result<Option<String>> {
    match kms.describe_key().key_id(key).send().await {
        Ok(_) => ensure_key(kms, key).await.map(|(arn, _)| Some(arn)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            if !is_alias(key) {
                return Err(Error::not_found(format!(
                    "KMS key {key} does not exist: pass an existing key, or an alias (alias/NAME) for setup to create"
                )));
            }
            Ok(None)
        }
        Err(e) => Err(crate::aws::error(format!("describing KMS key {key}"), e)),
    }
}

/// Whether the table exists, and is ours (a dry run: nothing is created).
async fn find_table(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<bool> {
    match ddb.describe_table().table_name(table).send().await {
        Ok(out) => check_schema(table, out.table.as_ref()).map(|()| true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(crate::aws::error(
            format!("describing DynamoDB table {table}"),
            e,
        )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::TableDescription;

    fn table(keys: &[(&str, KeyType, ScalarAttributeType)]) -> TableDescription {
        let mut t = TableDescription::builder();
        for (n, k, ty) in keys {
            t = t
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(*n)
                        .key_type(k.clone())
                        .build()
                        .unwrap(),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(*n)
                        .attribute_type(ty.clone())
                        .build()
                        .unwrap(),
                );
        }
        t.build()
    }

    #[test]
    fn only_our_key_schema_with_string_keys_is_ours() {
        use KeyType::{Hash, Range};
        use ScalarAttributeType::{B, N, S};
        let ok = table(&[(A_PATH, Hash, S), (A_SK, Range, S)]);
        assert!(check_schema("t", Some(&ok)).is_ok());
        for bad in [
            table(&[(A_PATH, Hash, S), (A_SK, Range, N)]),
            table(&[(A_PATH, Hash, B), (A_SK, Range, S)]),
            table(&[(A_PATH, Hash, S)]),
            table(&[(A_SK, Hash, S), (A_PATH, Range, S)]),
            table(&[("Name", Hash, S), ("Serial", Range, N)]),
        ] {
            let e = check_schema("t", Some(&bad)).unwrap_err().to_string();
            assert!(e.contains("not an ecs-secrets table"), "{e}");
        }
        let e = check_schema("t", None).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        let e = check_schema("t", Some(&table(&[(A_PATH, Hash, S), (A_SK, Range, N)])))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{A_SK} RANGE N")), "{e}");
    }
}
