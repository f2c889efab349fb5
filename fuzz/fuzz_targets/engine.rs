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
//! At the end (optionally after a shutdown) every running session is finished; then nothing
//! may run, the engine must be idle, and every accepted request must have had exactly one
//! result.
//!
//! The universe is small on purpose: two or three handlers (`h0` plain, `h1` concurrent,
//! maybe `h2` with policies and odd states), three or four items each, a global limit of 1 to
//! 3 sessions. Operation fields are selectors resolved against what exists when the operation
//! runs (a running session, an accepted request, one of the handler's items); high values pick
//! something unknown on purpose.

#![no_main]

#[allow(dead_code, clippy::all)]
#[path = "../../tests/model/mod.rs"]
mod model;
#[allow(dead_code, clippy::all)]
#[path = "../../tests/model/driver.rs"]
mod driver;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use syncmgr::engine::{Action, Engine, HandlerSpec, ItemSpec, MergeKey, SessionEnd};
use syncmgr::{
    Denied, EngineConfig, Error, EventLevel, HandlerCapabilities, HandlerId, HandlerPolicies,
    ItemId, ItemPolicies, Outcome, ProgressStatus, RequestId, SessionId, SyncControlFlags,
};

use driver::{Call, Reply, Snapshot, aggregate, from_action, on_engine, on_model};
use model::{MAction, MError, Model};

/// The longest sequence one input runs.
const MAX_OPS: usize = 96;

/// Every item name a handler may own: 3 or 4 registered, the rest can come with an update.
const NAMES: [&str; 5] = ["i0", "i1", "i2", "i3", "i4"];

fn hid(s: &str) -> HandlerId {
    HandlerId::new(s).unwrap()
}

fn iid(s: &str) -> ItemId {
    ItemId::new(s).unwrap()
}

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

fn items(four: bool, policies: &[u8], disabled: u8) -> Vec<ItemSpec> {
    let count = if four { 4 } else { 3 };
    (0..count)
        .map(|n| {
            ItemSpec::new(iid(NAMES[n]))
                .with_policies(
                    policies
                        .get(n)
                        .map_or(ItemPolicies::empty(), |&p| item_policy(p)),
                )
                .with_enabled(disabled & (1 << n) == 0)
        })
        .collect()
}

#[derive(Clone, Debug)]
struct Universe {
    config: EngineConfig,
    specs: Vec<HandlerSpec>,
}

impl Universe {
    fn new(s: &Setup) -> Universe {
        let limit = |sel: u8| match sel % 4 {
            0 => None,
            n => Some(usize::from(n)),
        };
        let mut specs = vec![
            HandlerSpec {
                // Mostly all enabled; a disabled item now and then.
                items: items(
                    s.h0_items,
                    &[],
                    if s.h0_disabled < 192 {
                        0
                    } else {
                        s.h0_disabled
                    },
                ),
                ..HandlerSpec::new(hid("h0"))
            },
            HandlerSpec {
                capabilities: HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS,
                max_concurrent_sessions: limit(s.h1_limit),
                items: items(s.h1_items, &[], 0),
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
                items: items(t.items, &t.item_policies, 0),
                connected: t.connected,
                active: t.active,
                ..HandlerSpec::new(hid("h2"))
            });
        }
        Universe {
            config: EngineConfig {
                max_sessions: usize::from(s.max_sessions % 3) + 1,
                default_concurrent_sessions: usize::from(s.default_concurrent % 3) + 1,
            },
            specs,
        }
    }

    fn spec(&self, id: &HandlerId) -> Option<&HandlerSpec> {
        self.specs.iter().find(|s| s.id == *id)
    }
}

