//! The scheduler: owns the [`Engine`] by value, applies each [`Command`] to it, and carries
//! out the engine's [`Action`]s by moving data to the worker and delivery threads. It sits
//! behind one lock: callers apply their commands themselves under it (see
//! [`Link`](super::command::Link)), and the scheduler thread applies what comes over the
//! channel and keeps the shutdown deadline. It runs no user code, and its thread holds no
//! lock while it waits.

mod actions;
mod commands;
mod lock;

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::clock::Clock;
use super::command::{Command, Link, Ran};
use super::events::EventLog;
use super::notify::{Notification, Subscribers};
use super::pool::{JobSender, WakeWorkers};
use super::threads::{AsyncStart, Delivery, Job, start_async};
use super::trace::Traced;
use super::{Context, Registry, ShutdownReport, SyncResult, TriggerReason};
use crate::cause::Cause;
use crate::engine::{Engine, RequestId, SessionEnd, SessionId};
use crate::id::{HandlerId, IdMap, IdSet};
use crate::slot::{Completion, TicketSlot};
use crate::time::Time;
use crate::unwind::{self, User};
pub(crate) use lock::SchedulerLock;

/// Room the map of `Open` records keeps once empty: a burst of requests with callbacks or
/// contexts gives the rest back.
const OPEN_ROOM: usize = 1024;

/// What the scheduler keeps for an open request besides what the engine keeps (the engine
/// keeps its ticket's write end), for the requests that have any of it: most have no
/// callback, no context and the `Manual` reason, and have no record here.
struct Open {
    sink: Option<User<Box<dyn SyncResult>>>,
    context: Option<User<Context>>,
    reason: TriggerReason,
}

impl Open {
    /// Whether there is anything to keep: otherwise the request has no record here.
    fn worth_keeping(&self) -> bool {
        self.sink.is_some() || self.context.is_some() || self.reason != TriggerReason::Manual
    }
}

pub(crate) struct Scheduler {
    engine: Engine,
    link: Link,
    registry: Registry,
    /// The caller's values of the open requests that have any (see [`Open`]). A map, not a
    /// window by ID like the engine's records: the requests kept here are a few among many,
    /// and a window over their sparse IDs would hold a slot for every request in between.
    open: IdMap<RequestId, Open>,
    /// Handler of each running session, for event records.
    sessions: IdMap<SessionId, HandlerId>,
    /// Running sessions whose handler was removed: their events are counted and published
    /// but not kept, so they never land in the log of a handler registered again under the
    /// same ID.
    orphans: IdSet<SessionId>,
    jobs: JobSender<Job>,
    /// `None` once shutdown let go of the delivery thread.
    deliveries: Option<Sender<Delivery>>,
    /// Disconnects when the delivery thread ends.
    delivery_done: Receiver<()>,
    events: EventLog,
    subscribers: Subscribers,
    grace: Duration,
    /// Set by shutdown: running sessions past it are abandoned.
    deadline: Option<Instant>,
    shutdown_replies: Vec<Sender<ShutdownReport>>,
    /// Shutdown was asked from a manager thread, which may be the delivery thread itself.
    from_inside: bool,
    abandoned: usize,
    /// Applying a command panicked (a bug in this crate): the state may be half changed, so
    /// every later call fails with `ShutDown`, as if the scheduler had died.
    broken: bool,
    /// What the steps so far left to do once the lock is released (see `AfterUnlock`).
    after: AfterUnlock,
    /// Where time comes from.
    clock: Clock,
    /// The engine deadline the scheduler thread sleeps until (`Time::MAX`: none). A step
    /// that sets an earlier one wakes it.
    sleeping_until: Time,
}

pub(crate) struct SchedulerParts {
    pub engine: Engine,
    pub link: Link,
    pub registry: Registry,
    pub jobs: JobSender<Job>,
    pub deliveries: Sender<Delivery>,
    pub delivery_done: Receiver<()>,
    pub event_log_capacity: usize,
    pub event_log_bytes: usize,
    pub grace: Duration,
    pub clock: Clock,
}

impl Scheduler {
    pub fn new(parts: SchedulerParts) -> Scheduler {
        Scheduler {
            engine: parts.engine,
            link: parts.link,
            registry: parts.registry,
            open: IdMap::default(),
            sessions: IdMap::default(),
            orphans: IdSet::default(),
            jobs: parts.jobs,
            deliveries: Some(parts.deliveries),
            delivery_done: parts.delivery_done,
            events: EventLog::new(parts.event_log_capacity, parts.event_log_bytes),
            subscribers: Subscribers::default(),
            grace: parts.grace,
            deadline: None,
            shutdown_replies: Vec::new(),
            from_inside: false,
            abandoned: 0,
            broken: false,
            after: AfterUnlock::default(),
            clock: parts.clock,
            sleeping_until: Time::MAX,
        }
    }

