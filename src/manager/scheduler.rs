//! The scheduler: owns the [`Engine`] by value, applies each [`Command`] to it, and carries
//! out the engine's [`Action`]s by moving data to the worker and delivery threads. It sits
//! behind one lock: callers apply their commands themselves under it (see
//! [`Link`](super::command::Link)), and the scheduler thread applies what comes over the
//! channel and keeps the shutdown deadline. It runs no user code, and its thread holds no
//! lock while it waits.

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, select};
use uuid::Uuid;

use super::command::{Command, EventQuery, Link, Queries, SessionCall, Start, StopTarget, Touch};
use super::events::{EventLog, EventReport, HandlerEvent};
use super::notify::{HandlerChange, Notification, Subscribers};
use super::threads::{Delivery, Job};
use super::ticket::Completion;
use super::{
    Context, PendingItems, Registry, ServedRequest, ShutdownReport, SyncResult, SyncSession,
    SyncTicket, TriggerReason,
};
use crate::engine::{
    Accepted, Action, Engine, ItemSpec, MergeKey, RequestId, SessionEnd, SessionId,
};
use crate::error::{Error, TextKind, check_text};
use crate::flags::{EventLevel, ItemCapabilities};
use crate::id::{HandlerId, ItemId, MAX_SYNCMGR_NAME};
use crate::result::RequestResult;
use crate::unwind::{self, Locked, User};

/// What the scheduler keeps for an open request besides what the engine keeps.
struct Open {
    completion: Completion,
    sink: Option<User<Box<dyn SyncResult>>>,
    context: Option<User<Context>>,
    reason: TriggerReason,
}

pub(crate) struct Scheduler {
    engine: Engine,
    link: Link,
    registry: Registry,
    open: HashMap<RequestId, Open>,
    /// Handler of each running session, for event records.
    sessions: HashMap<SessionId, HandlerId>,
    /// Running sessions whose handler was removed: their events are counted and published
    /// but not kept, so they never land in the log of a handler registered again under the
    /// same ID.
    orphans: HashSet<SessionId>,
    jobs: Sender<Job>,
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
    /// User values let go of while no delivery thread could take them, waiting for the lock
    /// to be released (see `release`).
    released: Vec<Box<dyn Send>>,
}

/// What [`Scheduler::apply`] did with a command.
pub(crate) enum Applied {
    Done,
    /// Shutdown has begun (or this is the shutdown command): send it to the scheduler
    /// thread, which keeps the deadline.
    Deferred(Command),
    Broken,
}

pub(crate) struct SchedulerParts {
    pub engine: Engine,
    pub link: Link,
    pub registry: Registry,
    pub jobs: Sender<Job>,
    pub deliveries: Sender<Delivery>,
    pub delivery_done: Receiver<()>,
    pub event_log_capacity: usize,
    pub event_log_bytes: usize,
    pub grace: Duration,
}

impl Scheduler {
    pub fn new(parts: SchedulerParts) -> Scheduler {
        Scheduler {
            engine: parts.engine,
            link: parts.link,
            registry: parts.registry,
            open: HashMap::new(),
            sessions: HashMap::new(),
            orphans: HashSet::new(),
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
            released: Vec::new(),
        }
    }

    /// Applies a command on the caller's thread and carries out what it decided.
    pub fn apply(&mut self, command: Command) -> Applied {
        if self.broken {
            return Applied::Broken;
        }
        if self.deadline.is_some() || matches!(command, Command::Shutdown { .. }) {
            return Applied::Deferred(command);
        }
        self.guarded(|s| s.handle(command));
        if self.broken {
            Applied::Broken
        } else {
            Applied::Done
        }
    }

    /// Runs one step and carries out what it decided. A panic here is a bug in this crate:
    /// it marks the scheduler broken instead of unwinding into a caller or poisoning the lock.
    fn guarded(&mut self, step: impl FnOnce(&mut Scheduler)) {
        if unwind::contain(|| {
            step(self);
            self.carry_out();
        })
        .is_err()
        {
            self.broken = true;
        }
    }

