//! `env`'s three output formats. Everything is rendered into one buffer before a byte is
//! written, so a failure prints nothing partial.

use super::env::Injection;
use super::shell::quote;
use crate::config::Format;
use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// What stdout carries when `env` fails in shell format: a line that makes an evaluating
/// shell exit non-zero, so `eval "$(ecs-secrets-env)"` fails closed even when the caller
/// ignores the exit status. The reason goes to stderr.
pub const SHELL_FAILURE: &str =
    "echo 'ecs-secrets: failed to load secrets, see the error above' >&2; exit 1\n";

pub fn render(format: Format, secrets: &[Injection]) -> Result<Zeroizing<Vec<u8>>> {
    match format {
        Format::Shell => Ok(shell(secrets)),
        Format::Dotenv => dotenv(secrets),
        Format::Json => json(secrets),
    }
}

fn shell(secrets: &[Injection]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    for s in secrets {
        out.extend_from_slice(b"export ");
        out.extend_from_slice(s.env_name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(&quote(s.secret.payload.as_bytes()));
        out.push(b'\n');
    }
    out
}

fn utf8<'a>(s: &'a Injection, format: &str) -> Result<&'a str> {
    s.secret.payload.as_str().ok_or_else(|| {
        Error::data(format!(
            "secret {} is not valid UTF-8 and cannot be written as {format}: use --format shell",
            s.full_name()
        ))
    })
}

/// One `NAME=…` line per secret, read back exactly by python-dotenv (1.x) and by docker
/// compose's `env_file` (compose-go's dotenv parser):
/// - usually `NAME="…"`, with `\\`, `"`, newline, CR and tab escaped (both readers decode
///   those five escapes alike; python-dotenv's universal newlines never see a raw CR);
/// - `NAME='…'`, verbatim, when a `$` is followed by a letter, `_` or `$`: inside double
///   quotes compose expands `$word` and reads `$$` as `$` (python-dotenv does neither), and
///   no escape of `$` means the same to both (compose reads `\$` as `$`, python-dotenv keeps
///   the backslash). Inside single quotes neither expands `$word`, and both give the text
///   back as written except `\'` and (python-dotenv only) `\\`; python-dotenv also turns a
///   raw CR into a newline. So such a value that also holds `'`, `\\` or a CR is refused.
///   (Any other `$`, e.g. `$%` or a final `$`, compose leaves alone inside double quotes.)
///
/// Refused too, rather than written wrong: `${` (python-dotenv expands it however quoted)
/// and a trailing `\` (python-dotenv reads `\\"` as an escaped quote and runs on).
fn dotenv(secrets: &[Injection]) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    for s in secrets {
        let v = utf8(s, "dotenv")?;
        let refuse = |what: &str| {
            Err(Error::data(format!(
                "secret {} {what}, which dotenv readers (docker compose, python-dotenv) cannot \
                 read back exactly: use --format shell or json",
                s.full_name()
            )))
        };
        if v.contains("${") {
            return refuse("contains \"${\" (expanded by python-dotenv however quoted)");
        }
        if v.ends_with('\\') {
            return refuse("ends with a backslash");
        }
        out.extend_from_slice(s.env_name.as_bytes());
        if expands_in_compose(v) {
            if v.contains('\'') || v.contains('\r') || v.contains("\\\\") {
                return refuse(
                    "contains a \"$\" that docker compose expands inside double quotes \
                     ($NAME, $$), together with a single quote, a CR or two backslashes in a row",
                );
            }
            out.extend_from_slice(b"='");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"'\n");
            continue;
        }
        out.extend_from_slice(b"=\"");
        for c in v.chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '"' => out.extend_from_slice(b"\\\""),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\"\n");
    }
    Ok(out)
}

/// Whether docker compose would expand something in `v` written inside double quotes: a `$`
/// followed by a letter, `_` or `$` (compose-go's template pattern, case-insensitive), or
/// by `{`.
fn expands_in_compose(v: &str) -> bool {
    v.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'_' | b'$' | b'{')))
}

fn json(secrets: &[Injection]) -> Result<Zeroizing<Vec<u8>>> {
    let mut map = serde_json::Map::new();
    for s in secrets {
        let v = utf8(s, "json")?;
        map.insert(s.env_name.clone(), serde_json::Value::String(v.to_string()));
    }
    let mut out = serde_json::to_vec(&serde_json::Value::Object(map))
        .map_err(|e| Error::data(format!("cannot encode json: {e}")))?;
    out.push(b'\n');
    // The map's own copies are dropped here unwiped; serde_json offers no zeroizing map.
    // The rendered buffer is what lives on, and it is wiped.
    Ok(Zeroizing::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::env::plan;
    use crate::secret::{Payload, Secret};

    fn one(v: &[u8]) -> Vec<Injection> {
        plan(
            vec![(
                "/p".into(),
                vec![Secret {
                    name: "K".into(),
                    serial: 1,
                    payload: Payload::new(v.to_vec()),
                }],
            )],
            &[],
            &[],
        )
        .unwrap()
    }

    #[test]
    fn formats() -> Result<()> {
        assert_eq!(
            &render(Format::Shell, &one(b"a b"))?[..],
            b"export K='a b'\n"
        );
        assert_eq!(
            &render(Format::Dotenv, &one(b"a\"b\\c\nd"))?[..],
            b"K=\"a\\\"b\\\\c\\nd\"\n"
        );
        assert_eq!(
            &render(Format::Json, &one(b"x\"y"))?[..],
            b"{\"K\":\"x\\\"y\"}\n"
        );
        assert!(render(Format::Json, &one(b"\xff")).is_err());
        let e = render(Format::Dotenv, &one(b"a${HOME}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/p/K") && !e.contains("HOME"), "{e}");
        // `$` without a brace: single quotes, verbatim (compose expands `$word` inside
        // double quotes).
        assert_eq!(
            &render(Format::Dotenv, &one(b"pa$word \\d\n\"x\""))?[..],
            b"K='pa$word \\d\n\"x\"'\n"
        );
        // Any other `$` compose leaves alone inside double quotes.
        assert_eq!(
            &render(Format::Dotenv, &one(b"it's $5 $% $"))?[..],
            b"K=\"it's $5 $% $\"\n"
        );
        for bad in [&b"it's $x"[..], b"$a\\\\b", b"$$\rb", b"$_\\"] {
            let e = render(Format::Dotenv, &one(bad)).unwrap_err().to_string();
            assert!(e.contains("/p/K") && e.contains("--format shell"), "{e}");
        }
        Ok(())
    }
}
