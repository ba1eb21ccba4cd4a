//! POSIX shell quoting that survives `eval` in dash, bash, zsh and busybox sh byte for byte.

use std::borrow::Cow;
use zeroize::Zeroizing;

/// Quote `value` as one shell word. UTF-8 text goes through the `shell-escape` crate
/// (single quotes, `'` and `!` escaped outside them, safe words left bare); bytes that are
/// not UTF-8 — which that crate cannot take — get the same single-quote rule by hand.
pub fn quote(value: &[u8]) -> Zeroizing<Vec<u8>> {
    match std::str::from_utf8(value) {
        Ok(s) => match shell_escape::unix::escape(Cow::Borrowed(s)) {
            Cow::Borrowed(b) => Zeroizing::new(b.as_bytes().to_vec()),
            Cow::Owned(o) => Zeroizing::new(o.into_bytes()),
        },
        Err(_) => {
            let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 2));
            out.push(b'\'');
            for &b in value {
                if b == b'\'' {
                    out.extend_from_slice(b"'\\''");
                } else {
                    out.push(b);
                }
            }
            out.push(b'\'');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_values() {
        assert_eq!(&quote(b"plain")[..], b"plain");
        assert_eq!(&quote(b"")[..], b"''");
        assert_eq!(&quote(b"it's")[..], b"'it'\\''s'");
        assert_eq!(&quote(b"$(id)`x`")[..], b"'$(id)`x`'");
        assert_eq!(&quote(b"\xff'\n")[..], b"'\xff'\\''\n'");
    }

    #[test]
    fn round_trips_through_sh() {
        // Property check against a real shell: every byte 1..=255 and the nasty classics.
        let mut all: Vec<u8> = (1u8..=255).collect();
        all.extend_from_slice(b"'\"\\$`!*?~#");
        for v in [all, b"-n".to_vec(), b"=x".to_vec(), b"a'b''c".to_vec()] {
            let mut script = b"X=".to_vec();
            script.extend_from_slice(&quote(&v));
            script.extend_from_slice(b"; printf %s \"$X\"");
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&script))
                .output()
                .unwrap();
            assert_eq!(out.stdout, v, "{:?}", String::from_utf8_lossy(&script));
        }
    }
}
