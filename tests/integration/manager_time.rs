//! The manager with time policies, on a manual clock: a simulated day of debounces, retries,
//! a schedule and a trigger, with no sleep anywhere. `ManualClock::advance` makes every
//! timing decision before it returns; the sessions then run on the manager's workers, and the
//! test takes them from the driven handlers' channels.

use std::time::Duration;

use syncmgr::*;

use crossbeam_channel::Receiver;

use crate::common::{Driven, Finish, Running, World, next_session, result};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mins(n: u64) -> Duration {
    secs(60 * n)
}

/// A manager on a manual clock of its own, at `Time::ZERO`.
fn on_a_manual_clock() -> (ManualClock, World) {
    let clock = ManualClock::new();
    let world = World::built(SyncManager::builder().clock(clock.clone()));
    (clock, world)
}

/// A handler driven by the test, with these items and this policy.
fn register_timed(
    world: &World,
    name: &str,
    items: &[&str],
    policy: SyncPolicy,
) -> Receiver<Running> {
    let (handler, sessions) = Driven::new(items);
    world.register(name, handler.with_sync_policy(policy));
    sessions
}

fn started(notes: &[Notification]) -> usize {
    notes
        .iter()
        .filter(|n| matches!(n, Notification::SessionStarted { .. }))
        .count()
}

#[test]
fn a_day_of_debounce_retries_schedules_and_triggers_on_a_manual_clock() {
    let (clock, world) = on_a_manual_clock();
    let notes_sessions = register_timed(
        &world,
        "notes",
        &["todo", "journal"],
        SyncPolicy::default()
            .debounce(secs(30), mins(2))
            .on(Trigger::Connect),
    );
    let mail_sessions = register_timed(
        &world,
        "mail",
        &["inbox", "outbox"],
        SyncPolicy::default().retry(Retry::exponential(3, mins(5), mins(60))),
    );
    let photo_sessions = register_timed(
        &world,
        "photos",
        &["camera"],
        SyncPolicy::default().every(mins(15)),
    );
    let _ = world.happened();

    // 00:00 an edit: debounced for 30 s.
    let first = world.start("notes", &["todo"]);
    let notes = world.happened();
    assert!(notes.iter().any(|n| matches!(
        n,
        Notification::Debounced { until, .. } if until == &Time::from_secs(30)
    )));
    assert_eq!(started(&notes), 0);
    // 00:20 another edit moves the quiet time to 00:50.
    clock.advance(secs(20));
    let second = world.start("notes", &["journal"]);
    clock.advance(secs(20));
    assert_eq!(started(&world.happened()), 0, "still within the quiet time");
    clock.advance(secs(10));
    let session = next_session(&notes_sessions);
    assert_eq!(session.names(), ["todo", "journal"]);
    session.succeed_all();
    assert_eq!(result(&first).status, Outcome::Succeeded);
    assert_eq!(result(&second).status, Outcome::Succeeded);

    // 00:50 mail: the outbox fails, the inbox settles, the outbox retries 5 min later.
    let send = world.start("mail", &["inbox", "outbox"]);
    let session = next_session(&mail_sessions);
    session.report(&["inbox"], ProgressStatus::Succeeded);
    session.report(&["outbox"], ProgressStatus::Failed);
    let ended = session.session.id();
    session.end(Finish::Return);
    let notes = world.after_end_of(ended);
    assert!(notes.iter().any(|n| matches!(
        n,
        Notification::RetryScheduled { attempt: 1, max_attempts: 3, at, .. }
            if at == &(Time::from_secs(50) + mins(5))
    )));
    assert!(
        send.try_result().is_none(),
        "the request waits for the retry"
    );
    clock.advance(mins(4));
    assert_eq!(started(&world.happened()), 0, "not before the backoff ends");
    clock.advance(mins(1));
    let retry = next_session(&mail_sessions);
    assert_eq!(retry.names(), ["outbox"]);
    retry.succeed_all();
    let sent = result(&send);
    assert_eq!(sent.status, Outcome::Succeeded);
    assert_eq!(sent.attempts_of(&ItemId::new("outbox").unwrap()), Some(2));
    assert_eq!(sent.attempts_of(&ItemId::new("inbox").unwrap()), Some(1));

    // 15:00 photos' schedule ticks; the upload is still open at 30:00, so that tick is
    // skipped; its result goes to the notifications.
    clock.advance_to(Time::from_duration(mins(15)));
    let upload = next_session(&photo_sessions);
    let notes = world.happened();
    let issued = notes.iter().find_map(|n| match n {
        Notification::RequestIssued {
            request,
            reason: TriggerReason::Scheduled,
            ..
        } => Some(*request),
        _ => None,
    });
    let issued = issued.expect("the tick issued a request");
    clock.advance(mins(15));
    assert!(world.happened().iter().any(|n| matches!(
        n,
        Notification::TickSkipped { open, .. } if open == &issued
    )));
    let upload_id = upload.session.id();
    upload.succeed_all();
    let notes = world.after_end_of(upload_id);
    assert!(notes.iter().any(|n| matches!(
        n,
        Notification::RequestCompleted(r) if r.request == issued && r.status == Outcome::Succeeded
    )));

    // A reconnect: notes listens for it and syncs everything, after its quiet time.
    let made = world.manager.trigger(Trigger::Connect).unwrap();
    assert_eq!(made.len(), 1);
    clock.advance(secs(30));
    let session = next_session(&notes_sessions);
    assert_eq!(session.names(), ["todo", "journal"]);
    session.succeed_all();

    // The rest of the day: 44 more ticks, each served before the next. Nothing else ran:
    // no retry, no debounce, no skipped tick.
    for _ in 0..44 {
        clock.advance(mins(15));
        let upload = next_session(&photo_sessions);
        let id = upload.session.id();
        upload.succeed_all();
        // Ended before the clock moves on, or the next tick finds it open and skips.
        let notes = world.after_end_of(id);
        assert!(
            !notes
                .iter()
                .any(|n| matches!(n, Notification::TickSkipped { .. })),
            "{notes:#?}"
        );
    }
    world.manager.check_consistency().unwrap();
}

