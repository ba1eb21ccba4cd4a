//! `daemon`: the sidecar REST API, as a real child process on a loopback port, talked to
//! over real HTTP, backed by a real moto (through the counting `Proxy` where requests are
//! counted or disturbed).

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const TOKEN: &str = "tok-0123456789abcdef-XYZ";

/// The harness's daemon process, with requests that panic (showing the daemon's stderr)
/// instead of returning I/O errors.
struct Daemon(DaemonProcess);

impl std::ops::Deref for Daemon {
    type Target = DaemonProcess;
    fn deref(&self) -> &DaemonProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut DaemonProcess {
        &mut self.0
    }
}

impl Daemon {
    /// `ecs-secrets daemon --path PATH --listen 127.0.0.1:0 ARGS…` against `endpoint`.
    fn start(endpoint: &str, path: &str, args: &[&str]) -> Daemon {
        Daemon(DaemonProcess::start(endpoint, path, args))
    }

    /// Starts `cmd` and waits for its `listening on ADDR` line.
    fn spawn(cmd: Command) -> Daemon {
        Daemon(DaemonProcess::spawn(cmd))
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let r = self
            .0
            .request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.stderr()));
        Resp(r)
    }

    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    fn post(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, &[], body.as_bytes())
    }
}

/// A response with assertion helpers.
struct Resp(HttpResponse);

impl Resp {
    fn status(&self) -> u16 {
        self.0.status
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.0.header("content-type"),
            Some("application/json"),
            "{}",
            self.0.text()
        );
        self.0.json()
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.0.status, status, "body: {}", self.0.text());
        self.json()
    }

    /// Asserts the status and an `{"error":…}` body that contains `needle`.
    #[track_caller]
    fn expect_error(&self, status: u16, needle: &str) -> String {
        let v = self.expect(status);
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {v}"))
            .to_string();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
        msg
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }

    fn text(&self) -> String {
        self.0.text()
    }
}

/// Sends raw bytes on a new connection, then reads until the server closes (or `limit`).
/// Returns what was read and how long it took.
fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(limit)).unwrap();
    let start = Instant::now();
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

fn status_of_raw(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {resp:?}"))
}

fn token_file(dir: &TempDir, content: &str) -> String {
    let f = dir.join("token");
    std::fs::write(&f, content).unwrap();
    f.to_str().unwrap().to_string()
}

