//! The legacy handler protocol (`ISyncMgrSynchronize`), its callback
//! (`ISyncMgrSynchronizeCallback`), and the adapter that runs it as a [`SyncHandler`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use uuid::Uuid;

use super::values::{
    ItemState, LegacyHandlerFlags, LegacyItemFlags, LogLevel, SyncMgrFlag, SyncMgrStatus,
};
use crate::error::Error;
use crate::flags::{CancelRequest, EventLevel, ProgressStatus};
use crate::id::ItemId;
use crate::manager::{
    EventReport, HandlerError, SyncHandler, SyncItem, SyncSession, TriggerReason,
};
use crate::progress::Progress;
use crate::unwind;

/// What a legacy handler says about itself (`SYNCMGRHANDLERINFO`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyHandlerInfo {
    /// Its name, at most `MAX_SYNCMGRHANDLERNAME` (32) UTF-16 units with the NUL.
    pub name: String,
    /// Its flags.
    pub flags: LegacyHandlerFlags,
}

impl LegacyHandlerInfo {
    /// A name and no flags.
    pub fn new(name: impl Into<String>) -> LegacyHandlerInfo {
        LegacyHandlerInfo {
            name: name.into(),
            flags: LegacyHandlerFlags::empty(),
        }
    }
}

/// One item of a legacy handler (`SYNCMGRITEM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyItem {
    /// Its GUID (`SYNCMGRITEMID`); the manager knows it as [`ItemId::from_guid`].
    pub id: Uuid,
    /// Its name, at most `MAX_SYNCMGRITEMNAME` (128) UTF-16 units with the NUL.
    pub name: String,
    /// Its flags.
    pub flags: LegacyItemFlags,
    /// Whether it is selected for sync: `update_items` with `STARTSYNC`, and `update_all`,
    /// sync the checked items.
    pub state: ItemState,
    /// When it was last synced, if the handler keeps that (`SYNCMGRITEM_LASTUPDATETIME`).
    pub last_update: Option<SystemTime>,
}

impl LegacyItem {
    /// A checked item with no flags.
    pub fn new(id: Uuid, name: impl Into<String>) -> LegacyItem {
        LegacyItem {
            id,
            name: name.into(),
            flags: LegacyItemFlags::empty(),
            state: ItemState::Checked,
            last_update: None,
        }
    }

    /// The same item, checked or not.
    pub fn with_state(mut self, state: ItemState) -> LegacyItem {
        self.state = state;
        self
    }
}

/// A Synchronization Manager handler (`ISyncMgrSynchronize`), known by a CLSID.
///
/// Register it with [`SyncManager::register_legacy_handler`](crate::SyncManager::register_legacy_handler).
/// Every method runs on one of the manager's worker threads, or on the thread of the manager
/// call that needs it (`handler_info` and `enum_items` at registration and invoke time). Panics
/// are caught as for [`SyncHandler`]. See the [module docs](super) for the order of the calls.
pub trait LegacyHandler: Send + Sync + 'static {
    /// Called before each sync with the event that caused it and the invoke call's cookie,
    /// byte for byte. `false` means not interested: nothing runs and the items end `Canceled`.
    fn initialize(&self, flags: SyncMgrFlag, cookie: &[u8]) -> bool;

    /// The handler's name and flags.
    fn handler_info(&self) -> LegacyHandlerInfo;

    /// The handler's items (`EnumSyncMgrItems`).
    fn enum_items(&self) -> Vec<LegacyItem>;

    /// Called with the items about to sync (`PrepareForSync`); an error fails them all.
    fn prepare_for_sync(&self, items: &[Uuid]) -> Result<(), HandlerError> {
        let _ = items;
        Ok(())
    }

    /// Synchronizes the items, reporting through `callback` (`Synchronize`).
    fn synchronize(&self, items: &[Uuid], callback: &LegacyCallback) -> Result<(), HandlerError>;

    /// Told that an item was skipped (`SetItemStatus(item, SYNCMGRSTATUS_SKIPPED)`): the
    /// handler should stop it and report `Skipped`.
    fn set_item_status(&self, item: Uuid, status: SyncMgrStatus) -> Result<(), HandlerError> {
        let _ = (item, status);
        Ok(())
    }
}

