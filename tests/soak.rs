//! Soak (issue 6, item 3): a million random operations through one `SyncManager`, with random
//! faults in the handlers, their hooks and the result callbacks, then the books are closed:
//!
//! - every accepted request resolved exactly once: each request ID (the engine numbers
//!   accepted requests 1, 2, 3, ...) has one ticket result, one `RequestAccepted` and one
//!   `RequestCompleted` in the notification stream with that same result, and one callback
//!   call with it if it had a callback (and none if not);
//! - the engine's invariants hold (`check_consistency`, during the run and at the end);
//! - shutdown abandons nothing and detaches no thread (`ShutdownReport::default()`), and the
//!   process has as many threads as before the manager was built (`Threads:` in
//!   `/proc/self/status`, on Linux);
//! - memory is back to its starting level: a counting global allocator compares the bytes
//!   live after shutdown (and after the test dropped its own books) with the bytes live just
//!   before the manager was built, within `SLACK` bytes.
//!
//! It is `#[ignore]`d: a full run takes a minute or two in release on two cores. Run it with
//!
//! ```sh
//! cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! Knobs (environment variables):
//! - `SYNCMGR_SOAK_SEED`: the seed, decimal or `0x` hex; every run prints the one it used.
//! - `SYNCMGR_SOAK_OPS`: operations in all (default 1,000,000), shared by the submitters.
//! - `SYNCMGR_SOAK_THREADS`: submitter threads (default 3).
//!
//! Each submitter and each session draws from its own generator seeded from the seed, so a
//! seed replays the same operation sequences; the interleaving of threads differs from run to
//! run. `soak_smoke` runs the same code for 5,000 operations in every `cargo test`.
//!
//! The faults: sessions that panic before any report, midway or after the last one, return
//! errors, never report, report twice (the terminal rule), report from helper threads (some
//! of which outlive the session and keep reporting), pull pending items, and, for one handler,
//! call back into the manager from inside `synchronize` (start syncs of itself and of others,
//! stop itself, disable and re-enable itself or an item with `WAIT`, queue an update); hooks
//! that panic or fail on the way off, `is_connected` that panics, `items()` that panics at
//! update; result callbacks that panic or start requests; subscribers that stop reading and
//! are dropped; handlers registered and removed all along. `tests/integration/stress.rs`
//! checks scheduling and outcomes exactly under load; this test checks that nothing is lost
//! or kept over a long run.

#[path = "common/counting.rs"]
mod counting;
#[path = "common/randomized.rs"]
mod randomized;

use counting::Counting;
use randomized::{XorShift, env_number, quiet_deliberate_panics};

use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use syncmgr::engine::Withdrawn;
use syncmgr::*;

// ----- the counting allocator (`common/counting.rs`) -------------------------------------------

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What may stay allocated after the manager is gone without being a leak: whatever the
/// test harness's own threads hold at that moment (this file's tests run one at a time, but
/// the harness reports on one while another runs). Measured: 0 bytes. A leak of a few bytes
/// per request, session or registration would be far more over a million operations, and a
/// leak of the manager (`tests/faults.rs`, `shutdown_lets_go_of_handlers_that_hold_a_manager_handle`)
/// far more still.
const SLACK: usize = 4 * 1024;

/// The process's thread count (`Threads:` in `/proc/self/status`), where there is one.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The thread count, once it is down to `target` or `PATIENCE` has passed. `join` returns
/// when the thread has cleared its ID, a moment before the kernel takes it off `Threads:`;
/// under load that moment is long enough to be seen. There is nothing to wait on for it, so
/// this polls, yielding.
fn thread_count_down_to(target: Option<usize>) -> Option<usize> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = thread_count();
        if now <= target || Instant::now() > deadline {
            return now;
        }
        thread::yield_now();
    }
}

// ----- randomness and knobs --------------------------------------------------------------------

// `XorShift`, `env_number` and `quiet_deliberate_panics` are in `common/randomized.rs`.

const DEFAULT_SEED: u64 = 0x50A4_0006;
/// A failure guard for waits that end on their own; never a way to let time pass.
const PATIENCE: Duration = Duration::from_secs(60);
/// Every deliberate panic and error message starts with this.
const DELIBERATE: &str = "soak: deliberate";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ----- the books -------------------------------------------------------------------------------

/// A result in one number, to compare the ticket's, the callback's and the stream's copies.
fn fingerprint(r: &RequestResult) -> u64 {
    let mut h = DefaultHasher::new();
    r.request.get().hash(&mut h);
    r.handler.as_str().hash(&mut h);
    r.status.hash(&mut h);
    r.errors.hash(&mut h);
    r.conflicts.hash(&mut h);
    for o in &r.items {
        o.item.as_str().hash(&mut h);
        o.outcome.hash(&mut h);
    }
    h.finish() | 1
}

/// Grows `v` so that `v[i]` exists.
fn at<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

/// What was seen of each request, by request ID.
#[derive(Default)]
struct Books {
    /// The fingerprint of the result a ticket gave (0: not seen).
    ticket: Mutex<Vec<u64>>,
    /// Whether the request was made with a result callback.
    with_callback: Mutex<Vec<bool>>,
    /// Callback calls and the fingerprint of the last one.
    callback: Mutex<Vec<(u32, u64)>>,
}

/// One counter per kind of thing that happened.
#[derive(Default)]
struct Counters {
    sessions: AtomicUsize,
    session_calls: AtomicUsize,
    panic_before: AtomicUsize,
    panic_midway: AtomicUsize,
    panic_after: AtomicUsize,
    errors: AtomicUsize,
    unreported: AtomicUsize,
    terminal_refused: AtomicUsize,
    helper_sessions: AtomicUsize,
    late_helpers: AtomicUsize,
    late_reports_refused: AtomicUsize,
    pulls: AtomicUsize,
    reentrant_calls: AtomicUsize,
    hook_faults: AtomicUsize,
    connect_faults: AtomicUsize,
    items_faults: AtomicUsize,
    callbacks: AtomicUsize,
    callback_panics: AtomicUsize,
    callback_starts: AtomicUsize,
    cancels_seen: AtomicUsize,
    extra_accepted: AtomicUsize,
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Relaxed);
}

