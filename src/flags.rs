//! Flags and enums of the current Sync Center API (`syncmgr.h`), with the SDK's exact values.
//!
//! Every type converts from raw `u32` values with `from_raw`, which rejects what the SDK does
//! not define (never truncates), and back with `to_raw`. A value written by this crate means the
//! same thing to Windows.

/// Declares an SDK flags type: a `bitflags` type plus `VALID_MASK`, `from_raw` and `to_raw`.
///
/// `VALID_MASK` is the union of the named flags; the tests pin it to the literal SDK value.
///
/// With the `serde` feature the type is written as bitflags writes flags (see
/// `serde_flags`), and read back through `from_raw`'s check. A type whose names bitflags
/// would not write well gives its own text writer after the body: `serde_text = path;`.
macro_rules! sdk_flags {
    (
        $(#[$($outer:tt)*])*
        pub struct $name:ident: u32 {
            $(
                $(#[$($inner:tt)*])*
                const $flag:ident = $value:expr;
            )*
        }
        $(serde_text = $text:path;)?
    ) => {
        // Attributes pass as token trees: `bitflags!` cannot re-parse a `meta` fragment.
        bitflags::bitflags! {
            $(#[$($outer)*])*
            ///
            /// # Unknown bits
            ///
            /// A raw value is never silently truncated: [`from_raw`](Self::from_raw) rejects any
            /// bit outside [`VALID_MASK`](Self::VALID_MASK) with
            /// [`Error::UnknownFlags`](crate::Error::UnknownFlags). The named constants, the bit
            /// operators (`|`, `&`, `^`, `!`, `-`) and bitflags' `from_bits` and
            /// `from_bits_truncate` cannot make unknown bits. Only bitflags' `from_bits_retain`
            /// (and its text parser, which reads hex) keep them as given, so take raw bits from
            /// outside through `from_raw`.
            ///
            /// # Serialization
            ///
            /// With the `serde` feature, human-readable formats (JSON, TOML, …) write the flags'
            /// names joined by `" | "` (`"WAIT | NOUI"`; no flag is `""`), and binary formats
            /// write the raw `u32`. The text may also give raw bits in hex (`"0x3"`), as
            /// bitflags' text grammar allows. Reading refuses a name the type does not have
            /// (naming it) and, as `from_raw` does and with its message, any bit outside
            /// `VALID_MASK`. A value that carries unknown bits (from `from_bits_retain`) is
            /// written with them in hex, and so cannot be read back.
            pub struct $name: u32 {
                $(
                    $(#[$($inner)*])*
                    const $flag = $value;
                )*
            }
        }

        impl $name {
            #[doc = concat!("Every bit defined for `", stringify!($name), "`.")]
            pub const VALID_MASK: u32 = Self::all().bits();

            /// Converts raw bits, rejecting any bit outside [`VALID_MASK`](Self::VALID_MASK).
            ///
            /// # Errors
            ///
            /// [`Error::UnknownFlags`](crate::Error::UnknownFlags) with the whole value and the
            /// unknown bits (`E_INVALIDARG`).
            pub fn from_raw(bits: u32) -> Result<Self, $crate::Error> {
                let unknown = bits & !Self::VALID_MASK;
                if unknown != 0 {
                    return Err($crate::Error::UnknownFlags {
                        type_name: stringify!($name),
                        bits,
                        unknown,
                    });
                }
                Ok(Self::from_bits_retain(bits))
            }

            /// The raw bits, as the SDK writes them.
            pub const fn to_raw(self) -> u32 {
                self.bits()
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[allow(unused_variables)]
                let text: $crate::flags::serde_flags::WriteText<Self> =
                    |flags, f| bitflags::parser::to_writer(flags, f);
                $(let text: $crate::flags::serde_flags::WriteText<Self> = $text;)?
                $crate::flags::serde_flags::serialize(self, text, serializer)
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::flags::serde_flags::deserialize(
                    deserializer,
                    stringify!($name),
                    Self::from_raw,
                )
            }
        }
    };
}
pub(crate) use sdk_flags;

/// The `serde` impls that [`sdk_flags!`] gives every flags type: bitflags' format (its text
/// writer, its text grammar), with `from_raw`'s check on the way in.
///
/// bitflags' own serde support reads unknown bits without complaint (a hex part of the text,
/// or any integer in a binary format, is kept as given), and its parse errors do not name the
/// part they refuse without its `std` feature, so the text is read here, by the same grammar.
#[cfg(feature = "serde")]
pub(crate) mod serde_flags {
    use std::fmt;
    use std::marker::PhantomData;

    use bitflags::Flags;
    use serde::de::{Error as _, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes a flags value as text.
    pub(crate) type WriteText<F> = fn(&F, &mut fmt::Formatter<'_>) -> fmt::Result;

    struct Text<'a, F>(&'a F, WriteText<F>);

    impl<F> fmt::Display for Text<'_, F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            (self.1)(self.0, f)
        }
    }

    /// Text in human-readable formats, the raw `u32` in the others (bitflags' choice).
    pub(crate) fn serialize<F, S>(
        flags: &F,
        text: WriteText<F>,
        serializer: S,
    ) -> Result<S::Ok, S::Error>
    where
        F: Flags<Bits = u32>,
        S: Serializer,
    {
        if serializer.is_human_readable() {
            serializer.collect_str(&Text(flags, text))
        } else {
            flags.bits().serialize(serializer)
        }
    }

    /// Text (names and hex parts joined by `|`) in human-readable formats, the raw `u32` in
    /// the others; then `from_raw`'s check of the bits.
    pub(crate) fn deserialize<'de, F, D>(
        deserializer: D,
        type_name: &'static str,
        from_raw: fn(u32) -> Result<F, crate::Error>,
    ) -> Result<F, D::Error>
    where
        F: Flags<Bits = u32>,
        D: Deserializer<'de>,
    {
        let bits = if deserializer.is_human_readable() {
            deserializer.deserialize_str(TextVisitor::<F>(type_name, PhantomData))?
        } else {
            u32::deserialize(deserializer)?
        };
        from_raw(bits).map_err(D::Error::custom)
    }

    struct TextVisitor<F>(&'static str, PhantomData<F>);

    impl<F: Flags<Bits = u32>> Visitor<'_> for TextVisitor<F> {
        type Value = u32;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "{} as text: flag names or hex bits, joined by `|`",
                self.0
            )
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<u32, E> {
            parse::<F>(text).map_err(|why| E::custom(format_args!("{}: {why}", self.0)))
        }
    }

    /// bitflags' text grammar: the empty text, or parts joined by `|`, each a flag's name or
    /// `0x` and hex digits, with whitespace around them. Names are case-sensitive.
    fn parse<F: Flags<Bits = u32>>(text: &str) -> Result<u32, String> {
        if text.trim().is_empty() {
            return Ok(0);
        }
        text.split('|').map(str::trim).try_fold(0, |bits, part| {
            let one = if part.is_empty() {
                return Err(format!("an empty part in {text:?}"));
            } else if let Some(hex) = part.strip_prefix("0x") {
                u32::from_str_radix(hex, 16)
                    .map_err(|_| format!("`{part}` is not a 32-bit hex number"))?
            } else {
                F::from_name(part)
                    .map(|flag| flag.bits())
                    .ok_or_else(|| format!("`{part}` is not one of its flags"))?
            };
            Ok(bits | one)
        })
    }
}

/// Declares an SDK enum: explicit `u32` discriminants plus `from_raw`, `TryFrom<u32>`, `to_raw`
/// and `From<Self> for u32`.
macro_rules! sdk_enum {
    (
        $(#[$outer:meta])*
        pub enum $name:ident {
            $(
                $(#[$inner:meta])*
                $variant:ident = $value:literal,
            )+
        }
    ) => {
        $(#[$outer])*
        ///
        /// With the `serde` feature a value is written as its variant's name (`"Updating"`),
        /// not its raw SDK number; reading refuses any other name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[repr(u32)]
        pub enum $name {
            $(
                $(#[$inner])*
                $variant = $value,
            )+
        }

        impl $name {
            /// Converts a raw SDK value.
            ///
            /// # Errors
            ///
            /// [`Error::UnknownValue`](crate::Error::UnknownValue) if `value` is not one of the
            /// defined values (`E_INVALIDARG`).
            pub fn from_raw(value: u32) -> Result<Self, $crate::Error> {
                match value {
                    $( $value => Ok(Self::$variant), )+
                    _ => Err($crate::Error::UnknownValue {
                        type_name: stringify!($name),
                        value,
                    }),
                }
            }

            /// The raw SDK value.
            pub const fn to_raw(self) -> u32 {
                self as u32
            }
        }

        impl TryFrom<u32> for $name {
            type Error = $crate::Error;

            fn try_from(value: u32) -> Result<Self, $crate::Error> {
                Self::from_raw(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value.to_raw()
            }
        }
    };
}
pub(crate) use sdk_enum;

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

sdk_enum! {
    /// The state an item reports during a session (`SYNCMGR_PROGRESS_STATUS`). There is no 0.
    pub enum ProgressStatus {
        /// `SYNCMGR_PS_UPDATING` (1): syncing, with a known amount of work.
        Updating = 1,
        /// `SYNCMGR_PS_UPDATING_INDETERMINATE` (2): syncing, amount of work unknown.
        UpdatingIndeterminate = 2,
        /// `SYNCMGR_PS_SUCCEEDED` (3): finished successfully.
        Succeeded = 3,
        /// `SYNCMGR_PS_FAILED` (4): finished with an error.
        Failed = 4,
        /// `SYNCMGR_PS_CANCELED` (5): stopped before it finished.
        Canceled = 5,
        /// `SYNCMGR_PS_DISCONNECTED` (6): not synced because the handler is disconnected.
        Disconnected = 6,
    }
}

impl ProgressStatus {
    /// Whether this status ends the item's part in the session: `Succeeded`, `Failed`,
    /// `Canceled` or `Disconnected`.
    ///
    /// ```
    /// use syncmgr::ProgressStatus;
    /// assert!(ProgressStatus::Failed.is_terminal());
    /// assert!(!ProgressStatus::Updating.is_terminal());
    /// ```
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            ProgressStatus::Succeeded
                | ProgressStatus::Failed
                | ProgressStatus::Canceled
                | ProgressStatus::Disconnected
        )
    }
}

sdk_enum! {
    /// What the manager asks of a running session when it answers a progress report
    /// (`SYNCMGR_CANCEL_REQUEST`).
    pub enum CancelRequest {
        /// `SYNCMGR_CR_NONE` (0): carry on.
        None = 0,
        /// `SYNCMGR_CR_CANCEL_ITEM` (1): stop syncing the reported item.
        CancelItem = 1,
        /// `SYNCMGR_CR_CANCEL_ALL` (2): stop the whole session.
        CancelAll = 2,
    }
}

sdk_enum! {
    /// The severity of an event a handler reports (`SYNCMGR_EVENT_LEVEL`).
    pub enum EventLevel {
        /// `SYNCMGR_EL_INFORMATION` (1): for information.
        Information = 1,
        /// `SYNCMGR_EL_WARNING` (2): something went wrong but the sync went on.
        Warning = 2,
        /// `SYNCMGR_EL_ERROR` (3): something failed.
        Error = 3,
    }
}

sdk_enum! {
    /// What kind of thing a handler syncs (`SYNCMGR_HANDLER_TYPE`). The default is
    /// [`Unspecified`](Self::Unspecified), as in the SDK.
    #[derive(Default)]
    pub enum HandlerType {
        /// `SYNCMGR_HT_UNSPECIFIED` (0): not said.
        #[default]
        Unspecified = 0,
        /// `SYNCMGR_HT_APPLICATION` (1): an application.
        Application = 1,
        /// `SYNCMGR_HT_DEVICE` (2): a device.
        Device = 2,
        /// `SYNCMGR_HT_FOLDER` (3): a folder.
        Folder = 3,
        /// `SYNCMGR_HT_SERVICE` (4): a service.
        Service = 4,
        /// `SYNCMGR_HT_COMPUTER` (5): a computer.
        Computer = 5,
    }
}

sdk_enum! {
    /// Why a handler's or item's registration changed (`SYNCMGR_UPDATE_REASON`).
    pub enum UpdateReason {
        /// `SYNCMGR_UR_ADDED` (0): it was added.
        Added = 0,
        /// `SYNCMGR_UR_CHANGED` (1): it changed.
        Changed = 1,
        /// `SYNCMGR_UR_REMOVED` (2): it was removed.
        Removed = 2,
    }
}

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
