//! Starting, merging, joining, the limits and validation.

use super::*;

#[test]
fn first_request_starts_a_session_and_dedups_its_items() {
    let mut e = engine();
    let acc = e
        .start_item_sync(&h("a"), &ids(&["a2", "a1", "a2"]), NONE)
        .unwrap();
    assert_eq!(acc.duplicates, 1);
    assert_eq!(acc.queued_new(), 2);
    assert_eq!(e.request_items(acc.request).unwrap(), ids(&["a2", "a1"]));
    let (s, items) = only_start(&mut e);
    assert_eq!(items, ["a2", "a1"]);
    succeed(&mut e, s, &["a1", "a2"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let res = results(&actions(&mut e));
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].status, Outcome::Succeeded);
    assert_eq!(
        res[0].items,
        [(i("a2"), Outcome::Succeeded), (i("a1"), Outcome::Succeeded)]
    );
    assert!(e.is_idle());
}

#[test]
fn requests_while_busy_merge_into_one_next_session() {
    let mut e = engine();
    let _ = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (s1, _) = only_start(&mut e);
    let r2 = e
        .start_item_sync(&h("a"), &ids(&["a3", "a2"]), NONE)
        .unwrap();
    let r3 = e
        .start_item_sync(&h("a"), &ids(&["a2", "a4"]), NONE)
        .unwrap();
    let r4 = e.start_handler_sync(&h("a"), NONE).unwrap();
    assert_eq!((r2.queued_new(), r2.merged()), (2, 0));
    assert_eq!((r3.queued_new(), r3.merged()), (1, 1));
    // a1 is running and requested again without the flag: queued again.
    assert_eq!((r4.queued_new(), r4.merged()), (1, 3));
    assert_eq!(e.pending_items(&h("a")), ids(&["a3", "a2", "a4", "a1"]));
    assert!(starts(&actions(&mut e)).is_empty(), "a is busy");
    succeed(&mut e, s1, &["a1"]);
    let _ = e.session_finished(s1, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    assert_eq!(results(&acts).len(), 1);
    let started = starts(&acts);
    assert_eq!(
        started.len(),
        1,
        "N busy-time requests give one next session"
    );
    assert_eq!(started[0].1, ["a3", "a2", "a4", "a1"]);
}

#[test]
fn join_takes_the_running_outcome_and_is_not_queued() {
    let mut e = engine();
    let r1 = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e
        .start_item_sync(&h("a"), &ids(&["a1", "a3"]), JOIN)
        .unwrap();
    assert_eq!(
        r2.dispositions(),
        [Disposition::Joined(s), Disposition::Queued]
    );
    assert_eq!(e.pending_items(&h("a")), ids(&["a3"]));
    let _ = e
        .report_progress(s, &i("a1"), ProgressStatus::Failed)
        .unwrap();
    succeed(&mut e, s, &["a2"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    let res = results(&acts);
    assert_eq!(res.len(), 1, "r2 still waits for a3");
    assert_eq!(
        (res[0].request, res[0].status),
        (r1.request, Outcome::Failed)
    );
    let (s2, items) = starts(&acts).remove(0);
    assert_eq!(items, ["a3"]);
    succeed(&mut e, s2, &["a3"]);
    let _ = e.session_finished(s2, SessionEnd::Returned).unwrap();
    let res = results(&actions(&mut e));
    assert_eq!(res[0].request, r2.request);
    assert_eq!(res[0].outcome_of(&i("a1")), Some(Outcome::Failed));
    assert_eq!(res[0].status, Outcome::Failed);
}

#[test]
fn no_stale_join_after_a_terminal_report_or_a_cancel() {
    let mut e = engine();
    let _ = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    succeed(&mut e, s, &["a1"]);
    let _ = e.stop_item_sync(&h("a"), &ids(&["a2"])).unwrap();
    let r = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), JOIN)
        .unwrap();
    assert_eq!(r.dispositions(), [Disposition::Queued, Disposition::Queued]);
}

#[test]
fn concurrent_handler_runs_sessions_side_by_side_without_sharing_items() {
    let mut e = Engine::default();
    e.register_handler(
        HandlerSpec::new(h("c"))
            .items(ids(&["x", "y", "z"]))
            .with_capabilities(Caps::SUPPORTS_CONCURRENT_SESSIONS),
    )
    .unwrap();
    let _ = e.start_item_sync(&h("c"), &ids(&["x"]), NONE).unwrap();
    let (s1, _) = only_start(&mut e);
    let _ = e.start_item_sync(&h("c"), &ids(&["x", "y"]), NONE).unwrap();
    let (s2, items) = only_start(&mut e);
    assert_eq!(items, ["y"], "x is held by the first session");
    assert_eq!(e.pending_items(&h("c")), ids(&["x"]));
    let _ = e.session_finished(s1, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    let (s3, items) = starts(&acts).remove(0);
    assert_eq!(items, ["x"]);
    assert_ne!(s3, s2);
    assert_eq!(e.sessions(), [s2, s3]);
}

#[test]
fn global_limit_serves_the_oldest_waiting_handler_first() {
    let mut e = Engine::new(EngineConfig {
        max_sessions: 1,
        default_concurrent_sessions: 2,
        ..EngineConfig::default()
    })
    .unwrap();
    for name in ["p", "q", "r"] {
        e.register_handler(HandlerSpec::new(h(name)).items(ids(&["1"])))
            .unwrap();
    }
    let _ = e.start_handler_sync(&h("p"), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    let _ = e.start_handler_sync(&h("r"), NONE).unwrap();
    let _ = e.start_handler_sync(&h("q"), NONE).unwrap();
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    let next = acts
        .iter()
        .find_map(|a| match a {
            Action::StartSession { handler, .. } => Some(handler.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(next, h("r"), "r asked before q");
}

#[test]
fn validation_errors_change_nothing() {
    let mut e = engine();
    e.register_handler(
        HandlerSpec::new(h("locked"))
            .items(ids(&["l1"]))
            .with_policies(HandlerPolicies::PREVENT_START_SYNC),
    )
    .unwrap();
    e.register_handler(
        HandlerSpec::new(h("items"))
            .item(ItemSpec::new(i("held")).with_policies(ItemPolicies::PREVENT_START_SYNC))
            .item(ItemSpec::new(i("off")).with_enabled(false))
            .item(ItemSpec::new(i("ok"))),
    )
    .unwrap();
    let _ = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let _ = actions(&mut e);
    let before = format!("{e:?}");
    let cases: Vec<(Result<Accepted, Error>, i32)> = vec![
        (
            e.start_handler_sync(&h("nobody"), NONE),
            crate::hresult::CLASS_E_CLASSNOTAVAILABLE,
        ),
        (
            e.start_item_sync(&h("a"), &[], NONE),
            crate::hresult::E_INVALIDARG,
        ),
        (
            e.start_item_sync(&h("a"), &ids(&["a2", "zz"]), NONE),
            crate::hresult::E_INVALIDARG,
        ),
        (
            e.start_handler_sync(&h("locked"), NONE),
            crate::hresult::E_ACCESSDENIED,
        ),
        (
            e.start_item_sync(&h("items"), &ids(&["ok", "held"]), NONE),
            crate::hresult::E_ACCESSDENIED,
        ),
        (
            e.start_item_sync(&h("items"), &ids(&["ok", "off"]), NONE),
            crate::hresult::E_ACCESSDENIED,
        ),
    ];
    for (result, hr) in cases {
        assert_eq!(result.unwrap_err().hresult(), hr);
    }
    assert_eq!(
        format!("{e:?}"),
        before,
        "a refused call changed the engine"
    );
    match e.start_item_sync(&h("a"), &ids(&["a2", "zz"]), NONE) {
        Err(Error::UnknownItem { item, .. }) => assert_eq!(item, i("zz")),
        other => panic!("expected UnknownItem, got {other:?}"),
    }
    // The handler sync leaves the protected and the disabled item out.
    let acc = e.start_handler_sync(&h("items"), NONE).unwrap();
    assert_eq!(e.request_items(acc.request).unwrap(), ids(&["ok"]));
}

#[test]
fn inactive_and_disabled_handlers_refuse_with_the_reason() {
    let mut e = engine();
    let _ = e.set_handler_active(&h("a"), false).unwrap();
    assert_eq!(
        e.start_handler_sync(&h("a"), NONE).unwrap_err(),
        Error::AccessDenied(Denied::HandlerInactive)
    );
    let _ = e.set_handler_enabled(&h("b"), false).unwrap();
    assert_eq!(
        e.start_handler_sync(&h("b"), NONE).unwrap_err(),
        Error::AccessDenied(Denied::HandlerDisabled)
    );
    let _ = e.set_item_enabled(&h("b"), &i("b1"), false);
    let _ = e.set_handler_enabled(&h("b"), true).unwrap();
    assert_eq!(
        e.start_item_sync(&h("b"), &ids(&["b1"]), NONE).unwrap_err(),
        Error::AccessDenied(Denied::ItemDisabled(i("b1")))
    );
}

#[test]
fn disconnected_and_empty_handlers_complete_at_once() {
    let mut e = engine();
    let _ = e.set_handler_connected(&h("a"), false).unwrap();
    let acc = e
        .start_item_sync(&h("a"), &ids(&["a1", "a1"]), NONE)
        .unwrap();
    assert!(acc.completed);
    let res = results(&actions(&mut e));
    assert_eq!(res[0].status, Outcome::Disconnected);
    assert_eq!(res[0].items, [(i("a1"), Outcome::Disconnected)]);
    for item in ["b1", "b2"] {
        let _ = e.set_item_enabled(&h("b"), &i(item), false).unwrap();
    }
    let acc = e.start_handler_sync(&h("b"), NONE).unwrap();
    assert!(acc.completed);
    let res = results(&actions(&mut e));
    assert_eq!((res[0].status, res[0].items.len()), (Outcome::Succeeded, 0));
}

#[test]
fn an_accepted_request_names_its_items_with_their_dispositions() {
    let mut e = engine();
    let first = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    assert_eq!(first.items(&e), Some(vec![(i("a1"), Disposition::Queued)]));
    // A repeat is counted once, and the order is the request's.
    let second = e
        .start_item_sync(&h("a"), &ids(&["a2", "a1", "a2"]), NONE)
        .unwrap();
    assert_eq!(second.duplicates, 1);
    // a1 is syncing (the first request started a session): it is queued again.
    assert_eq!(
        second.items(&e),
        Some(vec![
            (i("a2"), Disposition::Queued),
            (i("a1"), Disposition::Queued)
        ])
    );
    let third = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    assert_eq!(third.items(&e), Some(vec![(i("a1"), Disposition::Merged)]));
    // Another engine, whose handler record has the same key, does not name them.
    let other = Engine::default();
    assert_eq!(second.items(&other), None);
    // A request that completed at once has no record left: its result names its items.
    let _ = e.set_handler_connected(&h("b"), false).unwrap();
    let settled = e.start_item_sync(&h("b"), &ids(&["b1"]), NONE).unwrap();
    assert!(settled.completed);
    assert_eq!(settled.items(&e), None);
    let taken = actions(&mut e);
    let result = results(&taken).remove(0);
    assert_eq!(result.items, [(i("b1"), Outcome::Disconnected)]);
    // Once a request completed later, its record is gone: ask while it is open.
    let (s, _) = starts(&taken).remove(0);
    let _ = e.remove_handler(&h("a")).unwrap();
    assert!(first.items(&e).is_some(), "its session still runs");
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    assert_eq!(first.items(&e), None);
}

/// The write end of a request's result slot stays with the request and comes back beside
/// its result, in result order from a session's end; a refused call drops it unused; one
/// given after the fact is kept the same way; a manager that gives up takes them all.
#[test]
fn a_requests_slot_end_comes_back_beside_its_result() {
    use super::super::accept::PLAIN;
    use crate::slot::Completion;
    let join = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;
    let mut e = engine();
    let (end1, slot1) = Completion::new();
    let (end2, slot2) = Completion::new();
    let a1 = ids(&["a1"]);
    let r1 = e
        .accept(h("a"), None, Some(&a1), NONE, PLAIN, Some(end1))
        .unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e
        .accept(h("a"), None, Some(&a1), join, PLAIN, Some(end2))
        .unwrap();
    assert!(
        e.take_end(r1.request).is_none(),
        "open: kept with the request"
    );
    succeed(&mut e, s, &["a1"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let done = results(&actions(&mut e));
    assert_eq!(
        done.iter().map(|r| r.request).collect::<Vec<_>>(),
        [r1.request, r2.request]
    );
    for (result, slot) in done.into_iter().zip([&slot1, &slot2]) {
        let end = e.take_end(result.request).expect("beside its result");
        assert!(!slot.is_finished());
        let _ = end.complete(result);
        assert!(slot.is_finished(), "the end taken is this request's");
    }

    let (end3, slot3) = Completion::new();
    assert!(
        e.accept(h("nobody"), None, None, NONE, PLAIN, Some(end3))
            .is_err()
    );
    assert!(
        slot3.is_finished(),
        "dropped unused, its slot completes without a result"
    );

    let r4 = e.start_item_sync(&h("b"), &ids(&["b1"]), NONE).unwrap();
    let (end4, slot4) = Completion::new();
    e.attach_end(&r4, end4);
    let ends = e.take_all_ends();
    assert_eq!(ends.len(), 1);
    drop(ends);
    assert!(
        slot4.is_finished(),
        "the end given after the fact was the one taken"
    );
    assert!(e.take_end(r4.request).is_none(), "taken already");
}