    /// Runs a caller's step on its own thread (see [`Link::run`]), then carries out what it
    /// decided. Once shutdown has begun the input goes back untouched: the scheduler thread,
    /// which keeps the deadline, takes every call from then on. A broken scheduler hands the
    /// input back too, for the caller to drop outside the lock (it may hold user values).
    ///
    /// On the scheduler thread itself (user code it runs after the lock, such as an
    /// executor's `spawn`, calling the manager) a call is applied in place even then: sent to
    /// the channel, it would wait for the very thread that sent it.
    pub fn run_here<I, R>(
        &mut self,
        now: Option<Time>,
        input: I,
        here: impl FnOnce(&mut Scheduler, I) -> R,
    ) -> Ran<R, I> {
        if self.broken {
            return Ran::Broken(Some(input));
        }
        if self.deadline.is_some() && !self.link.on_scheduler_thread() {
            return Ran::Later(input);
        }
        let mut out = None;
        self.guarded_at(now, |s| out = Some(here(s, input)));
        match out {
            Some(value) if !self.broken => Ran::Done(value),
            // The step panicked (a bug in this crate): every later call fails too.
            _ => Ran::Broken(None),
        }
    }

    /// Applies a command (as a step of [`Scheduler::run_here`]). The shutdown command comes
    /// back, for the scheduler thread.
    pub fn apply(&mut self, command: Command) -> Option<Command> {
        if matches!(command, Command::Shutdown { .. }) {
            return Some(command);
        }
        self.handle(command);
        None
    }

    /// Runs one step and carries out what it decided. A panic here is a bug in this crate:
    /// it marks the scheduler broken instead of unwinding into a caller or poisoning the lock.
    /// Every step starts by telling the engine the time, so timers due by now fire first and
    /// the step happens at the clock's time.
    fn guarded(&mut self, step: impl FnOnce(&mut Scheduler)) {
        let now = self.clock.now();
        self.guarded_at(Some(now), step);
    }

    /// [`guarded`](Self::guarded) at a time the caller read before it took the lock, or
    /// `None` if the caller saw that the engine keeps no time (then the clock is read here
    /// only if it has begun to keep time meanwhile).
    fn guarded_at(&mut self, now: Option<Time>, step: impl FnOnce(&mut Scheduler)) {
        let now = self.time_if_kept(now);
        if unwind::contain(|| {
            if let Some(now) = now {
                let _ = self.engine.poll(now);
            }
            step(self);
            self.carry_out();
            self.run_due(now);
        })
        .is_err()
        {
            self.broken = true;
            self.give_up_open_requests();
            // A step on a caller's thread: the scheduler thread sleeps until a command comes,
            // and none will (every call now fails at once). Woken, it sees the break and ends,
            // and with it the workers and the delivery thread, so that `shutdown` finds them
            // ended rather than waiting out its grace for them.
            self.link.wake();
        }
        self.link.note_keeps_time(self.engine.keeps_time());
        self.wake_if_sooner();
    }

    /// The step's time: the caller's, or the clock's if the caller read none (it saw the
    /// engine keep no time) and the engine has begun to keep time since; `None` while it
    /// keeps none.
    fn time_if_kept(&self, now: Option<Time>) -> Option<Time> {
        now.or_else(|| self.engine.keeps_time().then(|| self.clock.now()))
    }

    /// Runs the timers a step set for its own instant (a zero delay: a retry, a debounce
    /// window): they are due already. A real clock's scheduler thread would wake for them at
    /// once; a manual clock would hold them until its next `advance`, though no time has to
    /// pass. `poll` runs everything due by its time, timers it sets meanwhile included (a
    /// tick's request held by a zero debounce); another round is needed only when carrying
    /// out its actions sets one more (a session that cannot start ends failed at once, and
    /// may retry at once). The bound only guards the loop.
    fn run_due(&mut self, now: Option<Time>) {
        const ROUNDS: usize = 4;
        // Resolved again: the step may have given the engine its first time policy.
        let Some(now) = self.time_if_kept(now) else {
            return;
        };
        // The step's timers were set at the engine's time, which may be ahead of the time the
        // caller read before it took the lock (a manual clock advanced in between). Polling
        // there moves no time forward.
        let now = now.max(self.engine.now());
        for _ in 0..ROUNDS {
            if self.engine.next_deadline().is_none_or(|due| due > now) {
                return;
            }
            let _ = self.engine.poll(now);
            self.carry_out();
        }
    }

