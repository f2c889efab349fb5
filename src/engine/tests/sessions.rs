//! Inside a session: the terminal rule, unreported items, pulled and proposed items, counts.

use super::*;

#[test]
fn terminal_rule_accepts_only_failed_and_marks_failed_otherwise() {
    let mut e = engine();
    let _ = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    succeed(&mut e, s, &["a1", "a2"]);
    let err = e
        .report_progress(s, &i("a1"), ProgressStatus::Updating)
        .unwrap_err();
    assert_eq!(err.hresult(), crate::hresult::E_ACCESSDENIED);
    let ack = e
        .report_progress(s, &i("a2"), ProgressStatus::Failed)
        .unwrap();
    assert!(ack.terminal);
    assert!(matches!(
        e.report_progress(s, &i("a3"), ProgressStatus::Updating),
        Err(Error::ItemNotInSession(_))
    ));
    assert!(matches!(
        e.report_progress(
            s,
            &i("a1"),
            Progress::new(ProgressStatus::Failed).text("x".repeat(260))
        ),
        Err(Error::TextTooLong { .. })
    ));
    let ended = e.session_finished(s, SessionEnd::Returned).unwrap();
    assert_eq!(
        ended.outcomes,
        [(i("a1"), Outcome::Failed), (i("a2"), Outcome::Failed)]
    );
}

#[test]
fn unreported_items_fail_and_canceled_ones_cancel() {
    let mut e = engine();
    let _ = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2", "a3"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    succeed(&mut e, s, &["a1"]);
    let stopped = e.stop_item_sync(&h("a"), &ids(&["a2"])).unwrap();
    assert_eq!(stopped.cancel_requests, 1);
    assert!(!e.can_continue(s, Some(&i("a2"))).unwrap());
    assert!(e.can_continue(s, Some(&i("a3"))).unwrap());
    let ack = e
        .report_progress(s, &i("a2"), ProgressStatus::Updating)
        .unwrap();
    assert_eq!(ack.cancel, CancelRequest::CancelItem);
    let ended = e
        .session_finished(s, SessionEnd::Failed("offline".into()))
        .unwrap();
    assert_eq!(
        ended.outcomes,
        [
            (i("a1"), Outcome::Succeeded),
            (i("a2"), Outcome::Canceled),
            (i("a3"), Outcome::Failed)
        ]
    );
}

