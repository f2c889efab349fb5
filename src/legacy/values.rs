//! The legacy API's flags and enums, with the SDK's exact values.

use std::fmt;

use crate::flags::{sdk_enum, sdk_flags};

sdk_flags! {
    /// How `update_items` is invoked (`SYNCMGRINVOKEFLAGS`). The SDK defines no 0x1 bit.
    ///
    /// The default (no flags) shows the choice of items instead of syncing at once.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct InvokeFlags: u32 {
        /// `SYNCMGRINVOKE_STARTSYNC` (0x2): start the sync at once, without offering a choice.
        const STARTSYNC = 0x2;
        /// `SYNCMGRINVOKE_MINIMIZED` (0x4): present the choice minimized (a hint only).
        const MINIMIZED = 0x4;
    }
}

sdk_flags! {
    /// Why a legacy handler is initialized (`SYNCMGRFLAG`): one event code in the low byte
    /// plus modifier bits.
    ///
    /// The event codes (`CONNECT` to `SCHEDULED`) are values, not bits: `MANUAL` (0x3) shares
    /// its bits with `CONNECT | PENDINGDISCONNECT`, so `contains(CONNECT)` is also true for
    /// `MANUAL`. Read the code with [`event`](Self::event), which treats an unknown code as
    /// [`SyncEvent::Manual`], and build a value with [`from_event`](Self::from_event).
    ///
    /// There is no `Default`: the value 0 carries no event code.
    ///
    /// Serialized as text (the `serde` feature), the code is written by its name too, as
    /// `Debug` writes it: `"INVOKE | MAYBOTHERUSER"`, never `"CONNECT | IDLE | MAYBOTHERUSER"`
    /// (which reads back as the same value).
    ///
    /// ```
    /// use syncmgr::legacy::{SyncEvent, SyncMgrFlag};
    ///
    /// let flags = SyncMgrFlag::from_event(SyncEvent::Invoke) | SyncMgrFlag::MAYBOTHERUSER;
    /// assert_eq!(flags.to_raw(), 0x205);
    /// assert_eq!(flags.event(), SyncEvent::Invoke);
    /// assert_eq!(format!("{flags:?}"), "SyncMgrFlag(INVOKE | MAYBOTHERUSER)");
    /// assert_eq!(SyncMgrFlag::from_raw(0x7)?.event(), SyncEvent::Manual);
    /// # Ok::<(), syncmgr::Error>(())
    /// ```
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SyncMgrFlag: u32 {
        /// `SYNCMGRFLAG_CONNECT` (0x1) event code: a network connection was made.
        const CONNECT = 0x1;
        /// `SYNCMGRFLAG_PENDINGDISCONNECT` (0x2) event code: a network connection is about to
        /// close.
        const PENDINGDISCONNECT = 0x2;
        /// `SYNCMGRFLAG_MANUAL` (0x3) event code: the user asked for the sync.
        const MANUAL = 0x3;
        /// `SYNCMGRFLAG_IDLE` (0x4) event code: the machine is idle.
        const IDLE = 0x4;
        /// `SYNCMGRFLAG_INVOKE` (0x5) event code: an application called `update_items` or
        /// `update_all`.
        const INVOKE = 0x5;
        /// `SYNCMGRFLAG_SCHEDULED` (0x6) event code: a scheduled sync.
        const SCHEDULED = 0x6;
        /// `SYNCMGRFLAG_EVENTMASK` (0xFF): the byte that holds the event code.
        const EVENTMASK = 0xFF;
        /// `SYNCMGRFLAG_SETTINGS` (0x100) modifier: the handler is initialized to show its
        /// settings, not to sync.
        const SETTINGS = 0x100;
        /// `SYNCMGRFLAG_MAYBOTHERUSER` (0x200) modifier: the handler may show UI to the user.
        const MAYBOTHERUSER = 0x200;
    }
    serde_text = sync_mgr_flag_text;
}

