//! How a caller names what it wants: IDs or text ([`IntoId`]), a [`SyncRequest`] with its
//! flags, context, reason and result callback.

use smallvec::SmallVec;

use std::any::Any;
use std::sync::Arc;

use super::{Context, SyncResult};
use crate::engine::RequestOptions;
use crate::error::Error;
use crate::flags::SyncControlFlags;
use crate::id::{HandlerId, IdError, ItemId};
use crate::policy::TriggerReason;
use crate::result::RequestResult;

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
) -> Result<Items, Error> {
    Ok(items
        .into_iter()
        .map(IntoId::into_id)
        .collect::<Result<Items, _>>()?)
}

/// The items a start call names: inline for one, the common request, so that it allocates
/// nothing for them (`benches/manager.rs`).
pub(crate) type Items = SmallVec<[ItemId; 1]>;

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
    pub(super) items: Option<Result<Items, Error>>,
    pub(super) flags: SyncControlFlags,
    pub(super) context: Option<Context>,
    pub(super) reason: TriggerReason,
    pub(super) sink: Option<Box<dyn SyncResult>>,
    pub(super) options: RequestOptions,
}

impl SyncRequest {
    /// The start call's parts, once its IDs are known to be valid.
    pub(super) fn parts(self) -> Result<StartParts, Error> {
        Ok(StartParts {
            handler: self.handler?,
            items: self.items.transpose()?,
            flags: self.flags,
            options: self.options,
            reason: self.reason,
            context: self.context,
            sink: self.sink,
        })
    }

    /// A sync of all enabled items of a handler.
    pub fn handler(handler: impl IntoId<HandlerId>) -> SyncRequest {
        SyncRequest {
            handler: handler.into_id(),
            items: None,
            flags: SyncControlFlags::NONE,
            context: None,
            reason: TriggerReason::Manual,
            sink: None,
            options: RequestOptions::default(),
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

    /// Expedited: a person asked for it now ("Sync now"). The handler's whole pending set
    /// becomes ready at once, whatever its debounce or backoff says.
    pub fn expedite(mut self) -> SyncRequest {
        self.options.expedite = true;
        self
    }

    /// Without retry: each item's first `Failed` is final for this request, whatever the
    /// handler's retry policy (the item still retries for other requests that wait for it).
    pub fn no_retry(mut self) -> SyncRequest {
        self.options.no_retry = true;
        self
    }

    /// With this trigger reason.
    pub fn reason(mut self, reason: TriggerReason) -> SyncRequest {
        self.reason = reason;
        self
    }

    /// With a result callback: a closure (its argument's type is inferred, no annotation
    /// needed), run once on the delivery thread.
    ///
    /// ```
    /// # use syncmgr::SyncRequest;
    /// let request = SyncRequest::handler("mail").on_result(|r| println!("{r}"));
    /// # let _ = request;
    /// ```
    pub fn on_result<F>(self, callback: F) -> SyncRequest
    where
        F: FnOnce(&RequestResult) + Send + 'static,
    {
        self.with_sink(callback)
    }

    /// With a result sink: any [`SyncResult`], a closure or a type of yours.
    pub fn with_sink(mut self, sink: impl SyncResult) -> SyncRequest {
        self.sink = Some(Box::new(sink));
        self
    }
}

/// A start call before it is sent (see [`SyncManager::start`]).
pub(crate) struct StartParts {
    pub handler: HandlerId,
    pub items: Option<Items>,
    pub flags: SyncControlFlags,
    pub options: RequestOptions,
    pub reason: TriggerReason,
    pub context: Option<Context>,
    pub sink: Option<Box<dyn SyncResult>>,
}

impl StartParts {
    /// A plain start call (`StartHandlerSync`, `StartItemSync`): a manual request with no
    /// context and default options. Made directly rather than through a [`SyncRequest`],
    /// whose builder steps each move the whole request.
    pub fn plain(
        handler: HandlerId,
        items: Option<Items>,
        flags: SyncControlFlags,
        sink: Option<Box<dyn SyncResult>>,
    ) -> StartParts {
        StartParts {
            handler,
            items,
            flags,
            options: RequestOptions::default(),
            reason: TriggerReason::Manual,
            context: None,
            sink,
        }
    }
}
