//! The scenario language: what a row is made of. Steps call the engine, expectations say
//! what must have happened; both are [`Op`]s built by the functions below, next to the
//! handlers most rows register and the errors they expect. A rule family's file imports it
//! whole (`use super::lang::*`), with the crate's vocabulary its rows name (`O` for
//! `Outcome`, `PS` for `ProgressStatus`, the dispositions `Queued`, `Merged`, `Joined(n)` and
//! `Settled(outcome)`).

pub use std::time::Duration;
pub use syncmgr::engine::{HandlerSpec, ItemSpec, MergeKey, Withdrawn};
pub use syncmgr::hresult::{CLASS_E_CLASSNOTAVAILABLE, E_ACCESSDENIED, E_INVALIDARG, E_UNEXPECTED};
pub use syncmgr::{
    CancelRequest, Denied, EngineConfig, Error, EventLevel, HandlerCapabilities, HandlerId,
    HandlerPolicies, ItemId, ItemPolicies, Outcome as O, ProgressStatus as PS, Retry,
    SyncControlFlags, SyncPolicy, TextKind, Trigger, TriggerReason,
};

pub use self::D::{Joined, Merged, Queued, Settled};

/// One operation of a row: a step (an engine call) or an expectation.
#[derive(Debug)]
pub enum Op {
    /// Engine limits; only as the first op of a row (the default is `EngineConfig::default`).
    Limits(EngineConfig),
    Register(HandlerSpec),
    /// `start_item_sync` (items `Some`) or `start_handler_sync` (items `None`). The flags go
    /// through `SyncControlFlags::from_raw`, or with `retain` through `from_bits_retain`, so
    /// that unknown bits reach the engine.
    Start {
        tag: &'static str,
        handler: &'static str,
        items: Option<&'static [&'static str]>,
        flags: u32,
        retain: bool,
    },
    /// `start_sync_all`: one tag per request it makes, in the order it returns them.
    StartAll {
        tags: &'static [&'static str],
        flags: u32,
    },
    CancelRequest(&'static str),
    Progress {
        s: usize,
        item: &'static str,
        status: PS,
        /// Length of the progress text, in UTF-16 units without the NUL.
        text_units: usize,
    },
    Event {
        s: usize,
        item: Option<&'static str>,
        level: EventLevel,
    },
    Conflict {
        s: usize,
        item: Option<&'static str>,
    },
    AddToSession {
        s: usize,
        item: &'static str,
    },
    Propose {
        s: usize,
        item: &'static str,
    },
    Commit {
        s: usize,
        item: &'static str,
    },
    Finish {
        s: usize,
        failed: bool,
    },
    StopHandler(&'static str),
    StopItems(&'static str, &'static [&'static str]),
    StopAll,
    SetActive(&'static str, bool),
    SetEnabled(&'static str, bool),
    SetItemEnabled(&'static str, &'static str, bool),
    SetConnected(&'static str, bool),
    /// `update_handler` with the handler's current capabilities and policies and these
    /// (enabled) items.
    Update(&'static str, &'static [&'static str]),
    /// `update_handler` with these capabilities and the handler's current policies and items
    /// (enabled state kept; the item policies of the rows that use it are empty).
    UpdateCapabilities(&'static str, HandlerCapabilities),
    /// `update_item` (`upsert_item`): the item, enabled or not.
    UpsertItem(&'static str, &'static str, bool),
    RemoveHandler(&'static str),
    RemoveItem(&'static str, &'static str),
    Shutdown,
    /// `poll` at this many seconds after the start.
    Poll(u64),
    /// `set_sync_policy`.
    Policy(&'static str, SyncPolicy),
    /// `trigger`: the requests it makes are named by `issued` expectations.
    Trigger(Trigger),
    /// `start_sync_with` for an item sync with these options.
    StartWith {
        tag: &'static str,
        handler: &'static str,
        items: &'static [&'static str],
        flags: u32,
        expedite: bool,
        no_retry: bool,
    },
    /// `report_permanent_failure` for an item of session `s`.
    FailPermanently {
        s: usize,
        item: &'static str,
    },
    Expect(Expect),
}

/// What a row expects, at the point where it says so.
#[derive(Debug)]
pub enum Expect {
    /// Action: session `s` starts for `handler` with these items, in this order.
    Started {
        s: usize,
        handler: &'static str,
        items: &'static [&'static str],
    },
    /// Action: the request's one result.
    Delivers {
        tag: &'static str,
        status: O,
        items: &'static [(&'static str, O)],
        errors: u32,
        conflicts: u32,
    },
    /// Action: a cancel request to session `s`: `CancelItem` for `item`, `CancelAll` for `None`.
    SendsCancel {
        s: usize,
        item: Option<&'static str>,
    },
    /// Every action so far was expected.
    NothingElse,
    /// The step just run failed with this HRESULT and this error.
    Fails(Hr, Error),
    /// The step just run failed because session `s` is not running (`E_UNEXPECTED`).
    FailsNoSession(usize),
    /// The step just run left the engine as it was (`{:?}` equal before and after).
    Unchanged,
    /// The dispositions of an accepted request, item by item, and how many input names were
    /// repeats.
    Accepted {
        tag: &'static str,
        items: &'static [(&'static str, D)],
        duplicates: usize,
    },
    Pending {
        handler: &'static str,
        items: &'static [&'static str],
    },
    /// `query_for_additional_items` of session `s`.
    Query {
        s: usize,
        items: &'static [&'static str],
        tags: &'static [&'static str],
    },
    CanContinue {
        s: usize,
        item: Option<&'static str>,
        yes: bool,
    },
    /// The progress step just run answered this.
    Acks {
        cancel: CancelRequest,
        terminal: bool,
    },
    /// The stop (or shutdown) just run removed this many pending entries and sent this many
    /// cancel requests.
    Stops { pending: usize, cancels: usize },
    /// The state change just run.
    Changes {
        changed: bool,
        canceled_pending: usize,
    },
    /// The session-finish step just run settled the session's items so.
    EndsWith(&'static [(&'static str, O)]),
    /// The `add_item_to_session` just run moved this many waiting requests into the session.
    Served(usize),
    /// The request cancel just run.
    Withdraws(Withdrawn),
    /// Nothing pending, running or open.
    Idle,
    /// Action: the handler's debounced items wait until `until` seconds.
    Debounced { handler: &'static str, until: u64 },
    /// Action: an item failed attempt `attempt` of `max` and may run again at `at` seconds.
    RetryScheduled {
        handler: &'static str,
        item: &'static str,
        attempt: u16,
        max: u16,
        at: u64,
    },
    /// Action: the engine issued a request for `handler`, named `tag` from here on.
    Issued {
        tag: &'static str,
        handler: &'static str,
        reason: TriggerReason,
    },
    /// Action: a tick found the request `open` (a tag) still open.
    TickSkipped {
        handler: &'static str,
        open: &'static str,
    },
    /// The attempts per item of a delivered request's result.
    Attempts {
        tag: &'static str,
        items: &'static [(&'static str, u16)],
    },
    /// `next_deadline`, in seconds.
    NextDeadline(Option<u64>),
}

