//! Unit tests of the engine's rules, one or two per rule. The scenario table and the
//! property tests against a naive model are in `tests/`.

use super::*;
use crate::flags::HandlerCapabilities as Caps;
use crate::flags::{
    CancelRequest, EventLevel, HandlerPolicies, ItemPolicies, ProgressStatus, SyncControlFlags,
    UpdateReason,
};
use crate::id::ItemId;
use crate::result::{Outcome, RequestResult};

const NONE: SyncControlFlags = SyncControlFlags::NONE;
const JOIN: SyncControlFlags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;

fn h(s: &str) -> HandlerId {
    HandlerId::new(s).unwrap()
}

fn i(s: &str) -> ItemId {
    ItemId::new(s).unwrap()
}

fn ids(list: &[&str]) -> Vec<ItemId> {
    list.iter().map(|s| i(s)).collect()
}

/// An engine with handler `a` (items a1..a4) and handler `b` (items b1, b2).
fn engine() -> Engine {
    let mut e = Engine::default();
    e.register_handler(HandlerSpec::new(h("a")).items(ids(&["a1", "a2", "a3", "a4"])))
        .unwrap();
    e.register_handler(HandlerSpec::new(h("b")).items(ids(&["b1", "b2"])))
        .unwrap();
    e
}

fn actions(e: &mut Engine) -> Vec<Action> {
    let out: Vec<Action> = e.drain_actions().collect();
    e.check_consistency().unwrap();
    out
}

/// The sessions started by these actions, as (session, item names).
fn starts(actions: &[Action]) -> Vec<(SessionId, Vec<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartSession { session, items, .. } => {
                Some((*session, items.iter().map(|i| i.to_string()).collect()))
            }
            _ => None,
        })
        .collect()
}

fn results(actions: &[Action]) -> Vec<RequestResult> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn only_start(e: &mut Engine) -> (SessionId, Vec<String>) {
    let started = starts(&actions(e));
    assert_eq!(started.len(), 1, "expected one session start: {started:?}");
    started.into_iter().next().unwrap()
}

