//! SPEC section 7, through the public `SyncManager` API with real threads: one result per
//! request whatever happens, panics, shutdown and `Drop`, stopping, per-request cancel,
//! state changes with `ControlFlags`, updates, re-registration and notifications.
//!
//! Sessions are `Driven` (tests/common): the test thread holds each running session and says
//! when `synchronize` returns. Nothing sleeps; `PATIENCE` only bounds how long a test waits
//! for something that is already on its way, and a short `shutdown_grace` is the manager's
//! own timer.

use crate::common;

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use syncmgr::engine::{StateChange, Stopped, Withdrawn};
use syncmgr::*;

use common::*;

/// A manager whose shutdown waits as long as the tests' own failure guard: a session that
/// honours its cancel always ends long before, so nothing depends on timing.
fn patient_manager() -> SyncManager {
    SyncManager::builder()
        .shutdown_grace(PATIENCE)
        .build()
        .expect("the manager starts")
}

fn register(manager: &SyncManager, name: &str, handler: impl SyncHandler) {
    manager
        .register_handler(name, handler, ControlFlags::WAIT)
        .expect("the handler registers");
}

/// Starts a sync of these items of `H` with a result callback.
fn start_with(
    manager: &SyncManager,
    items: &[&str],
    sink: Option<Box<dyn SyncResult>>,
) -> SyncTicket {
    manager
        .start_item_sync(H, items.iter().copied(), SyncControlFlags::NONE, sink)
        .expect("the request is accepted")
}

/// The callback's results so far (all of them once the manager has shut down).
fn delivered(callback: &Receiver<RequestResult>) -> Vec<RequestResult> {
    callback.try_iter().collect()
}

/// Makes a state change through the manager call that stands for it.
fn change_state(
    manager: &SyncManager,
    change: &StateChange,
    flags: ControlFlags,
) -> Result<(), Error> {
    match change {
        StateChange::Activate => manager.activate_handler(H, flags),
        StateChange::Deactivate => manager.deactivate_handler(H, flags),
        StateChange::Enable => manager.enable_handler(H, flags),
        StateChange::Disable => manager.disable_handler(H, flags),
        StateChange::EnableItem(item) => manager.enable_item(H, item, flags),
        StateChange::DisableItem(item) => manager.disable_item(H, item, flags),
    }
}

/// Whether a start call that `change` affects is accepted now. The handlers of the
/// state-change tests are disconnected, so an accepted request completes at once
/// (`Disconnected`) and no session has to be driven.
fn probe(manager: &SyncManager, change: &StateChange) -> Result<Outcome, Error> {
    let ticket = match change {
        StateChange::EnableItem(item) | StateChange::DisableItem(item) => {
            manager.start_item_sync(H, [item], SyncControlFlags::NONE, None)
        }
        _ => manager.start_handler_sync(H, SyncControlFlags::NONE, None),
    }?;
    Ok(result(&ticket).status)
}

fn applied(note: &Notification, change: &StateChange) -> bool {
    matches!(
        note,
        Notification::HandlerChanged { change: HandlerChange::State(c), .. } if c == change
    )
}

/// A `Driven` handler whose hooks report to the returned receiver, disconnected (see `probe`).
fn hooked(items: &[&str]) -> (Driven, Receiver<(StateChange, ControlFlags)>) {
    let (mut handler, _sessions) = Driven::new(items);
    let (tx, hooks) = crossbeam_channel::unbounded();
    handler.hooks = Some(tx);
    handler.connected.store(false, Ordering::SeqCst);
    (handler, hooks)
}

fn denied(reason: Denied) -> Error {
    Error::AccessDenied(reason)
}

/// One request for "a" whose session is running, then `n` more queued behind it (merged into
/// one pending entry: the next session serves them all, and its end decides them in order).
fn queued_behind_a_session(
    manager: &SyncManager,
    sessions: &Receiver<Running>,
    n: usize,
) -> (SyncTicket, Running, Vec<SyncTicket>) {
    let first = start(manager, &["a"]);
    let running = next_session(sessions);
    let queued = (0..n).map(|_| start(manager, &["a"])).collect();
    (first, running, queued)
}

/// Every ticket's result is `Succeeded`.
fn all_succeeded<'t>(tickets: impl IntoIterator<Item = &'t SyncTicket>) {
    for ticket in tickets {
        assert_eq!(result(ticket).status, Outcome::Succeeded);
    }
}

// ----- exactly one result ---------------------------------------------------------------------

/// SPEC 7: "**Exactly one result per accepted request**, whatever happens" ... "It reaches the
/// caller through the `SyncResult` trait (implemented for closures too) and through the
/// returned ticket".
#[test]
fn every_accepted_request_gets_exactly_one_result_by_ticket_and_by_callback() {
    let manager = patient_manager();
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let connected = handler.connected.clone();
    register(&manager, H, handler);
    let (nothing, _) = Driven::new(&[]);
    register(&manager, "nothing", nothing);
    let notes = manager.subscribe();
    // Each request gets its own callback; `callbacks[n]` receives what the n-th one is called with.
    let mut callbacks = Vec::new();
    let mut callback = || {
        let (sink, results) = sink();
        callbacks.push(results);
        sink
    };

    let succeeded = start_with(&manager, &["a"], callback());
    let run = next_session(&sessions);
    let stopped = start_with(&manager, &["b"], callback());
    let withdrawn = start_with(&manager, &["c"], callback());
    assert!(manager.stop_item_sync(H, ["b"]).is_ok());
    assert_eq!(withdrawn.cancel(), Ok(Withdrawn::Withdrawn));
    run.succeed_all();

    let failed = start_with(&manager, &["b"], callback());
    next_session(&sessions).end(Finish::Return);

    connected.store(false, Ordering::SeqCst);
    let disconnected = start_with(&manager, &["a"], callback());
    connected.store(true, Ordering::SeqCst);
    let no_items = manager
        .start_handler_sync("nothing", SyncControlFlags::NONE, callback())
        .unwrap();

    let at_shutdown = start_with(&manager, &["c"], callback());
    let run = next_session(&sessions);
    let report = std::thread::scope(|scope| {
        let shutting_down = scope.spawn(|| manager.shutdown());
        wait_for_cancel_all(&notes, run.session.id());
        run.end(Finish::Return);
        shutting_down.join().expect("shutdown does not panic")
    });
    assert_eq!(report, ShutdownReport::default());

    // Shutdown joined the delivery thread: every callback that will ever run has run.
    let cases = [
        ("succeeded", succeeded, Outcome::Succeeded),
        ("stopped while pending", stopped, Outcome::Canceled),
        ("withdrawn", withdrawn, Outcome::Canceled),
        ("failed", failed, Outcome::Failed),
        ("disconnected", disconnected, Outcome::Disconnected),
        ("no items", no_items, Outcome::Succeeded),
        ("canceled by shutdown", at_shutdown, Outcome::Canceled),
    ];
    assert_eq!(callbacks.len(), cases.len());
    for ((name, ticket, status), callback) in cases.into_iter().zip(&callbacks) {
        let by_ticket = ticket
            .try_result()
            .expect("resolved by shutdown at the latest");
        assert_eq!(by_ticket.status, status, "{name}");
        assert_eq!(
            delivered(callback),
            [by_ticket],
            "{name}: one callback, same result"
        );
    }
}