/// Shared by the handlers, the callbacks and the submitters.
struct World {
    seed: u64,
    counters: Counters,
    books: Books,
    /// A manager handle for the re-entrant handler and callbacks; emptied before the end so
    /// that no handler keeps the manager alive.
    slot: Mutex<Option<SyncManager>>,
    /// Tickets of requests made by handlers and callbacks.
    extra: Mutex<Vec<SyncTicket>>,
    /// Helper threads that outlive their sessions, joined at the end.
    helpers: Mutex<Vec<JoinHandle<()>>>,
    /// Problems seen where a panic would be caught by the manager (inside handlers and
    /// callbacks).
    violations: Mutex<Vec<String>>,
    /// The stable handlers, their items, and whether starts on them may be refused because
    /// something is (for a moment) disabled or inactive.
    stable: Vec<(HandlerId, Vec<ItemId>)>,
    /// Off while the stable handlers register: their faults start after.
    armed: AtomicBool,
}

impl World {
    fn violation(&self, what: String) {
        let mut v = lock(&self.violations);
        if v.len() < 100 {
            v.push(what);
        }
    }

    fn manager(&self) -> Option<SyncManager> {
        lock(&self.slot).clone()
    }

    /// A result callback: records its call; some panic, some start a request.
    fn callback(self: &Arc<World>, rng: &mut XorShift) -> impl SyncResult + use<> {
        let world = self.clone();
        let fate = rng.below(100);
        let seed = rng.next();
        move |r: &RequestResult| {
            bump(&world.counters.callbacks);
            {
                let mut calls = lock(&world.books.callback);
                let entry = at(&mut calls, r.request.get() as usize);
                entry.0 += 1;
                entry.1 = fingerprint(r);
            }
            match fate {
                0..5 => {
                    bump(&world.counters.callback_panics);
                    panic!("{DELIBERATE} callback panic for {}", r.request);
                }
                5..10 => {
                    if let Some(manager) = world.manager() {
                        bump(&world.counters.callback_starts);
                        let mut rng = XorShift::seeded(seed);
                        let (handler, items) = rng.pick(&world.stable);
                        let item = rng.pick(items).clone();
                        world.start_extra(&manager, handler, Some(vec![item]), &mut rng);
                    }
                }
                _ => {}
            }
        }
    }

    /// A request made by a handler or a callback: tracked in `extra`.
    fn start_extra(
        self: &Arc<World>,
        manager: &SyncManager,
        handler: &HandlerId,
        items: Option<Vec<ItemId>>,
        rng: &mut XorShift,
    ) {
        let mut request = SyncRequest::handler(handler);
        if let Some(items) = items {
            request = request.items(items);
        }
        if rng.below(2) == 0 {
            request = request.flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING);
        }
        let with_callback = rng.per_mille(200);
        if with_callback {
            request = request.with_sink(plain_callback(self.clone()));
        }
        match manager.request(request) {
            Ok(ticket) => {
                bump(&self.counters.extra_accepted);
                *at(
                    &mut lock(&self.books.with_callback),
                    ticket.request().get() as usize,
                ) = with_callback;
                lock(&self.extra).push(ticket);
            }
            // The last ones may come while the manager shuts down.
            Err(e) if refusal(&e) || e == Error::ShutDown => {}
            Err(e) => self.violation(format!("a start from inside was refused: {e:?}")),
        }
    }
}

/// A callback that only records its call (no re-entrancy, so no recursion).
fn plain_callback(world: Arc<World>) -> impl SyncResult {
    move |r: &RequestResult| {
        bump(&world.counters.callbacks);
        let mut calls = lock(&world.books.callback);
        let entry = at(&mut calls, r.request.get() as usize);
        entry.0 += 1;
        entry.1 = fingerprint(r);
    }
}

/// A start may be refused because another thread or a handler turned something off for a
/// moment; nothing else refuses a valid start during the run.
fn refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::AccessDenied(
            Denied::HandlerDisabled | Denied::HandlerInactive | Denied::ItemDisabled(_)
        )
    ) || deliberate_hook_panic(e)
}

/// A start refused because the flaky handler's `is_connected` panicked on purpose (a hook
/// that cannot answer refuses the call, and nothing changes).
fn deliberate_hook_panic(e: &Error) -> bool {
    matches!(e, Error::HandlerFailed(cause) if format!("{cause:#}").contains(DELIBERATE))
}

// ----- the handlers ----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Sessions with every fault.
    Plain,
    /// The same, with concurrent sessions.
    Concurrent,
    /// Also: hooks fail on the way off, `is_connected` and `items()` panic now and then.
    Flaky,
    /// Also: calls back into the manager from inside `synchronize`.
    Reentrant,
    /// Registered and removed by the submitters all along.
    Transient,
}

struct Soaker {
    id: HandlerId,
    kind: Kind,
    items: Vec<SyncItem>,
    seed: u64,
    /// Draws for the hook and connectivity faults.
    draws: AtomicU64,
    world: Arc<World>,
}

