//! Carrying out what the engine decided: opening requests and their tickets, starting
//! sessions on the workers, delivering results, ending sessions and recording their events.

use std::sync::Arc;
use std::time::SystemTime;

use uuid::Uuid;

use super::{Open, Scheduler};
use crate::cause::Cause;
use crate::engine::{Accepted, Action, MergeKey, RequestId, SessionEnd, SessionId};
use crate::error::Error;
use crate::flags::EventLevel;
use crate::id::{HandlerId, IdMap, ItemId};
use crate::manager::events::{EventReport, HandlerEvent};
use crate::manager::notify::Notification;
use crate::manager::threads::{AsyncStart, Delivery, Job};
use crate::manager::ticket::Unfilled;
use crate::manager::{Context, ServedRequest, SyncResult, SyncSession, SyncTicket, TriggerReason};
use crate::result::RequestResult;
use crate::slot::Completion;
use crate::unwind::User;

/// At most this many wakers' room is reserved ahead in one step; more double from there.
const WAKES_ROOM: usize = 64;

impl Scheduler {
    /// Records an accepted request and fills in its ticket, made blank before the lock was
    /// taken when the caller could (see `Blank`); the engine already keeps the ticket's
    /// write end. `settled` caches the items of the requests that completed at once, for a
    /// call that opens many (see `settled_items`).
    pub(super) fn open(
        &mut self,
        accepted: Accepted,
        ticket: Unfilled,
        context: Option<User<Context>>,
        sink: Option<User<Box<dyn SyncResult>>>,
        reason: TriggerReason,
        settled: &mut Option<IdMap<RequestId, Vec<ItemId>>>,
    ) -> SyncTicket {
        let request = accepted.request;
        if self.observed() {
            let items = match accepted.items(&self.engine) {
                Some(items) => items,
                None => self
                    .settled_items(accepted.request, settled)
                    .into_iter()
                    .zip(accepted.dispositions().iter().copied())
                    .collect(),
            };
            self.publish(|| Notification::RequestAccepted {
                request,
                handler: accepted.handler.clone(),
                reason,
                items,
            });
        }
        let ticket = ticket.fill(request, accepted.handler);
        self.record_open(
            request,
            Open {
                sink,
                context,
                reason,
            },
        );
        ticket
    }

    /// The items of a request that completed as it was accepted, from its result waiting in
    /// the action queue. The queue is read once per call into `settled`, so a call that opens
    /// many requests (`start_sync_all`) costs in proportion to its requests, not their square.
    fn settled_items(
        &self,
        request: RequestId,
        settled: &mut Option<IdMap<RequestId, Vec<ItemId>>>,
    ) -> Vec<ItemId> {
        let settled = settled.get_or_insert_with(|| {
            self.engine
                .pending_actions()
                .filter_map(|a| match a {
                    Action::Deliver(r) => {
                        Some((r.request, r.items.iter().map(|o| o.item.clone()).collect()))
                    }
                    _ => None,
                })
                .collect()
        });
        settled.remove(&request).unwrap_or_default()
    }

