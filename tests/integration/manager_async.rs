//! The async surface without a runtime: tickets, notifications and shutdown awaited on the
//! smallest executor (`common::block_on`, one thread parking between polls), so each test
//! proves that the manager wakes the task (a lost wake would hang it). Beside it, the blocking
//! counterpart of awaiting a ticket by value: `SyncTicket::into_result`.

use std::time::Duration;

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
fn every_handle_awaited_in_turn_gets_the_whole_result() {
    let world = World::new();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    world.register("h", handler);
    let ticket = world.start("h", &["a", "b"]);
    std::thread::scope(|s| {
        s.spawn(|| next_session(&sessions).succeed_all());
        assert_eq!(ticket.wait().items.len(), 2);
    });
    let expected = ticket.wait();
    let (first, second) = (ticket.clone(), ticket.clone());
    // Awaited by reference, and by value while other handles remain: copies.
    assert_eq!(block_on((&ticket).into_future()), expected);
    assert_eq!(block_on(first), expected);
    drop(ticket);
    // The last handle: the result itself, whole.
    assert_eq!(block_on(second), expected);
}

#[test]
fn every_handle_taken_in_turn_gets_the_whole_result() {
    let world = World::new();
    let (handler, sessions) = Driven::new(&["a", "b"]);
    world.register("h", handler);
    let ticket = world.start("h", &["a", "b"]);
    let (first, second) = (ticket.clone(), ticket.clone());
    let expected = std::thread::scope(|s| {
        s.spawn(|| next_session(&sessions).succeed_all());
        // Most often taken before the result exists, so this thread sleeps and must be
        // woken; taken after, it finds the result in. Either way the same result.
        first.into_result()
    });
    assert_eq!(expected.items.len(), 2);
    assert_eq!(expected.request, ticket.request());
    // Other handles remain: it was a copy, and each of them still has the result.
    assert_eq!(ticket.wait(), expected);
    drop(ticket);
    // The last handle: the result itself, whole.
    assert_eq!(second.into_result(), expected);
}

#[test]
fn a_ticket_taken_with_a_timeout_comes_back_if_the_result_does_not() {
    let world = World::new();
    let (handler, sessions) = Driven::new(&["a"]);
    world.register("h", handler);
    let ticket = world.start("h", &["a"]);
    let session = next_session(&sessions);
    // The session is held by the test: no result can come.
    let ticket = match ticket.into_result_timeout(Duration::ZERO) {
        Err(ticket) => ticket,
        Ok(result) => panic!("a result before the session ended: {result:?}"),
    };
    assert!(!ticket.is_complete());
    session.succeed_all();
    let result = ticket
        .into_result_timeout(crate::common::PATIENCE)
        .expect("the session ended");
    assert_eq!(result.status, Outcome::Succeeded);
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

/// With the `stream` feature, `Notifications` is a `futures_core::Stream`: what a stream
/// consumer reads is what `recv_async` reads, and the stream ends when the manager shuts down.
#[cfg(feature = "stream")]
#[test]
fn notifications_are_a_stream_that_ends_with_the_manager() {
    use std::pin::Pin;

    fn next(notes: &mut Notifications) -> Option<Notification> {
        use futures_core::Stream;
        block_on(std::future::poll_fn(|cx| {
            Pin::new(&mut *notes).poll_next(cx)
        }))
    }

    let manager = crate::common::manager();
    let mut notes = manager.subscribe();
    let (handler, sessions) = Driven::new(&["a"]);
    manager
        .register_handler("h", handler, ControlFlags::WAIT)
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| next_session(&sessions).succeed_all());
        let ticket = manager
            .start_item_sync("h", ["a"], SyncControlFlags::NONE, None)
            .unwrap();
        let mut seen = Vec::new();
        loop {
            match next(&mut notes) {
                Some(Notification::RequestCompleted(r)) => {
                    assert_eq!(
                        (r.request, r.status),
                        (ticket.request(), Outcome::Succeeded)
                    );
                    break;
                }
                Some(note) => seen.push(note),
                None => panic!("the stream ended early"),
            }
        }
        assert!(
            matches!(seen[0], Notification::HandlerChanged { .. }),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|n| matches!(n, Notification::SessionStarted { .. })),
            "{seen:?}"
        );
    });
    let _ = manager.shutdown();
    while next(&mut notes).is_some() {}
    assert!(matches!(notes.try_recv(), Err(RecvError::Closed)));
}

