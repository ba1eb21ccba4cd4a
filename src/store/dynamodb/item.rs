//! The table layout: item keys, attribute names, and parsing items into versions and keys.

use crate::error::{Error, Result};
use crate::names::printable;
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

/// The DynamoDB type of an attribute value, as DynamoDB spells it.
fn type_name(v: &Av) -> &'static str {
    match v {
        Av::S(_) => "S",
        Av::N(_) => "N",
        Av::B(_) => "B",
        Av::Bool(_) => "BOOL",
        Av::Null(_) => "NULL",
        Av::L(_) => "L",
        Av::M(_) => "M",
        Av::Ss(_) => "SS",
        Av::Ns(_) => "NS",
        Av::Bs(_) => "BS",
        _ => "of an unknown type",
    }
}

/// An attribute that is present with the wrong type (or a number out of range) is never
/// read as absent: the `Err` says what is wrong with it, for the caller to name the item.
pub(super) type Typed<T> = std::result::Result<Option<T>, String>;

fn wrong(k: &str, v: &Av, want: &str) -> String {
    format!(
        "its attribute `{k}` is {} where {want} is expected",
        type_name(v)
    )
}

pub(super) fn typed_s<'a>(item: &'a Item, k: &str) -> Typed<&'a str> {
    match item.get(k) {
        None => Ok(None),
        Some(Av::S(v)) => Ok(Some(v)),
        Some(v) => Err(wrong(k, v, "a string (S)")),
    }
}
/// A number that is a u64 written in plain decimal digits (what this tool writes).
pub(super) fn typed_n(item: &Item, k: &str) -> Typed<u64> {
    match item.get(k) {
        None => Ok(None),
        Some(Av::N(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("its attribute `{k}` ({v}) is out of range")),
        Some(Av::N(v)) => Err(format!(
            "its attribute `{k}` ({}) is not a whole number from 0 to {}",
            printable(v),
            u64::MAX
        )),
        Some(v) => Err(wrong(k, v, "a number (N)")),
    }
}
pub(super) fn typed_b<'a>(item: &'a Item, k: &str) -> Typed<&'a [u8]> {
    match item.get(k) {
        None => Ok(None),
        Some(Av::B(v)) => Ok(Some(v.as_ref())),
        Some(v) => Err(wrong(k, v, "binary (B)")),
    }
}
pub(super) fn typed_bool(item: &Item, k: &str) -> Typed<bool> {
    match item.get(k) {
        None => Ok(None),
        Some(Av::Bool(v)) => Ok(Some(*v)),
        Some(v) => Err(wrong(k, v, "a boolean (BOOL)")),
    }
}
pub(super) fn required<T>(t: Typed<T>, k: &str) -> std::result::Result<T, String> {
    t?.ok_or_else(|| format!("its attribute `{k}` is missing"))
}

/// Lenient getters, for items that are not ours (the legacy import) or already checked.
pub(super) fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    typed_s(item, k).ok().flatten()
}
pub(super) fn b<'a>(item: &'a Item, k: &str) -> Option<&'a [u8]> {
    typed_b(item, k).ok().flatten()
}
pub(super) fn flag(item: &Item, k: &str) -> Option<bool> {
    typed_bool(item, k).ok().flatten()
}

/// What an active version is sealed with.
#[derive(Debug)]
pub(super) struct Seal {
    pub(super) ciphertext: Vec<u8>,
    pub(super) nonce: Vec<u8>,
    pub(super) generation: u64,
    /// The data key it is sealed under, as stored with the version (KMS-encrypted). Items
    /// written before versions carried their key have none: their key is the key item
    /// of their generation.
    pub(super) blob: Option<Vec<u8>>,
}

/// One version as stored.
#[derive(Debug)]
pub(super) struct Version {
    pub(super) name: String,
    pub(super) serial: u64,
    pub(super) active: bool,
    pub(super) created: String,
    /// Present while active (when read in full).
    pub(super) sealed: Option<Seal>,
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
            version_id: None,
        }
    }

    /// The generation it is sealed under (active versions read in full).
    pub(super) fn generation(&self) -> Option<u64> {
        self.sealed.as_ref().map(|s| s.generation)
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
/// Every attribute this tool writes must have its exact type when present (a wrong type
/// is never read as "absent", which for `active` would silently serve an older version),
/// and `name`, `serial` and `active` must be present. `full`: the item was read with its
/// ciphertext, which an active version must have.
pub(super) fn parse_version(path: &str, item: &Item, full: bool) -> Result<Version> {
    let sk = s(item, A_SK).unwrap_or_default();
    let Some((name, serial)) = parse_version_sk(sk) else {
        return Err(Error::data(format!(
            "malformed version item \"{}\" under {path} in the secrets table; remove it or restore it from a backup",
            printable(sk)
        )));
    };
    let shown = format!("{path}/{} serial {serial}", printable(name));
    let bad = |why: String| {
        Error::data(format!(
            "{shown}: {why} (the item was altered outside ecs-secrets); fix the attribute, or revoke the version and create a new one, or restore the item from a backup"
        ))
    };
    let attr_name = required(typed_s(item, A_NAME), A_NAME).map_err(bad)?;
    let attr_serial = required(typed_n(item, A_SERIAL), A_SERIAL).map_err(bad)?;
    if attr_name != name || attr_serial != serial {
        return Err(Error::data(format!(
            "{shown}: the item's name/serial attributes do not match its key (tampered with, or copied from another item); revoke it and create a new version, or restore it from a backup"
        )));
    }
    let active = required(typed_bool(item, A_ACTIVE), A_ACTIVE).map_err(bad)?;
    let created = typed_s(item, A_CREATED).map_err(bad)?.unwrap_or_default();
    match typed_s(item, A_KIND).map_err(bad)? {
        None | Some(KIND_VERSION) => {}
        Some(other) => {
            return Err(bad(format!(
                "its attribute `{A_KIND}` is \"{}\" where {KIND_VERSION:?} is expected",
                printable(other)
            )))
        }
    }
    typed_b(item, A_TOKEN).map_err(bad)?;
    let ct = typed_b(item, A_CT).map_err(bad)?;
    let nonce = typed_b(item, A_NONCE).map_err(bad)?;
    let generation = typed_n(item, A_GEN).map_err(bad)?;
    let blob = typed_b(item, A_BLOB).map_err(bad)?;
    let sealed = match (ct, nonce, generation) {
        (Some(ct), Some(nonce), Some(g)) => Some(Seal {
            ciphertext: ct.to_vec(),
            nonce: nonce.to_vec(),
            generation: g,
            blob: blob.map(<[u8]>::to_vec),
        }),
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
        created: created.to_string(),
        sealed: if active { sealed } else { None },
    })
}

