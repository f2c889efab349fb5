//! `syncmgr`: sync orchestration in the manner of Windows Sync Center, in pure Rust.
//!
//! (Crate docs are written once the API settles; see README.md and ARCHITECTURE.md.)

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod engine;
mod error;
mod flags;
mod id;
pub mod legacy;
mod result;

pub use crate::engine::{Engine, EngineConfig, RequestId, SessionId};
pub use crate::error::{Denied, Error, TextKind, hresult};
pub use crate::flags::{
    CancelRequest, ControlFlags, EventLevel, HandlerCapabilities, HandlerPolicies, HandlerType,
    ItemCapabilities, ItemPolicies, ProgressStatus, SyncControlFlags, UpdateReason,
};
pub use crate::id::{
    HandlerId, IdError, IdKind, IdRule, ItemId, MAX_SYNCMGR_ID, MAX_SYNCMGR_NAME,
    MAX_SYNCMGR_PROGRESSTEXT, MAX_SYNCMGRHANDLERNAME, MAX_SYNCMGRITEMNAME,
};
pub use crate::result::{Outcome, RequestResult};
