//! Test fixtures shared by the manager's integration tests.
//!
//! [`Driven`] is a handler whose sessions the test drives from its own thread: each session
//! hands the test a [`Running`] (its items and its `SyncSession`) and then waits until the
//! test says how `synchronize` ends. Nothing sleeps: every step is a channel message. The
//! manager around it is a [`World`] or comes from [`setup`] (`world.rs`).

#![allow(dead_code)] // each test file uses a different part

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use syncmgr::engine::StateChange;
use syncmgr::*;

mod world;
#[allow(unused_imports)] // not every test file uses the manager fixtures
pub use world::*;

/// How long a test waits for something that should already be on its way before it calls
/// the test failed. A failure guard, never a way to let time pass.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn id(s: &str) -> ItemId {
    ItemId::new(s).expect("test IDs are valid")
}

/// A result's items as (item, outcome) pairs, for comparing with a list.
pub fn pairs(result: &RequestResult) -> Vec<(ItemId, Outcome)> {
    result
        .items
        .iter()
        .map(|o| (o.item.clone(), o.outcome))
        .collect()
}

/// A cause as one line, its whole chain (`outer: inner`).
pub fn chain(cause: &Cause) -> String {
    format!("{cause:#}")
}

pub fn ids(list: &[&str]) -> Vec<ItemId> {
    list.iter().map(|s| id(s)).collect()
}

/// How a driven session's `synchronize` ends.
pub enum Finish {
    Return,
    Error(String),
    /// Returns this error (with whatever `source()` chain it has).
    Fail(HandlerError),
    Panic(String),
}

/// A session in progress, handed to the test.
pub struct Running {
    pub items: Vec<ItemId>,
    pub session: SyncSession,
    finish: Sender<Finish>,
}

impl Running {
    /// Reports a status for each of these items.
    pub fn report(&self, items: &[&str], status: ProgressStatus) {
        for item in items {
            self.session
                .report_progress(&id(item), status)
                .expect("progress report accepted");
        }
    }

    /// Reports `Succeeded` for every item of the session, then returns.
    pub fn succeed_all(self) {
        for item in &self.items {
            self.session
                .report_progress(
                    item,
                    Progress::new(ProgressStatus::Succeeded)
                        .text("done")
                        .steps(1, 1),
                )
                .expect("progress report accepted");
        }
        self.end(Finish::Return);
    }

    /// Ends `synchronize` this way.
    pub fn end(self, how: Finish) {
        let _ = self.finish.send(how);
    }

    /// The item names, for assertions.
    pub fn names(&self) -> Vec<String> {
        self.items.iter().map(|i| i.to_string()).collect()
    }
}

/// A handler driven by the test. Build it with [`Driven::new`], register it, then take each
/// session from the receiver it gave you.
pub struct Driven {
    pub items: Vec<SyncItem>,
    pub capabilities: HandlerCapabilities,
    pub policies: HandlerPolicies,
    pub max_concurrent: Option<usize>,
    pub connected: Arc<AtomicBool>,
    /// Answer to `query_state_change`.
    pub agree: Arc<AtomicBool>,
    /// Hook calls as (change, flags), in order.
    pub hooks: Option<Sender<(StateChange, ControlFlags)>>,
    /// What `sync_policy` answers.
    pub policy: SyncPolicy,
    sessions: Sender<Running>,
}

impl Driven {
    /// A handler with these items (all enabled), and the receiver of its sessions.
    pub fn new(items: &[&str]) -> (Driven, Receiver<Running>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handler = Driven {
            items: items
                .iter()
                .map(|i| SyncItem::new(i, i.to_uppercase()).unwrap())
                .collect(),
            capabilities: HandlerCapabilities::empty(),
            policies: HandlerPolicies::empty(),
            max_concurrent: None,
            connected: Arc::new(AtomicBool::new(true)),
            agree: Arc::new(AtomicBool::new(true)),
            hooks: None,
            policy: SyncPolicy::default(),
            sessions: tx,
        };
        (handler, rx)
    }

    pub fn with_capabilities(mut self, capabilities: HandlerCapabilities) -> Driven {
        self.capabilities = capabilities;
        self
    }

    pub fn with_policies(mut self, policies: HandlerPolicies) -> Driven {
        self.policies = policies;
        self
    }

