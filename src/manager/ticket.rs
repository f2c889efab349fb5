//! How a caller gets its one result: a [`SyncResult`] callback, a [`SyncTicket`], or both.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use super::command::{Command, Link, call};
use super::spin::{self, SPIN_YIELDS};
use crate::engine::{RequestId, Withdrawn};
use crate::error::Error;
use crate::id::HandlerId;
use crate::result::{Outcome, RequestResult};
use crate::slot::{Completion, TicketSlot, Waiting};

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

impl TicketSlot {
    /// Whether the result arrives within a short wait: a spin, then yields for at most
    /// `spin::SPIN_TIME`, never past `deadline` (`spin.rs`). A result that close then costs no
    /// sleep and wake-up of the caller's thread, which on a virtual machine takes as long
    /// again; a longer wait parks on the condition variable. Measured (`benches/join.rs`, one
    /// key, one caller: 77 us per start, join and result with 4 yields, 10 to 22 us with up
    /// to 64).
    ///
    /// The yields are skipped on a thread whose recent waits were long (see [`SpinLuck`]): a
    /// thread waiting for results that come at the end of long sessions would only take the
    /// processor from the threads doing the work.
    fn spin_for_result(&self, deadline: Option<Instant>) -> bool {
        let ready = || self.is_finished();
        if spin::spin(ready) {
            return true;
        }
        if !SpinLuck::worth_yielding() {
            return false;
        }
        let spin_until = spin::spin_end();
        let until = deadline.map_or(spin_until, |d| d.min(spin_until));
        let arrived = spin::yield_until(ready, until, SPIN_YIELDS);
        // A spin the caller's deadline cut short says nothing about how long results take.
        if arrived || until == spin_until {
            SpinLuck::record(arrived);
        }
        arrived
    }
}

/// Whether yielding for a result has paid off on this thread lately: a score that a result
/// arriving while the thread yielded raises and a spin that ran out lowers. Yields are worth
/// it for a caller whose results come within microseconds (one request at a time, a join that
/// starts and finishes the work), not for one that waits out whole sessions (a stream: its
/// yields took the processor from the threads doing the work, `benches/manager.rs`). A thread
/// that stopped yielding tries again every [`SpinLuck::RETRY`] waits, so it notices when its
/// results come quickly again.
struct SpinLuck;

thread_local! {
    /// (score, waits since the last yield while the score was 0).
    static SPIN_LUCK: std::cell::Cell<(u8, u8)> = const { std::cell::Cell::new((SpinLuck::MAX, 0)) };
}

impl SpinLuck {
    const MAX: u8 = 4;
    const RETRY: u8 = 16;

    fn worth_yielding() -> bool {
        SPIN_LUCK.with(|luck| {
            let (score, skipped) = luck.get();
            if score > 0 || skipped >= Self::RETRY {
                return true;
            }
            luck.set((0, skipped + 1));
            false
        })
    }

    fn record(arrived: bool) {
        SPIN_LUCK.with(|luck| {
            let (score, _) = luck.get();
            let score = if arrived {
                score.saturating_add(1).min(Self::MAX)
            } else {
                score / 2
            };
            luck.set((score, 0));
        });
    }
}

/// A ticket before its request is accepted: the slot, its write end and the way back to the
/// scheduler, made on the caller's thread before it takes the scheduler's lock. Every start
/// and report waits for that lock, and a link cloned under it made the lock's holder wait
/// for the last thread that changed the link's count.
pub(crate) struct Blank {
    completion: Completion,
    ticket: Unfilled,
}

/// A blank ticket's read side: the slot and the way back, until the request has an ID.
pub(crate) struct Unfilled {
    slot: Arc<TicketSlot>,
    link: Link,
}

impl Blank {
    pub fn new(link: &Link) -> Blank {
        let (completion, slot) = Completion::new();
        Blank {
            completion,
            ticket: Unfilled {
                slot,
                link: link.clone(),
            },
        }
    }

    /// The write end, for the engine to keep with the request, and the ticket to fill once
    /// the request is accepted.
    pub fn split(self) -> (Completion, Unfilled) {
        (self.completion, self.ticket)
    }
}

impl Unfilled {
    /// The ticket of the accepted request.
    pub fn fill(self, request: RequestId, handler: HandlerId) -> SyncTicket {
        SyncTicket::new(request, handler, self.slot, self.link)
    }
}

