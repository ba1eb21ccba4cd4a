//! The socket under hyper, watched: `Wire` wraps a connection's stream to give hyper what
//! it lacks.
//!
//! - **How long a write has been waiting on the client.** A "write" runs from the first
//!   byte hyper hands us to the flush that finds everything taken by the kernel; while it
//!   runs, `write_stalled_since` holds its start. A client that never reads keeps it
//!   running, and `conn.rs` closes the connection once it is older than `WRITE_TIMEOUT`.
//! - **JSON bodies on hyper's own errors.** For a request head it cannot parse, hyper
//!   writes `400`/`414`/`431` with an empty body and closes. Those answers have a fixed
//!   shape (status line, `connection: close`, `content-length: 0`, an optional `date`)
//!   that none of ours has: ours always carry `content-type`, and a JSON body never holds
//!   a raw CR or LF. When the bytes hyper writes end with such a head, we write ours in
//!   its place: the same status, `{"error":"…"}`.
//! - **An HTTP/2 preface** (`PRI * HTTP/2.0`, prior knowledge) makes hyper close without a
//!   word. We hand hyper only the preface's request line, which it refuses like any bad
//!   version, and answer 505 with a JSON body.

use hyper::StatusCode;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Milliseconds on one monotonic clock shared by every connection; never 0 (0 means "no
/// write waiting").
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

pub struct Wire<T> {
    inner: T,
    /// `now_ms()` when the write in progress started; 0 when none is.
    write_stalled_since: Arc<AtomicU64>,
    /// Our answer in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
    /// Nothing read yet.
    first_read: bool,
    /// The connection opened with the HTTP/2 preface.
    h2: bool,
}

/// The HTTP/2 connection preface up to its blank line: a request line hyper refuses (400).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";

impl<T> Wire<T> {
    pub fn new(inner: T) -> Wire<T> {
        Wire {
            inner,
            write_stalled_since: Arc::new(AtomicU64::new(0)),
            replacement: None,
            first_read: true,
            h2: false,
        }
    }

    /// Shared with the connection's watchdog.
    pub fn write_stalled_since(&self) -> Arc<AtomicU64> {
        self.write_stalled_since.clone()
    }

    fn writing(&self) {
        if self.write_stalled_since.load(Ordering::Relaxed) == 0 {
            self.write_stalled_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

impl<T: AsyncWrite + Unpin> Wire<T> {
    /// Writes what is left of our replacement answer; Ready once it is all out.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((bytes, at)) = &mut self.replacement {
            while *at < bytes.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*at..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *at += n;
            }
        }
        self.replacement = None;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Wire<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if std::mem::take(&mut self.first_read) && buf.filled()[before..].starts_with(H2_PREFACE) {
            self.h2 = true;
            buf.set_filled(before + H2_PREFACE.len());
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Wire<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.writing();
        ready!(self.drain(cx))?;
        match hyper_error_at(buf) {
            // hyper's own answer, alone: ours goes out instead.
            Some((0, status)) => {
                let status = match status {
                    StatusCode::BAD_REQUEST if self.h2 => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    s => s,
                };
                let date = date_line(buf);
                self.replacement = Some((json_error(status, date), 0));
                // Taken either way: what is left goes out on the next write or flush.
                if let Poll::Ready(Err(e)) = self.drain(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(buf.len()))
            }
            // Earlier bytes first; hyper hands us the rest again.
            Some((at, _)) => Pin::new(&mut self.inner).poll_write(cx, &buf[..at]),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut full = bufs.iter().filter(|b| !b.is_empty());
        match (full.next(), full.next()) {
            (None, _) => Poll::Ready(Ok(0)),
            // hyper writes a head of its own only when no body is queued, so its error
            // answers always come as one slice.
            (Some(one), None) => self.poll_write(cx, one),
            _ => {
                self.writing();
                ready!(self.drain(cx))?;
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        // Everything hyper wrote is with the kernel: the client is keeping up.
        self.write_stalled_since.store(0, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The statuses hyper answers by itself (`on_error` in hyper's `proto/h1/role.rs`).
const HYPER_STATUSES: [StatusCode; 3] = [
    StatusCode::BAD_REQUEST,
    StatusCode::URI_TOO_LONG,
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
];
/// `date: Tue, 01 Dec 2026 15:37:50 GMT\r\n`: IMF-fixdate is always 29 characters.
const DATE_LINE: usize = "date: ".len() + 29 + 2;

/// hyper's error head for each of `HYPER_STATUSES`, before its optional `date` line.
fn hyper_heads() -> &'static [(StatusCode, Vec<u8>)] {
    static HEADS: std::sync::OnceLock<Vec<(StatusCode, Vec<u8>)>> = std::sync::OnceLock::new();
    HEADS.get_or_init(|| {
        HYPER_STATUSES
            .iter()
            .map(|s| {
                let head = format!(
                    "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-length: 0\r\n",
                    s.as_str(),
                    s.canonical_reason().unwrap_or("")
                );
                (*s, head.into_bytes())
            })
            .collect()
    })
}

/// Where in `buf` an error answer of hyper's own starts, if `buf` ends with one.
fn hyper_error_at(buf: &[u8]) -> Option<(usize, StatusCode)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    hyper_heads().iter().find_map(|(status, head)| {
        let plain = head.len() + 2;
        let dated = plain + DATE_LINE;
        if buf.len() >= dated {
            let at = buf.len() - dated;
            if buf[at..].starts_with(head) && buf[at + head.len()..].starts_with(b"date: ") {
                return Some((at, *status));
            }
        }
        if buf.len() >= plain && buf[buf.len() - plain..].starts_with(head) {
            return Some((buf.len() - plain, *status));
        }
        None
    })
}

/// hyper's `date:` line, kept in our answer.
fn date_line(buf: &[u8]) -> &[u8] {
    let end = buf.len() - 2;
    if end >= DATE_LINE && buf[end - DATE_LINE..].starts_with(b"date: ") {
        &buf[end - DATE_LINE..end]
    } else {
        b""
    }
}

fn message(status: StatusCode) -> String {
    match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
            "the request head is larger than {} KiB or has more than {} header fields",
            super::server::MAX_HEAD / 1024,
            super::server::MAX_HEADERS
        ),
        StatusCode::URI_TOO_LONG => "the request target is too long".into(),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED => {
            "the daemon speaks HTTP/1.1 and HTTP/1.0, not HTTP/2".into()
        }
        _ => "the request is not valid HTTP/1.1 (its request line, a header field, or the \
              framing of its body is malformed)"
            .into(),
    }
}

fn json_error(status: StatusCode, date: &[u8]) -> Vec<u8> {
    let body = format!("{{\"error\":{}}}", super::reply::json_str(&message(status)));
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
         connection: close\r\ncontent-length: {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hyper_error_heads_only() {
        let dated = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                      content-length: 0\r\ndate: Tue, 01 Dec 2026 15:37:50 GMT\r\n\r\n";
        assert_eq!(
            hyper_error_at(dated),
            Some((0, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
        );
        assert_eq!(date_line(dated), b"date: Tue, 01 Dec 2026 15:37:50 GMT\r\n");
        let plain = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_at(plain), Some((0, StatusCode::BAD_REQUEST)));
        assert_eq!(date_line(plain), b"");
        let mut after =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec();
        let at = after.len();
        after.extend_from_slice(plain);
        assert_eq!(hyper_error_at(&after), Some((at, StatusCode::BAD_REQUEST)));
        // Ours always have a content-type.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     connection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_at(ours), None);
        let json = json_error(StatusCode::URI_TOO_LONG, b"");
        let text = String::from_utf8(json).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(
            head.ends_with(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("too long"));
    }
}
