//! SPEC section 6, through the public `SyncManager` API with real threads: every method of
//! `SyncSession`, as a handler calls it while the manager runs it.
//!
//! Sessions are `Driven` (tests/common): the test thread holds each running session and says
//! when `synchronize` returns. Nothing sleeps; `PATIENCE` only bounds how long a test waits
//! for something that is already on its way.

use crate::common;

use crossbeam_channel::Receiver;
use syncmgr::engine::{Disposition, Stopped};
use syncmgr::*;

use common::*;

fn handler_id() -> HandlerId {
    HandlerId::new(H).expect("a valid handler ID")
}

/// The outcomes a `SessionEnded` notification gives for this session, and its error.
fn session_ended(
    notes: &Notifications,
    session: SessionId,
) -> (Vec<(ItemId, Outcome)>, Option<String>) {
    wait_for(notes, |note| match note {
        Notification::SessionEnded {
            session: s,
            outcomes,
            error,
            ..
        } if s == session => Some((outcomes, error.as_ref().map(chain))),
        _ => None,
    })
}

fn progress(run: &Running, item: &str, status: ProgressStatus) -> Result<CancelRequest, Error> {
    run.session
        .report_progress(&id(item), Progress::new(status).steps(1, 2))
}

fn event(level: EventLevel, item: Option<&str>) -> EventReport {
    let report = EventReport::new(level, format!("{level:?} about {item:?}"));
    match item {
        Some(item) => report.item(id(item)),
        None => report,
    }
}

// ----- where a session runs ------------------------------------------------------------------

/// SPEC 6: "`SyncHandler::synchronize(items, session, ...)` runs on a worker thread, never on
/// the caller's thread and never on the scheduler thread." While it blocks, the manager (whose
/// scheduler answers every call) keeps answering.
#[test]
fn synchronize_runs_on_a_worker_thread_and_the_manager_answers_while_it_blocks() {
    struct Blocking {
        entered: crossbeam_channel::Sender<std::thread::ThreadId>,
        release: Receiver<()>,
    }
    impl SyncHandler for Blocking {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("a", "A").unwrap()]
        }
        fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
            let _ = self.entered.send(std::thread::current().id());
            let _ = self.release.recv_timeout(PATIENCE);
            session.report_progress(&items[0], ProgressStatus::Succeeded)?;
            Ok(())
        }
    }
    let manager = manager();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded();
    let blocking = Blocking {
        entered: entered_tx,
        release,
    };
    manager
        .register_handler(H, blocking, ControlFlags::WAIT)
        .unwrap();

    let ticket = manager
        .start_handler_sync(H, SyncControlFlags::NONE, None)
        .unwrap();
    let worker = entered
        .recv_timeout(PATIENCE)
        .expect("synchronize was called");
    assert_ne!(
        worker,
        std::thread::current().id(),
        "not on the caller's thread"
    );
    // The scheduler is free: it answers while the handler blocks.
    assert_eq!(manager.check_consistency(), Ok(()));
    assert_eq!(manager.events(H), Ok(Vec::new()));
    assert!(!ticket.is_complete());

    release_tx.send(()).unwrap();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
}

/// Sessions get workers in the order they started: with one worker, a session of another
/// handler that waits for it while the first handler's session runs goes before the first
/// handler's next session, which that session's end starts. (A worker that ran its handler's
/// next session at once, tried once for speed, must keep this order.)
#[test]
fn a_session_waiting_for_a_worker_runs_before_the_next_session_of_the_one_that_ended() {
    let world = World::built(SyncManager::builder().worker_threads(1));
    let (first, first_sessions) = Driven::new(&["a"]);
    let (other, other_sessions) = Driven::new(&["x"]);
    world.register("first", first);
    world.register("other", other);

    let a1 = world.start("first", &["a"]);
    let running = next_session(&first_sessions);
    // The only worker is busy: this session waits in the queue.
    let x = world.start("other", &["x"]);
    // Queued in the engine behind the running session of its item.
    let a2 = world.start("first", &["a"]);
    running.succeed_all();

    let waited = next_session(&other_sessions);
    assert!(
        first_sessions.try_recv().is_err(),
        "the next session of the first handler jumped the queue"
    );
    waited.succeed_all();
    next_session(&first_sessions).succeed_all();
    for ticket in [&a1, &x, &a2] {
        assert_eq!(result(ticket).status, Outcome::Succeeded);
    }
}

// ----- report_progress ----------------------------------------------------------------------

