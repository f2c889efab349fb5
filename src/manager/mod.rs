//! The threaded [`SyncManager`]: the Rust form of `ISyncMgrControl`, a thin shell around the
//! pure [`Engine`](crate::Engine).
//!
//! A scheduler behind one lock owns the engine and applies one [`Command`](command::Command)
//! at a time; callers apply theirs on their own thread (see [`Link`]), and a scheduler thread
//! takes over once shutdown begins. Worker threads run handler sessions and state-change
//! hooks; a delivery thread runs result callbacks. Every start call is validated
//! synchronously, against the state of that moment.

mod access;
mod cell;
mod clock;
mod command;
mod events;
mod handler;
mod lifecycle;
mod notify;
mod oneshot;
mod pool;
mod registry;
mod request;
mod scheduler;
mod session;
mod subscription;
mod tasks;
mod threads;
mod ticket;
mod trace;

use std::sync::Arc;

use uuid::Uuid;

pub use self::clock::ManualClock;
pub use self::events::{EventReport, HandlerEvent};
pub use self::handler::{Context, HandlerError, HandlerInfo, SyncHandler, SyncItem};
pub use self::lifecycle::{ShutdownReport, SyncManagerBuilder};
use self::notify::Subscriber;
pub use self::notify::{HandlerChange, Notification};
pub use self::oneshot::ShutdownFuture;
pub use self::request::{IntoId, SyncRequest};
pub use self::session::{PendingItems, ServedRequest, SyncSession};
use self::subscription::WakerSlot;
pub use self::subscription::{
    NotificationIter, Notifications, NotificationsIntoIter, RecvAsync, RecvError,
};
pub use self::ticket::{SyncResult, SyncTicket};

use self::access::{Access, describe, guard, item_spec};
use self::lifecycle::{Life, Shared};
pub(crate) use self::registry::{Extra, Object, Registry};
pub(crate) use self::request::StartParts;
use self::request::item_ids;
use self::tasks::Adapter;
pub use self::tasks::{AsyncHandler, Spawn, Task};
pub(crate) use crate::policy::TriggerReason;

use self::command::{Command, EventQuery, Ran, Start, StopTarget, Touch, call, call_here};
use self::scheduler::Scheduler;
use crate::engine::{RequestId, StateChange, Stopped};
use crate::error::{Error, TextKind, check_text};
use crate::flags::{ControlFlags, SyncControlFlags};
use crate::id::{HandlerId, ItemId, MAX_SYNCMGR_NAME};
use crate::policy::{SyncPolicy, Trigger};
use crate::unwind;

/// The sync manager: register handlers, start and stop syncs, change state, and get exactly
/// one result per accepted request (`ISyncMgrControl`).
///
/// It is cheap to clone (clones share one manager) and `Send + Sync`. Dropping the last
/// clone shuts it down as [`SyncManager::shutdown`] does. A handler that keeps a clone keeps
/// the manager alive: call `shutdown` explicitly then.
#[derive(Clone)]
pub struct SyncManager {
    shared: Arc<Shared>,
    notification_capacity: usize,
}

impl std::fmt::Debug for SyncManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncManager").finish_non_exhaustive()
    }
}

impl SyncManager {
    /// A manager with the default limits.
    pub fn new() -> Result<SyncManager, Error> {
        SyncManagerBuilder::default().build()
    }

    /// A builder for other limits.
    pub fn builder() -> SyncManagerBuilder {
        SyncManagerBuilder::default()
    }

    fn core(&self) -> &Access {
        &self.shared.core
    }

    // ----- handlers --------------------------------------------------------------------------

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

