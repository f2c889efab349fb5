//! Notifications: the stream of what happens, for progress UIs and logs.

use std::sync::Arc;
use std::task::Waker;

use crossbeam_channel::{Sender, TrySendError};

use super::subscription::WakerSlot;

use super::TriggerReason;
use super::events::HandlerEvent;
use crate::cause::Cause;
use crate::engine::{Disposition, RequestId, SessionId, StateChange};
use crate::error::Error;
use crate::flags::{CancelRequest, UpdateReason};
use crate::id::{HandlerId, ItemId};
use crate::progress::Progress;
use crate::result::{Outcome, RequestResult};
use crate::time::Time;

/// What changed about a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum HandlerChange {
    /// The handler was registered.
    Registered,
    /// The handler was removed.
    Removed,
    /// An activate, enable or item-enable change was applied.
    State(StateChange),
    /// `update_handler` re-read the handler.
    Updated,
    /// `update_item` re-read an item.
    ItemUpdated(ItemId, UpdateReason),
    /// `update_events`: the handler's events changed (for the item, if one is named).
    EventsUpdated(Option<ItemId>),
    /// `update_conflicts`: the handler's conflicts changed (for the item, if one is named).
    ConflictsUpdated(Option<ItemId>),
}

/// One thing that happened in the manager. Subscribe with
/// [`SyncManager::subscribe`](super::SyncManager::subscribe).
///
/// With the `serde` feature a notification is written externally tagged, as serde writes
/// enums by default: `{"SessionStarted": {"session": 3, "handler": "mail", "items":
/// ["inbox"]}}`, `{"RequestCompleted": {...the result...}}`. The enum is non-exhaustive: a
/// later version may write variants that this one refuses to read (as an unknown variant).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Notification {
    /// A start call was accepted. `items` says, per item, whether it was queued new, merged
    /// into an existing pending entry, joined a running session, or settled at once.
    RequestAccepted {
        /// The request.
        request: RequestId,
        /// Its handler.
        handler: HandlerId,
        /// Why it was made.
        reason: TriggerReason,
        /// Each item of the request with what became of it.
        items: Vec<(ItemId, Disposition)>,
    },
    /// A session started.
    SessionStarted {
        /// The session.
        session: SessionId,
        /// Its handler.
        handler: HandlerId,
        /// Its items, in order.
        items: Vec<ItemId>,
    },
    /// A handler reported progress for an item.
    ItemProgress {
        /// The session.
        session: SessionId,
        /// Its handler.
        handler: HandlerId,
        /// The item.
        item: ItemId,
        /// What the handler reported.
        progress: Progress,
    },
    /// A running session pulled a pending item in (`add_item_to_session`): the requests
    /// that waited for it take its outcome from this session.
    ItemAdded {
        /// The session.
        session: SessionId,
        /// The item.
        item: ItemId,
        /// How many requests were waiting for it.
        requests: usize,
    },
    /// A handler marked its session as started by hand (`report_manual_sync`).
    ManualSync {
        /// The session.
        session: SessionId,
        /// Its handler.
        handler: HandlerId,
    },
    /// A handler set its session-wide progress text.
    HandlerProgress {
        /// The session.
        session: SessionId,
        /// The text.
        text: String,
    },
    /// A cancel was requested for a running session or one of its items.
    CancelRequested {
        /// The session.
        session: SessionId,
        /// `CancelItem` or `CancelAll`.
        request: CancelRequest,
        /// The item, for `CancelItem`.
        item: Option<ItemId>,
    },
    /// An event was reported and kept in the event log.
    EventReported(HandlerEvent),
    /// A session ended; every item's outcome in it.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Its handler.
        handler: HandlerId,
        /// Items with the outcome of this session's attempt, in session order (final,
        /// except for the items in `retried`).
        outcomes: Vec<(ItemId, Outcome)>,
        /// Items that failed and will be tried again (each also a `RetryScheduled`).
        retried: Vec<ItemId>,
        /// Why `synchronize` failed, if it did: its error with its `source()` chain, or its
        /// panic's message.
        error: Option<Cause>,
    },
    /// A request completed with this result.
    RequestCompleted(RequestResult),
    /// A handler's state changed.
    HandlerChanged {
        /// The handler.
        handler: HandlerId,
        /// What changed.
        change: HandlerChange,
    },
    /// A state change made without `ControlFlags::WAIT` failed after it was queued.
    StateChangeFailed {
        /// The handler.
        handler: HandlerId,
        /// Why.
        error: Error,
    },
    /// A result callback panicked (the manager carried on).
    CallbackPanicked {
        /// The request whose callback it was.
        request: RequestId,
        /// The panic message.
        message: String,
    },
    /// A handler's debounced requests wait for a quiet moment: its new pending items become
    /// ready at `until` unless more requests come (or one is expedited).
    Debounced {
        /// The handler.
        handler: HandlerId,
        /// When, on the manager's clock.
        until: Time,
    },
    /// An item failed and its handler's retry policy will try it again: `attempt` of
    /// `max_attempts` failed, the next may start at `at`.
    RetryScheduled {
        /// The handler.
        handler: HandlerId,
        /// The item.
        item: ItemId,
        /// The attempt that failed (1 for the first).
        attempt: u16,
        /// Attempts allowed in all.
        max_attempts: u16,
        /// When the next attempt may start, on the manager's clock.
        at: Time,
    },
    /// The manager made a request by itself: a handler's schedule ticked, or a trigger it
    /// listens for was reported. Its result comes as `RequestCompleted`; nobody else gets it.
    RequestIssued {
        /// The request.
        request: RequestId,
        /// Its handler.
        handler: HandlerId,
        /// `Scheduled`, or the trigger.
        reason: TriggerReason,
    },
    /// A handler's schedule ticked while the request of its previous tick was still open,
    /// so it made none.
    TickSkipped {
        /// The handler.
        handler: HandlerId,
        /// The scheduled request still open.
        open: RequestId,
    },
    /// This subscriber fell behind and `missed` notifications were dropped for it.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// One subscription, as the scheduler keeps it. Its `Drop` ends the stream.
