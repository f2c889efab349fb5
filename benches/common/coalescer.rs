//! The coalescer an application would write by hand, which `manager.rs` times `syncmgr`
//! against and `instructions.rs` counts it against. Its batches are held open by `hold.rs`'s
//! gate, which every bench that includes this file includes too. No criterion here.

#![allow(dead_code)] // each bench uses a different part

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use syncmgr::Outcome;

use super::hold::Holds;

/// What the baseline answers each waiter: the outcome of its key's sync.
type Waiters = Vec<mpsc::Sender<Outcome>>;

/// The coalescer an application would write by hand. A request parks an `mpsc::Sender` under
/// its key in a `Mutex<HashMap>` and, if the map was empty, wakes the worker over an `mpsc`
/// channel (one wake per batch, not per request). The worker takes the whole map, "syncs"
/// each key once (the no-op: `Succeeded`) and answers every waiter.
pub struct HandRolled {
    pending: Arc<Mutex<HashMap<String, Waiters>>>,
    wake: Option<mpsc::Sender<()>>,
    worker: Option<JoinHandle<()>>,
    batches: Arc<AtomicUsize>,
    keys: Vec<String>,
}

impl HandRolled {
    /// A coalescer of `keys` keys, `item-00`, `item-01`, ...
    pub fn new(keys: usize, holds: Holds) -> HandRolled {
        let pending: Arc<Mutex<HashMap<String, Waiters>>> = Arc::default();
        let batches = Arc::new(AtomicUsize::new(0));
        let (wake, woken) = mpsc::channel::<()>();
        let worker = {
            let (pending, batches) = (pending.clone(), batches.clone());
            thread::spawn(move || {
                for () in woken {
                    let batch = std::mem::take(
                        &mut *pending.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    if batch.is_empty() {
                        continue;
                    }
                    batches.fetch_add(1, Ordering::SeqCst);
                    holds.pass();
                    for (key, waiters) in batch {
                        let outcome = sync_noop(&key);
                        for waiter in waiters {
                            let _ = waiter.send(outcome);
                        }
                    }
                }
            })
        };
        HandRolled {
            pending,
            wake: Some(wake),
            worker: Some(worker),
            batches,
            keys: (0..keys).map(|i| format!("item-{i:02}")).collect(),
        }
    }

    pub fn request(&self, key: &str) -> mpsc::Receiver<Outcome> {
        self.request_many([key])
            .pop()
            .expect("one receiver per key")
    }

    /// The key of item `i`.
    pub fn key(&self, i: usize) -> &str {
        &self.keys[i]
    }

    /// Batches run so far.
    pub fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }

    /// Parks a waiter under each key, under one lock; wakes the worker once if the map was
    /// empty.
    pub fn request_many<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Vec<mpsc::Receiver<Outcome>> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let was_idle = pending.is_empty();
        let receivers = keys
            .into_iter()
            .map(|key| {
                let (tx, rx) = mpsc::channel();
                pending.entry(key.to_owned()).or_default().push(tx);
                rx
            })
            .collect();
        drop(pending);
        if was_idle {
            self.wake
                .as_ref()
                .expect("alive")
                .send(())
                .expect("the worker is alive");
        }
        receivers
    }
}

/// The baseline's no-op sync of one key.
fn sync_noop(key: &str) -> Outcome {
    black_box(key);
    Outcome::Succeeded
}

impl Drop for HandRolled {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(worker) = self.worker.take() {
            worker.join().expect("the worker ends cleanly");
        }
    }
}
