//! Fault injection through the `SyncManager` (issue 6, item 2): handlers that panic at
//! different points (in `synchronize` and in every other method), return errors, never
//! report, report twice or too late, block past the shutdown grace period, use their session
//! from other threads, or call back into the manager from inside `synchronize`; result
//! callbacks that panic, block or call back in; subscribers that stop reading or go away.
//!
//! Each test ends the same way, through one fixture, [`Rig`]: the engine is consistent, the
//! manager still serves a fresh request (when it is still running), shutdown reports what it
//! should, every ticket is resolved, every result callback ran exactly once with the ticket's
//! result, and the notification stream announced and completed every request exactly once.
//! Nothing is lost and nothing deadlocks. What the SPEC and the rustdoc promise for each fault
//! is quoted above its test; where they are silent, the test says what the manager does.
//!
//! Cases `tests/integration/manager_lifecycle.rs` and `manager_sessions.rs` already pin
//! exactly (a panic after the first of two reports, an error from `synchronize`, a handler
//! that never reports, the terminal rule, a session that ignores the shutdown cancel, a
//! callback that panics or starts a request, a subscriber that never reads or was dropped)
//! are not repeated; these tests combine them, add threads and re-entrancy, and cover the
//! other methods. `tests/integration/stress.rs` throws random faults at the manager; here each
//! fault is deterministic. The manager defects these tests found, and the holes adversarial
//! use found later, are at the end, each with the fix it pins.
//!
//! Nothing sleeps: every wait is on a channel, a barrier, a ticket or a notification, and
//! `PATIENCE` only bounds how long a test waits for something already on its way. Short
//! `shutdown_grace` periods are the manager's own timer, used where a test wants it to give
//! up on a thread that is still inside user code.

mod common;
#[path = "common/panics.rs"]
mod panics;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use syncmgr::engine::{Disposition, StateChange, Stopped, Withdrawn};
use syncmgr::*;

use common::*;
use panics::{panic_text, quiet_panics};

/// The ID of the handler under test in most tests.
const H: &str = "faulty";
/// A handler every rig registers: it succeeds every item at once. Used to show that the
/// manager still serves a fresh request after a fault.
const ECHO: &str = "echo";
/// Every deliberate panic and error message starts with this, so the panic hook can keep
/// them off the terminal and the checks can tell them from real ones.
const DELIBERATE: &str = "faults: deliberate";
/// The grace period of the tests that want shutdown to give up on a thread.
const SHORT_GRACE: Duration = Duration::from_millis(100);

fn deliberate(what: &str) -> String {
    format!("{DELIBERATE} {what}")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A panic payload that is not text.
struct NonText;

/// Keeps the deliberate panics off the terminal (messages that start with `DELIBERATE`, and
/// the payloads `NonText` and `Bomb`); real ones still print.
fn quiet() {
    quiet_panics(|payload| {
        panic_text(payload).is_some_and(|m| m.starts_with(DELIBERATE))
            || payload.is::<NonText>()
            || payload.is::<Bomb>()
    });
}

fn state_change_failed(notes: &Notifications) -> (HandlerId, Error) {
    wait_for(notes, |note| match note {
        Notification::StateChangeFailed { handler, error } => Some((handler, error)),
        _ => None,
    })
}

/// Whether `error` is `HandlerFailed` with a message that contains `text`.
fn failed_with(error: &Error, text: &str) -> bool {
    matches!(error, Error::HandlerFailed(cause) if chain(cause).contains(text))
}

thread_local! {
    /// Dropped when the thread that filled it ends.
    static ON_EXIT: RefCell<Vec<Sender<()>>> = const { RefCell::new(Vec::new()) };
}

/// A receiver that disconnects when the thread that calls this ends: how a test sees a
/// manager thread, or one a handler started, finish.
fn watch_this_thread() -> Receiver<()> {
    let (tx, rx) = crossbeam_channel::bounded(0);
    ON_EXIT.with(|senders| senders.borrow_mut().push(tx));
    rx
}

/// Waits until the watched thread has ended.
fn thread_ended(exit: &Receiver<()>) -> bool {
    exit.recv_timeout(PATIENCE) == Err(RecvTimeoutError::Disconnected)
}

fn outcomes(list: &[(&str, Outcome)]) -> Vec<(ItemId, Outcome)> {
    list.iter().map(|(i, o)| (id(i), *o)).collect()
}

// ----- the handlers ----------------------------------------------------------------------------

/// Succeeds every item at once and counts its sessions.
struct Echo(Arc<AtomicUsize>);

impl SyncHandler for Echo {
    fn items(&self) -> Vec<SyncItem> {
        vec![SyncItem::new("e", "E").unwrap()]
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        self.0.fetch_add(1, SeqCst);
        for item in items {
            session.report_progress(
                item,
                Progress::new(ProgressStatus::Succeeded)
                    .text("echo")
                    .steps(1, 1),
            )?;
        }
        Ok(())
    }
}

type SyncFn = dyn Fn(&[ItemId], &SyncSession) -> Result<(), HandlerError> + Send + Sync;
type HookFn = dyn Fn(&StateChange) -> Result<(), HandlerError> + Send + Sync;

/// A handler whose `synchronize` (and, optionally, state-change hooks) is a closure.
struct Scripted {
    items: Vec<SyncItem>,
    capabilities: HandlerCapabilities,
    sync: Box<SyncFn>,
    hook: Box<HookFn>,
}

impl Scripted {
    fn new(
        items: &[&str],
        sync: impl Fn(&[ItemId], &SyncSession) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Scripted {
        Scripted {
            items: items
                .iter()
                .map(|i| SyncItem::new(i, i.to_uppercase()).unwrap())
                .collect(),
            capabilities: HandlerCapabilities::empty(),
            sync: Box::new(sync),
            hook: Box::new(|_| Ok(())),
        }
    }

    /// Runs `hook` for every activate, enable and item-enable hook.
    fn with_hook(
        mut self,
        hook: impl Fn(&StateChange) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Scripted {
        self.hook = Box::new(hook);
        self
    }
}

impl SyncHandler for Scripted {
    fn capabilities(&self) -> HandlerCapabilities {
        self.capabilities
    }
    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }
    fn on_state_change(&self, change: &StateChange, _: ControlFlags) -> Result<(), HandlerError> {
        (self.hook)(change)
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        (self.sync)(items, session)
    }
}

/// The `SyncHandler` methods other than `synchronize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Name,
    Capabilities,
    Policies,
    Items,
    MaxConcurrent,
    IsConnected,
    QueryStateChange,
    Activate,
    Enable,
    EnableItem,
}

/// How an armed method fails: hooks can return an error, every method can panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Panic,
    Error,
}

/// A `Driven` handler one of whose other methods fails while `armed` is set.
struct Faulty {
    driven: Driven,
    method: Method,
    fault: Fault,
    armed: Arc<AtomicBool>,
}

impl Faulty {
    fn new(driven: Driven, method: Method, fault: Fault, armed: bool) -> Faulty {
        Faulty {
            driven,
            method,
            fault,
            armed: Arc::new(AtomicBool::new(armed)),
        }
    }

    fn fires(&self, method: Method) -> bool {
        method == self.method && self.armed.load(SeqCst)
    }

    /// For the methods that cannot return an error.
    fn boom(&self, method: Method) {
        if self.fires(method) {
            panic!("{DELIBERATE} panic in {method:?}");
        }
    }

    fn check(&self, method: Method) -> Result<(), HandlerError> {
        if self.fires(method) {
            match self.fault {
                Fault::Panic => panic!("{DELIBERATE} panic in {method:?}"),
                Fault::Error => return Err(format!("{DELIBERATE} error in {method:?}").into()),
            }
        }
        Ok(())
    }
}

impl SyncHandler for Faulty {
    fn name(&self) -> String {
        self.boom(Method::Name);
        self.driven.name()
    }
    fn capabilities(&self) -> HandlerCapabilities {
        self.boom(Method::Capabilities);
        self.driven.capabilities()
    }
    fn policies(&self) -> HandlerPolicies {
        self.boom(Method::Policies);
        self.driven.policies()
    }
    fn items(&self) -> Vec<SyncItem> {
        self.boom(Method::Items);
        self.driven.items()
    }
    fn max_concurrent_sessions(&self) -> Option<usize> {
        self.boom(Method::MaxConcurrent);
        self.driven.max_concurrent_sessions()
    }
    fn is_connected(&self) -> bool {
        self.boom(Method::IsConnected);
        self.driven.is_connected()
    }
    fn query_state_change(&self, change: &StateChange, flags: ControlFlags) -> bool {
        self.boom(Method::QueryStateChange);
        self.driven.query_state_change(change, flags)
    }
    fn on_state_change(
        &self,
        change: &StateChange,
        flags: ControlFlags,
    ) -> Result<(), HandlerError> {
        self.check(match change {
            StateChange::Activate | StateChange::Deactivate => Method::Activate,
            StateChange::Enable | StateChange::Disable => Method::Enable,
            StateChange::EnableItem(_) | StateChange::DisableItem(_) => Method::EnableItem,
        })?;
        self.driven.on_state_change(change, flags)
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        self.driven.synchronize(items, session)
    }
}

/// A gate a handler, hook or callback blocks on until the test opens it: an `entered` signal
/// when something reaches it, then a wait for `open`.
#[derive(Clone)]
struct Gate {
    entered: Sender<()>,
    open: Receiver<()>,
}

/// The test's side of a [`Gate`].
struct GateKeeper {
    entered: Receiver<()>,
    open: Sender<()>,
}

fn gate() -> (Gate, GateKeeper) {
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (open, open_rx) = crossbeam_channel::unbounded();
    (
        Gate {
            entered: entered_tx,
            open: open_rx,
        },
        GateKeeper { entered, open },
    )
}

impl Gate {
    fn pass(&self) {
        let _ = self.entered.send(());
        let _ = self.open.recv();
    }
}

impl GateKeeper {
    /// Waits until something is blocked at the gate.
    fn reached(&self) {
        self.entered
            .recv_timeout(PATIENCE)
            .expect("something should have reached the gate");
    }

    fn open(&self) {
        let _ = self.open.send(());
    }
}

// ----- the rig ---------------------------------------------------------------------------------

/// Every request a test makes through it, and what their result callbacks received.
#[derive(Clone)]
struct Ledger {
    /// Each ticket, and whether a ledger callback was attached to it.
    tickets: Arc<Mutex<Vec<(SyncTicket, bool)>>>,
    calls: Sender<RequestResult>,
}

impl Ledger {
    /// A result callback that reports to the ledger.
    fn sink(&self) -> impl SyncResult {
        let calls = self.calls.clone();
        move |r: &RequestResult| {
            let _ = calls.send(r.clone());
        }
    }

    /// Tracks a ticket whose request has no ledger callback (its own callback, or none).
    fn track(&self, ticket: SyncTicket) -> SyncTicket {
        lock(&self.tickets).push((ticket.clone(), false));
        ticket
    }

    /// Runs a request with a ledger callback and tracks its ticket.
    fn request(&self, manager: &SyncManager, request: SyncRequest) -> Result<SyncTicket, Error> {
        let ticket = manager.request(request.with_sink(self.sink()))?;
        lock(&self.tickets).push((ticket.clone(), true));
        Ok(ticket)
    }

    /// Starts a sync of these items, which must be accepted.
    fn start(&self, manager: &SyncManager, handler: &str, items: &[&str]) -> SyncTicket {
        self.request(manager, SyncRequest::handler(handler).items(items))
            .expect("the request is accepted")
    }
}

/// A manager handle that a handler or callback can use, emptied when the test ends so that
/// the handler does not keep the manager alive (see
/// `shutdown_lets_go_of_handlers_that_hold_a_manager_handle`).
#[derive(Clone)]
struct Slot(Arc<Mutex<Option<SyncManager>>>);

impl Slot {
    fn manager(&self) -> SyncManager {
        lock(&self.0)
            .clone()
            .expect("the test that filled the slot is still running")
    }
}

/// A [`World`] (one manager and a subscriber that sees everything) with an `Echo` handler
/// and a [`Ledger`]. It derefs to its world: `rig.manager`, `rig.register`.
struct Rig {
    world: World,
    /// Whether the world's stream must hold every notification (false for managers whose
    /// notification capacity is too small for that).
    check_stream: bool,
    ledger: Ledger,
    calls: Receiver<RequestResult>,
    echo_sessions: Arc<AtomicUsize>,
    slots: Vec<Slot>,
}

impl Rig {
    /// A rig with a test-sized grace period.
    fn new() -> Rig {
        Rig::with(World::new())
    }

    /// A rig with the manager of this builder, as it is (its own grace period).
    fn build(builder: SyncManagerBuilder) -> Rig {
        Rig::with(World::with(builder.build().expect("the manager starts")))
    }

    fn with(world: World) -> Rig {
        quiet();
        let echo_sessions = Arc::new(AtomicUsize::new(0));
        world.register(ECHO, Echo(echo_sessions.clone()));
        let (calls_tx, calls) = crossbeam_channel::unbounded();
        Rig {
            world,
            check_stream: true,
            ledger: Ledger {
                tickets: Arc::default(),
                calls: calls_tx,
            },
            calls,
            echo_sessions,
            slots: Vec::new(),
        }
    }

    /// Starts a sync of these items with a ledger callback.
    fn start(&self, handler: &str, items: &[&str]) -> SyncTicket {
        self.ledger.start(&self.manager, handler, items)
    }

    /// A manager handle for a handler or a callback.
    fn slot(&mut self) -> Slot {
        let slot = Slot(Arc::new(Mutex::new(Some(self.manager.clone()))));
        self.slots.push(slot.clone());
        slot
    }

    /// The engine is consistent and a fresh request is served.
    fn healthy(&self) {
        assert_eq!(self.manager.check_consistency(), Ok(()));
        let ticket = self.start(ECHO, &["e"]);
        assert_eq!(
            result(&ticket).status,
            Outcome::Succeeded,
            "the manager still serves a fresh request"
        );
    }

    /// Checks the manager is healthy, shuts it down and checks everything was delivered.
    fn finish(self, expected: ShutdownReport) -> Vec<Notification> {
        self.healthy();
        let report = self.manager.shutdown();
        self.verify(report, expected)
    }

