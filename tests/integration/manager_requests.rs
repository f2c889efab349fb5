//! Issue 3: the threaded [`SyncManager`] against SPEC section 4 (what a start call accepts and
//! what it refuses), section 5 (current versus queued) and the merge notifications of
//! section 7, through the public API with real threads.
//!
//! Nothing here sleeps. Sessions are [`Driven`] (tests/common): the test takes each session
//! from a channel and says when it ends. What the scheduler decided is read from the
//! notification stream after a round trip through the scheduler ([`World::happened`]): every
//! command sent before the round trip has been handled, and its notifications published, by
//! the time the round trip returns, so "no session started" is an exact statement rather than
//! a guess after a pause. `PATIENCE` (in the fixture) is only a failure guard.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};

use common::*;
use crossbeam_channel::Receiver;
use syncmgr::engine::Disposition::{self, Joined, Merged, Queued, Settled};
use syncmgr::hresult::{CLASS_E_CLASSNOTAVAILABLE, E_ACCESSDENIED, E_INVALIDARG, E_UNEXPECTED};
use syncmgr::{Outcome as O, ProgressStatus as PS, *};

// =============================================================================================
// Helpers
// =============================================================================================

const NONE: SyncControlFlags = SyncControlFlags::NONE;
const JOIN: SyncControlFlags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;

/// A start call, for tables of calls that must all be refused the same way.
type StartCall = fn(&SyncManager) -> Result<SyncTicket, Error>;

/// Both start calls for item `a` of handler `h`: a handler-state refusal applies to each.
const BOTH_STARTS: [StartCall; 2] = [
    |m| m.start_handler_sync("h", NONE, None),
    |m| m.start_item_sync("h", ["a"], NONE, None),
];

/// What only these tests ask of the one `World` of the manager tests (`tests/common/world.rs`).
impl World {
    /// A valid request after refused ones behaves as if they never happened: each item is
    /// queued new, exactly one session starts, with exactly these items, and it succeeds.
    fn clean_run(&self, handler: &str, sessions: &Receiver<Running>, items: &[&str]) {
        let _earlier = self.happened();
        let ticket = self.start(handler, items);
        let session = next_session(sessions);
        assert_eq!(session.names(), items);
        session.succeed_all();
        let r = result(&ticket);
        assert_eq!(r.status, O::Succeeded);
        assert_eq!(outcomes(&r), each(items, O::Succeeded));
        let notes = self.happened();
        assert_eq!(accepted(&notes), [each(items, Queued)]);
        assert_eq!(started(&notes).len(), 1, "{notes:#?}");
    }
}

/// The next `n` sessions of a handler. They run on different workers, so they may reach the
/// test in any order: sorted by their items.
fn next_sessions<const N: usize>(sessions: &Receiver<Running>) -> [Running; N] {
    let mut running: Vec<Running> = (0..N).map(|_| next_session(sessions)).collect();
    running.sort_by_key(Running::names);
    let Ok(running) = running.try_into() else {
        unreachable!("N sessions were taken")
    };
    running
}

/// The sessions started, as (handler, items), in order.
fn started(notes: &[Notification]) -> Vec<(&str, Vec<&str>)> {
    notes
        .iter()
        .filter_map(|n| match n {
            Notification::SessionStarted { handler, items, .. } => {
                Some((handler.as_str(), items.iter().map(ItemId::as_str).collect()))
            }
            _ => None,
        })
        .collect()
}

/// What became of each item of each accepted request, in acceptance order.
fn accepted(notes: &[Notification]) -> Vec<Vec<(&str, Disposition)>> {
    notes
        .iter()
        .filter_map(|n| match n {
            Notification::RequestAccepted { items, .. } => {
                Some(items.iter().map(|(i, d)| (i.as_str(), *d)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The request IDs of the accepted requests, in acceptance order.
fn accepted_ids(notes: &[Notification]) -> Vec<RequestId> {
    notes
        .iter()
        .filter_map(|n| match n {
            Notification::RequestAccepted { request, .. } => Some(*request),
            _ => None,
        })
        .collect()
}

/// Each ended session's items with their outcomes, in order.
fn ended(notes: &[Notification]) -> Vec<Vec<(&str, O)>> {
    notes
        .iter()
        .filter_map(|n| match n {
            Notification::SessionEnded { outcomes, .. } => {
                Some(outcomes.iter().map(|(i, o)| (i.as_str(), *o)).collect())
            }
            _ => None,
        })
        .collect()
}

/// A result's items with their outcomes.
fn outcomes(r: &RequestResult) -> Vec<(&str, O)> {
    r.items
        .iter()
        .map(|o| (o.item.as_str(), o.outcome))
        .collect()
}

/// Every item paired with the same value.
fn each<'a, T: Copy>(items: &[&'a str], value: T) -> Vec<(&'a str, T)> {
    items.iter().map(|i| (*i, value)).collect()
}

/// The context value a caller passed with a request, if it is a `T`.
fn context_of<T: Copy + 'static>(r: &ServedRequest) -> Option<T> {
    r.context.as_ref()?.downcast_ref::<T>().copied()
}

/// A [`Driven`] whose policies and items can change after registration (`update_handler`
/// re-reads them), so that a request refused for a policy can be followed by a valid one on
/// the same handler.
struct Live {
    driven: Driven,
    policies: Arc<Mutex<HandlerPolicies>>,
    items: Arc<Mutex<Vec<SyncItem>>>,
}

impl Live {
    fn new(driven: Driven) -> Live {
        Live {
            policies: Arc::new(Mutex::new(driven.policies)),
            items: Arc::new(Mutex::new(driven.items.clone())),
            driven,
        }
    }
}

impl SyncHandler for Live {
    fn capabilities(&self) -> HandlerCapabilities {
        self.driven.capabilities()
    }
    fn policies(&self) -> HandlerPolicies {
        *self.policies.lock().unwrap()
    }
    fn items(&self) -> Vec<SyncItem> {
        self.items.lock().unwrap().clone()
    }
    fn is_connected(&self) -> bool {
        self.driven.is_connected()
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        self.driven.synchronize(items, session)
    }
}

/// The three kinds of bad ID text: empty, with a NUL, one UTF-16 unit too long (64 units of
/// text, 65 with the NUL; `é` is one unit in two bytes). Each with the rule it breaks.
fn bad_id_texts() -> Vec<(String, IdRule)> {
    let too_long = IdRule::TooLong {
        units: 65,
        max: MAX_SYNCMGR_ID,
    };
    vec![
        (String::new(), IdRule::Empty),
        ("a\0b".into(), IdRule::ContainsNul { at: 1 }),
        ("x".repeat(64), too_long),
        ("é".repeat(64), too_long),
    ]
}

fn assert_bad_id(error: &Error, kind: IdKind, text: &str, rule: IdRule) {
    match error {
        Error::InvalidId(e) => {
            assert_eq!((e.kind(), e.input(), e.rule()), (kind, text, rule));
        }
        other => panic!("expected InvalidId for {text:?}, got {other:?}"),
    }
}

// =============================================================================================
// SPEC section 4: starting a sync, validation
// =============================================================================================

// SPEC 4, row "unknown handler": CLASS_E_CLASSNOTAVAILABLE.
#[test]
fn unknown_handler_is_class_not_available() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    // IDs compare exactly: "H" is not "h" (SPEC 2).
    let calls: [StartCall; 3] = [
        |m| m.start_handler_sync("nobody", NONE, None),
        |m| m.start_item_sync("nobody", ["a"], NONE, None),
        |m| m.request(SyncRequest::handler("H").items(["a"])),
    ];
    for call in calls {
        let error = w.refused(CLASS_E_CLASSNOTAVAILABLE, call);
        assert!(matches!(error, Error::UnknownHandler(_)), "{error:?}");
    }
    w.clean_run("h", &sessions, &["a"]);
}

// SPEC 4, row "invalid ID text" (and section 2), for the handler: E_INVALIDARG.
#[test]
fn invalid_handler_id_text_is_invalid_arg() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    for (text, rule) in bad_id_texts() {
        let error = w.refused(E_INVALIDARG, |m| m.start_handler_sync(&text, NONE, None));
        assert_bad_id(&error, IdKind::Handler, &text, rule);
        let error = w.refused(E_INVALIDARG, |m| {
            m.start_item_sync(&text, ["a"], NONE, None)
        });
        assert_bad_id(&error, IdKind::Handler, &text, rule);
    }
    // The longest valid ID, 63 units of text, is a handler like any other.
    let longest = "é".repeat(63);
    let (handler, longest_sessions) = Driven::new(&["a"]);
    w.register(&longest, handler);
    w.clean_run(&longest, &longest_sessions, &["a"]);
    w.clean_run("h", &sessions, &["a"]);
}

// SPEC 4, row "invalid ID text", for an item: E_INVALIDARG, and the valid items named with
// it are not queued either.
#[test]
fn invalid_item_id_text_is_invalid_arg() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let w = World::new();
    w.register("h", handler);
    for (text, rule) in bad_id_texts() {
        let error = w.refused(E_INVALIDARG, |m| {
            m.start_item_sync("h", ["a", text.as_str(), "b"], NONE, None)
        });
        assert_bad_id(&error, IdKind::Item, &text, rule);
    }
    w.clean_run("h", &sessions, &["a", "b"]);
}

