//! The scenario table of SPEC sections 4–7 and 11 (issues 2 and 12): one row per rule, each a list of
//! operations on a fresh `Engine` with the sessions, results, cancels and errors they must
//! produce, all run by one `check` helper. The language rows are written in is `lang.rs`, the
//! helper that runs them `run.rs` (renaming an engine API touches `Run::step` only); the rows
//! sit in one file per rule family, each with its test.
//!
//! How a row reads:
//!
//! - **Steps** call the engine. IDs are text and flags are raw bits, as a caller holds them, so
//!   invalid ID text and unknown flag bits are refused on the way in by `HandlerId::new`,
//!   `ItemId::new` and `SyncControlFlags::from_raw`, exactly as a shell would refuse them.
//! - Requests are named by **tags** (`"r1"`); sessions by **number**: the nth session started
//!   in the row, from 1.
//! - **Action expectations** (`started`, `delivers`, `sends_cancel_item`, `sends_cancel_all`)
//!   match the actions the steps queued, in any order within one step. A step may not run while
//!   an action of an earlier step is still unexpected, so a row lists everything that happened,
//!   and `nothing_else` can say so where it matters to the reader.
//! - A step that fails must be followed by `fails(hresult, error)`. Other expectations read the
//!   step just run (`unchanged`, `acks`, `stops`, `ends_with`, ...) or the engine's state
//!   (`pending`, `query_gives`, `can_continue`, ...).
//! - After every step `check` asserts `Engine::check_consistency`. After the last op it ends
//!   every session still running and asserts that every accepted request got exactly one
//!   result. It runs every row twice and compares the two action logs (SPEC section 8:
//!   determinism).
//!
//! On failure the panic names the row, the op (1-based) and prints the whole action log. Every
//! row of a group runs even when an earlier one fails.

mod lang;
mod run;

// The rows, one file per rule family.
mod current_versus_queued;
mod disagreements;
mod inside_a_session;
mod per_request_cancel;
mod results;
mod shutdown;
mod state_changes;
mod stopping;
mod time;
mod validation;