    /// After shutdown (`report` is what it said): every ticket resolved, every callback ran
    /// once with the ticket's result, and the stream announced and completed every request
    /// once. Returns the whole notification stream.
    fn verify(self, report: ShutdownReport, expected: ShutdownReport) -> Vec<Notification> {
        assert_eq!(report, expected, "what shutdown reported");
        assert!(self.manager.is_shut_down());
        for slot in &self.slots {
            lock(&slot.0).take();
        }
        let tickets = std::mem::take(&mut *lock(&self.ledger.tickets));

        let mut results = HashMap::new();
        for (ticket, _) in &tickets {
            let result = ticket
                .try_result()
                .unwrap_or_else(|| panic!("{} resolved once shutdown returned", ticket.request()));
            assert_eq!(result.request, ticket.request());
            results.insert(ticket.request(), result);
        }

        // Callbacks run on the delivery thread, after the tickets: one that shutdown had to
        // leave behind may still be on its way.
        let mut called: HashMap<RequestId, Vec<RequestResult>> = HashMap::new();
        let deadline = Instant::now() + PATIENCE;
        for (ticket, with_callback) in &tickets {
            if !with_callback {
                continue;
            }
            while !called.contains_key(&ticket.request()) {
                let r = self
                    .calls
                    .recv_deadline(deadline)
                    .unwrap_or_else(|_| panic!("the callback of {} ran", ticket.request()));
                called.entry(r.request).or_default().push(r);
            }
        }
        for r in self.calls.try_iter() {
            called.entry(r.request).or_default().push(r);
        }
        for (request, calls) in &called {
            let Some(result) = results.get(request) else {
                panic!("a ledger callback ran for {request}, which the ledger never accepted");
            };
            assert_eq!(
                calls,
                std::slice::from_ref(result),
                "{request}: one callback, same result"
            );
        }

        // The scheduler has answered shutdown; its end closes the stream.
        let mut notes = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.notes.recv_deadline(deadline) {
                Ok(note) => notes.push(note),
                Err(RecvError::Closed) => break,
                Err(e) => panic!("the scheduler never ended: {e}"),
            }
        }
        if self.check_stream {
            let mut accepted: HashMap<RequestId, usize> = HashMap::new();
            let mut completed: HashMap<RequestId, Vec<RequestResult>> = HashMap::new();
            for note in &notes {
                match note {
                    Notification::RequestAccepted { request, .. } => {
                        *accepted.entry(*request).or_default() += 1;
                    }
                    Notification::RequestCompleted(r) => {
                        completed.entry(r.request).or_default().push(r.clone());
                    }
                    Notification::Lagged { missed } => panic!("the stream lagged by {missed}"),
                    _ => {}
                }
            }
            for (request, times) in &accepted {
                assert_eq!(*times, 1, "{request} announced once");
                assert_eq!(
                    completed.get(request).map(Vec::len),
                    Some(1),
                    "{request} completed once"
                );
            }
            for (request, list) in &completed {
                assert!(accepted.contains_key(request), "{request} was announced");
                if let Some(result) = results.get(request) {
                    assert_eq!(
                        &list[0], result,
                        "{request}: the stream has the ticket's result"
                    );
                }
            }
            for request in results.keys() {
                assert!(accepted.contains_key(request), "{request} is in the stream");
            }
        }
        notes
    }
}

