//! The table layout: item keys, attribute names, and parsing items into versions and keys.

use crate::error::{Error, Result};
use crate::inject::env::printable;
use crate::secret::VersionInfo;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_smithy_types::date_time::Format as DateFormat;
use aws_smithy_types::DateTime;
use std::collections::{BTreeMap, HashMap};

pub const A_PATH: &str = "path";
pub const A_SK: &str = "sk";
pub(super) const A_KIND: &str = "kind";
pub(super) const A_NAME: &str = "name";
pub(super) const A_SERIAL: &str = "serial";
pub(super) const A_ACTIVE: &str = "active";
pub(super) const A_CREATED: &str = "created";
pub(super) const A_CT: &str = "ciphertext";
pub(super) const A_NONCE: &str = "nonce";
pub(super) const A_GEN: &str = "generation";
pub(super) const A_BLOB: &str = "encrypted_key";
pub(super) const A_KMS_KEY: &str = "kms_key";
pub(super) const A_RETIRED: &str = "retired";
pub(super) const A_TOKEN: &str = "token";
pub(super) const KIND_VERSION: &str = "version";
pub(super) const KIND_DATAKEY: &str = "datakey";
pub(super) const VERSION_PREFIX: &str = "v#";
pub(super) const KEY_PREFIX: &str = "k#";

pub(super) type Item = HashMap<String, Av>;

pub fn version_sk(name: &str, serial: u64) -> String {
    format!("{VERSION_PREFIX}{name}#{serial:020}")
}

pub fn key_sk(generation: u64) -> String {
    format!("{KEY_PREFIX}{generation:020}")
}

pub(super) fn name_prefix(name: &str) -> String {
    format!("{VERSION_PREFIX}{name}#")
}

pub(super) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DateTime::from_secs(secs as i64)
        .fmt(DateFormat::DateTime)
        .unwrap_or_default()
}

/// `(name, serial)` of a version key; `None` unless it has exactly our shape.
pub(super) fn parse_version_sk(sk: &str) -> Option<(&str, u64)> {
    let (name, digits) = sk.strip_prefix(VERSION_PREFIX)?.rsplit_once('#')?;
    if name.is_empty() || digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, digits.parse().ok()?))
}

pub(super) fn parse_key_sk(sk: &str) -> Option<u64> {
    let digits = sk.strip_prefix(KEY_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}
pub(super) fn n(item: &Item, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
pub(super) fn b<'a>(item: &'a Item, k: &str) -> Option<&'a [u8]> {
    item.get(k).and_then(|v| v.as_b().ok()).map(|b| b.as_ref())
}
pub(super) fn flag(item: &Item, k: &str) -> Option<bool> {
    item.get(k).and_then(|v| v.as_bool().ok()).copied()
}

/// One version as stored.
#[derive(Debug)]
pub(super) struct Version {
    pub(super) name: String,
    pub(super) serial: u64,
    pub(super) active: bool,
    pub(super) created: String,
    /// ciphertext, nonce, generation: present while active (when read in full).
    pub(super) sealed: Option<(Vec<u8>, Vec<u8>, u64)>,
}

impl Version {
    pub(super) fn full_name(&self, path: &str) -> String {
        format!("{path}/{} serial {}", printable(&self.name), self.serial)
    }

    pub(super) fn info(&self) -> VersionInfo {
        VersionInfo {
            name: self.name.clone(),
            serial: self.serial,
            active: self.active,
            created: self.created.clone(),
        }
    }
}

/// One data key as stored.
#[derive(Debug)]
pub(super) struct KeyItem {
    pub(super) generation: u64,
    pub(super) blob: Vec<u8>,
    pub(super) retired: bool,
}

/// Parse a version item. Its key names it; the `name`/`serial` attributes must agree (an
/// item copied whole under another key is caught here, or else by the AEAD binding).
/// `full`: the item was read with its ciphertext, which an active version must have.
pub(super) fn parse_version(path: &str, item: &Item, full: bool) -> Result<Version> {
    let sk = s(item, A_SK).unwrap_or_default();
    let Some((name, serial)) = parse_version_sk(sk) else {
        return Err(Error::data(format!(
            "malformed version item {:?} under {path} in the secrets table; remove it or restore it from a backup",
            printable(sk)
        )));
    };
    let shown = format!("{path}/{} serial {serial}", printable(name));
    if s(item, A_NAME) != Some(name) || n(item, A_SERIAL) != Some(serial) {
        return Err(Error::data(format!(
            "{shown}: the item's name/serial attributes do not match its key (tampered with, or copied from another item); revoke it and create a new version, or restore it from a backup"
        )));
    }
    let active = flag(item, A_ACTIVE).unwrap_or(false);
    let sealed = match (b(item, A_CT), b(item, A_NONCE), n(item, A_GEN)) {
        (Some(ct), Some(nonce), Some(g)) => Some((ct.to_vec(), nonce.to_vec(), g)),
        _ => None,
    };
    if full && active && sealed.is_none() {
        return Err(Error::data(format!(
            "{shown} is marked active but has no ciphertext, nonce or data-key generation (revoked items lose them): revoke it again and create a new version"
        )));
    }
    Ok(Version {
        name: name.to_string(),
        serial,
        active,
        created: s(item, A_CREATED).unwrap_or_default().to_string(),
        sealed: if active { sealed } else { None },
    })
}

