//! Read cache with single-flight fetches.
//!
//! - An entry is a finished `Reply` (its JSON body may hold a payload: those bodies are
//!   `Bytes` whose owner is a `Zeroizing` buffer, so the plaintext is wiped when the last
//!   holder — the cache or a response in flight — lets go).
//! - Entries live `ttl`; a sweeper drops expired ones every second, so plaintext does not
//!   outlive its TTL waiting for the next lookup.
//! - For a key that is neither fresh nor being fetched, the first request starts ONE fetch
//!   in its own task (so a client hanging up cannot cancel it half-way) and every request
//!   for that key — first included — waits for that fetch's answer.
//! - `invalidate(name)` drops the name's entries, the list, and any fetch of them still in
//!   flight: its answer still goes to the requests already waiting for it, but is not
//!   cached, and later requests start a fresh fetch.
//! - With `ttl` zero nothing is kept; concurrent requests still share one fetch.

use super::reply::Reply;
use hyper::StatusCode;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Distinct keys the cache holds at most (names × serials asked for, plus the list). Past
/// it, answers are served but not kept.
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `GET /latest/secrets`
    List,
    /// `GET /latest/secrets/{name}[/{serial}]`
    Secret(String, Option<u64>),
}

impl Key {
    fn is_about(&self, name: &str) -> bool {
        match self {
            Key::List => true,
            Key::Secret(n, _) => n == name,
        }
    }
}

enum Slot {
    Ready {
        reply: Reply,
        expires: Instant,
    },
    Pending {
        id: u64,
        rx: watch::Receiver<Option<Reply>>,
    },
}

struct Inner {
    ttl: Duration,
    map: Mutex<(HashMap<Key, Slot>, u64)>,
    /// Tests move the cache's clock forward (tokio's paused clock needs a feature the
    /// release build does not have).
    #[cfg(test)]
    skew: Mutex<Duration>,
}

#[derive(Clone)]
pub struct Cache(Arc<Inner>);

/// Whether an answer may be kept: the secret (200) and a revoked serial (410: revocation
/// is permanent). Errors are never cached.
fn cacheable(r: &Reply) -> bool {
    r.status == StatusCode::OK || r.status == StatusCode::GONE
}

impl Cache {
    pub fn new(ttl: Duration) -> Cache {
        Cache(Arc::new(Inner {
            ttl,
            map: Mutex::new((HashMap::new(), 0)),
            #[cfg(test)]
            skew: Mutex::new(Duration::ZERO),
        }))
    }

    #[cfg(not(test))]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[cfg(test)]
    fn now(&self) -> Instant {
        Instant::now() + *self.0.skew.lock().unwrap()
    }

    #[cfg(test)]
    fn advance(&self, d: Duration) {
        *self.0.skew.lock().unwrap() += d;
    }

    fn lock(&self) -> MutexGuard<'_, (HashMap<Key, Slot>, u64)> {
        // Nothing holding the lock can panic half-way through an update that matters.
        self.0.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop expired entries every second (until the runtime stops).
    pub fn spawn_sweeper(&self) {
        if self.0.ttl.is_zero() {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => Cache(inner).sweep(),
                    None => return,
                }
            }
        });
    }

    pub fn sweep(&self) {
        let now = self.now();
        self.lock().0.retain(|_, s| match s {
            Slot::Ready { expires, .. } => *expires > now,
            Slot::Pending { .. } => true,
        });
    }

    /// The cached answer for `key`, or the answer of the one fetch for it.
    pub async fn get<F, Fut>(&self, key: &Key, fetch: F) -> Reply
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let mut rx = {
            let mut guard = self.lock();
            let (map, next_id) = &mut *guard;
            match map.get(key) {
                Some(Slot::Ready { reply, expires }) if *expires > self.now() => {
                    return reply.clone()
                }
                Some(Slot::Pending { rx, .. }) => rx.clone(),
                _ => {
                    *next_id += 1;
                    let id = *next_id;
                    let (tx, rx) = watch::channel(None);
                    // Replacing an expired entry drops (and wipes) it here.
                    map.insert(key.clone(), Slot::Pending { id, rx: rx.clone() });
                    let done = Done {
                        cache: self.clone(),
                        key: key.clone(),
                        id,
                        completed: false,
                    };
                    let fut = fetch();
                    tokio::spawn(async move {
                        let reply = fut.await;
                        done.complete(&reply);
                        let _ = tx.send(Some(reply));
                    });
                    rx
                }
            }
        };
        let answer = match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone(),
            Err(_) => None,
        };
        // None: the fetch task died without answering (a panic). Say so, do not hang.
        answer.unwrap_or_else(|| {
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the fetch did not complete",
            )
        })
    }

    /// Forget `name` (every serial of it) and the list, including fetches in flight.
    pub fn invalidate(&self, name: &str) {
        self.lock().0.retain(|k, _| !k.is_about(name));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().0.len()
    }
}