impl Deref for Rig {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

/// The items of a `SessionEnded` notification for this session, and its error.
fn session_end(
    notes: &[Notification],
    session: SessionId,
) -> (Vec<(ItemId, Outcome)>, Option<String>) {
    notes
        .iter()
        .find_map(|note| match note {
            Notification::SessionEnded {
                session: s,
                outcomes,
                error,
                ..
            } if *s == session => Some((outcomes.clone(), error.as_ref().map(chain))),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{session} ended"))
}

/// How a request's items were taken, from its `RequestAccepted` notification.
fn dispositions(notes: &[Notification], request: RequestId) -> Vec<(ItemId, Disposition)> {
    notes
        .iter()
        .find_map(|note| match note {
            Notification::RequestAccepted {
                request: r, items, ..
            } if *r == request => Some(items.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{request} was announced"))
}

/// Where a notification is in the stream.
fn position(notes: &[Notification], what: &str, pick: impl Fn(&Notification) -> bool) -> usize {
    notes
        .iter()
        .position(pick)
        .unwrap_or_else(|| panic!("no {what} in the stream"))
}

// ----- handlers that panic in synchronize ------------------------------------------------------

/// SPEC 6: "If `synchronize` returns an error or **panics**, the same happens" as when it
/// returns: "every session item without a terminal report gets one: `Canceled` if a cancel
/// was requested for it, otherwise `Failed`". A panic before any report, with one item asked
/// to cancel; a request queued behind the session gets a session of its own.
#[test]
fn a_panic_before_any_report_fails_the_items_except_those_asked_to_cancel() {
    let rig = Rig::new();
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    rig.register(H, handler);
    let first = rig.start(H, &["a", "b", "c"]);
    let run = next_session(&sessions);
    let behind = rig.start(H, &["a"]);
    assert_eq!(
        rig.manager.stop_item_sync(H, ["b"]),
        Ok(Stopped {
            canceled_pending: 0,
            cancel_requests: 1
        })
    );
    run.end(Finish::Panic(deliberate("before any report")));

    let got = result(&first);
    assert_eq!(
        got.items,
        outcomes(&[
            ("a", Outcome::Failed),
            ("b", Outcome::Canceled),
            ("c", Outcome::Failed)
        ])
    );
    assert_eq!((got.status, got.errors), (Outcome::Failed, 1));
    let next = next_session(&sessions);
    assert_eq!(next.names(), ["a"]);
    next.succeed_all();
    assert_eq!(result(&behind).status, Outcome::Succeeded);
    rig.finish(ShutdownReport::default());
}

/// SPEC 6: a panic "is caught, turned into an error event and `Failed` outcomes" only for
/// items without a terminal report: after the last report every outcome stands, and the
/// request succeeds with one error counted (SPEC 7: `errors` counts the `Error` events of the
/// sessions that served it).
#[test]
fn a_panic_after_the_last_report_keeps_every_outcome_and_counts_one_error() {
    let rig = Rig::new();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    rig.register(H, handler);
    let ticket = rig.start(H, &["a", "b"]);
    let run = next_session(&sessions);
    let session = run.session.id();
    run.report(&["a", "b"], ProgressStatus::Succeeded);
    run.end(Finish::Panic(deliberate("after the last report")));

    let got = result(&ticket);
    assert_eq!(
        got.items,
        outcomes(&[("a", Outcome::Succeeded), ("b", Outcome::Succeeded)])
    );
    assert_eq!((got.status, got.errors), (Outcome::Succeeded, 1));
    let events = rig.manager.events(H).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].report.level, EventLevel::Error);
    assert!(
        events[0]
            .report
            .description
            .contains("after the last report")
    );

    let notes = rig.finish(ShutdownReport::default());
    let (ended, error) = session_end(&notes, session);
    assert_eq!(ended, got.items);
    assert!(error.is_some_and(|e| e.contains("after the last report")));
}

/// SPEC 5: a pulled item's requests "take its outcome there", in the running session. When
/// that session panics, the pulled request gets `Failed` and the error too.
#[test]
fn a_panic_after_pulling_a_pending_item_fails_the_pulled_request_too() {
    let rig = Rig::new();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    rig.register(H, handler);
    let first = rig.start(H, &["a"]);
    let run = next_session(&sessions);
    let pulled = rig.start(H, &["b"]);
    run.session.add_item_to_session(&id("b")).unwrap();
    run.report(&["a"], ProgressStatus::Succeeded);
    run.end(Finish::Panic(deliberate("after a pull")));

    let got = result(&first);
    assert_eq!(got.items, outcomes(&[("a", Outcome::Succeeded)]));
    assert_eq!((got.status, got.errors), (Outcome::Succeeded, 1));
    let got = result(&pulled);
    assert_eq!(got.items, outcomes(&[("b", Outcome::Failed)]));
    assert_eq!((got.status, got.errors), (Outcome::Failed, 1));
    assert!(
        sessions.try_recv().is_err(),
        "the pulled item was served by the session that panicked, not by another"
    );
    rig.finish(ShutdownReport::default());
}

/// SPEC 6: "the panic is caught, turned into an error event" whatever its payload; one that
/// is not text is named as such.
#[test]
fn a_panic_with_a_payload_that_is_not_text_is_caught_and_named_as_such() {
    let rig = Rig::new();
    rig.register(
        H,
        Scripted::new(&["a"], |_, _| std::panic::panic_any(NonText)),
    );
    let ticket = rig.start(H, &["a"]);
    let got = result(&ticket);
    assert_eq!(got.items, outcomes(&[("a", Outcome::Failed)]));
    assert_eq!(got.errors, 1);
    let message = "handler panicked: a panic with a non-text payload";
    let events = rig.manager.events(H).unwrap();
    assert_eq!(events[0].report.description, message);
    let notes = rig.finish(ShutdownReport::default());
    let session = notes
        .iter()
        .find_map(|n| match n {
            Notification::SessionStarted {
                session, handler, ..
            } if handler.as_str() == H => Some(*session),
            _ => None,
        })
        .unwrap();
    assert_eq!(session_end(&notes, session).1.as_deref(), Some(message));
}

/// A panic on a thread the handler started is the handler's own business until the handler
/// makes it its panic (`resume_unwind` of the join error): then SPEC 6 applies, with the
/// helper's message; a handler that ignores its helper's panic ends normally.
#[test]
fn a_panic_on_a_helper_thread_counts_only_if_the_handler_propagates_it() {
    fn helper(session: &SyncSession, items: &[ItemId], reported: usize) -> thread::JoinHandle<()> {
        let (session, items) = (session.clone(), items.to_vec());
        thread::spawn(move || {
            for item in &items[..reported] {
                session
                    .report_progress(
                        item,
                        Progress::new(ProgressStatus::Succeeded)
                            .text("helper")
                            .steps(1, 1),
                    )
                    .unwrap();
            }
            panic!("{DELIBERATE} panic on the helper thread");
        })
    }
    let rig = Rig::new();
    rig.register(
        "propagates",
        Scripted::new(&["a", "b"], |items, session| {
            match helper(session, items, 1).join() {
                Ok(()) => Ok(()),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }),
    );
    rig.register(
        "ignores",
        Scripted::new(&["a", "b"], |items, session| {
            let _ = helper(session, items, 2).join();
            Ok(())
        }),
    );

    let propagated = result(&rig.start("propagates", &["a", "b"]));
    assert_eq!(
        propagated.items,
        outcomes(&[("a", Outcome::Succeeded), ("b", Outcome::Failed)])
    );
    assert_eq!(propagated.errors, 1);
    let events = rig.manager.events("propagates").unwrap();
    assert!(
        events[0]
            .report
            .description
            .contains("panic on the helper thread")
    );

    let ignored = result(&rig.start("ignores", &["a", "b"]));
    assert_eq!((ignored.status, ignored.errors), (Outcome::Succeeded, 0));
    assert_eq!(rig.manager.events("ignores"), Ok(Vec::new()));
    rig.finish(ShutdownReport::default());
}

/// SPEC 7: shutdown "asks running sessions to cancel"; a handler that panics on its way out
/// still gets SPEC 6's treatment: its unreported items end `Canceled` (a cancel was
/// requested), the error counts, and shutdown does not have to abandon anything.
#[test]
fn a_panic_in_answer_to_the_shutdown_cancel_gives_canceled_outcomes() {
    let rig = Rig::build(SyncManager::builder().shutdown_grace(PATIENCE));
    let (handler, sessions) = Driven::new(&["a", "b"]);
    rig.register(H, handler);
    let notes = rig.manager.subscribe();
    let ticket = rig.start(H, &["a", "b"]);
    let run = next_session(&sessions);
    run.report(&["a"], ProgressStatus::Succeeded);
    rig.healthy();

    let report = thread::scope(|scope| {
        let shutting_down = scope.spawn(|| rig.manager.shutdown());
        wait_for_cancel_all(&notes, run.session.id());
        run.end(Finish::Panic(deliberate("on the way out")));
        shutting_down.join().expect("shutdown does not panic")
    });
    let got = ticket
        .try_result()
        .expect("resolved when shutdown returned");
    assert_eq!(
        got.items,
        outcomes(&[("a", Outcome::Succeeded), ("b", Outcome::Canceled)])
    );
    assert_eq!((got.status, got.errors), (Outcome::Canceled, 1));
    rig.verify(report, ShutdownReport::default());
}

// ----- panics and errors in the other handler methods ------------------------------------------

/// A panic in `is_connected` (asked on the caller's thread) refuses a start call with
/// `HandlerFailed` and changes nothing, instead of passing for "disconnected" (issue 13: the
/// request used to complete silently as `Disconnected`). `start_sync_all` cannot let one
/// handler refuse everyone's sync: there, for that handler only, it counts as disconnected
/// (SPEC 4: its request "completes at once as `Disconnected`").
/// A rig whose handler `H` (item `a`) panics in `is_connected` while `armed` is set (it is):
/// its session receiver and the switch.
fn with_panicking_is_connected() -> (Rig, Receiver<Running>, Arc<AtomicBool>) {
    let rig = Rig::new();
    let (driven, sessions) = Driven::new(&["a"]);
    let faulty = Faulty::new(driven, Method::IsConnected, Fault::Panic, false);
    let armed = faulty.armed.clone();
    rig.register(H, faulty);
    armed.store(true, SeqCst);
    (rig, sessions, armed)
}

#[test]
fn a_panic_in_is_connected_refuses_the_start_call() {
    let (rig, sessions, armed) = with_panicking_is_connected();

    let refused = rig
        .manager
        .start_item_sync(H, ["a"], SyncControlFlags::NONE, None)
        .expect_err("a panicking is_connected refuses the call");
    assert!(failed_with(&refused, "handler panicked"), "{refused:?}");
    assert_eq!(rig.manager.check_consistency(), Ok(()));

    let all = rig.manager.start_sync_all(SyncControlFlags::NONE).unwrap();
    assert_eq!(all.len(), 2);
    for ticket in all {
        let ticket = rig.ledger.track(ticket);
        let expected = match ticket.handler().as_str() {
            H => Outcome::Disconnected,
            _ => Outcome::Succeeded,
        };
        assert_eq!(result(&ticket).status, expected, "{}", ticket.handler());
    }
    assert!(
        sessions.try_recv().is_err(),
        "no session for a disconnected handler"
    );

    armed.store(false, SeqCst);
    let ticket = rig.start(H, &["a"]);
    next_session(&sessions).succeed_all();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
    rig.finish(ShutdownReport::default());
}

/// In a bunch (`request_many`), a panicking `is_connected` refuses that handler's requests,
/// each with `HandlerFailed`, and the other handler's requests go on.
#[test]
fn a_panic_in_is_connected_refuses_only_that_handlers_requests_of_a_bunch() {
    let (rig, sessions, _armed) = with_panicking_is_connected();

    let out = rig.manager.request_many([
        SyncRequest::handler(H).items(["a"]),
        SyncRequest::handler(ECHO),
        SyncRequest::handler(H),
    ]);
    assert_eq!(out.len(), 3);
    for refused in [&out[0], &out[2]] {
        let error = refused
            .as_ref()
            .expect_err("refused: is_connected panicked");
        assert!(failed_with(error, "handler panicked"), "{error:?}");
    }
    let echo = rig
        .ledger
        .track(out[1].clone().expect("the other handler goes on"));
    assert_eq!(result(&echo).status, Outcome::Succeeded);
    assert!(
        sessions.try_recv().is_err(),
        "nothing started for the refused"
    );
    assert_eq!(rig.manager.check_consistency(), Ok(()));
    rig.finish(ShutdownReport::default());
}

/// rustdoc of `SyncHandler`: "a panic in a hook fails the call that ran it with
/// `Error::HandlerFailed`". Registration reads the name, capabilities, policies, items,
/// session limit and connectivity: a panic in any of them refuses the registration (with
/// `WAIT`; without it the failure is a `StateChangeFailed` notification), and the ID stays
/// free.
#[test]
fn a_panic_in_a_method_read_at_registration_refuses_the_registration() {
    let rig = Rig::new();
    let notes = rig.manager.subscribe();
    for method in [
        Method::Name,
        Method::Capabilities,
        Method::Policies,
        Method::Items,
        Method::MaxConcurrent,
        Method::IsConnected,
    ] {
        for flags in [ControlFlags::WAIT, ControlFlags::NOWAIT] {
            let name = format!("{method:?}-{}", flags.bits());
            let faulty = Faulty::new(Driven::new(&["a"]).0, method, Fault::Panic, true);
            let answer = rig.manager.register_handler(&name, faulty, flags);
            let error = if flags.contains(ControlFlags::WAIT) {
                answer.expect_err(&name)
            } else {
                assert_eq!(answer, Ok(()), "{name}: queued");
                let (handler, error) = state_change_failed(&notes);
                assert_eq!(handler.as_str(), name);
                error
            };
            assert!(
                failed_with(&error, &format!("panic in {method:?}")),
                "{name}: {error:?}"
            );
            assert_eq!(error.hresult(), hresult::E_FAIL);
            assert_eq!(
                rig.manager
                    .start_handler_sync(&name, SyncControlFlags::NONE, None)
                    .map(drop),
                Err(Error::UnknownHandler(HandlerId::new(&name).unwrap())),
                "{name}: not registered"
            );
            rig.register(&name, Echo(Arc::default()));
            let ticket = rig
                .ledger
                .request(&rig.manager, SyncRequest::handler(&name))
                .unwrap();
            assert_eq!(result(&ticket).status, Outcome::Succeeded, "{name}");
        }
    }
    rig.finish(ShutdownReport::default());
}

/// `update_handler` and `update_item` re-read the handler's items; a panic there fails the
/// call (`HandlerFailed`, or `StateChangeFailed` without `WAIT`) and changes nothing: the
/// pending request keeps waiting and is served.
#[test]
fn a_panic_in_items_at_update_changes_nothing() {
    let rig = Rig::new();
    let notes = rig.manager.subscribe();
    let (driven, sessions) = Driven::new(&["a", "b"]);
    let faulty = Faulty::new(driven, Method::Items, Fault::Panic, false);
    let armed = faulty.armed.clone();
    rig.register(H, faulty);
    let running = rig.start(H, &["a"]);
    let run = next_session(&sessions);
    let pending = rig.start(H, &["b"]);

    armed.store(true, SeqCst);
    for flags in [ControlFlags::WAIT, ControlFlags::NOWAIT] {
        for call in ["update_handler", "update_item"] {
            let answer = match call {
                "update_handler" => rig.manager.update_handler(H, flags),
                _ => rig.manager.update_item(H, "b", flags),
            };
            let error = if flags.contains(ControlFlags::WAIT) {
                answer.expect_err(call)
            } else {
                assert_eq!(answer, Ok(()), "{call}: queued");
                state_change_failed(&notes).1
            };
            assert!(failed_with(&error, "panic in Items"), "{call}: {error:?}");
        }
    }
    armed.store(false, SeqCst);
    assert!(!pending.is_complete(), "the pending request still waits");

    run.succeed_all();
    assert_eq!(result(&running).status, Outcome::Succeeded);
    let next = next_session(&sessions);
    assert_eq!(next.names(), ["b"]);
    next.succeed_all();
    assert_eq!(result(&pending).status, Outcome::Succeeded);
    rig.finish(ShutdownReport::default());
}

/// rustdoc of `SyncHandler`: hooks run "before the change is applied; an error refuses the
/// change", and a panic in a hook "fails the call that ran it with `Error::HandlerFailed`".
/// Every hook and `query_state_change`, panicking or returning an error, with and without
/// `WAIT`: the call fails (or, queued, says so with `StateChangeFailed`), nothing changes, and
/// the handler keeps working.
#[test]
fn a_hook_that_panics_or_fails_refuses_the_change_and_changes_nothing() {
    let rig = Rig::new();
    let notes = rig.manager.subscribe();
    let a = id("a");
    let cases = [
        (Method::Activate, StateChange::Deactivate),
        (Method::Enable, StateChange::Disable),
        (Method::EnableItem, StateChange::DisableItem(a.clone())),
        (Method::QueryStateChange, StateChange::Disable),
    ];
    for (method, change) in cases {
        for fault in [Fault::Panic, Fault::Error] {
            if method == Method::QueryStateChange && fault == Fault::Error {
                continue; // it answers with a bool: refusing is pinned in manager_lifecycle
            }
            for flags in [ControlFlags::WAIT, ControlFlags::NOWAIT] {
                let name = format!("{method:?}-{fault:?}-{}", flags.bits());
                let (driven, sessions) = Driven::new(&["a"]);
                let driven = driven.with_capabilities(HandlerCapabilities::QUERY_BEFORE_DISABLE);
                rig.register(&name, Faulty::new(driven, method, fault, true));
                let answer = match &change {
                    StateChange::Deactivate => rig.manager.deactivate_handler(&name, flags),
                    StateChange::Disable => rig.manager.disable_handler(&name, flags),
                    _ => rig.manager.disable_item(&name, &a, flags),
                };
                let error = if flags.contains(ControlFlags::WAIT) {
                    answer.expect_err(&name)
                } else {
                    assert_eq!(answer, Ok(()), "{name}: queued");
                    let (handler, error) = state_change_failed(&notes);
                    assert_eq!(handler.as_str(), name);
                    error
                };
                let text = match fault {
                    Fault::Panic => format!("handler panicked: {DELIBERATE} panic in {method:?}"),
                    Fault::Error => format!("{DELIBERATE} error in {method:?}"),
                };
                assert_eq!(error, Error::HandlerFailed(Cause::new(text)), "{name}");

                // Not applied: the handler and its item still start and sync.
                let ticket = rig.ledger.start(&rig.manager, &name, &["a"]);
                next_session(&sessions).succeed_all();
                assert_eq!(result(&ticket).status, Outcome::Succeeded, "{name}");
            }
        }
    }
    let notes = rig.finish(ShutdownReport::default());
    assert!(
        !notes.iter().any(|n| matches!(
            n,
            Notification::HandlerChanged {
                change: HandlerChange::State(_),
                ..
            }
        )),
        "no state change was applied"
    );
}

// ----- errors, missing and extra reports -------------------------------------------------------

/// SPEC 6: "If `synchronize` returns an error ... the same happens". Here the error is one a
/// session call gave the handler (progress text over `MAX_SYNCMGR_PROGRESSTEXT`, SPEC 6),
/// passed on with `?`: it becomes the error event's description and the session's error.
#[test]
fn an_error_from_a_session_call_passed_on_by_synchronize_fails_the_rest() {
    let rig = Rig::new();
    let too_long = "x".repeat(MAX_SYNCMGR_PROGRESSTEXT);
    let (refused_tx, refused) = crossbeam_channel::unbounded();
    rig.register(
        H,
        Scripted::new(&["a", "b"], move |items, session| {
            session.report_progress(&items[0], ProgressStatus::Succeeded)?;
            session
                .report_progress(
                    &items[1],
                    Progress::new(ProgressStatus::Updating)
                        .text(&too_long)
                        .steps(0, 1),
                )
                .inspect_err(|e| {
                    let _ = refused_tx.send(e.clone());
                })?;
            unreachable!("the text is too long");
        }),
    );
    let got = result(&rig.start(H, &["a", "b"]));
    assert_eq!(
        got.items,
        outcomes(&[("a", Outcome::Succeeded), ("b", Outcome::Failed)])
    );
    assert_eq!((got.status, got.errors), (Outcome::Failed, 1));
    let refused = refused.try_recv().unwrap();
    assert!(matches!(refused, Error::TextTooLong { .. }), "{refused:?}");
    let events = rig.manager.events(H).unwrap();
    assert_eq!(events[0].report.description, refused.to_string());
    let notes = rig.finish(ShutdownReport::default());
    let ended = notes.iter().find_map(|n| match n {
        Notification::SessionEnded { handler, error, .. } if handler.as_str() == H => {
            Some(error.as_ref().map(chain))
        }
        _ => None,
    });
    assert_eq!(ended, Some(Some(refused.to_string())));
}

/// SPEC 6: "`Canceled` if a cancel was requested for it, otherwise `Failed`" holds for an
/// error too: a stopped session that then returns an error ends `Canceled`, with the error
/// counted.
#[test]
fn an_error_after_a_stop_leaves_the_unreported_items_canceled() {
    let rig = Rig::new();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    rig.register(H, handler);
    let ticket = rig.start(H, &["a", "b"]);
    let run = next_session(&sessions);
    assert!(rig.manager.stop_handler_sync(H).is_ok());
    assert_eq!(run.session.can_continue(None), Ok(false));
    run.end(Finish::Error(deliberate("error after the stop")));
    let got = result(&ticket);
    assert_eq!(
        got.items,
        outcomes(&[("a", Outcome::Canceled), ("b", Outcome::Canceled)])
    );
    assert_eq!((got.status, got.errors), (Outcome::Canceled, 1));
    rig.finish(ShutdownReport::default());
}

/// SPEC 6: "A handler can never make a request wait forever by forgetting to report": not
/// the request that started the session, nor one that joined it (SPEC 5,
/// `IGNORE_IF_ALREADY_SYNCING`), nor two that merged into the next pending entry.
#[test]
fn a_handler_that_never_reports_fails_every_request_that_shares_its_items() {
    let rig = Rig::new();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    rig.register(H, handler);
    let first = rig.start(H, &["a"]);
    let run = next_session(&sessions);
    let session = run.session.id();
    let joined = rig
        .ledger
        .request(
            &rig.manager,
            SyncRequest::handler(H)
                .items(["a"])
                .flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING),
        )
        .unwrap();
    let queued = rig.start(H, &["a", "b"]);
    let merged = rig.start(H, &["b"]);
    run.end(Finish::Return);
    next_session(&sessions).end(Finish::Return);

    for (ticket, items) in [
        (&first, &["a"][..]),
        (&joined, &["a"]),
        (&queued, &["a", "b"]),
        (&merged, &["b"]),
    ] {
        let got = result(ticket);
        let expected: Vec<_> = items.iter().map(|i| (*i, Outcome::Failed)).collect();
        assert_eq!(got.items, outcomes(&expected), "{}", ticket.request());
        assert_eq!(got.errors, 0);
    }
    let notes = rig.finish(ShutdownReport::default());
    assert_eq!(
        dispositions(&notes, joined.request()),
        [(id("a"), Disposition::Joined(session))]
    );
    assert_eq!(
        dispositions(&notes, merged.request()),
        [(id("b"), Disposition::Merged)]
    );
}

/// SPEC 6's terminal rule ("after an item reported `Succeeded`, `Failed`, `Canceled` or
/// `Disconnected`, only `Failed` is still accepted; any other status is an access-denied error
/// and marks the item `Failed`") when two threads report at once: whichever comes first, the
/// item ends `Failed`, and the answers say who won.
#[test]
fn two_threads_reporting_terminal_statuses_for_one_item_at_once_end_it_failed() {
    let rig = Rig::new();
    let names: Vec<String> = (0..16).map(|k| format!("i{k:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (handler, sessions) = Driven::new(&names);
    rig.register(H, handler);
    let ticket = rig.start(H, &names);
    let run = next_session(&sessions);
    let others = [
        ProgressStatus::Succeeded,
        ProgressStatus::Failed,
        ProgressStatus::Canceled,
        ProgressStatus::Disconnected,
    ];
    let reached = |status| match status {
        ProgressStatus::Succeeded => Outcome::Succeeded,
        ProgressStatus::Failed => Outcome::Failed,
        ProgressStatus::Canceled => Outcome::Canceled,
        _ => Outcome::Disconnected,
    };
    let barrier = Barrier::new(2 * run.items.len());
    thread::scope(|scope| {
        let mut pairs = Vec::new();
        for (k, item) in run.items.iter().enumerate() {
            let report = |status| {
                let (barrier, session) = (&barrier, &run.session);
                scope.spawn(move || {
                    barrier.wait();
                    session.report_progress(item, status)
                })
            };
            let other = others[k % others.len()];
            pairs.push((
                item,
                other,
                report(ProgressStatus::Succeeded),
                report(other),
            ));
        }
        for (item, other, first, second) in pairs {
            let first = first.join().unwrap();
            let second = second.join().unwrap();
            let denied = |winner, loser| {
                Err(Error::AccessDenied(Denied::TerminalState {
                    item: item.clone(),
                    reached: reached(winner),
                    reported: loser,
                }))
            };
            let ok = Ok(CancelRequest::None);
            let succeeded = ProgressStatus::Succeeded;
            let allowed = [
                (ok.clone(), denied(succeeded, other)),
                (denied(other, succeeded), ok.clone()),
                // `Failed` is accepted after a terminal report.
                (ok.clone(), ok.clone()),
            ];
            let answer = (first, second);
            assert!(
                allowed[..if other == ProgressStatus::Failed {
                    3
                } else {
                    2
                }]
                    .contains(&answer),
                "{item} ({other:?}): {answer:?}"
            );
        }
    });
    run.end(Finish::Return);
    let got = result(&ticket);
    assert!(
        got.items.iter().all(|o| o.outcome == Outcome::Failed),
        "{:?}",
        got.items
    );
    rig.finish(ShutdownReport::default());
}

// ----- the session from other threads ----------------------------------------------------------

/// rustdoc of `SyncSession`: usable "from any thread, also threads the handler starts itself.
/// ... Once the session has ended, calls fail with `Error::UnknownSession`." Helper threads
/// that report while `synchronize` returns race its end; the scheduler takes one call at a
/// time, so each item's outcome matches the answer its report got: `Ok` means `Succeeded`,
/// `UnknownSession` means the report came after the end (and the item is `Failed`).
#[test]
fn reports_racing_the_end_of_synchronize_count_exactly_when_they_were_accepted() {
    const ITEMS: usize = 6;
    const ROUNDS: usize = 30;
    type Answer = (ItemId, Result<CancelRequest, Error>);
    let rig = Rig::new();
    let (answers_tx, answers) = crossbeam_channel::unbounded::<Answer>();
    let (helpers_tx, helpers) = crossbeam_channel::unbounded();
    let names: Vec<String> = (0..ITEMS).map(|k| format!("r{k}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    rig.register(
        H,
        Scripted::new(&names, move |items, session| {
            let barrier = Arc::new(Barrier::new(items.len() + 1));
            for item in items {
                let (barrier, session, item) = (barrier.clone(), session.clone(), item.clone());
                let answers = answers_tx.clone();
                let helper = thread::spawn(move || {
                    barrier.wait();
                    let answer = session.report_progress(&item, ProgressStatus::Succeeded);
                    let _ = answers.send((item, answer));
                });
                let _ = helpers_tx.send(helper);
            }
            barrier.wait();
            Ok(()) // without waiting for the helpers
        }),
    );

    let (mut accepted, mut late) = (0, 0);
    for _ in 0..ROUNDS {
        let got = result(&rig.start(H, &names));
        let session_gone = |e: &Error| matches!(e, Error::UnknownSession(_));
        let mut answered: HashMap<ItemId, Result<CancelRequest, Error>> = HashMap::new();
        for _ in 0..ITEMS {
            let (item, answer) = answers
                .recv_timeout(PATIENCE)
                .expect("every helper answers");
            answered.insert(item, answer);
        }
        for ItemOutcome { item, outcome, .. } in &got.items {
            match &answered[item] {
                Ok(CancelRequest::None) => {
                    accepted += 1;
                    assert_eq!(*outcome, Outcome::Succeeded, "{item}: reported in time");
                }
                Err(e) if session_gone(e) => {
                    late += 1;
                    assert_eq!(*outcome, Outcome::Failed, "{item}: reported too late");
                }
                other => panic!("{item}: {other:?}"),
            }
        }
    }
    assert_eq!(accepted + late, ITEMS * ROUNDS);
    for helper in helpers.try_iter() {
        helper.join().expect("a helper does not panic");
    }
    rig.finish(ShutdownReport::default());
}

/// A handle kept from an ended session cannot touch the next session of the same items, nor
/// anything after shutdown: every call is `UnknownSession` and the new session's outcome
/// stands.
#[test]
fn a_stale_session_handle_cannot_touch_the_next_session_of_the_same_items() {
    let rig = Rig::new();
    let (handler, sessions) = Driven::new(&["a"]);
    rig.register(H, handler);
    let ticket = rig.start(H, &["a"]);
    let run = next_session(&sessions);
    let stale = run.session.clone();
    run.succeed_all();
    result(&ticket);

    let again = rig.start(H, &["a"]);
    let run = next_session(&sessions);
    let gone = Err(Error::UnknownSession(stale.id()));
    assert_eq!(
        stale
            .report_progress(&id("a"), ProgressStatus::Canceled)
            .map(drop),
        gone
    );
    assert_eq!(stale.add_item_to_session(&id("a")), gone);
    assert_eq!(stale.report_conflict(Some(&id("a"))), gone);
    assert_eq!(run.session.can_continue(Some(&id("a"))), Ok(true));
    run.succeed_all();
    let got = result(&again);
    assert_eq!((got.status, got.conflicts), (Outcome::Succeeded, 0));

    rig.finish(ShutdownReport::default());
    assert_eq!(
        stale.can_continue(None),
        Err(Error::UnknownSession(stale.id()))
    );
}

/// Many threads report into one session at once, each for its own items, with events; every
/// report counts.
#[test]
fn many_threads_may_report_into_one_session_at_once() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 8;
    let rig = Rig::new();
    let names: Vec<String> = (0..THREADS * PER_THREAD)
        .map(|k| format!("m{k:02}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    rig.register(
        H,
        Scripted::new(&names, |items, session| {
            let barrier = Barrier::new(THREADS);
            thread::scope(|scope| {
                for chunk in items.chunks(PER_THREAD) {
                    let barrier = &barrier;
                    scope.spawn(move || -> Result<(), Error> {
                        barrier.wait();
                        for (step, item) in chunk.iter().enumerate() {
                            session.report_progress(
                                item,
                                Progress::new(ProgressStatus::Updating).steps(step as u32, 8),
                            )?;
                            session.report_event(
                                EventReport::new(EventLevel::Warning, "from a helper")
                                    .item(item.clone()),
                            )?;
                            assert!(session.can_continue(Some(item))?);
                            session.report_progress(
                                item,
                                Progress::new(ProgressStatus::Succeeded).steps(8, 8),
                            )?;
                        }
                        Ok(())
                    });
                }
            });
            Ok(())
        }),
    );
    let got = result(&rig.start(H, &names));
    assert!(
        got.items.iter().all(|o| o.outcome == Outcome::Succeeded),
        "{got:?}"
    );
    assert_eq!(got.items.len(), THREADS * PER_THREAD);
    assert_eq!(rig.manager.events(H).unwrap().len(), THREADS * PER_THREAD);
    let notes = rig.finish(ShutdownReport::default());
    let progress = notes
        .iter()
        .filter(
            |n| matches!(n, Notification::ItemProgress { handler, .. } if handler.as_str() == H),
        )
        .count();
    assert_eq!(progress, 2 * THREADS * PER_THREAD);
}

// ----- user code that blocks past shutdown -----------------------------------------------------

/// A `Driven` handler that also watches the thread its session runs on.
struct Watched {
    driven: Driven,
    exits: Sender<Receiver<()>>,
}

impl SyncHandler for Watched {
    fn items(&self) -> Vec<SyncItem> {
        self.driven.items()
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let _ = self.exits.send(watch_this_thread());
        self.driven.synchronize(items, session)
    }
}

/// SPEC 7: shutdown "waits for [running sessions] up to a configurable grace period, delivers
/// every outstanding result"; `ShutdownReport`: sessions still running are abandoned ("their
/// requests got results anyway (items without a terminal report `Canceled`)") and threads
/// still in user code are detached ("each ends when that code returns"). Beyond the single
/// blocked session of manager_lifecycle: with one worker, a blocked handler also holds up a
/// session that is waiting for a worker. Both are abandoned, the waiting one never runs, a
/// pending request is canceled, and the abandoned handler's late calls are refused.
#[test]
fn a_blocked_handler_is_abandoned_with_the_session_waiting_for_its_worker() {
    let rig = Rig::build(
        SyncManager::builder()
            .worker_threads(1)
            .shutdown_grace(SHORT_GRACE),
    );
    let (driven, sessions) = Driven::new(&["x", "y"]);
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    rig.register(
        H,
        Watched {
            driven,
            exits: exits_tx,
        },
    );
    let notes = rig.manager.subscribe();
    rig.healthy(); // while the only worker is free
    let echoed = rig.echo_sessions.load(SeqCst);

    let running = rig.start(H, &["x"]);
    let run = next_session(&sessions); // holds the only worker until the test lets go
    let worker_exit = exits.recv_timeout(PATIENCE).unwrap();
    let pending = rig.start(H, &["y"]);
    let waiting = rig.start(ECHO, &["e"]);
    wait_for(&notes, |note| match note {
        Notification::SessionStarted { handler, .. } if handler.as_str() == ECHO => Some(()),
        _ => None,
    });

    let report = rig.manager.shutdown();
    for (ticket, item) in [(&running, "x"), (&pending, "y"), (&waiting, "e")] {
        let got = ticket
            .try_result()
            .expect("resolved when shutdown returned");
        assert_eq!(got.items, outcomes(&[(item, Outcome::Canceled)]));
    }
    assert_eq!(
        run.session
            .report_progress(&id("x"), ProgressStatus::Succeeded),
        Err(Error::UnknownSession(run.session.id())),
        "the abandoned session is gone"
    );
    run.end(Finish::Return);
    assert!(thread_ended(&worker_exit), "the detached worker ends");
    assert_eq!(
        rig.echo_sessions.load(SeqCst),
        echoed,
        "the session that waited for a worker never ran"
    );
    rig.verify(
        report,
        ShutdownReport {
            abandoned_sessions: 2,
            detached_threads: 1,
        },
    );
}

/// A state-change hook that blocks past shutdown: queued without `WAIT` it holds a worker,
/// which shutdown detaches (the change then fails quietly: the manager is gone); with `WAIT`
/// it holds only its caller's thread, which shutdown does not wait for, and the call then
/// fails with `ShutDown`.
#[test]
fn a_hook_blocked_past_shutdown_detaches_only_a_manager_thread() {
    let rig = Rig::build(SyncManager::builder().shutdown_grace(SHORT_GRACE));
    let (hook_gate, hooks) = gate();
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let blocked = Scripted::new(&["a"], |_, _| Ok(())).with_hook(move |_| {
        let _ = exits_tx.send(watch_this_thread());
        hook_gate.pass();
        Ok(())
    });
    rig.register(H, blocked);

    assert_eq!(rig.manager.disable_handler(H, ControlFlags::NOWAIT), Ok(()));
    hooks.reached();
    let worker_exit = exits.recv().unwrap();
    let caller = {
        let manager = rig.manager.clone();
        thread::spawn(move || manager.disable_item(H, "a", ControlFlags::WAIT))
    };
    hooks.reached();
    let caller_exit = exits.recv().unwrap();

    rig.healthy();
    let report = rig.manager.shutdown();
    hooks.open();
    hooks.open();
    assert_eq!(caller.join().unwrap(), Err(Error::ShutDown));
    assert!(thread_ended(&caller_exit));
    assert!(thread_ended(&worker_exit), "the detached worker ends");
    rig.verify(
        report,
        ShutdownReport {
            abandoned_sessions: 0,
            detached_threads: 1,
        },
    );
}

/// rustdoc of `SyncManager::start`: `is_connected` is "asked here, on the caller's thread: a
/// slow `is_connected` never stalls the scheduler". One that blocks holds up only its own
/// caller, across shutdown too; the call then fails with `ShutDown`.
#[test]
fn a_blocked_is_connected_holds_up_only_its_caller() {
    let rig = Rig::build(SyncManager::builder().shutdown_grace(SHORT_GRACE));
    let (connect_gate, connecting) = gate();
    struct Slow(Gate, AtomicBool);
    impl SyncHandler for Slow {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("a", "A").unwrap()]
        }
        fn is_connected(&self) -> bool {
            if self.1.load(SeqCst) {
                self.0.pass();
            }
            true
        }
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    let slow = Arc::new(Slow(connect_gate, AtomicBool::new(false)));
    rig.register(H, slow.clone());
    slow.1.store(true, SeqCst);

    let caller = {
        let manager = rig.manager.clone();
        thread::spawn(move || manager.start_item_sync(H, ["a"], SyncControlFlags::NONE, None))
    };
    connecting.reached();
    rig.healthy();
    let report = rig.manager.shutdown();
    connecting.open();
    assert_eq!(caller.join().unwrap().map(drop), Err(Error::ShutDown));
    rig.verify(report, ShutdownReport::default());
}

// ----- calling back into the manager from inside synchronize -----------------------------------

/// SPEC 6 says where `synchronize` runs ("on a worker thread, never on the caller's thread and
/// never on the scheduler thread"), so it may call the manager. Starting a sync of its own
/// items: without a flag the request queues behind the running session (waiting for it in
/// `synchronize` would deadlock; it is not complete there); with `IGNORE_IF_ALREADY_SYNCING`
/// it joins this session and takes its outcome (SPEC 5).
#[test]
fn synchronize_may_start_a_sync_of_its_own_items() {
    let mut rig = Rig::new();
    let (slot, ledger) = (rig.slot(), rig.ledger.clone());
    let (inside_tx, inside) = crossbeam_channel::unbounded();
    let sessions = AtomicUsize::new(0);
    rig.register(
        H,
        Scripted::new(&["a", "b"], move |items, session| {
            if sessions.fetch_add(1, SeqCst) == 0 {
                let manager = slot.manager();
                let queued = ledger.request(&manager, SyncRequest::handler(H).items(["a", "b"]))?;
                let joined = ledger.request(
                    &manager,
                    SyncRequest::handler(H)
                        .items(["a"])
                        .flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING),
                )?;
                let complete = queued.is_complete() || joined.is_complete();
                let _ = inside_tx.send((session.id(), queued, joined, complete));
            }
            for item in items {
                session.report_progress(item, ProgressStatus::Succeeded)?;
            }
            Ok(())
        }),
    );
    let first = rig.start(H, &["a"]);
    let (session, queued, joined, complete) = inside.recv_timeout(PATIENCE).unwrap();
    assert!(!complete, "neither was complete inside synchronize");
    assert_eq!(result(&first).status, Outcome::Succeeded);
    assert_eq!(
        result(&joined).items,
        outcomes(&[("a", Outcome::Succeeded)])
    );
    assert_eq!(
        result(&queued).items,
        outcomes(&[("a", Outcome::Succeeded), ("b", Outcome::Succeeded)])
    );

    let notes = rig.finish(ShutdownReport::default());
    assert_eq!(
        dispositions(&notes, joined.request()),
        [(id("a"), Disposition::Joined(session))]
    );
    assert_eq!(
        dispositions(&notes, queued.request()),
        [
            (id("a"), Disposition::Queued),
            (id("b"), Disposition::Queued)
        ]
    );
}

/// Starting a sync of another handler from inside `synchronize`: with a free session slot it
/// runs at once and the handler may wait for it; with `max_sessions(1)` it starts only after
/// this session ends (so waiting for it inside would deadlock until shutdown).
#[test]
fn synchronize_may_start_a_sync_of_another_handler() {
    for max_sessions in [8, 1] {
        let mut rig = Rig::build(
            SyncManager::builder()
                .max_sessions(max_sessions)
                .shutdown_grace(SHORT_GRACE),
        );
        let (slot, ledger) = (rig.slot(), rig.ledger.clone());
        let (inside_tx, inside) = crossbeam_channel::unbounded();
        rig.register(
            H,
            Scripted::new(&["a"], move |items, session| {
                let other = ledger.start(&slot.manager(), ECHO, &["e"]);
                let waited = (max_sessions > 1).then(|| other.wait_timeout(PATIENCE));
                let _ = inside_tx.send((session.id(), other.clone(), waited));
                session.report_progress(&items[0], ProgressStatus::Succeeded)?;
                Ok(())
            }),
        );
        let ticket = rig.start(H, &["a"]);
        assert_eq!(result(&ticket).status, Outcome::Succeeded);
        let (session, other, waited) = inside.recv_timeout(PATIENCE).unwrap();
        assert_eq!(result(&other).status, Outcome::Succeeded);
        if let Some(waited) = waited {
            assert_eq!(
                waited,
                Some(result(&other)),
                "waited for inside synchronize"
            );
        }

        let notes = rig.finish(ShutdownReport::default());
        let ended = position(
            &notes,
            "the end of the session",
            |n| matches!(n, Notification::SessionEnded { session: s, .. } if *s == session),
        );
        let other_started = position(
            &notes,
            "the other session",
            |n| matches!(n, Notification::SessionStarted { handler, .. } if handler.as_str() == ECHO),
        );
        assert_eq!(
            other_started > ended,
            max_sessions == 1,
            "with max_sessions({max_sessions}), the other session starts after this one ends: {}",
            other_started > ended
        );
    }
}

/// A handler that stops its own syncs from inside `synchronize` (SPEC 7, "Stopping"): its
/// pending request is canceled at once, and its own session is asked to cancel everything,
/// which it sees at once through `can_continue`.
#[test]
fn synchronize_may_stop_its_own_handler() {
    let mut rig = Rig::new();
    let slot = rig.slot();
    let (go_gate, go) = gate();
    let (stopped_tx, stopped) = crossbeam_channel::unbounded();
    rig.register(
        H,
        Scripted::new(&["a", "b"], move |items, session| {
            go_gate.pass();
            let _ = stopped_tx.send(slot.manager().stop_handler_sync(H));
            if !session.can_continue(None)? {
                for item in items {
                    session.report_progress(item, ProgressStatus::Canceled)?;
                }
            }
            Ok(())
        }),
    );
    let running = rig.start(H, &["a"]);
    go.reached();
    let pending = rig.start(H, &["b"]);
    go.open();
    assert_eq!(
        stopped.recv_timeout(PATIENCE).unwrap(),
        Ok(Stopped {
            canceled_pending: 1,
            cancel_requests: 1
        })
    );
    assert_eq!(
        result(&running).items,
        outcomes(&[("a", Outcome::Canceled)])
    );
    assert_eq!(
        result(&pending).items,
        outcomes(&[("b", Outcome::Canceled)])
    );
    rig.finish(ShutdownReport::default());
}

/// SPEC 7: with `WAIT` a state change "returns after the change has been applied (and the
/// handler's own `activate`/`enable` hook ran)"; "Disabling ... a handler, or an item, cancels
/// its pending requests (`Canceled`); sessions already running finish normally". From inside
/// `synchronize`: the hook runs on the same thread, the pending request is canceled, and the
/// session goes on to report its items.
#[test]
fn synchronize_may_disable_its_own_handler_and_items_with_wait() {
    let mut rig = Rig::new();
    let slot = rig.slot();
    let (go_gate, go) = gate();
    let (inside_tx, inside) = crossbeam_channel::unbounded();
    let (hooks_tx, hooks) = crossbeam_channel::unbounded();
    let first = AtomicBool::new(true);
    let handler = Scripted::new(&["a", "b", "c"], move |items, session| {
        if first.swap(false, SeqCst) {
            go_gate.pass();
            let manager = slot.manager();
            let answers = [
                manager.disable_item(H, "a", ControlFlags::WAIT),
                manager.disable_handler(H, ControlFlags::WAIT),
            ];
            let _ = inside_tx.send((thread::current().id(), answers));
        }
        for item in items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    })
    .with_hook(move |change| {
        let _ = hooks_tx.send((change.clone(), thread::current().id()));
        Ok(())
    });
    rig.register(H, handler);
    let running = rig.start(H, &["a", "b"]);
    go.reached();
    let pending = rig.start(H, &["c"]);
    go.open();

    let (worker, answers) = inside.recv_timeout(PATIENCE).unwrap();
    assert_eq!(answers, [Ok(()), Ok(())]);
    let hooked: Vec<(StateChange, ThreadId)> = hooks.try_iter().collect();
    assert_eq!(
        hooked,
        [
            (StateChange::DisableItem(id("a")), worker),
            (StateChange::Disable, worker)
        ]
    );
    assert_eq!(
        result(&running).items,
        outcomes(&[("a", Outcome::Succeeded), ("b", Outcome::Succeeded)]),
        "the running session finished normally"
    );
    assert_eq!(
        result(&pending).items,
        outcomes(&[("c", Outcome::Canceled)])
    );
    assert_eq!(
        rig.manager
            .start_handler_sync(H, SyncControlFlags::NONE, None)
            .map(drop),
        Err(Error::AccessDenied(Denied::HandlerDisabled))
    );
    rig.manager.enable_handler(H, ControlFlags::WAIT).unwrap();
    assert_eq!(
        result(&rig.start(H, &["b", "c"])).status,
        Outcome::Succeeded
    );
    rig.finish(ShutdownReport::default());
}

/// SPEC 7: without `WAIT` a state change returns "after it was queued"; the rustdoc of
/// `SyncManager` says it runs "on a worker". From inside `synchronize` with a single worker,
/// the only worker is the caller's: the change waits for the session to end. With a second
/// worker it is applied while the session still runs.
#[test]
fn synchronize_disabling_its_handler_without_wait_applies_when_a_worker_is_free() {
    for workers in [1, 2] {
        let mut rig = Rig::build(
            SyncManager::builder()
                .worker_threads(workers)
                .shutdown_grace(SHORT_GRACE),
        );
        let slot = rig.slot();
        let notes = rig.manager.subscribe();
        let (inside_tx, inside) = crossbeam_channel::unbounded();
        rig.register(
            H,
            Scripted::new(&["a"], move |items, session| {
                let answer = slot.manager().disable_handler(H, ControlFlags::NOWAIT);
                let applied_inside = (workers > 1).then(|| {
                    wait_for(&notes, |note| match note {
                        Notification::HandlerChanged {
                            change: HandlerChange::State(StateChange::Disable),
                            ..
                        } => Some(()),
                        _ => None,
                    })
                });
                let _ = inside_tx.send((session.id(), answer, applied_inside));
                session.report_progress(&items[0], ProgressStatus::Succeeded)?;
                Ok(())
            }),
        );
        rig.healthy();
        let ticket = rig.start(H, &["a"]);
        let (session, answer, applied_inside) = inside.recv_timeout(PATIENCE).unwrap();
        assert_eq!(answer, Ok(()));
        assert_eq!(applied_inside.is_some(), workers > 1);
        assert_eq!(result(&ticket).status, Outcome::Succeeded);

        let notes = rig.finish(ShutdownReport::default());
        let ended = position(
            &notes,
            "the end of the session",
            |n| matches!(n, Notification::SessionEnded { session: s, .. } if *s == session),
        );
        let disabled = position(&notes, "the disable", |n| {
            matches!(
                n,
                Notification::HandlerChanged {
                    change: HandlerChange::State(StateChange::Disable),
                    ..
                }
            )
        });
        assert_eq!(disabled > ended, workers == 1, "{workers} workers");
    }
}

/// rustdoc of `SyncManager::remove_handler`: "its pending requests complete as `Canceled`, its
/// running sessions finish normally, its event log goes." From inside `synchronize`: the
/// session goes on, its events count but are not kept, a new start for the ID is
/// `UnknownHandler`, and the ID can be registered again.
#[test]
fn synchronize_may_remove_its_own_handler() {
    let mut rig = Rig::new();
    let slot = rig.slot();
    let (go_gate, go) = gate();
    let (inside_tx, inside) = crossbeam_channel::unbounded();
    rig.register(
        H,
        Scripted::new(&["a", "b"], move |items, session| {
            go_gate.pass();
            let manager = slot.manager();
            let removed = manager.remove_handler(H, ControlFlags::WAIT);
            let event = session.report_event(EventReport::new(EventLevel::Error, "after removal"));
            let again = manager
                .start_handler_sync(H, SyncControlFlags::NONE, None)
                .map(drop);
            let _ = inside_tx.send((removed, event.is_ok(), again));
            for item in items {
                session.report_progress(item, ProgressStatus::Succeeded)?;
            }
            Ok(())
        }),
    );
    let running = rig.start(H, &["a"]);
    go.reached();
    let pending = rig.start(H, &["b"]);
    go.open();
    let (removed, event_accepted, again) = inside.recv_timeout(PATIENCE).unwrap();
    assert_eq!(removed, Ok(()));
    assert!(event_accepted);
    assert_eq!(
        again,
        Err(Error::UnknownHandler(HandlerId::new(H).unwrap()))
    );
    let got = result(&running);
    assert_eq!((got.status, got.errors), (Outcome::Succeeded, 1));
    assert_eq!(
        result(&pending).items,
        outcomes(&[("b", Outcome::Canceled)])
    );

    rig.register(H, Echo(Arc::default()));
    assert_eq!(rig.manager.events(H), Ok(Vec::new()), "the old log went");
    let ticket = rig
        .ledger
        .request(&rig.manager, SyncRequest::handler(H))
        .unwrap();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
    rig.finish(ShutdownReport::default());
}

/// What `shutdown()` called from inside `synchronize` does (the SPEC is silent): it cancels
/// what is pending and asks running sessions to cancel, including the caller's own, which
/// cannot end while it waits in `shutdown`; so after the grace period that session is
/// abandoned (its items `Canceled`) and, after a second one, its own worker thread, still in
/// user code, is detached: `ShutdownReport { abandoned_sessions: 1, detached_threads: 1 }`.
/// Nothing deadlocks; the handler's later session calls get `UnknownSession`, and the worker
/// ends when `synchronize` returns.
#[test]
fn shutdown_from_inside_synchronize_abandons_that_session_and_detaches_its_worker() {
    let mut rig = Rig::build(SyncManager::builder().shutdown_grace(SHORT_GRACE));
    let slot = rig.slot();
    let (go_gate, go) = gate();
    let (inside_tx, inside) = crossbeam_channel::unbounded();
    rig.register(
        H,
        Scripted::new(&["a", "b"], move |items, session| {
            let exit = watch_this_thread();
            go_gate.pass();
            let report = slot.manager().shutdown();
            let after = session.report_progress(&items[0], ProgressStatus::Succeeded);
            let _ = inside_tx.send((report, after, exit));
            Ok(())
        }),
    );
    rig.healthy();
    let running = rig.start(H, &["a"]);
    go.reached();
    let pending = rig.start(H, &["b"]);
    go.open();

    let (report, after, exit) = inside.recv_timeout(PATIENCE).unwrap();
    assert!(matches!(after, Err(Error::UnknownSession(_))), "{after:?}");
    assert!(
        thread_ended(&exit),
        "the worker ends once synchronize returns"
    );
    assert_eq!(
        result(&running).items,
        outcomes(&[("a", Outcome::Canceled)])
    );
    assert_eq!(
        result(&pending).items,
        outcomes(&[("b", Outcome::Canceled)])
    );
    assert_eq!(
        rig.manager.shutdown(),
        ShutdownReport {
            abandoned_sessions: 1,
            detached_threads: 1,
        },
        "a later call returns the same report"
    );
    assert_eq!(
        rig.manager
            .start_handler_sync(ECHO, SyncControlFlags::NONE, None)
            .map(drop),
        Err(Error::ShutDown)
    );
    rig.verify(
        report,
        ShutdownReport {
            abandoned_sessions: 1,
            detached_threads: 1,
        },
    );
}

// ----- result callbacks ------------------------------------------------------------------------

/// rustdoc of `SyncResult`: "A callback that blocks delays the callbacks of later results, not
/// their tickets." Shutdown waits for the blocked callback one grace period and then detaches
/// the delivery thread (`detached_threads: 1`); once the callback returns, the later callback
/// still runs, exactly once.
#[test]
fn a_blocked_callback_delays_later_callbacks_but_not_their_tickets() {
    let rig = Rig::build(SyncManager::builder().shutdown_grace(SHORT_GRACE));
    let (callback_gate, blocked) = gate();
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let first = rig.ledger.track(
        rig.manager
            .start_item_sync(
                ECHO,
                ["e"],
                SyncControlFlags::NONE,
                Some(Box::new(move |_: &RequestResult| {
                    let _ = exits_tx.send(watch_this_thread());
                    callback_gate.pass();
                })),
            )
            .unwrap(),
    );
    blocked.reached();
    let delivery_exit = exits.recv().unwrap();

    let later = rig.start(ECHO, &["e"]);
    assert_eq!(result(&first).status, Outcome::Succeeded);
    assert_eq!(
        result(&later).status,
        Outcome::Succeeded,
        "its ticket resolves"
    );
    assert_eq!(
        rig.calls.try_recv(),
        Err(TryRecvError::Empty),
        "its callback waits"
    );
    rig.healthy();

    let report = rig.manager.shutdown();
    blocked.open();
    assert!(thread_ended(&delivery_exit), "the delivery thread ends");
    // `verify` waits for the later callbacks, which run after shutdown returned.
    rig.verify(
        report,
        ShutdownReport {
            abandoned_sessions: 0,
            detached_threads: 1,
        },
    );
}

/// Tickets never depend on callbacks (rustdoc of `Scheduler`: "a ticket completes before its
/// callback runs"), so a callback may wait for the ticket of a request that completes later.
#[test]
fn a_callback_may_wait_for_a_ticket_that_completes_later() {
    let rig = Rig::new();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    rig.register(H, handler);
    let (later_tx, later_rx) = crossbeam_channel::bounded::<SyncTicket>(1);
    let (waited_tx, waited) = crossbeam_channel::bounded(1);
    let first = rig.ledger.track(
        rig.manager
            .start_item_sync(
                H,
                ["a"],
                SyncControlFlags::NONE,
                Some(Box::new(move |_: &RequestResult| {
                    let later = later_rx.recv().unwrap();
                    let _ = waited_tx.send(later.wait_timeout(PATIENCE));
                })),
            )
            .unwrap(),
    );
    let run = next_session(&sessions);
    let later = rig.start(H, &["b"]);
    later_tx.send(later.clone()).unwrap();
    run.succeed_all();
    assert_eq!(result(&first).status, Outcome::Succeeded);
    // The first callback now waits for `later`, whose session runs meanwhile.
    next_session(&sessions).succeed_all();
    let got = waited.recv_timeout(PATIENCE).unwrap();
    assert_eq!(got, Some(result(&later)));
    rig.finish(ShutdownReport::default());
}

/// SPEC 7: callbacks run "never while an internal lock is held", so one may do anything a
/// caller may: withdraw another request, stop a handler, disable and enable it with `WAIT`.
#[test]
fn a_callback_may_cancel_stop_and_change_state() {
    let mut rig = Rig::new();
    let slot = rig.slot();
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    rig.register(H, handler);
    let running = rig.start(H, &["a"]);
    let run = next_session(&sessions);
    let pending = rig.start(H, &["b"]);
    let withdrawn = rig.start(H, &["c"]);
    let (answers_tx, answers) = crossbeam_channel::bounded(1);
    let target = withdrawn.clone();
    let trigger = rig.ledger.track(
        rig.manager
            .start_item_sync(
                ECHO,
                ["e"],
                SyncControlFlags::NONE,
                Some(Box::new(move |_: &RequestResult| {
                    let manager = slot.manager();
                    let _ = answers_tx.send((
                        target.cancel(),
                        manager.stop_handler_sync(H),
                        manager.disable_handler(H, ControlFlags::WAIT),
                        manager.enable_handler(H, ControlFlags::WAIT),
                    ));
                })),
            )
            .unwrap(),
    );
    assert_eq!(result(&trigger).status, Outcome::Succeeded);
    let (cancel, stop, disable, enable) = answers.recv_timeout(PATIENCE).unwrap();
    assert_eq!(cancel, Ok(Withdrawn::Withdrawn));
    assert_eq!(
        stop,
        Ok(Stopped {
            canceled_pending: 1,
            cancel_requests: 1
        })
    );
    assert_eq!((disable, enable), (Ok(()), Ok(())));
    assert_eq!(
        result(&withdrawn).items,
        outcomes(&[("c", Outcome::Canceled)])
    );
    assert_eq!(
        result(&pending).items,
        outcomes(&[("b", Outcome::Canceled)])
    );
    assert_eq!(run.session.can_continue(None), Ok(false));
    run.end(Finish::Return);
    assert_eq!(
        result(&running).items,
        outcomes(&[("a", Outcome::Canceled)])
    );
    rig.finish(ShutdownReport::default());
}

/// What `shutdown()` called from a result callback does (the SPEC is silent): the scheduler
/// shuts down, waits one grace period for the delivery thread (which is the caller, waiting
/// for it), then shutdown waits a second one and detaches that thread:
/// `ShutdownReport { abandoned_sessions: 0, detached_threads: 1 }`. Nothing deadlocks and
/// later calls fail with `ShutDown`.
#[test]
fn shutdown_from_a_callback_detaches_the_delivery_thread() {
    let mut rig = Rig::build(SyncManager::builder().shutdown_grace(SHORT_GRACE));
    let slot = rig.slot();
    let (report_tx, reports) = crossbeam_channel::bounded(1);
    rig.healthy();
    let ticket = rig.ledger.track(
        rig.manager
            .start_item_sync(
                ECHO,
                ["e"],
                SyncControlFlags::NONE,
                Some(Box::new(move |_: &RequestResult| {
                    let _ = report_tx.send((slot.manager().shutdown(), watch_this_thread()));
                })),
            )
            .unwrap(),
    );
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
    let (report, exit) = reports.recv_timeout(PATIENCE).unwrap();
    assert!(
        thread_ended(&exit),
        "the delivery thread ends after the callback"
    );
    assert_eq!(
        rig.manager
            .start_handler_sync(ECHO, SyncControlFlags::NONE, None)
            .map(drop),
        Err(Error::ShutDown)
    );
    rig.verify(
        report,
        ShutdownReport {
            abandoned_sessions: 0,
            detached_threads: 1,
        },
    );
}

/// rustdoc of `SyncManager`: "Dropping the last clone shuts it down as
/// [`SyncManager::shutdown`] does." A callback that holds the last clone drops it on the
/// delivery thread when it returns: the manager shuts down from there (as
/// `shutdown_from_a_callback_detaches_the_delivery_thread` describes) and every thread ends.
#[test]
fn dropping_the_last_manager_handle_in_a_callback_shuts_the_manager_down() {
    quiet();
    let manager = SyncManager::builder()
        .shutdown_grace(SHORT_GRACE)
        .build()
        .unwrap();
    let stream = manager.subscribe();
    manager
        .register_handler(ECHO, Echo(Arc::default()), ControlFlags::WAIT)
        .unwrap();
    let (callback_gate, callback) = gate();
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let last = manager.clone();
    let ticket = manager
        .start_item_sync(
            ECHO,
            ["e"],
            SyncControlFlags::NONE,
            Some(Box::new(move |_: &RequestResult| {
                let _ = exits_tx.send(watch_this_thread());
                callback_gate.pass();
                drop(last);
            })),
        )
        .unwrap();
    callback.reached();
    let delivery_exit = exits.recv().unwrap();
    drop(manager);
    callback.open();

    assert_eq!(result(&ticket).status, Outcome::Succeeded);
    let deadline = Instant::now() + PATIENCE;
    while stream.recv_deadline(deadline).is_ok() {}
    assert!(
        matches!(stream.try_recv(), Err(RecvError::Closed)),
        "the scheduler ended"
    );
    assert!(thread_ended(&delivery_exit), "the delivery thread ended");
    assert_eq!(ticket.cancel(), Ok(Withdrawn::AlreadyComplete));
}

/// A callback that calls back into the manager and then panics: the request it started is
/// served, and the panic is reported (`Notification::CallbackPanicked`).
#[test]
fn a_callback_that_starts_a_request_and_then_panics() {
    let mut rig = Rig::new();
    let (slot, ledger) = (rig.slot(), rig.ledger.clone());
    let (started_tx, started) = crossbeam_channel::bounded(1);
    let trigger = rig.ledger.track(
        rig.manager
            .start_item_sync(
                ECHO,
                ["e"],
                SyncControlFlags::NONE,
                Some(Box::new(move |_: &RequestResult| {
                    let _ = started_tx.send(ledger.start(&slot.manager(), ECHO, &["e"]));
                    panic!("{DELIBERATE} panic after starting a request");
                })),
            )
            .unwrap(),
    );
    let started = started.recv_timeout(PATIENCE).unwrap();
    assert_eq!(result(&started).status, Outcome::Succeeded);
    let notes = rig.finish(ShutdownReport::default());
    let reported: Vec<RequestId> = notes
        .iter()
        .filter_map(|n| match n {
            Notification::CallbackPanicked { request, message } => {
                assert!(message.contains("panic after starting a request"));
                Some(*request)
            }
            _ => None,
        })
        .collect();
    assert_eq!(reported, [trigger.request()]);
}

// ----- subscribers -----------------------------------------------------------------------------

/// rustdoc of `SyncManager::subscribe`: "a subscriber that does not keep up misses
/// notifications ... and never slows the manager down". With a capacity of 1 and a subscriber
/// that never reads while requests from two threads run sessions that report hundreds of
/// progress updates, nothing waits for it, not shutdown either; its receiver then holds its
/// one notification and ends.
#[test]
fn a_subscriber_that_stops_reading_holds_up_nothing() {
    let mut rig = Rig::build(
        SyncManager::builder()
            .notification_capacity(1)
            .shutdown_grace(PATIENCE),
    );
    rig.check_stream = false; // the rig's own subscriber cannot keep up at capacity 1 either
    let stalled = rig.manager.subscribe();
    rig.register(
        H,
        Scripted::new(&["a", "b"], |items, session| {
            for step in 0..200 {
                for item in items {
                    session.report_progress(
                        item,
                        Progress::new(ProgressStatus::Updating).steps(step, 200),
                    )?;
                }
            }
            for item in items {
                session.report_progress(item, ProgressStatus::Succeeded)?;
            }
            Ok(())
        }),
    );
    thread::scope(|scope| {
        for items in [&["a"][..], &["b"], &["a", "b"]] {
            let rig = &rig;
            scope.spawn(move || {
                for _ in 0..10 {
                    assert_eq!(result(&rig.start(H, items)).status, Outcome::Succeeded);
                }
            });
        }
    });
    rig.finish(ShutdownReport::default());
    assert_eq!(stalled.len(), 1);
    assert!(stalled.recv().is_ok());
    assert!(stalled.recv().is_err(), "the stream ended");
}

/// rustdoc of `SyncManager::subscribe`: "dropping the receiver unsubscribes". Subscribers
/// that come and go from another thread, some mid-stream with notifications still queued,
/// and one that a handler drops inside `synchronize`: the steady subscriber still sees every
/// request announced and completed exactly once, without lag.
#[test]
fn subscribers_dropped_while_notifications_flow_are_forgotten() {
    let mut rig = Rig::new();
    let slot = rig.slot();
    rig.register(
        H,
        Scripted::new(&["a"], move |items, session| {
            let mine = slot.manager().subscribe();
            session.report_progress(&items[0], ProgressStatus::Succeeded)?;
            // Its own subscription works from inside, then goes away mid-stream.
            wait_for(&mine, |n| {
                matches!(n, Notification::ItemProgress { .. }).then_some(())
            });
            drop(mine);
            Ok(())
        }),
    );
    thread::scope(|scope| {
        let churn = scope.spawn(|| {
            let mut kept = Vec::new();
            for k in 0..300 {
                let subscriber = rig.manager.subscribe();
                if k % 3 == 0 {
                    kept.push(subscriber); // dropped later, with notifications queued
                }
                if kept.len() > 5 {
                    kept.remove(0);
                }
            }
        });
        for _ in 0..40 {
            assert_eq!(result(&rig.start(H, &["a"])).status, Outcome::Succeeded);
            assert_eq!(result(&rig.start(ECHO, &["e"])).status, Outcome::Succeeded);
        }
        churn.join().unwrap();
    });
    rig.finish(ShutdownReport::default());
}

/// What `subscribe()` after shutdown gives (rustdoc silent): a stream that is already over,
/// so a reader never waits on it.
#[test]
fn subscribing_after_shutdown_gives_a_stream_that_is_already_over() {
    let rig = Rig::new();
    rig.healthy();
    let report = rig.manager.shutdown();
    let late = rig.manager.subscribe();
    assert!(matches!(
        late.recv_timeout(PATIENCE),
        Err(RecvError::Closed)
    ));
    rig.verify(report, ShutdownReport::default());
}

// ----- manager defects these tests found, now fixed ----------------------------------------------

/// A panic payload whose `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("{DELIBERATE} the panic payload's drop panicked");
    }
}

/// Sends on `dropped` (by going away) when the value is dropped, and says on which thread.
struct DropWatch(Sender<ThreadId>);

impl Drop for DropWatch {
    fn drop(&mut self) {
        let _ = self.0.send(thread::current().id());
    }
}

/// Whether the manager's scheduler has ended: it holds the sender of every subscription.
fn scheduler_ended(stream: &Notifications) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match stream.recv_deadline(deadline) {
            Ok(_) => continue,
            Err(RecvError::Closed) => return true,
            Err(_) => return false,
        }
    }
}

/// SPEC 6: a panic in `synchronize` "is caught, turned into an error event and `Failed`
/// outcomes; the manager keeps working". The worker catches the panic, but then drops its
/// payload outside `catch_unwind` (threads.rs, `worker`: the `Err(panic)` arm formats the
/// message, and the payload is dropped at the end of the arm, before `SessionFinished` is
/// sent). A payload whose `Drop` panics therefore unwinds the worker thread: the session never
/// ends (its request waits until shutdown abandons it) and the manager has one worker fewer
/// (with one worker, nothing ever runs again). The delivery thread (`delivery`, the
/// callback's payload) and `guard` (the hooks' payload, dropped inside `map_err`, so the
/// second panic reaches the caller of `register_handler` and friends) have the same hole.
/// std's `catch_unwind` docs warn about this; the fix is to drop payloads inside a second
/// `catch_unwind` (or `mem::forget` them after taking the message).
#[test]
fn a_panic_payload_that_panics_when_dropped_does_not_kill_the_worker() {
    let rig = Rig::build(
        SyncManager::builder()
            .worker_threads(1)
            .shutdown_grace(SHORT_GRACE),
    );
    rig.register(H, Scripted::new(&["a"], |_, _| std::panic::panic_any(Bomb)));
    let ticket = rig.start(H, &["a"]);
    let got = ticket.wait_timeout(PATIENCE);
    // Fails here: `None`, the session never ends.
    assert_eq!(
        got.map(|r| pairs(&r)),
        Some(outcomes(&[("a", Outcome::Failed)])),
        "the session ended Failed"
    );
    rig.finish(ShutdownReport::default());
}

/// The same hole in the delivery thread: a callback panicking with such a payload kills it,
/// and every later result callback is silently never run (the tickets still resolve).
#[test]
fn a_callback_panic_payload_that_panics_when_dropped_does_not_stop_later_callbacks() {
    let rig = Rig::new();
    let first = rig.ledger.track(
        rig.manager
            .start_item_sync(
                ECHO,
                ["e"],
                SyncControlFlags::NONE,
                Some(Box::new(|_: &RequestResult| std::panic::panic_any(Bomb))),
            )
            .unwrap(),
    );
    assert_eq!(result(&first).status, Outcome::Succeeded);
    let later = rig.start(ECHO, &["e"]);
    assert_eq!(result(&later).status, Outcome::Succeeded);
    // Fails in `verify`: "the callback of R.. ran".
    rig.finish(ShutdownReport::default());
}

/// ARCHITECTURE.md: "no user code runs on the scheduler thread, and none runs under a lock".
/// But the scheduler drops user values: a request's context (`Open::context`, dropped in
/// `Scheduler::deliver` when the request completes) and a removed handler object (dropped by
/// `Registry::remove`, under the registry's write lock). Their `Drop` is user code. When it
/// drops the last `SyncManager` clone, `Shared::drop` runs `shutdown` on the scheduler
/// thread, which sends `Command::Shutdown` to itself and waits for the answer forever: the
/// scheduler deadlocks, every open ticket hangs, no thread ever ends. Here: a request whose
/// context holds a manager handle, pending behind a running session; the caller drops its
/// own handle and withdraws the request through its ticket.
#[test]
fn a_context_holding_the_last_manager_handle_does_not_deadlock_the_scheduler() {
    quiet();
    let manager = SyncManager::builder()
        .shutdown_grace(SHORT_GRACE)
        .build()
        .unwrap();
    let stream = manager.subscribe();
    let (driven, sessions) = Driven::new(&["a", "b"]);
    manager
        .register_handler(H, driven, ControlFlags::WAIT)
        .unwrap();
    let running = manager
        .start_item_sync(H, ["a"], SyncControlFlags::NONE, None)
        .unwrap();
    let run = next_session(&sessions);
    let pending = manager
        .request(
            SyncRequest::handler(H)
                .items(["b"])
                .context(manager.clone()),
        )
        .unwrap();
    drop(manager); // the context now holds the last handle

    let (answer_tx, answer) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = answer_tx.send(pending.cancel());
    });
    // Fails here: the scheduler is stuck in `Shared::drop` and never answers.
    assert_eq!(
        answer.recv_timeout(PATIENCE),
        Ok(Ok(Withdrawn::Withdrawn)),
        "the cancel is answered"
    );
    run.end(Finish::Return);
    assert!(running.wait_timeout(PATIENCE).is_some());
    assert!(scheduler_ended(&stream), "the manager shut down");
}

