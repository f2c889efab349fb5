//! Stops, per-request cancels, state changes, updates and shutdown.

use super::*;

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
