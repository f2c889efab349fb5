//! What a request ends with: per-item [`Outcome`]s aggregated into one [`RequestResult`].

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

/// The one result every accepted request gets (`ISyncMgrSyncResult::Result`, plus the
/// per-item outcomes that Sync Center does not give).
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Each item of the request once, in request order, with its outcome.
    pub items: Vec<(ItemId, Outcome)>,
    /// How many attempts each item took for this request, in the order of `items`: the
    /// sessions that ran it while the request waited (0 for an item settled without running,
    /// more than 1 when the handler's policy retried it).
    pub attempts: Vec<u16>,
}

impl std::fmt::Display for RequestResult {
    /// One line: the request, its handler and status, the counts when not zero, and each
    /// item that did not succeed (with its attempts when more than one).
    ///
    /// ```
    /// # use syncmgr::{HandlerId, ItemId, Outcome, RequestResult, SyncControlFlags};
    /// # use syncmgr::engine::{Engine, HandlerSpec};
    /// # let mail = HandlerId::new("mail").unwrap();
    /// # let mut engine = Engine::default();
    /// # engine.register_handler(HandlerSpec::new(mail.clone()).items([ItemId::new("x").unwrap()])).unwrap();
    /// # let request = engine.start_handler_sync(&mail, SyncControlFlags::NONE).unwrap().request;
    /// let r = RequestResult {
    ///     request, // request#1
    ///     handler: mail,
    ///     status: Outcome::Failed,
    ///     errors: 1,
    ///     conflicts: 0,
    ///     items: vec![(ItemId::new("inbox")?, Outcome::Succeeded), (ItemId::new("sent")?, Outcome::Failed)],
    ///     attempts: vec![1, 3],
    /// };
    /// assert_eq!(r.to_string(), "request#1 mail: failed (1 error; sent failed after 3 attempts)");
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
        for (at, (item, outcome)) in self.items.iter().enumerate() {
            let attempts = self.attempts.get(at).copied().unwrap_or(0);
            match (outcome, attempts) {
                (Outcome::Succeeded, 0 | 1) => {}
                (o, 0 | 1) => notes.push(format!("{item} {o}")),
                (o, n) => notes.push(format!("{item} {o} after {n} attempts")),
            }
        }
        if !notes.is_empty() {
            write!(f, " ({})", notes.join("; "))?;
        }
        Ok(())
    }
}

impl RequestResult {
    /// The outcome of one item of the request, if the request holds it.
    pub fn outcome_of(&self, item: &ItemId) -> Option<Outcome> {
        self.items.iter().find(|(i, _)| i == item).map(|&(_, o)| o)
    }

    /// How many attempts one item of the request took, if the request holds it.
    pub fn attempts_of(&self, item: &ItemId) -> Option<u16> {
        let at = self.items.iter().position(|(i, _)| i == item)?;
        Some(self.attempts.get(at).copied().unwrap_or(0))
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