/// The other half of the bug above: a handler that holds a manager handle (the pattern the
/// rustdoc of `SyncManager` anticipates: "A handler that keeps a clone keeps the manager
/// alive"), removed without `WAIT` by a caller that then lets go of its own handle. The
/// removal drops the handler on the scheduler thread, under the registry's write lock, and
/// with it the last `SyncManager`.
#[test]
fn removing_a_handler_that_holds_the_last_manager_handle_does_not_deadlock() {
    struct Holder {
        _manager: SyncManager,
        _dropped: DropWatch,
    }
    impl SyncHandler for Holder {
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    quiet();
    let manager = SyncManager::new().unwrap();
    let stream = manager.subscribe();
    let (dropped_tx, dropped) = crossbeam_channel::bounded(1);
    let holder = Holder {
        _manager: manager.clone(),
        _dropped: DropWatch(dropped_tx),
    };
    manager
        .register_handler(H, holder, ControlFlags::WAIT)
        .unwrap();
    manager.remove_handler(H, ControlFlags::NOWAIT).unwrap();
    drop(manager);
    // Fails here: the handler's drop never finishes (it is stuck in `Shared::drop`).
    assert!(
        dropped.recv_timeout(PATIENCE).is_ok(),
        "the handler was dropped"
    );
    assert!(scheduler_ended(&stream), "the manager shut down");
}

/// And a context whose `Drop` panics: the panic unwinds the scheduler thread, which takes
/// every open request with it (their tickets resolve with a made-up `Canceled` result
/// without items) and leaves a manager that refuses everything with `ShutDown`; the call
/// whose reply was due is told `ShutDown` too, although its request was accepted and its
/// callback runs.
#[test]
fn a_context_whose_drop_panics_does_not_kill_the_scheduler() {
    struct Grenade;
    impl Drop for Grenade {
        fn drop(&mut self) {
            panic!("{DELIBERATE} the context's drop panicked");
        }
    }
    let rig = Rig::new();
    let (handler, _) = Driven::new(&["a"]);
    handler.connected.store(false, SeqCst);
    rig.register(H, handler);
    // A disconnected handler's request completes inside the start call, on the scheduler.
    let answer = rig
        .ledger
        .request(&rig.manager, SyncRequest::handler(H).context(Grenade));
    // Fails here: the scheduler died before it answered, so the caller is told `ShutDown`
    // (while the request was accepted and its callback runs).
    let ticket = answer.expect("the start call is answered");
    assert_eq!(result(&ticket).status, Outcome::Disconnected);
    rig.finish(ShutdownReport::default());
}

/// A start call is applied on the caller's thread under the scheduler's lock. A refused one
/// must not drop the caller's context or result callback there: a `Drop` that panics would
/// break the scheduler, and one that calls the manager would wait for the lock it runs
/// under. Both are handed to the delivery thread, like every other user value.
#[test]
fn a_refused_start_does_not_drop_its_context_or_callback_under_the_lock() {
    struct Grenade;
    impl Drop for Grenade {
        fn drop(&mut self) {
            panic!("{DELIBERATE} the context's drop panicked");
        }
    }
    /// A callback whose drop calls into the manager, then says so.
    struct Caller(SyncManager, Sender<Result<(), Error>>);
    impl Drop for Caller {
        fn drop(&mut self) {
            let answer = self.0.enable_item(H, "a", ControlFlags::WAIT);
            let _ = self.1.send(answer);
        }
    }
    let rig = Rig::new();
    let (handler, _) = Driven::new(&["a"]);
    // Disconnected: an accepted request completes at once, so the check below needs no
    // session.
    handler.connected.store(false, SeqCst);
    rig.register(H, handler);
    let (called_tx, called) = crossbeam_channel::bounded(1);
    let caller = Caller(rig.manager.clone(), called_tx);
    let refused = rig.manager.request(
        SyncRequest::handler(H)
            .items(["not-an-item"])
            .context(Grenade)
            .on_result(move |_: &RequestResult| {
                let _keep = &caller;
            }),
    );
    assert!(
        matches!(refused, Err(Error::UnknownItem { .. })),
        "{refused:?}"
    );
    assert_eq!(
        called.recv_timeout(PATIENCE),
        Ok(Ok(())),
        "the callback was dropped off the lock, and its call into the manager went through"
    );
    // The scheduler is not broken: the manager still works.
    let ticket = rig
        .ledger
        .request(&rig.manager, SyncRequest::handler(H))
        .expect("accepted");
    assert_eq!(result(&ticket).status, Outcome::Disconnected);
    rig.finish(ShutdownReport::default());
}

/// The same for a registration the engine refuses (the ID is taken): the refused handler
/// object is not dropped under the scheduler's lock, so its `Drop` may call the manager.
#[test]
fn a_refused_registration_does_not_drop_the_handler_under_the_lock() {
    struct Calls(SyncManager, Sender<Result<(), Error>>);
    impl SyncHandler for Calls {
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    impl Drop for Calls {
        fn drop(&mut self) {
            let answer = self.0.enable_item(H, "a", ControlFlags::WAIT);
            let _ = self.1.send(answer);
        }
    }
    let rig = Rig::new();
    let (handler, _) = Driven::new(&["a"]);
    rig.register(H, handler);
    let (called_tx, called) = crossbeam_channel::bounded(1);
    let second = Calls(rig.manager.clone(), called_tx);
    let refused = rig.manager.register_handler(H, second, ControlFlags::WAIT);
    assert!(
        matches!(refused, Err(Error::HandlerExists(_))),
        "{refused:?}"
    );
    assert_eq!(called.recv_timeout(PATIENCE), Ok(Ok(())));
    rig.finish(ShutdownReport::default());
}

/// rustdoc of `SyncManager`: "A handler that keeps a clone keeps the manager alive: call
/// `shutdown` explicitly then." But `shutdown` does not let go of the handlers: the registry
/// (in `Shared::core`) keeps every handler object, the handler keeps the `SyncManager`, and
/// the `SyncManager` keeps `Shared`. After an explicit shutdown and with every outside handle
/// gone, that cycle is never freed: the manager's memory (registry, handlers, their captures)
/// leaks for the rest of the process. (The threads do end.) The fix is for `shutdown` to
/// empty the registry once the scheduler has ended, dropping the handlers on the calling
/// thread, outside the lock. The other tests in this file break the cycle themselves with a
/// `Slot` they empty.
#[test]
fn shutdown_lets_go_of_handlers_that_hold_a_manager_handle() {
    struct Holder {
        _manager: SyncManager,
        _dropped: DropWatch,
    }
    impl SyncHandler for Holder {
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    let manager = SyncManager::new().unwrap();
    let stream = manager.subscribe();
    let (dropped_tx, dropped) = crossbeam_channel::bounded(1);
    let holder = Holder {
        _manager: manager.clone(),
        _dropped: DropWatch(dropped_tx),
    };
    manager
        .register_handler(H, holder, ControlFlags::WAIT)
        .unwrap();
    assert_eq!(manager.shutdown(), ShutdownReport::default());
    assert!(scheduler_ended(&stream), "the threads end");
    drop(manager);
    // Fails here: the handler is never dropped.
    assert_eq!(
        dropped.recv_timeout(PATIENCE).map(|_| ()),
        Ok(()),
        "the handler (and the manager it holds) was freed"
    );
}

// ----- adversarial use: user values that panic in Display, source or Drop ----------------------
//
// The crate's panic policy: every place where user code runs, or a user value is formatted or
// dropped, contains a panic, and none of it happens while an internal lock is held. A request
// still gets exactly one result and the manager keeps working, whatever these values do.

/// An error whose `Display`, `Debug`, `source` and `Drop` each panic when asked to.
struct Hostile {
    display: bool,
    debug: bool,
    source: bool,
    drop: bool,
}

impl Hostile {
    fn all() -> Hostile {
        Hostile {
            display: true,
            debug: true,
            source: true,
            drop: true,
        }
    }

    fn only_display() -> Hostile {
        Hostile {
            display: true,
            debug: false,
            source: false,
            drop: false,
        }
    }

    fn only_drop() -> Hostile {
        Hostile {
            display: false,
            debug: false,
            source: false,
            drop: true,
        }
    }
}

impl std::fmt::Display for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.display {
            panic!("{DELIBERATE} Display");
        }
        f.write_str("hostile error")
    }
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.debug {
            panic!("{DELIBERATE} Debug");
        }
        f.write_str("Hostile")
    }
}

