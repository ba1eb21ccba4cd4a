//! A counting, fault-injecting HTTP/1.1 reverse proxy for putting in front of
//! moto: point an SDK client (or the binary, via `AWS_ENDPOINT_URL`) at
//! [`Proxy::endpoint`] and observe or disturb its traffic.
//!
//! Client connections are kept alive (as the SDK expects); each request is
//! forwarded on a fresh upstream connection with `Connection: close` — moto's
//! werkzeug server closes after every response anyway.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::http::{
    read_body, read_head, request_body_len, response_body_len, BodyLen, Head, ServerThread,
};

/// What the proxy does to requests. `Default` is a transparent proxy.
///
/// For each affected request one number `r` in `[0, 1)` is drawn from a PRNG
/// seeded with `seed`, and the fractions are laid out one after the other in
/// the order below: `r < throttle` throttles, else `r < throttle + error500`
/// answers 500, and so on. Fractions therefore exclude each other and should
/// sum to at most 1. The same seed and request sequence gives the same faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Delay before handling each affected request.
    pub latency_ms: u64,
    /// Answered by the proxy: 400 `ThrottlingException` (awsJson) or
    /// `Throttling` (query protocol, XML). Not forwarded.
    pub throttle: f64,
    /// Answered by the proxy: 500 `InternalServerError`. Not forwarded.
    pub error500: f64,
    /// Forwarded (so moto executes it), then the client connection is reset
    /// (RST) after part of the response head.
    pub reset: f64,
    /// Forwarded, then the response head (with the full Content-Length) and
    /// half of the body are sent and the connection is closed.
    pub truncate: f64,
    /// Never answered and not forwarded; the connection is held open until
    /// the proxy is dropped.
    pub stall: f64,
    pub seed: u64,
    /// Only requests whose operation ends with this are affected (latency
    /// included); `None` affects all.
    pub only_op: Option<String>,
    /// When non-zero, only the first `first` affected requests draw a fault;
    /// later ones are forwarded untouched (latency still applies).
    pub first: usize,
    /// When non-zero, a forwarded answer is sent in `TRICKLE_PIECES` pieces
    /// with this pause before each: slow, but never stalled for longer.
    pub trickle_ms: u64,
}

/// Pieces of a trickled answer (see [`Faults::trickle_ms`]).
pub const TRICKLE_PIECES: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Throttle,
    Error500,
    Reset,
    Truncate,
    Stall,
}

/// xorshift64* — tiny, deterministic, good enough to pick faults.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and
        // the state is never 0 (a fixed point of xorshift).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct FaultState {
    faults: Faults,
    rng: XorShift,
    /// Affected requests so far (for `Faults::first`).
    affected: usize,
}

/// What to do with one request.
struct Plan {
    latency: Duration,
    fault: Option<Fault>,
    trickle: Duration,
}

/// Rewrites the body of a forwarded response (status 200 only) of the operations whose
/// name ends with the given suffix: to fault what moto cannot, e.g. a per-secret `Errors`
/// entry in a BatchGetSecretValue answer.
pub type Rewrite = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

struct Shared {
    upstream: SocketAddr,
    rewrite: Mutex<Option<(String, Rewrite)>>,
    ops: Mutex<Vec<String>>,
    signers: Mutex<Vec<(String, Option<String>)>>,
    faults: Mutex<FaultState>,
    injected: AtomicUsize,
    connections: AtomicUsize,
    hold: Mutex<Option<Hold>>,
    /// `true` releases every held request (see [`Proxy::hold`]).
    release: tokio::sync::watch::Sender<bool>,
    held: AtomicUsize,
    in_flight: AtomicUsize,
    /// Extra random delay for every request, with its own PRNG (so that it does not
    /// shift the fault draws).
    jitter: Mutex<Option<Jitter>>,
}

struct Jitter {
    max_ms: u64,
    /// This fraction of requests waits `slow_ms` more (a slow round trip).
    slow: f64,
    slow_ms: u64,
    rng: XorShift,
}

