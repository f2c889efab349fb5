//! `syncmgr`: the sync orchestration of Windows Sync Center, in pure Rust, on any platform.
//!
//! Applications register **handlers** that own **items**; callers ask for a sync of a handler,
//! of some items, or of everything; `syncmgr` decides which sessions run, merges what arrives
//! while a handler is busy, and gives every caller exactly one aggregated result. The rules are
//! those of `ISyncMgrControl` (syncmgr.h) and of the older Synchronization Manager
//! (`ISyncMgrSynchronizeInvoke`, mobsync.h), with the SDK's exact flag values.
//!
//! ```
//! use syncmgr::{
//!     ControlFlags, HandlerError, ItemId, Outcome, Progress, ProgressStatus, SyncControlFlags,
//!     SyncHandler, SyncItem, SyncManager, SyncSession,
//! };
//!
//! struct Mail;
//!
//! impl SyncHandler for Mail {
//!     fn items(&self) -> Vec<SyncItem> {
//!         vec![SyncItem::new("inbox", "Inbox").unwrap()]
//!     }
//!     fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
//!         for item in items {
//!             session.report_progress(item, Progress::new(ProgressStatus::Succeeded).text("fetched").steps(1, 1))?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let manager = SyncManager::new()?;
//! manager.register_handler("mail", Mail, ControlFlags::WAIT)?;
//! let ticket = manager.start_handler_sync("mail", SyncControlFlags::NONE, None)?;
//! assert_eq!(ticket.wait().status, Outcome::Succeeded);
//! # Ok(()) }
//! ```
//!
//! [`SyncManager`] is a thin threaded shell around [`Engine`]: a pure, deterministic state
//! machine (no threads, clocks, channels or callbacks) that takes the inputs of a sync system
//! and says what must happen next. The engine is public so that you can property-test your own
//! queue semantics and benchmark item dedup with it; the examples below use whichever shows a
//! rule best.
//!
//! # Identifiers
//!
//! [`HandlerId`] and [`ItemId`] are validated, immutable strings: non-empty, no NUL, and at most
//! 63 UTF-16 code units, because Windows counts [`MAX_SYNCMGR_ID`] (64) in UTF-16 units with
//! the terminating NUL. They compare exactly (case-sensitive, no Unicode normalisation). Cloning
//! one is a reference-count increment and hashing one writes a `u64` computed once, at
//! construction, because item dedup hashes and compares IDs millions of times.
//!
//! ```
//! use syncmgr::{IdRule, ItemId};
//!
//! assert!(ItemId::new("é".repeat(63)).is_ok()); // 126 bytes, 63 units: fits
//! let err = ItemId::new("x".repeat(64)).unwrap_err();
//! assert_eq!(err.rule(), IdRule::TooLong { units: 65, max: 64 });
//! assert_ne!(ItemId::new("Inbox")?, ItemId::new("inbox")?);
//!
//! // Legacy (mobsync) handlers and items are GUIDs; their braced form is a valid ID.
//! let guid = uuid::Uuid::from_u128(0x6295DF27_35EE_11D1_8707_00C04FD93327);
//! let item = ItemId::from_guid(guid);
//! assert_eq!(item.as_str(), "{6295DF27-35EE-11D1-8707-00C04FD93327}");
//! assert_eq!(item.to_guid(), Some(guid));
//! # Ok::<(), syncmgr::IdError>(())
//! ```
//!
//! # Flags and enums
//!
//! Every flags type is a `bitflags` type whose named flags carry their SDK name and value
//! ([`SyncControlFlags`], [`ControlFlags`], [`HandlerCapabilities`], [`HandlerPolicies`],
//! [`ItemCapabilities`], [`ItemPolicies`], and the legacy ones in [`legacy`]). Raw values from
//! outside go through `from_raw`, which refuses unknown bits instead of dropping them; the
//! engine refuses typed values that carry unknown bits too. Enums ([`ProgressStatus`],
//! [`CancelRequest`], [`EventLevel`], …) convert from raw values the same way.
//!
//! ```
//! use syncmgr::{hresult, ProgressStatus, SyncControlFlags};
//!
//! assert_eq!(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING.to_raw(), 0x1);
//! let err = SyncControlFlags::from_raw(0x3).unwrap_err();
//! assert_eq!(err.hresult(), hresult::E_INVALIDARG);
//! assert_eq!(ProgressStatus::from_raw(4)?, ProgressStatus::Failed);
//! assert!(ProgressStatus::from_raw(0).is_err()); // there is no 0
//! # Ok::<(), syncmgr::Error>(())
//! ```
//!
//! # Requests and merging
//!
//! A start call is all-or-nothing: it is accepted whole, or refused with a typed [`Error`] and
//! nothing changes. Per handler at most one session runs at a time (several, up to a limit,
//! with `SUPPORTS_CONCURRENT_SESSIONS`, but an item is never in two at once). What arrives while
//! a handler is busy goes into its **pending set**, one entry per item: a second request for a
//! pending item merges into the entry. When the handler is free again, **one** session takes
//! every pending item, in first-requested order. With
//! [`SyncControlFlags::IGNORE_IF_ALREADY_SYNCING`], an item that is syncing right now is not
//! queued again: the request joins the running session and takes the item's outcome from it.
//! [`engine::Accepted`] says what became of each item.
//!
//! ```
//! use syncmgr::engine::{Disposition, Engine, HandlerSpec};
//! use syncmgr::{HandlerId, ItemId, SyncControlFlags};
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let photos = HandlerId::new("photos")?;
//! let ids: Vec<ItemId> = ["2024", "2025", "2026"].iter().map(ItemId::new).collect::<Result<_, _>>()?;
//! let mut engine = Engine::default();
//! engine.register_handler(HandlerSpec::new(photos.clone()).items(ids.clone()))?;
//!
//! let first = engine.start_item_sync(&photos, &ids[..1], SyncControlFlags::NONE)?; // runs now
//! let a = engine.start_item_sync(&photos, &ids[1..], SyncControlFlags::NONE)?;     // queued
//! let b = engine.start_item_sync(&photos, &ids, SyncControlFlags::IGNORE_IF_ALREADY_SYNCING)?;
//! assert_eq!(a.queued_new(), 2);
//! let session = engine.sessions()[0];
//! assert_eq!(
//!     b.dispositions(),
//!     [Disposition::Joined(session), Disposition::Merged, Disposition::Merged]
//! );
//! assert_eq!(engine.pending_items(&photos), ids[1..]);
//! # let _ = first; Ok(()) }
//! ```
//!
//! # Sessions
//!
//! A session is one run of a handler's [`SyncHandler::synchronize`] over a list of items, on
//! one of the manager's worker threads. Through its [`SyncSession`] the handler reports
//! per-item progress ([`SyncSession::report_progress`] answers with the pending
//! [`CancelRequest`]), events ([`SyncSession::report_event`]) and conflicts, checks
//! [`SyncSession::can_continue`], and may pull more pending items in
//! ([`SyncSession::query_for_additional_items`], [`SyncSession::add_item_to_session`]). After
//! a terminal report an item accepts only `Failed`; an item that never got a terminal report
//! ends `Failed`, or `Canceled` if a cancel was requested for it, so no request waits forever.
//!
//! ```
//! use syncmgr::{
//!     CancelRequest, ControlFlags, EventLevel, EventReport, HandlerError, ItemId, Outcome,
//!     Progress, ProgressStatus, SyncControlFlags, SyncHandler, SyncItem, SyncManager,
//!     SyncSession,
//! };
//!
//! struct Photos;
//!
//! impl SyncHandler for Photos {
//!     fn items(&self) -> Vec<SyncItem> {
//!         ["2025", "2026"].iter().map(|y| SyncItem::new(y, *y).unwrap()).collect()
//!     }
//!     fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
//!         for item in items {
//!             for step in 1..=3 {
//!                 let cancel = session.report_progress(item, Progress::new(ProgressStatus::Updating).text("uploading").steps(step, 3))?;
//!                 if cancel != CancelRequest::None {
//!                     session.report_progress(item, Progress::new(ProgressStatus::Canceled).text("stopped").steps(step, 3))?;
//!                     break;
//!                 }
//!             }
//!             if item.as_str() == "2026" {
//!                 session.report_event(EventReport::new(EventLevel::Error, "quota exceeded").item(item.clone()))?;
//!                 session.report_progress(item, Progress::new(ProgressStatus::Failed).text("quota exceeded").steps(3, 3))?;
//!             } else {
//!                 session.report_progress(item, Progress::new(ProgressStatus::Succeeded).text("uploaded").steps(3, 3))?;
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let manager = SyncManager::new()?;
//! manager.register_handler("photos", Photos, ControlFlags::WAIT)?;
//! let result = manager.start_handler_sync("photos", SyncControlFlags::NONE, None)?.wait();
//! assert_eq!(result.status, Outcome::Failed); // the worst item outcome
//! assert_eq!(result.errors, 1);
//! assert_eq!(result.outcome_of(&ItemId::new("2025")?), Some(Outcome::Succeeded));
//! assert_eq!(manager.events("photos")?[0].report.name, "quota exceeded");
//! # Ok(()) }
//! ```
//!
//! # Results
//!
//! Every accepted request gets exactly one [`RequestResult`], once all its items have an
//! [`Outcome`]: its status is the worst outcome (`Failed` > `Disconnected` > `Canceled` >
//! `Succeeded`), with the number of error events and conflicts reported for it, and each
//! item's [`ItemOutcome`]: its outcome, the attempts it took and, for a `Failed` item, its
//! [`Cause`]: the error the handler reported for it ([`SyncSession::report_failure`]) or
//! returned from `synchronize`, with its `source()` chain. It reaches the caller through the
//! returned [`SyncTicket`] (`wait`, `wait_timeout`, `try_result`, `into_result`, or
//! `.await`) and through an optional [`SyncResult`] callback, which closures implement. A
//! [`SyncRequest`] also carries a context value for the handler.
//!
//! ```
//! use std::sync::mpsc;
//! use syncmgr::{
//!     ControlFlags, HandlerError, ItemId, RequestResult, SyncHandler, SyncItem, SyncManager,
//!     SyncRequest, SyncSession,
//! };
//!
//! struct Calendar;
//!
//! impl SyncHandler for Calendar {
//!     fn items(&self) -> Vec<SyncItem> {
//!         vec![SyncItem::new("work", "Work").unwrap()]
//!     }
//!     fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
//!         // Every request this session serves, with the context its caller passed.
//!         let asked_by: Vec<&str> = session
//!             .requests()
//!             .iter()
//!             .filter_map(|r| r.context.as_ref()?.downcast_ref::<&str>().copied())
//!             .collect();
//!         assert_eq!(asked_by, ["reminder service"]);
//!         for item in items {
//!             session.report_progress(item, syncmgr::ProgressStatus::Succeeded)?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let manager = SyncManager::new()?;
//! manager.register_handler("calendar", Calendar, ControlFlags::WAIT)?;
//! let (tx, rx) = mpsc::channel();
//! let ticket = manager.request(
//!     SyncRequest::handler("calendar")
//!         .items(["work"])
//!         .context("reminder service")
//!         .on_result(move |r: &RequestResult| tx.send(r.status).unwrap()),
//! )?;
//! let result = ticket.wait(); // the ticket completes first, then the callback runs
//! assert_eq!(rx.recv().unwrap(), result.status);
//! # Ok(()) }
//! ```
//!
//! # Stopping and cancelling
//!
//! [`Engine::stop_handler_sync`], [`Engine::stop_item_sync`] and [`Engine::stop_sync_all`]
//! remove pending items at once (their requests record `Canceled`) and send a cancel request
//! to running sessions; `PREVENT_STOP_SYNC` policies refuse them. [`Engine::cancel_request`]
//! withdraws one request only: what others still wait for keeps going.
//!
//! ```
//! use syncmgr::engine::{Action, Engine, HandlerSpec};
//! use syncmgr::{CancelRequest, HandlerId, ItemId, Outcome, SyncControlFlags};
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let cal = HandlerId::new("calendar")?;
//! let (work, home) = (ItemId::new("work")?, ItemId::new("home")?);
//! let mut engine = Engine::default();
//! engine.register_handler(HandlerSpec::new(cal.clone()).items([work.clone(), home.clone()]))?;
//! let _ = engine.start_item_sync(&cal, &[work.clone()], SyncControlFlags::NONE)?;
//! let queued = engine.start_item_sync(&cal, &[home.clone()], SyncControlFlags::NONE)?;
//! let _ = engine.drain_actions().count();
//!
//! let stopped = engine.stop_handler_sync(&cal)?;
//! assert_eq!((stopped.canceled_pending, stopped.cancel_requests), (1, 1));
//! let actions: Vec<Action> = engine.drain_actions().collect();
//! assert!(matches!(&actions[0], Action::Cancel { request: CancelRequest::CancelAll, .. }));
//! assert!(matches!(&actions[1], Action::Deliver(r) if r.request == queued.request && r.status == Outcome::Canceled));
//! # Ok(()) }
//! ```
//!
//! # Time: debounce, retries, schedules, triggers
//!
//! Each handler has a [`SyncPolicy`]: a **debounce** (pending items wait until requests stop
//! coming for `quiet`, but never more than `max_wait`), a **retry** (a `Failed` item goes back
//! to the pending set until its backoff ends, while the items that succeeded settle at once,
//! and its requests wait for its final outcome), a periodic **schedule**, and the
//! **triggers** it syncs on ([`SyncManager::trigger`]). The default policy has none of them
//! and changes nothing. A person's "Sync now" is [`SyncRequest::expedite`]; a caller that
//! wants the first failure, not the retries, asks [`SyncRequest::no_retry`]. Every timing
//! decision is a notification, and each item's result says how many attempts it took.
//!
//! Time is a value ([`Time`]): the engine never reads a clock, and the manager reads one
//! clock, which a test replaces with a [`ManualClock`] to run a day of timers in
//! microseconds, without sleeping:
//!
//! ```
//! use std::time::Duration;
//! use syncmgr::{
//!     ControlFlags, HandlerError, ItemId, ManualClock, Notification, Outcome, ProgressStatus,
//!     Retry, SyncControlFlags, SyncHandler, SyncItem, SyncManager, SyncPolicy, SyncSession,
//! };
//!
//! /// Fails its first attempt, then succeeds.
//! struct Flaky(std::sync::atomic::AtomicU32);
//!
//! impl SyncHandler for Flaky {
//!     fn items(&self) -> Vec<SyncItem> {
//!         vec![SyncItem::new("outbox", "Outbox").unwrap()]
//!     }
//!     fn sync_policy(&self) -> SyncPolicy {
//!         let backoff = Retry::exponential(3, Duration::from_secs(30), Duration::from_secs(600));
//!         SyncPolicy::default().retry(backoff)
//!     }
//!     fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
//!         let attempt = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!         let status = if attempt == 0 { ProgressStatus::Failed } else { ProgressStatus::Succeeded };
//!         for item in items {
//!             session.report_progress(item, status)?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let clock = ManualClock::new();
//! let manager = SyncManager::builder().clock(clock.clone()).build()?;
//! let notes = manager.subscribe();
//! manager.register_handler("mail", Flaky(0.into()), ControlFlags::WAIT)?;
//! let ticket = manager.start_handler_sync("mail", SyncControlFlags::NONE, None)?;
//! // The first attempt fails: the retry is set for 30 s later, and the ticket waits.
//! let retry = notes.iter().find_map(|n| match n {
//!     Notification::RetryScheduled { at, .. } => Some(at),
//!     _ => None,
//! });
//! assert_eq!(retry.map(|t| t.since_origin()), Some(Duration::from_secs(30)));
//! clock.advance(Duration::from_secs(30)); // the second attempt starts before this returns
//! let result = ticket.wait();
//! assert_eq!(result.status, Outcome::Succeeded);
//! assert_eq!(result.items[0].attempts, 2);
//! # Ok(()) }
//! ```
//!
//! The rules in full are in the [`engine`] docs ("Time"); `examples/time_replay.rs` replays a
//! day of them through the engine alone.
//!
//! # Async
//!
//! Nothing here needs a runtime: a [`SyncTicket`] is a `Future` (`ticket.await` on any
//! executor; awaiting blocks no thread), [`Notifications::recv_async`] awaits the next
//! notification, and [`SyncManager::shutdown_async`] waits for the shutdown on a thread of
//! its own. An [`AsyncHandler`] has an `async fn synchronize`; register it with an executor
//! ([`Spawn`]) and each session runs as a task, holding no thread while it awaits. Its other
//! methods are plain hooks that must answer at once. `examples/async_app.rs` shows all of it
//! on tokio.
//!
//! # Features
//!
//! None is on by default, and the default build pulls in no async runtime.
//!
//! - `tokio`: [`Spawn`] for `tokio::runtime::Handle`, so an [`AsyncHandler`]'s sessions run
//!   on a tokio runtime.
//! - `stream`: [`Notifications`] implements `futures_core::Stream`.
//! - `proptest`: the `strategies` module, proptest strategies for your own property tests
//!   (valid IDs with their edge cases, flags, handlers, and engine operation sequences that
//!   [`engine::testing::Driver`] applies).
//! - `tracing`: a `sync_session{handler, session}` span around every session's
//!   `synchronize` (what your handler logs while it syncs is inside it), and an event per
//!   decision under the target `syncmgr`: `request accepted` (with how many items were
//!   queued, merged, joined or settled), `request issued`, `session started`, `debounced`,
//!   `retry scheduled`, `tick skipped`, `cancel requested`, `item pulled into session`,
//!   `handler changed`, `session settled`, `request completed`, at `DEBUG`; `session failed`,
//!   `item failed` (each failed item with its cause), `state change failed` and `result
//!   callback panicked` at `WARN`; progress and per-item detail at `TRACE`. Events are emitted after the manager's
//!   lock is released, like every other call into user code, and cost nothing unless a
//!   subscriber enables `DEBUG`.
//! - `serde`: `Serialize` and `Deserialize` for the IDs, flags, enums, results and their
//!   [`Cause`]s, [`Progress`], [`Time`], [`SyncPolicy`], events, [`Error`] and
//!   [`Notification`]s, in plain shapes (each type's docs give its own): IDs as their text,
//!   checked again when read; flags as their names (`"WAIT | NOUI"`), refusing unknown bits
//!   as `from_raw` does; enums by variant name; request and session IDs as numbers; a cause
//!   as its chain of messages. A deserialized [`SyncPolicy`] is checked where it is used,
//!   like any other.
//!
//! ```
//! # #[cfg(feature = "serde")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use syncmgr::{
//!     ControlFlags, HandlerError, ItemId, RequestResult, SyncControlFlags, SyncHandler,
//!     SyncItem, SyncManager, SyncSession,
//! };
//!
//! struct Offline;
//!
//! impl SyncHandler for Offline {
//!     fn items(&self) -> Vec<SyncItem> {
//!         vec![SyncItem::new("inbox", "Inbox").unwrap()]
//!     }
//!     fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
//!         Err("the server went away".into())
//!     }
//! }
//!
//! let manager = SyncManager::new()?;
//! manager.register_handler("mail", Offline, ControlFlags::WAIT)?;
//! let result = manager.start_handler_sync("mail", SyncControlFlags::NONE, None)?.wait();
//!
//! let json = serde_json::to_string(&result)?;
//! assert_eq!(
//!     json,
//!     r#"{"request":1,"handler":"mail","status":"Failed","errors":1,"conflicts":0,"items":[{"item":"inbox","outcome":"Failed","attempts":1,"cause":["the server went away"]}]}"#
//! );
//! let back: RequestResult = serde_json::from_str(&json)?;
//! assert_eq!(back, result);
//! // What is read is checked as if it were made: an empty item ID is refused.
//! assert!(serde_json::from_str::<RequestResult>(&json.replace(r#""inbox""#, r#""""#)).is_err());
//! # Ok(()) }
//! # #[cfg(not(feature = "serde"))]
//! # fn main() {}
//! ```
//!
//! # Errors
//!
//! One [`Error`] enum serves every call; each variant documents the calls that return it, and
//! [`Error::hresult`] gives the HRESULT a Windows component would return (`E_INVALIDARG`,
//! `E_ACCESSDENIED`, `CLASS_E_CLASSNOTAVAILABLE`, …; see [`hresult`]). A refused call changes
//! nothing, with one exception, Sync Center's terminal rule: a status reported after a terminal one
//! marks the item `Failed` as it is refused.
//!
//! ```
//! use syncmgr::engine::{Engine, HandlerSpec};
//! use syncmgr::{hresult, Error, HandlerId, ItemId, SyncControlFlags};
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let mut engine = Engine::default();
//! engine.register_handler(HandlerSpec::new(HandlerId::new("mail")?).items([ItemId::new("inbox")?]))?;
//! let err = engine
//!     .start_item_sync(&HandlerId::new("mail")?, &[ItemId::new("spam")?], SyncControlFlags::NONE)
//!     .unwrap_err();
//! assert!(matches!(&err, Error::UnknownItem { item, .. } if item.as_str() == "spam"));
//! assert_eq!(err.hresult(), hresult::E_INVALIDARG);
//! # Ok(()) }
//! ```
//!
//! # Threading model
//!
//! A [`SyncManager`] keeps the engine behind one lock and applies one command at a time: a
//! call applies its own command on the calling thread, so a start call is refused or accepted
//! synchronously and costs no thread hand-off. It runs worker threads for `synchronize` and
//! state-change hooks (as many as the global session limit by default, at most 64, see
//! [`SyncManagerBuilder`]), one delivery thread for result callbacks, and a scheduler thread
//! that takes over the commands once shutdown begins. No user code runs under the lock or on
//! the scheduler thread.
//!
//! Handlers and result callbacks run on other threads, so they must be `Send` (handlers also
//! `Sync`); anything else is refused at compile time:
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! use syncmgr::{ControlFlags, HandlerError, ItemId, SyncHandler, SyncManager, SyncSession};
//!
//! struct NotThreadSafe(Rc<u32>);
//!
//! impl SyncHandler for NotThreadSafe {
//!     fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
//!         Ok(())
//!     }
//! }
//! ```
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! use syncmgr::{RequestResult, SyncControlFlags, SyncManager, SyncResult};
//!
//! let manager = SyncManager::new().unwrap();
//! let local = Rc::new(0);
//! let sink: Box<dyn SyncResult> = Box::new(move |_: &RequestResult| drop(local));
//! let _ = manager.start_handler_sync("mail", SyncControlFlags::NONE, Some(sink));
//! ```
//!
//! **Panics: the one policy.** Everything an application hands the manager is user code:
//! handler methods and hooks, the errors they return (their `Display`, `Debug`, `source` and
//! `Drop`), result callbacks, request contexts, handler objects, and the payloads of the
//! panics all of these raise. Wherever the manager runs such code, or formats or drops such a
//! value, a panic is caught there and turned into something you can see, and the manager
//! keeps working:
//!
//! - a handler that panics in `synchronize`, or returns an error, ends its session with an
//!   error event (the error's text and its `source()` chain) and `Failed` outcomes for its
//!   unreported items; an error whose `Display` panics is named as such;
//! - a panic in a hook, or a hook error, fails the call that ran it with
//!   [`Error::HandlerFailed`] (with `ControlFlags::WAIT`), or is reported as
//!   [`Notification::StateChangeFailed`] (without it);
//! - a panicking result callback is reported as [`Notification::CallbackPanicked`];
//! - a `Drop` that panics (a context, a callback, a handler object, a panic payload) is
//!   contained where the value is dropped.
//!
//! None of this user code runs while the manager holds its internal lock, so a `Drop` or a
//! callback may call the manager back. User values the manager lets go of are dropped on
//! the delivery thread after the callbacks queued before them, or, once shutdown has let go
//! of that thread, on the caller's thread after its call is applied.
//!
//! **Shutdown.** [`SyncManager::shutdown`] (or dropping the last handle) refuses new work,
//! cancels what is pending, asks running sessions to cancel, waits for them up to a grace
//! period, delivers every outstanding result and joins its threads. A handler that ignores the
//! cancel past the grace period is abandoned (its requests get `Canceled`) and its thread,
//! stuck in user code, is counted in the [`ShutdownReport`] instead of waited for.
//! Dropping the last handle waits like `shutdown`, on purpose: code that lets a manager go
//! expects its results delivered and its threads gone when the drop returns, as with a
//! thread pool. In async code, `.await` [`SyncManager::shutdown_async`] first (no runtime
//! thread blocks); the drop that follows returns at once.
//!
//! **Notifications.** [`SyncManager::subscribe`] gives a stream of everything that happens,
//! including why each item was queued, merged or joined. A subscriber that does not keep up
//! misses notifications and is told how many; it never slows the manager down.
//!
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cause;
pub mod engine;
mod error;
mod flags;
mod id;
// Before `legacy`, so the manager's own methods come first on its docs page and the legacy
// API's (`update_items`, `update_all`, `register_legacy_handler`) after them.
pub mod legacy;
mod manager;
mod policy;
mod progress;
mod result;
mod slot;
#[cfg(feature = "proptest")]
pub mod strategies;
mod time;
mod unwind;

