//! The token files aws-config reads itself, checked by us first.
//!
//! aws-config reads `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (ECS, EKS Pod Identity) and
//! `AWS_WEB_IDENTITY_TOKEN_FILE` (IRSA) with a blocking, unbounded `std::fs::read` inside an
//! async function, and offers no way to bound it: a FIFO there stalls the runtime thread for
//! ever (neither `--timeout` nor a `--refresh` deadline can fire), `/dev/zero` grows without
//! end. So every time the credentials are resolved (at start, and at each renewal during
//! `--refresh` or in the daemon), the files those variables name are checked first through
//! [`crate::fsread`]: a regular file (symlinks followed) of at most [`MAX_TOKEN_FILE`]
//! bytes; anything else fails the resolution at once, naming the variable and the path.
//!
//! The shared config and credentials files (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`,
//! by default `~/.aws/config` and `~/.aws/credentials`) aws-config would read the same way;
//! those it can be handed as text, so we read them ourselves ([`profile_files`]), bounded,
//! and it never opens them.
//!
//! What remains: the SDK opens a token file's path again after our check, so a file replaced between
//! the two by a FIFO would still block. Replacing it takes write access to its directory,
//! which the orchestrator's mount (a read-only projected volume) does not give.

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use std::path::Path;

/// The largest token file accepted: an EKS service-account JWT is about 1 KiB, an ECS or
/// Pod Identity authorization token less.
pub const MAX_TOKEN_FILE: u64 = 64 << 10;

/// The token files aws-config would read with this environment, and the variable naming
/// each. A file is named only when the provider that reads it is configured: the container
/// provider (a credentials URI set), the web identity provider (a role ARN set).
fn token_files(get: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
    let set = |k: &str| get(k).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    let container = set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some();
    if container {
        if let Some(p) = set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            out.push(("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", p));
        }
    }
    if set("AWS_ROLE_ARN").is_some() {
        if let Some(p) = set("AWS_WEB_IDENTITY_TOKEN_FILE") {
            out.push(("AWS_WEB_IDENTITY_TOKEN_FILE", p));
        }
    }
    out
}

/// `Err` with the reason when a token file aws-config is about to read is not a regular file
/// of at most [`MAX_TOKEN_FILE`] bytes. A missing file is left to aws-config, which says so.
pub fn check_token_files() -> Result<(), String> {
    for (var, path) in token_files(|k| std::env::var(k).ok()) {
        match crate::fsread::open_regular(Path::new(&path), MAX_TOKEN_FILE) {
            Ok(_) | Err(crate::fsread::FileError::Missing) => {}
            Err(e) => {
                return Err(format!(
                    "{var}={}: cannot read it: {e}; it must name the token file the \
                     orchestrator mounts (a regular file of at most {} KiB)",
                    crate::names::printable(&path),
                    MAX_TOKEN_FILE >> 10
                ))
            }
        }
    }
    Ok(())
}

/// No shared config or credentials file at all.
#[allow(deprecated)]
pub fn no_profile_files() -> aws_config::profile::profile_file::ProfileFiles {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    // At least one file is required (its builder panics otherwise): an empty one is none.
    ProfileFiles::builder()
        .include_default_config_file(false)
        .include_default_credentials_file(false)
        .with_contents(ProfileFileKind::Config, "")
        .build()
}

/// Whether `path` is the null device (`/dev/null` or another name for it): always empty and
/// never blocking, so a profile file there is simply none.
fn is_dev_null(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    std::fs::metadata(path)
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3))
}

/// The largest shared config or credentials file read: real ones are a few KiB.
pub const MAX_PROFILE_FILE: u64 = 1 << 20;

/// The shared config and credentials files, read through [`crate::fsread`] and handed to
/// aws-config as text, where aws-config would look for them (the variable, else the
/// default under `$HOME`; a leading `~` is `$HOME`). As aws-config does, a file that does
/// not exist or cannot be opened (permissions) counts as empty. `Err` for one that is not
/// a regular file or larger than [`MAX_PROFILE_FILE`].
// aws-config names these types only through deprecated aliases (the new names live in
// aws-runtime, not a dependency of ours).
#[allow(deprecated)]
pub fn profile_files() -> Result<aws_config::profile::profile_file::ProfileFiles, String> {
    use crate::fsread::FileError;
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let home = std::env::var_os("HOME");
    // At least one file is required (its builder panics otherwise): an empty one is none.
    let mut files = ProfileFiles::builder()
        .include_default_config_file(false)
        .include_default_credentials_file(false)
        .with_contents(ProfileFileKind::Config, "");
    for (kind, var, default) in [
        (ProfileFileKind::Config, "AWS_CONFIG_FILE", "~/.aws/config"),
        (
            ProfileFileKind::Credentials,
            "AWS_SHARED_CREDENTIALS_FILE",
            "~/.aws/credentials",
        ),
    ] {
        let named = std::env::var_os(var);
        let raw = std::path::PathBuf::from(named.clone().unwrap_or_else(|| default.into()));
        let path = match (raw.strip_prefix("~"), &home) {
            (Ok(rest), Some(h)) => Path::new(h).join(rest),
            _ => raw.clone(),
        };
        if is_dev_null(&path) {
            continue; // "no such file", as the AWS CLI reads it
        }
        match crate::fsread::read_bounded(&path, MAX_PROFILE_FILE) {
            Ok(bytes) => {
                files = files.with_contents(kind, String::from_utf8_lossy(&bytes).into_owned())
            }
            Err(FileError::Missing | FileError::Io(_)) => {}
            Err(e) => {
                let shown = crate::names::printable(&path.to_string_lossy());
                let named = if named.is_some() {
                    format!("{var}={shown}")
                } else {
                    format!("{shown} (the default of {var})")
                };
                return Err(format!(
                    "{named}: cannot read it: {e}; it must be an AWS {} file (a regular file \
                     of at most {} MiB), or set {var}=/dev/null to use none",
                    if var == "AWS_CONFIG_FILE" {
                        "config"
                    } else {
                        "credentials"
                    },
                    MAX_PROFILE_FILE >> 20
                ));
            }
        }
    }
    Ok(files.build())
}

/// A credential source that always fails with the reason.
#[derive(Debug)]
pub struct Refuse(pub String);

impl ProvideCredentials for Refuse {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::invalid_configuration(
            TokenFileUnusable(self.0.clone()),
        )))
    }
}

/// A file aws-config would read that cannot be read safely: the text names the variable, the path, what is
/// wrong and the fix.
#[derive(Debug)]
pub struct TokenFileUnusable(pub String);

impl std::fmt::Display for TokenFileUnusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokenFileUnusable {}

/// The credential chain, with the token files checked before every resolution.
#[derive(Debug)]
pub struct CheckedTokenFiles(pub SharedCredentialsProvider);

impl ProvideCredentials for CheckedTokenFiles {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        match check_token_files() {
            Ok(()) => self.0.provide_credentials(),
            Err(reason) => future::ProvideCredentials::ready(Err(
                CredentialsError::invalid_configuration(TokenFileUnusable(reason)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_of_configured_providers_are_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(token_files(env(&[("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t")])).is_empty());
        assert_eq!(
            token_files(env(&[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://x"),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/w"),
            ])),
            vec![("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t".to_string())]
        );
        assert_eq!(
            token_files(env(&[
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/w"),
            ])),
            vec![("AWS_WEB_IDENTITY_TOKEN_FILE", "/w".to_string())]
        );
    }
}
