//! The threads that run user code: workers run `synchronize` and state-change hooks, the
//! delivery thread runs result callbacks. Each catches panics, so user code can never take a
//! thread of the manager down.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::command::{Command, Link};
use super::{SyncHandler, SyncResult, SyncSession};
use crate::engine::SessionEnd;
use crate::id::ItemId;
use crate::result::RequestResult;

/// Work for a worker thread.
pub(crate) enum Job {
    /// Run one session.
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
        sink: Box<dyn SyncResult>,
    },
    /// Drop user values (a request's context, a removed handler object) here rather than on
    /// the scheduler thread: their `Drop` is user code, which may panic, or drop the last
    /// `SyncManager` and so run a shutdown that waits for the scheduler.
    Release(Box<dyn Send>),
}

/// The text of a caught panic, dropping its payload safely: a payload whose own `Drop`
/// panics must not unwind the thread that caught it (std's `catch_unwind` docs warn of this),
/// so it is dropped under a second `catch_unwind`, and forgotten if even that panics.
pub(crate) fn panic_text(payload: Box<dyn Any + Send>) -> String {
    let text = panic_message(&*payload);
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    text
}

/// The text of a caught panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// A worker: runs jobs until the scheduler drops the job channel. `_alive` is dropped when
/// the thread ends, which is how shutdown knows.
pub(crate) fn worker(jobs: Receiver<Job>, link: Link, _alive: Sender<()>) {
    for job in jobs {
        match job {
            Job::Session {
                handler,
                items,
                session,
            } => {
                let id = session.id();
                // A session can wait here for a free worker. If it was asked to cancel
                // everything meanwhile, or already ended (abandoned at shutdown), the handler
                // is not started at all: its items settle as `Canceled`.
                match session.can_continue(None) {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = link.send(Command::SessionFinished {
                            session: id,
                            end: SessionEnd::Returned,
                            error: None,
                        });
                        continue;
                    }
                    Err(_) => continue,
                }
                let outcome =
                    catch_unwind(AssertUnwindSafe(|| handler.synchronize(&items, &session)));
                let (end, error) = match outcome {
                    Ok(Ok(())) => (SessionEnd::Returned, None),
                    Ok(Err(e)) => (SessionEnd::Failed, Some(e.to_string())),
                    Err(panic) => (
                        SessionEnd::Failed,
                        Some(format!("handler panicked: {}", panic_text(panic))),
                    ),
                };
                let _ = link.send(Command::SessionFinished {
                    session: id,
                    end,
                    error,
                });
            }
            Job::Task(task) => {
                // A task reports its own errors; a panic in it was a hook's, already caught.
                let _ = catch_unwind(AssertUnwindSafe(task));
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
                if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(values))) {
                    let _ = panic_text(panic);
                }
                continue;
            }
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| sink.result(&result))) {
            let _ = link.send(Command::CallbackPanicked {
                request: result.request,
                message: panic_text(panic),
            });
        }
    }
}
