//! How a caller gets its one result: a [`SyncResult`] callback, a [`SyncTicket`], or both.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::command::{Command, Link, call};
use crate::engine::{RequestId, Withdrawn};
use crate::error::Error;
use crate::id::HandlerId;
use crate::result::{Outcome, RequestResult};

/// Receives the one result of a request (`ISyncMgrSyncResult`).
///
/// It runs on the manager's delivery thread, never on the scheduler thread and never while an
/// internal lock is held, after the request's [`SyncTicket`] has completed. A panic in it is
/// caught and reported as [`Notification::CallbackPanicked`](super::Notification); the
/// manager keeps working. A callback that blocks delays the callbacks of later results, not
/// their tickets.
///
/// Closures implement it:
///
/// ```
/// use syncmgr::{RequestResult, SyncResult};
/// let sink: Box<dyn SyncResult> = Box::new(|r: &RequestResult| println!("{:?}", r.status));
/// # let _ = sink;
/// ```
pub trait SyncResult: Send + 'static {
    /// Called once, with the request's aggregated result.
    fn result(self: Box<Self>, result: &RequestResult);
}

impl<F: FnOnce(&RequestResult) + Send + 'static> SyncResult for F {
    fn result(self: Box<Self>, result: &RequestResult) {
        (*self)(result)
    }
}

/// Where a request's result lands. The scheduler fills it once and then drops the matching
/// [`Completion`], which wakes every waiter: waiting is a `recv` on a channel whose sender
/// goes away, so there is no hand-written lock or condition variable here.
#[derive(Debug)]
pub(crate) struct TicketSlot {
    result: OnceLock<RequestResult>,
    done: Receiver<()>,
}

/// The write end of a [`TicketSlot`], held by the scheduler until the result is known.
#[derive(Debug)]
pub(crate) struct Completion {
    slot: Arc<TicketSlot>,
    _wake: Sender<()>,
}

impl Completion {
    /// A new slot and its write end.
    pub fn new() -> (Completion, Arc<TicketSlot>) {
        let (wake, done) = crossbeam_channel::bounded(0);
        let slot = Arc::new(TicketSlot {
            result: OnceLock::new(),
            done,
        });
        (
            Completion {
                slot: slot.clone(),
                _wake: wake,
            },
            slot,
        )
    }

    /// Stores the result and wakes the waiters (dropping `self` drops the sender).
    pub fn complete(self, result: RequestResult) {
        let _ = self.slot.result.set(result);
    }
}

/// A handle on one accepted request: wait for its result, poll it, or cancel the request.
///
/// Cloning a ticket gives another handle on the same request. Dropping every ticket does not
/// cancel the request.
#[derive(Clone, Debug)]
pub struct SyncTicket {
    request: RequestId,
    handler: HandlerId,
    slot: Arc<TicketSlot>,
    link: Link,
}

impl SyncTicket {
    pub(crate) fn new(
        request: RequestId,
        handler: HandlerId,
        slot: Arc<TicketSlot>,
        link: Link,
    ) -> SyncTicket {
        SyncTicket {
            request,
            handler,
            slot,
            link,
        }
    }

    /// The request's ID.
    pub fn request(&self) -> RequestId {
        self.request
    }

    /// The handler the request is for.
    pub fn handler(&self) -> &HandlerId {
        &self.handler
    }

    /// Blocks until the result is known and returns it.
    pub fn wait(&self) -> RequestResult {
        let _ = self.slot.done.recv();
        self.settled()
    }

    /// Blocks until the result is known or `timeout` passes.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<RequestResult> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => match self.slot.done.recv_deadline(deadline) {
                Err(RecvTimeoutError::Timeout) => None,
                _ => Some(self.settled()),
            },
            None => Some(self.wait()),
        }
    }

    /// The result, if it is known; never blocks.
    pub fn try_result(&self) -> Option<RequestResult> {
        self.slot.result.get().cloned()
    }

    /// Whether the result is known.
    pub fn is_complete(&self) -> bool {
        self.slot.result.get().is_some()
    }

    /// Withdraws this request's interest (see [`Engine::cancel_request`]): it completes now
    /// with `Canceled` for every item not yet finished, while items other requests wait for
    /// keep going. Cancelling a completed request does nothing and says so.
    ///
    /// [`Engine::cancel_request`]: crate::Engine::cancel_request
    pub fn cancel(&self) -> Result<Withdrawn, Error> {
        if self.is_complete() {
            return Ok(Withdrawn::AlreadyComplete);
        }
        call(&self.link, |reply| Command::Cancel {
            request: self.request,
            reply,
        })
    }

    /// The stored result. The scheduler stores it before it wakes anyone, and delivers every
    /// result before it stops, so an empty slot here means the manager's threads are gone
    /// without finishing (a panic inside the manager): report the request as canceled rather
    /// than panicking in the caller.
    fn settled(&self) -> RequestResult {
        self.slot
            .result
            .get()
            .cloned()
            .unwrap_or_else(|| RequestResult {
                request: self.request,
                handler: self.handler.clone(),
                status: Outcome::Canceled,
                errors: 0,
                conflicts: 0,
                items: Vec::new(),
                attempts: Vec::new(),
            })
    }
}
