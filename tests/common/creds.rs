//! An imitation of the ECS container credentials endpoint
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`).

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::http::{read_body, read_head, request_body_len, ServerThread};

pub const ACCESS_KEY_ID: &str = "ASIATEST";
pub const SECRET_ACCESS_KEY: &str = "secret";
pub const TOKEN: &str = "token";

struct State {
    expected_auth: Option<String>,
    hits: AtomicUsize,
    authorizations: Mutex<Vec<Option<String>>>,
    /// Seconds the credentials handed out are valid for.
    lifetime: AtomicU64,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
}

/// Answers `GET <any path>` with temporary credentials valid for an hour.
/// With `expected_auth`, requests lacking `Authorization: <expected_auth>`
/// get 401. Stopped on drop.
pub struct EcsCredsServer {
    state: Arc<State>,
    server: ServerThread,
}

impl EcsCredsServer {
    pub fn start(expected_auth: Option<&str>) -> EcsCredsServer {
        let state = Arc::new(State {
            expected_auth: expected_auth.map(str::to_string),
            hits: AtomicUsize::new(0),
            authorizations: Mutex::new(Vec::new()),
            lifetime: AtomicU64::new(3600),
            delay_ms: AtomicU64::new(0),
        });
        let s = state.clone();
        let server = ServerThread::spawn("test-ecs-creds", move |stream| {
            let s = s.clone();
            async move {
                let _ = serve(stream, s).await;
            }
        });
        EcsCredsServer { state, server }
    }

    /// `http://127.0.0.1:PORT/creds`, for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn url(&self) -> String {
        format!("http://{}/creds", self.server.addr())
    }

    /// Credentials handed out from now on expire after `d` (under the SDK's 10 s refresh
    /// margin, every resolution fetches them again).
    pub fn set_lifetime(&self, d: Duration) {
        self.state.lifetime.store(d.as_secs(), Ordering::SeqCst);
    }

    /// Every answer from now on comes after `d`: a slow endpoint.
    pub fn set_delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests received (any method, path or outcome).
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The `Authorization` header of each request, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state
            .authorizations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn serve(stream: TcpStream, state: Arc<State>) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    while let Some(head) = read_head(&mut rd).await? {
        read_body(&mut rd, request_body_len(&head)?).await?;
        state.hits.fetch_add(1, Ordering::SeqCst);
        let auth = head.header("authorization").map(str::to_string);
        state
            .authorizations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(auth.clone());
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }

        let (status, body) = if head.request_line().0 != "GET" {
            (
                "405 Method Not Allowed",
                r#"{"message":"method not allowed"}"#.to_string(),
            )
        } else if state.expected_auth.is_some() && auth != state.expected_auth {
            (
                "401 Unauthorized",
                r#"{"message":"unauthorized"}"#.to_string(),
            )
        } else {
            let lifetime = state.lifetime.load(Ordering::SeqCst);
            let expiration = rfc3339(SystemTime::now() + Duration::from_secs(lifetime));
            let body = serde_json::json!({
                "AccessKeyId": ACCESS_KEY_ID,
                "SecretAccessKey": SECRET_ACCESS_KEY,
                "Token": TOKEN,
                "Expiration": expiration,
            });
            ("200 OK", body.to_string())
        };
        let keep_alive = head.keep_alive();
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if keep_alive { "" } else { "Connection: close\r\n" },
        );
        wr.write_all(resp.as_bytes()).await?;
        if !keep_alive {
            break;
        }
    }
    wr.shutdown().await
}

/// `t` as RFC 3339 UTC with whole seconds, e.g. `2024-05-01T12:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .expect("time before 1970")
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since the epoch (H. Hinnant's `civil_from_days`).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