/// A handle on one accepted request: wait for its result, await it, poll it, or cancel the
/// request.
///
/// In async code, `.await` the ticket (it is a [`Future`], on any executor: awaiting blocks no
/// thread). Dropping the future drops the ticket, which leaves the request running, as
/// dropping a `JoinHandle` leaves its task; [`SyncTicket::cancel`] withdraws it. `wait` and
/// `wait_timeout` block the calling thread: keep them out of async tasks.
///
/// ```
/// # use syncmgr::{ControlFlags, HandlerError, ItemId, Outcome, SyncHandler, SyncItem, SyncManager, SyncSession, SyncControlFlags, ProgressStatus};
/// # struct Mail;
/// # impl SyncHandler for Mail {
/// #     fn items(&self) -> Vec<SyncItem> { vec![SyncItem::new("inbox", "Inbox").unwrap()] }
/// #     fn synchronize(&self, items: &[ItemId], s: &SyncSession) -> Result<(), HandlerError> {
/// #         for i in items { s.report_progress(i, ProgressStatus::Succeeded)?; } Ok(())
/// #     }
/// # }
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     // A minimal executor for the example: any runtime's `block_on` does the same.
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Unpark(std::thread::Thread);
/// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v; }
/// #         std::thread::park();
/// #     }
/// # }
/// # fn main() -> Result<(), syncmgr::Error> {
/// let manager = SyncManager::new()?;
/// manager.register_handler("mail", Mail, ControlFlags::WAIT)?;
/// let ticket = manager.start_handler_sync("mail", SyncControlFlags::NONE, None)?;
/// let result = block_on(async { ticket.await });
/// assert_eq!(result.status, Outcome::Succeeded);
/// # Ok(()) }
/// ```
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

    /// Blocks until the result is known and returns a copy of it; the ticket stays usable.
    /// Should the manager's threads fail without delivering it (a bug in this crate), the
    /// ticket still completes: its result is then `Canceled`, with no items.
    ///
    /// When the ticket is not needed afterwards, [`into_result`](Self::into_result) returns
    /// the same result without copying it.
    pub fn wait(&self) -> RequestResult {
        self.settled_in(&self.finished())
    }

    /// Blocks until the result is known or `timeout` passes; a copy, as [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<RequestResult> {
        self.finished_within(timeout)
            .map(|waiting| self.settled_in(&waiting))
    }

    /// Blocks until the result is known and returns it, consuming the ticket: as a
    /// `JoinHandle`'s `join` does. When no other handle on the request is left (no clone of
    /// the ticket), the result moves out rather than being copied, which is what
    /// `ticket.await` does in async code. Otherwise, and when the manager failed, it gives
    /// what [`wait`](Self::wait) gives.
    ///
    /// ```
    /// # use syncmgr::{ControlFlags, HandlerError, ItemId, Outcome, SyncHandler, SyncItem, SyncManager, SyncSession, SyncControlFlags, ProgressStatus};
    /// # struct Mail;
    /// # impl SyncHandler for Mail {
    /// #     fn items(&self) -> Vec<SyncItem> { vec![SyncItem::new("inbox", "Inbox").unwrap()] }
    /// #     fn synchronize(&self, items: &[ItemId], s: &SyncSession) -> Result<(), HandlerError> {
    /// #         for i in items { s.report_progress(i, ProgressStatus::Succeeded)?; } Ok(())
    /// #     }
    /// # }
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// let manager = SyncManager::new()?;
    /// manager.register_handler("mail", Mail, ControlFlags::WAIT)?;
    /// let ticket = manager.start_handler_sync("mail", SyncControlFlags::NONE, None)?;
    /// let request = ticket.request();
    /// let result = ticket.into_result();
    /// assert_eq!((result.request, result.status), (request, Outcome::Succeeded));
    /// # Ok(()) }
    /// ```
    pub fn into_result(self) -> RequestResult {
        let mut waiting = self.finished();
        self.take_or_copy(&mut waiting)
    }

    /// [`into_result`](Self::into_result) with a limit: the result if it is known within
    /// `timeout`, or the ticket back, unchanged, to wait again or drop.
    pub fn into_result_timeout(self, timeout: Duration) -> Result<RequestResult, SyncTicket> {
        let result = self
            .finished_within(timeout)
            .map(|mut waiting| self.take_or_copy(&mut waiting));
        result.ok_or(self)
    }

    /// Blocks until the slot is done; its lock, taken.
    fn finished(&self) -> MutexGuard<'_, Waiting> {
        if self.slot.spin_for_result(None) {
            return self.slot.waiting();
        }
        // With no deadline the sleep ends only once the slot is done: never `None`.
        self.sleep_until_finished(None)
            .unwrap_or_else(|| self.slot.waiting())
    }

    /// Blocks until the slot is done (its lock, taken) or `timeout` passes (`None`).
    fn finished_within(&self, timeout: Duration) -> Option<MutexGuard<'_, Waiting>> {
        // A result already in costs no clock read.
        if self.is_complete() {
            return Some(self.slot.waiting());
        }
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return Some(self.finished());
        };
        if self.slot.spin_for_result(Some(deadline)) {
            return Some(self.slot.waiting());
        }
        self.sleep_until_finished(Some(deadline))
    }

    /// Sleeps on the slot's condition variable until the slot is done (`finish` notifies
    /// sleepers counted under the lock) or `deadline` passes (`None`). Returns the lock,
    /// taken, once the slot is done.
    fn sleep_until_finished(&self, deadline: Option<Instant>) -> Option<MutexGuard<'_, Waiting>> {
        let mut waiting = self.slot.waiting();
        waiting.sleepers += 1;
        while !self.slot.is_finished() {
            waiting = match deadline {
                None => self
                    .slot
                    .done
                    .wait(waiting)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        waiting.sleepers -= 1;
                        return None;
                    }
                    self.slot
                        .done
                        .wait_timeout(waiting, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        waiting.sleepers -= 1;
        Some(waiting)
    }

    /// The result, if it is known; never blocks. Once the ticket is complete it gives what
    /// [`wait`](Self::wait) gives.
    pub fn try_result(&self) -> Option<RequestResult> {
        self.is_complete()
            .then(|| self.settled_in(&self.slot.waiting()))
    }

    /// Whether the result is known: then `wait` returns at once (with `Canceled` should the
    /// manager's threads have failed, see `wait`).
    pub fn is_complete(&self) -> bool {
        self.slot.is_finished()
    }

    /// Withdraws this request's interest (see [`Engine::cancel_request`]): it completes now
    /// with `Canceled` for every item not yet finished, while items other requests wait for
    /// keep going. Cancelling a completed request does nothing and says so. Either way the
    /// ticket is complete when this returns `Ok`.
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

    /// The stored result, under the slot's lock, taken. The scheduler stores it before it
    /// wakes anyone, and delivers every result before it stops, so an empty slot here means
    /// the manager's threads are gone without finishing (a panic inside the manager): report
    /// the request as canceled rather than panicking in the caller.
    fn settled_in(&self, waiting: &Waiting) -> RequestResult {
        waiting.result.clone().unwrap_or_else(|| RequestResult {
            request: self.request,
            handler: self.handler.clone(),
            status: Outcome::Canceled,
            errors: 0,
            conflicts: 0,
            items: Vec::new(),
        })
    }

    /// The stored result of a done slot, under its lock, taken: moved out when this is the
    /// only handle left on the slot (no other ticket, and the scheduler's write end gone),
    /// since nobody can read it again; a copy otherwise. A count of one cannot grow
    /// meanwhile: only a handle can be cloned.
    fn take_or_copy(&self, waiting: &mut Waiting) -> RequestResult {
        if Arc::strong_count(&self.slot) == 1
            && let Some(result) = waiting.result.take()
        {
            return result;
        }
        self.settled_in(waiting)
    }
}

