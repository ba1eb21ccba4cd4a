//! One connection's life, and the table of open connections.
//!
//! Every moment a connection is open, either we are working on one of its requests (the
//! handler runs: routing, the cache, AWS, bounded by `--timeout`), or we are waiting on the
//! client: for a request head (`server::HEADER_TIMEOUT`, which also bounds an idle
//! keep-alive), a request body (`routes::BODY_TIMEOUT`), or for it to take a response
//! (`WRITE_TIMEOUT`, watched through `wire.rs`). Each wait is bounded, so no connection
//! lives long without progress.
//!
//! The head and write bounds are per-connection deadlines that one watchdog per connection
//! looks at every `WATCH_EVERY`, not timers armed per request: hyper's own
//! `header_read_timeout` boxes and registers a timer for every request head (what that
//! cost: docs/benchmarks.md). A bound is thus enforced between its value and half a second
//! later.
//!
//! Bounds alone still let 256 clients that never read hold every slot for as long as the
//! bound, again and again. So a connection waiting on its client is also **evictable**:
//! when every slot is taken, a new connection closes the one that has waited on its client
//! the longest. Only connections whose requests we are working on are never evicted.

use super::routes::{self, State};
use super::server::HEADER_TIMEOUT;
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
    /// `now_ms()` since the connection started waiting for a request head (opened, or its
    /// last answer taken); 0 while a request is worked on or its body read (which
    /// `routes::BODY_TIMEOUT` bounds).
    head_since: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
}

impl Slot {
    fn start_waiting(&self) {
        self.waiting_since.store(tick(), Ordering::Relaxed);
    }

    /// A request reached the handler.
    pub fn working(self: &Arc<Self>) -> Working {
        self.head_since.store(0, Ordering::Relaxed);
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
        self.0.head_since.store(now_ms(), Ordering::Relaxed);
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
            head_since: AtomicU64::new(now_ms()),
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

/// What the watchdog saw.
enum Stalled {
    /// The write in progress (`Wire::write_stalled_since`) waited on the client for
    /// `WRITE_TIMEOUT`.
    Write,
    /// No complete request head within `HEADER_TIMEOUT` of waiting for one.
    Head,
}

impl Stalled {
    fn message(&self) -> String {
        match self {
            Stalled::Write => format!(
                "closed a connection whose client did not take its response within {}s",
                WRITE_TIMEOUT.as_secs()
            ),
            Stalled::Head => format!(
                "closed a connection that sent no complete request head within {}s",
                HEADER_TIMEOUT.as_secs()
            ),
        }
    }
}

/// Resolves once the connection has stalled past one of its bounds: one interval timer per
/// connection, looked at every `WATCH_EVERY`, instead of a timer armed per request.
async fn stalled(write_since: &AtomicU64, slot: &Slot) -> Stalled {
    let write_limit = WRITE_TIMEOUT.as_millis() as u64;
    let head_limit = HEADER_TIMEOUT.as_millis() as u64;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + WATCH_EVERY, WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        let w = write_since.load(Ordering::Relaxed);
        if w != 0 && now.saturating_sub(w) >= write_limit {
            return Stalled::Write;
        }
        let h = slot.head_since.load(Ordering::Relaxed);
        if h != 0 && now.saturating_sub(h) >= head_limit {
            return Stalled::Head;
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

/// One connection, until it ends, is evicted, or stalls past a bound (`stalled`).
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
    let write_since = wire.write_stalled_since();
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
    let watch = stalled(&write_since, slot);
    tokio::pin!(watch);
    let why = tokio::select! {
        r = conn.as_mut() => Err(r),
        _ = slot.evicted() => Ok("closed a connection evicted for a new one".to_string()),
        why = watch.as_mut() => Ok(why.message()),
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => Err(r),
                why = watch.as_mut() => Ok(why.message()),
            }
        }
    };
    match why {
        Ok(why) => crate::log::debug(format_args!("{why}")),
        Err(Err(e)) => crate::log::debug(format_args!("connection closed: {e}")),
        Err(Ok(())) => {}
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

    #[test]
    fn the_head_deadline_runs_only_while_waiting_for_a_head() {
        let t = Arc::new(Table::default());
        let a = t.open();
        let head = |e: &Entry| e.slot.head_since.load(Ordering::Relaxed);
        assert_ne!(head(&a), 0, "a new connection waits for its first head");
        let working = a.slot.working();
        assert_eq!(head(&a), 0, "no deadline while its request is worked on");
        {
            let _body = working.reading_body();
            assert_eq!(head(&a), 0, "its body has a bound of its own");
        }
        drop(working);
        assert_ne!(head(&a), 0, "answered: waiting for the next head");
    }
}
