//! Reading: a path through BatchGetSecretValue pages, one secret for `fetch`, `list`.

use super::{is_tombstone, prefix, secret_id, serial_of, SmStore, CURRENT, PAGE};
use crate::error::{AwsKind, Error, Result};
use crate::names::printable;
use crate::secret::{Fetched, Payload, Secret, VersionInfo};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

/// The name of a secret as an `Errors` entry gives it: a name, or an ARN whose last part is
/// the name plus Secrets Manager's `-XXXXXX` suffix.
fn error_secret_name(id: &str) -> Option<String> {
    if !id.starts_with("arn:") {
        return Some(id.to_string());
    }
    let (_, rest) = id.split_once(":secret:")?;
    let cut = rest.len().checked_sub(7)?;
    (rest.as_bytes().get(cut) == Some(&b'-')).then(|| rest[..cut].to_string())
}

/// Whether an `Errors` entry says the secret is scheduled for deletion (not a secret of the
/// path any more, so skipped rather than failing the read).
fn is_deleted(code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code == "InvalidRequestException"
        && (m.contains("marked for deletion") || m.contains("marked deleted"))
}

impl SmStore {
    /// The relative name of `full` when it is a secret of the path: directly under it, or
    /// nested when recursive. The name filter is a case-insensitive prefix match, so
    /// `prod/grafana2/…` and `Prod/Grafana/…` come back too and are dropped here.
    fn relative<'a>(&self, prefix: &str, full: &'a str) -> Option<&'a str> {
        let rel = full.strip_prefix(prefix)?;
        if rel.is_empty() || (!self.recursive && rel.contains('/')) {
            return None;
        }
        Some(rel)
    }
}

pub(super) async fn read_path(s: &SmStore, path: &str) -> Result<Vec<Secret>> {
    let prefix = prefix(path);
    let context = || format!("reading {path} in Secrets Manager");
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values(&prefix)
        .build();
    let mut out: Vec<Secret> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0u32;
    loop {
        let resp = s
            .client
            .batch_get_secret_value()
            .filters(filter.clone())
            .max_results(PAGE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| crate::aws::error(context(), e))?;
        pages += 1;
        for e in resp.errors.unwrap_or_default() {
            let id = e.secret_id.unwrap_or_default();
            let code = e.error_code.unwrap_or_else(|| "UnknownError".into());
            let msg = e.message.unwrap_or_default();
            let name = error_secret_name(&id);
            if let Some(n) = &name {
                if s.relative(&prefix, n).is_none() {
                    continue; // not a secret of this path: its error is not ours
                }
            }
            if is_deleted(&code, &msg) {
                crate::log::debug(format_args!(
                    "{}: scheduled for deletion, skipped",
                    printable(&id)
                ));
                continue;
            }
            return Err(Error::Aws {
                kind: crate::aws::kind_of_code(&code),
                context: context(),
                detail: printable(&format!("secret {id}: {code}: {msg}")),
                hint: if crate::aws::kind_of_code(&code) == AwsKind::AccessDenied {
                    "; grant the role secretsmanager:GetSecretValue on it and kms:Decrypt on its key (`ecs-secrets setup --backend secretsmanager` prints the policy)".into()
                } else {
                    String::new()
                },
            });
        }
        for v in resp.secret_values.unwrap_or_default() {
            let Some(full) = v.name.as_deref() else {
                continue;
            };
            let Some(rel) = s.relative(&prefix, full) else {
                continue;
            };
            let vid = v.version_id.as_deref().unwrap_or("");
            if is_tombstone(vid) {
                continue;
            }
            // BatchGetSecretValue answers AWSCURRENT; say so if a service ever did otherwise.
            if !v
                .version_stages
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|st| st == CURRENT)
            {
                return Err(Error::data(format!(
                    "{}: Secrets Manager answered a version that is not AWSCURRENT",
                    printable(full)
                )));
            }
            let payload = value(&printable(full), v.secret_string, v.secret_binary)?;
            out.push(Secret {
                name: rel.to_string(),
                serial: serial_of(vid).unwrap_or(0),
                payload,
            });
        }
        match resp.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    crate::log::debug(format_args!(
        "{path}: {} secrets in {pages} BatchGetSecretValue page(s)",
        out.len()
    ));
    Ok(out)
}

