//! Refusals that come before any route is looked at, in this order:
//!
//! 1. **Who the request is addressed to** must be unambiguous: at most one `Host`, a valid
//!    one, and an absolute-form target (`GET http://host/…`) only when it names the same
//!    authority as `Host` (RFC 9112 §3.2: a server must refuse two `Host` fields with 400;
//!    one that checked only the first could be addressed to one host and checked against
//!    another). A request without `Host` is accepted, HTTP/1.0 or 1.1: RFC 9112 wants 400
//!    for HTTP/1.1, but real clients omit it (HTTP/1.0 health checks, a `wrk` script's
//!    `wrk.format` with headers), nothing about our single origin is ambiguous without it,
//!    and no browser, hence no DNS rebinding, ever sends a request without one.
//! 2. **No proxies** (`X-Forwarded-For`, `Forwarded`) and **no web pages** (`Origin`).
//! 3. Without a token on loopback, the authority (the absolute-form target's, else `Host`'s)
//!    must be `localhost` or a loopback IP: this defeats DNS rebinding, whose requests
//!    come from a browser and always name the attacker's host.
//! 4. The token, on every route but `/ping`.

use super::auth::{self, Token};
use super::reply::Reply;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::http::uri::Authority;
use hyper::{Request, StatusCode};
use std::net::IpAddr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// What the guard needs to know about the daemon.
pub struct Guard {
    pub token: Option<Token>,
    /// No token on a loopback address: the authority must be loopback too.
    pub check_host: bool,
}

/// A loopback IP or `localhost` (with any port).
pub fn host_is_loopback(host: &str) -> bool {
    let h = match host.strip_prefix('[') {
        Some(r) => r.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(super::is_loopback)
}

fn bad(msg: &str) -> Option<Reply> {
    Some(Reply::error(StatusCode::BAD_REQUEST, msg))
}

/// The authority the request is addressed to (`Err`: refused), `Ok(None)` for a request
/// without `Host` and without an absolute-form target.
fn authority<B>(req: &Request<B>) -> Result<Option<Authority>, Reply> {
    let refuse = |msg: &str| Reply::error(StatusCode::BAD_REQUEST, msg);
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(refuse("more than one Host header")),
        (None, None) => None,
        (Some(h), None) => {
            let a = std::str::from_utf8(h.as_bytes())
                .ok()
                .filter(|s| !s.contains('@'))
                .and_then(|s| s.parse::<Authority>().ok());
            match a {
                Some(a) => Some(a),
                None => return Err(refuse("the Host header is not a valid host[:port]")),
            }
        }
    };
    let uri = req.uri();
    let target = match (uri.scheme_str(), uri.authority()) {
        (None, None) => None,
        (Some("http"), Some(a)) if a.as_str().contains('@') => {
            return Err(refuse("the request target may not carry user information"))
        }
        (Some("http"), Some(a)) => Some(a.clone()),
        // CONNECT's authority-form.
        (None, Some(a)) => Some(a.clone()),
        _ => {
            return Err(refuse(
                "an absolute-form request target must be http://HOST[:PORT]/…",
            ))
        }
    };
    match (target, host) {
        (Some(t), Some(h)) if t != h => Err(refuse(
            "the request target names another host than the Host header",
        )),
        (t, h) => Ok(t.or(h)),
    }
}

fn token_check(token: &Token, headers: &HeaderMap) -> Option<Reply> {
    let mut given = headers.get_all(auth::HEADER).iter();
    match (given.next(), given.next()) {
        (None, _) => Some(Reply::error(
            StatusCode::UNAUTHORIZED,
            "missing X-ECS-Secrets-Token header",
        )),
        (Some(_), Some(_)) => bad("more than one X-ECS-Secrets-Token header"),
        (Some(v), None) if token.verify(v.as_bytes()) => None,
        (Some(_), None) => Some(Reply::error(
            StatusCode::FORBIDDEN,
            "wrong X-ECS-Secrets-Token",
        )),
    }
}

impl Guard {
    /// `None` lets the request through to routing.
    pub fn refuse<B>(&self, req: &Request<B>, ping: bool) -> Option<Reply> {
        let to = match authority(req) {
            Ok(a) => a,
            Err(r) => return Some(r),
        };
        let headers = req.headers();
        if headers.contains_key(X_FORWARDED_FOR) || headers.contains_key(header::FORWARDED) {
            return bad(
                "requests that came through a proxy (X-Forwarded-For or Forwarded) are \
                 refused: call the daemon directly",
            );
        }
        if headers.contains_key(header::ORIGIN) {
            return Some(Reply::error(
                StatusCode::FORBIDDEN,
                "requests from web pages (with an Origin header) are refused",
            ));
        }
        if self.check_host && to.is_some_and(|a| !host_is_loopback(a.as_str())) {
            return Some(Reply::error(
                StatusCode::FORBIDDEN,
                "without a token the daemon answers only requests addressed to localhost or a \
                 loopback address (Host header)",
            ));
        }
        match (&self.token, ping) {
            (Some(t), false) => token_check(t, headers),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Version;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(host_is_loopback(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "localhost.evil:80",
        ] {
            assert!(!host_is_loopback(bad), "{bad}");
        }
    }

    fn req(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().uri(target).version(version);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap()
    }

    fn status(g: &Guard, r: &Request<()>) -> u16 {
        g.refuse(r, true).map_or(200, |r| r.status.as_u16())
    }

    #[test]
    fn the_addressee_is_unambiguous() {
        let open = Guard {
            token: None,
            check_host: true,
        };
        let tokened = Guard {
            token: Some(Token::new(b"t0123456789abcdef").unwrap()),
            check_host: false,
        };
        let v11 = Version::HTTP_11;
        for g in [&open, &tokened] {
            assert_eq!(status(g, &req(v11, "/ping", &["localhost"])), 200);
            for hosts in [
                &["localhost", "evil.example"][..],
                &["evil.example", "localhost"],
            ] {
                assert_eq!(status(g, &req(v11, "/ping", hosts)), 400, "{hosts:?}");
            }
            assert_eq!(
                status(g, &req(v11, "/ping", &["localhost", "localhost"])),
                400
            );
            assert_eq!(status(g, &req(v11, "/ping", &[])), 200);
            assert_eq!(status(g, &req(Version::HTTP_10, "/ping", &[])), 200);
            for (target, host) in [
                ("http://evil.example/ping", "localhost"),
                ("http://localhost/ping", "evil.example"),
                ("http://localhost:1/ping", "localhost:2"),
                ("https://localhost/ping", "localhost"),
                ("http://u@localhost/ping", "localhost"),
            ] {
                assert_eq!(
                    status(g, &req(v11, target, &[host])),
                    400,
                    "{target} {host}"
                );
            }
            assert_eq!(
                status(g, &req(v11, "http://LOCALHOST:9/ping", &["localhost:9"])),
                200
            );
            for host in ["a b", "u@localhost", ""] {
                assert_eq!(status(g, &req(v11, "/ping", &[host])), 400, "{host:?}");
            }
        }
        // Without a token, the authority must be loopback, wherever it comes from.
        let evil10 = req(Version::HTTP_10, "http://evil.example/ping", &[]);
        assert_eq!(status(&open, &evil10), 403);
        assert_eq!(status(&tokened, &evil10), 200);
        assert_eq!(status(&open, &req(v11, "/ping", &["evil.example"])), 403);
    }
}
