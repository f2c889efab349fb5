//! Flags and enums of the current Sync Center API (`syncmgr.h`), with the SDK's exact values.
//!
//! Every type converts from raw `u32` values with `from_raw`, which rejects what the SDK does
//! not define (never truncates), and back with `to_raw`. A value written by this crate means the
//! same thing to Windows.

mod declare;
#[cfg(feature = "serde")]
pub(crate) mod serde_flags;

pub(crate) use declare::{sdk_enum, sdk_flags};

sdk_flags! {
    /// How a sync start call treats items that are already syncing (`SYNCMGR_SYNC_CONTROL_FLAGS`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct SyncControlFlags: u32 {
        /// `SYNCMGR_SCF_NONE` (0x0): queue every named item, even one that is syncing now.
        const NONE = 0x0;
        /// `SYNCMGR_SCF_IGNORE_IF_ALREADY_SYNCING` (0x1): an item that is syncing now is not
        /// queued again; the request shares that sync's result instead.
        const IGNORE_IF_ALREADY_SYNCING = 0x1;
    }
}

sdk_flags! {
    /// How a state-change call behaves (`SYNCMGR_CONTROL_FLAGS`).
    ///
    /// Every call that registers, removes, updates, activates or enables takes one, and
    /// Rust code almost always passes [`ControlFlags::WAIT`]: the call returns once the
    /// handler's hook ran and the change is applied, with its error if it failed. Without
    /// `WAIT` the call returns at once and a failure arrives only as a
    /// `StateChangeFailed` notification. That difference is why the argument stays at every
    /// call instead of hiding behind a default: a reader sees at the call whether an error can
    /// come back. `Default` is the SDK's zero (`NOWAIT`), as for every flags type here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct ControlFlags: u32 {
        /// `SYNCMGR_CF_NONE` (0x0): no flags.
        const NONE = 0x0;
        /// `SYNCMGR_CF_NOWAIT` (0x0): return before the change has taken effect.
        const NOWAIT = 0x0;
        /// `SYNCMGR_CF_WAIT` (0x1): return once the change has taken effect.
        const WAIT = 0x1;
        /// `SYNCMGR_CF_NOUI` (0x2): show no user interface.
        const NOUI = 0x2;
    }
}

sdk_flags! {
    /// What a handler can do (`SYNCMGR_HANDLER_CAPABILITIES`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct HandlerCapabilities: u32 {
        /// `SYNCMGR_HCM_NONE` (0x0): no capabilities.
        const NONE = 0x0;
        /// `SYNCMGR_HCM_PROVIDES_ICON` (0x1): the handler provides its own icon.
        const PROVIDES_ICON = 0x1;
        /// `SYNCMGR_HCM_EVENT_STORE` (0x2): the handler keeps an event store.
        const EVENT_STORE = 0x2;
        /// `SYNCMGR_HCM_CONFLICT_STORE` (0x4): the handler keeps a conflict store.
        const CONFLICT_STORE = 0x4;
        /// `SYNCMGR_HCM_SUPPORTS_CONCURRENT_SESSIONS` (0x10): the handler can run several
        /// sessions at once (over disjoint items).
        const SUPPORTS_CONCURRENT_SESSIONS = 0x10;
        /// `SYNCMGR_HCM_CAN_BROWSE_CONTENT` (0x10000): the handler's content can be browsed.
        const CAN_BROWSE_CONTENT = 0x10000;
        /// `SYNCMGR_HCM_CAN_SHOW_SCHEDULE` (0x20000): the handler can show its sync schedule.
        const CAN_SHOW_SCHEDULE = 0x20000;
        /// `SYNCMGR_HCM_QUERY_BEFORE_ACTIVATE` (0x100000): ask the user before activating.
        const QUERY_BEFORE_ACTIVATE = 0x100000;
        /// `SYNCMGR_HCM_QUERY_BEFORE_DEACTIVATE` (0x200000): ask the user before deactivating.
        const QUERY_BEFORE_DEACTIVATE = 0x200000;
        /// `SYNCMGR_HCM_QUERY_BEFORE_ENABLE` (0x400000): ask the user before enabling.
        const QUERY_BEFORE_ENABLE = 0x400000;
        /// `SYNCMGR_HCM_QUERY_BEFORE_DISABLE` (0x800000): ask the user before disabling.
        const QUERY_BEFORE_DISABLE = 0x800000;
    }
}