// SPEC 4, row "empty item list": E_INVALIDARG.
#[test]
fn empty_item_list_is_invalid_arg() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    let error = w.refused(E_INVALIDARG, |m| {
        m.start_item_sync("h", Vec::<ItemId>::new(), NONE, None)
    });
    assert_eq!(error, Error::EmptyItemList);
    w.clean_run("h", &sessions, &["a"]);
}

// SPEC 4, row "unknown flag bits" (and section 3: never silently truncated): E_INVALIDARG.
#[test]
fn unknown_flag_bits_are_invalid_arg() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    let unknown = |bits| Error::UnknownFlags {
        type_name: "SyncControlFlags",
        bits,
        unknown: 0x2,
    };
    let error = w.refused(E_INVALIDARG, |m| {
        m.start_item_sync("h", ["a"], SyncControlFlags::from_bits_retain(0x2), None)
    });
    assert_eq!(error, unknown(0x2));
    let error = w.refused(E_INVALIDARG, |m| {
        m.start_handler_sync("h", SyncControlFlags::from_bits_retain(0x3), None)
    });
    assert_eq!(error, unknown(0x3));
    let error = w.refused(E_INVALIDARG, |m| {
        m.request(SyncRequest::handler("h").flags(SyncControlFlags::from_bits_retain(0x2)))
    });
    assert_eq!(error, unknown(0x2));
    w.clean_run("h", &sessions, &["a"]);
}

// SPEC 4, row "item the handler does not own": E_INVALIDARG, naming the item; the owned items
// named with it are not queued.
#[test]
fn item_the_handler_does_not_own_is_invalid_arg_naming_it() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let (other, _other_sessions) = Driven::new(&["zz"]);
    let w = World::new();
    w.register("h", handler);
    w.register("other", other);
    let error = w.refused(E_INVALIDARG, |m| {
        m.start_item_sync("h", ["a", "zz", "b"], NONE, None)
    });
    assert_eq!(
        error,
        Error::UnknownItem {
            handler: HandlerId::new("h").unwrap(),
            item: id("zz"),
        }
    );
    assert!(error.to_string().contains("`zz`"), "{error}");
    w.clean_run("h", &sessions, &["a", "b"]);
}

// SPEC 4, row "the same item twice in one request": accepted, counted once.
#[test]
fn the_same_item_twice_is_accepted_and_counted_once() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let w = World::new();
    w.register("h", handler);
    let ticket = w.start("h", &["a", "b", "a", "a"]);
    let session = next_session(&sessions);
    assert_eq!(session.names(), ["a", "b"]);
    session.succeed_all();
    let r = result(&ticket);
    assert_eq!(outcomes(&r), [("a", O::Succeeded), ("b", O::Succeeded)]);
    let notes = w.happened();
    assert_eq!(accepted(&notes), [[("a", Queued), ("b", Queued)]]);
    assert_eq!(started(&notes).len(), 1);
}

// SPEC 4, row "handler has PREVENT_START_SYNC": E_ACCESSDENIED, for both start calls.
#[test]
fn handler_prevent_start_sync_is_access_denied() {
    let (driven, sessions) = Driven::new(&["a"]);
    let handler = Live::new(driven.with_policies(HandlerPolicies::PREVENT_START_SYNC));
    let policies = handler.policies.clone();
    let w = World::new();
    w.register("h", handler);
    let denied = Error::AccessDenied(Denied::HandlerPolicy(HandlerPolicies::PREVENT_START_SYNC));
    for call in BOTH_STARTS {
        assert_eq!(w.refused(E_ACCESSDENIED, call), denied);
    }
    // Lift the policy: the refused calls left nothing behind.
    *policies.lock().unwrap() = HandlerPolicies::empty();
    w.manager.update_handler("h", ControlFlags::WAIT).unwrap();
    w.clean_run("h", &sessions, &["a"]);
}

