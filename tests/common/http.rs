//! Just enough HTTP/1.1 for the loopback test servers (proxy, ECS credentials
//! endpoint) and a blocking client for tests. Hand-written on purpose: the
//! proxy must be able to misbehave at the byte level (half a response head,
//! half a body), which a real HTTP library would not let it do.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Upper bound for a message head; anything bigger is treated as garbage.
const MAX_HEAD: usize = 64 * 1024;
/// Upper bound for a body; protects against absurd Content-Length values.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Headers that describe one connection hop, not the message; a proxy must
/// not forward them (RFC 9110 §7.6.1). `content-length` is recomputed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// The start line and headers of a request or response.
#[derive(Clone, Debug)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (`Connection`, `Transfer-Encoding`,
    /// `Expect`) contains `token`, case-insensitively.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// `(method, target, version)` of a request line.
    pub fn request_line(&self) -> (&str, &str, &str) {
        let mut it = self.start.split_whitespace();
        (
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
        )
    }

    /// Status code of a status line (0 if unparsable).
    pub fn status(&self) -> u16 {
        self.start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the peer that sent this head keeps the connection open after
    /// the message: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let version = self
            .start
            .split_whitespace()
            .find(|p| p.starts_with("HTTP/"));
        if version == Some("HTTP/1.0") {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }

    /// Serializes the head for the next hop: hop-by-hop headers are dropped,
    /// `content_length` (if given) replaces any `Content-Length`, and `extra`
    /// headers are appended.
    pub fn to_bytes(&self, content_length: Option<usize>, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (n, v) in &self.headers {
            let lower = n.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str())
                || (content_length.is_some() && lower == "content-length")
            {
                continue;
            }
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(len) = content_length {
            out.push_str(&format!("Content-Length: {len}\r\n"));
        }
        for (n, v) in extra {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// How the body following a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLen {
    Empty,
    Exact(usize),
    Chunked,
    /// Only for responses: the body runs until the server closes.
    UntilClose,
}

fn content_length(head: &Head) -> io::Result<Option<usize>> {
    match head.header("content-length") {
        None => Ok(None),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= MAX_BODY => Ok(Some(n)),
            _ => Err(invalid(format!("bad Content-Length {v:?}"))),
        },
    }
}

/// Body framing of a request (RFC 9112 §6.3: chunked wins over Content-Length).
pub fn request_body_len(head: &Head) -> io::Result<BodyLen> {
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(BodyLen::Chunked);
    }
    Ok(match content_length(head)? {
        Some(0) | None => BodyLen::Empty,
        Some(n) => BodyLen::Exact(n),
    })
}