/// The fetch task's claim on its pending slot. Completing (or dying) resolves the slot
/// only if it is still this fetch's: an invalidation in between means the answer may be
/// stale and must not be kept.
struct Done {
    cache: Cache,
    key: Key,
    id: u64,
    completed: bool,
}

impl Done {
    fn complete(mut self, reply: &Reply) {
        self.completed = true;
        let keep = cacheable(reply) && !self.cache.0.ttl.is_zero();
        let mut guard = self.cache.lock();
        let map = &mut guard.0;
        if !matches!(map.get(&self.key), Some(Slot::Pending { id, .. }) if *id == self.id) {
            return;
        }
        if keep && map.len() <= MAX_ENTRIES {
            let expires = self.cache.now() + self.cache.0.ttl;
            map.insert(
                self.key.clone(),
                Slot::Ready {
                    reply: reply.clone(),
                    expires,
                },
            );
        } else {
            map.remove(&self.key);
        }
    }
}

impl Drop for Done {
    /// When the task died before `complete` (a panic): free the slot so the next request
    /// fetches again instead of waiting forever.
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        let mut guard = self.cache.lock();
        if matches!(guard.0.get(&self.key), Some(Slot::Pending { id, .. }) if *id == self.id) {
            guard.0.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn fetcher(
        calls: &Arc<AtomicUsize>,
        status: StatusCode,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Reply> + Send>> {
        let calls = calls.clone();
        move || {
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Reply::new(status, format!("{n}"))
            })
        }
    }

    fn key() -> Key {
        Key::Secret("A".into(), None)
    }

    #[test]
    fn concurrent_misses_share_one_fetch_and_hits_expire() {
        rt().block_on(async {
            let cache = Cache::new(Duration::from_secs(5));
            let calls = Arc::new(AtomicUsize::new(0));
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..20 {
                let (c, calls) = (cache.clone(), calls.clone());
                set.spawn(async move { c.get(&key(), fetcher(&calls, StatusCode::OK)).await });
            }
            while let Some(r) = set.join_next().await {
                assert_eq!(&r.unwrap().body[..], b"1");
            }
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            // Fresh: served from the cache.
            cache.advance(Duration::from_secs(4));
            let r = cache.get(&key(), fetcher(&calls, StatusCode::OK)).await;
            assert_eq!((&r.body[..], calls.load(Ordering::SeqCst)), (&b"1"[..], 1));
            // Expired: fetched again, and the sweeper's work drops it.
            cache.advance(Duration::from_secs(2));
            let r = cache.get(&key(), fetcher(&calls, StatusCode::OK)).await;
            assert_eq!(&r.body[..], b"2");
            cache.advance(Duration::from_secs(6));
            cache.sweep();
            assert_eq!(cache.len(), 0);
        });
    }

    #[test]
    fn errors_are_not_kept_and_invalidation_discards_fetches_in_flight() {
        rt().block_on(async {
            let cache = Cache::new(Duration::from_secs(60));
            let calls = Arc::new(AtomicUsize::new(0));
            cache
                .get(&key(), fetcher(&calls, StatusCode::BAD_GATEWAY))
                .await;
            assert_eq!(cache.len(), 0);
            // A fetch in flight when the name is invalidated: its answer reaches its
            // waiter but is not cached.
            let c = cache.clone();
            let calls2 = calls.clone();
            let waiter =
                tokio::spawn(async move { c.get(&key(), fetcher(&calls2, StatusCode::OK)).await });
            tokio::time::sleep(Duration::from_millis(10)).await;
            cache.invalidate("A");
            assert_eq!(&waiter.await.unwrap().body[..], b"2");
            assert_eq!(cache.len(), 0);
            let r = cache.get(&key(), fetcher(&calls, StatusCode::OK)).await;
            assert_eq!(&r.body[..], b"3");
            // Invalidating B leaves A, but drops the list.
            cache.get(&Key::List, fetcher(&calls, StatusCode::OK)).await;
            assert_eq!(cache.len(), 2);
            cache.invalidate("B");
            assert_eq!(cache.len(), 1);
        });
    }

    #[test]
    fn ttl_zero_keeps_nothing() {
        rt().block_on(async {
            let cache = Cache::new(Duration::ZERO);
            let calls = Arc::new(AtomicUsize::new(0));
            cache.get(&key(), fetcher(&calls, StatusCode::OK)).await;
            cache.get(&key(), fetcher(&calls, StatusCode::OK)).await;
            assert_eq!(calls.load(Ordering::SeqCst), 2);
            assert_eq!(cache.len(), 0);
        });
    }
}
