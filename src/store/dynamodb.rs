//! DynamoDB + KMS backend: versioned envelope encryption, one table partitioned by path.
//!
//! Layout (hash key `path`, range key `sk`, both strings):
//! - a version: `sk = v#<name>#<serial, 20 digits>`, with `kind = "version"`, `name`,
//!   `serial` (N), `active` (BOOL), `created` (RFC 3339 UTC), `token` (B, random, from the
//!   create that wrote it), and while active `ciphertext` (B), `nonce` (B) and `generation`
//!   (N, the data key it is sealed under). Names hold only
//!   `[A-Za-z0-9_.-/]`, so `#` separates unambiguously, and zero-padded serials sort.
//! - a data key: `sk = k#<generation, 20 digits>`, with `kind = "datakey"`, `generation`,
//!   `encrypted_key` (B, the KMS CiphertextBlob under encryption context
//!   `{"ecs-secrets:path": <path>}`), `kms_key` (the key ARN KMS reported), `created`, and
//!   `retired` (BOOL) once `rotate-key` superseded it.
//!
//! The hash key is the path, so `dynamodb:LeadingKeys` confines a role to its paths.
//!
//! Costs: reading a path is one paginated, strongly consistent Query of its partition plus
//! one KMS Decrypt per data-key generation among the versions it needs. The item key (not
//! the item's attributes) names the version, and the ciphertext is bound to it (see
//! `crate::crypto`), so copying a ciphertext, or a whole item, elsewhere fails to open.
//!
//! Concurrency:
//! - create: the next serial is the newest one plus 1; PutItem is conditional on the item
//!   not existing and moves on to the next serial when another writer took it. Each write
//!   carries a random `token` that nothing changes afterwards (re-sealing changes the
//!   nonce): a "taken" answer carrying our token is our own retried request (the first
//!   attempt landed, its answer was lost), not a second version. The write is then read
//!   back (strongly consistent) and must carry our token before the serial is reported.
//! - rotate-key first writes the new generation, then marks the older ones `retired`, then
//!   re-seals what it finds, then deletes retired keys nothing references. A create checks,
//!   after its write, that its generation was not retired meanwhile, and re-seals its own
//!   version under the newest key if it was: so no version is left pointing at a deleted
//!   key, whatever the interleaving.

use crate::crypto::{self, Binding, DataKey, Sealed};
use crate::error::{AwsKind, Error, Result};
use crate::inject::env::printable;
use crate::secret::{Fetched, Payload, Secret, VersionInfo};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue as Av, ReturnValuesOnConditionCheckFailure};
use aws_sdk_kms::types::DataKeySpec;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::Format as DateFormat;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::{Blob, DateTime};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use zeroize::Zeroizing;

/// Largest payload. DynamoDB items may hold 400 KB, but a value is also an environment
/// variable (Linux caps one at 128 KiB) and a Query page is 1 MB: 64 KiB keeps a path of
/// many secrets to few pages.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The KMS encryption context key of a path's data keys.
pub const CONTEXT_KEY: &str = "ecs-secrets:path";

/// How many serials a create tries before giving up to concurrent writers.
const MAX_CREATE_ATTEMPTS: u64 = 50;

pub const A_PATH: &str = "path";
pub const A_SK: &str = "sk";
const A_KIND: &str = "kind";
const A_NAME: &str = "name";
const A_SERIAL: &str = "serial";
const A_ACTIVE: &str = "active";
const A_CREATED: &str = "created";
const A_CT: &str = "ciphertext";
const A_NONCE: &str = "nonce";
const A_GEN: &str = "generation";
const A_BLOB: &str = "encrypted_key";
const A_KMS_KEY: &str = "kms_key";
const A_RETIRED: &str = "retired";
const A_TOKEN: &str = "token";
const KIND_VERSION: &str = "version";
const KIND_DATAKEY: &str = "datakey";
const VERSION_PREFIX: &str = "v#";
const KEY_PREFIX: &str = "k#";

type Item = HashMap<String, Av>;

pub fn version_sk(name: &str, serial: u64) -> String {
    format!("{VERSION_PREFIX}{name}#{serial:020}")
}

pub fn key_sk(generation: u64) -> String {
    format!("{KEY_PREFIX}{generation:020}")
}

fn name_prefix(name: &str) -> String {
    format!("{VERSION_PREFIX}{name}#")
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DateTime::from_secs(secs as i64)
        .fmt(DateFormat::DateTime)
        .unwrap_or_default()
}

/// `(name, serial)` of a version key; `None` unless it has exactly our shape.
fn parse_version_sk(sk: &str) -> Option<(&str, u64)> {
    let (name, digits) = sk.strip_prefix(VERSION_PREFIX)?.rsplit_once('#')?;
    if name.is_empty() || digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, digits.parse().ok()?))
}