/// An HRESULT, shown in hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hr(pub i32);

impl std::fmt::Debug for Hr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A disposition, with the session of a join named by its row number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum D {
    Queued,
    Merged,
    Joined(usize),
    Settled(O),
}

pub struct Row {
    pub name: &'static str,
    pub ops: Vec<Op>,
}

pub fn row(name: &'static str, ops: Vec<Op>) -> Row {
    Row { name, ops }
}

// ----- building blocks -----------------------------------------------------------------------

pub const NONE: u32 = 0;
pub const JOIN: u32 = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING.to_raw();

pub fn hid(s: &str) -> HandlerId {
    HandlerId::new(s).unwrap()
}

pub fn iid(s: &str) -> ItemId {
    ItemId::new(s).unwrap()
}

/// A handler definition: active, enabled, connected, with these enabled items.
pub fn handler(id: &str, items: &[&str]) -> HandlerSpec {
    HandlerSpec::new(hid(id)).items(items.iter().map(|i| iid(i)))
}

/// Handler `a` with items a1..a4: the handler most rows use.
pub fn a() -> HandlerSpec {
    handler("a", &["a1", "a2", "a3", "a4"])
}

pub fn b() -> HandlerSpec {
    handler("b", &["b1", "b2"])
}

pub fn c() -> HandlerSpec {
    handler("c", &["c1", "c2"])
}

