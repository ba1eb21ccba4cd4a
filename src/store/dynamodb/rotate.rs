//! rotate-key: a new data-key generation, re-sealing, and deleting unused keys.

use super::*;
use crate::error::{Error, Result};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use std::collections::BTreeSet;

/// How many times rotate-key reads the path (re-sealing what it finds) before giving up
/// to writers that keep adding versions under older keys.
const MAX_PASSES: usize = 8;

impl DynamoStore {
    /// rotate-key: a new data-key generation; every active version under an older one
    /// re-sealed under it (a concurrent revoke wins); then older keys that a strongly
    /// consistent read shows unused are deleted, and the path is read once more, so that a
    /// write that raced the delete is found and re-sealed. Versions carry their own data
    /// key, so no interleaving leaves one unreadable. A rotation that finds a newer
    /// generation stops and says so. Returns the new generation and how many versions
    /// were re-sealed.
    pub async fn rotate_key(&self, path: &str) -> Result<(u64, usize)> {
        let (part, _) = self.partition(path).await?;
        // Never reuse a generation number, not even one whose key item is gone.
        let newest = part
            .keys
            .keys()
            .copied()
            .chain(part.versions.iter().filter_map(Version::generation))
            .max()
            .unwrap_or(0);
        let generation = newest.checked_add(1).ok_or_else(|| {
            Error::data(format!(
                "cannot rotate the data key of {path}: its newest generation is {newest}, the largest a generation can be"
            ))
        })?;
        let new_key = self.new_key(path, generation).await?.ok_or_else(|| {
            Error::data(format!(
                "data key generation {generation} of {path} appeared meanwhile: another rotate-key is running; try again when it is done"
            ))
        })?;
        // From here on, creates that chose an older generation re-seal themselves.
        self.retire_older(path, &part, generation).await?;
        let mut resealed = 0;
        let mut deleted = false;
        for _ in 0..MAX_PASSES {
            // Strongly consistent: every write that landed before is visible.
            let (part, _) = self.partition(path).await?;
            if let Some(newer) = part.keys.keys().copied().find(|g| *g > generation) {
                return Err(Error::data(format!(
                    "rotate-key of {path} stopped: data key generation {newer} appeared while it ran (another rotate-key, which re-seals every version under that newer key); {resealed} version(s) had been re-sealed under generation {generation}, and nothing is lost; if that other rotate-key did not finish, run rotate-key again"
                )));
            }
            // Generation 1 of a path that had no key may have been created meanwhile.
            self.retire_older(path, &part, generation).await?;
            let stale: Vec<&Version> = part
                .versions
                .iter()
                .filter(|v| v.generation().is_some_and(|g| g < generation))
                .collect();
            if stale.is_empty() {
                if deleted {
                    return Ok((generation, resealed));
                }
                let used: BTreeSet<u64> = part
                    .versions
                    .iter()
                    .filter_map(Version::generation)
                    .collect();
                for k in part.keys.values() {
                    if k.retired && k.generation < generation && !used.contains(&k.generation) {
                        self.delete_key(path, k.generation).await?;
                    }
                }
                deleted = true;
                continue;
            }
            deleted = false;
            let keys = self.keys_for(path, &part, &stale).await?;
            for v in &stale {
                let payload = self.open(path, v, &part, &keys)?;
                let seal = v.sealed.as_ref().expect("filtered on sealed");
                if self
                    .reseal(
                        path,
                        &v.name,
                        v.serial,
                        seal.generation,
                        &seal.nonce,
                        &new_key,
                        &payload,
                    )
                    .await?
                    .is_some()
                {
                    resealed += 1;
                }
            }
        }
        Err(Error::data(format!(
            "rotate-key of {path}: versions under older data keys kept appearing ({resealed} re-sealed under generation {generation} so far; every version stays readable); run rotate-key again when the writers are done"
        )))
    }

    /// Retire every live key older than `generation`.
    async fn retire_older(&self, path: &str, part: &Partition, generation: u64) -> Result<()> {
        for k in part.keys.values() {
            if !k.retired && k.generation < generation {
                self.retire(path, k.generation).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn retire(&self, path: &str, generation: u64) -> Result<()> {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(key_sk(generation)))
            .update_expression("SET #r = :t")
            .condition_expression("attribute_exists(#sk)")
            .expression_attribute_names("#r", A_RETIRED)
            .expression_attribute_names("#sk", A_SK)
            .expression_attribute_values(":t", Av::Bool(true))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if is_conditional(&e) {
                    Ok(()) // deleted meanwhile by another rotate-key: retired enough
                } else {
                    Err(self.ddb_error(
                        format!("retiring data key generation {generation} of {path}"),
                        e,
                    ))
                }
            })
    }

    pub(super) async fn delete_key(&self, path: &str, generation: u64) -> Result<()> {
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(key_sk(generation)))
            .condition_expression("#r = :t")
            .expression_attribute_names("#r", A_RETIRED)
            .expression_attribute_values(":t", Av::Bool(true))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if is_conditional(&e) {
                    Ok(())
                } else {
                    Err(self.ddb_error(
                        format!("deleting data key generation {generation} of {path}"),
                        e,
                    ))
                }
            })
    }
}