    /// The scheduler thread's loop: what comes over the channel, one command at a time,
    /// until shutdown has ended every session. It holds the lock only to apply a command.
    pub fn run(scheduler: Arc<Mutex<Scheduler>>, commands: Receiver<Command>) {
        enum Woken {
            Command(Command),
            Closed,
            Deadline,
        }
        loop {
            let deadline = lock(&scheduler).deadline;
            let woken = match deadline {
                None => commands.recv().map_or(Woken::Closed, Woken::Command),
                Some(deadline) => select! {
                    recv(commands) -> c => c.map_or(Woken::Closed, Woken::Command),
                    recv(crossbeam_channel::at(deadline)) -> _ => Woken::Deadline,
                },
            };
            let mut s = lock(&scheduler);
            s.guarded(|s| match woken {
                Woken::Command(command) => s.handle(command),
                // Every sender is gone: nobody can ask for anything any more.
                Woken::Closed if s.deadline.is_none() => s.begin_shutdown(),
                Woken::Closed => {}
                Woken::Deadline => s.abandon_sessions(),
            });
            if s.broken || (s.deadline.is_some() && s.engine.session_count() == 0) {
                break;
            }
        }
        Self::drain_deliveries(&scheduler, &commands);
        let late = {
            let mut s = lock(&scheduler);
            let report = ShutdownReport {
                abandoned_sessions: s.abandoned,
                detached_threads: 0,
            };
            for reply in s.shutdown_replies.drain(..) {
                let _ = reply.send(report);
            }
            s.take_released()
        };
        // What was let go of on this thread once the delivery thread was gone. Dropped last,
        // with the scheduler and its channel gone first: a `Drop` that calls the manager then
        // gets `ShutDown` at once instead of waiting for this very thread.
        let unread: Vec<Command> = commands.try_iter().collect();
        drop(commands);
        drop(scheduler);
        unwind::dispose(unread);
        unwind::dispose(late);
    }

    /// Whether a step panicked (see `guarded`).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The user values released since the last call, to drop once the lock is released.
    pub fn take_released(&mut self) -> Vec<Box<dyn Send>> {
        std::mem::take(&mut self.released)
    }