impl Soaker {
    fn draw(&self, per_mille: usize) -> bool {
        if !self.world.armed.load(Relaxed) {
            return false;
        }
        let n = self.draws.fetch_add(1, Relaxed);
        XorShift::seeded(self.seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407)).per_mille(per_mille)
    }

    /// A hook fault, only on the way off (so a handler never stays off for good).
    fn hook(&self, on: bool) -> Result<(), HandlerError> {
        if self.kind != Kind::Flaky || on {
            return Ok(());
        }
        if self.draw(150) {
            bump(&self.world.counters.hook_faults);
            if self.draw(500) {
                panic!("{DELIBERATE} hook panic in {}", self.id);
            }
            return Err(format!("{DELIBERATE} hook error in {}", self.id).into());
        }
        Ok(())
    }

    fn report(&self, session: &SyncSession, item: &ItemId, status: ProgressStatus) -> bool {
        bump(&self.world.counters.session_calls);
        match session.report_progress(item, status) {
            Ok(CancelRequest::CancelAll) => false,
            Ok(_) => true,
            Err(e) => {
                self.world.violation(format!(
                    "{}: {status:?} for {item} in {} refused: {e}",
                    self.id,
                    session.id()
                ));
                false
            }
        }
    }

    /// One item, the ordinary way: maybe progress, an event, a cancel check, then an outcome.
    fn sync_item(&self, session: &SyncSession, item: &ItemId, rng: &mut XorShift) -> bool {
        let counters = &self.world.counters;
        if rng.per_mille(300) {
            bump(&counters.session_calls);
            match session.can_continue(Some(item)) {
                Ok(true) => {}
                Ok(false) => {
                    bump(&counters.cancels_seen);
                    return self.report(session, item, ProgressStatus::Canceled);
                }
                Err(e) => {
                    self.world
                        .violation(format!("{}: can_continue: {e}", self.id));
                    return false;
                }
            }
        }
        if rng.per_mille(300) {
            bump(&counters.session_calls);
            match session.report_progress(
                item,
                Progress::new(ProgressStatus::Updating)
                    .text("working")
                    .steps(1, 2),
            ) {
                Ok(CancelRequest::None) => {}
                Ok(_) => {
                    bump(&counters.cancels_seen);
                    return self.report(session, item, ProgressStatus::Canceled);
                }
                Err(e) => {
                    self.world.violation(format!("{}: progress: {e}", self.id));
                    return false;
                }
            }
        }
        if rng.per_mille(40) {
            bump(&counters.session_calls);
            let level = *rng.pick(&[EventLevel::Error, EventLevel::Warning]);
            let event = EventReport::new(level, "soak").item(item.clone());
            if let Err(e) = session.report_event(event) {
                self.world
                    .violation(format!("{}: report_event: {e}", self.id));
            }
        }
        if rng.per_mille(20) {
            bump(&counters.session_calls);
            if let Err(e) = session.report_conflict(Some(item)) {
                self.world
                    .violation(format!("{}: report_conflict: {e}", self.id));
            }
        }
        let status = match rng.below(100) {
            0..85 => ProgressStatus::Succeeded,
            85..93 => ProgressStatus::Failed,
            _ => ProgressStatus::Canceled,
        };
        self.report(session, item, status)
    }

    /// Reports twice; the second is refused unless it is `Failed` (the terminal rule).
    fn report_twice(&self, session: &SyncSession, item: &ItemId, rng: &mut XorShift) {
        self.report(session, item, ProgressStatus::Succeeded);
        let again = *rng.pick(&[
            ProgressStatus::Succeeded,
            ProgressStatus::Canceled,
            ProgressStatus::Failed,
            ProgressStatus::Updating,
        ]);
        bump(&self.world.counters.session_calls);
        match session.report_progress(item, Progress::new(again).text("again").steps(1, 1)) {
            Ok(_) if again == ProgressStatus::Failed => {}
            Err(Error::AccessDenied(Denied::TerminalState { .. })) => {
                bump(&self.world.counters.terminal_refused);
            }
            // A cancel for the whole session (a stop) may have come between the two.
            Ok(_) => {}
            Err(e) => self
                .world
                .violation(format!("{}: {again:?} after Succeeded: {e}", self.id)),
        }
    }

    /// Reports from threads: joined, or left to outlive the session.
    fn helpers(&self, session: &SyncSession, items: &[ItemId], outlive: bool) {
        let world = self.world.clone();
        let (session, items) = (session.clone(), items.to_vec());
        let helper = thread::spawn(move || {
            for item in &items {
                bump(&world.counters.session_calls);
                match session.report_progress(
                    item,
                    Progress::new(ProgressStatus::Succeeded)
                        .text("helper")
                        .steps(1, 1),
                ) {
                    Ok(_) => {}
                    Err(Error::UnknownSession(_)) if outlive => {
                        bump(&world.counters.late_reports_refused);
                    }
                    // A stop may have come first; the item is then Failed by the rule.
                    Err(Error::AccessDenied(Denied::TerminalState { .. })) => {}
                    Err(e) => world.violation(format!("helper report for {item}: {e}")),
                }
            }
        });
        if outlive {
            bump(&self.world.counters.late_helpers);
            lock(&self.world.helpers).push(helper);
        } else if helper.join().is_err() {
            self.world.violation("a helper panicked".into());
        }
    }

    /// Calls back into the manager from inside `synchronize`.
    fn reenter(&self, session: &SyncSession, rng: &mut XorShift) {
        let Some(manager) = self.world.manager() else {
            return;
        };
        bump(&self.world.counters.reentrant_calls);
        let me = &self.id;
        let item = rng.pick(&self.items).id.clone();
        let answer = match rng.below(7) {
            0 => {
                self.world.start_extra(&manager, me, Some(vec![item]), rng);
                Ok(())
            }
            1 => {
                let (other, items) = rng.pick(&self.world.stable);
                let items = (rng.below(2) == 0).then(|| vec![rng.pick(items).clone()]);
                self.world.start_extra(&manager, other, items, rng);
                Ok(())
            }
            2 => manager.stop_handler_sync(me).map(drop),
            3 => manager
                .disable_item(me, &item, ControlFlags::WAIT)
                .and_then(|()| manager.enable_item(me, &item, ControlFlags::WAIT)),
            4 => manager
                .disable_handler(me, ControlFlags::WAIT)
                .and_then(|()| manager.enable_handler(me, ControlFlags::WAIT)),
            5 => manager.update_handler(me, ControlFlags::NOWAIT),
            _ => manager
                .check_consistency()
                .map_err(|m| Error::HandlerFailed(Cause::new(m))),
        };
        match answer {
            // The last calls may come while the manager shuts down.
            Ok(()) | Err(Error::ShutDown) => {}
            Err(e) => self
                .world
                .violation(format!("{me}: a call from inside {}: {e:?}", session.id())),
        }
    }

    /// Pulls a pending item in, if there is one.
    fn pull(&self, session: &SyncSession, todo: &mut Vec<ItemId>, rng: &mut XorShift) {
        bump(&self.world.counters.session_calls);
        let Ok(pending) = session.query_for_additional_items() else {
            return;
        };
        if pending.items.is_empty() {
            return;
        }
        let item = rng.pick(&pending.items).clone();
        bump(&self.world.counters.session_calls);
        match session.add_item_to_session(&item) {
            Ok(()) => {
                bump(&self.world.counters.pulls);
                todo.push(item);
            }
            Err(Error::ItemNotPending(_)) => {}
            Err(e) => self
                .world
                .violation(format!("{}: pull {item}: {e}", self.id)),
        }
    }
}

