//! A panic hook that keeps a test's deliberate panics off the terminal (a run can make
//! hundreds or thousands) while every other panic still prints. `randomized.rs` re-exports it
//! for stress and soak; `tests/faults.rs` includes it with `#[path]`.

#![allow(dead_code)] // each test file uses a different part

use std::any::Any;
use std::sync::Once;

/// The text of a panic payload, if it is text (`panic!` with a message gives a `String` or a
/// `&'static str`).
pub fn panic_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Keeps the panics whose payload `deliberate` accepts off the terminal; every other panic
/// still prints. The first call's predicate holds for the process.
pub fn quiet_panics(deliberate: impl Fn(&(dyn Any + Send)) -> bool + Send + Sync + 'static) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !deliberate(info.payload()) {
                default(info);
            }
        }));
    });
}

/// Keeps the panics whose message starts with `prefix` off the terminal.
pub fn quiet_deliberate_panics(prefix: &'static str) {
    quiet_panics(move |payload| panic_text(payload).is_some_and(|m| m.starts_with(prefix)));
}