    /// Once a step has panicked (a bug in this crate) nothing will deliver the open requests'
    /// results. Their records go once the lock is released: each ticket then completes
    /// without a result (its waiters get `Canceled`, see `SyncTicket::wait`) instead of
    /// waiting forever, and each callback and context is dropped outside the lock.
    fn give_up_open_requests(&mut self) {
        let ends = self.engine.take_all_ends();
        self.after.given_up.extend(ends);
        for open in std::mem::take(&mut self.open).into_values() {
            self.give_up(open);
        }
    }

    /// Lets go of an open request's record without a result: its callback and context are
    /// dropped outside the lock.
    fn give_up(&mut self, open: Open) {
        let Open { sink, context, .. } = open;
        if sink.is_some() || context.is_some() {
            self.release((sink, context));
        }
    }

    /// Records what an open request keeps here, if anything (see [`Open`]). Request IDs are
    /// never reused, so a second record for one would be a bug in this crate: it is given
    /// up, and the first one stays.
    fn record_open(&mut self, request: RequestId, open: Open) {
        if !open.worth_keeping() {
            return;
        }
        match self.open.entry(request) {
            Entry::Vacant(slot) => {
                slot.insert(open);
            }
            Entry::Occupied(_) => {
                debug_assert!(false, "request {request:?} recorded twice");
                self.give_up(open);
            }
        }
    }

    /// Takes what an open request kept here, if anything. Gives a large map's memory back
    /// once it is empty, rather than keep the peak of a burst for good.
    fn take_open(&mut self, request: RequestId) -> Option<Open> {
        // Most requests keep nothing here: no lookup while there is nothing.
        if self.open.is_empty() {
            return None;
        }
        let open = self.open.remove(&request);
        if self.open.is_empty() && self.open.capacity() > OPEN_ROOM {
            self.open = IdMap::default();
        }
        open
    }

    /// Tells the engine the time before an input that may give a handler a time policy: a
    /// step that skipped the clock left the engine at the last time it polled, and a
    /// schedule counts from the engine's time. (A step of an engine that keeps time polled
    /// at the clock's time already: see `guarded_at`.)
    pub(super) fn catch_up_time(&mut self) {
        if !self.engine.keeps_time() {
            let _ = self.engine.poll(self.clock.now());
        }
    }

    /// Wakes the scheduler thread if the engine now needs a poll before the time the thread
    /// sleeps until. A manual clock needs no thread: `ManualClock::advance` polls.
    fn wake_if_sooner(&mut self) {
        if let Clock::Real { .. } = self.clock
            && let Some(next) = self.engine.next_deadline()
            && next < self.sleeping_until
        {
            self.sleeping_until = next;
            self.link.wake();
        }
    }

    /// The instant the scheduler thread must wake for the engine's next deadline, noted as
    /// the time it sleeps until.
    fn timer_instant(&mut self) -> Option<Instant> {
        let next = self.engine.next_deadline();
        self.sleeping_until = next.unwrap_or(Time::MAX);
        next.and_then(|t| self.clock.instant_of(t))
    }

    /// The scheduler thread's loop: what comes over the channel, one command at a time,
    /// until shutdown has ended every session. It holds the lock only to apply a command.
    pub fn run(scheduler: Arc<SchedulerLock>, commands: Receiver<Command>) {
        Link::mark_scheduler_thread(&scheduler);
        enum Woken {
            Command(Command),
            Closed,
            /// The shutdown deadline or an engine timer.
            Time,
        }
        loop {
            let wake_at = scheduler.with(|s| {
                let timer = s.timer_instant();
                match (s.deadline, timer) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            });
            let woken = match wake_at {
                None => commands.recv().map_or(Woken::Closed, Woken::Command),
                Some(at) => select! {
                    recv(commands) -> c => c.map_or(Woken::Closed, Woken::Command),
                    recv(crossbeam_channel::at(at)) -> _ => Woken::Time,
                },
            };
            // Every step polls the engine first (see `guarded`): a timer needs nothing more.
            let done = Self::step(&scheduler, |s| match woken {
                Woken::Command(command) => s.handle(command),
                // Every sender is gone: nobody can ask for anything any more.
                Woken::Closed if s.deadline.is_none() => s.begin_shutdown(),
                Woken::Closed => {}
                Woken::Time => {
                    if s.deadline.is_some_and(|d| Instant::now() >= d) {
                        s.abandon_sessions();
                    }
                }
            });
            if done {
                break;
            }
        }
        Self::drain_deliveries(&scheduler, &commands);
        let late = scheduler.with(|s| {
            let report = ShutdownReport {
                abandoned_sessions: s.abandoned,
                detached_threads: 0,
            };
            for reply in s.shutdown_replies.drain(..) {
                let _ = reply.send(report);
            }
            s.after_unlock()
        });
        // What was let go of on this thread once the delivery thread was gone. Dropped last,
        // with the scheduler and its channel gone first: a `Drop` that calls the manager then
        // gets `ShutDown` at once instead of waiting for this very thread.
        let unread: Vec<Command> = commands.try_iter().collect();
        drop(commands);
        drop(scheduler);
        unwind::dispose(unread);
        late.run();
    }

