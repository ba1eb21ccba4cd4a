//! Envelope sealing for the dynamodb backend, built on `ring` (no hand-written primitives).
//!
//! A path has a 256-bit data key from KMS (per generation). Each version of each secret is
//! sealed with AES-256-GCM under its own key, derived with HKDF-SHA256 from the data key
//! over (path, name, serial); the authenticated data binds path, name, serial and the
//! data-key generation. Both inputs are length-prefixed, so no two different tuples encode
//! alike (`/a` + `b/c` vs `/a/b` + `c`). A ciphertext moved to another item, name, serial,
//! path or generation therefore fails to open.
//!
//! Each derived key seals one message (re-sealing happens only under a new generation),
//! so the random 96-bit nonce is never at risk of repeating under one key.
//!
//! Also: opening a version of the original AWS Labs ecs-secrets tool (`open_legacy`).

use crate::secret::Payload;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use zeroize::Zeroizing;

/// Bytes of a data key (AES_256).
pub const KEY_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
/// Bytes of a nonce (96 bits).
pub use ring::aead::NONCE_LEN;

/// Domain separation: bump when the format changes.
const SALT: &[u8] = b"ecs-secrets/dynamodb/v1";
const KEY_LABEL: &[u8] = b"version key";
const AAD_LABEL: &[u8] = b"version aad";

/// A plaintext data key: wiped on drop, never printed.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// The data key from KMS's plaintext; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return None;
        }
        k.copy_from_slice(bytes);
        Some(DataKey(k))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Where a version lives: everything its ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub path: &'a str,
    pub name: &'a str,
    pub serial: u64,
    pub generation: u64,
}

/// A sealed version: ciphertext (with the GCM tag appended) and its nonce.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// Sealing or opening failed. Deliberately without detail: AEAD failures say nothing more
/// than "does not authenticate", and callers name the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The ciphertext does not authenticate under this key and binding.
    Open,
    /// The nonce has the wrong length.
    Nonce,
    /// The system random number generator failed.
    Random,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CryptoError::Open => "the ciphertext does not authenticate",
            CryptoError::Nonce => "the nonce is not 12 bytes",
            CryptoError::Random => "the system random number generator failed",
        })
    }
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Length-prefixed encoding of a label and the binding's fields.
fn encode(label: &[u8], b: &Binding<'_>, with_generation: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + b.path.len() + b.name.len());
    field(&mut out, label);
    field(&mut out, b.path.as_bytes());
    field(&mut out, b.name.as_bytes());
    field(&mut out, &b.serial.to_be_bytes());
    if with_generation {
        field(&mut out, &b.generation.to_be_bytes());
    }
    out
}

/// The per-version AES-256-GCM key. The derived bytes never leave ring.
fn version_key(key: &DataKey, b: &Binding<'_>) -> LessSafeKey {
    let info = encode(KEY_LABEL, b, false);
    let info = [info.as_slice()];
    let prk = Salt::new(HKDF_SHA256, SALT).extract(&key.0[..]);
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// Seal `plaintext` for the version at `b`.
pub fn seal(key: &DataKey, b: &Binding<'_>, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CryptoError::Random)?;
    // Room for the tag up front: appending it must not reallocate and leave a copy of the
    // plaintext behind in freed memory.
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buf.extend_from_slice(plaintext);
    version_key(key, b)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(encode(AAD_LABEL, b, true)),
            &mut *buf,
        )
        .map_err(|_| CryptoError::Open)?;
    Ok(Sealed {
        ciphertext: std::mem::take(&mut *buf),
        nonce,
    })
}

/// Open the version at `b`; fails unless `ciphertext` was sealed for exactly this binding
/// under this data key.
pub fn open(
    key: &DataKey,
    b: &Binding<'_>,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<Payload, CryptoError> {
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Nonce)?;
    open_with(
        &version_key(key, b),
        nonce,
        Aad::from(encode(AAD_LABEL, b, true)),
        ciphertext,
    )
}

fn open_with(
    key: &LessSafeKey,
    nonce: Nonce,
    aad: Aad<Vec<u8>>,
    ciphertext: &[u8],
) -> Result<Payload, CryptoError> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = key
        .open_in_place(nonce, aad, &mut buf[..])
        .map_err(|_| CryptoError::Open)?
        .len();
    buf.truncate(len);
    Ok(Payload::new(std::mem::take(&mut *buf)))
}

