//! Raw flag and enum conversions (SPEC section 3): every `from_raw` of `src/flags.rs` and
//! `src/legacy/values.rs` fed an arbitrary `u32`. A flags type accepts exactly the values within
//! its SDK mask (written here as literals from the SPEC, not taken from the type) and gives the
//! same bits back; outside it, `UnknownFlags` names the type, the whole value and the unknown
//! bits (`E_INVALIDARG`). An enum accepts exactly its SDK values and round-trips through
//! `to_raw`, `TryFrom<u32>` and `From<_> for u32`; anything else is `UnknownValue`.
//! `SyncMgrFlag::event()` never panics and reads an unknown event code as `Manual`, and so does
//! `TriggerReason::from`. The legacy cancel codes map back only from the three codes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use syncmgr::legacy::{
    self, InvokeFlags, ItemState, LegacyHandlerFlags, LegacyItemFlags, LogLevel, SyncEvent,
    SyncMgrFlag, SyncMgrStatus,
};
use syncmgr::{
    CancelRequest, ControlFlags, Error, EventLevel, HandlerCapabilities, HandlerPolicies,
    HandlerType, ItemCapabilities, ItemPolicies, ProgressStatus, SyncControlFlags, TriggerReason,
    UpdateReason, hresult,
};

/// One flags type against its SDK mask.
macro_rules! check_flags {
    ($ty:ident, $mask:expr, $bits:expr) => {{
        let (mask, bits): (u32, u32) = ($mask, $bits);
        assert_eq!($ty::VALID_MASK, mask, stringify!($ty));
        match $ty::from_raw(bits) {
            Ok(flags) => {
                assert_eq!(bits & !mask, 0, "{} accepted {bits:#x}", stringify!($ty));
                assert_eq!(flags.to_raw(), bits);
                assert_eq!(flags.bits(), bits);
                let _ = format!("{flags:?}");
            }
            Err(err) => {
                assert_ne!(bits & !mask, 0, "{} refused {bits:#x}", stringify!($ty));
                assert_eq!(err.hresult(), hresult::E_INVALIDARG);
                match &err {
                    Error::UnknownFlags {
                        type_name,
                        bits: got,
                        unknown,
                    } => {
                        assert_eq!(*type_name, stringify!($ty));
                        assert_eq!(*got, bits);
                        assert_eq!(*unknown, bits & !mask);
                    }
                    other => panic!("{} {bits:#x}: {other:?}", stringify!($ty)),
                }
                let _ = err.to_string();
            }
        }
        // Whatever the bits, the typed value bitflags keeps as given formats without a panic.
        let _ = format!("{:?}", $ty::from_bits_retain(bits));
    }};
}

/// One enum against its SDK values.
macro_rules! check_enum {
    ($ty:ident, [$($variant:ident = $value:expr),+ $(,)?], $raw:expr) => {{
        let raw: u32 = $raw;
        let expected = match raw {
            $( v if v == $value => Some($ty::$variant), )+
            _ => None,
        };
        match ($ty::from_raw(raw), expected) {
            (Ok(got), Some(want)) => {
                assert_eq!(got, want);
                assert_eq!(got.to_raw(), raw);
                assert_eq!(u32::from(got), raw);
                assert_eq!($ty::try_from(raw).ok(), Some(got));
            }
            (Err(err), None) => {
                assert_eq!(err.hresult(), hresult::E_INVALIDARG);
                match &err {
                    Error::UnknownValue { type_name, value } => {
                        assert_eq!(*type_name, stringify!($ty));
                        assert_eq!(*value, raw);
                    }
                    other => panic!("{} {raw:#x}: {other:?}", stringify!($ty)),
                }
                assert!($ty::try_from(raw).is_err());
            }
            (got, want) => panic!("{} {raw:#x}: got {got:?}, want {want:?}", stringify!($ty)),
        }
        // Every defined value round-trips, whatever the input.
        $( assert_eq!($ty::from_raw($value).ok(), Some($ty::$variant)); )+
    }};
}