/// Handler `k` with items k1..k3 that may run two sessions at once.
pub fn k() -> HandlerSpec {
    handler("k", &["k1", "k2", "k3"]).concurrent(2)
}

/// Variations of a handler definition.
pub trait Def {
    fn inactive(self) -> Self;
    fn disabled(self) -> Self;
    fn offline(self) -> Self;
    fn concurrent(self, limit: usize) -> Self;
    fn policy(self, p: HandlerPolicies) -> Self;
    fn item_policy(self, item: &str, p: ItemPolicies) -> Self;
    fn item_off(self, item: &str) -> Self;
}

impl Def for HandlerSpec {
    fn inactive(mut self) -> Self {
        self.active = false;
        self
    }
    fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }
    fn offline(mut self) -> Self {
        self.connected = false;
        self
    }
    fn concurrent(mut self, limit: usize) -> Self {
        self.capabilities |= HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS;
        self.max_concurrent_sessions = Some(limit);
        self
    }
    fn policy(self, p: HandlerPolicies) -> Self {
        let policies = self.policies | p;
        self.with_policies(policies)
    }
    fn item_policy(mut self, item: &str, p: ItemPolicies) -> Self {
        let spec = self.items.iter_mut().find(|s| s.id == iid(item)).unwrap();
        spec.policies |= p;
        self
    }
    fn item_off(mut self, item: &str) -> Self {
        let spec = self.items.iter_mut().find(|s| s.id == iid(item)).unwrap();
        spec.enabled = false;
        self
    }
}

// ----- steps ---------------------------------------------------------------------------------

pub fn limits(max_sessions: usize) -> Op {
    Op::Limits(EngineConfig {
        max_sessions,
        ..EngineConfig::default()
    })
}

pub fn reg(spec: HandlerSpec) -> Op {
    Op::Register(spec)
}

/// `start_item_sync` without flags.
pub fn start(tag: &'static str, handler: &'static str, items: &'static [&'static str]) -> Op {
    start_raw(tag, handler, items, NONE)
}

/// `start_item_sync` with `IGNORE_IF_ALREADY_SYNCING`.
pub fn join(tag: &'static str, handler: &'static str, items: &'static [&'static str]) -> Op {
    start_raw(tag, handler, items, JOIN)
}

/// `start_item_sync` with raw flag bits.
pub fn start_raw(
    tag: &'static str,
    handler: &'static str,
    items: &'static [&'static str],
    flags: u32,
) -> Op {
    Op::Start {
        tag,
        handler,
        items: Some(items),
        flags,
        retain: false,
    }
}

/// `start_item_sync` with flags made by `from_bits_retain`: unknown bits reach the engine.
pub fn start_retained(
    tag: &'static str,
    handler: &'static str,
    items: &'static [&'static str],
    flags: u32,
) -> Op {
    Op::Start {
        tag,
        handler,
        items: Some(items),
        flags,
        retain: true,
    }
}

/// `start_handler_sync` without flags.
pub fn sync_handler(tag: &'static str, handler: &'static str) -> Op {
    Op::Start {
        tag,
        handler,
        items: None,
        flags: NONE,
        retain: false,
    }
}

pub fn sync_all(tags: &'static [&'static str]) -> Op {
    Op::StartAll { tags, flags: NONE }
}

pub fn cancel_request(tag: &'static str) -> Op {
    Op::CancelRequest(tag)
}

pub fn report(s: usize, item: &'static str, status: PS) -> Op {
    report_text(s, item, status, 0)
}

pub fn report_text(s: usize, item: &'static str, status: PS, text_units: usize) -> Op {
    Op::Progress {
        s,
        item,
        status,
        text_units,
    }
}

pub fn succeed(s: usize, item: &'static str) -> Op {
    report(s, item, PS::Succeeded)
}

pub fn event(s: usize, item: Option<&'static str>, level: EventLevel) -> Op {
    Op::Event { s, item, level }
}

pub fn conflict(s: usize, item: Option<&'static str>) -> Op {
    Op::Conflict { s, item }
}

pub fn add_to_session(s: usize, item: &'static str) -> Op {
    Op::AddToSession { s, item }
}

pub fn propose(s: usize, item: &'static str) -> Op {
    Op::Propose { s, item }
}

pub fn commit(s: usize, item: &'static str) -> Op {
    Op::Commit { s, item }
}

