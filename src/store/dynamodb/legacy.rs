//! import from an original AWS Labs ecs-secrets table.

use super::*;
use crate::crypto::{self, Binding};
use crate::error::{AwsKind, Error, Result};
use crate::names::printable;
use crate::secret::Payload;
use aws_smithy_types::Blob;
use std::collections::{BTreeSet, HashMap};
use zeroize::Zeroizing;

impl DynamoStore {
    /// import: every active version of an original AWS Labs ecs-secrets table, re-created
    /// under `path` with the same names and serials. All are read, decrypted and checked
    /// before anything is written; a serial that exists already under `path` is an error.
    pub async fn import_legacy(
        &self,
        path: &str,
        source: &str,
        max_payload: usize,
    ) -> Result<Vec<(String, u64)>> {
        let legacy = self.read_legacy(source, max_payload).await?;
        self.import_versions(path, &legacy).await
    }

    /// Write already-checked versions `(name, serial, payload)` under `path` with exactly
    /// those serials, in order (the write half of every import). A serial that exists
    /// already under `path`, or names that would set one environment name twice, are an
    /// error before anything is written.
    pub async fn import_versions(
        &self,
        path: &str,
        legacy: &[(String, u64, Payload)],
    ) -> Result<Vec<(String, u64)>> {
        // Refuse before writing anything when a serial is taken.
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
        let taken: Vec<String> = legacy
            .iter()
            .filter(|(n, s, _)| existing.contains(&(n.clone(), *s)))
            .map(|(n, s, _)| format!("{path}/{n} serial {s}"))
            .collect();
        if !taken.is_empty() {
            return Err(Error::data(format!(
                "nothing imported: serials that exist already under {path} would be overwritten ({}); import into a fresh --path",
                taken.join(", ")
            )));
        }
        if legacy.is_empty() {
            return Ok(Vec::new());
        }
        let pk = self.current_key(path).await?;
        let created = now_rfc3339();
        let mut out = Vec::new();
        for (name, serial, payload) in legacy {
            let at = Binding {
                path,
                name,
                serial: *serial,
                generation: pk.generation,
            };
            let sealed = crypto::seal(&pk.key, &at, payload.as_bytes())
                .map_err(|e| Error::io(format!("cannot encrypt {path}/{name}: {e}")))?;
            let token = write_token()?;
            let kept = match self
                .put_version(path, name, *serial, &pk, &sealed, &created, &token)
                .await?
            {
                Put::Done => {
                    self.settle(path, name, *serial, &pk, &sealed.nonce, &token, payload)
                        .await?
                }
                Put::Taken => false,
            };
            if !kept {
                return Err(Error::data(format!(
                    "{path}/{name} serial {serial} was created by someone else during the import; imported so far: {}",
                    out.iter()
                        .map(|(n, s): &(String, u64)| format!("{n} serial {s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            out.push((name.clone(), *serial));
        }
        Ok(out)
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
