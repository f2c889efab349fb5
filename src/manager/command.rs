//! Everything the scheduler applies is one variant of [`Command`], and [`Link`] is how it
//! gets there.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_channel::Sender;
use uuid::Uuid;

use super::cell::{Answer, oneshot};
use super::clock::Clock;
use super::events::{EventReport, HandlerEvent};
use super::notify::Subscriber;
use super::registry::{Extra, Object};
use super::request::{Items, StartParts};
use super::scheduler::{Scheduler, SchedulerLock};
use super::ticket::Blank;
use super::{
    Context, PendingItems, ShutdownReport, SyncItem, SyncResult, SyncTicket, TriggerReason,
};
use crate::cause::Cause;
use crate::engine::{
    Changed, HandlerSpec, ItemSpec, RequestId, RequestOptions, SessionEnd, SessionId, StateChange,
    Stopped, Withdrawn,
};
use crate::error::Error;
use crate::flags::{
    CancelRequest, HandlerCapabilities, HandlerPolicies, ItemCapabilities, SyncControlFlags,
    UpdateReason,
};
use crate::id::{HandlerId, ItemId};
use crate::policy::{SyncPolicy, Trigger};
use crate::progress::Progress;
use crate::unwind::{self, User};

/// Where the scheduler sends the answer to a command.
pub(crate) type Reply<T> = Answer<Result<T, Error>>;

/// The way to the scheduler, held by every handle that makes calls: the manager, tickets,
/// sessions and the manager's own threads.
///
/// A command is applied on the calling thread, under the scheduler's lock, whenever it can
/// be: a start call or a progress report is then a lock and an engine step, not two thread
/// hand-offs (`benches/manager.rs`). Once shutdown has begun, and for the shutdown command
/// itself, commands go over the channel to the scheduler thread, which alone waits for
/// deadlines. Either way one command is applied at a time, in the order the lock or the
/// channel gives them, and the scheduler never runs user code, so no user code runs under
/// the lock.
// Behind one `Arc`: every ticket and session holds a link, and cloning or dropping one is
// then one atomic operation instead of two (the channel's sender count and the weak count).
#[derive(Clone)]
pub(crate) struct Link(Arc<LinkTo>);

struct LinkTo {
    commands: Sender<Command>,
    scheduler: Weak<SchedulerLock>,
    /// The scheduler's clock: a call reads the time before it takes the lock, which every
    /// start and report waits for (the engine takes a time older than one it has seen as
    /// that one, so the order of the reads does not matter).
    clock: Clock,
    /// Whether the engine keeps time (`Engine::keeps_time`), as the scheduler last saw it. A
    /// call reads the clock only then: most managers have no time policy, and a clock read
    /// was 4% of a start call. A stale `false` is caught under the lock (see
    /// `Scheduler::guarded_at`), so it costs a late clock read, never a wrong time.
    keeps_time: AtomicBool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

impl Link {
    /// The scheduler, for white-box tests that run a step by hand.
    #[cfg(test)]
    pub fn scheduler_for_test(&self) -> Option<Arc<SchedulerLock>> {
        self.0.scheduler.upgrade()
    }

    pub fn new(commands: Sender<Command>, scheduler: Weak<SchedulerLock>, clock: Clock) -> Link {
        Link(Arc::new(LinkTo {
            commands,
            scheduler,
            clock,
            keeps_time: AtomicBool::new(false),
        }))
    }

    /// Whether the scheduler still takes commands: a cheap check (one lock, no engine work)
    /// for callers that must tell "unknown" from "shut down".
    pub fn is_alive(&self) -> bool {
        self.0
            .scheduler
            .upgrade()
            .is_some_and(|scheduler| !scheduler.with(|s| s.is_broken()))
    }

    /// Marks the current thread as `scheduler`'s own thread (see
    /// [`on_scheduler_thread`](Self::on_scheduler_thread)).
    pub fn mark_scheduler_thread(scheduler: &Arc<SchedulerLock>) {
        SCHEDULER_THREAD.with(|own| own.set(Arc::as_ptr(scheduler) as usize));
    }