    /// Whether a step panicked (see `guarded`).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// What must happen once the lock is released: tasks to wake, tracing events to emit,
    /// and user values to drop (those only once shutdown has let go of the delivery thread).
    pub fn after_unlock(&mut self) -> AfterUnlock {
        std::mem::take(&mut self.after)
    }

    /// The tasks to wake and the tracing events to emit once the lock is released (the
    /// scheduler thread keeps the released values until it has ended, see `run`).
    fn take_wakes(&mut self) -> AfterUnlock {
        let released = std::mem::take(&mut self.after.released);
        std::mem::replace(
            &mut self.after,
            AfterUnlock {
                released,
                ..AfterUnlock::default()
            },
        )
    }

    /// Lets the delivery thread run the callbacks it still has, for at most one more grace
    /// period, and keeps serving commands meanwhile, so that what those callbacks cause (a
    /// panic report, a late session call) is still handled and published.
    fn drain_deliveries(scheduler: &SchedulerLock, commands: &Receiver<Command>) {
        let Some((delivery_done, grace)) = scheduler.with(|s| {
            s.deliveries = None;
            // The delivery thread may be the one waiting for this answer.
            (!s.from_inside).then(|| (s.delivery_done.clone(), s.grace))
        }) else {
            return;
        };
        let deadline = deadline_after(grace);
        loop {
            select! {
                recv(commands) -> c => match c {
                    Ok(command) => {
                        let _ = Self::step(scheduler, |s| s.handle(command));
                    }
                    Err(_) => return,
                },
                recv(delivery_done) -> _ => {
                    // `select!` picks at random among ready arms: what the delivery thread
                    // sent before it ended (a callback's panic report) may still be queued.
                    for command in commands.try_iter() {
                        let _ = Self::step(scheduler, |s| s.handle(command));
                    }
                    return;
                }
                recv(crossbeam_channel::at(deadline)) -> _ => return,
            }
        }
    }

    /// One step on the scheduler thread, waking what it completed once the lock is released.
    /// Returns whether the thread is done: the scheduler broke, or shutdown has ended every
    /// session.
    fn step(scheduler: &SchedulerLock, step: impl FnOnce(&mut Scheduler)) -> bool {
        // What the step completed is woken once the lock is released; this thread keeps the
        // user values let go of (see `SchedulerLock::with`).
        let broken = scheduler.with(|s| {
            if s.broken {
                return Some(step);
            }
            s.guarded(step);
            None
        });
        if let Some(step) = broken {
            // Broken by a step on another thread: nothing more is applied, and what the step
            // would have applied (a command, with user values) is let go of outside the lock.
            unwind::dispose(step);
            return true;
        }
        // Read after: what ran once the lock was released (an executor's `spawn`, a tracing
        // subscriber) may have called this manager, applied in place on this thread (see
        // `run_here`), and ended the last session.
        scheduler.with(|s| s.broken || (s.deadline.is_some() && s.engine.session_count() == 0))
    }

    fn begin_shutdown(&mut self) {
        if self.deadline.is_none() {
            let _ = self.engine.shutdown();
            self.deadline = Some(deadline_after(self.grace));
        }
    }

    /// Ends the sessions still running at the grace deadline; their handlers may still be
    /// running, but their requests get results now.
    fn abandon_sessions(&mut self) {
        for session in self.engine.sessions() {
            self.abandoned += 1;
            self.finish_session(
                session,
                SessionEnd::Failed(Cause::new(
                    "abandoned: still running at the end of the shutdown grace period",
                )),
            );
        }
    }

