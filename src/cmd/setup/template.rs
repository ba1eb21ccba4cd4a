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
    // The fixed parts are JSON text, filled in below: smaller in the binary than the same
    // objects built by `json!` (one insert call per member).
    let mut t = parse(SKELETON);
    t["Description"] = format!(
        "ecs-secrets ({} backend): storage, KMS key and least-privilege policies",
        cfg.backend.as_str()
    )
    .into();
    if let Some(p) = path {
        t["Parameters"]["SecretsPath"]["Default"] = p.into();
    }

    if cfg.backend == Backend::Dynamodb {
        let mut table = parse(TABLE);
        let props = &mut table["Properties"];
        props["TableName"] = cfg.table.as_str().into();
        for list in ["AttributeDefinitions", "KeySchema"] {
            props[list][0]["AttributeName"] = A_PATH.into();
            props[list][1]["AttributeName"] = A_SK.into();
        }
        t["Resources"]["SecretsTable"] = table;
        t["Outputs"]["TableName"] = parse(r#"{"Value": {"Ref": "SecretsTable"}}"#);
    }

    let key_arn = if is_alias(key) {
        let mut k = parse(KEY);
        // As a JSON string (CloudFormation takes Json properties either way), which moto
        // also deploys; it mishandles the object form.
        k["Properties"]["KeyPolicy"]["Fn::Sub"] = parse(KEY_POLICY).to_string().into();
        t["Resources"]["SecretsKey"] = k;
        let mut alias = parse(
            r#"{"Type": "AWS::KMS::Alias",
                "Properties": {"AliasName": null, "TargetKeyId": {"Ref": "SecretsKey"}}}"#,
        );
        alias["Properties"]["AliasName"] = key.into();
        t["Resources"]["SecretsKeyAlias"] = alias;
        t["Outputs"]["KmsKeyAlias"] = json!({ "Value": key });
        parse(r#"{"Fn::GetAtt": ["SecretsKey", "Arn"]}"#)
    } else if key.starts_with("arn:") {
        key.into()
    } else {
        sub(&format!(
            "arn:${{AWS::Partition}}:kms:${{AWS::Region}}:${{AWS::AccountId}}:key/{key}"
        ))
    };
    t["Outputs"]["KmsKeyArn"] = json!({ "Value": key_arn.clone() });

    let scope = Scope {
        path: parse(r#"{"Ref": "SecretsPath"}"#),
        table_arn: parse(r#"{"Fn::GetAtt": ["SecretsTable", "Arn"]}"#),
        key_arn,
        ssm_path_arn: sub(
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SecretsPath}",
        ),
        ssm_children_arn: sub(
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SecretsPath}/*",
        ),
        ssm_service: sub("ssm.${AWS::Region}.amazonaws.com"),
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
            let names: Vec<Value> = principals
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.name.as_str().into())
                .collect();
            if !names.is_empty() {
                props[prop] = Value::Array(names);
            }
        }
        t["Resources"][logical] = json!({"Type": "AWS::IAM::ManagedPolicy", "Properties": props});
        t["Outputs"][format!("{logical}Arn")] = json!({
            "Value": {"Ref": logical},
            "Description": format!("attach to the principals that {access} the path's secrets"),
        });
    }

    if let Some((partition, account)) = account {
        let mut rules = parse(RULES);
        let assertion = &mut rules["PrincipalsAreInTheDeployingAccount"]["Assertions"][0];
        assertion["Assert"]["Fn::And"][0]["Fn::Equals"][1] = account.as_str().into();
        assertion["Assert"]["Fn::And"][1]["Fn::Equals"][1] = partition.as_str().into();
        assertion["AssertDescription"] = format!(
            "The policies attach by name to principals of account {account} ({partition}): deploy this stack in that account, or print a template for the principals of this one"
        )
        .into();
        t["Rules"] = rules;
    }
    t
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the template's fixed parts are valid JSON")
}

fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

/// The template's frame: the path parameter, and the objects the rest goes into.
const SKELETON: &str = r#"{
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": null,
    "Parameters": {"SecretsPath": {
        "Type": "String",
        "Description": "The path whose secrets the policies cover, e.g. /prod/grafana",
        "AllowedPattern": "^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
    }},
    "Resources": {},
    "Outputs": {}
}"#;

/// The dynamodb table; its name and key attributes are filled in.
const TABLE: &str = r#"{
    "Type": "AWS::DynamoDB::Table",
    "DeletionPolicy": "Retain",
    "UpdateReplacePolicy": "Retain",
    "Properties": {
        "TableName": null,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": null, "AttributeType": "S"},
            {"AttributeName": null, "AttributeType": "S"}
        ],
        "KeySchema": [
            {"AttributeName": null, "KeyType": "HASH"},
            {"AttributeName": null, "KeyType": "RANGE"}
        ],
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": true}
    }
}"#;

/// The KMS key; its policy is filled in (as a string: see above).
const KEY: &str = r#"{
    "Type": "AWS::KMS::Key",
    "DeletionPolicy": "Retain",
    "UpdateReplacePolicy": "Retain",
    "Properties": {
        "Description": "ecs-secrets: envelope encryption of secrets",
        "EnableKeyRotation": true,
        "KeyPolicy": {"Fn::Sub": null}
    }
}"#;

const KEY_POLICY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "AccountIamPoliciesDecide",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"},
        "Action": "kms:*",
        "Resource": "*"
    }]
}"#;

/// The rule that refuses a deployment in another account; account, partition and the
/// description are filled in.
const RULES: &str = r#"{
    "PrincipalsAreInTheDeployingAccount": {
        "Assertions": [{
            "Assert": {"Fn::And": [
                {"Fn::Equals": [{"Ref": "AWS::AccountId"}, null]},
                {"Fn::Equals": [{"Ref": "AWS::Partition"}, null]}
            ]},
            "AssertDescription": null
        }]
    }
}"#;

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