/// SPEC 6: "`report_progress(item, text, status, step, max) -> Result<CancelRequest>`:
/// per-item progress." SPEC 7: "running items get a cancel request (`CancelItem`, or
/// `CancelAll` for the whole session) that the handler sees through
/// `report_progress`/`can_continue`."
#[test]
fn report_progress_returns_the_pending_cancel_request() {
    let (manager, sessions) = setup(&["a", "b"]);
    let ticket = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);

    assert_eq!(
        progress(&run, "a", ProgressStatus::Updating),
        Ok(CancelRequest::None)
    );
    assert_eq!(
        manager.stop_item_sync(H, ["a"]),
        Ok(Stopped {
            canceled_pending: 0,
            cancel_requests: 1
        })
    );
    assert_eq!(
        progress(&run, "a", ProgressStatus::Updating),
        Ok(CancelRequest::CancelItem)
    );
    assert_eq!(
        progress(&run, "b", ProgressStatus::Updating),
        Ok(CancelRequest::None)
    );
    assert_eq!(
        manager.stop_handler_sync(H),
        Ok(Stopped {
            canceled_pending: 0,
            cancel_requests: 1
        })
    );
    for item in ["a", "b"] {
        assert_eq!(
            progress(&run, item, ProgressStatus::Updating),
            Ok(CancelRequest::CancelAll)
        );
    }

    run.report(&["a", "b"], ProgressStatus::Canceled);
    run.end(Finish::Return);
    assert_eq!(result(&ticket).status, Outcome::Canceled);
}

/// SPEC 6: "Steps are ignored with `UpdatingIndeterminate`."
#[test]
fn report_progress_ignores_steps_with_updating_indeterminate() {
    let (manager, sessions) = setup(&["a"]);
    let notes = manager.subscribe();
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);

    // Steps that make no sense as a fraction are not judged: they are ignored.
    for (step, max) in [(7, 3), (0, 0), (u32::MAX, 1)] {
        assert_eq!(
            run.session.report_progress(
                &id("a"),
                Progress::new(ProgressStatus::UpdatingIndeterminate)
                    .text("working")
                    .steps(step, max)
            ),
            Ok(CancelRequest::None)
        );
    }
    let status = wait_for(&notes, |note| match note {
        Notification::ItemProgress { item, progress, .. } if item == id("a") => {
            Some(progress.status)
        }
        _ => None,
    });
    assert_eq!(status, ProgressStatus::UpdatingIndeterminate);

    // The item is still in progress: it can still succeed.
    run.succeed_all();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
}

/// SPEC 6: "Text over `MAX_SYNCMGR_PROGRESSTEXT` is an invalid-argument error." SPEC 2: the
/// limit is 260 counted with the terminating NUL, so at most 259 UTF-16 code units of text.
#[test]
fn progress_text_of_259_utf16_units_is_accepted_and_260_is_invalid_arg() {
    let (manager, sessions) = setup(&["a"]);
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let (a, session) = (id("a"), &run.session);

    // Counted in UTF-16 units: not bytes ("é" is 2 bytes, 1 unit), not chars ("😀" is 2 units).
    for fits in ["é".repeat(259), "😀".repeat(129) + "a"] {
        assert_eq!(fits.encode_utf16().count(), 259);
        assert_eq!(
            session.report_progress(
                &a,
                Progress::new(ProgressStatus::Updating)
                    .text(&fits)
                    .steps(1, 2)
            ),
            Ok(CancelRequest::None)
        );
        assert_eq!(
            session.set_handler_progress_text(&fits),
            Ok(CancelRequest::None)
        );
    }
    let too_long = Error::TextTooLong {
        kind: TextKind::Progress,
        units: 261,
        max: MAX_SYNCMGR_PROGRESSTEXT,
    };
    for long in ["é".repeat(260), "😀".repeat(130)] {
        let refused = session
            .report_progress(
                &a,
                Progress::new(ProgressStatus::Succeeded)
                    .text(&long)
                    .steps(1, 1),
            )
            .unwrap_err();
        assert_eq!(refused, too_long);
        assert_eq!(refused.hresult(), hresult::E_INVALIDARG);
        assert_eq!(
            session.set_handler_progress_text(&long),
            Err(too_long.clone())
        );
    }

    // The refused `Succeeded` changed nothing: the item ends without a terminal report.
    run.end(Finish::Return);
    assert_eq!(result(&ticket).items, [(a, Outcome::Failed)]);
}

