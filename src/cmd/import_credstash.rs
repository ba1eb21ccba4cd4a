//! `import --from-credstash-table T [--context k=v]…`: every version of every credstash
//! credential, re-created under the dynamodb `--path` with serial = credstash version.
//!
//! credstash's item (the AES-CTR format, the only one credstash writes): hash key `name`,
//! range key `version` (the version zero-padded to 19 digits), `key` (base64 of the KMS
//! CiphertextBlob of a 64-byte data key, under the encryption context given to `put`),
//! `contents` (base64 of the value under AES-256-CTR with the data key's first 32 bytes and
//! a 128-bit counter starting at 1), `hmac` (hex, as a string or as binary, of the HMAC of
//! the ciphertext under the data key's last 32 bytes) and `digest` (the HMAC's hash,
//! `SHA256` when absent).
//!
//! All or nothing: every item is read, its data key decrypted, its HMAC verified (in constant
//! time) and its value decrypted and checked before the first write. Any failure is an error
//! naming the credential, and nothing is written.
//!
//! credstash's HMAC covers the ciphertext only, not the name or version: a sealed value
//! moved to another credential or version verifies there (docs/imports.md says so).

use crate::error::{AwsKind, Error, ExitCode, Result};
use crate::inject::env::printable;
use crate::secret::Payload;
use crate::store::dynamodb::{DynamoStore, MAX_PAYLOAD};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_smithy_types::Blob;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hmac;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use zeroize::Zeroizing;

type Item = HashMap<String, Av>;

/// `--context k=v` pairs as a KMS encryption context. Usage errors for a pair without `=`,
/// an empty key, or a key given twice.
pub fn parse_context(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Error::usage(format!(
                "--context {:?}: expected key=value",
                printable(p)
            )));
        };
        if k.is_empty() {
            return Err(Error::usage(format!(
                "--context {:?}: the key is empty",
                printable(p)
            )));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::usage(format!(
                "--context: the key {:?} is given twice",
                printable(k)
            )));
        }
    }
    Ok(out)
}

pub fn run(cfg: &crate::config::StoreConfig, table: &str, context: &[String]) -> Result<ExitCode> {
    if table.is_empty() {
        return Err(Error::usage(
            "--from-credstash-table needs the credstash table's name (credstash's default is credential-store)",
        ));
    }
    let context = parse_context(context)?;
    let path = cfg.path();
    let what = format!("importing the credstash table {table} into {path}");
    let written = std::sync::Mutex::new(Vec::new());
    let r = super::dynamo_admin::with_dynamo_sdk(cfg, &what, async |dest, sdk| {
        let attempts = || crate::aws::Attempts { debug: cfg.debug };
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(attempts())
                .build(),
        );
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(sdk)
                .interceptor(attempts())
                .build(),
        );
        let items = scan(&ddb, table).await?;
        let credentials = items
            .iter()
            .map(|i| Credential::parse(i, table))
            .collect::<Result<Vec<_>>>()?;
        let mut versions = open_all(credentials, &kms, &context).await?;
        crate::sort::sort_by(&mut versions, |a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        refuse_duplicates(&versions, table)?;
        write(dest, path, &versions, &written).await
    });
    super::dynamo_admin::finish_import(r, written, &format!("credstash table {table}"))
}

/// Every item has its own data key, so one KMS Decrypt each: [`PARALLEL`] at a time. On
/// failure, the error of the first failing credential in table order.
async fn open_all(
    credentials: Vec<Credential>,
    kms: &aws_sdk_kms::Client,
    context: &BTreeMap<String, String>,
) -> Result<Vec<(String, u64, Payload)>> {
    let mut results: Vec<Option<Result<Payload>>> = (0..credentials.len()).map(|_| None).collect();
    let credentials: Vec<std::sync::Arc<Credential>> =
        credentials.into_iter().map(std::sync::Arc::new).collect();
    for (n, chunk) in credentials.chunks(PARALLEL).enumerate() {
        let mut set = tokio::task::JoinSet::new();
        for (i, c) in chunk.iter().enumerate() {
            let (c, kms, context) = (c.clone(), kms.clone(), context.clone());
            set.spawn(async move { (n * PARALLEL + i, c.open(&kms, &context).await) });
        }
        while let Some(joined) = set.join_next().await {
            let (i, r) = joined.map_err(|e| Error::data(format!("internal error: {e}")))?;
            results[i] = Some(r);
        }
        // Stop at the first chunk with a failure.
        if let Some(i) = results.iter().position(|r| matches!(r, Some(Err(_)))) {
            return Err(results.swap_remove(i).expect("just found").unwrap_err());
        }
    }
    Ok(credentials
        .iter()
        .zip(results)
        .map(|(c, r)| {
            let payload = r.expect("every credential joined").expect("no failure");
            (c.name.clone(), c.version, payload)
        })
        .collect())
}

