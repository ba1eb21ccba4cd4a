//! A request path → its route. Pure (no I/O, no crate types beyond the names module), so
//! the `daemon_routes` fuzz target can include this file with `names.rs` beside it: the
//! crate reaches the names module as `super::names` through a `use` in `daemon/mod.rs`,
//! the fuzz target by declaring both files at its root.

use super::names;

const GET: &str = "GET, HEAD";
const GET_POST: &str = "GET, HEAD, POST";
const POST: &str = "POST";
const NONE: &str = "";

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Ping,
    Version,
    List,
    Secret { name: String, serial: Option<u64> },
    Revoke { name: String, serial: u64 },
}

impl Route {
    /// The methods the route answers (read-only: without POST).
    pub fn allow(&self, read_only: bool) -> &'static str {
        match (self, read_only) {
            (Route::Secret { serial: None, .. }, false) => GET_POST,
            (Route::Revoke { .. }, false) => POST,
            (Route::Revoke { .. }, true) => NONE,
            _ => GET,
        }
    }

    /// For `--debug`: the route without its names.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Ping => "/ping",
            Route::Version => "/version",
            Route::List => "/secrets",
            Route::Secret { serial: None, .. } => "/secrets/{name}",
            Route::Secret {
                serial: Some(_), ..
            } => "/secrets/{name}/{serial}",
            Route::Revoke { .. } => "/revoke/{name}/{serial}",
        }
    }
}

/// Why a path is not a route.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// 404: no such route.
    Unknown,
    /// 400: the route exists, its name or serial is invalid.
    Bad(String),
}

/// One percent-encoded path segment → text (`%2F` lets a nested name's `/` through a
/// single segment).
fn decode(seg: &str) -> std::result::Result<String, NoRoute> {
    let bad = || NoRoute::Bad("the path has an invalid percent-encoding".into());
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // Exactly two hex digits: `from_str_radix` alone would also take a sign (`%+1`).
            let hex = match b.get(i + 1..i + 3) {
                Some(&[h, l]) => hex_val(h).zip(hex_val(l)).ok_or_else(bad)?,
                _ => return Err(bad()),
            };
            out.push(hex.0 << 4 | hex.1);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn name_of(segs: &[&str]) -> std::result::Result<String, NoRoute> {
    // The common case, one segment without escapes, is its own decoding and join: checked
    // as it is, without the three allocations below.
    if let [seg] = segs {
        if !seg.contains('%') {
            return names::validate_name(seg).map_err(NoRoute::Bad);
        }
    }
    let parts = segs
        .iter()
        .map(|s| decode(s))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    names::validate_name(&parts.join("/")).map_err(NoRoute::Bad)
}

fn serial_of(seg: &str) -> std::result::Result<u64, NoRoute> {
    names::parse_serial(seg).map_err(NoRoute::Bad)
}

fn is_serial(seg: &str) -> bool {
    !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())
}

