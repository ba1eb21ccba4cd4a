//! DynamoDB + KMS backend: versioned envelope encryption, one table partitioned by path.
//!
//! Layout (hash key `path`, range key `sk`, both strings):
//! - a version: `sk = v#<name>#<serial, 20 digits>`, with `kind = "version"`, `name`,
//!   `serial` (N), `active` (BOOL), `created` (RFC 3339 UTC), `token` (B, random, from the
//!   create that wrote it), and while active `ciphertext` (B), `nonce` (B), `generation`
//!   (N, the data key it is sealed under) and `encrypted_key` (B, a copy of that data key
//!   as stored). Names hold only `[A-Za-z0-9_.-/]`, so `#` separates unambiguously, and
//!   zero-padded serials sort.
//! - a data key: `sk = k#<generation, 20 digits>`, with `kind = "datakey"`, `generation`,
//!   `encrypted_key` (B, the KMS CiphertextBlob under encryption context
//!   `{"ecs-secrets:path": <path>}`), `kms_key` (the key ARN KMS reported), `created`, and
//!   `retired` (BOOL) once `rotate-key` superseded it.
//!
//! Every attribute must have exactly its type when present (see `item`): a wrong type is
//! never read as absent.
//!
//! The hash key is the path, so `dynamodb:LeadingKeys` confines a role to its paths.
//!
//! Costs: reading a path is one paginated, strongly consistent Query of its partition plus
//! one KMS Decrypt per distinct data key among the versions it needs. The item key (not
//! the item's attributes) names the version, and the ciphertext is bound to it (see
//! `crate::crypto`), so copying a ciphertext, or a whole item, elsewhere fails to open.
//!
//! Concurrency:
//! - create: the next serial is the newest one plus 1 (refused past the largest);
//!   PutItem is conditional on the item not existing and moves on to the next serial when
//!   another writer took it. Each write carries a random `token` that nothing changes
//!   afterwards (re-sealing changes the nonce): a "taken" answer carrying our token is our
//!   own retried request (the first attempt landed, its answer was lost), not a second
//!   version. The write is then read back (strongly consistent) and must carry our token
//!   before the serial is reported.
//! - A version carries the data key it is sealed under, so no write that lands late (its
//!   process killed, or held in the network while a rotation ran) and no re-seal racing a
//!   key's deletion can leave it unreadable.
//! - rotate-key writes the next generation, retires the older ones, re-seals what is under
//!   an older generation (never moving a version back), stops when it sees a newer
//!   generation, deletes retired keys a strongly consistent read shows unused, and reads
//!   again to re-seal writes that raced the delete. A create checks, after its write, that
//!   its generation was not retired meanwhile, and re-seals its own version under the
//!   newest key if it was.

mod item;
mod keys;
mod legacy;
pub(crate) use legacy::scan_all;
mod rotate;
mod write;

use item::*;
pub use item::{key_sk, version_sk, A_PATH, A_SK};

use crate::crypto::DataKey;
use crate::error::{AwsKind, Error, Result};
use crate::inject::env::printable;
use crate::secret::{Fetched, Secret, VersionInfo};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::BTreeMap;

/// Largest payload. DynamoDB items may hold 400 KB, but a value is also an environment
/// variable (Linux caps one at 128 KiB) and a Query page is 1 MB: 64 KiB keeps a path of
/// many secrets to few pages.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The KMS encryption context key of a path's data keys.
pub const CONTEXT_KEY: &str = "ecs-secrets:path";