sdk_flags! {
    /// What a handler forbids (`SYNCMGR_HANDLER_POLICIES`).
    ///
    /// Header quirk: the SDK's `SYNCMGR_HPM_VALID_MASK` is 0x12F3F, which leaves out its own
    /// `SYNCMGR_HPM_DISABLE_BROWSE` (0x1000). This type accepts that bit, so its
    /// [`VALID_MASK`](Self::VALID_MASK) is 0x13F3F.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct HandlerPolicies: u32 {
        /// `SYNCMGR_HPM_NONE` (0x0): no policies.
        const NONE = 0x0;
        /// `SYNCMGR_HPM_PREVENT_ACTIVATE` (0x1): the handler cannot be activated.
        const PREVENT_ACTIVATE = 0x1;
        /// `SYNCMGR_HPM_PREVENT_DEACTIVATE` (0x2): the handler cannot be deactivated.
        const PREVENT_DEACTIVATE = 0x2;
        /// `SYNCMGR_HPM_PREVENT_ENABLE` (0x4): the handler cannot be enabled.
        const PREVENT_ENABLE = 0x4;
        /// `SYNCMGR_HPM_PREVENT_DISABLE` (0x8): the handler cannot be disabled.
        const PREVENT_DISABLE = 0x8;
        /// `SYNCMGR_HPM_PREVENT_START_SYNC` (0x10): syncs of the handler cannot be started.
        const PREVENT_START_SYNC = 0x10;
        /// `SYNCMGR_HPM_PREVENT_STOP_SYNC` (0x20): syncs of the handler cannot be stopped.
        const PREVENT_STOP_SYNC = 0x20;
        /// `SYNCMGR_HPM_DISABLE_ENABLE` (0x100): the enable task is shown but unavailable.
        const DISABLE_ENABLE = 0x100;
        /// `SYNCMGR_HPM_DISABLE_DISABLE` (0x200): the disable task is shown but unavailable.
        const DISABLE_DISABLE = 0x200;
        /// `SYNCMGR_HPM_DISABLE_START_SYNC` (0x400): the sync task is shown but unavailable.
        const DISABLE_START_SYNC = 0x400;
        /// `SYNCMGR_HPM_DISABLE_STOP_SYNC` (0x800): the stop task is shown but unavailable.
        const DISABLE_STOP_SYNC = 0x800;
        /// `SYNCMGR_HPM_DISABLE_BROWSE` (0x1000): the browse task is shown but unavailable.
        /// Missing from the SDK's valid mask; accepted here.
        const DISABLE_BROWSE = 0x1000;
        /// `SYNCMGR_HPM_DISABLE_SCHEDULE` (0x2000): the schedule task is shown but unavailable.
        const DISABLE_SCHEDULE = 0x2000;
        /// `SYNCMGR_HPM_HIDDEN_BY_DEFAULT` (0x10000): the handler is hidden unless the user
        /// asks to see hidden handlers.
        const HIDDEN_BY_DEFAULT = 0x10000;
        /// `SYNCMGR_HPM_BACKGROUND_SYNC_ONLY` (0x30): syncs can be neither started nor stopped
        /// by request; the same bits as `PREVENT_START_SYNC | PREVENT_STOP_SYNC`.
        const BACKGROUND_SYNC_ONLY = 0x30;
    }
}

sdk_flags! {
    /// What an item can do (`SYNCMGR_ITEM_CAPABILITIES`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct ItemCapabilities: u32 {
        /// `SYNCMGR_ICM_NONE` (0x0): no capabilities.
        const NONE = 0x0;
        /// `SYNCMGR_ICM_PROVIDES_ICON` (0x1): the item provides its own icon.
        const PROVIDES_ICON = 0x1;
        /// `SYNCMGR_ICM_EVENT_STORE` (0x2): the item keeps an event store.
        const EVENT_STORE = 0x2;
        /// `SYNCMGR_ICM_CONFLICT_STORE` (0x4): the item keeps a conflict store.
        const CONFLICT_STORE = 0x4;
        /// `SYNCMGR_ICM_CAN_DELETE` (0x10): the item can be deleted.
        const CAN_DELETE = 0x10;
        /// `SYNCMGR_ICM_CAN_BROWSE_CONTENT` (0x10000): the item's content can be browsed.
        const CAN_BROWSE_CONTENT = 0x10000;
        /// `SYNCMGR_ICM_QUERY_BEFORE_ENABLE` (0x100000): ask the user before enabling.
        const QUERY_BEFORE_ENABLE = 0x100000;
        /// `SYNCMGR_ICM_QUERY_BEFORE_DISABLE` (0x200000): ask the user before disabling.
        const QUERY_BEFORE_DISABLE = 0x200000;
        /// `SYNCMGR_ICM_QUERY_BEFORE_DELETE` (0x400000): ask the user before deleting.
        const QUERY_BEFORE_DELETE = 0x400000;
    }
}