/// `synchronize` of session `s` returned.
pub fn finish(s: usize) -> Op {
    Op::Finish { s, failed: false }
}

/// `synchronize` of session `s` returned an error or panicked.
pub fn finish_failed(s: usize) -> Op {
    Op::Finish { s, failed: true }
}

pub fn stop_handler(h: &'static str) -> Op {
    Op::StopHandler(h)
}

pub fn stop_items(h: &'static str, items: &'static [&'static str]) -> Op {
    Op::StopItems(h, items)
}

pub fn stop_all() -> Op {
    Op::StopAll
}

pub fn activate(h: &'static str, on: bool) -> Op {
    Op::SetActive(h, on)
}

pub fn enable(h: &'static str, on: bool) -> Op {
    Op::SetEnabled(h, on)
}

pub fn enable_item(h: &'static str, item: &'static str, on: bool) -> Op {
    Op::SetItemEnabled(h, item, on)
}

pub fn connect(h: &'static str, on: bool) -> Op {
    Op::SetConnected(h, on)
}

pub fn update(h: &'static str, items: &'static [&'static str]) -> Op {
    Op::Update(h, items)
}

pub fn update_capabilities(h: &'static str, caps: HandlerCapabilities) -> Op {
    Op::UpdateCapabilities(h, caps)
}

pub fn update_item(h: &'static str, item: &'static str, enabled: bool) -> Op {
    Op::UpsertItem(h, item, enabled)
}

pub fn remove(h: &'static str) -> Op {
    Op::RemoveHandler(h)
}

pub fn remove_item(h: &'static str, item: &'static str) -> Op {
    Op::RemoveItem(h, item)
}

pub fn shutdown() -> Op {
    Op::Shutdown
}

/// Polls the engine at `secs` seconds after the row's start.
pub fn at(secs: u64) -> Op {
    Op::Poll(secs)
}

pub fn set_policy(h: &'static str, policy: SyncPolicy) -> Op {
    Op::Policy(h, policy)
}

pub fn trigger(t: Trigger) -> Op {
    Op::Trigger(t)
}

/// `start_sync_with`, expedited ("Sync now").
pub fn start_expedited(
    tag: &'static str,
    handler: &'static str,
    items: &'static [&'static str],
) -> Op {
    Op::StartWith {
        tag,
        handler,
        items,
        flags: NONE,
        expedite: true,
        no_retry: false,
    }
}

/// `start_sync_with` without retry, joining what runs.
pub fn join_no_retry(
    tag: &'static str,
    handler: &'static str,
    items: &'static [&'static str],
) -> Op {
    Op::StartWith {
        tag,
        handler,
        items,
        flags: JOIN,
        expedite: false,
        no_retry: true,
    }
}

