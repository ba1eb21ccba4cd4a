//! A forward proxy speaking HTTP `CONNECT` (what `HTTPS_PROXY` points at), which records the
//! target of every tunnel it opens. It only ever connects to loopback targets; anything
//! else gets 403.

use std::io;
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::http::{read_head, ServerThread};

/// Stopped (every tunnel closed) on drop.
pub struct ConnectProxy {
    targets: Arc<Mutex<Vec<String>>>,
    server: ServerThread,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        let targets = Arc::new(Mutex::new(Vec::new()));
        let t = targets.clone();
        let server = ServerThread::spawn("test-connect-proxy", move |stream| {
            let t = t.clone();
            async move {
                let _ = serve(stream, t).await;
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

async fn serve(stream: TcpStream, targets: Arc<Mutex<Vec<String>>>) -> io::Result<()> {
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
    let addr = (method == "CONNECT")
        .then(|| target.to_socket_addrs().ok()?.next())
        .flatten()
        .filter(|a| a.ip().is_loopback());
    let Some(addr) = addr else {
        wr.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return wr.shutdown().await;
    };
    let upstream = match TcpStream::connect(addr).await {
        Ok(u) => u,
        Err(_) => {
            wr.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
            return wr.shutdown().await;
        }
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
