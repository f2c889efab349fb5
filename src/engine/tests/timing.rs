//! Time: debounce with max-wait, retries with backoff, schedules, triggers, and the default
//! policy that changes nothing.

use std::time::Duration;

use super::*;
use crate::policy::{Retry, SyncPolicy, Trigger, TriggerReason};
use crate::time::Time;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn at(n: u64) -> Time {
    Time::from_secs(n)
}

/// Handler `a` (items a1..a4) with this policy, and a plain handler `b`.
fn timed(policy: SyncPolicy) -> Engine {
    let mut e = Engine::default();
    e.register_handler(
        HandlerSpec::new(h("a"))
            .items(ids(&["a1", "a2", "a3", "a4"]))
            .with_sync_policy(policy),
    )
    .unwrap();
    e.register_handler(HandlerSpec::new(h("b")).items(ids(&["b1", "b2"])))
        .unwrap();
    e
}

fn debounced() -> Engine {
    timed(SyncPolicy::default().debounce(secs(2), secs(5)))
}

fn retrying(attempts: u16) -> Engine {
    timed(SyncPolicy::default().retry(Retry::exponential(attempts, secs(10), secs(60))))
}

fn ask(e: &mut Engine, items: &[&str]) -> RequestId {
    e.start_item_sync(&h("a"), &ids(items), NONE)
        .unwrap()
        .request
}

fn fail(e: &mut Engine, s: SessionId, items: &[&str]) {
    for item in items {
        let _ = e
            .report_progress(
                s,
                &i(item),
                Progress::new(ProgressStatus::Failed).text("no"),
            )
            .unwrap();
    }
}

fn end(e: &mut Engine, s: SessionId) -> SessionEnded {
    let ended = e.session_finished(s, SessionEnd::Returned).unwrap();
    e.check_consistency().unwrap();
    ended
}

#[test]
fn the_default_policy_sets_no_timer_and_polling_changes_nothing() {
    let mut e = engine();
    let _ = ask(&mut e, &["a1"]);
    let before = actions(&mut e);
    assert_eq!(e.next_deadline(), None);
    assert_eq!(e.poll(at(3600)), 0);
    assert!(actions(&mut e).is_empty());
    assert_eq!(starts(&before).len(), 1);
}

#[test]
fn time_never_goes_back() {
    let mut e = engine();
    let _ = e.poll(at(10));
    let _ = e.poll(at(5));
    assert_eq!(e.now(), at(10));
}

#[test]
fn a_burst_is_debounced_into_one_session_after_the_quiet_time() {
    let mut e = debounced();
    let _ = ask(&mut e, &["a1"]);
    assert!(
        starts(&actions(&mut e)).is_empty(),
        "held for the quiet time"
    );
    assert_eq!(e.next_deadline(), Some(at(2)));
    let _ = e.poll(at(1));
    let _ = ask(&mut e, &["a2"]);
    let _ = ask(&mut e, &["a1", "a3"]);
    let out = actions(&mut e);
    assert!(out.contains(&Action::Debounced {
        handler: h("a"),
        until: at(3)
    }));
    assert!(starts(&out).is_empty());
    let _ = e.poll(at(2));
    assert!(starts(&actions(&mut e)).is_empty(), "moved to 1 s + quiet");
    let _ = e.poll(at(3));
    assert_eq!(only_start(&mut e).1, ["a1", "a2", "a3"]);
}

#[test]
fn max_wait_cuts_a_stream_of_requests_off() {
    let mut e = debounced();
    for t in 0..5 {
        let _ = e.poll(at(t));
        let _ = ask(&mut e, &["a1"]);
    }
    assert!(starts(&actions(&mut e)).is_empty());
    assert_eq!(e.next_deadline(), Some(at(5)), "first request + max_wait");
    let _ = e.poll(at(5));
    assert_eq!(only_start(&mut e).1, ["a1"]);
}

#[test]
fn an_expedited_request_makes_the_whole_pending_set_ready() {
    let mut e = debounced();
    let _ = ask(&mut e, &["a1", "a2"]);
    let _ = actions(&mut e);
    let options = RequestOptions::default().expedited();
    let _ = e
        .start_sync_with(&h("a"), Some(&ids(&["a3"])), NONE, &options)
        .unwrap();
    assert_eq!(only_start(&mut e).1, ["a1", "a2", "a3"]);
    assert_eq!(e.next_deadline(), None, "the window's timer is gone");
}