pub fn fail_permanently(s: usize, item: &'static str) -> Op {
    Op::FailPermanently { s, item }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Handler `a` with this sync policy.
pub fn a_with(policy: SyncPolicy) -> HandlerSpec {
    a().with_sync_policy(policy)
}

/// Debounce: quiet `q`, max-wait `m` (seconds).
pub fn debounce(q: u64, m: u64) -> SyncPolicy {
    SyncPolicy::default().debounce(secs(q), secs(m))
}

/// Retry: `n` attempts, 10 s doubling up to 60 s, no jitter.
pub fn retry(n: u16) -> SyncPolicy {
    SyncPolicy::default().retry(Retry::exponential(n, secs(10), secs(60)))
}

// ----- expectations --------------------------------------------------------------------------

pub fn started(s: usize, handler: &'static str, items: &'static [&'static str]) -> Op {
    Op::Expect(Expect::Started { s, handler, items })
}

pub fn delivers(tag: &'static str, status: O, items: &'static [(&'static str, O)]) -> Op {
    delivers_counted(tag, status, items, 0, 0)
}

pub fn delivers_counted(
    tag: &'static str,
    status: O,
    items: &'static [(&'static str, O)],
    errors: u32,
    conflicts: u32,
) -> Op {
    Op::Expect(Expect::Delivers {
        tag,
        status,
        items,
        errors,
        conflicts,
    })
}

pub fn sends_cancel_item(s: usize, item: &'static str) -> Op {
    Op::Expect(Expect::SendsCancel {
        s,
        item: Some(item),
    })
}

pub fn sends_cancel_all(s: usize) -> Op {
    Op::Expect(Expect::SendsCancel { s, item: None })
}

pub fn nothing_else() -> Op {
    Op::Expect(Expect::NothingElse)
}

pub fn fails(hresult: i32, error: Error) -> Op {
    Op::Expect(Expect::Fails(Hr(hresult), error))
}

pub fn fails_no_session(s: usize) -> Op {
    Op::Expect(Expect::FailsNoSession(s))
}

pub fn unchanged() -> Op {
    Op::Expect(Expect::Unchanged)
}

pub fn accepted(tag: &'static str, items: &'static [(&'static str, D)]) -> Op {
    accepted_with_repeats(tag, items, 0)
}

pub fn accepted_with_repeats(
    tag: &'static str,
    items: &'static [(&'static str, D)],
    duplicates: usize,
) -> Op {
    Op::Expect(Expect::Accepted {
        tag,
        items,
        duplicates,
    })
}

pub fn pending(handler: &'static str, items: &'static [&'static str]) -> Op {
    Op::Expect(Expect::Pending { handler, items })
}

pub fn query_gives(s: usize, items: &'static [&'static str], tags: &'static [&'static str]) -> Op {
    Op::Expect(Expect::Query { s, items, tags })
}

pub fn can_continue(s: usize, item: Option<&'static str>, yes: bool) -> Op {
    Op::Expect(Expect::CanContinue { s, item, yes })
}

pub fn acks(cancel: CancelRequest, terminal: bool) -> Op {
    Op::Expect(Expect::Acks { cancel, terminal })
}

pub fn stops(pending: usize, cancels: usize) -> Op {
    Op::Expect(Expect::Stops { pending, cancels })
}

pub fn changes(changed: bool, canceled_pending: usize) -> Op {
    Op::Expect(Expect::Changes {
        changed,
        canceled_pending,
    })
}

pub fn ends_with(outcomes: &'static [(&'static str, O)]) -> Op {
    Op::Expect(Expect::EndsWith(outcomes))
}

pub fn served(n: usize) -> Op {
    Op::Expect(Expect::Served(n))
}

pub fn withdraws(w: Withdrawn) -> Op {
    Op::Expect(Expect::Withdraws(w))
}

pub fn idle() -> Op {
    Op::Expect(Expect::Idle)
}

pub fn debounced(handler: &'static str, until: u64) -> Op {
    Op::Expect(Expect::Debounced { handler, until })
}

pub fn retry_scheduled(
    handler: &'static str,
    item: &'static str,
    attempt: u16,
    max: u16,
    at: u64,
) -> Op {
    Op::Expect(Expect::RetryScheduled {
        handler,
        item,
        attempt,
        max,
        at,
    })
}

pub fn issued(tag: &'static str, handler: &'static str, reason: TriggerReason) -> Op {
    Op::Expect(Expect::Issued {
        tag,
        handler,
        reason,
    })
}

pub fn tick_skipped(handler: &'static str, open: &'static str) -> Op {
    Op::Expect(Expect::TickSkipped { handler, open })
}

pub fn attempts(tag: &'static str, items: &'static [(&'static str, u16)]) -> Op {
    Op::Expect(Expect::Attempts { tag, items })
}

pub fn next_deadline(secs: Option<u64>) -> Op {
    Op::Expect(Expect::NextDeadline(secs))
}

// ----- errors --------------------------------------------------------------------------------

pub fn unknown_handler(h: &str) -> Error {
    Error::UnknownHandler(hid(h))
}

pub fn unknown_item(h: &str, item: &str) -> Error {
    Error::UnknownItem {
        handler: hid(h),
        item: iid(item),
    }
}

pub fn denied(d: Denied) -> Error {
    Error::AccessDenied(d)
}

pub fn denied_by_handler(p: HandlerPolicies) -> Error {
    denied(Denied::HandlerPolicy(p))
}

pub fn denied_by_item(item: &str, p: ItemPolicies) -> Error {
    denied(Denied::ItemPolicy {
        item: iid(item),
        policy: p,
    })
}

pub fn terminal(item: &str, reached: O, reported: PS) -> Error {
    denied(Denied::TerminalState {
        item: iid(item),
        reached,
        reported,
    })
}
