//! import from an original AWS Labs ecs-secrets table.

use super::*;
use crate::crypto::{self, Binding};
use crate::error::{AwsKind, Error, Result};
use crate::names::printable;
use crate::secret::Payload;
use aws_smithy_types::Blob;
use std::collections::{BTreeSet, HashMap};
use zeroize::Zeroizing;

/// TransactWriteItems' limits: 100 items, 4 MB in all (kept below, for attribute names).
const TRANSACTION_ITEMS: usize = 100;
const TRANSACTION_BYTES: usize = 3_500_000;

impl DynamoStore {
    /// import: every active version of an original AWS Labs ecs-secrets table, re-created
    /// under `path` with the same names and serials. All are read, decrypted and checked
    /// before anything is written; a serial that exists already under `path` is an error.
    pub async fn import_legacy(
        &self,
        path: &str,
        source: &str,
        max_payload: usize,
        written: &std::sync::Mutex<Vec<(String, u64)>>,
    ) -> Result<()> {
        let legacy = self.read_legacy(source, max_payload).await?;
        self.import_versions(path, &legacy, written).await
    }

    /// Write already-checked versions `(name, serial, payload)` under `path` with exactly
    /// those serials, in order (the write half of every import); each version written is
    /// pushed to `written` as soon as it is, so that a caller can print them even when the
    /// import fails or its deadline passes.
    ///
    /// Resumable: a version that exists already with the same value (an earlier run of the
    /// same import, interrupted) is skipped; one with a different value is a conflict, and
    /// conflicts, like names that would set one environment name twice, are refused before
    /// anything is written. When what is left fits one DynamoDB transaction (100 items,
    /// 4 MB) it is written all or nothing, so readers never see half of it.
    pub async fn import_versions(
        &self,
        path: &str,
        legacy: &[(String, u64, Payload)],
        written: &std::sync::Mutex<Vec<(String, u64)>>,
    ) -> Result<()> {
        let what = format!("listing {path} in DynamoDB table {}", self.table);
        let metadata = self.metadata_of(path, VERSION_PREFIX, &what).await?;
        // Refuse, before writing, names that would set one environment name twice (with each
        // other or with an active secret of the path): that would make every start fail.
        crate::store::collide::check_batch(
            path,
            legacy.iter().map(|(n, _, _)| n.as_str()),
            metadata
                .iter()
                .filter(|v| v.active)
                .map(|v| v.name.as_str()),
        )?;
        let existing: BTreeSet<(String, u64)> =
            metadata.into_iter().map(|v| (v.name, v.serial)).collect();
        let mut todo: Vec<&(String, u64, Payload)> = Vec::new();
        let (mut conflicts, mut unchanged) = (Vec::new(), 0usize);
        for v in legacy {
            let (name, serial, payload) = v;
            if !existing.contains(&(name.clone(), *serial)) {
                todo.push(v);
                continue;
            }
            let there = self.fetch(path, name, Some(*serial)).await?;
            match there.payload {
                Some(p) if there.active && p.as_bytes() == payload.as_bytes() => unchanged += 1,
                _ => conflicts.push(format!("{path}/{name} serial {serial}")),
            }
        }
        if !conflicts.is_empty() {
            return Err(Error::data(format!(
                "nothing imported: {} exist already under {path} with another value (or \
                 revoked) and would be overwritten; import into a fresh --path",
                conflicts.join(", ")
            )));
        }
        if unchanged > 0 {
            crate::log::warn(format_args!(
                "{unchanged} version(s) already imported unchanged into {path}: skipped"
            ));
        }
        if todo.is_empty() {
            return Ok(());
        }
        let pk = self.current_key(path).await?;
        let created = now_rfc3339();
        let token = write_token()?;
        let mut sealed_all = Vec::with_capacity(todo.len());
        for (name, serial, payload) in &todo {
            let at = Binding {
                path,
                name,
                serial: *serial,
                generation: pk.generation,
            };
            let sealed = crypto::seal(&pk.key, &at, payload.as_bytes())
                .map_err(|e| Error::io(format!("cannot encrypt {path}/{name}: {e}")))?;
            sealed_all.push(sealed);
        }
        let size: usize = todo
            .iter()
            .zip(&sealed_all)
            .map(|((n, _, _), s)| {
                s.ciphertext.len() + pk.blob.len() + 2 * n.len() + path.len() + 256
            })
            .sum();
        let at_once = todo.len() <= TRANSACTION_ITEMS && size <= TRANSACTION_BYTES;
        if at_once {
            self.put_versions_at_once(path, &todo, &sealed_all, &pk, &created, &token)
                .await?;
        }
        for ((name, serial, payload), sealed) in todo.iter().zip(&sealed_all) {
            let put = if at_once {
                Put::Done
            } else {
                self.put_version(path, name, *serial, &pk, sealed, &created, &token)
                    .await?
            };
            let kept = match put {
                Put::Done => {
                    self.settle(path, name, *serial, &pk, &sealed.nonce, &token, payload)
                        .await?
                }
                Put::Taken => false,
            };
            if !kept {
                return Err(Error::data(format!(
                    "{path}/{name} serial {serial} was created by someone else during the \
                     import; the versions written are printed: run the same import again to \
                     complete it"
                )));
            }
            written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name.clone(), *serial));
        }
        Ok(())
    }

    /// Every version in one TransactWriteItems: all written, or none. Idempotent across the
    /// connector's retries through the client request token.
    async fn put_versions_at_once(
        &self,
        path: &str,
        todo: &[&(String, u64, Payload)],
        sealed: &[crypto::Sealed],
        pk: &PathKey,
        created: &str,
        token: &[u8],
    ) -> Result<()> {
        use aws_sdk_dynamodb::types::{Put as TxPut, TransactWriteItem};
        let mut items = Vec::with_capacity(todo.len());
        for ((name, serial, _), sealed) in todo.iter().zip(sealed) {
            let put = TxPut::builder()
                .table_name(&self.table)
                .item(A_PATH, Av::S(path.into()))
                .item(A_SK, Av::S(version_sk(name, *serial)))
                .item(A_KIND, Av::S(KIND_VERSION.into()))
                .item(A_NAME, Av::S(name.clone()))
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
                .build()
                .map_err(|e| Error::io(format!("internal error: {e}")))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let request_token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        self.ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token)
            .send()
            .await
            .map_err(|e| {
                let raced = e
                    .as_service_error()
                    .and_then(|s| s.meta().message())
                    .is_some_and(|m| m.contains("ConditionalCheckFailed"));
                if raced {
                    Error::data(format!(
                        "nothing imported: a version of {path} was created by someone else \
                         during the import; run the same import again"
                    ))
                } else {
                    self.ddb_error(format!("importing {} versions into {path} (one transaction: nothing was written)", todo.len()), e)
                }
            })?;
        Ok(())
    }

    /// The active versions of an original ecs-secrets table, decrypted, sorted by name and
    /// serial. One KMS Decrypt per distinct data key.
    pub(super) async fn read_legacy(
        &self,
        source: &str,
        max_payload: usize,
    ) -> Result<Vec<(String, u64, Payload)>> {
        let items = scan_all(
            &self.ddb,
            source,
            &format!("reading the ecs-secrets table {source}"),
            "; check --from-ecs-secrets-table (the original tool named it \
             ECS-Secrets-<app>-Secrets) and the region",
        )
        .await?;
        let mut keys: HashMap<String, Zeroizing<Vec<u8>>> = HashMap::new();
        let mut out = Vec::new();
        for item in &items {
            // Every item is accounted for: one is imported (Active true), left out as
            // revoked (Active false), or refused, naming it, with nothing imported.
            let name = typed_s(item, "Name");
            let serial = typed_n(item, "Serial");
            let shown = format!(
                "{source}: {} serial {}",
                match &name {
                    Ok(Some(n)) => printable(n).to_string(),
                    _ => "<no valid Name>".into(),
                },
                match &serial {
                    Ok(Some(n)) => n.to_string(),
                    _ => "<no valid Serial>".into(),
                }
            );
            let refuse = |why: String| {
                Error::data(format!(
                    "{shown}: {why}; nothing was imported (the original tool writes Name as S, Serial as N and Active as BOOL: fix the item in the source, Active false to leave it out)"
                ))
            };
            let active = required(typed_bool(item, "Active"), "Active").map_err(refuse)?;
            if !active {
                continue;
            }
            let name = required(name, "Name").map_err(refuse)?;
            let serial = required(serial, "Serial").map_err(refuse)?;
            let name = crate::config::validate_name(name).map_err(|e| {
                Error::data(format!(
                    "{shown} cannot be imported: {e}; rename it in the source first"
                ))
            })?;
            if serial == 0 {
                return Err(Error::data(format!(
                    "{shown}: no valid Serial attribute; it cannot be imported"
                )));
            }
            let (Some(data), Some(dk)) = (s(item, "EncryptedData"), s(item, "EncryptedDataKey"))
            else {
                return Err(Error::data(format!(
                    "{shown}: no EncryptedData or EncryptedDataKey attribute; it cannot be imported"
                )));
            };
            if !keys.contains_key(dk) {
                let blob = aws_smithy_types::base64::decode(dk)
                    .map_err(|_| Error::data(format!("{shown}: EncryptedDataKey is not base64")))?;
                let resp = self
                    .kms
                    .decrypt()
                    .ciphertext_blob(Blob::new(blob))
                    .send()
                    .await
                    .map_err(|e| {
                        crate::aws::error(format!("decrypting the data key of {shown} with KMS"), e)
                    })?;
                let plain =
                    Zeroizing::new(resp.plaintext.map(Blob::into_inner).unwrap_or_default());
                keys.insert(dk.to_string(), plain);
            }
            let sealed = aws_smithy_types::base64::decode(data)
                .map_err(|_| Error::data(format!("{shown}: EncryptedData is not base64")))?;
            let payload = crypto::open_legacy(&keys[dk], &sealed).map_err(|e| {
                Error::data(format!(
                    "cannot decrypt {shown}: {e} under its data key; nothing was imported"
                ))
            })?;
            if payload.is_empty() || payload.as_bytes().contains(&0) || payload.len() > max_payload
            {
                return Err(Error::data(format!(
                    "{shown}: its value ({} bytes) cannot be stored here (empty, NUL byte, or over {max_payload} bytes); nothing was imported",
                    payload.len()
                )));
            }
            out.push((name, serial, payload));
        }
        crate::sort::sort_by(&mut out, |a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
    }
}

/// Every item of another tool's table (the original ecs-secrets, credstash), page by page,
/// read consistently. `not_found_hint` follows the error when the table does not exist.
pub(crate) async fn scan_all(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    what: &str,
    not_found_hint: &str,
) -> Result<Vec<HashMap<String, Av>>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let resp = ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| {
                let mut err = crate::aws::error(what.to_string(), e);
                if let Error::Aws {
                    kind: AwsKind::NotFound,
                    hint,
                    ..
                } = &mut err
                {
                    *hint = not_found_hint.into();
                }
                err
            })?;
        items.extend(resp.items.unwrap_or_default());
        match resp.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}
