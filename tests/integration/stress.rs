//! Stress (issue 3): several threads submit thousands of random requests, stops and cancels
//! against autonomous handlers that do a random amount of work, fail, panic, leave items
//! unreported and pull pending items into their sessions. Every ticket must resolve exactly
//! once, every callback run exactly once, every request be announced and completed exactly
//! once in the notification stream, and the engine's invariants must hold at the end.
//!
//! Each submitter thread and each session draws from its own xorshift generator seeded from
//! one seed, so a failure names the seed that replays the same operation sequences (the
//! interleaving between threads still differs from run to run).
//!
//! Knobs (environment variables):
//! - `SYNCMGR_STRESS_SEED`: the seed, decimal or `0x` hex; every run prints the one it used.
//! - `SYNCMGR_STRESS_OPS`: operations per submitter thread (default 3000; with 4 threads
//!   that is 12,000 operations and under a second per test on two cores).
//!
//! Each run prints what it did (requests, sessions, results, panics...) with `--nocapture`.
//! A bigger run, ten times the default:
//!
//! ```sh
//! SYNCMGR_STRESS_SEED=0x5eed SYNCMGR_STRESS_OPS=30000 \
//!     cargo test --release --test integration stress:: -- --nocapture
//! ```
//!
//! The two manager bugs these runs found are reduced to regression tests at the end.

#[path = "../common/randomized.rs"]
mod randomized;

use randomized::{XorShift, env_number, quiet_deliberate_panics};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use syncmgr::engine::Withdrawn;
use syncmgr::*;

const DEFAULT_SEED: u64 = 0x5EED_0003;
const DEFAULT_OPS: usize = 3000;
const THREADS: usize = 4;
const MAX_SESSIONS: usize = 8;
/// A failure guard for waits that end on their own; never a way to let time pass.
const PATIENCE: Duration = Duration::from_secs(60);
/// Every deliberate panic and error message starts with this, so the panic hook can keep
/// them off the terminal and the checks can tell them from real ones.
const DELIBERATE: &str = "stress: deliberate";

/// The two stress runs share the machine with other work: one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ----- randomness --------------------------------------------------------------------------

// `XorShift`, `env_number` and `quiet_deliberate_panics` are in `tests/common/randomized.rs`.

// ----- the handlers ------------------------------------------------------------------------

/// What the handlers saw and did, shared by all of them. A check that fails inside
/// `synchronize` cannot panic (the manager would catch it and call it a handler panic), so it
/// lands in `violations`.
#[derive(Default)]
struct Probe {
    /// Sessions inside `synchronize` right now, all handlers.
    running: AtomicUsize,
    sessions: AtomicUsize,
    panics: AtomicUsize,
    failures: AtomicUsize,
    error_events: AtomicUsize,
    unreported: AtomicUsize,
    pulled: AtomicUsize,
    pull_missed: AtomicUsize,
    cancels_seen: AtomicUsize,
    terminal_rule: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Probe {
    fn count(counter: &AtomicUsize) {
        counter.fetch_add(1, SeqCst);
    }

    fn violation(&self, what: String) {
        lock(&self.violations).push(what);
    }
}

/// The five handlers: two plain, one with concurrent sessions, one with an item that may not
/// be stopped, one that may not be stopped at all.
struct Plan {
    name: &'static str,
    capabilities: HandlerCapabilities,
    policies: HandlerPolicies,
    max_concurrent: Option<usize>,
    protect_one_item: bool,
}

impl Plan {
    /// Sessions the handler may run at once.
    fn limit(&self) -> usize {
        if self
            .capabilities
            .contains(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS)
        {
            self.max_concurrent.unwrap_or(4)
        } else {
            1
        }
    }
}

fn plans() -> Vec<Plan> {
    let plain = |name| Plan {
        name,
        capabilities: HandlerCapabilities::empty(),
        policies: HandlerPolicies::empty(),
        max_concurrent: None,
        protect_one_item: false,
    };
    vec![
        plain("plain-a"),
        plain("plain-b"),
        Plan {
            capabilities: HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS,
            max_concurrent: Some(3),
            ..plain("concurrent")
        },
        Plan {
            protect_one_item: true,
            ..plain("guarded")
        },
        Plan {
            policies: HandlerPolicies::PREVENT_STOP_SYNC,
            ..plain("unstoppable")
        },
    ]
}

/// The items each session of a handler holds, and how many sessions are inside
/// `synchronize`: checked on entry, so two sessions holding one item, or more sessions than
/// the handler allows, are seen exactly (a session leaves before the manager hears it ended).
#[derive(Default)]
struct Inflight {
    sessions: usize,
    items: HashSet<ItemId>,
}

/// An autonomous handler: its sessions decide everything from a generator seeded by the run
/// seed and the session ID, and never sleep.
struct Chaos {
    name: &'static str,
    items: Vec<SyncItem>,
    capabilities: HandlerCapabilities,
    policies: HandlerPolicies,
    max_concurrent: Option<usize>,
    limit: usize,
    seed: u64,
    probe: Arc<Probe>,
    inflight: Mutex<Inflight>,
}

/// What the session loop does after an item.
enum Flow {
    Next,
    StopAll,
}

/// A session inside `synchronize`; leaving (also by panic) releases its items.
struct Entered<'a> {
    handler: &'a Chaos,
    session: SessionId,
    items: Vec<ItemId>,
}

impl Entered<'_> {
    fn add(&mut self, item: ItemId) {
        if !lock(&self.handler.inflight).items.insert(item.clone()) {
            self.handler.probe.violation(format!(
                "{}: {item} pulled into {} while another session holds it",
                self.handler.name, self.session
            ));
        }
        self.items.push(item);
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let mut inflight = lock(&self.handler.inflight);
        inflight.sessions -= 1;
        for item in &self.items {
            inflight.items.remove(item);
        }
        drop(inflight);
        self.handler.probe.running.fetch_sub(1, SeqCst);
    }
}

/// A small random amount of work that never sleeps.
fn work(rng: &mut XorShift) {
    for _ in 0..rng.below(8) {
        thread::yield_now();
    }
    if rng.per_mille(200) {
        for _ in 0..rng.below(2000) {
            std::hint::spin_loop();
        }
    }
}