/// SPEC 7: "Result callbacks run on a delivery thread, never while an internal lock is held; a
/// panicking callback does not disturb the manager." (`Notification::CallbackPanicked`.)
#[test]
fn a_panicking_result_callback_is_reported_and_later_callbacks_still_run() {
    let (manager, sessions) = setup(&["a"]);
    let notes = manager.subscribe();
    let panics = start_with(
        &manager,
        &["a"],
        Some(Box::new(|_: &RequestResult| panic!("the callback broke"))),
    );
    next_session(&sessions).succeed_all();
    assert_eq!(
        result(&panics).status,
        Outcome::Succeeded,
        "the ticket still resolves"
    );
    let (request, message) = wait_for(&notes, |note| match note {
        Notification::CallbackPanicked { request, message } => Some((request, message)),
        _ => None,
    });
    assert_eq!(request, panics.request());
    assert!(message.contains("the callback broke"), "{message}");

    let (sink, callback) = sink();
    let later = start_with(&manager, &["a"], sink);
    next_session(&sessions).succeed_all();
    let by_ticket = result(&later);
    let by_callback = callback
        .recv_timeout(PATIENCE)
        .expect("the later callback runs");
    assert_eq!(by_callback, by_ticket);
    assert_eq!(manager.check_consistency(), Ok(()));
}

/// SPEC 7: "Result callbacks run on a delivery thread, never while an internal lock is held":
/// a callback may call the manager again (here: start the next request) without deadlock.
#[test]
fn a_result_callback_may_call_back_into_the_manager() {
    let (manager, sessions) = setup(&["a"]);
    let (next_tx, next) = crossbeam_channel::bounded(1);
    let again = manager.clone();
    let first = start_with(
        &manager,
        &["a"],
        Some(Box::new(move |_: &RequestResult| {
            let _ = next_tx.send(again.start_item_sync(H, ["a"], SyncControlFlags::NONE, None));
        })),
    );
    next_session(&sessions).succeed_all();
    assert_eq!(result(&first).status, Outcome::Succeeded);

    let second = next
        .recv_timeout(PATIENCE)
        .expect("the callback ran and returned")
        .expect("accepted from inside the callback");
    next_session(&sessions).succeed_all();
    assert_eq!(result(&second).status, Outcome::Succeeded);
}

// ----- handlers that misbehave ----------------------------------------------------------------

/// SPEC 7: "Exactly one result per accepted request, whatever happens: ... handler panic".
/// SPEC 6: "the panic is caught, turned into an error event and `Failed` outcomes; the manager
/// keeps working".
#[test]
fn a_panicking_handler_fails_its_items_and_the_manager_keeps_working() {
    let (manager, sessions) = setup(&["a", "b"]);
    let notes = manager.subscribe();
    let ticket = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let session = run.session.id();
    run.report(&["a"], ProgressStatus::Succeeded);
    run.end(Finish::Panic("the handler broke".into()));

    let got = result(&ticket);
    assert_eq!(
        got.items,
        [(id("a"), Outcome::Succeeded), (id("b"), Outcome::Failed)]
    );
    assert_eq!((got.status, got.errors), (Outcome::Failed, 1));
    let events = manager.events(H).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].report.level, EventLevel::Error);
    assert!(events[0].report.description.contains("the handler broke"));
    let error = wait_for(&notes, |note| match note {
        Notification::SessionEnded {
            session: s, error, ..
        } if s == session => Some(error),
        _ => None,
    });
    assert!(error.is_some_and(|e| chain(&e).contains("the handler broke")));

    let again = start(&manager, &["a", "b"]);
    next_session(&sessions).succeed_all();
    assert_eq!(result(&again).status, Outcome::Succeeded);
    assert_eq!(manager.check_consistency(), Ok(()));
}

/// The error a handler returns, and the one it reports for an item, reach the result of each
/// failed item with their `source()` chains; a panic's message does too.
#[test]
fn each_failed_item_gets_its_handlers_error_with_its_source_chain() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("could not fetch")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let timeout = || std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");

    let (manager, sessions) = setup(&["a", "b", "c"]);
    let ticket = start(&manager, &["a", "b", "c"]);
    let run = next_session(&sessions);
    run.report(&["a"], ProgressStatus::Succeeded);
    run.session
        .report_failure(&id("b"), &Outer(timeout()))
        .expect("the report is accepted");
    run.end(Finish::Fail(Box::new(timeout())));
    let got = result(&ticket);
    let causes: Vec<Option<String>> = got
        .items
        .iter()
        .map(|o| o.cause.as_ref().map(chain))
        .collect();
    assert_eq!(
        causes,
        [
            None,
            Some("could not fetch: no answer".to_owned()),
            Some("no answer".to_owned())
        ]
    );
    let b = got.cause_of(&id("b")).expect("b failed with a cause");
    let source = std::error::Error::source(b).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("no answer"));
    assert_eq!(
        got.to_string(),
        format!(
            "{} {H}: failed (1 error; b failed: could not fetch: no answer; c failed: no answer)",
            got.request
        )
    );

    let ticket = start(&manager, &["a"]);
    next_session(&sessions).end(Finish::Panic("it broke".into()));
    let got = result(&ticket);
    let panic = got.cause_of(&id("a")).map(chain);
    assert_eq!(panic.as_deref(), Some("handler panicked: it broke"));
    assert_eq!(manager.check_consistency(), Ok(()));
}

/// SPEC 6: "A handler can never make a request wait forever by forgetting to report."
#[test]
fn a_handler_that_never_reports_gets_its_items_failed() {
    let (manager, sessions) = setup(&["a", "b"]);
    let ticket = start(&manager, &["a", "b"]);
    next_session(&sessions).end(Finish::Return);
    let got = result(&ticket);
    assert_eq!(
        got.items,
        [(id("a"), Outcome::Failed), (id("b"), Outcome::Failed)]
    );
    assert_eq!((got.status, got.errors), (Outcome::Failed, 0));
}

thread_local! {
    /// Dropped when the thread that set it ends: how a test sees a worker thread end.
    static ON_THREAD_EXIT: RefCell<Option<Sender<()>>> = const { RefCell::new(None) };
}

/// A `Driven` handler that also tells, by dropping a sender, when the worker thread that ran
/// its session has ended.
struct Watched {
    driven: Driven,
    exit: Mutex<Option<Sender<()>>>,
}

impl SyncHandler for Watched {
    fn items(&self) -> Vec<SyncItem> {
        self.driven.items()
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        if let Some(exit) = self.exit.lock().unwrap().take() {
            ON_THREAD_EXIT.with(|slot| *slot.borrow_mut() = Some(exit));
        }
        self.driven.synchronize(items, session)
    }
}

/// SPEC 7: "**Shutdown**: ... asks running sessions to cancel, waits for them up to a
/// configurable grace period, delivers every outstanding result, and joins its threads."
/// A handler that ignores the cancel is abandoned; its thread ends when the handler returns.
#[test]
fn shutdown_abandons_a_session_that_ignores_the_cancel_after_the_grace_period() {
    let manager = SyncManager::builder()
        .shutdown_grace(Duration::from_millis(50))
        .build()
        .unwrap();
    let (driven, sessions) = Driven::new(&["x"]);
    let (exit, thread_exit) = crossbeam_channel::bounded::<()>(0);
    let watched = Watched {
        driven,
        exit: Mutex::new(Some(exit)),
    };
    register(&manager, H, watched);
    let (sink, callback) = sink();
    let ticket = start_with(&manager, &["x"], sink);
    // The handler now blocks on a channel only this test can release.
    let run = next_session(&sessions);

    let report = manager.shutdown();
    assert_eq!(
        report,
        ShutdownReport {
            abandoned_sessions: 1,
            detached_threads: 1
        }
    );
    let got = ticket.try_result().expect("resolved when shutdown returns");
    assert_eq!(got.status, Outcome::Canceled);
    assert_eq!(got.items, [(id("x"), Outcome::Canceled)]);
    assert_eq!(callback.recv_timeout(PATIENCE), Ok(got));
    assert_eq!(
        thread_exit.try_recv(),
        Err(TryRecvError::Empty),
        "still in the handler"
    );

    run.end(Finish::Return);
    assert_eq!(
        thread_exit.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected),
        "the detached worker thread ends once the handler returns"
    );
}