    pub fn with_sync_policy(mut self, policy: SyncPolicy) -> Driven {
        self.policy = policy;
        self
    }

    /// Changes one item's description (policies, enabled state...).
    pub fn with_item(mut self, item: SyncItem) -> Driven {
        match self.items.iter_mut().find(|i| i.id == item.id) {
            Some(slot) => *slot = item,
            None => self.items.push(item),
        }
        self
    }

    fn hook(&self, change: StateChange, flags: ControlFlags) {
        if let Some(tx) = &self.hooks {
            let _ = tx.send((change, flags));
        }
    }
}

impl SyncHandler for Driven {
    fn name(&self) -> String {
        "driven".into()
    }
    fn capabilities(&self) -> HandlerCapabilities {
        self.capabilities
    }
    fn policies(&self) -> HandlerPolicies {
        self.policies
    }
    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }
    fn max_concurrent_sessions(&self) -> Option<usize> {
        self.max_concurrent
    }
    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }
    fn sync_policy(&self) -> SyncPolicy {
        self.policy.clone()
    }
    fn query_state_change(&self, _change: &StateChange, _flags: ControlFlags) -> bool {
        self.agree.load(Ordering::SeqCst)
    }
    fn on_state_change(
        &self,
        change: &StateChange,
        flags: ControlFlags,
    ) -> Result<(), HandlerError> {
        self.hook(change.clone(), flags);
        Ok(())
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let (finish, how) = crossbeam_channel::bounded(1);
        let running = Running {
            items: items.to_vec(),
            session: session.clone(),
            finish,
        };
        if self.sessions.send(running).is_err() {
            return Ok(());
        }
        // A test that dropped its `Running` without ending it ends the session normally.
        match how.recv().unwrap_or(Finish::Return) {
            Finish::Return => Ok(()),
            Finish::Error(message) => Err(message.into()),
            Finish::Fail(error) => Err(error),
            Finish::Panic(message) => panic!("{message}"),
        }
    }
}

/// Reads notifications until `pick` accepts one; fails the test if none comes.
pub fn wait_for<T>(notes: &Notifications, mut pick: impl FnMut(Notification) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let note = notes
            .recv_deadline(deadline)
            .expect("the notification should have come");
        if let Some(found) = pick(note) {
            return found;
        }
    }
}

/// Waits until the manager asked this session to cancel everything.
pub fn wait_for_cancel_all(notes: &Notifications, session: SessionId) {
    wait_for(notes, |note| match note {
        Notification::CancelRequested {
            session: s,
            request: CancelRequest::CancelAll,
            ..
        } if s == session => Some(()),
        _ => None,
    });
}

/// Takes the next session, failing the test if none comes.
pub fn next_session(sessions: &Receiver<Running>) -> Running {
    sessions
        .recv_timeout(PATIENCE)
        .expect("a session should have started")
}

/// Waits for a ticket's result, failing the test if it does not come.
pub fn result(ticket: &SyncTicket) -> RequestResult {
    ticket
        .wait_timeout(PATIENCE)
        .expect("the ticket should have resolved")
}

/// A result sink that forwards into a channel, and that channel.
pub fn sink() -> (Option<Box<dyn SyncResult>>, Receiver<RequestResult>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let sink: Box<dyn SyncResult> = Box::new(move |r: &RequestResult| {
        let _ = tx.send(r.clone());
    });
    (Some(sink), rx)
}

/// A manager with the default limits (test-sized grace period).
pub fn manager() -> SyncManager {
    built(SyncManager::builder())
}

/// A manager from this builder, with the test-sized grace period.
pub fn built(builder: SyncManagerBuilder) -> SyncManager {
    builder
        .shutdown_grace(Duration::from_millis(200))
        .build()
        .expect("the manager starts")
}

/// Runs a future to its end on the calling thread, parking between polls: the smallest
/// executor, for tests of the async surface that must not depend on a runtime. It polls again
/// only when woken, so a lost wake fails the test (after `PATIENCE`) instead of going unseen.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark {
        thread: std::thread::Thread,
        woken: AtomicBool,
    }
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.woken.store(true, Ordering::SeqCst);
            self.thread.unpark();
        }
    }
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        while !unpark.woken.swap(false, Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "the future was never woken");
            std::thread::park_timeout(left);
        }
    }
}
