//! Property tests of the pure engine (SPEC section 8, issue 2; merge keys, SPEC section 10;
//! time, SPEC section 11, issue 12).
//!
//! `engine_matches_model_and_keeps_the_invariants` drives `syncmgr::engine::Engine` and the
//! naive reference model in `model/` with the same random operation sequences (3 or 4
//! handlers, one plain, one concurrent, one with policies; a global limit of 2 or 3). The
//! start calls mix Sync Center requests (`start_item_sync`, `start_handler_sync`,
//! `start_sync_all`, all of the default merge key) with keyed ones (`start_sync` under the
//! default key or the cookie `b""`, `b"a"` or `b"b"`, often repeating the last keyed handler
//! and cookie, as a legacy application does). The operations and how they resolve into calls
//! are `model/ops.rs`, shared with the engine fuzz target. After every call it asserts that
//! both decided the same (reply or error with its HRESULT, sessions started in order with
//! their keys, results delivered, cancels sent, and the visible state: `model/compare.rs`),
//! that `Engine::check_consistency` holds, and each invariant of SPEC section 8, checked on
//! its own from the engine's public views and this file's bookkeeping of the action stream
//! (`properties/invariants.rs`, one function per invariant), labelled (a) to (h) in the
//! failure messages:
//!
//! - (a) every accepted request gets exactly one result, and only after all its items have
//!   outcomes (checked at each delivery, and at the end, when every session has finished);
//! - (b) no item is ever in two running sessions of the same handler;
//! - (c) the pending set never holds an (item, merge key) twice, and holds exactly the
//!   entries open requests wait on: each open request's item that no running session serves
//!   it is pending under the request's key (an item may be pending under several keys);
//! - (d) a non-concurrent handler never has two running sessions (unless an update took the
//!   capability away while they ran: they finish, and nothing starts over the new limit);
//! - (e) requests queued while a handler is busy lead to exactly one next session (per key)
//!   holding the union of their items, minus joined and cancelled ones;
//! - (f) with `IGNORE_IF_ALREADY_SYNCING` a currently-syncing item is joined, never queued,
//!   whatever the keys; without it, it is always queued, merged only into the entry of the
//!   same item and key;
//! - (g) no session starts for a disabled, inactive or removed handler, or with a disabled
//!   item;
//! - (h) merge keys (SPEC 10: "queued legacy requests merge only with requests that carry
//!   the same cookie; different cookies give different sessions"): a session starts with the
//!   entries of one key, its own, and never with an item another running session holds;
//!   among the keys with an entry no running session holds it serves the one whose oldest
//!   waiting request is oldest (the default key counts as a key); every request a running
//!   session serves has its key unless it joined the item there; `query_for_additional_items`
//!   and `add_item_to_session` see only the session's key; stops and shutdown remove the
//!   entries of every key.
//!
//! `same_inputs_give_the_same_actions` runs each sequence on two fresh engines and compares
//! every reply and action. `busy_requests_give_one_next_session` states law (e) with a
//! targeted generator, `busy_requests_over_two_cookies_give_one_session_per_cookie` the same
//! law over two cookies (one next session per cookie, the cookie with the oldest waiting
//! request first), and `merging_is_idempotent` that the same request twice while the handler
//! is busy adds nothing to the pending set, under any key. These properties set no time
//! policy: with the default policy the engine must decide exactly as it did before it had
//! time, and the model, whose time then does nothing, says so at every call.
//!
//! **Time (SPEC 11).** `timed_engine_matches_model_and_keeps_the_invariants` gives every
//! handler a random sync policy (debounce with max-wait, retry with backoff, a schedule,
//! triggers; no jitter or flex) and a random seed, and adds the operations of time
//! (`model/ops.rs`): advance time by zero, a little, many periods, exactly to the next
//! deadline or 1 ns before it, or back, then poll; change a policy (one in eight out of
//! range, which must be refused and change nothing); report a trigger; start expedited or
//! without retry; report a permanent failure; connect and disconnect. The model learns time
//! (`model/time.rs`), and the comparison adds every time decision, each result's attempts,
//! the time and the next deadline. Invariants (a) to (h) still hold (with time holding some
//! entries back), and those of time are checked on their own (`properties/time.rs`, one
//! function each), labelled (i) to (q):
//!
//! - (i) time only moves forward; with no time policy anywhere nothing about time is decided
//!   and no deadline is set;
//! - (j) debounce: each decision is `now + quiet`, or `first + max_wait` of a window an
//!   earlier one opened; no session takes an item before its window closes unless a request
//!   expedited it; an entry pending for `max_wait` (or whose backoff ended) starts as soon as
//!   a slot is free;
//! - (k) no session takes an item before its backoff ends, unless an expedited request or a
//!   reconnect ended it;
//! - (l) an item is retried only after a `Failed` (not `Canceled` or `Disconnected`, not a
//!   permanent failure, not in a legacy session), on an attempt below `max_attempts`, after
//!   a backoff of `min(max, initial × factor^(attempt-1))` ± jitter; requests made without
//!   retry, and legacy requests that joined the item, take the `Failed` at once, the others
//!   wait;
//! - (m) each result's attempts are the sessions that ran the item while the request waited,
//!   never more than `max_attempts`;
//! - (n) a schedule never has two open requests;
//! - (o) a schedule never ticks before its tick, nor twice in one poll;
//! - (p) a request the engine makes is announced before anything else about it;
//! - (q) a trigger syncs only the handlers that listen for it, once each, in order.
//!
//! `jittered_times_stay_in_bounds_and_repeat` runs the same with retry jitter and schedule
//! flex (which the model does not predict): every invariant without the model (backoffs
//! within `[d(1-J), d(1+J)]`), and the same seed and inputs give the same actions at the
//! same times. `ticks_fall_within_their_flex` polls a lone schedule at, before and far past
//! its deadlines: each tick falls in `[k·P, k·P + flex]`, fires once, and repeats.
//!
//! **What the time properties found.** The engine once departed from SPEC 11 on four points
//! and its self-check on a fifth; each has a test at the end of this file, on the smallest
//! case the properties shrank to.
//!
//! Each property runs 1,000 cases by default; `PROPTEST_CASES` sets another count:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test properties
//! ```
//!
//! `SYNCMGR_INVARIANTS_ONLY=1` skips the model comparison and `check_consistency`, so that
//! only the explicit invariant checks judge the engine (to show that they bite on their own).
//! `SYNCMGR_SHOW_CALLS=1` makes a failure (or a panic in the engine) list every call of its
//! case with the engine's reply and actions.

#[path = "model/compare.rs"]
mod compare;
#[path = "model/driver.rs"]
mod driver;
mod model;
#[path = "model/ops.rs"]
mod ops;

/// Fails the case with a message that names the invariant.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

// After the macro, which they use.
#[path = "properties/invariants.rs"]
mod invariants;
#[path = "properties/time.rs"]
mod time;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use syncmgr::engine::{
    Accepted, Action, Disposition, Engine, HandlerSpec, ItemSpec, MergeKey, RequestOptions,
    SessionEnd,
};
use syncmgr::{
    EngineConfig, Error, EventLevel, HandlerCapabilities, HandlerId, HandlerPolicies, ItemId,
    ItemPolicies, ProgressStatus, RequestId, SessionId, SyncControlFlags, TriggerReason,
};

use compare::compare_with_model;
use driver::{Call, Reply, Snapshot, on_engine, syncing};
use invariants::Step;
use model::{MDisposition, Model};
use ops::{NAMES, Op, PolicySel, Seen, Universe, hid, iid, items};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn invariants_only() -> bool {
    std::env::var_os("SYNCMGR_INVARIANTS_ONLY").is_some()
}

const NONE: SyncControlFlags = SyncControlFlags::NONE;
const JOIN: SyncControlFlags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;

fn flags(join: bool) -> SyncControlFlags {
    if join { JOIN } else { NONE }
}

