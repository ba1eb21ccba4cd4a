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

/// `NAME="…"` lines read back exactly by python-dotenv (and docker compose for values
/// without `$`): `\`, `"`, newline, CR and tab are escaped. Two things cannot be expressed
/// and are refused rather than written wrong: `${` (both readers expand it, quoted or not)
/// and a trailing `\` (python-dotenv reads `\\"` as an escaped quote and runs on into the
/// next line).
fn dotenv(secrets: &[Injection]) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    for s in secrets {
        let v = utf8(s, "dotenv")?;
        if v.contains("${") {
            return Err(Error::data(format!(
                "secret {} contains \"${{\", which dotenv readers expand: use --format shell or json",
                s.full_name()
            )));
        }
        if v.ends_with('\\') {
            return Err(Error::data(format!(
                "secret {} ends with a backslash, which dotenv readers cannot read back: use --format shell or json",
                s.full_name()
            )));
        }
        out.extend_from_slice(s.env_name.as_bytes());
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
        Ok(())
    }
}