#[test]
fn debounce_never_delays_a_join_or_a_pull() {
    let mut e = debounced();
    let _ = ask(&mut e, &["a1"]);
    let _ = e.poll(at(2));
    let (s, _) = only_start(&mut e);
    let joined = e.start_item_sync(&h("a"), &ids(&["a1"]), JOIN).unwrap();
    assert_eq!(joined.joined(), 1);
    let _ = ask(&mut e, &["a2"]);
    let _ = actions(&mut e);
    assert_eq!(e.add_item_to_session(s, &i("a2")).unwrap(), 1);
    e.check_consistency().unwrap();
    assert_eq!(
        e.next_deadline(),
        None,
        "the pulled item took the window with it"
    );
}

#[test]
fn stopping_a_debounced_item_removes_it_and_its_window() {
    let mut e = debounced();
    let r = ask(&mut e, &["a1"]);
    let _ = actions(&mut e);
    let stopped = e.stop_item_sync(&h("a"), &ids(&["a1"])).unwrap();
    assert_eq!(stopped.canceled_pending, 1);
    let out = actions(&mut e);
    assert_eq!(results(&out)[0].request, r);
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn a_failed_item_retries_with_backoff_while_the_others_settle() {
    let mut e = retrying(3);
    let r = ask(&mut e, &["a1", "a2"]);
    let (s, _) = only_start(&mut e);
    let other = e
        .start_item_sync(&h("a"), &ids(&["a2"]), JOIN)
        .unwrap()
        .request;
    succeed(&mut e, s, &["a2"]);
    fail(&mut e, s, &["a1"]);
    let ended = end(&mut e, s);
    assert_eq!(ended.retried, [i("a1")]);
    let out = actions(&mut e);
    assert!(out.contains(&Action::RetryScheduled {
        handler: h("a"),
        item: i("a1"),
        attempt: 1,
        max_attempts: 3,
        at: at(10),
    }));
    // `other` waited only for a2, which succeeded: it completes; `r` waits for a1.
    let done = results(&out);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request, other);
    assert!(starts(&out).is_empty());
    let _ = e.poll(at(9));
    assert!(actions(&mut e).is_empty(), "not before the backoff ends");
    let _ = e.poll(at(10));
    let (s2, items) = only_start(&mut e);
    assert_eq!(items, ["a1"]);
    succeed(&mut e, s2, &["a1"]);
    let _ = end(&mut e, s2);
    let result = results(&actions(&mut e)).remove(0);
    assert_eq!(result.request, r);
    assert_eq!(result.status, Outcome::Succeeded);
    assert_eq!(result.attempts_of(&i("a1")), Some(2));
    assert_eq!(result.attempts_of(&i("a2")), Some(1));
}

#[test]
fn an_item_is_attempted_at_most_max_attempts_times_with_growing_delays() {
    let mut e = retrying(3);
    let r = ask(&mut e, &["a1"]);
    let mut at_times = Vec::new();
    for _ in 0..3 {
        let (s, _) = only_start(&mut e);
        fail(&mut e, s, &["a1"]);
        let _ = end(&mut e, s);
        if let Some(due) = e.next_deadline() {
            at_times.push(due);
            let _ = e.poll(due);
        }
    }
    assert_eq!(
        at_times,
        [at(10), at(30)],
        "10 s, then 20 s after the second end"
    );
    let result = results(&actions(&mut e)).remove(0);
    assert_eq!((result.request, result.status), (r, Outcome::Failed));
    assert_eq!(result.attempts_of(&i("a1")), Some(3));
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn a_request_without_retry_takes_the_first_failure_while_others_wait() {
    let mut e = retrying(3);
    let patient = ask(&mut e, &["a1"]);
    let options = RequestOptions::default().without_retry();
    let hasty = e
        .start_sync_with(&h("a"), Some(&ids(&["a1"])), JOIN, &options)
        .unwrap()
        .request;
    let (s, _) = only_start(&mut e);
    fail(&mut e, s, &["a1"]);
    let _ = end(&mut e, s);
    let done = results(&actions(&mut e));
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].request, done[0].status), (hasty, Outcome::Failed));
    assert!(e.open_requests().contains(&patient));
}

