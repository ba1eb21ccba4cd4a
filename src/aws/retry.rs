//! The retry policy of every AWS request this program signs, whichever SDK client sends it:
//! it sits in the HTTP connector that `aws::load` puts in the shared `SdkConfig`, so each
//! client built from that config (SSM, DynamoDB, KMS, Secrets Manager, …) picks it up.
//!
//! - **Until the deadline, not an attempt count.** A throttled or transiently failed request
//!   is sent again until the caller's deadline (`aws::with_deadline`, i.e. `--timeout`)
//!   drops it. There is no attempt limit to run out of while the deadline still has time.
//! - **Jittered backoff, two schedules.** A throttle means the account's quota (shared by
//!   every task) is saturated: the wait is drawn from `[W/2, W)` where the window W starts
//!   at 3 s, doubles on every throttle up to 6 s, and halves on every answer that was not
//!   throttled (below 3 s it closes); with a deadline under 30 s the windows shrink to a
//!   tenth and a quarter of it, so that a short deadline still fits several retries. W is
//!   one per process: when another request of it (the next page, another path) is
//!   throttled, its wait is drawn from the window the earlier throttles grew, not from the
//!   smallest one. Half the window is the least wait, so no retry after a throttle goes
//!   out while the quota is still as saturated as it was ("never hammer"); the other half
//!   spreads the fleet's retries apart. Full jitter (`[0, W)`) was measured too: its
//!   near-zero waits are retries into the same saturation, and its waits near W are what
//!   delays the last start once the quota frees up; it needed a 10 s cap to keep 300 tasks
//!   under 1.5 throttled requests per useful one, and then left the last of 100 tasks a
//!   quarter over the floor. A server error or a network failure is one request's bad luck:
//!   full jitter, `[0, 0.2 s × 2^n)`, capped at 5 s, counted per request. The figures come
//!   from bench/fleet_sim.py (a model of K tasks sharing a token bucket) and were checked
//!   with bench/fleet.sh (README, "Starting many tasks at once").
//! - **Stalled, not slow.** An attempt is given up only when no byte arrives for `stall`
//!   (half the deadline, 1–20 s): until the first byte of the answer (the hyper client's
//!   read timeout) and between any two chunks of the body (here, while the body is read
//!   in). A slow answer that keeps arriving is never cut off and re-sent.
//! - **The whole answer, or a retry.** The body is read in completely before the SDK sees
//!   it, so an answer that breaks off (reset, truncated) is retried like any other
//!   transient failure instead of surfacing as a parse error.
//!
//! Unsigned requests (the credential endpoints: ECS, IMDS) pass through untouched and keep
//! the SDK's own retries. A signature is valid for a limited time, so after
//! `MAX_SIGNED_AGE` the last answer is handed to the SDK, whose retry strategy signs anew.
//!
//! Every attempt is tallied for the error that the deadline produces (attempts, time, how
//! they failed, the last cause).

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use http_body_util::BodyExt;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// First throttle window, its cap; first window after a transient failure, its cap.
pub const THROTTLE_FIRST: Duration = Duration::from_secs(3);
pub const THROTTLE_CAP: Duration = Duration::from_secs(6);
pub const TRANSIENT_FIRST: Duration = Duration::from_millis(200);
pub const TRANSIENT_CAP: Duration = Duration::from_secs(5);
/// SigV4 signatures are accepted for 15 minutes around their date; re-sign well before.
const MAX_SIGNED_AGE: Duration = Duration::from_secs(240);

/// How long an attempt may go without receiving a byte before it counts as stalled.
pub fn stall_timeout(deadline: Duration) -> Duration {
    (deadline / 2)
        .clamp(Duration::from_secs(1), Duration::from_secs(20))
        .min(deadline)
}

/// Error codes AWS uses for "slow down" (the SDK's list, plus SSM's TooManyUpdates: a
/// refused write, nothing written).
const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "TooManyUpdates",
];
const TRANSIENT_CODES: &[&str] = &["RequestTimeout", "RequestTimeoutException"];
const TRANSIENT_STATUS: &[u16] = &[500, 502, 503, 504];

/// How an attempt went wrong, for the tally and the deadline's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Throttled,
    ServerError,
    Network,
    Stalled,
}