/// Parse a data-key item: `generation` (matching its key) and `encrypted_key` must be
/// present, and every attribute must have its exact type (`retired` absent means live).
pub(super) fn parse_key(path: &str, item: &Item) -> Result<KeyItem> {
    let sk = s(item, A_SK).unwrap_or_default();
    let bad = |why: &str| {
        Error::data(format!(
            "malformed data-key item \"{}\" under {path} in the secrets table: {why}; restore it from a backup",
            printable(sk)
        ))
    };
    let generation = parse_key_sk(sk).ok_or_else(|| bad("its key is not k#<20 digits>"))?;
    let check = |r: std::result::Result<(), String>| r.map_err(|why| bad(&why));
    let attr_gen = required(typed_n(item, A_GEN), A_GEN).map_err(|w| bad(&w))?;
    if attr_gen != generation {
        return Err(bad("its generation attribute does not match its key"));
    }
    let blob = required(typed_b(item, A_BLOB), A_BLOB).map_err(|w| bad(&w))?;
    let retired = typed_bool(item, A_RETIRED).map_err(|w| bad(&w))?;
    check(typed_s(item, A_KMS_KEY).map(drop))?;
    check(typed_s(item, A_CREATED).map(drop))?;
    match typed_s(item, A_KIND).map_err(|w| bad(&w))? {
        None | Some(KIND_DATAKEY) => {}
        Some(_) => return Err(bad("its kind attribute is not \"datakey\"")),
    }
    Ok(KeyItem {
        generation,
        blob: blob.to_vec(),
        retired: retired.unwrap_or(false),
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
            // Our sort key is a string: an item without one means the table is laid out
            // differently (another tool's table), which must not read as "no secrets".
            let sk = match typed_s(item, A_SK) {
                Ok(Some(sk)) => sk,
                Ok(None) | Err(_) => return Err(Error::data(format!(
                    "an item under {path} has no string sort key `{A_SK}`: the table is not an ecs-secrets table (hash key `{A_PATH}` and range key `{A_SK}`, both strings); check --table"
                ))),
            };
            if sk.starts_with(VERSION_PREFIX) {
                p.versions.push(parse_version(path, item, full)?);
            } else if sk.starts_with(KEY_PREFIX) {
                let k = parse_key(path, item)?;
                p.keys.insert(k.generation, k);
            }
            // Anything else is not ours (a future item kind): ignored.
        }
        crate::sort::sort_by(&mut p.versions, |a, b| {
            (&a.name, a.serial).cmp(&(&b.name, b.serial))
        });
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
    use aws_smithy_types::Blob;

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

    #[test]
    fn a_wrong_type_is_never_read_as_absent() {
        for (attr, value) in [
            (A_ACTIVE, Av::S("true".into())),
            (A_ACTIVE, Av::N("1".into())),
            (A_SERIAL, Av::N("1e0".into())),
            (A_SERIAL, Av::N("18446744073709551616".into())),
            (A_GEN, Av::N("-1".into())),
            (A_GEN, Av::N("1.0".into())),
            (A_NONCE, Av::S("n".into())),
            (A_BLOB, Av::S("k".into())),
            (A_TOKEN, Av::Bool(true)),
            (A_CREATED, Av::N("1".into())),
            (A_KIND, Av::S("datakey".into())),
        ] {
            let mut v = version("A", 1, true);
            v.insert(attr.into(), value.clone());
            let e = Partition::parse("/p/a", &[v], true)
                .unwrap_err()
                .to_string();
            assert!(e.contains("/p/a/A serial 1"), "{attr} {value:?}: {e}");
        }
        let mut v = version("A", 1, false);
        v.remove(A_ACTIVE);
        let e = Partition::parse("/p/a", &[v], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`active` is missing"), "{e}");
        // Without `sk` as a string, the table is not ours.
        let mut v = version("A", 1, true);
        v.insert(A_SK.into(), Av::N("1".into()));
        let e = Partition::parse("/p/a", &[v], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an ecs-secrets table"), "{e}");
    }
}