/// SPEC 6: "An item not in the session is an invalid-argument error."
#[test]
fn report_progress_for_an_item_not_in_the_session_is_invalid_arg() {
    let (manager, sessions) = setup(&["a", "b"]);
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);

    // "b" is the handler's but not in this session; "zzz" is not the handler's at all.
    for item in ["b", "zzz"] {
        let refused = progress(&run, item, ProgressStatus::Succeeded).unwrap_err();
        assert_eq!(refused, Error::ItemNotInSession(id(item)));
        assert_eq!(refused.hresult(), hresult::E_INVALIDARG);
    }

    run.succeed_all();
    assert_eq!(result(&ticket).items, [(id("a"), Outcome::Succeeded)]);
}

/// SPEC 6: "**Terminal rule:** after an item reported `Succeeded`, `Failed`, `Canceled` or
/// `Disconnected`, only `Failed` is still accepted; any other status is an access-denied error
/// and marks the item `Failed`."
#[test]
fn terminal_rule_accepts_only_failed_after_a_terminal_report() {
    use ProgressStatus::*;
    let terminal = [Succeeded, Failed, Canceled, Disconnected];
    let then = [
        Updating,
        UpdatingIndeterminate,
        Succeeded,
        Failed,
        Canceled,
        Disconnected,
    ];
    let cases: Vec<(ProgressStatus, ProgressStatus, String)> = terminal
        .iter()
        .flat_map(|&first| {
            then.iter()
                .map(move |&second| (first, second, format!("{first:?}-then-{second:?}")))
        })
        .collect();
    let names: Vec<&str> = cases.iter().map(|(_, _, name)| name.as_str()).collect();
    let (manager, sessions) = setup(&names);
    let notes = manager.subscribe();
    let ticket = start(&manager, &names);
    let run = next_session(&sessions);

    for (first, second, name) in &cases {
        assert!(progress(&run, name, *first).is_ok(), "{name}: first report");
        let answer = progress(&run, name, *second);
        if *second == Failed {
            assert_eq!(answer, Ok(CancelRequest::None), "{name}");
        } else {
            let refused = answer.unwrap_err();
            assert_eq!(
                refused,
                Error::AccessDenied(Denied::TerminalState {
                    item: id(name),
                    reached: Outcome::from_status(*first).expect("a terminal status"),
                    reported: *second,
                }),
                "{name}"
            );
            assert_eq!(refused.hresult(), hresult::E_ACCESSDENIED, "{name}");
        }
    }

    let session = run.session.id();
    run.end(Finish::Return);
    let got = result(&ticket);
    assert_eq!(got.status, Outcome::Failed);
    for (name, outcome) in names.iter().zip(&got.items) {
        assert_eq!(*outcome, (id(name), Outcome::Failed), "{name} ends Failed");
    }
    let (outcomes, _) = session_ended(&notes, session);
    assert_eq!(outcomes, got.items);
}

// ----- set_handler_progress_text --------------------------------------------------------------

/// SPEC 6: "`set_handler_progress_text(text) -> Result<CancelRequest>`." The answer is the
/// session's cancel request: an item cancel is not one, a stop of the handler is `CancelAll`.
#[test]
fn set_handler_progress_text_is_published_and_returns_cancel_all_once_stopped() {
    let (manager, sessions) = setup(&["a", "b"]);
    let notes = manager.subscribe();
    let ticket = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let session = run.session.id();

    assert_eq!(
        run.session.set_handler_progress_text("2 of 7 folders"),
        Ok(CancelRequest::None)
    );
    let text = wait_for(&notes, |note| match note {
        Notification::HandlerProgress { session: s, text } if s == session => Some(text),
        _ => None,
    });
    assert_eq!(text, "2 of 7 folders");

    assert!(manager.stop_item_sync(H, ["a"]).is_ok());
    assert_eq!(
        run.session.set_handler_progress_text("still going"),
        Ok(CancelRequest::None)
    );
    assert!(manager.stop_handler_sync(H).is_ok());
    assert_eq!(
        run.session.set_handler_progress_text("stopping"),
        Ok(CancelRequest::CancelAll)
    );

    run.end(Finish::Return);
    assert_eq!(result(&ticket).status, Outcome::Canceled);
}

// ----- report_event ---------------------------------------------------------------------------

