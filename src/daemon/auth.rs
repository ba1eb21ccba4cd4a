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
/// Only a regular file (a symlink to one is fine) of at most `MAX_TOKEN_FILE` bytes, read
/// through [`crate::fsread`]: a FIFO or `/dev/stdin` would hang the start. Refused, because
/// someone other than us or root could have chosen the token: a file that group or others
/// can write, or that another user owns; a symbolic link on the way that another user owns;
/// a directory on the way that group or others can write without the sticky bit (they
/// could rename the file and put theirs in its place). One anyone can read is accepted with
/// a warning. Every refusal is a usage error.
pub fn token_from_file(path: &Path) -> Result<Token> {
    use std::os::unix::fs::PermissionsExt;
    let source = format!(
        "--token-file {}",
        crate::inject::env::printable(&path.to_string_lossy())
    );
    let refuse = |why: String| Error::usage(format!("{source}: {why}"));
    let (file, meta) = crate::fsread::open_regular(path, MAX_TOKEN_FILE).map_err(|e| match e {
        crate::fsread::FileError::NotRegular(_) | crate::fsread::FileError::TooLarge(..) => {
            refuse(format!("{e}: it should hold only the token"))
        }
        e => Error::usage(format!("cannot read {source}: {e}")),
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(refuse(format!(
            "any user can write it (mode {:03o}), so any user could choose the token: \
             chmod o-w it (e.g. chmod 600)",
            mode & 0o777
        )));
    }
    if mode & 0o020 != 0 {
        return Err(refuse(format!(
            "its group can write it (mode {:03o}), so any member could choose the token: \
             chmod g-w it (e.g. chmod 600)",
            mode & 0o777
        )));
    }
    writers(path, &meta).map_err(refuse)?;
    if mode & 0o004 != 0 {
        crate::log::warn(format_args!(
            "{source} can be read by any user (mode {:03o}): chmod o-r it (e.g. chmod 600 \
             or 640)",
            mode & 0o777
        ));
    }
    let raw = crate::fsread::read_open(file, &meta, MAX_TOKEN_FILE).map_err(|e| match e {
        crate::fsread::FileError::TooLarge(..) => refuse(format!(
            "larger than {MAX_TOKEN_FILE} bytes: it should hold only the token"
        )),
        e => Error::usage(format!("cannot read {source}: {e}")),
    })?;
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    check(&raw[..end], &source)?;
    Token::new(&raw[..end])
}

/// Whether anyone but us and root could have put a file of their choosing at `path`: its
/// owner (`meta`, the opened file's), the owner of every symbolic link on the way (each
/// component of the path as given, and of each link's target in turn), and every directory
/// holding one of those (writable by group or others without the sticky bit). `Err` names
/// the first such.
fn writers(path: &Path, meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let trusted = |uid: u32| uid == 0 || uid == me;
    if !trusted(meta.uid()) {
        return Err(format!(
            "it is owned by another user (uid {}), who could choose the token: chown it to \
             the daemon's user or root",
            meta.uid()
        ));
    }
    let shown = |p: &Path| crate::inject::env::printable(&p.to_string_lossy());
    let dir_ok = |d: &Path| -> std::result::Result<(), String> {
        let Ok(m) = std::fs::metadata(d) else {
            return Ok(());
        };
        let mode = m.mode();
        let sticky = mode & 0o1000 != 0;
        if !sticky && mode & 0o022 != 0 {
            let who = if mode & 0o002 != 0 {
                "any user"
            } else {
                "its group"
            };
            return Err(format!(
                "it is in the directory {}, which {who} can write (mode {:03o}, no sticky \
                 bit), so they could replace the file and choose the token: keep the token \
                 in a directory only its owner can write",
                shown(d),
                mode & 0o777
            ));
        }
        if !trusted(m.uid()) {
            return Err(format!(
                "it is in the directory {}, owned by another user (uid {}), who could \
                 replace the file and choose the token",
                shown(d),
                m.uid()
            ));
        }
        Ok(())
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut next = Some(cwd.join(path));
    let mut hops = 0;
    while let Some(p) = next.take() {
        // Every prefix of this path: a link there must be ours or root's; the directory
        // holding it must be safe.
        let mut prefix = std::path::PathBuf::new();
        for c in p.components() {
            prefix.push(c);
            if prefix.parent().is_some() {
                dir_ok(prefix.parent().unwrap_or(Path::new("/")))?;
            }
            if let Ok(Some(uid)) = crate::fsread::link_owner(&prefix) {
                if !trusted(uid) {
                    return Err(format!(
                        "{} is a symbolic link owned by another user (uid {uid}), who could \
                         point it at a token of their choosing: name the file itself, or \
                         chown -h the link",
                        shown(&prefix)
                    ));
                }
            }
        }
        // The last component a link: its target's path, checked in turn.
        if let Ok(target) = std::fs::read_link(&p) {
            hops += 1;
            if hops > 40 {
                break;
            }
            next = Some(p.parent().unwrap_or(Path::new("/")).join(target));
        }
    }
    // The directories the file really lives in.
    if let Ok(real) = std::fs::canonicalize(path) {
        for d in real.ancestors().skip(1) {
            dir_ok(d)?;
        }
    }
    Ok(())
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