impl std::error::Error for Hostile {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        if self.source {
            panic!("{DELIBERATE} source");
        }
        None
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if self.drop && !thread::panicking() {
            panic!("{DELIBERATE} Drop");
        }
    }
}

/// A value whose `Drop` panics (a context, a handler's capture, a callback's capture).
struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("{DELIBERATE} Drop of a user value");
        }
    }
}

/// A handler error whose `Display` or `Drop` panics was formatted and dropped on the worker
/// outside any `catch_unwind`: the worker died, the session never ended, and with one worker
/// every later session failed with "no worker could run the session". Now the session ends
/// `Failed` with a text that says what happened, and the one worker serves the next session.
#[test]
fn a_handler_error_whose_display_or_drop_panics_fails_the_items_and_keeps_the_worker() {
    let rig = Rig::build(
        SyncManager::builder()
            .worker_threads(1)
            .shutdown_grace(SHORT_GRACE),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let count = calls.clone();
    rig.register(
        H,
        Scripted::new(&["a"], move |_, _| {
            let error = match count.fetch_add(1, SeqCst) {
                0 => Hostile::only_display(),
                1 => Hostile::only_drop(),
                _ => Hostile::all(),
            };
            Err(Box::new(error))
        }),
    );
    let sessions = rig.manager.subscribe();
    for _ in 0..3 {
        let ticket = rig.start(H, &["a"]);
        assert_eq!(
            ticket.wait_timeout(PATIENCE).map(|r| pairs(&r)),
            Some(outcomes(&[("a", Outcome::Failed)])),
            "the session ended Failed"
        );
    }
    let texts: Vec<Option<String>> = (0..3)
        .map(|_| {
            wait_for(&sessions, |note| match note {
                Notification::SessionEnded { handler, error, .. } if handler.as_str() == H => {
                    Some(error.as_ref().map(chain))
                }
                _ => None,
            })
        })
        .collect();
    assert!(
        texts[0]
            .as_deref()
            .is_some_and(|t| t.contains("Display panicked")),
        "{texts:?}"
    );
    assert_eq!(texts[1].as_deref(), Some("hostile error"));
    assert!(
        texts[2]
            .as_deref()
            .is_some_and(|t| t.contains("Display panicked"))
    );
    rig.finish(ShutdownReport::default());
}

/// The legacy path: an error from `prepare_for_sync` reaches the worker the same way.
#[test]
fn a_legacy_prepare_for_sync_error_that_panics_fails_the_items_and_keeps_the_worker() {
    use syncmgr::legacy::{
        InvokeFlags, Invoked, LegacyCallback, LegacyHandler, LegacyHandlerInfo, LegacyItem,
        SyncMgrFlag,
    };
    struct Refuses;
    impl LegacyHandler for Refuses {
        fn initialize(&self, _: SyncMgrFlag, _: &[u8]) -> bool {
            true
        }
        fn handler_info(&self) -> LegacyHandlerInfo {
            LegacyHandlerInfo::new("refuses")
        }
        fn enum_items(&self) -> Vec<LegacyItem> {
            vec![LegacyItem::new(uuid::Uuid::from_u128(7), "seven")]
        }
        fn prepare_for_sync(&self, _: &[uuid::Uuid]) -> Result<(), HandlerError> {
            Err(Box::new(Hostile::all()))
        }
        fn synchronize(&self, _: &[uuid::Uuid], _: &LegacyCallback) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    let rig = Rig::build(
        SyncManager::builder()
            .worker_threads(1)
            .shutdown_grace(SHORT_GRACE),
    );
    let clsid = uuid::Uuid::from_u128(1);
    rig.manager
        .register_legacy_handler(clsid, Refuses, ControlFlags::WAIT)
        .unwrap();
    for _ in 0..2 {
        let Ok(Invoked::Started(ticket)) =
            rig.manager
                .update_items(InvokeFlags::STARTSYNC, clsid, b"cookie")
        else {
            panic!("the invoke starts");
        };
        let ticket = rig.ledger.track(ticket);
        assert_eq!(
            ticket.wait_timeout(PATIENCE).map(|r| r.status),
            Some(Outcome::Failed)
        );
    }
    rig.finish(ShutdownReport::default());
}

/// A handler removed while its session runs is dropped by the worker that ends the session
/// (it holds the last reference). A `Drop` that panics there killed the worker; so did a
/// request context whose last reference the worker's session held.
#[test]
fn a_removed_handler_or_a_context_whose_drop_panics_does_not_kill_the_worker() {
    struct Doomed {
        _grenade: Grenade,
        gate: Gate,
    }
    impl SyncHandler for Doomed {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("a", "A").unwrap()]
        }
        fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
            self.gate.pass();
            for item in items {
                session.report_progress(item, ProgressStatus::Succeeded)?;
            }
            Ok(())
        }
    }
    let rig = Rig::build(
        SyncManager::builder()
            .worker_threads(1)
            .shutdown_grace(SHORT_GRACE),
    );
    let (gate, keeper) = gate();
    rig.register(
        H,
        Doomed {
            _grenade: Grenade,
            gate,
        },
    );
    let ticket = rig
        .ledger
        .request(&rig.manager, SyncRequest::handler(H).context(Grenade))
        .unwrap();
    keeper.reached();
    rig.manager.remove_handler(H, ControlFlags::WAIT).unwrap();
    keeper.open();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
    // One worker: it survived both drops if the next session runs.
    rig.finish(ShutdownReport::default());
}