/// An armed hold: the `nth` (1-based) request whose operation ends with `op`.
struct Hold {
    op: String,
    nth: usize,
    seen: usize,
}

/// Counts a request as in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection task must not wedge the whole proxy.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Records the operation and decides its fate.
    fn admit(&self, op: &str) -> Plan {
        lock(&self.ops).push(op.to_string());
        let mut st = lock(&self.faults);
        let f = &st.faults;
        if f.only_op.as_deref().is_some_and(|o| !op.ends_with(o)) {
            return Plan {
                latency: Duration::ZERO,
                fault: None,
                trickle: Duration::ZERO,
            };
        }
        let latency = Duration::from_millis(f.latency_ms);
        let trickle = Duration::from_millis(f.trickle_ms);
        let limited = f.first > 0 && st.affected >= f.first;
        st.affected += 1;
        let f = &st.faults;
        let table = [
            (f.throttle, Fault::Throttle),
            (f.error500, Fault::Error500),
            (f.reset, Fault::Reset),
            (f.truncate, Fault::Truncate),
            (f.stall, Fault::Stall),
        ];
        let mut fault = None;
        // Draw only when some fault is configured, so that adding latency
        // does not shift the random sequence.
        if !limited && table.iter().any(|(p, _)| *p > 0.0) {
            let r = st.rng.next_f64();
            let mut acc = 0.0;
            for (p, kind) in table {
                acc += p.max(0.0);
                if r < acc {
                    fault = Some(kind);
                    break;
                }
            }
        }
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        Plan {
            latency,
            fault,
            trickle,
        }
    }

    /// Whether this request is the one the armed hold is waiting for.
    fn take_hold(&self, op: &str) -> bool {
        let mut h = lock(&self.hold);
        let Some(hold) = h.as_mut() else { return false };
        if !op.ends_with(&hold.op) {
            return false;
        }
        hold.seen += 1;
        if hold.seen == hold.nth {
            *h = None;
            return true;
        }
        false
    }

    fn jitter(&self) -> Duration {
        let mut j = lock(&self.jitter);
        let Some(j) = j.as_mut() else {
            return Duration::ZERO;
        };
        let mut ms = (j.rng.next_f64() * (j.max_ms + 1) as f64) as u64;
        if j.rng.next_f64() < j.slow {
            ms += j.slow_ms;
        }
        Duration::from_millis(ms)
    }
}

/// See the module docs. Stopped (all connections closed) on drop.
pub struct Proxy {
    shared: Arc<Shared>,
    server: ServerThread,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream_endpoint`
    /// (`http://127.0.0.1:PORT`; must be loopback).
    pub fn start(upstream_endpoint: &str) -> Proxy {
        let upstream = super::loopback_addr(upstream_endpoint);
        let shared = Arc::new(Shared {
            upstream,
            rewrite: Mutex::new(None),
            ops: Mutex::new(Vec::new()),
            signers: Mutex::new(Vec::new()),
            faults: Mutex::new(FaultState {
                faults: Faults::default(),
                rng: XorShift::new(0),
                affected: 0,
            }),
            injected: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            hold: Mutex::new(None),
            release: tokio::sync::watch::Sender::new(false),
            held: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            jitter: Mutex::new(None),
        });
        let s = shared.clone();
        let server = ServerThread::spawn("test-proxy", move |stream| {
            let s = s.clone();
            async move {
                s.connections.fetch_add(1, Ordering::SeqCst);
                // Errors just end the connection, as they would with a real server.
                let _ = serve(stream, s).await;
            }
        });
        Proxy { shared, server }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL` or an SDK `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// Replaces the fault configuration and reseeds the PRNG with `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = lock(&self.shared.faults);
        st.rng = XorShift::new(faults.seed);
        st.affected = 0;
        st.faults = faults;
    }