// SPEC 4, row "a named item has item policy PREVENT_START_SYNC": E_ACCESSDENIED, naming the
// item; a handler sync leaves such an item out (DECISIONS 2).
#[test]
fn item_prevent_start_sync_is_access_denied() {
    let (driven, sessions) = Driven::new(&["a", "b", "c"]);
    let guarded = SyncItem::new("b", "B")
        .unwrap()
        .with_policies(ItemPolicies::PREVENT_START_SYNC);
    let handler = Live::new(driven.with_item(guarded));
    let items = handler.items.clone();
    let w = World::new();
    w.register("h", handler);
    let error = w.refused(E_ACCESSDENIED, |m| {
        m.start_item_sync("h", ["a", "b"], NONE, None)
    });
    assert_eq!(
        error,
        Error::AccessDenied(Denied::ItemPolicy {
            item: id("b"),
            policy: ItemPolicies::PREVENT_START_SYNC,
        })
    );
    let ticket = w
        .manager
        .start_handler_sync("h", NONE, None)
        .expect("a handler sync leaves b out");
    let session = next_session(&sessions);
    assert_eq!(session.names(), ["a", "c"]);
    session.succeed_all();
    assert_eq!(outcomes(&result(&ticket)), each(&["a", "c"], O::Succeeded));
    // Lift the policy: the refused call left nothing behind.
    items.lock().unwrap()[1] = SyncItem::new("b", "B").unwrap();
    w.manager.update_handler("h", ControlFlags::WAIT).unwrap();
    w.clean_run("h", &sessions, &["a", "b"]);
}

// SPEC 4, row "handler inactive": E_ACCESSDENIED naming the reason.
#[test]
fn inactive_handler_is_access_denied() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    w.manager
        .deactivate_handler("h", ControlFlags::WAIT)
        .unwrap();
    let denied = Error::AccessDenied(Denied::HandlerInactive);
    for call in BOTH_STARTS {
        assert_eq!(w.refused(E_ACCESSDENIED, call), denied);
    }
    w.manager.activate_handler("h", ControlFlags::WAIT).unwrap();
    w.clean_run("h", &sessions, &["a"]);
}

// SPEC 4, row "handler disabled": E_ACCESSDENIED naming the reason.
#[test]
fn disabled_handler_is_access_denied() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    w.manager.disable_handler("h", ControlFlags::WAIT).unwrap();
    let denied = Error::AccessDenied(Denied::HandlerDisabled);
    for call in BOTH_STARTS {
        assert_eq!(w.refused(E_ACCESSDENIED, call), denied);
    }
    w.manager.enable_handler("h", ControlFlags::WAIT).unwrap();
    w.clean_run("h", &sessions, &["a"]);
}

// SPEC 4, row "a named item disabled": E_ACCESSDENIED naming the item; the enabled items named
// with it are not queued.
#[test]
fn disabled_named_item_is_access_denied() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let w = World::new();
    w.register("h", handler);
    w.manager
        .disable_item("h", "b", ControlFlags::WAIT)
        .unwrap();
    let error = w.refused(E_ACCESSDENIED, |m| {
        m.start_item_sync("h", ["a", "b"], NONE, None)
    });
    assert_eq!(error, Error::AccessDenied(Denied::ItemDisabled(id("b"))));
    assert!(error.to_string().contains("`b`"), "{error}");
    w.manager.enable_item("h", "b", ControlFlags::WAIT).unwrap();
    w.clean_run("h", &sessions, &["a", "b"]);
}

// SPEC 4, same row: "start_handler_sync simply leaves disabled items out".
#[test]
fn handler_sync_leaves_disabled_items_out() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    w.manager
        .disable_item("h", "b", ControlFlags::WAIT)
        .unwrap();
    let _earlier = w.happened();
    let ticket = w.manager.start_handler_sync("h", NONE, None).unwrap();
    let session = next_session(&sessions);
    assert_eq!(session.names(), ["a", "c"]);
    session.succeed_all();
    let r = result(&ticket);
    assert_eq!(r.status, O::Succeeded);
    assert_eq!(outcomes(&r), each(&["a", "c"], O::Succeeded));
    assert_eq!(accepted(&w.happened()), [each(&["a", "c"], Queued)]);
}

// SPEC 4, row "handler disconnected": accepted; completes at once as `Disconnected`; no
// session starts and nothing is queued (DECISIONS 3).
#[test]
fn disconnected_handler_completes_at_once_as_disconnected() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let connected = handler.connected.clone();
    let w = World::new();
    w.register("h", handler);
    connected.store(false, Ordering::SeqCst);
    let _earlier = w.happened();

    let named = w.start("h", &["a", "b", "a"]);
    let r = result(&named);
    assert_eq!(r.status, O::Disconnected);
    assert_eq!(outcomes(&r), each(&["a", "b"], O::Disconnected));
    let all = w.manager.start_handler_sync("h", NONE, None).unwrap();
    let r = result(&all);
    assert_eq!(r.status, O::Disconnected);
    assert_eq!(outcomes(&r), each(&["a", "b"], O::Disconnected));

    let notes = w.happened();
    let settled = each(&["a", "b"], Settled(O::Disconnected));
    assert_eq!(accepted(&notes), [settled.clone(), settled]);
    assert_eq!(completed(&notes), [named.request(), all.request()]);
    let kinds: Vec<&str> = notes.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "RequestAccepted",
            "RequestCompleted",
            "RequestAccepted",
            "RequestCompleted"
        ],
        "no session, each completed at once"
    );
    // Reconnected, the same items are queued new: the disconnected requests queued nothing.
    connected.store(true, Ordering::SeqCst);
    w.clean_run("h", &sessions, &["a", "b"]);
}

// SPEC 4, row "manager shut down": E_UNEXPECTED (`Error::ShutDown`), checked first
// (DECISIONS 1), and no session starts.
#[test]
fn shut_down_manager_is_unexpected() {
    let (handler, sessions) = Driven::new(&["a"]);
    let manager = manager();
    manager
        .register_handler("h", handler, ControlFlags::WAIT)
        .unwrap();
    assert_eq!(manager.shutdown(), ShutdownReport::default());
    let calls: [StartCall; 5] = [
        |m| m.start_handler_sync("h", NONE, None),
        |m| m.start_item_sync("h", ["a"], JOIN, None),
        |m| m.request(SyncRequest::handler("h").items(["a"]).context(1_u8)),
        |m| m.start_handler_sync("nobody", NONE, None),
        |m| m.start_item_sync("h", ["a"], SyncControlFlags::from_bits_retain(0x2), None),
    ];
    for call in calls {
        let error = call(&manager).expect_err("refused after shutdown");
        assert_eq!(error, Error::ShutDown);
        assert_eq!(error.hresult(), E_UNEXPECTED);
    }
    assert_eq!(
        manager.start_sync_all(NONE).map(|t| t.len()),
        Err(Error::ShutDown)
    );
    assert!(sessions.try_recv().is_err(), "no session started");
}

// SPEC 4, row "manager shut down", for `start_sync_all`: DECISIONS 1 puts the shutdown check
// before the flags check for every start call, as the engine's `start_sync_all` does.
#[test]
fn start_sync_all_after_shutdown_is_unexpected_even_with_unknown_flags() {
    let (handler, _sessions) = Driven::new(&["a"]);
    let manager = manager();
    manager
        .register_handler("h", handler, ControlFlags::WAIT)
        .unwrap();
    manager.shutdown();
    let error = manager
        .start_sync_all(SyncControlFlags::from_bits_retain(0x2))
        .map(|t| t.len())
        .expect_err("refused after shutdown");
    assert_eq!(error, Error::ShutDown);
    assert_eq!(error.hresult(), E_UNEXPECTED);
}