fn check_all(raw: u32) {
    check_flags!(SyncControlFlags, 0x1, raw);
    check_flags!(ControlFlags, 0x3, raw);
    check_flags!(HandlerCapabilities, 0xF3_0017, raw);
    // The SDK's 0x12F3F plus the DISABLE_BROWSE bit it leaves out (SPEC section 3).
    check_flags!(HandlerPolicies, 0x1_3F3F, raw);
    check_flags!(ItemCapabilities, 0x71_0017, raw);
    check_flags!(ItemPolicies, 0x1_03FF, raw);
    check_flags!(InvokeFlags, 0x6, raw);
    check_flags!(SyncMgrFlag, 0x3FF, raw);
    check_flags!(LegacyItemFlags, 0x3F, raw);
    check_flags!(LegacyHandlerFlags, 0xF, raw);

    check_enum!(
        ProgressStatus,
        [
            Updating = 1,
            UpdatingIndeterminate = 2,
            Succeeded = 3,
            Failed = 4,
            Canceled = 5,
            Disconnected = 6,
        ],
        raw
    );
    check_enum!(
        CancelRequest,
        [None = 0, CancelItem = 1, CancelAll = 2],
        raw
    );
    check_enum!(EventLevel, [Information = 1, Warning = 2, Error = 3], raw);
    check_enum!(
        HandlerType,
        [
            Unspecified = 0,
            Application = 1,
            Device = 2,
            Folder = 3,
            Service = 4,
            Computer = 5,
        ],
        raw
    );
    check_enum!(UpdateReason, [Added = 0, Changed = 1, Removed = 2], raw);
    check_enum!(
        SyncEvent,
        [
            Connect = 1,
            PendingDisconnect = 2,
            Manual = 3,
            Idle = 4,
            Invoke = 5,
            Scheduled = 6,
        ],
        raw
    );
    check_enum!(
        SyncMgrStatus,
        [
            Stopped = 0,
            Skipped = 1,
            Pending = 2,
            Updating = 3,
            Succeeded = 4,
            Failed = 5,
            Paused = 6,
            Resuming = 7,
            UpdatingIndeterminate = 8,
            Deleted = 0x100,
        ],
        raw
    );
    check_enum!(LogLevel, [Information = 1, Warning = 2, Error = 3], raw);
    check_enum!(ItemState, [Unchecked = 0, Checked = 1], raw);

    // The event code of SYNCMGRFLAG, for any bits at all (also those `from_raw` refuses).
    let flags = SyncMgrFlag::from_bits_retain(raw);
    let event = match raw & 0xFF {
        1 => SyncEvent::Connect,
        2 => SyncEvent::PendingDisconnect,
        4 => SyncEvent::Idle,
        5 => SyncEvent::Invoke,
        6 => SyncEvent::Scheduled,
        // MANUAL itself, and every unknown code (SPEC section 3).
        _ => SyncEvent::Manual,
    };
    assert_eq!(flags.event(), event, "{raw:#x}");
    assert_eq!(SyncEvent::from(TriggerReason::from(flags)), event);
    assert_eq!(SyncMgrFlag::from_event(event).event(), event);
    if let Ok(status) = SyncMgrStatus::from_raw(raw) {
        let _ = ProgressStatus::from(status);
    }

    // Legacy cancel codes: only S_OK and the two S_SYNCMGR_CANCEL* codes mean something.
    let code = raw as i32;
    match legacy::cancel_from_code(code) {
        Some(cancel) => assert_eq!(legacy::cancel_code(cancel), code),
        None => assert!(
            ![
                hresult::S_OK,
                hresult::S_SYNCMGR_CANCELITEM,
                hresult::S_SYNCMGR_CANCELALL
            ]
            .contains(&code)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    // Every 4 bytes are one value (little-endian); a short tail is zero-padded.
    for chunk in data.chunks(4).take(64) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        check_all(u32::from_le_bytes(word));
    }
});