impl SyncHandler for Soaker {
    fn capabilities(&self) -> HandlerCapabilities {
        match self.kind {
            Kind::Concurrent => HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS,
            _ => HandlerCapabilities::empty(),
        }
    }
    fn max_concurrent_sessions(&self) -> Option<usize> {
        (self.kind == Kind::Concurrent).then_some(3)
    }
    fn items(&self) -> Vec<SyncItem> {
        if self.kind == Kind::Flaky && self.draw(100) {
            bump(&self.world.counters.items_faults);
            panic!("{DELIBERATE} items() panic in {}", self.id);
        }
        self.items.clone()
    }
    fn is_connected(&self) -> bool {
        if self.kind == Kind::Flaky && self.draw(30) {
            bump(&self.world.counters.connect_faults);
            panic!("{DELIBERATE} is_connected panic in {}", self.id);
        }
        true
    }
    fn on_state_change(&self, change: &StateChange, _: ControlFlags) -> Result<(), HandlerError> {
        self.hook(matches!(
            change,
            StateChange::Activate | StateChange::Enable | StateChange::EnableItem(_)
        ))
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let counters = &self.world.counters;
        bump(&counters.sessions);
        let id = session.id();
        let mut rng = XorShift::seeded(self.seed ^ id.get().wrapping_mul(0xD1B5_4A32_D192_ED03));
        if self.kind == Kind::Reentrant && rng.per_mille(300) {
            self.reenter(session, &mut rng);
        }
        let fate = rng.below(1000);
        let mut todo = items.to_vec();
        match fate {
            0..15 => {
                bump(&counters.panic_before);
                panic!("{DELIBERATE} panic before any report in {} {id}", self.id);
            }
            15..45 => {
                bump(&counters.unreported);
                return Ok(());
            }
            45..75 => {
                bump(&counters.helper_sessions);
                self.helpers(session, &todo, false);
                return Ok(());
            }
            75..85 => {
                self.helpers(session, &todo, true);
                return Ok(());
            }
            _ => {}
        }
        let midway = (85..100).contains(&fate).then(|| rng.below(todo.len()));
        let mut next = 0;
        while next < todo.len() {
            if Some(next) == midway {
                bump(&counters.panic_midway);
                panic!("{DELIBERATE} panic midway in {} {id}", self.id);
            }
            if rng.per_mille(60) {
                self.pull(session, &mut todo, &mut rng);
            }
            let item = todo[next].clone();
            next += 1;
            if rng.per_mille(30) {
                self.report_twice(session, &item, &mut rng);
                continue;
            }
            if !self.sync_item(session, &item, &mut rng) {
                break;
            }
        }
        match fate {
            100..110 => {
                bump(&counters.panic_after);
                panic!("{DELIBERATE} panic after the reports in {} {id}", self.id);
            }
            110..140 => {
                bump(&counters.errors);
                Err(format!("{DELIBERATE} error in {} {id}", self.id).into())
            }
            _ => Ok(()),
        }
    }
}

fn soaker(world: &Arc<World>, name: &str, kind: Kind, items: usize, seed: u64) -> Soaker {
    Soaker {
        id: HandlerId::new(name).expect("valid handler ID"),
        kind,
        items: (0..items)
            .map(|k| {
                let id = ItemId::new(format!("{name}-{k:02}")).expect("valid item ID");
                SyncItem::new(id, format!("{name} {k}")).unwrap()
            })
            .collect(),
        seed,
        draws: AtomicU64::new(0),
        world: world.clone(),
    }
}

/// The stable handlers: name, kind, number of items.
const STABLE: [(&str, Kind, usize); 5] = [
    ("plain-a", Kind::Plain, 12),
    ("plain-b", Kind::Plain, 6),
    ("concurrent", Kind::Concurrent, 16),
    ("flaky", Kind::Flaky, 8),
    ("reentrant", Kind::Reentrant, 8),
];

// ----- the notification stream -----------------------------------------------------------------

/// What the stream said, per request ID and in all; gathered by one thread as it arrives.
#[derive(Default)]
struct Stream {
    notes: usize,
    accepted: Vec<u8>,
    completed: Vec<(u8, u64)>,
    sessions_started: usize,
    sessions_ended: usize,
    session_errors: usize,
    callback_panics: usize,
    state_change_failures: usize,
    lagged: u64,
    strange: Vec<String>,
}

fn collect(stream: Notifications) -> JoinHandle<Stream> {
    thread::Builder::new()
        .name("soak-notifications".into())
        .spawn(move || {
            let mut s = Stream::default();
            for note in stream {
                s.notes += 1;
                match note {
                    Notification::RequestAccepted { request, .. } => {
                        *at(&mut s.accepted, request.get() as usize) += 1;
                    }
                    Notification::RequestCompleted(r) => {
                        let entry = at(&mut s.completed, r.request.get() as usize);
                        entry.0 += 1;
                        entry.1 = fingerprint(&r);
                    }
                    Notification::SessionStarted { .. } => s.sessions_started += 1,
                    Notification::SessionEnded { error, .. } => {
                        s.sessions_ended += 1;
                        if let Some(e) = error.map(|e| format!("{e:#}")) {
                            s.session_errors += 1;
                            if !e.contains(DELIBERATE) && s.strange.len() < 20 {
                                s.strange.push(format!("session error: {e}"));
                            }
                        }
                    }
                    Notification::CallbackPanicked { message, .. } => {
                        s.callback_panics += 1;
                        if !message.starts_with(DELIBERATE) && s.strange.len() < 20 {
                            s.strange.push(format!("callback panic: {message}"));
                        }
                    }
                    Notification::StateChangeFailed { error, .. } => {
                        s.state_change_failures += 1;
                        // A change queued just before shutdown may meet it.
                        let expected = error == Error::ShutDown
                            || matches!(&error, Error::HandlerFailed(m) if m.to_string().contains(DELIBERATE));
                        if !expected && s.strange.len() < 20 {
                            s.strange.push(format!("state change failed: {error:?}"));
                        }
                    }
                    Notification::Lagged { missed } => s.lagged += missed,
                    _ => {}
                }
            }
            s
        })
        .expect("the collector starts")
}

// ----- the submitters --------------------------------------------------------------------------

