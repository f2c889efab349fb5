//! The crate's error type and the HRESULT values it maps to.
//!
//! Every fallible call of the crate returns [`Error`]. Each variant says which calls return it
//! and which HRESULT [`Error::hresult`] gives for it, so that code that speaks to Windows
//! components, or logs in their terms, means the same thing by it.

use crate::Outcome;
use crate::cause::Cause;
use crate::flags::{HandlerPolicies, ItemPolicies, ProgressStatus};
use crate::id::{HandlerId, IdError, ItemId, RequestId, SessionId};

/// HRESULT values of the Windows SDK that this crate's errors and legacy codes map to.
///
/// They are `i32`, as `HRESULT` is on Windows: failure codes are negative.
pub mod hresult {
    /// `S_OK`: success.
    pub const S_OK: i32 = 0;
    /// `E_INVALIDARG` (0x80070057): an argument is invalid.
    pub const E_INVALIDARG: i32 = 0x8007_0057_u32 as i32;
    /// `E_ACCESSDENIED` (0x80070005): a policy or state forbids the call.
    pub const E_ACCESSDENIED: i32 = 0x8007_0005_u32 as i32;
    /// `E_UNEXPECTED` (0x8000FFFF): the call came at a time it cannot be served (after shutdown).
    pub const E_UNEXPECTED: i32 = 0x8000_FFFF_u32 as i32;
    /// `E_FAIL` (0x80004005): unspecified failure.
    pub const E_FAIL: i32 = 0x8000_4005_u32 as i32;
    /// `E_OUTOFMEMORY` (0x8007000E).
    pub const E_OUTOFMEMORY: i32 = 0x8007_000E_u32 as i32;
    /// `CLASS_E_CLASSNOTAVAILABLE` (0x80040111): the handler is not registered.
    pub const CLASS_E_CLASSNOTAVAILABLE: i32 = 0x8004_0111_u32 as i32;
    /// `E_NOTIMPL` (0x80004001): the handler does not implement the call.
    pub const E_NOTIMPL: i32 = 0x8000_4001_u32 as i32;
    /// `S_SYNCMGR_MISSINGITEMS` (0x00040201), a legacy success code.
    pub const S_SYNCMGR_MISSINGITEMS: i32 = 0x0004_0201;
    /// `S_SYNCMGR_RETRYSYNC` (0x00040202), a legacy success code.
    pub const S_SYNCMGR_RETRYSYNC: i32 = 0x0004_0202;
    /// `S_SYNCMGR_CANCELITEM` (0x00040203), a legacy success code: cancel this item.
    pub const S_SYNCMGR_CANCELITEM: i32 = 0x0004_0203;
    /// `S_SYNCMGR_CANCELALL` (0x00040204), a legacy success code: cancel the whole sync.
    pub const S_SYNCMGR_CANCELALL: i32 = 0x0004_0204;
}

/// Why a call was refused with [`Error::AccessDenied`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Denied {
    /// The handler's policies forbid the call; the field names the policy bit that did.
    HandlerPolicy(HandlerPolicies),
    /// The item's policies forbid the call; the fields name the item and the policy bit.
    ItemPolicy {
        /// The item whose policy forbids the call.
        item: ItemId,
        /// The policy bit that forbids it.
        policy: ItemPolicies,
    },
    /// The handler is not active.
    HandlerInactive,
    /// The handler is disabled.
    HandlerDisabled,
    /// A named item is disabled.
    ItemDisabled(ItemId),
    /// The handler, asked first because of a `QUERY_BEFORE_*` capability, refused the change.
    Refused,
    /// The item already reached a terminal state in this session; only `Failed` is still
    /// accepted, so the item is now marked `Failed` (Sync Center's terminal rule).
    TerminalState {
        /// The item.
        item: ItemId,
        /// The terminal outcome it had reached.
        reached: Outcome,
        /// The status that was refused.
        reported: ProgressStatus,
    },
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::HandlerPolicy(p) => write!(f, "the handler's policy {p:?} forbids it"),
            Denied::ItemPolicy { item, policy } => {
                write!(f, "item `{item}` has policy {policy:?}")
            }
            Denied::HandlerInactive => f.write_str("the handler is not active"),
            Denied::HandlerDisabled => f.write_str("the handler is disabled"),
            Denied::ItemDisabled(item) => write!(f, "item `{item}` is disabled"),
            Denied::Refused => f.write_str("the handler refused the change"),
            Denied::TerminalState {
                item,
                reached,
                reported,
            } => write!(
                f,
                "item `{item}` already reached {reached:?}; {reported:?} is refused and the item is now Failed"
            ),
        }
    }
}