fn succeed(e: &mut Engine, s: SessionId, items: &[&str]) {
    for item in items {
        let _ = e
            .report_progress(s, &i(item), ProgressStatus::Succeeded, "done")
            .unwrap();
    }
}

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
        .report_progress(s, &i("a1"), ProgressStatus::Failed, "")
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
fn terminal_rule_accepts_only_failed_and_marks_failed_otherwise() {
    let mut e = engine();
    let _ = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    succeed(&mut e, s, &["a1", "a2"]);
    let err = e
        .report_progress(s, &i("a1"), ProgressStatus::Updating, "")
        .unwrap_err();
    assert_eq!(err.hresult(), crate::hresult::E_ACCESSDENIED);
    let ack = e
        .report_progress(s, &i("a2"), ProgressStatus::Failed, "")
        .unwrap();
    assert!(ack.terminal);
    assert!(matches!(
        e.report_progress(s, &i("a3"), ProgressStatus::Updating, ""),
        Err(Error::ItemNotInSession(_))
    ));
    assert!(matches!(
        e.report_progress(s, &i("a1"), ProgressStatus::Failed, &"x".repeat(260)),
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
        .report_progress(s, &i("a2"), ProgressStatus::Updating, "")
        .unwrap();
    assert_eq!(ack.cancel, CancelRequest::CancelItem);
    let ended = e.session_finished(s, SessionEnd::Failed).unwrap();
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
fn stop_handler_cancels_pending_and_running() {
    let mut e = engine();
    let r1 = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e.start_item_sync(&h("a"), &ids(&["a2"]), NONE).unwrap();
    let stopped = e.stop_handler_sync(&h("a")).unwrap();
    assert_eq!((stopped.canceled_pending, stopped.cancel_requests), (1, 1));
    let acts = actions(&mut e);
    assert!(acts.contains(&Action::Cancel {
        session: s,
        request: CancelRequest::CancelAll,
        item: None
    }));
    let res = results(&acts);
    assert_eq!(
        (res[0].request, res[0].status),
        (r2.request, Outcome::Canceled)
    );
    assert!(!e.can_continue(s, None).unwrap());
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let res = results(&actions(&mut e));
    assert_eq!(
        (res[0].request, res[0].status),
        (r1.request, Outcome::Canceled)
    );
    // Stopping what is idle succeeds and does nothing.
    assert_eq!(e.stop_handler_sync(&h("b")).unwrap(), Stopped::default());
}

#[test]
fn stop_policies_refuse_and_change_nothing() {
    let mut e = Engine::default();
    e.register_handler(
        HandlerSpec::new(h("bg"))
            .items(ids(&["x"]))
            .with_policies(HandlerPolicies::PREVENT_STOP_SYNC),
    )
    .unwrap();
    e.register_handler(
        HandlerSpec::new(h("mixed"))
            .item(ItemSpec::new(i("keep")).with_policies(ItemPolicies::PREVENT_STOP_SYNC))
            .item(ItemSpec::new(i("free"))),
    )
    .unwrap();
    let _ = e.start_handler_sync(&h("bg"), NONE).unwrap();
    let _ = e.start_handler_sync(&h("mixed"), NONE).unwrap();
    let _ = actions(&mut e);
    let before = format!("{e:?}");
    assert_eq!(
        e.stop_handler_sync(&h("bg")).unwrap_err().hresult(),
        crate::hresult::E_ACCESSDENIED
    );
    assert_eq!(
        e.stop_item_sync(&h("mixed"), &ids(&["free", "keep"]))
            .unwrap_err()
            .hresult(),
        crate::hresult::E_ACCESSDENIED
    );
    assert_eq!(format!("{e:?}"), before);
    // The handler-wide stop leaves the protected item running and cancels the other.
    let stopped = e.stop_handler_sync(&h("mixed")).unwrap();
    assert_eq!(stopped.cancel_requests, 1);
    let s = e.handler_view(&h("mixed")).unwrap().running[0];
    assert!(e.can_continue(s, Some(&i("keep"))).unwrap());
    assert!(!e.can_continue(s, Some(&i("free"))).unwrap());
    // stop_sync_all skips what policy protects.
    let all = e.stop_sync_all();
    assert_eq!(all, Stopped::default());
}

#[test]
fn per_request_cancel_withdraws_only_that_interest() {
    let mut e = engine();
    let r1 = e
        .start_item_sync(&h("a"), &ids(&["a1", "a2"]), NONE)
        .unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e.start_item_sync(&h("a"), &ids(&["a1"]), JOIN).unwrap();
    let r3 = e.start_item_sync(&h("a"), &ids(&["a3"]), NONE).unwrap();
    let r4 = e
        .start_item_sync(&h("a"), &ids(&["a3", "a4"]), NONE)
        .unwrap();
    succeed(&mut e, s, &["a2"]);
    // r1 withdraws: a1 is still wanted by r2 so it keeps going; a2 already succeeded.
    assert_eq!(e.cancel_request(r1.request).unwrap(), Withdrawn::Withdrawn);
    let acts = actions(&mut e);
    assert!(!acts.iter().any(|a| matches!(a, Action::Cancel { .. })));
    let res = results(&acts);
    assert_eq!(
        res[0].items,
        [(i("a1"), Outcome::Canceled), (i("a2"), Outcome::Succeeded)]
    );
    // r2 withdraws: nobody wants a1 any more, so the session is asked to cancel it.
    let _ = e.cancel_request(r2.request).unwrap();
    let acts = actions(&mut e);
    assert!(acts.contains(&Action::Cancel {
        session: s,
        request: CancelRequest::CancelItem,
        item: Some(i("a1"))
    }));
    // r4 withdraws: a4 leaves the queue, a3 stays for r3.
    let _ = e.cancel_request(r4.request).unwrap();
    let _ = actions(&mut e);
    assert_eq!(e.pending_items(&h("a")), ids(&["a3"]));
    assert_eq!(
        e.cancel_request(r4.request).unwrap(),
        Withdrawn::AlreadyComplete
    );
    assert!(matches!(
        e.cancel_request(RequestId(999)),
        Err(Error::UnknownRequest(_))
    ));
    let _ = r3;
}

#[test]
fn disabling_and_removing_cancel_pending_but_let_sessions_finish() {
    let mut e = engine();
    let r1 = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e.start_item_sync(&h("a"), &ids(&["a2"]), NONE).unwrap();
    let changed = e.remove_handler(&h("a")).unwrap();
    assert_eq!(changed.canceled_pending, 1);
    let res = results(&actions(&mut e));
    assert_eq!(
        (res[0].request, res[0].status),
        (r2.request, Outcome::Canceled)
    );
    assert!(e.handler_view(&h("a")).is_none());
    // The running session still reports and finishes normally.
    succeed(&mut e, s, &["a1"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let res = results(&actions(&mut e));
    assert_eq!(
        (res[0].request, res[0].status),
        (r1.request, Outcome::Succeeded)
    );
    assert!(e.is_idle());
    // The ID is free again.
    e.register_handler(HandlerSpec::new(h("a"))).unwrap();
}

#[test]
fn update_handler_cancels_pending_items_that_went_away() {
    let mut e = engine();
    let _ = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (_s, _) = only_start(&mut e);
    let r = e
        .start_item_sync(&h("a"), &ids(&["a2", "a3"]), NONE)
        .unwrap();
    let changed = e
        .update_handler(
            &h("a"),
            Caps::empty(),
            HandlerPolicies::empty(),
            vec![
                ItemSpec::new(i("a1")),
                ItemSpec::new(i("a3")),
                ItemSpec::new(i("new")),
            ],
        )
        .unwrap();
    assert!(changed.changed);
    assert_eq!(changed.canceled_pending, 1);
    assert_eq!(e.pending_items(&h("a")), ids(&["a3"]));
    assert!(e.request_view(r.request).is_some());
    assert!(matches!(
        e.start_item_sync(&h("a"), &ids(&["a2"]), NONE),
        Err(Error::UnknownItem { .. })
    ));
    assert_eq!(
        e.upsert_item(&h("a"), ItemSpec::new(i("a2"))).unwrap(),
        UpdateReason::Added
    );
    assert_eq!(
        e.upsert_item(&h("a"), ItemSpec::new(i("a2"))).unwrap(),
        UpdateReason::Changed
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
        .report_progress(s, &i("b9"), ProgressStatus::Succeeded, "")
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
fn shutdown_cancels_everything_and_refuses_new_work() {
    let mut e = engine();
    let r1 = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    let r2 = e.start_item_sync(&h("a"), &ids(&["a2"]), NONE).unwrap();
    let stopped = e.shutdown();
    assert_eq!((stopped.canceled_pending, stopped.cancel_requests), (1, 1));
    assert_eq!(
        e.start_handler_sync(&h("b"), NONE).unwrap_err(),
        Error::ShutDown
    );
    assert_eq!(
        e.set_handler_enabled(&h("b"), false).unwrap_err(),
        Error::ShutDown
    );
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let res: Vec<RequestId> = results(&actions(&mut e))
        .iter()
        .map(|r| r.request)
        .collect();
    assert_eq!(res, [r2.request, r1.request]);
    assert!(e.is_idle());
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
fn typed_flags_with_undefined_bits_are_refused() {
    let mut e = engine();
    let before = format!("{e:?}");
    let bad = SyncControlFlags::from_bits_retain(0x2);
    assert!(matches!(
        e.start_handler_sync(&h("a"), bad),
        Err(Error::UnknownFlags { unknown: 0x2, .. })
    ));
    let spec = HandlerSpec::new(h("z")).with_capabilities(Caps::from_bits_retain(0x8));
    assert_eq!(
        e.register_handler(spec).unwrap_err().hresult(),
        crate::hresult::E_INVALIDARG
    );
    assert_eq!(format!("{e:?}"), before);
}

#[test]
fn state_change_checks_policies_without_changing_anything() {
    let mut e = Engine::default();
    e.register_handler(
        HandlerSpec::new(h("p"))
            .item(ItemSpec::new(i("x")).with_policies(ItemPolicies::PREVENT_DISABLE))
            .with_policies(HandlerPolicies::PREVENT_DEACTIVATE),
    )
    .unwrap();
    let before = format!("{e:?}");
    assert!(e.check_state_change(&h("p"), &StateChange::Disable).is_ok());
    assert_eq!(
        e.check_state_change(&h("p"), &StateChange::Deactivate),
        Err(Error::AccessDenied(Denied::HandlerPolicy(
            HandlerPolicies::PREVENT_DEACTIVATE
        )))
    );
    assert!(matches!(
        e.check_state_change(&h("p"), &StateChange::DisableItem(i("x"))),
        Err(Error::AccessDenied(Denied::ItemPolicy { .. }))
    ));
    assert!(matches!(
        e.check_state_change(&h("p"), &StateChange::EnableItem(i("nope"))),
        Err(Error::UnknownItem { .. })
    ));
    assert_eq!(format!("{e:?}"), before);
    assert!(e.set_handler_active(&h("p"), false).is_err());
    let changed = e
        .apply_state_change(&h("p"), &StateChange::Disable)
        .unwrap();
    assert!(changed.changed);
    assert!(!e.handler_view(&h("p")).unwrap().enabled);
}

fn keyed(e: &mut Engine, items: &[&str], cookie: &[u8]) -> Accepted {
    e.start_sync(&h("a"), Some(&ids(items)), NONE, MergeKey::cookie(cookie))
        .unwrap()
}

#[test]
fn requests_merge_only_within_their_merge_key() {
    let mut e = engine();
    let _ = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (s1, _) = only_start(&mut e);
    let x1 = keyed(&mut e, &["a2", "a3"], b"x");
    let x2 = keyed(&mut e, &["a3"], b"x");
    let y = keyed(&mut e, &["a3"], b"y");
    let plain = e.start_item_sync(&h("a"), &ids(&["a3"]), NONE).unwrap();
    assert_eq!((x1.queued_new(), x2.merged(), y.queued_new()), (2, 1, 1));
    assert_eq!(
        plain.queued_new(),
        1,
        "a Sync Center request never merges with a legacy one"
    );
    // Everything is pending, an item once per key.
    assert_eq!(e.pending_items(&h("a")), ids(&["a3", "a2", "a3", "a3"]));
    // Sessions go oldest waiting request first, one key each.
    let _ = e.session_finished(s1, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    let keys: Vec<MergeKey> = acts
        .iter()
        .filter_map(|a| match a {
            Action::StartSession { key, items, .. } => {
                assert_eq!(key.as_cookie(), Some(&b"x"[..]));
                assert_eq!(*items, ids(&["a2", "a3"]));
                Some(key.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 1);
    let s2 = e.sessions()[0];
    assert_eq!(e.session_view(s2).unwrap().key, MergeKey::cookie(b"x"));
    // A session only sees and pulls pending items of its own key.
    assert!(e.query_for_additional_items(s2).unwrap().items.is_empty());
    assert!(matches!(
        e.add_item_to_session(s2, &i("a4")),
        Err(Error::ItemNotPending(_))
    ));
    let _ = e.session_finished(s2, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    let done: Vec<RequestId> = results(&acts).iter().map(|r| r.request).collect();
    assert_eq!(done, [x1.request, x2.request]);
    // Then y's session (older than the plain request), then the plain one.
    let (s3, items) = starts(&acts).remove(0);
    assert_eq!(items, ["a3"]);
    assert_eq!(e.session_view(s3).unwrap().key, MergeKey::cookie(b"y"));
    let _ = e.session_finished(s3, SessionEnd::Returned).unwrap();
    let acts = actions(&mut e);
    assert_eq!(results(&acts)[0].request, y.request);
    let s4 = starts(&acts)[0].0;
    assert_eq!(e.session_view(s4).unwrap().key, MergeKey::DEFAULT);
    let _ = e.session_finished(s4, SessionEnd::Returned).unwrap();
    assert_eq!(results(&actions(&mut e))[0].request, plain.request);
    assert!(e.is_idle());
}

#[test]
fn keyed_requests_cancel_stop_and_join_like_any_other() {
    let mut e = engine();
    let first = keyed(&mut e, &["a1"], b"c");
    let (s1, _) = only_start(&mut e);
    assert_eq!(e.session_view(s1).unwrap().key, MergeKey::cookie(b"c"));
    // A Sync Center request may join a legacy session's running item.
    let join = e.start_item_sync(&h("a"), &ids(&["a1"]), JOIN).unwrap();
    assert_eq!(join.dispositions(), [Disposition::Joined(s1)]);
    let a = keyed(&mut e, &["a2"], b"c");
    let b = keyed(&mut e, &["a2", "a3"], b"c");
    // Withdrawing one keyed request leaves the shared entry for the other.
    assert_eq!(e.cancel_request(a.request).unwrap(), Withdrawn::Withdrawn);
    let _ = actions(&mut e);
    assert_eq!(e.pending_items(&h("a")), ids(&["a2", "a3"]));
    // A stop empties the keyed queue too.
    let stopped = e.stop_item_sync(&h("a"), &ids(&["a2", "a3"])).unwrap();
    assert_eq!(stopped.canceled_pending, 2);
    let res = results(&actions(&mut e));
    assert_eq!(
        (res[0].request, res[0].status),
        (b.request, Outcome::Canceled)
    );
    assert!(e.pending_items(&h("a")).is_empty());
    let _ = e.session_finished(s1, SessionEnd::Returned).unwrap();
    let res: Vec<RequestId> = results(&actions(&mut e))
        .iter()
        .map(|r| r.request)
        .collect();
    assert_eq!(res, [first.request, join.request]);
    assert!(e.is_idle());
}

#[test]
fn a_request_open_while_thousands_complete_keeps_its_place_and_its_result() {
    // Request 1 runs in a session that stays open while 5,000 later requests complete at
    // once (a disconnected handler), so the request table moves it out of its window: it
    // must still be found, joined, withdrawn from and completed like any other.
    let mut e = engine();
    e.register_handler(HandlerSpec {
        connected: false,
        ..HandlerSpec::new(h("off")).items(ids(&["o1"]))
    })
    .unwrap();
    let first = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    let (s, _) = only_start(&mut e);
    let queued = e.start_item_sync(&h("a"), &ids(&["a2"]), NONE).unwrap();
    for _ in 0..5_000 {
        let acc = e.start_item_sync(&h("off"), &ids(&["o1"]), NONE).unwrap();
        assert!(acc.completed);
    }
    assert_eq!(results(&actions(&mut e)).len(), 5_000);
    assert_eq!(e.open_requests(), [first.request, queued.request]);
    assert!(e.request_view(first.request).is_some());
    let joined = e.start_item_sync(&h("a"), &ids(&["a1"]), JOIN).unwrap();
    assert_eq!(joined.joined(), 1);
    assert_eq!(
        e.cancel_request(queued.request).unwrap(),
        Withdrawn::Withdrawn
    );
    succeed(&mut e, s, &["a1"]);
    let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
    let res = results(&actions(&mut e));
    let done: Vec<RequestId> = res.iter().map(|r| r.request).collect();
    assert_eq!(done, [queued.request, first.request, joined.request]);
    assert!(res[1..].iter().all(|r| r.status == Outcome::Succeeded));
    assert!(e.is_idle());
}