/// SPEC 6: "`report_event(item: Option<..>, level, name, description, link_text, link_ref,
/// context) -> Result<EventId>`: an event for the handler's event log; the id is a fresh
/// `Uuid`."
#[test]
fn report_event_returns_a_fresh_uuid_and_the_event_is_kept_until_removed() {
    let (manager, sessions) = setup(&["a"]);
    let notes = manager.subscribe();
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let slow = EventReport::new(EventLevel::Warning, "slow server")
        .item(id("a"))
        .description("the server took 30 s to answer")
        .link("details", "https://example.invalid/slow")
        .context("attempt 3");
    let checked = EventReport::new(EventLevel::Information, "checked");

    let first = run.session.report_event(slow.clone()).expect("kept");
    let second = run.session.report_event(checked).expect("kept");
    assert_ne!(first, second);
    assert_eq!(first.get_version_num(), 4, "a random (v4) Uuid");
    assert_eq!(second.get_version_num(), 4, "a random (v4) Uuid");
    let published = wait_for(&notes, |note| match note {
        Notification::EventReported(event) => Some(event.id),
        _ => None,
    });
    assert_eq!(published, first);

    let listed: Vec<_> = manager.events(H).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(listed, [first, second], "oldest first");
    let kept = manager.event(H, first).unwrap().expect("the event is kept");
    assert_eq!(kept.id, first);
    assert_eq!(kept.handler, handler_id());
    assert_eq!(kept.session, Some(run.session.id()));
    assert_eq!(kept.report, slow);

    assert_eq!(manager.remove_event(H, first), Ok(true));
    assert_eq!(manager.remove_event(H, first), Ok(false));
    assert_eq!(manager.event(H, first), Ok(None));
    let listed: Vec<_> = manager.events(H).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(listed, [second]);

    run.succeed_all();
    assert_eq!(result(&ticket).errors, 0, "no Error-level event");
}

/// SPEC 7: "`errors`: the number of `Error`-level events reported, during the sessions that
/// served the request, for its items or for the handler as a whole". Warning and Information
/// events count for nobody; neither does an event for an item of the handler that is not in
/// the session (DECISIONS 9).
#[test]
fn error_events_count_for_the_requests_of_their_item_or_handler_wide() {
    let (manager, sessions) = setup(&["a", "b", "x"]);
    let both = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    // A second request that takes b's outcome from the running session.
    let only_b = manager
        .start_item_sync(H, ["b"], SyncControlFlags::IGNORE_IF_ALREADY_SYNCING, None)
        .expect("joins the running session");

    for (level, item) in [
        (EventLevel::Error, Some("a")),       // both: 1, only_b: 0
        (EventLevel::Error, Some("b")),       // both: 2, only_b: 1
        (EventLevel::Error, None),            // both: 3, only_b: 2
        (EventLevel::Warning, Some("b")),     // not an error
        (EventLevel::Warning, None),          // not an error
        (EventLevel::Information, Some("a")), // not an error
        (EventLevel::Information, None),      // not an error
        (EventLevel::Error, Some("x")),       // not in this session: nobody's
    ] {
        assert!(run.session.report_event(event(level, item)).is_ok());
    }
    let refused = run
        .session
        .report_event(event(EventLevel::Error, Some("zzz")))
        .unwrap_err();
    assert_eq!(
        refused.hresult(),
        hresult::E_INVALIDARG,
        "not the handler's item"
    );

    run.succeed_all();
    assert_eq!(result(&both).errors, 3);
    assert_eq!(result(&only_b).errors, 2);
    assert_eq!(
        manager.events(H).unwrap().len(),
        8,
        "every accepted event is kept"
    );
}

/// `SyncManagerBuilder::event_log_capacity`: "Events kept per handler in the event log; the
/// oldest go first".
#[test]
fn the_event_log_keeps_the_newest_events_up_to_its_capacity() {
    let manager = SyncManager::builder()
        .event_log_capacity(3)
        .build()
        .expect("the manager starts");
    let (handler, sessions) = Driven::new(&["a"]);
    manager
        .register_handler(H, handler, ControlFlags::WAIT)
        .unwrap();
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);

    let ids: Vec<_> = (1..=5)
        .map(|n| {
            let report = EventReport::new(EventLevel::Information, format!("event {n}"));
            run.session.report_event(report).expect("kept")
        })
        .collect();
    let kept: Vec<String> = manager
        .events(H)
        .unwrap()
        .into_iter()
        .map(|e| e.report.name)
        .collect();
    assert_eq!(kept, ["event 3", "event 4", "event 5"]);
    assert_eq!(manager.event(H, ids[0]), Ok(None), "the oldest went first");
    assert_eq!(manager.remove_event(H, ids[1]), Ok(false));
    assert!(manager.event(H, ids[4]).unwrap().is_some());

    run.succeed_all();
    result(&ticket);
}

