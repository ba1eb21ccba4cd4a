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
    if let Some(bad) = resp.invalid_parameters().first() {
        return Err(Error::not_found(format!(
            "cannot resolve {}: SSM Parameter Store has no parameter {} (or it is in another region or account)",
            labels.of(bad),
            printable(bad)
        )));
    }
    let mut out = Vec::with_capacity(names.len());
    for p in resp.parameters.unwrap_or_default() {
        let (Some(name), Some(value)) = (p.name, p.value) else {
            continue;
        };
        if !names.contains(&name) {
            continue;
        }
        let payload = Payload::from_string(value);
        if payload.as_bytes() == crate::store::ssm::TOMBSTONE.as_bytes() {
            return Err(Error::not_found(format!(
                "cannot resolve {}: every version of {} is revoked",
                labels.of(&name),
                printable(&name)
            )));
        }
        out.push((name, payload));
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
