//! The subscriber's end of the notification stream: [`Notifications`], to read from a thread
//! (blocking, with a timeout, or without waiting) or from async code.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::notify::Notification;

/// Why no notification was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RecvError {
    /// None is waiting (`try_recv`).
    #[error("no notification is waiting")]
    Empty,
    /// None came in time (`recv_timeout`, `recv_deadline`).
    #[error("no notification came in time")]
    Timeout,
    /// The manager has shut down and every notification was read.
    #[error("the manager has shut down")]
    Closed,
}

/// Where a subscriber's task waits, shared by the subscription and the manager's side.
#[derive(Debug, Default)]
pub(crate) struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    fn slot(&self) -> MutexGuard<'_, Option<Waker>> {
        // Only stores and takes run under this lock: it is never poisoned.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The waker of the task waiting, if one is (taken: a task waits again by polling).
    pub fn take(&self) -> Option<Waker> {
        self.slot().take()
    }
}

/// A subscription to everything a manager does ([`SyncManager::subscribe`]): a stream of
/// [`Notification`]s, in the order things happened, that ends when the manager has shut down.
///
/// Read it from a thread with [`recv`](Self::recv), [`recv_timeout`](Self::recv_timeout),
/// [`try_recv`](Self::try_recv) or the iterators, or from async code with
/// [`recv_async`](Self::recv_async) (and, with the `stream` feature, as a `futures_core::Stream`,
/// for stream combinators: with `futures-util`'s or `tokio-stream`'s `StreamExt`,
/// `while let Some(note) = notes.next().await`). Awaiting blocks no thread.
///
/// [`SyncManager::subscribe`]: super::SyncManager::subscribe
pub struct Notifications {
    rx: Receiver<Notification>,
    waker: Arc<WakerSlot>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications")
            .field("waiting", &self.rx.len())
            .finish()
    }
}

impl Notifications {
    pub(crate) fn new(rx: Receiver<Notification>, waker: Arc<WakerSlot>) -> Notifications {
        Notifications { rx, waker }
    }

    /// Blocks until a notification comes, or the stream ends ([`RecvError::Closed`]).
    pub fn recv(&self) -> Result<Notification, RecvError> {
        self.rx.recv().map_err(|_| RecvError::Closed)
    }

    /// The next notification if one is waiting; never blocks.
    pub fn try_recv(&self) -> Result<Notification, RecvError> {
        self.rx.try_recv().map_err(|e| match e {
            TryRecvError::Empty => RecvError::Empty,
            TryRecvError::Disconnected => RecvError::Closed,
        })
    }

    /// Blocks until a notification comes or `timeout` passes.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Notification, RecvError> {
        self.rx.recv_timeout(timeout).map_err(timeout_error)
    }

    /// Blocks until a notification comes or `deadline` passes.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Notification, RecvError> {
        self.rx.recv_deadline(deadline).map_err(timeout_error)
    }

    /// Every notification, blocking for each, until the stream ends.
    pub fn iter(&self) -> NotificationIter<'_> {
        NotificationIter(self.rx.iter())
    }

    /// The notifications waiting now; never blocks.
    pub fn try_iter(&self) -> impl Iterator<Item = Notification> + '_ {
        self.rx.try_iter()
    }

    /// How many notifications are waiting.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The next notification, awaited: `None` once the stream has ended.
    pub fn recv_async(&mut self) -> RecvAsync<'_> {
        RecvAsync(self)
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        match self.rx.try_recv() {
            Ok(note) => return Poll::Ready(Some(note)),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        *self.waker.slot() = Some(cx.waker().clone());
        // Read again after registering: a notification sent in between took no waker.
        match self.rx.try_recv() {
            Ok(note) => Poll::Ready(Some(note)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }
}

impl Drop for Notifications {
    /// Nobody waits here any more: the manager's side must not wake a task that is gone.
    fn drop(&mut self) {
        drop(self.waker.take());
    }
}

fn timeout_error(e: RecvTimeoutError) -> RecvError {
    match e {
        RecvTimeoutError::Timeout => RecvError::Timeout,
        RecvTimeoutError::Disconnected => RecvError::Closed,
    }
}

impl<'a> IntoIterator for &'a Notifications {
    type Item = Notification;
    type IntoIter = NotificationIter<'a>;

    /// Every notification, blocking for each, until the stream ends.
    fn into_iter(self) -> NotificationIter<'a> {
        NotificationIter(self.rx.iter())
    }
}

impl IntoIterator for Notifications {
    type Item = Notification;
    type IntoIter = NotificationsIntoIter;

    /// Every notification, blocking for each, until the stream ends.
    fn into_iter(self) -> NotificationsIntoIter {
        // The iterator blocks rather than awaits: the waker slot is no longer needed.
        NotificationsIntoIter(self.rx.clone().into_iter())
    }
}

/// The blocking iterator of `&Notifications`.
#[derive(Debug)]
pub struct NotificationIter<'a>(crossbeam_channel::Iter<'a, Notification>);

impl Iterator for NotificationIter<'_> {
    type Item = Notification;
    fn next(&mut self) -> Option<Notification> {
        self.0.next()
    }
}

/// The blocking iterator of `Notifications`.
#[derive(Debug)]
pub struct NotificationsIntoIter(crossbeam_channel::IntoIter<Notification>);

impl Iterator for NotificationsIntoIter {
    type Item = Notification;
    fn next(&mut self) -> Option<Notification> {
        self.0.next()
    }
}

/// The future of [`Notifications::recv_async`].
#[must_use = "a future does nothing unless awaited"]
#[derive(Debug)]
pub struct RecvAsync<'a>(&'a mut Notifications);

impl Future for RecvAsync<'_> {
    type Output = Option<Notification>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(feature = "stream")]
impl futures_core::Stream for Notifications {
    type Item = Notification;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        self.poll_recv(cx)
    }
}
