//! Requests → routes (`route.rs`) → handlers.
//!
//! Every route of the original daemon exists under `/latest/` and `/v1/`; `/ping` is the
//! only one without a prefix and without a token. Before any route is looked at, `guard.rs`
//! refuses what must be refused (ambiguous `Host`, proxies, web pages, DNS rebinding, a
//! missing or wrong token). Then the route, then the method.

use super::cache::{Cache, Key};
use super::conn::Working;
use super::guard::Guard;
use super::reply::{json_str, Reply};
use super::route::{parse, NoRoute, Route};
use super::DaemonConfig;
use crate::error::{Error, Result};
use crate::secret::Payload;
use crate::store::Store;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::{Zeroize, Zeroizing};

/// The largest request body read: room for `{"payload":"…"}` around the largest payload a
/// backend stores (64 KiB, dynamodb) even with JSON escapes. Larger: 413.
pub const MAX_BODY: usize = 128 * 1024;
/// A request body must arrive within this long once the head is in: 408 otherwise.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What every request handler needs; shared by all connections.
pub struct State {
    store: Store,
    path: String,
    timeout: Duration,
    guard: Guard,
    read_only: bool,
    cache: Cache,
    version: Bytes,
}

impl State {
    pub fn new(store: Store, path: String, timeout: Duration, cfg: DaemonConfig) -> State {
        let check_host = cfg.checks_host();
        let cache = Cache::new(cfg.cache_ttl);
        cache.spawn_sweeper();
        State {
            store,
            path,
            timeout,
            guard: Guard {
                token: cfg.token,
                check_host,
            },
            read_only: cfg.read_only,
            cache,
            version: Bytes::from(format!(
                "{{\"version\":{}}}",
                json_str(env!("CARGO_PKG_VERSION"))
            )),
        }
    }
}

/// Every request ends here: one reply, and with `--debug` one log line (method, route
/// template, status, time — never a name's value).
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    working: &Working,
) -> Response<Full<Bytes>> {
    // Timed and named only for the log line, only with --debug.
    let debug = crate::log::debug_enabled().then(|| (Instant::now(), req.method().clone()));
    let (reply, prefix, template) = answer(&state, req, working).await;
    if let Some((start, method)) = debug {
        crate::log::debug(format_args!(
            "{method} {prefix}{template} {} {:.1} ms",
            reply.status.as_u16(),
            start.elapsed().as_secs_f64() * 1e3
        ));
    }
    reply.into_response()
}

/// The reply, and the route's prefix and template for the log line.
async fn answer(
    state: &State,
    req: Request<Incoming>,
    working: &Working,
) -> (Reply, &'static str, &'static str) {
    let path = req.uri().path();
    if let Some(r) = state.guard.refuse(&req, path == "/ping") {
        return (r, "", "(refused)");
    }
    let (route, prefix) = match parse(path) {
        Ok(r) => r,
        Err(NoRoute::Unknown) => {
            return (
                Reply::error(StatusCode::NOT_FOUND, "no such route"),
                "",
                "(unknown route)",
            )
        }
        Err(NoRoute::Bad(msg)) => {
            return (
                Reply::error(StatusCode::BAD_REQUEST, &msg),
                "",
                "(bad name or serial)",
            )
        }
    };
    let template = route.template();
    let allow = route.allow(state.read_only);
    let method = req.method();
    let is_get = method == Method::GET || method == Method::HEAD;
    let allowed = if is_get {
        allow.starts_with("GET")
    } else {
        method == Method::POST && allow.contains("POST")
    };
    if !allowed {
        let msg = if method == Method::POST && state.read_only {
            "the daemon is read-only (--read-only): writes are disabled".to_string()
        } else {
            format!("method {method} is not allowed here")
        };
        return (Reply::method_not_allowed(allow, &msg), prefix, template);
    }
    let reply = match route {
        Route::Ping => Reply::ok(Bytes::from_static(b"{\"status\":\"ok\"}")),
        Route::Version => Reply::ok(state.version.clone()),
        Route::List => list(state).await,
        Route::Secret { name, serial } if is_get => get_secret(state, name, serial).await,
        Route::Secret { name, .. } => create(state, name, req.into_body(), working).await,
        Route::Revoke { name, serial } => revoke(state, name, serial).await,
    };
    (reply, prefix, template)
}

