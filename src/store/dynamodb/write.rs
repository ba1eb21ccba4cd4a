//! Writing versions: create, its check after the write, re-sealing, revoke.

use super::*;
use crate::crypto::{self, Binding, Sealed};
use crate::error::{Error, Result};
use crate::secret::Payload;
use aws_sdk_dynamodb::types::{AttributeValue as Av, ReturnValuesOnConditionCheckFailure};
use aws_smithy_types::Blob;

impl DynamoStore {
    /// The highest serial of `name` (0 when none). A newest item whose key is not ours
    /// fails closed: guessing past it could reuse a serial.
    pub(super) async fn max_serial(&self, path: &str, name: &str) -> Result<u64> {
        let resp = self
            .query(path, Some(&name_prefix(name)))
            .scan_index_forward(false)
            .limit(1)
            .projection_expression("#sk")
            .send()
            .await
            .map_err(|e| {
                self.ddb_error(
                    format!("reading the serials of {path}/{name} from DynamoDB"),
                    e,
                )
            })?;
        let items = resp.items.unwrap_or_default();
        let Some(item) = items.first() else {
            return Ok(0);
        };
        let sk = s(item, A_SK).unwrap_or_default();
        match parse_version_sk(sk) {
            Some((_, serial)) => Ok(serial),
            None => Err(Error::data(format!(
                "malformed version item \"{}\" under {path} in the secrets table; remove it or restore it from a backup",
                printable(sk)
            ))),
        }
    }

    /// The serial after `serial`; refused at the largest one (wrapping around would
    /// write a serial older than every other, never served and never revocable).
    pub(super) fn next_serial(path: &str, name: &str, serial: u64) -> Result<u64> {
        serial.checked_add(1).ok_or_else(|| {
            Error::data(format!(
                "cannot create {path}/{}: its newest serial is {serial}, the largest a serial can be; create the secret under another name",
                printable(name)
            ))
        })
    }