/// SPEC 7: "**Shutdown**: dropping or shutting down the manager stops accepting requests,
/// cancels what is pending, asks running sessions to cancel, waits for them up to a
/// configurable grace period, delivers every outstanding result, and joins its threads. No
/// thread is leaked."
#[test]
fn shutdown_waits_for_sessions_that_honour_the_cancel() {
    let manager = patient_manager();
    let (one, sessions_one) = Driven::new(&["a"]);
    let (two, sessions_two) = Driven::new(&["x"]);
    register(&manager, "one", one);
    register(&manager, "two", two);
    let notes = manager.subscribe();
    let (sink_one, callback_one) = sink();
    let (sink_two, callback_two) = sink();
    let ticket_one = manager
        .start_item_sync("one", ["a"], SyncControlFlags::NONE, sink_one)
        .unwrap();
    let ticket_two = manager
        .start_item_sync("two", ["x"], SyncControlFlags::NONE, sink_two)
        .unwrap();
    let runs = [
        (next_session(&sessions_one), "a"),
        (next_session(&sessions_two), "x"),
    ];

    let report = std::thread::scope(|scope| {
        let shutting_down = scope.spawn(|| manager.shutdown());
        for (run, item) in runs {
            wait_for_cancel_all(&notes, run.session.id());
            assert_eq!(run.session.can_continue(None), Ok(false));
            assert_eq!(
                run.session
                    .report_progress(&id(item), ProgressStatus::Updating),
                Ok(CancelRequest::CancelAll)
            );
            run.report(&[item], ProgressStatus::Canceled);
            run.end(Finish::Return);
        }
        shutting_down.join().expect("shutdown does not panic")
    });

    assert_eq!(
        report,
        ShutdownReport {
            abandoned_sessions: 0,
            detached_threads: 0
        }
    );
    for (ticket, callback, item) in [
        (ticket_one, callback_one, "a"),
        (ticket_two, callback_two, "x"),
    ] {
        let got = ticket.try_result().expect("resolved when shutdown returns");
        assert_eq!(got.items, [(id(item), Outcome::Canceled)]);
        assert_eq!(delivered(&callback), [got]);
    }
}

/// SPEC 7: "dropping or shutting down the manager stops accepting requests, cancels what is
/// pending, ... delivers every outstanding result". DECISIONS 15: "shutdown: every pending
/// entry canceled".
#[test]
fn shutdown_cancels_pending_requests_and_delivers_their_results() {
    let manager = patient_manager();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    register(&manager, H, handler);
    let notes = manager.subscribe();
    let running = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let (sink, callback) = sink();
    let pending = start_with(&manager, &["b"], sink);

    let report = std::thread::scope(|scope| {
        let shutting_down = scope.spawn(|| manager.shutdown());
        wait_for_cancel_all(&notes, run.session.id());
        run.end(Finish::Return);
        shutting_down.join().expect("shutdown does not panic")
    });

    assert_eq!(report, ShutdownReport::default());
    assert_eq!(result(&running).status, Outcome::Canceled);
    let got = pending
        .try_result()
        .expect("resolved when shutdown returns");
    assert_eq!(got.items, [(id("b"), Outcome::Canceled)]);
    assert_eq!(delivered(&callback), [got]);
}

/// rustdoc of `SyncManager::shutdown`: "every later call (and dropping the manager) returns
/// the same report."
#[test]
fn shutdown_twice_returns_the_same_report_and_does_nothing_more() {
    let manager = SyncManager::builder()
        .shutdown_grace(Duration::from_millis(50))
        .build()
        .unwrap();
    let (handler, sessions) = Driven::new(&["a"]);
    register(&manager, H, handler);
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions); // ignores the cancel until released below

    let first = manager.shutdown();
    assert_eq!(first.abandoned_sessions, 1);
    assert_eq!(manager.shutdown(), first);
    assert!(ticket.is_complete());
    run.end(Finish::Return);
    drop(manager); // does nothing more either
}

/// SPEC 7: "dropping or shutting down the manager ... delivers every outstanding result".
/// rustdoc of `SyncManager`: "Dropping the last clone shuts it down as
/// [`SyncManager::shutdown`] does."
#[test]
fn dropping_the_last_clone_shuts_down_and_resolves_every_ticket() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let (sink_done, callback_done) = sink();
    let (sink_running, callback_running) = sink();
    let (done, running, driver);
    {
        let manager = patient_manager();
        register(&manager, H, handler);
        let notes = manager.subscribe();
        done = start_with(&manager, &["a"], sink_done);
        next_session(&sessions).succeed_all();
        result(&done);
        running = start_with(&manager, &["b"], sink_running);
        let run = next_session(&sessions);

        // Dropping a clone is not dropping the manager.
        let clone = manager.clone();
        assert_eq!(clone.check_consistency(), Ok(()));
        drop(clone);
        assert_eq!(manager.check_consistency(), Ok(()));

        // The test thread is about to block in `drop`: another thread honours the cancel.
        driver = std::thread::spawn(move || {
            wait_for_cancel_all(&notes, run.session.id());
            run.report(&["b"], ProgressStatus::Canceled);
            run.end(Finish::Return);
        });
    } // the last clone goes here
    driver.join().expect("the driver does not panic");

    assert!(running.is_complete(), "resolved when the drop returned");
    assert_eq!(result(&running).items, [(id("b"), Outcome::Canceled)]);
    assert_eq!(delivered(&callback_done), [result(&done)]);
    assert_eq!(delivered(&callback_running), [result(&running)]);
    assert_eq!(running.cancel(), Ok(Withdrawn::AlreadyComplete));
}

/// SPEC 4: "manager shut down | error (`E_UNEXPECTED`)"; SPEC 7: shutdown "stops accepting
/// requests"; DECISIONS 15: "start and state-change calls -> ShutDown".
#[test]
fn start_and_state_calls_after_shutdown_fail_with_shut_down() {
    let (manager, _sessions) = setup(&["a"]);
    assert_eq!(manager.shutdown(), ShutdownReport::default());

    let (late, _) = Driven::new(&["a"]);
    let (later, _) = Driven::new(&["a"]);
    let none = SyncControlFlags::NONE;
    let calls: Vec<(&str, Result<(), Error>)> = vec![
        (
            "start_handler_sync",
            manager.start_handler_sync(H, none, None).map(drop),
        ),
        (
            "start_item_sync",
            manager.start_item_sync(H, ["a"], none, None).map(drop),
        ),
        ("start_sync_all", manager.start_sync_all(none).map(drop)),
        (
            "request",
            manager.request(SyncRequest::handler(H)).map(drop),
        ),
        (
            "register_handler WAIT",
            manager.register_handler("late", late, ControlFlags::WAIT),
        ),
        (
            "register_handler NOWAIT",
            manager.register_handler("later", later, ControlFlags::NOWAIT),
        ),
        (
            "activate_handler",
            manager.deactivate_handler(H, ControlFlags::WAIT),
        ),
        (
            "enable_handler WAIT",
            manager.disable_handler(H, ControlFlags::WAIT),
        ),
        (
            "enable_handler NOWAIT",
            manager.disable_handler(H, ControlFlags::NOWAIT),
        ),
        (
            "enable_item",
            manager.disable_item(H, "a", ControlFlags::WAIT),
        ),
        (
            "update_handler",
            manager.update_handler(H, ControlFlags::WAIT),
        ),
        (
            "update_item",
            manager.update_item(H, "a", ControlFlags::WAIT),
        ),
        (
            "update_events",
            manager.update_events(H, None, ControlFlags::WAIT),
        ),
        (
            "update_conflicts",
            manager.update_conflicts(H, None, ControlFlags::WAIT),
        ),
        (
            "remove_handler",
            manager.remove_handler(H, ControlFlags::WAIT),
        ),
    ];
    for (call, answer) in calls {
        let error = answer.expect_err(call);
        assert_eq!(error, Error::ShutDown, "{call}");
        assert_eq!(error.hresult(), hresult::E_UNEXPECTED, "{call}");
    }
}

// ----- stopping -------------------------------------------------------------------------------

