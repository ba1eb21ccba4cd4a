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
mod read;
mod rotate;
mod write;

use item::*;
pub use item::{key_sk, version_sk, A_PATH, A_SK};

use crate::crypto::DataKey;
use crate::error::{AwsKind, Error, Result};
use crate::names::printable;
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
}

impl DynamoStore {
    /// The region the clients send to, for messages.
    pub fn region(&self) -> Option<String> {
        self.ddb.config().region().map(|r| r.as_ref().to_string())
    }
}