/// Which text a [`Error::TextTooLong`] is about, and so which limit applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TextKind {
    /// A progress or status text: `MAX_SYNCMGR_PROGRESSTEXT`.
    Progress,
    /// A display name: `MAX_SYNCMGR_NAME`.
    Name,
}

/// The error of every fallible call in `syncmgr`.
///
/// Each variant documents the calls that return it and the HRESULT that [`Error::hresult`]
/// maps it to. A call that returns an error has changed nothing, with one exception, Sync
/// Center's terminal rule: [`Denied::TerminalState`] marks the item `Failed`.
///
/// # Serialization
///
/// With the `serde` feature an error is written as an externally tagged enum, each variant
/// with its fields (`"ShutDown"`, `{"UnknownItem": {"handler": "mail", "item": "spam"}}`,
/// `{"InvalidPolicy": {"field": "retry.factor", "rule": "a finite number, at least 1"}}`).
/// Reading one back gives the same variant with the same fields, with one limit: the texts
/// that the crate keeps as `&'static str` (the `type_name` of [`Error::UnknownFlags`] and
/// [`Error::UnknownValue`], the message of [`Error::InvalidConfig`], the `field` and `rule`
/// of [`Error::InvalidPolicy`]) are read only if they are texts this version of the crate
/// produces; any other text is refused (the crate would have to leak memory to keep it). The
/// IDs and flags inside are checked as they always are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An ID's text broke a rule (empty, NUL, too long). Returned by `HandlerId::new`,
    /// `ItemId::new` and every call that takes ID text. `E_INVALIDARG`.
    #[error(transparent)]
    InvalidId(#[from] IdError),

    /// A raw flags value had bits outside the type's valid mask. Returned by each flags type's
    /// `from_raw`. `E_INVALIDARG`.
    #[error("{type_name}: unknown bits {unknown:#x} in {bits:#x}")]
    UnknownFlags {
        /// The flags type, for example `"SyncControlFlags"`.
        type_name: &'static str,
        /// The whole rejected value.
        bits: u32,
        /// The bits that are not defined for the type.
        unknown: u32,
    },

    /// A raw value is not one of an enum's defined values. Returned by each enum's
    /// `from_raw`/`TryFrom<u32>`. `E_INVALIDARG`.
    #[error("{type_name}: {value:#x} is not a defined value")]
    UnknownValue {
        /// The enum, for example `"ProgressStatus"`.
        type_name: &'static str,
        /// The rejected value.
        value: u32,
    },

    /// No handler is registered under this ID. Returned by every call that names a handler.
    /// `CLASS_E_CLASSNOTAVAILABLE`.
    #[error("no handler is registered as `{0}`")]
    UnknownHandler(HandlerId),

    /// A handler is already registered under this ID. Returned by handler registration.
    /// `E_INVALIDARG`.
    #[error("a handler is already registered as `{0}`")]
    HandlerExists(HandlerId),

    /// The handler does not own this item. Returned by item sync and stop calls, item state
    /// changes and session calls that name an item. `E_INVALIDARG`.
    #[error("handler `{handler}` has no item `{item}`")]
    UnknownItem {
        /// The handler.
        handler: HandlerId,
        /// The item it does not own.
        item: ItemId,
    },

    /// An item list given to a registration or update holds the same item twice, or an item
    /// proposed during a session already exists. `E_INVALIDARG`.
    #[error("handler `{handler}` already has an item `{item}`")]
    ItemExists {
        /// The handler.
        handler: HandlerId,
        /// The item named twice.
        item: ItemId,
    },

    /// An item sync or stop named no item. `E_INVALIDARG`.
    #[error("the item list is empty")]
    EmptyItemList,

    /// A policy or the handler's or item's state forbids the call. Returned by start, stop and
    /// state-change calls, and by progress reports under the terminal rule. `E_ACCESSDENIED`.
    #[error("access denied: {0}")]
    AccessDenied(Denied),

    /// The manager or engine was shut down. Returned by every start and state-change call
    /// after shutdown. `E_UNEXPECTED`.
    #[error("syncmgr was shut down")]
    ShutDown,

    /// The session is not running (it ended, or never existed). Returned by every session
    /// call. `E_UNEXPECTED`.
    #[error("session {0} is not running")]
    UnknownSession(SessionId),

    /// A session call named an item that is not part of the session. `E_INVALIDARG`.
    #[error("item `{0}` is not in this session")]
    ItemNotInSession(ItemId),

    /// `add_item_to_session` named an item already in the session. `E_INVALIDARG`.
    #[error("item `{0}` is already in this session")]
    ItemAlreadyInSession(ItemId),

    /// `add_item_to_session` named an item that is not pending, or that another running
    /// session of the handler holds. `E_INVALIDARG`.
    #[error("item `{0}` is not pending for this handler")]
    ItemNotPending(ItemId),

    /// `commit_item` named an item that was never proposed in this session. `E_INVALIDARG`.
    #[error("item `{0}` was not proposed in this session")]
    ItemNotProposed(ItemId),

    /// A request ID that was never issued. Returned by request cancel. `E_INVALIDARG`.
    #[error("request {0} was never issued")]
    UnknownRequest(RequestId),

    /// A text is longer than its limit (counted in UTF-16 units with the NUL, as on Windows).
    /// `E_INVALIDARG`.
    #[error("{kind:?} text is {units} UTF-16 units with its NUL; the limit is {max}")]
    TextTooLong {
        /// Which text.
        kind: TextKind,
        /// Its length in UTF-16 units, counting the terminating NUL.
        units: usize,
        /// The limit, counting the NUL.
        max: usize,
    },

    /// A handler hook (`on_state_change`, `query_state_change`, or one of
    /// the methods read at registration) returned an error or panicked; the cause is the
    /// hook's error with its `source()` chain, or the panic's message. Returned by the
    /// state-change and registration calls of the manager. `E_FAIL`.
    ///
    /// Its `Display` prints the whole chain (`the handler failed: outer: inner`) and its
    /// `source()` is `None`, so an error reporter prints each message once; match the variant
    /// to walk the chain with [`Cause::chain`].
    #[error("the handler failed: {0:#}")]
    HandlerFailed(Cause),

    /// The system could not start one of the manager's threads. Returned by
    /// `SyncManagerBuilder::build`. `E_OUTOFMEMORY` (the system is out of resources).
    #[error("could not start a thread: {0}")]
    Spawn(String),

    /// A configuration value is out of range (for example a session limit of zero).
    /// `E_INVALIDARG`.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),

    /// A sync policy value is out of its range (for example a debounce whose `max_wait` is
    /// below its `quiet`). Returned when a handler is registered or its policy changed, which
    /// then changes nothing. `E_INVALIDARG`.
    #[error("invalid sync policy: {field} must be {rule}")]
    InvalidPolicy {
        /// The field, as `debounce.max_wait`.
        field: &'static str,
        /// The range it must be in.
        rule: &'static str,
    },
}