// ----- the universe: handlers fixed per case --------------------------------------------------

fn item_policy() -> impl Strategy<Value = ItemPolicies> {
    prop_oneof![
        6 => Just(ItemPolicies::empty()),
        2 => Just(ItemPolicies::PREVENT_STOP_SYNC),
        1 => Just(ItemPolicies::PREVENT_START_SYNC),
        1 => Just(ItemPolicies::PREVENT_DISABLE),
        1 => Just(ItemPolicies::PREVENT_ENABLE),
        1 => Just(ItemPolicies::PREVENT_START_SYNC | ItemPolicies::PREVENT_STOP_SYNC),
    ]
}

fn handler_policy() -> impl Strategy<Value = HandlerPolicies> {
    prop_oneof![
        3 => Just(HandlerPolicies::empty()),
        3 => Just(HandlerPolicies::PREVENT_STOP_SYNC),
        1 => Just(HandlerPolicies::PREVENT_DISABLE | HandlerPolicies::PREVENT_DEACTIVATE),
        1 => Just(HandlerPolicies::PREVENT_ENABLE | HandlerPolicies::PREVENT_ACTIVATE),
        1 => Just(HandlerPolicies::PREVENT_START_SYNC),
    ]
}

/// 3 or 4 handlers: `h0` plain, `h1` concurrent (limit 2), `h2` with policies, and maybe
/// `h3`, a mix (concurrent or not, maybe disconnected, inactive or with disabled items).
fn universe() -> impl Strategy<Value = Universe> {
    let policy_handler = (
        3usize..=5,
        prop::collection::vec(item_policy(), 5),
        handler_policy(),
        any::<bool>(),
    );
    let extra = prop::option::of((
        3usize..=5,
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(1)), Just(Some(3))],
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop_oneof![3 => Just(0u8), 1 => 0u8..32],
    ));
    (
        2usize..=3,
        2usize..=4,
        3usize..=5,
        3usize..=5,
        prop_oneof![4 => Just(0u8), 1 => 0u8..32],
        policy_handler,
        extra,
    )
        .prop_map(
            |(max_sessions, default_conc, n0, n1, off0, (n2, pol2, hpol2, conc2), extra)| {
                let mut specs = vec![
                    HandlerSpec {
                        items: items(n0, &[], off0),
                        ..HandlerSpec::new(hid("h0"))
                    },
                    HandlerSpec {
                        capabilities: HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS,
                        max_concurrent_sessions: Some(2),
                        items: items(n1, &[], 0),
                        ..HandlerSpec::new(hid("h1"))
                    },
                    HandlerSpec {
                        capabilities: if conc2 {
                            HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
                        } else {
                            HandlerCapabilities::empty()
                        },
                        policies: hpol2,
                        items: items(n2, &pol2, 0),
                        ..HandlerSpec::new(hid("h2"))
                    },
                ];
                if let Some((n3, conc3, limit3, connected, active, off3)) = extra {
                    specs.push(HandlerSpec {
                        capabilities: if conc3 {
                            HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
                        } else {
                            HandlerCapabilities::empty()
                        },
                        max_concurrent_sessions: limit3,
                        connected,
                        active,
                        items: items(n3, &[], off3),
                        ..HandlerSpec::new(hid("h3"))
                    });
                }
                Universe {
                    config: EngineConfig {
                        max_sessions,
                        default_concurrent_sessions: default_conc,
                        ..EngineConfig::default()
                    },
                    specs,
                    jitter: false,
                }
            },
        )
}

// ----- operations (`model/ops.rs`), drawn with proptest --------------------------------------

fn item_list() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        12 => prop::collection::vec(any::<u8>(), 1..5),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let h = any::<u8>;
    let s = any::<u8>;
    prop_oneof![
        14 => (h(), item_list(), any::<u8>())
            .prop_map(|(h, items, flags)| Op::StartItems { h, items, flags }),
        5 => (h(), any::<u8>()).prop_map(|(h, flags)| Op::StartHandler { h, flags }),
        2 => any::<u8>().prop_map(|flags| Op::StartAll { flags }),
        14 => (h(), prop::option::weighted(0.75, item_list()), any::<u8>(), any::<u8>())
            .prop_map(|(h, items, flags, key)| Op::StartKeyed { h, items, flags, key }),
        2 => s().prop_map(|s| Op::SessionStarted { s }),
        12 => (s(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(s, item, status, text)| Op::Progress { s, item, status, text }),
        1 => (s(), any::<u8>()).prop_map(|(s, text)| Op::HandlerText { s, text }),
        2 => (s(), prop::option::of(any::<u8>()))
            .prop_map(|(s, item)| Op::CanContinue { s, item }),
        4 => (s(), prop::option::of(any::<u8>()), any::<u8>())
            .prop_map(|(s, item, level)| Op::Event { s, item, level }),
        2 => (s(), prop::option::of(any::<u8>()))
            .prop_map(|(s, item)| Op::Conflict { s, item }),
        1 => s().prop_map(|s| Op::ManualSync { s }),
        3 => s().prop_map(|s| Op::Query { s }),
        6 => (s(), any::<u8>()).prop_map(|(s, pick)| Op::AddItem { s, pick }),
        2 => (s(), any::<u8>()).prop_map(|(s, name)| Op::Propose { s, name }),
        2 => (s(), any::<u8>()).prop_map(|(s, name)| Op::Commit { s, name }),
        12 => (s(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(s, succeed_all, failed)| Op::Finish { s, succeed_all, failed }),
        2 => h().prop_map(|h| Op::StopHandler { h }),
        3 => (h(), item_list()).prop_map(|(h, items)| Op::StopItems { h, items }),
        1 => Just(Op::StopAll),
        5 => any::<u8>().prop_map(|r| Op::CancelRequest { r }),
        2 => (h(), prop::bool::weighted(0.6)).prop_map(|(h, on)| Op::SetActive { h, on }),
        2 => (h(), prop::bool::weighted(0.6)).prop_map(|(h, on)| Op::SetEnabled { h, on }),
        3 => (h(), any::<u8>(), prop::bool::weighted(0.6))
            .prop_map(|(h, item, on)| Op::SetItemEnabled { h, item, on }),
        2 => (h(), prop::bool::weighted(0.6)).prop_map(|(h, on)| Op::SetConnected { h, on }),
        // `disabled`: mostly every item enabled, else any mask (see `Op::Update`).
        2 => (
            (h(), any::<u8>(), prop_oneof![3 => Just(0u8), 1 => 128u8..=255], any::<bool>()),
            prop::bool::weighted(0.3),
        )
            .prop_map(|((h, keep, disabled, reverse), flip)| Op::Update {
                h,
                keep,
                disabled,
                reverse,
                flip
            }),
        2 => (h(), any::<u8>(), prop::bool::weighted(0.7), any::<u8>()).prop_map(
            |(h, name, enabled, policy)| Op::UpsertItem {
                h,
                name,
                enabled,
                policy
            }
        ),
        1 => (h(), any::<u8>()).prop_map(|(h, item)| Op::RemoveItem { h, item }),
        1 => h().prop_map(|h| Op::Remove { h }),
        2 => h().prop_map(|h| Op::Register { h }),
    ]
}

/// A case: the universe, the operations, and how it ends: `tail` 1 shuts down a few
/// operations before the end, 2 shuts down just before the final drain, else no shutdown.
fn scenario() -> impl Strategy<Value = (Universe, Vec<Op>, u8)> {
    (universe(), prop::collection::vec(op(), 0..80), 0u8..6).prop_map(|(u, mut ops, tail)| {
        if tail == 1 {
            let at = ops.len().saturating_sub(5);
            ops.insert(at, Op::Shutdown);
        }
        (u, ops, tail)
    })
}

// ----- time (SPEC 11): policies, and operations that move time -------------------------------

/// What a sync policy is made of (`ops::policy`); `valid` keeps every field in range, else one
/// field in eight policies is out of range on purpose.
fn policy_sel(valid: bool) -> impl Strategy<Value = PolicySel> {
    let broken = if valid {
        (0u8..224).boxed()
    } else {
        prop_oneof![7 => 0u8..224, 1 => 224u8..=255].boxed()
    };
    (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), broken).prop_map(
        |(debounce, retry, schedule, triggers, broken)| PolicySel {
            debounce,
            retry,
            schedule,
            triggers,
            broken,
        },
    )
}