/// A hook error whose `Display` panics: with `WAIT` the panic escaped into the caller (the
/// error was formatted outside the guard); without it the state change failed silently, with
/// no `StateChangeFailed` notification. Now both say `HandlerFailed`, and nothing changed.
#[test]
fn a_hook_error_whose_display_panics_is_a_handler_failure_with_and_without_wait() {
    let rig = Rig::new();
    rig.register(
        H,
        Scripted::new(&["a"], |_, _| Ok(())).with_hook(|_| Err(Box::new(Hostile::all()))),
    );
    let notes = rig.manager.subscribe();
    let waited = rig.manager.disable_handler(H, ControlFlags::WAIT);
    assert!(
        matches!(&waited, Err(e) if failed_with(e, "Display panicked")),
        "{waited:?}"
    );
    rig.manager
        .deactivate_handler(H, ControlFlags::NOWAIT)
        .unwrap();
    let (handler, error) = state_change_failed(&notes);
    assert_eq!(handler, HandlerId::new(H).unwrap());
    assert!(failed_with(&error, "Display panicked"), "{error:?}");
    // Nothing changed: the handler still syncs.
    let ticket = rig.start(H, &["a"]);
    assert_eq!(result(&ticket).items, outcomes(&[("a", Outcome::Failed)]));
    rig.finish(ShutdownReport::default());
}