sdk_flags! {
    /// What an item forbids (`SYNCMGR_ITEM_POLICIES`).
    ///
    /// Header quirk: the SDK's `SYNCMGR_IPM_VALID_MASK` is 0x102FF, which leaves out its own
    /// `SYNCMGR_IPM_DISABLE_BROWSE` (0x100), as the handler mask leaves out the handler's. This
    /// type accepts that bit, so its [`VALID_MASK`](Self::VALID_MASK) is 0x103FF.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct ItemPolicies: u32 {
        /// `SYNCMGR_IPM_NONE` (0x0): no policies.
        const NONE = 0x0;
        /// `SYNCMGR_IPM_PREVENT_ENABLE` (0x1): the item cannot be enabled.
        const PREVENT_ENABLE = 0x1;
        /// `SYNCMGR_IPM_PREVENT_DISABLE` (0x2): the item cannot be disabled.
        const PREVENT_DISABLE = 0x2;
        /// `SYNCMGR_IPM_PREVENT_START_SYNC` (0x4): syncs of the item cannot be started.
        const PREVENT_START_SYNC = 0x4;
        /// `SYNCMGR_IPM_PREVENT_STOP_SYNC` (0x8): syncs of the item cannot be stopped.
        const PREVENT_STOP_SYNC = 0x8;
        /// `SYNCMGR_IPM_DISABLE_ENABLE` (0x10): the enable task is shown but unavailable.
        const DISABLE_ENABLE = 0x10;
        /// `SYNCMGR_IPM_DISABLE_DISABLE` (0x20): the disable task is shown but unavailable.
        const DISABLE_DISABLE = 0x20;
        /// `SYNCMGR_IPM_DISABLE_START_SYNC` (0x40): the sync task is shown but unavailable.
        const DISABLE_START_SYNC = 0x40;
        /// `SYNCMGR_IPM_DISABLE_STOP_SYNC` (0x80): the stop task is shown but unavailable.
        const DISABLE_STOP_SYNC = 0x80;
        /// `SYNCMGR_IPM_DISABLE_BROWSE` (0x100): the browse task is shown but unavailable.
        /// Missing from the SDK's valid mask; accepted here.
        const DISABLE_BROWSE = 0x100;
        /// `SYNCMGR_IPM_DISABLE_DELETE` (0x200): the delete task is shown but unavailable.
        const DISABLE_DELETE = 0x200;
        /// `SYNCMGR_IPM_HIDDEN_BY_DEFAULT` (0x10000): the item is hidden unless the user asks
        /// to see hidden items.
        const HIDDEN_BY_DEFAULT = 0x10000;
    }
}

mod enums;
pub use enums::*;

/// Shared checks for the flags tests of this module and of `legacy`.
#[cfg(test)]
pub(crate) mod testing {
    use crate::Error;

    /// Checks that `from_raw` accepts every bit of `mask` (alone and all together) and rejects
    /// every other bit, reporting the whole value and the unknown bits.
    pub(crate) fn check_mask<F: Copy + std::fmt::Debug>(
        type_name: &str,
        mask: u32,
        from_raw: impl Fn(u32) -> Result<F, Error>,
        to_raw: impl Fn(F) -> u32,
    ) {
        assert_eq!(to_raw(from_raw(mask).unwrap()), mask);
        assert_eq!(to_raw(from_raw(0).unwrap()), 0);
        for shift in 0..32 {
            let bit = 1u32 << shift;
            if mask & bit != 0 {
                assert_eq!(to_raw(from_raw(bit).unwrap()), bit, "{type_name} {bit:#x}");
            } else {
                for bits in [bit, bit | mask] {
                    match from_raw(bits) {
                        Err(Error::UnknownFlags {
                            type_name: name,
                            bits: got,
                            unknown,
                        }) => {
                            assert_eq!(name, type_name);
                            assert_eq!(got, bits);
                            assert_eq!(unknown, bit);
                        }
                        other => panic!("{type_name}: {bits:#x} gave {other:?}"),
                    }
                }
            }
        }
    }