impl SyncMgrFlag {
    /// The event code in the low byte. An unknown code (0, or 7 to 0xFF) is read as
    /// [`SyncEvent::Manual`], as Synchronization Manager treats a request it cannot place.
    pub fn event(self) -> SyncEvent {
        SyncEvent::from_raw(self.bits() & Self::EVENTMASK.bits()).unwrap_or(SyncEvent::Manual)
    }

    /// The flags with this event code and no modifiers.
    pub const fn from_event(event: SyncEvent) -> SyncMgrFlag {
        SyncMgrFlag::from_bits_retain(event.to_raw())
    }
}

/// The serialized text of a [`SyncMgrFlag`]: the event code by name (`"INVOKE"`, not bitflags'
/// `"CONNECT | IDLE"`), or in hex if it is not a defined one, then the modifiers, then any
/// unknown bits in hex, joined by `" | "`; the empty text for 0. Every flags type's reader
/// (bitflags' text grammar) reads it back to the same bits.
#[cfg(feature = "serde")]
fn sync_mgr_flag_text(flags: &SyncMgrFlag, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let code = flags.bits() & SyncMgrFlag::EVENTMASK.bits();
    let mut parts: Vec<String> = Vec::with_capacity(4);
    match SyncEvent::from_raw(code) {
        Ok(event) => parts.push(event_name(event).to_owned()),
        Err(_) if code != 0 => parts.push(format!("{code:#x}")),
        Err(_) => {}
    }
    for (flag, name) in [
        (SyncMgrFlag::SETTINGS, "SETTINGS"),
        (SyncMgrFlag::MAYBOTHERUSER, "MAYBOTHERUSER"),
    ] {
        if flags.contains(flag) {
            parts.push(name.to_owned());
        }
    }
    let unknown = flags.bits() & !SyncMgrFlag::VALID_MASK;
    if unknown != 0 {
        parts.push(format!("{unknown:#x}"));
    }
    f.write_str(&parts.join(" | "))
}

/// The `SYNCMGRFLAG_*` name of an event code, as [`SyncMgrFlag`] names its constant.
fn event_name(event: SyncEvent) -> &'static str {
    match event {
        SyncEvent::Connect => "CONNECT",
        SyncEvent::PendingDisconnect => "PENDINGDISCONNECT",
        SyncEvent::Manual => "MANUAL",
        SyncEvent::Idle => "IDLE",
        SyncEvent::Invoke => "INVOKE",
        SyncEvent::Scheduled => "SCHEDULED",
    }
}

impl fmt::Debug for SyncMgrFlag {
    // bitflags would split a code into bits (INVOKE as "CONNECT | IDLE"), so print the code by
    // name and then the modifiers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.bits() & Self::EVENTMASK.bits();
        let name = SyncEvent::from_raw(code).map_or("", event_name);
        f.write_str("SyncMgrFlag(")?;
        if name.is_empty() {
            write!(f, "{code:#x}")?;
        } else {
            f.write_str(name)?;
        }
        for (flag, name) in [
            (Self::SETTINGS, "SETTINGS"),
            (Self::MAYBOTHERUSER, "MAYBOTHERUSER"),
        ] {
            if self.contains(flag) {
                write!(f, " | {name}")?;
            }
        }
        let unknown = self.bits() & !Self::VALID_MASK;
        if unknown != 0 {
            write!(f, " | {unknown:#x}")?;
        }
        f.write_str(")")
    }
}

sdk_enum! {
    /// The event code of a [`SyncMgrFlag`] (`SYNCMGRFLAG_*` in `SYNCMGRFLAG_EVENTMASK`).
    pub enum SyncEvent {
        /// `SYNCMGRFLAG_CONNECT` (1): a network connection was made.
        Connect = 1,
        /// `SYNCMGRFLAG_PENDINGDISCONNECT` (2): a network connection is about to close.
        PendingDisconnect = 2,
        /// `SYNCMGRFLAG_MANUAL` (3): the user asked for the sync; also how an unknown code is
        /// read.
        Manual = 3,
        /// `SYNCMGRFLAG_IDLE` (4): the machine is idle.
        Idle = 4,
        /// `SYNCMGRFLAG_INVOKE` (5): an application called `update_items` or `update_all`.
        Invoke = 5,
        /// `SYNCMGRFLAG_SCHEDULED` (6): a scheduled sync.
        Scheduled = 6,
    }
}