/// An accepted request a submitter made, until its ticket resolves.
struct Open {
    ticket: SyncTicket,
    /// The items the result must list, in order (for item syncs).
    items: Option<Vec<ItemId>>,
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    ops: usize,
    accepted: usize,
    refused: usize,
    stops: usize,
    withdrawn: usize,
    already_complete: usize,
    waits: usize,
    toggles: usize,
    state_faults: usize,
    updates: usize,
    registered: usize,
    removed: usize,
    subscribed: usize,
    event_queries: usize,
    checks: usize,
    resolved: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.ops += o.ops;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.stops += o.stops;
        self.withdrawn += o.withdrawn;
        self.already_complete += o.already_complete;
        self.waits += o.waits;
        self.toggles += o.toggles;
        self.state_faults += o.state_faults;
        self.updates += o.updates;
        self.registered += o.registered;
        self.removed += o.removed;
        self.subscribed += o.subscribed;
        self.event_queries += o.event_queries;
        self.checks += o.checks;
        self.resolved += o.resolved;
    }
}

struct Submitter<'a> {
    world: &'a Arc<World>,
    manager: &'a SyncManager,
    thread: usize,
    op: usize,
    rng: XorShift,
    open: VecDeque<Open>,
    transient: VecDeque<(HandlerId, Vec<ItemId>)>,
    registered: usize,
    stalled: VecDeque<Notifications>,
    tally: Tally,
}

fn dedup(items: &[ItemId]) -> Vec<ItemId> {
    let mut seen = std::collections::HashSet::new();
    items.iter().filter(|i| seen.insert(*i)).cloned().collect()
}

/// Checks a resolved ticket's result and writes it in the books. Returns an error message.
fn settle(world: &World, ticket: &SyncTicket, items: Option<&[ItemId]>) -> Result<(), String> {
    let r = ticket.try_result().ok_or("not resolved")?;
    if r.request != ticket.request() || r.handler != *ticket.handler() {
        return Err(format!("the result of another request: {r:?}"));
    }
    if let Some(items) = items
        && !r.items.iter().map(|o| &o.item).eq(items)
    {
        return Err(format!("items {:?}, asked for {items:?}", r.items));
    }
    let status = r
        .items
        .iter()
        .map(|o| o.outcome)
        .max()
        .unwrap_or(Outcome::Succeeded);
    if r.status != status {
        return Err(format!("status {:?} for outcomes {:?}", r.status, r.items));
    }
    let mut tickets = lock(&world.books.ticket);
    let seen = at(&mut tickets, r.request.get() as usize);
    if *seen != 0 {
        return Err("resolved twice".into());
    }
    *seen = fingerprint(&r);
    Ok(())
}