impl Error {
    /// The HRESULT this error stands for, with the Windows SDK's value.
    ///
    /// ```
    /// use syncmgr::{hresult, Error};
    /// assert_eq!(Error::ShutDown.hresult(), hresult::E_UNEXPECTED);
    /// assert_eq!(Error::EmptyItemList.hresult(), hresult::E_INVALIDARG);
    /// ```
    pub fn hresult(&self) -> i32 {
        use hresult::*;
        match self {
            Error::UnknownHandler(_) => CLASS_E_CLASSNOTAVAILABLE,
            Error::AccessDenied(_) => E_ACCESSDENIED,
            Error::ShutDown | Error::UnknownSession(_) => E_UNEXPECTED,
            Error::HandlerFailed(_) => E_FAIL,
            Error::Spawn(_) => E_OUTOFMEMORY,
            Error::InvalidId(_)
            | Error::UnknownFlags { .. }
            | Error::UnknownValue { .. }
            | Error::HandlerExists(_)
            | Error::UnknownItem { .. }
            | Error::ItemExists { .. }
            | Error::EmptyItemList
            | Error::ItemNotInSession(_)
            | Error::ItemAlreadyInSession(_)
            | Error::ItemNotPending(_)
            | Error::ItemNotProposed(_)
            | Error::UnknownRequest(_)
            | Error::TextTooLong { .. }
            | Error::InvalidConfig(_)
            | Error::InvalidPolicy { .. } => E_INVALIDARG,
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire::ErrorWire::from(self).serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Error {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Error, D::Error> {
        use serde::de::Error as _;
        let wire = wire::ErrorWire::deserialize(deserializer)?;
        Error::try_from(wire).map_err(D::Error::custom)
    }
}

/// [`Error`]'s serialized shape: the same variants and fields, with owned text where the
/// error keeps `&'static str` (derived `Deserialize` cannot make those from input).
#[cfg(feature = "serde")]
mod wire {
    use serde::{Deserialize, Serialize};

    use super::{Denied, Error, TextKind};
    use crate::cause::Cause;
    use crate::id::{HandlerId, IdError, ItemId, RequestId, SessionId};

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Error")]
    pub(super) enum ErrorWire {
        InvalidId(IdError),
        UnknownFlags {
            type_name: String,
            bits: u32,
            unknown: u32,
        },
        UnknownValue {
            type_name: String,
            value: u32,
        },
        UnknownHandler(HandlerId),
        HandlerExists(HandlerId),
        UnknownItem {
            handler: HandlerId,
            item: ItemId,
        },
        ItemExists {
            handler: HandlerId,
            item: ItemId,
        },
        EmptyItemList,
        AccessDenied(Denied),
        ShutDown,
        UnknownSession(SessionId),
        ItemNotInSession(ItemId),
        ItemAlreadyInSession(ItemId),
        ItemNotPending(ItemId),
        ItemNotProposed(ItemId),
        UnknownRequest(RequestId),
        TextTooLong {
            kind: TextKind,
            units: usize,
            max: usize,
        },
        HandlerFailed(Cause),
        Spawn(String),
        InvalidConfig(String),
        InvalidPolicy {
            field: String,
            rule: String,
        },
    }

    /// The flags types' names, as `from_raw` reports them in [`Error::UnknownFlags`].
    const FLAGS_TYPES: &[&str] = &[
        "SyncControlFlags",
        "ControlFlags",
        "HandlerCapabilities",
        "HandlerPolicies",
        "ItemCapabilities",
        "ItemPolicies",
        "InvokeFlags",
        "SyncMgrFlag",
        "LegacyItemFlags",
        "LegacyHandlerFlags",
    ];

    /// The enums' names, as `from_raw` reports them in [`Error::UnknownValue`].
    const ENUM_TYPES: &[&str] = &[
        "ProgressStatus",
        "CancelRequest",
        "EventLevel",
        "HandlerType",
        "UpdateReason",
        "SyncEvent",
        "SyncMgrStatus",
        "LogLevel",
        "ItemState",
    ];

    /// Every [`Error::InvalidConfig`] message: the engine's limits, a handler's session
    /// limit, the manager builder's limits.
    const CONFIG_MESSAGES: &[&str] = &[
        "max_sessions must be at least 1",
        "default_concurrent_sessions must be at least 1",
        "max_concurrent_sessions must be at least 1",
        "worker_threads must be at least 1",
        "worker_threads must be at most 4096",
        "notification_capacity must be at least 1",
    ];

    /// Every field [`SyncPolicy::validate`](crate::SyncPolicy::validate) names.
    const POLICY_FIELDS: &[&str] = &[
        "debounce.quiet",
        "debounce.max_wait",
        "retry.max_attempts",
        "retry.factor",
        "retry.jitter",
        "retry.initial",
        "retry.max",
        "schedule.every",
        "schedule.flex",
    ];

    /// Every rule [`SyncPolicy::validate`](crate::SyncPolicy::validate) names.
    const POLICY_RULES: &[&str] = &[
        "at most MAX_DELAY",
        "at least quiet",
        "at least 1",
        "a finite number, at least 1",
        "between 0 and 1",
        "more than zero",
        "at most every",
    ];

    /// The crate's own `'static` copy of `text`, if it is one of `known`.
    fn known(
        text: &str,
        known: &'static [&'static str],
        what: &str,
    ) -> Result<&'static str, String> {
        known
            .iter()
            .copied()
            .find(|k| *k == text)
            .ok_or_else(|| format!("{what} {text:?} is not one this version of syncmgr produces"))
    }

    impl From<&Error> for ErrorWire {
        fn from(error: &Error) -> ErrorWire {
            match error.clone() {
                Error::InvalidId(e) => ErrorWire::InvalidId(e),
                Error::UnknownFlags {
                    type_name,
                    bits,
                    unknown,
                } => ErrorWire::UnknownFlags {
                    type_name: type_name.to_owned(),
                    bits,
                    unknown,
                },
                Error::UnknownValue { type_name, value } => ErrorWire::UnknownValue {
                    type_name: type_name.to_owned(),
                    value,
                },
                Error::UnknownHandler(h) => ErrorWire::UnknownHandler(h),
                Error::HandlerExists(h) => ErrorWire::HandlerExists(h),
                Error::UnknownItem { handler, item } => ErrorWire::UnknownItem { handler, item },
                Error::ItemExists { handler, item } => ErrorWire::ItemExists { handler, item },
                Error::EmptyItemList => ErrorWire::EmptyItemList,
                Error::AccessDenied(d) => ErrorWire::AccessDenied(d),
                Error::ShutDown => ErrorWire::ShutDown,
                Error::UnknownSession(s) => ErrorWire::UnknownSession(s),
                Error::ItemNotInSession(i) => ErrorWire::ItemNotInSession(i),
                Error::ItemAlreadyInSession(i) => ErrorWire::ItemAlreadyInSession(i),
                Error::ItemNotPending(i) => ErrorWire::ItemNotPending(i),
                Error::ItemNotProposed(i) => ErrorWire::ItemNotProposed(i),
                Error::UnknownRequest(r) => ErrorWire::UnknownRequest(r),
                Error::TextTooLong { kind, units, max } => {
                    ErrorWire::TextTooLong { kind, units, max }
                }
                Error::HandlerFailed(c) => ErrorWire::HandlerFailed(c),
                Error::Spawn(m) => ErrorWire::Spawn(m),
                Error::InvalidConfig(m) => ErrorWire::InvalidConfig(m.to_owned()),
                Error::InvalidPolicy { field, rule } => ErrorWire::InvalidPolicy {
                    field: field.to_owned(),
                    rule: rule.to_owned(),
                },
            }
        }
    }

    impl TryFrom<ErrorWire> for Error {
        type Error = String;

        fn try_from(wire: ErrorWire) -> Result<Error, String> {
            Ok(match wire {
                ErrorWire::InvalidId(e) => Error::InvalidId(e),
                ErrorWire::UnknownFlags {
                    type_name,
                    bits,
                    unknown,
                } => Error::UnknownFlags {
                    type_name: known(&type_name, FLAGS_TYPES, "flags type")?,
                    bits,
                    unknown,
                },
                ErrorWire::UnknownValue { type_name, value } => Error::UnknownValue {
                    type_name: known(&type_name, ENUM_TYPES, "enum type")?,
                    value,
                },
                ErrorWire::UnknownHandler(h) => Error::UnknownHandler(h),
                ErrorWire::HandlerExists(h) => Error::HandlerExists(h),
                ErrorWire::UnknownItem { handler, item } => Error::UnknownItem { handler, item },
                ErrorWire::ItemExists { handler, item } => Error::ItemExists { handler, item },
                ErrorWire::EmptyItemList => Error::EmptyItemList,
                ErrorWire::AccessDenied(d) => Error::AccessDenied(d),
                ErrorWire::ShutDown => Error::ShutDown,
                ErrorWire::UnknownSession(s) => Error::UnknownSession(s),
                ErrorWire::ItemNotInSession(i) => Error::ItemNotInSession(i),
                ErrorWire::ItemAlreadyInSession(i) => Error::ItemAlreadyInSession(i),
                ErrorWire::ItemNotPending(i) => Error::ItemNotPending(i),
                ErrorWire::ItemNotProposed(i) => Error::ItemNotProposed(i),
                ErrorWire::UnknownRequest(r) => Error::UnknownRequest(r),
                ErrorWire::TextTooLong { kind, units, max } => {
                    Error::TextTooLong { kind, units, max }
                }
                ErrorWire::HandlerFailed(c) => Error::HandlerFailed(c),
                ErrorWire::Spawn(m) => Error::Spawn(m),
                ErrorWire::InvalidConfig(m) => {
                    Error::InvalidConfig(known(&m, CONFIG_MESSAGES, "configuration message")?)
                }
                ErrorWire::InvalidPolicy { field, rule } => Error::InvalidPolicy {
                    field: known(&field, POLICY_FIELDS, "policy field")?,
                    rule: known(&rule, POLICY_RULES, "policy rule")?,
                },
            })
        }
    }
}

/// Checks a text against a limit that counts UTF-16 units with the terminating NUL.
pub(crate) fn check_text(text: &str, kind: TextKind, max: usize) -> Result<(), Error> {
    // Cheap bound first: a UTF-8 string never has more UTF-16 units than bytes.
    if text.len() < max {
        return Ok(());
    }
    let units = text.encode_utf16().count() + 1;
    if units > max {
        return Err(Error::TextTooLong { kind, units, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hresult_values_are_the_sdk_values() {
        assert_eq!(hresult::E_INVALIDARG as u32, 0x8007_0057);
        assert_eq!(hresult::E_ACCESSDENIED as u32, 0x8007_0005);
        assert_eq!(hresult::E_UNEXPECTED as u32, 0x8000_FFFF);
        assert_eq!(hresult::E_FAIL as u32, 0x8000_4005);
        assert_eq!(hresult::E_OUTOFMEMORY as u32, 0x8007_000E);
        assert_eq!(hresult::CLASS_E_CLASSNOTAVAILABLE as u32, 0x8004_0111);
        assert_eq!(hresult::E_NOTIMPL as u32, 0x8000_4001);
        assert_eq!(hresult::S_SYNCMGR_MISSINGITEMS, 0x0004_0201);
        assert_eq!(hresult::S_SYNCMGR_RETRYSYNC, 0x0004_0202);
        assert_eq!(hresult::S_SYNCMGR_CANCELITEM, 0x0004_0203);
        assert_eq!(hresult::S_SYNCMGR_CANCELALL, 0x0004_0204);
    }

    #[test]
    fn text_limit_counts_utf16_units_with_the_nul() {
        // 259 units + NUL = 260: fits. 260 units + NUL = 261: does not.
        assert!(check_text(&"a".repeat(259), TextKind::Progress, 260).is_ok());
        let err = check_text(&"a".repeat(260), TextKind::Progress, 260).unwrap_err();
        assert_eq!(
            err,
            Error::TextTooLong {
                kind: TextKind::Progress,
                units: 261,
                max: 260
            }
        );
        // A character outside the BMP is two UTF-16 units.
        assert!(check_text(&"😀".repeat(129), TextKind::Name, 260).is_ok());
        assert!(check_text(&"😀".repeat(130), TextKind::Name, 260).is_err());
        // Multi-byte but one unit: byte length does not matter.
        assert!(check_text(&"é".repeat(259), TextKind::Progress, 260).is_ok());
    }
}
