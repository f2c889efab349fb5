//! The legacy Synchronization Manager (`mobsync.h`): GUID handlers and
//! `ISyncMgrSynchronizeInvoke`.
//!
//! A [`LegacyHandler`] is the Rust form of `ISyncMgrSynchronize`: known by a CLSID, with items
//! known by GUID (`SYNCMGRITEMID`). It is registered in the same [`SyncManager`] as Sync Center
//! handlers ([`SyncManager::register_legacy_handler`]), under the braced form of its CLSID
//! ([`HandlerId::from_clsid`]), with its items under theirs ([`ItemId::from_guid`]), and it
//! follows the same scheduling rules. [`SyncManager::update_items`] and
//! [`SyncManager::update_all`] are `ISyncMgrSynchronizeInvoke::UpdateItems` and `UpdateAll`.
//!
//! ```
//! use syncmgr::legacy::{
//!     Invoked, InvokeFlags, LegacyCallback, LegacyHandler, LegacyHandlerInfo, LegacyItem,
//!     SyncMgrFlag, SyncMgrStatus,
//! };
//! use syncmgr::{ControlFlags, HandlerError, Outcome, SyncManager};
//! use uuid::Uuid;
//!
//! const BRIEFCASE: Uuid = Uuid::from_u128(0x2A15A14B_7C61_4F3B_B93E_152E8452B096);
//! const NOTES: Uuid = Uuid::from_u128(1);
//!
//! struct Briefcase;
//!
//! impl LegacyHandler for Briefcase {
//!     fn initialize(&self, flags: SyncMgrFlag, cookie: &[u8]) -> bool {
//!         cookie == b"from the tray icon" // only interested in syncs the tray icon starts
//!     }
//!     fn handler_info(&self) -> LegacyHandlerInfo {
//!         LegacyHandlerInfo::new("Briefcase")
//!     }
//!     fn enum_items(&self) -> Vec<LegacyItem> {
//!         vec![LegacyItem::new(NOTES, "Notes")]
//!     }
//!     fn synchronize(&self, items: &[Uuid], callback: &LegacyCallback) -> Result<(), HandlerError> {
//!         for &item in items {
//!             callback.progress(item, SyncMgrStatus::Succeeded, "copied", 1, 1)?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let manager = SyncManager::new()?;
//! manager.register_legacy_handler(BRIEFCASE, Briefcase, ControlFlags::WAIT)?;
//! let Invoked::Started(ticket) =
//!     manager.update_items(InvokeFlags::STARTSYNC, BRIEFCASE, b"from the tray icon")?
//! else {
//!     unreachable!("STARTSYNC starts at once")
//! };
//! assert_eq!(ticket.wait().status, Outcome::Succeeded);
//! # Ok(()) }
//! ```
//!
//! # How the legacy protocol maps onto sessions
//!
//! Each session of a legacy handler calls, on a worker thread: `initialize(flags, cookie)`,
//! then `prepare_for_sync(items)`, then `synchronize(items, callback)`. `flags` carries the
//! event code of the requests' [`TriggerReason`] (`INVOKE` for the invoke API, see the table
//! below) and `cookie` is the invoke call's cookie, byte for byte (empty for Sync Center
//! requests). If `initialize` returns `false` the handler is not interested: nothing more runs,
//! every item ends `Canceled` and an information event says why. A cookie is part of a legacy
//! request's identity: queued invoke requests merge only with requests carrying the same
//! cookie, and each session serves one cookie (see [`MergeKey`](crate::engine::MergeKey)).
//!
//! # Mapping tables
//!
//! **`SYNCMGRSTATUS` to [`ProgressStatus`]** (what [`LegacyCallback::progress`] reports):
//!
//! | `SyncMgrStatus` | `ProgressStatus` | why |
//! |---|---|---|
//! | `Stopped` (0) | `Canceled` | the item was stopped |
//! | `Skipped` (1) | `Canceled` | the item was skipped |
//! | `Pending` (2) | `UpdatingIndeterminate` | waiting to start: no steps yet |
//! | `Updating` (3) | `Updating` | |
//! | `Succeeded` (4) | `Succeeded` | |
//! | `Failed` (5) | `Failed` | |
//! | `Paused` (6) | `UpdatingIndeterminate` | still in progress, steps unknown |
//! | `Resuming` (7) | `Updating` | |
//! | `UpdatingIndeterminate` (8) | `UpdatingIndeterminate` | |
//! | `Deleted` (0x100) | `Succeeded` | deleting the item was its sync |
//!
//! **`SYNCMGRLOGLEVEL` to [`EventLevel`]** ([`LegacyCallback::log_error`]): `Information` →
//! `Information`, `Warning` → `Warning`, `Error` → `Error` (and so counts in the result's
//! `errors`).
//!
//! **Cancel codes** ([`cancel_code`], [`cancel_from_code`]): [`CancelRequest::None`] ↔ `S_OK`,
//! [`CancelRequest::CancelItem`] ↔ `S_SYNCMGR_CANCELITEM` (0x00040203),
//! [`CancelRequest::CancelAll`] ↔ `S_SYNCMGR_CANCELALL` (0x00040204). When a progress report
//! first learns that an item was canceled, the handler's `set_item_status(item, Skipped)` is
//! called before `progress` returns, as Synchronization Manager does when the user skips an
//! item.
//!
//! **`SYNCMGRFLAG` event codes to [`TriggerReason`]** (`From` both ways): `CONNECT` ↔
//! `Connect`, `PENDINGDISCONNECT` ↔ `PendingDisconnect`, `MANUAL` ↔ `Manual`, `IDLE` ↔ `Idle`,
//! `INVOKE` ↔ `Invoke`, `SCHEDULED` ↔ `Scheduled`; an unknown event code is treated as
//! `MANUAL`.
//!
//! **`SYNCMGRFLAG` event codes to [`Trigger`]s**: the three codes that report what happens
//! around the application map onto the triggers a [`SyncPolicy`] listens for
//! (`TryFrom<SyncEvent> for Trigger`, `From<Trigger> for SyncEvent`): `CONNECT` ↔ `Connect`,
//! `PENDINGDISCONNECT` ↔ `PendingDisconnect`, `IDLE` ↔ `Idle`; the other codes are not
//! triggers. An application that hears of a connection reports it once with
//! [`SyncManager::trigger`], and legacy handlers whose policy listens for it are
//! initialized with `SYNCMGRFLAG_CONNECT`, as Synchronization Manager did. A triggered (or
//! scheduled) request is a handler sync: it takes every item, checked or not, because the
//! checked state is what the invoke calls (`update_items`, `update_all`) read. A legacy
//! handler's policy is the default (none) until [`SyncManager::set_sync_policy`] gives it one.
//!
//! [`SyncManager`]: crate::SyncManager
//! [`SyncManager::register_legacy_handler`]: crate::SyncManager::register_legacy_handler
//! [`SyncManager::update_items`]: crate::SyncManager::update_items
//! [`SyncManager::update_all`]: crate::SyncManager::update_all
//! [`HandlerId::from_clsid`]: crate::HandlerId::from_clsid
//! [`ItemId::from_guid`]: crate::ItemId::from_guid
//! [`TriggerReason`]: crate::TriggerReason
//! [`Trigger`]: crate::Trigger
//! [`SyncPolicy`]: crate::SyncPolicy
//! [`SyncManager::trigger`]: crate::SyncManager::trigger
//! [`SyncManager::set_sync_policy`]: crate::SyncManager::set_sync_policy
//! [`ProgressStatus`]: crate::ProgressStatus
//! [`EventLevel`]: crate::EventLevel
//! [`CancelRequest::None`]: crate::CancelRequest::None
//! [`CancelRequest::CancelItem`]: crate::CancelRequest::CancelItem
//! [`CancelRequest::CancelAll`]: crate::CancelRequest::CancelAll