#[test]
fn permanent_failures_cancels_and_disconnects_are_never_retried() {
    let mut e = retrying(3);
    let _ = ask(&mut e, &["a1", "a2", "a3"]);
    let (s, _) = only_start(&mut e);
    let _ = e
        .report_permanent_failure(s, &i("a1"), "gone".into())
        .unwrap();
    let _ = e
        .report_progress(s, &i("a2"), ProgressStatus::Canceled)
        .unwrap();
    let _ = e
        .report_progress(s, &i("a3"), ProgressStatus::Disconnected)
        .unwrap();
    let ended = end(&mut e, s);
    assert!(ended.retried.is_empty());
    assert_eq!(results(&actions(&mut e)).len(), 1);
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn a_failed_session_retries_every_item_without_a_terminal_report() {
    let mut e = retrying(2);
    let _ = ask(&mut e, &["a1", "a2"]);
    let (s, _) = only_start(&mut e);
    succeed(&mut e, s, &["a2"]);
    let ended = e
        .session_finished(s, SessionEnd::Failed("timed out".into()))
        .unwrap();
    assert_eq!(ended.retried, [i("a1")]);
}

#[test]
fn a_new_request_merges_into_a_backoff_and_an_expedited_one_ends_it() {
    let mut e = retrying(3);
    let first = ask(&mut e, &["a1"]);
    let (s, _) = only_start(&mut e);
    fail(&mut e, s, &["a1"]);
    let _ = end(&mut e, s);
    let _ = actions(&mut e);
    let second = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
    assert_eq!(second.merged(), 1);
    assert!(
        starts(&actions(&mut e)).is_empty(),
        "the backoff is not reset"
    );
    let options = RequestOptions::default().expedited();
    let _ = e
        .start_sync_with(&h("a"), Some(&ids(&["a1"])), NONE, &options)
        .unwrap();
    let (s2, _) = only_start(&mut e);
    let waiting = e.session_view(s2).unwrap().items[0].waiting.clone();
    assert_eq!(waiting.len(), 3);
    assert_eq!(waiting[0], first, "the oldest request still comes first");
}

#[test]
fn a_reconnect_ends_every_backoff() {
    let mut e = retrying(3);
    let _ = ask(&mut e, &["a1"]);
    let (s, _) = only_start(&mut e);
    fail(&mut e, s, &["a1"]);
    let _ = end(&mut e, s);
    let _ = actions(&mut e);
    let _ = e.set_handler_connected(&h("a"), false).unwrap();
    assert!(starts(&actions(&mut e)).is_empty());
    let _ = e.set_handler_connected(&h("a"), true).unwrap();
    assert_eq!(only_start(&mut e).1, ["a1"]);
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn stopping_an_item_in_backoff_settles_its_requests() {
    let mut e = retrying(3);
    let r = ask(&mut e, &["a1"]);
    let (s, _) = only_start(&mut e);
    fail(&mut e, s, &["a1"]);
    let _ = end(&mut e, s);
    let _ = actions(&mut e);
    let _ = e.stop_handler_sync(&h("a")).unwrap();
    let result = results(&actions(&mut e)).remove(0);
    assert_eq!((result.request, result.status), (r, Outcome::Canceled));
    assert_eq!(result.items[0].attempts, 1);
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn a_schedule_ticks_skips_while_open_and_never_piles_up() {
    let mut e = timed(SyncPolicy::default().every(secs(60)));
    assert_eq!(e.next_deadline(), Some(at(60)));
    let _ = e.poll(at(60));
    let out = actions(&mut e);
    let Some(Action::Issued {
        request, reason, ..
    }) = out.first().cloned()
    else {
        panic!("expected an issued request first: {out:?}");
    };
    assert_eq!(reason, TriggerReason::Scheduled);
    let (s, items) = starts(&out).remove(0);
    assert_eq!(items, ["a1", "a2", "a3", "a4"]);
    // The session is still open at the next tick: nothing is issued.
    let _ = e.poll(at(120));
    assert_eq!(
        actions(&mut e),
        [Action::TickSkipped {
            handler: h("a"),
            open: request
        }]
    );
    succeed(&mut e, s, &["a1", "a2", "a3", "a4"]);
    let _ = end(&mut e, s);
    let _ = actions(&mut e);
    // Ten periods pass unpolled: one request, and the next tick is the first after now.
    let _ = e.poll(at(725));
    let issued = actions(&mut e)
        .iter()
        .filter(|a| matches!(a, Action::Issued { .. }))
        .count();
    assert_eq!(issued, 1);
    assert_eq!(e.next_deadline(), Some(at(780)));
}

/// At `Time::MAX` no tick comes after now: a schedule polled there ticks once (the tick due
/// at 60 s) and ends, so the poll returns. One-off timers still fire there: the tick's request,
/// held by a zero debounce until `Time::MAX`, starts its session in the same poll. (Before,
/// the tick fired at `Time::MAX` again and again and the poll never returned; the test runs it
/// on a thread so that it fails rather than hangs.)
#[test]
fn polling_at_the_end_of_time_ticks_once_and_still_fires_one_off_timers() {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let policy = SyncPolicy::default()
            .every(secs(60))
            .debounce(Duration::ZERO, Duration::ZERO);
        let mut e = timed(policy);
        let fired = e.poll(Time::MAX);
        let out = actions(&mut e);
        let issued = out
            .iter()
            .filter(|a| matches!(a, Action::Issued { .. }))
            .count();
        let started = starts(&out).len();
        let _ = done.send((
            fired,
            issued,
            started,
            e.next_deadline(),
            e.check_consistency(),
        ));
    });
    let (fired, issued, started, next, consistent) = outcome
        .recv_timeout(Duration::from_secs(10))
        .expect("poll(Time::MAX) returns");
    assert_eq!(
        (fired, issued, started),
        (2, 1, 1),
        "the tick, then its debounce"
    );
    assert_eq!(next, None, "the schedule has ended");
    assert_eq!(consistent, Ok(()));
}

#[test]
fn ticks_of_an_inactive_handler_issue_nothing_and_flex_stays_in_range() {
    let mut e = timed(SyncPolicy::default().every_with_flex(secs(60), secs(30)));
    let due = e.next_deadline().unwrap();
    assert!(due >= at(60) && due <= at(90), "{due}");
    let _ = e.set_handler_active(&h("a"), false).unwrap();
    let _ = e.poll(due);
    assert!(actions(&mut e).is_empty());
    let next = e.next_deadline().unwrap();
    assert!(next >= at(120) && next <= at(150), "{next}");
}

#[test]
fn a_trigger_syncs_the_handlers_that_listen_for_it() {
    let mut e = timed(SyncPolicy::default().on(Trigger::Connect));
    let issued = e.trigger(Trigger::Idle).unwrap();
    assert!(issued.is_empty());
    let issued = e.trigger(Trigger::Connect).unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].handler, h("a"));
    let out = actions(&mut e);
    assert!(matches!(
        out[0],
        Action::Issued {
            reason: TriggerReason::Connect,
            ..
        }
    ));
    assert_eq!(starts(&out).len(), 1);
}