// ----- async handlers --------------------------------------------------------------------------

/// An executor for the tests that need no runtime: each task on a thread of its own, polled
/// with `block_on`.
struct ThreadPerTask;

impl Spawn for ThreadPerTask {
    fn spawn(&self, task: Task) {
        std::thread::spawn(move || block_on(task));
    }
}

/// A timer that falls due in the step that begins shutdown starts an async session there, on
/// the scheduler thread, which hands it to its executor once the lock is released. The check
/// that the session may still start was a call through the channel, since shutdown had
/// begun: the scheduler thread waited for itself and `shutdown` never returned (found by a
/// red-team test). Raced round after round: managers on the same clock widen the window
/// between the clock moving and this manager's poll, so the shutdown step's own poll fires
/// the timer in some rounds.
#[test]
fn a_session_a_timer_starts_as_shutdown_begins_lets_shutdown_return() {
    use std::time::Duration;
    for round in 0..40usize {
        let clock = ManualClock::new();
        let others: Vec<SyncManager> = (0..12)
            .map(|_| {
                SyncManager::builder()
                    .clock(clock.clone())
                    .worker_threads(1)
                    .build()
                    .unwrap()
            })
            .collect();
        let manager = SyncManager::builder()
            .clock(clock.clone())
            .worker_threads(1)
            .shutdown_grace(Duration::from_millis(200))
            .build()
            .unwrap();
        manager
            .register_async_handler(
                "h",
                Courier::debounced(Duration::from_secs(10)),
                ThreadPerTask,
                ControlFlags::WAIT,
            )
            .unwrap();
        let ticket = manager.request(SyncRequest::handler("h")).unwrap();
        let (go, ready) = crossbeam_channel::bounded::<()>(0);
        let (stopped, report) = crossbeam_channel::bounded(1);
        let stopping = manager.clone();
        std::thread::spawn(move || {
            let _ = ready.recv();
            for _ in 0..round % 8 {
                std::thread::yield_now();
            }
            let _ = stopped.send(stopping.shutdown());
        });
        go.send(()).unwrap();
        clock.advance(Duration::from_secs(11));
        assert!(
            report.recv_timeout(crate::common::PATIENCE).is_ok(),
            "round {round}: shutdown did not return"
        );
        assert!(
            ticket.wait_timeout(crate::common::PATIENCE).is_some(),
            "round {round}: the request got no result"
        );
        drop(others);
    }
}

/// An executor that holds the last handle on its manager and drops it in its `spawn`, then
/// runs the task on a thread of its own and says so.
struct DropsTheManager {
    manager: std::sync::Arc<std::sync::Mutex<Option<SyncManager>>>,
    spawned: crossbeam_channel::Sender<()>,
}

impl Spawn for DropsTheManager {
    fn spawn(&self, task: Task) {
        let last = self.manager.lock().unwrap().take();
        drop(last);
        std::thread::spawn(move || block_on(task));
        let _ = self.spawned.send(());
    }
}

/// User code on the scheduler thread (an executor's `spawn` for a session a timer started)
/// that drops the last `SyncManager` runs its shutdown there; that shutdown waited for a
/// report the scheduler thread sends only when it ends, and hung. Now it does not wait for
/// it, and the shutdown finishes when the thread is back in its loop.
#[test]
fn dropping_the_last_handle_on_the_scheduler_thread_lets_it_go_on() {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (spawned, spawn_returned) = crossbeam_channel::bounded(1);
    let manager = SyncManager::builder()
        .shutdown_grace(std::time::Duration::from_millis(20))
        .build()
        .unwrap();
    let executor = DropsTheManager {
        manager: slot.clone(),
        spawned,
    };
    manager
        // Its request waits 50 ms of real time before its session starts: the scheduler
        // thread wakes for the timer and starts it.
        .register_async_handler(
            "h",
            Courier::debounced(std::time::Duration::from_millis(50)),
            executor,
            ControlFlags::WAIT,
        )
        .unwrap();
    let ticket = manager.request(SyncRequest::handler("h")).unwrap();
    // The executor now holds the only handle; the timer fires 50 ms later.
    *slot.lock().unwrap() = Some(manager);
    assert!(
        spawn_returned.recv_timeout(crate::common::PATIENCE).is_ok(),
        "the scheduler thread waited for itself"
    );
    assert!(ticket.wait_timeout(crate::common::PATIENCE).is_some());
}

