//! The engine's outputs: the `#[must_use]` values that name what a transition did, and the
//! [`Action`]s it asks the shell to carry out.

use smallvec::SmallVec;

use super::{Engine, MergeKey, RequestId, SessionEnd, SessionId};
use crate::flags::CancelRequest;
use crate::id::{HandlerId, ItemId};
use crate::policy::TriggerReason;
use crate::result::{Outcome, RequestResult};
use crate::time::Time;

/// What became of one item of an accepted request: it joined a running session, merged into
/// a pending entry, was queued anew, or was settled at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Disposition {
    /// The item was not pending: a new entry was added to the handler's pending set.
    Queued,
    /// The item was already pending: the request waits on the existing entry (dedup).
    Merged,
    /// The request had `IGNORE_IF_ALREADY_SYNCING` and the item was syncing in this session:
    /// the request takes the item's outcome from it.
    Joined(SessionId),
    /// The item was settled at once with this outcome (the handler was disconnected).
    Settled(Outcome),
}

/// What an accepted start call did (it is `#[must_use]` because the manager reports exactly
/// this in its notifications).
#[must_use = "an accepted request says how its items were queued, merged or joined"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The new request's ID; its result arrives later as [`Action::Deliver`].
    pub request: RequestId,
    /// The handler it is for.
    pub handler: HandlerId,
    // Inline for small requests: the merge hot path allocates nothing for them.
    pub(crate) dispositions: SmallVec<[Disposition; 8]>,
    /// How many names in the input were repeats of an earlier one and so counted once.
    pub duplicates: usize,
    /// Whether the request already completed (its result is in the action queue): a
    /// disconnected handler, or a handler sync with no enabled items.
    pub completed: bool,
}

impl Accepted {
    /// One disposition per item of the request, in request order (see
    /// [`Engine::request_items`](super::Engine::request_items)): duplicates in the input are
    /// counted once, so this can be shorter than what was asked for.
    pub fn dispositions(&self) -> &[Disposition] {
        &self.dispositions
    }

    /// Each item of the request with its disposition, in request order, named through the
    /// engine that accepted it: ask while the request is open (right after the start call,
    /// as the manager does). `None` once it completed, or for an engine that did not accept
    /// it. A request that [`completed`](Self::completed) as it was accepted has its result
    /// next in the action queue ([`Action::Deliver`]), whose items are in the same order.
    /// (The names are read from the engine, not kept here, so that the merge path copies no
    /// ID: `benches/README.md`, instructions per item.)
    ///
    /// ```
    /// use syncmgr::engine::{Disposition, Engine, HandlerSpec};
    /// use syncmgr::{HandlerId, ItemId, SyncControlFlags};
    ///
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// let mail = HandlerId::new("mail")?;
    /// let (inbox, sent) = (ItemId::new("inbox")?, ItemId::new("sent")?);
    /// let mut engine = Engine::default();
    /// engine.register_handler(HandlerSpec::new(mail.clone()).items([inbox.clone(), sent.clone()]))?;
    /// let none = SyncControlFlags::NONE;
    /// let _ = engine.start_item_sync(&mail, &[inbox.clone()], none)?; // a session starts
    /// let second = engine.start_item_sync(&mail, &[sent.clone(), inbox.clone(), sent.clone()], none)?;
    /// assert_eq!(second.duplicates, 1);
    /// assert_eq!(
    ///     second.items(&engine),
    ///     Some(vec![(sent.clone(), Disposition::Queued), (inbox, Disposition::Queued)])
    /// );
    /// let third = engine.start_item_sync(&mail, &[sent.clone()], none)?;
    /// assert_eq!(third.items(&engine), Some(vec![(sent, Disposition::Merged)]));
    /// # Ok(()) }
    /// ```
    pub fn items(&self, engine: &Engine) -> Option<Vec<(ItemId, Disposition)>> {
        let req = engine.requests.get(&self.request)?;
        let h = engine.handlers.get(&req.handler_key)?;
        if h.id != self.handler || req.items.len() != self.dispositions.len() {
            return None;
        }
        let ids = req.items.iter().map(|ri| h.slot(ri.item).id.clone());
        Some(ids.zip(self.dispositions.iter().copied()).collect())
    }

    /// How many items got a new pending entry.
    pub fn queued_new(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Queued))
    }

    /// How many items merged into an existing pending entry.
    pub fn merged(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Merged))
    }

    /// How many items joined a running session.
    pub fn joined(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Joined(_)))
    }

    fn count(&self, f: impl Fn(&Disposition) -> bool) -> usize {
        self.dispositions.iter().filter(|d| f(d)).count()
    }
}

