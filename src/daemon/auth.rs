//! The client token (`X-ECS-Secrets-Token`).
//!
//! The token itself is not kept: at start-up we draw a random HMAC key and keep only
//! HMAC(key, token). A presented token is checked with `ring::hmac::verify`, whose final
//! comparison is constant-time; the work before it depends only on the length of what the
//! client sent, never on the real token. (ring 0.17 deprecates its public constant-time
//! compare; this is the supported route, and it also means no plaintext token sits in the
//! daemon's memory.)

use crate::error::{Error, Result};
use ring::hmac;
use ring::rand::SystemRandom;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The header clients send the token in.
pub const HEADER: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-ecs-secrets-token");

pub struct Token {
    key: hmac::Key,
    tag: hmac::Tag,
    len: usize,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted {} bytes>)", self.len)
    }
}

impl Token {
    pub fn new(secret: &[u8]) -> Result<Token> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| Error::io("the system random number generator failed"))?;
        let tag = hmac::sign(&key, secret);
        Ok(Token {
            key,
            tag,
            len: secret.len(),
        })
    }

    /// Whether `presented` is the token, in time independent of the token.
    pub fn verify(&self, presented: &[u8]) -> bool {
        hmac::verify(&self.key, presented, self.tag.as_ref()).is_ok()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A token must fit in an HTTP header unchanged: visible ASCII, no spaces (which clients
/// and proxies trim), not empty.
fn check(bytes: &[u8], source: &str) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::usage(format!(
            "{source}: the token is empty; a daemon with an empty token would accept anyone"
        )));
    }
    if let Some(pos) = bytes.iter().position(|b| !(0x21..=0x7e).contains(b)) {
        return Err(Error::usage(format!(
            "{source}: the token has a character at position {} that cannot be sent in an \
             HTTP header: use printable ASCII without spaces",
            pos + 1
        )));
    }
    Ok(())
}

/// The largest token file read: a token is a header value, not a document.
pub const MAX_TOKEN_FILE: u64 = 4096;

/// The token from `--token-file`: the file's bytes without trailing newlines (`echo` and
/// editors add one). Read once, at start: a rotated token needs a restart.
///
/// Only a regular file (a symlink to one is fine) of at most `MAX_TOKEN_FILE` bytes: a
/// FIFO or `/dev/stdin` would hang the start. A file anyone can write is refused (anyone
/// could choose the token); one anyone can read is accepted with a warning. Every refusal
/// is a usage error.
pub fn token_from_file(path: &Path) -> Result<Token> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let source = format!(
        "--token-file {}",
        crate::inject::env::printable(&path.to_string_lossy())
    );
    let refuse = |why: String| Error::usage(format!("{source}: {why}"));
    // Non-blocking, so that opening a FIFO returns at once; a regular file ignores it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::usage(format!("cannot read {source}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::usage(format!("cannot read {source}: {e}")))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(refuse(format!(
            "any user can write it (mode {:03o}), so any user could choose the token: \
             chmod o-w it (e.g. chmod 600)",
            mode & 0o777
        )));
    }
    if meta.len() > MAX_TOKEN_FILE {
        return Err(refuse(format!(
            "larger than {MAX_TOKEN_FILE} bytes: it should hold only the token"
        )));
    }
    if mode & 0o004 != 0 {
        crate::log::warn(format_args!(
            "{source} can be read by any user (mode {:03o}): chmod o-r it (e.g. chmod 600 \
             or 640)",
            mode & 0o777
        ));
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(MAX_TOKEN_FILE as usize + 1));
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::usage(format!("cannot read {source}: {e}")))?;
    if raw.len() as u64 > MAX_TOKEN_FILE {
        return Err(refuse(format!(
            "larger than {MAX_TOKEN_FILE} bytes: it should hold only the token"
        )));
    }
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    check(&raw[..end], &source)?;
    Token::new(&raw[..end])
}

/// The token from `ECS_SECRETS_TOKEN` (set but empty is refused, not read as "no token").
pub fn token_from_env(value: &OsStr) -> Result<Token> {
    let bytes = value.as_bytes();
    check(bytes, "ECS_SECRETS_TOKEN")?;
    Token::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_exact_token() {
        let t = Token::new(b"s3cret-token-value").unwrap();
        assert!(t.verify(b"s3cret-token-value"));
        for bad in [
            &b""[..],
            b"s3cret-token-valu",
            b"s3cret-token-value2",
            b"S3cret-token-value",
        ] {
            assert!(!t.verify(bad), "{bad:?}");
        }
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn file_tokens_lose_trailing_newlines_and_must_be_printable() {
        let dir = std::env::temp_dir().join(format!("ecs-secrets-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "abc\r\n\n").unwrap();
        assert!(token_from_file(&f).unwrap().verify(b"abc"));
        std::fs::write(&f, "x".repeat(MAX_TOKEN_FILE as usize + 1)).unwrap();
        assert!(matches!(token_from_file(&f), Err(Error::Usage(_))));
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&f, "abc").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o646)).unwrap();
        let e = token_from_file(&f).unwrap_err();
        assert!(e.to_string().contains("any user can write"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(token_from_file(&dir), Err(Error::Usage(_))));
        // A symlink to a regular file (Kubernetes and Docker secrets) is read through.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(token_from_file(&link).unwrap().verify(b"abc"));
        for bad in ["\n", "", "a b", "tab\there"] {
            std::fs::write(&f, bad).unwrap();
            let e = token_from_file(&f).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad:?}: {e}");
        }
        let e = token_from_file(&dir.join("missing")).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(token_from_env(OsStr::new("")).is_err());
    }
}