/// Body framing of a response to a request with method `method`.
pub fn response_body_len(head: &Head, method: &str) -> io::Result<BodyLen> {
    let status = head.status();
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(BodyLen::Empty);
    }
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(BodyLen::Chunked);
    }
    Ok(match content_length(head)? {
        Some(0) => BodyLen::Empty,
        Some(n) => BodyLen::Exact(n),
        None => BodyLen::UntilClose,
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one line including its `\n`; errors on EOF in the middle of a line.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, limit: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    // `take` bounds memory if the peer never sends a newline.
    let n = (&mut *r)
        .take(limit as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n > 0 && !line.ends_with(b"\n") {
        return Err(if n >= limit {
            invalid("line too long".into())
        } else {
            io::ErrorKind::UnexpectedEof.into()
        });
    }
    Ok(line)
}

/// Reads a message head. `Ok(None)` means the peer closed cleanly before
/// sending anything (the normal end of a keep-alive connection).
pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<Head>> {
    let mut start: Option<String> = None;
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        let line = read_line(r, MAX_HEAD - total).await?;
        if line.is_empty() {
            return match start {
                None if total == 0 => Ok(None),
                _ => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
        total += line.len();
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        match &start {
            // Tolerate stray CRLFs before a request line (RFC 9112 §2.2).
            None if text.is_empty() => continue,
            None => start = Some(text.to_string()),
            Some(_) if text.is_empty() => {
                return Ok(Some(Head {
                    start: start.unwrap_or_default(),
                    headers,
                }))
            }
            Some(_) => {
                let (name, value) = text
                    .split_once(':')
                    .ok_or_else(|| invalid(format!("bad header line {text:?}")))?;
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }
}

/// Reads a body framed as `len`, de-chunking if needed.
pub async fn read_body<R: AsyncBufRead + Unpin>(r: &mut R, len: BodyLen) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match len {
        BodyLen::Empty => {}
        BodyLen::Exact(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).await?;
        }
        BodyLen::UntilClose => {
            (&mut *r)
                .take(MAX_BODY as u64)
                .read_to_end(&mut body)
                .await?;
        }
        BodyLen::Chunked => loop {
            let line = read_line(r, 1024).await?;
            let text = String::from_utf8_lossy(&line);
            let size = text.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size {text:?}")))?;
            if size == 0 {
                // Trailer section, ended by an empty line.
                loop {
                    match read_line(r, MAX_HEAD).await?.as_slice() {
                        b"\r\n" | b"\n" => break,
                        [] => return Err(io::ErrorKind::UnexpectedEof.into()),
                        _ => {}
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("chunked body too large".into()));
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..]).await?;
            read_line(r, 2).await?; // CRLF after the chunk data
        },
    }
    Ok(body)
}

/// A loopback TCP server with its own thread and single-threaded tokio
/// runtime. Each accepted connection is handed to `conn` as a task. Dropping
/// the `ServerThread` stops the accept loop and drops the runtime, which
/// aborts every connection task (closing their sockets).
pub struct ServerThread {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    pub fn spawn<F, Fut>(name: &str, conn: F) -> ServerThread
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Bind synchronously so the address is known (and connectable: the
        // kernel queues connections) before this returns.
        let listener = StdListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    let accept = async {
                        loop {
                            match listener.accept().await {
                                Ok((stream, _)) => {
                                    let _ = stream.set_nodelay(true);
                                    tokio::spawn(conn(stream));
                                }
                                // E.g. EMFILE: back off instead of spinning.
                                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                            }
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = rx => {}
                    }
                });
                // Dropping `rt` here cancels all connection tasks.
            })
            .expect("spawn server thread");
        ServerThread {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response read by [`http_request`].
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }
}

/// A blocking HTTP/1.1 request to a loopback `url` (`http://127.0.0.1:PORT/path`),
/// one connection per request (`Connection: close`), 10 s I/O timeout.
/// Returns `Err` on connection or protocol errors (e.g. a reset), so tests can
/// assert on those too.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let addr = super::loopback_addr(url);
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let timeout = Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)?;

    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method)
}

/// Parses a complete (connection-closed) response; reuses the async parser
/// on an in-memory reader.
fn parse_response(raw: &[u8], method: &str) -> io::Result<HttpResponse> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut r = raw;
        loop {
            let head = read_head(&mut r)
                .await?
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            let status = head.status();
            if (100..200).contains(&status) {
                continue; // interim response
            }
            let body = read_body(&mut r, response_body_len(&head, method)?).await?;
            return Ok(HttpResponse {
                status,
                headers: head.headers,
                body,
            });
        }
    })
}

/// A loopback connection whose receive buffer is set to `rcvbuf` bytes before it connects
/// (so the TCP window it offers stays small): a client that reads slowly, or never.
pub fn small_window(addr: SocketAddr, rcvbuf: usize) -> io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::other("small_window: IPv4 loopback only"));
    };
    assert!(v4.ip().is_loopback(), "{addr}");
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let size = rcvbuf as libc::c_int;
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::connect(
            fd,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Whether the peer has closed `s` (EOF or reset) within `limit`; bytes that arrive first
/// are read and dropped.
pub fn closed_within(s: &mut std::net::TcpStream, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left.min(Duration::from_millis(500))));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
}