    /// Add `entry` to the `Errors` of every BatchGetSecretValue answer (moto never sends a
    /// per-secret error, e.g. access denied for one secret).
    pub fn inject_batch_error(&self, entry: serde_json::Value) {
        let f: Rewrite = Arc::new(move |body: &[u8]| {
            let mut v: serde_json::Value = serde_json::from_slice(body).expect("a JSON answer");
            let errors = v
                .as_object_mut()
                .unwrap()
                .entry("Errors")
                .or_insert(serde_json::json!([]));
            errors.as_array_mut().unwrap().push(entry.clone());
            v.to_string().into_bytes()
        });
        self.set_rewrite(Some(("BatchGetSecretValue", f)));
    }

    /// Rewrite the successful responses of operations ending with `op` (see [`Rewrite`]);
    /// `None` stops rewriting.
    pub fn set_rewrite(&self, rewrite: Option<(&str, Rewrite)>) {
        *lock(&self.shared.rewrite) = rewrite.map(|(op, f)| (op.to_string(), f));
    }

    /// Back to a transparent proxy (counters are kept).
    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// Requests received whose operation ends with `op`, e.g.
    /// `"GetParametersByPath"`, `"TrentService.Decrypt"`, `"Query"`.
    /// Every received request counts, faulted or not.
    pub fn count(&self, op: &str) -> usize {
        lock(&self.shared.ops)
            .iter()
            .filter(|o| o.ends_with(op))
            .count()
    }

    /// All requests received.
    pub fn total(&self) -> usize {
        lock(&self.shared.ops).len()
    }

    /// Operations in arrival order: the `X-Amz-Target` value (e.g.
    /// `AmazonSSM.GetParameter`), else the query-protocol `Action` (e.g.
    /// `GetCallerIdentity`), else `"METHOD /path"`.
    pub fn ops(&self) -> Vec<String> {
        lock(&self.shared.ops).clone()
    }

    /// `(operation, access key id)` of each request in arrival order: the key its SigV4
    /// `Authorization` header names (`Credential=AKID/...`), `None` when unsigned.
    pub fn signers(&self) -> Vec<(String, Option<String>)> {
        lock(&self.shared.signers).clone()
    }

    /// Requests that got a fault (latency alone is not a fault).
    pub fn faults_injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// Client connections accepted so far (to check keep-alive/reuse).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Arms a hold: the `nth` (1-based) request from now on whose operation ends with
    /// `op` (`""`: any request) is received (and counted) but neither forwarded nor answered until
    /// [`Proxy::release`]; then it is forwarded as usual, even when its client has gone
    /// meanwhile (a write that lands late). One hold is armed at a time.
    pub fn hold(&self, op: &str, nth: usize) {
        assert!(nth >= 1, "nth counts from 1");
        self.shared.release.send_replace(false);
        *lock(&self.shared.hold) = Some(Hold {
            op: op.to_string(),
            nth,
            seen: 0,
        });
    }