// ----- conflicts ------------------------------------------------------------------------------

/// SPEC 7: "`conflicts`: likewise for conflicts" — reported by the session
/// (`report_conflict`) or announced by the application (`manager.update_conflicts`) while the
/// session runs.
#[test]
fn conflicts_count_for_the_requests_concerned() {
    let (manager, sessions) = setup(&["a", "b", "x"]);
    let notes = manager.subscribe();
    let both = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let only_b = manager
        .start_item_sync(H, ["b"], SyncControlFlags::IGNORE_IF_ALREADY_SYNCING, None)
        .expect("joins the running session");

    assert_eq!(run.session.report_conflict(Some(&id("a"))), Ok(())); // both: 1
    assert_eq!(run.session.report_conflict(None), Ok(())); // both: 2, only_b: 1
    assert_eq!(run.session.report_conflict(Some(&id("x"))), Ok(())); // nobody's
    assert_eq!(
        manager.update_conflicts(H, Some(id("b")), ControlFlags::WAIT),
        Ok(())
    ); // both: 3, only_b: 2
    assert_eq!(
        manager.update_conflicts(H, None, ControlFlags::WAIT),
        Ok(())
    ); // both: 4, only_b: 3
    let change = wait_for(&notes, |note| match note {
        Notification::HandlerChanged { change, .. } => Some(change),
        _ => None,
    });
    assert_eq!(change, HandlerChange::ConflictsUpdated(Some(id("b"))));
    let refused = manager
        .update_conflicts(H, Some(id("zzz")), ControlFlags::WAIT)
        .unwrap_err();
    assert_eq!(refused.hresult(), hresult::E_INVALIDARG);

    run.succeed_all();
    let (both, only_b) = (result(&both), result(&only_b));
    assert_eq!((both.conflicts, only_b.conflicts), (4, 3));
    assert_eq!((both.errors, only_b.errors), (0, 0));
    assert_eq!(
        both.status,
        Outcome::Succeeded,
        "conflicts do not fail a request"
    );
}

// ----- can_continue ---------------------------------------------------------------------------

/// SPEC 6: "`can_continue(item: Option<..>) -> Result<bool>`: false once a cancel for that
/// item (or for the whole session, with `None`) was requested."
#[test]
fn can_continue_is_false_once_a_cancel_was_requested_for_the_item_or_the_session() {
    let (manager, sessions) = setup(&["a", "b", "c"]);
    let ticket = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let can = |item: Option<&str>| run.session.can_continue(item.map(id).as_ref());

    assert_eq!(
        [can(Some("a")), can(Some("b")), can(None)],
        [Ok(true), Ok(true), Ok(true)]
    );
    let refused = can(Some("c")).unwrap_err();
    assert_eq!(refused, Error::ItemNotInSession(id("c")));
    assert_eq!(refused.hresult(), hresult::E_INVALIDARG);

    assert!(manager.stop_item_sync(H, ["a"]).is_ok());
    assert_eq!(
        [can(Some("a")), can(Some("b")), can(None)],
        [Ok(false), Ok(true), Ok(true)]
    );

    assert!(manager.stop_handler_sync(H).is_ok());
    assert_eq!(
        [can(Some("a")), can(Some("b")), can(None)],
        [Ok(false), Ok(false), Ok(false)]
    );

    run.end(Finish::Return);
    assert_eq!(result(&ticket).status, Outcome::Canceled);
}

// ----- query_for_additional_items / add_item_to_session ---------------------------------------

