//! Secrets Manager references: BatchGetSecretValue with a SecretIdList, up to 20 ids a
//! request (AWSCURRENT); a pinned version stage or id is one GetSecretValue of its own.

use super::Labels;
use crate::error::{AwsKind, Error, Result};
use crate::names::printable;
use crate::secret::Payload;
use crate::store::secretsmanager::TOMBSTONE;

/// BatchGetSecretValue's maximum SecretIdList.
pub const BATCH: usize = 20;

/// Whether the answer entry (`name`, `arn`) is the secret asked for as `id`: a name, a full
/// ARN, or an ARN without Secrets Manager's `-XXXXXX` suffix.
fn answers(id: &str, name: Option<&str>, arn: Option<&str>) -> bool {
    if name == Some(id) || arn == Some(id) {
        return true;
    }
    arn.is_some_and(|a| {
        id.starts_with("arn:")
            && a.len() == id.len() + 7
            && a.starts_with(id)
            && a.as_bytes()[id.len()] == b'-'
    })
}

fn value(text: Option<String>, binary: Option<aws_smithy_types::Blob>) -> Option<Payload> {
    match (text, binary) {
        (Some(t), _) => Some(Payload::from_string(t)),
        (None, Some(b)) => Some(Payload::new(b.into_inner())),
        (None, None) => None,
    }
}

fn checked(label: String, id: &str, p: Option<Payload>) -> Result<Payload> {
    match p {
        None => Err(Error::data(format!(
            "cannot resolve {label}: Secrets Manager returned no value for {}",
            printable(id)
        ))),
        Some(p) if p.as_bytes() == TOMBSTONE.as_bytes() => Err(Error::not_found(format!(
            "cannot resolve {label}: every version of {} is revoked",
            printable(id)
        ))),
        Some(p) => Ok(p),
    }
}

const GRANT: &str = "secretsmanager:GetSecretValue on the secret and kms:Decrypt on its key";

fn hint(kind: AwsKind) -> String {
    if kind == AwsKind::AccessDenied {
        format!("; grant the task role {GRANT} (docs/references.md)")
    } else {
        String::new()
    }
}

/// One BatchGetSecretValue for `ids` (at most `BATCH`, no duplicates). An `Errors` entry,
/// a secret scheduled for deletion or a missing answer fails, naming the variables.
pub(super) async fn batch(
    client: aws_sdk_secretsmanager::Client,
    ids: Vec<String>,
    labels: Labels,
) -> Result<Vec<(String, Payload)>> {
    let mut out: Vec<(String, Payload)> = Vec::with_capacity(ids.len());
    let mut token: Option<String> = None;
    loop {
        let resp = client
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                super::with_hint(
                    crate::aws::error(format!("resolving the references {}", labels.list(&ids)), e),
                    GRANT,
                )
            })?;
        if let Some(e) = resp.errors.as_deref().unwrap_or_default().first() {
            let id = e.secret_id.clone().unwrap_or_default();
            let code = e
                .error_code
                .clone()
                .unwrap_or_else(|| "UnknownError".into());
            let kind = match code.as_str() {
                "ResourceNotFoundException" => AwsKind::NotFound,
                c => crate::aws::kind_of_code(c),
            };
            let id = ids
                .iter()
                .find(|i| answers(i, Some(&id), Some(&id)) || **i == id)
                .cloned()
                .unwrap_or(id);
            return Err(Error::Aws {
                kind,
                context: format!("cannot resolve {}", labels.of(&id)),
                detail: printable(&format!(
                    "secret {id}: {code}: {}",
                    e.message.as_deref().unwrap_or_default()
                )),
                hint: hint(kind),
            });
        }
        for v in resp.secret_values.unwrap_or_default() {
            let matched: Vec<&String> = ids
                .iter()
                .filter(|i| answers(i, v.name.as_deref(), v.arn.as_deref()))
                .collect();
            if matched.is_empty() {
                continue;
            }
            let p = value(v.secret_string, v.secret_binary);
            for id in matched {
                let p = checked(labels.of(id), id, p.clone())?;
                out.push((id.clone(), p));
            }
        }
        match resp.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    if let Some(missing) = ids.iter().find(|i| !out.iter().any(|(o, _)| o == *i)) {
        return Err(Error::not_found(format!(
            "cannot resolve {}: BatchGetSecretValue answered nothing for {}",
            labels.of(missing),
            printable(missing)
        )));
    }
    Ok(out)
}

/// One GetSecretValue for a pinned version stage and/or version id.
pub(super) async fn pinned(
    client: aws_sdk_secretsmanager::Client,
    id: String,
    stage: Option<String>,
    version_id: Option<String>,
    label: String,
) -> Result<Payload> {
    let resp = client
        .get_secret_value()
        .secret_id(&id)
        .set_version_stage(stage)
        .set_version_id(version_id)
        .send()
        .await;
    match resp {
        // Answered by the secret asked for, or refused: an endpoint that reads an ARN's
        // name in our account instead of the ARN's account must not substitute it.
        Ok(r) if answers(&id, r.name.as_deref(), r.arn.as_deref()) => {
            checked(label, &id, value(r.secret_string, r.secret_binary))
        }
        Ok(r) => Err(Error::data(format!(
            "cannot resolve {label}: Secrets Manager answered with {} instead of {}: refused \
             (a reference is read only where its ARN says)",
            printable(r.arn.as_deref().unwrap_or("no secret")),
            printable(&id)
        ))),
        Err(e) => Err(super::with_hint(
            crate::aws::error(format!("cannot resolve {label}"), e),
            GRANT,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::answers;

    #[test]
    fn answers_by_name_arn_or_partial_arn() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
        assert!(answers("prod/db", Some("prod/db"), Some(arn)));
        assert!(answers(arn, Some("prod/db"), Some(arn)));
        assert!(answers(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db",
            Some("prod/db"),
            Some(arn)
        ));
        assert!(!answers("prod/d", Some("prod/db"), Some(arn)));
        // Another account's, partition's or region's ARN is not answered by ours.
        for other in [
            "arn:aws:secretsmanager:us-east-1:999999999999:secret:prod/db",
            "arn:aws:secretsmanager:us-east-1:999999999999:secret:prod/db-AbCdEf",
            "arn:aws-cn:secretsmanager:us-east-1:123456789012:secret:prod/db",
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db",
        ] {
            assert!(!answers(other, Some("prod/db"), Some(arn)), "{other}");
        }
        assert!(!answers(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod",
            Some("prod/db"),
            Some(arn)
        ));
    }
}
