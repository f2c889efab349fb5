//! The pure `Engine` driven by an arbitrary operation sequence, in lock step with the naive
//! reference model of `tests/model` (SPEC section 8), as `tests/properties.rs` drives them but
//! with libFuzzer choosing the sequence. After every call:
//!
//! - the engine and the model give the same reply, or the same error with the same HRESULT;
//! - they decide the same actions: sessions started (in order, with items and merge key),
//!   results delivered and cancels sent;
//! - the handler, session and open-request views agree;
//! - `Engine::check_consistency()` is `Ok`;
//! - a refused call changed nothing (the terminal rule is the one documented exception);
//! - every result is for an accepted request, is its first, lists the request's items and
//!   carries their aggregate status.
//!
//! At the end (optionally after a shutdown) every schedule is taken away, every running
//! session is finished and the engine is polled at each next deadline (debounce, backoff)
//! until it is idle; then nothing may run, and every request (the engine's own included) must
//! have had exactly one result.
//!
//! The universe is small on purpose: two or three handlers (`h0` plain, `h1` concurrent,
//! maybe `h2` with policies and odd states), three or four items each, a global limit of 1 to
//! 3 sessions, each handler with a sync policy (debounce, retry, schedule, triggers; no jitter
//! or flex, which the model does not predict) and a seed. The operations are those of the
//! property tests (`tests/model/ops.rs`, with `Arbitrary` derived here), time included
//! (advance and poll, policy changes, triggers, expedited and no-retry starts, permanent
//! failures): fields are selectors resolved against what exists when the operation runs (a
//! running session, an accepted request, one of the handler's items); high values pick
//! something unknown on purpose.

#![no_main]

#[allow(dead_code, clippy::all)]
#[path = "../../tests/model/compare.rs"]
mod compare;
#[allow(dead_code, clippy::all)]
#[path = "../../tests/model/driver.rs"]
mod driver;
#[allow(dead_code, clippy::all)]
#[path = "../../tests/model/mod.rs"]
mod model;
#[allow(dead_code, clippy::all)]
#[path = "../../tests/model/ops.rs"]
mod ops;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use syncmgr::engine::{Action, Engine, HandlerSpec, SessionEnd};
use syncmgr::{
    Denied, EngineConfig, Error, HandlerCapabilities, HandlerPolicies, ItemId, ItemPolicies,
    MAX_DELAY, Outcome, SyncPolicy,
};

use compare::compare_with_model;
use driver::{Call, Reply, Snapshot, aggregate, on_engine};
use model::Model;
use ops::{Op, PolicySel, Seen, Universe, hid, items};

/// The longest sequence one input runs.
const MAX_OPS: usize = 96;

// ----- the input -----------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
    /// Shut down before the final drain.
    shutdown_at_end: bool,
}

#[derive(Arbitrary, Debug)]
struct Setup {
    max_sessions: u8,
    default_concurrent: u8,
    h0_items: bool,
    h0_disabled: u8,
    h1_items: bool,
    h1_limit: u8,
    third: Option<Third>,
    /// Each handler's sync policy (always in range here; `Op::SetPolicy` breaks some).
    policies: [PolicySel; 3],
    seed: u64,
}

/// `h2`: policies on the handler and its items, maybe concurrent, maybe disconnected or
/// inactive.
#[derive(Arbitrary, Debug)]
struct Third {
    items: bool,
    concurrent: bool,
    policies: u8,
    item_policies: [u8; 4],
    connected: bool,
    active: bool,
}

fn handler_policy(sel: u8) -> HandlerPolicies {
    match sel % 9 {
        0..=2 => HandlerPolicies::empty(),
        3..=5 => HandlerPolicies::PREVENT_STOP_SYNC,
        6 => HandlerPolicies::PREVENT_DISABLE | HandlerPolicies::PREVENT_DEACTIVATE,
        7 => HandlerPolicies::PREVENT_ENABLE | HandlerPolicies::PREVENT_ACTIVATE,
        _ => HandlerPolicies::PREVENT_START_SYNC,
    }
}