/// SPEC 7: "**Stopping**: pending items named by the stop leave the pending set at once and
/// their waiting requests record `Canceled` for them; running items get a cancel request
/// (`CancelItem`, or `CancelAll` for the whole session)".
#[test]
fn stop_handler_sync_cancels_pending_items_at_once_and_sends_cancel_all_to_the_running_session() {
    let (manager, sessions) = setup(&["a", "b"]);
    let notes = manager.subscribe();
    let running = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let pending = start(&manager, &["b"]);

    assert_eq!(
        manager.stop_handler_sync(H),
        Ok(Stopped {
            canceled_pending: 1,
            cancel_requests: 1
        })
    );
    assert_eq!(result(&pending).items, [(id("b"), Outcome::Canceled)]);
    assert!(
        !running.is_complete(),
        "the running session decides when it ends"
    );
    wait_for_cancel_all(&notes, run.session.id());
    assert_eq!(run.session.can_continue(None), Ok(false));
    assert_eq!(
        run.session.report_progress(
            &id("a"),
            Progress::new(ProgressStatus::Updating).steps(1, 2)
        ),
        Ok(CancelRequest::CancelAll)
    );

    run.end(Finish::Return);
    assert_eq!(result(&running).items, [(id("a"), Outcome::Canceled)]);
}

/// SPEC 7: stopping named items: pending ones leave the pending set, running ones get
/// `CancelItem`; the other items go on.
#[test]
fn stop_item_sync_cancels_only_the_named_items() {
    let (manager, sessions) = setup(&["a", "b", "c", "d"]);
    let running = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let pending = start(&manager, &["c", "d"]);

    assert_eq!(
        manager.stop_item_sync(H, ["a", "c"]),
        Ok(Stopped {
            canceled_pending: 1,
            cancel_requests: 1
        })
    );
    let progress = |item: &str| {
        run.session.report_progress(
            &id(item),
            Progress::new(ProgressStatus::Updating).steps(1, 2),
        )
    };
    assert_eq!(progress("a"), Ok(CancelRequest::CancelItem));
    assert_eq!(progress("b"), Ok(CancelRequest::None));
    assert_eq!(run.session.can_continue(None), Ok(true));
    assert!(!pending.is_complete(), "d is still pending");

    run.report(&["a"], ProgressStatus::Canceled);
    run.report(&["b"], ProgressStatus::Succeeded);
    run.end(Finish::Return);
    assert_eq!(
        result(&running).items,
        [(id("a"), Outcome::Canceled), (id("b"), Outcome::Succeeded)]
    );
    let next = next_session(&sessions);
    assert_eq!(next.items, ids(&["d"]));
    next.succeed_all();
    assert_eq!(
        result(&pending).items,
        [(id("c"), Outcome::Canceled), (id("d"), Outcome::Succeeded)]
    );
}

/// SPEC 7: `stop_sync_all` stops every handler; DECISIONS 11: "stop_sync_all =
/// stop_handler_sync on every live handler without PREVENT_STOP_SYNC; never fails."
#[test]
fn stop_sync_all_stops_every_handler_that_allows_it() {
    let manager = manager();
    let (one, sessions_one) = Driven::new(&["a", "b"]);
    let (two, sessions_two) = Driven::new(&["x"]);
    let (guarded, sessions_guarded) = Driven::new(&["y"]);
    register(&manager, "one", one);
    register(&manager, "two", two);
    register(
        &manager,
        "guarded",
        guarded.with_policies(HandlerPolicies::PREVENT_STOP_SYNC),
    );
    let sync = |handler: &str, item: &str| {
        manager
            .start_item_sync(handler, [item], SyncControlFlags::NONE, None)
            .unwrap()
    };
    let one_running = sync("one", "a");
    let run_one = next_session(&sessions_one);
    let one_pending = sync("one", "b");
    let two_running = sync("two", "x");
    let run_two = next_session(&sessions_two);
    let guarded_running = sync("guarded", "y");
    let run_guarded = next_session(&sessions_guarded);

    assert_eq!(
        manager.stop_sync_all(),
        Ok(Stopped {
            canceled_pending: 1,
            cancel_requests: 2
        })
    );
    assert_eq!(result(&one_pending).status, Outcome::Canceled);
    assert_eq!(run_one.session.can_continue(None), Ok(false));
    assert_eq!(run_two.session.can_continue(None), Ok(false));
    assert_eq!(run_guarded.session.can_continue(None), Ok(true));

    run_one.end(Finish::Return);
    run_two.end(Finish::Return);
    run_guarded.succeed_all();
    assert_eq!(result(&one_running).status, Outcome::Canceled);
    assert_eq!(result(&two_running).status, Outcome::Canceled);
    assert_eq!(result(&guarded_running).status, Outcome::Succeeded);
}

/// SPEC 7: "A handler with `PREVENT_STOP_SYNC` ... makes the stop call fail with
/// `E_ACCESSDENIED` and change nothing."
#[test]
fn handler_prevent_stop_sync_refuses_the_stop_and_changes_nothing() {
    let manager = manager();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    register(
        &manager,
        H,
        handler.with_policies(HandlerPolicies::PREVENT_STOP_SYNC),
    );
    let running = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let pending = start(&manager, &["b"]);

    let refusal = denied(Denied::HandlerPolicy(HandlerPolicies::PREVENT_STOP_SYNC));
    for stop in [
        manager.stop_handler_sync(H),
        manager.stop_item_sync(H, ["a", "b"]),
    ] {
        let error = stop.unwrap_err();
        assert_eq!(error, refusal);
        assert_eq!(error.hresult(), hresult::E_ACCESSDENIED);
    }
    assert_eq!(run.session.can_continue(Some(&id("a"))), Ok(true));
    assert!(!pending.is_complete());

    run.succeed_all();
    assert_eq!(result(&running).status, Outcome::Succeeded);
    next_session(&sessions).succeed_all();
    assert_eq!(result(&pending).status, Outcome::Succeeded);
}

/// SPEC 7: "... or an item with item policy `PREVENT_STOP_SYNC`, makes the stop call fail
/// with `E_ACCESSDENIED` and change nothing."
#[test]
fn item_prevent_stop_sync_refuses_a_stop_that_names_it_and_changes_nothing() {
    let manager = manager();
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let guarded = SyncItem::new("a", "A")
        .unwrap()
        .with_policies(ItemPolicies::PREVENT_STOP_SYNC);
    register(&manager, H, handler.with_item(guarded));
    let running = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let pending = start(&manager, &["c"]);

    // All or nothing: b and c are not stopped either.
    let error = manager.stop_item_sync(H, ["c", "b", "a"]).unwrap_err();
    assert_eq!(
        error,
        denied(Denied::ItemPolicy {
            item: id("a"),
            policy: ItemPolicies::PREVENT_STOP_SYNC
        })
    );
    assert_eq!(error.hresult(), hresult::E_ACCESSDENIED);
    assert_eq!(run.session.can_continue(Some(&id("b"))), Ok(true));
    assert!(!pending.is_complete());

    run.succeed_all();
    assert_eq!(result(&running).status, Outcome::Succeeded);
    next_session(&sessions).succeed_all();
    assert_eq!(result(&pending).status, Outcome::Succeeded);
}

/// SPEC 7: "Stopping what is not running or pending succeeds and does nothing."
#[test]
fn stopping_what_is_neither_running_nor_pending_succeeds_and_does_nothing() {
    let (manager, _sessions) = setup(&["a"]);
    assert_eq!(manager.stop_handler_sync(H), Ok(Stopped::default()));
    assert_eq!(manager.stop_item_sync(H, ["a"]), Ok(Stopped::default()));
    assert_eq!(manager.stop_sync_all(), Ok(Stopped::default()));
}

// ----- per-request cancel ---------------------------------------------------------------------