/// How many serials a create tries before giving up to concurrent writers.
const MAX_CREATE_ATTEMPTS: u64 = 50;

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
        self.ddb_hint(crate::aws::error(context, e))
    }

    /// `ddb_error`'s advice, apart from the generic part (one copy, not one per operation).
    fn ddb_hint(&self, mut err: Error) -> Error {
        if let Error::Aws { kind, hint, .. } = &mut err {
            match kind {
                AwsKind::NotFound => {
                    *hint = format!(
                        "; check --table {} and the region, or create the table with `ecs-secrets setup --backend dynamodb`",
                        self.table
                    )
                }
                // Our requests are fixed: DynamoDB refuses them when the table's keys are
                // not ours (other names or types).
                AwsKind::Invalid => {
                    *hint = format!(
                        "; table {} may not be an ecs-secrets table (hash key `{A_PATH}` and range key `{A_SK}`, both strings): check --table, or create one with `ecs-secrets setup --backend dynamodb`",
                        self.table
                    )
                }
                _ => {}
            }
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
        self.kms_hint(crate::aws::error(context, e), invalid)
    }

    /// `kms_error`'s advice, apart from the generic part (one copy, not one per operation).
    fn kms_hint(&self, mut err: Error, invalid: bool) -> Error {
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
                "invalid secret name \"{}\" for the dynamodb backend",
                printable(name)
            )));
        }
        Ok(())
    }

    /// A strongly consistent Query of the path's partition, optionally of one sort-key
    /// prefix. The whole partition is read with a string condition on the sort key too
    /// (every item of ours sorts from `k#` on): DynamoDB refuses that Query on a table
    /// whose keys are not ours, instead of answering "nothing under this path".
    fn query(&self, path: &str, prefix: Option<&str>) -> QueryFluentBuilder {
        let q = self
            .ddb
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_names("#p", A_PATH)
            .expression_attribute_values(":p", Av::S(path.to_string()));
        match prefix {
            None => q
                .key_condition_expression("#p = :p AND #sk >= :first")
                .expression_attribute_names("#sk", A_SK)
                .expression_attribute_values(":first", Av::S(KEY_PREFIX.to_string())),
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

    pub async fn read_path(&self, path: &str) -> Result<Vec<Secret>> {
        let what = format!("reading {path} from DynamoDB table {}", self.table);
        let (items, pages) = self
            .pages(Self::for_reading(self.query(path, None)), &what)
            .await?;
        if items.is_empty() {
            self.check_layout().await?;
        }
        let part = Partition::parse(path, &items, true)?;
        let needed = part.newest_active();
        let keys = self.keys_for(path, &part, &needed).await?;
        let mut out = Vec::with_capacity(needed.len());
        for v in &needed {
            out.push(Secret {
                name: v.name.clone(),
                serial: v.serial,
                payload: self.open(path, v, &part, &keys)?,
            });
        }
        crate::log::debug(format_args!(
            "{path}: {} secrets in {pages} Query page(s) and {} KMS Decrypt(s)",
            out.len(),
            keys.len()
        ));
        Ok(out)
    }

    /// An empty read must mean an empty path, not a table laid out otherwise (DynamoDB
    /// refuses our Query on such a table, but DynamoDB-compatible stores may answer it
    /// with nothing). DescribeTable is not among the fetch role's permissions: when it is
    /// refused, the Query's own check stands.
    async fn check_layout(&self) -> Result<()> {
        let resp = match self
            .ddb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let err = self.ddb_error(format!("describing DynamoDB table {}", self.table), e);
                return match err.aws_kind() {
                    Some(AwsKind::AccessDenied) => Ok(()),
                    _ => Err(err),
                };
            }
        };
        let Some(t) = resp.table else { return Ok(()) };
        let type_of = |name: &str| {
            t.attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == name)
                .map(|a| a.attribute_type().as_str().to_string())
        };
        let key_of = |kind: &str| {
            t.key_schema()
                .iter()
                .find(|k| k.key_type().as_str() == kind)
                .map(|k| k.attribute_name().to_string())
        };
        let ours = key_of("HASH").as_deref() == Some(A_PATH)
            && key_of("RANGE").as_deref() == Some(A_SK)
            && type_of(A_PATH).as_deref() == Some("S")
            && type_of(A_SK).as_deref() == Some("S");
        if ours {
            return Ok(());
        }
        let show = |kind: &str| match key_of(kind) {
            Some(n) => format!("`{n}` ({})", type_of(&n).unwrap_or_else(|| "?".into())),
            None => "none".into(),
        };
        Err(Error::data(format!(
            "DynamoDB table {} is not an ecs-secrets table: its hash key is {} and its range key {}, where `{A_PATH}` (S) and `{A_SK}` (S) are expected; check --table, or create one with `ecs-secrets setup --backend dynamodb`",
            self.table,
            show("HASH"),
            show("RANGE")
        )))
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
        let payload = self.open_one(path, &v).await?;
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
}

impl DynamoStore {
    /// The region the clients send to, for messages.
    pub fn region(&self) -> Option<String> {
        self.ddb.config().region().map(|r| r.as_ref().to_string())
    }
}