/// Something the shell must do, produced by a transition and taken with
/// [`Engine::next_action`](super::Engine::next_action). Actions come out in the order they
/// were decided.
///
/// Without a time policy only the first three kinds occur. The others report the timing
/// decisions, for the shell's notifications and logs; none asks the shell to do anything.
#[must_use = "an action is a decision the shell must carry out"]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Run `synchronize` for these items of this handler, in this order, as this session.
    StartSession {
        /// The new session.
        session: SessionId,
        /// Its handler.
        handler: HandlerId,
        /// The items, in first-requested order.
        items: Vec<ItemId>,
        /// The merge key of the requests it serves: a legacy session's cookie.
        key: MergeKey,
    },
    /// Tell a running session that a cancel was requested: the handler will see it through
    /// `report_progress` and `can_continue`, which the engine already answers accordingly.
    Cancel {
        /// The session.
        session: SessionId,
        /// `CancelItem` for one item, `CancelAll` for the whole session.
        request: CancelRequest,
        /// The item, for `CancelItem`.
        item: Option<ItemId>,
    },
    /// Hand this result to the request's caller. Each accepted request gets exactly one.
    Deliver(RequestResult),
    /// The handler's debounced items wait for a quiet moment: they become ready at `until`
    /// unless more requests come (or one is expedited).
    Debounced {
        /// The handler.
        handler: HandlerId,
        /// When its debounced items become ready.
        until: Time,
    },
    /// An item failed and will be tried again; the requests waiting for it keep waiting.
    RetryScheduled {
        /// The handler.
        handler: HandlerId,
        /// The item.
        item: ItemId,
        /// The attempt that failed (1 for the first).
        attempt: u16,
        /// Attempts allowed in all.
        max_attempts: u16,
        /// When the next attempt may start.
        at: Time,
    },
    /// The engine made a request by itself (a schedule's tick or a reported trigger). Its
    /// result comes later as [`Action::Deliver`], with no caller to hand it to.
    Issued {
        /// The new request.
        request: RequestId,
        /// Its handler.
        handler: HandlerId,
        /// Why: `Scheduled`, or the trigger.
        reason: TriggerReason,
    },
    /// A schedule's tick found the request of the previous tick still open, and issued
    /// nothing.
    TickSkipped {
        /// The handler.
        handler: HandlerId,
        /// The scheduled request still open.
        open: RequestId,
    },
}

/// What a state change did.
#[must_use = "a state change says whether anything changed and what it canceled"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Whether the state differs from before the call.
    pub changed: bool,
    /// How many pending entries the change removed (their waiting requests record
    /// `Canceled` for those items).
    pub canceled_pending: usize,
}

/// What a stop did.
#[must_use = "a stop says what it removed from the queue and what it asked to cancel"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Pending entries removed (their requests record `Canceled` for them).
    pub canceled_pending: usize,
    /// Cancel requests sent to running sessions (each is also an [`Action::Cancel`]).
    pub cancel_requests: usize,
}

/// What cancelling one request did.
#[must_use = "a cancel says whether the request was still open"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdrawn {
    /// The request was open: it now completes with `Canceled` for every unfinished item.
    Withdrawn,
    /// The request had already completed; nothing changed.
    AlreadyComplete,
}

/// What ending a session decided.
#[must_use = "a finished session says each item's final outcome"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnded {
    /// The session.
    pub session: SessionId,
    /// Its handler.
    pub handler: HandlerId,
    /// Every item of the session with the outcome of this session's attempt, in session
    /// order. For most items that is final; items in `retried` are `Failed` here and go on.
    pub outcomes: Vec<(ItemId, Outcome)>,
    /// Items that failed and will be tried again (each also an [`Action::RetryScheduled`]),
    /// in session order.
    pub retried: Vec<ItemId>,
    /// How the shell said the session ended. Outcomes are settled the same way either way;
    /// it is carried through for the shell's notifications and logs.
    pub end: SessionEnd,
}

/// What a running handler sees of its pending set (`query_for_additional_items`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdditionalItems {
    /// Pending items that this session could take with `add_item_to_session`, oldest first
    /// (items held by another running session are left out).
    pub items: Vec<ItemId>,
    /// The requests waiting on those items, each once, oldest first. The shell maps them to
    /// the context values the callers passed.
    pub requests: Vec<RequestId>,
}

/// What a progress report did.
#[must_use = "a progress report returns the cancel request the handler must honour"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressAck {
    /// The cancel request pending for the item or session (`SYNCMGR_CR_*`).
    pub cancel: CancelRequest,
    /// Whether this report moved the item to a terminal state.
    pub terminal: bool,
}