/// An executor that drops every task unpolled, as a runtime that is shutting down does.
struct Dropping;

impl Spawn for Dropping {
    fn spawn(&self, task: Task) {
        drop(task);
    }
}

/// An executor whose `spawn` panics.
struct Broken;

impl Spawn for Broken {
    fn spawn(&self, _task: Task) {
        panic!("deliberate: the executor cannot spawn");
    }
}

/// An async handler: succeeds its items, or fails or panics as told; with a debounce
/// window, its requests wait for a timer.
struct Courier {
    items: Vec<SyncItem>,
    how: &'static str,
    debounce: Option<std::time::Duration>,
}

impl Courier {
    fn new(how: &'static str) -> Courier {
        Courier {
            items: vec![SyncItem::new("a", "A").unwrap()],
            how,
            debounce: None,
        }
    }

    /// Succeeds its items, its requests waiting `window` for the debounce timer first.
    fn debounced(window: std::time::Duration) -> Courier {
        Courier {
            debounce: Some(window),
            ..Courier::new("ok")
        }
    }
}

impl AsyncHandler for Courier {
    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }

    fn sync_policy(&self) -> SyncPolicy {
        match self.debounce {
            Some(window) => SyncPolicy::default().debounce(window, window),
            None => SyncPolicy::default(),
        }
    }

    async fn synchronize(
        &self,
        items: Vec<ItemId>,
        session: SyncSession,
    ) -> Result<(), HandlerError> {
        match self.how {
            // Printed once by the default hook: the one deliberate panic of this file.
            "panic" => panic!("deliberate: the async handler panicked"),
            "error" => Err("the server said no".into()),
            _ => {
                for item in &items {
                    session.report_progress(item, ProgressStatus::Succeeded)?;
                }
                Ok(())
            }
        }
    }
}

#[test]
fn an_async_handler_runs_its_sessions_on_its_executor() {
    let world = World::new();
    world
        .manager
        .register_async_handler("ok", Courier::new("ok"), ThreadPerTask, ControlFlags::WAIT)
        .unwrap();
    let ticket = world.start("ok", &["a"]);
    assert_eq!(block_on(ticket).status, Outcome::Succeeded);
}

#[test]
fn an_async_handler_that_fails_panics_or_is_dropped_fails_its_items_and_the_manager_goes_on() {
    let world = World::new();
    let m = &world.manager;
    m.register_async_handler(
        "error",
        Courier::new("error"),
        ThreadPerTask,
        ControlFlags::WAIT,
    )
    .unwrap();
    m.register_async_handler(
        "panic",
        Courier::new("panic"),
        ThreadPerTask,
        ControlFlags::WAIT,
    )
    .unwrap();
    m.register_async_handler("dropped", Courier::new("ok"), Dropping, ControlFlags::WAIT)
        .unwrap();
    m.register_async_handler("unspawned", Courier::new("ok"), Broken, ControlFlags::WAIT)
        .unwrap();
    for h in ["error", "panic", "dropped", "unspawned"] {
        let result = block_on(world.start(h, &["a"]));
        assert_eq!(result.status, Outcome::Failed, "{h}");
        assert_eq!(result.errors, 1, "{h}: the failure is an error event");
    }
    m.register_async_handler("ok", Courier::new("ok"), ThreadPerTask, ControlFlags::WAIT)
        .unwrap();
    assert_eq!(
        block_on(world.start("ok", &["a"])).status,
        Outcome::Succeeded
    );
}

// ----- on a tokio runtime (feature `tokio`) -----------------------------------------------------