mod handler;
mod invoke;
mod values;

pub use self::handler::{LegacyCallback, LegacyHandler, LegacyHandlerInfo, LegacyItem};
pub use self::invoke::{InvokeChoice, Invoked};
pub use self::values::{
    InvokeFlags, ItemState, LegacyHandlerFlags, LegacyItemFlags, LogLevel, SyncEvent, SyncMgrFlag,
    SyncMgrStatus,
};

use crate::error::hresult;
use crate::flags::{CancelRequest, EventLevel, ProgressStatus};
use crate::manager::TriggerReason;
use crate::policy::Trigger;

impl From<SyncMgrStatus> for ProgressStatus {
    /// See the module's mapping table.
    fn from(status: SyncMgrStatus) -> ProgressStatus {
        match status {
            SyncMgrStatus::Stopped | SyncMgrStatus::Skipped => ProgressStatus::Canceled,
            SyncMgrStatus::Pending
            | SyncMgrStatus::Paused
            | SyncMgrStatus::UpdatingIndeterminate => ProgressStatus::UpdatingIndeterminate,
            SyncMgrStatus::Updating | SyncMgrStatus::Resuming => ProgressStatus::Updating,
            SyncMgrStatus::Succeeded | SyncMgrStatus::Deleted => ProgressStatus::Succeeded,
            SyncMgrStatus::Failed => ProgressStatus::Failed,
        }
    }
}

