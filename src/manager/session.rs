//! The handler's side of a session: [`SyncSession`], the Rust form of `ISyncMgrSyncCallback`.

use std::sync::Arc;

use uuid::Uuid;

use super::cell::oneshot;
use super::command::{Command, Link, Reply, Report, SessionCall, call_here};
use super::events::EventReport;
use super::scheduler::Scheduler;
use super::{Context, SyncItem, TriggerReason};
use crate::engine::{MergeKey, RequestId, SessionId};
use crate::error::Error;
use crate::flags::{CancelRequest, ProgressStatus};
use crate::id::{HandlerId, ItemId};
use crate::progress::Progress;
use crate::unwind;

/// A request a session serves, as the handler sees it.
#[derive(Clone)]
pub struct ServedRequest {
    /// The request.
    pub request: RequestId,
    /// The context value its caller passed, if any.
    pub context: Option<Context>,
    /// Why it was made.
    pub reason: TriggerReason,
}

impl std::fmt::Debug for ServedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedRequest")
            .field("request", &self.request)
            .field("context", &self.context.is_some())
            .field("reason", &self.reason)
            .finish()
    }
}

/// What a running handler sees of its pending set
/// ([`SyncSession::query_for_additional_items`]).
#[derive(Clone, Debug, Default)]
pub struct PendingItems {
    /// Pending items this session could take with [`SyncSession::add_item_to_session`],
    /// oldest first.
    pub items: Vec<ItemId>,
    /// The requests waiting on them, oldest first.
    pub requests: Vec<ServedRequest>,
}

/// The handle a handler reports through while it synchronizes (`ISyncMgrSyncCallback`).
///
/// It is cheap to clone (a few reference counts, whatever the session serves) and may be used
/// from any thread, also threads the handler starts
/// itself. Every call is applied by the manager's scheduler before it returns (on the
/// calling thread, under the scheduler's lock; no handler code runs under it). Once the
/// session has ended, calls fail with [`Error::UnknownSession`].
#[derive(Clone)]
pub struct SyncSession {
    id: SessionId,
    handler: HandlerId,
    /// Shared by every clone, so a clone costs the same however many requests it serves.
    requests: Arc<[ServedRequest]>,
    key: MergeKey,
    link: Link,
}

impl std::fmt::Debug for SyncSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncSession")
            .field("id", &self.id)
            .field("handler", &self.handler)
            .field("requests", &self.requests)
            .finish()
    }
}

impl SyncSession {
    pub(crate) fn new(
        id: SessionId,
        handler: HandlerId,
        requests: Arc<[ServedRequest]>,
        key: MergeKey,
        link: Link,
    ) -> SyncSession {
        SyncSession {
            id,
            handler,
            requests,
            key,
            link,
        }
    }

    /// The session's ID.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The way to the scheduler this session's calls take.
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// The handler it runs for.
    pub fn handler(&self) -> &HandlerId {
        &self.handler
    }

    /// The requests the session served when it started, with their context values.
    pub fn requests(&self) -> &[ServedRequest] {
        &self.requests
    }

    /// The cookie of the legacy invoke requests this session serves (every one of them
    /// carries the same cookie), or `None` for a session of Sync Center requests.
    pub fn cookie(&self) -> Option<&[u8]> {
        self.key.as_cookie()
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> SessionCall) -> Result<T, Error> {
        let (reply, answer) = oneshot();
        let command = Command::Session {
            session: self.id,
            call: make(reply),
        };
        // A scheduler that is gone has ended every session.
        self.link
            .send(command)
            .map_err(|_| Error::UnknownSession(self.id))?;
        answer.recv().map_err(|_| Error::UnknownSession(self.id))?
    }

    /// Reports an item's progress (`ReportProgress`): a status, or a [`Progress`] with a
    /// text and steps. Returns the cancel request pending for the item: `CancelItem` or
    /// `CancelAll` mean the handler should stop that item, or everything, and report
    /// `Canceled`.
    ///
    /// ```no_run
    /// # use syncmgr::{ItemId, Progress, ProgressStatus, SyncSession};
    /// # fn f(session: &SyncSession, item: &ItemId) -> Result<(), syncmgr::Error> {
    /// session.report_progress(item, Progress::new(ProgressStatus::Updating).steps(1, 3))?;
    /// session.report_progress(item, ProgressStatus::Succeeded)?;
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: text over `MAX_SYNCMGR_PROGRESSTEXT` or an item not in the session
    /// (`E_INVALIDARG`); a status other than `Failed` after a terminal one (`E_ACCESSDENIED`,
    /// and the item is marked `Failed`).
    pub fn report_progress(
        &self,
        item: &ItemId,
        progress: impl Into<Progress>,
    ) -> Result<CancelRequest, Error> {
        self.report(Report {
            item: item.clone(),
            progress: progress.into(),
            cause: None,
            permanent: false,
        })
    }