    /// Waits (up to `timeout`) until a held request is waiting in the proxy.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        let t0 = std::time::Instant::now();
        while self.shared.held.load(Ordering::SeqCst) == 0 {
            if t0.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Requests held right now.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Lets every held request go on (and disarms a hold that did not fire yet).
    pub fn release(&self) {
        *lock(&self.shared.hold) = None;
        self.shared.release.send_replace(true);
    }

    /// Every request from now on waits a further random 0..=`max_ms` milliseconds, and
    /// a `slow` fraction of them (at random) `slow_ms` more: a slow round trip. Drawn
    /// from a PRNG of its own seeded with `seed`, so the fault draws do not shift.
    pub fn set_jitter(&self, max_ms: u64, slow: f64, slow_ms: u64, seed: u64) {
        *lock(&self.shared.jitter) = Some(Jitter {
            max_ms,
            slow,
            slow_ms,
            rng: XorShift::new(seed),
        });
    }

    /// Requests received whose response has not been written (or abandoned) yet.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Waits (up to `timeout`) until no request is in flight: every request received so
    /// far has reached moto and been answered. Returns whether that happened.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let t0 = std::time::Instant::now();
        while self.in_flight() > 0 {
            if t0.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Zeroes the operation log, `faults_injected` and `connections`; the
    /// fault configuration stays.
    pub fn reset(&self) {
        lock(&self.shared.ops).clear();
        lock(&self.shared.signers).clear();
        self.shared.injected.store(0, Ordering::SeqCst);
        self.shared.connections.store(0, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    Query,
    Other,
}

/// Identifies the AWS operation of a request.
fn operation(head: &Head, body: &[u8]) -> (String, Protocol) {
    if let Some(t) = head.header("x-amz-target") {
        return (t.to_string(), Protocol::Json);
    }
    let (method, target, _) = head.request_line();
    // Query protocol (STS, CloudFormation, ...): form body, or query string.
    let form = std::str::from_utf8(body).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    for params in [form, query] {
        if let Some(action) = params.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            return (action.to_string(), Protocol::Query);
        }
    }
    (
        format!("{method} {}", target.split('?').next().unwrap_or("")),
        Protocol::Other,
    )
}

/// Serves one client connection: request after request until it closes.
async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    while let Some(head) = read_head(&mut rd).await? {
        if head.has_token("expect", "100-continue") {
            // We strip `Expect` when forwarding, so answer it ourselves.
            wr.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let body = read_body(&mut rd, request_body_len(&head)?).await?;
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(&shared.in_flight);
        let (op, protocol) = operation(&head, &body);
        let key = head
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .map(str::to_string);
        lock(&shared.signers).push((op.clone(), key));
        let plan = shared.admit(&op);
        let keep_alive = head.keep_alive();
        let delay = plan.latency + shared.jitter();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if shared.take_hold(&op) {
            let mut released = shared.release.subscribe();
            shared.held.fetch_add(1, Ordering::SeqCst);
            let _ = released.wait_for(|r| *r).await;
            shared.held.fetch_sub(1, Ordering::SeqCst);
        }
        let conn_hdr: &[(&str, &str)] = if keep_alive {
            &[]
        } else {
            &[("Connection", "close")]
        };

        match plan.fault {
            Some(Fault::Stall) => std::future::pending::<()>().await,
            Some(f @ (Fault::Throttle | Fault::Error500)) => {
                let msg = canned_error(f, protocol, &head, keep_alive);
                wr.write_all(&msg).await?;
            }
            _ => {
                let method = head.request_line().0.to_string();
                let (rhead, mut rbody, framed) =
                    match forward(shared.upstream, &head, &body, &method).await {
                        Ok(r) => r,
                        Err(e) => {
                            let msg = format!("test proxy: upstream {}: {e}", shared.upstream);
                            let resp = simple_response(
                                502,
                                "Bad Gateway",
                                "text/plain",
                                &[],
                                msg.as_bytes(),
                                true,
                            );
                            wr.write_all(&resp).await?;
                            return Ok(());
                        }
                    };
                let rewrite = lock(&shared.rewrite)
                    .as_ref()
                    .filter(|(o, _)| op.ends_with(o.as_str()))
                    .map(|(_, f)| f.clone());
                if let Some(f) = rewrite.filter(|_| rhead.status() == 200 && framed) {
                    rbody = f(&rbody);
                }
                // Bodiless responses (HEAD, 204, 304) keep their own headers.
                let len = framed.then_some(rbody.len());
                match plan.fault {
                    Some(Fault::Reset) => {
                        let bytes = rhead.to_bytes(len, conn_hdr);
                        wr.write_all(&bytes[..bytes.len() / 2]).await?;
                        wr.flush().await?;
                        abort(rd, wr);
                        return Ok(());
                    }
                    Some(Fault::Truncate) => {
                        // An empty body cannot be cut in half: promise one
                        // byte and send none so the response is still short.
                        let promised = rbody.len().max(1);
                        let mut bytes = rhead.to_bytes(Some(promised), conn_hdr);
                        bytes.extend_from_slice(&rbody[..rbody.len() / 2]);
                        wr.write_all(&bytes).await?;
                        wr.shutdown().await?;
                        return Ok(());
                    }
                    _ if !plan.trickle.is_zero() => {
                        let mut bytes = rhead.to_bytes(len, conn_hdr);
                        bytes.extend_from_slice(&rbody);
                        for piece in bytes.chunks(bytes.len().div_ceil(TRICKLE_PIECES)) {
                            tokio::time::sleep(plan.trickle).await;
                            wr.write_all(piece).await?;
                            wr.flush().await?;
                        }
                    }
                    _ => {
                        let mut bytes = rhead.to_bytes(len, conn_hdr);
                        bytes.extend_from_slice(&rbody);
                        wr.write_all(&bytes).await?;
                    }
                }
            }
        }
        if !keep_alive {
            wr.shutdown().await?;
            return Ok(());
        }
    }
    Ok(())
}

/// Closes the connection with a TCP RST instead of a FIN.
fn abort(rd: BufReader<OwnedReadHalf>, wr: OwnedWriteHalf) {
    // Dropping an `OwnedWriteHalf` would send a FIN first (a clean EOF), so
    // reunite the halves and close the socket itself with SO_LINGER = 0,
    // which makes close() send RST.
    if let Ok(stream) = rd.into_inner().reunite(wr) {
        let _ = stream.set_zero_linger();
    }
}

/// Sends the request to `upstream` on a new connection and reads the response.
/// Returns the final head, the de-chunked body, and whether the body is framed
/// by a new Content-Length (false for bodiless responses).
async fn forward(
    upstream: SocketAddr,
    head: &Head,
    body: &[u8],
    method: &str,
) -> io::Result<(Head, Vec<u8>, bool)> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let mut req = head.to_bytes(Some(body.len()), &[("Connection", "close")]);
    req.extend_from_slice(body);
    up.write_all(&req).await?;
    let mut up = BufReader::new(up);
    loop {
        let rhead = read_head(&mut up).await?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed without a response",
            )
        })?;
        if (100..200).contains(&rhead.status()) {
            continue; // interim response (we never send Expect upstream)
        }
        let len = response_body_len(&rhead, method)?;
        let rbody = read_body(&mut up, len).await?;
        let framed = len != BodyLen::Empty || content_length_is_zero(&rhead);
        return Ok((rhead, rbody, framed));
    }
}