    /// Whether this is the scheduler's own thread, running what a step left to run after
    /// the lock (an executor's `spawn`, a waker, a tracing subscriber). A call from there
    /// must never wait for the scheduler thread: it would wait for itself.
    pub fn on_scheduler_thread(&self) -> bool {
        SCHEDULER_THREAD.with(|own| own.get() == self.0.scheduler.as_ptr() as usize)
    }

    /// Notes whether the engine keeps time, for the next calls (see `LinkTo::keeps_time`).
    pub fn note_keeps_time(&self, keeps_time: bool) {
        // Read first: the flag rarely changes, and a store on every step would take the
        // cache line from every other thread that makes calls.
        if self.0.keeps_time.load(Ordering::Relaxed) != keeps_time {
            self.0.keeps_time.store(keeps_time, Ordering::Relaxed);
        }
    }

    /// What calls were last told by [`note_keeps_time`](Self::note_keeps_time).
    #[cfg(test)]
    pub fn keeps_time(&self) -> bool {
        self.0.keeps_time.load(Ordering::Relaxed)
    }

    /// Wakes the scheduler thread (a deadline moved earlier). Nothing happens if it is gone.
    pub fn wake(&self) {
        let _ = self.0.commands.try_send(Command::Poll);
    }

    /// Runs `here` on the scheduler, under its lock, on this thread, and carries out what it
    /// decided; its value comes straight back, with no command or reply cell to allocate
    /// (the hot calls: a start, a progress report). Gives `input` back when the call must
    /// go to the scheduler thread instead (shutdown has begun, or the thread is gone), or
    /// cannot be made at all (the scheduler broke).
    pub fn run<I, R>(&self, input: I, here: impl FnOnce(&mut Scheduler, I) -> R) -> Ran<R, I> {
        // The scheduler thread holds the only strong reference: once it ended, this fails.
        let Some(scheduler) = self.0.scheduler.upgrade() else {
            return Ran::Later(input);
        };
        let now = self
            .0
            .keeps_time
            .load(Ordering::Relaxed)
            .then(|| self.0.clock.now());
        // What the step leaves for after the lock runs here, on the caller's thread, once it
        // is released (see `SchedulerLock::with`).
        scheduler.with(|s| s.run_here(now, input, here))
    }

    /// Tells the scheduler a session has ended, without waiting for its lock if another
    /// thread holds it (see `SchedulerLock::end_session`).
    pub fn end_session(&self, session: SessionId, end: SessionEnd) {
        // With the scheduler thread gone, every session has ended with it.
        if let Some(scheduler) = self.0.scheduler.upgrade() {
            scheduler.end_session(session, end);
        }
    }

    /// Sends a session's end to the scheduler thread, for when it must be applied there
    /// (shutdown has begun). It holds no user value: if the thread is gone, it is let go of.
    pub fn queue_session_end(&self, session: SessionId, end: SessionEnd) {
        let _ = self
            .0
            .commands
            .send(Command::SessionFinished { session, end });
    }

