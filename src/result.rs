//! What a request ends with: per-item [`Outcome`]s aggregated into one [`RequestResult`].

use crate::cause::Cause;
use crate::flags::ProgressStatus;
use crate::id::{HandlerId, ItemId, RequestId};

/// The terminal state of an item, and the aggregate status of a request.
///
/// These are the four terminal values of [`ProgressStatus`]. When several items are folded
/// into one request status the worst wins, in this order:
/// `Failed` > `Disconnected` > `Canceled` > `Succeeded`. The derived `Ord` follows it, so
/// `max` is the fold.
///
/// ```
/// use syncmgr::Outcome;
/// assert_eq!(Outcome::Succeeded.max(Outcome::Canceled), Outcome::Canceled);
/// assert_eq!(Outcome::Canceled.max(Outcome::Disconnected), Outcome::Disconnected);
/// assert_eq!(Outcome::Disconnected.max(Outcome::Failed), Outcome::Failed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Outcome {
    /// The item synced (`SYNCMGR_PS_SUCCEEDED`).
    Succeeded,
    /// The item was canceled: stopped, withdrawn, or its handler or the manager went away
    /// before it ran (`SYNCMGR_PS_CANCELED`).
    Canceled,
    /// The handler could not reach what it syncs with (`SYNCMGR_PS_DISCONNECTED`).
    Disconnected,
    /// The item failed, or its session ended without a terminal report for it
    /// (`SYNCMGR_PS_FAILED`).
    Failed,
}

impl Outcome {
    /// The outcome a terminal [`ProgressStatus`] stands for; `None` for the two updating states.
    pub fn from_status(status: ProgressStatus) -> Option<Outcome> {
        match status {
            ProgressStatus::Succeeded => Some(Outcome::Succeeded),
            ProgressStatus::Failed => Some(Outcome::Failed),
            ProgressStatus::Canceled => Some(Outcome::Canceled),
            ProgressStatus::Disconnected => Some(Outcome::Disconnected),
            ProgressStatus::Updating | ProgressStatus::UpdatingIndeterminate => None,
        }
    }

    /// Folds outcomes into a request status: the worst one, `Succeeded` when there are none.
    pub fn aggregate(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
        outcomes.into_iter().fold(Outcome::Succeeded, Outcome::max)
    }
}

impl std::fmt::Display for Outcome {
    /// `succeeded`, `canceled`, `disconnected` or `failed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Canceled => "canceled",
            Outcome::Disconnected => "disconnected",
            Outcome::Failed => "failed",
        })
    }
}

impl From<Outcome> for ProgressStatus {
    fn from(outcome: Outcome) -> ProgressStatus {
        match outcome {
            Outcome::Succeeded => ProgressStatus::Succeeded,
            Outcome::Failed => ProgressStatus::Failed,
            Outcome::Canceled => ProgressStatus::Canceled,
            Outcome::Disconnected => ProgressStatus::Disconnected,
        }
    }
}

/// What became of one item of a request: its outcome, the attempts it took and, when it
/// failed, why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ItemOutcome {
    /// The item.
    pub item: ItemId,
    /// Its outcome for the request.
    pub outcome: Outcome,
    /// How many attempts it took for this request: the sessions that ran it while the request
    /// waited (0 for an item settled without running, more than 1 when the handler's policy
    /// retried it).
    pub attempts: u16,
    /// Why it failed, for a `Failed` item: the error the handler reported for it or returned
    /// from the session, a panic's message, or what the manager saw (a session that ended
    /// without a terminal report, a report after a terminal one). `None` for the other
    /// outcomes, and for a `Failed` reported without a reason.
    pub cause: Option<Cause>,
}

impl ItemOutcome {
    /// An outcome with no cause.
    pub fn new(item: ItemId, outcome: Outcome, attempts: u16) -> ItemOutcome {
        ItemOutcome {
            item,
            outcome,
            attempts,
            cause: None,
        }
    }
}

/// Compares the item and the outcome only, so that a test can write
/// `assert_eq!(result.items, [(inbox, Outcome::Succeeded)])`.
impl PartialEq<(ItemId, Outcome)> for ItemOutcome {
    fn eq(&self, (item, outcome): &(ItemId, Outcome)) -> bool {
        self.item == *item && self.outcome == *outcome
    }
}

/// Compares the item and the outcome only (the other way round).
impl PartialEq<ItemOutcome> for (ItemId, Outcome) {
    fn eq(&self, other: &ItemOutcome) -> bool {
        other == self
    }
}