/// SPEC 5: "A running handler can look at its pending set (`query_for_additional_items`: the
/// pending item IDs and the context values of the pending requests) and pull a pending item
/// into its running session (`add_item_to_session`): from then on that item is served by the
/// running session, and the requests waiting on it take its outcome there. Adding an item
/// already in the session is an invalid-argument error."
#[test]
fn query_for_additional_items_and_add_item_to_session_pull_a_pending_item_in() {
    let (manager, sessions) = setup(&["a", "b", "c", "d"]);
    let first = manager
        .request(SyncRequest::handler(H).items(["a"]).context("first"))
        .unwrap();
    let run = next_session(&sessions);
    let served = run.session.requests();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].request, first.request());
    let context = served[0].context.as_ref().expect("a context");
    assert_eq!(context.downcast_ref::<&str>(), Some(&"first"));

    let wants_b = manager
        .request(SyncRequest::handler(H).items(["b"]).context(42_u32))
        .unwrap();
    let wants_c = start(&manager, &["c"]);
    let pending = run.session.query_for_additional_items().unwrap();
    assert_eq!(pending.items, ids(&["b", "c"]));
    let waiting: Vec<_> = pending.requests.iter().map(|r| r.request).collect();
    assert_eq!(waiting, [wants_b.request(), wants_c.request()]);
    let context = pending.requests[0].context.as_ref().expect("a context");
    assert_eq!(context.downcast_ref::<u32>(), Some(&42));
    assert!(pending.requests[1].context.is_none());

    assert_eq!(run.session.add_item_to_session(&id("b")), Ok(()));
    let pending = run.session.query_for_additional_items().unwrap();
    assert_eq!(pending.items, ids(&["c"]));
    for (item, refusal) in [
        ("b", Error::ItemAlreadyInSession(id("b"))),
        ("a", Error::ItemAlreadyInSession(id("a"))),
        ("d", Error::ItemNotPending(id("d"))),
    ] {
        let refused = run.session.add_item_to_session(&id(item)).unwrap_err();
        assert_eq!(refused, refusal);
        assert_eq!(refused.hresult(), hresult::E_INVALIDARG);
    }
    let refused = run.session.add_item_to_session(&id("zzz")).unwrap_err();
    assert_eq!(refused.hresult(), hresult::E_INVALIDARG);

    run.report(&["a", "b"], ProgressStatus::Succeeded);
    run.end(Finish::Return);
    assert_eq!(result(&first).status, Outcome::Succeeded);
    assert_eq!(result(&wants_b).items, [(id("b"), Outcome::Succeeded)]);
    // b was served by the first session: the next one holds only c.
    let next = next_session(&sessions);
    assert_eq!(next.items, ids(&["c"]));
    next.succeed_all();
    assert_eq!(result(&wants_c).status, Outcome::Succeeded);
}

// ----- propose_item / commit_item -------------------------------------------------------------

/// SPEC 6: "`propose_item(item)` / `commit_item(id)`: an item discovered during the sync; once
/// committed it becomes an item of the handler (and part of this session)."
#[test]
fn a_committed_item_becomes_an_item_of_the_handler_and_part_of_the_session() {
    let (manager, sessions) = setup(&["a"]);
    let notes = manager.subscribe();
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let found = id("found");

    assert_eq!(
        run.session
            .propose_item(SyncItem::new(found.clone(), "Found").unwrap()),
        Ok(())
    );
    // Proposed is not committed: not an item of the handler, nor of the session, yet.
    assert!(matches!(
        manager.start_item_sync(H, ["found"], SyncControlFlags::NONE, None),
        Err(Error::UnknownItem { .. })
    ));
    assert_eq!(
        progress(&run, "found", ProgressStatus::Updating),
        Err(Error::ItemNotInSession(found.clone()))
    );

    assert_eq!(run.session.commit_item(&found), Ok(()));
    // An item of the handler, syncing in this session: a request may join it there.
    let joined = manager
        .start_item_sync(
            H,
            ["found"],
            SyncControlFlags::IGNORE_IF_ALREADY_SYNCING,
            None,
        )
        .expect("an item of the handler now");
    let disposition = wait_for(&notes, |note| match note {
        Notification::RequestAccepted { request, items, .. } if request == joined.request() => {
            Some(items)
        }
        _ => None,
    });
    assert_eq!(
        disposition,
        [(found.clone(), Disposition::Joined(run.session.id()))]
    );

    let session = run.session.id();
    // The committed item is reported like the session's own.
    run.report(&["a", "found"], ProgressStatus::Succeeded);
    run.end(Finish::Return);
    assert_eq!(result(&ticket).items, [(id("a"), Outcome::Succeeded)]);
    assert_eq!(result(&joined).items, [(found.clone(), Outcome::Succeeded)]);
    let (outcomes, _) = session_ended(&notes, session);
    assert_eq!(
        outcomes,
        [(id("a"), Outcome::Succeeded), (found, Outcome::Succeeded)]
    );

    // It stays an item of the handler after the session.
    let later = start(&manager, &["found"]);
    let run = next_session(&sessions);
    assert_eq!(run.items, ids(&["found"]));
    run.succeed_all();
    assert_eq!(result(&later).status, Outcome::Succeeded);
}

