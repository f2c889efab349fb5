//! White-box tests of the scheduler: steps run by hand under its lock.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::{Ran, Scheduler};
use crate::engine::{SessionId, Withdrawn};
use crate::time::Time;
use crate::{
    ControlFlags, Error, HandlerError, ItemId, Outcome, SyncControlFlags, SyncHandler, SyncItem,
    SyncManager, SyncPolicy, SyncSession,
};

/// A caller reads the clock before it takes the lock. A manual clock advanced in between
/// leaves the engine ahead of the time the caller's step is given, and the zero-delay retry
/// that step sets is due at the engine's time, the clock's: it runs with no further
/// advance. (Found by review: `run_due` compared with the caller's time.)
#[test]
fn a_step_given_a_stale_time_runs_the_zero_delay_retry_it_set() {
    use crate::Retry;
    use crate::cause::Cause;
    use crate::engine::SessionEnd;
    use crate::manager::command::Command;

    let patience = Duration::from_secs(10);
    let (manager, clock) = on_manual_clock();
    let (started, go) = Gated::register(&manager, true);
    let zero = Retry::exponential(3, Duration::ZERO, Duration::ZERO);
    manager
        .set_sync_policy("held", SyncPolicy::default().retry(zero))
        .unwrap();
    let _ticket = manager
        .start_handler_sync("held", SyncControlFlags::NONE, None)
        .unwrap();
    let first = started.recv_timeout(patience).unwrap();

    // The worker's end of session, as if it had read the clock before the advance.
    let stale = clock.now();
    clock.advance(Duration::from_secs(1));
    let end = Command::SessionFinished {
        session: first,
        end: SessionEnd::Failed(Cause::new("boom")),
    };
    let ran = step_at(&manager, stale, end, super::Scheduler::apply);
    assert!(matches!(ran, Ran::Done(None)));

    // Nothing advances the clock again: the retry must start on its own. (The timeout
    // is a guard; without the fix the test waits it out and fails.)
    let retried = started.recv_timeout(patience).is_ok();
    drop(go);
    manager.shutdown();
    assert!(
        retried,
        "the retry due at the clock's time waited for an advance"
    );
}

/// Runs one step of `manager`'s scheduler at `now`, a time the test picks rather than the
/// clock's, as `Link::run` does: under the lock, then what the step leaves for after it.
fn step_at<I, R>(
    manager: &SyncManager,
    now: Time,
    input: I,
    here: impl FnOnce(&mut Scheduler, I) -> R,
) -> Ran<R, I> {
    let scheduler = manager.core().link.scheduler_for_test().unwrap();
    scheduler.with(|s| s.run_here(Some(now), input, here))
}

/// A manager on a manual clock that gives up on its threads at once when it shuts down.
fn on_manual_clock() -> (SyncManager, crate::ManualClock) {
    let clock = crate::ManualClock::new();
    let manager = SyncManager::builder()
        .clock(clock.clone())
        .shutdown_grace(Duration::ZERO)
        .build()
        .unwrap();
    (manager, clock)
}

/// A handler of one item whose sessions say which session started, then end once the test
/// lets them go (or drops the sender): with an error if it was made `failing`.
struct Gated {
    started: crossbeam_channel::Sender<SessionId>,
    gate: Receiver<()>,
    fails: bool,
}

impl Gated {
    /// Registers a gated handler as `"held"`: the sessions it starts, and the sender that
    /// lets them end.
    fn register(
        manager: &SyncManager,
        fails: bool,
    ) -> (Receiver<SessionId>, crossbeam_channel::Sender<()>) {
        let (started, sessions) = crossbeam_channel::unbounded();
        let (go, gate) = crossbeam_channel::bounded(0);
        let handler = Gated {
            started,
            gate,
            fails,
        };
        manager
            .register_handler("held", Arc::new(handler), ControlFlags::WAIT)
            .unwrap();
        (sessions, go)
    }
}

impl SyncHandler for Gated {
    fn items(&self) -> Vec<SyncItem> {
        vec![SyncItem::new("one", "One").unwrap()]
    }

    fn synchronize(&self, _: &[ItemId], s: &SyncSession) -> Result<(), HandlerError> {
        let _ = self.started.send(s.id());
        let _ = self.gate.recv();
        if self.fails {
            Err("late".into())
        } else {
            Ok(())
        }
    }
}

/// A manager, the sessions its "held" handler starts, and the sender that lets them go.
type Held = (
    SyncManager,
    Receiver<SessionId>,
    crossbeam_channel::Sender<()>,
);

/// A manager that gives up on its threads at once when it shuts down, with a `Gated`
/// handler that succeeds as "held".
fn held() -> Held {
    held_with_grace(Duration::ZERO)
}

fn held_with_grace(grace: Duration) -> Held {
    let manager = SyncManager::builder()
        .shutdown_grace(grace)
        .build()
        .unwrap();
    let (started, go) = Gated::register(&manager, false);
    (manager, started, go)
}

#[test]
fn calls_read_the_clock_only_while_the_engine_keeps_time() {
    let (manager, _, go) = held();
    let keeps_time = || manager.core().link.keeps_time();
    assert!(!keeps_time());
    let every_minute = SyncPolicy::default().every(Duration::from_secs(60));
    manager.set_sync_policy("held", every_minute).unwrap();
    assert!(keeps_time());
    manager
        .set_sync_policy("held", SyncPolicy::default())
        .unwrap();
    assert!(!keeps_time());
    drop(go);
    manager.shutdown();
}