/// One operation. The `u8`s select among what exists when it runs.
#[derive(Arbitrary, Debug)]
enum Op {
    StartItems {
        h: u8,
        items: Vec<u8>,
        flags: u8,
    },
    StartHandler {
        h: u8,
        flags: u8,
    },
    StartAll {
        flags: u8,
    },
    /// `start_sync` under a merge key; `key` below `AGAIN` repeats the last keyed handler and
    /// key, as a legacy application invokes with its cookie again and again.
    StartKeyed {
        h: u8,
        items: Option<Vec<u8>>,
        flags: u8,
        key: u8,
    },
    SessionStarted {
        s: u8,
    },
    Progress {
        s: u8,
        item: u8,
        status: u8,
        text: u8,
    },
    HandlerText {
        s: u8,
        text: u8,
    },
    CanContinue {
        s: u8,
        item: Option<u8>,
    },
    Event {
        s: u8,
        item: Option<u8>,
        level: u8,
    },
    Conflict {
        s: u8,
        item: Option<u8>,
    },
    ManualSync {
        s: u8,
    },
    Query {
        s: u8,
    },
    AddItem {
        s: u8,
        pick: u8,
    },
    Propose {
        s: u8,
        name: u8,
    },
    Commit {
        s: u8,
        name: u8,
    },
    Finish {
        s: u8,
        succeed_all: bool,
        failed: bool,
    },
    StopHandler {
        h: u8,
    },
    StopItems {
        h: u8,
        items: Vec<u8>,
    },
    StopAll,
    CancelRequest {
        r: u8,
    },
    SetActive {
        h: u8,
        on: bool,
    },
    SetEnabled {
        h: u8,
        on: bool,
    },
    SetItemEnabled {
        h: u8,
        item: u8,
        on: bool,
    },
    SetConnected {
        h: u8,
        on: bool,
    },
    Update {
        h: u8,
        keep: u8,
        disabled: u8,
        reverse: bool,
        flip: bool,
    },
    UpsertItem {
        h: u8,
        name: u8,
        enabled: bool,
        policy: u8,
    },
    RemoveItem {
        h: u8,
        item: u8,
    },
    Remove {
        h: u8,
    },
    Register {
        h: u8,
    },
    Shutdown,
}

const AGAIN: u8 = 96;

/// `NONE` or `IGNORE_IF_ALREADY_SYNCING`, and rarely a value with an undefined bit.
fn start_flags(sel: u8) -> SyncControlFlags {
    match sel {
        0..=247 => SyncControlFlags::from_bits_retain(u32::from(sel % 2)),
        _ => SyncControlFlags::from_bits_retain(0x2 | u32::from(sel % 2)),
    }
}

fn merge_key(sel: u8) -> MergeKey {
    match sel % 8 {
        0 => MergeKey::DEFAULT,
        1 => MergeKey::cookie(b""),
        2..=5 => MergeKey::cookie(b"a"),
        _ => MergeKey::cookie(b"b"),
    }
}


fn status(sel: u8) -> ProgressStatus {
    match sel % 7 {
        0 => ProgressStatus::Updating,
        1 => ProgressStatus::UpdatingIndeterminate,
        2 | 3 => ProgressStatus::Succeeded,
        4 => ProgressStatus::Failed,
        5 => ProgressStatus::Canceled,
        _ => ProgressStatus::Disconnected,
    }
}

fn level(sel: u8) -> EventLevel {
    match sel % 4 {
        0 => EventLevel::Information,
        1 => EventLevel::Warning,
        _ => EventLevel::Error,
    }
}

/// Progress texts: mostly short; at the limit (259 units) and just over it, in one- and
/// two-unit characters.
fn text(sel: u8) -> String {
    match sel {
        0..=199 => String::new(),
        200..=239 => "syncing".to_string(),
        240..=243 => "x".repeat(259),
        244..=247 => "é".repeat(259),
        248..=251 => "x".repeat(260),
        _ => "😀".repeat(130),
    }
}

fn proposal(sel: u8) -> ItemId {
    iid(match sel {
        0..=159 => "n0",
        160..=207 => "n1",
        208..=231 => "i0",
        _ => "i4",
    })
}