#[test]
fn running_handler_pulls_pending_items_into_its_session() {
    let mut e = engine();
    let _ = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e
        .start_item_sync(&h("a"), &ids(&["a2", "a3"]), NONE)
        .unwrap();
    let r3 = e.start_item_sync(&h("a"), &ids(&["a3"]), NONE).unwrap();
    let extra = e.query_for_additional_items(s).unwrap();
    assert_eq!(extra.items, ids(&["a2", "a3"]));
    assert_eq!(extra.requests, [r2.request, r3.request]);
    assert_eq!(e.add_item_to_session(s, &i("a3")).unwrap(), 2);
    assert!(matches!(
        e.add_item_to_session(s, &i("a3")),
        Err(Error::ItemAlreadyInSession(_))
    ));
    assert!(matches!(
        e.add_item_to_session(s, &i("a4")),
        Err(Error::ItemNotPending(_))
    ));
    succeed(&mut e, s, &["a1", "a3"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    let done: Vec<RequestId> = results(&acts).iter().map(|r| r.request).collect();
    assert!(
        done.contains(&r3.request),
        "r3 was served by the running session"
    );
    assert!(!done.contains(&r2.request), "r2 still waits for a2");
    assert_eq!(starts(&acts)[0].1, ["a2"]);
}

#[test]
fn proposed_items_join_the_handler_once_committed() {
    let mut e = engine();
    let _ = e.start_item_sync(&h("b"), &ids(&["b1"]), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    assert!(matches!(
        e.commit_item(s, &i("b9")),
        Err(Error::ItemNotProposed(_))
    ));
    e.propose_item(s, ItemSpec::new(i("b9"))).unwrap();
    assert!(matches!(
        e.propose_item(s, ItemSpec::new(i("b1"))),
        Err(Error::ItemExists { .. })
    ));
    e.commit_item(s, &i("b9")).unwrap();
    let _ = e
        .report_progress(s, &i("b9"), ProgressStatus::Succeeded)
        .unwrap();
    assert!(
        e.handler_view(&h("b"))
            .unwrap()
            .items
            .contains(&(i("b9"), true))
    );
    let ended = e.session_finished(s, SessionEnd::Returned).unwrap();
    assert_eq!(ended.outcomes[1], (i("b9"), Outcome::Succeeded));
}

#[test]
fn errors_and_conflicts_count_for_the_requests_a_session_serves() {
    let mut e = engine();
    let r1 = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e.start_item_sync(&h("a"), &ids(&["a2"]), JOIN).unwrap();
    e.report_event(s, Some(&i("a1")), EventLevel::Error)
        .unwrap();
    e.report_event(s, Some(&i("a2")), EventLevel::Error)
        .unwrap();
    e.report_event(s, Some(&i("a2")), EventLevel::Warning)
        .unwrap();
    e.report_event(s, None, EventLevel::Error).unwrap();
    e.report_conflict(s, Some(&i("a2"))).unwrap();
    assert!(matches!(
        e.report_event(s, Some(&i("nope")), EventLevel::Error),
        Err(Error::UnknownItem { .. })
    ));
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let res = results(&actions(&mut e));
    let r1 = res.iter().find(|r| r.request == r1.request).unwrap();
    let r2 = res.iter().find(|r| r.request == r2.request).unwrap();
    assert_eq!((r1.errors, r1.conflicts), (3, 1));
    assert_eq!((r2.errors, r2.conflicts), (2, 1));
}

#[test]
fn session_calls_on_unknown_sessions_are_refused() {
    let mut e = engine();
    let s = SessionId(42);
    assert_eq!(
        e.session_finished(s, SessionEnd::Returned).unwrap_err(),
        Error::UnknownSession(s)
    );
    assert!(e.can_continue(s, None).is_err());
    assert!(e.query_for_additional_items(s).is_err());
    assert!(e.report_manual_sync(s).is_err());
    assert!(e.session_started(s).is_err());
}

#[test]
fn each_failed_item_carries_why_it_failed() {
    let mut e = engine();
    let r = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2", "a3", "a4"]), NONE)
        .unwrap()
        .request;
    let (s, _) = only_start(&mut e);
    // a1: its own reason; a2: Failed without one; a3: no report; a4: a report after a
    // terminal one.
    let _ = e.report_failure(s, &i("a1"), "quota".into()).unwrap();
    let _ = e
        .report_progress(s, &i("a2"), ProgressStatus::Failed)
        .unwrap();
    succeed(&mut e, s, &["a4"]);
    let _ = e
        .report_progress(s, &i("a4"), ProgressStatus::Updating)
        .unwrap_err();
    let offline = Cause::new("offline").with_source(Cause::new("no route"));
    let _ = e
        .session_finished(s, SessionEnd::Failed(offline.clone()))
        .unwrap();
    let result = results(&actions(&mut e)).remove(0);
    assert_eq!(result.request, r);
    let cause = |item: &str| result.cause_of(&i(item)).map(|c| format!("{c:#}"));
    assert_eq!(
        cause("a1").as_deref(),
        Some("quota"),
        "its own reason stands"
    );
    assert_eq!(cause("a2").as_deref(), Some("offline: no route"));
    assert_eq!(cause("a3").as_deref(), Some("offline: no route"));
    assert!(cause("a4").is_some_and(|c| c.contains("already reached Succeeded")));
    assert_eq!(result.failures().count(), 4);
}

#[test]
fn causes_reach_their_own_items_whatever_order_they_came_in() {
    let mut e = engine();
    // Reported in the opposite order to the request's items.
    let _ = e
        .start_item_sync(&h("a"), &ids(&["a3", "a1"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    let _ = e.report_failure(s, &i("a1"), "one".into()).unwrap();
    let _ = e.report_failure(s, &i("a3"), "three".into()).unwrap();
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let result = results(&actions(&mut e)).remove(0);
    let cause = |item: &str| result.cause_of(&i(item)).map(|c| c.to_string());
    assert_eq!(cause("a1").as_deref(), Some("one"));
    assert_eq!(cause("a3").as_deref(), Some("three"));

    // A large request whose session fails: one cause per item, each on its own item.
    let names: Vec<String> = (0..1000).map(|n| format!("big{n}")).collect();
    let big: Vec<ItemId> = names.iter().map(|n| i(n)).collect();
    e.register_handler(HandlerSpec::new(h("big")).items(big.clone()))
        .unwrap();
    let _ = e.start_handler_sync(&h("big"), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    let _ = e.report_failure(s, &big[999], "last".into()).unwrap();
    let _ = e
        .session_finished(s, SessionEnd::Failed("offline".into()))
        .unwrap();
    let result = results(&actions(&mut e)).remove(0);
    assert_eq!(result.failures().count(), 1000);
    for (n, item) in big.iter().enumerate() {
        let want = if n == 999 { "last" } else { "offline" };
        assert_eq!(
            result.cause_of(item).map(|c| c.to_string()).as_deref(),
            Some(want),
            "{item}"
        );
    }
}

#[test]
fn a_session_that_returns_without_a_report_says_so_and_a_cancel_has_no_cause() {
    let mut e = engine();
    let _ = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2", "a3"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    let _ = e.stop_item_sync(&h("a"), &ids(&["a2"])).unwrap();
    let _ = e
        .report_progress(s, &i("a3"), ProgressStatus::Failed)
        .unwrap();
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let result = results(&actions(&mut e)).remove(0);
    assert_eq!(result.outcome_of(&i("a2")), Some(Outcome::Canceled));
    assert_eq!(result.cause_of(&i("a2")), None);
    let no_report = result.cause_of(&i("a1")).map(Cause::message);
    assert!(no_report.is_some_and(|m| m.contains("without reporting")));
    assert_eq!(result.outcome_of(&i("a3")), Some(Outcome::Failed));
    assert_eq!(
        result.cause_of(&i("a3")),
        None,
        "a bare Failed has no reason"
    );
}

#[test]
fn a_session_serves_the_requests_waiting_for_its_items_each_once() {
    let mut e = engine();
    let r1 = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap()
        .request;
    let (s, _) = only_start(&mut e);
    // Joins the running session on both of its items: listed once.
    let r2 = e
        .start_item_sync(&h("a"), &ids(&["a2", "a1"]), JOIN)
        .unwrap()
        .request;
    // Queued for the next session: not served by this one.
    let r3 = e
        .start_item_sync(&h("a"), &ids(&["a3"]), NONE)
        .unwrap()
        .request;
    assert_eq!(e.session_requests(s), vec![r1, r2]);
    let mut from_view: Vec<RequestId> = e
        .session_view(s)
        .unwrap()
        .items
        .into_iter()
        .flat_map(|i| i.waiting)
        .collect();
    from_view.sort_unstable();
    from_view.dedup();
    assert_eq!(e.session_requests(s), from_view);
    assert!(!e.session_requests(s).contains(&r3));
    succeed(&mut e, s, &["a1", "a2"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    assert!(e.session_requests(s).is_empty());
}

#[test]
fn a_sessions_results_go_out_oldest_request_first_whatever_items_they_wait_on() {
    let mut e = engine();
    let first = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap()
        .request;
    let (s, _) = only_start(&mut e);
    // Joiners of the second item, then of the first, then of the second again: item by
    // item, the first item's joiner would come out before the older joiners of the second.
    let joiners: Vec<RequestId> = ["a2", "a1", "a2"]
        .iter()
        .map(|item| e.start_item_sync(&h("a"), &ids(&[item]), JOIN).unwrap())
        .map(|accepted| accepted.request)
        .collect();
    succeed(&mut e, s, &["a1", "a2"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let delivered: Vec<RequestId> = results(&actions(&mut e))
        .iter()
        .map(|r| r.request)
        .collect();
    let mut oldest_first = vec![first];
    oldest_first.extend(joiners);
    assert_eq!(delivered, oldest_first);
}
