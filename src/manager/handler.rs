//! What an application implements: [`SyncHandler`], the Rust form of `ISyncMgrHandler`.

use std::any::Any;
use std::sync::Arc;

use super::IntoId;
use super::SyncSession;
use crate::engine::StateChange;
use crate::flags::{
    ControlFlags, HandlerCapabilities, HandlerPolicies, HandlerType, ItemCapabilities, ItemPolicies,
};
use crate::id::{IdError, ItemId};
use crate::policy::SyncPolicy;

/// The error a handler returns from its hooks and from `synchronize`: any error type will do.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The opaque value a caller passes with a request (Sync Center's `punk`), handed to the
/// handler of the session that serves the request.
pub type Context = Arc<dyn Any + Send + Sync>;

/// What a handler says about itself (`ISyncMgrHandlerInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandlerInfo {
    /// What kind of handler it is.
    pub handler_type: HandlerType,
    /// A label for the type, shown by a UI.
    pub type_label: String,
    /// A comment, shown by a UI.
    pub comment: String,
}

/// One item as its handler describes it (`ISyncMgrSyncItem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncItem {
    /// The item's ID, unique within its handler.
    pub id: ItemId,
    /// Its display name, at most `MAX_SYNCMGR_NAME` UTF-16 units with the NUL.
    pub name: String,
    /// Its capabilities.
    pub capabilities: ItemCapabilities,
    /// Its policies.
    pub policies: ItemPolicies,
    /// Whether it takes part in syncs.
    pub enabled: bool,
}

impl SyncItem {
    /// An enabled item with no capabilities or policies, named by its ID (an [`ItemId`] or
    /// text, which is checked as [`ItemId::new`] checks it) and a display name.
    ///
    /// ```
    /// use syncmgr::{IdRule, SyncItem};
    ///
    /// let inbox = SyncItem::new("inbox", "Inbox")?;
    /// assert_eq!(inbox.id.as_str(), "inbox");
    /// assert_eq!(SyncItem::new("", "Nothing").unwrap_err().rule(), IdRule::Empty);
    /// # Ok::<(), syncmgr::IdError>(())
    /// ```
    pub fn new(id: impl IntoId<ItemId>, name: impl Into<String>) -> Result<SyncItem, IdError> {
        Ok(SyncItem::of(id.into_id()?, name))
    }

    /// [`SyncItem::new`] with an ID already checked.
    pub(crate) fn of(id: ItemId, name: impl Into<String>) -> SyncItem {
        SyncItem {
            id,
            name: name.into(),
            capabilities: ItemCapabilities::empty(),
            policies: ItemPolicies::empty(),
            enabled: true,
        }
    }

    /// The same item with these capabilities.
    pub fn with_capabilities(mut self, capabilities: ItemCapabilities) -> SyncItem {
        self.capabilities = capabilities;
        self
    }

    /// The same item with these policies.
    pub fn with_policies(mut self, policies: ItemPolicies) -> SyncItem {
        self.policies = policies;
        self
    }

    /// The same item, enabled or not.
    pub fn with_enabled(mut self, enabled: bool) -> SyncItem {
        self.enabled = enabled;
        self
    }
}