/// What a legacy handler reports through while it synchronizes
/// (`ISyncMgrSynchronizeCallback`): a thin layer over the session's [`SyncSession`].
pub struct LegacyCallback {
    session: SyncSession,
    handler: Arc<dyn LegacyHandler>,
    /// Items already told they were skipped, so `set_item_status` runs once per item.
    skipped: Mutex<Vec<Uuid>>,
}

impl std::fmt::Debug for LegacyCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyCallback")
            .field("session", &self.session.id())
            .finish_non_exhaustive()
    }
}

impl LegacyCallback {
    /// Reports an item's progress (`Progress`) and returns what the handler must do:
    /// `CancelRequest::None` to go on (`S_OK`), `CancelItem` (`S_SYNCMGR_CANCELITEM`) or
    /// `CancelAll` (`S_SYNCMGR_CANCELALL`); [`super::cancel_code`] gives the HRESULT. The
    /// status maps as the module's table says; `value` and `max` are the steps.
    pub fn progress(
        &self,
        item: Uuid,
        status: SyncMgrStatus,
        text: &str,
        value: u32,
        max: u32,
    ) -> Result<CancelRequest, Error> {
        let cancel = self.session.report_progress(
            &ItemId::from_guid(item),
            Progress::new(ProgressStatus::from(status))
                .text(text)
                .steps(value, max),
        )?;
        if cancel == CancelRequest::CancelItem && self.first_skip(item) {
            let handler = &self.handler;
            // A panic here is the handler's; the progress report itself went through.
            if let Ok(Err(e)) =
                unwind::run(|| handler.set_item_status(item, SyncMgrStatus::Skipped))
            {
                unwind::dispose(e);
            }
        }
        Ok(cancel)
    }

    fn first_skip(&self, item: Uuid) -> bool {
        let mut skipped = self.skipped.lock().unwrap_or_else(PoisonError::into_inner);
        if skipped.contains(&item) {
            return false;
        }
        skipped.push(item);
        true
    }

    /// Logs an error, warning or information (`LogError`) in the handler's event log and
    /// returns its ID (`SYNCMGRERRORID`). An `Error` counts in the result's `errors`.
    pub fn log_error(
        &self,
        level: LogLevel,
        text: &str,
        item: Option<Uuid>,
    ) -> Result<Uuid, Error> {
        let mut report = EventReport::new(EventLevel::from(level), text);
        if let Some(item) = item {
            report = report.item(ItemId::from_guid(item));
        }
        self.session.report_event(report)
    }

    /// The session underneath, for what the legacy protocol has no call for.
    pub fn session(&self) -> &SyncSession {
        &self.session
    }
}

/// Runs a [`LegacyHandler`] as a [`SyncHandler`]: the engine schedules it like any other.
pub(crate) struct LegacyAdapter {
    pub inner: Arc<dyn LegacyHandler>,
}

impl SyncHandler for LegacyAdapter {
    fn name(&self) -> String {
        self.inner.handler_info().name
    }

    fn items(&self) -> Vec<SyncItem> {
        self.inner
            .enum_items()
            .into_iter()
            .map(|i| SyncItem::of(ItemId::from_guid(i.id), i.name))
            .collect()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let reason = session
            .requests()
            .first()
            .map_or(TriggerReason::Manual, |r| r.reason);
        let flags = SyncMgrFlag::from_event(reason.into());
        let cookie = session.cookie().unwrap_or(&[]);
        if !self.inner.initialize(flags, cookie) {
            session.report_event(
                EventReport::new(EventLevel::Information, "not interested")
                    .description("initialize returned false: the handler declined the sync"),
            )?;
            for item in items {
                session.report_progress(
                    item,
                    Progress::new(ProgressStatus::Canceled).text("declined"),
                )?;
            }
            return Ok(());
        }
        // Every item of a legacy handler is a braced GUID: it came from `enum_items`.
        let guids: Vec<Uuid> = items.iter().filter_map(ItemId::to_guid).collect();
        self.inner.prepare_for_sync(&guids)?;
        let callback = LegacyCallback {
            session: session.clone(),
            handler: self.inner.clone(),
            skipped: Mutex::new(Vec::new()),
        };
        self.inner.synchronize(&guids, &callback)
    }
}