async fn get_secret(state: &State, name: String, serial: Option<u64>) -> Reply {
    let key = Key::Secret(name, serial);
    let Key::Secret(name, _) = &key else {
        unreachable!("built just above")
    };
    // What a fetch needs is cloned only on a miss: a hit allocates nothing here.
    let fetch = || {
        let (store, path, timeout) = (state.store.clone(), state.path.clone(), state.timeout);
        let name = name.clone();
        async move {
            let what = format!("fetching {path}/{name}");
            let fetched = crate::aws::with_deadline(timeout, &what, async {
                store.fetch(&path, &name, serial).await
            })
            .await;
            match fetched {
                Ok(f) if f.active => match crate::cmd::admin::fetched_json(&f) {
                    // The body's owner is the zeroizing buffer: wiped when the last copy of
                    // this reply (cache entry, response in flight) is dropped.
                    Ok(buf) => Reply::ok(Bytes::from_owner(buf)),
                    Err(e) => Reply::from_error(&e),
                },
                // Never the payload of a revoked version; 410 says it existed.
                Ok(f) => Reply::new(
                    StatusCode::GONE,
                    format!(
                        "{{\"error\":{},\"name\":{},\"serial\":{},\"active\":false}}",
                        json_str(&format!(
                            "{path}/{name} serial {} is revoked; its payload is never returned",
                            f.serial
                        )),
                        json_str(&f.name),
                        f.serial
                    ),
                ),
                Err(e) => Reply::from_error(&e),
            }
        }
    };
    state.cache.get(&key, fetch).await
}

async fn list(state: &State) -> Reply {
    let (store, path, timeout) = (state.store.clone(), state.path.clone(), state.timeout);
    state
        .cache
        .get(&Key::List, move || async move {
            let what = format!("listing {path}");
            let listed =
                crate::aws::with_deadline(timeout, &what, async { store.list(&path, false).await })
                    .await;
            match listed {
                Ok(versions) => {
                    let items: Vec<String> = versions
                        .iter()
                        .map(|v| {
                            format!(
                                "{{\"name\":{},\"serial\":{},{}\"active\":{},\"created\":{}}}",
                                json_str(&v.name),
                                crate::secret::serial_json(v.serial),
                                v.version_id_json(),
                                v.active,
                                json_str(&v.created)
                            )
                        })
                        .collect();
                    Reply::ok(format!(
                        "{{\"path\":{},\"secrets\":[{}]}}",
                        json_str(&path),
                        items.join(",")
                    ))
                }
                Err(e) => Reply::from_error(&e),
            }
        })
        .await
}

/// Wipe a body chunk when we hold its only reference (best effort: hyper's own read
/// buffer is not ours to wipe).
fn wipe(data: Bytes) {
    if let Ok(mut m) = data.try_into_mut() {
        m[..].zeroize();
    }
}

/// The request body, at most `MAX_BODY` bytes (declared or streamed) within `BODY_TIMEOUT`.
async fn read_body(mut body: Incoming) -> std::result::Result<Zeroizing<Vec<u8>>, Reply> {
    let too_large = || {
        Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is larger than {MAX_BODY} bytes"),
        )
        .closing()
    };
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let read = async {
        // Allocated once at its final size: a growing Vec would leave copies behind.
        let cap = declared.map_or(MAX_BODY, |n| n as usize);
        let mut buf = Zeroizing::new(Vec::with_capacity(cap));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request body: {e}"),
                )
                .closing()
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > cap.min(MAX_BODY) {
                    wipe(data);
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
                wipe(data);
            }
        }
        Ok(buf)
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(Reply::error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body did not arrive within {}s",
                BODY_TIMEOUT.as_secs()
            ),
        )
        .closing()),
    }
}