impl Chaos {
    fn enter(&self, items: &[ItemId], session: SessionId) -> Entered<'_> {
        let mut inflight = lock(&self.inflight);
        inflight.sessions += 1;
        if inflight.sessions > self.limit {
            self.probe.violation(format!(
                "{}: {} sessions in synchronize at once (limit {}) as {session} entered",
                self.name, inflight.sessions, self.limit
            ));
        }
        for item in items {
            if !inflight.items.insert(item.clone()) {
                self.probe.violation(format!(
                    "{}: {item} handed to {session} while another session holds it",
                    self.name
                ));
            }
        }
        drop(inflight);
        let all = self.probe.running.fetch_add(1, SeqCst) + 1;
        if all > MAX_SESSIONS {
            self.probe.violation(format!(
                "{all} sessions in synchronize at once (limit {MAX_SESSIONS})"
            ));
        }
        Entered {
            handler: self,
            session,
            items: items.to_vec(),
        }
    }

    fn report(&self, session: &SyncSession, item: &ItemId, status: ProgressStatus) -> Flow {
        match session.report_progress(item, status) {
            Ok(CancelRequest::CancelAll) => Flow::StopAll,
            Ok(_) => Flow::Next,
            Err(e) => {
                self.probe.violation(format!(
                    "{}: {status:?} for {item} in {} refused: {e}",
                    self.name,
                    session.id()
                ));
                Flow::StopAll
            }
        }
    }

    /// Pulls a random pending item into the session. Between the query and the pull another
    /// session or a stop may take the item: `ItemNotPending` is the only allowed refusal.
    fn pull(
        &self,
        session: &SyncSession,
        entered: &mut Entered<'_>,
        todo: &mut Vec<ItemId>,
        rng: &mut XorShift,
    ) {
        let pending = match session.query_for_additional_items() {
            Ok(pending) => pending,
            Err(e) => {
                return self.probe.violation(format!(
                    "{}: query_for_additional_items in {}: {e}",
                    self.name,
                    session.id()
                ));
            }
        };
        if pending.items.is_empty() {
            return;
        }
        let item = rng.pick(&pending.items).clone();
        match session.add_item_to_session(&item) {
            Ok(()) => {
                Probe::count(&self.probe.pulled);
                entered.add(item.clone());
                todo.push(item);
            }
            Err(Error::ItemNotPending(_)) => Probe::count(&self.probe.pull_missed),
            Err(e) => self.probe.violation(format!(
                "{}: add_item_to_session({item}) in {}: {e}",
                self.name,
                session.id()
            )),
        }
    }

    fn sync_item(&self, session: &SyncSession, item: &ItemId, rng: &mut XorShift) -> Flow {
        let probe = &self.probe;
        let fail = |what: String| {
            probe.violation(format!("{}: {item} in {}: {what}", self.name, session.id()));
            Flow::StopAll
        };
        if rng.per_mille(300) {
            match session.can_continue(None) {
                Ok(true) => {}
                Ok(false) => {
                    Probe::count(&probe.cancels_seen);
                    return Flow::StopAll;
                }
                Err(e) => return fail(format!("can_continue(None): {e}")),
            }
        }
        match session.can_continue(Some(item)) {
            Ok(true) => {}
            Ok(false) => {
                Probe::count(&probe.cancels_seen);
                if rng.per_mille(800) {
                    return self.report(session, item, ProgressStatus::Canceled);
                }
                Probe::count(&probe.unreported);
                return Flow::Next;
            }
            Err(e) => return fail(format!("can_continue: {e}")),
        }
        if rng.per_mille(500) {
            let status = *rng.pick(&[
                ProgressStatus::Updating,
                ProgressStatus::UpdatingIndeterminate,
            ]);
            match session.report_progress(item, Progress::new(status).text("working").steps(1, 2)) {
                Ok(CancelRequest::None) => {}
                Ok(CancelRequest::CancelItem) => {
                    Probe::count(&probe.cancels_seen);
                    return self.report(session, item, ProgressStatus::Canceled);
                }
                Ok(_) => {
                    Probe::count(&probe.cancels_seen);
                    return Flow::StopAll;
                }
                Err(e) => return fail(format!("{status:?}: {e}")),
            }
            work(rng);
        }
        if rng.per_mille(50) {
            let event = EventReport::new(EventLevel::Error, "stress")
                .description("a deliberate error event");
            let event = if rng.below(2) == 0 {
                event.item(item.clone())
            } else {
                event
            };
            match session.report_event(event) {
                Ok(_) => Probe::count(&probe.error_events),
                Err(e) => return fail(format!("report_event: {e}")),
            }
        }
        match rng.below(100) {
            0..78 => self.report(session, item, ProgressStatus::Succeeded),
            78..84 => self.report(session, item, ProgressStatus::Failed),
            84..89 => self.report(session, item, ProgressStatus::Canceled),
            89..94 => {
                Probe::count(&probe.unreported);
                Flow::Next
            }
            _ => {
                // The terminal rule: after Succeeded only Failed is accepted; anything else
                // is refused and makes the item Failed.
                let flow = self.report(session, item, ProgressStatus::Succeeded);
                let again = *rng.pick(&[
                    ProgressStatus::Succeeded,
                    ProgressStatus::Canceled,
                    ProgressStatus::Updating,
                    ProgressStatus::Failed,
                ]);
                match session.report_progress(item, Progress::new(again).text("again").steps(1, 1))
                {
                    Ok(_) if again == ProgressStatus::Failed => {}
                    Err(Error::AccessDenied(Denied::TerminalState {
                        item: denied,
                        reached: Outcome::Succeeded,
                        reported,
                    })) if denied == *item && reported == again => {
                        Probe::count(&probe.terminal_rule);
                    }
                    other => return fail(format!("{again:?} after Succeeded: {other:?}")),
                }
                flow
            }
        }
    }
}