impl From<LogLevel> for EventLevel {
    fn from(level: LogLevel) -> EventLevel {
        match level {
            LogLevel::Information => EventLevel::Information,
            LogLevel::Warning => EventLevel::Warning,
            LogLevel::Error => EventLevel::Error,
        }
    }
}

impl From<SyncEvent> for TriggerReason {
    fn from(event: SyncEvent) -> TriggerReason {
        match event {
            SyncEvent::Connect => TriggerReason::Connect,
            SyncEvent::PendingDisconnect => TriggerReason::PendingDisconnect,
            SyncEvent::Manual => TriggerReason::Manual,
            SyncEvent::Idle => TriggerReason::Idle,
            SyncEvent::Invoke => TriggerReason::Invoke,
            SyncEvent::Scheduled => TriggerReason::Scheduled,
        }
    }
}

impl From<SyncMgrFlag> for TriggerReason {
    /// The flags' event code; an unknown code is `Manual`.
    fn from(flags: SyncMgrFlag) -> TriggerReason {
        flags.event().into()
    }
}

impl From<TriggerReason> for SyncEvent {
    fn from(reason: TriggerReason) -> SyncEvent {
        match reason {
            TriggerReason::Connect => SyncEvent::Connect,
            TriggerReason::PendingDisconnect => SyncEvent::PendingDisconnect,
            TriggerReason::Manual => SyncEvent::Manual,
            TriggerReason::Idle => SyncEvent::Idle,
            TriggerReason::Invoke => SyncEvent::Invoke,
            TriggerReason::Scheduled => SyncEvent::Scheduled,
        }
    }
}

impl TryFrom<SyncEvent> for Trigger {
    /// The event code itself, when it is not one of the three triggers.
    type Error = SyncEvent;

    /// `CONNECT`, `PENDINGDISCONNECT` and `IDLE` are triggers; `MANUAL`, `INVOKE` and
    /// `SCHEDULED` are not.
    ///
    /// ```
    /// use syncmgr::Trigger;
    /// use syncmgr::legacy::SyncEvent;
    /// assert_eq!(Trigger::try_from(SyncEvent::Idle), Ok(Trigger::Idle));
    /// assert_eq!(Trigger::try_from(SyncEvent::Manual), Err(SyncEvent::Manual));
    /// ```
    fn try_from(event: SyncEvent) -> Result<Trigger, SyncEvent> {
        match event {
            SyncEvent::Connect => Ok(Trigger::Connect),
            SyncEvent::PendingDisconnect => Ok(Trigger::PendingDisconnect),
            SyncEvent::Idle => Ok(Trigger::Idle),
            other => Err(other),
        }
    }
}