/// SPEC 7: "**Per-request cancel** (a Rust addition): cancelling one ticket withdraws only that
/// request's interest. Items that other requests still wait for keep going; items that nobody
/// else wants leave the pending set ... The cancelled request gets `Canceled` for every item not
/// already finished." rustdoc of `SyncTicket::cancel`: "Cancelling a completed request does
/// nothing and says so."
#[test]
fn cancelling_a_ticket_withdraws_only_that_request_from_the_pending_set() {
    let (manager, sessions) = setup(&["a", "b"]);
    let first = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let withdrawn = start(&manager, &["a", "b"]); // a again, after the running session
    let other = start(&manager, &["b"]); // waits on b with `withdrawn`

    assert_eq!(withdrawn.cancel(), Ok(Withdrawn::Withdrawn));
    assert_eq!(
        result(&withdrawn).items,
        [(id("a"), Outcome::Canceled), (id("b"), Outcome::Canceled)]
    );
    assert!(!other.is_complete());

    run.succeed_all();
    assert_eq!(result(&first).status, Outcome::Succeeded);
    // Nobody else wanted a again: the next session holds only b, for `other`.
    let next = next_session(&sessions);
    assert_eq!(next.items, ids(&["b"]));
    next.succeed_all();
    assert_eq!(result(&other).status, Outcome::Succeeded);

    assert_eq!(withdrawn.cancel(), Ok(Withdrawn::AlreadyComplete));
    assert_eq!(other.cancel(), Ok(Withdrawn::AlreadyComplete));
    assert_eq!(result(&withdrawn).status, Outcome::Canceled, "unchanged");
}

/// SPEC 7: per-request cancel: a running item "that nobody else wants" gets "a cancel request
/// if running"; one another request shares keeps going.
#[test]
fn cancelling_a_ticket_cancels_a_running_item_only_when_nobody_else_waits_for_it() {
    let (manager, sessions) = setup(&["a", "b"]);
    let first = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let joined = manager
        .start_item_sync(H, ["b"], SyncControlFlags::IGNORE_IF_ALREADY_SYNCING, None)
        .unwrap();

    assert_eq!(first.cancel(), Ok(Withdrawn::Withdrawn));
    assert_eq!(result(&first).status, Outcome::Canceled);
    let progress = |item: &str| {
        run.session.report_progress(
            &id(item),
            Progress::new(ProgressStatus::Updating).steps(1, 2),
        )
    };
    assert_eq!(
        progress("a"),
        Ok(CancelRequest::CancelItem),
        "nobody else wants a"
    );
    assert_eq!(
        progress("b"),
        Ok(CancelRequest::None),
        "`joined` still wants b"
    );

    run.report(&["b"], ProgressStatus::Succeeded);
    run.end(Finish::Return);
    assert_eq!(result(&joined).items, [(id("b"), Outcome::Succeeded)]);
    assert_eq!(
        result(&first).items,
        [(id("a"), Outcome::Canceled), (id("b"), Outcome::Canceled)]
    );
}

/// rustdoc of `SyncTicket::cancel`: "Either way the ticket is complete when this returns
/// `Ok`", also when the request's session ends on a worker at that moment. (A version that
/// completed tickets after the worker released the scheduler's lock broke this.)
#[test]
fn a_ticket_is_complete_when_cancel_returns_even_as_its_session_ends() {
    let (manager, sessions) = setup(&["a"]);
    for _ in 0..300 {
        let ticket = start(&manager, &["a"]);
        let run = next_session(&sessions);
        run.report(&["a"], ProgressStatus::Succeeded);
        // The worker ends the session while this thread cancels.
        run.end(Finish::Return);
        let _withdrawn_or_already_complete = ticket.cancel().expect("the manager runs");
        let got = ticket
            .try_result()
            .expect("complete once cancel returned Ok");
        assert_eq!(got.request, ticket.request());
        // Reported `Succeeded` before the cancel: the item keeps it either way.
        assert_eq!(got.items, [(id("a"), Outcome::Succeeded)]);
    }
}

/// rustdoc of `SyncResult`: it runs "after the request's SyncTicket has completed"; and the
/// tickets a session's end decides complete in the step that decides them: a callback finds
/// every ticket decided before its own complete. (A review found a version that completed
/// plain tickets after the lock running a callback ahead of tickets decided before it.)
#[test]
fn a_callback_finds_every_ticket_decided_before_its_own_complete() {
    for _ in 0..10 {
        let (manager, sessions) = setup(&["a"]);
        let (first, running, before) = queued_behind_a_session(&manager, &sessions, 500);
        let (seen_tx, seen) = crossbeam_channel::bounded(1);
        let earliest = before[0].clone();
        let latest_before = before[499].clone();
        let sink: Box<dyn SyncResult> = Box::new(move |_: &RequestResult| {
            let _ = seen_tx.send((earliest.is_complete(), latest_before.is_complete()));
        });
        let with_callback = manager
            .start_item_sync(H, ["a"], SyncControlFlags::NONE, Some(sink))
            .unwrap();
        let after: Vec<SyncTicket> = (0..500).map(|_| start(&manager, &["a"])).collect();
        running.succeed_all();
        next_session(&sessions).succeed_all();
        assert_eq!(
            seen.recv_timeout(PATIENCE),
            Ok((true, true)),
            "tickets decided before the callback's own were complete when it ran"
        );
        all_succeeded(before.iter().chain(&after).chain([&first, &with_callback]));
        manager.shutdown();
    }
}

/// rustdoc of `SyncRequest::context`: the context is released with the request's result; its
/// `Drop` runs on the delivery thread, and finds the request's ticket complete (a permit held
/// in the context is given back only once the request is done).
#[test]
fn a_context_is_dropped_only_once_its_ticket_is_complete() {
    struct Permit(Arc<std::sync::OnceLock<SyncTicket>>, Sender<bool>);
    impl Drop for Permit {
        fn drop(&mut self) {
            if let Some(ticket) = self.0.get() {
                let _ = self.1.send(ticket.is_complete());
            }
        }
    }
    for _ in 0..10 {
        let (manager, sessions) = setup(&["a"]);
        let (first, running, _) = queued_behind_a_session(&manager, &sessions, 0);
        let own = Arc::new(std::sync::OnceLock::new());
        let (dropped_tx, dropped) = crossbeam_channel::bounded(1);
        let ticket = manager
            .request(
                SyncRequest::handler(H)
                    .items(["a"])
                    .context(Permit(own.clone(), dropped_tx)),
            )
            .unwrap();
        own.set(ticket.clone()).unwrap();
        let rest: Vec<SyncTicket> = (0..1000).map(|_| start(&manager, &["a"])).collect();
        running.succeed_all();
        next_session(&sessions).succeed_all();
        assert_eq!(
            dropped.recv_timeout(PATIENCE),
            Ok(true),
            "the ticket was complete when its context was dropped"
        );
        all_succeeded(rest.iter().chain([&first, &ticket]));
        manager.shutdown();
    }
}

/// The same promise across steps and threads: a callback decided in a later step, on another
/// thread, finds complete the tickets an earlier step on a worker decided. (A review found
/// this broken by a version that completed plain tickets after the worker released the lock.)
#[test]
fn a_later_steps_callback_finds_the_tickets_an_earlier_step_decided_complete() {
    for _ in 0..10 {
        let manager = built(SyncManager::builder().notification_capacity(10_000));
        let (handler, sessions) = Driven::new(&["a"]);
        manager
            .register_handler(H, handler, ControlFlags::WAIT)
            .unwrap();
        let (nothing, _) = Driven::new(&[]);
        manager
            .register_handler("nothing", nothing, ControlFlags::WAIT)
            .unwrap();
        let (first, running, queued) = queued_behind_a_session(&manager, &sessions, 1000);
        running.succeed_all();
        let second = next_session(&sessions);
        let notes = manager.subscribe();
        // The worker's step decides the 1,000 tickets; `SessionEnded` is published in it.
        second.succeed_all();
        wait_for(&notes, |n| match n {
            Notification::SessionEnded { .. } => Some(()),
            _ => None,
        });
        // Decided in a later step, on this thread: nothing to sync, so its result is at once.
        let (seen_tx, seen) = crossbeam_channel::bounded(1);
        let last = queued[999].clone();
        let sink: Box<dyn SyncResult> = Box::new(move |_: &RequestResult| {
            let _ = seen_tx.send(last.is_complete());
        });
        let later = manager
            .start_handler_sync("nothing", SyncControlFlags::NONE, Some(sink))
            .unwrap();
        assert_eq!(seen.recv_timeout(PATIENCE), Ok(true));
        all_succeeded(queued.iter().chain([&first, &later]));
        manager.shutdown();
    }
}