/// The universe of `universe()`, each handler with a random valid sync policy (with jitter
/// and flex if `jitter`), and a random seed.
fn timed_universe(jitter: bool) -> impl Strategy<Value = Universe> {
    (
        universe(),
        prop::collection::vec(policy_sel(true), 4),
        any::<u64>(),
    )
        .prop_map(move |(mut u, sels, seed)| {
            for (spec, sel) in u.specs.iter_mut().zip(&sels) {
                spec.policy = ops::policy(sel, jitter);
            }
            u.config.seed = seed;
            u.jitter = jitter;
            u
        })
}

/// The operations of `op()`, and those of time: advance and poll, set a policy, report a
/// trigger, start expedited or without retry, report a permanent failure, and connect or
/// disconnect (more often than `op()` does: a reconnect ends backoffs).
fn timed_op() -> impl Strategy<Value = Op> {
    let h = any::<u8>;
    prop_oneof![
        14 => op(),
        5 => any::<u8>().prop_map(|by| Op::Advance { by }),
        1 => (h(), policy_sel(false)).prop_map(|(h, policy)| Op::SetPolicy { h, policy }),
        1 => any::<u8>().prop_map(|which| Op::Trigger { which }),
        2 => (
            h(),
            prop::option::weighted(0.75, item_list()),
            any::<u8>(),
            any::<u8>(),
            prop::bool::weighted(0.4),
            prop::bool::weighted(0.4),
        )
            .prop_map(|(h, items, flags, key, expedite, no_retry)| Op::StartWith {
                h,
                items,
                flags,
                key,
                expedite,
                no_retry,
            }),
        2 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(s, item, text)| Op::Permanent { s, item, text }),
        // Disconnects, and reconnects that end backoffs.
        2 => (h(), any::<bool>()).prop_map(|(h, on)| Op::SetConnected { h, on }),
    ]
}

/// A timed case, ended like `scenario()`'s.
fn timed_scenario(jitter: bool) -> impl Strategy<Value = (Universe, Vec<Op>, u8)> {
    (
        timed_universe(jitter),
        prop::collection::vec(timed_op(), 0..100),
        0u8..6,
    )
        .prop_map(|(u, mut ops, tail)| {
            if tail == 1 {
                let at = ops.len().saturating_sub(5);
                ops.insert(at, Op::Shutdown);
            }
            (u, ops, tail)
        })
}

// ----- the harness ---------------------------------------------------------------------------

/// A request as this file saw it accepted.
#[derive(Clone, Debug)]
struct Issued {
    id: RequestId,
    /// The handler registration it is for: ID and registration number.
    owner: (HandlerId, u32),
    items: Vec<ItemId>,
    disconnected: bool,
    delivered: u32,
    /// Its merge key: the default for every start call but `start_sync`.
    key: MergeKey,
    /// The items it joined in a running session (`Disposition::Joined`), with the session.
    joined: Vec<(ItemId, u64)>,
    /// Why the engine made it (a tick or a trigger), if it did.
    reason: Option<TriggerReason>,
    /// Made without retry (`RequestOptions::no_retry`).
    no_retry: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Model comparison, `check_consistency` and the invariants.
    Full,
    /// The invariants alone.
    InvariantsOnly,
    /// Only drive the engine and record a trace (determinism).
    Trace,
}

struct Harness {
    universe: Universe,
    engine: Engine,
    model: Model,
    mode: Mode,
    /// How many times each handler ID was registered: a registration is (ID, number).
    generation: BTreeMap<HandlerId, u32>,
    /// The registration each session ever started belongs to.
    owner: BTreeMap<u64, (HandlerId, u32)>,
    /// Registrations an update left running more sessions than their new limit allows.
    over_limit: BTreeSet<(HandlerId, u32)>,
    /// Request `n` is at `n - 1`.
    requests: Vec<Issued>,
    /// What operations select sessions and requests from.
    seen: Seen,
    trace: Vec<String>,
    /// What the time invariants keep between calls (`properties/time.rs`).
    book: time::Book,
}

impl Harness {
    fn new(universe: &Universe, mode: Mode) -> Result<Harness, TestCaseError> {
        let mut h = Harness {
            universe: universe.clone(),
            engine: Engine::new(universe.config).unwrap(),
            model: Model::new(
                universe.config.max_sessions,
                universe.config.default_concurrent_sessions,
            ),
            mode,
            generation: BTreeMap::new(),
            owner: BTreeMap::new(),
            over_limit: BTreeSet::new(),
            requests: Vec::new(),
            seen: Seen::default(),
            trace: Vec::new(),
            book: time::Book::default(),
        };
        for spec in &universe.specs {
            h.step(Call::Register(spec.clone()))?;
        }
        Ok(h)
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        for call in ops::resolve(op, &self.universe, &self.engine, &self.seen) {
            self.step(call)?;
        }
        Ok(())
    }

    /// Ends the case: maybe shut down; take every schedule away (else ticks would make
    /// requests for ever); then finish every running session, and poll at each next deadline
    /// while something waits for one (debounce, backoff), until the engine is idle. After 20
    /// polls in a row, time jumps three `MAX_DELAY`s at once (past any backoff, jitter
    /// included). Then every accepted request must have had exactly one result (invariant
    /// a).
    fn drain(&mut self, shutdown: bool) -> Result<(), TestCaseError> {
        if shutdown {
            self.step(Call::Shutdown)?;
        }
        for h in self.engine.handlers() {
            if let Some(p) = self.engine.sync_policy(&h)
                && p.schedule.is_some()
            {
                let p = syncmgr::SyncPolicy {
                    schedule: None,
                    ..p.clone()
                };
                self.step(Call::SetPolicy(h, p))?;
            }
        }
        let mut polls = 0;
        for _ in 0..2000 {
            if let Some(&s) = self.engine.sessions().first() {
                self.step(Call::Finish(s, SessionEnd::Returned))?;
                continue;
            }
            match self.engine.next_deadline() {
                Some(_) if polls >= 20 && !self.engine.is_idle() => {
                    polls = 0;
                    self.step(Call::Poll(self.engine.now() + syncmgr::MAX_DELAY * 3))?;
                }
                Some(due) if !self.engine.is_idle() => {
                    polls += 1;
                    self.step(Call::Poll(due))?;
                }
                _ => break,
            }
        }
        if self.mode == Mode::Trace {
            return Ok(());
        }
        check!(
            self.engine.sessions().is_empty(),
            "draining did not end: {:?}",
            self.engine.sessions()
        );
        check!(
            self.engine.is_idle(),
            "(a) nothing runs, yet the engine is not idle: open {:?}",
            self.engine.open_requests()
        );
        for r in &self.requests {
            check!(
                r.delivered == 1,
                "(a) {} got {} results by the end",
                r.id,
                r.delivered
            );
        }
        Ok(())
    }

