//! rotate-key: a new data-key generation, re-sealing, and deleting unused keys.

use super::*;
use crate::error::{Error, Result};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use std::collections::BTreeSet;

impl DynamoStore {
    /// rotate-key: a new data-key generation; every active version re-sealed under it (a
    /// concurrent revoke wins); then data keys no version uses are deleted. Returns the new
    /// generation and how many versions were re-sealed.
    pub async fn rotate_key(&self, path: &str) -> Result<(u64, usize)> {
        let (part, _) = self.partition(path).await?;
        let newest = part.keys.keys().next_back().copied().unwrap_or(0);
        let generation = newest + 1;
        let new_key = self.new_key(path, generation).await?.ok_or_else(|| {
            Error::data(format!(
                "data key generation {generation} of {path} appeared meanwhile: another rotate-key is running; try again when it is done"
            ))
        })?;
        // From here on, creates that chose an older generation re-seal themselves.
        for k in part.keys.values().filter(|k| !k.retired) {
            self.retire(path, k.generation).await?;
        }
        // Read again: versions written before the retirement are all visible now.
        let (part, _) = self.partition(path).await?;
        let stale: Vec<&Version> = part
            .versions
            .iter()
            .filter(|v| v.sealed.as_ref().is_some_and(|(_, _, g)| *g != generation))
            .collect();
        let keys = self.keys_for(path, &part, &stale).await?;
        let mut resealed = 0;
        for v in &stale {
            let payload = self.open(path, v, &keys)?;
            let (_, nonce, from) = v.sealed.as_ref().expect("filtered on sealed");
            if self
                .reseal(path, &v.name, v.serial, *from, nonce, &new_key, &payload)
                .await?
                .is_some()
            {
                resealed += 1;
            }
        }
        drop(keys);
        // Delete retired keys that nothing references any more.
        let (part, _) = self.partition(path).await?;
        let used: BTreeSet<u64> = part
            .versions
            .iter()
            .filter_map(|v| v.sealed.as_ref().map(|(_, _, g)| *g))
            .collect();
        for k in part.keys.values() {
            if k.retired && !used.contains(&k.generation) {
                self.delete_key(path, k.generation).await?;
            }
        }
        Ok((generation, resealed))
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