#[test]
fn a_policy_out_of_range_is_refused_and_changes_nothing() {
    let mut e = engine();
    let bad = SyncPolicy::default().debounce(secs(5), secs(1));
    let before = format!("{e:?}");
    assert!(matches!(
        e.set_sync_policy(&h("a"), bad.clone()),
        Err(Error::InvalidPolicy {
            field: "debounce.max_wait",
            ..
        })
    ));
    assert!(matches!(
        e.register_handler(HandlerSpec::new(h("c")).with_sync_policy(bad)),
        Err(Error::InvalidPolicy { .. })
    ));
    assert_eq!(format!("{e:?}"), before);
}

#[test]
fn removing_a_debounced_handler_cancels_its_timers() {
    let mut e = timed(
        SyncPolicy::default()
            .debounce(secs(2), secs(5))
            .every(secs(60)),
    );
    let _ = ask(&mut e, &["a1"]);
    let _ = e.remove_handler(&h("a")).unwrap();
    let _ = actions(&mut e);
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn the_same_seed_gives_the_same_jittered_times() {
    let run = |seed| {
        let mut e = Engine::new(EngineConfig {
            seed,
            ..EngineConfig::default()
        })
        .unwrap();
        let retry = Retry::exponential(5, secs(10), secs(600)).with_jitter(0.5);
        e.register_handler(
            HandlerSpec::new(h("a"))
                .items(ids(&["a1"]))
                .with_sync_policy(SyncPolicy::default().retry(retry)),
        )
        .unwrap();
        let _ = e.start_item_sync(&h("a"), &ids(&["a1"]), NONE).unwrap();
        let (s, _) = only_start(&mut e);
        fail(&mut e, s, &["a1"]);
        let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
        e.next_deadline().unwrap()
    };
    assert_eq!(run(1), run(1));
    let t = run(1);
    assert!(t >= at(5) && t <= at(15), "{t}");
}

#[test]
fn the_engine_keeps_time_while_a_handler_has_a_time_policy_or_a_timer_is_set() {
    let mut e = timed(SyncPolicy::default());
    assert!(!e.keeps_time(), "no policy, no timer");
    let on = e.set_sync_policy(&h("b"), SyncPolicy::default().every(secs(60)));
    assert!(on.unwrap().changed);
    assert!(e.keeps_time());
    assert!(
        e.set_sync_policy(&h("b"), SyncPolicy::default())
            .unwrap()
            .changed
    );
    assert!(!e.keeps_time(), "the schedule and its tick are gone");
    e.check_consistency().unwrap();

    // A removed handler counts until its last session ends.
    let debounce = SyncPolicy::default().debounce(secs(2), secs(5));
    assert!(e.set_sync_policy(&h("a"), debounce).unwrap().changed);
    ask(&mut e, &["a1"]);
    e.poll(at(5));
    let (s, _) = only_start(&mut e);
    let _ = e.remove_handler(&h("a")).unwrap();
    assert!(e.keeps_time());
    e.check_consistency().unwrap();
    let _ = end(&mut e, s);
    assert!(!e.keeps_time());
}
