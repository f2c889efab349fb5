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

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use syncmgr::engine::{
    Accepted, Action, Disposition, Engine, HandlerSpec, HandlerView, ItemSpec, MergeKey,
    RequestView, SessionEnd, SessionView, Withdrawn,
};
use syncmgr::{
    CancelRequest, Denied, EngineConfig, Error, EventLevel, HandlerCapabilities, HandlerId,
    HandlerPolicies, ItemId, ItemPolicies, Outcome, ProgressStatus, RequestId, SessionId,
    SyncControlFlags, UpdateReason,
};

use model::{
    HView, MAccepted, MAction, MChanged, MDisposition, MError, MKey, MResult, MStopped, Model,
    RView, SItemView, SView,
};

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

fn mkey(key: &MergeKey) -> MKey {
    key.as_cookie().map(<[u8]>::to_vec)
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

// ----- concrete calls, answered by the engine and by the model -------------------------------

#[derive(Clone, Debug)]
enum Call {
    Register(HandlerSpec),
    Remove(HandlerId),
    SetActive(HandlerId, bool),
    SetEnabled(HandlerId, bool),
    SetConnected(HandlerId, bool),
    SetItemEnabled(HandlerId, ItemId, bool),
    Update(
        HandlerId,
        HandlerCapabilities,
        HandlerPolicies,
        Vec<ItemSpec>,
    ),
    UpsertItem(HandlerId, ItemSpec),
    RemoveItem(HandlerId, ItemId),
    StartItems(HandlerId, Vec<ItemId>, SyncControlFlags),
    StartHandler(HandlerId, SyncControlFlags),
    StartAll(SyncControlFlags),
    StartSync(HandlerId, Option<Vec<ItemId>>, SyncControlFlags, MergeKey),
    Cancel(RequestId),
    StopHandler(HandlerId),
    StopItems(HandlerId, Vec<ItemId>),
    StopAll,
    Shutdown,
    SessionStarted(SessionId),
    Progress(SessionId, ItemId, ProgressStatus, String),
    HandlerText(SessionId, String),
    CanContinue(SessionId, Option<ItemId>),
    Event(SessionId, Option<ItemId>, EventLevel),
    Conflict(SessionId, Option<ItemId>),
    ManualSync(SessionId),
    Query(SessionId),
    AddItem(SessionId, ItemId),
    Propose(SessionId, ItemSpec),
    Commit(SessionId, ItemId),
    Finish(SessionId, SessionEnd),
}

/// A successful reply, in one shape for both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    Unit,
    Accepted(MAccepted),
    AcceptedAll(Vec<MAccepted>),
    Changed(MChanged),
    Reason(UpdateReason),
    Stopped(MStopped),
    Withdrawn(bool),
    Ack(CancelRequest, bool),
    Cancel(CancelRequest),
    Flag(bool),
    Additional(Vec<ItemId>, Vec<u64>),
    Served(usize),
    Ended(u64, HandlerId, Vec<(ItemId, Outcome)>),
}

impl Reply {
    fn accepted(&self) -> Vec<&MAccepted> {
        match self {
            Reply::Accepted(a) => vec![a],
            Reply::AcceptedAll(all) => all.iter().collect(),
            _ => Vec::new(),
        }
    }
}

fn from_accepted(a: &Accepted) -> MAccepted {
    MAccepted {
        request: a.request.get(),
        handler: a.handler.clone(),
        dispositions: a
            .dispositions()
            .iter()
            .map(|d| match d {
                Disposition::Queued => MDisposition::Queued,
                Disposition::Merged => MDisposition::Merged,
                Disposition::Joined(s) => MDisposition::Joined(s.get()),
                Disposition::Settled(o) => MDisposition::Settled(*o),
            })
            .collect(),
        duplicates: a.duplicates,
        completed: a.completed,
    }
}

fn from_action(a: &Action) -> MAction {
    match a {
        Action::StartSession {
            session,
            handler,
            items,
            key,
        } => MAction::Start {
            session: session.get(),
            handler: handler.clone(),
            items: items.clone(),
            key: mkey(key),
        },
        Action::Deliver(r) => MAction::Deliver(MResult {
            request: r.request.get(),
            handler: r.handler.clone(),
            status: r.status,
            errors: r.errors,
            conflicts: r.conflicts,
            items: r.items.clone(),
        }),
        Action::Cancel {
            session,
            request,
            item,
        } => MAction::Cancel {
            session: session.get(),
            request: *request,
            item: item.clone(),
        },
    }
}

