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

use super::wire::now_ms;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

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