    /// Reports that an item failed, and why: [`report_progress`](Self::report_progress)
    /// with `Failed`, and the error (with its `source()` chain) that the item's requests get
    /// as its [`cause`](crate::ItemOutcome::cause). Use it when one item fails and the
    /// session goes on; an error returned from `synchronize` becomes the cause of every
    /// item that has no terminal report (and of every `Failed` one without a reason).
    ///
    /// The error is read here, on the handler's thread; the crate keeps its text (see
    /// [`Cause`](crate::Cause)). The handler's retry policy may retry the item.
    pub fn report_failure(
        &self,
        item: &ItemId,
        error: &(dyn std::error::Error + 'static),
    ) -> Result<CancelRequest, Error> {
        self.fail(item, error, false)
    }

    /// Reports that an item failed for good ([`report_failure`](Self::report_failure), plus
    /// a promise that trying again cannot help: bad credentials, a remote that is gone). The
    /// handler's retry policy does not retry it: its requests take the `Failed` when the
    /// session ends. An error returned by `synchronize`, or a panic, is a failure the policy
    /// may retry.
    pub fn report_permanent_failure(
        &self,
        item: &ItemId,
        error: &(dyn std::error::Error + 'static),
    ) -> Result<CancelRequest, Error> {
        self.fail(item, error, true)
    }

    fn fail(
        &self,
        item: &ItemId,
        error: &(dyn std::error::Error + 'static),
        permanent: bool,
    ) -> Result<CancelRequest, Error> {
        let cause = unwind::cause_of(error);
        self.report(Report {
            item: item.clone(),
            progress: Progress::new(ProgressStatus::Failed).text(format!("{cause:#}")),
            cause: Some(cause),
            permanent,
        })
    }

    /// A report, applied on this thread when it can be: a handler reports every item, so
    /// this is the hot call of a session.
    fn report(&self, report: Report) -> Result<CancelRequest, Error> {
        self.call_here(report, Scheduler::report, |report, reply| {
            SessionCall::Progress { report, reply }
        })
    }

    /// A session call run on this thread when it can be (see [`call_here`]), for the hot
    /// calls; `later` makes its command for when it cannot.
    fn call_here<I, T>(
        &self,
        input: I,
        here: impl FnOnce(&mut Scheduler, SessionId, I) -> Result<T, Error>,
        later: impl FnOnce(I, Reply<T>) -> SessionCall,
    ) -> Result<T, Error> {
        let session = self.id;
        call_here(
            &self.link,
            input,
            |s, input| here(s, session, input),
            |input, reply| Command::Session {
                session,
                call: later(input, reply),
            },
        )
        .map_err(|e| self.gone(e))
    }

    /// A scheduler that is gone has ended every session.
    fn gone(&self, error: Error) -> Error {
        match error {
            Error::ShutDown => Error::UnknownSession(self.id),
            other => other,
        }
    }

    /// Sets the session-wide progress text (`SetHandlerProgressText`); returns `CancelAll`
    /// once the whole session was asked to stop.
    pub fn set_handler_progress_text(&self, text: &str) -> Result<CancelRequest, Error> {
        self.call(|reply| SessionCall::HandlerText {
            text: text.to_owned(),
            reply,
        })
    }

    /// Reports an event for the handler's event log (`ReportEvent`) and returns its fresh ID.
    /// `Error`-level events count in the `errors` of the requests the session serves for
    /// that item (or for the whole handler, with no item).
    pub fn report_event(&self, report: EventReport) -> Result<Uuid, Error> {
        self.call(|reply| SessionCall::Event { report, reply })
    }

    /// Reports a conflict found for an item, or for the handler as a whole: it counts in the
    /// `conflicts` of the requests concerned (a Rust addition; Sync Center learns of
    /// conflicts through its conflict store).
    pub fn report_conflict(&self, item: Option<&ItemId>) -> Result<(), Error> {
        self.call(|reply| SessionCall::Conflict {
            item: item.cloned(),
            reply,
        })
    }

    /// Whether the handler may go on with an item, or with anything at all for `None`
    /// (`CanContinue`): false once a cancel was requested for it or for the session.
    pub fn can_continue(&self, item: Option<&ItemId>) -> Result<bool, Error> {
        self.call_here(item, Scheduler::can_continue, |item, reply| {
            SessionCall::CanContinue {
                item: item.cloned(),
                reply,
            }
        })
    }

    /// The handler's pending items and the requests waiting on them
    /// (`QueryForAdditionalItems`).
    pub fn query_for_additional_items(&self) -> Result<PendingItems, Error> {
        self.call(|reply| SessionCall::Query { reply })
    }

    /// Pulls a pending item into this session (`AddItemToSession`): the requests waiting on
    /// it take its outcome from here. An item already in the session is `E_INVALIDARG`.
    pub fn add_item_to_session(&self, item: &ItemId) -> Result<(), Error> {
        self.call(|reply| SessionCall::Add {
            item: item.clone(),
            reply,
        })
    }

    /// Proposes an item discovered during the sync (`ProposeItem`).
    pub fn propose_item(&self, item: SyncItem) -> Result<(), Error> {
        self.call(|reply| SessionCall::Propose { item, reply })
    }

    /// Commits a proposed item (`CommitItem`): it becomes an item of the handler and of this
    /// session.
    pub fn commit_item(&self, item: &ItemId) -> Result<(), Error> {
        self.call(|reply| SessionCall::Commit {
            item: item.clone(),
            reply,
        })
    }

    /// Marks the session as started by hand (`ReportManualSync`).
    pub fn report_manual_sync(&self) -> Result<(), Error> {
        self.call(|reply| SessionCall::Manual { reply })
    }
}