#[test]
fn every_route_answers_under_latest_and_v1() {
    let m = moto();
    let path = unique_path("routes");
    put_secure(&m.endpoint, &format!("{path}/DB_PASSWORD"), "first");
    put_secure(
        &m.endpoint,
        &format!("{path}/DB_PASSWORD"),
        "p@ss \"w\" $x\n",
    );
    put_secure(&m.endpoint, &format!("{path}/db/password"), "nested");
    let d = Daemon::start(&m.endpoint, &path, &["--debug"]);

    let v = d.get("/ping").expect(200);
    assert_eq!(v, json!({"status": "ok"}));
    let head = d.request("HEAD", "/ping", &[], b"");
    assert_eq!((head.status(), head.text()), (200, String::new()));

    for p in ["/latest", "/v1"] {
        let v = d.get(&format!("{p}/secrets/DB_PASSWORD")).expect(200);
        assert_eq!(
            v,
            json!({"name": "DB_PASSWORD", "serial": 2, "payload": "p@ss \"w\" $x\n", "active": true})
        );
        let v = d.get(&format!("{p}/secrets/DB_PASSWORD/1")).expect(200);
        assert_eq!(
            v,
            json!({"name": "DB_PASSWORD", "serial": 1, "payload": "first", "active": true})
        );
        let v = d.get(&format!("{p}/version")).expect(200);
        assert_eq!(v, json!({"version": env!("CARGO_PKG_VERSION")}));
        // Nested names, with plain or encoded slashes.
        for n in ["db/password", "db%2Fpassword"] {
            let v = d.get(&format!("{p}/secrets/{n}")).expect(200);
            assert_eq!(
                (&v["name"], &v["payload"]),
                (&json!("db/password"), &json!("nested"))
            );
        }
    }

    // POST creates a new version, under either prefix; the body is the original's.
    let v = d
        .post("/latest/secrets/NEW", r#"{"payload":"123456"}"#)
        .expect(200);
    assert_eq!(v, json!({"name": "NEW", "serial": 1}));
    let v = d
        .post("/v1/secrets/NEW", r#"{"payload":"654321"}"#)
        .expect(200);
    assert_eq!(v, json!({"name": "NEW", "serial": 2}));
    assert_eq!(
        get_plain(&m.endpoint, &format!("{path}/NEW")).as_deref(),
        Some("654321")
    );

    // The list: names and serials, never payloads.
    for p in ["/latest", "/v1"] {
        let r = d.get(&format!("{p}/secrets"));
        let v = r.expect(200);
        assert!(
            !r.text().contains("654321") && !r.text().contains("p@ss"),
            "{v}"
        );
        let names: Vec<(String, u64)> = v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().into(),
                    s["serial"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![("DB_PASSWORD".into(), 2), ("NEW".into(), 2)],
            "{v}"
        );
        assert_eq!(v["path"], json!(path));
    }

    // Revoke, under either prefix.
    let v = d.post("/latest/revoke/NEW/1", "").expect(200);
    assert_eq!(v, json!({"name": "NEW", "serial": 1, "active": false}));
    let v = d.post("/v1/revoke/DB_PASSWORD/1", "").expect(200);
    assert_eq!(
        v,
        json!({"name": "DB_PASSWORD", "serial": 1, "active": false})
    );

    // Every answer says not to cache it.
    assert_eq!(
        d.get("/latest/version").header("cache-control"),
        Some("no-store")
    );

    // --debug: one line per request with the route template, never a value.
    let err = d.stderr();
    assert!(err.contains("GET /latest/secrets/{name} 200"), "{err}");
    assert!(err.contains("POST /v1/secrets/{name} 200"), "{err}");
    assert!(err.contains("GET /v1/secrets/{name}/{serial} 200"), "{err}");
    assert!(
        err.contains("POST /latest/revoke/{name}/{serial} 200"),
        "{err}"
    );
    for secret in ["p@ss", "first", "123456", "654321", "nested"] {
        assert!(!err.contains(secret), "{secret} in stderr: {err}");
    }
}

#[test]
fn revoked_versions_are_never_returned() {
    let m = moto();
    let path = unique_path("revoked");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    let d = Daemon::start(&m.endpoint, &path, &[]);
    assert_eq!(d.get("/latest/secrets/A").expect(200)["payload"], "two");

    d.post("/latest/revoke/A/2", "").expect(200);
    // The revoked serial: 410 Gone, no payload at all.
    let r = d.get("/latest/secrets/A/2");
    let v = r.expect(410);
    assert_eq!(
        (&v["name"], &v["serial"], &v["active"]),
        (&json!("A"), &json!(2), &json!(false))
    );
    assert!(
        v.get("payload").is_none() && !r.text().contains("two"),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("revoked"), "{v}");
    // The newest active version is the older one now (the cache was invalidated).
    let v = d.get("/latest/secrets/A").expect(200);
    assert_eq!((&v["serial"], &v["payload"]), (&json!(1), &json!("one")));

    d.post("/v1/revoke/A/1", "").expect(200);
    let r = d.get("/latest/secrets/A");
    r.expect_error(404, "no active version");
    assert!(!r.text().contains("\"payload\""), "{}", r.text());
    d.get("/v1/secrets/A/1").expect(410);
    let list = d.get("/latest/secrets").expect(200);
    assert_eq!(list["secrets"], json!([]), "{list}");

    // Unknown names and serials: 404, and nothing is created.
    d.post("/latest/revoke/A/9", "")
        .expect_error(404, "no serial 9");
    d.post("/latest/revoke/NOPE/1", "")
        .expect_error(404, "NOPE");
    assert_eq!(get_plain(&m.endpoint, &format!("{path}/NOPE")), None);
}

#[test]
fn errors_carry_json_bodies_and_fitting_statuses() {
    let m = moto();
    let path = unique_path("errors");
    put_secure(&m.endpoint, &format!("{path}/A"), "value-a");
    let d = Daemon::start(&m.endpoint, &path, &[]);

    d.get("/latest/secrets/MISSING")
        .expect_error(404, "MISSING");
    d.get("/latest/secrets/A/7")
        .expect_error(404, "no serial 7");
    d.get("/latest/nothing").expect_error(404, "no such route");
    d.get("/secrets/A").expect_error(404, "no such route");
    d.get("/v2/secrets/A").expect_error(404, "no such route");
    d.get("/latest/secrets/1A")
        .expect_error(400, "invalid secret name");
    d.get("/latest/secrets/A%20B")
        .expect_error(400, "invalid secret name");
    d.get("/latest/secrets/A/0")
        .expect_error(400, "invalid serial");
    d.get("/latest/secrets/A/99999999999999999999999")
        .expect_error(400, "invalid serial");
    d.post("/latest/revoke/A/x", "")
        .expect_error(400, "invalid serial");

    // Wrong methods: 405 with Allow.
    let r = d.request("DELETE", "/latest/secrets/A", &[], b"");
    r.expect_error(405, "DELETE");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let r = d.post("/latest/secrets/A/1", r#"{"payload":"x"}"#);
    r.expect(405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = d.get("/latest/revoke/A/1");
    r.expect(405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = d.request("PUT", "/latest/version", &[], b"");
    r.expect(405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    // Bodies that are not {"payload":"…"}: 400, and the message never echoes the input.
    for (body, needle) in [
        ("", "empty"),
        ("{", "not valid JSON"),
        ("payload=s3cr3t-in-form", "not valid JSON"),
        (r#"{"payload":424242}"#, "payload"),
        (r#"{"payload":"s3cr3t","extra":1}"#, "payload"),
        (r#"{"value":"s3cr3t"}"#, "payload"),
        (r#"{"payload":""}"#, "empty"),
        (r#"{"payload":"a\u0000s3cr3t"}"#, "NUL"),
    ] {
        let r = d.post("/latest/secrets/A", body);
        r.expect_error(400, needle);
        assert!(
            !r.text().contains("s3cr3t") && !r.text().contains("424242"),
            "{body}: {}",
            r.text()
        );
    }
    // Larger than Parameter Store stores, but within the body limit: 400.
    let big = format!(r#"{{"payload":"{}"}}"#, "x".repeat(5000));
    d.post("/latest/secrets/A", &big)
        .expect_error(400, "larger than 4096 bytes");
    // Larger than the body limit, declared: 413 before the body is read.
    let (resp, _) = raw(
        d.addr,
        format!(
            "POST /latest/secrets/A HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\n",
            d.addr
        )
        .as_bytes(),
        Duration::from_secs(10),
    );
    assert_eq!(status_of_raw(&resp), 413, "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    // Larger than the body limit, streamed (chunked, no length): 413 once it passes.
    let limit = 128 * 1024;
    let mut req = format!(
        "POST /v1/secrets/A HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        d.addr
    )
    .into_bytes();
    for _ in 0..(limit / 16384) {
        req.extend_from_slice(format!("4000\r\n{}\r\n", "y".repeat(16384)).as_bytes());
    }
    req.extend_from_slice(b"1\r\nz\r\n");
    let (resp, _) = raw(d.addr, &req, Duration::from_secs(10));
    assert_eq!(status_of_raw(&resp), 413, "{resp}");
    // Nothing was written by any of it.
    assert_eq!(
        get_plain(&m.endpoint, &format!("{path}/A")).as_deref(),
        Some("value-a")
    );
    assert!(!d.stderr().contains("value-a"));
}

#[test]
fn a_token_guards_every_route_but_ping() {
    let m = moto();
    let path = unique_path("token");
    put_secure(&m.endpoint, &format!("{path}/A"), "guarded");
    let dir = TempDir::new("token");
    // A trailing newline (echo, editors) is not part of the token.
    let f = token_file(&dir, &format!("{TOKEN}\n"));
    let d = Daemon::start(&m.endpoint, &path, &["--token-file", &f]);

    d.get("/ping").expect(200);
    for route in [
        "/latest/secrets/A",
        "/v1/secrets",
        "/latest/version",
        "/v1/nothing",
    ] {
        let r = d.get(route);
        r.expect_error(401, "X-ECS-Secrets-Token");
        assert!(r.header("www-authenticate").is_some());
        let r = d.request("GET", route, &[("X-ECS-Secrets-Token", "wrong")], b"");
        r.expect_error(403, "wrong");
        let r = d.request(
            "GET",
            route,
            &[("X-ECS-Secrets-Token", &TOKEN[..TOKEN.len() - 1])],
            b"",
        );
        r.expect(403);
        let r = d.request(
            "GET",
            route,
            &[("x-ecs-secrets-token", &format!("{TOKEN}X"))],
            b"",
        );
        r.expect(403);
    }
    let ok = [("X-ECS-Secrets-Token", TOKEN)];
    let v = d.request("GET", "/latest/secrets/A", &ok, b"").expect(200);
    assert_eq!(v["payload"], "guarded");
    d.request("GET", "/v1/version", &ok, b"").expect(200);
    // Writes need it too, and nothing is written without it.
    d.post("/latest/secrets/A", r#"{"payload":"intruder"}"#)
        .expect(401);
    d.post("/latest/revoke/A/1", "").expect(401);
    assert_eq!(
        get_plain(&m.endpoint, &format!("{path}/A")).as_deref(),
        Some("guarded")
    );
    d.request("POST", "/latest/secrets/A", &ok, br#"{"payload":"v2"}"#)
        .expect(200);
    // Two token headers: refused.
    d.request("GET", "/latest/version", &[ok[0], ok[0]], b"")
        .expect_error(400, "more than one");
    drop(d);

    // From the environment, and the flag wins over it.
    let mut cmd = ecs(&m.endpoint);
    cmd.args(["daemon", "--path", &path, "--listen", "127.0.0.1:0"])
        .env("ECS_SECRETS_TOKEN", "from-the-environment-123");
    let d = Daemon::spawn(cmd);
    d.get("/latest/version").expect(401);
    d.request(
        "GET",
        "/latest/version",
        &[("X-ECS-Secrets-Token", "from-the-environment-123")],
        b"",
    )
    .expect(200);
    drop(d);
    let mut cmd = ecs(&m.endpoint);
    cmd.args([
        "daemon",
        "--path",
        &path,
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        &f,
    ])
    .env("ECS_SECRETS_TOKEN", "from-the-environment-123");
    let d = Daemon::spawn(cmd);
    d.request(
        "GET",
        "/latest/version",
        &[("X-ECS-Secrets-Token", "from-the-environment-123")],
        b"",
    )
    .expect(403);
    d.request("GET", "/latest/version", &ok, b"").expect(200);
}

#[test]
fn unusable_tokens_and_exposed_listeners_are_usage_errors() {
    let m = moto();
    let path = unique_path("usage");
    let dir = TempDir::new("token");
    let daemon = |args: &[&str]| {
        let out = run(ecs(&m.endpoint)
            .args(["daemon", "--path", &path])
            .args(args));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("listening on"), "{err}");
        (out.status.code(), err)
    };
    let empty = token_file(&dir, "\n");
    let (code, err) = daemon(&["--token-file", &empty, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("empty"), "{err}");
    let missing = dir.join("missing").to_str().unwrap().to_string();
    let (code, err) = daemon(&["--token-file", &missing, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let out = run(ecs(&m.endpoint)
        .args(["daemon", "--path", &path, "--listen", "127.0.0.1:0"])
        .env("ECS_SECRETS_TOKEN", ""));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    // Every interface without a token: refused before anything is bound or asked.
    for listen in ["0.0.0.0:0", ":0", "[::]:0"] {
        let (code, err) = daemon(&["--listen", listen]);
        assert_eq!(code, Some(2), "{listen}: {err}");
        assert!(err.contains("--allow-unauthenticated"), "{err}");
    }
    for bad in [
        &["--listen", "nowhere"][..],
        &["--cache-ttl", "-1"],
        // (1.5 is a duration now, 1.5 s; over a day is not.)
        &["--cache-ttl", "25h"],
        // Issue 25 item 9: whitespace is a quoting mistake, not a number.
        &["--cache-ttl", " 5"],
        &["--cache-ttl", "5 "],
    ] {
        let (code, err) = daemon(bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
    }
}

#[test]
fn start_up_fails_fast_when_aws_cannot_be_reached() {
    // Nothing listens on port 1: the one start-up check fails within --timeout, exit 1.
    let path = unique_path("unreachable");
    let start = Instant::now();
    let out = run(ecs("http://127.0.0.1:1").args([
        "daemon",
        "--path",
        &path,
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "2",
    ]));
    let err = assert_fail(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot start") && err.contains(&path), "{err}");
    assert!(!err.contains("listening"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    // --allow-unauthenticated lets a non-loopback --listen through the usage checks (this
    // stops at the same start-up check, before anything is bound).
    let out = run(ecs("http://127.0.0.1:1").args([
        "daemon",
        "--path",
        &path,
        "--listen",
        "0.0.0.0:0",
        "--allow-unauthenticated",
        "--timeout",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

#[test]
fn proxied_and_browser_requests_are_refused() {
    let m = moto();
    let path = unique_path("ssrf");
    put_secure(&m.endpoint, &format!("{path}/A"), "not-for-proxies");
    let d = Daemon::start(&m.endpoint, &path, &[]);
    for route in ["/latest/secrets/A", "/ping"] {
        let r = d.request("GET", route, &[("X-Forwarded-For", "10.0.0.1")], b"");
        r.expect_error(400, "X-Forwarded-For");
        assert!(!r.text().contains("not-for-proxies"));
        d.request("GET", route, &[("Forwarded", "for=10.0.0.1")], b"")
            .expect(400);
        d.request("GET", route, &[("Origin", "http://evil.example")], b"")
            .expect_error(403, "Origin");
    }
    // Without a token, a Host that is not loopback (DNS rebinding) is refused.
    let (resp, _) = raw(
        d.addr,
        b"GET /latest/secrets/A HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status_of_raw(&resp), 403, "{resp}");
    assert!(!resp.contains("not-for-proxies"), "{resp}");
    let (resp, _) = raw(
        d.addr,
        b"GET /latest/secrets/A HTTP/1.1\r\nHost: localhost:8080\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status_of_raw(&resp), 200, "{resp}");
    // With a token, XFF is still refused even with the right token.
    let dir = TempDir::new("token");
    let f = token_file(&dir, TOKEN);
    let d = Daemon::start(&m.endpoint, &path, &["--token-file", &f]);
    d.request(
        "GET",
        "/latest/secrets/A",
        &[
            ("X-ECS-Secrets-Token", TOKEN),
            ("X-Forwarded-For", "1.2.3.4"),
        ],
        b"",
    )
    .expect(400);
}

#[test]
fn read_only_removes_the_write_routes() {
    let m = moto();
    let path = unique_path("readonly");
    put_secure(&m.endpoint, &format!("{path}/A"), "ro");
    let d = Daemon::start(&m.endpoint, &path, &["--read-only"]);
    assert_eq!(d.get("/latest/secrets/A").expect(200)["payload"], "ro");
    for p in ["/latest", "/v1"] {
        let r = d.post(&format!("{p}/secrets/A"), r#"{"payload":"w"}"#);
        r.expect_error(405, "read-only");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        let r = d.post(&format!("{p}/revoke/A/1"), "");
        r.expect_error(405, "read-only");
        assert_eq!(r.header("allow"), Some(""));
    }
    d.get("/latest/secrets/A/1").expect(200);
    assert_eq!(
        get_plain(&m.endpoint, &format!("{path}/A")).as_deref(),
        Some("ro")
    );
}

#[test]
fn cached_reads_expire_after_the_ttl() {
    let m = moto();
    let path = unique_path("ttl");
    put_secure(&m.endpoint, &format!("{path}/A"), "v1");
    let proxy = Proxy::start(&m.endpoint);
    let d = Daemon::start(&proxy.endpoint(), &path, &["--cache-ttl", "1"]);
    proxy.reset();
    assert_eq!(d.get("/latest/secrets/A").expect(200)["payload"], "v1");
    assert_eq!(proxy.count("GetParameterHistory"), 1, "{:?}", proxy.ops());
    // Changed behind the daemon's back: the cache still answers, no request goes out.
    put_secure(&m.endpoint, &format!("{path}/A"), "v2");
    assert_eq!(d.get("/v1/secrets/A").expect(200)["payload"], "v1");
    d.get("/latest/secrets").expect(200);
    d.get("/latest/secrets").expect(200);
    assert_eq!(proxy.count("GetParameterHistory"), 2, "{:?}", proxy.ops());
    assert_eq!(proxy.count("GetParametersByPath"), 1, "{:?}", proxy.ops());
    std::thread::sleep(Duration::from_millis(2200));
    let v = d.get("/latest/secrets/A").expect(200);
    assert_eq!((&v["serial"], &v["payload"]), (&json!(2), &json!("v2")));
    assert_eq!(proxy.count("GetParameterHistory"), 3, "{:?}", proxy.ops());
    drop(d);

    // --cache-ttl 0: every read goes upstream.
    let d = Daemon::start(&proxy.endpoint(), &path, &["--cache-ttl", "0"]);
    proxy.reset();
    d.get("/latest/secrets/A").expect(200);
    d.get("/latest/secrets/A").expect(200);
    assert_eq!(proxy.count("GetParameterHistory"), 2, "{:?}", proxy.ops());
}

#[test]
fn writes_through_the_daemon_invalidate_the_cache() {
    let m = moto();
    let path = unique_path("invalidate");
    put_secure(&m.endpoint, &format!("{path}/A"), "v1");
    let proxy = Proxy::start(&m.endpoint);
    let d = Daemon::start(&proxy.endpoint(), &path, &[]);
    assert_eq!(d.get("/latest/secrets/A").expect(200)["payload"], "v1");
    let list = d.get("/latest/secrets").expect(200);
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1, "{list}");
    proxy.reset();
    assert_eq!(d.get("/latest/secrets/A").expect(200)["payload"], "v1");
    assert_eq!(proxy.total(), 0, "served from the cache: {:?}", proxy.ops());

    let v = d
        .post("/latest/secrets/A", r#"{"payload":"v2"}"#)
        .expect(200);
    assert_eq!(v["serial"], 2);
    let v = d.get("/latest/secrets/A").expect(200);
    assert_eq!((&v["serial"], &v["payload"]), (&json!(2), &json!("v2")));
    // A new name shows in the list at once.
    d.post("/v1/secrets/B", r#"{"payload":"b"}"#).expect(200);
    let list = d.get("/latest/secrets").expect(200);
    assert_eq!(list["secrets"].as_array().unwrap().len(), 2, "{list}");
    // Revoking the newest: readers get the older one at once, the list follows.
    d.post("/latest/revoke/A/2", "").expect(200);
    let v = d.get("/latest/secrets/A").expect(200);
    assert_eq!((&v["serial"], &v["payload"]), (&json!(1), &json!("v1")));
    let list = d.get("/latest/secrets").expect(200);
    let a = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "A")
        .cloned();
    assert_eq!(a.map(|a| a["serial"].clone()), Some(json!(1)), "{list}");
}

#[test]
fn a_burst_for_an_uncached_name_makes_one_upstream_fetch() {
    let m = moto();
    let path = unique_path("burst");
    put_secure(&m.endpoint, &format!("{path}/A"), "shared");
    let proxy = Proxy::start(&m.endpoint);
    let d = Arc::new(Daemon::start(&proxy.endpoint(), &path, &[]));
    proxy.reset();
    // Slow upstream, so that all 20 requests arrive while the first fetch is out.
    proxy.set_faults(Faults {
        latency_ms: 400,
        only_op: Some("GetParameterHistory".into()),
        ..Faults::default()
    });
    let n = 20;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (d, barrier) = (d.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let p = if i % 2 == 0 { "/latest" } else { "/v1" };
                let r = d.get(&format!("{p}/secrets/A"));
                (r.status(), r.text())
            })
        })
        .collect();
    for h in handles {
        let (status, body) = h.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"payload\":\"shared\""), "{body}");
    }
    assert_eq!(proxy.count("GetParameterHistory"), 1, "{:?}", proxy.ops());
    assert_eq!(proxy.count("GetParameter"), 1, "{:?}", proxy.ops());
    assert_eq!(proxy.total(), 2, "{:?}", proxy.ops());
}

#[test]
fn upstream_failures_map_to_502_and_504() {
    let m = moto();
    let path = unique_path("upstream");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    put_secure(&m.endpoint, &format!("{path}/B"), "y");
    // SSM refuses an 11th label on a version: the revocation cannot be recorded (502).
    let ssm = ssm(&m.endpoint);
    for i in 0..10 {
        block_on(
            ssm.label_parameter_version()
                .name(format!("{path}/B"))
                .parameter_version(1)
                .labels(format!("l{i}"))
                .send(),
        )
        .unwrap();
    }
    let proxy = Proxy::start(&m.endpoint);
    let d = Daemon::start(&proxy.endpoint(), &path, &["--timeout", "2"]);
    d.post("/latest/revoke/B/1", "").expect_error(502, "label");
    // An upstream that never answers: 504 after --timeout.
    proxy.set_faults(Faults {
        stall: 1.0,
        ..Faults::default()
    });
    let start = Instant::now();
    d.get("/latest/secrets/A").expect(504);
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    // Not cached: once upstream is back, the next read succeeds.
    proxy.clear_faults();
    assert_eq!(d.get("/latest/secrets/A").expect(200)["payload"], "x");
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let m = moto();
    let path = unique_path("sigterm");
    put_secure(&m.endpoint, &format!("{path}/A"), "in-flight");
    let proxy = Proxy::start(&m.endpoint);
    let mut d = Daemon::start(&proxy.endpoint(), &path, &[]);
    proxy.reset();
    proxy.set_faults(Faults {
        latency_ms: 1500,
        only_op: Some("GetParameterHistory".into()),
        ..Faults::default()
    });
    let url = d.url("/latest/secrets/A");
    let client = std::thread::spawn(move || http_request("GET", &url, &[], b""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.count("GetParameterHistory") == 0 {
        assert!(Instant::now() < deadline, "the request never went upstream");
        std::thread::sleep(Duration::from_millis(5));
    }
    d.signal(libc::SIGTERM);
    // New connections are refused at once…
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(d.addr).is_err(),
        "still accepting after SIGTERM"
    );
    // …while the request in flight gets its answer.
    let r = client
        .join()
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("in-flight"), "{}", r.text());
    let status = d
        .wait(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?} signal {:?}\n{}",
        status.signal(),
        d.stderr()
    );

    // SIGINT, idle: exits 0 at once.
    let mut d = Daemon::start(&m.endpoint, &path, &[]);
    d.signal(libc::SIGINT);
    let status = d.wait(Duration::from_secs(5)).expect("exits after SIGINT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn slow_clients_cannot_pin_connections() {
    let m = moto();
    let path = unique_path("slow");
    let d = Daemon::start(&m.endpoint, &path, &[]);
    let addr = d.addr;
    // Half a request head, then nothing: closed after the header timeout (10 s).
    let head = std::thread::spawn(move || {
        raw(
            addr,
            b"GET /ping HTTP/1.1\r\nHost: 127.",
            Duration::from_secs(30),
        )
    });
    // A head promising 100 bytes of body, then 10: 408 after the body timeout (10 s).
    let body = std::thread::spawn(move || {
        raw(
            addr,
            format!(
                "POST /latest/secrets/A HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n{{\"payload\""
            )
            .as_bytes(),
            Duration::from_secs(30),
        )
    });
    let (resp, took) = head.join().unwrap();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(25),
        "{took:?} {resp:?}"
    );
    assert!(!resp.contains("200 OK"), "{resp}");
    let (resp, took) = body.join().unwrap();
    assert_eq!(status_of_raw(&resp), 408, "{resp}");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(25),
        "{took:?}"
    );
}

/// Writes as much of `batch` as each stream takes (non-blocking, round after round) until
/// every stream has taken all of it or has stopped taking for a while: then the daemon
/// is stuck writing to every one that stopped.
fn stuff(streams: &mut [TcpStream], batch: &[u8]) {
    let mut at = vec![0usize; streams.len()];
    for s in streams.iter() {
        s.set_nonblocking(true).unwrap();
    }
    let mut last_progress = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_progress.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        for (s, at) in streams.iter_mut().zip(at.iter_mut()) {
            while *at < batch.len() {
                match s.write(&batch[*at..]) {
                    Ok(n) if n > 0 => {
                        *at += n;
                        last_progress = Instant::now();
                    }
                    _ => break,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in streams.iter() {
        s.set_nonblocking(false).unwrap();
    }
}

#[test]
fn clients_that_never_read_cannot_pin_the_daemon() {
    // Issue 10, finding 3: 256 clients with a small window pipeline requests and never read.
    let m = moto();
    let path = unique_path("noread");
    put_secure(&m.endpoint, &format!("{path}/A"), &"v".repeat(4000));
    let d = Daemon::start(&m.endpoint, &path, &["--debug"]);
    let ping = format!("GET /ping HTTP/1.1\r\nHost: {}\r\n\r\n", d.addr);
    let big = format!("GET /latest/secrets/A HTTP/1.1\r\nHost: {}\r\n\r\n", d.addr);
    let mut stuck: Vec<TcpStream> = (0..256)
        .map(|_| small_window(d.addr, 2048).expect("connect"))
        .collect();
    let (pings, bigs) = stuck.split_at_mut(128);
    stuff(pings, ping.repeat(3000).as_bytes());
    stuff(bigs, big.repeat(200).as_bytes());
    let stuffed = Instant::now();
    // Someone else still gets answers at once, again and again.
    for _ in 0..3 {
        let start = Instant::now();
        d.get("/ping").expect(200);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a fresh /ping took {:?}",
            start.elapsed()
        );
        let v = d.get("/latest/secrets/A").expect(200);
        assert_eq!(v["serial"], 1);
    }
    // And without anyone needing their slots, the stuck ones are closed once they have not
    // taken their responses for 10 s.
    std::thread::sleep(Duration::from_secs(14).saturating_sub(stuffed.elapsed()));
    for (i, s) in stuck.iter_mut().enumerate().step_by(17) {
        assert!(
            closed_within(s, Duration::from_secs(10)),
            "stuck connection {i} is still open\n{}",
            d.stderr()
        );
    }
    assert!(
        d.stderr().contains("did not take its response within 10s"),
        "{}",
        d.stderr()
    );
    d.get("/ping").expect(200);
}

#[test]
fn a_full_table_of_idle_connections_does_not_lock_out_a_new_one() {
    let m = moto();
    let path = unique_path("bounded");
    let d = Daemon::start(&m.endpoint, &path, &[]);
    // 270 idle connections: the first 256 take every slot, each later one evicts the
    // connection that has waited on its client the longest.
    let mut idle: Vec<TcpStream> = (0..270)
        .map(|_| TcpStream::connect(d.addr).expect("connect"))
        .collect();
    let start = Instant::now();
    d.get("/ping").expect(200);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "a new connection waited {:?} behind idle ones",
        start.elapsed()
    );
    // The oldest were closed, never more than 256 are open, and the newest still work.
    for (i, s) in idle.iter_mut().enumerate().take(14) {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "idle connection {i} is still open: more than 256 at once"
        );
    }
    let last = idle.last_mut().unwrap();
    last.write_all(
        format!(
            "GET /ping HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            d.addr
        )
        .as_bytes(),
    )
    .unwrap();
    last.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = String::new();
    let _ = last.read_to_string(&mut out);
    assert_eq!(status_of_raw(&out), 200, "{out}");
}

#[test]
fn eviction_never_takes_a_request_being_answered() {
    // A request waiting on a slow upstream is being worked on: 270 idle connections that
    // take every slot evict each other, never it.
    let m = moto();
    let path = unique_path("noevict");
    put_secure(&m.endpoint, &format!("{path}/A"), "in-flight-value");
    let proxy = Proxy::start(&m.endpoint);
    let d = Daemon::start(&proxy.endpoint(), &path, &[]);
    proxy.reset();
    proxy.set_faults(Faults {
        latency_ms: 4000,
        only_op: Some("GetParameterHistory".into()),
        ..Faults::default()
    });
    let url = d.url("/latest/secrets/A");
    let client = std::thread::spawn(move || http_request("GET", &url, &[], b""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.count("GetParameterHistory") == 0 {
        assert!(Instant::now() < deadline, "the request never went upstream");
        std::thread::sleep(Duration::from_millis(5));
    }
    let idle: Vec<TcpStream> = (0..270)
        .map(|_| TcpStream::connect(d.addr).expect("connect"))
        .collect();
    let r = client.join().unwrap().expect("answered, not evicted");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("in-flight-value"), "{}", r.text());
    drop(idle);
}

/// Reads from `s` until `needle` has arrived (panics after 10 s).
fn read_until(s: &mut TcpStream, needle: &str) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e} before {needle:?}: {}", String::from_utf8_lossy(&got)));
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn every_other_way_to_hold_a_connection_is_bounded() {
    let m = moto();
    let path = unique_path("hold");
    let d = Daemon::start(&m.endpoint, &path, &[]);
    let addr = d.addr;
    let ping = format!("GET /ping HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut cases: Vec<(&str, std::thread::JoinHandle<()>)> = Vec::new();

    // Idle keep-alive: closed 10 s after the last response.
    let p = ping.clone();
    cases.push((
        "idle keep-alive",
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(p.as_bytes()).unwrap();
            read_until(&mut s, "{\"status\":\"ok\"}");
            let start = Instant::now();
            assert!(closed_within(&mut s, Duration::from_secs(30)));
            assert!(
                start.elapsed() >= Duration::from_secs(8),
                "{:?}",
                start.elapsed()
            );
        }),
    ));
    // Connects and never sends a byte: closed after the header timeout.
    cases.push((
        "silent",
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let start = Instant::now();
            assert!(closed_within(&mut s, Duration::from_secs(30)));
            assert!(
                start.elapsed() >= Duration::from_secs(8),
                "{:?}",
                start.elapsed()
            );
        }),
    ));
    // A head trickled a byte at a time, never finished: each byte is progress, but the
    // whole head is due within the header timeout, counted from the first byte's wait.
    cases.push((
        "trickled head",
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let start = Instant::now();
            let head = format!(
                "GET /ping HTTP/1.1\r\nHost: {addr}\r\nX-Pad: {}",
                "a".repeat(200)
            );
            let mut sent = 0;
            for b in head.as_bytes() {
                if s.write_all(std::slice::from_ref(b)).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(closed_within(&mut s, Duration::from_secs(30)));
            let took = start.elapsed();
            assert!(
                took >= Duration::from_secs(9) && took < Duration::from_secs(16),
                "{took:?} after {sent} bytes"
            );
        }),
    ));
    // Expect: 100-continue, then no body: 408 once the body timeout is over.
    cases.push((
        "expect 100-continue, no body",
        std::thread::spawn(move || {
            let (resp, took) = raw(
                addr,
                format!(
                    "POST /latest/secrets/A HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 20\r\n\
                     Expect: 100-continue\r\n\r\n"
                )
                .as_bytes(),
                Duration::from_secs(30),
            );
            assert!(resp.starts_with("HTTP/1.1 100 Continue"), "{resp}");
            let last = resp.rsplit("\r\n\r\nHTTP/1.1 ").next().unwrap_or("");
            assert!(last.starts_with("408"), "{resp}");
            assert!(took < Duration::from_secs(25), "{took:?}");
        }),
    ));
    // A chunked body that never ends: 408 once the body timeout (10 s) is over.
    cases.push((
        "endless chunked body",
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(
                format!(
                    "POST /latest/secrets/A HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let start = Instant::now();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while start.elapsed() < Duration::from_secs(30) {
                if s.write_all(b"1\r\na\r\n").is_err() {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            let _ = s.read_to_end(&mut got);
            let got = String::from_utf8_lossy(&got);
            assert_eq!(status_of_raw(&got), 408, "{got}");
            assert!(start.elapsed() < Duration::from_secs(25), "{:?}", start.elapsed());
        }),
    ));
    // Half-closed after the request: the answer, then the end.
    let p = ping.clone();
    cases.push((
        "half-closed",
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(p.as_bytes()).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            read_until(&mut s, "{\"status\":\"ok\"}");
            assert!(closed_within(&mut s, Duration::from_secs(5)));
            // One whose answer needs a round trip to AWS (the end of the request arrives
            // while it is worked on).
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(
                format!("GET /latest/secrets/MISSING HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
            )
            .unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            read_until(&mut s, "MISSING");
            assert!(closed_within(&mut s, Duration::from_secs(5)));
            // Half-closed before any request: closed at once.
            let mut s = TcpStream::connect(addr).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            assert!(closed_within(&mut s, Duration::from_secs(5)));
        }),
    ));
    // Deep pipelining by a client that reads: every request answered, in order.
    let p = ping.clone();
    cases.push((
        "pipelining",
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let mut w = s.try_clone().unwrap();
            let n = 2000;
            let p2 = p.clone();
            let writer = std::thread::spawn(move || {
                w.write_all(p2.repeat(n).as_bytes()).unwrap();
                w.write_all(
                    format!("GET /ping HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
            });
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out)
                .expect("every answer, then close");
            writer.join().unwrap();
            assert_eq!(out.matches("HTTP/1.1 200 OK").count(), n + 1);
        }),
    ));
    // A client that reads, but too slowly to ever catch up: closed once it has not taken
    // what it was sent within 10 s.
    let p = ping.clone();
    cases.push((
        "slow reader",
        std::thread::spawn(move || {
            let mut s = small_window(addr, 2048).unwrap();
            stuff(std::slice::from_mut(&mut s), p.repeat(3000).as_bytes());
            let start = Instant::now();
            let mut buf = [0u8; 64];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let closed = loop {
                assert!(start.elapsed() < Duration::from_secs(40), "still open");
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break start.elapsed(),
                    Ok(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            };
            assert!(closed >= Duration::from_secs(5), "{closed:?}");
        }),
    ));
    // No TLS: a TLS ClientHello is not HTTP, and gets a JSON 400 at once.
    cases.push((
        "TLS",
        std::thread::spawn(move || {
            let mut hello = vec![
                0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
            ];
            hello.extend_from_slice(&[0x42; 160]);
            let (resp, took) = raw(addr, &hello, Duration::from_secs(10));
            assert_eq!(status_of_raw(&resp), 400, "{resp}");
            assert!(resp.contains("{\"error\":\""), "{resp}");
            assert!(took < Duration::from_secs(5), "{took:?}");
        }),
    ));
    let mut failed = Vec::new();
    for (name, h) in cases {
        if h.join().is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}\n{}", d.stderr());
    d.get("/ping").expect(200);
}

#[test]
fn the_addressee_of_a_request_is_unambiguous() {
    // Issue 10, finding 8: only the first of two Host headers was checked.
    let m = moto();
    let path = unique_path("hosts");
    put_secure(&m.endpoint, &format!("{path}/A"), "right-host-payload");
    let open = Daemon::start(&m.endpoint, &path, &[]);
    let dir = TempDir::new("token");
    let f = token_file(&dir, TOKEN);
    let guarded = Daemon::start(&m.endpoint, &path, &["--token-file", &f]);
    let send = |d: &Daemon, head: &str| {
        let (resp, _) = raw(
            d.addr,
            format!("{head}X-ECS-Secrets-Token: {TOKEN}\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(10),
        );
        assert!(!resp.contains("right-host-payload"), "{head:?}: {resp}");
        resp
    };
    for d in [&open, &guarded] {
        let here = d.addr.to_string();
        for target in ["/ping", "/latest/secrets/A"] {
            for hosts in [
                [here.as_str(), "evil.example"],
                ["evil.example", here.as_str()],
                [here.as_str(), here.as_str()],
            ] {
                let resp = send(
                    d,
                    &format!(
                        "GET {target} HTTP/1.1\r\nHost: {}\r\nHost: {}\r\n",
                        hosts[0], hosts[1]
                    ),
                );
                assert_eq!(status_of_raw(&resp), 400, "{hosts:?}: {resp}");
                assert!(resp.contains("more than one Host"), "{resp}");
            }
            // An absolute-form target that names another host than Host, either way round.
            for (authority, host) in [
                ("evil.example", here.as_str()),
                (here.as_str(), "evil.example"),
            ] {
                let resp = send(
                    d,
                    &format!("GET http://{authority}{target} HTTP/1.1\r\nHost: {host}\r\n"),
                );
                assert_eq!(status_of_raw(&resp), 400, "{authority} {host}: {resp}");
            }
            // A Host that is not host[:port].
            for head in [
                format!("GET {target} HTTP/1.1\r\nHost: a b\r\n"),
                format!("GET {target} HTTP/1.1\r\nHost: user@{here}\r\n"),
            ] {
                let resp = send(d, &head);
                assert_eq!(status_of_raw(&resp), 400, "{head:?}: {resp}");
            }
        }
        // What is allowed: an absolute-form target naming the same host, and no Host at all
        // (hand-written health checks, wrk scripts; no browser sends such a request).
        for head in [
            format!("GET http://{here}/latest/secrets/A HTTP/1.1\r\nHost: {here}\r\n"),
            "GET /latest/secrets/A HTTP/1.0\r\n".to_string(),
            "GET /latest/secrets/A HTTP/1.1\r\nConnection: close\r\n".to_string(),
        ] {
            let (resp, _) = raw(
                d.addr,
                format!("{head}X-ECS-Secrets-Token: {TOKEN}\r\n\r\n").as_bytes(),
                Duration::from_secs(10),
            );
            assert_eq!(status_of_raw(&resp), 200, "{head:?}: {resp}");
            assert!(resp.contains("right-host-payload"), "{resp}");
        }
    }
    // Without a token, the authority must be loopback wherever it is named.
    let resp = send(
        &open,
        "GET http://evil.example/latest/secrets/A HTTP/1.0\r\n",
    );
    assert_eq!(status_of_raw(&resp), 403, "{resp}");
    let resp = send(&guarded, "GET http://evil.example/ping HTTP/1.0\r\n");
    assert_eq!(status_of_raw(&resp), 200, "{resp}");
    open.get("/ping").expect(200);
}

#[test]
fn requests_hyper_refuses_by_itself_get_json_bodies_too() {
    // Issue 16, finding 12: a 64 KiB URL got a 431 with an empty body.
    let m = moto();
    let path = unique_path("hypererr");
    let d = Daemon::start(&m.endpoint, &path, &[]);
    let host = d.addr;
    let headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (what, req, status) in [
        (
            "a 64 KiB URL",
            format!(
                "GET /latest/secrets/{} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                "a".repeat(65536)
            ),
            431,
        ),
        (
            "101 header fields",
            format!("GET /ping HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n"),
            431,
        ),
        (
            "HTTP/1.2",
            format!("GET /ping HTTP/1.2\r\nHost: {host}\r\n\r\n"),
            400,
        ),
        (
            "an HTTP/2 preface",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_string(),
            505,
        ),
        (
            "a bad header line",
            format!("GET /ping HTTP/1.1\r\nHo st: {host}\r\n\r\n"),
            400,
        ),
        (
            "a bad method",
            format!("G(T /ping HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            400,
        ),
        (
            "two Content-Lengths",
            format!(
                "POST /latest/secrets/A HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\
                 Content-Length: 6\r\n\r\n"
            ),
            400,
        ),
        // After a good request on the same connection, too.
        (
            "a bad request after a good one",
            format!("GET /ping HTTP/1.1\r\nHost: {host}\r\n\r\nGET /ping HTTP/9\r\n\r\n"),
            400,
        ),
    ] {
        let (resp, _) = raw(d.addr, req.as_bytes(), Duration::from_secs(10));
        // The last answer: after a JSON body, or the first.
        let last = resp
            .rfind("}HTTP/1.1 ")
            .map_or(&resp[..], |i| &resp[i + 1..]);
        let (head, body) = last
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{what}: no answer: {resp:?}"));
        assert_eq!(status_of_raw(head), status, "{what}: {resp}");
        let v: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e}): {resp:?}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {v}"
        );
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: application/json"),
            "{what}: {head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{what}: {head}"
        );
        if what.starts_with("a bad request after") {
            assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        }
    }
    d.get("/ping").expect(200);
}

#[test]
fn names_in_errors_are_escaped_once() {
    let m = moto();
    let path = unique_path("escape");
    let d = Daemon::start(&m.endpoint, &path, &[]);
    // `é` in the path, raw or percent-encoded; a quote and a backslash.
    for (target, shown) in [
        ("/latest/secrets/caf%C3%A9", "\"caf\\u{e9}\""),
        ("/latest/secrets/a%22b", "\"a\\\"b\""),
        ("/latest/secrets/a%5Cb", "\"a\\\\b\""),
    ] {
        let msg = d.get(target).expect_error(400, "invalid secret name");
        assert!(msg.contains(shown), "{target}: {msg:?} should show {shown}");
    }
    let (resp, _) = raw(
        d.addr,
        format!(
            "GET /latest/secrets/caf\u{e9} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            d.addr
        )
        .as_bytes(),
        Duration::from_secs(10),
    );
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: Value = serde_json::from_str(body).unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("\"caf\\u{e9}\""), "{msg:?}");
}

/// Anyone but us or root who could have put the token there: the file group-writable or
/// another user's, a directory on the way that others can write without the sticky bit or
/// that another user owns, a symbolic link another user owns. Each refused (exit 2) naming
/// why; the safe arrangements (a root-owned link, a sticky /tmp) still start.
#[test]
fn token_files_anyone_else_could_have_chosen_are_refused() {
    use std::os::unix::fs::{lchown, PermissionsExt};
    let m = moto();
    let path = unique_path("tokenwho");
    let refused = |f: &std::path::Path| {
        let out = run(ecs(&m.endpoint).args([
            "daemon",
            "--path",
            &path,
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            f.to_str().unwrap(),
        ]));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !err.contains("listening on") && !err.contains(TOKEN),
            "{err}"
        );
        assert_eq!(out.status.code(), Some(2), "{err}");
        err
    };
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let nobody = 65534;
    // Group-writable.
    let dir = TempDir::new("tokenwho");
    let f = dir.join("token");
    std::fs::write(&f, TOKEN).unwrap();
    mode(&f, 0o620);
    let e = refused(&f);
    assert!(e.contains("its group can write it (mode 620)"), "{e}");
    mode(&f, 0o600);
    // Owned by another user.
    std::os::unix::fs::chown(&f, Some(nobody), None).unwrap();
    let e = refused(&f);
    assert!(e.contains("owned by another user (uid 65534)"), "{e}");
    std::os::unix::fs::chown(&f, Some(0), None).unwrap();
    // In a directory anyone can write, without the sticky bit.
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    mode(&open, 0o777);
    let g = open.join("token");
    std::fs::write(&g, TOKEN).unwrap();
    mode(&g, 0o600);
    let e = refused(&g);
    assert!(
        e.contains(&format!(
            "it is in the directory {}, which any user can write",
            open.display()
        )),
        "{e}"
    );
    // Group-writable directory.
    mode(&open, 0o770);
    let e = refused(&g);
    assert!(e.contains("which its group can write"), "{e}");
    // A directory owned by another user.
    mode(&open, 0o755);
    std::os::unix::fs::chown(&open, Some(nobody), None).unwrap();
    let e = refused(&g);
    assert!(e.contains("owned by another user (uid 65534)"), "{e}");
    std::os::unix::fs::chown(&open, Some(0), None).unwrap();
    // A symbolic link owned by another user, to a safe file.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&f, &link).unwrap();
    lchown(&link, Some(nobody), None).unwrap();
    let e = refused(&link);
    assert!(
        e.contains(&format!(
            "{} is a symbolic link owned by another user (uid 65534)",
            link.display()
        )),
        "{e}"
    );
    // The safe arrangements start: our own link, to our file, in /tmp (sticky).
    lchown(&link, Some(0), None).unwrap();
    let d = Daemon::start(
        &m.endpoint,
        &path,
        &["--token-file", link.to_str().unwrap()],
    );
    d.request(
        "GET",
        "/latest/version",
        &[("X-ECS-Secrets-Token", TOKEN)],
        b"",
    )
    .expect(200);
    drop(d);
    let d = Daemon::start(&m.endpoint, &path, &["--token-file", g.to_str().unwrap()]);
    drop(d);
}

#[test]
fn token_files_are_private_regular_files_read_once() {
    use std::os::unix::fs::PermissionsExt;
    let m = moto();
    let path = unique_path("tokenfile");
    let dir = TempDir::new("token");
    let daemon_exit = |f: &str| {
        let out = run(ecs(&m.endpoint).args([
            "daemon",
            "--path",
            &path,
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            f,
        ]));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("listening on"), "{err}");
        assert!(!err.contains(TOKEN), "{err}");
        (out.status.code(), err)
    };
    // Anyone can write it: anyone could have chosen the token.
    let f = token_file(&dir, TOKEN);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = daemon_exit(&f);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("any user can write"), "{err}");
    // Not a regular file: a FIFO nobody writes would hang the start; a directory.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for f in [fifo.to_str().unwrap(), dir.path().to_str().unwrap()] {
        let (code, err) = daemon_exit(f);
        assert_eq!(code, Some(2), "{f}: {err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
    // Larger than any token.
    let big = dir.join("big");
    std::fs::write(&big, "x".repeat(5000)).unwrap();
    let (code, err) = daemon_exit(big.to_str().unwrap());
    assert_eq!(code, Some(2), "{err}");
    // Anyone can read it: accepted, with a warning.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = Daemon::start(&m.endpoint, &path, &["--token-file", &f]);
    assert!(
        d.stderr().contains("can be read by any user"),
        "{}",
        d.stderr()
    );
    assert!(!d.stderr().contains(TOKEN), "{}", d.stderr());
    drop(d);
    // Read once: a token written to the file later takes effect at the next start.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Daemon::start(&m.endpoint, &path, &["--token-file", &f]);
    assert!(!d.stderr().contains("warning"), "{}", d.stderr());
    let rotated = "rotated-0123456789abcdef";
    std::fs::write(&f, rotated).unwrap();
    d.request(
        "GET",
        "/latest/version",
        &[("X-ECS-Secrets-Token", TOKEN)],
        b"",
    )
    .expect(200);
    d.request(
        "GET",
        "/latest/version",
        &[("X-ECS-Secrets-Token", rotated)],
        b"",
    )
    .expect(403);
    drop(d);
    let d = Daemon::start(&m.endpoint, &path, &["--token-file", &f]);
    d.request(
        "GET",
        "/latest/version",
        &[("X-ECS-Secrets-Token", rotated)],
        b"",
    )
    .expect(200);
}