    /// One call on the engine (and the model), then every check.
    fn step(&mut self, call: Call) -> Result<(), TestCaseError> {
        let pre = Snapshot::take(&self.engine);
        let engine = &mut self.engine;
        let mut run = || {
            let got = on_engine(engine, &call);
            let actions: Vec<Action> = engine.drain_actions().collect();
            let post = Snapshot::take(engine);
            (got, actions, post)
        };
        let (got, actions, post) = if show_calls() {
            // A panic in the engine (or in its views) becomes a failure that lists the calls
            // before it.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                Ok(done) => done,
                Err(panic) => {
                    return Err(TestCaseError::fail(format!(
                        "the engine panicked: {}\n  at {call:?}\n  calls:\n    {}",
                        panic_text(panic.as_ref()),
                        self.trace.join("\n    ")
                    )));
                }
            }
        } else {
            run()
        };
        if self.mode == Mode::Trace || show_calls() {
            self.trace.push(format!("{call:?} -> {got:?} {actions:?}"));
        }
        self.record(&call, &got, &actions, &pre, &post)?;
        if self.mode == Mode::Trace {
            return Ok(());
        }
        let step = Step {
            call: &call,
            got: &got,
            actions: &actions,
            pre: &pre,
            post: &post,
        };
        let checked = if show_calls() {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.check(&step)))
                .unwrap_or_else(|panic| {
                    Err(TestCaseError::fail(format!(
                        "the engine panicked in a check: {}",
                        panic_text(panic.as_ref())
                    )))
                })
        } else {
            self.check(&step)
        };
        checked.map_err(|e| {
            let e = annotate(e, &call);
            if show_calls() {
                TestCaseError::fail(format!("{e}\n  calls:\n    {}", self.trace.join("\n    ")))
            } else {
                e
            }
        })
    }

    /// Every check of one call.
    fn check(&mut self, step: &Step) -> Result<(), TestCaseError> {
        self.check_invariants(step)?;
        self.check_time(step)?;
        if self.mode == Mode::Full {
            if let Err(what) = self.engine.check_consistency() {
                return Err(TestCaseError::fail(format!("check_consistency: {what}")));
            }
            compare_with_model(
                &mut self.model,
                step.call,
                step.got,
                step.actions,
                step.post,
            )
            .map_err(TestCaseError::fail)?;
        }
        Ok(())
    }

    /// Keeps this file's own account of registrations, sessions and requests.
    fn record(
        &mut self,
        call: &Call,
        got: &Result<Reply, Error>,
        actions: &[Action],
        pre: &Snapshot,
        post: &Snapshot,
    ) -> Result<(), TestCaseError> {
        if let (Call::Register(spec), Ok(_)) = (call, got) {
            *self.generation.entry(spec.id.clone()).or_default() += 1;
        }
        let accepted = self
            .seen
            .note(&self.engine, call, got, actions)
            .map_err(TestCaseError::fail)?;
        for new in accepted {
            let connected = pre.handler(&new.handler).is_some_and(|h| h.connected);
            let joined = match &new.dispositions {
                Some(dispositions) => new
                    .items
                    .iter()
                    .zip(dispositions)
                    .filter_map(|(item, d)| match d {
                        MDisposition::Joined(s) => Some((item.clone(), *s)),
                        _ => None,
                    })
                    .collect(),
                // A tick's request (no reply): what sessions that ran before the call serve
                // it, it joined.
                None => post
                    .sessions
                    .iter()
                    .filter(|s| pre.session(s.id).is_some())
                    .flat_map(|s| {
                        s.items
                            .iter()
                            .filter(|si| si.waiting.contains(&new.id))
                            .map(|si| (si.item.clone(), s.id.get()))
                    })
                    .collect(),
            };
            let engine_made = new.issued.is_some();
            let options = if engine_made {
                RequestOptions::default()
            } else {
                call.options()
            };
            self.requests.push(Issued {
                id: new.id,
                owner: (new.handler.clone(), self.generation[&new.handler]),
                items: new.items,
                disconnected: !connected,
                delivered: 0,
                key: options.key.clone(),
                joined,
                reason: new.issued,
                no_retry: options.no_retry,
            });
        }
        for a in actions {
            if let Action::StartSession {
                session, handler, ..
            } = a
            {
                let generation = self.generation.get(handler).copied().unwrap_or(0);
                self.owner
                    .insert(session.get(), (handler.clone(), generation));
            }
        }
        Ok(())
    }
}