impl From<Trigger> for SyncEvent {
    fn from(trigger: Trigger) -> SyncEvent {
        TriggerReason::from(trigger).into()
    }
}

/// The legacy HRESULT for a cancel request: `S_OK`, `S_SYNCMGR_CANCELITEM` or
/// `S_SYNCMGR_CANCELALL`.
pub fn cancel_code(cancel: CancelRequest) -> i32 {
    match cancel {
        CancelRequest::None => hresult::S_OK,
        CancelRequest::CancelItem => hresult::S_SYNCMGR_CANCELITEM,
        CancelRequest::CancelAll => hresult::S_SYNCMGR_CANCELALL,
    }
}

/// The cancel request a legacy HRESULT stands for; `None` for a code that is none of the three.
pub fn cancel_from_code(code: i32) -> Option<CancelRequest> {
    match code {
        hresult::S_OK => Some(CancelRequest::None),
        hresult::S_SYNCMGR_CANCELITEM => Some(CancelRequest::CancelItem),
        hresult::S_SYNCMGR_CANCELALL => Some(CancelRequest::CancelAll),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        use ProgressStatus as P;
        use SyncMgrStatus as S;
        let table = [
            (S::Stopped, P::Canceled),
            (S::Skipped, P::Canceled),
            (S::Pending, P::UpdatingIndeterminate),
            (S::Updating, P::Updating),
            (S::Succeeded, P::Succeeded),
            (S::Failed, P::Failed),
            (S::Paused, P::UpdatingIndeterminate),
            (S::Resuming, P::Updating),
            (S::UpdatingIndeterminate, P::UpdatingIndeterminate),
            (S::Deleted, P::Succeeded),
        ];
        for (legacy, current) in table {
            assert_eq!(P::from(legacy), current, "{legacy:?}");
        }
    }

    #[test]
    fn log_levels_map_to_event_levels() {
        assert_eq!(
            EventLevel::from(LogLevel::Information),
            EventLevel::Information
        );
        assert_eq!(EventLevel::from(LogLevel::Warning), EventLevel::Warning);
        assert_eq!(EventLevel::from(LogLevel::Error), EventLevel::Error);
    }

    #[test]
    fn cancel_codes_round_trip() {
        for cancel in [
            CancelRequest::None,
            CancelRequest::CancelItem,
            CancelRequest::CancelAll,
        ] {
            assert_eq!(cancel_from_code(cancel_code(cancel)), Some(cancel));
        }
        assert_eq!(cancel_code(CancelRequest::CancelItem), 0x0004_0203);
        assert_eq!(cancel_code(CancelRequest::CancelAll), 0x0004_0204);
        assert_eq!(cancel_from_code(hresult::S_SYNCMGR_RETRYSYNC), None);
    }

    #[test]
    fn event_codes_map_to_reasons_and_back() {
        for event in [
            SyncEvent::Connect,
            SyncEvent::PendingDisconnect,
            SyncEvent::Manual,
            SyncEvent::Idle,
            SyncEvent::Invoke,
            SyncEvent::Scheduled,
        ] {
            assert_eq!(SyncEvent::from(TriggerReason::from(event)), event);
        }
        // An unknown event code is treated as MANUAL; modifiers do not matter.
        let odd = SyncMgrFlag::from_raw(0x7 | 0x200).unwrap();
        assert_eq!(TriggerReason::from(odd), TriggerReason::Manual);
        let invoke = SyncMgrFlag::from_raw(0x5 | 0x100).unwrap();
        assert_eq!(TriggerReason::from(invoke), TriggerReason::Invoke);
    }
}
