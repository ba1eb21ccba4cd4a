//! POSIX shell quoting that survives `eval` in dash, bash, zsh and busybox sh byte for byte.

use zeroize::Zeroizing;

/// Quote `value` as one single-quoted shell word: `'` becomes `'\''`, every other byte is
/// literal inside single quotes in every POSIX shell, zsh included.
///
/// Always quoted, never left bare: the `shell-escape` crate leaves "safe-looking" words such
/// as `=start=` unquoted, and zsh then expands a leading `=` (its EQUALS option) — found by
/// the four-shell eval test. It also takes only UTF-8, and secret values may be any bytes.
pub fn quote(value: &[u8]) -> Zeroizing<Vec<u8>> {
    let quotes = value.iter().filter(|&&b| b == b'\'').count();
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 3 * quotes + 2));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_values() {
        assert_eq!(&quote(b"plain")[..], b"'plain'");
        assert_eq!(&quote(b"=x")[..], b"'=x'");
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
