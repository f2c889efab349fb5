//! The threaded [`SyncManager`]: the Rust form of `ISyncMgrControl`, a thin shell around the
//! pure [`Engine`](crate::Engine).
//!
//! A scheduler behind one lock owns the engine and applies one [`Command`](command::Command)
//! at a time; callers apply theirs on their own thread (see [`Link`]), and a scheduler thread
//! takes over once shutdown begins. Worker threads run handler sessions and state-change
//! hooks; a delivery thread runs result callbacks. Every start call is validated
//! synchronously, against the state of that moment.

mod command;
mod events;
mod handler;
mod notify;
mod scheduler;
mod session;
mod threads;
mod ticket;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use uuid::Uuid;

pub use self::events::{EventReport, HandlerEvent};
pub use self::handler::{Context, HandlerError, HandlerInfo, SyncHandler, SyncItem};
pub use self::notify::{HandlerChange, Notification};
pub use self::session::{PendingItems, ServedRequest, SyncSession};
pub use self::ticket::{SyncResult, SyncTicket};

use self::command::{Command, EventQuery, Link, Start, StopTarget, Touch, call};
use self::scheduler::{Scheduler, SchedulerParts, deadline_after};
use crate::engine::{Engine, EngineConfig, HandlerSpec, ItemSpec, MergeKey, StateChange, Stopped};
use crate::error::{Denied, Error, TextKind, check_text};
use crate::flags::{ControlFlags, SyncControlFlags};
use crate::id::{HandlerId, IdError, ItemId, MAX_SYNCMGR_NAME};
use crate::legacy::LegacyHandler;
use crate::unwind::{self, User};

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

fn item_ids<I: IntoId<ItemId>>(items: impl IntoIterator<Item = I>) -> Result<Vec<ItemId>, Error> {
    Ok(items
        .into_iter()
        .map(IntoId::into_id)
        .collect::<Result<Vec<_>, _>>()?)
}

/// A start call with everything Sync Center's `StartItemSync` takes, plus the context value
/// (`punk`) and a trigger reason. Run it with [`SyncManager::request`].
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
    handler: Result<HandlerId, IdError>,
    items: Option<Result<Vec<ItemId>, Error>>,
    flags: SyncControlFlags,
    context: Option<Context>,
    reason: TriggerReason,
    sink: Option<Box<dyn SyncResult>>,
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

/// What shutting down did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Sessions still running when the grace period ended: their requests got results
    /// anyway (items without a terminal report `Canceled`).
    pub abandoned_sessions: usize,
    /// Threads still inside user code (a handler or a result callback that did not return)
    /// when shutdown gave up waiting; each ends when that code returns.
    pub detached_threads: usize,
}

/// Handler objects by ID, shared by the scheduler (which alone changes it) and the callers
/// (which run hooks and `is_connected` on their own threads). A legacy handler is there twice:
/// as the adapter that the engine's sessions run, and as itself, for the invoke API.
#[derive(Clone, Default)]
pub(crate) struct Registry(Arc<RwLock<HashMap<HandlerId, Entry>>>);

#[derive(Clone)]
pub(crate) struct Entry {
    object: Arc<dyn SyncHandler>,
    legacy: Option<Arc<dyn LegacyHandler>>,
}