fn on_engine(e: &mut Engine, call: &Call) -> Result<Reply, Error> {
    let changed = |c: syncmgr::engine::Changed| {
        Reply::Changed(MChanged {
            changed: c.changed,
            canceled_pending: c.canceled_pending,
        })
    };
    let stopped = |s: syncmgr::engine::Stopped| {
        Reply::Stopped(MStopped {
            canceled_pending: s.canceled_pending,
            cancel_requests: s.cancel_requests,
        })
    };
    Ok(match call {
        Call::Register(spec) => {
            e.register_handler(spec.clone())?;
            Reply::Unit
        }
        Call::Remove(h) => changed(e.remove_handler(h)?),
        Call::SetActive(h, on) => changed(e.set_handler_active(h, *on)?),
        Call::SetEnabled(h, on) => changed(e.set_handler_enabled(h, *on)?),
        Call::SetConnected(h, on) => changed(e.set_handler_connected(h, *on)?),
        Call::SetItemEnabled(h, i, on) => changed(e.set_item_enabled(h, i, *on)?),
        Call::Update(h, caps, pols, items) => {
            changed(e.update_handler(h, *caps, *pols, items.clone())?)
        }
        Call::UpsertItem(h, spec) => Reply::Reason(e.upsert_item(h, spec.clone())?),
        Call::RemoveItem(h, i) => changed(e.remove_item(h, i)?),
        Call::StartItems(h, items, f) => {
            Reply::Accepted(from_accepted(&e.start_item_sync(h, items, *f)?))
        }
        Call::StartHandler(h, f) => Reply::Accepted(from_accepted(&e.start_handler_sync(h, *f)?)),
        Call::StartAll(f) => {
            Reply::AcceptedAll(e.start_sync_all(*f)?.iter().map(from_accepted).collect())
        }
        Call::StartSync(h, items, f, key) => Reply::Accepted(from_accepted(&e.start_sync(
            h,
            items.as_deref(),
            *f,
            key.clone(),
        )?)),
        Call::Cancel(r) => Reply::Withdrawn(e.cancel_request(*r)? == Withdrawn::Withdrawn),
        Call::StopHandler(h) => stopped(e.stop_handler_sync(h)?),
        Call::StopItems(h, items) => stopped(e.stop_item_sync(h, items)?),
        Call::StopAll => stopped(e.stop_sync_all()),
        Call::Shutdown => stopped(e.shutdown()),
        Call::SessionStarted(s) => {
            e.session_started(*s)?;
            Reply::Unit
        }
        Call::Progress(s, i, st, text) => {
            let ack = e.report_progress(*s, i, *st, text)?;
            Reply::Ack(ack.cancel, ack.terminal)
        }
        Call::HandlerText(s, text) => Reply::Cancel(e.set_handler_progress_text(*s, text)?),
        Call::CanContinue(s, i) => Reply::Flag(e.can_continue(*s, i.as_ref())?),
        Call::Event(s, i, level) => {
            e.report_event(*s, i.as_ref(), *level)?;
            Reply::Unit
        }
        Call::Conflict(s, i) => {
            e.report_conflict(*s, i.as_ref())?;
            Reply::Unit
        }
        Call::ManualSync(s) => {
            e.report_manual_sync(*s)?;
            Reply::Unit
        }
        Call::Query(s) => {
            let extra = e.query_for_additional_items(*s)?;
            Reply::Additional(
                extra.items,
                extra.requests.iter().map(|r| r.get()).collect(),
            )
        }
        Call::AddItem(s, i) => Reply::Served(e.add_item_to_session(*s, i)?),
        Call::Propose(s, spec) => {
            e.propose_item(*s, spec.clone())?;
            Reply::Unit
        }
        Call::Commit(s, i) => {
            e.commit_item(*s, i)?;
            Reply::Unit
        }
        Call::Finish(s, end) => {
            let ended = e.session_finished(*s, *end)?;
            Reply::Ended(ended.session.get(), ended.handler, ended.outcomes)
        }
    })
}