    /// Checks that `from_raw` rejects `value` naming the enum and the value.
    pub(crate) fn check_rejected<E: std::fmt::Debug>(
        type_name: &str,
        value: u32,
        from_raw: impl Fn(u32) -> Result<E, Error>,
    ) {
        match from_raw(value) {
            Err(Error::UnknownValue {
                type_name: name,
                value: got,
            }) => {
                assert_eq!(name, type_name);
                assert_eq!(got, value);
            }
            other => panic!("{type_name}: {value:#x} gave {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{check_mask, check_rejected};
    use super::*;
    use crate::Error;

    #[test]
    fn sync_control_flags_values() {
        assert_eq!(SyncControlFlags::NONE.bits(), 0x0);
        assert_eq!(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING.bits(), 0x1);
        assert_eq!(SyncControlFlags::VALID_MASK, 0x1);
        assert_eq!(SyncControlFlags::default(), SyncControlFlags::NONE);
        check_mask(
            "SyncControlFlags",
            0x1,
            SyncControlFlags::from_raw,
            SyncControlFlags::to_raw,
        );
        assert!(SyncControlFlags::from_raw(0x2).is_err());
    }

    #[test]
    fn control_flags_values() {
        assert_eq!(ControlFlags::NONE.bits(), 0x0);
        assert_eq!(ControlFlags::NOWAIT.bits(), 0x0);
        assert_eq!(ControlFlags::WAIT.bits(), 0x1);
        assert_eq!(ControlFlags::NOUI.bits(), 0x2);
        assert_eq!(ControlFlags::VALID_MASK, 0x3);
        assert_eq!(ControlFlags::default(), ControlFlags::NOWAIT);
        check_mask(
            "ControlFlags",
            0x3,
            ControlFlags::from_raw,
            ControlFlags::to_raw,
        );
        assert!(ControlFlags::from_raw(0x4).is_err());
    }

    #[test]
    fn handler_capabilities_values() {
        let table = [
            (HandlerCapabilities::NONE, 0x0),
            (HandlerCapabilities::PROVIDES_ICON, 0x1),
            (HandlerCapabilities::EVENT_STORE, 0x2),
            (HandlerCapabilities::CONFLICT_STORE, 0x4),
            (HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS, 0x10),
            (HandlerCapabilities::CAN_BROWSE_CONTENT, 0x10000),
            (HandlerCapabilities::CAN_SHOW_SCHEDULE, 0x20000),
            (HandlerCapabilities::QUERY_BEFORE_ACTIVATE, 0x100000),
            (HandlerCapabilities::QUERY_BEFORE_DEACTIVATE, 0x200000),
            (HandlerCapabilities::QUERY_BEFORE_ENABLE, 0x400000),
            (HandlerCapabilities::QUERY_BEFORE_DISABLE, 0x800000),
        ];
        for (flag, value) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
        }
        assert_eq!(HandlerCapabilities::VALID_MASK, 0xF30017);
        check_mask(
            "HandlerCapabilities",
            0xF30017,
            HandlerCapabilities::from_raw,
            HandlerCapabilities::to_raw,
        );
        assert!(HandlerCapabilities::from_raw(0x8).is_err());
    }

    #[test]
    fn handler_policies_values() {
        let table = [
            (HandlerPolicies::NONE, 0x0),
            (HandlerPolicies::PREVENT_ACTIVATE, 0x1),
            (HandlerPolicies::PREVENT_DEACTIVATE, 0x2),
            (HandlerPolicies::PREVENT_ENABLE, 0x4),
            (HandlerPolicies::PREVENT_DISABLE, 0x8),
            (HandlerPolicies::PREVENT_START_SYNC, 0x10),
            (HandlerPolicies::PREVENT_STOP_SYNC, 0x20),
            (HandlerPolicies::DISABLE_ENABLE, 0x100),
            (HandlerPolicies::DISABLE_DISABLE, 0x200),
            (HandlerPolicies::DISABLE_START_SYNC, 0x400),
            (HandlerPolicies::DISABLE_STOP_SYNC, 0x800),
            (HandlerPolicies::DISABLE_BROWSE, 0x1000),
            (HandlerPolicies::DISABLE_SCHEDULE, 0x2000),
            (HandlerPolicies::HIDDEN_BY_DEFAULT, 0x10000),
            (HandlerPolicies::BACKGROUND_SYNC_ONLY, 0x30),
        ];
        for (flag, value) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
        }
        assert_eq!(
            HandlerPolicies::BACKGROUND_SYNC_ONLY,
            HandlerPolicies::PREVENT_START_SYNC | HandlerPolicies::PREVENT_STOP_SYNC
        );
        // The SDK's mask 0x12F3F plus DISABLE_BROWSE (0x1000).
        assert_eq!(HandlerPolicies::VALID_MASK, 0x12F3F | 0x1000);
        assert_eq!(HandlerPolicies::VALID_MASK, 0x13F3F);
        check_mask(
            "HandlerPolicies",
            0x13F3F,
            HandlerPolicies::from_raw,
            HandlerPolicies::to_raw,
        );
        assert_eq!(
            HandlerPolicies::from_raw(0x1000).unwrap(),
            HandlerPolicies::DISABLE_BROWSE
        );
    }

    #[test]
    fn item_capabilities_values() {
        let table = [
            (ItemCapabilities::NONE, 0x0),
            (ItemCapabilities::PROVIDES_ICON, 0x1),
            (ItemCapabilities::EVENT_STORE, 0x2),
            (ItemCapabilities::CONFLICT_STORE, 0x4),
            (ItemCapabilities::CAN_DELETE, 0x10),
            (ItemCapabilities::CAN_BROWSE_CONTENT, 0x10000),
            (ItemCapabilities::QUERY_BEFORE_ENABLE, 0x100000),
            (ItemCapabilities::QUERY_BEFORE_DISABLE, 0x200000),
            (ItemCapabilities::QUERY_BEFORE_DELETE, 0x400000),
        ];
        for (flag, value) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
        }
        assert_eq!(ItemCapabilities::VALID_MASK, 0x710017);
        check_mask(
            "ItemCapabilities",
            0x710017,
            ItemCapabilities::from_raw,
            ItemCapabilities::to_raw,
        );
        assert!(ItemCapabilities::from_raw(0x8).is_err());
    }