fn parse_key_sk(sk: &str) -> Option<u64> {
    let digits = sk.strip_prefix(KEY_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}
fn n(item: &Item, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
fn b<'a>(item: &'a Item, k: &str) -> Option<&'a [u8]> {
    item.get(k).and_then(|v| v.as_b().ok()).map(|b| b.as_ref())
}
fn flag(item: &Item, k: &str) -> Option<bool> {
    item.get(k).and_then(|v| v.as_bool().ok()).copied()
}

/// One version as stored.
#[derive(Debug)]
struct Version {
    name: String,
    serial: u64,
    active: bool,
    created: String,
    /// ciphertext, nonce, generation: present while active (when read in full).
    sealed: Option<(Vec<u8>, Vec<u8>, u64)>,
}

impl Version {
    fn full_name(&self, path: &str) -> String {
        format!("{path}/{} serial {}", printable(&self.name), self.serial)
    }

    fn info(&self) -> VersionInfo {
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
struct KeyItem {
    generation: u64,
    blob: Vec<u8>,
    retired: bool,
}

/// Parse a version item. Its key names it; the `name`/`serial` attributes must agree (an
/// item copied whole under another key is caught here, or else by the AEAD binding).
/// `full`: the item was read with its ciphertext, which an active version must have.
fn parse_version(path: &str, item: &Item, full: bool) -> Result<Version> {
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

fn parse_key(path: &str, item: &Item) -> Result<KeyItem> {
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
struct Partition {
    versions: Vec<Version>,
    keys: BTreeMap<u64, KeyItem>,
}

impl Partition {
    fn parse(path: &str, items: &[Item], full: bool) -> Result<Partition> {
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
    fn newest_active(&self) -> Vec<&Version> {
        let mut by_name: BTreeMap<&str, &Version> = BTreeMap::new();
        for v in self.versions.iter().filter(|v| v.active) {
            by_name.insert(&v.name, v); // sorted by serial: the last one wins
        }
        by_name.into_values().collect()
    }
}

/// The data key writers seal under: its generation, the plaintext, and the stored blob
/// (to check later that the stored key is still the one used).
struct PathKey {
    generation: u64,
    key: DataKey,
    blob: Vec<u8>,
}

/// The result of a conditional PutItem of a new version.
enum Put {
    Done,
    Taken,
}

fn is_conditional<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .is_some_and(|s| s.code() == Some("ConditionalCheckFailedException"))
}

/// The item a conditional PutItem found in its way (asked for with ALL_OLD).
fn conflicting_item<R>(e: &SdkError<PutItemError, R>) -> Option<&Item> {
    match e.as_service_error()? {
        PutItemError::ConditionalCheckFailedException(c) => c.item(),
        _ => None,
    }
}

/// A random token that identifies one write of one version.
fn write_token() -> Result<[u8; 16]> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut t = [0u8; 16];
    SystemRandom::new()
        .fill(&mut t)
        .map_err(|_| Error::io("the system random number generator failed"))?;
    Ok(t)
}

/// Up to `ceiling_ms` milliseconds, at random (spreads writers that collided).
async fn jitter(ceiling_ms: u64) {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 2];
    let r = SystemRandom::new()
        .fill(&mut b)
        .map(|_| u16::from_le_bytes(b) as u64)
        .unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(r % (ceiling_ms + 1))).await;
}

#[derive(Clone)]
pub struct DynamoStore {
    ddb: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
    table: String,
    kms_key: Option<String>,
}

impl DynamoStore {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: String,
        kms_key: Option<String>,
    ) -> Self {
        DynamoStore {
            ddb,
            kms,
            table,
            kms_key,
        }
    }

    /// The key new data keys are generated under.
    fn write_key(&self) -> &str {
        self.kms_key
            .as_deref()
            .unwrap_or(crate::config::DEFAULT_DYNAMODB_KEY)
    }

    fn ddb_error<E, R>(&self, context: String, e: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let mut err = crate::aws::error(context, e);
        if let Error::Aws {
            kind: AwsKind::NotFound,
            hint,
            ..
        } = &mut err
        {
            *hint = format!(
                "; check --table {} and the region, or create the table with `ecs-secrets setup --backend dynamodb`",
                self.table
            );
        }
        err
    }

    fn kms_error<E, R>(&self, context: String, e: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let invalid = e
            .as_service_error()
            .is_some_and(|s| s.code() == Some("InvalidCiphertextException"));
        let mut err = crate::aws::error(context, e);
        if let Error::Aws { kind, hint, .. } = &mut err {
            if invalid {
                *hint = "; the stored data key was altered or copied from another path: restore the item from a backup".into();
            } else if *kind == AwsKind::NotFound {
                *hint = format!(
                    "; check --kms-key ({}), or create the key with `ecs-secrets setup --backend dynamodb`",
                    self.write_key()
                );
            }
        }
        err
    }

