//! The panic policy: every place where the crate runs user code, or formats or drops a user
//! value, goes through this module.
//!
//! User code is anything an application hands in: handler methods and hooks, the errors they
//! return (their `Display`, `Debug`, `source` and `Drop`), result callbacks, request contexts,
//! handler objects, the tasks a state change queues, and the payloads of the panics all of
//! these raise. Any of it may panic, and a panic payload may itself panic when dropped. The
//! rules:
//!
//! - user code runs under [`run`]: a panic becomes its text, never an unwinding thread;
//! - user values are formatted with [`text`] and dropped with [`dispose`] (or by wrapping
//!   them in [`User`], whose `Drop` does it), so a panicking `Display` or `Drop` is contained
//!   the same way;
//! - none of it happens while an internal lock is held. The scheduler's lock marks the thread
//!   with [`Locked`] while it is held, and every function here checks the mark in debug
//!   builds, so a path that would run user code under the lock fails the tests instead of
//!   deadlocking a user whose `Drop` calls back into the manager.

use std::any::Any;

use std::cell::Cell;
use std::fmt::{self, Display};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::cause::Cause;

thread_local! {
    /// How many internal locks this thread holds.
    static LOCKS_HELD: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as holding an internal lock for as long as it lives. Take it
/// right after acquiring the lock and drop it right before releasing it.
#[must_use = "the mark lasts as long as the value"]
pub(crate) struct Locked(());

impl Locked {
    pub fn mark() -> Locked {
        LOCKS_HELD.with(|held| held.set(held.get() + 1));
        Locked(())
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        LOCKS_HELD.with(|held| held.set(held.get().saturating_sub(1)));
    }
}

/// Whether this thread holds an internal lock now.
pub(crate) fn lock_held() -> bool {
    LOCKS_HELD.with(Cell::get) > 0
}

/// The debug-build check behind the rule "no user code under a lock". It panics outside any
/// `catch_unwind` of this module, so the step that broke the rule fails loudly.
#[track_caller]
fn check_unlocked(what: &str) {
    debug_assert!(
        std::thread::panicking() || !lock_held(),
        "syncmgr bug: user code ({what}) reached while an internal lock is held"
    );
}

/// Runs user code. A panic becomes `Err` with the panic's text; its payload is dropped safely.
#[track_caller]
pub(crate) fn run<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    check_unlocked("a call");
    catch_unwind(AssertUnwindSafe(f)).map_err(panic_text)
}

/// Runs one of the crate's own steps where a panic would be a bug (the scheduler applying a
/// command under its lock): the panic is contained and its text returned, so the caller can
/// mark itself broken instead of unwinding into a user's thread or poisoning the lock. No
/// lock check: this is not user code.
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(panic_text)
}

/// A user value's `Display`, formatted safely: a `Display` that panics gives a placeholder
/// that says so, with the panic's text.
#[track_caller]
pub(crate) fn text(value: &(impl Display + ?Sized)) -> String {
    check_unlocked("a Display");
    match catch_unwind(AssertUnwindSafe(|| value.to_string())) {
        Ok(text) => text,
        Err(panic) => format!("(its Display panicked: {})", panic_text(panic)),
    }
}

/// An error and its `source()` chain as a [`Cause`], each link formatted safely. The chain
/// is cut at [`Cause::MAX_CHAIN`] links, so a cyclic `source` cannot loop.
#[track_caller]
pub(crate) fn cause_of(error: &(dyn std::error::Error + 'static)) -> Cause {
    check_unlocked("an error's source chain");
    let mut texts = vec![text(error)];
    let mut next = source_of(error);
    while let Some(source) = next {
        if texts.len() == Cause::MAX_CHAIN {
            break;
        }
        texts.push(text(source));
        next = source_of(source);
    }
    Cause::from_texts(texts).unwrap_or_else(|| Cause::new(""))
}

/// The cause of a failure that was a panic: `handler panicked: <its message>`.
pub(crate) fn panic_cause(message: &str) -> Cause {
    Cause::new(format!("handler panicked: {message}"))
}

/// An error's `source()`, asked safely: one that panics ends the chain.
fn source_of<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    catch_unwind(AssertUnwindSafe(|| error.source())).unwrap_or_else(|panic| {
        let _ = panic_text(panic);
        None
    })
}

/// Drops a user value safely: a `Drop` that panics is contained, and a panic payload that
/// panics again when dropped is forgotten rather than let out (std's `catch_unwind` docs warn
/// that dropping a payload can unwind).
#[track_caller]
pub(crate) fn dispose<T>(value: T) {
    check_unlocked("a Drop");
    if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        let _ = panic_text(panic);
    }
}

/// The text of a caught panic. The payload is dropped under a second `catch_unwind`, and
/// forgotten if even that panics.
pub(crate) fn panic_text(payload: Box<dyn Any + Send>) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    };
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    text
}

/// A user value the crate holds: dropping it goes through [`dispose`], so its `Drop` can
/// neither unwind into the crate nor run (unnoticed, in debug builds) under an internal lock.
pub(crate) struct User<T>(Option<T>);

impl<T> User<T> {
    pub fn new(value: T) -> User<T> {
        User(Some(value))
    }

    /// The value, to read or clone.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }

    /// The value itself, for user code that consumes it (a result callback). Always `Some`:
    /// only `Drop` ever empties the wrapper.
    pub fn into_inner(mut self) -> Option<T> {
        self.0.take()
    }
}

impl<T> Drop for User<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            dispose(value);
        }
    }
}

impl<T> fmt::Debug for User<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("User(..)")
    }
}