pub(super) fn parse_key(path: &str, item: &Item) -> Result<KeyItem> {
    let sk = s(item, A_SK).unwrap_or_default();
    let bad = || {
        Error::data(format!(
            "malformed data-key item {:?} under {path} in the secrets table; restore it from a backup",
            printable(sk)
        ))
    };
    let generation = parse_key_sk(sk).ok_or_else(bad)?;
    if n(item, A_GEN) != Some(generation) {
        return Err(bad());
    }
    Ok(KeyItem {
        generation,
        blob: b(item, A_BLOB).ok_or_else(bad)?.to_vec(),
        retired: flag(item, A_RETIRED).unwrap_or(false),
    })
}

/// A partition read in full.
#[derive(Debug, Default)]
pub(super) struct Partition {
    pub(super) versions: Vec<Version>,
    pub(super) keys: BTreeMap<u64, KeyItem>,
}

impl Partition {
    pub(super) fn parse(path: &str, items: &[Item], full: bool) -> Result<Partition> {
        let mut p = Partition::default();
        for item in items {
            let sk = s(item, A_SK).unwrap_or_default();
            if sk.starts_with(VERSION_PREFIX) {
                p.versions.push(parse_version(path, item, full)?);
            } else if sk.starts_with(KEY_PREFIX) {
                let k = parse_key(path, item)?;
                p.keys.insert(k.generation, k);
            }
            // Anything else is not ours (a future item kind): ignored.
        }
        p.versions
            .sort_by(|a, b| (&a.name, a.serial).cmp(&(&b.name, b.serial)));
        Ok(p)
    }

    /// For each name, its newest active version.
    pub(super) fn newest_active(&self) -> Vec<&Version> {
        let mut by_name: BTreeMap<&str, &Version> = BTreeMap::new();
        for v in self.versions.iter().filter(|v| v.active) {
            by_name.insert(&v.name, v); // sorted by serial: the last one wins
        }
        by_name.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, Av)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn version(name: &str, serial: u64, active: bool) -> Item {
        let mut i = item(&[
            (A_PATH, Av::S("/p/a".into())),
            (A_SK, Av::S(version_sk(name, serial))),
            (A_NAME, Av::S(name.into())),
            (A_SERIAL, Av::N(serial.to_string())),
            (A_ACTIVE, Av::Bool(active)),
        ]);
        if active {
            i.insert(A_CT.into(), Av::B(Blob::new(vec![1; 20])));
            i.insert(A_NONCE.into(), Av::B(Blob::new(vec![2; 12])));
            i.insert(A_GEN.into(), Av::N("1".into()));
        }
        i
    }

    #[test]
    fn sort_keys_round_trip_and_sort() {
        assert_eq!(version_sk("db.pw", 7), "v#db.pw#00000000000000000007");
        assert_eq!(
            parse_version_sk(&version_sk("a/b-c", u64::MAX)),
            Some(("a/b-c", u64::MAX))
        );
        assert!(version_sk("A", 9) < version_sk("A", 10));
        assert_eq!(parse_version_sk("v#A#12"), None);
        assert_eq!(parse_version_sk("v##00000000000000000001"), None);
        assert_eq!(parse_key_sk(&key_sk(3)), Some(3));
        // A name prefix never matches a longer name.
        assert!(!version_sk("AB", 1).starts_with(&name_prefix("A")));
    }

    #[test]
    fn newest_active_per_name() {
        let items = vec![
            version("A", 1, true),
            version("A", 2, true),
            version("A", 3, false),
            version("B", 1, false),
            version("C", 5, true),
        ];
        let p = Partition::parse("/p/a", &items, true).unwrap();
        let picked: Vec<(String, u64)> = p
            .newest_active()
            .iter()
            .map(|v| (v.name.clone(), v.serial))
            .collect();
        assert_eq!(picked, vec![("A".into(), 2), ("C".into(), 5)]);
    }

    #[test]
    fn items_that_disagree_with_their_key_or_lack_ciphertext_fail_closed() {
        let mut moved = version("A", 1, true);
        moved.insert(A_SK.into(), Av::S(version_sk("A", 9)));
        let e = Partition::parse("/p/a", &[moved], true).unwrap_err();
        assert!(e.to_string().contains("/p/a/A serial 9"), "{e}");
        let mut stripped = version("A", 1, true);
        stripped.remove(A_CT);
        let e = Partition::parse("/p/a", &[stripped], true).unwrap_err();
        assert!(e.to_string().contains("/p/a/A serial 1"), "{e}");
        // Metadata reads carry no ciphertext by design.
        let mut meta = version("A", 1, true);
        meta.remove(A_CT);
        assert!(Partition::parse("/p/a", &[meta], false).is_ok());
    }
}