    fn check_name(name: &str) -> Result<()> {
        if name.is_empty() || name.contains('#') {
            return Err(Error::usage(format!(
                "invalid secret name {:?} for the dynamodb backend",
                printable(name)
            )));
        }
        Ok(())
    }

    /// A strongly consistent Query of the path's partition, optionally of one sort-key
    /// prefix.
    fn query(&self, path: &str, prefix: Option<&str>) -> QueryFluentBuilder {
        let q = self
            .ddb
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_names("#p", A_PATH)
            .expression_attribute_values(":p", Av::S(path.to_string()));
        match prefix {
            None => q.key_condition_expression("#p = :p"),
            Some(pre) => q
                .key_condition_expression("#p = :p AND begins_with(#sk, :pre)")
                .expression_attribute_names("#sk", A_SK)
                .expression_attribute_values(":pre", Av::S(pre.to_string())),
        }
    }

    /// Version metadata only (no ciphertext).
    fn metadata(q: QueryFluentBuilder) -> QueryFluentBuilder {
        q.projection_expression("#sk, #n, #s, #a, #c")
            .expression_attribute_names("#sk", A_SK)
            .expression_attribute_names("#n", A_NAME)
            .expression_attribute_names("#s", A_SERIAL)
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_names("#c", A_CREATED)
    }

    /// What a start-up read needs and nothing more (no path, kind, created time, write
    /// token or key id): smaller responses, so more secrets fit one 1 MB page, and a
    /// faster Query (moto answers 200 items in a quarter of the time).
    fn for_reading(q: QueryFluentBuilder) -> QueryFluentBuilder {
        q.projection_expression("#sk, #n, #s, #a, #ct, #no, #g, #b, #r")
            .expression_attribute_names("#sk", A_SK)
            .expression_attribute_names("#n", A_NAME)
            .expression_attribute_names("#s", A_SERIAL)
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_names("#ct", A_CT)
            .expression_attribute_names("#no", A_NONCE)
            .expression_attribute_names("#g", A_GEN)
            .expression_attribute_names("#b", A_BLOB)
            .expression_attribute_names("#r", A_RETIRED)
    }

    /// Every page of a Query. Returns the items and the number of pages.
    async fn pages(&self, q: QueryFluentBuilder, what: &str) -> Result<(Vec<Item>, u32)> {
        let mut out = Vec::new();
        let mut start = None;
        let mut pages = 0u32;
        loop {
            let resp = q
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.ddb_error(what.to_string(), e))?;
            pages += 1;
            out.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok((out, pages))
    }

    async fn partition(&self, path: &str) -> Result<(Partition, u32)> {
        let what = format!("reading {path} from DynamoDB table {}", self.table);
        let (items, pages) = self.pages(self.query(path, None), &what).await?;
        Ok((Partition::parse(path, &items, true)?, pages))
    }