/// Handler code is user code too: the session a session's end starts finds complete every
/// ticket that end decided, when its `synchronize` runs.
#[test]
fn the_next_sessions_synchronize_finds_the_tickets_its_start_step_decided_complete() {
    for _ in 0..10 {
        let (manager, sessions) = setup(&["a"]);
        let (first, running, queued) = queued_behind_a_session(&manager, &sessions, 1000);
        running.succeed_all();
        let second = next_session(&sessions);
        let later = start(&manager, &["a"]); // for a third session
        second.succeed_all();
        let third = next_session(&sessions); // its `synchronize` is running
        assert!(
            queued.iter().all(SyncTicket::is_complete),
            "every ticket the second session's end decided is complete"
        );
        third.succeed_all();
        all_succeeded(queued.iter().chain([&first, &later]));
        manager.shutdown();
    }
}

// ----- state changes --------------------------------------------------------------------------

/// SPEC 7: "with `WAIT` the call returns after the change has been applied (and the handler's
/// own `activate`/`enable` hook ran) ... `NOUI` is passed to the handler as 'do not show UI'."
#[test]
fn state_changes_with_wait_run_the_hook_and_apply_the_change_before_returning() {
    let manager = manager();
    let (handler, hooks) = hooked(&["a"]);
    register(&manager, H, handler);
    let notes = manager.subscribe();
    let wait_noui = ControlFlags::WAIT | ControlFlags::NOUI;
    let a = id("a");

    for (change, flags, now) in [
        (
            StateChange::Disable,
            ControlFlags::WAIT,
            Err(denied(Denied::HandlerDisabled)),
        ),
        (StateChange::Enable, wait_noui, Ok(Outcome::Disconnected)),
        (
            StateChange::Deactivate,
            wait_noui,
            Err(denied(Denied::HandlerInactive)),
        ),
        (
            StateChange::Activate,
            ControlFlags::WAIT,
            Ok(Outcome::Disconnected),
        ),
        (
            StateChange::DisableItem(a.clone()),
            wait_noui,
            Err(denied(Denied::ItemDisabled(a.clone()))),
        ),
        (
            StateChange::EnableItem(a.clone()),
            ControlFlags::WAIT,
            Ok(Outcome::Disconnected),
        ),
    ] {
        assert_eq!(change_state(&manager, &change, flags), Ok(()), "{change:?}");
        assert_eq!(
            hooks.try_recv(),
            Ok((change.clone(), flags)),
            "the hook ran, with the caller's flags, before the call returned"
        );
        assert!(
            notes.try_iter().any(|note| applied(&note, &change)),
            "{change:?} was applied before the call returned"
        );
        assert_eq!(probe(&manager, &change), now, "{change:?}");
    }
}

/// SPEC 7: "without [`WAIT`], [the call returns] after it was queued." The hook here blocks
/// until the test takes its call, so the call can only return if it did not wait for it.
#[test]
fn state_changes_without_wait_return_at_once_and_apply_later() {
    let manager = manager();
    let (mut handler, _) = hooked(&["a"]);
    let (tx, hooks) = crossbeam_channel::bounded(0);
    handler.hooks = Some(tx);
    register(&manager, H, handler);
    let notes = manager.subscribe();
    let a = id("a");
    let accepted = Ok(Outcome::Disconnected);

    for (change, before, after) in [
        (
            StateChange::Disable,
            accepted.clone(),
            Err(denied(Denied::HandlerDisabled)),
        ),
        (
            StateChange::Enable,
            Err(denied(Denied::HandlerDisabled)),
            accepted.clone(),
        ),
        (
            StateChange::Deactivate,
            accepted.clone(),
            Err(denied(Denied::HandlerInactive)),
        ),
        (
            StateChange::Activate,
            Err(denied(Denied::HandlerInactive)),
            accepted.clone(),
        ),
        (
            StateChange::DisableItem(a.clone()),
            accepted.clone(),
            Err(denied(Denied::ItemDisabled(a.clone()))),
        ),
        (
            StateChange::EnableItem(a.clone()),
            Err(denied(Denied::ItemDisabled(a.clone()))),
            accepted.clone(),
        ),
    ] {
        // On another thread, so that a call that wrongly waits fails the test instead of
        // hanging it.
        let (returned_tx, returned) = crossbeam_channel::bounded(1);
        let (clone, queued) = (manager.clone(), change.clone());
        std::thread::spawn(move || {
            let _ = returned_tx.send(change_state(&clone, &queued, ControlFlags::NOUI));
        });
        assert_eq!(
            returned.recv_timeout(PATIENCE),
            Ok(Ok(())),
            "{change:?} returns while its hook is still blocked"
        );
        assert_eq!(
            probe(&manager, &change),
            before,
            "{change:?} is not applied yet"
        );

        assert_eq!(
            hooks.recv_timeout(PATIENCE),
            Ok((change.clone(), ControlFlags::NOUI)),
            "the hook gets NOUI"
        );
        wait_for(&notes, |note| applied(&note, &change).then_some(()));
        assert_eq!(probe(&manager, &change), after, "{change:?} is applied");
    }
}

/// SPEC 7: "Policies `PREVENT_ACTIVATE`/`PREVENT_DEACTIVATE`/`PREVENT_ENABLE`/
/// `PREVENT_DISABLE` (and the item ones) make the call fail with `E_ACCESSDENIED`." The hook
/// is not called (rustdoc of `Engine::check_state_change`: "a refused change never reaches
/// the handler").
#[test]
fn prevent_policies_refuse_state_changes_and_the_hook_is_not_called() {
    let manager = manager();
    let (handler, hooks) = hooked(&["a"]);
    let locked = SyncItem::new("a", "A")
        .unwrap()
        .with_policies(ItemPolicies::PREVENT_ENABLE | ItemPolicies::PREVENT_DISABLE);
    let handler = handler
        .with_policies(
            HandlerPolicies::PREVENT_ACTIVATE
                | HandlerPolicies::PREVENT_DEACTIVATE
                | HandlerPolicies::PREVENT_ENABLE
                | HandlerPolicies::PREVENT_DISABLE,
        )
        .with_item(locked);
    register(&manager, H, handler);
    let notes = manager.subscribe();
    let item_policy = |policy| Denied::ItemPolicy {
        item: id("a"),
        policy,
    };

    // Refused even where nothing would change (DECISIONS 13): the handler is active and
    // enabled, the item enabled.
    for (change, reason) in [
        (
            StateChange::Activate,
            Denied::HandlerPolicy(HandlerPolicies::PREVENT_ACTIVATE),
        ),
        (
            StateChange::Deactivate,
            Denied::HandlerPolicy(HandlerPolicies::PREVENT_DEACTIVATE),
        ),
        (
            StateChange::Enable,
            Denied::HandlerPolicy(HandlerPolicies::PREVENT_ENABLE),
        ),
        (
            StateChange::Disable,
            Denied::HandlerPolicy(HandlerPolicies::PREVENT_DISABLE),
        ),
        (
            StateChange::EnableItem(id("a")),
            item_policy(ItemPolicies::PREVENT_ENABLE),
        ),
        (
            StateChange::DisableItem(id("a")),
            item_policy(ItemPolicies::PREVENT_DISABLE),
        ),
    ] {
        let error = change_state(&manager, &change, ControlFlags::WAIT).unwrap_err();
        assert_eq!(error, denied(reason.clone()), "{change:?}");
        assert_eq!(error.hresult(), hresult::E_ACCESSDENIED);
        assert_eq!(
            hooks.try_recv(),
            Err(TryRecvError::Empty),
            "{change:?}: no hook"
        );

        // Queued without WAIT, the refusal comes as a notification; still no hook.
        assert_eq!(
            change_state(&manager, &change, ControlFlags::NOWAIT),
            Ok(())
        );
        let error = wait_for(&notes, |note| match note {
            Notification::StateChangeFailed { error, .. } => Some(error),
            _ => None,
        });
        assert_eq!(error, denied(reason), "{change:?}");
        assert_eq!(
            hooks.try_recv(),
            Err(TryRecvError::Empty),
            "{change:?}: no hook"
        );
    }
    assert!(
        !notes
            .try_iter()
            .any(|note| matches!(note, Notification::HandlerChanged { .. })),
        "nothing was applied"
    );
}