/// What one deadline's requests went through. Shared by the requests run under one
/// `with_deadline` (a task-local), so concurrent daemon requests do not mix their counts.
#[derive(Debug, Default)]
pub struct Tally {
    pub attempts: u32,
    pub throttled: u32,
    pub server_errors: u32,
    pub network: u32,
    pub stalled: u32,
    /// The last failed attempt: its cause and a one-line description (never a body).
    pub last: Option<(Cause, String)>,
    /// When the last failed attempt went through `HTTPS_PROXY`: the proxy (as shown), and
    /// whether the tunnel was never set up.
    pub proxy: Option<(String, bool)>,
    /// Requests sent and not yet answered.
    pub in_flight: u32,
    pub stall: Duration,
    /// The deadline these requests run under (scales the throttle windows).
    pub deadline: Duration,
    /// The service of the last throttled request ("ssm", "secretsmanager", "dynamodb",
    /// "kms"), when its `X-Amz-Target` names one: the advice depends on whose quota it was.
    pub throttled_service: Option<&'static str>,
}

/// The service a JSON-protocol request goes to, from its `X-Amz-Target` header
/// (`AmazonSSM.GetParametersByPath`, `DynamoDB_20120810.Query`, …).
pub fn service_of(target: Option<&str>) -> Option<&'static str> {
    let target = target?;
    [
        ("AmazonSSM.", "ssm"),
        ("secretsmanager.", "secretsmanager"),
        ("DynamoDB_", "dynamodb"),
        ("TrentService.", "kms"),
    ]
    .into_iter()
    .find(|(prefix, _)| target.starts_with(prefix))
    .map(|(_, service)| service)
}

pub type SharedTally = Arc<Mutex<Tally>>;

tokio::task_local! {
    static TALLY: SharedTally;
}

/// The tallies of the deadlines running now. A request spawned onto another task (a
/// `JoinSet` of paths) does not carry the task-local; while exactly one deadline runs — any
/// one-shot command — it is counted there. The daemon's concurrent requests each run in the
/// task of their own deadline.
static ACTIVE: Mutex<Vec<Weak<Mutex<Tally>>>> = Mutex::new(Vec::new());

struct Registered(Weak<Mutex<Tally>>);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut a = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        a.retain(|w| !w.ptr_eq(&self.0) && w.strong_count() > 0);
    }
}

/// Run `fut` with `tally` collecting its attempts.
pub async fn tallied<T>(tally: SharedTally, fut: impl Future<Output = T>) -> T {
    let weak = Arc::downgrade(&tally);
    ACTIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(weak.clone());
    let _registered = Registered(weak);
    TALLY.scope(tally, fut).await
}

/// The tally this request counts in: its task's, else the only deadline running.
fn current() -> Option<SharedTally> {
    TALLY.try_with(Arc::clone).ok().or_else(|| {
        let a = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        let mut live = a.iter().filter_map(Weak::upgrade);
        match (live.next(), live.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

/// A future that keeps the current tally when spawned on another task.
pub fn inherit<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let tally = TALLY.try_with(Arc::clone).ok();
    async move {
        match tally {
            Some(t) => TALLY.scope(t, fut).await,
            None => fut.await,
        }
    }
}

fn note(tally: &Option<SharedTally>, f: impl FnOnce(&mut Tally)) {
    if let Some(Ok(mut t)) = tally.as_ref().map(|t| t.lock()) {
        f(&mut t);
    }
}

/// The process-wide throttle window (see the module docs), in multiples of the first
/// window: 0 (closed), then 1, 2, 4, … up to the cap.
static THROTTLE_WINDOW: Mutex<f64> = Mutex::new(0.0);

/// The throttle windows for a deadline: 3 s growing to 6 s, but never more than a tenth
/// and a quarter of the deadline, so that a short deadline still has room for retries.
pub fn throttle_windows(deadline: Duration) -> (Duration, Duration) {
    (
        THROTTLE_FIRST.min(deadline / 10),
        THROTTLE_CAP.min(deadline / 4),
    )
}

fn throttle_backoff(deadline: Duration) -> Duration {
    let (first, cap) = throttle_windows(deadline);
    let most = cap.as_secs_f64() / first.as_secs_f64().max(1e-3);
    let mut w = THROTTLE_WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    *w = (*w * 2.0).clamp(1.0, most.max(1.0));
    first.mul_f64(*w * (0.5 + 0.5 * unit_random()))
}

fn answered() {
    let mut w = THROTTLE_WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    *w /= 2.0;
    if *w < 1.0 {
        *w = 0.0;
    }
}

fn transient_backoff(failures: u32) -> Duration {
    let window = TRANSIENT_FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(TRANSIENT_CAP);
    window.mul_f64(unit_random())
}

/// Uniform in `[0, 1)`, from the system's random source.
fn unit_random() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // No random source: a time-derived value still spreads tasks apart.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        b[..4].copy_from_slice(&n.to_le_bytes());
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The retrying connector (see the module docs) around the TLS connector.
#[derive(Debug, Clone)]
pub struct Retrying {
    pub inner: SharedHttpConnector,
    pub stall: Duration,
}

/// What to do after one attempt.
enum Verdict {
    Final(Result<HttpResponse, ConnectorError>),
    Retry {
        cause: Cause,
        what: String,
        last: Result<HttpResponse, ConnectorError>,
    },
}

impl HttpConnector for Retrying {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let signed = request
            .headers()
            .get("authorization")
            .is_some_and(|a| a.starts_with("AWS4-"));
        if !signed || request.try_clone().is_none() {
            return self.inner.call(request);
        }
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.send(request).await })
    }
}

