//! Parameter Store references: GetParameters, up to 10 names a request, decrypted.

use super::Labels;
use crate::error::{Error, Result};
use crate::names::printable;
use crate::secret::Payload;

/// GetParameters' maximum number of names.
pub const BATCH: usize = 10;

/// One GetParameters request for `names` (at most `BATCH`, no duplicates). Every name must
/// come back with a value: an `InvalidParameters` entry (not found, or not readable) or a
/// missing answer fails, naming the variables that refer to it.
pub(super) async fn batch(
    client: aws_sdk_ssm::Client,
    names: Vec<String>,
    labels: Labels,
) -> Result<Vec<(String, Payload)>> {
    let resp = client
        .get_parameters()
        .set_names(Some(names.clone()))
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            super::with_hint(
                crate::aws::error(
                    format!("resolving the references {}", labels.list(&names)),
                    e,
                ),
                "ssm:GetParameters on each parameter and kms:Decrypt on its key",
            )
        })?;
    let mut out = Vec::with_capacity(names.len());
    for bad in resp.invalid_parameters() {
        if !bad.starts_with("arn:") {
            return Err(not_found(&labels, bad));
        }
        // Some SSM-compatible endpoints (moto) take an ARN as the name of GetParameter
        // only: ask once more, one request, for an ARN GetParameters did not answer.
        out.push(by_arn(&client, bad, &labels).await?);
    }
    for p in resp.parameters.unwrap_or_default() {
        let Some(value) = p.value else {
            continue;
        };
        let payload = Payload::from_string(value);
        for req in &names {
            if !is_answer(req, p.name.as_deref(), p.arn.as_deref()) {
                continue;
            }
            out.push((req.clone(), unrevoked(&labels, req, payload.clone())?));
        }
    }
    if let Some(missing) = names.iter().find(|n| !out.iter().any(|(o, _)| o == *n)) {
        return Err(Error::data(format!(
            "cannot resolve {}: GetParameters answered nothing for {}",
            labels.of(missing),
            printable(missing)
        )));
    }
    Ok(out)
}

/// Whether the parameter answered (`name`, `arn`) is the one asked for as `req`. A request
/// by ARN is answered only by that exact ARN (partition, region, account and name): never by
/// a parameter of the same name elsewhere, as an endpoint that ignores the account would.
fn is_answer(req: &str, name: Option<&str>, arn: Option<&str>) -> bool {
    if req.starts_with("arn:") {
        arn == Some(req)
    } else {
        name == Some(req)
    }
}

fn not_found(labels: &Labels, bad: &str) -> Error {
    Error::not_found(format!(
        "cannot resolve {}: SSM Parameter Store has no parameter {} (or it is in another region or account, not shared with this one)",
        labels.of(bad),
        printable(bad)
    ))
}

fn unrevoked(labels: &Labels, req: &str, payload: Payload) -> Result<Payload> {
    if payload.as_bytes() == crate::store::ssm::TOMBSTONE.as_bytes() {
        return Err(Error::not_found(format!(
            "cannot resolve {}: every version of {} is revoked",
            labels.of(req),
            printable(req)
        )));
    }
    Ok(payload)
}

/// GetParameter of one ARN, whose answer must carry that same ARN.
async fn by_arn(
    client: &aws_sdk_ssm::Client,
    arn: &str,
    labels: &Labels,
) -> Result<(String, Payload)> {
    let resp = client
        .get_parameter()
        .name(arn)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            let e = crate::aws::error(format!("resolving the reference {}", labels.of(arn)), e);
            match e.aws_kind() {
                Some(crate::error::AwsKind::NotFound) => not_found(labels, arn),
                _ => super::with_hint(
                    e,
                    "ssm:GetParameters on each parameter and kms:Decrypt on its key",
                ),
            }
        })?;
    let (value, answered) = match resp.parameter {
        Some(p) => (p.value, p.arn),
        None => (None, None),
    };
    match (value, answered.as_deref()) {
        (Some(v), a) if is_answer(arn, None, a) => {
            Ok((arn.to_string(), unrevoked(labels, arn, Payload::from_string(v))?))
        }
        (_, a) => Err(Error::data(format!(
            "cannot resolve {}: SSM answered with {} instead of {}: refused (a reference is read only where its ARN says)",
            labels.of(arn),
            printable(a.unwrap_or("no parameter")),
            printable(arn)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::is_answer;

    #[test]
    fn an_arn_is_answered_only_by_itself() {
        let ours = "arn:aws:ssm:us-east-1:123456789012:parameter/ref/db";
        let theirs = "arn:aws:ssm:us-east-1:999999999999:parameter/ref/db";
        assert!(is_answer(ours, Some("/ref/db"), Some(ours)));
        assert!(is_answer(theirs, Some(theirs), Some(theirs)));
        assert!(!is_answer(theirs, Some("/ref/db"), Some(ours)));
        assert!(!is_answer(theirs, Some(theirs), None));
        assert!(!is_answer(
            "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/ref/db",
            Some("/ref/db"),
            Some("arn:aws:ssm:cn-north-1:123456789012:parameter/ref/db")
        ));
        assert!(is_answer("/ref/db", Some("/ref/db"), Some(ours)));
        assert!(!is_answer("/ref/db", Some("/ref/dbx"), Some(ours)));
    }
}
