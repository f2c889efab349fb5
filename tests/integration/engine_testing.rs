//! The engine's test helpers as a user meets them: `syncmgr::engine::testing` (the driver
//! and the operations), always, and `syncmgr::strategies` with the `proptest` feature
//! (`cargo test --features proptest --test integration engine_testing`).

use std::time::Duration;

use syncmgr::engine::testing::{Applied, Driver, Op};
use syncmgr::engine::{Action, Engine, HandlerSpec, Withdrawn};
use syncmgr::{
    EngineConfig, Error, HandlerId, ItemId, Outcome, SessionId, SyncControlFlags, SyncPolicy, Time,
};

const NONE: SyncControlFlags = SyncControlFlags::NONE;

fn hid(s: &str) -> HandlerId {
    HandlerId::new(s).unwrap()
}

fn iid(s: &str) -> ItemId {
    ItemId::new(s).unwrap()
}

/// `mail` (inbox, sent) and `photos` (2025, 2026), with this global session limit.
fn driver(max_sessions: usize) -> Driver {
    let config = EngineConfig {
        max_sessions,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config).unwrap();
    engine
        .register_handler(HandlerSpec::new(hid("mail")).items([iid("inbox"), iid("sent")]))
        .unwrap();
    engine
        .register_handler(HandlerSpec::new(hid("photos")).items([iid("2025"), iid("2026")]))
        .unwrap();
    Driver::new(engine)
}

/// The sessions the recorded actions started, with their handlers, in start order.
fn starts(driver: &Driver) -> Vec<(SessionId, String)> {
    driver
        .actions()
        .iter()
        .filter_map(|a| match a {
            Action::StartSession {
                session, handler, ..
            } => Some((*session, handler.to_string())),
            _ => None,
        })
        .collect()
}

fn succeed(_: &HandlerId, _: &ItemId) -> Outcome {
    Outcome::Succeeded
}

#[test]
fn the_driver_marks_started_sessions_and_records_actions_in_order() {
    let mut d = driver(8);
    let request = d
        .engine_mut()
        .start_item_sync(&hid("mail"), &[iid("inbox"), iid("sent")], NONE)
        .unwrap()
        .request;
    // The start is still in the engine's queue until the driver takes it.
    assert!(d.actions().is_empty());
    assert_eq!(d.pump(), 1);
    let started = starts(&d);
    let [(session, handler)] = &started[..] else {
        panic!("one session: {:?}", d.actions())
    };
    let session = *session;
    assert_eq!(handler, "mail");
    assert!(d.engine().session_view(session).unwrap().started);
    assert_eq!(d.sessions_of(&hid("mail")), [session]);
    assert!(d.sessions_of(&hid("photos")).is_empty());

    let ended = d
        .finish(session, |_, item| match item.as_str() {
            "sent" => Outcome::Failed,
            _ => Outcome::Succeeded,
        })
        .unwrap();
    assert_eq!(
        ended.outcomes,
        [
            (iid("inbox"), Outcome::Succeeded),
            (iid("sent"), Outcome::Failed)
        ]
    );
    let result = d.result_of(request).unwrap();
    assert_eq!(result.status, Outcome::Failed);
    assert_eq!(result.outcome_of(&iid("inbox")), Some(Outcome::Succeeded));
    assert!(matches!(
        d.actions(),
        [Action::StartSession { .. }, Action::Deliver(r)] if r.request == request
    ));

    assert_eq!(d.take_results().len(), 1);
    assert!(d.results().is_empty());
    assert_eq!(d.take_actions().len(), 2);
    assert!(d.actions().is_empty());
}

#[test]
fn finish_all_runs_the_queue_in_order_and_each_request_gets_one_result() {
    // One global slot: photos waits for mail's session, and mail's second request waits
    // behind photos, whose request is older.
    let mut d = driver(1);
    let mut requests = Vec::new();
    for (handler, item) in [("mail", "inbox"), ("photos", "2025"), ("mail", "sent")] {
        let accepted = d
            .engine_mut()
            .start_item_sync(&hid(handler), &[iid(item)], NONE);
        requests.push(accepted.unwrap().request);
    }
    let mut seen = Vec::new();
    let ended = d
        .finish_all(|h, item| {
            seen.push(format!("{h}/{item}"));
            Outcome::Succeeded
        })
        .unwrap();
    assert_eq!(ended, 3);
    assert_eq!(seen, ["mail/inbox", "photos/2025", "mail/sent"]);
    let handlers: Vec<String> = starts(&d).into_iter().map(|(_, h)| h).collect();
    assert_eq!(handlers, ["mail", "photos", "mail"]);
    let delivered: Vec<_> = d.results().iter().map(|r| r.request).collect();
    assert_eq!(delivered, requests);
    assert!(d.engine().is_idle());
    // Nothing runs: a step does nothing, and finish_all ends nothing.
    assert_eq!(d.step(succeed).unwrap(), None);
    assert_eq!(d.finish_all(succeed).unwrap(), 0);
}

