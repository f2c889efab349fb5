//! Async handlers: [`AsyncHandler`], whose sessions run as tasks on an executor the
//! application gives ([`Spawn`]; with the `tokio` feature, a `tokio::runtime::Handle`), so a
//! running session holds no thread while it awaits.
//!
//! No worker thread is involved: once the step that started the session has released the
//! scheduler's lock, the thread that ran it checks that the session may still start and
//! hands its future to the executor; the task reports the session's end when it is done.
//! The panic policy is the same as for blocking handlers: a panic while the future is polled
//! fails its items and the manager keeps working; a task the executor drops unfinished (a
//! runtime shutting down) still ends its session, as `Failed`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::command::Link;
use super::threads::session_end;
use super::trace;
use super::{HandlerError, HandlerInfo, SyncHandler, SyncItem, SyncSession};
use crate::cause::Cause;
use crate::engine::{SessionEnd, StateChange};
use crate::flags::{ControlFlags, HandlerCapabilities, HandlerPolicies};
use crate::id::ItemId;
use crate::policy::SyncPolicy;
use crate::unwind;

/// A task to run to its end.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs tasks: how the manager hands an async handler's sessions to the application's
/// executor. The `tokio` feature implements it for `tokio::runtime::Handle`; for another
/// executor, implement it with that executor's spawn.
///
/// `spawn` runs on the thread whose call started the session (a caller's, a handler's, or the
/// manager's scheduler thread), after the manager released its lock. It must not block, and
/// a panic in it fails the session. So when a task on a runtime thread makes a request, the
/// session's task is spawned from that same thread, with no hand-off to another.
pub trait Spawn: Send + Sync + 'static {
    /// Starts `task`; it must be polled to its end (or dropped, which ends its session).
    fn spawn(&self, task: Task);
}

#[cfg(feature = "tokio")]
impl Spawn for tokio::runtime::Handle {
    fn spawn(&self, task: Task) {
        // Detached: the task reports its own end to the manager.
        drop(tokio::runtime::Handle::spawn(self, task));
    }
}