fn item_policy(sel: u8) -> ItemPolicies {
    match sel % 12 {
        0..=5 => ItemPolicies::empty(),
        6 | 7 => ItemPolicies::PREVENT_STOP_SYNC,
        8 => ItemPolicies::PREVENT_START_SYNC,
        9 => ItemPolicies::PREVENT_DISABLE,
        10 => ItemPolicies::PREVENT_ENABLE,
        _ => ItemPolicies::PREVENT_START_SYNC | ItemPolicies::PREVENT_STOP_SYNC,
    }
}

/// 3 items, or 4.
fn count(four: bool) -> usize {
    if four { 4 } else { 3 }
}

fn universe(s: &Setup) -> Universe {
    let limit = |sel: u8| match sel % 4 {
        0 => None,
        n => Some(usize::from(n)),
    };
    // Mostly all enabled; a disabled item now and then.
    let h0_disabled = if s.h0_disabled < 192 {
        0
    } else {
        s.h0_disabled
    };
    let mut specs = vec![
        HandlerSpec {
            items: items(count(s.h0_items), &[], h0_disabled),
            ..HandlerSpec::new(hid("h0"))
        },
        HandlerSpec {
            capabilities: HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS,
            max_concurrent_sessions: limit(s.h1_limit),
            items: items(count(s.h1_items), &[], 0),
            ..HandlerSpec::new(hid("h1"))
        },
    ];
    if let Some(t) = &s.third {
        specs.push(HandlerSpec {
            capabilities: if t.concurrent {
                HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
            } else {
                HandlerCapabilities::empty()
            },
            policies: handler_policy(t.policies),
            items: items(count(t.items), &t.item_policies.map(item_policy), 0),
            connected: t.connected,
            active: t.active,
            ..HandlerSpec::new(hid("h2"))
        });
    }
    for (spec, sel) in specs.iter_mut().zip(&s.policies) {
        let valid = PolicySel {
            broken: sel.broken % 224,
            ..*sel
        };
        spec.policy = ops::policy(&valid, false);
    }
    Universe {
        config: EngineConfig {
            max_sessions: usize::from(s.max_sessions % 3) + 1,
            default_concurrent_sessions: usize::from(s.default_concurrent % 3) + 1,
            seed: s.seed,
        },
        specs,
        jitter: false,
    }
}

// ----- the harness ---------------------------------------------------------------------------

/// A request as the harness saw it accepted.
struct Issued {
    items: Vec<ItemId>,
    /// Its handler was disconnected when it was accepted (its result says at least
    /// `Disconnected`).
    disconnected: bool,
    delivered: u32,
}

struct Harness {
    universe: Universe,
    engine: Engine,
    model: Model,
    /// Request `n` is at `n - 1`.
    requests: Vec<Issued>,
    /// What operations select sessions and requests from.
    seen: Seen,
    /// The calls so far, for the failure message.
    log: Vec<String>,
}

impl Harness {
    fn new(universe: Universe) -> Harness {
        let mut h = Harness {
            engine: Engine::new(universe.config).unwrap(),
            model: Model::new(
                universe.config.max_sessions,
                universe.config.default_concurrent_sessions,
            ),
            universe,
            requests: Vec::new(),
            seen: Seen::default(),
            log: Vec::new(),
        };
        for spec in h.universe.specs.clone() {
            h.step(Call::Register(spec));
        }
        h
    }

    fn run(&mut self, op: &Op) {
        for call in ops::resolve(op, &self.universe, &self.engine, &self.seen) {
            self.step(call);
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "{what}\n  after {} calls:\n    {}",
            self.log.len(),
            self.log.join("\n    ")
        );
    }

