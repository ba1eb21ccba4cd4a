//! A forward proxy speaking HTTP `CONNECT` (what `HTTPS_PROXY` points at), which records the
//! target of every tunnel it opens. It only ever connects to loopback targets; anything
//! else gets 403. Other [`Mode`]s misbehave as real proxies do.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::http::{read_head, ServerThread};

/// How the proxy answers `CONNECT`.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Tunnels to the (loopback) target.
    Forward,
    /// Tunnels every request to this loopback address, whatever the target named: a
    /// target's name then reaches a server that does not carry it.
    RedirectTo(SocketAddr),
    /// Answers `407 Proxy Authentication Required`.
    WantsCredentials,
    /// Reads the request and never answers.
    Silent,
}

/// Stopped (every tunnel closed) on drop.
pub struct ConnectProxy {
    targets: Arc<Mutex<Vec<String>>>,
    server: ServerThread,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        ConnectProxy::start_mode(Mode::Forward)
    }

    pub fn start_mode(mode: Mode) -> ConnectProxy {
        if let Mode::RedirectTo(a) = mode {
            assert!(a.ip().is_loopback(), "{a}");
        }
        let targets = Arc::new(Mutex::new(Vec::new()));
        let t = targets.clone();
        let server = ServerThread::spawn("test-connect-proxy", move |stream| {
            let t = t.clone();
            async move {
                let _ = serve(stream, t, mode).await;
            }
        });
        ConnectProxy { targets, server }
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The `host:port` of each request, in arrival order (`CONNECT` targets; any other
    /// method is recorded as `METHOD target` and refused).
    pub fn targets(&self) -> Vec<String> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn serve(stream: TcpStream, targets: Arc<Mutex<Vec<String>>>, mode: Mode) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let Some(head) = read_head(&mut rd).await? else {
        return Ok(());
    };
    let (method, target, _) = head.request_line();
    let record = if method == "CONNECT" {
        target.to_string()
    } else {
        format!("{method} {target}")
    };
    targets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record);
    match mode {
        Mode::WantsCredentials => {
            wr.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
            return wr.shutdown().await;
        }
        Mode::Silent => {
            std::future::pending::<()>().await;
        }
        Mode::Forward | Mode::RedirectTo(_) => {}
    }
    // Every loopback address the target resolves to, tried in turn (`localhost` is both
    // ::1 and 127.0.0.1).
    let addrs: Vec<SocketAddr> = if method != "CONNECT" {
        Vec::new()
    } else {
        match mode {
            Mode::RedirectTo(a) => vec![a],
            _ => target
                .to_socket_addrs()
                .map(|a| a.filter(|a| a.ip().is_loopback()).collect())
                .unwrap_or_default(),
        }
    };
    if addrs.is_empty() {
        wr.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return wr.shutdown().await;
    }
    let mut upstream = None;
    for a in addrs {
        if let Ok(u) = TcpStream::connect(a).await {
            upstream = Some(u);
            break;
        }
    }
    let Some(upstream) = upstream else {
        wr.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return wr.shutdown().await;
    };
    wr.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    let (mut urd, mut uwr) = upstream.into_split();
    // Bytes the client sent after its request head are in `rd`'s buffer: copy from it.
    let up = async {
        tokio::io::copy(&mut rd, &mut uwr).await?;
        uwr.shutdown().await
    };
    let down = async {
        tokio::io::copy(&mut urd, &mut wr).await?;
        wr.shutdown().await
    };
    let _ = tokio::join!(up, down);
    Ok(())
}