impl SyncHandler for Chaos {
    fn name(&self) -> String {
        self.name.into()
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

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let id = session.id();
        let mut rng = XorShift::seeded(self.seed ^ id.get().wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut entered = self.enter(items, id);
        Probe::count(&self.probe.sessions);
        let fate = rng.below(1000);
        let mut todo = items.to_vec();
        let panic_at = (fate < 20).then(|| rng.below(todo.len() + 1));
        let mut next = 0;
        while next < todo.len() && Some(next) != panic_at {
            let item = todo[next].clone();
            next += 1;
            work(&mut rng);
            if rng.per_mille(80) {
                self.pull(session, &mut entered, &mut todo, &mut rng);
            }
            if rng.per_mille(10) {
                let own = rng.pick(&todo[..next]).clone();
                match session.add_item_to_session(&own) {
                    Err(Error::ItemAlreadyInSession(i)) if i == own => {}
                    other => self.probe.violation(format!(
                        "{}: pulling {own}, already in {id}: {other:?}",
                        self.name
                    )),
                }
            }
            if let Flow::StopAll = self.sync_item(session, &item, &mut rng) {
                break;
            }
        }
        if panic_at.is_some() {
            Probe::count(&self.probe.panics);
            panic!("{DELIBERATE} panic in {} {id}", self.name);
        }
        if fate < 50 {
            Probe::count(&self.probe.failures);
            return Err(format!("{DELIBERATE} error in {} {id}", self.name).into());
        }
        Ok(())
    }
}

// ----- what the test knows ------------------------------------------------------------------

/// A handler as the submitters know it.
struct Target {
    id: HandlerId,
    items: Vec<ItemId>,
    protected: Option<ItemId>,
    unstoppable: bool,
    limit: usize,
    /// Disables started, for the handler and per item: a start refused because something is
    /// disabled is legitimate only after some thread began disabling it.
    disables_begun: AtomicUsize,
    item_disables_begun: Vec<AtomicUsize>,
}

impl Target {
    fn item_index(&self, item: &ItemId) -> Option<usize> {
        self.items.iter().position(|i| i == item)
    }
}

struct World {
    seed: u64,
    targets: Vec<Target>,
    probe: Arc<Probe>,
    /// Set before `shutdown()` is called: from then on `Error::ShutDown` is a valid answer.
    shutting_down: Arc<AtomicBool>,
    callbacks_run: Arc<AtomicUsize>,
}

impl World {
    fn target_of(&self, handler: &HandlerId) -> usize {
        self.targets
            .iter()
            .position(|t| t.id == *handler)
            .unwrap_or_else(|| panic!("a ticket for unknown handler {handler}"))
    }
}

fn setup(seed: u64) -> (SyncManager, Arc<World>, Notifications) {
    let manager = SyncManager::builder()
        .max_sessions(MAX_SESSIONS)
        .shutdown_grace(Duration::from_secs(10))
        .notification_capacity(1 << 17)
        .build()
        .expect("the manager starts");
    let notes = manager.subscribe();
    let probe = Arc::new(Probe::default());
    let mut rng = XorShift::seeded(seed ^ 0x0057_0A7C_5E7F_0000);
    let mut targets = Vec::new();
    for plan in plans() {
        let count = 5 + rng.below(16);
        let mut items: Vec<SyncItem> = (0..count)
            .map(|k| {
                let id = ItemId::new(format!("{}-{k:02}", plan.name)).expect("valid item ID");
                SyncItem::new(id, format!("{} item {k}", plan.name)).unwrap()
            })
            .collect();
        let protected = plan.protect_one_item.then(|| rng.below(count));
        if let Some(p) = protected {
            items[p] = items[p]
                .clone()
                .with_policies(ItemPolicies::PREVENT_STOP_SYNC);
        }
        let handler = Chaos {
            name: plan.name,
            items: items.clone(),
            capabilities: plan.capabilities,
            policies: plan.policies,
            max_concurrent: plan.max_concurrent,
            limit: plan.limit(),
            seed: rng.next(),
            probe: probe.clone(),
            inflight: Mutex::default(),
        };
        manager
            .register_handler(plan.name, handler, ControlFlags::WAIT)
            .expect("the handler registers");
        targets.push(Target {
            id: HandlerId::new(plan.name).expect("valid handler ID"),
            protected: protected.map(|p| items[p].id.clone()),
            unstoppable: plan.policies.contains(HandlerPolicies::PREVENT_STOP_SYNC),
            limit: plan.limit(),
            disables_begun: AtomicUsize::new(0),
            item_disables_begun: items.iter().map(|_| AtomicUsize::new(0)).collect(),
            items: items.into_iter().map(|i| i.id).collect(),
        });
    }
    let world = World {
        seed,
        targets,
        probe,
        shutting_down: Arc::new(AtomicBool::new(false)),
        callbacks_run: Arc::new(AtomicUsize::new(0)),
    };
    (manager, Arc::new(world), notes)
}

// ----- the notification stream --------------------------------------------------------------

/// Everything the notification stream said, gathered by one thread as it arrives (so the
/// bounded subscriber channel never fills up).
#[derive(Default)]
struct Seen {
    notes: usize,
    /// How often each request was announced, with its items as the engine took them.
    accepted: HashMap<RequestId, (usize, Vec<ItemId>)>,
    completed: HashMap<RequestId, (usize, RequestResult)>,
    queued: usize,
    merged: usize,
    joined: usize,
    /// Running sessions: handler index and the items they started with.
    running: HashMap<SessionId, (usize, Vec<ItemId>)>,
    running_per_handler: Vec<usize>,
    held: Vec<HashSet<ItemId>>,
    max_running: usize,
    sessions_started: usize,
    sessions_ended: usize,
    session_panics: usize,
    session_failures: usize,
    item_outcomes: HashMap<Outcome, usize>,
    cancel_requests: usize,
    events: usize,
    progress: usize,
    /// Requests whose callback panic was reported.
    callback_panics: HashSet<RequestId>,
    lagged: u64,
    violations: Vec<String>,
}

type Shared = Arc<(Mutex<Seen>, Condvar)>;

impl Seen {
    fn take(&mut self, note: Notification, world: &World) {
        self.notes += 1;
        match note {
            Notification::RequestAccepted { request, items, .. } => {
                let entry = self.accepted.entry(request).or_default();
                entry.0 += 1;
                entry.1 = items.iter().map(|(i, _)| i.clone()).collect();
                for (_, disposition) in items {
                    match disposition {
                        engine::Disposition::Queued => self.queued += 1,
                        engine::Disposition::Merged => self.merged += 1,
                        engine::Disposition::Joined(_) => self.joined += 1,
                        other => self
                            .violations
                            .push(format!("{request}: disposition {other:?}")),
                    }
                }
            }
            Notification::SessionStarted {
                session,
                handler,
                items,
            } => {
                let h = world.target_of(&handler);
                self.sessions_started += 1;
                self.running_per_handler[h] += 1;
                if self.running_per_handler[h] > world.targets[h].limit {
                    self.violations.push(format!(
                        "{handler}: {} sessions running as {session} started",
                        self.running_per_handler[h]
                    ));
                }
                for item in &items {
                    if !self.held[h].insert(item.clone()) {
                        self.violations
                            .push(format!("{session} started with {item}, held elsewhere"));
                    }
                }
                self.running.insert(session, (h, items));
                self.max_running = self.max_running.max(self.running.len());
                if self.running.len() > MAX_SESSIONS {
                    self.violations
                        .push(format!("{} sessions running", self.running.len()));
                }
            }
            Notification::SessionEnded {
                session,
                outcomes,
                error,
                ..
            } => {
                self.sessions_ended += 1;
                match self.running.remove(&session) {
                    Some((h, items)) => {
                        self.running_per_handler[h] -= 1;
                        for item in items {
                            self.held[h].remove(&item);
                            if !outcomes.iter().any(|(i, _)| *i == item) {
                                self.violations
                                    .push(format!("{session} ended without an outcome for {item}"));
                            }
                        }
                    }
                    None => self
                        .violations
                        .push(format!("{session} ended but never started")),
                }
                for (_, outcome) in outcomes {
                    *self.item_outcomes.entry(outcome).or_default() += 1;
                }
                match error.map(|e| format!("{e:#}")) {
                    None => {}
                    Some(e) if e.starts_with(&format!("handler panicked: {DELIBERATE}")) => {
                        self.session_panics += 1;
                    }
                    Some(e) if e.starts_with(DELIBERATE) => self.session_failures += 1,
                    Some(e) => self
                        .violations
                        .push(format!("{session} ended with error {e:?}")),
                }
            }
            Notification::RequestCompleted(result) => {
                if !self.accepted.contains_key(&result.request) {
                    self.violations.push(format!(
                        "{} completed before it was accepted",
                        result.request
                    ));
                }
                self.completed
                    .entry(result.request)
                    .or_insert_with(|| (0, result))
                    .0 += 1;
            }
            Notification::CancelRequested { .. } => self.cancel_requests += 1,
            Notification::EventReported(_) => self.events += 1,
            Notification::ItemProgress { .. } => self.progress += 1,
            Notification::CallbackPanicked { request, message } => {
                if message.starts_with(DELIBERATE) {
                    if !self.callback_panics.insert(request) {
                        self.violations
                            .push(format!("{request}: callback panic reported twice"));
                    }
                } else {
                    self.violations
                        .push(format!("{request}: callback panicked: {message}"));
                }
            }
            Notification::Lagged { missed } => self.lagged += missed,
            Notification::StateChangeFailed { handler, error } => self
                .violations
                .push(format!("{handler}: state change failed: {error}")),
            _ => {}
        }
    }
}

/// Gathers the notifications until the manager's scheduler ends (it holds the sender).
fn collect(notes: Notifications, world: &Arc<World>) -> (Shared, JoinHandle<()>) {
    let handlers = world.targets.len();
    let seen: Shared = Arc::new((
        Mutex::new(Seen {
            running_per_handler: vec![0; handlers],
            held: vec![HashSet::new(); handlers],
            ..Seen::default()
        }),
        Condvar::new(),
    ));
    let (shared, world) = (seen.clone(), world.clone());
    let collector = thread::Builder::new()
        .name("stress-notifications".into())
        .spawn(move || {
            for note in notes {
                let wake = matches!(
                    note,
                    Notification::SessionEnded { .. }
                        | Notification::RequestCompleted(_)
                        | Notification::CallbackPanicked { .. }
                );
                lock(&shared.0).take(note, &world);
                if wake {
                    shared.1.notify_all();
                }
            }
        })
        .expect("the collector starts");
    (seen, collector)
}

// ----- the submitters -----------------------------------------------------------------------

enum Kind {
    /// `start_item_sync`: the named items, deduplicated in first-named order.
    Items(Vec<ItemId>),
    /// `start_handler_sync`.
    Handler,
    /// One ticket of `start_sync_all`.
    All,
}

/// A result callback's record: it must run exactly once, with the ticket's result.
struct Callback {
    calls: AtomicUsize,
    result: OnceLock<RequestResult>,
    panics: bool,
    /// It ran after `shutdown()` was called: see `a_callback_panic_during_shutdown_is_reported`.
    during_shutdown: AtomicBool,
}

/// An accepted request.
struct Issued {
    ticket: SyncTicket,
    kind: Kind,
    callback: Option<Arc<Callback>>,
    /// Submitter thread and operation, for messages.
    origin: (usize, usize),
}

#[derive(Default, Debug)]
struct Tally {
    ops: usize,
    accepted: usize,
    refused_disabled: usize,
    refused_shut_down: usize,
    stops: usize,
    stops_denied: usize,
    withdrawn: usize,
    /// `cancel` said `Withdrawn` but the ticket was not complete yet when it returned: the
    /// bug `a_withdrawn_ticket_is_complete_when_cancel_returns` reduces. Counted, not failed,
    /// so the rest of the run still checks everything else.
    withdrawn_unsettled: usize,
    already_complete: usize,
    waits: usize,
    toggles: usize,
    checks: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.ops += other.ops;
        self.accepted += other.accepted;
        self.refused_disabled += other.refused_disabled;
        self.refused_shut_down += other.refused_shut_down;
        self.stops += other.stops;
        self.stops_denied += other.stops_denied;
        self.withdrawn += other.withdrawn;
        self.withdrawn_unsettled += other.withdrawn_unsettled;
        self.already_complete += other.already_complete;
        self.waits += other.waits;
        self.toggles += other.toggles;
        self.checks += other.checks;
    }
}