/// A request path (no query) → its route. Names may be nested (`db/password`): in
/// `/secrets/{name}/{serial}` a last segment made of digits is the serial.
pub fn parse(path: &str) -> std::result::Result<(Route, &'static str), NoRoute> {
    if path == "/ping" {
        return Ok((Route::Ping, ""));
    }
    let (prefix, rest) = if let Some(r) = path.strip_prefix("/latest/") {
        ("/latest", r)
    } else if let Some(r) = path.strip_prefix("/v1/") {
        ("/v1", r)
    } else {
        return Err(NoRoute::Unknown);
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let route = match segs.as_slice() {
        ["version"] => Route::Version,
        ["secrets"] => Route::List,
        ["secrets", name @ .., last] if !name.is_empty() && is_serial(last) => Route::Secret {
            name: name_of(name)?,
            serial: Some(serial_of(last)?),
        },
        ["secrets", name @ ..] => Route::Secret {
            name: name_of(name)?,
            serial: None,
        },
        ["revoke", name @ .., last] if !name.is_empty() => Route::Revoke {
            name: name_of(name)?,
            serial: serial_of(last)?,
        },
        ["revoke", ..] => {
            return Err(NoRoute::Bad(
                "revoke needs a name and a serial: POST /latest/revoke/{name}/{serial}".into(),
            ))
        }
        _ => return Err(NoRoute::Unknown),
    };
    Ok((route, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, serial: Option<u64>) -> Route {
        Route::Secret {
            name: name.into(),
            serial,
        }
    }

    #[test]
    fn routes_under_both_prefixes() {
        for p in ["/latest", "/v1"] {
            let r = |s: &str| parse(&format!("{p}{s}")).map(|(r, _)| r);
            assert_eq!(r("/version"), Ok(Route::Version));
            assert_eq!(r("/secrets"), Ok(Route::List));
            assert_eq!(r("/secrets/DB"), Ok(secret("DB", None)));
            assert_eq!(r("/secrets/DB/3"), Ok(secret("DB", Some(3))));
            assert_eq!(r("/secrets/db/password"), Ok(secret("db/password", None)));
            assert_eq!(r("/secrets/db%2F2/7"), Ok(secret("db/2", Some(7))));
            assert_eq!(
                r("/revoke/DB/2"),
                Ok(Route::Revoke {
                    name: "DB".into(),
                    serial: 2
                })
            );
            assert!(matches!(r("/secrets/DB/0"), Err(NoRoute::Bad(_))));
            assert!(matches!(r("/secrets/1DB"), Err(NoRoute::Bad(_))));
            assert!(matches!(r("/secrets/"), Err(NoRoute::Bad(_))));
            assert!(matches!(r("/secrets/a%zz"), Err(NoRoute::Bad(_))));
            assert!(matches!(r("/secrets/a%00b"), Err(NoRoute::Bad(_))));
            assert!(matches!(r("/revoke/DB/x"), Err(NoRoute::Bad(_))));
            assert!(matches!(r("/revoke/DB"), Err(NoRoute::Bad(_))));
            assert!(matches!(r("/secrets/%2E%2E/x"), Err(NoRoute::Bad(_))));
            assert_eq!(r("/other"), Err(NoRoute::Unknown));
        }
        assert_eq!(parse("/ping").map(|(r, _)| r), Ok(Route::Ping));
        assert_eq!(parse("/secrets/DB"), Err(NoRoute::Unknown));
        assert_eq!(parse("/latest"), Err(NoRoute::Unknown));
    }

    #[test]
    fn percent_encoding_is_exactly_two_hex_digits() {
        let bad_encoding = || {
            Err(NoRoute::Bad(
                "the path has an invalid percent-encoding".into(),
            ))
        };
        assert_eq!(
            parse("/latest/secrets/db%2fpw").map(|(r, _)| r),
            Ok(secret("db/pw", None))
        );
        assert_eq!(
            parse("/latest/secrets/%41%5f%2D1").map(|(r, _)| r),
            Ok(secret("A_-1", None))
        );
        // `u8::from_str_radix` takes a sign: `%+1` used to decode to 0x01.
        for bad in [
            "%+1", "%+F", "%-1", "%1", "%", "%g0", "% 1", "%1\u{e9}", "%\u{e9}",
        ] {
            let p = format!("/latest/secrets/A{bad}Z");
            assert_eq!(parse(&p), bad_encoding(), "{p:?}");
        }
        // Decoded bytes must still be UTF-8.
        assert_eq!(parse("/latest/secrets/A%C3"), bad_encoding());
    }

    #[test]
    fn read_only_removes_posts() {
        assert_eq!(secret("A", None).allow(false), GET_POST);
        assert_eq!(secret("A", None).allow(true), GET);
        let rv = Route::Revoke {
            name: "A".into(),
            serial: 1,
        };
        assert_eq!(rv.allow(false), POST);
        assert_eq!(rv.allow(true), NONE);
    }
}
