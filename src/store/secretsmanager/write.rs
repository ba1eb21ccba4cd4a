//! Writing: new versions with race-free serials, revocation by removing staging labels.

use super::{secret_id, serial_id, SmStore, Ver, CURRENT, TOMBSTONE, TOMBSTONE_PREFIX};
use crate::error::{Error, Result};
use crate::secret::Payload;
use aws_smithy_types::Blob;

/// Rounds of "read the versions, write the next serial" before giving up; each lost round
/// means another writer won a serial, so this bounds only absurd contention (the overall
/// deadline bounds time).
const MAX_ROUNDS: usize = 200;

fn conflict_or<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>, code: &str) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    e.as_service_error().is_some_and(|s| s.code() == Some(code))
}

pub(super) async fn create(s: &SmStore, path: &str, name: &str, payload: &Payload) -> Result<u64> {
    super::check_payload(payload)?;
    let id = secret_id(path, name);
    for _ in 0..MAX_ROUNDS {
        let vers = s.vers(path, name).await?;
        let next = vers
            .iter()
            .filter_map(Ver::serial)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| Error::data(format!("{id}: the serials are exhausted")))?;
        let token = serial_id(next);
        // The SDK takes owned values; they leave our wiped buffers here.
        let text = payload.as_str().map(String::from);
        let bin = text
            .is_none()
            .then(|| Blob::new(payload.as_bytes().to_vec()));
        if vers.is_empty() {
            // CreateSecret is conditional on the name (ResourceExistsException), not on the
            // token; a random suffix keeps a racing writer with the same value from having
            // its request taken as a retry of ours (both would report serial 1).
            let first = format!("{token}-{}", &write_mark()?[14..30]);
            let r = s
                .client
                .create_secret()
                .name(&id)
                .client_request_token(&first)
                .set_secret_string(text.clone())
                .set_secret_binary(bin.clone())
                .set_kms_key_id(s.kms_key.clone())
                .description("ecs-secrets")
                .send()
                .await;
            match r {
                Ok(_) => return Ok(next),
                // Another writer created it first: take the next serial.
                Err(e) if conflict_or(&e, "ResourceExistsException") => continue,
                Err(e) => {
                    return Err(crate::aws::error_redacted(
                        format!("creating {id} in Secrets Manager"),
                        e,
                        Some(payload.as_bytes()),
                    ))
                }
            }
        }
        // A label only this writer knows: Secrets Manager ignores a request repeating a
        // token *and* value it has seen (another writer's identical payload under the same
        // serial), and then our label is not on the version it answers about.
        let mark = write_mark()?;
        let r = s
            .client
            .put_secret_value()
            .secret_id(&id)
            .client_request_token(&token)
            .set_secret_string(text.clone())
            .set_secret_binary(bin.clone())
            .version_stages(CURRENT)
            .version_stages(&mark)
            .send()
            .await;
        match r {
            Ok(out) if out.version_stages().iter().any(|l| l == &mark) => {
                // The version is written; a label left behind (a concurrent revoke took
                // it, or this fails) is harmless: revoke and rotate remove every label.
                if let Err(e) = stage(s, &id, &mark, None, Some(&token)).await {
                    crate::log::warn(format_args!(
                        "{id}: label {mark} left on serial {next}: {e}"
                    ));
                }
                return Ok(next);
            }
            // An identical value won this serial first: take the next one.
            Ok(_) => continue,
            // The token (serial) is taken by a different version: another writer won it.
            Err(e) if conflict_or(&e, "ResourceExistsException") => continue,
            Err(e) => {
                return Err(crate::aws::error_redacted(
                    format!("writing a new version of {id} in Secrets Manager"),
                    e,
                    Some(payload.as_bytes()),
                ))
            }
        }
    }
    Err(Error::data(format!(
        "{id}: gave up after {MAX_ROUNDS} rounds of concurrent writers taking the next serial"
    )))
}