sdk_enum! {
    /// The state a legacy handler reports for an item (`SYNCMGRSTATUS`).
    pub enum SyncMgrStatus {
        /// `SYNCMGRSTATUS_STOPPED` (0): the item is not syncing.
        Stopped = 0,
        /// `SYNCMGRSTATUS_SKIPPED` (1): the item was skipped.
        Skipped = 1,
        /// `SYNCMGRSTATUS_PENDING` (2): the item waits to be synced.
        Pending = 2,
        /// `SYNCMGRSTATUS_UPDATING` (3): the item is syncing.
        Updating = 3,
        /// `SYNCMGRSTATUS_SUCCEEDED` (4): the item synced successfully.
        Succeeded = 4,
        /// `SYNCMGRSTATUS_FAILED` (5): the item failed to sync.
        Failed = 5,
        /// `SYNCMGRSTATUS_PAUSED` (6): the item's sync is paused.
        Paused = 6,
        /// `SYNCMGRSTATUS_RESUMING` (7): the item's sync is resuming.
        Resuming = 7,
        /// `SYNCMGRSTATUS_UPDATING_INDETERMINATE` (8): the item is syncing, amount of work
        /// unknown.
        UpdatingIndeterminate = 8,
        /// `SYNCMGRSTATUS_DELETED` (0x100): the item was deleted.
        Deleted = 0x100,
    }
}

sdk_enum! {
    /// The severity of an error a legacy handler logs (`SYNCMGRLOGLEVEL`).
    pub enum LogLevel {
        /// `SYNCMGRLOGLEVEL_INFORMATION` (1): for information.
        Information = 1,
        /// `SYNCMGRLOGLEVEL_WARNING` (2): something went wrong but the sync went on.
        Warning = 2,
        /// `SYNCMGRLOGLEVEL_ERROR` (3): something failed.
        Error = 3,
    }
}

sdk_flags! {
    /// What a legacy item is (`SYNCMGRITEMFLAGS`, `SYNCMGRITEM_*`).
    ///
    /// Header quirk: the SDK's `SYNCMGRITEM_ITEMFLAGMASK` is 0x7F, which admits an undefined
    /// bit 0x40. This type's [`VALID_MASK`](Self::VALID_MASK) is 0x3F, the defined flags, so
    /// 0x40 is rejected.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct LegacyItemFlags: u32 {
        /// `SYNCMGRITEM_HASPROPERTIES` (0x1): the item has a properties dialog.
        const HASPROPERTIES = 0x1;
        /// `SYNCMGRITEM_TEMPORARY` (0x2): the item is temporary and is not remembered.
        const TEMPORARY = 0x2;
        /// `SYNCMGRITEM_ROAMINGUSER` (0x4): the item roams with the user.
        const ROAMINGUSER = 0x4;
        /// `SYNCMGRITEM_LASTUPDATETIME` (0x8): the item's last update time is set.
        const LASTUPDATETIME = 0x8;
        /// `SYNCMGRITEM_MAYDELETEITEM` (0x10): the item may be deleted.
        const MAYDELETEITEM = 0x10;
        /// `SYNCMGRITEM_HIDDEN` (0x20): the item is not shown.
        const HIDDEN = 0x20;
    }
}

sdk_flags! {
    /// What a legacy handler is (`SYNCMGRHANDLERFLAGS`, `SYNCMGRHANDLER_*`), as its
    /// `handler_info` says. The manager records them; none changes how it schedules.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct LegacyHandlerFlags: u32 {
        /// `SYNCMGRHANDLER_HASPROPERTIES` (0x1): the handler has a properties dialog.
        const HASPROPERTIES = 0x1;
        /// `SYNCMGRHANDLER_MAYESTABLISHCONNECTION` (0x2): the handler may ask for a network
        /// connection (ignored since Windows Vista).
        const MAYESTABLISHCONNECTION = 0x2;
        /// `SYNCMGRHANDLER_ALWAYSLISTHANDLER` (0x4): list the handler even with no items.
        const ALWAYSLISTHANDLER = 0x4;
        /// `SYNCMGRHANDLER_HIDDEN` (0x8): do not show the handler.
        const HIDDEN = 0x8;
    }
}

