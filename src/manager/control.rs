//! The manager's calls on handlers: registering and removing them, changing their state and
//! their items', their sync policies, and the triggers that start timed syncs.

use std::sync::Arc;

use super::access::{describe, guard, item_spec};
use super::command::{Command, Touch, call};
use super::request::IntoId;
use super::tasks::{Adapter, AsyncHandler, Spawn};
use super::{Extra, Object, SyncHandler, SyncManager};
use crate::engine::{RequestId, StateChange};
use crate::error::{Error, TextKind, check_text};
use crate::flags::ControlFlags;
use crate::id::{HandlerId, ItemId, MAX_SYNCMGR_NAME};
use crate::policy::{SyncPolicy, Trigger};

impl SyncManager {
    /// Registers a handler under an ID. Its capabilities, policies, items and connectivity
    /// are read now, on the calling thread (with `WAIT`) or on a worker. A taken ID is
    /// [`Error::HandlerExists`]; names over `MAX_SYNCMGR_NAME` are [`Error::TextTooLong`].
    pub fn register_handler(
        &self,
        id: impl IntoId<HandlerId>,
        handler: impl SyncHandler,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let id = id.into_id()?;
        self.register_object(id, Object::blocking(Arc::new(handler)), None, flags)
    }

    /// Registers an async handler: its sessions run as tasks on `executor` (with the `tokio`
    /// feature, a `tokio::runtime::Handle`), so a session awaiting I/O holds no thread. Its
    /// hooks are read as for [`register_handler`](Self::register_handler).
    ///
    /// ```
    /// # use syncmgr::{AsyncHandler, ControlFlags, HandlerError, ItemId, Outcome, ProgressStatus, Spawn, SyncControlFlags, SyncItem, SyncManager, SyncSession, Task};
    /// # struct Mail;
    /// # impl AsyncHandler for Mail {
    /// #     fn items(&self) -> Vec<SyncItem> { vec![SyncItem::new("inbox", "Inbox").unwrap()] }
    /// #     async fn synchronize(&self, items: Vec<ItemId>, s: SyncSession) -> Result<(), HandlerError> {
    /// #         for i in &items { s.report_progress(i, ProgressStatus::Succeeded)?; } Ok(())
    /// #     }
    /// # }
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     // The smallest executor: poll, park until woken. Any runtime's `block_on` does this.
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// /// A stand-in executor: one thread per task (use your runtime's spawn instead).
    /// struct Threads;
    /// impl Spawn for Threads {
    ///     fn spawn(&self, task: Task) {
    ///         std::thread::spawn(move || block_on(task));
    ///     }
    /// }
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// let manager = SyncManager::new()?;
    /// manager.register_async_handler("mail", Mail, Threads, ControlFlags::WAIT)?;
    /// let ticket = manager.start_handler_sync("mail", SyncControlFlags::NONE, None)?;
    /// assert_eq!(block_on(ticket).status, Outcome::Succeeded);
    /// # Ok(()) }
    /// ```
    pub fn register_async_handler(
        &self,
        id: impl IntoId<HandlerId>,
        handler: impl AsyncHandler,
        executor: impl Spawn,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let id = id.into_id()?;
        let adapter = Adapter::new(handler, executor);
        let object = Object {
            handler: adapter.clone(),
            runner: Some(adapter),
        };
        self.register_object(id, object, None, flags)
    }

    /// Registers a handler object, with what a layer above keeps with it (see [`Extra`]).
    pub(crate) fn register_object(
        &self,
        id: HandlerId,
        handler: Object,
        extra: Option<Extra>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.core().state_call(flags, id.clone(), move |core| {
            core.register(id, handler, extra)
        })
    }

    /// Which of these items of a handler are enabled, in the order given, and whether any is
    /// unknown to the handler.
    pub(crate) fn enabled_among(
        &self,
        id: &HandlerId,
        items: Vec<ItemId>,
    ) -> Result<(Vec<ItemId>, bool), Error> {
        call(&self.core().link, |reply| Command::EnabledAmong {
            handler: id.clone(),
            items,
            reply,
        })
    }

    /// What a layer above keeps with this handler, if anything.
    pub(crate) fn handler_extra(&self, id: &HandlerId) -> Option<Extra> {
        self.core().registry.extra(id)
    }

    /// Every registered handler's ID with what a layer above keeps with it, in ID order.
    pub(crate) fn handler_extras(&self) -> Vec<(HandlerId, Option<Extra>)> {
        self.core()
            .registry
            .all()
            .into_iter()
            .map(|(id, e)| (id, e.extra))
            .collect()
    }

    /// Unregisters a handler: its pending requests complete as `Canceled`, its running
    /// sessions finish normally, its event log goes.
    pub fn remove_handler(
        &self,
        id: impl IntoId<HandlerId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let id = id.into_id()?;
        self.core().state_call(flags, id.clone(), move |core| {
            call(&core.link, |reply| Command::Remove { handler: id, reply })
        })
    }