/// While `shutdown` waits for a busy delivery thread, a start call arrives whose result
/// callback's `Drop` calls the manager. The refused callback was dropped under the scheduler
/// lock, and its call into the manager waited for that lock on the same thread: neither the
/// start call nor `shutdown` ever returned. Now the refused callback waits until the lock is
/// released, and its call is told `ShutDown`.
#[test]
fn a_callback_whose_drop_calls_the_manager_during_the_shutdown_drain_does_not_deadlock() {
    struct CallsBack(SyncManager, Sender<Result<Stopped, Error>>);
    impl Drop for CallsBack {
        fn drop(&mut self) {
            let _ = self.1.send(self.0.stop_sync_all());
        }
    }
    quiet();
    let manager = SyncManager::builder()
        .shutdown_grace(Duration::from_secs(30))
        .build()
        .unwrap();
    let notes = manager.subscribe();
    let (driven, sessions) = Driven::new(&["a"]);
    manager
        .register_handler(H, driven, ControlFlags::WAIT)
        .unwrap();
    // The delivery thread is busy in a callback until the test opens the gate.
    let (gate, busy) = gate();
    let first = manager
        .start_item_sync(
            H,
            ["a"],
            SyncControlFlags::NONE,
            Some(Box::new(move |_: &RequestResult| gate.pass())),
        )
        .unwrap();
    next_session(&sessions).succeed_all();
    busy.reached();
    // A session that runs while shutdown begins: its end is the scheduler's last step before
    // it waits for the delivery thread.
    let _second = manager
        .start_item_sync(H, ["a"], SyncControlFlags::NONE, None)
        .unwrap();
    let run = next_session(&sessions);
    let stopper = {
        let manager = manager.clone();
        thread::spawn(move || manager.shutdown())
    };
    let session = run.session.id();
    wait_for_cancel_all(&notes, session);
    run.end(Finish::Return);
    wait_for(&notes, |note| match note {
        Notification::SessionEnded { session: s, .. } if s == session => Some(()),
        _ => None,
    });
    // The scheduler is now draining the delivery thread. A start call from another thread:
    let (called_tx, called) = crossbeam_channel::bounded(1);
    let late = {
        let manager = manager.clone();
        let callback = CallsBack(manager.clone(), called_tx);
        thread::spawn(move || {
            manager
                .start_item_sync(
                    H,
                    ["a"],
                    SyncControlFlags::NONE,
                    Some(Box::new(move |_: &RequestResult| {
                        let _keep = &callback;
                    })),
                )
                .map(drop)
        })
    };
    let (late_tx, late_answer) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = late_tx.send(late.join());
    });
    assert!(
        matches!(
            late_answer.recv_timeout(PATIENCE),
            Ok(Ok(Err(Error::ShutDown)))
        ),
        "the start call during the drain returns"
    );
    busy.open();
    let report = stopper.join().unwrap();
    assert_eq!(report, ShutdownReport::default());
    assert_eq!(
        called.recv_timeout(PATIENCE),
        Ok(Err(Error::ShutDown)),
        "the callback's drop ran, off the lock, and its call was answered"
    );
    assert!(first.is_complete());
}