sdk_enum! {
    /// Whether a legacy item is selected for sync (`SYNCMGRITEMSTATE`).
    pub enum ItemState {
        /// `SYNCMGRITEMSTATE_UNCHECKED` (0): not selected.
        Unchecked = 0,
        /// `SYNCMGRITEMSTATE_CHECKED` (1): selected.
        Checked = 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::testing::{check_mask, check_rejected};

    #[test]
    fn invoke_flags_values() {
        assert_eq!(InvokeFlags::STARTSYNC.bits(), 0x2);
        assert_eq!(InvokeFlags::MINIMIZED.bits(), 0x4);
        assert_eq!(InvokeFlags::VALID_MASK, 0x6);
        assert_eq!(InvokeFlags::default().bits(), 0);
        check_mask(
            "InvokeFlags",
            0x6,
            InvokeFlags::from_raw,
            InvokeFlags::to_raw,
        );
        assert!(InvokeFlags::from_raw(0x1).is_err());
    }

    #[test]
    fn sync_mgr_flag_values() {
        let table = [
            (SyncMgrFlag::CONNECT, 0x1),
            (SyncMgrFlag::PENDINGDISCONNECT, 0x2),
            (SyncMgrFlag::MANUAL, 0x3),
            (SyncMgrFlag::IDLE, 0x4),
            (SyncMgrFlag::INVOKE, 0x5),
            (SyncMgrFlag::SCHEDULED, 0x6),
            (SyncMgrFlag::EVENTMASK, 0xFF),
            (SyncMgrFlag::SETTINGS, 0x100),
            (SyncMgrFlag::MAYBOTHERUSER, 0x200),
        ];
        for (flag, value) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
        }
        assert_eq!(SyncMgrFlag::VALID_MASK, 0x3FF);
        check_mask(
            "SyncMgrFlag",
            0x3FF,
            SyncMgrFlag::from_raw,
            SyncMgrFlag::to_raw,
        );
        assert!(SyncMgrFlag::from_raw(0x400).is_err());
    }

    #[test]
    fn sync_event_values_and_round_trip() {
        let table = [
            (SyncEvent::Connect, 1, SyncMgrFlag::CONNECT),
            (
                SyncEvent::PendingDisconnect,
                2,
                SyncMgrFlag::PENDINGDISCONNECT,
            ),
            (SyncEvent::Manual, 3, SyncMgrFlag::MANUAL),
            (SyncEvent::Idle, 4, SyncMgrFlag::IDLE),
            (SyncEvent::Invoke, 5, SyncMgrFlag::INVOKE),
            (SyncEvent::Scheduled, 6, SyncMgrFlag::SCHEDULED),
        ];
        for (event, value, flag) in table {
            assert_eq!(event.to_raw(), value);
            assert_eq!(u32::from(event), value);
            assert_eq!(SyncEvent::try_from(value).unwrap(), event);
            assert_eq!(SyncMgrFlag::from_event(event), flag);
            assert_eq!(flag.event(), event);
            // Modifiers do not change the event.
            let with = flag | SyncMgrFlag::SETTINGS | SyncMgrFlag::MAYBOTHERUSER;
            assert_eq!(with.event(), event);
        }
        for value in [0, 7, 0xFF, 0x100] {
            check_rejected("SyncEvent", value, SyncEvent::from_raw);
        }
    }

    #[test]
    fn unknown_event_code_is_manual() {
        for code in [0, 7, 8, 0x10, 0x80, 0xFF] {
            let flags = SyncMgrFlag::from_raw(code | 0x200).unwrap();
            assert_eq!(flags.event(), SyncEvent::Manual, "{code:#x}");
        }
    }

    #[test]
    fn sync_mgr_flag_debug_names_the_event() {
        let show = |raw| format!("{:?}", SyncMgrFlag::from_raw(raw).unwrap());
        assert_eq!(show(0x5), "SyncMgrFlag(INVOKE)");
        assert_eq!(show(0x3), "SyncMgrFlag(MANUAL)");
        assert_eq!(
            show(0x306),
            "SyncMgrFlag(SCHEDULED | SETTINGS | MAYBOTHERUSER)"
        );
        assert_eq!(show(0x107), "SyncMgrFlag(0x7 | SETTINGS)");
        assert_eq!(show(0x0), "SyncMgrFlag(0x0)");
        assert_eq!(
            format!("{:?}", SyncMgrFlag::from_bits_retain(0x1401)),
            "SyncMgrFlag(CONNECT | 0x1400)"
        );
    }

    #[test]
    fn sync_mgr_status_values() {
        let table = [
            (SyncMgrStatus::Stopped, 0),
            (SyncMgrStatus::Skipped, 1),
            (SyncMgrStatus::Pending, 2),
            (SyncMgrStatus::Updating, 3),
            (SyncMgrStatus::Succeeded, 4),
            (SyncMgrStatus::Failed, 5),
            (SyncMgrStatus::Paused, 6),
            (SyncMgrStatus::Resuming, 7),
            (SyncMgrStatus::UpdatingIndeterminate, 8),
            (SyncMgrStatus::Deleted, 0x100),
        ];
        for (status, value) in table {
            assert_eq!(status.to_raw(), value);
            assert_eq!(u32::from(status), value);
            assert_eq!(SyncMgrStatus::try_from(value).unwrap(), status);
        }
        for value in [9, 0xFF, 0x101] {
            check_rejected("SyncMgrStatus", value, SyncMgrStatus::from_raw);
        }
    }

    #[test]
    fn log_level_values() {
        let table = [
            (LogLevel::Information, 1),
            (LogLevel::Warning, 2),
            (LogLevel::Error, 3),
        ];
        for (level, value) in table {
            assert_eq!(level.to_raw(), value);
            assert_eq!(u32::from(level), value);
            assert_eq!(LogLevel::try_from(value).unwrap(), level);
        }
        for value in [0, 4] {
            check_rejected("LogLevel", value, LogLevel::from_raw);
        }
    }

    #[test]
    fn legacy_handler_flags_values() {
        let table = [
            (LegacyHandlerFlags::HASPROPERTIES, 0x1),
            (LegacyHandlerFlags::MAYESTABLISHCONNECTION, 0x2),
            (LegacyHandlerFlags::ALWAYSLISTHANDLER, 0x4),
            (LegacyHandlerFlags::HIDDEN, 0x8),
        ];
        for (flag, value) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
        }
        assert_eq!(LegacyHandlerFlags::VALID_MASK, 0xF);
        check_mask(
            "LegacyHandlerFlags",
            0xF,
            LegacyHandlerFlags::from_raw,
            LegacyHandlerFlags::to_raw,
        );
        assert!(LegacyHandlerFlags::from_raw(0x10).is_err());
    }

    #[test]
    fn legacy_item_flags_values() {
        let table = [
            (LegacyItemFlags::HASPROPERTIES, 0x1),
            (LegacyItemFlags::TEMPORARY, 0x2),
            (LegacyItemFlags::ROAMINGUSER, 0x4),
            (LegacyItemFlags::LASTUPDATETIME, 0x8),
            (LegacyItemFlags::MAYDELETEITEM, 0x10),
            (LegacyItemFlags::HIDDEN, 0x20),
        ];
        for (flag, value) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
        }
        assert_eq!(LegacyItemFlags::VALID_MASK, 0x3F);
        check_mask(
            "LegacyItemFlags",
            0x3F,
            LegacyItemFlags::from_raw,
            LegacyItemFlags::to_raw,
        );
        assert!(LegacyItemFlags::from_raw(0x40).is_err());
    }

    #[test]
    fn item_state_values() {
        for (state, value) in [(ItemState::Unchecked, 0), (ItemState::Checked, 1)] {
            assert_eq!(state.to_raw(), value);
            assert_eq!(u32::from(state), value);
            assert_eq!(ItemState::try_from(value).unwrap(), state);
        }
        check_rejected("ItemState", 2, ItemState::from_raw);
    }
}