struct Submitter<'a> {
    world: &'a World,
    manager: &'a SyncManager,
    thread: usize,
    op: usize,
    rng: XorShift,
    issued: Vec<Issued>,
    tally: Tally,
}

fn dedup(items: &[ItemId]) -> Vec<ItemId> {
    let mut seen = HashSet::new();
    items.iter().filter(|i| seen.insert(*i)).cloned().collect()
}

impl Submitter<'_> {
    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {:#x}, submitter {}, operation {}: {what}",
            self.world.seed, self.thread, self.op
        )
    }

    fn shutting_down(&self, e: &Error) -> bool {
        *e == Error::ShutDown && self.world.shutting_down.load(SeqCst)
    }

    fn step(&mut self) {
        self.tally.ops += 1;
        match self.rng.below(1000) {
            0..520 => self.start_items(),
            520..640 => self.start_handler(),
            640..645 => self.sync_all(),
            645..710 => self.stop_items(),
            710..735 => self.stop_handler(),
            735..737 => self.stop_all(),
            737..880 => self.cancel(),
            880..890 => self.toggle_item(),
            890..895 => self.toggle_handler(),
            895..960 => self.wait(),
            _ => self.check(),
        }
    }

    fn random_items(&mut self, t: usize, most: usize) -> Vec<ItemId> {
        let items = &self.world.targets[t].items;
        let mut names: Vec<ItemId> = (0..1 + self.rng.below(most))
            .map(|_| self.rng.pick(items).clone())
            .collect();
        if self.rng.per_mille(100) {
            names.push(names[0].clone());
        }
        names
    }

    fn flags(&mut self) -> SyncControlFlags {
        if self.rng.below(2) == 0 {
            SyncControlFlags::NONE
        } else {
            SyncControlFlags::IGNORE_IF_ALREADY_SYNCING
        }
    }

    fn callback(&mut self) -> (Option<Arc<Callback>>, Option<Box<dyn SyncResult>>) {
        if !self.rng.per_mille(300) {
            return (None, None);
        }
        let record = Arc::new(Callback {
            calls: AtomicUsize::new(0),
            result: OnceLock::new(),
            panics: self.rng.per_mille(50),
            during_shutdown: AtomicBool::new(false),
        });
        let (mine, runs) = (record.clone(), self.world.callbacks_run.clone());
        let shutting_down = self.world.shutting_down.clone();
        let sink = move |r: &RequestResult| {
            mine.during_shutdown
                .store(shutting_down.load(SeqCst), SeqCst);
            mine.calls.fetch_add(1, SeqCst);
            runs.fetch_add(1, SeqCst);
            let _ = mine.result.set(r.clone());
            if mine.panics {
                panic!("{DELIBERATE} callback panic for {}", r.request);
            }
        };
        (Some(record), Some(Box::new(sink)))
    }

    fn accepted(&mut self, ticket: SyncTicket, kind: Kind, callback: Option<Arc<Callback>>) {
        self.tally.accepted += 1;
        self.issued.push(Issued {
            ticket,
            kind,
            callback,
            origin: (self.thread, self.op),
        });
    }

    /// A start may be refused only because something was disabled by another operation, or
    /// because the manager is shutting down.
    fn refused(&mut self, t: usize, names: &[ItemId], e: &Error) {
        let target = &self.world.targets[t];
        let disabled = match e {
            Error::AccessDenied(Denied::HandlerDisabled) => target.disables_begun.load(SeqCst) > 0,
            Error::AccessDenied(Denied::ItemDisabled(item)) => {
                names.contains(item)
                    && target
                        .item_index(item)
                        .is_some_and(|k| target.item_disables_begun[k].load(SeqCst) > 0)
            }
            _ => false,
        };
        if disabled && e.hresult() == hresult::E_ACCESSDENIED {
            self.tally.refused_disabled += 1;
        } else if self.shutting_down(e) && e.hresult() == hresult::E_UNEXPECTED {
            self.tally.refused_shut_down += 1;
        } else {
            self.fail(format!("a start on {} was refused: {e:?}", target.id));
        }
    }

    fn start_items(&mut self) {
        let t = self.rng.below(self.world.targets.len());
        let names = self.random_items(t, 4);
        let flags = self.flags();
        let (record, sink) = self.callback();
        let target = &self.world.targets[t];
        match self
            .manager
            .start_item_sync(&target.id, &names, flags, sink)
        {
            Ok(ticket) => self.accepted(ticket, Kind::Items(dedup(&names)), record),
            Err(e) => self.refused(t, &names, &e),
        }
    }

    fn start_handler(&mut self) {
        let t = self.rng.below(self.world.targets.len());
        let flags = self.flags();
        let (record, sink) = self.callback();
        let target = &self.world.targets[t];
        match self.manager.start_handler_sync(&target.id, flags, sink) {
            Ok(ticket) => self.accepted(ticket, Kind::Handler, record),
            Err(e) => self.refused(t, &[], &e),
        }
    }

    fn sync_all(&mut self) {
        let flags = self.flags();
        match self.manager.start_sync_all(flags) {
            Ok(tickets) => {
                for ticket in tickets {
                    self.accepted(ticket, Kind::All, None);
                }
            }
            Err(e) if self.shutting_down(&e) => self.tally.refused_shut_down += 1,
            Err(e) => self.fail(format!("start_sync_all: {e:?}")),
        }
    }

    /// A stop must do exactly what the policies say.
    fn stopped(
        &mut self,
        what: &str,
        got: Result<engine::Stopped, Error>,
        expected: Option<Error>,
    ) {
        match (got, expected) {
            (Ok(_), None) => self.tally.stops += 1,
            (Err(e), Some(x)) if e == x && e.hresult() == hresult::E_ACCESSDENIED => {
                self.tally.stops_denied += 1;
            }
            (Err(e), _) if self.shutting_down(&e) => self.tally.refused_shut_down += 1,
            (got, expected) => self.fail(format!("{what}: {got:?}, expected {expected:?}")),
        }
    }

    fn stop_items(&mut self) {
        let t = self.rng.below(self.world.targets.len());
        let names = self.random_items(t, 3);
        let target = &self.world.targets[t];
        let expected = if target.unstoppable {
            Some(Error::AccessDenied(Denied::HandlerPolicy(
                HandlerPolicies::PREVENT_STOP_SYNC,
            )))
        } else {
            names
                .iter()
                .find(|n| Some(*n) == target.protected.as_ref())
                .map(|item| {
                    Error::AccessDenied(Denied::ItemPolicy {
                        item: item.clone(),
                        policy: ItemPolicies::PREVENT_STOP_SYNC,
                    })
                })
        };
        let got = self.manager.stop_item_sync(&target.id, &names);
        self.stopped("stop_item_sync", got, expected);
    }

    fn stop_handler(&mut self) {
        let t = self.rng.below(self.world.targets.len());
        let target = &self.world.targets[t];
        let expected = target
            .unstoppable
            .then_some(Error::AccessDenied(Denied::HandlerPolicy(
                HandlerPolicies::PREVENT_STOP_SYNC,
            )));
        let got = self.manager.stop_handler_sync(&target.id);
        self.stopped("stop_handler_sync", got, expected);
    }

    fn stop_all(&mut self) {
        let got = self.manager.stop_sync_all();
        self.stopped("stop_sync_all", got, None);
    }

    /// A ticket of this thread, mostly a recent one (more likely still open).
    fn some_ticket(&mut self) -> Option<usize> {
        let n = self.issued.len();
        if n == 0 {
            return None;
        }
        Some(if self.rng.per_mille(700) {
            n - 1 - self.rng.below(n.min(16))
        } else {
            self.rng.below(n)
        })
    }

    fn cancel(&mut self) {
        let Some(i) = self.some_ticket() else {
            return;
        };
        let ticket = self.issued[i].ticket.clone();
        match ticket.cancel() {
            Ok(Withdrawn::Withdrawn) => {
                self.tally.withdrawn += 1;
                if !ticket.is_complete() {
                    self.tally.withdrawn_unsettled += 1;
                    self.fail(format!(
                        "{} was withdrawn but its ticket was not complete when cancel returned",
                        ticket.request()
                    ));
                }
            }
            Ok(Withdrawn::AlreadyComplete) => self.tally.already_complete += 1,
            Err(e) if self.shutting_down(&e) => self.tally.refused_shut_down += 1,
            Err(e) => self.fail(format!("cancel of {}: {e:?}", ticket.request())),
        }
    }

    /// The answer of a state change (only `ShutDown` may refuse it, nothing forbids it).
    fn changed(&mut self, what: &str, got: Result<(), Error>) -> bool {
        match got {
            Ok(()) => true,
            Err(e) if self.shutting_down(&e) => {
                self.tally.refused_shut_down += 1;
                false
            }
            Err(e) => self.fail(format!("{what}: {e:?}")),
        }
    }

    /// Disables an item and enables it again, trying a start naming it in between (refused,
    /// unless another thread enabled it again meanwhile).
    fn toggle_item(&mut self) {
        self.tally.toggles += 1;
        let t = self.rng.below(self.world.targets.len());
        let target = &self.world.targets[t];
        let k = self.rng.below(target.items.len());
        let item = target.items[k].clone();
        target.item_disables_begun[k].fetch_add(1, SeqCst);
        let off = self
            .manager
            .disable_item(&target.id, &item, ControlFlags::WAIT);
        if !self.changed("disable an item", off) {
            return;
        }
        if self.rng.below(2) == 0 {
            let names = [item.clone()];
            match self
                .manager
                .start_item_sync(&target.id, &names, SyncControlFlags::NONE, None)
            {
                Ok(ticket) => self.accepted(ticket, Kind::Items(names.to_vec()), None),
                Err(e) => self.refused(t, &names, &e),
            }
        }
        let on = self
            .manager
            .enable_item(&target.id, &item, ControlFlags::WAIT);
        self.changed("enable an item", on);
    }

    fn toggle_handler(&mut self) {
        self.tally.toggles += 1;
        let t = self.rng.below(self.world.targets.len());
        let target = &self.world.targets[t];
        target.disables_begun.fetch_add(1, SeqCst);
        let off = self.manager.disable_handler(&target.id, ControlFlags::WAIT);
        if !self.changed("disable a handler", off) {
            return;
        }
        if self.rng.below(2) == 0 {
            match self
                .manager
                .start_handler_sync(&target.id, SyncControlFlags::NONE, None)
            {
                Ok(ticket) => self.accepted(ticket, Kind::Handler, None),
                Err(e) => self.refused(t, &[], &e),
            }
        }
        let on = self.manager.enable_handler(&target.id, ControlFlags::WAIT);
        self.changed("enable a handler", on);
    }

    fn wait(&mut self) {
        let Some(i) = self.some_ticket() else {
            return;
        };
        self.tally.waits += 1;
        let ticket = &self.issued[i].ticket;
        if ticket.wait_timeout(PATIENCE).is_none() {
            self.fail(format!("{} did not resolve", ticket.request()));
        }
    }

    /// The engine's self-check holds between any two commands, not only when idle.
    fn check(&mut self) {
        self.tally.checks += 1;
        match self.manager.check_consistency() {
            Ok(()) => {}
            Err(e) if self.world.shutting_down.load(SeqCst) && e.contains("shut down") => {}
            Err(e) => self.fail(format!("check_consistency: {e}")),
        }
    }
}