/// Two `shutdown()` calls at once: the second returned at once with an empty report while
/// results were still outstanding. Now it waits for the first and returns its report, so
/// both return only after every result is delivered.
#[test]
fn a_second_shutdown_during_the_first_waits_for_every_result() {
    quiet();
    let manager = SyncManager::builder()
        .shutdown_grace(SHORT_GRACE)
        .build()
        .unwrap();
    let notes = manager.subscribe();
    let (driven, sessions) = Driven::new(&["a"]);
    manager
        .register_handler(H, driven, ControlFlags::WAIT)
        .unwrap();
    let ticket = manager
        .start_item_sync(H, ["a"], SyncControlFlags::NONE, None)
        .unwrap();
    // Ignores the cancel: the first shutdown abandons it after the grace period.
    let run = next_session(&sessions);
    let first = {
        let manager = manager.clone();
        thread::spawn(move || manager.shutdown())
    };
    wait_for_cancel_all(&notes, run.session.id());
    let second = manager.shutdown();
    assert!(
        ticket.is_complete(),
        "the second call returned only after the result"
    );
    assert_eq!(second.abandoned_sessions, 1);
    assert_eq!(first.join().unwrap(), second, "both report the same");
    run.end(Finish::Return);
}

/// `shutdown_grace(Duration::MAX)` overflowed `Instant` and panicked on the scheduler
/// thread; tickets then stayed incomplete forever. Any grace the builder accepts works: one
/// too long for the clock means "wait as long as it takes".
#[test]
fn a_grace_too_long_for_the_clock_waits_as_long_as_it_takes() {
    quiet();
    let manager = SyncManager::builder()
        .shutdown_grace(Duration::MAX)
        .build()
        .unwrap();
    let notes = manager.subscribe();
    let (driven, sessions) = Driven::new(&["a", "b"]);
    manager
        .register_handler(H, driven, ControlFlags::WAIT)
        .unwrap();
    let running = manager
        .start_item_sync(H, ["a"], SyncControlFlags::NONE, None)
        .unwrap();
    let run = next_session(&sessions);
    let pending = manager
        .start_item_sync(H, ["b"], SyncControlFlags::NONE, None)
        .unwrap();
    let stopper = {
        let manager = manager.clone();
        thread::spawn(move || manager.shutdown())
    };
    wait_for_cancel_all(&notes, run.session.id());
    run.end(Finish::Return); // honours the cancel
    assert_eq!(stopper.join().unwrap(), ShutdownReport::default());
    assert_eq!(result(&running).status, Outcome::Canceled);
    assert_eq!(result(&pending).status, Outcome::Canceled);
}

/// `update_all` racing shutdown returned `Err(ShutDown)` after some of its requests were
/// accepted, and dropped their tickets. Now it returns exactly the tickets it made.
#[test]
fn update_all_racing_shutdown_returns_the_tickets_it_made() {
    /// A handler whose `is_connected` (asked on the caller's thread by a start call) waits
    /// at a gate.
    /// (Only once armed: registration asks too.)
    struct Slow(Gate, Arc<AtomicBool>);
    impl SyncHandler for Slow {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("s", "S").unwrap()]
        }
        fn is_connected(&self) -> bool {
            if self.1.load(SeqCst) {
                self.0.pass();
            }
            true
        }
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    quiet();
    let manager = SyncManager::builder()
        .shutdown_grace(Duration::from_secs(30))
        .build()
        .unwrap();
    let notes = manager.subscribe();
    let (driven, sessions) = Driven::new(&["a"]);
    // Handlers go in ID order: "a-first" is accepted, then "b-slow" waits in `is_connected`.
    manager
        .register_handler("a-first", driven, ControlFlags::WAIT)
        .unwrap();
    let (gate, slow) = gate();
    let armed = Arc::new(AtomicBool::new(false));
    manager
        .register_handler("b-slow", Slow(gate, armed.clone()), ControlFlags::WAIT)
        .unwrap();
    armed.store(true, SeqCst);
    let caller = {
        let manager = manager.clone();
        thread::spawn(move || manager.update_all())
    };
    let run = next_session(&sessions);
    slow.reached();
    let stopper = {
        let manager = manager.clone();
        thread::spawn(move || manager.shutdown())
    };
    wait_for_cancel_all(&notes, run.session.id());
    slow.open();
    let tickets = caller
        .join()
        .unwrap()
        .expect("the accepted request's ticket");
    assert_eq!(tickets.len(), 1, "exactly the request it made");
    run.end(Finish::Return);
    stopper.join().unwrap();
    assert_eq!(result(&tickets[0]).status, Outcome::Canceled);
    assert_eq!(manager.update_all().map(|t| t.len()), Err(Error::ShutDown));
}

/// A request that joins a running item (`IGNORE_IF_ALREADY_SYNCING`) shares that run, so it
/// shares its counts: the error event and conflict reported before it joined count for it
/// as they do for the leader.
#[test]
fn a_request_that_joins_a_running_item_gets_the_counts_of_the_whole_session() {
    let rig = Rig::new();
    let (driven, sessions) = Driven::new(&["k"]);
    rig.register(H, driven);
    let leader = rig.start(H, &["k"]);
    let run = next_session(&sessions);
    run.session
        .report_event(EventReport::new(EventLevel::Error, "broken").item(id("k")))
        .unwrap();
    rig.manager
        .update_conflicts(H, Some(id("k")), ControlFlags::WAIT)
        .unwrap();
    let joiner = rig
        .ledger
        .request(
            &rig.manager,
            SyncRequest::handler(H)
                .items(["k"])
                .flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING),
        )
        .unwrap();
    run.report(&["k"], ProgressStatus::Failed);
    run.end(Finish::Return);
    let (leader, joiner) = (result(&leader), result(&joiner));
    assert_eq!(
        (leader.status, leader.errors, leader.conflicts),
        (Outcome::Failed, 1, 1)
    );
    assert_eq!(
        (joiner.status, joiner.errors, joiner.conflicts),
        (Outcome::Failed, 1, 1)
    );
    rig.finish(ShutdownReport::default());
}

/// One walk over every place user code runs or a user value is formatted or dropped, each
/// with a hostile value: handler errors and hooks whose `Display`, `Debug`, `source` and
/// `Drop` panic; contexts, callbacks and handler objects whose `Drop` panics; callbacks that
/// panic with a payload whose `Drop` panics. Every request gets one result (the rig checks
/// tickets, callbacks and the stream), and the manager keeps serving throughout.
#[test]
fn every_user_code_boundary_contains_a_hostile_value() {
    struct Mine {
        _grenade: Grenade,
    }
    impl SyncHandler for Mine {
        fn items(&self) -> Vec<SyncItem> {
            vec![
                SyncItem::new("a", "A").unwrap(),
                SyncItem::new("b", "B").unwrap(),
            ]
        }
        fn on_state_change(&self, _: &StateChange, _: ControlFlags) -> Result<(), HandlerError> {
            Err(Box::new(Hostile::all()))
        }
        fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
            session.report_progress(&items[0], ProgressStatus::Succeeded)?;
            Err(Box::new(Hostile::all()))
        }
    }
    let rig = Rig::build(
        SyncManager::builder()
            .worker_threads(1)
            .shutdown_grace(SHORT_GRACE),
    );
    rig.register(H, Mine { _grenade: Grenade });
    // Hooks, with and without WAIT.
    for flags in [ControlFlags::WAIT, ControlFlags::NOWAIT] {
        let answers = [
            rig.manager.deactivate_handler(H, flags),
            rig.manager.disable_handler(H, flags),
            rig.manager.disable_item(H, "a", flags),
        ];
        for answer in answers {
            assert!(
                answer.is_ok() || matches!(&answer, Err(e) if failed_with(e, "panicked")),
                "{answer:?}"
            );
        }
    }
    // Sessions: an error, a context and a callback that all explode.
    for _ in 0..3 {
        let ticket = rig.ledger.track(
            rig.manager
                .request(
                    SyncRequest::handler(H)
                        .items(["a", "b"])
                        .context(Grenade)
                        .on_result({
                            let grenade = Grenade;
                            move |_: &RequestResult| {
                                let _keep = &grenade;
                                std::panic::panic_any(Bomb)
                            }
                        }),
                )
                .unwrap(),
        );
        let got = result(&ticket);
        assert_eq!(
            got.items,
            outcomes(&[("a", Outcome::Succeeded), ("b", Outcome::Failed)])
        );
        assert_eq!(got.errors, 1, "the error event of the failed synchronize");
        rig.healthy();
    }
    // A refused start whose context and callback explode.
    let refused = rig.manager.request(
        SyncRequest::handler(H)
            .items(["nope"])
            .context(Grenade)
            .on_result({
                let grenade = Grenade;
                move |_: &RequestResult| {
                    let _keep = &grenade;
                }
            }),
    );
    assert!(
        matches!(refused, Err(Error::UnknownItem { .. })),
        "{refused:?}"
    );
    // The handler object explodes when removed.
    rig.manager.remove_handler(H, ControlFlags::WAIT).unwrap();
    rig.finish(ShutdownReport::default());
}

/// A legacy handler whose `enum_items` grows after registration: `update_items(STARTSYNC)`
/// synced only the items the manager already knew, and left the new one out without a word.
/// Now the manager re-reads the handler first, so the new item is synced too.
#[test]
fn update_items_syncs_an_item_the_legacy_handler_listed_after_registration() {
    use syncmgr::legacy::{
        InvokeFlags, Invoked, LegacyCallback, LegacyHandler, LegacyHandlerInfo, LegacyItem,
        SyncMgrFlag,
    };
    struct Growing(Arc<Mutex<Vec<LegacyItem>>>);
    impl LegacyHandler for Growing {
        fn initialize(&self, _: SyncMgrFlag, _: &[u8]) -> bool {
            true
        }
        fn handler_info(&self) -> LegacyHandlerInfo {
            LegacyHandlerInfo::new("growing")
        }
        fn enum_items(&self) -> Vec<LegacyItem> {
            lock(&self.0).clone()
        }
        fn synchronize(
            &self,
            items: &[uuid::Uuid],
            cb: &LegacyCallback,
        ) -> Result<(), HandlerError> {
            for item in items {
                cb.progress(*item, syncmgr::legacy::SyncMgrStatus::Succeeded, "", 1, 1)?;
            }
            Ok(())
        }
    }
    let rig = Rig::new();
    let items = Arc::new(Mutex::new(vec![LegacyItem::new(
        uuid::Uuid::from_u128(1),
        "one",
    )]));
    let clsid = uuid::Uuid::from_u128(0xC);
    rig.manager
        .register_legacy_handler(clsid, Growing(items.clone()), ControlFlags::WAIT)
        .unwrap();
    lock(&items).push(LegacyItem::new(uuid::Uuid::from_u128(2), "two"));
    let Ok(Invoked::Started(ticket)) = rig.manager.update_items(InvokeFlags::STARTSYNC, clsid, b"")
    else {
        panic!("the invoke starts");
    };
    let got = result(&rig.ledger.track(ticket));
    let synced: Vec<ItemId> = got.items.iter().map(|o| o.item.clone()).collect();
    assert_eq!(
        synced,
        [
            ItemId::from_guid(uuid::Uuid::from_u128(1)),
            ItemId::from_guid(uuid::Uuid::from_u128(2))
        ]
    );
    assert_eq!(got.status, Outcome::Succeeded);
    rig.finish(ShutdownReport::default());
}