fn annotate(e: TestCaseError, call: &Call) -> TestCaseError {
    TestCaseError::fail(format!("{e}\n  at {call:?}"))
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// `SYNCMGR_SHOW_CALLS=1`: a failure lists every call of its case, with the engine's reply
/// and actions (slow; for reading a minimal failing case).
fn show_calls() -> bool {
    std::env::var_os("SYNCMGR_SHOW_CALLS").is_some()
}

fn mode() -> Mode {
    if invariants_only() {
        Mode::InvariantsOnly
    } else {
        Mode::Full
    }
}

// ----- properties: the engine against the model, and the invariants --------------------------

proptest! {
    #![proptest_config(config())]

    /// Random operation sequences: the engine and the model decide the same at every call,
    /// and invariants (a) to (g) hold after every call and at the end.
    #[test]
    fn engine_matches_model_and_keeps_the_invariants((u, ops, tail) in scenario()) {
        let mut h = Harness::new(&u, mode())?;
        for op in &ops {
            h.run(op)?;
        }
        h.drain(tail == 2)?;
    }

    /// The same inputs give the same actions, in the same order (SPEC 5 and 8).
    #[test]
    fn same_inputs_give_the_same_actions((u, ops, tail) in scenario()) {
        let mut traces = Vec::new();
        for _ in 0..2 {
            let mut h = Harness::new(&u, Mode::Trace)?;
            for op in &ops {
                h.run(op)?;
            }
            h.drain(tail == 2)?;
            traces.push(h.trace);
        }
        prop_assert_eq!(&traces[0], &traces[1]);
    }

    /// SPEC 11: with time. Every handler has a sync policy (debounce with max-wait, retry
    /// with backoff, a schedule, triggers; jitter and flex 0), and the operations move time
    /// and poll, change policies (sometimes out of range), report triggers, start expedited
    /// or without retry, and report permanent failures. The engine and the model decide the
    /// same at every call, including every time decision, each result's attempts, the time
    /// and the next deadline; invariants (a) to (h) hold, and the time invariants (i) to (q)
    /// of `properties/time.rs`.
    #[test]
    fn timed_engine_matches_model_and_keeps_the_invariants((u, ops, tail) in timed_scenario(false)) {
        let mut h = Harness::new(&u, mode())?;
        for op in &ops {
            h.run(op)?;
        }
        h.drain(tail == 2)?;
    }

    /// SPEC 11 with retry jitter and schedule flex (which the model does not predict): every
    /// invariant, without the model; each backoff lies within `[d(1-J), d(1+J)]` of its
    /// nominal delay `d` (invariant l), and the same seed and inputs give the same actions at
    /// the same times (SPEC 11.5).
    #[test]
    fn jittered_times_stay_in_bounds_and_repeat((u, ops, tail) in timed_scenario(true)) {
        let mut h = Harness::new(&u, Mode::InvariantsOnly)?;
        for op in &ops {
            h.run(op)?;
        }
        h.drain(tail == 2)?;
        let mut traces = Vec::new();
        for _ in 0..2 {
            let mut h = Harness::new(&u, Mode::Trace)?;
            for op in &ops {
                h.run(op)?;
            }
            h.drain(tail == 2)?;
            traces.push(h.trace);
        }
        prop_assert_eq!(&traces[0], &traces[1]);
    }
}

proptest! {
    #![proptest_config(config())]

    /// SPEC 11.3 and 11.5 with flex: a handler whose only timer is its schedule (every P,
    /// flex F, any seed). After registration and after each poll, the next deadline is tick
    /// `k` = the first after the last poll, within `[k·P, k·P + F]`; a poll at or after it
    /// fires that one tick (a request, or a skip while the last one is open), a poll before
    /// it fires nothing, however far time jumps; and the same seed and polls give the same
    /// times and actions.
    #[test]
    fn ticks_fall_within_their_flex(
        every in 1u64..=60,
        quarters in 0u32..=4,
        seed in any::<u64>(),
        polls in prop::collection::vec((any::<u8>(), any::<u16>(), any::<bool>()), 1..40),
    ) {
        let every = std::time::Duration::from_secs(every);
        let flex = every * quarters / 4;
        let run = || -> Result<Vec<String>, TestCaseError> {
            let config = EngineConfig { seed, ..EngineConfig::default() };
            let mut e = Engine::new(config).unwrap();
            let h = hid("h");
            let policy = syncmgr::SyncPolicy::default().every_with_flex(every, flex);
            e.register_handler(HandlerSpec::new(h.clone()).items([iid("a")]).with_sync_policy(policy))
                .unwrap();
            let mut trace = Vec::new();
            let mut k: u32 = 1;
            for &(how, by, finish) in &polls {
                let now = e.now();
                let due = e.next_deadline().unwrap();
                let earliest = syncmgr::Time::ZERO + every * k;
                prop_assert!(
                    due >= earliest && due <= earliest + flex,
                    "tick {} falls at {}, outside [{}, {}]", k, due, earliest, earliest + flex
                );
                let at = match how {
                    0..=127 => due,
                    128..=159 if due > now => {
                        syncmgr::Time::from_duration(due.since_origin() - std::time::Duration::from_nanos(1))
                    }
                    // Up to about 65 s, or many periods at once.
                    160..=239 => now + std::time::Duration::from_millis(u64::from(by)),
                    _ => now + every * u32::from(by % 16 + 1),
                };
                let fired = e.poll(at);
                let actions: Vec<Action> = e.drain_actions().collect();
                let ticks = actions
                    .iter()
                    .filter(|a| matches!(a, Action::Issued { .. } | Action::TickSkipped { .. }))
                    .count();
                if at >= due {
                    prop_assert_eq!((fired, ticks), (1, 1), "the tick due at {} and a poll at {}", due, at);
                    let elapsed = at.since_origin().as_nanos() / every.as_nanos();
                    k = u32::try_from(elapsed + 1).unwrap();
                } else {
                    prop_assert_eq!((fired, ticks), (0, 0), "nothing is due before {} (poll at {})", due, at);
                }
                if finish {
                    for s in e.sessions() {
                        let _ = e.report_progress(s, &iid("a"), ProgressStatus::Succeeded).unwrap();
                        let _ = e.session_finished(s, SessionEnd::Returned).unwrap();
                    }
                }
                trace.push(format!("{at} {due} {actions:?} {:?}", e.drain_actions().collect::<Vec<_>>()));
            }
            Ok(trace)
        };
        let first = run()?;
        prop_assert_eq!(first, run()?);
    }
}

// ----- laws of the busy handler: one next session, idempotent merging ------------------------

/// What happens to a handler while its one session runs.
#[derive(Clone, Debug)]
enum Busy {
    /// A request; `key` selects its merge key (`busy_key`).
    Request {
        items: Vec<u8>,
        join: bool,
        key: u8,
    },
    Cancel {
        r: u8,
    },
    Stop {
        items: Vec<u8>,
    },
    Report {
        item: u8,
        status: ProgressStatus,
    },
    /// The running session looks at what it could take (`query_for_additional_items`) and
    /// pulls an item (`add_item_to_session`): mostly one the query offered, else any item.
    Pull {
        pick: u8,
    },
}

/// The merge keys of the busy-handler laws: the default key, cookie `a`, cookie `b`.
fn busy_key(sel: u8) -> MergeKey {
    match sel % 3 {
        0 => MergeKey::DEFAULT,
        1 => MergeKey::cookie(b"a"),
        _ => MergeKey::cookie(b"b"),
    }
}

/// Busy-time operations whose requests draw their key from `keys` (see `busy_key`).
fn busy_with(keys: impl Strategy<Value = u8> + 'static) -> impl Strategy<Value = Busy> {
    let items = || prop::collection::vec(any::<u8>(), 1..5);
    prop_oneof![
        8 => (items(), any::<bool>(), keys)
            .prop_map(|(items, join, key)| Busy::Request { items, join, key }),
        2 => any::<u8>().prop_map(|r| Busy::Cancel { r }),
        1 => items().prop_map(|items| Busy::Stop { items }),
        3 => (any::<u8>(), any::<u8>().prop_map(ops::status))
            .prop_map(|(item, status)| Busy::Report { item, status }),
        1 => any::<u8>().prop_map(|pick| Busy::Pull { pick }),
    ]
}

/// Busy-time operations of Sync Center requests only (the default key).
fn busy() -> impl Strategy<Value = Busy> {
    busy_with(Just(0))
}

/// A pending entry as the busy-handler laws track it: the item, its merge key, and its
/// waiting requests.
type Entries = Vec<(ItemId, MergeKey, Vec<RequestId>)>;

/// One non-concurrent handler `b` with `count` items, and its first session running `first`.
struct BusyHandler {
    engine: Engine,
    handler: HandlerId,
    items: Vec<ItemId>,
    session: SessionId,
    requests: Vec<RequestId>,
    /// Every result delivered so far.
    delivered: Vec<RequestId>,
    /// This file's own account of the pending set, in entry order.
    entries: Entries,
    /// The non-default keys in the order their pending sets came into being: the order of
    /// `HandlerView::pending` ("oldest key first"). Keys with no entry left are skipped.
    key_order: Vec<MergeKey>,
}

impl BusyHandler {
    /// The first session serves `first` under `key`.
    fn new(count: usize, first: &[u8], key: MergeKey) -> Result<BusyHandler, TestCaseError> {
        let handler = hid("b");
        let items: Vec<ItemId> = NAMES[..count].iter().map(|n| iid(n)).collect();
        let mut engine = Engine::default();
        engine
            .register_handler(HandlerSpec::new(handler.clone()).items(items.clone()))
            .unwrap();
        let first: Vec<ItemId> = first
            .iter()
            .map(|&i| items[i as usize % count].clone())
            .collect();
        let r = engine
            .start_sync(&handler, Some(&first), NONE, key.clone())
            .unwrap();
        let session = match engine.drain_actions().collect::<Vec<_>>().as_slice() {
            [
                Action::StartSession {
                    session, key: k, ..
                },
            ] if *k == key => *session,
            other => {
                return Err(TestCaseError::fail(format!(
                    "the first request should start one session of key {key:?}: {other:?}"
                )));
            }
        };
        Ok(BusyHandler {
            engine,
            handler,
            items,
            session,
            requests: vec![r.request],
            delivered: Vec::new(),
            entries: Vec::new(),
            key_order: Vec::new(),
        })
    }

    fn item(&self, sel: u8) -> ItemId {
        self.items[sel as usize % self.items.len()].clone()
    }

    /// Takes the engine's actions, noting the results delivered.
    fn drain(&mut self) -> Vec<Action> {
        let actions: Vec<Action> = self.engine.drain_actions().collect();
        for a in &actions {
            if let Action::Deliver(r) = a {
                self.delivered.push(r.request);
            }
        }
        actions
    }

    /// The pending list the engine should show: the default key's entries, then each other
    /// key's, keys in `key_order`, entries in entry order.
    fn expected_pending(&self) -> Vec<ItemId> {
        std::iter::once(&MergeKey::DEFAULT)
            .chain(&self.key_order)
            .flat_map(|k| self.entries.iter().filter(move |(_, key, _)| key == k))
            .map(|(i, _, _)| i.clone())
            .collect()
    }

    /// Sends a request, checking each disposition against the session view and this file's
    /// pending account taken just before (f, and the dedup of SPEC 5 within a key), then
    /// records it.
    fn request(
        &mut self,
        items: &[ItemId],
        join: bool,
        key: &MergeKey,
    ) -> Result<Accepted, TestCaseError> {
        let before = self.engine.session_view(self.session).unwrap();
        let acc = self
            .engine
            .start_sync(&self.handler, Some(items), flags(join), key.clone())
            .map_err(|e| TestCaseError::fail(format!("refused: {e:?}")))?;
        let listed = self.engine.request_items(acc.request).unwrap();
        let mut distinct: Vec<&ItemId> = Vec::new();
        for item in items {
            if !distinct.contains(&item) {
                distinct.push(item);
            }
        }
        prop_assert!(
            listed.iter().eq(distinct.iter().copied()),
            "an item named twice counts once, at its first place: {:?} for {:?}",
            listed,
            items
        );
        prop_assert_eq!(acc.duplicates, items.len() - distinct.len());
        for (item, d) in listed.iter().zip(acc.dispositions()) {
            // Joins ignore keys; merging happens only into the entry of the same key.
            let at = self
                .entries
                .iter()
                .position(|(i, k, _)| i == item && k == key);
            let expected = match at {
                _ if join && syncing(&before, item) => Disposition::Joined(self.session),
                Some(_) => Disposition::Merged,
                None => Disposition::Queued,
            };
            prop_assert_eq!(
                *d,
                expected,
                "(f) {} with flag {} key {:?}",
                item,
                join,
                key
            );
            match (d, at) {
                (Disposition::Merged, Some(at)) => self.entries[at].2.push(acc.request),
                (Disposition::Queued, _) => {
                    // A key whose pending set comes into being goes to the back.
                    let entries = &self.entries;
                    self.key_order
                        .retain(|k| entries.iter().any(|(_, key, _)| key == k));
                    if !key.is_default() && !self.key_order.contains(key) {
                        self.key_order.push(key.clone());
                    }
                    self.entries
                        .push((item.clone(), key.clone(), vec![acc.request]));
                }
                _ => {}
            }
        }
        self.requests.push(acc.request);
        Ok(acc)
    }

    fn apply(&mut self, op: &Busy) -> Result<(), TestCaseError> {
        match op {
            Busy::Request { items, join, key } => {
                let items: Vec<ItemId> = items.iter().map(|&i| self.item(i)).collect();
                let _ = self.request(&items, *join, &busy_key(*key))?;
            }
            Busy::Cancel { r } => {
                let r = self.requests[*r as usize % self.requests.len()];
                let _ = self.engine.cancel_request(r).unwrap();
                for (_, _, waiters) in &mut self.entries {
                    waiters.retain(|w| *w != r);
                }
                self.entries.retain(|(_, _, w)| !w.is_empty());
            }
            Busy::Stop { items } => {
                // A stop removes the named items' entries under every key.
                let items: Vec<ItemId> = items.iter().map(|&i| self.item(i)).collect();
                let _ = self.engine.stop_item_sync(&self.handler, &items).unwrap();
                self.entries.retain(|(i, _, _)| !items.contains(i));
            }
            Busy::Report { item, status } => {
                let view = self.engine.session_view(self.session).unwrap();
                let item = view.items[*item as usize % view.items.len()].item.clone();
                let _ = self.engine.report_progress(self.session, &item, *status);
            }
            Busy::Pull { pick } => {
                // The session sees, and may pull, only the entries of its own key.
                let view = self.engine.session_view(self.session).unwrap();
                let held: Vec<ItemId> = view.items.iter().map(|si| si.item.clone()).collect();
                let extra = self
                    .engine
                    .query_for_additional_items(self.session)
                    .unwrap();
                let mine: Vec<&(ItemId, MergeKey, Vec<RequestId>)> = self
                    .entries
                    .iter()
                    .filter(|(i, k, _)| *k == view.key && !held.contains(i))
                    .collect();
                let items: Vec<ItemId> = mine.iter().map(|(i, _, _)| i.clone()).collect();
                prop_assert_eq!(
                    &extra.items,
                    &items,
                    "(h) query_for_additional_items of a session of key {:?}",
                    &view.key
                );
                let mut requests: Vec<RequestId> = mine
                    .iter()
                    .flat_map(|(_, _, w)| w.iter().copied())
                    .collect();
                requests.sort_unstable();
                requests.dedup();
                prop_assert_eq!(&extra.requests, &requests, "(h) the requests it reports");
                let item = if *pick < 128 && !extra.items.is_empty() {
                    extra.items[*pick as usize % extra.items.len()].clone()
                } else {
                    self.item(*pick)
                };
                let got = self.engine.add_item_to_session(self.session, &item);
                let at = self
                    .entries
                    .iter()
                    .position(|(i, k, _)| *i == item && *k == view.key);
                match at {
                    _ if held.contains(&item) => prop_assert!(
                        matches!(got, Err(Error::ItemAlreadyInSession(_))),
                        "pulling {} again: {:?}",
                        item,
                        got
                    ),
                    Some(at) => {
                        let (_, _, waiters) = self.entries.remove(at);
                        prop_assert_eq!(got.ok(), Some(waiters.len()), "pulling {}", item);
                    }
                    None => prop_assert!(
                        matches!(got, Err(Error::ItemNotPending(_))),
                        "(h) {} is not pending under {:?} (maybe under another key), yet \
                         pulling it gave {:?}",
                        item,
                        view.key,
                        got
                    ),
                }
            }
        }
        let _ = self.drain();
        prop_assert_eq!(self.engine.check_consistency(), Ok(()));
        let pending = self.engine.pending_items(&self.handler);
        prop_assert_eq!(
            &pending,
            &self.expected_pending(),
            "(c) the pending set after {:?}",
            op
        );
        prop_assert!(
            self.engine.sessions() == [self.session],
            "(d) the handler is busy: nothing else may start"
        );
        Ok(())
    }
}

/// The `StartSession` actions among these: session, items, key.
fn session_starts(actions: &[Action]) -> Vec<(SessionId, &Vec<ItemId>, &MergeKey)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartSession {
                session,
                items,
                key,
                ..
            } => Some((*session, items, key)),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// (e) Requests queued while the handler is busy lead to exactly one next session, with
    /// the union of their items in first-requested order, minus joined items and minus what
    /// was cancelled, stopped or pulled into the running session; each item's waiting
    /// requests come along.
    #[test]
    fn busy_requests_give_one_next_session(
        count in 3usize..=6,
        first in prop::collection::vec(any::<u8>(), 1..4),
        ops in prop::collection::vec(busy(), 1..20),
        failed in any::<bool>(),
    ) {
        let mut b = BusyHandler::new(count, &first, MergeKey::DEFAULT)?;
        for op in &ops {
            b.apply(op)?;
        }
        let end = if failed { SessionEnd::Failed("synchronize failed".into()) } else { SessionEnd::Returned };
        let _ = b.engine.session_finished(b.session, end).unwrap();
        let actions = b.drain();
        let starts = session_starts(&actions);
        let expected: Vec<ItemId> = b.entries.iter().map(|(i, _, _)| i.clone()).collect();
        if expected.is_empty() {
            prop_assert!(starts.is_empty(), "(e) nothing was pending, yet {:?} started", starts);
        } else {
            prop_assert_eq!(starts.len(), 1, "(e) one next session, not {:?}", starts);
            let (next, items, _) = starts[0];
            prop_assert_eq!(items, &expected, "(e) the next session's items");
            let view = b.engine.session_view(next).unwrap();
            for (si, (_, _, waiters)) in view.items.iter().zip(&b.entries) {
                prop_assert_eq!(&si.waiting, waiters, "(e) who waits for {}", si.item);
            }
        }
        prop_assert_eq!(b.engine.check_consistency(), Ok(()));
    }

    /// (e) and (h), SPEC 10 with SPEC 5: requests over two cookies queued while the handler
    /// is busy lead to exactly one session per cookie that still has pending items, one
    /// after the other (the handler is not concurrent), the cookie whose oldest waiting
    /// request is oldest first. Each takes the union of its cookie's items in
    /// first-requested order with their waiting requests, and nothing of the other cookie.
    /// Then the handler is idle and every request has had exactly one result.
    #[test]
    fn busy_requests_over_two_cookies_give_one_session_per_cookie(
        count in 3usize..=6,
        first in prop::collection::vec(any::<u8>(), 1..4),
        first_key in 0u8..3,
        ops in prop::collection::vec(busy_with(1u8..=2), 1..24),
        failed in any::<bool>(),
    ) {
        let mut b = BusyHandler::new(count, &first, busy_key(first_key))?;
        for op in &ops {
            b.apply(op)?;
        }
        // The cookies that still have pending entries, oldest waiting request first.
        let mut cookies: Vec<(RequestId, MergeKey)> = Vec::new();
        for (_, key, waiters) in &b.entries {
            let oldest = *waiters.iter().min().unwrap();
            match cookies.iter_mut().find(|(_, k)| k == key) {
                Some(c) => c.0 = c.0.min(oldest),
                None => cookies.push((oldest, key.clone())),
            }
        }
        cookies.sort_by_key(|(oldest, _)| *oldest);
        prop_assert!(cookies.iter().all(|(_, k)| !k.is_default()));
        let mut running = b.session;
        let mut end = if failed { SessionEnd::Failed("synchronize failed".into()) } else { SessionEnd::Returned };
        for (oldest, key) in &cookies {
            let _ = b.engine.session_finished(running, end).unwrap();
            end = SessionEnd::Returned;
            let actions = b.drain();
            let starts = session_starts(&actions);
            prop_assert_eq!(
                starts.len(),
                1,
                "(h) one next session, for cookie {:?} (oldest request {}), not {:?}",
                key,
                oldest,
                starts
            );
            let (next, items, started) = starts[0];
            prop_assert_eq!(
                started,
                key,
                "(h) the cookie whose oldest request waits longest goes first: {:?}",
                &cookies
            );
            let mine: Vec<&(ItemId, MergeKey, Vec<RequestId>)> =
                b.entries.iter().filter(|(_, k, _)| k == key).collect();
            let expected: Vec<ItemId> = mine.iter().map(|(i, _, _)| i.clone()).collect();
            prop_assert_eq!(items, &expected, "(e) the session of {:?} takes its union", key);
            let view = b.engine.session_view(next).unwrap();
            prop_assert_eq!(&view.key, key);
            for (si, (_, _, waiters)) in view.items.iter().zip(mine) {
                prop_assert_eq!(&si.waiting, waiters, "(e) who waits for {}", si.item);
            }
            // The other cookie's entries stay pending, untouched.
            b.entries.retain(|(_, k, _)| k != key);
            prop_assert_eq!(b.engine.pending_items(&b.handler), b.expected_pending());
            prop_assert_eq!(b.engine.check_consistency(), Ok(()));
            running = next;
        }
        let _ = b.engine.session_finished(running, end).unwrap();
        let actions = b.drain();
        let starts = session_starts(&actions);
        prop_assert!(starts.is_empty(), "(h) a session too many: {:?}", starts);
        prop_assert!(b.engine.is_idle(), "(a) the engine is not idle at the end");
        for r in &b.requests {
            let results = b.delivered.iter().filter(|d| *d == r).count();
            prop_assert_eq!(results, 1, "(a) {} got {} results", r, results);
        }
        prop_assert_eq!(b.engine.check_consistency(), Ok(()));
    }

    /// Merging is idempotent: the same request twice while the handler is busy adds no
    /// pending entry the second time, and each item ends where it did the first time; under
    /// any merge key, with the pending set holding entries of several keys.
    #[test]
    fn merging_is_idempotent(
        count in 3usize..=6,
        first in prop::collection::vec(any::<u8>(), 1..4),
        first_key in 0u8..3,
        ops in prop::collection::vec(busy_with(0u8..3), 0..10),
        again in prop::collection::vec(any::<u8>(), 1..6),
        join in any::<bool>(),
        key in 0u8..3,
    ) {
        let mut b = BusyHandler::new(count, &first, busy_key(first_key))?;
        for op in &ops {
            b.apply(op)?;
        }
        let key = busy_key(key);
        let items: Vec<ItemId> = again.iter().map(|&i| b.item(i)).collect();
        let one = b.request(&items, join, &key)?;
        let pending = b.engine.pending_items(&b.handler);
        let two = b.request(&items, join, &key)?;
        prop_assert_eq!(&b.engine.pending_items(&b.handler), &pending, "the pending set grew");
        prop_assert_eq!(two.queued_new(), 0);
        prop_assert_eq!(two.duplicates, one.duplicates);
        for (d1, d2) in one.dispositions().iter().zip(two.dispositions()) {
            let expected = match d1 {
                Disposition::Joined(s) => Disposition::Joined(*s),
                _ => Disposition::Merged,
            };
            prop_assert_eq!(*d2, expected);
        }
        prop_assert_eq!(
            b.engine.request_items(one.request),
            b.engine.request_items(two.request)
        );
        prop_assert_eq!(b.engine.check_consistency(), Ok(()));
    }
}

