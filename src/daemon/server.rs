//! The accept loop, after mini-redis: `serve(listener, state, shutdown, force)`.
//!
//! - At most `MAX_CONNECTIONS` connections at once (a semaphore permit per connection;
//!   past it, new connections wait in the kernel's backlog).
//! - A request head must arrive within `HEADER_TIMEOUT` (which also closes idle keep-alive
//!   connections) and its body within `routes::BODY_TIMEOUT`: a slow client cannot pin a
//!   connection.
//! - On the first SIGTERM/SIGINT: stop accepting, let every connection finish the request
//!   it is in (idle ones close at once), for at most `GRACE`. A second signal stops now.

use super::routes::{self, State};
use crate::error::{Error, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};

pub const MAX_CONNECTIONS: usize = 256;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get after the first signal. Below ECS's default
/// `stopTimeout` (30 s), after which the agent sends SIGKILL.
pub const GRACE: Duration = Duration::from_secs(20);
/// Request heads larger than this are refused by hyper (431).
const MAX_HEAD: usize = 64 * 1024;

/// SIGTERM and SIGINT, counted.
pub struct Signals {
    rx: watch::Receiver<u32>,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| Error::io(format!("cannot handle {name}: {e}")))
        };
        let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
        let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
        let (tx, rx) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                let got = tokio::select! {
                    s = term.recv() => s,
                    s = int.recv() => s,
                };
                if got.is_none() {
                    return;
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(Signals { rx })
    }

    /// Resolves once `n` signals have arrived.
    pub fn nth(&self, n: u32) -> impl Future<Output = ()> + 'static {
        let mut rx = self.rx.clone();
        async move {
            if rx.wait_for(|c| *c >= n).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Serve until the first signal, then drain.
pub async fn run(listener: TcpListener, state: Arc<State>, signals: Signals) {
    serve(listener, state, signals.nth(1), signals.nth(2)).await
}

/// Serve `listener` until `shutdown` resolves; then drain for at most `GRACE`, or until
/// `force` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_header_size(MAX_HEAD);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: say so, and do not spin.
                    crate::log::warn(format_args!("accepting a connection failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (state, builder, mut stop) = (state.clone(), builder.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(routes::handle(state, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                crate::log::debug(format_args!("connection closed: {e}"));
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let busy = MAX_CONNECTIONS - limit.available_permits();
    crate::log::debug(format_args!(
        "stopping: {busy} connection(s) open, waiting up to {}s",
        GRACE.as_secs()
    ));
    tokio::select! {
        _ = limit.acquire_many(MAX_CONNECTIONS as u32) => {}
        _ = tokio::time::sleep(GRACE) => crate::log::warn(format_args!(
            "stopping with requests still in flight after {}s",
            GRACE.as_secs()
        )),
        _ = force => crate::log::warn(format_args!(
            "second signal: stopping without waiting for requests in flight"
        )),
    }
}
