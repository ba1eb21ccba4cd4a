//! `setup --cloudformation`: the template, printed without calling AWS.

use super::policy::{create_policy, daemon_policy, fetch_policy, Scope};
use super::{is_alias, key_spec, Principal, PrincipalKind};
use crate::config::{Backend, StoreConfig};
use crate::store::dynamodb::{A_PATH, A_SK};
use serde_json::{json, Value};

/// The CloudFormation template (JSON): table (dynamodb), key and alias (unless `--kms-key`
/// names an existing key by id or ARN), and one managed policy each for readers and
/// writers, attached to the given principals. The path is a parameter, defaulting to
/// `--path` when given.
///
/// With principals, `account` is the (partition, account) they are all in: managed policies
/// attach by name in the account that deploys the stack, so a rule makes CloudFormation
/// refuse to deploy the template anywhere else.
pub(super) fn template(
    cfg: &StoreConfig,
    readers: &[Principal],
    writers: &[Principal],
    daemons: &[Principal],
    account: Option<&(String, String)>,
) -> Value {
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
        sm_secrets_arn: super::sm::template_secrets_arn(),
        sm_service: super::sm::template_service(),
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
        (
            "DaemonPolicy",
            "serve",
            daemons,
            daemon_policy(cfg.backend, &scope),
            "ecs-secrets: the daemon sidecar's reads of one path",
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
    let mut t = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("ecs-secrets ({} backend): storage, KMS key and least-privilege policies", cfg.backend.as_str()),
        "Parameters": {"SecretsPath": parameter},
        "Resources": resources,
        "Outputs": outputs,
    });
    if let Some((partition, account)) = account {
        t["Rules"] = json!({
            "PrincipalsAreInTheDeployingAccount": {
                "Assertions": [{
                    "Assert": {"Fn::And": [
                        {"Fn::Equals": [{"Ref": "AWS::AccountId"}, account]},
                        {"Fn::Equals": [{"Ref": "AWS::Partition"}, partition]},
                    ]},
                    "AssertDescription": format!(
                        "The policies attach by name to principals of account {account} ({partition}): deploy this stack in that account, or print a template for the principals of this one"
                    ),
                }],
            },
        });
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::setup::principal::parse_principal;
    use std::time::Duration;

    fn cfg(backend: Backend, path: Option<&str>, key: Option<&str>) -> StoreConfig {
        StoreConfig {
            backend,
            paths: path.into_iter().map(String::from).collect(),
            recursive: false,
            table: "ecs-secrets".into(),
            kms_key: key.map(String::from),
            timeout: Duration::from_secs(30),
            debug: false,
            allow_empty: false,
        }
    }

    #[test]
    fn templates_hold_table_key_alias_and_attached_policies() {
        let r = parse_principal("--fetch-role", "arn:aws:iam::111122223333:role/task").unwrap();
        let w =
            parse_principal("--create-principal", "arn:aws:iam::111122223333:user/ops").unwrap();
        let account = ("aws".to_string(), "111122223333".to_string());
        let t = template(
            &cfg(Backend::Dynamodb, Some("/prod/app"), None),
            &[r],
            &[w],
            &[],
            Some(&account),
        );
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
        assert_eq!(res["DaemonPolicy"]["Type"], "AWS::IAM::ManagedPolicy");
        assert_eq!(t["Parameters"]["SecretsPath"]["Default"], "/prod/app");
        let rule = &t["Rules"]["PrincipalsAreInTheDeployingAccount"]["Assertions"][0]["Assert"];
        assert_eq!(
            rule["Fn::And"],
            json!([
                {"Fn::Equals": [{"Ref": "AWS::AccountId"}, "111122223333"]},
                {"Fn::Equals": [{"Ref": "AWS::Partition"}, "aws"]},
            ])
        );

        // ssm: no table; an existing key by id: no key resources.
        let t = template(
            &cfg(Backend::Ssm, None, Some("1234abcd")),
            &[],
            &[],
            &[],
            None,
        );
        let res = t["Resources"].as_object().unwrap();
        assert!(!res.contains_key("SecretsTable") && !res.contains_key("SecretsKey"));
        assert!(t["Parameters"]["SecretsPath"].get("Default").is_none());
        assert!(t.get("Rules").is_none(), "no principals, nothing to attach");
        assert!(t.to_string().contains(":key/1234abcd"));
    }
}
