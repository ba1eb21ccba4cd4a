//! An imitation of the EC2 instance metadata service, IMDSv2 only
//! (`AWS_EC2_METADATA_SERVICE_ENDPOINT`): `PUT /latest/api/token` hands out a session token,
//! and the credential routes answer only requests carrying it.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::http::{read_body, read_head, request_body_len, ServerThread};

pub const ROLE: &str = "test-instance-role";
pub const ACCESS_KEY_ID: &str = "ASIAIMDSTEST";
const SESSION_TOKEN: &str = "imds-session-token-1";

/// Requests as `(method, path, had the session token)`. Stopped on drop.
pub struct ImdsServer {
    requests: Arc<Mutex<Vec<(String, String, bool)>>>,
    server: ServerThread,
}

impl ImdsServer {
    pub fn start() -> ImdsServer {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r = requests.clone();
        let server = ServerThread::spawn("test-imds", move |stream| {
            let r = r.clone();
            async move {
                let _ = serve(stream, r).await;
            }
        });
        ImdsServer { requests, server }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn requests(&self) -> Vec<(String, String, bool)> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn serve(stream: TcpStream, log: Arc<Mutex<Vec<(String, String, bool)>>>) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    while let Some(head) = read_head(&mut rd).await? {
        read_body(&mut rd, request_body_len(&head)?).await?;
        let (method, path, _) = head.request_line();
        let (method, path) = (method.to_string(), path.to_string());
        let authed = head.header("x-aws-ec2-metadata-token") == Some(SESSION_TOKEN);
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((method.clone(), path.clone(), authed));
        let creds = || {
            let expiration = super::rfc3339(SystemTime::now() + Duration::from_secs(3600));
            serde_json::json!({
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": ACCESS_KEY_ID,
                "SecretAccessKey": "imds-secret",
                "Token": "imds-token",
                "Expiration": expiration,
                "LastUpdated": super::rfc3339(SystemTime::now()),
            })
            .to_string()
        };
        let base = [
            "/latest/meta-data/iam/security-credentials",
            "/latest/meta-data/iam/security-credentials-extended",
        ];
        let (status, body) = match (method.as_str(), path.as_str()) {
            ("PUT", "/latest/api/token") => {
                if head
                    .header("x-aws-ec2-metadata-token-ttl-seconds")
                    .is_some()
                {
                    ("200 OK", SESSION_TOKEN.to_string())
                } else {
                    ("400 Bad Request", String::new())
                }
            }
            (_, _) if !authed => ("401 Unauthorized", String::new()),
            ("GET", p) if base.iter().any(|b| p == *b || p == format!("{b}/")) => {
                ("200 OK", ROLE.to_string())
            }
            ("GET", p) if base.iter().any(|b| p == format!("{b}/{ROLE}")) => ("200 OK", creds()),
            _ => ("404 Not Found", String::new()),
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 21600\r\n\r\n{body}",
            body.len(),
        );
        wr.write_all(resp.as_bytes()).await?;
        if !head.keep_alive() {
            break;
        }
    }
    wr.shutdown().await
}