fn submit(
    world: &World,
    manager: &SyncManager,
    thread: usize,
    ops: usize,
    mark: Option<(usize, Sender<()>)>,
) -> (Vec<Issued>, Tally) {
    let mut s = Submitter {
        world,
        manager,
        thread,
        op: 0,
        rng: XorShift::seeded(world.seed ^ (thread as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)),
        issued: Vec::new(),
        tally: Tally::default(),
    };
    for op in 0..ops {
        if let Some((at, tx)) = &mark
            && op == *at
        {
            let _ = tx.send(());
        }
        s.op = op;
        s.step();
    }
    if let Some((at, tx)) = &mark
        && *at >= ops
    {
        // A mark at `ops` means: shut down once everything was submitted.
        let _ = tx.send(());
    }
    (s.issued, s.tally)
}

// ----- the checks ---------------------------------------------------------------------------

/// One result against what its request asked for.
fn check_result(world: &World, issued: &Issued, r: &RequestResult) -> Result<(), String> {
    if r.request != issued.ticket.request() || r.handler != *issued.ticket.handler() {
        return Err(format!("the result of another request: {r:?}"));
    }
    let target = &world.targets[world.target_of(&r.handler)];
    let ids: Vec<&ItemId> = r.items.iter().map(|o| &o.item).collect();
    match &issued.kind {
        Kind::Items(names) => {
            if ids != names.iter().collect::<Vec<_>>() {
                return Err(format!("items {ids:?}, asked for {names:?}"));
            }
        }
        Kind::Handler | Kind::All => {
            // Enabled items in registration order, each once.
            let places: Vec<Option<usize>> = ids.iter().map(|i| target.item_index(i)).collect();
            if places.iter().any(Option::is_none) || !places.is_sorted_by(|a, b| a < b) {
                return Err(format!("items {ids:?} are not the handler's, in order"));
            }
        }
    }
    let worst = Outcome::aggregate(r.items.iter().map(|o| o.outcome));
    if r.status != worst {
        return Err(format!("status {:?}, worst item {worst:?}", r.status));
    }
    if r.items.iter().any(|o| o.outcome == Outcome::Disconnected) {
        return Err("Disconnected, but every handler is connected".into());
    }
    if r.conflicts != 0 {
        return Err("conflicts, but nobody reports any".into());
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Wait for every ticket, check the idle manager, then shut down.
    Drain,
    /// Shut down while submitters and sessions are still running.
    ShutdownMidway,
}

fn run(ending: Ending) {
    let _one_at_a_time = lock(&HEAVY);
    quiet_deliberate_panics(DELIBERATE);
    let seed = env_number("SYNCMGR_STRESS_SEED", DEFAULT_SEED);
    let ops = env_number("SYNCMGR_STRESS_OPS", DEFAULT_OPS as u64) as usize;
    println!(
        "stress {ending:?}: SYNCMGR_STRESS_SEED={seed:#x} SYNCMGR_STRESS_OPS={ops} ({THREADS} threads)"
    );
    let began = Instant::now();
    let (manager, world, notes) = setup(seed);
    let (seen, collector) = collect(notes, &world);

    let mut rng = XorShift::seeded(seed ^ 0x000E_1D0F_5107);
    let mark_at = match ending {
        Ending::Drain => None,
        // Somewhere in the last quarter, or (at `ops`) right after the last submission.
        Ending::ShutdownMidway => Some(ops * (75 + rng.below(26)) / 100),
    };
    let (mark_tx, marks) = crossbeam_channel::unbounded();
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let submitters: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (world, manager, barrier) = (world.clone(), manager.clone(), barrier.clone());
            let mark = mark_at.map(|at| (at, mark_tx.clone()));
            thread::Builder::new()
                .name(format!("stress-submitter-{thread}"))
                .spawn(move || {
                    barrier.wait();
                    submit(&world, &manager, thread, ops, mark)
                })
                .expect("a submitter starts")
        })
        .collect();
    drop(mark_tx);
    barrier.wait();

    let mut midway = None;
    if ending == Ending::ShutdownMidway {
        for _ in 0..THREADS {
            if marks.recv_timeout(PATIENCE).is_err() {
                break; // a submitter failed: joining it says why
            }
        }
        let running = lock(&seen.0).running.len();
        world.shutting_down.store(true, SeqCst);
        midway = Some((manager.shutdown(), running));
    }

    let mut issued = Vec::new();
    let mut tally = Tally::default();
    for submitter in submitters {
        match submitter.join() {
            Ok((mine, counts)) => {
                issued.extend(mine);
                tally.add(&counts);
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    let submitted = began.elapsed();

    // Every ticket resolves; after a shutdown, without waiting.
    let deadline = Instant::now() + PATIENCE;
    let mut unsettled_after_shutdown = 0;
    let mut results = Vec::with_capacity(issued.len());
    let mut statuses: HashMap<Outcome, usize> = HashMap::new();
    for i in &issued {
        if midway.is_some() && !i.ticket.is_complete() {
            unsettled_after_shutdown += 1;
        }
        let r = i
            .ticket
            .wait_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|| {
                panic!(
                    "seed {seed:#x}: {} (submitter {}, op {}) never resolved",
                    i.ticket.request(),
                    i.origin.0,
                    i.origin.1
                )
            });
        if let Err(e) = check_result(&world, i, &r) {
            panic!(
                "seed {seed:#x}: {} (submitter {}, op {}): {e}",
                r.request, i.origin.0, i.origin.1
            );
        }
        *statuses.entry(r.status).or_default() += 1;
        results.push(r);
    }
    assert_eq!(
        unsettled_after_shutdown, 0,
        "seed {seed:#x}: tickets still open after shutdown() returned"
    );

    let (report, running_at_shutdown) = match midway {
        Some(m) => m,
        None => {
            // Idle: every request completed and every session ended, as the stream says.
            // Also wait for the reports of the callbacks that panic, which come from the
            // delivery thread after the results.
            let panicking = issued
                .iter()
                .filter(|i| i.callback.as_ref().is_some_and(|c| c.panics))
                .count();
            let (mutex, condvar) = &*seen;
            let (guard, waited) = condvar
                .wait_timeout_while(lock(mutex), PATIENCE, |s| {
                    s.completed.len() < issued.len()
                        || !s.running.is_empty()
                        || s.callback_panics.len() < panicking
                })
                .unwrap_or_else(PoisonError::into_inner);
            assert!(
                !waited.timed_out(),
                "seed {seed:#x}: the manager never went idle ({} of {} completions, {} sessions running, {} of {panicking} callback panics reported)",
                guard.completed.len(),
                issued.len(),
                guard.running.len(),
                guard.callback_panics.len()
            );
            drop(guard);
            if let Err(e) = manager.check_consistency() {
                panic!("seed {seed:#x}: the idle engine is inconsistent: {e}");
            }
            assert_eq!(world.probe.running.load(SeqCst), 0, "seed {seed:#x}");
            world.shutting_down.store(true, SeqCst);
            (manager.shutdown(), 0)
        }
    };
    assert_eq!(
        report,
        ShutdownReport::default(),
        "seed {seed:#x}: every handler returns promptly"
    );
    // The scheduler has ended, so the stream is complete.
    collector.join().expect("the collector ends cleanly");
    let seen = std::mem::take(&mut *lock(&seen.0));
    let elapsed = began.elapsed();

    // Exactly once: tickets, notifications and callbacks.
    let mut ids = HashSet::new();
    let mut with_callback = 0;
    let mut panicking_callbacks = 0;
    for (i, r) in issued.iter().zip(&results) {
        assert!(
            ids.insert(r.request),
            "seed {seed:#x}: {} issued twice",
            r.request
        );
        // Announced once, and the result has an outcome for each item the request took.
        match seen.accepted.get(&r.request) {
            Some((1, items)) if r.items.iter().map(|o| &o.item).eq(items) => {}
            other => panic!(
                "seed {seed:#x}: {} announced once with the items of its result; the stream says {other:?}, the ticket {r:?}",
                r.request
            ),
        }
        match seen.completed.get(&r.request) {
            Some((1, note)) if note == r => {}
            other => panic!(
                "seed {seed:#x}: {} completed once with its ticket's result; the stream says {other:?}, the ticket {r:?}",
                r.request
            ),
        }
        if let Some(callback) = &i.callback {
            with_callback += 1;
            panicking_callbacks += usize::from(callback.panics);
            assert_eq!(
                callback.calls.load(SeqCst),
                1,
                "seed {seed:#x}: the callback of {} runs once",
                r.request
            );
            assert_eq!(
                callback.result.get(),
                Some(r),
                "seed {seed:#x}: callback result"
            );
            // A panic is reported, also by a callback that ran while the manager shut
            // down (regression: such reports were once lost).
            if callback.panics && !seen.callback_panics.contains(&r.request) {
                panic!(
                    "seed {seed:#x}: the callback panic of {} was never reported (during shutdown: {})",
                    r.request,
                    callback.during_shutdown.load(SeqCst)
                );
            }
        }
    }
    assert_eq!(
        seen.accepted.len(),
        issued.len(),
        "seed {seed:#x}: announced requests"
    );
    assert_eq!(
        seen.completed.len(),
        issued.len(),
        "seed {seed:#x}: completed requests"
    );
    assert_eq!(
        world.callbacks_run.load(SeqCst),
        with_callback,
        "seed {seed:#x}"
    );
    assert_eq!(
        seen.callback_panics.len(),
        panicking_callbacks,
        "seed {seed:#x}: callback panics reported for other requests"
    );
    assert_eq!(
        seen.lagged, 0,
        "seed {seed:#x}: the notification stream lagged"
    );

    // Sessions: the stream and the handlers agree.
    let probe = &world.probe;
    let violations: Vec<String> = lock(&probe.violations)
        .iter()
        .chain(&seen.violations)
        .cloned()
        .collect();
    assert!(
        violations.is_empty(),
        "seed {seed:#x}: {} violations, the first ones: {:#?}",
        violations.len(),
        &violations[..violations.len().min(20)]
    );
    assert_eq!(seen.sessions_started, seen.sessions_ended, "seed {seed:#x}");
    assert!(seen.running.is_empty(), "seed {seed:#x}");
    assert_eq!(
        seen.session_panics,
        probe.panics.load(SeqCst),
        "seed {seed:#x}"
    );
    assert_eq!(
        seen.session_failures,
        probe.failures.load(SeqCst),
        "seed {seed:#x}"
    );
    assert!(
        probe.sessions.load(SeqCst) <= seen.sessions_started,
        "seed {seed:#x}"
    );

    let n = |c: &AtomicUsize| c.load(SeqCst);
    let count = |m: &HashMap<Outcome, usize>, o| m.get(&o).copied().unwrap_or(0);
    let outcomes = |m: &HashMap<Outcome, usize>| {
        format!(
            "{} succeeded / {} failed / {} canceled",
            count(m, Outcome::Succeeded),
            count(m, Outcome::Failed),
            count(m, Outcome::Canceled)
        )
    };
    println!(
        "stress {ending:?} seed {seed:#x}: {} ops in {:.2?} ({:.2?} submitting), {} requests accepted \
         ({} items queued, {} merged, {} joined), {} refused (disabled), {} refused (shut down); \
         {} results ({}), {} with callbacks ({} panicking); \
         {} sessions started ({} max at once, {} ran synchronize, {} running at shutdown), \
         item outcomes {}; {} handler panics, {} handler errors, {} error events, \
         {} items left unreported, {} pulled ({} missed), {} terminal-rule refusals, \
         {} cancels seen by handlers; {} stops ({} denied), {} cancel requests sent, \
         {} withdrawn ({} not yet complete when cancel returned), {} already complete, \
         {} waits, {} toggles, {} consistency checks; {} notifications",
        tally.ops,
        elapsed,
        submitted,
        tally.accepted,
        seen.queued,
        seen.merged,
        seen.joined,
        tally.refused_disabled,
        tally.refused_shut_down,
        results.len(),
        outcomes(&statuses),
        with_callback,
        panicking_callbacks,
        seen.sessions_started,
        seen.max_running,
        n(&probe.sessions),
        running_at_shutdown,
        outcomes(&seen.item_outcomes),
        seen.session_panics,
        seen.session_failures,
        n(&probe.error_events),
        n(&probe.unreported),
        n(&probe.pulled),
        n(&probe.pull_missed),
        n(&probe.terminal_rule),
        n(&probe.cancels_seen),
        tally.stops,
        tally.stops_denied,
        seen.cancel_requests,
        tally.withdrawn,
        tally.withdrawn_unsettled,
        tally.already_complete,
        tally.waits,
        tally.toggles,
        tally.checks,
        seen.notes,
    );
}

#[test]
fn random_requests_stops_and_cancels_resolve_every_ticket_exactly_once() {
    run(Ending::Drain);
}

#[test]
fn shutdown_while_sessions_run_still_resolves_every_ticket_exactly_once() {
    run(Ending::ShutdownMidway);
}

// ----- reductions of manager bugs the stress run found ---------------------------------------

/// Regression. `SyncTicket::cancel` says a withdrawn request "completes now", but the
/// scheduler once answered the cancel command before it carried out what the engine decided (the cancel requests
/// for the session, then the delivery), so the caller can see `Withdrawn` and then an
/// incomplete ticket (`try_result() == None`). The stress run counts it as "not yet complete
/// when cancel returned". It is a race: here the scheduler has a cancel request to publish
/// for each of 20,000 running items before it delivers, so a few of 60 tries lose it (every
/// run of this test so far; each takes about a second). The fix belongs in
/// `manager/scheduler.rs`: carry out the engine's actions before answering `Cancel` (and
/// `Start`, whose request can complete at once too).
#[test]
fn a_withdrawn_ticket_is_complete_when_cancel_returns() {
    struct Gate(Vec<ItemId>, Sender<()>, Receiver<()>);
    impl SyncHandler for Gate {
        fn items(&self) -> Vec<SyncItem> {
            self.0
                .iter()
                .map(|i| SyncItem::new(i.clone(), "").unwrap())
                .collect()
        }
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            let _ = self.1.send(());
            let _ = self.2.recv();
            Ok(())
        }
    }
    let items: Vec<ItemId> = (0..20000)
        .map(|n| ItemId::new(format!("item-{n}")).unwrap())
        .collect();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded();
    let manager = SyncManager::builder()
        .notification_capacity(1)
        .build()
        .unwrap();
    let _notes = manager.subscribe();
    manager
        .register_handler("gate", Gate(items, entered_tx, release), ControlFlags::WAIT)
        .unwrap();
    let tries = 60;
    let mut open_after_cancel = 0;
    for _ in 0..tries {
        // The only request of a running session: withdrawing it cancels every item.
        let ticket = manager
            .start_handler_sync("gate", SyncControlFlags::NONE, None)
            .unwrap();
        entered.recv_timeout(PATIENCE).unwrap();
        assert_eq!(ticket.cancel(), Ok(Withdrawn::Withdrawn));
        if ticket.try_result().is_none() {
            open_after_cancel += 1;
        }
        release_tx.send(()).unwrap();
    }
    assert_eq!(
        open_after_cancel, 0,
        "{open_after_cancel} of {tries} withdrawn tickets were still open when cancel returned"
    );
}