fn content_length_is_zero(h: &Head) -> bool {
    h.header("content-length").is_some_and(|v| v.trim() == "0")
}

/// A response generated by the proxy itself (throttle / 500).
fn canned_error(fault: Fault, protocol: Protocol, req: &Head, keep_alive: bool) -> Vec<u8> {
    let (status, reason, json_type, query_code, query_type, message) = match fault {
        Fault::Throttle => (
            400,
            "Bad Request",
            "ThrottlingException",
            "Throttling",
            "Sender",
            "Rate exceeded",
        ),
        _ => (
            500,
            "Internal Server Error",
            "InternalServerError",
            "InternalFailure",
            "Receiver",
            "injected",
        ),
    };
    let request_id = "00000000-0000-0000-0000-test0proxy00";
    if protocol == Protocol::Query {
        // Query-protocol clients (STS, CloudFormation) only parse XML errors.
        let mut body = String::new();
        let _ = write!(
            body,
            "<ErrorResponse><Error><Type>{query_type}</Type><Code>{query_code}</Code>\
             <Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        );
        let headers = [("x-amzn-RequestId", request_id)];
        simple_response(
            status,
            reason,
            "text/xml",
            &headers,
            body.as_bytes(),
            !keep_alive,
        )
    } else {
        // Mirror DynamoDB's awsJson 1.0 vs. the 1.1 of SSM/KMS.
        let content_type = req
            .header("content-type")
            .filter(|c| c.starts_with("application/x-amz-json"))
            .unwrap_or("application/x-amz-json-1.1");
        let body = serde_json::json!({ "__type": json_type, "message": message }).to_string();
        let headers = [
            ("x-amzn-ErrorType", json_type),
            ("x-amzn-RequestId", request_id),
        ];
        simple_response(
            status,
            reason,
            content_type,
            &headers,
            body.as_bytes(),
            !keep_alive,
        )
    }
}

fn simple_response(
    status: u16,
    reason: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        let _ = write!(out, "{n}: {v}\r\n");
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