// ----- what the properties found in the engine -----------------------------------------------

/// `report_event`/`report_conflict` name an item the handler no longer owns (an update
/// dropped it) and that the session does not hold. The engine's docs: "an item the handler
/// does not own is refused" (UnknownItem, as `start_item_sync` says for the same item); the
/// engine once accepted it because it looked the ID up among every item the handler ever had.
#[test]
fn event_for_an_item_removed_by_an_update_is_refused() {
    let (h, a, b) = (hid("h"), iid("a"), iid("b"));
    let mut e = Engine::default();
    e.register_handler(HandlerSpec::new(h.clone()).items([a.clone(), b.clone()]))
        .unwrap();
    let _ = e
        .start_item_sync(&h, std::slice::from_ref(&a), NONE)
        .unwrap();
    let Some(Action::StartSession { session, .. }) = e.next_action() else {
        panic!("a session should start")
    };
    let _ = e
        .update_handler(
            &h,
            HandlerCapabilities::empty(),
            HandlerPolicies::empty(),
            vec![ItemSpec::new(a)],
        )
        .unwrap();
    assert!(matches!(
        e.start_item_sync(&h, std::slice::from_ref(&b), NONE),
        Err(Error::UnknownItem { .. })
    ));
    assert!(matches!(
        e.report_event(session, Some(&b), EventLevel::Error),
        Err(Error::UnknownItem { .. })
    ));
    assert!(matches!(
        e.report_conflict(session, Some(&b)),
        Err(Error::UnknownItem { .. })
    ));
}

