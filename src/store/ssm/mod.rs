//! Parameter Store backend. A secret is the SecureString `<path>/<name>`; its serial is the
//! parameter version.
//!
//! Revocation, designed so that start-up reads stay one GetParametersByPath page per ten
//! secrets and nothing more:
//! - GetParametersByPath only ever sees a parameter's latest version, so the latest version
//!   must always hold the newest *active* payload.
//! - Revoking a version labels it `revoked-<serial>` (a version label; labels are per version
//!   and visible in GetParameterHistory).
//! - When the revoked version is what readers currently see, a new version is written first:
//!   a copy of the newest remaining active version (description `ecs-secrets: copy of serial
//!   K`), or, when none remains, a tombstone whose value readers skip. Copies and tombstones
//!   are internal: they are not serials, and `list`/`fetch` resolve a copy to its original.
//! - So readers never need history; admin commands read GetParameterHistory.
//! - Concurrent admin commands cannot coordinate (Parameter Store has no conditional
//!   writes), so each one, after its last write, re-reads the history and repairs the latest
//!   version until it resolves to the newest active serial (see `write.rs`).
//!
//! Parameter types: a SecureString is a secret; a String (written by other tools, stored
//! unencrypted) is read as one too, with a warning; a StringList is a list, not one value,
//! and every command refuses it, naming it. ecs-secrets writes only SecureStrings, and refuses
//! to write over a parameter of another type.
//!
//! Reading is `read` (GetParametersByPath pages, history); admin operations are `write`.

use crate::error::{Error, Result};
use crate::names::printable;
use crate::secret::{Fetched, Payload, Secret, VersionInfo};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_types::date_time::Format as DateFormat;

/// SSM standard tier limit (advanced parameters cost money and are not used).
pub const MAX_PAYLOAD: usize = 4096;
/// Page size of GetParametersByPath (SSM's maximum).
const PAGE: i32 = 10;
/// The value of a tombstone version: what readers see once every version is revoked.
pub const TOMBSTONE: &str = "ecs-secrets:revoked:no-active-version";
const COPY_PREFIX: &str = "ecs-secrets: copy of serial ";
const TOMBSTONE_DESCRIPTION: &str = "ecs-secrets: every version revoked";
/// Set on every ordinary version: SSM carries a parameter's description over to a new
/// version written without one, so a version after a copy must say what it is.
const VERSION_DESCRIPTION: &str = "ecs-secrets: secret version";

fn revoked_label(serial: u64) -> String {
    format!("revoked-{serial}")
}

pub(crate) fn check_payload(p: &Payload) -> Result<()> {
    match p.as_str() {
        None => Err(Error::usage(
            "the payload is not UTF-8 text, which Parameter Store cannot hold: use the dynamodb backend for binary values",
        )),
        Some(TOMBSTONE) => Err(Error::usage(
            "that payload is reserved by ecs-secrets to mark revoked secrets",
        )),
        Some(_) => Ok(()),
    }
}

mod read;
mod write;

#[derive(Clone)]
pub struct SsmStore {
    client: aws_sdk_ssm::Client,
    kms_key: Option<String>,
    recursive: bool,
}

/// One entry of a parameter's history, as we interpret it.
#[derive(Debug)]
struct Hist {
    version: u64,
    kind: Kind,
    revoked: bool,
    created: String,
    ptype: Option<ParameterType>,
}

#[derive(Debug, PartialEq)]
enum Kind {
    Real,
    Copy(u64),
    Tombstone,
}

/// How a parameter of this type is treated: `Ok(true)` a String (read, with a warning),
/// `Ok(false)` a SecureString, an error for a StringList or anything else.
fn check_type(full_name: &str, t: Option<&ParameterType>) -> Result<bool> {
    match t {
        Some(ParameterType::SecureString) => Ok(false),
        Some(ParameterType::String) => Ok(true),
        Some(ParameterType::StringList) => Err(Error::data(format!(
            "{} is a StringList parameter: a list is not one secret value, and ecs-secrets \
             reads only SecureString (and String) parameters; move it out of the path",
            printable(full_name)
        ))),
        other => Err(Error::data(format!(
            "{} is a parameter of type {}, which ecs-secrets does not read; move it out of \
             the path",
            printable(full_name),
            other.map_or("(none)", |t| t.as_str())
        ))),
    }
}

/// Say once per process that a String parameter is served: it is stored unencrypted.
fn warn_plain(full_name: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.iter().any(|s| s == full_name) {
        seen.push(full_name.to_string());
        crate::log::warn(format_args!(
            "{} is a String parameter, stored unencrypted; it is read as a secret, but should be \
             a SecureString (delete it and create it again with ecs-secrets create)",
            printable(full_name)
        ));
    }
}

fn full(path: &str, name: &str) -> String {
    format!("{path}/{name}")
}

fn date(d: Option<&aws_smithy_types::DateTime>) -> String {
    d.and_then(|d| d.fmt(DateFormat::DateTime).ok())
        .unwrap_or_default()
}

impl SsmStore {
    pub fn new(client: aws_sdk_ssm::Client, kms_key: Option<String>, recursive: bool) -> Self {
        SsmStore {
            client,
            kms_key,
            recursive,
        }
    }
}

fn serial_list(hist: &[Hist]) -> String {
    let s: Vec<String> = hist
        .iter()
        .filter(|h| h.kind == Kind::Real)
        .map(|h| h.version.to_string())
        .collect();
    if s.is_empty() {
        "none".into()
    } else {
        s.join(", ")
    }
}
