//! A request's result slot: the one allocation its result is written into and its callers
//! read. The manager makes it with the ticket, before it takes the scheduler's lock; the
//! engine keeps its write end ([`Completion`]) with the open request, never calling it, and
//! hands it back beside the request's result, so that the manager needs no record of its own
//! for most requests (`benches/README.md`, twenty-second session: 6 to 10% off a stream of
//! requests from two threads or in bunches).
//! The ticket's waiting, polling and reading are in `manager/ticket.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use smallvec::SmallVec;

use crate::result::RequestResult;
use crate::unwind;

/// Where a request's result lands. The scheduler stores it once, then marks the slot done
/// and wakes its waiters: threads blocked in `wait` through the condition variable, tasks
/// awaiting the ticket through their `Waker`s, which the completing thread calls once it has
/// released the scheduler's lock (a waker is the executor's code, and may call the manager).
/// One allocation per request; a crossbeam channel here cost three.
#[derive(Debug)]
pub(crate) struct TicketSlot {
    /// Whether the slot is done (a result stored, or the scheduler gone without one). Set
    /// under `waiting`'s lock, after the result: read there it orders a poll's
    /// check-then-register and a waiter's check-then-sleep against `finish`'s
    /// mark-then-take, so no wake is lost; read without the lock (a waiter's spin,
    /// `is_complete`) it is a hint that the lock then confirms.
    finished: AtomicBool,
    /// The result and who waits. One lock for both: storing the result costs the lock that
    /// marking the slot done takes anyway (a `OnceLock` beside it cost a second
    /// synchronisation per request).
    waiting: Mutex<Waiting>,
    pub(crate) done: Condvar,
}

/// The tasks awaiting one ticket.
pub(crate) type Wakers = SmallVec<[Waker; 1]>;

/// What a slot holds under its lock.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    /// Never taken out: every read of the ticket gets its own copy.
    pub(crate) result: Option<RequestResult>,
    /// Inline for one: a ticket is nearly always awaited by one task, and a heap list here
    /// was an allocation per awaited ticket.
    pub(crate) wakers: Wakers,
    /// Threads blocked on the condition variable: `finish` notifies only when there are
    /// some (a notify is a system call even with nobody waiting).
    pub(crate) sleepers: u32,
}

impl TicketSlot {
    pub(crate) fn waiting(&self) -> MutexGuard<'_, Waiting> {
        // Nothing runs under this lock but flag writes, moves, and copies of the result and of
        // wakers (this crate's data and the executor's `Waker::clone`): a panic there is an
        // allocation failure, and the state it leaves is still whole.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the slot is done: its result stored, or the manager gone without one.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Stores the result (if there is one), marks the slot done and takes the tasks to
    /// wake. Returns whether threads sleep on the condition variable: they wake on
    /// [`TicketSlot::notify`].
    fn finish(&self, result: Option<RequestResult>) -> (Wakers, bool) {
        let mut waiting = self.waiting();
        // `None` only from a completion dropped unfinished: nothing was stored before.
        waiting.result = result;
        self.finished.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut waiting.wakers);
        (wakers, waiting.sleepers > 0)
    }

    /// Wakes the threads blocked in `wait`. A sleeper registered before `finish` marked the
    /// slot done, under the same lock, so this may come any time after `finish`.
    pub fn notify(&self) {
        self.done.notify_all();
    }
}

/// What completing a ticket leaves to do: a wake-up is a system call (the sleeping threads)
/// or the executor's code (the wakers). Wakers are called once the scheduler's lock is
/// released, never under it; sleeping threads too, unless more of the step's results follow
/// this one (`Scheduler::complete_ticket`; a session's end delivers many): then one system call
/// under the lock lets the thread take its result while the others go out.
#[must_use = "the waiters must be woken"]
pub(crate) struct Woken {
    pub wakers: Wakers,
    /// The slot whose sleeping threads to notify, if any sleep.
    pub sleepers: Option<Arc<TicketSlot>>,
}

/// The write end of a [`TicketSlot`], kept with the open request in the engine's record until
/// the result is known, then written by the scheduler.
#[derive(Debug)]
pub(crate) struct Completion {
    slot: Arc<TicketSlot>,
}

impl Completion {
    /// A new slot and its write end. A start call makes it before it takes the scheduler's
    /// lock, which every start and report waits for.
    pub fn new() -> (Completion, Arc<TicketSlot>) {
        let slot = Arc::new(TicketSlot {
            finished: AtomicBool::new(false),
            waiting: Mutex::new(Waiting::default()),
            done: Condvar::new(),
        });
        (Completion { slot: slot.clone() }, slot)
    }

    /// Stores the result and marks the slot done. Returns who waits for it, for the caller
    /// to wake (see [`Woken`]: the tasks once it has released the scheduler's lock).
    pub fn complete(self, result: RequestResult) -> Woken {
        let (wakers, sleepers) = self.slot.finish(Some(result));
        Woken {
            wakers,
            sleepers: sleepers.then(|| self.slot.clone()),
        }
    }
}

impl Drop for Completion {
    /// A completion dropped without a result (the manager's threads died): its waiters must
    /// still wake, to find the slot empty (see `SyncTicket::settled`).
    fn drop(&mut self) {
        if !self.slot.is_finished() {
            let (wakers, sleepers) = self.slot.finish(None);
            if sleepers {
                self.slot.notify();
            }
            for waker in wakers {
                let _ = unwind::run(|| waker.wake());
            }
        }
    }
}