impl Registry {
    // No user code runs under this lock, so poisoning cannot come from a handler; recover
    // from it anyway rather than panic.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<HandlerId, Entry>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, id: &HandlerId) -> Option<Arc<dyn SyncHandler>> {
        self.read().get(id).map(|e| e.object.clone())
    }

    pub fn legacy(&self, id: &HandlerId) -> Option<Arc<dyn LegacyHandler>> {
        self.read().get(id).and_then(|e| e.legacy.clone())
    }

    pub fn insert(
        &self,
        id: HandlerId,
        object: Arc<dyn SyncHandler>,
        legacy: Option<Arc<dyn LegacyHandler>>,
    ) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Entry { object, legacy });
    }

    /// Takes every handler out, for shutdown: the caller drops them outside the lock.
    fn take_all(&self) -> HashMap<HandlerId, Entry> {
        std::mem::take(&mut *self.0.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes a handler out and hands it back, so the caller drops it outside the lock.
    pub fn remove(&self, id: &HandlerId) -> Option<Entry> {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Every handler, with its legacy side if it has one, in ID order (so callers that walk
    /// them do so in the same order every time).
    fn all(&self) -> Vec<(HandlerId, Entry)> {
        let mut all: Vec<(HandlerId, Entry)> = self
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// What callers and queued state changes need: the way to the scheduler and the handlers.
#[derive(Clone)]
struct Core {
    link: Link,
    registry: Registry,
}

impl Core {
    fn handler(&self, id: &HandlerId) -> Result<Arc<dyn SyncHandler>, Error> {
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
    fn state_call(
        &self,
        flags: ControlFlags,
        handler: HandlerId,
        work: impl FnOnce(&Core) -> Result<(), Error> + Send + 'static,
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

    fn register(
        &self,
        id: HandlerId,
        handler: Arc<dyn SyncHandler>,
        legacy: Option<Arc<dyn LegacyHandler>>,
    ) -> Result<(), Error> {
        let spec = guard(|| describe(&id, &*handler))??;
        call(&self.link, |reply| Command::Register {
            spec,
            handler,
            legacy,
            reply,
        })
    }

    fn change_state(
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
        let hook = guard(|| match &change {
            StateChange::Activate => object.activate(true, flags),
            StateChange::Deactivate => object.activate(false, flags),
            StateChange::Enable => object.enable(true, flags),
            StateChange::Disable => object.enable(false, flags),
            StateChange::EnableItem(item) => object.enable_item(item, true, flags),
            StateChange::DisableItem(item) => object.enable_item(item, false, flags),
        })?;
        if let Err(e) = hook {
            // The error is user code: its text and its drop are contained.
            let text = unwind::error_chain(&*e);
            unwind::dispose(e);
            return Err(Error::HandlerFailed(text));
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
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    unwind::run(f).map_err(|panic| Error::HandlerFailed(format!("handler panicked: {panic}")))
}

/// Reads what the engine needs from a handler object.
fn describe(id: &HandlerId, handler: &dyn SyncHandler) -> Result<HandlerSpec, Error> {
    check_text(&handler.name(), TextKind::Name, MAX_SYNCMGR_NAME)?;
    let mut spec = HandlerSpec::new(id.clone())
        .with_capabilities(handler.capabilities())
        .with_policies(handler.policies());
    spec.connected = handler.is_connected();
    spec.max_concurrent_sessions = handler.max_concurrent_sessions();
    for item in handler.items() {
        check_text(&item.name, TextKind::Name, MAX_SYNCMGR_NAME)?;
        spec.items.push(item_spec(item));
    }
    Ok(spec)
}

fn item_spec(item: SyncItem) -> ItemSpec {
    ItemSpec {
        id: item.id,
        capabilities: item.capabilities,
        policies: item.policies,
        enabled: item.enabled,
    }
}

struct Threads {
    handles: Vec<JoinHandle<()>>,
    /// Disconnects once every thread has ended (each holds a sender).
    alive: Receiver<()>,
}

/// Where the manager is in its life. Shutdown moves it from `Running` to `Stopping` (the
/// thread doing the work) to `Stopped` (the report every later caller gets).
enum Life {
    Running(Threads),
    Stopping { by: ThreadId },
    Stopped(ShutdownReport),
}

struct Shared {
    core: Core,
    life: Mutex<Life>,
    /// Signalled when `life` becomes `Stopped`.
    stopped: Condvar,
    /// The manager's own threads: user code on them must never wait for the shutdown, which
    /// waits for them.
    own: Vec<ThreadId>,
    grace: Duration,
}

impl Shared {
    fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every caller returns only once every result is delivered, however many shut down at
    /// once: the first does the work, the others wait for its report. The exceptions are
    /// callers that the work waits for (user code on the manager's own threads, or a `Drop`
    /// that the shutting-down thread runs): waiting would wait for itself, so they return
    /// at once with an empty report while the shutdown goes on.
    fn shutdown(&self) -> ShutdownReport {
        let me = std::thread::current().id();
        let threads = {
            let mut life = self.life();
            loop {
                match &*life {
                    Life::Stopped(report) => return *report,
                    Life::Stopping { by } if *by == me || self.own.contains(&me) => {
                        return ShutdownReport::default();
                    }
                    Life::Stopping { .. } => {
                        life = self
                            .stopped
                            .wait(life)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    Life::Running(_) => {
                        if let Life::Running(threads) =
                            std::mem::replace(&mut *life, Life::Stopping { by: me })
                        {
                            break threads;
                        }
                    }
                }
            }
        };
        let report = self.stop(threads, me);
        *self.life() = Life::Stopped(report);
        self.stopped.notify_all();
        report
    }

    fn stop(&self, threads: Threads, me: ThreadId) -> ShutdownReport {
        // User code on one of our own threads can drop the last handle: that thread cannot
        // wait for itself, so it waits for nothing and the threads finish on their own.
        let from_inside = self.own.contains(&me);
        let (reply, answer) = crossbeam_channel::bounded(1);
        let command = Command::Shutdown { reply, from_inside };
        let mut report = match self.core.link.send(command) {
            Ok(()) => answer.recv().unwrap_or_default(),
            Err(_) => ShutdownReport::default(),
        };
        // The scheduler has ended every session; give threads still inside user code one
        // more grace period, then leave them to finish on their own.
        // Idle threads end within microseconds of the scheduler; a zero grace still gives
        // them a moment.
        let deadline = deadline_after(self.grace.max(Duration::from_millis(200)));
        // Nobody sends on `alive`: this returns when every thread has dropped its sender, or
        // at the deadline.
        let all_ended = if from_inside {
            // Our own thread holds a sender too: wait for the others instead, checking each
            // few milliseconds (the channel's timeout is the pause).
            loop {
                let others_done = threads
                    .handles
                    .iter()
                    .all(|h| h.thread().id() == me || h.is_finished());
                if others_done || Instant::now() >= deadline {
                    break false;
                }
                let _ = threads.alive.recv_timeout(Duration::from_millis(5));
            }
        } else {
            matches!(
                threads.alive.recv_deadline(deadline),
                Err(RecvTimeoutError::Disconnected)
            )
        };
        // Let go of the handler objects: one that holds a `SyncManager` would otherwise keep
        // the whole manager alive forever. Dropped here, outside every lock; a panicking
        // `Drop` is the handler's and is not let out.
        unwind::dispose(self.core.registry.take_all());
        for handle in threads.handles {
            // Once every token is gone every thread is past user code, so joining is quick
            // even for one that is not quite finished yet.
            if all_ended || handle.is_finished() {
                let _ = handle.join();
            } else {
                report.detached_threads += 1;
            }
        }
        report
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Worker threads started when the builder is not told how many.
const DEFAULT_WORKERS_CAP: usize = 64;
/// The most worker threads a manager starts.
const MAX_WORKERS: usize = 4096;

/// Builds a [`SyncManager`] with limits other than the defaults.
#[derive(Clone, Debug)]
pub struct SyncManagerBuilder {
    engine: EngineConfig,
    workers: Option<usize>,
    grace: Duration,
    event_log_capacity: usize,
    event_log_bytes: usize,
    notification_capacity: usize,
}

impl Default for SyncManagerBuilder {
    fn default() -> Self {
        SyncManagerBuilder {
            engine: EngineConfig::default(),
            workers: None,
            grace: Duration::from_secs(5),
            event_log_capacity: 1000,
            event_log_bytes: 1 << 20,
            notification_capacity: 4096,
        }
    }
}

impl SyncManagerBuilder {
    /// Sessions that may run at once across all handlers (default 8).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.engine.max_sessions = n;
        self
    }

    /// Sessions one handler with `SUPPORTS_CONCURRENT_SESSIONS` may run at once, unless it
    /// says otherwise (default 4).
    pub fn concurrent_sessions(mut self, n: usize) -> Self {
        self.engine.default_concurrent_sessions = n;
        self
    }

    /// Worker threads (default: `max_sessions`, so every running session has one, but at
    /// most 64: a large `max_sessions` does not start hundreds of threads). With fewer
    /// workers than running sessions, started sessions wait for a free worker. More than
    /// 4096 is [`Error::InvalidConfig`].
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// How long shutdown waits for running sessions to honour their cancel before it
    /// abandons them (default 5 s). Any `Duration` works: one too long to add to the clock
    /// (`Duration::MAX`) means "wait as long as it takes".
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Events kept per handler in the event log; the oldest go first (default 1000).
    pub fn event_log_capacity(mut self, n: usize) -> Self {
        self.event_log_capacity = n;
        self
    }

    /// Bytes kept per handler in the event log, counting each event's texts and record; the
    /// oldest go first (default 1 MiB). Event texts have no length limit of their own, so
    /// this is what bounds the log's memory, and what one [`SyncManager::events`] call
    /// copies. An event larger than the whole budget is published and counted, not kept.
    pub fn event_log_bytes(mut self, n: usize) -> Self {
        self.event_log_bytes = n;
        self
    }

    /// Notifications buffered per subscriber before it starts missing some (default 4096).
    /// Memory is taken for what is buffered, not for the whole capacity up front, so a large
    /// capacity costs nothing until a subscriber falls behind.
    pub fn notification_capacity(mut self, n: usize) -> Self {
        self.notification_capacity = n;
        self
    }

    /// Starts the manager's threads. Zero limits are [`Error::InvalidConfig`]; a thread
    /// that cannot be started is [`Error::Spawn`].
    pub fn build(self) -> Result<SyncManager, Error> {
        let engine = Engine::new(self.engine)?;
        let workers = self
            .workers
            .unwrap_or(self.engine.max_sessions.min(DEFAULT_WORKERS_CAP));
        if workers == 0 {
            return Err(Error::InvalidConfig("worker_threads must be at least 1"));
        }
        if workers > MAX_WORKERS {
            return Err(Error::InvalidConfig("worker_threads must be at most 4096"));
        }
        if self.notification_capacity == 0 {
            return Err(Error::InvalidConfig(
                "notification_capacity must be at least 1",
            ));
        }
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (jobs, job_rx) = crossbeam_channel::unbounded();
        let (deliveries, delivery_rx) = crossbeam_channel::unbounded();
        let (alive, alive_rx) = crossbeam_channel::bounded::<()>(0);
        let (delivery_done, delivery_done_rx) = crossbeam_channel::bounded::<()>(0);
        let registry = Registry::default();
        let scheduler = Arc::new_cyclic(|me| {
            Mutex::new(Scheduler::new(SchedulerParts {
                engine,
                link: Link::new(commands.clone(), me.clone()),
                registry: registry.clone(),
                jobs,
                deliveries,
                delivery_done: delivery_done_rx,
                event_log_capacity: self.event_log_capacity,
                event_log_bytes: self.event_log_bytes,
                grace: self.grace,
            }))
        });
        // The scheduler thread holds the only strong reference: when it ends, every link
        // finds the scheduler gone.
        let link = Link::new(commands, Arc::downgrade(&scheduler));
        let mut handles = Vec::with_capacity(workers + 2);
        let spawned = spawn_threads(
            &mut handles,
            alive,
            move || Scheduler::run(scheduler, command_rx),
            workers,
            |alive| {
                let (jobs, link) = (job_rx.clone(), link.clone());
                move || threads::worker(jobs, link, alive)
            },
            {
                let link = link.clone();
                move |alive| threads::delivery(delivery_rx, link, alive, delivery_done)
            },
        );
        let shared = Shared {
            core: Core { link, registry },
            own: handles.iter().map(|h| h.thread().id()).collect(),
            life: Mutex::new(Life::Running(Threads {
                handles,
                alive: alive_rx,
            })),
            stopped: Condvar::new(),
            grace: self.grace,
        };
        // On failure `shared` drops here, which shuts down whatever did start.
        spawned?;
        Ok(SyncManager {
            shared: Arc::new(shared),
            notification_capacity: self.notification_capacity,
        })
    }
}

/// Starts the scheduler, the workers and the delivery thread, each holding a clone of
/// `alive` until it ends.
fn spawn_threads<W: FnOnce() + Send + 'static>(
    handles: &mut Vec<JoinHandle<()>>,
    alive: Sender<()>,
    scheduler: impl FnOnce() + Send + 'static,
    workers: usize,
    worker: impl Fn(Sender<()>) -> W,
    delivery: impl FnOnce(Sender<()>) + Send + 'static,
) -> Result<(), Error> {
    let mut spawn = |name: String, f: Box<dyn FnOnce() + Send>| -> Result<(), Error> {
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map_err(|e| Error::Spawn(e.to_string()))?;
        handles.push(handle);
        Ok(())
    };
    let token = alive.clone();
    spawn(
        "syncmgr-scheduler".into(),
        Box::new(move || {
            let _alive = token;
            scheduler();
        }),
    )?;
    for n in 0..workers {
        spawn(
            format!("syncmgr-worker-{n}"),
            Box::new(worker(alive.clone())),
        )?;
    }
    let token = alive.clone();
    spawn("syncmgr-delivery".into(), Box::new(move || delivery(token)))
}

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

    fn core(&self) -> &Core {
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
        self.register_object(id, Arc::new(handler), None, flags)
    }

    /// Registers a handler object, and the legacy handler behind it if it is an adapter.
    pub(crate) fn register_object(
        &self,
        id: HandlerId,
        handler: Arc<dyn SyncHandler>,
        legacy: Option<Arc<dyn LegacyHandler>>,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.core().state_call(flags, id.clone(), move |core| {
            core.register(id, handler, legacy)
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

    /// The legacy handler registered under this ID, if it is one.
    pub(crate) fn legacy_handler(&self, id: &HandlerId) -> Option<Arc<dyn LegacyHandler>> {
        self.core().registry.legacy(id)
    }

    /// Every registered handler's ID with its legacy side, if any, in ID order.
    pub(crate) fn handler_kinds(&self) -> Vec<(HandlerId, Option<Arc<dyn LegacyHandler>>)> {
        self.core()
            .registry
            .all()
            .into_iter()
            .map(|(id, e)| (id, e.legacy))
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

    /// Activates or deactivates a handler (`ActivateHandler`).
    pub fn activate_handler(
        &self,
        id: impl IntoId<HandlerId>,
        active: bool,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id.into_id()?, StateChange::activation(active), flags)
    }

    /// Enables or disables a handler (`EnableHandler`).
    pub fn enable_handler(
        &self,
        id: impl IntoId<HandlerId>,
        enabled: bool,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        self.change_state(id.into_id()?, StateChange::enabling(enabled), flags)
    }

    /// Enables or disables an item (`EnableItem`).
    pub fn enable_item(
        &self,
        id: impl IntoId<HandlerId>,
        item: impl IntoId<ItemId>,
        enabled: bool,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let change = StateChange::item_enabling(item.into_id()?, enabled);
        self.change_state(id.into_id()?, change, flags)
    }

    /// The common path of the three state changes: the policy check, the handler's
    /// `QUERY_BEFORE_*` answer, its hook, then the change itself.
    fn change_state(
        &self,
        id: HandlerId,
        change: StateChange,
        flags: ControlFlags,
    ) -> Result<(), Error> {
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
                reply,
            })
            .map(drop)
        })
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
    /// ticket, or with the reason the request was refused (SPEC section 4).
    pub fn start_handler_sync(
        &self,
        handler: impl IntoId<HandlerId>,
        flags: SyncControlFlags,
        result: Option<Box<dyn SyncResult>>,
    ) -> Result<SyncTicket, Error> {
        let mut request = SyncRequest::handler(handler).flags(flags);
        request.sink = result;
        self.request(request)
    }

    /// Syncs named items of a handler (`StartItemSync`).
    pub fn start_item_sync<I: IntoId<ItemId>>(
        &self,
        handler: impl IntoId<HandlerId>,
        items: impl IntoIterator<Item = I>,
        flags: SyncControlFlags,
        result: Option<Box<dyn SyncResult>>,
    ) -> Result<SyncTicket, Error> {
        let mut request = SyncRequest::handler(handler).items(items).flags(flags);
        request.sink = result;
        self.request(request)
    }

    /// Syncs everything (`StartSyncAll`): one request per active, enabled handler with
    /// something to sync; their tickets.
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
        self.start(StartParts {
            handler: request.handler?,
            items: request.items.transpose()?,
            flags: request.flags,
            key: MergeKey::DEFAULT,
            reason: request.reason,
            context: request.context,
            sink: request.sink,
        })
    }

    /// Sends a start call: what every start method and the legacy invoke API come down to.
    pub(crate) fn start(&self, parts: StartParts) -> Result<SyncTicket, Error> {
        // Asked here, on the caller's thread: a slow `is_connected` never stalls the
        // scheduler. A panic counts as disconnected.
        let connected = self
            .core()
            .registry
            .get(&parts.handler)
            .map(|h| guard(|| h.is_connected()).unwrap_or(false));
        call(&self.core().link, |reply| {
            Command::Start(Box::new(Start {
                handler: parts.handler,
                items: parts.items,
                flags: parts.flags,
                key: parts.key,
                connected,
                context: parts.context.map(User::new),
                reason: parts.reason,
                sink: parts.sink.map(User::new),
                reply,
            }))
        })
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
        let target = StopTarget::Items(handler.into_id()?, item_ids(items)?);
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
    /// the receiver unsubscribes.
    pub fn subscribe(&self) -> Receiver<Notification> {
        let (subscriber, rx) = crossbeam_channel::unbounded();
        let capacity = self.notification_capacity;
        let _ = self.core().link.send(Command::Subscribe {
            subscriber,
            capacity,
        });
        rx
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