    fn publish(&mut self, make: impl FnOnce() -> Notification) {
        if Traced::wanted() {
            let note = make();
            self.after.traced.keep(&note);
            self.subscribers.publish(|| note, &mut self.after.wakes);
        } else {
            self.subscribers.publish(make, &mut self.after.wakes);
        }
    }

    /// Whether a notification would reach anyone: a subscriber, or `tracing`.
    fn observed(&self) -> bool {
        !self.subscribers.is_empty() || Traced::wanted()
    }

    /// Lets go of user values without dropping them here, under the lock: their `Drop` is
    /// user code, which may panic or call the manager (and so want this lock). They go to the
    /// delivery thread, after the callbacks already queued; once shutdown has let go of that
    /// thread they wait in `released` until the lock is released: a caller's thread drops
    /// them as soon as its command is applied, the scheduler thread after it has ended.
    fn release<T: Send + 'static>(&mut self, values: T) {
        let values: Box<dyn Send> = Box::new(User::new(values));
        let values = match &self.deliveries {
            Some(deliveries) => match deliveries.send(Delivery::Release(values)) {
                Ok(()) => return,
                Err(crossbeam_channel::SendError(Delivery::Release(values))) => values,
                Err(crossbeam_channel::SendError(other)) => Box::new(other),
            },
            None => values,
        };
        self.after.released.push(values);
    }
}

/// What a thread does once it has released the scheduler's lock: start the async sessions the
/// step decided, wake the threads and tasks waiting for tickets that completed and the
/// workers a burst of sessions needs, then drop the user values let go of. The lock is held
/// over none of it: an executor's `spawn` and a waker are the executor's code, a `Drop` the
/// user's, and waking a sleeping thread is a system call that would keep every other caller
/// waiting for the lock. (Two exceptions: a session sent to the workers while none is on its
/// way wakes one under the lock, see `pool`; and a thread asleep on a ticket whose result has
/// more of the same step's results after it is woken at once, in `Scheduler::complete_ticket`, to
/// take them as they go out.)
///
/// The scheduler fills one as its steps go (`Scheduler::after`) and hands it over whole.
#[derive(Default)]
pub(crate) struct AfterUnlock {
    /// Tasks awaiting tickets that completed.
    wakes: Vec<Waker>,
    /// Tickets that completed with threads asleep in `wait`.
    sleepers: Vec<Arc<TicketSlot>>,
    /// Notifications kept for `tracing`.
    traced: Traced,
    /// Async sessions to hand to their executors (an executor's `spawn` is user code).
    spawns: Vec<AsyncStart>,
    /// User values let go of while no delivery thread could take them (see `release`).
    released: Vec<Box<dyn Send>>,
    /// Tickets that will get no result (a step panicked): dropping the write end completes
    /// each without one and wakes its waiters, which may be an executor's code, so after the
    /// threads asleep in `wait` are woken.
    given_up: Vec<Completion>,
    /// Sessions were sent to the workers: wakes the sleeping workers a burst of them needs
    /// beyond the one the first send woke (see `pool`).
    workers: Option<WakeWorkers<Job>>,
}

impl AfterUnlock {
    /// Whether there is nothing to do (every field named, so a new one is not forgotten).
    fn is_empty(&self) -> bool {
        let AfterUnlock {
            wakes,
            sleepers,
            traced,
            spawns,
            released,
            given_up,
            workers,
        } = self;
        wakes.is_empty()
            && sleepers.is_empty()
            && traced.is_empty()
            && spawns.is_empty()
            && released.is_empty()
            && given_up.is_empty()
            && workers.is_none()
    }

    pub fn run(self) {
        // Threads asleep in `wait` first: waiting for a ticket never depends on user code.
        for slot in self.sleepers {
            slot.notify();
        }
        drop(self.given_up);
        // A subscriber is user code: it runs here, after the lock, before the sessions and
        // tasks it starts or wakes, so that what was decided is logged before they run.
        let _ = unwind::run(|| self.traced.emit());
        if let Some(workers) = self.workers {
            workers.wake();
        }
        for start in self.spawns {
            start_async(start);
        }
        wake_all(self.wakes);
        unwind::dispose(self.released);
    }
}

fn wake_all(wakes: Vec<Waker>) {
    for waker in wakes {
        // An executor's waker that panics is contained like any user code.
        let _ = unwind::run(|| waker.wake());
    }
}

/// The instant `grace` from now, or the far future if that overflows `Instant` (a grace of
/// `Duration::MAX` means "wait as long as it takes").
pub(crate) fn deadline_after(grace: Duration) -> Instant {
    let now = Instant::now();
    // About thirty years: later than any wait that matters, and representable everywhere.
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(grace)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests;