pub(crate) struct Subscriber {
    tx: Sender<Notification>,
    /// Where its task waits, if it reads from async code.
    waker: Arc<WakerSlot>,
    /// The most notifications it may have waiting.
    capacity: usize,
    missed: u64,
}

impl Drop for Subscriber {
    /// The stream ends: a task awaiting the next notification must wake to see the end.
    /// Dropped where no lock is held (the scheduler gone at shutdown, or a `Subscribe`
    /// command dropped unapplied), or in `publish` once its waker is taken, so that no waker
    /// runs under the scheduler's lock.
    fn drop(&mut self) {
        // The channel closes first, so the woken task finds the end, not an empty channel.
        let (closed, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.tx, closed));
        if let Some(waker) = self.waker.take() {
            let _ = crate::unwind::run(|| waker.wake());
        }
    }
}

impl Subscriber {
    /// A subscriber that sends on `tx` and wakes the task waiting in `waker`.
    pub fn new(tx: Sender<Notification>, waker: Arc<WakerSlot>, capacity: usize) -> Subscriber {
        Subscriber {
            tx,
            waker,
            capacity,
            missed: 0,
        }
    }

    /// Sends unless `capacity` notifications already wait. The channel itself is unbounded,
    /// so a subscriber costs memory for what waits in it, not for its whole capacity up
    /// front (a bounded channel allocates every slot when it is made).
    fn offer(&self, note: Notification) -> Offer {
        if self.tx.len() >= self.capacity {
            return Offer::Full;
        }
        match self.tx.try_send(note) {
            Ok(()) => Offer::Taken,
            Err(TrySendError::Full(_)) => Offer::Full,
            Err(TrySendError::Disconnected(_)) => Offer::Gone,
        }
    }

