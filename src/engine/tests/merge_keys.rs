//! Legacy merge keys, and a request that stays open while thousands complete.

use super::*;

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