/// Start actions in order; results and cancels as sets (their relative order within one call
/// is not part of the contract the model states).
type Split = (
    Vec<MAction>,
    Vec<(u64, MAction)>,
    Vec<(u64, u32, Option<String>, MAction)>,
);

fn split(list: &[MAction]) -> Split {
    let mut starts = Vec::new();
    let mut delivers = Vec::new();
    let mut cancels = Vec::new();
    for a in list {
        match a {
            MAction::Start { .. } => starts.push(a.clone()),
            MAction::Deliver(r) => delivers.push((r.request, a.clone())),
            MAction::Cancel {
                session,
                request,
                item,
            } => cancels.push((
                *session,
                request.to_raw(),
                item.as_ref().map(|i| i.to_string()),
                a.clone(),
            )),
        }
    }
    delivers.sort_by_key(|(r, _)| *r);
    cancels.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    (starts, delivers, cancels)
}

// ----- the harness ---------------------------------------------------------------------------

/// A request as the harness saw it accepted.
struct Issued {
    id: RequestId,
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
    started: Vec<SessionId>,
    requests: Vec<Issued>,
    last_keyed: Option<(HandlerId, MergeKey)>,
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
            started: Vec::new(),
            requests: Vec::new(),
            last_keyed: None,
            log: Vec::new(),
        };
        for spec in h.universe.specs.clone() {
            h.step(Call::Register(spec));
        }
        h
    }

    fn handler(&self, sel: u8) -> HandlerId {
        if sel >= 240 {
            return hid("ghost");
        }
        let specs = &self.universe.specs;
        specs[usize::from(sel) % specs.len()].id.clone()
    }

    fn items_of(&self, h: &HandlerId) -> Vec<ItemId> {
        match self.engine.handler_view(h) {
            Some(view) => view.items.into_iter().map(|(i, _)| i).collect(),
            None => NAMES.iter().map(|n| iid(n)).collect(),
        }
    }

    fn pick(sel: u8, candidates: &[ItemId]) -> ItemId {
        if sel >= 236 || candidates.is_empty() {
            iid(if sel.is_multiple_of(2) { "i4" } else { "zz" })
        } else {
            candidates[usize::from(sel) % candidates.len()].clone()
        }
    }

    /// A running session mostly; sometimes one that already ended.
    fn session(&self, sel: u8) -> Option<SessionId> {
        let running = self.engine.sessions();
        if (sel >= 224 || running.is_empty()) && !self.started.is_empty() {
            return Some(self.started[usize::from(sel) % self.started.len()]);
        }
        (!running.is_empty()).then(|| running[usize::from(sel) % running.len()])
    }

    fn session_item(&self, s: SessionId, sel: u8) -> ItemId {
        let items: Vec<ItemId> = self
            .engine
            .session_view(s)
            .map(|v| v.items.into_iter().map(|si| si.item).collect())
            .unwrap_or_default();
        if sel >= 200 {
            let names: Vec<ItemId> = NAMES.iter().map(|n| iid(n)).collect();
            return Self::pick(sel, &names);
        }
        Self::pick(sel, &items)
    }

    fn resolve(&self, op: &Op) -> Vec<Call> {
        let session = |sel| self.session(sel);
        let one = |c: Option<Call>| c.into_iter().collect::<Vec<_>>();
        match op {
            Op::StartItems { h, items, flags } => {
                let h = self.handler(*h);
                let known = self.items_of(&h);
                let items = items
                    .iter()
                    .take(6)
                    .map(|&i| Self::pick(i, &known))
                    .collect();
                vec![Call::StartItems(h, items, start_flags(*flags))]
            }
            Op::StartHandler { h, flags } => {
                vec![Call::StartHandler(self.handler(*h), start_flags(*flags))]
            }
            Op::StartAll { flags } => vec![Call::StartAll(start_flags(*flags))],
            Op::StartKeyed {
                h,
                items,
                flags,
                key,
            } => {
                let (h, key) = match &self.last_keyed {
                    Some(last) if *key < AGAIN => last.clone(),
                    _ => (self.handler(*h), merge_key(*key)),
                };
                let known = self.items_of(&h);
                let items = items.as_ref().map(|items| {
                    items
                        .iter()
                        .take(6)
                        .map(|&i| Self::pick(i, &known))
                        .collect()
                });
                vec![Call::StartSync(h, items, start_flags(*flags), key)]
            }
            Op::SessionStarted { s } => one(session(*s).map(Call::SessionStarted)),
            Op::Progress {
                s,
                item,
                status: st,
                text: t,
            } => one(session(*s)
                .map(|s| Call::Progress(s, self.session_item(s, *item), status(*st), text(*t)))),
            Op::HandlerText { s, text: t } => {
                one(session(*s).map(|s| Call::HandlerText(s, text(*t))))
            }
            Op::CanContinue { s, item } => {
                one(session(*s)
                    .map(|s| Call::CanContinue(s, item.map(|i| self.session_item(s, i)))))
            }
            Op::Event { s, item, level: l } => one(session(*s)
                .map(|s| Call::Event(s, item.map(|i| self.session_item(s, i)), level(*l)))),
            Op::Conflict { s, item } => {
                one(session(*s).map(|s| Call::Conflict(s, item.map(|i| self.session_item(s, i)))))
            }
            Op::ManualSync { s } => one(session(*s).map(Call::ManualSync)),
            Op::Query { s } => one(session(*s).map(Call::Query)),
            Op::AddItem { s, pick } => one(session(*s).map(|s| {
                // Mostly an item the session could take; else one of its own, or a stranger.
                let free = self
                    .engine
                    .query_for_additional_items(s)
                    .map(|extra| extra.items)
                    .unwrap_or_default();
                let item = if *pick < 160 && !free.is_empty() {
                    free[usize::from(*pick) % free.len()].clone()
                } else if *pick < 200 {
                    self.session_item(s, *pick)
                } else {
                    let handler = self.engine.session_view(s).map(|v| v.handler);
                    let items = handler.map(|h| self.items_of(&h)).unwrap_or_default();
                    Self::pick(*pick, &items)
                };
                Call::AddItem(s, item)
            })),
            Op::Propose { s, name } => one(session(*s).map(|s| {
                let spec = ItemSpec::new(proposal(*name)).with_policies(if *name % 2 == 1 {
                    ItemPolicies::PREVENT_STOP_SYNC
                } else {
                    ItemPolicies::empty()
                });
                Call::Propose(s, spec)
            })),
            Op::Commit { s, name } => one(session(*s).map(|s| Call::Commit(s, proposal(*name)))),
            Op::Finish {
                s,
                succeed_all,
                failed,
            } => match session(*s) {
                None => Vec::new(),
                Some(s) => {
                    let mut calls = Vec::new();
                    if *succeed_all && let Some(view) = self.engine.session_view(s) {
                        for si in view.items.iter().filter(|si| si.terminal.is_none()) {
                            calls.push(Call::Progress(
                                s,
                                si.item.clone(),
                                ProgressStatus::Succeeded,
                                String::new(),
                            ));
                        }
                    }
                    let end = if *failed {
                        SessionEnd::Failed
                    } else {
                        SessionEnd::Returned
                    };
                    calls.push(Call::Finish(s, end));
                    calls
                }
            },
            Op::StopHandler { h } => vec![Call::StopHandler(self.handler(*h))],
            Op::StopItems { h, items } => {
                let h = self.handler(*h);
                let known = self.items_of(&h);
                let items = items
                    .iter()
                    .take(6)
                    .map(|&i| Self::pick(i, &known))
                    .collect();
                vec![Call::StopItems(h, items)]
            }
            Op::StopAll => vec![Call::StopAll],
            Op::CancelRequest { r } => {
                // Any request accepted so far: open ones are withdrawn, completed ones answer
                // "already complete".
                let n = self.requests.len();
                one((n > 0).then(|| Call::Cancel(self.requests[usize::from(*r) % n].id)))
            }
            Op::SetActive { h, on } => vec![Call::SetActive(self.handler(*h), *on)],
            Op::SetEnabled { h, on } => vec![Call::SetEnabled(self.handler(*h), *on)],
            Op::SetItemEnabled { h, item, on } => {
                let h = self.handler(*h);
                let item = Self::pick(*item, &self.items_of(&h));
                vec![Call::SetItemEnabled(h, item, *on)]
            }
            Op::SetConnected { h, on } => vec![Call::SetConnected(self.handler(*h), *on)],
            Op::Update {
                h,
                keep,
                disabled,
                reverse,
                flip,
            } => {
                let h = self.handler(*h);
                let (mut caps, pols, original) = match self.universe.spec(&h) {
                    Some(s) => (s.capabilities, s.policies, s.items.clone()),
                    None => Default::default(),
                };
                if let Some(view) = self.engine.handler_view(&h) {
                    caps = view.capabilities;
                }
                if *flip {
                    caps.toggle(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS);
                }
                let mut items: Vec<ItemSpec> = (0..NAMES.len())
                    .filter(|n| keep & (1 << n) != 0)
                    .map(|n| {
                        let id = iid(NAMES[n]);
                        let policies = original
                            .iter()
                            .find(|s| s.id == id)
                            .map_or(ItemPolicies::empty(), |s| s.policies);
                        ItemSpec::new(id)
                            .with_policies(policies)
                            .with_enabled(*disabled < 128 || disabled & (1 << n) == 0)
                    })
                    .collect();
                if *reverse {
                    items.reverse();
                }
                vec![Call::Update(h, caps, pols, items)]
            }
            Op::UpsertItem {
                h,
                name,
                enabled,
                policy,
            } => {
                let h = self.handler(*h);
                let id = iid(NAMES[usize::from(*name) % NAMES.len()]);
                let policies = match policy {
                    0..=191 => self
                        .universe
                        .spec(&h)
                        .and_then(|s| s.items.iter().find(|i| i.id == id))
                        .map_or(ItemPolicies::empty(), |i| i.policies),
                    192..=207 => ItemPolicies::PREVENT_START_SYNC,
                    208..=239 => ItemPolicies::PREVENT_STOP_SYNC,
                    240..=247 => ItemPolicies::PREVENT_DISABLE,
                    _ => ItemPolicies::empty(),
                };
                let spec = ItemSpec::new(id)
                    .with_policies(policies)
                    .with_enabled(*enabled);
                vec![Call::UpsertItem(h, spec)]
            }
            Op::RemoveItem { h, item } => {
                let h = self.handler(*h);
                let item = Self::pick(*item, &self.items_of(&h));
                vec![Call::RemoveItem(h, item)]
            }
            Op::Remove { h } => vec![Call::Remove(self.handler(*h))],
            Op::Register { h } => {
                let id = self.handler(*h);
                let spec = self
                    .universe
                    .spec(&id)
                    .cloned()
                    .unwrap_or_else(|| HandlerSpec::new(id));
                vec![Call::Register(spec)]
            }
            Op::Shutdown => vec![Call::Shutdown],
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
        let want = on_model(&mut self.model, &call);

        // The same reply, or the same error with the same HRESULT.
        match (&got, &want) {
            (Ok(a), Ok(b)) if a == b => {}
            (Err(e), Err(m)) if MError::from_engine(e) == *m && e.hresult() == m.hresult() => {}
            _ => self.fail(format!("replies differ: engine {got:?}, model {want:?}")),
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
        // The same decisions.
        let engine: Vec<MAction> = actions.iter().map(from_action).collect();
        let model = self.model.take_actions();
        let (es, ed, ec) = split(&engine);
        let (ms, md, mc) = split(&model);
        if es != ms {
            self.fail(format!(
                "sessions started differ: engine {es:?}, model {ms:?}"
            ));
        }
        if ed != md {
            self.fail(format!("results differ: engine {ed:?}, model {md:?}"));
        }
        if ec != mc {
            self.fail(format!("cancels differ: engine {ec:?}, model {mc:?}"));
        }
        // The same visible state.
        let (eh, mh) = (post.h_views(), self.model.handler_views());
        if eh != mh {
            self.fail(format!("handlers differ: engine {eh:?}, model {mh:?}"));
        }
        let (es, ms) = (post.s_views(), self.model.session_views());
        if es != ms {
            self.fail(format!("sessions differ: engine {es:?}, model {ms:?}"));
        }
        let (er, mr) = (post.r_views(), self.model.request_views());
        if er != mr {
            self.fail(format!("open requests differ: engine {er:?}, model {mr:?}"));
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
        if let (Call::StartSync(h, _, _, key), Ok(_)) = (call, got)
            && !key.is_default()
        {
            self.last_keyed = Some((h.clone(), key.clone()));
        }
        if let Ok(reply) = got {
            for acc in reply.accepted() {
                if acc.request != self.requests.len() as u64 + 1 {
                    self.fail(format!(
                        "request numbers out of order: {} after {}",
                        acc.request,
                        self.requests.len()
                    ));
                }
                let delivered = actions.iter().find_map(|a| match a {
                    Action::Deliver(r) if r.request.get() == acc.request => Some(r),
                    _ => None,
                });
                let (id, items) = match delivered {
                    Some(result) => (
                        result.request,
                        result.items.iter().map(|(i, _)| i.clone()).collect(),
                    ),
                    None => {
                        let open = self.engine.open_requests();
                        match open.iter().find(|r| r.get() == acc.request) {
                            Some(&id) => (id, self.engine.request_items(id).unwrap_or_default()),
                            None => self.fail(format!(
                                "accepted request {} is neither open nor delivered",
                                acc.request
                            )),
                        }
                    }
                };
                let disconnected = pre
                    .handlers
                    .iter()
                    .find(|h| h.id == acc.handler)
                    .is_some_and(|h| !h.connected);
                self.requests.push(Issued {
                    id,
                    items,
                    disconnected,
                    delivered: 0,
                });
            }
        }
        for a in actions {
            match a {
                Action::StartSession { session, .. } => self.started.push(*session),
                Action::Deliver(res) => {
                    let n = res.request.get();
                    if n == 0 || n as usize > self.requests.len() {
                        self.fail(format!("a result for a request never accepted: {res:?}"));
                    }
                    let issued = &mut self.requests[n as usize - 1];
                    issued.delivered += 1;
                    let (delivered, disconnected) = (issued.delivered, issued.disconnected);
                    let ids: Vec<ItemId> = res.items.iter().map(|(i, _)| i.clone()).collect();
                    if delivered != 1 {
                        self.fail(format!("request {n} got a second result: {res:?}"));
                    }
                    if ids != self.requests[n as usize - 1].items {
                        self.fail(format!("result of {n} lists other items: {res:?}"));
                    }
                    let mut status = aggregate(res.items.iter().map(|(_, o)| *o));
                    if disconnected {
                        status = aggregate([status, Outcome::Disconnected]);
                    }
                    if res.status != status {
                        self.fail(format!("result of {n} should be {status:?}: {res:?}"));
                    }
                }
                Action::Cancel { .. } => {}
            }
        }
    }

    /// Ends the case: maybe shut down, then finish every running session. Then every
    /// accepted request must have had exactly one result.
    fn drain(&mut self, shutdown: bool) {
        if shutdown {
            self.step(Call::Shutdown);
        }
        for _ in 0..1000 {
            let Some(&s) = self.engine.sessions().first() else {
                break;
            };
            self.step(Call::Finish(s, SessionEnd::Returned));
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
    let mut harness = Harness::new(Universe::new(&input.setup));
    for op in input.ops.iter().take(MAX_OPS) {
        for call in harness.resolve(op) {
            harness.step(call);
        }
    }
    harness.drain(input.shutdown_at_end);
});
