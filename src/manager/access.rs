//! What a call needs on the caller's side: the way to the scheduler and the handler objects
//! ([`Access`]), the state-change plumbing (`WAIT` now, or a task on a worker), and reading a
//! handler's spec through the panic policy.

use std::sync::Arc;

use super::command::{Command, Link, call};
use super::registry::Registry;
use super::registry::{Extra, Object};
use super::{SyncHandler, SyncItem};
use crate::engine::{HandlerSpec, ItemSpec, StateChange};
use crate::error::{Denied, Error, TextKind, check_text};
use crate::flags::ControlFlags;
use crate::id::{HandlerId, MAX_SYNCMGR_NAME};
use crate::unwind::{self};

/// What callers and queued state changes need: the way to the scheduler and the handlers.
#[derive(Clone)]
pub(super) struct Access {
    pub(super) link: Link,
    pub(super) registry: Registry,
}

impl Access {
    pub(super) fn handler(&self, id: &HandlerId) -> Result<Arc<dyn SyncHandler>, Error> {
        self.registry.get(id).ok_or_else(|| {
            // Shutdown empties the registry: after it, every call says `ShutDown`, as the
            // scheduler would. A scheduler that still takes commands means the ID is unknown.
            if self.link.is_alive() {
                Error::UnknownHandler(id.clone())
            } else {
                Error::ShutDown
            }
        })
    }

    /// Runs `work` now (`WAIT`) or on a worker, reporting a failure as a notification.
    pub(super) fn state_call(
        &self,
        flags: ControlFlags,
        handler: HandlerId,
        work: impl FnOnce(&Access) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        ControlFlags::from_raw(flags.bits())?;
        if flags.contains(ControlFlags::WAIT) {
            return work(self);
        }
        let core = self.clone();
        let task = Box::new(move || {
            if let Err(error) = work(&core) {
                let _ = core
                    .link
                    .send(Command::StateChangeFailed { handler, error });
            }
        });
        self.link
            .send(Command::RunTask(task))
            .map_err(|_| Error::ShutDown)
    }

    pub(super) fn register(
        &self,
        id: HandlerId,
        handler: Object,
        extra: Option<Extra>,
    ) -> Result<(), Error> {
        let spec = guard(|| describe(&id, &*handler.handler))??;
        call(&self.link, |reply| Command::Register {
            spec: Box::new(spec),
            handler,
            extra,
            reply,
        })
    }

    pub(super) fn change_state(
        &self,
        handler: &HandlerId,
        change: StateChange,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let queries = call(&self.link, |reply| Command::CheckState {
            handler: handler.clone(),
            change: change.clone(),
            reply,
        })?;
        let object = self.handler(handler)?;
        let ask = queries.handler.intersects(change.query_capability())
            || queries.item.intersects(change.item_query_capability());
        if ask && !guard(|| object.query_state_change(&change, flags))? {
            return Err(Error::AccessDenied(Denied::Refused));
        }
        let hook = guard(|| object.on_state_change(&change, flags))?;
        if let Err(e) = hook {
            // The error is user code: its text and its drop are contained.
            let cause = unwind::cause_of(&*e);
            unwind::dispose(e);
            return Err(Error::HandlerFailed(cause));
        }
        call(&self.link, |reply| Command::ApplyState {
            handler: handler.clone(),
            change,
            reply,
        })
        .map(drop)
    }
}

/// Runs user code, turning a panic into [`Error::HandlerFailed`].
pub(super) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    unwind::run(f).map_err(|panic| Error::HandlerFailed(unwind::panic_cause(&panic)))
}

/// Reads what the engine needs from a handler object.
pub(super) fn describe(id: &HandlerId, handler: &dyn SyncHandler) -> Result<HandlerSpec, Error> {
    check_text(&handler.name(), TextKind::Name, MAX_SYNCMGR_NAME)?;
    let mut spec = HandlerSpec::new(id.clone())
        .with_capabilities(handler.capabilities())
        .with_policies(handler.policies());
    spec.connected = handler.is_connected();
    spec.max_concurrent_sessions = handler.max_concurrent_sessions();
    spec.policy = handler.sync_policy();
    for item in handler.items() {
        check_text(&item.name, TextKind::Name, MAX_SYNCMGR_NAME)?;
        spec.items.push(item_spec(item));
    }
    Ok(spec)
}

pub(super) fn item_spec(item: SyncItem) -> ItemSpec {
    ItemSpec {
        id: item.id,
        capabilities: item.capabilities,
        policies: item.policies,
        enabled: item.enabled,
    }
}
