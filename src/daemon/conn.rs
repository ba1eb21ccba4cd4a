//! One connection's life, and the table of open connections.
//!
//! Every moment a connection is open, either we are working on one of its requests (the
//! handler runs: routing, the cache, AWS, bounded by `--timeout`), or we are waiting on the
//! client: for a request head (`HEADER_TIMEOUT`, which also bounds an idle keep-alive), a
//! request body (`routes::BODY_TIMEOUT`), or for it to take a response (`WRITE_TIMEOUT`,
//! watched through `wire.rs`). Each wait is bounded, so no connection lives long without
//! progress.
//!
//! Bounds alone still let 256 clients that never read hold every slot for as long as the
//! bound, again and again. So a connection waiting on its client is also **evictable**:
//! when every slot is taken, a new connection closes the one that has waited on its client
//! the longest. Only connections whose requests we are working on are never evicted.

use super::routes::{self, State};
use super::wire::{now_ms, Wire};
use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

/// How long a client may take to read a response (everything we have written to it):
/// past that, the connection is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connection's watchdog looks at its write.
const WATCH_EVERY: Duration = Duration::from_millis(500);

fn tick() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One open connection, as the table sees it.
pub struct Slot {
    /// Requests of this connection we are working on (0: waiting on the client).
    busy: AtomicUsize,
    /// When it last started waiting on its client, as a place in one sequence shared by
    /// every connection (clock ticks would tie).
    waiting_since: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
}

impl Slot {
    fn start_waiting(&self) {
        self.waiting_since.store(tick(), Ordering::Relaxed);
    }

    /// A request reached the handler.
    pub fn working(self: &Arc<Self>) -> Working {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Working(self.clone())
    }

    /// Resolves when the table evicts this connection.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

/// While it lives, the connection is not waiting on its client.
pub struct Working(Arc<Slot>);

impl Working {
    /// For a handler that reads the request body: for as long as the returned guard lives,
    /// the connection is waiting on its client again (and so evictable).
    pub fn reading_body(&self) -> ReadingBody<'_> {
        self.0.start_waiting();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        ReadingBody(&self.0)
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.0.start_waiting();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct ReadingBody<'a>(&'a Slot);

impl Drop for ReadingBody<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_add(1, Ordering::AcqRel);
    }
}

/// The open connections.
#[derive(Default)]
pub struct Table {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next: AtomicU64,
}

impl Table {
    /// A new connection, waiting on its client (for its first request head).
    pub fn open(self: &Arc<Self>) -> Entry {
        let slot = Arc::new(Slot {
            busy: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(tick()),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, slot.clone());
        Entry {
            table: self.clone(),
            id,
            slot,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Evicts the connection that has waited on its client the longest; false when every
    /// connection is being worked on.
    pub fn evict_one(&self) -> bool {
        let slots = self.lock();
        let victim = slots
            .values()
            .filter(|s| s.busy.load(Ordering::Acquire) == 0 && !s.evicted.load(Ordering::Relaxed))
            .min_by_key(|s| s.waiting_since.load(Ordering::Relaxed));
        match victim {
            Some(s) => {
                s.evicted.store(true, Ordering::Relaxed);
                // `notify_one` keeps the wake-up for a task not yet waiting.
                s.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the table, given up on drop.
pub struct Entry {
    table: Arc<Table>,
    id: u64,
    pub slot: Arc<Slot>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

/// A response body that keeps its connection "being worked on" until hyper has taken it
/// all (or dropped it: `HEAD`).
pub struct Answer {
    body: Full<Bytes>,
    working: Option<Working>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if self.body.is_end_stream() {
            self.working = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Resolves once the write in progress (`Wire::write_stalled_since`) has waited on the
/// client for `WRITE_TIMEOUT`.
pub async fn write_stalled(since: Arc<AtomicU64>) {
    let limit = WRITE_TIMEOUT.as_millis() as u64;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let s = since.load(Ordering::Relaxed);
        if s != 0 && now_ms().saturating_sub(s) >= limit {
            return;
        }
    }
}

/// The kernel's buffers of one connection, each way. Fixed, not grown by the kernel's
/// autotuning (which would take megabytes from a client that never reads, and make
/// writes look as if the client took them): a client that does not read stalls our
/// writes after this much, and `WRITE_TIMEOUT` can see it.
pub const SOCKET_BUFFER: usize = 64 * 1024;

fn fixed_buffers(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size = SOCKET_BUFFER as libc::c_int;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on a socket we own, with a c_int of the size we pass.
        let r = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            crate::log::debug(format_args!(
                "cannot fix a socket buffer's size: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// One connection, until it ends, is evicted, or stalls its writes past the bound.
pub async fn serve(
    stream: TcpStream,
    state: Arc<State>,
    builder: &http1::Builder,
    slot: &Arc<Slot>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    fixed_buffers(&stream);
    let wire = Wire::new(stream);
    let stalled = wire.write_stalled_since();
    let for_svc = slot.clone();
    let svc = service_fn(move |req| {
        let state = state.clone();
        let working = for_svc.working();
        async move {
            let resp = routes::handle(state, req, &working).await;
            // Still being worked on until hyper has taken the body: an eviction in between
            // would lose the answer.
            Ok::<_, Infallible>(resp.map(|body| Answer {
                body,
                working: Some(working),
            }))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(wire), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                _ = write_stalled(stalled) => Ok(()),
            }
        }
        _ = slot.evicted() => {
            crate::log::debug(format_args!("closed a connection evicted for a new one"));
            Ok(())
        }
        _ = write_stalled(stalled.clone()) => {
            crate::log::debug(format_args!(
                "closed a connection whose client did not take its response within {}s",
                WRITE_TIMEOUT.as_secs()
            ));
            Ok(())
        }
    };
    if let Err(e) = result {
        crate::log::debug(format_args!("connection closed: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_longest_waiting_idle_connection_only() {
        let t = Arc::new(Table::default());
        let a = t.open();
        let b = t.open();
        let c = t.open();
        let working = a.slot.working();
        assert!(t.evict_one(), "b and c are idle");
        assert!(
            b.slot.evicted.load(Ordering::Relaxed),
            "b has waited longer"
        );
        assert!(!a.slot.evicted.load(Ordering::Relaxed));
        assert!(!c.slot.evicted.load(Ordering::Relaxed));
        assert!(t.evict_one(), "c is idle");
        assert!(!t.evict_one(), "a is busy, b and c already evicted");
        {
            let _body = working.reading_body();
            assert!(t.evict_one(), "a is waiting on its client's body");
        }
        drop(working);
        assert_eq!(a.slot.busy.load(Ordering::Relaxed), 0);
        drop((a, b, c));
        assert!(t.lock().is_empty());
    }
}