// SPEC 4, row "start_handler_sync on a handler with no enabled items": accepted; completes at
// once as `Succeeded` with zero items; no session starts.
#[test]
fn handler_sync_with_no_enabled_items_succeeds_with_zero_items() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let handler = handler
        .with_item(SyncItem::new("a", "A").unwrap().with_enabled(false))
        .with_item(SyncItem::new("b", "B").unwrap().with_enabled(false));
    let (empty, empty_sessions) = Driven::new(&[]);
    let w = World::new();
    w.register("h", handler);
    w.register("empty", empty);
    let _earlier = w.happened();
    for name in ["h", "empty"] {
        let r = result(&w.manager.start_handler_sync(name, NONE, None).unwrap());
        assert_eq!((r.status, r.items.len()), (O::Succeeded, 0), "{name}");
    }
    let notes = w.happened();
    assert_eq!(accepted(&notes), [vec![], vec![]]);
    assert_eq!(completed(&notes).len(), 2);
    assert!(started(&notes).is_empty(), "{notes:#?}");
    // Enabled again, `a` is queued new: the empty request queued nothing.
    w.manager.enable_item("h", "a", ControlFlags::WAIT).unwrap();
    w.clean_run("h", &sessions, &["a"]);
    assert!(empty_sessions.try_recv().is_err());
}

// =============================================================================================
// SPEC section 5: current versus queued
// =============================================================================================

// SPEC 5: "Per handler, at most one session runs at a time, unless the handler has
// SUPPORTS_CONCURRENT_SESSIONS"; other handlers are not held up.
#[test]
fn one_session_at_a_time_per_handler() {
    let (mut h, h_sessions) = Driven::new(&["a", "b", "c"]);
    // A limit means nothing without SUPPORTS_CONCURRENT_SESSIONS.
    h.max_concurrent = Some(3);
    let (g, g_sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", h);
    w.register("g", g);
    let first = w.start("h", &["a"]);
    let s1 = next_session(&h_sessions);
    let _earlier = w.happened();

    let second = w.start("h", &["b"]);
    let third = w.start("h", &["c"]);
    let other = w.start("g", &["a"]);
    let g1 = next_session(&g_sessions);
    assert_eq!(
        started(&w.happened()),
        [("g", vec!["a"])],
        "h is busy, g is not"
    );
    g1.succeed_all();
    assert_eq!(result(&other).status, O::Succeeded);

    s1.succeed_all();
    assert_eq!(result(&first).status, O::Succeeded);
    let s2 = next_session(&h_sessions);
    assert_eq!(s2.names(), ["b", "c"]);
    s2.succeed_all();
    assert_eq!(result(&second).status, O::Succeeded);
    assert_eq!(result(&third).status, O::Succeeded);
    assert_eq!(started(&w.happened()), [("h", vec!["b", "c"])]);
}

// SPEC 5: a SUPPORTS_CONCURRENT_SESSIONS handler runs several sessions "up to a configurable
// limit": its own `max_concurrent_sessions`.
#[test]
fn concurrent_handler_runs_sessions_up_to_its_own_limit() {
    let (mut handler, sessions) = Driven::new(&["a", "b", "c", "d"]);
    handler.capabilities = HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS;
    handler.max_concurrent = Some(2);
    let w = World::new();
    w.register("h", handler);
    let tickets: Vec<SyncTicket> = ["a", "b", "c", "d"]
        .iter()
        .map(|i| w.start("h", &[i]))
        .collect();
    let [s1, s2] = next_sessions(&sessions);
    assert_eq!(
        (s1.names(), s2.names()),
        (vec!["a".into()], vec!["b".into()])
    );
    assert_eq!(
        started(&w.happened()),
        [("h", vec!["a"]), ("h", vec!["b"])],
        "the limit is 2"
    );

    s1.succeed_all();
    let s3 = next_session(&sessions);
    assert_eq!(s3.names(), ["c", "d"], "one freed slot, all pending items");
    assert_eq!(started(&w.happened()).len(), 1);
    s2.succeed_all();
    s3.succeed_all();
    for t in &tickets {
        assert_eq!(result(t).status, O::Succeeded);
    }
    assert!(started(&w.happened()).is_empty());
}

// SPEC 5, same rule: without its own limit a concurrent handler takes the builder's
// `concurrent_sessions`.
#[test]
fn concurrent_handler_limit_defaults_to_the_builder_setting() {
    let (handler, sessions) = Driven::new(&["a", "b", "c", "d"]);
    let handler = handler.with_capabilities(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS);
    let w = World::built(SyncManager::builder().concurrent_sessions(3));
    w.register("h", handler);
    let tickets: Vec<SyncTicket> = ["a", "b", "c", "d"]
        .iter()
        .map(|i| w.start("h", &[i]))
        .collect();
    let [s1, s2, s3] = next_sessions(&sessions);
    assert_eq!(
        started(&w.happened()),
        [("h", vec!["a"]), ("h", vec!["b"]), ("h", vec!["c"])]
    );
    s1.succeed_all();
    let s4 = next_session(&sessions);
    assert_eq!(s4.names(), ["d"]);
    for s in [s2, s3, s4] {
        s.succeed_all();
    }
    for t in &tickets {
        assert_eq!(result(t).status, O::Succeeded);
    }
}

// SPEC 5: "one item is never in two running sessions at once: per-item non-reentrancy". An
// item held by a running session stays pending even when a slot is free.
#[test]
fn an_item_is_never_in_two_running_sessions() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let handler = handler.with_capabilities(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a", "b"]);
    let s1 = next_session(&sessions);
    let _earlier = w.happened();

    let second = w.start("h", &["b", "c"]);
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["c"], "b is held by session 1");
    let third = w.start("h", &["b"]);
    let notes = w.happened();
    assert_eq!(started(&notes), [("h", vec!["c"])]);
    assert_eq!(
        accepted(&notes),
        [vec![("b", Queued), ("c", Queued)], vec![("b", Merged)]]
    );

    let s2_id = s2.session.id();
    s2.succeed_all();
    assert!(
        started(&w.after_end_of(s2_id)).is_empty(),
        "b is still held by session 1"
    );
    s1.report(&["a", "b"], PS::Failed);
    s1.end(Finish::Return);
    let s3 = next_session(&sessions);
    assert_eq!(s3.names(), ["b"]);
    s3.succeed_all();
    assert_eq!(result(&first).status, O::Failed);
    assert_eq!(
        outcomes(&result(&second)),
        [("b", O::Succeeded), ("c", O::Succeeded)]
    );
    assert_eq!(outcomes(&result(&third)), [("b", O::Succeeded)]);
}