/// A sync handler: owns items and knows how to synchronize them (`ISyncMgrHandler`).
///
/// Only [`SyncHandler::synchronize`] must be written; everything else has a default. The
/// manager calls `synchronize` on one of its worker threads, never on the caller's thread and
/// never on its scheduler thread. The other methods are called on the thread of the manager
/// call that needs them (registration, `update_handler`, a start call asking
/// [`SyncHandler::is_connected`]), or on a worker thread for state changes made without
/// `ControlFlags::WAIT`.
///
/// **Panics** in any method are caught: a panic in `synchronize` ends the session with an
/// error event and `Failed` outcomes for the items without a terminal report; a panic in a
/// hook fails the call that ran it with [`Error::HandlerFailed`](crate::Error::HandlerFailed).
/// The manager keeps working either way.
///
/// ```
/// use syncmgr::{HandlerError, ItemId, Progress, ProgressStatus, SyncHandler, SyncItem, SyncSession};
///
/// struct Mail;
///
/// impl SyncHandler for Mail {
///     fn items(&self) -> Vec<SyncItem> {
///         vec![SyncItem::new("inbox", "Inbox").unwrap()]
///     }
///
///     fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
///         for item in items {
///             if !session.can_continue(Some(item))? {
///                 session.report_progress(item, Progress::new(ProgressStatus::Canceled).text("stopped"))?;
///                 continue;
///             }
///             session.report_progress(item, Progress::new(ProgressStatus::Succeeded).text("done").steps(1, 1))?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait SyncHandler: Send + Sync + 'static {
    /// The handler's display name (at most `MAX_SYNCMGR_NAME` UTF-16 units with the NUL).
    fn name(&self) -> String {
        String::new()
    }

    /// The handler's type, type label and comment.
    fn info(&self) -> HandlerInfo {
        HandlerInfo::default()
    }

    /// The handler's capabilities; read at registration and by `update_handler`.
    fn capabilities(&self) -> HandlerCapabilities {
        HandlerCapabilities::empty()
    }

    /// The handler's policies; read at registration and by `update_handler`.
    fn policies(&self) -> HandlerPolicies {
        HandlerPolicies::empty()
    }

    /// The handler's items; read at registration and by `update_handler`/`update_item`.
    fn items(&self) -> Vec<SyncItem> {
        Vec::new()
    }

    /// How many sessions may run at once when the handler has
    /// `SUPPORTS_CONCURRENT_SESSIONS`; `None` takes the manager's default.
    fn max_concurrent_sessions(&self) -> Option<usize> {
        None
    }

    /// Whether the handler can reach what it syncs with. Asked on every start call; a
    /// request for a disconnected handler completes at once as `Disconnected`, and a
    /// handler that answers `true` again after `false` (a reconnect) has its failed items'
    /// retry backoffs cleared.
    fn is_connected(&self) -> bool {
        true
    }

    /// How its requests are timed: debounce, retries, a schedule, triggers. Read at
    /// registration and by [`SyncManager::update_handler`](super::SyncManager::update_handler);
    /// the default has none of them.
    fn sync_policy(&self) -> SyncPolicy {
        SyncPolicy::default()
    }

    /// Asked before a change the handler has a `QUERY_BEFORE_*` capability for (and only
    /// then); `false` refuses it with [`Denied::Refused`](crate::Denied::Refused).
    /// `flags` carries `NOUI` when the handler must not show UI.
    fn query_state_change(&self, change: &StateChange, flags: ControlFlags) -> bool {
        let _ = (change, flags);
        true
    }

    /// Hook run before a change of the handler's or an item's state is applied (Sync
    /// Center's `Activate`, `Enable` and the item's `Enable`): after the policy check and
    /// [`query_state_change`](Self::query_state_change), for every change. An error refuses
    /// the change with [`Error::HandlerFailed`](crate::Error::HandlerFailed).
    fn on_state_change(
        &self,
        change: &StateChange,
        flags: ControlFlags,
    ) -> Result<(), HandlerError> {
        let _ = (change, flags);
        Ok(())
    }

    /// Synchronizes `items`, reporting through `session`. Items left without a terminal
    /// report when it returns end `Failed` (or `Canceled`, if a cancel was requested for
    /// them); returning an error, or panicking, records an error event as well.
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError>;
}

impl<T: SyncHandler + ?Sized> SyncHandler for Arc<T> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn info(&self) -> HandlerInfo {
        (**self).info()
    }
    fn capabilities(&self) -> HandlerCapabilities {
        (**self).capabilities()
    }
    fn policies(&self) -> HandlerPolicies {
        (**self).policies()
    }
    fn items(&self) -> Vec<SyncItem> {
        (**self).items()
    }
    fn max_concurrent_sessions(&self) -> Option<usize> {
        (**self).max_concurrent_sessions()
    }
    fn is_connected(&self) -> bool {
        (**self).is_connected()
    }
    fn sync_policy(&self) -> SyncPolicy {
        (**self).sync_policy()
    }
    fn query_state_change(&self, change: &StateChange, flags: ControlFlags) -> bool {
        (**self).query_state_change(change, flags)
    }
    fn on_state_change(
        &self,
        change: &StateChange,
        flags: ControlFlags,
    ) -> Result<(), HandlerError> {
        (**self).on_state_change(change, flags)
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        (**self).synchronize(items, session)
    }
}
