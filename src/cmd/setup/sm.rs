//! setup for the secretsmanager backend: the readers' and writers' policies. Nothing is
//! created in Secrets Manager itself (secrets come into being with `create`); the KMS key
//! and alias are setup's common part.
//!
//! Readers: BatchGetSecretValue and ListSecrets take no resource ARN (IAM evaluates
//! GetSecretValue per secret inside a batch), so they are on `*`; GetSecretValue is on the
//! path's secrets only, and denied when a version id is asked for, which is what makes
//! `revoke` hold for these readers (a revoked version keeps its id until Secrets Manager
//! ages it out). DescribeSecret and ListSecretVersionIds (metadata, never values) let the
//! daemon check access at start-up and list. kms:Decrypt only through Secrets Manager, only
//! for the path's secrets.

use serde_json::{json, Value};

/// What the Secrets Manager policies refer to, as strings (against AWS) or CloudFormation
/// expressions (templates).
pub struct SmScope {
    /// `arn:…:secretsmanager:<region>:<account>:secret:prod/grafana/*`
    pub secrets_arn: Value,
    /// `secretsmanager.<region>.amazonaws.com`
    pub service: Value,
    pub key_arn: Value,
}

/// `prod/grafana` for `/prod/grafana`: Secrets Manager names have no leading slash.
pub fn name_prefix(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

pub fn secrets_arn(partition: &str, region: &str, account: &str, path: &str) -> Value {
    json!(format!(
        "arn:{partition}:secretsmanager:{region}:{account}:secret:{}/*",
        name_prefix(path)
    ))
}

pub fn service(region: &str) -> Value {
    json!(format!("secretsmanager.{region}.amazonaws.com"))
}

/// In a template the path is the `SecretsPath` parameter, which starts with `/` and has no
/// `//` (its pattern), so splitting `/` + path on `//` drops the leading slash.
pub fn template_secrets_arn() -> Value {
    json!({"Fn::Sub": [
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Prefix}/*",
        {"Prefix": {"Fn::Select": [1, {"Fn::Split": ["//", {"Fn::Sub": "/${SecretsPath}"}]}]}}
    ]})
}

pub fn template_service() -> Value {
    json!({"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"})
}

fn allow(sid: &str, actions: &[&str], resource: Value, condition: Option<Value>) -> Value {
    let mut s = json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource});
    if let Some(c) = condition {
        s["Condition"] = c;
    }
    s
}

fn via_sm(scope: &SmScope) -> Value {
    json!({
        "StringEquals": {"kms:ViaService": scope.service.clone()},
        "StringLike": {"kms:EncryptionContext:SecretARN": scope.secrets_arn.clone()},
    })
}

fn document(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Readers: exec, env, daemon reads.
pub fn fetch_policy(scope: &SmScope) -> Value {
    document(vec![
        allow(
            "BatchReadsTakeNoResource",
            &[
                "secretsmanager:BatchGetSecretValue",
                "secretsmanager:ListSecrets",
            ],
            json!("*"),
            None,
        ),
        allow(
            "ReadSecretsOfPath",
            &[
                "secretsmanager:GetSecretValue",
                "secretsmanager:DescribeSecret",
                "secretsmanager:ListSecretVersionIds",
            ],
            scope.secrets_arn.clone(),
            None,
        ),
        json!({
            "Sid": "NoReadsByVersionId",
            "Effect": "Deny",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": scope.secrets_arn.clone(),
            "Condition": {"Null": {"secretsmanager:VersionId": "false"}},
        }),
        allow(
            "DecryptThroughSecretsManager",
            &["kms:Decrypt"],
            scope.key_arn.clone(),
            Some(via_sm(scope)),
        ),
    ])
}

/// The daemon sidecar's reads: the readers' policy without its denial of reads by version id
/// (`GET /latest/secrets/{name}/{serial}` reads one; the daemon checks the version's labels
/// and revocation mark first and answers 410 for a revoked one).
pub fn daemon_policy(scope: &SmScope) -> Value {
    let mut p = fetch_policy(scope);
    if let Some(st) = p["Statement"].as_array_mut() {
        st.retain(|s| s["Effect"] != "Deny");
    }
    p
}

/// Writers: create, rotate, revoke, fetch, list, and the daemon's writes.
pub fn create_policy(scope: &SmScope) -> Value {
    document(vec![
        allow(
            "ListTakesNoResource",
            &["secretsmanager:ListSecrets"],
            json!("*"),
            None,
        ),
        allow(
            "WriteSecretsOfPath",
            &[
                "secretsmanager:CreateSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:GetSecretValue",
                "secretsmanager:DescribeSecret",
                "secretsmanager:ListSecretVersionIds",
                "secretsmanager:UpdateSecretVersionStage",
                // Revocation marks (a tag per revoked version, see store::secretsmanager).
                "secretsmanager:TagResource",
                "secretsmanager:UntagResource",
            ],
            scope.secrets_arn.clone(),
            None,
        ),
        allow(
            "EncryptThroughSecretsManager",
            &["kms:GenerateDataKey", "kms:Decrypt"],
            scope.key_arn.clone(),
            Some(via_sm(scope)),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_the_path_only_and_never_a_version_by_id() {
        let s = SmScope {
            secrets_arn: secrets_arn("aws", "eu-west-1", "123456789012", "/prod/grafana"),
            service: service("eu-west-1"),
            key_arn: json!("arn:aws:kms:eu-west-1:123456789012:key/k"),
        };
        let p = fetch_policy(&s).to_string();
        assert!(
            p.contains("\"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/grafana/*\""),
            "{p}"
        );
        assert!(p.contains("secretsmanager:VersionId"), "{p}");
        assert!(p.contains("secretsmanager.eu-west-1.amazonaws.com"), "{p}");
        assert!(!p.contains("PutSecretValue"), "{p}");
        let w = create_policy(&s).to_string();
        assert!(w.contains("UpdateSecretVersionStage"), "{w}");
        assert!(!w.contains("DeleteSecret"), "{w}");
    }
}