/// KMS Decrypts in flight at once.
const PARALLEL: usize = 8;

/// Refuse names that exist under `path` already with versions this import does not bring
/// (one history per name: an import never merges into another), then write every version
/// with its serial. A name whose versions there are all among this import's is an earlier
/// run of it, interrupted: `import_versions` skips what it wrote unchanged and completes it.
pub(super) async fn write(
    dest: &DynamoStore,
    path: &str,
    versions: &[(String, u64, Payload)],
    written: &std::sync::Mutex<Vec<(String, u64)>>,
) -> Result<()> {
    let incoming: BTreeSet<(&str, u64)> = versions.iter().map(|v| (v.0.as_str(), v.1)).collect();
    let names: BTreeSet<&str> = incoming.iter().map(|v| v.0).collect();
    let mut clash: Vec<String> = dest
        .list(path, true)
        .await?
        .into_iter()
        .filter(|v| {
            names.contains(v.name.as_str()) && !incoming.contains(&(v.name.as_str(), v.serial))
        })
        .map(|v| v.name)
        .collect();
    clash.dedup();
    if !clash.is_empty() {
        return Err(Error::data(format!(
            "nothing imported: {path} has these names already, with versions this import does \
             not bring ({}); import into a fresh --path",
            clash.join(", ")
        )));
    }
    // Names that would set one environment name twice (with each other or with an active
    // secret of the path) are refused by `import_versions`, before anything is written.
    dest.import_versions(path, versions, written).await
}

fn refuse_duplicates(versions: &[(String, u64, Payload)], table: &str) -> Result<()> {
    for w in versions.windows(2) {
        if (&w[0].0, w[0].1) == (&w[1].0, w[1].1) {
            return Err(Error::data(format!(
                "nothing imported: {table} holds credential {:?} version {} twice (versions written with different zero padding); delete one with credstash first",
                w[0].0, w[0].1
            )));
        }
    }
    Ok(())
}