fn on_model(m: &mut Model, call: &Call) -> Result<Reply, MError> {
    Ok(match call {
        Call::Register(spec) => {
            m.register_handler(spec)?;
            Reply::Unit
        }
        Call::Remove(h) => Reply::Changed(m.remove_handler(h)?),
        Call::SetActive(h, on) => Reply::Changed(m.set_handler_active(h, *on)?),
        Call::SetEnabled(h, on) => Reply::Changed(m.set_handler_enabled(h, *on)?),
        Call::SetConnected(h, on) => Reply::Changed(m.set_handler_connected(h, *on)?),
        Call::SetItemEnabled(h, i, on) => Reply::Changed(m.set_item_enabled(h, i, *on)?),
        Call::Update(h, caps, pols, items) => {
            Reply::Changed(m.update_handler(h, *caps, *pols, items)?)
        }
        Call::UpsertItem(h, spec) => Reply::Reason(m.upsert_item(h, spec)?),
        Call::RemoveItem(h, i) => Reply::Changed(m.remove_item(h, i)?),
        Call::StartItems(h, items, f) => Reply::Accepted(m.start_item_sync(h, items, *f)?),
        Call::StartHandler(h, f) => Reply::Accepted(m.start_handler_sync(h, *f)?),
        Call::StartAll(f) => Reply::AcceptedAll(m.start_sync_all(*f)?),
        Call::StartSync(h, items, f, key) => {
            Reply::Accepted(m.start_sync(h, items.as_deref(), *f, mkey(key))?)
        }
        Call::Cancel(r) => Reply::Withdrawn(m.cancel_request(r.get())?),
        Call::StopHandler(h) => Reply::Stopped(m.stop_handler_sync(h)?),
        Call::StopItems(h, items) => Reply::Stopped(m.stop_item_sync(h, items)?),
        Call::StopAll => Reply::Stopped(m.stop_sync_all()),
        Call::Shutdown => Reply::Stopped(m.shutdown()),
        Call::SessionStarted(s) => {
            m.session_started(s.get())?;
            Reply::Unit
        }
        Call::Progress(s, i, st, text) => {
            let (cancel, terminal) = m.report_progress(s.get(), i, *st, text)?;
            Reply::Ack(cancel, terminal)
        }
        Call::HandlerText(s, text) => Reply::Cancel(m.set_handler_progress_text(s.get(), text)?),
        Call::CanContinue(s, i) => Reply::Flag(m.can_continue(s.get(), i.as_ref())?),
        Call::Event(s, i, level) => {
            m.report_event(s.get(), i.as_ref(), *level)?;
            Reply::Unit
        }
        Call::Conflict(s, i) => {
            m.report_conflict(s.get(), i.as_ref())?;
            Reply::Unit
        }
        Call::ManualSync(s) => {
            m.report_manual_sync(s.get())?;
            Reply::Unit
        }
        Call::Query(s) => {
            let (items, requests) = m.query_for_additional_items(s.get())?;
            Reply::Additional(items, requests)
        }
        Call::AddItem(s, i) => Reply::Served(m.add_item_to_session(s.get(), i)?),
        Call::Propose(s, spec) => {
            m.propose_item(s.get(), spec)?;
            Reply::Unit
        }
        Call::Commit(s, i) => {
            m.commit_item(s.get(), i)?;
            Reply::Unit
        }
        Call::Finish(s, _) => {
            let (handler, outcomes) = m.session_finished(s.get())?;
            Reply::Ended(s.get(), handler, outcomes)
        }
    })
}

// ----- views ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    handlers: Vec<HandlerView>,
    sessions: Vec<SessionView>,
    requests: Vec<RequestView>,
}

impl Snapshot {
    fn take(e: &Engine) -> Snapshot {
        Snapshot {
            handlers: e
                .handlers()
                .iter()
                .filter_map(|h| e.handler_view(h))
                .collect(),
            sessions: e
                .sessions()
                .into_iter()
                .filter_map(|s| e.session_view(s))
                .collect(),
            requests: e
                .open_requests()
                .into_iter()
                .filter_map(|r| e.request_view(r))
                .collect(),
        }
    }

    fn h_views(&self) -> Vec<HView> {
        self.handlers
            .iter()
            .map(|h| HView {
                id: h.id.clone(),
                active: h.active,
                enabled: h.enabled,
                connected: h.connected,
                session_limit: h.session_limit,
                items: h.items.clone(),
                pending: h.pending.clone(),
                running: h.running.iter().map(|s| s.get()).collect(),
            })
            .collect()
    }

    fn s_views(&self) -> Vec<SView> {
        self.sessions
            .iter()
            .map(|s| SView {
                id: s.id.get(),
                handler: s.handler.clone(),
                started: s.started,
                manual: s.manual,
                cancel_all: s.cancel_all,
                key: mkey(&s.key),
                items: s
                    .items
                    .iter()
                    .map(|si| SItemView {
                        item: si.item.clone(),
                        last: si.last,
                        terminal: si.terminal,
                        cancel_requested: si.cancel_requested,
                        waiting: si.waiting.iter().map(|r| r.get()).collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    fn r_views(&self) -> Vec<RView> {
        self.requests
            .iter()
            .map(|r| RView {
                id: r.id.get(),
                handler: r.handler.clone(),
                items: r.items.clone(),
                errors: r.errors,
                conflicts: r.conflicts,
            })
            .collect()
    }
}

/// Failed > Disconnected > Canceled > Succeeded (SPEC section 7), written out.
fn aggregate(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    let rank = |o: &Outcome| match o {
        Outcome::Succeeded => 0,
        Outcome::Canceled => 1,
        Outcome::Disconnected => 2,
        Outcome::Failed => 3,
    };
    outcomes
        .into_iter()
        .max_by_key(rank)
        .unwrap_or(Outcome::Succeeded)
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
