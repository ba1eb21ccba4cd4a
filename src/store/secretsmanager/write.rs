//! Writing: new versions with race-free serials, revocation by removing staging labels.

use super::{
    secret_id, serial_id, SmStore, Ver, CURRENT, REVOKED_TAG, TOMBSTONE, TOMBSTONE_PREFIX,
};
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

/// Make AWSCURRENT leave `victim` (marked revoked): to the newest version that may inherit
/// it ([`Ver::can_inherit`]), else to a new tombstone.
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
        .filter(|v| v.id != victim.id && v.can_inherit())
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

/// Whether a version id can be part of a tag key (Secrets Manager's version ids written by
/// others are UUIDs, ours are `ecs-secrets-…`).
fn taggable(vid: &str) -> bool {
    vid.len() <= 128 - REVOKED_TAG.len()
        && vid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(c))
}

/// The highest serial a tombstone's writer saw (its id: prefix, 20 digits, `-n`).
fn tombstone_top(vid: &str) -> u64 {
    vid.strip_prefix(TOMBSTONE_PREFIX)
        .and_then(|r| r.get(..20))
        .and_then(|d| d.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Most of the 50 tags a secret may carry that revocation marks may take; older marks of
/// versions without labels are dropped beyond it (see [`mark_revoked`]).
const MAX_MARKS: usize = 30;

/// Mark versions revoked, durably, before any label moves: a tag per version on the secret
/// (TagResource adds keys without touching the others, so concurrent revokes lose none).
/// Every later revoke and rotate skips a marked version as an heir and takes its labels off.
async fn mark_revoked(
    s: &SmStore,
    path: &str,
    name: &str,
    vers: &[Ver],
    ids: &[&str],
) -> Result<()> {
    use aws_sdk_secretsmanager::types::Tag;
    let id = secret_id(path, name);
    let new: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|v| !vers.iter().any(|x| x.id == *v && x.revoked))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    // Room first: marks of versions Secrets Manager has aged out (they cannot come back),
    // then of the oldest versions that carry no label (only a revoke that read one while
    // it was labelled, and is still in flight after this many revocations, could move
    // AWSCURRENT back to it).
    let keys: Vec<String> = s
        .client
        .describe_secret()
        .secret_id(&id)
        .send()
        .await
        .map_err(|e| crate::aws::error(format!("describing {id} in Secrets Manager"), e))?
        .tags
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.key.filter(|k| k.starts_with(REVOKED_TAG)))
        .collect();
    let listed = |k: &str| vers.iter().any(|v| k[REVOKED_TAG.len()..] == v.id);
    let mut drop: Vec<String> = keys.iter().filter(|k| !listed(k)).cloned().collect();
    let over = (keys.len() - drop.len() + new.len()).saturating_sub(MAX_MARKS);
    drop.extend(
        vers.iter()
            .filter(|v| v.revoked && v.stages.is_empty())
            .take(over)
            .map(|v| format!("{REVOKED_TAG}{}", v.id)),
    );
    if !drop.is_empty() {
        s.client
            .untag_resource()
            .secret_id(&id)
            .set_tag_keys(Some(drop))
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("dropping old revocation marks of {id}"), e))?;
    }
    let tags = new
        .iter()
        .map(|v| {
            Tag::builder()
                .key(format!("{REVOKED_TAG}{v}"))
                .value("revoked")
                .build()
        })
        .collect();
    s.client
        .tag_resource()
        .secret_id(&id)
        .set_tags(Some(tags))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            crate::aws::error(
                format!("marking versions of {id} revoked (a tag on the secret)"),
                e,
            )
        })
}

/// Take every label off every version marked revoked, AWSCURRENT first (to an heir or a
/// tombstone), re-reading after each round until none keeps one: that last read is the
/// check that no revoked version is current, whatever a concurrent writer did meanwhile
/// (another revoke moving AWSCURRENT onto a version we marked, from a read older than our
/// mark, is undone here or by that revoke's own check, whichever reads last).
async fn settle(s: &SmStore, path: &str, name: &str) -> Result<()> {
    let id = secret_id(path, name);
    let mut last = None;
    for _ in 0..20 {
        let vers = s.vers(path, name).await?;
        // Marked versions, and tombstones AWSCURRENT has left, keep no label.
        let stale = |v: &&Ver| {
            !v.stages.is_empty() && (v.revoked || (super::is_tombstone(&v.id) && !v.current()))
        };
        let Some(v) = vers.iter().find(stale) else {
            // A tombstone written while a create landed (the create's version then got
            // AWSPREVIOUS from it): that newer version is the heir after all.
            let tomb = vers
                .iter()
                .find(|v| v.current() && super::is_tombstone(&v.id));
            let newer = tomb.and_then(|t| {
                let top = tombstone_top(&t.id);
                vers.iter()
                    .filter(|v| v.can_inherit() && v.serial().is_some_and(|n| n > top))
                    .max_by_key(|v| v.serial())
            });
            match (tomb, newer) {
                (Some(t), Some(h)) => {
                    if let Err(e) = stage(s, &id, CURRENT, Some(&h.id), Some(&t.id)).await {
                        last = Some(e);
                    }
                    continue;
                }
                _ => return Ok(()),
            }
        };
        let r = if v.current() && vers.iter().any(|o| o.id != v.id && o.current()) {
            // AWSCURRENT on two versions: moto's PutSecretValue (the tombstone) leaves it
            // on a holder that got it by a label move. Real Secrets Manager keeps one.
            stage(s, &id, CURRENT, None, Some(&v.id)).await
        } else if v.current() {
            move_current_off(s, path, name, &vers, v).await
        } else {
            let mut r = Ok(());
            for label in &v.stages {
                r = stage(s, &id, label, None, Some(&v.id)).await;
                if r.is_err() {
                    break;
                }
            }
            r
        };
        // Moving AWSCURRENT gives the old holder AWSPREVIOUS, and a concurrent writer may
        // have moved a label first (our move then fails): read again either way.
        if let Err(e) = r {
            last = Some(e);
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::data(format!(
            "{id}: the labels of its revoked versions kept changing; run the revoke again"
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
    mark_revoked(s, path, name, &vers, &[&v.id]).await?;
    settle(s, path, name).await
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
    let older: Vec<&Ver> = vers
        .iter()
        .filter(|v| v.id != keep_id && !v.stages.is_empty() && !super::is_tombstone(&v.id))
        .collect();
    let ids: Vec<&str> = older
        .iter()
        .map(|v| v.id.as_str())
        .filter(|v| taggable(v))
        .collect();
    mark_revoked(s, path, name, &vers, &ids).await?;
    settle(s, path, name).await?;
    // A version of others whose id cannot name a tag: its labels are taken off directly
    // (AWSCURRENT is on `keep`).
    for v in older.iter().filter(|v| !taggable(&v.id)) {
        for label in v.stages.iter().filter(|l| *l != CURRENT) {
            stage(s, &id, label, None, Some(&v.id)).await?;
        }
    }
    let mut revoked = Vec::new();
    for v in older {
        match v.serial() {
            Some(n) if v.active() => revoked.push(n),
            Some(_) => {}
            None => crate::log::warn(format_args!(
                "{id}: version {} (not written by ecs-secrets) lost its labels {:?}",
                v.id, v.stages
            )),
        }
    }
    Ok(revoked)
}