/// The one result every accepted request gets (`ISyncMgrSyncResult::Result`, plus the
/// per-item outcomes that Sync Center does not give).
///
/// With the `serde` feature it is a map of its fields: the request as its number, IDs as
/// their text, outcomes by name, and each item's `cause` as its chain of messages or `null`
/// (the crate docs' `# Features` section shows one).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RequestResult {
    /// The request this result is for.
    pub request: RequestId,
    /// The handler the request was for.
    pub handler: HandlerId,
    /// The aggregate: the worst item outcome (see [`Outcome`]); `Succeeded` for a request with
    /// no items; at least `Disconnected` for a request accepted while the handler was
    /// disconnected (it completes at once, even with no items).
    pub status: Outcome,
    /// `Error`-level events reported during the sessions that served the request, for its
    /// items or for the handler as a whole (`cError`).
    pub errors: u32,
    /// Conflicts reported the same way (`cConflicts`).
    pub conflicts: u32,
    /// Each item of the request once, in request order, with its outcome, attempts and cause.
    pub items: Vec<ItemOutcome>,
}

impl std::fmt::Display for RequestResult {
    /// One line: the request, its handler and status, the counts when not zero, and each
    /// item that did not succeed (with its attempts when more than one, and its cause).
    ///
    /// ```
    /// # use syncmgr::{Cause, HandlerId, ItemId, ItemOutcome, Outcome, RequestResult, SyncControlFlags};
    /// # use syncmgr::engine::{Engine, HandlerSpec};
    /// # let mail = HandlerId::new("mail").unwrap();
    /// # let mut engine = Engine::default();
    /// # engine.register_handler(HandlerSpec::new(mail.clone()).items([ItemId::new("x").unwrap()])).unwrap();
    /// # let request = engine.start_handler_sync(&mail, SyncControlFlags::NONE).unwrap().request;
    /// let mut sent = ItemOutcome::new(ItemId::new("sent")?, Outcome::Failed, 3);
    /// sent.cause = Some(Cause::new("timed out"));
    /// let r = RequestResult {
    ///     request, // request#1
    ///     handler: mail,
    ///     status: Outcome::Failed,
    ///     errors: 1,
    ///     conflicts: 0,
    ///     items: vec![ItemOutcome::new(ItemId::new("inbox")?, Outcome::Succeeded, 1), sent],
    /// };
    /// assert_eq!(
    ///     r.to_string(),
    ///     "request#1 mail: failed (1 error; sent failed after 3 attempts: timed out)"
    /// );
    /// # Ok::<(), syncmgr::IdError>(())
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.request, self.handler, self.status)?;
        let mut notes: Vec<String> = Vec::new();
        let plural = |n: u32, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        if self.errors > 0 {
            notes.push(plural(self.errors, "error"));
        }
        if self.conflicts > 0 {
            notes.push(plural(self.conflicts, "conflict"));
        }
        for o in &self.items {
            let mut note = match (o.outcome, o.attempts) {
                (Outcome::Succeeded, 0 | 1) => continue,
                (outcome, 0 | 1) => format!("{} {outcome}", o.item),
                (outcome, n) => format!("{} {outcome} after {n} attempts", o.item),
            };
            if let Some(cause) = &o.cause {
                note = format!("{note}: {cause:#}");
            }
            notes.push(note);
        }
        if !notes.is_empty() {
            write!(f, " ({})", notes.join("; "))?;
        }
        Ok(())
    }
}

impl RequestResult {
    /// What became of one item of the request, if the request holds it.
    pub fn item(&self, item: &ItemId) -> Option<&ItemOutcome> {
        self.items.iter().find(|o| o.item == *item)
    }

    /// The outcome of one item of the request, if the request holds it.
    pub fn outcome_of(&self, item: &ItemId) -> Option<Outcome> {
        self.item(item).map(|o| o.outcome)
    }

    /// How many attempts one item of the request took, if the request holds it.
    pub fn attempts_of(&self, item: &ItemId) -> Option<u16> {
        self.item(item).map(|o| o.attempts)
    }

    /// Why one item of the request failed, if it did and the reason is known.
    pub fn cause_of(&self, item: &ItemId) -> Option<&Cause> {
        self.item(item).and_then(|o| o.cause.as_ref())
    }

    /// The items that failed, with their causes, in request order.
    pub fn failures(&self) -> impl Iterator<Item = &ItemOutcome> {
        self.items.iter().filter(|o| o.outcome == Outcome::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_failed_disconnected_canceled_succeeded() {
        use Outcome::*;
        assert_eq!(Outcome::aggregate([]), Succeeded);
        assert_eq!(Outcome::aggregate([Succeeded, Succeeded]), Succeeded);
        assert_eq!(Outcome::aggregate([Succeeded, Canceled]), Canceled);
        assert_eq!(
            Outcome::aggregate([Canceled, Disconnected, Succeeded]),
            Disconnected
        );
        assert_eq!(Outcome::aggregate([Disconnected, Failed, Canceled]), Failed);
    }

    #[test]
    fn terminal_statuses_map_both_ways() {
        for o in [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::Canceled,
            Outcome::Disconnected,
        ] {
            assert_eq!(Outcome::from_status(o.into()), Some(o));
        }
        assert_eq!(Outcome::from_status(ProgressStatus::Updating), None);
        assert_eq!(
            Outcome::from_status(ProgressStatus::UpdatingIndeterminate),
            None
        );
    }
}