// SPEC 5: "A global limit caps running sessions across handlers ... handlers waiting for a
// slot get it in the order their oldest pending request arrived" (not registration order:
// DECISIONS 7 breaks ties only by registration).
#[test]
fn global_limit_caps_sessions_and_serves_the_oldest_request_first() {
    let w = World::built(SyncManager::builder().max_sessions(2));
    let mut sessions = std::collections::HashMap::new();
    for name in ["one", "two", "late", "early"] {
        let (handler, rx) = Driven::new(&["a", "b"]);
        w.register(name, handler);
        sessions.insert(name, rx);
    }
    let t_one = w.start("one", &["a"]);
    let t_two = w.start("two", &["a"]);
    let one = next_session(&sessions["one"]);
    let two = next_session(&sessions["two"]);
    let t_early = w.start("early", &["a"]);
    let t_late = w.start("late", &["a"]);
    let t_late2 = w.start("late", &["b"]);
    let t_early2 = w.start("early", &["b"]);
    let mut log = w.happened();
    assert_eq!(started(&log), [("one", vec!["a"]), ("two", vec!["a"])]);

    one.succeed_all();
    let early = next_session(&sessions["early"]);
    assert_eq!(early.names(), ["a", "b"]);
    let notes = w.happened();
    assert_eq!(started(&notes), [("early", vec!["a", "b"])], "late waits");
    log.extend(notes);
    two.succeed_all();
    let late = next_session(&sessions["late"]);
    assert_eq!(late.names(), ["a", "b"]);
    early.succeed_all();
    late.succeed_all();
    for t in [&t_one, &t_two, &t_early, &t_late, &t_late2, &t_early2] {
        assert_eq!(result(t).status, O::Succeeded);
    }
    log.extend(w.happened());

    // Over the whole run, never more than two sessions at once.
    let (mut running, mut most) = (0, 0);
    for note in &log {
        match note {
            Notification::SessionStarted { .. } => running += 1,
            Notification::SessionEnded { .. } => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    assert_eq!((most, running), (2, 0));
    assert_eq!(started(&log).len(), 4);
}

// SPEC 5, same rule with one slot: a handler whose session just ended does not jump the queue
// with a request newer than the one another handler has been waiting with ("so no handler
// starves").
#[test]
fn global_limit_does_not_let_the_finishing_handler_jump_the_queue() {
    let w = World::built(SyncManager::builder().max_sessions(1));
    let (busy, busy_sessions) = Driven::new(&["a", "b"]);
    let (waiting, waiting_sessions) = Driven::new(&["a"]);
    w.register("busy", busy);
    w.register("waiting", waiting);
    let t1 = w.start("busy", &["a"]);
    let s1 = next_session(&busy_sessions);
    let t2 = w.start("waiting", &["a"]);
    let t3 = w.start("busy", &["b"]);
    let _earlier = w.happened();

    s1.succeed_all();
    let s2 = next_session(&waiting_sessions);
    assert_eq!(started(&w.happened()), [("waiting", vec!["a"])]);
    s2.succeed_all();
    let s3 = next_session(&busy_sessions);
    assert_eq!(s3.names(), ["b"]);
    s3.succeed_all();
    for t in [&t1, &t2, &t3] {
        assert_eq!(result(t).status, O::Succeeded);
    }
}

// SPEC 5, way 1: with IGNORE_IF_ALREADY_SYNCING a currently-syncing item joins the running
// session: the request takes its outcome there and it is not queued again.
#[test]
fn ignore_if_already_syncing_joins_the_running_item() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a", "b"]);
    let s1 = next_session(&sessions);
    let _earlier = w.happened();

    let joiner = w.start_with("h", &["a"], JOIN);
    let mixed = w.start_with("h", &["c", "b"], JOIN);
    let s1_id = s1.session.id();
    assert_eq!(
        accepted(&w.happened()),
        [
            vec![("a", Joined(s1_id))],
            vec![("c", Queued), ("b", Joined(s1_id))]
        ]
    );
    // Outcomes reach a joined request only when the session ends (DECISIONS 8).
    s1.report(&["a"], PS::Failed);
    s1.report(&["b"], PS::Succeeded);
    assert!(joiner.try_result().is_none());
    s1.end(Finish::Return);

    let r = result(&joiner);
    assert_eq!(
        (r.status, outcomes(&r)),
        (O::Failed, vec![("a", O::Failed)])
    );
    assert_eq!(result(&first).status, O::Failed);
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["c"], "the joined items are not synced again");
    s2.succeed_all();
    assert_eq!(
        outcomes(&result(&mixed)),
        [("c", O::Succeeded), ("b", O::Succeeded)]
    );
    assert_eq!(started(&w.happened()), [("h", vec!["c"])]);
}

// One session's end decides many results: callbacks (run in the order results were decided)
// and tickets get them oldest request first, whatever items the requests wait on.
#[test]
fn one_sessions_results_arrive_oldest_request_first() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let w = World::new();
    w.register("h", handler);
    let (tx, arrived) = crossbeam_channel::unbounded();
    let start = |items: &[&str], flags| {
        let tx = tx.clone();
        let sink: Box<dyn SyncResult> = Box::new(move |r: &RequestResult| {
            let _ = tx.send(r.request);
        });
        w.manager
            .start_item_sync("h", items.iter().copied(), flags, Some(sink))
            .expect("the request is accepted")
    };
    let first = start(&["a", "b"], SyncControlFlags::NONE);
    let s1 = next_session(&sessions);
    // Item by item, the joiner of "a" would come out before the older joiner of "b".
    let joiners: Vec<SyncTicket> = [["b"], ["a"], ["b"]]
        .iter()
        .map(|items| start(items, JOIN))
        .collect();
    s1.succeed_all();
    let mut oldest_first = vec![first.request()];
    oldest_first.extend(joiners.iter().map(SyncTicket::request));
    let got: Vec<RequestId> = (0..oldest_first.len())
        .map(|_| arrived.recv_timeout(PATIENCE).expect("every callback runs"))
        .collect();
    assert_eq!(got, oldest_first);
    for t in joiners.iter().chain([&first]) {
        assert_eq!(result(t).status, O::Succeeded);
    }
}

// SPEC 5, way 2: "Without the flag (NONE), an item that is running now and requested again is
// synced again in a later session."
#[test]
fn without_the_flag_a_running_item_is_synced_again_later() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a"]);
    let s1 = next_session(&sessions);
    let _earlier = w.happened();

    let again = w.start("h", &["a"]);
    let notes = w.happened();
    assert_eq!(accepted(&notes), [[("a", Queued)]]);
    assert!(started(&notes).is_empty());

    s1.report(&["a"], PS::Failed);
    s1.end(Finish::Return);
    assert_eq!(result(&first).status, O::Failed);
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["a"]);
    assert!(again.try_result().is_none(), "served by session 2, not 1");
    s2.succeed_all();
    assert_eq!(result(&again).status, O::Succeeded);
}