    /// Decrypt one stored data key with KMS (bound to the path by the encryption context).
    async fn decrypt_key(&self, path: &str, generation: u64, blob: &[u8]) -> Result<DataKey> {
        let resp = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob.to_vec()))
            .encryption_context(CONTEXT_KEY, path)
            .send()
            .await
            .map_err(|e| {
                self.kms_error(
                    format!("decrypting data key generation {generation} of {path} with KMS"),
                    e,
                )
            })?;
        let plain = Zeroizing::new(resp.plaintext.map(Blob::into_inner).unwrap_or_default());
        DataKey::from_slice(&plain).ok_or_else(|| {
            Error::data(format!(
                "KMS returned {} bytes for data key generation {generation} of {path}; expected 32",
                plain.len()
            ))
        })
    }

    /// Decrypt the data keys the given versions need: one KMS Decrypt per generation.
    async fn keys_for(
        &self,
        path: &str,
        part: &Partition,
        needed: &[&Version],
    ) -> Result<HashMap<u64, DataKey>> {
        let mut first_user: BTreeMap<u64, &Version> = BTreeMap::new();
        for v in needed {
            if let Some((_, _, g)) = &v.sealed {
                first_user.entry(*g).or_insert(v);
            }
        }
        let mut keys = HashMap::new();
        for (g, v) in first_user {
            let Some(k) = part.keys.get(&g) else {
                return Err(Error::data(format!(
                    "cannot decrypt {}: its data key generation {g} is missing from table {}; restore that item from a backup, or revoke the version and create a new one",
                    v.full_name(path),
                    self.table
                )));
            };
            let key = self.decrypt_key(path, g, &k.blob).await.map_err(|e| {
                let needed_by = format!("needed by {}", v.full_name(path));
                match e {
                    Error::Aws {
                        kind,
                        context,
                        detail,
                        hint,
                    } => Error::Aws {
                        kind,
                        context: format!("{context} ({needed_by})"),
                        detail,
                        hint,
                    },
                    Error::Data(m) => Error::Data(format!("{m} ({needed_by})")),
                    other => other,
                }
            })?;
            keys.insert(g, key);
        }
        Ok(keys)
    }

    /// Open one active version (fail closed, naming it).
    fn open(&self, path: &str, v: &Version, keys: &HashMap<u64, DataKey>) -> Result<Payload> {
        let Some((ct, nonce, g)) = &v.sealed else {
            return Err(Error::data(format!(
                "{} has no ciphertext: revoke it again and create a new version",
                v.full_name(path)
            )));
        };
        let key = keys
            .get(g)
            .ok_or_else(|| Error::data(format!("no data key for {}", v.full_name(path))))?;
        let at = Binding {
            path,
            name: &v.name,
            serial: v.serial,
            generation: *g,
        };
        crypto::open(key, &at, nonce, ct).map_err(|e| {
            Error::data(format!(
                "cannot decrypt {}: {e} for this path, name, serial and data-key generation {g} (tampered with, or copied from another item); revoke it and create a new version, or restore the item from a backup",
                v.full_name(path)
            ))
        })
    }

    pub async fn read_path(&self, path: &str) -> Result<Vec<Secret>> {
        let what = format!("reading {path} from DynamoDB table {}", self.table);
        let (items, pages) = self
            .pages(Self::for_reading(self.query(path, None)), &what)
            .await?;
        let part = Partition::parse(path, &items, true)?;
        let needed = part.newest_active();
        let keys = self.keys_for(path, &part, &needed).await?;
        let mut out = Vec::with_capacity(needed.len());
        for v in &needed {
            out.push(Secret {
                name: v.name.clone(),
                serial: v.serial,
                payload: self.open(path, v, &keys)?,
            });
        }
        crate::log::debug(format_args!(
            "{path}: {} secrets in {pages} Query page(s) and {} KMS Decrypt(s)",
            out.len(),
            keys.len()
        ));
        Ok(out)
    }

    /// The newest data key of the path, created (generation 1) when the path has none.
    async fn current_key(&self, path: &str) -> Result<PathKey> {
        let what = format!(
            "reading the data key of {path} from DynamoDB table {}",
            self.table
        );
        for _ in 0..5 {
            let resp = self
                .query(path, Some(KEY_PREFIX))
                .scan_index_forward(false)
                .limit(1)
                .send()
                .await
                .map_err(|e| self.ddb_error(what.clone(), e))?;
            match resp.items.unwrap_or_default().first() {
                Some(item) => {
                    let k = parse_key(path, item)?;
                    if k.retired {
                        return Err(Error::data(format!(
                            "the newest data key of {path} (generation {}) is marked retired: an earlier rotate-key was interrupted; run `ecs-secrets rotate-key --backend dynamodb --path {path}` again",
                            k.generation
                        )));
                    }
                    let key = self.decrypt_key(path, k.generation, &k.blob).await?;
                    return Ok(PathKey {
                        generation: k.generation,
                        key,
                        blob: k.blob,
                    });
                }
                None => {
                    if let Some(pk) = self.new_key(path, 1).await? {
                        return Ok(pk);
                    }
                    // Another writer created generation 1 first: use theirs.
                }
            }
        }
        Err(Error::data(format!(
            "could not settle on a data key for {path}: concurrent writers kept changing it; try again"
        )))
    }

    /// Generate and store data key `generation`; `None` when that generation exists already.
    async fn new_key(&self, path: &str, generation: u64) -> Result<Option<PathKey>> {
        let mut resp = self
            .kms
            .generate_data_key()
            .key_id(self.write_key())
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, path)
            .send()
            .await
            .map_err(|e| {
                self.kms_error(
                    format!(
                        "generating a data key for {path} under KMS key {}",
                        self.write_key()
                    ),
                    e,
                )
            })?;
        let plain = Zeroizing::new(
            resp.plaintext
                .take()
                .map(Blob::into_inner)
                .unwrap_or_default(),
        );
        let key = DataKey::from_slice(&plain).ok_or_else(|| {
            Error::data(format!(
                "KMS GenerateDataKey returned {} bytes for {path}; expected 32",
                plain.len()
            ))
        })?;
        let blob = resp.ciphertext_blob.take().ok_or_else(|| {
            Error::data(format!(
                "KMS GenerateDataKey returned no ciphertext for {path}"
            ))
        })?;
        let put = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item(A_PATH, Av::S(path.into()))
            .item(A_SK, Av::S(key_sk(generation)))
            .item(A_KIND, Av::S(KIND_DATAKEY.into()))
            .item(A_GEN, Av::N(generation.to_string()))
            .item(A_BLOB, Av::B(blob.clone()))
            .item(
                A_KMS_KEY,
                Av::S(resp.key_id.unwrap_or_else(|| self.write_key().into())),
            )
            .item(A_CREATED, Av::S(now_rfc3339()))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", A_SK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => {}
            // A "taken" answer holding our own blob is our own retried request.
            Err(e) if is_conditional(&e) => {
                if conflicting_item(&e).and_then(|old| b(old, A_BLOB)) != Some(blob.as_ref()) {
                    return Ok(None);
                }
            }
            Err(e) => {
                return Err(self.ddb_error(
                    format!("storing data key generation {generation} of {path}"),
                    e,
                ))
            }
        }
        Ok(Some(PathKey {
            generation,
            key,
            blob: blob.into_inner(),
        }))
    }

    /// The highest serial of `name` (0 when none).
    async fn max_serial(&self, path: &str, name: &str) -> Result<u64> {
        let resp = self
            .query(path, Some(&name_prefix(name)))
            .scan_index_forward(false)
            .limit(1)
            .projection_expression("#sk")
            .send()
            .await
            .map_err(|e| {
                self.ddb_error(
                    format!("reading the serials of {path}/{name} from DynamoDB"),
                    e,
                )
            })?;
        Ok(resp
            .items
            .unwrap_or_default()
            .first()
            .and_then(|i| s(i, A_SK))
            .and_then(parse_version_sk)
            .map_or(0, |(_, serial)| serial))
    }

    /// PutItem of a new version, conditional on the key being free. A "taken" answer that
    /// carries our own token is our own earlier attempt (a retried request): done.
    #[allow(clippy::too_many_arguments)]
    async fn put_version(
        &self,
        path: &str,
        name: &str,
        serial: u64,
        generation: u64,
        sealed: &Sealed,
        created: &str,
        token: &[u8],
    ) -> Result<Put> {
        let r = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item(A_PATH, Av::S(path.into()))
            .item(A_SK, Av::S(version_sk(name, serial)))
            .item(A_KIND, Av::S(KIND_VERSION.into()))
            .item(A_NAME, Av::S(name.into()))
            .item(A_SERIAL, Av::N(serial.to_string()))
            .item(A_ACTIVE, Av::Bool(true))
            .item(A_CREATED, Av::S(created.into()))
            .item(A_CT, Av::B(Blob::new(sealed.ciphertext.clone())))
            .item(A_NONCE, Av::B(Blob::new(sealed.nonce.to_vec())))
            .item(A_GEN, Av::N(generation.to_string()))
            .item(A_TOKEN, Av::B(Blob::new(token.to_vec())))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", A_SK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(_) => Ok(Put::Done),
            Err(e) => {
                let ours = conflicting_item(&e).and_then(|old| b(old, A_TOKEN)) == Some(token);
                if ours {
                    Ok(Put::Done)
                } else if is_conditional(&e) {
                    Ok(Put::Taken)
                } else {
                    Err(self.ddb_error(
                        format!("writing {path}/{name} serial {serial} to DynamoDB"),
                        e,
                    ))
                }
            }
        }
    }

    pub async fn create(&self, path: &str, name: &str, payload: &Payload) -> Result<u64> {
        Self::check_name(name)?;
        let pk = self.current_key(path).await?;
        let mut serial = self.max_serial(path, name).await? + 1;
        let created = now_rfc3339();
        for attempt in 0..MAX_CREATE_ATTEMPTS {
            let at = Binding {
                path,
                name,
                serial,
                generation: pk.generation,
            };
            let sealed = crypto::seal(&pk.key, &at, payload.as_bytes())
                .map_err(|e| Error::io(format!("cannot encrypt {path}/{name}: {e}")))?;
            let token = write_token()?;
            let kept = match self
                .put_version(path, name, serial, pk.generation, &sealed, &created, &token)
                .await?
            {
                Put::Done => {
                    self.settle(path, name, serial, &pk, &sealed.nonce, &token, payload)
                        .await?
                }
                Put::Taken => false,
            };
            if kept {
                return Ok(serial);
            }
            crate::log::debug(format_args!(
                "{path}/{name} serial {serial} was taken by a concurrent writer; trying {}",
                serial + 1
            ));
            serial += 1;
            jitter(5 + 5 * attempt.min(8)).await;
        }
        Err(Error::data(format!(
            "could not create {path}/{name}: {MAX_CREATE_ATTEMPTS} serials in a row were taken by concurrent writers; try again"
        )))
    }

    /// After a version was written: make sure it stays readable and is really ours.
    /// 1. Its data key must still be the stored, live key of its generation. A concurrent
    ///    rotate-key may have retired (or deleted) it: then the version is re-sealed under
    ///    the newest key, so it never points at a deleted key.
    /// 2. Read it back: the item must carry our token. DynamoDB's conditional writes are
    ///    atomic, but not every DynamoDB-compatible store's (moto, which the tests run
    ///    against, checks and writes without a lock); a replaced write means the serial
    ///    went to another writer.
    ///
    /// Returns whether the serial is ours.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        path: &str,
        name: &str,
        serial: u64,
        pk: &PathKey,
        nonce: &[u8],
        token: &[u8],
        payload: &Payload,
    ) -> Result<bool> {
        let generation = pk.generation;
        let resp = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(key_sk(generation)))
            .consistent_read(true)
            .projection_expression("#r, #b")
            .expression_attribute_names("#r", A_RETIRED)
            .expression_attribute_names("#b", A_BLOB)
            .send()
            .await
            .map_err(|e| {
                self.ddb_error(
                    format!("checking data key generation {generation} of {path}"),
                    e,
                )
            })?;
        let live = resp.item.as_ref().is_some_and(|i| {
            !flag(i, A_RETIRED).unwrap_or(false) && b(i, A_BLOB) == Some(&pk.blob[..])
        });
        if !live {
            crate::log::debug(format_args!(
                "{path}: data key generation {generation} changed during the write; re-sealing {path}/{name} serial {serial}"
            ));
            // When this does not apply, the version changed meanwhile: re-sealed by the
            // rotation itself, revoked, or replaced by another writer (the token tells).
            let newest = self.current_key(path).await?;
            self.reseal(path, name, serial, generation, nonce, &newest, payload)
                .await?;
        }
        let resp = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(version_sk(name, serial)))
            .consistent_read(true)
            .projection_expression("#t")
            .expression_attribute_names("#t", A_TOKEN)
            .send()
            .await
            .map_err(|e| {
                self.ddb_error(format!("reading back {path}/{name} serial {serial}"), e)
            })?;
        Ok(resp.item.is_some_and(|i| b(&i, A_TOKEN) == Some(token)))
    }

    /// Re-seal one active version under the key `to`, unless it changed meanwhile (a
    /// revoke, another re-seal, another writer's item): returns the new nonce when it was
    /// re-sealed.
    #[allow(clippy::too_many_arguments)]
    async fn reseal(
        &self,
        path: &str,
        name: &str,
        serial: u64,
        from: u64,
        old_nonce: &[u8],
        to: &PathKey,
        payload: &Payload,
    ) -> Result<Option<[u8; crypto::NONCE_LEN]>> {
        let at = Binding {
            path,
            name,
            serial,
            generation: to.generation,
        };
        let sealed = crypto::seal(&to.key, &at, payload.as_bytes())
            .map_err(|e| Error::io(format!("cannot encrypt {path}/{name}: {e}")))?;
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(version_sk(name, serial)))
            .update_expression("SET #ct = :ct, #nonce = :nonce, #g = :to")
            .condition_expression("#a = :t AND #g = :from AND #nonce = :old")
            .expression_attribute_names("#ct", A_CT)
            .expression_attribute_names("#nonce", A_NONCE)
            .expression_attribute_names("#g", A_GEN)
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_values(":ct", Av::B(Blob::new(sealed.ciphertext.clone())))
            .expression_attribute_values(":nonce", Av::B(Blob::new(sealed.nonce.to_vec())))
            .expression_attribute_values(":to", Av::N(to.generation.to_string()))
            .expression_attribute_values(":from", Av::N(from.to_string()))
            .expression_attribute_values(":t", Av::Bool(true))
            .expression_attribute_values(":old", Av::B(Blob::new(old_nonce.to_vec())))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(sealed.nonce)),
            Err(e) if is_conditional(&e) => Ok(None),
            Err(e) => Err(self.ddb_error(format!("re-sealing {path}/{name} serial {serial}"), e)),
        }
    }

    /// The NotFound error for a name/serial, naming what exists.
    async fn not_found(&self, path: &str, name: &str, serial: Option<u64>) -> Error {
        let versions = match self.versions(path, name).await {
            Ok(v) => v,
            Err(e) => return e,
        };
        if versions.is_empty() {
            return Error::not_found(format!(
                "no secret {path}/{} in DynamoDB table {}",
                printable(name),
                self.table
            ));
        }
        let list: Vec<String> = versions.iter().map(|v| v.serial.to_string()).collect();
        match serial {
            Some(s) => Error::not_found(format!(
                "{path}/{} has no serial {s} (serials: {})",
                printable(name),
                list.join(", ")
            )),
            None => Error::not_found(format!(
                "{path}/{} has no active version: every serial is revoked (serials: {})",
                printable(name),
                list.join(", ")
            )),
        }
    }

    /// Revoke: the item must exist and be a version; its ciphertext, nonce and generation
    /// are removed. Revoking twice is fine.
    pub async fn revoke(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        Self::check_name(name)?;
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(version_sk(name, serial)))
            .update_expression("SET #a = :f REMOVE #ct, #nonce, #g")
            .condition_expression("attribute_exists(#sk) AND #kind = :version")
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_names("#ct", A_CT)
            .expression_attribute_names("#nonce", A_NONCE)
            .expression_attribute_names("#g", A_GEN)
            .expression_attribute_names("#sk", A_SK)
            .expression_attribute_names("#kind", A_KIND)
            .expression_attribute_values(":f", Av::Bool(false))
            .expression_attribute_values(":version", Av::S(KIND_VERSION.into()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => Err(self.not_found(path, name, Some(serial)).await),
            Err(e) => Err(self.ddb_error(format!("revoking {path}/{name} serial {serial}"), e)),
        }
    }

    /// One data key by generation (strongly consistent GetItem), decrypted.
    async fn key_by_generation(&self, path: &str, v: &Version) -> Result<HashMap<u64, DataKey>> {
        let mut keys = HashMap::new();
        let Some((_, _, g)) = &v.sealed else {
            return Ok(keys);
        };
        let resp = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(A_PATH, Av::S(path.into()))
            .key(A_SK, Av::S(key_sk(*g)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.ddb_error(format!("reading data key generation {g} of {path}"), e))?;
        let mut part = Partition::default();
        if let Some(item) = resp.item {
            let k = parse_key(path, &item)?;
            part.keys.insert(k.generation, k);
        }
        keys.extend(self.keys_for(path, &part, &[v]).await?);
        Ok(keys)
    }

    pub async fn fetch(&self, path: &str, name: &str, serial: Option<u64>) -> Result<Fetched> {
        Self::check_name(name)?;
        let v = match serial {
            Some(s) => {
                let resp = self
                    .ddb
                    .get_item()
                    .table_name(&self.table)
                    .key(A_PATH, Av::S(path.into()))
                    .key(A_SK, Av::S(version_sk(name, s)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| self.ddb_error(format!("reading {path}/{name} serial {s}"), e))?;
                match resp.item {
                    Some(item) => parse_version(path, &item, true)?,
                    None => return Err(self.not_found(path, name, Some(s)).await),
                }
            }
            None => {
                let what = format!("reading {path}/{name} from DynamoDB table {}", self.table);
                let (items, _) = self
                    .pages(self.query(path, Some(&name_prefix(name))), &what)
                    .await?;
                let part = Partition::parse(path, &items, true)?;
                let newest = part.versions.into_iter().rfind(|v| v.active);
                match newest {
                    Some(v) => v,
                    None => return Err(self.not_found(path, name, None).await),
                }
            }
        };
        if !v.active {
            return Ok(Fetched {
                name: name.to_string(),
                serial: v.serial,
                active: false,
                payload: None,
            });
        }
        let keys = self.key_by_generation(path, &v).await?;
        let payload = self.open(path, &v, &keys)?;
        Ok(Fetched {
            name: name.to_string(),
            serial: v.serial,
            active: true,
            payload: Some(payload),
        })
    }

    /// Version metadata under a sort-key prefix, sorted by name then serial.
    async fn metadata_of(&self, path: &str, prefix: &str, what: &str) -> Result<Vec<Version>> {
        let q = Self::metadata(self.query(path, Some(prefix)));
        let (items, _) = self.pages(q, what).await?;
        Ok(Partition::parse(path, &items, false)?.versions)
    }

    pub async fn versions(&self, path: &str, name: &str) -> Result<Vec<VersionInfo>> {
        Self::check_name(name)?;
        let what = format!("reading the versions of {path}/{name} from DynamoDB");
        Ok(self
            .metadata_of(path, &name_prefix(name), &what)
            .await?
            .iter()
            .map(Version::info)
            .collect())
    }

    pub async fn list(&self, path: &str, all: bool) -> Result<Vec<VersionInfo>> {
        let what = format!("listing {path} in DynamoDB table {}", self.table);
        let versions = self.metadata_of(path, VERSION_PREFIX, &what).await?;
        if all {
            return Ok(versions.iter().map(Version::info).collect());
        }
        let part = Partition {
            versions,
            keys: BTreeMap::new(),
        };
        Ok(part
            .newest_active()
            .into_iter()
            .map(Version::info)
            .collect())
    }

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

    async fn retire(&self, path: &str, generation: u64) -> Result<()> {
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

    async fn delete_key(&self, path: &str, generation: u64) -> Result<()> {
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

    /// import: every active version of an original AWS Labs ecs-secrets table, re-created
    /// under `path` with the same names and serials. All are read, decrypted and checked
    /// before anything is written; a serial that exists already under `path` is an error.
    pub async fn import_legacy(
        &self,
        path: &str,
        source: &str,
        max_payload: usize,
    ) -> Result<Vec<(String, u64)>> {
        let legacy = self.read_legacy(source, max_payload).await?;
        self.import_versions(path, &legacy).await
    }

    /// Write already-checked versions `(name, serial, payload)` under `path` with exactly
    /// those serials, in order (the write half of every import). A serial that exists
    /// already under `path` is an error before anything is written.
    pub async fn import_versions(
        &self,
        path: &str,
        legacy: &[(String, u64, Payload)],
    ) -> Result<Vec<(String, u64)>> {
        // Refuse before writing anything when a serial is taken.
        let what = format!("listing {path} in DynamoDB table {}", self.table);
        let existing: BTreeSet<(String, u64)> = self
            .metadata_of(path, VERSION_PREFIX, &what)
            .await?
            .into_iter()
            .map(|v| (v.name, v.serial))
            .collect();
        let taken: Vec<String> = legacy
            .iter()
            .filter(|(n, s, _)| existing.contains(&(n.clone(), *s)))
            .map(|(n, s, _)| format!("{path}/{n} serial {s}"))
            .collect();
        if !taken.is_empty() {
            return Err(Error::data(format!(
                "nothing imported: serials that exist already under {path} would be overwritten ({}); import into a fresh --path",
                taken.join(", ")
            )));
        }
        if legacy.is_empty() {
            return Ok(Vec::new());
        }
        let pk = self.current_key(path).await?;
        let created = now_rfc3339();
        let mut out = Vec::new();
        for (name, serial, payload) in legacy {
            let at = Binding {
                path,
                name,
                serial: *serial,
                generation: pk.generation,
            };
            let sealed = crypto::seal(&pk.key, &at, payload.as_bytes())
                .map_err(|e| Error::io(format!("cannot encrypt {path}/{name}: {e}")))?;
            let token = write_token()?;
            let kept = match self
                .put_version(
                    path,
                    name,
                    *serial,
                    pk.generation,
                    &sealed,
                    &created,
                    &token,
                )
                .await?
            {
                Put::Done => {
                    self.settle(path, name, *serial, &pk, &sealed.nonce, &token, payload)
                        .await?
                }
                Put::Taken => false,
            };
            if !kept {
                return Err(Error::data(format!(
                    "{path}/{name} serial {serial} was created by someone else during the import; imported so far: {}",
                    out.iter()
                        .map(|(n, s): &(String, u64)| format!("{n} serial {s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            out.push((name.clone(), *serial));
        }
        Ok(out)
    }

    /// The active versions of an original ecs-secrets table, decrypted, sorted by name and
    /// serial. One KMS Decrypt per distinct data key.
    async fn read_legacy(
        &self,
        source: &str,
        max_payload: usize,
    ) -> Result<Vec<(String, u64, Payload)>> {
        let what = format!("reading the ecs-secrets table {source}");
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .ddb
                .scan()
                .table_name(source)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    let mut err = crate::aws::error(what.clone(), e);
                    if let Error::Aws {
                        kind: AwsKind::NotFound,
                        hint,
                        ..
                    } = &mut err
                    {
                        *hint = "; check --from-ecs-secrets-table (the original tool named it ECS-Secrets-<app>-Secrets) and the region".into();
                    }
                    err
                })?;
            items.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let mut keys: HashMap<String, Zeroizing<Vec<u8>>> = HashMap::new();
        let mut out = Vec::new();
        for item in &items {
            let name = s(item, "Name").unwrap_or_default();
            let serial = n(item, "Serial").unwrap_or(0);
            let shown = format!("{source}: {} serial {serial}", printable(name));
            if !flag(item, "Active").unwrap_or(false) {
                continue;
            }
            let name = crate::config::validate_name(name).map_err(|e| {
                Error::data(format!(
                    "{shown} cannot be imported: {e}; rename it in the source first"
                ))
            })?;
            if serial == 0 {
                return Err(Error::data(format!(
                    "{shown}: no valid Serial attribute; it cannot be imported"
                )));
            }
            let (Some(data), Some(dk)) = (s(item, "EncryptedData"), s(item, "EncryptedDataKey"))
            else {
                return Err(Error::data(format!(
                    "{shown}: no EncryptedData or EncryptedDataKey attribute; it cannot be imported"
                )));
            };
            if !keys.contains_key(dk) {
                let blob = aws_smithy_types::base64::decode(dk)
                    .map_err(|_| Error::data(format!("{shown}: EncryptedDataKey is not base64")))?;
                let resp = self
                    .kms
                    .decrypt()
                    .ciphertext_blob(Blob::new(blob))
                    .send()
                    .await
                    .map_err(|e| {
                        crate::aws::error(format!("decrypting the data key of {shown} with KMS"), e)
                    })?;
                let plain =
                    Zeroizing::new(resp.plaintext.map(Blob::into_inner).unwrap_or_default());
                keys.insert(dk.to_string(), plain);
            }
            let sealed = aws_smithy_types::base64::decode(data)
                .map_err(|_| Error::data(format!("{shown}: EncryptedData is not base64")))?;
            let payload = crypto::open_legacy(&keys[dk], &sealed).map_err(|e| {
                Error::data(format!(
                    "cannot decrypt {shown}: {e} under its data key; nothing was imported"
                ))
            })?;
            if payload.is_empty() || payload.as_bytes().contains(&0) || payload.len() > max_payload
            {
                return Err(Error::data(format!(
                    "{shown}: its value ({} bytes) cannot be stored here (empty, NUL byte, or over {max_payload} bytes); nothing was imported",
                    payload.len()
                )));
            }
            out.push((name, serial, payload));
        }
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
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