impl Submitter<'_> {
    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {:#x}, submitter {}, operation {}: {what}",
            self.world.seed, self.thread, self.op
        )
    }

    fn step(&mut self) {
        self.tally.ops += 1;
        match self.rng.below(1000) {
            0..480 => self.start_items(),
            480..580 => self.start_handler(),
            580..583 => self.start_all(),
            583..640 => self.stop(),
            640..730 => self.cancel(),
            730..760 => self.wait(),
            760..800 => self.toggle(),
            800..825 => self.update(),
            825..845 => self.churn_handlers(),
            845..850 => self.churn_subscribers(),
            850..870 => self.events(),
            870..875 => self.check(),
            _ => self.start_transient(),
        }
        self.poll();
    }

    /// Settles the tickets at the front that are complete, and now and then the extra ones.
    fn poll(&mut self) {
        while let Some(front) = self.open.front() {
            if !front.ticket.is_complete() {
                break;
            }
            let open = self.open.pop_front().expect("there is a front");
            if let Err(e) = settle(self.world, &open.ticket, open.items.as_deref()) {
                self.fail(format!("{}: {e}", open.ticket.request()));
            }
            self.tally.resolved += 1;
        }
        if self.op.is_multiple_of(64) {
            let mut extra = lock(&self.world.extra);
            let mut failure = None;
            extra.retain(|t| {
                if !t.is_complete() {
                    return true;
                }
                if let Err(e) = settle(self.world, t, None) {
                    failure = Some(format!("{}: {e}", t.request()));
                }
                false
            });
            drop(extra);
            if let Some(f) = failure {
                self.fail(f);
            }
        }
    }

    fn accepted(&mut self, ticket: SyncTicket, items: Option<Vec<ItemId>>, with_callback: bool) {
        self.tally.accepted += 1;
        *at(
            &mut lock(&self.world.books.with_callback),
            ticket.request().get() as usize,
        ) = with_callback;
        self.open.push_back(Open { ticket, items });
    }

    fn request(&mut self, handler: &HandlerId, items: Option<Vec<ItemId>>) {
        let mut request = SyncRequest::handler(handler);
        if let Some(items) = &items {
            request = request.items(items);
        }
        if self.rng.below(3) == 0 {
            request = request.flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING);
        }
        if self.rng.per_mille(100) {
            request = request.context(self.rng.next());
        }
        let with_callback = self.rng.per_mille(300);
        if with_callback {
            request = request.with_sink(self.world.callback(&mut self.rng));
        }
        match self.manager.request(request) {
            Ok(ticket) => {
                let items = items.map(|i| dedup(&i));
                self.accepted(ticket, items, with_callback);
            }
            Err(e) if refusal(&e) => self.tally.refused += 1,
            Err(e) => self.fail(format!("a start on {handler} was refused: {e:?}")),
        }
    }

    fn random_items(&mut self, items: &[ItemId]) -> Vec<ItemId> {
        let mut names: Vec<ItemId> = (0..1 + self.rng.below(4))
            .map(|_| self.rng.pick(items).clone())
            .collect();
        if self.rng.per_mille(50) {
            names.push(names[0].clone());
        }
        names
    }

    fn stable(&mut self) -> (HandlerId, Vec<ItemId>) {
        self.rng.pick(&self.world.stable).clone()
    }

    fn start_items(&mut self) {
        let (handler, items) = self.stable();
        let names = self.random_items(&items);
        self.request(&handler, Some(names));
    }

    fn start_handler(&mut self) {
        let (handler, _) = self.stable();
        self.request(&handler, None);
    }

    fn start_transient(&mut self) {
        if self.transient.is_empty() {
            return self.start_items();
        }
        let (handler, items) = self.rng.pick(self.transient.make_contiguous()).clone();
        let names = self.random_items(&items);
        self.request(&handler, Some(names));
    }

    fn start_all(&mut self) {
        match self.manager.start_sync_all(SyncControlFlags::NONE) {
            Ok(tickets) => {
                for ticket in tickets {
                    self.accepted(ticket, None, false);
                }
            }
            Err(e) => self.fail(format!("start_sync_all: {e:?}")),
        }
    }

    fn stop(&mut self) {
        let (handler, items) = self.stable();
        let answer = match self.rng.below(20) {
            0 => self.manager.stop_sync_all(),
            1..8 => self.manager.stop_handler_sync(&handler),
            _ => {
                let names = self.random_items(&items);
                self.manager.stop_item_sync(&handler, &names)
            }
        };
        match answer {
            Ok(_) => self.tally.stops += 1,
            Err(e) => self.fail(format!("stop: {e:?}")),
        }
    }

    fn cancel(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let n = self.open.len();
        let k = n - 1 - self.rng.below(n.min(8));
        match self.open[k].ticket.cancel() {
            Ok(Withdrawn::Withdrawn) => {
                self.tally.withdrawn += 1;
                if !self.open[k].ticket.is_complete() {
                    self.fail("withdrawn but not complete when cancel returned".into());
                }
            }
            Ok(Withdrawn::AlreadyComplete) => self.tally.already_complete += 1,
            Err(e) => self.fail(format!("cancel: {e:?}")),
        }
    }

    fn wait(&mut self) {
        let Some(front) = self.open.front() else {
            return;
        };
        self.tally.waits += 1;
        if front.ticket.wait_timeout(PATIENCE).is_none() {
            self.fail(format!("{} never resolved", front.ticket.request()));
        }
    }

    /// Turns something off and on again, with `WAIT` (the hooks of the flaky handler may
    /// refuse the way off), or queues the same without it.
    fn toggle(&mut self) {
        self.tally.toggles += 1;
        let (handler, items) = self.stable();
        let flaky = handler.as_str() == "flaky";
        let item = self.rng.pick(&items).clone();
        let wait = self.rng.below(4) != 0;
        let (off, on): (Result<(), Error>, Result<(), Error>) = match self.rng.below(3) {
            0 => (
                self.manager
                    .disable_item(&handler, &item, ControlFlags::WAIT),
                self.manager.enable_item(&handler, &item, flags(wait)),
            ),
            1 => (
                self.manager.disable_handler(&handler, ControlFlags::WAIT),
                self.manager.enable_handler(&handler, flags(wait)),
            ),
            _ => (
                self.manager
                    .deactivate_handler(&handler, ControlFlags::WAIT),
                self.manager.activate_handler(&handler, flags(wait)),
            ),
        };
        match off {
            Ok(()) => {}
            Err(Error::HandlerFailed(m)) if flaky && format!("{m:#}").contains(DELIBERATE) => {
                self.tally.state_faults += 1;
            }
            Err(e) => self.fail(format!("turning off on {handler}: {e:?}")),
        }
        if let Err(e) = on {
            self.fail(format!("turning on again on {handler}: {e:?}"));
        }
    }

    fn update(&mut self) {
        self.tally.updates += 1;
        let (handler, items) = self.stable();
        let flaky = handler.as_str() == "flaky";
        let wait = self.rng.below(2) == 0;
        let answer = if self.rng.below(2) == 0 {
            self.manager.update_handler(&handler, flags(wait))
        } else {
            let item = self.rng.pick(&items).clone();
            self.manager.update_item(&handler, &item, flags(wait))
        };
        match answer {
            Ok(()) => {}
            Err(Error::HandlerFailed(m)) if flaky && format!("{m:#}").contains(DELIBERATE) => {
                self.tally.state_faults += 1;
            }
            Err(e) => self.fail(format!("update on {handler}: {e:?}")),
        }
    }

    /// Registers a transient handler, and removes the oldest once there are three.
    fn churn_handlers(&mut self) {
        if self.transient.len() >= 3 || (!self.transient.is_empty() && self.rng.below(3) == 0) {
            let (handler, _) = self.transient.pop_front().expect("not empty");
            let wait = self.rng.below(2) == 0;
            if let Err(e) = self.manager.remove_handler(&handler, flags(wait)) {
                self.fail(format!("remove {handler}: {e:?}"));
            }
            self.tally.removed += 1;
            return;
        }
        let name = format!("t{}-{}", self.thread, self.registered);
        self.registered += 1;
        let count = 2 + self.rng.below(4);
        let handler = soaker(self.world, &name, Kind::Transient, count, self.rng.next());
        let items = handler.items.iter().map(|i| i.id.clone()).collect();
        let id = handler.id.clone();
        if let Err(e) = self
            .manager
            .register_handler(&id, handler, ControlFlags::WAIT)
        {
            self.fail(format!("register {id}: {e:?}"));
        }
        self.tally.registered += 1;
        self.transient.push_back((id, items));
    }

    /// Subscribes and never reads, or drops the oldest such subscriber.
    fn churn_subscribers(&mut self) {
        if self.stalled.len() >= 2 || (!self.stalled.is_empty() && self.rng.below(2) == 0) {
            self.stalled.pop_front();
        } else {
            self.tally.subscribed += 1;
            self.stalled.push_back(self.manager.subscribe());
        }
    }

    fn events(&mut self) {
        self.tally.event_queries += 1;
        let (handler, _) = self.stable();
        match self.manager.events(&handler) {
            Ok(events) => {
                if let Some(event) = events.first()
                    && self.rng.below(2) == 0
                {
                    // Another thread may have removed it first: both answers are fine.
                    if let Err(e) = self.manager.remove_event(&handler, event.id) {
                        self.fail(format!("remove_event: {e:?}"));
                    }
                }
            }
            Err(e) => self.fail(format!("events: {e:?}")),
        }
    }

    fn check(&mut self) {
        self.tally.checks += 1;
        if let Err(e) = self.manager.check_consistency() {
            self.fail(format!("inconsistent: {e}"));
        }
    }

    /// Removes this thread's transient handlers, drops its subscribers, and hands back the
    /// tickets still open.
    fn wind_down(mut self) -> (Tally, VecDeque<Open>) {
        while let Some((handler, _)) = self.transient.pop_front() {
            if let Err(e) = self.manager.remove_handler(&handler, ControlFlags::WAIT) {
                self.fail(format!("remove {handler}: {e:?}"));
            }
            self.tally.removed += 1;
        }
        self.stalled.clear();
        (self.tally, std::mem::take(&mut self.open))
    }
}