/// `update_handler` drops `SUPPORTS_CONCURRENT_SESSIONS` while two sessions run. SPEC 7 and
/// DECISIONS 13: running sessions are never touched by state changes, so both go on, and the
/// engine must still pass its own self-check. (Found by the properties: `check_consistency`
/// used to report "2 sessions of a non-concurrent handler" here.)
#[test]
fn dropping_concurrency_while_two_sessions_run_stays_consistent() {
    let (h, a, b) = (hid("c"), iid("a"), iid("b"));
    let mut e = Engine::default();
    e.register_handler(
        HandlerSpec::new(h.clone())
            .items([a.clone(), b.clone()])
            .with_capabilities(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS),
    )
    .unwrap();
    let _ = e
        .start_item_sync(&h, std::slice::from_ref(&a), NONE)
        .unwrap();
    let _ = e
        .start_item_sync(&h, std::slice::from_ref(&b), NONE)
        .unwrap();
    assert_eq!(e.sessions().len(), 2);
    let _ = e
        .update_handler(
            &h,
            HandlerCapabilities::empty(),
            HandlerPolicies::empty(),
            vec![ItemSpec::new(a), ItemSpec::new(b)],
        )
        .unwrap();
    assert_eq!(e.sessions().len(), 2, "running sessions are never touched");
    assert_eq!(e.check_consistency(), Ok(()));
}

// ----- what the time properties found in the engine (SPEC 11) ---------------------------------
//
// Each test below states what SPEC 11 (or the engine's own docs) asks, on the smallest case
// the properties shrank to when the engine did otherwise.

