//! Data keys: KMS, the key items, and opening versions.

use super::*;
use crate::crypto::{self, Binding, DataKey};
use crate::error::{Error, Result};
use crate::secret::Payload;
use aws_sdk_dynamodb::types::{AttributeValue as Av, ReturnValuesOnConditionCheckFailure};
use aws_sdk_kms::types::DataKeySpec;
use aws_smithy_types::Blob;
use std::collections::HashMap;
use zeroize::Zeroizing;

impl DynamoStore {
    /// Decrypt one stored data key with KMS (bound to the path by the encryption context).
    pub(super) async fn decrypt_key(
        &self,
        path: &str,
        generation: u64,
        blob: &[u8],
    ) -> Result<DataKey> {
        let resp = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob.to_vec()))
            .encryption_context(CONTEXT_KEY, path)
            .send()
            .await
            .map_err(|e| {
                self.kms_error(
                    format!("decrypting data key generation {generation} of {path} with KMS"),
                    e,
                )
            })?;
        let plain = Zeroizing::new(resp.plaintext.map(Blob::into_inner).unwrap_or_default());
        DataKey::from_slice(&plain).ok_or_else(|| {
            Error::data(format!(
                "KMS returned {} bytes for data key generation {generation} of {path}; expected 32",
                plain.len()
            ))
        })
    }

    /// Decrypt the data keys the given versions need: one KMS Decrypt per distinct stored
    /// key (one per generation).
    pub(super) async fn keys_for(
        &self,
        path: &str,
        part: &Partition,
        needed: &[&Version],
    ) -> Result<Keys> {
        let mut keys = Keys::new();
        for v in needed {
            let Some(seal) = &v.sealed else { continue };
            let g = seal.generation;
            let Some(blob) = blob_of(v, part) else {
                return Err(Error::data(format!(
                    "cannot decrypt {}: its data key generation {g} is missing from table {} (the version carries no copy of it: it was written before versions did); restore that item from a backup, or revoke the version and create a new one",
                    v.full_name(path),
                    self.table
                )));
            };
            if keys.contains_key(blob) {
                continue;
            }
            let key = self.decrypt_key(path, g, blob).await.map_err(|e| {
                let needed_by = format!("needed by {}", v.full_name(path));
                match e {
                    Error::Aws {
                        kind,
                        context,
                        detail,
                        hint,
                    } => Error::Aws {
                        kind,
                        context: format!("{context} ({needed_by})"),
                        detail,
                        hint,
                    },
                    Error::Data(m) => Error::Data(format!("{m} ({needed_by})")),
                    other => other,
                }
            })?;
            keys.insert(blob.to_vec(), key);
        }
        Ok(keys)
    }

    /// Open one active version (fail closed, naming it).
    pub(super) fn open(
        &self,
        path: &str,
        v: &Version,
        part: &Partition,
        keys: &Keys,
    ) -> Result<Payload> {
        let Some(seal) = &v.sealed else {
            return Err(Error::data(format!(
                "{} has no ciphertext: revoke it again and create a new version",
                v.full_name(path)
            )));
        };
        let g = seal.generation;
        let key = blob_of(v, part)
            .and_then(|blob| keys.get(blob))
            .ok_or_else(|| Error::data(format!("no data key for {}", v.full_name(path))))?;
        let at = Binding {
            path,
            name: &v.name,
            serial: v.serial,
            generation: g,
        };
        crypto::open(key, &at, &seal.nonce, &seal.ciphertext).map_err(|e| {
            Error::data(format!(
                "cannot decrypt {}: {e} for this path, name, serial and data-key generation {g} (tampered with, or copied from another item); revoke it and create a new version, or restore the item from a backup",
                v.full_name(path)
            ))
        })
    }

    /// The newest data key of the path, created (generation 1) when the path has none.
    pub(super) async fn current_key(&self, path: &str) -> Result<PathKey> {
        let what = format!(
            "reading the data key of {path} from DynamoDB table {}",
            self.table
        );
        for _ in 0..5 {
            let resp = self
                .query(path, Some(KEY_PREFIX))
                .scan_index_forward(false)
                .limit(1)
                .send()
                .await
                .map_err(|e| self.ddb_error(what.clone(), e))?;
            match resp.items.unwrap_or_default().first() {
                Some(item) => {
                    let k = parse_key(path, item)?;
                    if k.retired {
                        return Err(Error::data(format!(
                            "the newest data key of {path} (generation {}) is marked retired: an earlier rotate-key was interrupted; run `ecs-secrets rotate-key --backend dynamodb --path {path}` again",
                            k.generation
                        )));
                    }
                    let key = self.decrypt_key(path, k.generation, &k.blob).await?;
                    return Ok(PathKey {
                        generation: k.generation,
                        key,
                        blob: k.blob,
                    });
                }
                None => {
                    if let Some(pk) = self.new_key(path, 1).await? {
                        return Ok(pk);
                    }
                    // Another writer created generation 1 first: use theirs.
                }
            }
        }
        Err(Error::data(format!(
            "could not settle on a data key for {path}: concurrent writers kept changing it; try again"
        )))
    }

    /// Generate and store data key `generation`; `None` when that generation exists already.
    pub(super) async fn new_key(&self, path: &str, generation: u64) -> Result<Option<PathKey>> {
        let mut resp = self
            .kms
            .generate_data_key()
            .key_id(self.write_key())
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, path)
            .send()
            .await
            .map_err(|e| {
                self.kms_error(
                    format!(
                        "generating a data key for {path} under KMS key {}",
                        self.write_key()
                    ),
                    e,
                )
            })?;
        let plain = Zeroizing::new(
            resp.plaintext
                .take()
                .map(Blob::into_inner)
                .unwrap_or_default(),
        );
        let key = DataKey::from_slice(&plain).ok_or_else(|| {
            Error::data(format!(
                "KMS GenerateDataKey returned {} bytes for {path}; expected 32",
                plain.len()
            ))
        })?;
        let blob = resp.ciphertext_blob.take().ok_or_else(|| {
            Error::data(format!(
                "KMS GenerateDataKey returned no ciphertext for {path}"
            ))
        })?;
        let put = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item(A_PATH, Av::S(path.into()))
            .item(A_SK, Av::S(key_sk(generation)))
            .item(A_KIND, Av::S(KIND_DATAKEY.into()))
            .item(A_GEN, Av::N(generation.to_string()))
            .item(A_BLOB, Av::B(blob.clone()))
            .item(
                A_KMS_KEY,
                Av::S(resp.key_id.unwrap_or_else(|| self.write_key().into())),
            )
            .item(A_CREATED, Av::S(now_rfc3339()))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", A_SK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => {}
            // A "taken" answer holding our own blob is our own retried request.
            Err(e) if is_conditional(&e) => {
                if conflicting_item(&e).and_then(|old| b(old, A_BLOB)) != Some(blob.as_ref()) {
                    return Ok(None);
                }
            }
            Err(e) => {
                return Err(self.ddb_error(
                    format!("storing data key generation {generation} of {path}"),
                    e,
                ))
            }
        }
        Ok(Some(PathKey {
            generation,
            key,
            blob: blob.into_inner(),
        }))
    }

    /// Open one version read on its own (`fetch`). A version that carries its data key
    /// needs nothing more; an older one needs its key item (strongly consistent GetItem).
    pub(super) async fn open_one(&self, path: &str, v: &Version) -> Result<Payload> {
        let mut part = Partition::default();
        if let Some(seal) = v.sealed.as_ref().filter(|s| s.blob.is_none()) {
            let g = seal.generation;
            let resp = self
                .ddb
                .get_item()
                .table_name(&self.table)
                .key(A_PATH, Av::S(path.into()))
                .key(A_SK, Av::S(key_sk(g)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| {
                    self.ddb_error(format!("reading data key generation {g} of {path}"), e)
                })?;
            if let Some(item) = resp.item {
                let k = parse_key(path, &item)?;
                part.keys.insert(k.generation, k);
            }
        }
        let keys = self.keys_for(path, &part, &[v]).await?;
        self.open(path, v, &part, &keys)
    }
}

/// Decrypted data keys, by the stored (KMS-encrypted) key they came from.
pub(super) type Keys = HashMap<Vec<u8>, DataKey>;

/// The stored data key `v` is sealed under: the copy it carries, else (versions written
/// before they carried one) the key item of its generation.
fn blob_of<'a>(v: &'a Version, part: &'a Partition) -> Option<&'a [u8]> {
    let seal = v.sealed.as_ref()?;
    seal.blob
        .as_deref()
        .or_else(|| part.keys.get(&seal.generation).map(|k| k.blob.as_slice()))
}
