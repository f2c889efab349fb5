//! A value handed from one thread to one task: what [`ShutdownFuture`] waits on.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::ShutdownReport;
use super::lifecycle::Shared;
use crate::unwind;

/// One value, set once by a thread and taken once by the task awaiting it.
struct Oneshot<T> {
    state: Mutex<(Option<T>, Option<Waker>)>,
}

impl<T> Oneshot<T> {
    fn state(&self) -> MutexGuard<'_, (Option<T>, Option<Waker>)> {
        // Only stores and takes run under this lock: it is never poisoned.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the value and wakes the task, outside the lock.
    fn set(&self, value: T) {
        let waker = {
            let mut state = self.state();
            state.0 = Some(value);
            state.1.take()
        };
        if let Some(waker) = waker {
            let _ = unwind::run(|| waker.wake());
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state();
        match state.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A shutdown running on a thread of its own, to await from async code: see
/// [`SyncManager::shutdown_async`](super::SyncManager::shutdown_async). Dropping it leaves
/// the shutdown running.
#[must_use = "a shutdown future does nothing to the caller unless awaited; the shutdown runs anyway"]
pub struct ShutdownFuture {
    slot: Arc<Oneshot<ShutdownReport>>,
}

impl std::fmt::Debug for ShutdownFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShutdownFuture")
    }
}

impl ShutdownFuture {
    /// Runs the manager's shutdown on a new thread; the future completes with its report. If
    /// no thread can be started, the shutdown runs here, on the caller's thread.
    pub(super) fn start(shared: Arc<Shared>) -> ShutdownFuture {
        let slot = Arc::new(Oneshot {
            state: Mutex::new((None, None)),
        });
        let (done, stopping) = (slot.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("syncmgr-shutdown".into())
            .spawn(move || done.set(stopping.shutdown()));
        if spawned.is_err() {
            slot.set(shared.shutdown());
        }
        ShutdownFuture { slot }
    }
}

impl Future for ShutdownFuture {
    type Output = ShutdownReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ShutdownReport> {
        self.slot.poll(cx)
    }
}
