//! The threads that run user code: workers run `synchronize` and state-change hooks, the
//! delivery thread runs result callbacks. Each catches panics, so user code can never take a
//! thread of the manager down.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::command::{Command, Link};
use super::pool::{IdleWait, JobReceiver};
use super::tasks::Runner;
use super::trace;
use super::{HandlerError, SyncHandler, SyncResult, SyncSession};
use crate::engine::SessionEnd;
use crate::id::ItemId;
use crate::result::RequestResult;
use crate::unwind::{self, User};

/// Work for a worker thread.
pub(crate) enum Job {
    /// Run one session of a blocking handler (an async handler's sessions go to their
    /// executor without a worker: `AsyncStart`).
    Session {
        handler: Arc<dyn SyncHandler>,
        items: Vec<ItemId>,
        session: SyncSession,
    },
    /// Run a state change queued without `ControlFlags::WAIT`.
    Task(Box<dyn FnOnce() + Send>),
}

/// A result on its way to its callback.
pub(crate) enum Delivery {
    /// Run a result callback.
    Result {
        result: RequestResult,
        sink: User<Box<dyn SyncResult>>,
    },
    /// Drop user values (a request's context, a removed handler object) here rather than on
    /// the scheduler thread: their `Drop` is user code, which may panic, or drop the last
    /// `SyncManager` and so run a shutdown that waits for the scheduler.
    Release(Box<dyn Send>),
}

/// How a session's `synchronize` (blocking or async) ended, from what `unwind` caught: its
/// error or its panic becomes the session's cause. The error is user code too: its text is
/// read and it is dropped with panics contained.
pub(crate) fn session_end(outcome: Result<Result<(), HandlerError>, String>) -> SessionEnd {
    match outcome {
        Ok(Ok(())) => SessionEnd::Returned,
        Ok(Err(e)) => {
            let cause = unwind::cause_of(&*e);
            unwind::dispose(e);
            SessionEnd::Failed(cause)
        }
        Err(panic) => SessionEnd::Failed(unwind::panic_cause(&panic)),
    }
}

/// An async session on its way to its executor. The scheduler hands these out with the
/// lock released, on the thread that applied the step (`AfterUnlock`): a task awaiting its
/// ticket on a runtime thread then starts its session's task there, with no thread hand-off.
pub(crate) struct AsyncStart {
    pub handler: Arc<dyn SyncHandler>,
    pub runner: Arc<dyn Runner>,
    pub items: Vec<ItemId>,
    pub session: SyncSession,
}

/// Checks an async session may still start and hands it to its executor; its task reports
/// its end. Called with no lock held.
pub(crate) fn start_async(start: AsyncStart) {
    let AsyncStart {
        handler,
        runner,
        items,
        session,
    } = start;
    let link = session.link().clone();
    match session.can_continue(None) {
        Ok(true) => {
            // An executor whose `spawn` panics dropped the task on the way out; the task's
            // guard has ended the session (as `Failed`).
            let _ = unwind::run(|| runner.start(items, session, link));
        }
        Ok(false) => {
            let id = session.id();
            unwind::dispose((items, session));
            link.end_session(id, SessionEnd::Returned);
        }
        Err(_) => unwind::dispose((items, session)),
    }
    unwind::dispose((handler, runner));
}

/// A worker: runs jobs until the scheduler drops the job channel. `_alive` is dropped when
/// the thread ends, which is how shutdown knows.
pub(crate) fn worker(jobs: JobReceiver<Job>, link: Link, _alive: Sender<()>) {
    // After a session that started with one request at most, nothing merged into it: the next
    // request is likely that caller's next, and the worker waits awake for it (`pool.rs`).
    let mut idle = IdleWait::Brief;
    while let Some(job) = jobs.recv(idle) {
        idle = IdleWait::Brief;
        match job {
            Job::Session {
                handler,
                items,
                session,
            } => {
                let id = session.id();
                if session.requests().len() <= 1 {
                    idle = IdleWait::Linger;
                }
                // A session can wait here for a free worker. If it was asked to cancel
                // everything meanwhile, or already ended (abandoned at shutdown), the handler
                // is not started at all: its items settle as `Canceled`.
                let outcome = match session.can_continue(None) {
                    Ok(true) => {
                        let span = trace::session_span(session.handler(), id);
                        trace::in_span(&span, || {
                            unwind::run(|| handler.synchronize(&items, &session))
                        })
                    }
                    Ok(false) => Ok(Ok(())),
                    Err(_) => {
                        unwind::dispose((handler, items, session));
                        continue;
                    }
                };
                let end = session_end(outcome);
                // The handler object may be the last reference to a removed handler, and the
                // session holds the served requests' contexts: user values, whose `Drop` must
                // not take this thread down before the session's end is reported.
                unwind::dispose((handler, items, session));
                link.end_session(id, end);
            }
            Job::Task(task) => {
                // A task reports its own errors; a panic in it was a hook's, already caught.
                let _ = unwind::run(task);
            }
        }
    }
}

/// The delivery thread: runs result callbacks in the order results were decided. `_done`
/// tells the scheduler, by going away, that every callback has run.
pub(crate) fn delivery(
    deliveries: Receiver<Delivery>,
    link: Link,
    _alive: Sender<()>,
    _done: Sender<()>,
) {
    for delivery in deliveries {
        let (result, sink) = match delivery {
            Delivery::Result { result, sink } => (result, sink),
            Delivery::Release(values) => {
                unwind::dispose(values);
                continue;
            }
        };
        let Some(sink) = sink.into_inner() else {
            continue;
        };
        // The callback consumes itself, so its `Drop` runs inside `run` too.
        if let Err(message) = unwind::run(|| sink.result(&result)) {
            let _ = link.send(Command::CallbackPanicked {
                request: result.request,
                message,
            });
        }
    }
}