/// A sync handler whose `synchronize` is async ([`SyncHandler`]'s async form). Register it
/// with [`SyncManager::register_async_handler`](super::SyncManager::register_async_handler)
/// and an executor: each session runs as a task, so sessions waiting on I/O hold no thread.
///
/// Every other method is a plain hook with the same meaning and default as in
/// [`SyncHandler`]: it runs on the thread of the manager call that needs it and must answer
/// at once, never block and never wait for the executor (`block_on` inside a hook called from
/// async code panics in most runtimes).
///
/// ```
/// use syncmgr::{AsyncHandler, HandlerError, ItemId, Progress, ProgressStatus, SyncItem, SyncSession};
///
/// struct Mail;
///
/// impl AsyncHandler for Mail {
///     fn items(&self) -> Vec<SyncItem> {
///         vec![SyncItem::new("inbox", "Inbox").unwrap()]
///     }
///
///     async fn synchronize(&self, items: Vec<ItemId>, session: SyncSession) -> Result<(), HandlerError> {
///         for item in &items {
///             // ... await the network here ...
///             session.report_progress(item, Progress::new(ProgressStatus::Succeeded).text("done").steps(1, 1))?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait AsyncHandler: Send + Sync + 'static {
    /// See [`SyncHandler::name`].
    fn name(&self) -> String {
        String::new()
    }

    /// See [`SyncHandler::info`].
    fn info(&self) -> HandlerInfo {
        HandlerInfo::default()
    }

    /// See [`SyncHandler::capabilities`].
    fn capabilities(&self) -> HandlerCapabilities {
        HandlerCapabilities::empty()
    }

    /// See [`SyncHandler::policies`].
    fn policies(&self) -> HandlerPolicies {
        HandlerPolicies::empty()
    }

    /// See [`SyncHandler::items`].
    fn items(&self) -> Vec<SyncItem> {
        Vec::new()
    }

    /// See [`SyncHandler::max_concurrent_sessions`].
    fn max_concurrent_sessions(&self) -> Option<usize> {
        None
    }

    /// See [`SyncHandler::is_connected`]. Answer at once: it runs on every start call.
    fn is_connected(&self) -> bool {
        true
    }

    /// See [`SyncHandler::sync_policy`].
    fn sync_policy(&self) -> SyncPolicy {
        SyncPolicy::default()
    }

    /// See [`SyncHandler::query_state_change`].
    fn query_state_change(&self, change: &StateChange, flags: ControlFlags) -> bool {
        let _ = (change, flags);
        true
    }

    /// See [`SyncHandler::on_state_change`].
    fn on_state_change(
        &self,
        change: &StateChange,
        flags: ControlFlags,
    ) -> Result<(), HandlerError> {
        let _ = (change, flags);
        Ok(())
    }

    /// Synchronizes `items`, reporting through `session` (its calls are quick: they never
    /// wait for other work). Runs as a task on the executor the handler was registered
    /// with. Items left without a terminal report when it returns end `Failed` (or
    /// `Canceled`, if a cancel was requested); returning an error, or panicking, records an
    /// error event as well.
    fn synchronize(
        &self,
        items: Vec<ItemId>,
        session: SyncSession,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// How the manager runs an async handler's sessions: the handler and its executor.
pub(crate) trait Runner: Send + Sync {
    /// Hands one session to the executor; the task reports the session's end over `link`.
    fn start(&self, items: Vec<ItemId>, session: SyncSession, link: Link);
}

/// An [`AsyncHandler`] with its executor: the manager's view of it, a [`SyncHandler`] for
/// its hooks and a [`Runner`] for its sessions.
pub(crate) struct Adapter<H> {
    handler: Arc<H>,
    spawner: Arc<dyn Spawn>,
}

impl<H: AsyncHandler> Adapter<H> {
    pub fn new(handler: H, spawner: impl Spawn) -> Arc<Adapter<H>> {
        Arc::new(Adapter {
            handler: Arc::new(handler),
            spawner: Arc::new(spawner),
        })
    }
}

impl<H: AsyncHandler> Runner for Adapter<H> {
    fn start(&self, items: Vec<ItemId>, session: SyncSession, link: Link) {
        let handler = self.handler.clone();
        let id = session.id();
        let span = trace::session_span(session.handler(), id);
        let mut end = EndGuard {
            link: Some(link),
            session: id,
        };
        let task: Task = Box::pin(async move {
            let ran = {
                // Pinned in place, inside the task's own allocation: no box of its own. The
                // block drops it (and what it holds: the session, the items) before the end
                // is reported, as a worker does for a blocking handler.
                let run = std::pin::pin!(handler.synchronize(items, session));
                Contained(run).await
            };
            end.finish(session_end(ran));
        });
        // A `spawn` that panics drops the task as it unwinds, and its guard ends the session;
        // `threads::start_async`, which called this, contains the panic.
        self.spawner.spawn(trace::instrument(task, span));
    }
}

/// Ends the session when the task ends, or when the task is dropped unfinished.
struct EndGuard {
    link: Option<Link>,
    session: crate::engine::SessionId,
}

impl EndGuard {
    fn finish(&mut self, end: SessionEnd) {
        if let Some(link) = self.link.take() {
            link.end_session(self.session, end);
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        // The cause is built only for a task dropped unfinished: a finished one took the
        // link, and its guard's drop allocates nothing.
        if self.link.is_some() {
            self.finish(SessionEnd::Failed(Cause::new(
                "the executor dropped the session's task before it finished",
            )));
        }
    }
}

/// A future whose panics are caught, poll by poll, and returned as their text.
struct Contained<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for Contained<'_, F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match unwind::run(|| inner.poll(cx)) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The hooks, forwarded; `synchronize` is never called for an async handler (its sessions
/// go to its [`Runner`]).
impl<H: AsyncHandler> SyncHandler for Adapter<H> {
    fn name(&self) -> String {
        self.handler.name()
    }
    fn info(&self) -> HandlerInfo {
        self.handler.info()
    }
    fn capabilities(&self) -> HandlerCapabilities {
        self.handler.capabilities()
    }
    fn policies(&self) -> HandlerPolicies {
        self.handler.policies()
    }
    fn items(&self) -> Vec<SyncItem> {
        self.handler.items()
    }
    fn max_concurrent_sessions(&self) -> Option<usize> {
        self.handler.max_concurrent_sessions()
    }
    fn is_connected(&self) -> bool {
        self.handler.is_connected()
    }
    fn sync_policy(&self) -> SyncPolicy {
        self.handler.sync_policy()
    }
    fn query_state_change(&self, change: &StateChange, flags: ControlFlags) -> bool {
        self.handler.query_state_change(change, flags)
    }
    fn on_state_change(
        &self,
        change: &StateChange,
        flags: ControlFlags,
    ) -> Result<(), HandlerError> {
        self.handler.on_state_change(change, flags)
    }
    fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
        Err("an async handler's sessions run on its executor".into())
    }
}