/// SPEC 6: "Proposing an existing ID or committing one never proposed is an invalid-argument
/// error."
#[test]
fn proposing_an_existing_id_or_committing_one_never_proposed_is_invalid_arg() {
    let (manager, sessions) = setup(&["a", "b"]);
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let propose = |item: &str| run.session.propose_item(SyncItem::new(item, item).unwrap());

    // An item of the handler, in the session or not.
    for existing in ["a", "b"] {
        let refused = propose(existing).unwrap_err();
        assert!(matches!(refused, Error::ItemExists { .. }), "{refused:?}");
        assert_eq!(refused.hresult(), hresult::E_INVALIDARG);
    }
    // One already proposed.
    assert_eq!(propose("new"), Ok(()));
    assert_eq!(propose("new").unwrap_err().hresult(), hresult::E_INVALIDARG);
    // Never proposed, and proposed but already committed.
    let refused = run.session.commit_item(&id("never")).unwrap_err();
    assert_eq!(refused, Error::ItemNotProposed(id("never")));
    assert_eq!(refused.hresult(), hresult::E_INVALIDARG);
    assert_eq!(run.session.commit_item(&id("new")), Ok(()));
    assert_eq!(
        run.session.commit_item(&id("new")),
        Err(Error::ItemNotProposed(id("new")))
    );

    run.succeed_all();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
}

// ----- report_manual_sync ---------------------------------------------------------------------

/// SPEC 6: "`report_manual_sync()`: marks the session as manually started".
#[test]
fn report_manual_sync_is_accepted_while_the_session_runs() {
    let (manager, sessions) = setup(&["a"]);
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);
    assert_eq!(run.session.report_manual_sync(), Ok(()));
    assert_eq!(run.session.report_manual_sync(), Ok(()), "idempotent");
    run.succeed_all();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);
}

/// SPEC 6: "`report_manual_sync()`: marks the session as manually started (visible in
/// notifications)." No `Notification` carries it, so a subscriber cannot see it. The check is
/// deliberately shape-agnostic (a new variant or a new field both pass): some notification
/// published after the call mentions it. The subscription starts after the session started,
/// so the request's `TriggerReason::Manual` is not what is found.
#[test]
fn report_manual_sync_is_visible_in_notifications() {
    let (manager, sessions) = setup(&["a"]);
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let notes = manager.subscribe();
    let session = run.session.id();

    run.session.report_manual_sync().unwrap();
    run.succeed_all();
    result(&ticket);
    let mut manual = Vec::new();
    wait_for(&notes, |note| {
        if let Notification::ManualSync {
            session: s,
            handler,
        } = &note
        {
            manual.push((*s, handler.clone()));
        }
        matches!(&note, Notification::SessionEnded { session: s, .. } if *s == session)
            .then_some(())
    });
    assert_eq!(manual, [(session, HandlerId::new(H).unwrap())]);
}

// ----- threads and lifetime -------------------------------------------------------------------

/// SPEC 6 / rustdoc of `SyncSession`: "It is cheap to clone and may be used from any thread,
/// also threads the handler starts itself."
#[test]
fn the_session_can_be_used_from_a_thread_the_handler_spawns() {
    struct Helper;
    impl SyncHandler for Helper {
        fn items(&self) -> Vec<SyncItem> {
            vec![
                SyncItem::new("a", "A").unwrap(),
                SyncItem::new("b", "B").unwrap(),
            ]
        }
        fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
            let worker = std::thread::current().id();
            let (session, items) = (session.clone(), items.to_vec());
            let helper = std::thread::spawn(move || -> Result<(), Error> {
                assert_ne!(std::thread::current().id(), worker);
                session.set_handler_progress_text("working on a helper thread")?;
                for item in &items {
                    assert!(session.can_continue(Some(item))?);
                    session.report_progress(
                        item,
                        Progress::new(ProgressStatus::Succeeded)
                            .text("helper")
                            .steps(1, 1),
                    )?;
                }
                session
                    .report_event(EventReport::new(EventLevel::Information, "from the helper"))?;
                Ok(())
            });
            helper.join().expect("the helper thread does not panic")?;
            Ok(())
        }
    }
    let manager = manager();
    manager
        .register_handler(H, Helper, ControlFlags::WAIT)
        .unwrap();

    let ticket = manager
        .start_handler_sync(H, SyncControlFlags::NONE, None)
        .unwrap();
    let got = result(&ticket);
    assert_eq!(
        got.items,
        [(id("a"), Outcome::Succeeded), (id("b"), Outcome::Succeeded)]
    );
    let events = manager.events(H).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].report.name, "from the helper");
}