    /// Whether [`SyncManager::shutdown`] was called (or has begun).
    pub fn is_shut_down(&self) -> bool {
        !matches!(*self.shared.life(), Life::Running(_))
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

    // ----- starting --------------------------------------------------------------------------

    /// Syncs every enabled item of a handler (`StartHandlerSync`). Returns at once with a
    /// ticket, or with the reason the request was refused (an unknown handler, a policy, a
    /// disabled or inactive handler: see [`Error`]); a refused call changes nothing.
    pub fn start_handler_sync(
        &self,
        handler: impl IntoId<HandlerId>,
        flags: SyncControlFlags,
        result: Option<Box<dyn SyncResult>>,
    ) -> Result<SyncTicket, Error> {
        self.start(StartParts::plain(handler.into_id()?, None, flags, result))
    }

    /// Syncs named items of a handler (`StartItemSync`).
    pub fn start_item_sync<I: IntoId<ItemId>>(
        &self,
        handler: impl IntoId<HandlerId>,
        items: impl IntoIterator<Item = I>,
        flags: SyncControlFlags,
        result: Option<Box<dyn SyncResult>>,
    ) -> Result<SyncTicket, Error> {
        let handler = handler.into_id()?;
        let items = item_ids(items)?;
        self.start(StartParts::plain(handler, Some(items), flags, result))
    }

    /// Syncs everything (`StartSyncAll`): one request per active, enabled handler with
    /// something to sync; their tickets.
    ///
    /// All or nothing: the requests are made in one step of the scheduler, so either every
    /// one of them is accepted and its ticket returned, or (the manager was shut down) none
    /// is. Each handler's connectivity is asked first, on the calling thread; a handler whose
    /// `is_connected` panics counts as disconnected here (its request completes as
    /// `Disconnected`), so that one handler cannot refuse everyone's sync. It costs in
    /// proportion to the handlers it covers, with or without subscribers.
    pub fn start_sync_all(&self, flags: SyncControlFlags) -> Result<Vec<SyncTicket>, Error> {
        let connected = self
            .core()
            .registry
            .all()
            .into_iter()
            .map(|(id, e)| {
                let up = guard(|| e.object.is_connected()).unwrap_or(false);
                (id, up)
            })
            .collect();
        call(&self.core().link, |reply| Command::StartAll {
            flags,
            connected,
            reply,
        })
    }

    /// Runs a [`SyncRequest`].
    pub fn request(&self, request: SyncRequest) -> Result<SyncTicket, Error> {
        self.start(request.parts()?)
    }

    /// Runs many [`SyncRequest`]s at once: one result per request, in order, each what its
    /// own [`request`](Self::request) call would have returned had the calls been made
    /// back to back with nothing in between.
    ///
    /// Use it when requests come in bunches (a file watcher's batch of changes, a queue
    /// drained at once) and belong together: the bunch is accepted in one step of the
    /// scheduler, so no other call and no session's report comes between its requests, and
    /// they merge with each other as calls one by one would with nothing in between. Each
    /// request still gets its own ticket, its own result and its own dispositions. Each
    /// handler's `is_connected` is asked once for the whole bunch, on the calling thread; if
    /// it panics, that handler's requests are refused with `HandlerFailed` and the others go
    /// on. It costs about what the calls one by one cost (the scheduler's lock is taken once,
    /// but the work is per request: `benches/manager.rs`, `stream_batched_16`).
    ///
    /// ```
    /// # use syncmgr::{ControlFlags, HandlerError, ItemId, Outcome, ProgressStatus, SyncHandler, SyncItem, SyncManager, SyncRequest, SyncSession};
    /// # struct Files;
    /// # impl SyncHandler for Files {
    /// #     fn items(&self) -> Vec<SyncItem> {
    /// #         ["a.txt", "b.txt"].into_iter().map(|f| SyncItem::new(f, f).unwrap()).collect()
    /// #     }
    /// #     fn synchronize(&self, items: &[ItemId], s: &SyncSession) -> Result<(), HandlerError> {
    /// #         for i in items { s.report_progress(i, ProgressStatus::Succeeded)?; } Ok(())
    /// #     }
    /// # }
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// let manager = SyncManager::new()?;
    /// manager.register_handler("files", Files, ControlFlags::WAIT)?;
    /// let changed = ["a.txt", "b.txt", "missing.txt"];
    /// let tickets = manager.request_many(
    ///     changed.iter().map(|file| SyncRequest::handler("files").items([*file])),
    /// );
    /// assert!(tickets[0].as_ref().is_ok_and(|t| t.wait().status == Outcome::Succeeded));
    /// assert!(tickets[1].as_ref().is_ok_and(|t| t.wait().status == Outcome::Succeeded));
    /// // Refused on its own: the others went on.
    /// assert!(matches!(tickets[2], Err(syncmgr::Error::UnknownItem { .. })));
    /// # Ok(()) }
    /// ```
    pub fn request_many(
        &self,
        requests: impl IntoIterator<Item = SyncRequest>,
    ) -> Vec<Result<SyncTicket, Error>> {
        // Each handler asked once: a bunch is mostly for one or a few handlers.
        let mut asked: Vec<(HandlerId, Result<Option<bool>, Error>)> = Vec::new();
        let link = &self.core().link;
        let starts: Vec<Result<Box<Start>, Error>> = requests
            .into_iter()
            .map(|request| {
                let parts = request.parts()?;
                let connected = match asked.iter().find(|(h, _)| *h == parts.handler) {
                    Some((_, answer)) => answer.clone()?,
                    None => {
                        let answer = self.connected(&parts.handler);
                        asked.push((parts.handler.clone(), answer.clone()));
                        answer?
                    }
                };
                Ok(Start::new(parts, connected, link))
            })
            .collect();
        let n = starts.len();
        let start_all = |s: &mut Scheduler, starts: Vec<Result<Box<Start>, Error>>| -> Vec<_> {
            starts.into_iter().map(|start| s.start(start?)).collect()
        };
        match link.run(starts, start_all) {
            Ran::Done(tickets) => tickets,
            // Shutdown has begun: one by one, through the scheduler thread.
            Ran::Later(starts) => starts
                .into_iter()
                .map(|start| {
                    let start = start?;
                    call(link, |reply| start.into_command(reply))
                })
                .collect(),
            Ran::Broken(starts) => {
                unwind::dispose(starts);
                vec![Err(Error::ShutDown); n]
            }
        }
    }

    /// What a handler's `is_connected` says, asked here, on the caller's thread: a slow
    /// `is_connected` never stalls the scheduler. A panic refuses the call (`HandlerFailed`,
    /// nothing changes): a hook that cannot answer is not a handler that answered
    /// "disconnected". `None` for an unknown handler (the scheduler refuses the call).
    fn connected(&self, handler: &HandlerId) -> Result<Option<bool>, Error> {
        match self.core().registry.get(handler) {
            Some(h) => Ok(Some(guard(|| h.is_connected())?)),
            None => Ok(None),
        }
    }

    /// Sends a start call: what every start method and the legacy invoke API come down to.
    pub(crate) fn start(&self, parts: StartParts) -> Result<SyncTicket, Error> {
        let connected = self.connected(&parts.handler)?;
        let link = &self.core().link;
        let start = Start::new(parts, connected, link);
        call_here(link, start, Scheduler::start, Start::into_command)
    }

    // ----- stopping --------------------------------------------------------------------------

    /// Stops a handler's syncs (`StopHandlerSync`).
    pub fn stop_handler_sync(&self, handler: impl IntoId<HandlerId>) -> Result<Stopped, Error> {
        let target = StopTarget::Handler(handler.into_id()?);
        call(&self.core().link, |reply| Command::Stop { target, reply })
    }

    /// Stops named items (`StopItemSync`).
    pub fn stop_item_sync<I: IntoId<ItemId>>(
        &self,
        handler: impl IntoId<HandlerId>,
        items: impl IntoIterator<Item = I>,
    ) -> Result<Stopped, Error> {
        let target = StopTarget::Items(handler.into_id()?, item_ids(items)?.into_vec());
        call(&self.core().link, |reply| Command::Stop { target, reply })
    }

    /// Stops everything that may be stopped (`StopSyncAll`).
    pub fn stop_sync_all(&self) -> Result<Stopped, Error> {
        call(&self.core().link, |reply| Command::Stop {
            target: StopTarget::All,
            reply,
        })
    }

    // ----- events and notifications ----------------------------------------------------------

    /// A handler's kept events, oldest first: at most the builder's `event_log_capacity`
    /// events and `event_log_bytes` bytes of them, which bounds what one call copies.
    pub fn events(&self, handler: impl IntoId<HandlerId>) -> Result<Vec<HandlerEvent>, Error> {
        let handler = handler.into_id()?;
        call(&self.core().link, |reply| Command::Events {
            handler,
            query: EventQuery::List(reply),
        })
    }

    /// One kept event.
    pub fn event(
        &self,
        handler: impl IntoId<HandlerId>,
        id: Uuid,
    ) -> Result<Option<HandlerEvent>, Error> {
        let handler = handler.into_id()?;
        call(&self.core().link, |reply| Command::Events {
            handler,
            query: EventQuery::Get(id, reply),
        })
    }

    /// Removes one kept event; says whether it was there.
    pub fn remove_event(&self, handler: impl IntoId<HandlerId>, id: Uuid) -> Result<bool, Error> {
        let handler = handler.into_id()?;
        call(&self.core().link, |reply| Command::Events {
            handler,
            query: EventQuery::Remove(id, reply),
        })
    }

    /// A stream of everything that happens from now on. It holds at most the builder's
    /// `notification_capacity` notifications, taking memory only for those it holds: a
    /// subscriber that does not keep up misses notifications (it gets
    /// [`Notification::Lagged`] with the count) and never slows the manager down; dropping
    /// it unsubscribes. Read it from a thread or await it (see [`Notifications`]).
    pub fn subscribe(&self) -> Notifications {
        let (tx, rx) = crossbeam_channel::unbounded();
        let waker = Arc::new(WakerSlot::default());
        let subscriber = Subscriber::new(tx, waker.clone(), self.notification_capacity);
        // Refused or dropped unapplied (the manager shut down), the subscriber ends its
        // stream as it goes: the caller reads the end, and a task awaiting it is woken.
        let _ = self.core().link.send(Command::Subscribe(subscriber));
        Notifications::new(rx, waker)
    }

    // ----- lifecycle -------------------------------------------------------------------------

    /// Stops accepting requests, cancels what is pending, asks running sessions to cancel,
    /// waits for them up to the grace period, delivers every outstanding result and joins
    /// the manager's threads. Threads still inside a handler or a result callback after a
    /// second grace period are left to finish on their own and counted in the report.
    ///
    /// Every call returns only after every result is delivered: a call made while another
    /// shutdown runs waits for it, and every later call (and dropping the manager) returns
    /// the same report. The one exception is a call that the shutdown itself waits for: from
    /// user code that runs on the manager's threads (a handler, a hook, a result callback, or
    /// a `Drop` those run), or from a `Drop` the shutdown runs. It cannot wait for itself, so
    /// it starts the shutdown (or leaves it running) and returns at once with an empty report.
    pub fn shutdown(&self) -> ShutdownReport {
        self.shared.shutdown()
    }

    /// [`shutdown`](Self::shutdown) for async code: the waiting happens on a thread of its
    /// own, and the returned future completes with the report, so no runtime thread blocks.
    /// Dropping the future leaves the shutdown running. In async code, await this before
    /// the last handle goes: dropping the last `SyncManager` shuts down on the dropping
    /// thread, which would block a runtime worker for up to the shutdown grace.
    pub fn shutdown_async(&self) -> ShutdownFuture {
        ShutdownFuture::start(self.shared.clone())
    }

    /// Checks the engine's bookkeeping (see
    /// [`Engine::check_consistency`](crate::Engine::check_consistency)); for tests and
    /// diagnostics.
    pub fn check_consistency(&self) -> Result<(), String> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.core()
            .link
            .send(Command::Check { reply })
            .map_err(|_| "the manager was shut down".to_owned())?;
        answer
            .recv()
            .map_err(|_| "the manager was shut down".to_owned())?
    }
}

