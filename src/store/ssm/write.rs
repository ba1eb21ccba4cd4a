//! Parameter Store, the write path: create and revoke (see the parent module for how
//! revocation is recorded).

use super::*;
use aws_sdk_ssm::types::ParameterType;

impl SsmStore {
    async fn put(&self, full_name: &str, value: &str, description: &str) -> Result<u64> {
        let resp = self
            .client
            .put_parameter()
            .name(full_name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .set_key_id(self.kms_key.clone())
            .description(description)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| {
                crate::aws::error_redacted(
                    format!("writing {full_name} to SSM Parameter Store"),
                    e,
                    Some(value.as_bytes()),
                )
            })?;
        Ok(resp.version.max(0) as u64)
    }

    pub async fn create(&self, path: &str, name: &str, payload: &Payload) -> Result<u64> {
        let value = payload
            .as_str()
            .expect("checked as UTF-8 by Store::check_payload");
        self.put(&full(path, name), value, VERSION_DESCRIPTION)
            .await
    }

    pub async fn revoke(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        let hist = self.history(path, name).await?;
        let full_name = full(path, name);
        if hist.is_empty() {
            return Err(Error::not_found(format!("no secret {full_name}")));
        }
        let Some(target) = hist
            .iter()
            .find(|h| h.version == serial && h.kind == Kind::Real)
        else {
            return Err(Error::not_found(format!(
                "{full_name} has no serial {serial} (serials: {})",
                serial_list(&hist)
            )));
        };
        let already = target.revoked;
        // What readers must see once `serial` is revoked, and what they see now.
        let wanted = hist
            .iter()
            .filter(|h| h.kind == Kind::Real && !h.revoked && h.version != serial)
            .map(|h| h.version)
            .max();
        let current = visible(&hist);
        let up_to_date = match (&current, wanted) {
            (Visible::Active(v), Some(w)) => *v == w,
            (Visible::Nothing, None) => true,
            _ => false,
        };
        if !up_to_date {
            match wanted {
                Some(k) => {
                    let v = self.value_of(path, name, k).await?;
                    let value = v.as_str().unwrap_or_default();
                    self.put(&full_name, value, &format!("{COPY_PREFIX}{k}"))
                        .await?;
                }
                None => {
                    self.put(&full_name, TOMBSTONE, TOMBSTONE_DESCRIPTION)
                        .await?;
                }
            }
        }
        if !already {
            let resp = self
                .client
                .label_parameter_version()
                .name(&full_name)
                .parameter_version(serial as i64)
                .labels(revoked_label(serial))
                .send()
                .await
                .map_err(|e| {
                    crate::aws::error(format!("labelling {full_name} serial {serial} revoked"), e)
                })?;
            if resp.invalid_labels.is_some_and(|l| !l.is_empty()) {
                return Err(Error::data(format!(
                    "SSM refused the revocation label on {full_name} serial {serial}; \
                     a version holds at most 10 labels: remove one and revoke again"
                )));
            }
        }
        Ok(())
    }
}
