//! The threaded [`SyncManager`]: the Rust form of `ISyncMgrControl`, a thin shell around the
//! pure [`Engine`](crate::Engine).
//!
//! A scheduler behind one lock owns the engine and applies one [`Command`](command::Command)
//! at a time; callers apply theirs on their own thread (see [`Link`]), and a scheduler thread
//! takes over once shutdown begins. Worker threads run handler sessions and state-change
//! hooks; a delivery thread runs result callbacks. Every start call is validated
//! synchronously, against the state of that moment.
//!
//! The calls of [`SyncManager`] are in three files: this one (construction, events,
//! notifications, shutdown), `control.rs` (handlers and their state) and `syncs.rs` (starting
//! and stopping syncs).

mod access;
mod cell;
mod clock;
mod command;
mod control;
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
mod spin;
mod subscription;
mod syncs;
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

use self::access::Access;
use self::lifecycle::{Life, Shared};
pub(crate) use self::registry::{Extra, Object, Registry};
pub(crate) use self::request::StartParts;
pub use self::tasks::{AsyncHandler, Spawn, Task};
pub(crate) use crate::policy::TriggerReason;

use self::command::{Command, EventQuery, call};
use crate::error::Error;
use crate::id::HandlerId;

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

    /// Whether [`SyncManager::shutdown`] was called (or has begun).
    pub fn is_shut_down(&self) -> bool {
        !matches!(*self.shared.life(), Life::Running(_))
    }

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