impl Retrying {
    async fn send(self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let first = Instant::now();
        let tally = current();
        let deadline = tally
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| t.deadline))
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(90));
        let mut failures = 0u32;
        let mut next = request;
        loop {
            let again = next.try_clone().expect("checked before the first attempt");
            note(&tally, |t| {
                t.attempts += 1;
                t.in_flight += 1;
                t.stall = self.stall;
            });
            let verdict = self.attempt(next).await;
            note(&tally, |t| t.in_flight = t.in_flight.saturating_sub(1));
            let (cause, what, last) = match verdict {
                Verdict::Final(r) => {
                    answered();
                    return r;
                }
                Verdict::Retry { cause, what, last } => (cause, what, last),
            };
            let proxy = match &last {
                Err(e) => {
                    super::find::<crate::tls::ViaProxy>(e).map(|v| (v.proxy.clone(), v.tunnel))
                }
                Ok(_) => None,
            };
            note(&tally, |t| {
                t.proxy = proxy;
                match cause {
                    Cause::Throttled => {
                        t.throttled += 1;
                        t.throttled_service = service_of(again.headers().get("x-amz-target"));
                    }
                    Cause::ServerError => t.server_errors += 1,
                    Cause::Network => t.network += 1,
                    Cause::Stalled => t.stalled += 1,
                }
                t.last = Some((cause, what));
            });
            if first.elapsed() > MAX_SIGNED_AGE {
                return last;
            }
            drop(last);
            let wait = if cause == Cause::Throttled {
                throttle_backoff(deadline)
            } else {
                failures += 1;
                transient_backoff(failures)
            };
            tokio::time::sleep(wait).await;
            next = again;
        }
    }

    async fn attempt(&self, request: HttpRequest) -> Verdict {
        let mut resp = match self.inner.call(request).await {
            Ok(r) => r,
            Err(e) => return classify_error(e),
        };
        // Read the whole body, allowing `stall` between chunks.
        let mut body = resp.take_body();
        let mut bytes = Vec::new();
        loop {
            match tokio::time::timeout(self.stall, body.frame()).await {
                Err(_) => {
                    let what = format!(
                        "HTTP {}, then no further byte for {} s",
                        resp.status().as_u16(),
                        super::fmt_secs(self.stall)
                    );
                    let err = ConnectorError::timeout(what.clone().into());
                    return Verdict::Retry {
                        cause: Cause::Stalled,
                        what,
                        last: Err(err),
                    };
                }
                Ok(None) => break,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                Ok(Some(Err(e))) => {
                    let what = format!(
                        "HTTP {}, then the answer broke off: {}",
                        resp.status().as_u16(),
                        first_chars(&super::chain(&*e), 120)
                    );
                    return Verdict::Retry {
                        cause: Cause::Network,
                        what,
                        last: Err(ConnectorError::io(e)),
                    };
                }
            }
        }
        let status = resp.status().as_u16();
        let code = error_code(&resp, &bytes).map(str::to_string);
        *resp.body_mut() = SdkBody::from(bytes);
        let code = code.as_deref();
        let throttled = status == 429 || code.is_some_and(|c| THROTTLE_CODES.contains(&c));
        let transient = TRANSIENT_STATUS.contains(&status)
            || code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
        if !throttled && !transient {
            return Verdict::Final(Ok(resp));
        }
        let what = match code {
            Some(c) => format!("HTTP {status} {c}"),
            None => format!("HTTP {status}"),
        };
        Verdict::Retry {
            cause: if throttled {
                Cause::Throttled
            } else {
                Cause::ServerError
            },
            what,
            last: Ok(resp),
        }
    }
}

/// Connection-level failures the SDK would retry are retried; the rest (a rejected
/// certificate, a bad request) are final.
fn classify_error(e: ConnectorError) -> Verdict {
    let cause = if e.is_timeout() {
        Cause::Stalled
    } else if e.is_io()
        || matches!(
            e.as_other(),
            Some(ErrorKind::TransientError | ErrorKind::ThrottlingError)
        )
    {
        Cause::Network
    } else {
        return Verdict::Final(Err(e));
    };
    let what = format!("no answer: {}", first_chars(&super::chain(&e), 160));
    Verdict::Retry {
        cause,
        what,
        last: Err(e),
    }
}