/// `ecs-secrets-w-<32 hex digits>`, from the OS random number generator.
fn write_mark() -> Result<String> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut r = [0u8; 16];
    SystemRandom::new()
        .fill(&mut r)
        .map_err(|_| Error::io("the system random number generator failed"))?;
    Ok(format!(
        "ecs-secrets-w-{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Move or remove one label. `to`: the version that gets it; `from`: the one that loses it.
async fn stage(
    s: &SmStore,
    id: &str,
    label: &str,
    to: Option<&str>,
    from: Option<&str>,
) -> Result<()> {
    s.client
        .update_secret_version_stage()
        .secret_id(id)
        .version_stage(label)
        .set_move_to_version_id(to.map(String::from))
        .set_remove_from_version_id(from.map(String::from))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| crate::aws::error(format!("moving the label {label} of {id}"), e))
}

/// Make AWSCURRENT leave `victim`: to the newest other active version, else to a tombstone.
async fn move_current_off(
    s: &SmStore,
    path: &str,
    name: &str,
    vers: &[Ver],
    victim: &Ver,
) -> Result<()> {
    let id = secret_id(path, name);
    let heir = vers
        .iter()
        .filter(|v| v.id != victim.id && v.active())
        .max_by_key(|v| (v.serial().unwrap_or(0), v.created_at.map(|d| d.secs())));
    match heir {
        Some(h) => stage(s, &id, CURRENT, Some(&h.id), Some(&victim.id)).await,
        None => {
            // Nothing active is left: AWSCURRENT must sit somewhere, so on a new tombstone.
            // Always a new version (not a label move to an old tombstone): writing a version
            // is what moves AWSCURRENT everywhere, moto's BatchGetSecretValue included.
            // Its token is new too (highest serial, tombstones so far), else Secrets Manager
            // would take it for a retry and ignore it.
            let top = vers.iter().filter_map(Ver::serial).max().unwrap_or(0);
            let n = vers.iter().filter(|v| super::is_tombstone(&v.id)).count();
            let token = format!("{TOMBSTONE_PREFIX}{top:020}-{n}");
            s.client
                .put_secret_value()
                .secret_id(&id)
                .client_request_token(token)
                .secret_string(TOMBSTONE)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::aws::error(format!("writing the tombstone of {id}"), e))
        }
    }
}

/// Take every label off one version (AWSCURRENT moved first). Retries when a concurrent
/// writer moved labels under us.
async fn unlabel(s: &SmStore, path: &str, name: &str, vid: &str) -> Result<()> {
    let id = secret_id(path, name);
    let mut last = None;
    for _ in 0..10 {
        let vers = s.vers(path, name).await?;
        let Some(v) = vers.iter().find(|v| v.id == vid) else {
            return Err(Error::not_found(format!("{id} has no version {vid}")));
        };
        if v.stages.is_empty() {
            return Ok(());
        }
        let r = if v.current() {
            move_current_off(s, path, name, &vers, v).await
        } else {
            let mut r = Ok(());
            for label in &v.stages {
                r = stage(s, &id, label, None, Some(vid)).await;
                if r.is_err() {
                    break;
                }
            }
            r
        };
        // Moving AWSCURRENT gives the old holder AWSPREVIOUS: loop until no label is left.
        if let Err(e) = r {
            last = Some(e);
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::data(format!(
            "{id}: the labels of {vid} kept changing; try again"
        ))
    }))
}

pub(super) async fn revoke(s: &SmStore, path: &str, name: &str, serial: u64) -> Result<()> {
    let id = secret_id(path, name);
    let vers = s.vers(path, name).await?;
    if vers.is_empty() {
        return Err(Error::not_found(format!(
            "no secret {id} in Secrets Manager"
        )));
    }
    let Some(v) = vers.iter().find(|v| v.serial() == Some(serial)) else {
        return Err(Error::not_found(format!("{id} has no serial {serial}")));
    };
    unlabel(s, path, name, &v.id.clone()).await
}

pub(super) async fn revoke_older(
    s: &SmStore,
    path: &str,
    name: &str,
    keep: u64,
) -> Result<Vec<u64>> {
    let id = secret_id(path, name);
    let keep_id = serial_id(keep);
    let vers = s.vers(path, name).await?;
    if !vers.iter().any(|v| v.id == keep_id && v.current()) {
        return Err(Error::data(format!(
            "{id}: serial {keep} is no longer AWSCURRENT (another writer wrote after it); nothing older was revoked"
        )));
    }
    let mut revoked = Vec::new();
    for v in vers
        .iter()
        .filter(|v| v.id != keep_id && !v.stages.is_empty())
    {
        unlabel(s, path, name, &v.id).await?;
        match v.serial() {
            Some(n) if v.active() => revoked.push(n),
            Some(_) => {}
            None if super::is_tombstone(&v.id) => {}
            None => crate::log::warn(format_args!(
                "{id}: version {} (not written by ecs-secrets) lost its labels {:?}",
                v.id, v.stages
            )),
        }
    }
    Ok(revoked)
}