// SPEC 5, way 2: "If already pending, it is not added twice (dedup); the request just waits on
// the existing entry."
#[test]
fn pending_items_are_deduplicated_and_merged() {
    let (handler, sessions) = Driven::new(&["a", "b", "c", "d"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a"]);
    let s1 = next_session(&sessions);
    let _earlier = w.happened();

    let r2 = w.start("h", &["b", "c"]);
    let r3 = w.start("h", &["c", "b", "d"]);
    let r4 = w.start("h", &["d", "d", "b"]);
    let notes = w.happened();
    assert_eq!(
        accepted(&notes),
        [
            vec![("b", Queued), ("c", Queued)],
            vec![("c", Merged), ("b", Merged), ("d", Queued)],
            vec![("d", Merged), ("b", Merged)],
        ]
    );
    assert!(started(&notes).is_empty());

    s1.succeed_all();
    let s2 = next_session(&sessions);
    assert_eq!(
        s2.names(),
        ["b", "c", "d"],
        "each once, first-requested order"
    );
    s2.report(&["c"], PS::Failed);
    s2.report(&["b", "d"], PS::Succeeded);
    s2.end(Finish::Return);
    assert_eq!(result(&first).status, O::Succeeded);
    assert_eq!(
        outcomes(&result(&r2)),
        [("b", O::Succeeded), ("c", O::Failed)]
    );
    assert_eq!(
        outcomes(&result(&r3)),
        [("c", O::Failed), ("b", O::Succeeded), ("d", O::Succeeded)]
    );
    assert_eq!(
        outcomes(&result(&r4)),
        [("d", O::Succeeded), ("b", O::Succeeded)]
    );
    assert_eq!(started(&w.happened()).len(), 1);
}

// SPEC 5: "An item that already reached a terminal state in the running session is not
// 'currently syncing': a new request for it is queued even with the flag (no stale joins)."
#[test]
fn no_stale_join_after_a_terminal_report() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a", "b"]);
    let s1 = next_session(&sessions);
    s1.report(&["a"], PS::Succeeded);
    let _earlier = w.happened();

    let late = w.start_with("h", &["a", "b"], JOIN);
    let s1_id = s1.session.id();
    assert_eq!(
        accepted(&w.happened()),
        [[("a", Queued), ("b", Joined(s1_id))]]
    );
    s1.report(&["b"], PS::Succeeded);
    s1.end(Finish::Return);
    assert_eq!(result(&first).status, O::Succeeded);
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["a"]);
    s2.report(&["a"], PS::Failed);
    s2.end(Finish::Return);
    let r = result(&late);
    assert_eq!(outcomes(&r), [("a", O::Failed), ("b", O::Succeeded)]);
}

// SPEC 5 with DECISIONS 5: an item with a cancel requested is not "currently syncing" either,
// so a joining request does not inherit a cancel it never asked for.
#[test]
fn a_running_item_asked_to_cancel_is_not_joined() {
    let (handler, sessions) = Driven::new(&["a", "b"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a", "b"]);
    let s1 = next_session(&sessions);
    let stopped = w.manager.stop_item_sync("h", ["a"]).unwrap();
    assert_eq!(stopped.cancel_requests, 1);
    let _earlier = w.happened();

    let late = w.start_with("h", &["a"], JOIN);
    assert_eq!(accepted(&w.happened()), [[("a", Queued)]]);
    s1.report(&["a"], PS::Canceled);
    s1.report(&["b"], PS::Succeeded);
    s1.end(Finish::Return);
    assert_eq!(result(&first).status, O::Canceled);
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["a"]);
    s2.succeed_all();
    assert_eq!(result(&late).status, O::Succeeded);
}

/// The items request `k` of thread `t` names in the fifty-request test: two of twenty pool
/// items (sometimes the same one twice) and, every fourth request, the running item `x`.
fn pool_request(t: usize, k: usize) -> Vec<String> {
    let mut items = vec![
        format!("p{}", (t * 7 + k * 3) % 20),
        format!("p{}", (t + 2 * k) % 20),
    ];
    if k.is_multiple_of(4) {
        items.push("x".into());
    }
    items
}

// SPEC 5: "N requests arriving while H is busy produce exactly one more session, not N", with
// "all pending items of H ... in first-requested order"; SPEC 7: exactly one result each.
// Fifty requests from five threads released together by a barrier.
#[test]
fn fifty_requests_while_busy_make_exactly_one_next_session() {
    const THREADS: usize = 5;
    const PER_THREAD: usize = 10;
    let pool: Vec<String> = (0..20).map(|n| format!("p{n}")).collect();
    let mut names: Vec<&str> = pool.iter().map(String::as_str).collect();
    names.push("x");
    let (handler, sessions) = Driven::new(&names);
    let (idle, _idle_sessions) = Driven::new(&[]);
    let w = World::new();
    w.register("h", handler);
    w.register("idle", idle);
    let first = w.start("h", &["x"]);
    let busy = next_session(&sessions);
    let _earlier = w.happened();

    let (done_tx, done) = crossbeam_channel::unbounded::<RequestId>();
    let barrier = Barrier::new(THREADS);
    let tickets: Vec<(SyncTicket, Vec<String>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, manager, done_tx) = (&barrier, &w.manager, done_tx.clone());
                scope.spawn(move || {
                    barrier.wait();
                    (0..PER_THREAD)
                        .map(|k| {
                            let items = pool_request(t, k);
                            let done_tx = done_tx.clone();
                            let request = SyncRequest::handler("h").items(&items).on_result(
                                move |r: &RequestResult| {
                                    let _ = done_tx.send(r.request);
                                },
                            );
                            (manager.request(request).expect("accepted"), items)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a requesting thread panicked"))
            .collect()
    });
    assert_eq!(tickets.len(), THREADS * PER_THREAD);

    // The scheduler saw them in some order: acceptance order is "first-requested" order.
    let notes = w.happened();
    assert!(started(&notes).is_empty(), "h is busy: {notes:#?}");
    let order = accepted_ids(&notes);
    let mut ticket_ids: Vec<RequestId> = tickets.iter().map(|(t, _)| t.request()).collect();
    ticket_ids.sort();
    assert_eq!(order, ticket_ids, "accepted in request-ID order, each once");
    let acceptances = accepted(&notes);
    let mut union: Vec<&str> = Vec::new();
    for item in acceptances.iter().flatten().map(|(i, _)| *i) {
        if !union.contains(&item) {
            union.push(item);
        }
    }
    let queued: Vec<&str> = acceptances
        .iter()
        .flatten()
        .filter(|(_, d)| *d == Queued)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(queued, union, "queued at the first request, merged after");
    assert!(union.contains(&"x"), "the running item is queued again");

    busy.succeed_all();
    assert_eq!(result(&first).status, O::Succeeded);
    let next = next_session(&sessions);
    assert_eq!(next.names(), union);
    next.succeed_all();
    for (ticket, asked) in &tickets {
        let r = result(ticket);
        let mut once: Vec<&str> = Vec::new();
        for item in asked {
            if !once.contains(&item.as_str()) {
                once.push(item);
            }
        }
        assert_eq!(outcomes(&r), each(&once, O::Succeeded));
    }
    let notes = w.happened();
    assert_eq!(started(&notes).len(), 1, "exactly one more session");
    let mut done_ids = completed(&notes);
    done_ids.retain(|r| *r != first.request());
    done_ids.sort();
    assert_eq!(done_ids, ticket_ids, "one RequestCompleted each");

    // Every callback ran exactly once: fifty distinct calls, then nothing before the result
    // of a later request (callbacks run in the order results were decided).
    let mut called: Vec<RequestId> = (0..tickets.len())
        .map(|_| done.recv_timeout(PATIENCE).expect("a callback ran"))
        .collect();
    called.sort();
    assert_eq!(called, ticket_ids);
    let sentinel_tx = done_tx.clone();
    let sentinel = w
        .manager
        .request(
            SyncRequest::handler("idle").on_result(move |r: &RequestResult| {
                let _ = sentinel_tx.send(r.request);
            }),
        )
        .unwrap();
    assert_eq!(done.recv_timeout(PATIENCE), Ok(sentinel.request()));
}

// SPEC 5: "A running handler can look at its pending set (query_for_additional_items: the
// pending item IDs and the context values of the pending requests)". Items held by a running
// session are not offered (DECISIONS 14: they cannot be added).
#[test]
fn query_for_additional_items_shows_pending_items_and_their_requests() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a"]);
    let s1 = next_session(&sessions);
    let empty = s1.session.query_for_additional_items().unwrap();
    assert!(empty.items.is_empty() && empty.requests.is_empty());

    let r2 = w
        .manager
        .request(
            SyncRequest::handler("h")
                .items(["b"])
                .context("second")
                .reason(TriggerReason::Scheduled),
        )
        .unwrap();
    let r3 = w
        .manager
        .request(SyncRequest::handler("h").items(["c", "b"]).context(3_u32))
        .unwrap();
    let r4 = w.start("h", &["a"]); // pending, but held by this session
    let pending = s1.session.query_for_additional_items().unwrap();
    assert_eq!(pending.items, [id("b"), id("c")]);
    let requests: Vec<_> = pending
        .requests
        .iter()
        .map(|r| {
            (
                r.request,
                r.reason,
                context_of::<&str>(r),
                context_of::<u32>(r),
            )
        })
        .collect();
    assert_eq!(
        requests,
        [
            (r2.request(), TriggerReason::Scheduled, Some("second"), None),
            (r3.request(), TriggerReason::Manual, None, Some(3)),
        ]
    );
    s1.succeed_all();
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["b", "c", "a"]);
    s2.succeed_all();
    for t in [&first, &r2, &r3, &r4] {
        assert_eq!(result(t).status, O::Succeeded);
    }
}

// SPEC 5: add_item_to_session pulls a pending item into the running session: "from then on
// that item is served by the running session, and the requests waiting on it take its outcome
// there."
#[test]
fn add_item_to_session_serves_the_pulled_items_requests() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a"]);
    let s1 = next_session(&sessions);
    let wants_b = w.start("h", &["b"]);
    let wants_cb = w.start("h", &["c", "b"]);

    s1.session.add_item_to_session(&id("b")).unwrap();
    let left = s1.session.query_for_additional_items().unwrap();
    assert_eq!(left.items, [id("c")]);
    assert_eq!(
        left.requests.iter().map(|r| r.request).collect::<Vec<_>>(),
        [wants_cb.request()]
    );
    s1.report(&["a"], PS::Succeeded);
    s1.report(&["b"], PS::Failed); // the pulled item's outcome, from session 1
    s1.end(Finish::Return);

    assert_eq!(result(&first).status, O::Succeeded);
    let r = result(&wants_b);
    assert_eq!(
        (r.status, outcomes(&r)),
        (O::Failed, vec![("b", O::Failed)])
    );
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["c"], "b was served by session 1");
    s2.succeed_all();
    assert_eq!(
        outcomes(&result(&wants_cb)),
        [("c", O::Succeeded), ("b", O::Failed)]
    );
    let notes = w.happened();
    assert_eq!(
        ended(&notes),
        [
            vec![("a", O::Succeeded), ("b", O::Failed)],
            vec![("c", O::Succeeded)]
        ]
    );
}

