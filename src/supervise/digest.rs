//! Change detection without keeping plaintext: an HMAC-SHA256 of the whole set under a
//! random key made for this process (and never written anywhere), so what stays in memory
//! between refreshes cannot be checked against guessed values by anyone who reads it.

use crate::inject::env::Injection;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

pub struct Key(hmac::Key);

/// The keyed digest of one set of secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Digest(Vec<u8>);

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(..)")
    }
}

impl Key {
    pub fn random() -> Key {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut k[..])
            .expect("the system random number generator failed");
        Key(hmac::Key::new(hmac::HMAC_SHA256, &k[..]))
    }

    /// Every part of every secret that decides what CMD gets: the name it is injected as,
    /// where it came from, and its value (each length-prefixed, so no two sets encode
    /// alike). Serials are left out: storing the same value again is not a change.
    pub fn digest(&self, secrets: &[Injection]) -> Digest {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&(secrets.len() as u64).to_le_bytes());
        for s in secrets {
            for part in [
                s.env_name.as_bytes(),
                s.path.as_bytes(),
                s.secret.name.as_bytes(),
                s.secret.payload.as_bytes(),
            ] {
                ctx.update(&(part.len() as u64).to_le_bytes());
                ctx.update(part);
            }
        }
        Digest(ctx.sign().as_ref().to_vec())
    }
}

/// A uniform random duration in `[0, max]`, for the splay.
pub fn random_upto(max: std::time::Duration) -> std::time::Duration {
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        return max / 2;
    }
    let frac = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::env::plan;
    use crate::secret::{Payload, Secret};

    fn set(pairs: &[(&str, &str)]) -> Vec<Injection> {
        let secrets = pairs
            .iter()
            .map(|(n, v)| Secret {
                name: n.to_string(),
                serial: 1,
                payload: Payload::from_string(v.to_string()),
            })
            .collect();
        plan(vec![("/p".into(), secrets)], &[], &[]).unwrap()
    }

    #[test]
    fn changes_in_value_name_or_membership_are_seen() {
        let k = Key::random();
        let base = k.digest(&set(&[("A", "1"), ("B", "2")]));
        assert_eq!(base, k.digest(&set(&[("B", "2"), ("A", "1")])));
        for other in [
            set(&[("A", "1"), ("B", "3")]),
            set(&[("A", "1")]),
            set(&[("A", "1"), ("B", "2"), ("C", "")]),
            set(&[("A", "12"), ("B", "")]),
            set(&[]),
        ] {
            assert_ne!(base, k.digest(&other));
        }
        // Another process (another key) gets another digest for the same set.
        assert_ne!(base, Key::random().digest(&set(&[("A", "1"), ("B", "2")])));
        assert!(
            random_upto(std::time::Duration::from_secs(1)) <= std::time::Duration::from_secs(1)
        );
    }
}