    /// PutItem of a new version, conditional on the key being free. A "taken" answer that
    /// carries our own token is our own earlier attempt (a retried request): done.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn put_version(
        &self,
        path: &str,
        name: &str,
        serial: u64,
        pk: &PathKey,
        sealed: &Sealed,
        created: &str,
        token: &[u8],
    ) -> Result<Put> {
        let r = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item(A_PATH, Av::S(path.into()))
            .item(A_SK, Av::S(version_sk(name, serial)))
            .item(A_KIND, Av::S(KIND_VERSION.into()))
            .item(A_NAME, Av::S(name.into()))
            .item(A_SERIAL, Av::N(serial.to_string()))
            .item(A_ACTIVE, Av::Bool(true))
            .item(A_CREATED, Av::S(created.into()))
            .item(A_CT, Av::B(Blob::new(sealed.ciphertext.clone())))
            .item(A_NONCE, Av::B(Blob::new(sealed.nonce.to_vec())))
            .item(A_GEN, Av::N(pk.generation.to_string()))
            .item(A_BLOB, Av::B(Blob::new(pk.blob.clone())))
            .item(A_TOKEN, Av::B(Blob::new(token.to_vec())))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", A_SK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(_) => Ok(Put::Done),
            Err(e) => {
                let ours = conflicting_item(&e).and_then(|old| b(old, A_TOKEN)) == Some(token);
                if ours {
                    Ok(Put::Done)
                } else if is_conditional(&e) {
                    Ok(Put::Taken)
                } else {
                    Err(self.ddb_error(
                        format!("writing {path}/{name} serial {serial} to DynamoDB"),
                        e,
                    ))
                }
            }
        }
    }

    pub async fn create(&self, path: &str, name: &str, payload: &Payload) -> Result<u64> {
        Self::check_name(name)?;
        let pk = self.current_key(path).await?;
        let mut serial = Self::next_serial(path, name, self.max_serial(path, name).await?)?;
        let created = now_rfc3339();
        for attempt in 0..MAX_CREATE_ATTEMPTS {
            let at = Binding {
                path,
                name,
                serial,
                generation: pk.generation,
            };
            let sealed = crypto::seal(&pk.key, &at, payload.as_bytes())
                .map_err(|e| Error::io(format!("cannot encrypt {path}/{name}: {e}")))?;
            let token = write_token()?;
            let kept = match self
                .put_version(path, name, serial, &pk, &sealed, &created, &token)
                .await?
            {
                Put::Done => {
                    self.settle(path, name, serial, &pk, &sealed.nonce, &token, payload)
                        .await?
                }
                Put::Taken => false,
            };
            if kept {
                return Ok(serial);
            }
            let next = Self::next_serial(path, name, serial)?;
            crate::log::debug(format_args!(
                "{path}/{name} serial {serial} was taken by a concurrent writer; trying {next}"
            ));
            serial = next;
            jitter(5 + 5 * attempt.min(8)).await;
        }
        Err(Error::data(format!(
            "could not create {path}/{name}: {MAX_CREATE_ATTEMPTS} serials in a row were taken by concurrent writers; try again"
        )))
    }

    /// After a version was written: make sure it stays readable and is really ours.
    /// 1. Its data key must still be the stored, live key of its generation. A concurrent
    ///    rotate-key may have retired (or deleted) it: then the version is re-sealed under
    ///    the newest key, so the rotation is complete (the version stays readable anyway:
    ///    it carries its key).
    /// 2. Read it back: the item must carry our token. DynamoDB's conditional writes are
    ///    atomic, but not every DynamoDB-compatible store's (moto, which the tests run
    ///    against, checks and writes without a lock); a replaced write means the serial
    ///    went to another writer.
    ///
    /// Returns whether the serial is ours.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle(
        &self,
        path: &str,
        name: &str,
        serial: u64,
        pk: &PathKey,
        nonce: &[u8],
        token: &[u8],
        payload: &Payload,
    ) -> Result<bool> {
        let generation = pk.generation;
        let resp = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(key_sk(generation)))
            .consistent_read(true)
            .projection_expression("#r, #b")
            .expression_attribute_names("#r", A_RETIRED)
            .expression_attribute_names("#b", A_BLOB)
            .send()
            .await
            .map_err(|e| {
                self.ddb_error(
                    format!("checking data key generation {generation} of {path}"),
                    e,
                )
            })?;
        let live = resp.item.as_ref().is_some_and(|i| {
            !flag(i, A_RETIRED).unwrap_or(false) && b(i, A_BLOB) == Some(&pk.blob[..])
        });
        if !live {
            crate::log::debug(format_args!(
                "{path}: data key generation {generation} changed during the write; re-sealing {path}/{name} serial {serial}"
            ));
            // When this does not apply, the version changed meanwhile: re-sealed by the
            // rotation itself, revoked, or replaced by another writer (the token tells).
            let newest = self.current_key(path).await?;
            self.reseal(path, name, serial, generation, nonce, &newest, payload)
                .await?;
        }
        let resp = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(version_sk(name, serial)))
            .consistent_read(true)
            .projection_expression("#t")
            .expression_attribute_names("#t", A_TOKEN)
            .send()
            .await
            .map_err(|e| {
                self.ddb_error(format!("reading back {path}/{name} serial {serial}"), e)
            })?;
        Ok(resp.item.is_some_and(|i| b(&i, A_TOKEN) == Some(token)))
    }

    /// Re-seal one active version under the key `to`, unless it changed meanwhile (a
    /// revoke, another re-seal, another writer's item): returns the new nonce when it was
    /// re-sealed.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn reseal(
        &self,
        path: &str,
        name: &str,
        serial: u64,
        from: u64,
        old_nonce: &[u8],
        to: &PathKey,
        payload: &Payload,
    ) -> Result<Option<[u8; crypto::NONCE_LEN]>> {
        let at = Binding {
            path,
            name,
            serial,
            generation: to.generation,
        };
        let sealed = crypto::seal(&to.key, &at, payload.as_bytes())
            .map_err(|e| Error::io(format!("cannot encrypt {path}/{name}: {e}")))?;
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(version_sk(name, serial)))
            .update_expression("SET #ct = :ct, #nonce = :nonce, #g = :to, #b = :blob")
            .condition_expression("#a = :t AND #g = :from AND #nonce = :old")
            .expression_attribute_names("#b", A_BLOB)
            .expression_attribute_values(":blob", Av::B(Blob::new(to.blob.clone())))
            .expression_attribute_names("#ct", A_CT)
            .expression_attribute_names("#nonce", A_NONCE)
            .expression_attribute_names("#g", A_GEN)
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_values(":ct", Av::B(Blob::new(sealed.ciphertext.clone())))
            .expression_attribute_values(":nonce", Av::B(Blob::new(sealed.nonce.to_vec())))
            .expression_attribute_values(":to", Av::N(to.generation.to_string()))
            .expression_attribute_values(":from", Av::N(from.to_string()))
            .expression_attribute_values(":t", Av::Bool(true))
            .expression_attribute_values(":old", Av::B(Blob::new(old_nonce.to_vec())))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(sealed.nonce)),
            Err(e) if is_conditional(&e) => Ok(None),
            Err(e) => Err(self.ddb_error(format!("re-sealing {path}/{name} serial {serial}"), e)),
        }
    }

    /// Revoke: the item must exist and be a version; its ciphertext, nonce, generation and
    /// data key are removed. Revoking twice is fine.
    pub async fn revoke(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        Self::check_name(name)?;
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(version_sk(name, serial)))
            .update_expression("SET #a = :f REMOVE #ct, #nonce, #g, #b")
            .expression_attribute_names("#b", A_BLOB)
            .condition_expression("attribute_exists(#sk) AND #kind = :version")
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_names("#ct", A_CT)
            .expression_attribute_names("#nonce", A_NONCE)
            .expression_attribute_names("#g", A_GEN)
            .expression_attribute_names("#sk", A_SK)
            .expression_attribute_names("#kind", A_KIND)
            .expression_attribute_values(":f", Av::Bool(false))
            .expression_attribute_values(":version", Av::S(KIND_VERSION.into()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => Err(self.not_found(path, name, Some(serial)).await),
            Err(e) => Err(self.ddb_error(format!("revoking {path}/{name} serial {serial}"), e)),
        }
    }
}
