//! The accept loop, after mini-redis: `serve(listener, state, shutdown, force)`.
//!
//! - At most `MAX_CONNECTIONS` connections at once (a semaphore permit per connection).
//!   When all are taken, a new connection evicts the one that has waited on its client the
//!   longest (`conn.rs`); only when every one is being worked on does it wait.
//! - A request head must arrive within `HEADER_TIMEOUT` (which also closes idle keep-alive
//!   connections), its body within `routes::BODY_TIMEOUT`, and the client must take each
//!   response within `conn::WRITE_TIMEOUT`: a slow client cannot pin a connection. The
//!   head and response bounds are watched per connection (`conn::stalled`), to within
//!   half a second.
//! - On the first SIGTERM/SIGINT: stop accepting, let every connection finish the request
//!   it is in (idle ones close at once), for at most `GRACE`. A second signal stops now.

use super::conn::{self, Table};
use super::routes::State;
use crate::error::{Error, Result};
use hyper::server::conn::http1;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

pub const MAX_CONNECTIONS: usize = 256;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get after the first signal. Below ECS's default
/// `stopTimeout` (30 s), after which the agent sends SIGKILL.
pub const GRACE: Duration = Duration::from_secs(20);
/// Request heads larger than this are refused by hyper (431).
pub const MAX_HEAD: usize = 64 * 1024;
/// Request heads with more header fields than this are refused by hyper (431).
pub const MAX_HEADERS: usize = 100;

/// The signals the daemon takes (`supervise::signals::TABLE`: TERM and INT), counted.
pub struct Signals {
    rx: watch::Receiver<u32>,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        use crate::supervise::signals::{self as table, Tool};
        table::dispositions(Tool::Daemon);
        let (tx, rx) = watch::channel(0u32);
        for sig in table::taken(Tool::Daemon) {
            let mut s = signal(SignalKind::from_raw(sig))
                .map_err(|e| Error::io(format!("cannot handle {}: {e}", table::name(sig))))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    tx.send_modify(|n| *n += 1);
                }
            });
        }
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

/// A slot for a new connection: a free one, or one an evicted connection gives up.
async fn admit(limit: &Arc<Semaphore>, table: &Table) -> OwnedSemaphorePermit {
    loop {
        if let Ok(p) = limit.clone().try_acquire_owned() {
            return p;
        }
        if table.evict_one() {
            crate::log::debug(format_args!(
                "{MAX_CONNECTIONS} connections open: closing the one that has waited on its \
                 client the longest"
            ));
            return limit
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
        }
        // Every connection is being worked on (each bounded by --timeout): wait for one to
        // finish, or to start waiting on its client.
        tokio::select! {
            p = limit.clone().acquire_owned() => return p.expect("the semaphore is never closed"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
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
    let table = Arc::new(Table::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        // HEADER_TIMEOUT is the connection's watchdog's (`conn.rs`): hyper's own arms a
        // timer per request.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        // A client may shut down its side once its request is sent (`nc -N`, some
        // health checks): it still gets its answer.
        .half_close(true);
    tokio::pin!(shutdown);
    loop {
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
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            p = admit(&limit, &table) => p,
        };
        let entry = table.open();
        let (state, builder, stop) = (state.clone(), builder.clone(), stop_rx.clone());
        tokio::spawn(async move {
            conn::serve(stream, state, &builder, &entry.slot, stop).await;
            drop(entry);
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
