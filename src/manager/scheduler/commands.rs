//! Applying commands: one method per command family, and the session calls.

use crossbeam_channel::Sender;

use super::Scheduler;
use crate::engine::{Changed, ItemSpec, SessionId};
use crate::error::{Error, TextKind, check_text};
use crate::flags::{CancelRequest, HandlerCapabilities, HandlerPolicies, ItemCapabilities};
use crate::id::{HandlerId, ItemId, MAX_SYNCMGR_NAME};
use crate::manager::command::{
    Command, EventQuery, Queries, Report, SessionCall, Start, StopTarget, Touch,
};
use crate::manager::notify::{HandlerChange, Notification};
use crate::manager::threads::Job;
use crate::manager::ticket::Blank;
use crate::manager::{PendingItems, ShutdownReport, SyncTicket, TriggerReason};
use crate::policy::SyncPolicy;

impl Scheduler {
    /// Applies one command: each family has its method.
    pub(super) fn handle(&mut self, command: Command) {
        match command {
            c @ (Command::Register { .. } | Command::Remove { .. }) => self.handlers(c),
            c @ (Command::Start { .. } | Command::StartAll { .. }) => self.starts(c),
            c @ (Command::Stop { .. } | Command::Cancel { .. }) => self.stops(c),
            c @ (Command::CheckState { .. }
            | Command::ApplyState { .. }
            | Command::UpdateHandler { .. }
            | Command::UpdateItem { .. }
            | Command::Touched { .. }
            | Command::StateChangeFailed { .. }
            | Command::RunTask { .. }) => self.state(c),
            c @ (Command::Session { .. } | Command::SessionFinished { .. }) => self.sessions(c),
            c @ (Command::CallbackPanicked { .. }
            | Command::Events { .. }
            | Command::Subscribe(_)
            | Command::Check { .. }
            | Command::EnabledAmong { .. }) => self.observers(c),
            c @ (Command::Poll | Command::Trigger { .. } | Command::SetPolicy { .. }) => {
                self.timing(c)
            }
            Command::Shutdown { reply, from_inside } => self.shutdown_command(reply, from_inside),
        }
    }

    /// `update_handler` with the handler's sync policy: a policy out of range refuses the
    /// whole update, before anything changes.
    fn update_handler(
        &mut self,
        handler: &HandlerId,
        capabilities: HandlerCapabilities,
        policies: HandlerPolicies,
        items: Vec<ItemSpec>,
        policy: SyncPolicy,
    ) -> Result<Changed, Error> {
        policy.validate()?;
        self.catch_up_time();
        let mut changed = self
            .engine
            .update_handler(handler, capabilities, policies, items)?;
        changed.changed |= self.engine.set_sync_policy(handler, policy)?.changed;
        Ok(changed)
    }

    /// Time: a poll (every command starts with one, so it has nothing left to do), a
    /// reported trigger, a policy change.
    pub(super) fn timing(&mut self, command: Command) {
        match command {
            Command::Trigger { trigger, reply } => {
                let result = self
                    .engine
                    .trigger(trigger)
                    .map(|issued| issued.into_iter().map(|a| a.request).collect());
                self.carry_out();
                let _ = reply.send(result);
            }
            Command::SetPolicy {
                handler,
                policy,
                reply,
            } => {
                self.catch_up_time();
                let result = self.engine.set_sync_policy(&handler, *policy);
                self.carry_out();
                let _ = reply.send(result);
            }
            _ => {}
        }
    }