#[cfg(test)]
mod tests {
    use super::lifecycle::DEFAULT_WORKERS_CAP;
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<SyncManager>();
        send_sync::<SyncTicket>();
        send_sync::<SyncSession>();
        send_sync::<Notification>();
        send_sync::<Arc<dyn SyncHandler>>();
    }

    #[test]
    fn builder_refuses_zero_limits() {
        for builder in [
            SyncManager::builder().max_sessions(0),
            SyncManager::builder().concurrent_sessions(0),
            SyncManager::builder().worker_threads(0),
            SyncManager::builder().notification_capacity(0),
        ] {
            assert!(matches!(builder.build(), Err(Error::InvalidConfig(_))));
        }
    }

    #[test]
    fn worker_threads_are_capped_and_refused_past_the_limit() {
        // `usize::MAX` workers overflowed in debug builds; now it is a clear error.
        let refused = SyncManager::builder().worker_threads(usize::MAX).build();
        assert!(
            matches!(refused, Err(Error::InvalidConfig(_))),
            "{refused:?}"
        );
        // A huge session limit no longer starts a thread per session: the default stops at
        // 64 workers (plus the scheduler and the delivery thread).
        let manager = SyncManager::builder()
            .max_sessions(usize::MAX)
            .build()
            .unwrap();
        let threads = match &*manager.shared.life() {
            Life::Running(threads) => threads.handles.len(),
            _ => 0,
        };
        assert_eq!(threads, DEFAULT_WORKERS_CAP + 2);
        manager.shutdown();
    }
}
