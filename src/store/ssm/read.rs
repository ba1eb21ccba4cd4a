//! Parameter Store, the read path: a path (GetParametersByPath pages), one secret
//! (`fetch`), a secret's versions and a path's listing (`versions`, `list`), every name
//! (`names`).

use super::*;

impl SsmStore {
    /// Every parameter under `path` (recursively when `recursive`), page by page, handed to
    /// `each` with its name relative to the path. A page may be short or even empty and still
    /// carry a token: it is followed until absent. Returns the number of pages.
    async fn by_path(
        &self,
        path: &str,
        recursive: bool,
        decrypt: bool,
        what: &str,
        mut each: impl FnMut(String, aws_sdk_ssm::types::Parameter),
    ) -> Result<u32> {
        let prefix = format!("{path}/");
        let mut token: Option<String> = None;
        let mut pages = 0u32;
        loop {
            let resp = self
                .client
                .get_parameters_by_path()
                .path(path)
                .recursive(recursive)
                .with_decryption(decrypt)
                .max_results(PAGE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    crate::aws::error(format!("{what} {path} in SSM Parameter Store"), e)
                })?;
            pages += 1;
            for p in resp.parameters.unwrap_or_default() {
                if let Some(rel) = p.name.as_deref().and_then(|n| n.strip_prefix(&prefix)) {
                    each(rel.to_string(), p);
                }
            }
            match resp.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(pages),
            }
        }
    }

    pub async fn read_path(&self, path: &str) -> Result<Vec<Secret>> {
        let mut out = Vec::new();
        let mut refused: Option<Error> = None;
        let pages = self
            .by_path(path, self.recursive, true, "reading", |name, p| {
                let plain = match check_type(&full(path, &name), p.r#type.as_ref()) {
                    Ok(plain) => plain,
                    Err(e) => {
                        refused.get_or_insert(e);
                        return;
                    }
                };
                let Some(value) = p.value else { return };
                let payload = Payload::from_string(value);
                if payload.as_bytes() != TOMBSTONE.as_bytes() {
                    if plain {
                        warn_plain(&full(path, &name));
                    }
                    out.push(Secret {
                        name,
                        serial: p.version.max(0) as u64,
                        payload,
                    });
                }
            })
            .await?;
        if let Some(e) = refused {
            return Err(e);
        }
        crate::log::debug(format_args!(
            "{path}: {} secrets in {pages} GetParametersByPath page(s)",
            out.len()
        ));
        Ok(out)
    }

    pub(super) async fn history(&self, path: &str, name: &str) -> Result<Vec<Hist>> {
        let full_name = full(path, name);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .get_parameter_history()
                .name(&full_name)
                .with_decryption(false)
                .max_results(50)
                .set_next_token(token.take())
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_parameter_not_found()) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => {
                    return Err(crate::aws::error(
                        format!("reading the history of {full_name}"),
                        e,
                    ))
                }
            };
            for h in resp.parameters.unwrap_or_default() {
                let version = h.version.max(0) as u64;
                let labels = h.labels.unwrap_or_default();
                let desc = h.description.unwrap_or_default();
                let kind = if desc == TOMBSTONE_DESCRIPTION {
                    Kind::Tombstone
                } else if let Some(k) = desc
                    .strip_prefix(COPY_PREFIX)
                    .and_then(|k| k.parse::<u64>().ok())
                {
                    Kind::Copy(k)
                } else {
                    Kind::Real
                };
                out.push(Hist {
                    version,
                    kind,
                    revoked: labels.contains(&revoked_label(version)),
                    created: date(h.last_modified_date.as_ref()),
                    ptype: h.r#type,
                });
            }
            match resp.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        crate::sort::sort_by(&mut out, |a, b| a.version.cmp(&b.version));
        Ok(out)
    }

    /// The value of one version, decrypted.
    pub(super) async fn value_of(&self, path: &str, name: &str, serial: u64) -> Result<Payload> {
        let selector = format!("{}:{serial}", full(path, name));
        let resp = self
            .client
            .get_parameter()
            .name(&selector)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("reading {selector}"), e))?;
        let value = resp
            .parameter
            .and_then(|p| p.value)
            .ok_or_else(|| Error::data(format!("{selector} came back without a value")))?;
        Ok(Payload::from_string(value))
    }

    pub async fn fetch(&self, path: &str, name: &str, serial: Option<u64>) -> Result<Fetched> {
        let hist = self.history(path, name).await?;
        let full_name = full(path, name);
        if hist.is_empty() {
            return Err(Error::not_found(format!("no secret {full_name}")));
        }
        let h = match serial {
            None => hist
                .iter()
                .filter(|h| h.kind == Kind::Real && !h.revoked)
                .max_by_key(|h| h.version)
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "{full_name} has no active version: every serial is revoked"
                    ))
                })?,
            Some(s) => hist
                .iter()
                .find(|h| h.version == s && h.kind == Kind::Real)
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "{full_name} has no serial {s} (serials: {})",
                        serial_list(&hist)
                    ))
                })?,
        };
        if check_type(&full_name, h.ptype.as_ref())? {
            warn_plain(&full_name);
        }
        if h.revoked {
            return Ok(Fetched {
                name: name.to_string(),
                serial: h.version,
                active: false,
                payload: None,
            });
        }
        let payload = self.value_of(path, name, h.version).await?;
        Ok(Fetched {
            name: name.to_string(),
            serial: h.version,
            active: true,
            payload: Some(payload),
        })
    }

    pub async fn versions(&self, path: &str, name: &str) -> Result<Vec<VersionInfo>> {
        Ok(self
            .history(path, name)
            .await?
            .into_iter()
            .filter(|h| h.kind == Kind::Real)
            .map(|h| VersionInfo {
                name: name.to_string(),
                serial: h.version,
                active: !h.revoked,
                created: h.created,
                version_id: None,
            })
            .collect())
    }

    pub async fn list(&self, path: &str, all_versions: bool) -> Result<Vec<VersionInfo>> {
        let mut names = Vec::new();
        let mut refused: Option<Error> = None;
        self.by_path(
            path,
            self.recursive,
            false,
            "listing",
            |name, p| match check_type(&full(path, &name), p.r#type.as_ref()) {
                Ok(_) => names.push(name),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            },
        )
        .await?;
        if let Some(e) = refused {
            return Err(e);
        }
        crate::sort::sort(&mut names);
        let mut out = Vec::new();
        for name in names {
            let versions = self.versions(path, &name).await?;
            if all_versions {
                out.extend(versions);
            } else if let Some(v) = versions
                .into_iter()
                .filter(|v| v.active)
                .max_by_key(|v| v.serial)
            {
                out.push(v);
            }
        }
        Ok(out)
    }
}

impl SsmStore {
    /// Every name under `path`, nested ones included whatever `--recursive` says (for the
    /// environment-name collision check: a recursive reader sees them).
    pub async fn names(&self, path: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        self.by_path(path, true, false, "listing", |name, _| names.push(name))
            .await?;
        Ok(names)
    }
}

impl SsmStore {
    /// The region the clients send to, for messages.
    pub fn region(&self) -> Option<String> {
        self.client
            .config()
            .region()
            .map(|r| r.as_ref().to_string())
    }
}