pub use crate::cause::Cause;
pub use crate::engine::{Engine, EngineConfig, RequestId, SessionId, StateChange};
pub use crate::error::{Denied, Error, TextKind, hresult};
pub use crate::flags::{
    CancelRequest, ControlFlags, EventLevel, HandlerCapabilities, HandlerPolicies, HandlerType,
    ItemCapabilities, ItemPolicies, ProgressStatus, SyncControlFlags, UpdateReason,
};
pub use crate::id::{
    HandlerId, IdError, IdKind, IdRule, ItemId, MAX_SYNCMGR_ID, MAX_SYNCMGR_NAME,
    MAX_SYNCMGR_PROGRESSTEXT, MAX_SYNCMGRHANDLERNAME, MAX_SYNCMGRITEMNAME,
};
pub use crate::manager::{
    AsyncHandler, Context, EventReport, HandlerChange, HandlerError, HandlerEvent, HandlerInfo,
    IntoId, ManualClock, Notification, NotificationIter, Notifications, NotificationsIntoIter,
    PendingItems, RecvAsync, RecvError, ServedRequest, ShutdownFuture, ShutdownReport, Spawn,
    SyncHandler, SyncItem, SyncManager, SyncManagerBuilder, SyncRequest, SyncResult, SyncSession,
    SyncTicket, Task,
};
pub use crate::policy::{Debounce, MAX_DELAY, Retry, Schedule, SyncPolicy, Trigger, TriggerReason};
pub use crate::progress::Progress;
pub use crate::result::{ItemOutcome, Outcome, RequestResult};
pub use crate::time::Time;

// The README's example is compiled and run with the doctests, so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