#[test]
fn an_expedited_request_runs_at_once_and_a_bad_policy_is_refused() {
    let (_clock, world) = on_a_manual_clock();
    let sessions = register_timed(
        &world,
        "notes",
        &["todo"],
        SyncPolicy::default().debounce(mins(1), mins(5)),
    );
    let ticket = world
        .manager
        .request(SyncRequest::handler("notes").expedite())
        .unwrap();
    next_session(&sessions).succeed_all();
    assert_eq!(result(&ticket).status, Outcome::Succeeded);

    let bad = SyncPolicy::default().every(Duration::ZERO);
    let error = world.refused(hresult::E_INVALIDARG, |m| m.set_sync_policy("notes", bad));
    assert!(matches!(
        error,
        Error::InvalidPolicy {
            field: "schedule.every",
            ..
        }
    ));
}

/// Timers a step sets for its own instant need no time to pass: a retry with no backoff and
/// a debounce with no quiet time run on a manual clock that nobody advances, as they would at
/// once on the real clock.
#[test]
fn zero_delays_run_without_an_advance_of_the_manual_clock() {
    let (clock, world) = on_a_manual_clock();
    let mail_sessions = register_timed(
        &world,
        "mail",
        &["outbox"],
        SyncPolicy::default().retry(Retry::exponential(2, Duration::ZERO, Duration::ZERO)),
    );
    let notes_sessions = register_timed(
        &world,
        "notes",
        &["todo"],
        SyncPolicy::default().debounce(Duration::ZERO, Duration::ZERO),
    );

    let send = world.start("mail", &["outbox"]);
    let session = next_session(&mail_sessions);
    session.report(&["outbox"], ProgressStatus::Failed);
    session.end(Finish::Return);
    let retry = next_session(&mail_sessions);
    assert_eq!(retry.names(), ["outbox"]);
    retry.succeed_all();
    let sent = result(&send);
    assert_eq!(sent.status, Outcome::Succeeded);
    assert_eq!(sent.attempts_of(&ItemId::new("outbox").unwrap()), Some(2));

    let edit = world.start("notes", &["todo"]);
    next_session(&notes_sessions).succeed_all();
    assert_eq!(result(&edit).status, Outcome::Succeeded);
    assert_eq!(clock.now(), Time::ZERO, "no time passed");
}

/// `advance` saturates, as its doc says: advancing a manual clock by `Duration::MAX` with a
/// schedule set returns (the schedule ticks once and ends: no tick comes after `Time::MAX`).
#[test]
fn advancing_to_the_end_of_time_returns() {
    let (clock, world) = on_a_manual_clock();
    let photo_sessions = register_timed(
        &world,
        "photos",
        &["camera"],
        SyncPolicy::default().every(mins(15)),
    );
    let (done, advanced) = crossbeam_channel::bounded(1);
    let advancing = clock.clone();
    std::thread::spawn(move || {
        advancing.advance(Duration::MAX);
        let _ = done.send(());
    });
    if advanced.recv_timeout(crate::common::PATIENCE).is_err() {
        // The advancing thread holds the scheduler's lock for good, and a looping engine
        // allocates without end: failing here would hang in the world's shutdown, then run the
        // machine out of memory. End the whole test binary now instead.
        eprintln!("advance(Duration::MAX) never returned");
        std::process::abort();
    }
    assert_eq!(clock.now(), Time::MAX);
    next_session(&photo_sessions).succeed_all();
}
