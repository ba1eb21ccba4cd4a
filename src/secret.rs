//! Secret values: zeroized on drop, never printed by `Debug`.

use std::fmt;
use zeroize::Zeroizing;

/// A plaintext payload. The bytes are wiped when the value is dropped, and `Debug`
/// prints only the length so a stray `{:?}` cannot leak it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Payload(Zeroizing<Vec<u8>>);

impl Payload {
    pub fn new(bytes: Vec<u8>) -> Self {
        Payload(Zeroizing::new(bytes))
    }
    pub fn from_string(s: String) -> Self {
        Payload::new(s.into_bytes())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The payload as UTF-8 text, when it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// One version of one secret as read from a store.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The name relative to the path it was read from (`DB_PASSWORD`, or `db/password` when
    /// read recursively).
    pub name: String,
    /// Informational: on ssm this is the parameter's latest version, which after a
    /// revocation is an internal copy's version rather than the serial it copies (`fetch`
    /// and `list` resolve copies; start-up reads do not need to).
    pub serial: u64,
    pub payload: Payload,
}

/// Metadata of one version, never with a payload (for `list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub name: String,
    pub serial: u64,
    pub active: bool,
    /// RFC 3339, UTC.
    pub created: String,
    /// secretsmanager: the version id of a version not written by ecs-secrets (`serial` is
    /// then 0, printed as `null`).
    pub version_id: Option<String>,
}

impl VersionInfo {
    /// `"version_id":"…",` for a version without a serial, else nothing.
    pub fn version_id_json(&self) -> String {
        match &self.version_id {
            Some(id) => format!(
                "\"version_id\":{},",
                serde_json::to_string(id).expect("a str always serializes")
            ),
            None => String::new(),
        }
    }
}

/// A serial as JSON: serials start at 1, so 0 (a secretsmanager version written by
/// others) is `null`.
pub fn serial_json(serial: u64) -> String {
    if serial == 0 {
        "null".into()
    } else {
        serial.to_string()
    }
}

/// The answer to `fetch`: a revoked version has no payload.
#[derive(Debug)]
pub struct Fetched {
    pub name: String,
    pub serial: u64,
    pub active: bool,
    pub payload: Option<Payload>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret {
            name: "DB".into(),
            serial: 3,
            payload: Payload::from_string("hunter2-very-secret".into()),
        };
        let shown = format!("{s:?} {:?}", s.payload);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted 19 bytes>"), "{shown}");
    }
}