    /// One call on the engine and the model, then every check.
    fn step(&mut self, call: Call) {
        self.log.push(format!("{call:?}"));
        let pre = Snapshot::take(&self.engine);
        let got = on_engine(&mut self.engine, &call);
        let actions: Vec<Action> = self.engine.drain_actions().collect();
        let post = Snapshot::take(&self.engine);

        // The same reply, decisions and visible state.
        if let Err(what) = compare_with_model(&mut self.model, &call, &got, &actions, &post) {
            self.fail(what);
        }
        // A refused call changes nothing; the terminal rule is the documented exception.
        if let Err(e) = &got
            && !matches!(e, Error::AccessDenied(Denied::TerminalState { .. }))
            && !(actions.is_empty() && pre == post)
        {
            self.fail(format!(
                "a refused call ({e:?}) changed the engine: {actions:?}"
            ));
        }
        if let Err(what) = self.engine.check_consistency() {
            self.fail(format!("check_consistency: {what}"));
        }
        self.record(&call, &got, &actions, &pre);
    }

    /// The harness's own account: request numbers, sessions started, one result each.
    fn record(
        &mut self,
        call: &Call,
        got: &Result<Reply, Error>,
        actions: &[Action],
        pre: &Snapshot,
    ) {
        let accepted = match self.seen.note(&self.engine, call, got, actions) {
            Ok(accepted) => accepted,
            Err(what) => self.fail(what),
        };
        for new in accepted {
            let disconnected = pre.handler(&new.handler).is_some_and(|h| !h.connected);
            self.requests.push(Issued {
                items: new.items,
                disconnected,
                delivered: 0,
            });
        }
        for a in actions {
            if let Action::Deliver(res) = a {
                let n = res.request.get();
                if n == 0 || n as usize > self.requests.len() {
                    self.fail(format!("a result for a request never accepted: {res:?}"));
                }
                let issued = &mut self.requests[n as usize - 1];
                issued.delivered += 1;
                let (delivered, disconnected) = (issued.delivered, issued.disconnected);
                let ids: Vec<ItemId> = res.items.iter().map(|o| o.item.clone()).collect();
                if delivered != 1 {
                    self.fail(format!("request {n} got a second result: {res:?}"));
                }
                if ids != self.requests[n as usize - 1].items {
                    self.fail(format!("result of {n} lists other items: {res:?}"));
                }
                let mut status = aggregate(res.items.iter().map(|o| o.outcome));
                if disconnected {
                    status = aggregate([status, Outcome::Disconnected]);
                }
                if res.status != status {
                    self.fail(format!("result of {n} should be {status:?}: {res:?}"));
                }
            }
        }
    }

    /// Ends the case: maybe shut down; take every schedule away; finish every running
    /// session and poll at each next deadline until the engine is idle (after 20 polls in a
    /// row, jump three `MAX_DELAY`s). Then every request must have had exactly one result.
    fn drain(&mut self, shutdown: bool) {
        if shutdown {
            self.step(Call::Shutdown);
        }
        for h in self.engine.handlers() {
            if let Some(p) = self.engine.sync_policy(&h)
                && p.schedule.is_some()
            {
                let p = SyncPolicy {
                    schedule: None,
                    ..p.clone()
                };
                self.step(Call::SetPolicy(h, p));
            }
        }
        let mut polls = 0;
        for _ in 0..2000 {
            if let Some(&s) = self.engine.sessions().first() {
                self.step(Call::Finish(s, SessionEnd::Returned));
                continue;
            }
            match self.engine.next_deadline() {
                Some(_) if polls >= 20 && !self.engine.is_idle() => {
                    polls = 0;
                    self.step(Call::Poll(self.engine.now() + MAX_DELAY * 3));
                }
                Some(due) if !self.engine.is_idle() => {
                    polls += 1;
                    self.step(Call::Poll(due));
                }
                _ => break,
            }
        }
        if !self.engine.sessions().is_empty() {
            self.fail(format!(
                "draining did not end: {:?}",
                self.engine.sessions()
            ));
        }
        if !self.engine.is_idle() {
            self.fail(format!(
                "nothing runs, yet the engine is not idle: open {:?}",
                self.engine.open_requests()
            ));
        }
        for (n, r) in self.requests.iter().enumerate() {
            if r.delivered != 1 {
                self.fail(format!("request {} got {} results", n + 1, r.delivered));
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mut harness = Harness::new(universe(&input.setup));
    for op in input.ops.iter().take(MAX_OPS) {
        harness.run(op);
    }
    harness.drain(input.shutdown_at_end);
});