/// The AWS error code of an error answer: the `x-amzn-ErrorType` header, or the body's
/// `__type` (JSON protocols) or `<Code>` (query/XML protocols).
fn error_code<'a>(resp: &'a HttpResponse, body: &'a [u8]) -> Option<&'a str> {
    if resp.status().is_success() {
        return None;
    }
    let code = if let Some(h) = resp.headers().get("x-amzn-errortype") {
        h
    } else {
        let text = std::str::from_utf8(body).ok()?;
        if let Some(i) = text.find("\"__type\"") {
            let rest = &text[i + 8..];
            let start = rest.find('"')? + 1;
            let len = rest[start..].find('"')?;
            &rest[start..start + len]
        } else {
            let start = text.find("<Code>")? + 6;
            let len = text[start..].find("</Code>")?;
            &text[start..start + len]
        }
    };
    // "com.amazon.coral.service#ThrottlingException" or "ThrottlingException:http://…"
    let code = code.rsplit('#').next().unwrap_or(code);
    Some(code.split(':').next().unwrap_or(code).trim())
}

fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::StatusCode;

    #[test]
    fn the_service_is_read_from_the_target_header() {
        for (target, service) in [
            (Some("AmazonSSM.GetParametersByPath"), Some("ssm")),
            (
                Some("secretsmanager.BatchGetSecretValue"),
                Some("secretsmanager"),
            ),
            (Some("DynamoDB_20120810.Query"), Some("dynamodb")),
            (Some("TrentService.Decrypt"), Some("kms")),
            (Some("Other.Op"), None),
            (None, None),
        ] {
            assert_eq!(service_of(target), service, "{target:?}");
        }
    }

    fn response(status: u16, header: Option<&str>) -> HttpResponse {
        let mut r = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        if let Some(h) = header {
            r.headers_mut().insert("x-amzn-ErrorType", h.to_string());
        }
        r
    }

    #[test]
    fn error_codes_come_from_the_header_or_either_body_format() {
        let r = response(400, Some("ThrottlingException:http://internal.amazon.com/"));
        assert_eq!(error_code(&r, b""), Some("ThrottlingException"));
        let r = response(400, None);
        let json = br#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}"#;
        assert_eq!(error_code(&r, json), Some("ThrottlingException"));
        let xml = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code></Error></ErrorResponse>";
        assert_eq!(error_code(&r, xml), Some("Throttling"));
        assert_eq!(error_code(&response(200, None), json), None);
        assert_eq!(error_code(&r, b"not json"), None);
    }

    #[test]
    fn backoff_windows_grow_to_their_caps_and_the_throttle_window_closes_on_answers() {
        for n in 1..40 {
            let w = transient_backoff(n);
            assert!(w < TRANSIENT_CAP, "{n}: {w:?}");
        }
        // One test touches the process-wide window, so this sequence is not disturbed.
        let d = Duration::from_secs(90);
        assert_eq!(throttle_windows(d), (THROTTLE_FIRST, THROTTLE_CAP));
        let first = throttle_backoff(d);
        assert!(
            first >= THROTTLE_FIRST / 2 && first < THROTTLE_FIRST,
            "{first:?}"
        );
        for _ in 0..10 {
            let wait = throttle_backoff(d);
            assert!(wait < THROTTLE_CAP, "{wait:?}");
        }
        // At the cap, never less than half of it: no retry while the quota is saturated.
        for _ in 0..10 {
            let wait = throttle_backoff(d);
            assert!(wait >= THROTTLE_CAP / 2 && wait < THROTTLE_CAP, "{wait:?}");
        }
        let most = THROTTLE_CAP.as_secs_f64() / THROTTLE_FIRST.as_secs_f64();
        assert_eq!(*THROTTLE_WINDOW.lock().unwrap(), most);
        answered();
        assert_eq!(*THROTTLE_WINDOW.lock().unwrap(), most / 2.0);
        answered();
        assert_eq!(*THROTTLE_WINDOW.lock().unwrap(), 0.0);
        let reopened = throttle_backoff(d);
        assert!(reopened >= THROTTLE_FIRST / 2 && reopened < THROTTLE_FIRST);
        let short = Duration::from_secs(4);
        assert_eq!(
            throttle_windows(short),
            (Duration::from_millis(400), Duration::from_secs(1))
        );
        for _ in 0..10 {
            let wait = throttle_backoff(short);
            assert!(wait >= Duration::from_millis(200) && wait < Duration::from_secs(1));
        }
    }

    #[test]
    fn the_stall_timeout_is_half_the_deadline_within_bounds() {
        assert_eq!(
            stall_timeout(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(
            stall_timeout(Duration::from_secs(90)),
            Duration::from_secs(20)
        );
        assert_eq!(
            stall_timeout(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            stall_timeout(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }
}
