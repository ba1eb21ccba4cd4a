//! The fetching thread: one current-thread runtime and one store connection for the
//! process's life, so the main thread stays free to take signals and reap children while
//! AWS is slow. Started after the signals are blocked, so it (and every thread its runtime
//! starts) inherits the mask and never takes a signal by default action.

use super::signals::Waker;
use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::refs::Ref;
use crate::store::Store;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

/// The secrets of each path and each reference's value (`start::Fetched`), or why not.
pub type Fetched = Result<crate::start::Fetched>;

pub struct Refresher {
    ask: Sender<()>,
    answers: Receiver<Fetched>,
}

impl Refresher {
    /// Start the thread; `waker` is called after each answer is ready.
    pub fn start(cfg: StoreConfig, refs: Vec<Ref>, waker: Waker) -> Result<Refresher> {
        let (ask, asks) = mpsc::channel::<()>();
        let (answer, answers) = mpsc::channel::<Fetched>();
        let rt = crate::runtime::runtime()?;
        std::thread::Builder::new()
            .name("refresh".into())
            .spawn(move || {
                let mut store: Option<Store> = None;
                while asks.recv().is_ok() {
                    let r = rt.block_on(crate::start::fetch::again(&cfg, &refs, &mut store));
                    if answer.send(r).is_err() {
                        return;
                    }
                    waker.wake();
                }
            })
            .map_err(|e| Error::io(format!("cannot start the refresh thread: {e}")))?;
        Ok(Refresher { ask, answers })
    }

    /// Ask for one fetch; the answer comes through [`Refresher::answer`].
    pub fn ask(&self) {
        let _ = self.ask.send(());
    }

    /// The answer, if it is ready.
    pub fn answer(&self) -> Option<Fetched> {
        match self.answers.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(Error::io("the refresh thread stopped"))),
        }
    }
}
