//! The `tracing` feature: a span per session and an event per decision.
//!
//! The scheduler's decisions are the notifications it publishes, so tracing mirrors them:
//! while the scheduler's lock is held, [`Traced::keep`] records each notification (only when
//! a subscriber has enabled `syncmgr`'s levels); after the lock, [`Traced::emit`] turns them
//! into events. A tracing subscriber is user code, and user code never runs under the lock.
//! Sessions get their span on the thread (or in the task) that runs `synchronize`, so what a
//! handler logs while it syncs is inside it.
//!
//! Without the feature every item here is empty and free.

use super::notify::Notification;

/// Notifications kept for tracing until the scheduler's lock is released.
#[derive(Default)]
pub(crate) struct Traced {
    #[cfg(feature = "tracing")]
    notes: Vec<Notification>,
}

impl Traced {
    /// Whether a subscriber would see any of the events: when not, nothing is kept. Reads
    /// the level filter that subscribers set, without calling into them.
    #[inline]
    pub fn wanted() -> bool {
        #[cfg(feature = "tracing")]
        {
            tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG
        }
        #[cfg(not(feature = "tracing"))]
        {
            false
        }
    }

    /// Keeps a notification for [`emit`](Self::emit).
    #[inline]
    pub fn keep(&mut self, note: &Notification) {
        #[cfg(feature = "tracing")]
        self.notes.push(note.clone());
        #[cfg(not(feature = "tracing"))]
        let _ = note;
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        #[cfg(feature = "tracing")]
        {
            self.notes.is_empty()
        }
        #[cfg(not(feature = "tracing"))]
        {
            true
        }
    }

    /// Turns what was kept into events. Call it after the scheduler's lock is released.
    pub fn emit(self) {
        #[cfg(feature = "tracing")]
        for note in self.notes {
            events::emit(note);
        }
    }
}

/// The span a session's `synchronize` runs in: `sync_session{handler, session}`.
#[cfg(feature = "tracing")]
pub(crate) type SessionSpan = tracing::Span;
/// The span a session's `synchronize` runs in (nothing without the `tracing` feature).
#[cfg(not(feature = "tracing"))]
pub(crate) struct SessionSpan;

/// A session's span, made on the thread that runs it.
#[inline]
pub(crate) fn session_span(
    handler: &crate::id::HandlerId,
    session: crate::engine::SessionId,
) -> SessionSpan {
    #[cfg(feature = "tracing")]
    {
        tracing::info_span!(target: "syncmgr", "sync_session", handler = %handler, session = %session)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (handler, session);
        SessionSpan
    }
}

/// Runs `f` inside `span`.
#[inline]
pub(crate) fn in_span<T>(span: &SessionSpan, f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "tracing")]
    {
        span.in_scope(f)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = span;
        f()
    }
}

/// A session's task, polled inside its span.
pub(crate) fn instrument(task: super::Task, span: SessionSpan) -> super::Task {
    #[cfg(feature = "tracing")]
    {
        use tracing::Instrument;
        Box::pin(task.instrument(span))
    }
    #[cfg(not(feature = "tracing"))]
    {
        let SessionSpan = span;
        task
    }
}

#[cfg(feature = "tracing")]
mod events {
    use tracing::{debug, trace, warn};

    use crate::engine::Disposition;
    use crate::manager::notify::Notification;
    use crate::result::Outcome;