async fn scan(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<Item>> {
    crate::store::dynamodb::scan_all(
        ddb,
        table,
        &format!("reading the credstash table {table}"),
        "; check --from-credstash-table (credstash's default is credential-store) and the region",
    )
    .await
}

/// One credstash item, checked for shape (nothing decrypted yet).
struct Credential {
    name: String,
    version: u64,
    /// How errors name it: `credstash credential "db.pw" version 3`.
    shown: String,
    key_blob: Vec<u8>,
    contents: Vec<u8>,
    hmac: Vec<u8>,
    digest: hmac::Algorithm,
}

fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

impl Credential {
    fn parse(item: &Item, table: &str) -> Result<Credential> {
        let raw_name = s(item, "name").unwrap_or_default();
        let raw_version = s(item, "version").unwrap_or_default();
        let shown = format!(
            "credstash credential {:?} version {:?}",
            printable(raw_name),
            printable(raw_version)
        );
        let bad = |why: String| Error::data(format!("{shown} in {table}: {why}; nothing imported"));
        let name = crate::config::validate_name(raw_name).map_err(|e| {
            bad(format!(
                "its name cannot be used here: {e}; rename it first"
            ))
        })?;
        let version = match raw_version.parse::<u64>() {
            Ok(v) if v > 0 && raw_version.bytes().all(|b| b.is_ascii_digit()) => v,
            _ => {
                return Err(bad(
                    "its version is not a positive number, so it cannot be a serial".into(),
                ))
            }
        };
        let shown = format!("credstash credential {name:?} version {version}");
        let bad = |why: &str| Error::data(format!("{shown} in {table}: {why}; nothing imported"));
        let b64 = |k: &str| {
            let v = s(item, k).ok_or_else(|| bad(&format!("no `{k}` string attribute")))?;
            aws_smithy_types::base64::decode(v).map_err(|_| bad(&format!("`{k}` is not base64")))
        };
        let key_blob = b64("key")?;
        let contents = b64("contents")?;
        let hmac_hex: &[u8] = match item.get("hmac") {
            Some(Av::S(h)) => h.as_bytes(),
            Some(Av::B(h)) => h.as_ref(),
            _ => return Err(bad("no `hmac` attribute")),
        };
        let hmac = hex(hmac_hex).ok_or_else(|| bad("`hmac` is not hexadecimal"))?;
        let digest = match s(item, "digest").unwrap_or("SHA256") {
            "SHA256" => hmac::HMAC_SHA256,
            "SHA384" => hmac::HMAC_SHA384,
            "SHA512" => hmac::HMAC_SHA512,
            "SHA" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            other => {
                return Err(bad(&format!(
                    "its HMAC digest {:?} cannot be verified here (SHA, SHA256, SHA384 and SHA512 can); store it again with credstash's default, SHA256",
                    printable(other)
                )))
            }
        };
        Ok(Credential {
            name,
            version,
            shown,
            key_blob,
            contents,
            hmac,
            digest,
        })
    }

    /// Decrypt the data key with KMS, verify the HMAC, decrypt and check the value.
    async fn open(
        &self,
        kms: &aws_sdk_kms::Client,
        context: &BTreeMap<String, String>,
    ) -> Result<Payload> {
        let ctx: Option<HashMap<String, String>> = (!context.is_empty()).then(|| {
            context
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        let resp = kms
            .decrypt()
            .ciphertext_blob(Blob::new(self.key_blob.clone()))
            .set_encryption_context(ctx)
            .send()
            .await
            .map_err(|e| {
                let mut err =
                    crate::aws::error(format!("decrypting the data key of {}", self.shown), e);
                if let Error::Aws {
                    kind: AwsKind::Invalid,
                    hint,
                    ..
                } = &mut err
                {
                    *hint = if context.is_empty() {
                        "; it may have been stored with an encryption context: pass it with --context k=v".into()
                    } else {
                        "; the --context pairs may not be the ones it was stored with".into()
                    };
                }
                err
            })?;
        let key = Zeroizing::new(resp.plaintext.map(Blob::into_inner).unwrap_or_default());
        let payload = open_sealed(&key, &self.contents, &self.hmac, self.digest)
            .map_err(|why| Error::data(format!("{}: {why}; nothing imported", self.shown)))?;
        if payload.is_empty() || payload.as_bytes().contains(&0) || payload.len() > MAX_PAYLOAD {
            return Err(Error::data(format!(
                "{}: its value ({} bytes) cannot be stored here (empty, NUL byte, or over {MAX_PAYLOAD} bytes); nothing imported",
                self.shown,
                payload.len()
            )));
        }
        Ok(payload)
    }
}

fn hex(h: &[u8]) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    h.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Verify, then decrypt, one credstash value under its 64-byte data key.
fn open_sealed(
    key: &[u8],
    contents: &[u8],
    tag: &[u8],
    digest: hmac::Algorithm,
) -> std::result::Result<Payload, String> {
    if key.len() != 64 {
        return Err(format!(
            "its data key is {} bytes, not credstash's 64",
            key.len()
        ));
    }
    let (data_key, hmac_key) = key.split_at(32);
    hmac::verify(&hmac::Key::new(digest, hmac_key), contents, tag).map_err(|_| {
        "its HMAC does not match its ciphertext (its `contents`, `hmac` or `key` attribute was changed or damaged)".to_string()
    })?;
    let plain = ctr_from_one(data_key, contents)?;
    Ok(Payload::new(plain))
}

/// AES-256-CTR with a 128-bit big-endian counter starting at 1 (credstash's nonce), from
/// ring's AES-256-GCM, because ring exposes no bare block cipher (NIST SP 800-38D):
/// - GCM with a 96-bit IV of zeros encrypts with the counter blocks 0⁹⁶‖2, 0⁹⁶‖3, …, which
///   are CTR's second, third, … blocks for inputs below 2³² blocks (ours are ≤ 64 KiB);
/// - CTR's first block, AES(0¹²⁷‖1), is GCM's J₀ block, and the tag of an empty message with
///   no associated data is AES(J₀) ⊕ GHASH(ε) = AES(J₀), since GHASH of the all-zero length
///   block is zero.
///
/// Decryption only (CTR decrypts by encrypting); nothing sealed here is ever stored.
fn ctr_from_one(key: &[u8], data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let bad = |_| "its data key is not an AES-256 key".to_string();
    let gcm = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(bad)?);
    let zero = || Nonce::assume_unique_for_key([0u8; 12]);
    let first = gcm
        .seal_in_place_separate_tag(zero(), Aad::empty(), &mut [])
        .map_err(bad)?;
    let mut out = data.to_vec();
    let head = out.len().min(16);
    for (o, k) in out[..head].iter_mut().zip(first.as_ref()) {
        *o ^= k;
    }
    if out.len() > 16 {
        // The tag authenticates nothing we keep: only the keystream XOR matters.
        let _tag = gcm
            .seal_in_place_separate_tag(zero(), Aad::empty(), &mut out[16..])
            .map_err(bad)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // From Python's `cryptography` (which credstash uses): AES-256-CTR, nonce 0…01, key
    // 00 01 … 1f; HMAC-SHA256 of the ciphertext under key 20 21 … 3f.
    const PLAIN: &[u8] = b"The quick brown fox jumps over the lazy dog!";
    const CIPHER: &str =
        "a435138e3bccf686cdd6f94327b5581d68d3cdfedf59eecd7b88c6437d5eb1edba26763f49fb190fe4f1d4a2";
    const TAG: &str = "8d42b635e9324fe36194013a3f514975957cad4ad2203f84d2dd86e9ad184ebe";

    fn key() -> Vec<u8> {
        (0u8..64).collect()
    }

    #[test]
    fn ctr_matches_pythons_cryptography_at_every_block_boundary() {
        let ct = hex(CIPHER.as_bytes()).unwrap();
        // A CTR prefix is the prefix's encryption: check lengths around block edges.
        for n in [0, 1, 15, 16, 17, 31, 32, 33, PLAIN.len()] {
            assert_eq!(
                ctr_from_one(&key()[..32], &ct[..n]).unwrap(),
                &PLAIN[..n],
                "{n} bytes"
            );
        }
    }

    #[test]
    fn the_hmac_is_checked_before_decrypting() {
        let ct = hex(CIPHER.as_bytes()).unwrap();
        let tag = hex(TAG.as_bytes()).unwrap();
        let p = open_sealed(&key(), &ct, &tag, hmac::HMAC_SHA256).unwrap();
        assert_eq!(p.as_bytes(), PLAIN);
        let mut flipped = ct.clone();
        flipped[20] ^= 1;
        let e = open_sealed(&key(), &flipped, &tag, hmac::HMAC_SHA256).unwrap_err();
        assert!(e.contains("HMAC does not match"), "{e}");
        let e = open_sealed(&key()[..32], &ct, &tag, hmac::HMAC_SHA256).unwrap_err();
        assert!(e.contains("32 bytes"), "{e}");
        // The value never appears in an error.
        assert!(!e.contains("quick"));
    }

    #[test]
    fn contexts_and_hex() {
        let c = parse_context(&["app=web".into(), "env=a=b".into()]).unwrap();
        assert_eq!(c["env"], "a=b");
        assert!(parse_context(&["novalue".into()]).is_err());
        assert!(parse_context(&["=v".into()]).is_err());
        assert!(parse_context(&["k=1".into(), "k=2".into()]).is_err());
        assert_eq!(hex(b"0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex(b"0g"), None);
        assert_eq!(hex(b"abc"), None);
    }
}