    /// Registering and removing handlers.
    pub(super) fn handlers(&mut self, command: Command) {
        match command {
            Command::Register {
                spec,
                handler,
                extra,
                reply,
            } => {
                let id = spec.id.clone();
                self.catch_up_time();
                let result = self.engine.register_handler(*spec);
                if result.is_ok() {
                    let displaced = self.registry.insert(id.clone(), handler, extra);
                    self.release(displaced);
                    self.publish(|| Notification::HandlerChanged {
                        handler: id,
                        change: HandlerChange::Registered,
                    });
                } else {
                    // User values: never dropped here (see `release`).
                    self.release((handler, extra));
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
            // `handle` routes only this family here.
            _ => {}
        }
    }

    /// Start calls: one request, or one per handler for `start_sync_all`.
    pub(super) fn starts(&mut self, command: Command) {
        match command {
            Command::Start { start, reply } => {
                let result = self.start(start);
                // A result decided at once is in the ticket before the caller has it.
                self.carry_out();
                let _ = reply.send(result);
            }
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
                        .map(|a| {
                            let (end, ticket) = Blank::new(&self.link).split();
                            self.engine.attach_end(&a, end);
                            self.open(a, ticket, None, None, TriggerReason::Manual, &mut settled)
                        })
                        .collect()
                });
                // Results decided at once are in the tickets before the caller has them.
                self.carry_out();
                let _ = reply.send(result);
            }
            // `handle` routes only this family here.
            _ => {}
        }
    }

    /// Stops and per-request cancels.
    pub(super) fn stops(&mut self, command: Command) {
        match command {
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
            // `handle` routes only this family here.
            _ => {}
        }
    }

    /// State changes, updates and what a state change queued without `WAIT` needs.
    pub(super) fn state(&mut self, command: Command) {
        match command {
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
                policy,
                reply,
            } => {
                let result = self.update_handler(&handler, capabilities, policies, items, *policy);
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
            Command::StateChangeFailed { handler, error } => {
                self.publish(|| Notification::StateChangeFailed { handler, error });
            }
            Command::RunTask(task) => {
                // With no worker left, the task (a hook and what it holds) is released.
                let _ = self.send_job(Job::Task(task));
            }
            // `handle` routes only this family here.
            _ => {}
        }
    }

    /// What a running session reports, and its end.
    pub(super) fn sessions(&mut self, command: Command) {
        match command {
            Command::Session { session, call } => self.session_call(session, call),
            Command::SessionFinished { session, end } => self.finish_session(session, end),
            // `handle` routes only this family here.
            _ => {}
        }
    }

    /// Questions and reports that change no engine state: the event log, subscribers,
    /// callback panics, checks.
    pub(super) fn observers(&mut self, command: Command) {
        match command {
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
            Command::Subscribe(subscriber) => self.subscribers.add(subscriber),
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
            // `handle` routes only this family here.
            _ => {}
        }
    }

    /// The shutdown command: begins the shutdown; the reply goes out once it is over.
    pub(super) fn shutdown_command(&mut self, reply: Sender<ShutdownReport>, from_inside: bool) {
        self.shutdown_replies.push(reply);
        self.from_inside |= from_inside;
        self.begin_shutdown();
    }

    /// The items of `items` the handler has enabled, and whether any is unknown to it.
    pub(super) fn enabled_among(
        &self,
        handler: HandlerId,
        items: Vec<ItemId>,
    ) -> Result<(Vec<ItemId>, bool), Error> {
        self.engine
            .enabled_among(&handler, items)
            .ok_or(Error::UnknownHandler(handler))
    }

    pub(super) fn known(&self, handler: &HandlerId) -> Result<(), Error> {
        match self.engine.handler_view(handler) {
            Some(_) => Ok(()),
            None => Err(Error::UnknownHandler(handler.clone())),
        }
    }

    /// A start call: its request accepted and its ticket made, or why not. It takes the box
    /// the call came in (see `Start::new`): unboxed here, the record would be copied again.
    #[expect(
        clippy::boxed_local,
        reason = "the box is the caller's; its fields move out of it here, once"
    )]
    pub(crate) fn start(&mut self, start: Box<Start>) -> Result<SyncTicket, Error> {
        let Start {
            handler,
            items,
            flags,
            options,
            connected,
            context,
            reason,
            sink,
            ticket,
        } = *start;
        // The engine keeps the ticket's write end with the request (one record per request,
        // not one here as well); the ticket is filled once the request has its ID.
        let (end, ticket) = ticket.split();
        // The caller's handler ID moves on into the ticket: one count change less per
        // request on a count every thread of the manager changes.
        let accepted = self.engine.accept(
            handler,
            connected,
            items.as_deref(),
            flags,
            options,
            Some(end),
        );
        // A request that completed at once (disconnected, nothing to sync) has its result in
        // the ticket before the caller gets the ticket: the step's `carry_out`, which follows
        // this under the same lock, delivers it.
        match accepted {
            Ok(a) => Ok(self.open(a, ticket, context, sink, reason, &mut None)),
            Err(e) => {
                // User values: never dropped here (see `release`).
                self.release((context, sink));
                Err(e)
            }
        }
    }

    pub(super) fn touched(
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

    /// A session's progress or failure report: the cancel request pending for the item.
    pub(crate) fn report(
        &mut self,
        session: SessionId,
        report: Report,
    ) -> Result<CancelRequest, Error> {
        let Report {
            item,
            progress,
            cause,
            permanent,
        } = report;
        let result = match cause {
            Some(cause) if permanent => self.engine.report_permanent_failure(session, &item, cause),
            Some(cause) => self.engine.report_failure(session, &item, cause),
            None => {
                let (status, text) = (progress.status, &progress.text);
                self.engine.report_status(session, &item, status, text)
            }
        }
        .map(|ack| ack.cancel);
        // A running session's handler is always known; the check keeps this panic-free. The
        // handler's ID is cloned only for a notification someone reads: its count is shared
        // with every thread that names the handler (a report is made per item).
        if result.is_ok()
            && self.observed()
            && let Some(handler) = self.sessions.get(&session).cloned()
        {
            self.publish(|| Notification::ItemProgress {
                session,
                handler,
                item,
                progress,
            });
        }
        result
    }

    /// Whether a session may go on, for one item or for all (`None`).
    pub(crate) fn can_continue(
        &mut self,
        session: SessionId,
        item: Option<&ItemId>,
    ) -> Result<bool, Error> {
        self.engine.can_continue(session, item)
    }

    pub(super) fn session_call(&mut self, session: SessionId, call: SessionCall) {
        match call {
            SessionCall::Progress { report, reply } => {
                let _ = reply.send(self.report(session, report));
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
                let _ = reply.send(self.can_continue(session, item.as_ref()));
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