    /// One notification as an event: decisions at `DEBUG`, progress and per-item detail at
    /// `TRACE`, failures the manager carried on after at `WARN`.
    pub(super) fn emit(note: Notification) {
        match note {
            Notification::RequestAccepted {
                request,
                handler,
                reason,
                items,
            } => {
                let count =
                    |f: fn(&Disposition) -> bool| items.iter().filter(|(_, d)| f(d)).count();
                let queued = count(|d| matches!(d, Disposition::Queued));
                let merged = count(|d| matches!(d, Disposition::Merged));
                let joined = count(|d| matches!(d, Disposition::Joined(_)));
                let settled = count(|d| matches!(d, Disposition::Settled(_)));
                debug!(target: "syncmgr", %request, %handler, ?reason, queued, merged, joined, settled, "request accepted");
                for (item, disposition) in &items {
                    trace!(target: "syncmgr", %request, %handler, %item, ?disposition, "item taken");
                }
            }
            Notification::SessionStarted {
                session,
                handler,
                items,
            } => {
                debug!(target: "syncmgr", %session, %handler, items = items.len(), "session started");
            }
            Notification::ItemProgress {
                session,
                handler,
                item,
                progress,
            } => {
                trace!(target: "syncmgr", %session, %handler, %item, %progress, "progress");
            }
            Notification::SessionEnded {
                session,
                handler,
                outcomes,
                retried,
                error,
            } => {
                let count = |o: Outcome| outcomes.iter().filter(|(_, x)| *x == o).count();
                let (succeeded, failed) = (count(Outcome::Succeeded), count(Outcome::Failed));
                let (canceled, disconnected) =
                    (count(Outcome::Canceled), count(Outcome::Disconnected));
                let retried = retried.len();
                match error {
                    None => {
                        debug!(target: "syncmgr", %session, %handler, succeeded, failed, canceled, disconnected, retried, "session settled")
                    }
                    Some(cause) => {
                        warn!(target: "syncmgr", %session, %handler, succeeded, failed, canceled, disconnected, retried, error = %format_args!("{cause:#}"), "session failed")
                    }
                }
            }
            Notification::RequestCompleted(result) => {
                debug!(target: "syncmgr", request = %result.request, handler = %result.handler, status = %result.status, errors = result.errors, conflicts = result.conflicts, "request completed");
                for failed in result.failures() {
                    let cause = failed.cause.as_ref().map(|c| format!("{c:#}"));
                    warn!(target: "syncmgr", request = %result.request, handler = %result.handler, item = %failed.item, attempts = failed.attempts, cause = cause.as_deref().unwrap_or("unknown"), "item failed");
                }
            }
            Notification::Debounced { handler, until } => {
                debug!(target: "syncmgr", %handler, until = ?until, "debounced");
            }
            Notification::RetryScheduled {
                handler,
                item,
                attempt,
                max_attempts,
                at,
            } => {
                debug!(target: "syncmgr", %handler, %item, attempt, max_attempts, at = ?at, "retry scheduled");
            }
            Notification::RequestIssued {
                request,
                handler,
                reason,
            } => {
                debug!(target: "syncmgr", %request, %handler, ?reason, "request issued");
            }
            Notification::TickSkipped { handler, open } => {
                debug!(target: "syncmgr", %handler, %open, "tick skipped");
            }
            Notification::CancelRequested {
                session,
                request,
                item,
            } => {
                debug!(target: "syncmgr", %session, ?request, item = ?item, "cancel requested");
            }
            Notification::ItemAdded {
                session,
                item,
                requests,
            } => {
                debug!(target: "syncmgr", %session, %item, requests, "item pulled into session");
            }
            Notification::HandlerChanged { handler, change } => {
                debug!(target: "syncmgr", %handler, ?change, "handler changed");
            }
            Notification::StateChangeFailed { handler, error } => {
                warn!(target: "syncmgr", %handler, %error, "state change failed");
            }
            Notification::CallbackPanicked { request, message } => {
                warn!(target: "syncmgr", %request, %message, "result callback panicked");
            }
            Notification::EventReported(event) => {
                trace!(target: "syncmgr", event = ?event, "event reported");
            }
            Notification::ManualSync { session, handler } => {
                trace!(target: "syncmgr", %session, %handler, "manual sync");
            }
            Notification::HandlerProgress { session, text } => {
                trace!(target: "syncmgr", %session, %text, "handler progress");
            }
            // Subscribers' own bookkeeping, not a decision.
            Notification::Lagged { .. } => {}
        }
    }
}