/// Regression. A result callback that panics is "caught and reported as
/// `Notification::CallbackPanicked`" (`SyncResult` docs), but once was not while the manager
/// shut down: the delivery thread sent the report to the scheduler, which had already left its
/// loop after the last session ended (the command is dropped with the channel). Found by the
/// shutdown stress run ("unreported at shutdown"). Deterministic: the result is delivered in
/// the scheduler's last iteration.
#[test]
fn a_callback_panic_during_shutdown_is_reported() {
    quiet_deliberate_panics(DELIBERATE);
    /// Syncs until it is asked to stop.
    struct UntilCanceled(Sender<()>);
    impl SyncHandler for UntilCanceled {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new("a", "a").unwrap()]
        }
        fn synchronize(&self, _: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
            let _ = self.0.send(());
            while session.can_continue(None)? {
                thread::yield_now();
            }
            Ok(())
        }
    }
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let manager = SyncManager::new().unwrap();
    let notes = manager.subscribe();
    manager
        .register_handler("h", UntilCanceled(entered_tx), ControlFlags::WAIT)
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let callback = move |_: &RequestResult| {
        flag.store(true, SeqCst);
        panic!("{DELIBERATE} callback panic at shutdown");
    };
    let ticket = manager
        .start_handler_sync("h", SyncControlFlags::NONE, Some(Box::new(callback)))
        .unwrap();
    entered.recv_timeout(PATIENCE).unwrap();
    assert_eq!(manager.shutdown(), ShutdownReport::default());
    assert_eq!(
        ticket.try_result().map(|r| r.status),
        Some(Outcome::Canceled)
    );
    assert!(
        ran.load(SeqCst),
        "shutdown joined the delivery thread after the callback"
    );
    let reported = notes
        .try_iter()
        .filter(|n| matches!(n, Notification::CallbackPanicked { .. }))
        .count();
    assert_eq!(reported, 1, "the callback's panic is reported");
}