    /// Carries out what the engine decided.
    pub(super) fn carry_out(&mut self) {
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
                Action::Debounced { handler, until } => {
                    self.publish(|| Notification::Debounced { handler, until })
                }
                Action::RetryScheduled {
                    handler,
                    item,
                    attempt,
                    max_attempts,
                    at,
                } => self.publish(|| Notification::RetryScheduled {
                    handler,
                    item,
                    attempt,
                    max_attempts,
                    at,
                }),
                Action::Issued {
                    request,
                    handler,
                    reason,
                } => self.issued(request, handler, reason),
                Action::TickSkipped { handler, open } => {
                    self.publish(|| Notification::TickSkipped { handler, open })
                }
            }
        }
    }

    /// A request the engine made by itself: nobody holds its ticket, so its result goes to
    /// the notifications only, and the sessions that serve it see why it was made.
    fn issued(&mut self, request: RequestId, handler: HandlerId, reason: TriggerReason) {
        self.record_open(
            request,
            Open {
                sink: None,
                context: None,
                reason,
            },
        );
        self.publish(|| Notification::RequestIssued {
            request,
            handler,
            reason,
        });
    }

    pub(super) fn start_session(
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
        let sent = match self.registry.object(&handler) {
            Some(object) => {
                let run = SyncSession::new(session, handler, served, key, self.link.clone());
                match object.runner {
                    // An async session starts its task once the lock is released, on this
                    // thread.
                    Some(runner) => {
                        self.after.spawns.push(AsyncStart {
                            handler: object.handler,
                            runner,
                            items,
                            session: run,
                        });
                        true
                    }
                    // Sent under the lock, although waking a sleeping worker is a system
                    // call: sent after it, the worker starts on every request of a stream, so
                    // sessions serve a tenth of the requests each and the stream slows by
                    // 40% (`benches/manager.rs`, `stream_1_thread`).
                    None => {
                        let job = Job::Session {
                            handler: object.handler,
                            items,
                            session: run,
                        };
                        self.send_job(job)
                    }
                }
            }
            None => false,
        };
        if !sent {
            // No handler object or no worker left: end the session at once rather than let
            // its requests wait forever.
            self.finish_session(
                session,
                SessionEnd::Failed(Cause::new("no worker could run the session")),
            );
        }
    }

    /// Hands a job to the workers; false if none is left to take it. The send wakes one
    /// worker at most, under the lock; when more jobs wait than workers come, the others are
    /// woken after it (see `pool`).
    #[inline]
    pub(super) fn send_job(&mut self, job: Job) -> bool {
        match self.jobs.send(job) {
            Ok(more) => {
                if more && self.after.workers.is_none() {
                    self.after.workers = Some(self.jobs.waker());
                }
                true
            }
            // A job nobody can take holds user values: released, not dropped here.
            Err(job) => {
                self.release(job);
                false
            }
        }
    }

    /// The requests a session serves, with what their callers passed. Collected straight
    /// into the shared slice every clone of the session reads (one allocation, not a `Vec`
    /// and then its copy).
    pub(super) fn served(&self, session: SessionId) -> Arc<[ServedRequest]> {
        self.engine
            .session_requests(session)
            .into_iter()
            .map(|r| self.describe(r))
            .collect()
    }

    pub(super) fn describe(&self, request: RequestId) -> ServedRequest {
        let open = self.open.get(&request);
        ServedRequest {
            request,
            context: open.and_then(|o| o.context.as_ref()?.get().cloned()),
            reason: open.map_or(TriggerReason::Manual, |o| o.reason),
        }
    }

    pub(super) fn deliver(&mut self, result: RequestResult) {
        let end = self.engine.take_end(result.request);
        let open = self.take_open(result.request);
        self.publish(|| Notification::RequestCompleted(result.clone()));
        let (sink, context) = open.map_or((None, None), |o| (o.sink, o.context));
        // The ticket first: waiters never depend on a user callback. The result is cloned
        // only when a callback needs it too.
        let (for_ticket, for_sink) = match sink {
            Some(sink) => (result.clone(), Some(Delivery::Result { result, sink })),
            None => (result, None),
        };
        if let Some(end) = end {
            self.complete_ticket(end, for_ticket);
        }
        if let Some(delivery) = for_sink {
            let undelivered = match &self.deliveries {
                Some(deliveries) => match deliveries.send(delivery) {
                    Ok(()) => None,
                    Err(crossbeam_channel::SendError(undelivered)) => Some(undelivered),
                },
                None => Some(delivery),
            };
            // Only after shutdown let go of the delivery thread, which has run every callback
            // of a request decided before: the callback is dropped, not called.
            if let Some(undelivered) = undelivered {
                self.release(undelivered);
            }
        }
        if let Some(context) = context {
            self.release(context);
        }
    }

    /// Puts a result in its ticket and keeps who waits for it, to wake (see
    /// [`Woken`](crate::slot::Woken)).
    fn complete_ticket(&mut self, end: Completion, result: RequestResult) {
        let woken = end.complete(result);
        if !woken.wakers.is_empty() && self.after.wakes.capacity() == 0 {
            // The step's first waker: room for the results still to go out with it (a
            // session's end delivers many), one allocation rather than one per doubling.
            let room = 1 + self.engine.pending_actions().len();
            self.after.wakes.reserve(room.min(WAKES_ROOM));
        }
        // A loop, not `extend`: nearly always one waker or none, and `extend`'s reservation
        // from the size hint cost more than the push (callgrind `join_async 10`).
        for waker in woken.wakers {
            self.after.wakes.push(waker);
        }
        match woken.sleepers {
            // More of the step's results follow (a session's end delivers many, oldest
            // first): a thread asleep on this ticket wakes now, to take its result and the
            // next ones while they go out, rather than after the last. After the last
            // result it waits for the lock's release, as a woken caller would only find
            // the lock taken.
            Some(slot)
                if matches!(
                    self.engine.pending_actions().next(),
                    Some(Action::Deliver(_))
                ) =>
            {
                slot.notify()
            }
            sleepers => self.after.sleepers.extend(sleepers),
        }
    }

    pub(super) fn finish_session(&mut self, session: SessionId, end: SessionEnd) {
        if let Some(cause) = end.cause() {
            // Counted before the session ends, so the requests it served see the error.
            let report = EventReport::new(EventLevel::Error, "synchronize failed")
                .description(format!("{cause:#}"));
            let _ = self.record_event(session, report);
        }
        let error = end.cause().cloned();
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
            retried: ended.retried,
            error,
        });
    }

    pub(super) fn record_event(
        &mut self,
        session: SessionId,
        report: EventReport,
    ) -> Result<Uuid, Error> {
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
}