/// SPEC 7: "A handler with a `QUERY_BEFORE_*` capability is asked first and may refuse."
#[test]
fn query_before_capabilities_let_the_handler_refuse_or_agree() {
    let manager = manager();
    let (handler, hooks) = hooked(&["a"]);
    let asked = SyncItem::new("a", "A").unwrap().with_capabilities(
        ItemCapabilities::QUERY_BEFORE_ENABLE | ItemCapabilities::QUERY_BEFORE_DISABLE,
    );
    let handler = handler
        .with_capabilities(
            HandlerCapabilities::QUERY_BEFORE_ACTIVATE
                | HandlerCapabilities::QUERY_BEFORE_DEACTIVATE
                | HandlerCapabilities::QUERY_BEFORE_ENABLE
                | HandlerCapabilities::QUERY_BEFORE_DISABLE,
        )
        .with_item(asked);
    let agree = handler.agree.clone();
    register(&manager, H, handler);
    let notes = manager.subscribe();

    for change in [
        StateChange::Disable,
        StateChange::Enable,
        StateChange::Deactivate,
        StateChange::Activate,
        StateChange::DisableItem(id("a")),
        StateChange::EnableItem(id("a")),
    ] {
        let before = probe(&manager, &change);
        agree.store(false, Ordering::SeqCst);
        let error = change_state(&manager, &change, ControlFlags::WAIT).unwrap_err();
        assert_eq!(error, denied(Denied::Refused), "{change:?}");
        assert_eq!(error.hresult(), hresult::E_ACCESSDENIED);
        assert_eq!(
            hooks.try_recv(),
            Err(TryRecvError::Empty),
            "{change:?}: no hook"
        );
        assert!(!notes.try_iter().any(|note| applied(&note, &change)));
        assert_eq!(
            probe(&manager, &change),
            before,
            "{change:?} was not applied"
        );

        agree.store(true, Ordering::SeqCst);
        assert_eq!(change_state(&manager, &change, ControlFlags::WAIT), Ok(()));
        assert_eq!(hooks.try_recv(), Ok((change.clone(), ControlFlags::WAIT)));
        assert!(notes.try_iter().any(|note| applied(&note, &change)));
    }

    // Without the capability the handler is not asked: its refusal would not count.
    let (plain, _) = hooked(&["a"]);
    let plain_agree = plain.agree.clone();
    plain_agree.store(false, Ordering::SeqCst);
    register(&manager, "plain", plain);
    assert_eq!(manager.disable_handler("plain", ControlFlags::WAIT), Ok(()));
}

/// Runs `a` (a session) and `b` (pending behind it), turns something off, and checks SPEC 7:
/// "Disabling or removing a handler, or an item, cancels its pending requests (`Canceled`);
/// sessions already running finish normally."
fn check_turning_off_cancels_pending_requests_only(turn_off: impl FnOnce(&SyncManager)) {
    let (manager, sessions) = setup(&["a", "b"]);
    let running = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let (sink, callback) = sink();
    let pending = start_with(&manager, &["b"], sink);

    turn_off(&manager);
    let got = result(&pending);
    assert_eq!(got.items, [(id("b"), Outcome::Canceled)]);
    assert_eq!(got.status, Outcome::Canceled);
    assert_eq!(callback.recv_timeout(PATIENCE), Ok(got));
    assert!(!running.is_complete());
    assert_eq!(run.session.can_continue(None), Ok(true));
    assert_eq!(run.session.can_continue(Some(&id("a"))), Ok(true));

    run.succeed_all();
    assert_eq!(result(&running).items, [(id("a"), Outcome::Succeeded)]);
}

/// SPEC 7: "Disabling ... a handler ... cancels its pending requests (`Canceled`); sessions
/// already running finish normally."
#[test]
fn disabling_a_handler_cancels_its_pending_requests_while_its_session_finishes() {
    check_turning_off_cancels_pending_requests_only(|manager| {
        assert_eq!(manager.disable_handler(H, ControlFlags::WAIT), Ok(()));
    });
}

/// DECISIONS 13: "set_handler_active(false) / set_handler_enabled(false) cancel all the
/// handler's pending entries".
#[test]
fn deactivating_a_handler_cancels_its_pending_requests_while_its_session_finishes() {
    check_turning_off_cancels_pending_requests_only(|manager| {
        assert_eq!(manager.deactivate_handler(H, ControlFlags::WAIT), Ok(()));
    });
}

/// SPEC 7: "... or removing a handler ... cancels its pending requests (`Canceled`); sessions
/// already running finish normally."
#[test]
fn removing_a_handler_cancels_its_pending_requests_while_its_session_finishes() {
    check_turning_off_cancels_pending_requests_only(|manager| {
        assert_eq!(manager.remove_handler(H, ControlFlags::WAIT), Ok(()));
        assert!(matches!(
            manager.start_handler_sync(H, SyncControlFlags::NONE, None),
            Err(Error::UnknownHandler(_))
        ));
    });
}

/// SPEC 7: "Disabling ... an item, cancels its pending requests (`Canceled`); sessions already
/// running finish normally." Disabling the running item does not touch its session.
#[test]
fn disabling_an_item_cancels_its_pending_requests_while_its_session_finishes() {
    check_turning_off_cancels_pending_requests_only(|manager| {
        assert_eq!(manager.disable_item(H, "b", ControlFlags::WAIT), Ok(()));
        assert_eq!(manager.disable_item(H, "a", ControlFlags::WAIT), Ok(()));
    });
}

/// A `Driven` handler whose item list the test changes after registration.
struct Changing {
    driven: Driven,
    items: Arc<Mutex<Vec<SyncItem>>>,
}

impl Changing {
    fn new(items: &[&str]) -> (Changing, Arc<Mutex<Vec<SyncItem>>>, Receiver<Running>) {
        let (driven, sessions) = Driven::new(items);
        let list = Arc::new(Mutex::new(driven.items.clone()));
        let handler = Changing {
            driven,
            items: list.clone(),
        };
        (handler, list, sessions)
    }
}

impl SyncHandler for Changing {
    fn items(&self) -> Vec<SyncItem> {
        self.items.lock().unwrap().clone()
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        self.driven.synchronize(items, session)
    }
}

/// SPEC 7: "`update_handler` re-reads capabilities, policies and items; pending items that no
/// longer exist are completed as `Canceled`." (Its rustdoc: "or are now disabled".)
#[test]
fn update_handler_rereads_items_and_cancels_pending_ones_that_went_away() {
    let manager = manager();
    let (handler, list, sessions) = Changing::new(&["a", "b", "c", "d"]);
    register(&manager, H, handler);
    let notes = manager.subscribe();
    let running = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let pending = start(&manager, &["b", "c", "d"]);

    // b goes away, d is now disabled, a (running) and c stay.
    *list.lock().unwrap() = vec![
        SyncItem::new("a", "A").unwrap(),
        SyncItem::new("c", "C").unwrap(),
        SyncItem::new("d", "D").unwrap().with_enabled(false),
    ];
    assert_eq!(manager.update_handler(H, ControlFlags::WAIT), Ok(()));
    wait_for(&notes, |note| match note {
        Notification::HandlerChanged {
            change: HandlerChange::Updated,
            ..
        } => Some(()),
        _ => None,
    });
    assert!(matches!(
        manager.start_item_sync(H, ["b"], SyncControlFlags::NONE, None),
        Err(Error::UnknownItem { .. })
    ));
    assert_eq!(
        run.session.can_continue(None),
        Ok(true),
        "a's session goes on"
    );

    run.succeed_all();
    assert_eq!(result(&running).status, Outcome::Succeeded);
    let next = next_session(&sessions);
    assert_eq!(next.items, ids(&["c"]));
    next.succeed_all();
    assert_eq!(
        result(&pending).items,
        [
            (id("b"), Outcome::Canceled),
            (id("c"), Outcome::Succeeded),
            (id("d"), Outcome::Canceled),
        ]
    );
}