    #[test]
    fn item_policies_values() {
        let table = [
            (ItemPolicies::NONE, 0x0),
            (ItemPolicies::PREVENT_ENABLE, 0x1),
            (ItemPolicies::PREVENT_DISABLE, 0x2),
            (ItemPolicies::PREVENT_START_SYNC, 0x4),
            (ItemPolicies::PREVENT_STOP_SYNC, 0x8),
            (ItemPolicies::DISABLE_ENABLE, 0x10),
            (ItemPolicies::DISABLE_DISABLE, 0x20),
            (ItemPolicies::DISABLE_START_SYNC, 0x40),
            (ItemPolicies::DISABLE_STOP_SYNC, 0x80),
            (ItemPolicies::DISABLE_BROWSE, 0x100),
            (ItemPolicies::DISABLE_DELETE, 0x200),
            (ItemPolicies::HIDDEN_BY_DEFAULT, 0x10000),
        ];
        for (flag, value) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
        }
        // The SDK's mask 0x102FF plus DISABLE_BROWSE (0x100).
        assert_eq!(ItemPolicies::VALID_MASK, 0x102FF | 0x100);
        assert_eq!(ItemPolicies::VALID_MASK, 0x103FF);
        check_mask(
            "ItemPolicies",
            0x103FF,
            ItemPolicies::from_raw,
            ItemPolicies::to_raw,
        );
        assert!(ItemPolicies::from_raw(0x400).is_err());
    }

    #[test]
    fn unknown_flags_error_is_invalid_arg() {
        let err = SyncControlFlags::from_raw(0x3).unwrap_err();
        assert_eq!(
            err,
            Error::UnknownFlags {
                type_name: "SyncControlFlags",
                bits: 0x3,
                unknown: 0x2
            }
        );
        assert_eq!(err.hresult(), crate::hresult::E_INVALIDARG);
        assert_eq!(err.to_string(), "SyncControlFlags: unknown bits 0x2 in 0x3");
    }

    #[test]
    fn typed_operators_cannot_make_unknown_bits() {
        assert_eq!((!SyncControlFlags::NONE).bits(), 0x1);
        assert_eq!(HandlerPolicies::all().bits(), HandlerPolicies::VALID_MASK);
        assert_eq!(
            ItemCapabilities::from_bits_truncate(u32::MAX).bits(),
            ItemCapabilities::VALID_MASK
        );
    }

    #[test]
    fn progress_status_values() {
        let table = [
            (ProgressStatus::Updating, 1),
            (ProgressStatus::UpdatingIndeterminate, 2),
            (ProgressStatus::Succeeded, 3),
            (ProgressStatus::Failed, 4),
            (ProgressStatus::Canceled, 5),
            (ProgressStatus::Disconnected, 6),
        ];
        for (status, value) in table {
            assert_eq!(status.to_raw(), value);
            assert_eq!(u32::from(status), value);
            assert_eq!(ProgressStatus::from_raw(value).unwrap(), status);
            assert_eq!(ProgressStatus::try_from(value).unwrap(), status);
        }
        for value in [0, 7, 0x100, u32::MAX] {
            check_rejected("ProgressStatus", value, ProgressStatus::from_raw);
        }
        let terminal: Vec<_> = table
            .iter()
            .map(|&(s, _)| s)
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                ProgressStatus::Succeeded,
                ProgressStatus::Failed,
                ProgressStatus::Canceled,
                ProgressStatus::Disconnected
            ]
        );
    }

    #[test]
    fn cancel_request_values() {
        let table = [
            (CancelRequest::None, 0),
            (CancelRequest::CancelItem, 1),
            (CancelRequest::CancelAll, 2),
        ];
        for (request, value) in table {
            assert_eq!(request.to_raw(), value);
            assert_eq!(u32::from(request), value);
            assert_eq!(CancelRequest::try_from(value).unwrap(), request);
        }
        for value in [3, u32::MAX] {
            check_rejected("CancelRequest", value, CancelRequest::from_raw);
        }
    }

    #[test]
    fn event_level_values() {
        let table = [
            (EventLevel::Information, 1),
            (EventLevel::Warning, 2),
            (EventLevel::Error, 3),
        ];
        for (level, value) in table {
            assert_eq!(level.to_raw(), value);
            assert_eq!(u32::from(level), value);
            assert_eq!(EventLevel::try_from(value).unwrap(), level);
        }
        for value in [0, 4] {
            check_rejected("EventLevel", value, EventLevel::from_raw);
        }
    }

    #[test]
    fn handler_type_values() {
        let table = [
            (HandlerType::Unspecified, 0),
            (HandlerType::Application, 1),
            (HandlerType::Device, 2),
            (HandlerType::Folder, 3),
            (HandlerType::Service, 4),
            (HandlerType::Computer, 5),
        ];
        for (kind, value) in table {
            assert_eq!(kind.to_raw(), value);
            assert_eq!(u32::from(kind), value);
            assert_eq!(HandlerType::try_from(value).unwrap(), kind);
        }
        check_rejected("HandlerType", 6, HandlerType::from_raw);
        assert_eq!(HandlerType::default(), HandlerType::Unspecified);
    }

    #[test]
    fn update_reason_values() {
        let table = [
            (UpdateReason::Added, 0),
            (UpdateReason::Changed, 1),
            (UpdateReason::Removed, 2),
        ];
        for (reason, value) in table {
            assert_eq!(reason.to_raw(), value);
            assert_eq!(u32::from(reason), value);
            assert_eq!(UpdateReason::try_from(value).unwrap(), reason);
        }
        check_rejected("UpdateReason", 3, UpdateReason::from_raw);
    }

    #[test]
    fn unknown_value_error_is_invalid_arg() {
        let err = ProgressStatus::from_raw(0).unwrap_err();
        assert_eq!(err.hresult(), crate::hresult::E_INVALIDARG);
        assert_eq!(
            err.to_string(),
            "ProgressStatus: 0x0 is not a defined value"
        );
    }
}