#[test]
fn a_session_that_is_not_running_is_an_error_not_a_panic() {
    let mut d = driver(8);
    let _ = d
        .engine_mut()
        .start_handler_sync(&hid("mail"), NONE)
        .unwrap();
    d.pump();
    let (session, _) = starts(&d)[0].clone();
    let _ = d.finish(session, succeed).unwrap();
    assert!(matches!(
        d.finish(session, succeed),
        Err(Error::UnknownSession(s)) if s == session
    ));

    // A session ended through the engine before the driver saw it start: the driver takes
    // the start and the result without complaint.
    let _ = d
        .engine_mut()
        .start_handler_sync(&hid("photos"), NONE)
        .unwrap();
    let started = d.engine().sessions()[0];
    let _ = d
        .engine_mut()
        .session_finished(started, syncmgr::engine::SessionEnd::Returned)
        .unwrap();
    assert_eq!(d.pump(), 2);
    assert_eq!(
        d.results().last().map(|r| r.status),
        Some(Outcome::Failed) // ended with no report
    );
}

#[test]
fn ops_resolve_against_what_exists_when_they_run() {
    let mut d = driver(8);
    let finish = Op::Finish {
        handler: hid("mail"),
        outcomes: vec![(iid("sent"), Outcome::Canceled)],
    };
    assert_eq!(d.apply(&finish).unwrap(), Applied::Nothing);
    assert_eq!(d.apply(&Op::Cancel { nth: 5 }).unwrap(), Applied::Nothing);

    let start = |items: &[&str]| Op::StartItems {
        handler: hid("mail"),
        items: items.iter().map(|i| iid(i)).collect(),
        flags: NONE,
    };
    let first = d.apply(&start(&["inbox", "inbox"])).unwrap();
    let [accepted] = first.accepted() else {
        panic!("one request: {first:?}")
    };
    assert_eq!(accepted.duplicates, 1);
    let queued = d.apply(&start(&["sent"])).unwrap().accepted()[0].request;

    // Two open requests: the 5th, counted modulo 2, is the second.
    assert_eq!(
        d.apply(&Op::Cancel { nth: 5 }).unwrap(),
        Applied::Withdrawn(queued, Withdrawn::Withdrawn)
    );
    assert_eq!(d.result_of(queued).unwrap().status, Outcome::Canceled);

    // The outcome listed for an item is the one reported; the others succeed.
    let start_sent = d.apply(&start(&["inbox", "sent"])).unwrap().accepted()[0].request;
    assert!(matches!(d.apply(&finish).unwrap(), Applied::Finished(_)));
    assert!(matches!(d.apply(&finish).unwrap(), Applied::Finished(_)));
    let result = d.result_of(start_sent).unwrap();
    assert_eq!(result.outcome_of(&iid("inbox")), Some(Outcome::Succeeded));
    assert_eq!(result.outcome_of(&iid("sent")), Some(Outcome::Canceled));

    // Refused calls are errors and change nothing.
    let ghost = Op::StartHandler {
        handler: hid("ghost"),
        flags: NONE,
    };
    assert!(matches!(d.apply(&ghost), Err(Error::UnknownHandler(_))));
    let stranger = start(&["zz"]);
    assert!(matches!(d.apply(&stranger), Err(Error::UnknownItem { .. })));
    assert!(d.engine().is_idle());

    // Time saturates instead of overflowing.
    let far = Op::Advance { by: Duration::MAX };
    assert_eq!(d.apply(&far).unwrap(), Applied::Polled(0));
    assert_eq!(d.engine().now(), Time::MAX);

    assert!(matches!(d.apply(&Op::Shutdown), Ok(Applied::Stopped(_))));
    assert!(matches!(d.apply(&start(&["inbox"])), Err(Error::ShutDown)));
}

#[test]
fn run_until_lets_a_schedule_tick_up_to_the_limit() {
    let mut engine = Engine::default();
    let every = SyncPolicy::default().every(Duration::from_secs(10));
    let spec = HandlerSpec::new(hid("feeds"))
        .items([iid("news")])
        .with_sync_policy(every);
    engine.register_handler(spec).unwrap();
    let mut d = Driver::new(engine);

    // Ticks at 10 s, 20 s and 30 s, each a request and a session.
    assert_eq!(d.run_until(Time::from_secs(35), succeed).unwrap(), 3);
    assert_eq!(d.engine().now(), Time::from_secs(35));
    assert_eq!(d.results().len(), 3);
    assert!(d.results().iter().all(|r| r.status == Outcome::Succeeded));
    let issued = d
        .actions()
        .iter()
        .filter(|a| matches!(a, Action::Issued { .. }))
        .count();
    assert_eq!(issued, 3);
    assert_eq!(d.engine().next_deadline(), Some(Time::from_secs(40)));
}