fn flags(wait: bool) -> ControlFlags {
    if wait {
        ControlFlags::WAIT
    } else {
        ControlFlags::NOWAIT
    }
}

// ----- the run ---------------------------------------------------------------------------------

/// Tests in this file measure process-wide memory and threads: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn soak(default_ops: u64) {
    let _one = lock(&ONE_AT_A_TIME);
    quiet_deliberate_panics(DELIBERATE);
    let seed = env_number("SYNCMGR_SOAK_SEED", DEFAULT_SEED);
    let ops = env_number("SYNCMGR_SOAK_OPS", default_ops) as usize;
    let threads = env_number("SYNCMGR_SOAK_THREADS", 3).max(1) as usize;
    println!("soak: seed {seed:#x}, {ops} operations on {threads} threads");

    // Read before anything of this test starts a thread. (A thread an earlier test joined
    // can still be counted for a moment, see `thread_count_down_to`: that only makes this
    // figure higher, never lower.)
    let threads_before = thread_count();
    // Warm up what lives for the whole process (std's and crossbeam's lazy statics, the
    // panic hook, the ID hasher's key), so that the baseline already has it.
    {
        let warm = SyncManager::new().expect("the manager starts");
        let _ = warm.subscribe();
        let _ = warm.shutdown();
    }
    let live_before = counting::reset_peak();
    let began = Instant::now();

    let manager = SyncManager::builder()
        .max_sessions(6)
        .shutdown_grace(Duration::from_secs(10))
        .event_log_capacity(64)
        .notification_capacity(1 << 16)
        .build()
        .expect("the manager starts");
    let collector = collect(manager.subscribe());
    let mut rng = XorShift::seeded(seed ^ 0x50A4_5EED);
    let stable: Vec<(HandlerId, Vec<ItemId>)> = STABLE
        .iter()
        .map(|(name, _, count)| {
            let id = HandlerId::new(*name).expect("valid ID");
            let items = (0..*count)
                .map(|k| ItemId::new(format!("{name}-{k:02}")).expect("valid ID"))
                .collect();
            (id, items)
        })
        .collect();
    let world = Arc::new(World {
        seed,
        counters: Counters::default(),
        books: Books::default(),
        slot: Mutex::new(Some(manager.clone())),
        extra: Mutex::default(),
        helpers: Mutex::default(),
        violations: Mutex::default(),
        stable,
        armed: AtomicBool::new(false),
    });
    for (name, kind, count) in STABLE {
        let handler = soaker(&world, name, kind, count, rng.next());
        manager
            .register_handler(name, handler, ControlFlags::WAIT)
            .expect("the handler registers");
    }
    world.armed.store(true, SeqCst);

    // The submitters.
    let per_thread = ops.div_ceil(threads);
    let results: Vec<(Tally, VecDeque<Open>)> = thread::scope(|scope| {
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (world, manager, barrier) = (&world, &manager, barrier.clone());
                let seed = rng.next();
                thread::Builder::new()
                    .name(format!("soak-submitter-{t}"))
                    .spawn_scoped(scope, move || {
                        let mut submitter = Submitter {
                            world,
                            manager,
                            thread: t,
                            op: 0,
                            rng: XorShift::seeded(seed),
                            open: VecDeque::new(),
                            transient: VecDeque::new(),
                            registered: 0,
                            stalled: VecDeque::new(),
                            tally: Tally::default(),
                        };
                        barrier.wait();
                        for op in 0..per_thread {
                            submitter.op = op;
                            submitter.step();
                        }
                        submitter.wind_down()
                    })
                    .expect("a submitter starts")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let submitted = began.elapsed();

    // Every ticket resolves.
    let mut tally = Tally::default();
    for (t, open) in results {
        tally.add(&t);
        for o in open {
            if o.ticket.wait_timeout(PATIENCE).is_none() {
                panic!("seed {seed:#x}: {} never resolved", o.ticket.request());
            }
            if let Err(e) = settle(&world, &o.ticket, o.items.as_deref()) {
                panic!("seed {seed:#x}: {}: {e}", o.ticket.request());
            }
            tally.resolved += 1;
        }
    }
    // Requests made by handlers and callbacks, also those still being made: drain until the
    // manager is idle enough that no new ones come (the callbacks of the last results may
    // still start some, so shut the door first).
    lock(&world.slot).take();
    if let Err(e) = manager.check_consistency() {
        panic!("seed {seed:#x}: inconsistent at the end: {e}");
    }
    let report = manager.shutdown();
    let extra = std::mem::take(&mut *lock(&world.extra));
    for t in &extra {
        if let Err(e) = settle(&world, t, None) {
            panic!("seed {seed:#x}: {} (made from inside): {e}", t.request());
        }
    }
    drop(extra);
    let extra_requests = world.counters.extra_accepted.load(SeqCst);
    assert_eq!(
        report,
        ShutdownReport::default(),
        "seed {seed:#x}: shutdown abandoned or detached something"
    );
    let stream = collector.join().expect("the collector ends cleanly");
    let helpers = std::mem::take(&mut *lock(&world.helpers));
    for helper in helpers {
        helper.join().expect("a helper does not panic");
    }
    let elapsed = began.elapsed();

    // The books: exactly once, everywhere.
    let violations = lock(&world.violations).clone();
    assert!(
        violations.is_empty(),
        "seed {seed:#x}: {} violations: {violations:#?}",
        violations.len()
    );
    assert!(
        stream.strange.is_empty(),
        "seed {seed:#x}: {:#?}",
        stream.strange
    );
    assert_eq!(stream.lagged, 0, "seed {seed:#x}: the collector lagged");
    assert_eq!(
        stream.sessions_started, stream.sessions_ended,
        "seed {seed:#x}"
    );
    let requests = stream.accepted.len().saturating_sub(1);
    {
        let tickets = lock(&world.books.ticket);
        let with_callback = lock(&world.books.with_callback);
        let callback = lock(&world.books.callback);
        assert!(tickets.len() <= requests + 1 && callback.len() <= requests + 1);
        let mut callbacks_expected = 0;
        for id in 1..=requests {
            let ticket = tickets.get(id).copied().unwrap_or(0);
            assert_ne!(
                ticket, 0,
                "seed {seed:#x}: request#{id}: no ticket resolved"
            );
            assert_eq!(
                stream.accepted[id], 1,
                "seed {seed:#x}: request#{id} announced once"
            );
            let completed = stream.completed.get(id).copied().unwrap_or_default();
            assert_eq!(
                completed,
                (1, ticket),
                "seed {seed:#x}: request#{id}: completed once in the stream, with the ticket's result"
            );
            let expected = with_callback.get(id).copied().unwrap_or(false);
            let called = callback.get(id).copied().unwrap_or_default();
            if expected {
                callbacks_expected += 1;
                assert_eq!(
                    called,
                    (1, ticket),
                    "seed {seed:#x}: request#{id}: one callback, with the ticket's result"
                );
            } else {
                assert_eq!(
                    called.0, 0,
                    "seed {seed:#x}: request#{id}: a callback it never had"
                );
            }
        }
        assert_eq!(
            world.counters.callbacks.load(SeqCst),
            callbacks_expected,
            "seed {seed:#x}: callback calls"
        );
        assert_eq!(
            stream.callback_panics,
            world.counters.callback_panics.load(SeqCst),
            "seed {seed:#x}: every callback panic is reported"
        );
    }
    assert_eq!(
        tally.accepted + extra_requests,
        requests,
        "seed {seed:#x}: accepted requests"
    );

    // Everything the test itself holds goes; then memory and threads.
    let figures = Figures::read(&world, &stream, &tally, requests, extra_requests);
    drop(stream);
    drop(manager);
    // The handlers hold the world: it is free only if the manager let go of them.
    let world = Arc::try_unwrap(world).unwrap_or_else(|_| {
        panic!("seed {seed:#x}: the handlers still hold the world: the manager was not freed")
    });
    drop(world);
    let live_after = counting::live();
    let peak = counting::peak();
    let threads_after = thread_count_down_to(threads_before);

    println!(
        "soak seed {seed:#x}: {} ops in {elapsed:.2?} ({submitted:.2?} submitting, {:.0} ops/s); {figures}",
        tally.ops,
        tally.ops as f64 / submitted.as_secs_f64(),
    );
    println!(
        "soak memory: {live_before} bytes live before the manager, {} peak, {live_after} after shutdown ({:+} bytes); threads {threads_before:?} before, {threads_after:?} after",
        peak,
        live_after as i64 - live_before as i64,
    );
    assert!(
        live_after <= live_before + SLACK,
        "seed {seed:#x}: {} bytes more live after shutdown than before the manager (slack {SLACK})",
        live_after - live_before
    );
    assert!(
        threads_after <= threads_before,
        "seed {seed:#x}: threads left behind: {threads_after:?} after, {threads_before:?} before"
    );
}

/// The figures a run prints: numbers only, so that holding them allocates nothing while
/// memory is measured.
struct Figures([(usize, &'static str); 38]);

impl Figures {
    fn read(world: &World, s: &Stream, t: &Tally, requests: usize, extra: usize) -> Figures {
        let c = &world.counters;
        let n = |a: &AtomicUsize| a.load(SeqCst);
        Figures([
            (requests, "requests"),
            (extra, "of them made from inside handlers and callbacks"),
            (
                t.refused,
                "starts refused (something turned off for a moment)",
            ),
            (s.sessions_started, "sessions"),
            (n(&c.sessions), "ran synchronize"),
            (n(&c.session_calls), "session calls"),
            (s.notes, "notifications"),
            (n(&c.panic_before), "panics before any report"),
            (n(&c.panic_midway), "panics midway"),
            (n(&c.panic_after), "panics after the last report"),
            (n(&c.errors), "errors returned"),
            (n(&c.unreported), "sessions that never reported"),
            (n(&c.terminal_refused), "terminal-rule refusals"),
            (
                n(&c.helper_sessions),
                "sessions reporting from a helper thread",
            ),
            (n(&c.late_helpers), "helpers outliving their session"),
            (n(&c.late_reports_refused), "late reports refused"),
            (n(&c.pulls), "pulls"),
            (n(&c.reentrant_calls), "re-entrant calls"),
            (n(&c.hook_faults), "hook faults"),
            (n(&c.connect_faults), "is_connected panics"),
            (n(&c.items_faults), "items() panics"),
            (n(&c.callbacks), "callbacks"),
            (n(&c.callback_panics), "callback panics"),
            (n(&c.callback_starts), "callbacks that started requests"),
            (s.state_change_failures, "failed state changes reported"),
            (t.stops, "stops"),
            (t.withdrawn, "withdrawn"),
            (t.already_complete, "cancels of complete requests"),
            (t.waits, "waits"),
            (t.toggles, "toggles"),
            (t.state_faults, "changes refused by hooks or items()"),
            (t.updates, "updates"),
            (t.registered, "handlers registered"),
            (t.removed, "handlers removed"),
            (t.subscribed, "stalled subscribers"),
            (t.event_queries, "event queries"),
            (t.checks, "consistency checks"),
            (n(&c.cancels_seen), "cancels seen by handlers"),
        ])
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, (value, label)) in self.0.iter().enumerate() {
            let sep = if k == 0 { "" } else { ", " };
            write!(f, "{sep}{value} {label}")?;
        }
        Ok(())
    }
}

/// The full soak: `cargo test --release --test soak -- --ignored --nocapture`.
#[test]
#[ignore = "a soak of a million operations: cargo test --release --test soak -- --ignored --nocapture"]
fn soak_a_million_operations() {
    soak(1_000_000);
}

/// The same code for a few thousand operations, in every `cargo test`.
#[test]
fn soak_smoke() {
    if std::env::var_os("SYNCMGR_SOAK_OPS").is_some() {
        return; // a sized run is `soak_a_million_operations`'s
    }
    soak(5_000);
}