/// Awaiting the ticket itself (`ticket.await`) moves the result out of it when no other
/// handle on the request is left, and copies it otherwise; `(&ticket).await` awaits a copy
/// and keeps the ticket. Like any future, it is not polled again once it returned `Ready`:
/// a ticket whose result was moved out would then give a `Canceled` result with no items.
impl Future for SyncTicket {
    type Output = RequestResult;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<RequestResult> {
        let mut waiting = self.slot.waiting();
        // Checked under the lock `complete` takes to mark the slot done: a slot done is
        // seen here (with its result, or without one if the manager died), or this waker is
        // in the list `complete` takes.
        if self.slot.is_finished() {
            return Poll::Ready(self.take_or_copy(&mut waiting));
        }
        if !waiting.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl IntoFuture for &SyncTicket {
    type Output = RequestResult;
    type IntoFuture = SyncTicket;

    /// Awaits a clone, so the ticket stays usable: `(&ticket).await`.
    fn into_future(self) -> SyncTicket {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::SpinLuck;

    /// Runs `f` on a new thread: the score is per thread, and a new one starts fresh
    /// whatever ran before on the test harness's threads.
    fn on_fresh_thread(f: impl FnOnce() + Send + 'static) {
        if let Err(panic) = std::thread::spawn(f).join() {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn a_thread_stops_yielding_after_spins_that_ran_out_and_tries_again_later() {
        on_fresh_thread(stops_and_tries_again);
    }

    fn stops_and_tries_again() {
        assert!(SpinLuck::worth_yielding(), "a new thread yields");
        // Three spins in a row that ran out: 4 -> 2 -> 1 -> 0.
        for _ in 0..3 {
            assert!(SpinLuck::worth_yielding());
            SpinLuck::record(false);
        }
        for _ in 0..SpinLuck::RETRY {
            assert!(
                !SpinLuck::worth_yielding(),
                "no yields while the score is 0"
            );
        }
        assert!(SpinLuck::worth_yielding(), "then one try");
        SpinLuck::record(true);
        assert!(
            SpinLuck::worth_yielding(),
            "a result that came in the try: yields again"
        );
    }

    #[test]
    fn results_that_come_while_yielding_keep_the_thread_yielding() {
        on_fresh_thread(keeps_yielding);
    }

    fn keeps_yielding() {
        for _ in 0..100 {
            assert!(SpinLuck::worth_yielding());
            SpinLuck::record(true);
        }
        // A long wait now and then does not stop it.
        SpinLuck::record(false);
        assert!(SpinLuck::worth_yielding());
        SpinLuck::record(true);
        SpinLuck::record(false);
        assert!(SpinLuck::worth_yielding());
    }
}