#[cfg(feature = "proptest")]
mod strategies {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use syncmgr::engine::testing::{Applied, Driver, Op};
    use syncmgr::engine::{Engine, HandlerSpec};
    use syncmgr::strategies::*;
    use syncmgr::{
        ControlFlags, HandlerCapabilities, HandlerId, HandlerPolicies, ItemCapabilities, ItemId,
        ItemPolicies, Outcome, SyncControlFlags,
    };

    use super::{hid, iid};

    /// `n` values of `strategy`, the same in every run.
    fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
        let mut runner = TestRunner::deterministic();
        (0..n)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect()
    }

    /// Checks that every text is a valid ID and that the edge cases all occur.
    fn check_ids(texts: &[&str], guid_of: impl Fn(&str) -> bool) {
        let units = |t: &str| t.encode_utf16().count();
        for t in texts {
            assert!(ItemId::new(t).is_ok() && HandlerId::new(t).is_ok(), "{t:?}");
            assert!((1..=63).contains(&units(t)), "{t:?}");
        }
        let has = |what: &str, f: &dyn Fn(&str) -> bool| {
            assert!(texts.iter().any(|t| f(t)), "no {what} among {texts:?}")
        };
        has("63-unit ID", &|t| units(t) == 63);
        has("63-unit ID with surrogate pairs", &|t| {
            units(t) == 63 && t.chars().any(|c| c.len_utf16() == 2)
        });
        has("non-ASCII ID", &|t| !t.is_ascii() && units(t) < 63);
        has("plain ASCII ID", &|t| t.is_ascii() && units(t) < 20);
        has("upper-case GUID", &|t| guid_of(t) && t.to_uppercase() == t);
        has("lower-case GUID", &|t| guid_of(t) && t.to_lowercase() == t);
    }

    #[test]
    fn ids_are_valid_and_cover_the_edge_cases() {
        let items = sample(item_id(), 2000);
        let texts: Vec<&str> = items.iter().map(ItemId::as_str).collect();
        check_ids(&texts, |t| ItemId::new(t).unwrap().to_guid().is_some());
        let handlers = sample(handler_id(), 2000);
        let texts: Vec<&str> = handlers.iter().map(HandlerId::as_str).collect();
        check_ids(&texts, |t| HandlerId::new(t).unwrap().to_guid().is_some());
    }

    /// Every value has only defined bits, and none, one and several flags all occur.
    fn check_flags<T>(values: Vec<T>, bits: fn(&T) -> u32, valid: u32) {
        for v in &values {
            assert_eq!(bits(v) & !valid, 0, "undefined bits in {:#x}", bits(v));
        }
        let ones = |v: &T| bits(v).count_ones();
        assert!(values.iter().any(|v| ones(v) == 0));
        assert!(values.iter().any(|v| ones(v) == 1));
        if valid.count_ones() > 1 {
            assert!(values.iter().any(|v| ones(v) > 1));
        }
    }

    #[test]
    fn flags_have_only_defined_bits() {
        let n = 400;
        check_flags(
            sample(sync_control_flags(), n),
            SyncControlFlags::bits,
            SyncControlFlags::VALID_MASK,
        );
        check_flags(
            sample(control_flags(), n),
            ControlFlags::bits,
            ControlFlags::VALID_MASK,
        );
        check_flags(
            sample(handler_capabilities(), n),
            HandlerCapabilities::bits,
            HandlerCapabilities::VALID_MASK,
        );
        check_flags(
            sample(handler_policies(), n),
            HandlerPolicies::bits,
            HandlerPolicies::VALID_MASK,
        );
        check_flags(
            sample(item_capabilities(), n),
            ItemCapabilities::bits,
            ItemCapabilities::VALID_MASK,
        );
        check_flags(
            sample(item_policies(), n),
            ItemPolicies::bits,
            ItemPolicies::VALID_MASK,
        );
    }

    #[test]
    fn item_lists_draw_from_the_pool_and_sometimes_repeat() {
        let pool = [iid("a"), iid("b"), iid("c")];
        let lists = sample(item_list(&pool, 1..=4), 300);
        for list in &lists {
            assert!((1..=4).contains(&list.len()));
            assert!(list.iter().all(|i| pool.contains(i)), "{list:?}");
        }
        let distinct = |l: &Vec<ItemId>| l.iter().collect::<BTreeSet<_>>().len();
        assert!(lists.iter().any(|l| distinct(l) < l.len()));
        assert!(lists.iter().any(|l| distinct(l) == l.len() && l.len() > 1));
        assert!(sample(item_list(&[], 1..=4), 10).iter().all(Vec::is_empty));
        let ids = sample(distinct_item_ids(3..=5), 100);
        assert!(ids.iter().all(|l| distinct(l) == l.len() && l.len() >= 3));
    }

    #[test]
    fn an_empty_universe_gives_only_operations_that_name_no_handler() {
        for op in sample(op(&[]), 300) {
            assert!(
                matches!(
                    op,
                    Op::StartAll { .. }
                        | Op::Cancel { .. }
                        | Op::StopAll
                        | Op::Advance { .. }
                        | Op::Shutdown
                ),
                "{op:?}"
            );
        }
    }

    /// The handlers and items an operation names.
    fn names(op: &Op) -> (Option<&HandlerId>, Vec<&ItemId>) {
        match op {
            Op::StartHandler { handler, .. }
            | Op::StopHandler { handler }
            | Op::SetActive { handler, .. }
            | Op::SetEnabled { handler, .. }
            | Op::SetConnected { handler, .. } => (Some(handler), Vec::new()),
            Op::StartItems { handler, items, .. } | Op::StopItems { handler, items } => {
                (Some(handler), items.iter().collect())
            }
            Op::Finish { handler, outcomes } => {
                (Some(handler), outcomes.iter().map(|(i, _)| i).collect())
            }
            Op::SetItemEnabled { handler, item, .. } => (Some(handler), vec![item]),
            _ => (None, Vec::new()),
        }
    }

    fn universe() -> impl Strategy<Value = (Vec<HandlerSpec>, Vec<Op>)> {
        handler_specs(0..=4).prop_flat_map(|specs| (Just(specs.clone()), ops(&specs, 0..60)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Generated universes register, generated operations name only them, applying
        /// them never panics and keeps the engine consistent, and every accepted request
        /// gets exactly one result.
        #[test]
        fn generated_operations_keep_the_one_result_promise((specs, ops) in universe()) {
            let mut driver = Driver::new(Engine::default());
            for spec in &specs {
                driver.engine_mut().register_handler(spec.clone())?;
            }
            let mut accepted = Vec::new();
            for op in &ops {
                let (handler, items) = names(op);
                if let Some(h) = handler {
                    let spec = specs.iter().find(|s| s.id == *h);
                    prop_assert!(spec.is_some(), "{:?} names a stranger", op);
                    let owned = |i: &ItemId| spec.is_some_and(|s| s.items.iter().any(|x| x.id == *i));
                    prop_assert!(items.iter().all(|i| owned(i)), "{:?} names a stranger", op);
                }
                if let Ok(applied) = driver.apply(op) {
                    accepted.extend(applied.accepted().iter().map(|a| a.request));
                }
                prop_assert!(driver.engine().check_consistency().is_ok());
            }
            driver.finish_all(|_, _| Outcome::Succeeded)?;
            let mut delivered: Vec<_> = driver.results().iter().map(|r| r.request).collect();
            delivered.sort();
            accepted.sort();
            prop_assert_eq!(delivered, accepted);
            prop_assert!(driver.engine().is_idle());
        }
    }

    #[test]
    fn generated_operations_reach_every_kind_of_engine_call() {
        let specs = vec![
            HandlerSpec::new(hid("mail")).items([iid("inbox"), iid("sent")]),
            HandlerSpec::new(hid("photos")).items([iid("2025")]),
        ];
        let seqs = sample(ops(&specs, 40), 50);
        let (mut finished, mut withdrawn, mut refused) = (0, 0, 0);
        for seq in &seqs {
            let mut driver = Driver::new(Engine::default());
            for spec in &specs {
                driver.engine_mut().register_handler(spec.clone()).unwrap();
            }
            for op in seq {
                match driver.apply(op) {
                    Ok(Applied::Finished(_)) => finished += 1,
                    Ok(Applied::Withdrawn(..)) => withdrawn += 1,
                    Ok(_) => {}
                    Err(_) => refused += 1,
                }
            }
        }
        assert!(finished > 0 && withdrawn > 0 && refused > 0);
        let kinds: BTreeSet<String> = seqs
            .iter()
            .flatten()
            .map(|op| {
                format!("{op:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        let all = [
            "StartHandler",
            "StartItems",
            "StartAll",
            "Finish",
            "Cancel",
            "StopHandler",
            "StopItems",
            "StopAll",
            "SetActive",
            "SetEnabled",
            "SetItemEnabled",
            "SetConnected",
            "Advance",
            "Shutdown",
        ];
        assert_eq!(kinds, all.iter().map(|k| k.to_string()).collect());
    }
}