// SPEC 5: "Adding an item already in the session is an invalid-argument error" (and the other
// refusals of DECISIONS 14, all E_INVALIDARG and changing nothing).
#[test]
fn add_item_already_in_the_session_is_invalid_arg() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    let first = w.start("h", &["a"]);
    let s1 = next_session(&sessions);
    let later = w.start("h", &["b"]);
    s1.session.add_item_to_session(&id("b")).unwrap();

    let add = |item: &str| s1.session.add_item_to_session(&id(item)).unwrap_err();
    for (item, error) in [
        ("a", Error::ItemAlreadyInSession(id("a"))),
        ("b", Error::ItemAlreadyInSession(id("b"))),
        ("c", Error::ItemNotPending(id("c"))),
        (
            "zz",
            Error::UnknownItem {
                handler: HandlerId::new("h").unwrap(),
                item: id("zz"),
            },
        ),
    ] {
        let got = add(item);
        assert_eq!((got.hresult(), &got), (E_INVALIDARG, &error));
    }
    w.manager.check_consistency().unwrap();
    // The handler's `items` were fixed at the start: the pulled item is reported by name.
    s1.report(&["a", "b"], PS::Succeeded);
    s1.end(Finish::Return);
    assert_eq!(outcomes(&result(&first)), [("a", O::Succeeded)]);
    assert_eq!(outcomes(&result(&later)), [("b", O::Succeeded)]);
    assert_eq!(
        started(&w.happened()),
        [("h", vec!["a"])],
        "b was not queued again"
    );
}

// SPEC 1: a request carries "an optional opaque context value ... and a trigger reason (manual
// unless said otherwise)"; they reach the handler through `SyncSession::requests()`, for every
// request a session serves.
#[test]
fn trigger_reason_and_context_reach_the_handler() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    let first = w
        .manager
        .request(
            SyncRequest::handler("h")
                .items(["a"])
                .context("first")
                .reason(TriggerReason::Scheduled),
        )
        .unwrap();
    let s1 = next_session(&sessions);
    let served = s1.session.requests();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].request, first.request());
    assert_eq!(served[0].reason, TriggerReason::Scheduled);
    assert_eq!(context_of::<&str>(&served[0]), Some("first"));

    let idle = w
        .manager
        .request(
            SyncRequest::handler("h")
                .items(["b"])
                .context(42_u64)
                .reason(TriggerReason::Idle),
        )
        .unwrap();
    let plain = w.start("h", &["c", "b"]);
    let whole = w
        .manager
        .request(SyncRequest::handler("h").reason(TriggerReason::Connect))
        .unwrap();
    s1.succeed_all();
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["b", "c", "a"]);
    let served: Vec<_> = s2
        .session
        .requests()
        .iter()
        .map(|r| {
            (
                r.request,
                r.reason,
                context_of::<u64>(r),
                r.context.is_some(),
            )
        })
        .collect();
    assert_eq!(
        served,
        [
            (idle.request(), TriggerReason::Idle, Some(42), true),
            (plain.request(), TriggerReason::Manual, None, false),
            (whole.request(), TriggerReason::Connect, None, false),
        ]
    );
    s2.succeed_all();
    for t in [&first, &idle, &plain, &whole] {
        assert_eq!(result(t).status, O::Succeeded);
    }
}