    /// Lets the delivery thread run the callbacks it still has, for at most one more grace
    /// period, and keeps serving commands meanwhile, so that what those callbacks cause (a
    /// panic report, a late session call) is still handled and published.
    fn drain_deliveries(scheduler: &Mutex<Scheduler>, commands: &Receiver<Command>) {
        let (delivery_done, grace) = {
            let mut s = lock(scheduler);
            s.deliveries = None;
            if s.from_inside {
                // The delivery thread may be the one waiting for this answer.
                return;
            }
            (s.delivery_done.clone(), s.grace)
        };
        let deadline = deadline_after(grace);
        loop {
            select! {
                recv(commands) -> c => match c {
                    Ok(command) => lock(scheduler).guarded(|s| s.handle(command)),
                    Err(_) => return,
                },
                recv(delivery_done) -> _ => {
                    // `select!` picks at random among ready arms: what the delivery thread
                    // sent before it ended (a callback's panic report) may still be queued.
                    for command in commands.try_iter() {
                        lock(scheduler).guarded(|s| s.handle(command));
                    }
                    return;
                }
                recv(crossbeam_channel::at(deadline)) -> _ => return,
            }
        }
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
                SessionEnd::Failed,
                Some("abandoned: still running at the end of the shutdown grace period".into()),
            );
        }
    }

    fn publish(&mut self, make: impl FnOnce() -> Notification) {
        self.subscribers.publish(make);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Register {
                spec,
                handler,
                legacy,
                reply,
            } => {
                let id = spec.id.clone();
                let result = self.engine.register_handler(spec);
                if result.is_ok() {
                    self.registry.insert(id.clone(), handler, legacy);
                    self.publish(|| Notification::HandlerChanged {
                        handler: id,
                        change: HandlerChange::Registered,
                    });
                } else {
                    // User values: never dropped here (see `release`).
                    self.release((handler, legacy));
                }
                let _ = reply.send(result);
            }
            Command::Remove { handler, reply } => {
                let running = self.engine.handler_view(&handler).map(|v| v.running);
                let result = self.engine.remove_handler(&handler).map(drop);
                if result.is_ok() {
                    self.orphans.extend(running.into_iter().flatten());
                }
                self.carry_out();
                if result.is_ok() {
                    let object = self.registry.remove(&handler);
                    self.release(object);
                    self.events.forget(&handler);
                    self.publish(|| Notification::HandlerChanged {
                        handler,
                        change: HandlerChange::Removed,
                    });
                }
                let _ = reply.send(result);
            }
            Command::Start(start) => self.start(*start),
            Command::StartAll {
                flags,
                connected,
                reply,
            } => {
                for (handler, connected) in &connected {
                    let _ = self.engine.set_handler_connected(handler, *connected);
                }
                let mut settled = None;
                let result = self.engine.start_sync_all(flags).map(|accepted| {
                    accepted
                        .into_iter()
                        .map(|a| self.open(a, None, None, TriggerReason::Manual, &mut settled))
                        .collect()
                });
                // Results decided at once are in the tickets before the caller has them.
                self.carry_out();
                let _ = reply.send(result);
            }
            Command::Stop { target, reply } => {
                let result = match target {
                    StopTarget::Handler(h) => self.engine.stop_handler_sync(&h),
                    StopTarget::Items(h, items) => self.engine.stop_item_sync(&h, &items),
                    StopTarget::All => Ok(self.engine.stop_sync_all()),
                };
                self.carry_out();
                let _ = reply.send(result);
            }
            Command::Cancel { request, reply } => {
                let result = self.engine.cancel_request(request);
                // The withdrawn request's ticket is complete before `cancel` returns.
                self.carry_out();
                let _ = reply.send(result);
            }
            Command::CheckState {
                handler,
                change,
                reply,
            } => {
                let result = self.engine.check_state_change(&handler, &change).map(|()| {
                    let item = match &change {
                        crate::engine::StateChange::EnableItem(item)
                        | crate::engine::StateChange::DisableItem(item) => self
                            .engine
                            .item_capabilities(&handler, item)
                            .unwrap_or(ItemCapabilities::empty()),
                        _ => ItemCapabilities::empty(),
                    };
                    let handler = self
                        .engine
                        .handler_view(&handler)
                        .map(|h| h.capabilities)
                        .unwrap_or_default();
                    Queries { handler, item }
                });
                let _ = reply.send(result);
            }
            Command::ApplyState {
                handler,
                change,
                reply,
            } => {
                let result = self.engine.apply_state_change(&handler, &change);
                self.carry_out();
                if result.is_ok() {
                    self.publish(|| Notification::HandlerChanged {
                        handler,
                        change: HandlerChange::State(change),
                    });
                }
                let _ = reply.send(result);
            }
            Command::UpdateHandler {
                handler,
                capabilities,
                policies,
                items,
                reply,
            } => {
                let result = self
                    .engine
                    .update_handler(&handler, capabilities, policies, items);
                self.carry_out();
                if result.is_ok() {
                    self.publish(|| Notification::HandlerChanged {
                        handler,
                        change: HandlerChange::Updated,
                    });
                }
                let _ = reply.send(result);
            }
            Command::UpdateItem {
                handler,
                item,
                spec,
                reply,
            } => {
                let result = match spec {
                    Some(spec) => self.engine.upsert_item(&handler, spec),
                    None => self
                        .engine
                        .remove_item(&handler, &item)
                        .map(|_| crate::flags::UpdateReason::Removed),
                };
                self.carry_out();
                if let Ok(reason) = result {
                    self.publish(|| Notification::HandlerChanged {
                        handler,
                        change: HandlerChange::ItemUpdated(item, reason),
                    });
                }
                let _ = reply.send(result);
            }
            Command::Touched {
                handler,
                item,
                what,
                reply,
            } => {
                let result = self.touched(&handler, item.as_ref(), what);
                if result.is_ok() {
                    self.publish(|| Notification::HandlerChanged {
                        handler,
                        change: match what {
                            Touch::Events => HandlerChange::EventsUpdated(item),
                            Touch::Conflicts => HandlerChange::ConflictsUpdated(item),
                        },
                    });
                }
                let _ = reply.send(result);
            }
            Command::Session { session, call } => self.session_call(session, call),
            Command::SessionFinished {
                session,
                end,
                error,
            } => self.finish_session(session, end, error),
            Command::StateChangeFailed { handler, error } => {
                self.publish(|| Notification::StateChangeFailed { handler, error });
            }
            Command::CallbackPanicked { request, message } => {
                self.publish(|| Notification::CallbackPanicked { request, message });
            }
            Command::Events { handler, query } => match query {
                EventQuery::List(reply) => {
                    let _ = reply.send(self.known(&handler).map(|()| self.events.list(&handler)));
                }
                EventQuery::Get(id, reply) => {
                    let _ =
                        reply.send(self.known(&handler).map(|()| self.events.get(&handler, id)));
                }
                EventQuery::Remove(id, reply) => {
                    let result = self
                        .known(&handler)
                        .map(|()| self.events.remove(&handler, id));
                    let _ = reply.send(result);
                }
            },
            Command::Subscribe {
                subscriber,
                capacity,
            } => self.subscribers.add(subscriber, capacity),
            Command::RunTask(task) => {
                if let Err(crossbeam_channel::SendError(job)) = self.jobs.send(Job::Task(task)) {
                    // No worker left: the task (a hook and what it holds) is a user value.
                    self.release(job);
                }
            }
            Command::Check { reply } => {
                let _ = reply.send(self.engine.check_consistency());
            }
            Command::EnabledAmong {
                handler,
                items,
                reply,
            } => {
                let result = self.enabled_among(handler, items);
                let _ = reply.send(result);
            }
            Command::Shutdown { reply, from_inside } => {
                self.shutdown_replies.push(reply);
                self.from_inside |= from_inside;
                self.begin_shutdown();
            }
        }
    }

    /// The items of `items` the handler has enabled, and whether any is unknown to it: one
    /// lookup per item.
    fn enabled_among(
        &self,
        handler: HandlerId,
        items: Vec<ItemId>,
    ) -> Result<(Vec<ItemId>, bool), Error> {
        self.known(&handler)?;
        let mut unknown = false;
        let enabled = items
            .into_iter()
            .filter(|item| match self.engine.item_enabled(&handler, item) {
                Some(enabled) => enabled,
                None => {
                    unknown = true;
                    false
                }
            })
            .collect();
        Ok((enabled, unknown))
    }

    fn known(&self, handler: &HandlerId) -> Result<(), Error> {
        match self.engine.handler_view(handler) {
            Some(_) => Ok(()),
            None => Err(Error::UnknownHandler(handler.clone())),
        }
    }

    fn start(&mut self, start: Start) {
        if let Some(connected) = start.connected {
            let _ = self.engine.set_handler_connected(&start.handler, connected);
        }
        let accepted = self.engine.start_sync(
            &start.handler,
            start.items.as_deref(),
            start.flags,
            start.key,
        );
        let result = match accepted {
            Ok(a) => Ok(self.open(a, start.context, start.sink, start.reason, &mut None)),
            Err(e) => {
                // User values: never dropped here (see `release`).
                self.release((start.context, start.sink));
                Err(e)
            }
        };
        // A request that completed at once (disconnected, nothing to sync) has its result in
        // the ticket before the caller gets the ticket.
        self.carry_out();
        let _ = start.reply.send(result);
    }

    /// Records an accepted request and makes its ticket. `settled` caches the items of the
    /// requests that completed at once, for a call that opens many (see `request_items`).
    fn open(
        &mut self,
        accepted: Accepted,
        context: Option<User<Context>>,
        sink: Option<User<Box<dyn SyncResult>>>,
        reason: TriggerReason,
        settled: &mut Option<HashMap<RequestId, Vec<ItemId>>>,
    ) -> SyncTicket {
        let (completion, slot) = Completion::new();
        let request = accepted.request;
        self.open.insert(
            request,
            Open {
                completion,
                sink,
                context,
                reason,
            },
        );
        if !self.subscribers.is_empty() {
            let items = self.request_items(&accepted, settled);
            self.publish(|| Notification::RequestAccepted {
                request,
                handler: accepted.handler.clone(),
                reason,
                items: items
                    .into_iter()
                    .zip(accepted.dispositions().iter().copied())
                    .collect(),
            });
        }
        SyncTicket::new(request, accepted.handler, slot, self.link.clone())
    }

    /// The items of a just-accepted request: from the engine, or, for one that completed at
    /// once, from its result waiting in the action queue. The queue is read once per call
    /// into `settled`, so a call that opens many requests (`start_sync_all`) costs in
    /// proportion to its requests, not their square.
    fn request_items(
        &mut self,
        accepted: &Accepted,
        settled: &mut Option<HashMap<RequestId, Vec<ItemId>>>,
    ) -> Vec<ItemId> {
        if let Some(items) = self.engine.request_items(accepted.request) {
            return items;
        }
        let settled = settled.get_or_insert_with(|| {
            self.engine
                .pending_actions()
                .filter_map(|a| match a {
                    Action::Deliver(r) => {
                        Some((r.request, r.items.iter().map(|(i, _)| i.clone()).collect()))
                    }
                    _ => None,
                })
                .collect()
        });
        settled.remove(&accepted.request).unwrap_or_default()
    }

    /// Carries out what the engine decided.
    fn carry_out(&mut self) {
        while let Some(action) = self.engine.next_action() {
            match action {
                Action::StartSession {
                    session,
                    handler,
                    items,
                    key,
                } => self.start_session(session, handler, items, key),
                Action::Cancel {
                    session,
                    request,
                    item,
                } => self.publish(|| Notification::CancelRequested {
                    session,
                    request,
                    item,
                }),
                Action::Deliver(result) => self.deliver(result),
            }
        }
    }

    fn start_session(
        &mut self,
        session: SessionId,
        handler: HandlerId,
        items: Vec<ItemId>,
        key: MergeKey,
    ) {
        let served = self.served(session);
        let _ = self.engine.session_started(session);
        self.sessions.insert(session, handler.clone());
        self.publish(|| Notification::SessionStarted {
            session,
            handler: handler.clone(),
            items: items.clone(),
        });
        let job = self.registry.get(&handler).map(|object| Job::Session {
            handler: object,
            items,
            session: SyncSession::new(session, handler, served, key, self.link.clone()),
        });
        let sent = match job {
            Some(job) => self.jobs.send(job).is_ok(),
            None => false,
        };
        if !sent {
            // No handler object or no worker left: end the session at once rather than let
            // its requests wait forever.
            self.finish_session(
                session,
                SessionEnd::Failed,
                Some("no worker could run the session".into()),
            );
        }
    }

    /// The requests a session serves, with what their callers passed.
    fn served(&self, session: SessionId) -> Vec<ServedRequest> {
        let mut ids: Vec<RequestId> = self
            .engine
            .session_view(session)
            .map(|v| v.items.into_iter().flat_map(|i| i.waiting).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(|r| self.describe(r)).collect()
    }

    fn describe(&self, request: RequestId) -> ServedRequest {
        let open = self.open.get(&request);
        ServedRequest {
            request,
            context: open.and_then(|o| o.context.as_ref()?.get().cloned()),
            reason: open.map_or(TriggerReason::Manual, |o| o.reason),
        }
    }

    fn deliver(&mut self, result: RequestResult) {
        let open = self.open.remove(&result.request);
        self.publish(|| Notification::RequestCompleted(result.clone()));
        let Some(open) = open else {
            return;
        };
        // The ticket first: waiters never depend on a user callback.
        open.completion.complete(result.clone());
        if let Some(sink) = open.sink {
            let undelivered = match &self.deliveries {
                Some(deliveries) => match deliveries.send(Delivery::Result { result, sink }) {
                    Ok(()) => None,
                    Err(crossbeam_channel::SendError(undelivered)) => Some(undelivered),
                },
                None => Some(Delivery::Result { result, sink }),
            };
            // Only after shutdown let go of the delivery thread, which has run every
            // callback of a request decided before: the callback is dropped, not called.
            self.release(undelivered);
        }
        self.release(open.context);
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
        self.released.push(values);
    }

    fn finish_session(&mut self, session: SessionId, end: SessionEnd, error: Option<String>) {
        if let Some(message) = &error {
            // Counted before the session ends, so the requests it served see the error.
            let report = EventReport::new(EventLevel::Error, "synchronize failed")
                .description(message.clone());
            let _ = self.record_event(session, report);
        }
        let Ok(ended) = self.engine.session_finished(session, end) else {
            // Already ended: an abandoned session whose handler returned late.
            return;
        };
        self.sessions.remove(&session);
        self.orphans.remove(&session);
        self.publish(|| Notification::SessionEnded {
            session,
            handler: ended.handler,
            outcomes: ended.outcomes,
            error,
        });
    }

    fn record_event(&mut self, session: SessionId, report: EventReport) -> Result<Uuid, Error> {
        self.engine
            .report_event(session, report.item.as_ref(), report.level)?;
        let handler = self
            .sessions
            .get(&session)
            .cloned()
            .ok_or(Error::UnknownSession(session))?;
        let event = HandlerEvent {
            id: Uuid::new_v4(),
            handler,
            session: Some(session),
            time: SystemTime::now(),
            report,
        };
        let id = event.id;
        if !self.orphans.contains(&session) {
            self.events.record(event.clone());
        }
        self.publish(|| Notification::EventReported(event));
        Ok(id)
    }

    fn touched(
        &mut self,
        handler: &HandlerId,
        item: Option<&ItemId>,
        what: Touch,
    ) -> Result<(), Error> {
        let view = self
            .engine
            .handler_view(handler)
            .ok_or_else(|| Error::UnknownHandler(handler.clone()))?;
        if let Some(item) = item
            && !view.items.iter().any(|(i, _)| i == item)
        {
            return Err(Error::UnknownItem {
                handler: handler.clone(),
                item: item.clone(),
            });
        }
        if let Touch::Conflicts = what {
            // New conflicts count for the requests the handler's running sessions serve.
            for session in view.running {
                let _ = self.engine.report_conflict(session, item);
            }
        }
        Ok(())
    }

    fn session_call(&mut self, session: SessionId, call: SessionCall) {
        match call {
            SessionCall::Progress {
                item,
                text,
                status,
                step,
                max,
                reply,
            } => {
                let result = self
                    .engine
                    .report_progress(session, &item, status, &text)
                    .map(|ack| ack.cancel);
                // A running session's handler is always known; the check keeps this panic-free.
                if result.is_ok()
                    && let Some(handler) = self.sessions.get(&session).cloned()
                {
                    self.publish(|| Notification::ItemProgress {
                        session,
                        handler,
                        item,
                        status,
                        text,
                        step,
                        max,
                    });
                }
                let _ = reply.send(result);
            }
            SessionCall::HandlerText { text, reply } => {
                let result = self.engine.set_handler_progress_text(session, &text);
                if result.is_ok() {
                    self.publish(|| Notification::HandlerProgress { session, text });
                }
                let _ = reply.send(result);
            }
            SessionCall::Event { report, reply } => {
                let _ = reply.send(self.record_event(session, report));
            }
            SessionCall::Conflict { item, reply } => {
                let _ = reply.send(self.engine.report_conflict(session, item.as_ref()));
            }
            SessionCall::CanContinue { item, reply } => {
                let _ = reply.send(self.engine.can_continue(session, item.as_ref()));
            }
            SessionCall::Query { reply } => {
                let result = self
                    .engine
                    .query_for_additional_items(session)
                    .map(|extra| PendingItems {
                        items: extra.items,
                        requests: extra
                            .requests
                            .into_iter()
                            .map(|r| self.describe(r))
                            .collect(),
                    });
                let _ = reply.send(result);
            }
            SessionCall::Add { item, reply } => {
                let result = self.engine.add_item_to_session(session, &item);
                if let Ok(requests) = result {
                    self.publish(|| Notification::ItemAdded {
                        session,
                        item,
                        requests,
                    });
                }
                let _ = reply.send(result.map(drop));
            }
            SessionCall::Propose { item, reply } => {
                let result =
                    check_text(&item.name, TextKind::Name, MAX_SYNCMGR_NAME).and_then(|()| {
                        self.engine.propose_item(
                            session,
                            ItemSpec {
                                id: item.id,
                                capabilities: item.capabilities,
                                policies: item.policies,
                                enabled: item.enabled,
                            },
                        )
                    });
                let _ = reply.send(result);
            }
            SessionCall::Commit { item, reply } => {
                let _ = reply.send(self.engine.commit_item(session, &item));
            }
            SessionCall::Manual { reply } => {
                let result = self.engine.report_manual_sync(session);
                if result.is_ok()
                    && let Some(handler) = self.sessions.get(&session).cloned()
                {
                    self.publish(|| Notification::ManualSync { session, handler });
                }
                let _ = reply.send(result);
            }
        }
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

/// The scheduler's lock. It is never poisoned: every step runs under `catch_unwind` (see
/// `Scheduler::guarded`), and a step that panicked marks the scheduler broken instead. While
/// it is held the thread is marked (see [`Locked`]), so that user code reached under it fails
/// the debug-build check of the panic policy.
pub(crate) fn lock(scheduler: &Mutex<Scheduler>) -> SchedulerGuard<'_> {
    let guard = scheduler.lock().unwrap_or_else(PoisonError::into_inner);
    SchedulerGuard {
        guard,
        _mark: Locked::mark(),
    }
}

/// The held scheduler lock, with the thread's mark.
pub(crate) struct SchedulerGuard<'a> {
    guard: MutexGuard<'a, Scheduler>,
    _mark: Locked,
}

impl Deref for SchedulerGuard<'_> {
    type Target = Scheduler;
    fn deref(&self) -> &Scheduler {
        &self.guard
    }
}

impl DerefMut for SchedulerGuard<'_> {
    fn deref_mut(&mut self) -> &mut Scheduler {
        &mut self.guard
    }
}