/// SPEC 7: `update_item` re-reads one item (rustdoc: "added, changed, or removed if the handler
/// no longer lists it"); a pending item that went away is `Canceled`.
#[test]
fn update_item_adds_changes_and_removes_one_item() {
    let manager = manager();
    let (handler, list, sessions) = Changing::new(&["a", "b"]);
    register(&manager, H, handler);
    let notes = manager.subscribe();
    let running = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let pending = start(&manager, &["b"]);
    let item_updated = |notes: &Notifications| {
        wait_for(notes, |note| match note {
            Notification::HandlerChanged {
                change: HandlerChange::ItemUpdated(item, reason),
                ..
            } => Some((item, reason)),
            _ => None,
        })
    };

    // Removed: its pending request is canceled.
    list.lock().unwrap().retain(|item| item.id != id("b"));
    assert_eq!(manager.update_item(H, "b", ControlFlags::WAIT), Ok(()));
    assert_eq!(item_updated(&notes), (id("b"), UpdateReason::Removed));
    assert_eq!(result(&pending).items, [(id("b"), Outcome::Canceled)]);

    // Added.
    list.lock()
        .unwrap()
        .push(SyncItem::new("n", "New").unwrap());
    assert_eq!(manager.update_item(H, "n", ControlFlags::WAIT), Ok(()));
    assert_eq!(item_updated(&notes), (id("n"), UpdateReason::Added));
    let new_item = start(&manager, &["n"]);

    // Changed: the running item's new policy applies to new requests, not to its session.
    list.lock().unwrap()[0] = SyncItem::new("a", "A")
        .unwrap()
        .with_policies(ItemPolicies::PREVENT_START_SYNC);
    assert_eq!(manager.update_item(H, "a", ControlFlags::WAIT), Ok(()));
    assert_eq!(item_updated(&notes), (id("a"), UpdateReason::Changed));
    assert!(matches!(
        manager.start_item_sync(H, ["a"], SyncControlFlags::NONE, None),
        Err(Error::AccessDenied(Denied::ItemPolicy { .. }))
    ));

    run.succeed_all();
    assert_eq!(result(&running).status, Outcome::Succeeded);
    let next = next_session(&sessions);
    assert_eq!(next.items, ids(&["n"]));
    next.succeed_all();
    assert_eq!(result(&new_item).status, Outcome::Succeeded);
}

/// DECISIONS 16: "remove_handler: pending canceled, ID free at once (can re-register), running
/// sessions finish normally and their requests get results."
#[test]
fn a_removed_handler_id_can_be_registered_again_while_its_old_session_finishes() {
    let manager = manager();
    let (old, old_sessions) = Driven::new(&["a"]);
    register(&manager, H, old);
    let old_request = start(&manager, &["a"]);
    let old_run = next_session(&old_sessions);

    let (taken, _) = Driven::new(&["a"]);
    assert_eq!(
        manager.register_handler(H, taken, ControlFlags::WAIT),
        Err(Error::HandlerExists(HandlerId::new(H).unwrap()))
    );
    assert_eq!(manager.remove_handler(H, ControlFlags::WAIT), Ok(()));
    let (new, new_sessions) = Driven::new(&["a"]);
    assert_eq!(manager.register_handler(H, new, ControlFlags::WAIT), Ok(()));

    // The new handler runs its own sessions, even while the old one's is still running.
    let new_request = start(&manager, &["a"]);
    let new_run = next_session(&new_sessions);
    new_run.succeed_all();
    assert_eq!(result(&new_request).status, Outcome::Succeeded);
    old_run.succeed_all();
    assert_eq!(result(&old_request).status, Outcome::Succeeded);
    assert_eq!(manager.check_consistency(), Ok(()));
}

/// rustdoc of `SyncManager::remove_handler`: "its running sessions finish normally, its event
/// log goes." A handler registered again under the same ID starts with an empty log, and
/// events the removed handler's still-running session reports are not put in it.
#[test]
fn a_re_registered_handler_does_not_inherit_the_removed_handlers_events() {
    let manager = manager();
    let (old, old_sessions) = Driven::new(&["a"]);
    register(&manager, H, old);
    let old_request = start(&manager, &["a"]);
    let old_run = next_session(&old_sessions);
    let before = EventReport::new(EventLevel::Warning, "before the removal");
    old_run.session.report_event(before).unwrap();

    assert_eq!(manager.remove_handler(H, ControlFlags::WAIT), Ok(()));
    let (new, _new_sessions) = Driven::new(&["a"]);
    register(&manager, H, new);
    assert_eq!(manager.events(H), Ok(Vec::new()), "the old log went");

    let after = EventReport::new(EventLevel::Warning, "after the removal");
    assert!(old_run.session.report_event(after).is_ok());
    old_run.succeed_all();
    result(&old_request);
    let names: Vec<String> = manager
        .events(H)
        .unwrap()
        .into_iter()
        .map(|e| e.report.name)
        .collect();
    assert!(
        names.is_empty(),
        "the new handler's log holds the removed handler's events: {names:?}"
    );
}

// ----- notifications --------------------------------------------------------------------------

/// rustdoc of `SyncManager::subscribe`: "a subscriber that does not keep up misses
/// notifications (it gets [`Notification::Lagged`] with the count) and never slows the
/// manager down".
#[test]
fn a_subscriber_that_never_reads_never_blocks_the_manager_and_later_gets_lagged() {
    let manager = SyncManager::builder()
        .notification_capacity(1)
        .build()
        .unwrap();
    let (handler, sessions) = Driven::new(&["a"]);
    register(&manager, H, handler);
    let idle = manager.subscribe();

    // Each request makes several notifications (accepted, session started, progress, session
    // ended, completed); only the first fits.
    for _ in 0..3 {
        let ticket = start(&manager, &["a"]);
        next_session(&sessions).succeed_all();
        assert_eq!(result(&ticket).status, Outcome::Succeeded);
    }
    assert!(matches!(
        idle.try_recv(),
        Ok(Notification::RequestAccepted { .. })
    ));
    assert!(matches!(idle.try_recv(), Err(RecvError::Empty)));

    // With room again, the next notification tells it how many it missed.
    let ticket = start(&manager, &["a"]);
    next_session(&sessions).succeed_all();
    result(&ticket);
    match idle.try_recv() {
        Ok(Notification::Lagged { missed }) => assert!(missed >= 14, "missed {missed}"),
        other => panic!("expected Lagged, got {other:?}"),
    }
}

/// rustdoc of `SyncManager::subscribe`: "dropping the receiver unsubscribes." The manager
/// carries on and the other subscribers get everything.
#[test]
fn a_dropped_subscriber_is_forgotten() {
    let (manager, sessions) = setup(&["a"]);
    let dropped = manager.subscribe();
    let kept = manager.subscribe();
    drop(dropped);

    let ticket = start(&manager, &["a"]);
    next_session(&sessions).succeed_all();
    let got = result(&ticket);
    let completed = wait_for(&kept, |note| match note {
        Notification::RequestCompleted(result) => Some(result),
        _ => None,
    });
    assert_eq!(completed, got);
    assert_eq!(manager.check_consistency(), Ok(()));
}