pub(super) async fn fetch(
    s: &SmStore,
    path: &str,
    name: &str,
    serial: Option<u64>,
) -> Result<Fetched> {
    let id = secret_id(path, name);
    let Some(n) = serial else {
        return fetch_current(s, &id, name).await;
    };
    // A serial: look at its labels first, so a revoked version's value is never even read.
    let vers = s.vers(path, name).await?;
    if vers.is_empty() {
        return Err(Error::not_found(format!(
            "no secret {id} in Secrets Manager"
        )));
    }
    let v = vers
        .iter()
        .find(|v| v.serial() == Some(n))
        .ok_or_else(|| Error::not_found(format!("{id} has no serial {n}")))?;
    if !v.active() {
        return Ok(Fetched {
            name: name.to_string(),
            serial: n,
            active: false,
            payload: None,
        });
    }
    let resp = s
        .client
        .get_secret_value()
        .secret_id(&id)
        .version_id(&v.id)
        .send()
        .await
        .map_err(|e| {
            crate::aws::error(format!("fetching {id} serial {n} from Secrets Manager"), e)
        })?;
    Ok(Fetched {
        name: name.to_string(),
        serial: n,
        active: true,
        payload: Some(value(&id, resp.secret_string, resp.secret_binary)?),
    })
}

/// The newest active version is AWSCURRENT: one GetSecretValue by stage, which the readers'
/// policy allows (it denies reads by version id).
async fn fetch_current(s: &SmStore, id: &str, name: &str) -> Result<Fetched> {
    let resp = s
        .client
        .get_secret_value()
        .secret_id(id)
        .version_stage(CURRENT)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Err(Error::not_found(format!(
                "no secret {id} in Secrets Manager"
            )))
        }
        Err(e) => {
            return Err(crate::aws::error(
                format!("fetching {id} from Secrets Manager"),
                e,
            ))
        }
    };
    let vid = resp.version_id.clone().unwrap_or_default();
    if is_tombstone(&vid) {
        return Err(Error::not_found(format!(
            "{id} has no active version (every version is revoked)"
        )));
    }
    Ok(Fetched {
        name: name.to_string(),
        serial: serial_of(&vid).unwrap_or(0),
        active: true,
        payload: Some(value(id, resp.secret_string, resp.secret_binary)?),
    })
}

fn value(
    id: &str,
    text: Option<String>,
    binary: Option<aws_smithy_types::Blob>,
) -> Result<Payload> {
    match (text, binary) {
        (Some(t), _) => Ok(Payload::from_string(t)),
        (None, Some(b)) => Ok(Payload::new(b.into_inner())),
        (None, None) => Err(Error::data(format!(
            "{id}: Secrets Manager returned no value"
        ))),
    }
}

/// Names under the path come from ListSecrets (metadata only, never values); versions from
/// ListSecretVersionIds per name.
pub(super) async fn list(s: &SmStore, path: &str, all_versions: bool) -> Result<Vec<VersionInfo>> {
    let names = names(s, path).await?;
    let mut out = Vec::new();
    for n in names {
        let vers = match s.vers(path, &n).await {
            Ok(v) => v,
            // Deleted (or scheduled for deletion) since ListSecrets answered.
            Err(Error::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        if all_versions {
            out.extend(
                vers.iter()
                    .filter(|v| !is_tombstone(&v.id))
                    .map(|v| v.info(&n)),
            );
        } else if let Some(v) = vers.iter().find(|v| v.current() && v.active()) {
            out.push(v.info(&n));
        }
    }
    Ok(out)
}

/// The names of the path's secrets (ListSecrets pages only; nested ones as the store's
/// `--recursive` says), sorted; secrets scheduled for deletion left out.
pub(super) async fn names(s: &SmStore, path: &str) -> Result<Vec<String>> {
    let prefix = prefix(path);
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values(&prefix)
        .build();
    let mut names: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = s
            .client
            .list_secrets()
            .filters(filter.clone())
            .max_results(100)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("listing {path} in Secrets Manager"), e))?;
        for e in resp.secret_list.unwrap_or_default() {
            if e.deleted_date.is_some() {
                continue;
            }
            if let Some(rel) = e.name.as_deref().and_then(|n| s.relative(&prefix, n)) {
                names.push(rel.to_string());
            }
        }
        match resp.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    crate::sort::sort(&mut names);
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_entries_name_their_secret() {
        assert_eq!(error_secret_name("prod/g/DB").as_deref(), Some("prod/g/DB"));
        assert_eq!(
            error_secret_name("arn:aws:secretsmanager:us-east-1:1:secret:prod/g/DB-AbC123")
                .as_deref(),
            Some("prod/g/DB")
        );
        assert_eq!(error_secret_name("arn:aws:secretsmanager:x"), None);
        assert!(is_deleted(
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion."
        ));
        assert!(!is_deleted("AccessDeniedException", "marked for deletion"));
    }
}