// =============================================================================================
// SPEC section 7: notifications that explain merge decisions
// =============================================================================================

// SPEC 7, Notifications: "request accepted (with how many items were queued new, merged into
// an existing pending entry, or joined a running session)".
/// The dispositions of `a,b`; `a` joining; `c`; `c,a`, with session `s` running `a,b`.
fn four_requests_table(s: SessionId) -> Vec<Vec<(&'static str, Disposition)>> {
    vec![
        vec![("a", Queued), ("b", Queued)],
        vec![("a", Joined(s))],
        vec![("c", Queued)],
        vec![("c", Merged), ("a", Queued)],
    ]
}

#[test]
fn request_accepted_says_queued_merged_or_joined_per_item() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    let t1 = w.start("h", &["a", "b"]);
    let s1 = next_session(&sessions);
    let t2 = w.start_with("h", &["a"], JOIN);
    let t3 = w.start("h", &["c"]);
    let t4 = w.start("h", &["c", "a"]);
    let t5 = w.start_with("h", &["b", "c", "a"], JOIN);

    let notes = w.happened();
    let s = s1.session.id();
    let mut expected = four_requests_table(s);
    expected.push(vec![("b", Joined(s)), ("c", Merged), ("a", Joined(s))]);
    assert_eq!(accepted(&notes), expected);
    let tickets = [&t1, &t2, &t3, &t4, &t5];
    let ids: Vec<RequestId> = tickets.iter().map(|t| t.request()).collect();
    assert_eq!(accepted_ids(&notes), ids);
    let reasons: Vec<(&str, TriggerReason)> = notes
        .iter()
        .filter_map(|n| match n {
            Notification::RequestAccepted {
                handler, reason, ..
            } => Some((handler.as_str(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [("h", TriggerReason::Manual); 5]);

    s1.succeed_all();
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["c", "a"]);
    s2.succeed_all();
    for t in tickets {
        assert_eq!(result(t).status, O::Succeeded);
    }
}

/// A notification's kind, for order checks.
fn kind(note: &Notification) -> &'static str {
    match note {
        Notification::RequestAccepted { .. } => "RequestAccepted",
        Notification::SessionStarted { .. } => "SessionStarted",
        Notification::ItemProgress { .. } => "ItemProgress",
        Notification::SessionEnded { .. } => "SessionEnded",
        Notification::RequestCompleted(_) => "RequestCompleted",
        _ => "other",
    }
}

// SPEC 7, Notifications: for one request on an idle handler the stream reads accepted,
// session started, progress, session ended, request completed, and they agree with each other
// and with the ticket.
#[test]
fn notifications_of_a_simple_sync_arrive_in_order() {
    let (handler, sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    let _registered = w.happened();
    let ticket = w.start("h", &["a"]);
    let s1 = next_session(&sessions);
    let session = s1.session.id();
    s1.succeed_all();
    let r = result(&ticket);

    let notes = w.happened();
    let kinds: Vec<&str> = notes.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "RequestAccepted",
            "SessionStarted",
            "ItemProgress",
            "SessionEnded",
            "RequestCompleted"
        ]
    );
    match &notes[..] {
        [
            Notification::RequestAccepted { request, .. },
            Notification::SessionStarted { session: s, .. },
            Notification::ItemProgress {
                session: p,
                progress:
                    Progress {
                        status: PS::Succeeded,
                        ..
                    },
                ..
            },
            Notification::SessionEnded {
                session: e,
                outcomes,
                error: None,
                ..
            },
            Notification::RequestCompleted(done),
        ] => {
            assert_eq!(*request, ticket.request());
            assert_eq!((*s, *p, *e), (session, session, session));
            assert_eq!(outcomes, &[(id("a"), O::Succeeded)]);
            assert_eq!(done, &r);
        }
        other => panic!("unexpected notifications: {other:#?}"),
    }
}

/// `request_many` is each request in turn, made back to back under one lock: each gets its
/// own ticket, dispositions and result, exactly as the calls one by one (the table of
/// `request_accepted_says_queued_merged_or_joined_per_item`), and a refused request is refused
/// on its own, in its place, without changing anything for the others.
#[test]
fn request_many_is_each_request_in_turn_and_refuses_only_the_bad_ones() {
    let (handler, sessions) = Driven::new(&["a", "b", "c"]);
    let w = World::new();
    w.register("h", handler);
    let _earlier = w.happened();
    let out = w.manager.request_many([
        SyncRequest::handler("h").items(["a", "b"]),
        SyncRequest::handler("nobody").items(["a"]),
        SyncRequest::handler("h").items(["a"]).flags(JOIN),
        SyncRequest::handler("h").items(["zz"]),
        SyncRequest::handler("h").items(["c"]),
        SyncRequest::handler("").items(["a"]),
        SyncRequest::handler("h").items(["c", "a"]),
    ]);
    assert_eq!(out.len(), 7, "one answer per request");
    assert!(
        matches!(out[1], Err(Error::UnknownHandler(_))),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(out[3], Err(Error::UnknownItem { .. })),
        "{:?}",
        out[3]
    );
    assert!(matches!(out[5], Err(Error::InvalidId(_))), "{:?}", out[5]);
    let tickets: Vec<&SyncTicket> = [0, 2, 4, 6]
        .into_iter()
        .map(|i| out[i].as_ref().expect("accepted"))
        .collect();

    let notes = w.happened();
    let s1 = next_session(&sessions);
    assert_eq!(s1.names(), ["a", "b"]);
    let s = s1.session.id();
    assert_eq!(accepted(&notes), four_requests_table(s));
    let ids: Vec<RequestId> = tickets.iter().map(|t| t.request()).collect();
    assert_eq!(accepted_ids(&notes), ids);

    s1.succeed_all();
    let s2 = next_session(&sessions);
    assert_eq!(s2.names(), ["c", "a"]);
    s2.succeed_all();
    for t in tickets {
        assert_eq!(result(t).status, O::Succeeded);
    }
    assert_eq!(w.manager.check_consistency(), Ok(()));
}

/// After shutdown every request of a bunch is refused, one answer each.
#[test]
fn request_many_after_shutdown_refuses_every_request() {
    let (handler, _sessions) = Driven::new(&["a"]);
    let w = World::new();
    w.register("h", handler);
    w.manager.shutdown();
    let out = w
        .manager
        .request_many((0..3).map(|_| SyncRequest::handler("h").items(["a"])));
    assert_eq!(out.len(), 3);
    assert!(
        out.iter().all(|r| matches!(r, Err(Error::ShutDown))),
        "{out:?}"
    );
    // An empty bunch is an empty answer.
    assert!(w.manager.request_many([]).is_empty());
}