    /// Applies or queues a command. `Err(ShutDown)` when the scheduler is gone.
    pub fn send(&self, command: Command) -> Result<(), Error> {
        let command = match self.run(command, Scheduler::apply) {
            Ran::Done(None) => return Ok(()),
            Ran::Done(Some(command)) | Ran::Later(command) => command,
            Ran::Broken(command) => {
                unwind::dispose(command);
                return Err(Error::ShutDown);
            }
        };
        self.0.commands.send(command).map_err(|_| Error::ShutDown)
    }
}

thread_local! {
    /// The scheduler whose thread this is (the address of its mutex), or 0.
    static SCHEDULER_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// What [`Link::run`] did with its input.
pub(crate) enum Ran<R, I> {
    /// Ran on this thread, with this value.
    Done(R),
    /// Must go to the scheduler thread: the input, untouched.
    Later(I),
    /// The scheduler broke (a bug in this crate): every call fails with `ShutDown`. The
    /// input, unless the step that broke it had taken it.
    Broken(Option<I>),
}

/// Sends a command and waits for its answer. A scheduler that is gone means the manager was
/// shut down.
pub(crate) fn call<T>(link: &Link, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
    let (reply, answer) = oneshot();
    link.send(make(reply))?;
    answer.recv().map_err(|_| Error::ShutDown)?
}

/// A call that runs `here` on this thread when it can (see [`Link::run`]), and otherwise
/// sends the command `later` makes of the same input and waits for its answer.
pub(crate) fn call_here<I, T>(
    link: &Link,
    input: I,
    here: impl FnOnce(&mut Scheduler, I) -> Result<T, Error>,
    later: impl FnOnce(I, Reply<T>) -> Command,
) -> Result<T, Error> {
    match link.run(input, here) {
        Ran::Done(result) => result,
        Ran::Later(input) => call(link, |reply| later(input, reply)),
        Ran::Broken(input) => {
            unwind::dispose(input);
            Err(Error::ShutDown)
        }
    }
}

/// A start call, as the caller's thread prepared it.
pub(crate) struct Start {
    pub handler: HandlerId,
    /// `None` for a handler sync.
    pub items: Option<Items>,
    pub flags: SyncControlFlags,
    /// Its merge key (a legacy request's cookie), whether it is expedited, whether it takes
    /// retries.
    pub options: RequestOptions,
    /// What `is_connected` said on the caller's thread; `None` if the handler was unknown.
    pub connected: Option<bool>,
    pub context: Option<User<Context>>,
    pub reason: TriggerReason,
    pub sink: Option<User<Box<dyn SyncResult>>>,
    /// The blank ticket (its slot, the slot's write end for the engine to keep, and its clone
    /// of the link), made before the scheduler's lock is taken: the lock is held by every
    /// start call and every report, so what can be done without it is.
    pub ticket: Blank,
}

impl Start {
    /// A start call from its parts and what `is_connected` said (`None`: unknown handler),
    /// with a blank ticket on `link`. Boxed: the call passes through several frames on its
    /// way to the engine, and a box moves as one pointer where the record was copied at each.
    pub fn new(parts: StartParts, connected: Option<bool>, link: &Link) -> Box<Start> {
        Box::new(Start {
            handler: parts.handler,
            items: parts.items,
            flags: parts.flags,
            options: parts.options,
            connected,
            context: parts.context.map(User::new),
            reason: parts.reason,
            sink: parts.sink.map(User::new),
            ticket: Blank::new(link),
        })
    }

    /// The command for a start call that goes to the scheduler thread.
    pub fn into_command(self: Box<Start>, reply: Reply<SyncTicket>) -> Command {
        Command::Start { start: self, reply }
    }
}

/// A progress or failure report, as the handler's thread prepared it.
pub(crate) struct Report {
    pub item: ItemId,
    pub progress: Progress,
    /// Why the item failed, for a failure report.
    pub cause: Option<Cause>,
    /// A failure the handler knows no retry can mend.
    pub permanent: bool,
}

/// What a stop call names.
pub(crate) enum StopTarget {
    Handler(HandlerId),
    Items(HandlerId, Vec<ItemId>),
    All,
}

/// The capabilities a state change's `QUERY_BEFORE_*` check needs.
pub(crate) struct Queries {
    pub handler: HandlerCapabilities,
    pub item: ItemCapabilities,
}

/// A question about the event log (`ISyncMgrEventStore`).
pub(crate) enum EventQuery {
    List(Reply<Vec<HandlerEvent>>),
    Get(Uuid, Reply<Option<HandlerEvent>>),
    Remove(Uuid, Reply<bool>),
}

/// What `update_events` / `update_conflicts` announce.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Touch {
    Events,
    Conflicts,
}

/// A call a handler makes through its [`SyncSession`](super::SyncSession).
pub(crate) enum SessionCall {
    Progress {
        report: Report,
        reply: Reply<CancelRequest>,
    },
    HandlerText {
        text: String,
        reply: Reply<CancelRequest>,
    },
    Event {
        report: EventReport,
        reply: Reply<Uuid>,
    },
    Conflict {
        item: Option<ItemId>,
        reply: Reply<()>,
    },
    CanContinue {
        item: Option<ItemId>,
        reply: Reply<bool>,
    },
    Query {
        reply: Reply<PendingItems>,
    },
    Add {
        item: ItemId,
        reply: Reply<()>,
    },
    Propose {
        item: SyncItem,
        reply: Reply<()>,
    },
    Commit {
        item: ItemId,
        reply: Reply<()>,
    },
    Manual {
        reply: Reply<()>,
    },
}

/// Everything the scheduler thread acts on.
pub(crate) enum Command {
    Register {
        spec: Box<HandlerSpec>,
        handler: Object,
        /// What a layer above keeps with the handler (the legacy API: its `LegacyHandler`).
        extra: Option<Extra>,
        reply: Reply<()>,
    },
    Remove {
        handler: HandlerId,
        reply: Reply<()>,
    },
    Start {
        start: Box<Start>,
        reply: Reply<SyncTicket>,
    },
    StartAll {
        flags: SyncControlFlags,
        connected: Vec<(HandlerId, bool)>,
        reply: Reply<Vec<SyncTicket>>,
    },
    Stop {
        target: StopTarget,
        reply: Reply<Stopped>,
    },
    Cancel {
        request: RequestId,
        reply: Reply<Withdrawn>,
    },
    CheckState {
        handler: HandlerId,
        change: StateChange,
        reply: Reply<Queries>,
    },
    ApplyState {
        handler: HandlerId,
        change: StateChange,
        reply: Reply<Changed>,
    },
    UpdateHandler {
        handler: HandlerId,
        capabilities: HandlerCapabilities,
        policies: HandlerPolicies,
        items: Vec<ItemSpec>,
        policy: Box<SyncPolicy>,
        reply: Reply<Changed>,
    },
    UpdateItem {
        handler: HandlerId,
        item: ItemId,
        /// The item as the handler now lists it; `None` if it no longer does.
        spec: Option<ItemSpec>,
        reply: Reply<UpdateReason>,
    },
    Touched {
        handler: HandlerId,
        item: Option<ItemId>,
        what: Touch,
        reply: Reply<()>,
    },
    Session {
        session: SessionId,
        call: SessionCall,
    },
    SessionFinished {
        session: SessionId,
        /// How `synchronize` ended; a failure carries its error or its panic message.
        end: SessionEnd,
    },
    /// A state change made without `WAIT` failed on a worker thread.
    StateChangeFailed {
        handler: HandlerId,
        error: Error,
    },
    CallbackPanicked {
        request: RequestId,
        message: String,
    },
    Events {
        handler: HandlerId,
        query: EventQuery,
    },
    /// Made whole on the caller's thread: a command dropped unapplied (shutdown) drops the
    /// subscriber, which ends its stream and wakes a task awaiting it.
    Subscribe(Subscriber),
    /// Hand a state change queued without `WAIT` to a worker.
    RunTask(Box<dyn FnOnce() + Send>),
    Check {
        reply: Sender<Result<(), String>>,
    },
    /// Which of these items of the handler are enabled, in the order given, and whether any
    /// is unknown to it.
    EnabledAmong {
        handler: HandlerId,
        items: Vec<ItemId>,
        reply: Reply<(Vec<ItemId>, bool)>,
    },
    /// Nothing but the poll every command starts with: time moved (a manual clock was
    /// advanced), or a caller set a deadline earlier than the one the scheduler thread
    /// sleeps until.
    Poll,
    /// The application reported a trigger.
    Trigger {
        trigger: Trigger,
        reply: Reply<Vec<RequestId>>,
    },
    SetPolicy {
        handler: HandlerId,
        policy: Box<SyncPolicy>,
        reply: Reply<Changed>,
    },
    Shutdown {
        reply: Sender<ShutdownReport>,
        /// Asked from one of the manager's own threads (user code dropping the last handle
        /// there): nobody waits for that thread, so the scheduler does not either.
        from_inside: bool,
    },
}