/// rustdoc of `SyncSession`: "Once the session has ended, calls fail with
/// [`Error::UnknownSession`]."
#[test]
fn every_session_method_fails_with_unknown_session_after_the_session_ended() {
    let (manager, sessions) = setup(&["a", "b"]);
    let ticket = start(&manager, &["a"]);
    let run = next_session(&sessions);
    let session = run.session.clone();
    run.succeed_all();
    result(&ticket);
    let gone = Error::UnknownSession(session.id());
    let a = id("a");
    let answers: [(&str, Result<(), Error>); 10] = [
        (
            "report_progress",
            session
                .report_progress(&a, ProgressStatus::Failed)
                .map(drop),
        ),
        (
            "set_handler_progress_text",
            session.set_handler_progress_text("late").map(drop),
        ),
        (
            "report_event",
            session
                .report_event(EventReport::new(EventLevel::Error, "late"))
                .map(drop),
        ),
        ("report_conflict", session.report_conflict(None)),
        ("can_continue", session.can_continue(None).map(drop)),
        (
            "query_for_additional_items",
            session.query_for_additional_items().map(drop),
        ),
        ("add_item_to_session", session.add_item_to_session(&id("b"))),
        (
            "propose_item",
            session.propose_item(SyncItem::new("late", "Late").unwrap()),
        ),
        ("commit_item", session.commit_item(&id("late"))),
        ("report_manual_sync", session.report_manual_sync()),
    ];
    for (method, answer) in answers {
        assert_eq!(answer, Err(gone.clone()), "{method}");
    }
    assert_eq!(gone.hresult(), hresult::E_UNEXPECTED);
    assert!(
        manager.events(H).unwrap().is_empty(),
        "the late event was not kept"
    );
}

// ----- how a session ends ---------------------------------------------------------------------

/// SPEC 6: "When `synchronize` returns, every session item without a terminal report gets
/// one: `Canceled` if a cancel was requested for it, otherwise `Failed`."
#[test]
fn items_left_without_a_terminal_report_end_failed_or_canceled_if_a_cancel_was_requested() {
    let (manager, sessions) = setup(&["a", "b", "c"]);

    // An item cancel: only that item ends Canceled.
    let ticket = start(&manager, &["a", "b", "c"]);
    let run = next_session(&sessions);
    assert!(manager.stop_item_sync(H, ["b"]).is_ok());
    run.report(&["c"], ProgressStatus::Succeeded);
    run.end(Finish::Return);
    let result_1 = result(&ticket);
    assert_eq!(
        result_1.items,
        [
            (id("a"), Outcome::Failed),
            (id("b"), Outcome::Canceled),
            (id("c"), Outcome::Succeeded),
        ]
    );
    assert_eq!(result_1.status, Outcome::Failed);

    // A cancel of the whole session: every item without a report ends Canceled.
    let ticket = start(&manager, &["a", "b", "c"]);
    let run = next_session(&sessions);
    assert!(manager.stop_handler_sync(H).is_ok());
    run.report(&["a"], ProgressStatus::Succeeded);
    run.end(Finish::Return);
    let result_2 = result(&ticket);
    assert_eq!(
        result_2.items,
        [
            (id("a"), Outcome::Succeeded),
            (id("b"), Outcome::Canceled),
            (id("c"), Outcome::Canceled),
        ]
    );
    assert_eq!(result_2.status, Outcome::Canceled);
}

/// SPEC 6: "If `synchronize` returns an error or **panics**, the same happens (the panic is
/// caught, turned into an error event and `Failed` outcomes; the manager keeps working)."
#[test]
fn synchronize_returning_an_error_records_an_error_event_and_fails_the_unreported_items() {
    let (manager, sessions) = setup(&["a", "b"]);
    let notes = manager.subscribe();
    let ticket = start(&manager, &["a", "b"]);
    let run = next_session(&sessions);
    let session = run.session.id();
    run.report(&["a"], ProgressStatus::Succeeded);
    run.end(Finish::Error("the disk is full".into()));

    let got = result(&ticket);
    assert_eq!(
        got.items,
        [(id("a"), Outcome::Succeeded), (id("b"), Outcome::Failed)]
    );
    assert_eq!(got.status, Outcome::Failed);
    assert_eq!(got.errors, 1, "the error event counts for the request");

    let events = manager.events(H).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].report.level, EventLevel::Error);
    assert!(events[0].report.description.contains("the disk is full"));

    let (outcomes, error) = session_ended(&notes, session);
    assert_eq!(outcomes, got.items);
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("the disk is full")),
        "{error:?}"
    );

    // The manager keeps working.
    let again = start(&manager, &["b"]);
    next_session(&sessions).succeed_all();
    assert_eq!(result(&again).status, Outcome::Succeeded);
}