    /// Activates a handler (`ActivateHandler` with `TRUE`): see
    /// [`change_state`](Self::change_state).
    pub fn activate_handler(
        &self,
        id: impl IntoId<HandlerId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id, StateChange::Activate, flags)
    }

    /// Deactivates a handler (`ActivateHandler` with `FALSE`): it takes no new requests.
    pub fn deactivate_handler(
        &self,
        id: impl IntoId<HandlerId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id, StateChange::Deactivate, flags)
    }

    /// Enables a handler (`EnableHandler` with `TRUE`).
    pub fn enable_handler(
        &self,
        id: impl IntoId<HandlerId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id, StateChange::Enable, flags)
    }

    /// Disables a handler (`EnableHandler` with `FALSE`).
    pub fn disable_handler(
        &self,
        id: impl IntoId<HandlerId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id, StateChange::Disable, flags)
    }

    /// Enables one of a handler's items (`EnableItem` with `TRUE`).
    pub fn enable_item(
        &self,
        id: impl IntoId<HandlerId>,
        item: impl IntoId<ItemId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id, StateChange::EnableItem(item.into_id()?), flags)
    }

    /// Disables one of a handler's items (`EnableItem` with `FALSE`): its pending entries
    /// complete as `Canceled`.
    pub fn disable_item(
        &self,
        id: impl IntoId<HandlerId>,
        item: impl IntoId<ItemId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id, StateChange::DisableItem(item.into_id()?), flags)
    }

    /// Changes a handler's or an item's state: what [`activate_handler`](Self::activate_handler),
    /// [`disable_item`](Self::disable_item) and the other four state calls come down to, for
    /// code that holds the change as a value. In order: the policy check (a policy such as
    /// `PREVENT_DISABLE` refuses it), the handler's `QUERY_BEFORE_*` answer (when it has the
    /// capability), its [`on_state_change`](SyncHandler::on_state_change) hook, then the
    /// change itself.
    ///
    /// ```
    /// # use syncmgr::{ControlFlags, HandlerError, ItemId, SyncHandler, SyncManager, SyncSession};
    /// use syncmgr::engine::StateChange;
    /// # struct Mail;
    /// # impl SyncHandler for Mail {
    /// #     fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> { Ok(()) }
    /// # }
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// # let manager = SyncManager::new()?;
    /// # manager.register_handler("mail", Mail, ControlFlags::WAIT)?;
    /// manager.change_state("mail", StateChange::Deactivate, ControlFlags::WAIT)?;
    /// # Ok(()) }
    /// ```
    pub fn change_state(
        &self,
        id: impl IntoId<HandlerId>,
        change: StateChange,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let id = id.into_id()?;
        self.core().state_call(flags, id.clone(), move |core| {
            core.change_state(&id, change, flags)
        })
    }

    /// Re-reads a handler's capabilities, policies and items (`UpdateHandler`): pending
    /// items that no longer exist, or are now disabled, complete as `Canceled`.
    pub fn update_handler(
        &self,
        id: impl IntoId<HandlerId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let id = id.into_id()?;
        self.core().state_call(flags, id.clone(), move |core| {
            let object = core.handler(&id)?;
            let spec = guard(|| describe(&id, &*object))??;
            call(&core.link, |reply| Command::UpdateHandler {
                handler: id,
                capabilities: spec.capabilities,
                policies: spec.policies,
                items: spec.items,
                policy: Box::new(spec.policy),
                reply,
            })
            .map(drop)
        })
    }

    // ----- time ------------------------------------------------------------------------------

    /// Reports a trigger: a connection came up or is about to go, or the machine is idle.
    /// Every handler whose [`SyncPolicy`] listens for it gets one handler sync (its enabled
    /// items, with `IGNORE_IF_ALREADY_SYNCING` and the trigger as the reason), which its
    /// debounce then treats like any request. The results go to the notifications
    /// (`RequestIssued`, then `RequestCompleted`). Returns the requests made.
    ///
    /// It does not change any handler's connectivity: that is what
    /// [`SyncHandler::is_connected`] says.
    pub fn trigger(&self, trigger: Trigger) -> Result<Vec<RequestId>, Error> {
        call(&self.core().link, |reply| Command::Trigger {
            trigger,
            reply,
        })
    }

    /// Sets a handler's sync policy in place of what its [`SyncHandler::sync_policy`] said,
    /// until the next [`update_handler`](Self::update_handler) reads that again. A value out
    /// of range is [`Error::InvalidPolicy`] and changes nothing.
    pub fn set_sync_policy(
        &self,
        handler: impl IntoId<HandlerId>,
        policy: SyncPolicy,
    ) -> Result<(), Error> {
        let handler = handler.into_id()?;
        call(&self.core().link, |reply| Command::SetPolicy {
            handler,
            policy: Box::new(policy),
            reply,
        })
        .map(drop)
    }

    /// Re-reads one item (`UpdateItem`): added, changed, or removed if the handler no longer
    /// lists it.
    pub fn update_item(
        &self,
        id: impl IntoId<HandlerId>,
        item: impl IntoId<ItemId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let (id, item) = (id.into_id()?, item.into_id()?);
        self.core().state_call(flags, id.clone(), move |core| {
            let object = core.handler(&id)?;
            let listed = guard(|| object.items())?;
            let spec = match listed.into_iter().find(|i| i.id == item) {
                Some(found) => {
                    check_text(&found.name, TextKind::Name, MAX_SYNCMGR_NAME)?;
                    Some(item_spec(found))
                }
                None => None,
            };
            call(&core.link, |reply| Command::UpdateItem {
                handler: id,
                item,
                spec,
                reply,
            })
            .map(drop)
        })
    }

    /// Tells subscribers that a handler's events changed (`UpdateEvents`).
    pub fn update_events(
        &self,
        id: impl IntoId<HandlerId>,
        item: Option<ItemId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.touch(id.into_id()?, item, Touch::Events, flags)
    }

    /// Tells subscribers that a handler's conflicts changed (`UpdateConflicts`); the
    /// conflict counts of the requests its running sessions serve (for the item, if named)
    /// go up by one.
    pub fn update_conflicts(
        &self,
        id: impl IntoId<HandlerId>,
        item: Option<ItemId>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.touch(id.into_id()?, item, Touch::Conflicts, flags)
    }

    fn touch(
        &self,
        id: HandlerId,
        item: Option<ItemId>,
        what: Touch,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.core().state_call(flags, id.clone(), move |core| {
            call(&core.link, |reply| Command::Touched {
                handler: id,
                item,
                what,
                reply,
            })
        })
    }
}