/// Open a value of the original AWS Labs ecs-secrets tool: `nonce(12) ‖ ciphertext ‖ tag`,
/// AES-256-GCM without authenticated data, under the first 32 bytes of its KMS data key.
pub fn open_legacy(data_key: &[u8], sealed: &[u8]) -> Result<Payload, CryptoError> {
    if data_key.len() < KEY_LEN || sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Open);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let unbound =
        UnboundKey::new(&aead::AES_256_GCM, &data_key[..KEY_LEN]).map_err(|_| CryptoError::Open)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Nonce)?;
    open_with(
        &LessSafeKey::new(unbound),
        nonce,
        Aad::from(Vec::new()),
        ciphertext,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::from_slice(&[byte; KEY_LEN]).unwrap()
    }

    const AT: Binding<'static> = Binding {
        path: "/prod/app",
        name: "DB_PASSWORD",
        serial: 3,
        generation: 1,
    };

    #[test]
    fn round_trip_any_bytes() {
        for plain in [
            &b"hunter2"[..],
            &[0xff, 0xfe, b'\'', b'\n', 0x80][..],
            &[7u8; 65536][..],
        ] {
            let s = seal(&key(1), &AT, plain).unwrap();
            assert_eq!(s.ciphertext.len(), plain.len() + TAG_LEN);
            assert_ne!(&s.ciphertext[..plain.len()], plain);
            let p = open(&key(1), &AT, &s.nonce, &s.ciphertext).unwrap();
            assert_eq!(p.as_bytes(), plain);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let a = seal(&key(1), &AT, b"same").unwrap();
        let b = seal(&key(1), &AT, b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn any_change_of_binding_key_nonce_or_ciphertext_fails() {
        let s = seal(&key(1), &AT, b"hunter2").unwrap();
        let moved = [
            Binding {
                path: "/prod/other",
                ..AT
            },
            Binding {
                name: "DB_PASSWORD2",
                ..AT
            },
            Binding { serial: 4, ..AT },
            Binding {
                generation: 2,
                ..AT
            },
            // Length prefixes: the same bytes split differently are a different binding.
            Binding {
                path: "/prod/appD",
                name: "B_PASSWORD",
                ..AT
            },
        ];
        for b in moved {
            assert_eq!(
                open(&key(1), &b, &s.nonce, &s.ciphertext).unwrap_err(),
                CryptoError::Open,
                "{b:?}"
            );
        }
        assert!(open(&key(2), &AT, &s.nonce, &s.ciphertext).is_err());
        let mut nonce = s.nonce;
        nonce[0] ^= 1;
        assert!(open(&key(1), &AT, &nonce, &s.ciphertext).is_err());
        for i in [0, s.ciphertext.len() - 1] {
            let mut ct = s.ciphertext.clone();
            ct[i] ^= 0x80;
            assert!(open(&key(1), &AT, &s.nonce, &ct).is_err());
        }
        assert!(open(&key(1), &AT, &s.nonce, &s.ciphertext[..5]).is_err());
        assert_eq!(
            open(&key(1), &AT, &s.nonce[..11], &s.ciphertext).unwrap_err(),
            CryptoError::Nonce
        );
    }

    #[test]
    fn encodings_are_unambiguous() {
        let a = encode(AAD_LABEL, &AT, true);
        let b = encode(
            AAD_LABEL,
            &Binding {
                path: "/prod/appD",
                name: "B_PASSWORD",
                ..AT
            },
            true,
        );
        assert_ne!(a, b);
        assert_ne!(encode(KEY_LABEL, &AT, false), encode(AAD_LABEL, &AT, false));
    }

    #[test]
    fn data_keys_must_be_32_bytes_and_never_print() {
        assert!(DataKey::from_slice(&[1; 31]).is_none());
        assert!(DataKey::from_slice(&[1; 33]).is_none());
        assert_eq!(format!("{:?}", key(9)), "DataKey(<redacted>)");
    }

    #[test]
    fn legacy_values_open() {
        // As the original tool (cryptopasta.Encrypt) wrote them.
        let data_key = [5u8; 64];
        let nonce = [9u8; NONCE_LEN];
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &data_key[..32]).unwrap());
        let mut buf = b"legacy secret".to_vec();
        k.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .unwrap();
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&buf);
        assert_eq!(
            open_legacy(&data_key, &sealed).unwrap().as_bytes(),
            b"legacy secret"
        );
        sealed[20] ^= 1;
        assert!(open_legacy(&data_key, &sealed).is_err());
        assert!(open_legacy(&data_key[..16], &sealed).is_err());
        assert!(open_legacy(&data_key, &sealed[..20]).is_err());
    }
}