    /// Offers `note`, after telling the subscriber how many it missed if it missed some and
    /// has room for that now. Returns whether to keep the subscriber (it is still there).
    fn offer_with_lag(&mut self, note: &Notification) -> bool {
        let lag = (self.missed > 0).then_some(Notification::Lagged {
            missed: self.missed,
        });
        // The count first; a full channel stops there and counts the notification as missed.
        for next in lag.into_iter().chain(std::iter::once_with(|| note.clone())) {
            match self.offer(next) {
                Offer::Taken => self.missed = 0,
                Offer::Full => {
                    self.missed += 1;
                    return true;
                }
                Offer::Gone => return false,
            }
        }
        true
    }
}

/// What became of a notification offered to a subscriber.
enum Offer {
    Taken,
    Full,
    Gone,
}

/// The subscribers. Sending never blocks: a full subscriber loses notifications (and is told
/// how many with `Lagged` once it has room), a dropped one is forgotten.
#[derive(Default)]
pub(crate) struct Subscribers {
    list: Vec<Subscriber>,
}

impl Subscribers {
    pub fn add(&mut self, subscriber: Subscriber) {
        self.list.push(subscriber);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Offers a notification to every subscriber. The wakers of tasks waiting for one are
    /// added to `wakes`, to wake once the scheduler's lock is released.
    ///
    /// Each subscriber's waker is taken after the offer, never before. A task registers its
    /// waker and then reads the channel again (`Notifications::poll_recv`); taken before the
    /// offer, a waker registered in between was neither taken nor followed by a read that
    /// could see the notification, and the task slept through it (a test caught this).
    pub fn publish(&mut self, make: impl FnOnce() -> Notification, wakes: &mut Vec<Waker>) {
        if self.list.is_empty() {
            return;
        }
        let note = make();
        self.list.retain_mut(|s| {
            let keep = s.offer_with_lag(&note);
            if let Some(waker) = s.waker.take() {
                wakes.push(waker);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> Notification {
        Notification::HandlerProgress {
            session: SessionId(1),
            text: "working".into(),
        }
    }

    #[test]
    fn notifications_compare_by_value() {
        assert_eq!(note(), note());
        assert_ne!(note(), Notification::Lagged { missed: 1 });
    }

    /// What a `Subscribe` command dropped unapplied (shutdown began after `subscribe` sent
    /// it) does: the stream ends, and a task already awaiting it wakes to see the end.
    #[test]
    fn a_subscriber_dropped_unapplied_ends_its_stream_and_wakes_the_task() {
        use std::future::Future;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::task::{Context, Poll, Wake, Waker};

        use crate::manager::subscription::Notifications;

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let slot = Arc::new(WakerSlot::default());
        let subscriber = Subscriber::new(tx, slot.clone(), 1);
        let mut notes = Notifications::new(rx, slot);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut next = std::pin::pin!(notes.recv_async());
        assert!(next.as_mut().poll(&mut cx).is_pending());
        drop(subscriber);
        assert!(flag.0.load(Ordering::SeqCst), "the waiting task is woken");
        assert_eq!(next.as_mut().poll(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_full_subscriber_is_told_what_it_missed_and_a_dropped_one_is_forgotten() {
        let mut subs = Subscribers::default();
        let (tx, rx) = crossbeam_channel::unbounded();
        let (gone, gone_rx) = crossbeam_channel::unbounded();
        subs.add(Subscriber::new(tx, Arc::default(), 1));
        subs.add(Subscriber::new(gone, Arc::default(), 1));
        drop(gone_rx);
        subs.publish(note, &mut Vec::new());
        subs.publish(note, &mut Vec::new()); // full: missed
        subs.publish(note, &mut Vec::new()); // still full: missed
        assert_eq!(subs.list.len(), 1, "the dropped subscriber is gone");
        assert!(matches!(
            rx.try_recv(),
            Ok(Notification::HandlerProgress { .. })
        ));
        subs.publish(note, &mut Vec::new()); // room for the Lagged notice, not for the note
        assert!(matches!(
            rx.try_recv(),
            Ok(Notification::Lagged { missed: 2 })
        ));
        subs.publish(note, &mut Vec::new());
        assert!(matches!(
            rx.try_recv(),
            Ok(Notification::Lagged { missed: 1 })
        ));
    }
}
