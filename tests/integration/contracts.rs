//! Thread-safety contracts (issue 6, item 4), pinned at compile time: if one of these types
//! stops being `Send` or `Sync`, this file stops compiling, and `cargo test` with it.
//!
//! The other half, that what is not thread-safe is refused (a handler holding an `Rc`, a
//! callback or a context that is not `Send`), can only be shown by code that does not
//! compile: those are `compile_fail` doctests in the crate docs, where rustdoc checks that
//! each fails, and with the error it names.

use std::sync::Arc;
use std::time::Duration;

use syncmgr::engine::{Engine, StateChange, Stopped, Withdrawn};
use syncmgr::*;

/// A failure guard for waits that end on their own; never a way to let time pass.
const PATIENCE: Duration = Duration::from_secs(10);

const fn send_sync<T: Send + Sync + ?Sized>() {}
const fn send<T: Send + ?Sized>() {}

/// Handles shared between threads: the manager, a ticket, a session (usable "from any
/// thread, also threads the handler starts itself"), the notification stream.
const _HANDLES: () = {
    send_sync::<SyncManager>();
    send_sync::<SyncTicket>();
    send_sync::<SyncSession>();
    send_sync::<Notification>();
    send::<Notifications>();
    send_sync::<SyncManagerBuilder>();
};

/// What user code hands the manager, once boxed or shared the way the manager keeps it.
const _USER_CODE: () = {
    send_sync::<Arc<dyn SyncHandler>>();
    send::<Box<dyn SyncResult>>();
    send_sync::<Context>();
    send_sync::<HandlerError>();
    send::<SyncRequest>();
};

/// Values that cross threads in results, errors and notifications.
const _VALUES: () = {
    send_sync::<RequestResult>();
    send_sync::<Error>();
    send_sync::<ShutdownReport>();
    send_sync::<HandlerEvent>();
    send_sync::<EventReport>();
    send_sync::<PendingItems>();
    send_sync::<ServedRequest>();
    send_sync::<HandlerId>();
    send_sync::<ItemId>();
    send_sync::<StateChange>();
    send_sync::<Stopped>();
    send_sync::<Withdrawn>();
    send_sync::<Engine>();
};

/// `SyncHandler` and `SyncResult` demand thread safety of their implementors (their
/// supertraits), so any implementor may be moved and shared: the bounds below compile only
/// because of that.
#[allow(dead_code)]
fn implementors_are_thread_safe<H: SyncHandler, R: SyncResult>(handler: H, sink: R) {
    fn check<T: Send + Sync + 'static>(_: &T) {}
    fn check_send<T: Send + 'static>(_: &T) {}
    check(&handler);
    check_send(&sink);
}

/// The assertions above are checked when this file compiles; this runs them once more so
/// that they show up in the test list.
#[test]
fn thread_safety_contracts_hold() {
    let () = _HANDLES;
    let () = _USER_CODE;
    let () = _VALUES;
}

/// A handle moved to another thread works there: the manager, a ticket and a session (here
/// the session of a handler that gives it away to a thread of the test).
#[test]
fn handles_work_on_the_threads_they_are_moved_to() {
    type Given = (SyncSession, Vec<ItemId>, crossbeam_channel::Sender<()>);
    struct GiveAway(crossbeam_channel::Sender<Given>);
    impl SyncHandler for GiveAway {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("a", "A").unwrap()]
        }
        fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
            let (done_tx, done) = crossbeam_channel::bounded(0);
            let _ = self.0.send((session.clone(), items.to_vec(), done_tx));
            // Returns once the thread that took the session is done with it.
            let _ = done.recv();
            Ok(())
        }
    }
    let (sessions_tx, sessions) = crossbeam_channel::unbounded();
    let manager = SyncManager::new().unwrap();
    manager
        .register_handler("give-away", GiveAway(sessions_tx), ControlFlags::WAIT)
        .unwrap();
    let moved = manager.clone();
    let ticket = std::thread::spawn(move || {
        moved
            .start_handler_sync("give-away", SyncControlFlags::NONE, None)
            .unwrap()
    })
    .join()
    .unwrap();
    let (session, items, done) = sessions.recv_timeout(PATIENCE).unwrap();
    std::thread::spawn(move || {
        for item in &items {
            session
                .report_progress(item, ProgressStatus::Succeeded)
                .unwrap();
        }
        drop(done);
    })
    .join()
    .unwrap();
    let waited = std::thread::spawn(move || ticket.wait_timeout(PATIENCE))
        .join()
        .unwrap();
    assert_eq!(waited.map(|r| r.status), Some(Outcome::Succeeded));
    assert_eq!(manager.shutdown(), ShutdownReport::default());
}