#[cfg(feature = "tokio")]
mod on_tokio {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Poll, Waker};
    use std::thread::ThreadId;

    use super::*;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    /// A gate every session awaits until the test opens it: a future that holds no thread.
    #[derive(Clone, Default)]
    struct Gate(Arc<Mutex<(bool, Vec<Waker>)>>);

    impl Gate {
        fn open(&self) {
            let wakers = {
                let mut g = self.0.lock().unwrap();
                g.0 = true;
                std::mem::take(&mut g.1)
            };
            wakers.into_iter().for_each(Waker::wake);
        }

        async fn passed(&self) {
            std::future::poll_fn(|cx| {
                let mut g = self.0.lock().unwrap();
                if g.0 {
                    Poll::Ready(())
                } else {
                    g.1.push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await
        }
    }

    /// Each item its own session (concurrent), each waiting at the gate.
    struct Waiting {
        gate: Gate,
        inside: Arrivals,
        n: usize,
    }

    /// Counts sessions that arrived, and the threads they ran on; wakes the task waiting for
    /// a number of them.
    #[derive(Clone, Default)]
    struct Arrivals(Arc<Arrived>);

    #[derive(Default)]
    struct Arrived {
        count: AtomicUsize,
        waiter: Mutex<Option<Waker>>,
        threads: Mutex<HashSet<ThreadId>>,
    }

    impl Arrivals {
        fn arrive(&self) {
            self.0
                .threads
                .lock()
                .unwrap()
                .insert(std::thread::current().id());
            self.0.count.fetch_add(1, Ordering::SeqCst);
            if let Some(waker) = self.0.waiter.lock().unwrap().take() {
                waker.wake();
            }
        }

        /// The threads the sessions that arrived ran on.
        fn threads(&self) -> HashSet<ThreadId> {
            self.0.threads.lock().unwrap().clone()
        }

        async fn reached(&self, n: usize) {
            std::future::poll_fn(|cx| {
                *self.0.waiter.lock().unwrap() = Some(cx.waker().clone());
                if self.0.count.load(Ordering::SeqCst) >= n {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }

    impl AsyncHandler for Waiting {
        fn items(&self) -> Vec<SyncItem> {
            (0..self.n)
                .map(|i| SyncItem::new(format!("i{i}"), "item").unwrap())
                .collect()
        }
        fn capabilities(&self) -> HandlerCapabilities {
            HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
        }
        fn max_concurrent_sessions(&self) -> Option<usize> {
            Some(self.n)
        }
        async fn synchronize(
            &self,
            items: Vec<ItemId>,
            session: SyncSession,
        ) -> Result<(), HandlerError> {
            self.inside.arrive();
            self.gate.passed().await;
            for item in &items {
                session.report_progress(item, ProgressStatus::Succeeded)?;
            }
            Ok(())
        }
    }

    #[test]
    fn a_plain_handler_and_an_async_one_await_on_a_current_thread_runtime() {
        let rt = current_thread();
        let world = World::new();
        let (plain, sessions) = Driven::new(&["a"]);
        world.register("plain", plain);
        world
            .manager
            .register_async_handler(
                "async",
                Courier::new("ok"),
                rt.handle().clone(),
                ControlFlags::WAIT,
            )
            .unwrap();
        std::thread::scope(|s| {
            s.spawn(|| next_session(&sessions).succeed_all());
            rt.block_on(async {
                let plain = world.start("plain", &["a"]);
                let courier = world.start("async", &["a"]);
                assert_eq!(plain.await.status, Outcome::Succeeded);
                assert_eq!(courier.await.status, Outcome::Succeeded);
                let report = world.manager.shutdown_async().await;
                assert_eq!(report, ShutdownReport::default());
            });
        });
    }

    #[test]
    fn fifty_async_sessions_awaiting_at_once_hold_no_thread() {
        const N: usize = 50;
        let rt = current_thread();
        // Two workers: blocking handlers could run two sessions at once, not fifty.
        let world = World::built(SyncManager::builder().max_sessions(N).worker_threads(2));
        let gate = Gate::default();
        let inside = Arrivals::default();
        let handler = Waiting {
            gate: gate.clone(),
            inside: inside.clone(),
            n: N,
        };
        world
            .manager
            .register_async_handler("w", handler, rt.handle().clone(), ControlFlags::WAIT)
            .unwrap();
        rt.block_on(async {
            let tickets: Vec<SyncTicket> = (0..N)
                .map(|i| world.start("w", &[format!("i{i}").as_str()]))
                .collect();
            // Every session is inside `synchronize`, awaiting the gate, and every one of them
            // runs on this thread (the runtime's only one): no session holds a thread of its
            // own, where a blocking handler would hold one of the two workers.
            inside.reached(N).await;
            let here = HashSet::from([std::thread::current().id()]);
            assert_eq!(
                inside.threads(),
                here,
                "the sessions run on the runtime's thread"
            );
            gate.open();
            for ticket in tickets {
                assert_eq!(ticket.await.status, Outcome::Succeeded);
            }
        });
    }
}

#[test]
fn a_task_awaiting_notifications_wakes_when_the_manager_shuts_down() {
    let manager = crate::common::manager();
    let mut notes = manager.subscribe();
    std::thread::scope(|s| {
        // Awaits with nothing coming: only the end of the stream can wake it.
        let waiting = s.spawn(move || block_on(notes.recv_async()));
        let _ = manager.shutdown();
        assert!(waiting.join().unwrap().is_none());
    });
}

/// A handler's session future is dropped, with what it holds, before the session's end is
/// reported, as a worker drops a blocking session's values: a future that keeps the session
/// until it is dropped sees no result out yet. (A future pinned in its task and dropped with
/// the task, after the end, broke this.)
#[test]
fn an_async_sessions_future_is_dropped_before_its_end_is_reported() {
    use std::sync::{Arc, Mutex};

    /// Says, as it is dropped, whether the request's result was already out.
    struct Watch {
        ticket: Arc<Mutex<Option<SyncTicket>>>,
        dropped: crossbeam_channel::Sender<bool>,
    }

    impl Drop for Watch {
        fn drop(&mut self) {
            let out = self
                .ticket
                .lock()
                .unwrap()
                .as_ref()
                .map(SyncTicket::is_complete);
            let _ = self.dropped.send(out == Some(true));
        }
    }

    /// Ready at once, having reported its items; keeps the session and the watch until it
    /// is dropped, as a hand-written future may.
    struct Kept {
        session: SyncSession,
        items: Vec<ItemId>,
        _watch: Watch,
    }

    impl std::future::Future for Kept {
        type Output = Result<(), HandlerError>;
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            for item in &self.items {
                self.session
                    .report_progress(item, ProgressStatus::Succeeded)?;
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    struct Keeps {
        ticket: Arc<Mutex<Option<SyncTicket>>>,
        dropped: crossbeam_channel::Sender<bool>,
    }

    impl AsyncHandler for Keeps {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("a", "A").unwrap()]
        }
        fn synchronize(
            &self,
            items: Vec<ItemId>,
            session: SyncSession,
        ) -> impl std::future::Future<Output = Result<(), HandlerError>> + Send {
            Kept {
                session,
                items,
                _watch: Watch {
                    ticket: self.ticket.clone(),
                    dropped: self.dropped.clone(),
                },
            }
        }
    }

    let manager = crate::common::manager();
    let slot = Arc::new(Mutex::new(None));
    let (dropped, seen) = crossbeam_channel::unbounded();
    let handler = Keeps {
        ticket: slot.clone(),
        dropped,
    };
    // A spawner that waits for the ticket to be in the slot before it runs the task.
    let (go, ready) = crossbeam_channel::bounded::<()>(1);
    struct AfterGo(crossbeam_channel::Receiver<()>);
    impl Spawn for AfterGo {
        fn spawn(&self, task: Task) {
            let go = self.0.clone();
            std::thread::spawn(move || {
                let _ = go.recv();
                block_on(task)
            });
        }
    }
    manager
        .register_async_handler("h", handler, AfterGo(ready), ControlFlags::WAIT)
        .unwrap();
    let ticket = manager.request(SyncRequest::handler("h")).unwrap();
    *slot.lock().unwrap() = Some(ticket.clone());
    go.send(()).unwrap();
    assert_eq!(
        seen.recv_timeout(crate::common::PATIENCE),
        Ok(false),
        "the future was dropped after the result went out"
    );
    assert_eq!(
        ticket
            .wait_timeout(crate::common::PATIENCE)
            .map(|r| r.status),
        Some(Outcome::Succeeded)
    );
}