#[test]
fn a_step_that_panics_leaves_no_ticket_waiting_forever() {
    // A long grace: threads that never end would make `shutdown` wait it out and report
    // them detached; threads that end make it return as soon as they have.
    let (manager, _, go) = held_with_grace(Duration::from_secs(60));
    let none = SyncControlFlags::NONE;
    let running = manager.start_handler_sync("held", none, None).unwrap();
    let queued = manager.start_handler_sync("held", none, None).unwrap();
    // A bug in this crate: a step that panics under the scheduler's lock.
    let ran = manager
        .core()
        .link
        .run((), |_, ()| panic!("a deliberate bug in a step"));
    assert!(matches!(ran, Ran::Broken(_)));
    for ticket in [&running, &queued] {
        // Given up once the breaking call released the lock: complete, and every read
        // of it says the same.
        assert!(ticket.is_complete());
        let read = ticket.try_result().expect("a complete ticket has a result");
        assert_eq!(read.status, Outcome::Canceled);
        assert_eq!(ticket.cancel(), Ok(Withdrawn::AlreadyComplete));
        let result = ticket
            .wait_timeout(Duration::from_secs(30))
            .expect("no ticket waits forever once the scheduler broke");
        assert_eq!(result.status, Outcome::Canceled);
    }
    assert_eq!(
        manager.start_handler_sync("held", none, None).err(),
        Some(Error::ShutDown)
    );
    // The held session's worker finishes once let go; the scheduler thread, woken by the
    // break, has ended and taken the workers' queue and the delivery thread with it.
    drop(go);
    let report = manager.shutdown();
    assert_eq!(report.detached_threads, 0, "every thread ended: {report:?}");
}

/// A tick due by a start call's step issues its request before the call's own is
/// accepted, but the scheduler records it after (the step's actions are carried out
/// last): the record of the older request must still be kept and found, so that its
/// session sees why it was made.
#[test]
fn a_request_issued_in_a_start_calls_step_keeps_its_reason() {
    use crate::manager::command::Start;
    use crate::manager::request::StartParts;
    use crate::{HandlerId, RequestId, SyncPolicy, TriggerReason};

    /// Says which requests (and why) each session serves, then succeeds.
    struct Telling(crossbeam_channel::Sender<Vec<(RequestId, TriggerReason)>>);
    impl SyncHandler for Telling {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("one", "One").unwrap()]
        }
        fn synchronize(&self, items: &[ItemId], s: &SyncSession) -> Result<(), HandlerError> {
            let served = s.requests().iter().map(|r| (r.request, r.reason)).collect();
            let _ = self.0.send(served);
            for item in items {
                s.report_progress(item, crate::ProgressStatus::Succeeded)?;
            }
            Ok(())
        }
    }
    let patience = Duration::from_secs(10);
    let (manager, clock) = on_manual_clock();
    let (served_tx, served) = crossbeam_channel::unbounded();
    manager
        .register_handler("h", Arc::new(Telling(served_tx)), ControlFlags::WAIT)
        .unwrap();
    let every = Duration::from_secs(60);
    manager
        .set_sync_policy("h", SyncPolicy::default().every(every))
        .unwrap();

    // A start call's step at a time past the first tick, as if the call had read the
    // clock just after an advance that its own step then runs first.
    let link = &manager.core().link;
    let parts = StartParts::plain(
        HandlerId::new("h").unwrap(),
        None,
        SyncControlFlags::NONE,
        None,
    );
    let start = Start::new(parts, Some(true), link);
    let ran = step_at(
        &manager,
        clock.now() + every * 2,
        start,
        super::Scheduler::start,
    );
    let Ran::Done(Ok(ticket)) = ran else {
        panic!("the start call failed");
    };
    assert_eq!(ticket.wait().status, Outcome::Succeeded);

    let mut reasons = Vec::new();
    while let Ok(session) = served.recv_timeout(patience) {
        reasons.extend(session);
        if reasons.len() >= 2 {
            break;
        }
    }
    manager.shutdown();
    let issued: Vec<_> = reasons
        .iter()
        .filter(|(r, _)| *r != ticket.request())
        .collect();
    assert_eq!(
        issued.len(),
        1,
        "one tick's request besides the call's: {reasons:?}"
    );
    let (tick, reason) = issued[0];
    assert!(
        *tick < ticket.request(),
        "the tick's request is the older one"
    );
    assert_eq!(*reason, TriggerReason::Scheduled, "its record was lost");
}

/// A worker whose session has ended does not wait for a busy lock: the end is left beside
/// it, and the thread holding the lock applies it as it lets the lock go, so the request has
/// its result as soon as that thread's call returns.
#[test]
fn a_session_end_left_while_the_lock_is_held_is_applied_when_it_is_let_go() {
    use crate::engine::SessionEnd;

    let patience = Duration::from_secs(10);
    let (manager, started, go) = held();
    let ticket = manager
        .start_handler_sync("held", SyncControlFlags::NONE, None)
        .unwrap();
    let session = started.recv_timeout(patience).unwrap();

    let link = manager.core().link.clone();
    let scheduler = link.scheduler_for_test().unwrap();
    let (left_tx, left) = crossbeam_channel::bounded(1);
    let (completed_while_held, ender) = scheduler.with(|_| {
        // Another thread ends the session while this one holds the lock. Were it to wait
        // for the lock, it could not say so before the lock is let go.
        let link = link.clone();
        let ender = std::thread::spawn(move || {
            link.end_session(session, SessionEnd::Returned);
            let _ = left_tx.send(());
        });
        left.recv_timeout(patience).unwrap();
        (ticket.is_complete(), ender)
    });
    assert!(ender.join().is_ok());
    let completed_after = ticket.is_complete();
    drop(go);
    manager.shutdown();
    assert!(!completed_while_held, "applied under another thread's lock");
    assert!(completed_after, "the end was left unapplied");
    assert_eq!(ticket.try_result().unwrap().status, Outcome::Failed);
}
