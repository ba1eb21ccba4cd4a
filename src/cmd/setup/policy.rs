//! The least-privilege policy documents of each backend, for readers (`fetch`), the daemon
//! sidecar (`daemon`) and writers
//! (`create`), over a [`Scope`] of plain ARNs or CloudFormation expressions.
//!
//! Adding a backend: its arms in [`fetch_policy`] and [`create_policy`], the ARNs they need
//! as [`Scope`] fields (filled in by provision.rs with plain strings and by template.rs with
//! CloudFormation expressions), its resources in template.rs, and its name in the backend
//! loops of tests/linters.rs, so that cfn-lint and parliament check it too.

use crate::config::Backend;
use crate::store::dynamodb::CONTEXT_KEY;
use serde_json::{json, Value};

/// What the policies refer to: plain strings when setup ran against AWS, or CloudFormation
/// expressions in a template.
pub(super) struct Scope {
    pub path: Value,
    pub table_arn: Value,
    pub key_arn: Value,
    /// `arn:…:parameter/<path>` and `arn:…:parameter/<path>/*`.
    pub ssm_path_arn: Value,
    pub ssm_children_arn: Value,
    /// `ssm.<region>.amazonaws.com`.
    pub ssm_service: Value,
    /// secretsmanager: the path's secrets and the service (`sm.rs`).
    pub sm_secrets_arn: Value,
    pub sm_service: Value,
}

fn sm(scope: &Scope) -> super::sm::SmScope {
    super::sm::SmScope {
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
pub(super) fn fetch_policy(backend: Backend, scope: &Scope) -> Value {
    match backend {
        Backend::SecretsManager => super::sm::fetch_policy(&sm(scope)),
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

/// The daemon sidecar's reads: the readers' reads plus what serials need. Its writes
/// (without `--read-only`) need the create policy as well.
pub(super) fn daemon_policy(backend: Backend, scope: &Scope) -> Value {
    match backend {
        Backend::SecretsManager => super::sm::daemon_policy(&sm(scope)),
        // Query and GetItem already give serials.
        Backend::Dynamodb => fetch_policy(backend, scope),
        // Serials skip the internal copies a revoke writes: the history says which.
        Backend::Ssm => document(vec![
            statement(
                "ReadParametersAndHistoryOfPath",
                &[
                    "ssm:GetParametersByPath",
                    "ssm:GetParameterHistory",
                    "ssm:GetParameter",
                ],
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
pub(super) fn create_policy(backend: Backend, scope: &Scope) -> Value {
    match backend {
        Backend::SecretsManager => super::sm::create_policy(&sm(scope)),
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

/// IAM's limit on a policy name.
const MAX_POLICY_NAME: usize = 128;

/// `ecs-secrets-fetch-prod-grafana-<12 hex>` for `/prod/grafana`: the readable part (cut so
/// that the whole fits IAM's 128 characters) names the path for people, the suffix — the
/// first 48 bits of the path's SHA-256 — tells apart the paths that read the same
/// (`/prod/a-b` and `/prod-a/b`, or two long paths cut alike), so that attaching the policy
/// of one path never overwrites another's.
pub(super) fn policy_name(access: &str, path: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, path.as_bytes());
    let suffix: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Paths are ASCII (validate_path), so cutting at a byte is cutting at a character.
    let mut n = format!("ecs-secrets-{access}{}", path.replace('/', "-"));
    n.truncate(MAX_POLICY_NAME - 1 - suffix.len());
    format!("{n}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Issue 25 item 4: the daemon's reads need serials (ssm: the history; secretsmanager:
    /// a version by id), which the readers' policy leaves out; its own policy adds exactly
    /// those, on the path only.
    #[test]
    fn daemon_policies_add_what_serials_need_on_the_path_only() {
        let f = fetch_policy(Backend::Ssm, &scope());
        let d = daemon_policy(Backend::Ssm, &scope());
        let reader = f["Statement"][0]["Action"].as_array().unwrap();
        assert!(!reader.contains(&json!("ssm:GetParameterHistory")));
        let actions = d["Statement"][0]["Action"].as_array().unwrap();
        for a in [
            "ssm:GetParametersByPath",
            "ssm:GetParameterHistory",
            "ssm:GetParameter",
        ] {
            assert!(actions.contains(&json!(a)), "{a}");
        }
        assert_eq!(d["Statement"][0]["Resource"], f["Statement"][0]["Resource"]);
        assert_eq!(
            d["Statement"][1], f["Statement"][1],
            "decrypt through SSM only"
        );
        assert!(!d.to_string().contains("PutParameter"));
        assert_eq!(
            daemon_policy(Backend::Dynamodb, &scope()),
            fetch_policy(Backend::Dynamodb, &scope())
        );
        let sm = daemon_policy(Backend::SecretsManager, &scope()).to_string();
        assert!(
            !sm.contains("Deny") && !sm.contains("PutSecretValue"),
            "{sm}"
        );
        assert!(
            sm.contains("\"arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/app/*\""),
            "{sm}"
        );
        let w = create_policy(Backend::SecretsManager, &scope()).to_string();
        assert!(w.contains("secretsmanager:TagResource"), "{w}");
    }

    #[test]
    fn policy_names_follow_the_path_and_never_collide() {
        let n = policy_name("fetch", "/prod/grafana");
        // As the README shows it.
        assert_eq!(n, "ecs-secrets-fetch-prod-grafana-ccd1c612b794");
        assert_eq!(n.len(), "ecs-secrets-fetch-prod-grafana-".len() + 12);
        assert_eq!(n, policy_name("fetch", "/prod/grafana"), "stable");
        assert_ne!(
            policy_name("fetch", "/prod/a-b"),
            policy_name("fetch", "/prod-a/b")
        );
        assert_ne!(n, policy_name("create", "/prod/grafana"));
        // Long paths that agree in their first 128 characters.
        let long = format!("/{}", "x".repeat(200));
        let (a, b) = (
            policy_name("fetch", &format!("{long}/a")),
            policy_name("fetch", &format!("{long}/b")),
        );
        assert_ne!(a, b);
        assert_eq!((a.len(), b.len()), (128, 128));
        let ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        assert!(a.chars().all(ok), "{a}");
    }
}