/// Handler `h` with items `a` and `b` and this policy.
fn timed_engine(policy: syncmgr::SyncPolicy) -> (Engine, HandlerId, ItemId, ItemId) {
    let (h, a, b) = (hid("h"), iid("a"), iid("b"));
    let mut e = Engine::default();
    e.register_handler(
        HandlerSpec::new(h.clone())
            .items([a.clone(), b.clone()])
            .with_sync_policy(policy),
    )
    .unwrap();
    (e, h, a, b)
}

/// Retries: 2 attempts in all, the second 1 s after the first fails.
fn one_retry() -> syncmgr::SyncPolicy {
    syncmgr::SyncPolicy::default().retry(syncmgr::Retry::exponential(
        2,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(10),
    ))
}

fn started(e: &mut Engine) -> Vec<(SessionId, Vec<ItemId>)> {
    e.drain_actions()
        .filter_map(|a| match a {
            Action::StartSession { session, items, .. } => Some((session, items)),
            _ => None,
        })
        .collect()
}

fn delivered(e: &mut Engine) -> Vec<syncmgr::RequestResult> {
    e.drain_actions()
        .filter_map(|a| match a {
            Action::Deliver(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// A legacy (keyed) session on an item in backoff once ended the item's run of failures, so
/// the Sync Center request waiting for the backoff got `max_attempts` more attempts. SPEC 11.6: "an
/// item is attempted at most `max_attempts` times for the requests that wait for it".
#[test]
fn a_legacy_session_does_not_restart_a_retry_run() {
    let (mut e, h, a, _) = timed_engine(one_retry());
    let r1 = e
        .start_item_sync(&h, std::slice::from_ref(&a), NONE)
        .unwrap()
        .request;
    let (s1, _) = started(&mut e).remove(0);
    let _ = e.session_finished(s1, SessionEnd::Returned).unwrap(); // attempt 1 of 2 fails
    let _ = e.drain_actions().count();
    let legacy = MergeKey::cookie(b"c");
    let _ = e
        .start_sync(&h, Some(std::slice::from_ref(&a)), NONE, legacy)
        .unwrap();
    let (s2, _) = started(&mut e).remove(0); // the legacy request runs `a` at once
    let _ = e.session_finished(s2, SessionEnd::Returned).unwrap();
    let _ = e.drain_actions().count();
    let _ = e.poll(syncmgr::Time::from_secs(1));
    let (s3, _) = started(&mut e).remove(0); // attempt 2 of 2 for r1
    let ended = e.session_finished(s3, SessionEnd::Returned).unwrap();
    assert!(
        ended.retried.is_empty(),
        "a third attempt for r1: {ended:?}"
    );
    let result = delivered(&mut e).into_iter().find(|r| r.request == r1);
    assert_eq!(result.map(|r| r.items[0].attempts), Some(2));
}

/// Two items that failed together back off until the same instant; the poll that ends both
/// backoffs once started a session after ending the first, so they ran in two sessions. SPEC 5: a handler that can start takes "all pending items".
#[test]
fn backoffs_that_end_together_start_one_session() {
    let (mut e, h, a, b) = timed_engine(one_retry());
    let _ = e
        .start_item_sync(&h, &[a.clone(), b.clone()], NONE)
        .unwrap();
    let (s1, _) = started(&mut e).remove(0);
    let ended = e.session_finished(s1, SessionEnd::Returned).unwrap();
    assert_eq!(ended.retried, [a.clone(), b.clone()]);
    let _ = e.drain_actions().count();
    let _ = e.poll(syncmgr::Time::from_secs(1));
    let starts = started(&mut e);
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].1, [a, b]);
}

/// A legacy request that joined a Sync Center session's item was once retried with it,
/// waiting on the default key's pending entry, which the engine's own self-check refused. The engine's docs: "Legacy invoke requests (a cookie's merge key) are never
/// debounced or retried".
#[test]
fn a_legacy_joiner_of_a_retried_item_takes_its_failure() {
    let (mut e, h, a, _) = timed_engine(one_retry());
    let _ = e
        .start_item_sync(&h, std::slice::from_ref(&a), NONE)
        .unwrap();
    let (s1, _) = started(&mut e).remove(0);
    let legacy = e
        .start_sync(
            &h,
            Some(std::slice::from_ref(&a)),
            JOIN,
            MergeKey::cookie(b"c"),
        )
        .unwrap();
    assert_eq!(legacy.joined(), 1);
    let ended = e.session_finished(s1, SessionEnd::Returned).unwrap();
    assert_eq!(ended.retried, [a]);
    let results = delivered(&mut e);
    assert!(
        results.iter().any(|r| r.request == legacy.request),
        "the legacy request should take the Failed: {results:?}"
    );
    assert_eq!(e.check_consistency(), Ok(()));
}

/// What that led to: cancelling the legacy request withdrew it under its own key, found
/// nothing, and left a link to the completed request in the default entry's wait list. A
/// debug build panicked ("a wait list links to a request that is gone"); a release build
/// walked the list from its tail, stopped at the dead link, and the Sync Center request
/// linked before it never got its result. SPEC 8: "every accepted request gets exactly one
/// result".
#[test]
fn cancelling_a_retried_legacy_joiner_loses_no_result() {
    let (mut e, h, a, _) = timed_engine(one_retry());
    let r1 = e
        .start_item_sync(&h, std::slice::from_ref(&a), NONE)
        .unwrap()
        .request;
    let (s1, _) = started(&mut e).remove(0);
    let legacy = e
        .start_sync(
            &h,
            Some(std::slice::from_ref(&a)),
            JOIN,
            MergeKey::cookie(b"c"),
        )
        .unwrap()
        .request;
    let _ = e.session_finished(s1, SessionEnd::Returned).unwrap();
    let _ = e.drain_actions().count();
    let _ = e.cancel_request(legacy).unwrap();
    let _ = e.drain_actions().count();
    let _ = e.poll(syncmgr::Time::from_secs(1));
    let (s2, _) = started(&mut e).remove(0);
    let _ = e
        .report_progress(s2, &a, ProgressStatus::Succeeded)
        .unwrap();
    let _ = e.session_finished(s2, SessionEnd::Returned).unwrap();
    let results = delivered(&mut e);
    assert!(
        results.iter().any(|r| r.request == r1),
        "r1 lost: {results:?}"
    );
}

/// Taking a schedule away and setting one again once forgot the open request of its last
/// tick, so the new schedule issued a second while the first was open. SPEC 11.3:
/// "A schedule has at most one open request"; the engine's docs: "The open request of the
/// old schedule, if any, still counts as open".
#[test]
fn a_schedule_set_again_still_has_one_open_request() {
    let every = std::time::Duration::from_secs(5);
    let (mut e, h, _, _) = timed_engine(syncmgr::SyncPolicy::default().every(every));
    let _ = e.poll(syncmgr::Time::from_secs(5));
    let first = e
        .drain_actions()
        .find_map(|a| match a {
            Action::Issued { request, .. } => Some(request),
            _ => None,
        })
        .unwrap();
    let _ = e
        .set_sync_policy(&h, syncmgr::SyncPolicy::default())
        .unwrap();
    let _ = e
        .set_sync_policy(&h, syncmgr::SyncPolicy::default().every(every))
        .unwrap();
    let _ = e.poll(syncmgr::Time::from_secs(10));
    let ticks: Vec<Action> = e
        .drain_actions()
        .filter(|a| matches!(a, Action::Issued { .. } | Action::TickSkipped { .. }))
        .collect();
    assert_eq!(
        ticks,
        [Action::TickSkipped {
            handler: h,
            open: first
        }]
    );
}

/// After `shutdown` no schedule ticks (it stops every ticker), and the engine's self-check
/// once still asked each live schedule for one.
#[test]
fn shutdown_with_a_schedule_stays_consistent() {
    let every = std::time::Duration::from_secs(60);
    let (mut e, _, _, _) = timed_engine(syncmgr::SyncPolicy::default().every(every));
    let _ = e.shutdown();
    assert_eq!(e.next_deadline(), None);
    assert_eq!(e.check_consistency(), Ok(()));
}