/// `{"payload":"…"}` → the payload. serde's own messages can quote the input, so they are
/// never passed on: only where the JSON broke.
fn parse_create(body: &[u8]) -> Result<Payload> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CreateBody {
        payload: String,
    }
    const SHAPE: &str = "send a JSON object {\"payload\":\"…\"}";
    match serde_json::from_slice::<CreateBody>(body) {
        Ok(b) => Ok(Payload::from_string(b.payload)),
        Err(e) => Err(Error::usage(match e.classify() {
            serde_json::error::Category::Data => {
                format!("the body must have exactly one field, payload, a string: {SHAPE}")
            }
            _ if body.iter().all(u8::is_ascii_whitespace) => {
                format!("the request body is empty: {SHAPE}")
            }
            _ => format!(
                "the body is not valid JSON (line {}, column {}): {SHAPE}",
                e.line(),
                e.column()
            ),
        })),
    }
}

/// Run a write in its own task: a client hanging up must not cancel it half-way.
async fn spawn_write<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(fut)
        .await
        .unwrap_or_else(|e| Err(Error::io(format!("internal error: {e}"))))
}

async fn create(state: &State, name: String, body: Incoming, working: &Working) -> Reply {
    let body = {
        // Waiting on the client: evictable, like any other connection doing so.
        let _waiting = working.reading_body();
        read_body(body).await
    };
    let payload = match body {
        Ok(buf) => parse_create(&buf),
        Err(r) => return r,
    };
    let payload = match payload.and_then(|p| state.store.check_payload(&p).map(|_| p)) {
        Ok(p) => p,
        Err(e) => return Reply::from_error(&e),
    };
    let (store, path, timeout, cache) = (
        state.store.clone(),
        state.path.clone(),
        state.timeout,
        state.cache.clone(),
    );
    let n = name.clone();
    let created = spawn_write(async move {
        let what = format!("creating {path}/{n}");
        let r = crate::aws::with_deadline(timeout, &what, async {
            store.create(&path, &n, &payload).await
        })
        .await;
        // Even a failed write may have landed (a timeout after the request went out).
        cache.invalidate(&n);
        r
    })
    .await;
    match created {
        Ok(serial) => Reply::ok(format!(
            "{{\"name\":{},\"serial\":{serial}}}",
            json_str(&name)
        )),
        Err(e) => Reply::from_error(&e),
    }
}

async fn revoke(state: &State, name: String, serial: u64) -> Reply {
    let (store, path, timeout, cache) = (
        state.store.clone(),
        state.path.clone(),
        state.timeout,
        state.cache.clone(),
    );
    let n = name.clone();
    let revoked = spawn_write(async move {
        let what = format!("revoking {path}/{n} serial {serial}");
        let r = crate::aws::with_deadline(timeout, &what, async {
            store.revoke(&path, &n, serial).await
        })
        .await;
        cache.invalidate(&n);
        r
    })
    .await;
    match revoked {
        Ok(()) => Reply::ok(format!(
            "{{\"name\":{},\"serial\":{serial},\"active\":false}}",
            json_str(&name)
        )),
        Err(e) => Reply::from_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies() {
        let p = parse_create(br#"{"payload":"p@ss \"w\"\n"}"#).unwrap();
        assert_eq!(p.as_bytes(), b"p@ss \"w\"\n");
        for bad in [
            &b""[..],
            b"  ",
            b"{",
            b"[]",
            br#"{"payload":12345}"#,
            br#"{"payload":"a","x":1}"#,
            br#"{"payload":"a","payload":"b"}"#,
            b"payload=x",
        ] {
            let e = parse_create(bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad:?}");
            assert!(!e.to_string().contains("12345"), "{e}");
        }
    }
}
