//! The async surface without a runtime: tickets, notifications and shutdown awaited on the
//! smallest executor (`common::block_on`, one thread parking between polls), so each test
//! proves that the manager wakes the task (a lost wake would hang it).

use syncmgr::*;

use crate::common::{Driven, World, block_on, next_session};

#[test]
fn an_awaited_ticket_wakes_its_task() {
    let world = World::new();
    let (handler, sessions) = Driven::new(&["a"]);
    world.register("h", handler);
    let ticket = world.start("h", &["a"]);
    let by_ref = (&ticket).into_future();
    std::thread::scope(|s| {
        s.spawn(|| next_session(&sessions).succeed_all());
        // Awaited before the result exists: the task must be woken.
        let result = block_on(ticket.clone());
        assert_eq!(result.status, Outcome::Succeeded);
    });
    // A completed ticket is ready at once, and a clone awaited by reference too.
    assert_eq!(block_on(by_ref).status, Outcome::Succeeded);
    assert_eq!(block_on(ticket).status, Outcome::Succeeded);
}

#[test]
fn many_tasks_awaiting_one_ticket_are_all_woken() {
    let world = World::new();
    let (handler, sessions) = Driven::new(&["a"]);
    world.register("h", handler);
    let ticket = world.start("h", &["a"]);
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let ticket = ticket.clone();
                s.spawn(move || block_on(ticket).status)
            })
            .collect();
        next_session(&sessions).succeed_all();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Outcome::Succeeded);
        }
    });
}

#[test]
fn notifications_can_be_awaited_and_end_with_the_manager() {
    let manager = crate::common::manager();
    let mut notes = manager.subscribe();
    let (handler, sessions) = Driven::new(&["a"]);
    manager
        .register_handler("h", handler, ControlFlags::WAIT)
        .unwrap();
    let first = block_on(notes.recv_async());
    assert!(matches!(first, Some(Notification::HandlerChanged { .. })));
    std::thread::scope(|s| {
        s.spawn(|| next_session(&sessions).succeed_all());
        let _ticket = manager
            .start_item_sync("h", ["a"], SyncControlFlags::NONE, None)
            .unwrap();
        // Awaited before it is published: the task must be woken.
        let mut completed = false;
        while !completed {
            match block_on(notes.recv_async()) {
                Some(Notification::RequestCompleted(r)) => {
                    completed = r.status == Outcome::Succeeded;
                }
                Some(_) => {}
                None => panic!("the stream ended early"),
            }
        }
    });
    let report = block_on(manager.shutdown_async());
    assert_eq!(report, ShutdownReport::default());
    // The stream ends once the manager has shut down.
    while block_on(notes.recv_async()).is_some() {}
    assert!(matches!(notes.try_recv(), Err(RecvError::Closed)));
}
