//! How a caller names what it wants: IDs or text ([`IntoId`]), a [`SyncRequest`] with its
//! flags, context, reason and result callback, and why it was made ([`TriggerReason`]).

use std::any::Any;
use std::sync::Arc;

use super::{Context, SyncResult};
use crate::engine::MergeKey;
use crate::error::Error;
use crate::flags::SyncControlFlags;
use crate::id::{HandlerId, IdError, ItemId};

/// Why a request was made. Sync Center requests are `Manual` unless the caller says
/// otherwise; the legacy invoke API makes `Invoke` requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TriggerReason {
    /// Asked for by the user or the application (`SYNCMGRFLAG_MANUAL`).
    #[default]
    Manual,
    /// A network connection came up (`SYNCMGRFLAG_CONNECT`).
    Connect,
    /// A network connection is about to go (`SYNCMGRFLAG_PENDINGDISCONNECT`).
    PendingDisconnect,
    /// The machine is idle (`SYNCMGRFLAG_IDLE`).
    Idle,
    /// Asked for through the invoke API (`SYNCMGRFLAG_INVOKE`).
    Invoke,
    /// A schedule fired (`SYNCMGRFLAG_SCHEDULED`).
    Scheduled,
}

/// Something that names an ID: the ID itself, or text checked when the call is made (bad
/// text fails the call with `E_INVALIDARG`).
pub trait IntoId<T> {
    /// Makes or clones the ID.
    fn into_id(self) -> Result<T, IdError>;
}

macro_rules! into_id {
    ($($id:ty),*) => {$(
        impl IntoId<$id> for $id {
            fn into_id(self) -> Result<$id, IdError> {
                Ok(self)
            }
        }
        impl IntoId<$id> for &$id {
            fn into_id(self) -> Result<$id, IdError> {
                Ok(self.clone())
            }
        }
        impl IntoId<$id> for &str {
            fn into_id(self) -> Result<$id, IdError> {
                <$id>::new(self)
            }
        }
        impl IntoId<$id> for String {
            fn into_id(self) -> Result<$id, IdError> {
                <$id>::try_from(self)
            }
        }
        impl IntoId<$id> for &String {
            fn into_id(self) -> Result<$id, IdError> {
                <$id>::new(self)
            }
        }
        impl IntoId<$id> for &&str {
            fn into_id(self) -> Result<$id, IdError> {
                <$id>::new(self)
            }
        }
    )*};
}
into_id!(HandlerId, ItemId);

pub(super) fn item_ids<I: IntoId<ItemId>>(
    items: impl IntoIterator<Item = I>,
) -> Result<Vec<ItemId>, Error> {
    Ok(items
        .into_iter()
        .map(IntoId::into_id)
        .collect::<Result<Vec<_>, _>>()?)
}

/// A start call with everything Sync Center's `StartItemSync` takes, plus the context value
/// (`punk`) and a trigger reason. Run it with
/// [`SyncManager::request`](super::SyncManager::request).
///
/// ```no_run
/// # use syncmgr::{SyncManager, SyncRequest, SyncControlFlags, TriggerReason};
/// # let manager = SyncManager::new().unwrap();
/// let ticket = manager.request(
///     SyncRequest::handler("mail")
///         .items(["inbox"])
///         .flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING)
///         .context(42_u32)
///         .reason(TriggerReason::Scheduled)
///         .on_result(|r: &syncmgr::RequestResult| println!("{:?}", r.status)),
/// )?;
/// # Ok::<(), syncmgr::Error>(())
/// ```
pub struct SyncRequest {
    pub(super) handler: Result<HandlerId, IdError>,
    pub(super) items: Option<Result<Vec<ItemId>, Error>>,
    pub(super) flags: SyncControlFlags,
    pub(super) context: Option<Context>,
    pub(super) reason: TriggerReason,
    pub(super) sink: Option<Box<dyn SyncResult>>,
}

impl SyncRequest {
    /// A sync of all enabled items of a handler.
    pub fn handler(handler: impl IntoId<HandlerId>) -> SyncRequest {
        SyncRequest {
            handler: handler.into_id(),
            items: None,
            flags: SyncControlFlags::NONE,
            context: None,
            reason: TriggerReason::Manual,
            sink: None,
        }
    }

    /// Syncs these items of the handler instead of all of them.
    pub fn items<I: IntoId<ItemId>>(mut self, items: impl IntoIterator<Item = I>) -> SyncRequest {
        self.items = Some(item_ids(items));
        self
    }

    /// With these control flags.
    pub fn flags(mut self, flags: SyncControlFlags) -> SyncRequest {
        self.flags = flags;
        self
    }

    /// With this context value, handed to the session that serves the request.
    pub fn context(mut self, context: impl Any + Send + Sync) -> SyncRequest {
        self.context = Some(Arc::new(context));
        self
    }

    /// With this trigger reason.
    pub fn reason(mut self, reason: TriggerReason) -> SyncRequest {
        self.reason = reason;
        self
    }

    /// With a result callback.
    pub fn on_result(mut self, sink: impl SyncResult) -> SyncRequest {
        self.sink = Some(Box::new(sink));
        self
    }
}

/// A start call before it is sent (see [`SyncManager::start`]).
pub(crate) struct StartParts {
    pub handler: HandlerId,
    pub items: Option<Vec<ItemId>>,
    pub flags: SyncControlFlags,
    pub key: MergeKey,
    pub reason: TriggerReason,
    pub context: Option<Context>,
    pub sink: Option<Box<dyn SyncResult>>,
}
