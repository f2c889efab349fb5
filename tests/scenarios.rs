//! The scenario table of SPEC sections 4–7 (issue 2): one row per rule, each a list of
//! operations on a fresh [`Engine`] with the sessions, results, cancels and errors they must
//! produce, all run by one [`check`] helper. Renaming an engine API touches [`Run::step`] only.
//!
//! How a row reads:
//!
//! - **Steps** call the engine. IDs are text and flags are raw bits, as a caller holds them, so
//!   invalid ID text and unknown flag bits are refused on the way in by `HandlerId::new`,
//!   `ItemId::new` and `SyncControlFlags::from_raw`, exactly as a shell would refuse them.
//! - Requests are named by **tags** (`"r1"`); sessions by **number**: the nth session started
//!   in the row, from 1.
//! - **Action expectations** (`started`, `delivers`, `sends_cancel_item`, `sends_cancel_all`)
//!   match the actions the steps queued, in any order within one step. A step may not run while
//!   an action of an earlier step is still unexpected, so a row lists everything that happened,
//!   and `nothing_else` can say so where it matters to the reader.
//! - A step that fails must be followed by `fails(hresult, error)`. Other expectations read the
//!   step just run (`unchanged`, `acks`, `stops`, `ends_with`, ...) or the engine's state
//!   (`pending`, `query_gives`, `can_continue`, ...).
//! - After every step `check` asserts `Engine::check_consistency`. After the last op it ends
//!   every session still running and asserts that every accepted request got exactly one
//!   result. It runs every row twice and compares the two action logs (SPEC section 8:
//!   determinism).
//!
//! On failure the panic names the row, the op (1-based) and prints the whole action log. Every
//! row of a group runs even when an earlier one fails.

use std::fmt::Write as _;

use syncmgr::engine::{
    Accepted, Action, Changed, Disposition, HandlerSpec, ItemSpec, MergeKey, ProgressAck,
    SessionEnd, SessionEnded, Stopped, Withdrawn,
};
use syncmgr::hresult::{CLASS_E_CLASSNOTAVAILABLE, E_ACCESSDENIED, E_INVALIDARG, E_UNEXPECTED};
use syncmgr::{
    CancelRequest, Denied, Engine, EngineConfig, Error, EventLevel, HandlerCapabilities, HandlerId,
    HandlerPolicies, ItemId, ItemPolicies, Outcome as O, ProgressStatus as PS, RequestId,
    RequestResult, SessionId, SyncControlFlags, TextKind,
};

use self::D::{Joined, Merged, Queued, Settled};

// =============================================================================================
// The scenario language
// =============================================================================================

/// One operation of a row: a step (an engine call) or an expectation.
#[derive(Debug)]
enum Op {
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
    Expect(Expect),
}

/// What a row expects, at the point where it says so.
#[derive(Debug)]
enum Expect {
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
}

/// An HRESULT, shown in hex.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Hr(i32);

impl std::fmt::Debug for Hr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A disposition, with the session of a join named by its row number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum D {
    Queued,
    Merged,
    Joined(usize),
    Settled(O),
}

struct Row {
    name: &'static str,
    ops: Vec<Op>,
}

fn row(name: &'static str, ops: Vec<Op>) -> Row {
    Row { name, ops }
}

// ----- building blocks -----------------------------------------------------------------------

const NONE: u32 = 0;
const JOIN: u32 = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING.to_raw();

fn hid(s: &str) -> HandlerId {
    HandlerId::new(s).unwrap()
}

fn iid(s: &str) -> ItemId {
    ItemId::new(s).unwrap()
}

/// A handler definition: active, enabled, connected, with these enabled items.
fn handler(id: &str, items: &[&str]) -> HandlerSpec {
    HandlerSpec::new(hid(id)).items(items.iter().map(|i| iid(i)))
}

/// Handler `a` with items a1..a4: the handler most rows use.
fn a() -> HandlerSpec {
    handler("a", &["a1", "a2", "a3", "a4"])
}

fn b() -> HandlerSpec {
    handler("b", &["b1", "b2"])
}

fn c() -> HandlerSpec {
    handler("c", &["c1", "c2"])
}

/// Handler `k` with items k1..k3 that may run two sessions at once.
fn k() -> HandlerSpec {
    handler("k", &["k1", "k2", "k3"]).concurrent(2)
}

/// Variations of a handler definition.
trait Def {
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

fn limits(max_sessions: usize) -> Op {
    Op::Limits(EngineConfig {
        max_sessions,
        ..EngineConfig::default()
    })
}

fn reg(spec: HandlerSpec) -> Op {
    Op::Register(spec)
}

/// `start_item_sync` without flags.
fn start(tag: &'static str, handler: &'static str, items: &'static [&'static str]) -> Op {
    start_raw(tag, handler, items, NONE)
}

/// `start_item_sync` with `IGNORE_IF_ALREADY_SYNCING`.
fn join(tag: &'static str, handler: &'static str, items: &'static [&'static str]) -> Op {
    start_raw(tag, handler, items, JOIN)
}

/// `start_item_sync` with raw flag bits.
fn start_raw(
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
fn start_retained(
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
fn sync_handler(tag: &'static str, handler: &'static str) -> Op {
    Op::Start {
        tag,
        handler,
        items: None,
        flags: NONE,
        retain: false,
    }
}

fn sync_all(tags: &'static [&'static str]) -> Op {
    Op::StartAll { tags, flags: NONE }
}

fn cancel_request(tag: &'static str) -> Op {
    Op::CancelRequest(tag)
}

fn report(s: usize, item: &'static str, status: PS) -> Op {
    report_text(s, item, status, 0)
}

fn report_text(s: usize, item: &'static str, status: PS, text_units: usize) -> Op {
    Op::Progress {
        s,
        item,
        status,
        text_units,
    }
}

fn succeed(s: usize, item: &'static str) -> Op {
    report(s, item, PS::Succeeded)
}

fn event(s: usize, item: Option<&'static str>, level: EventLevel) -> Op {
    Op::Event { s, item, level }
}

fn conflict(s: usize, item: Option<&'static str>) -> Op {
    Op::Conflict { s, item }
}

fn add_to_session(s: usize, item: &'static str) -> Op {
    Op::AddToSession { s, item }
}

fn propose(s: usize, item: &'static str) -> Op {
    Op::Propose { s, item }
}

fn commit(s: usize, item: &'static str) -> Op {
    Op::Commit { s, item }
}

/// `synchronize` of session `s` returned.
fn finish(s: usize) -> Op {
    Op::Finish { s, failed: false }
}

/// `synchronize` of session `s` returned an error or panicked.
fn finish_failed(s: usize) -> Op {
    Op::Finish { s, failed: true }
}

fn stop_handler(h: &'static str) -> Op {
    Op::StopHandler(h)
}

fn stop_items(h: &'static str, items: &'static [&'static str]) -> Op {
    Op::StopItems(h, items)
}

fn stop_all() -> Op {
    Op::StopAll
}

fn activate(h: &'static str, on: bool) -> Op {
    Op::SetActive(h, on)
}

fn enable(h: &'static str, on: bool) -> Op {
    Op::SetEnabled(h, on)
}

fn enable_item(h: &'static str, item: &'static str, on: bool) -> Op {
    Op::SetItemEnabled(h, item, on)
}

fn connect(h: &'static str, on: bool) -> Op {
    Op::SetConnected(h, on)
}

fn update(h: &'static str, items: &'static [&'static str]) -> Op {
    Op::Update(h, items)
}

fn update_capabilities(h: &'static str, caps: HandlerCapabilities) -> Op {
    Op::UpdateCapabilities(h, caps)
}

fn update_item(h: &'static str, item: &'static str, enabled: bool) -> Op {
    Op::UpsertItem(h, item, enabled)
}

fn remove(h: &'static str) -> Op {
    Op::RemoveHandler(h)
}

fn remove_item(h: &'static str, item: &'static str) -> Op {
    Op::RemoveItem(h, item)
}

fn shutdown() -> Op {
    Op::Shutdown
}

// ----- expectations --------------------------------------------------------------------------

fn started(s: usize, handler: &'static str, items: &'static [&'static str]) -> Op {
    Op::Expect(Expect::Started { s, handler, items })
}

fn delivers(tag: &'static str, status: O, items: &'static [(&'static str, O)]) -> Op {
    delivers_counted(tag, status, items, 0, 0)
}

fn delivers_counted(
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

fn sends_cancel_item(s: usize, item: &'static str) -> Op {
    Op::Expect(Expect::SendsCancel {
        s,
        item: Some(item),
    })
}

fn sends_cancel_all(s: usize) -> Op {
    Op::Expect(Expect::SendsCancel { s, item: None })
}

fn nothing_else() -> Op {
    Op::Expect(Expect::NothingElse)
}

fn fails(hresult: i32, error: Error) -> Op {
    Op::Expect(Expect::Fails(Hr(hresult), error))
}

fn fails_no_session(s: usize) -> Op {
    Op::Expect(Expect::FailsNoSession(s))
}

fn unchanged() -> Op {
    Op::Expect(Expect::Unchanged)
}

fn accepted(tag: &'static str, items: &'static [(&'static str, D)]) -> Op {
    accepted_with_repeats(tag, items, 0)
}

fn accepted_with_repeats(
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

fn pending(handler: &'static str, items: &'static [&'static str]) -> Op {
    Op::Expect(Expect::Pending { handler, items })
}

fn query_gives(s: usize, items: &'static [&'static str], tags: &'static [&'static str]) -> Op {
    Op::Expect(Expect::Query { s, items, tags })
}

fn can_continue(s: usize, item: Option<&'static str>, yes: bool) -> Op {
    Op::Expect(Expect::CanContinue { s, item, yes })
}

fn acks(cancel: CancelRequest, terminal: bool) -> Op {
    Op::Expect(Expect::Acks { cancel, terminal })
}

fn stops(pending: usize, cancels: usize) -> Op {
    Op::Expect(Expect::Stops { pending, cancels })
}

fn changes(changed: bool, canceled_pending: usize) -> Op {
    Op::Expect(Expect::Changes {
        changed,
        canceled_pending,
    })
}

fn ends_with(outcomes: &'static [(&'static str, O)]) -> Op {
    Op::Expect(Expect::EndsWith(outcomes))
}

fn served(n: usize) -> Op {
    Op::Expect(Expect::Served(n))
}

fn withdraws(w: Withdrawn) -> Op {
    Op::Expect(Expect::Withdraws(w))
}

fn idle() -> Op {
    Op::Expect(Expect::Idle)
}

// ----- errors --------------------------------------------------------------------------------

fn unknown_handler(h: &str) -> Error {
    Error::UnknownHandler(hid(h))
}

fn unknown_item(h: &str, item: &str) -> Error {
    Error::UnknownItem {
        handler: hid(h),
        item: iid(item),
    }
}

fn denied(d: Denied) -> Error {
    Error::AccessDenied(d)
}

fn denied_by_handler(p: HandlerPolicies) -> Error {
    denied(Denied::HandlerPolicy(p))
}

fn denied_by_item(item: &str, p: ItemPolicies) -> Error {
    denied(Denied::ItemPolicy {
        item: iid(item),
        policy: p,
    })
}

fn terminal(item: &str, reached: O, reported: PS) -> Error {
    denied(Denied::TerminalState {
        item: iid(item),
        reached,
        reported,
    })
}

// =============================================================================================
// The check helper
// =============================================================================================

/// Runs every row of a group; panics once, listing every failing row.
fn check_all(rows: Vec<Row>) {
    let failures: Vec<String> = rows.iter().filter_map(|r| check(r).err()).collect();
    if !failures.is_empty() {
        panic!(
            "{} of {} rows failed\n\n{}",
            failures.len(),
            rows.len(),
            failures.join("\n\n")
        );
    }
}

/// Runs one row on a fresh engine, twice, and compares the two action logs.
fn check(row: &Row) -> Result<(), String> {
    let first = Run::go(row)?;
    let second = Run::go(row)?;
    if first != second {
        return Err(format!(
            "row `{}`: the same steps gave two different logs\nfirst:\n{}\nsecond:\n{}",
            row.name,
            first.join("\n"),
            second.join("\n")
        ));
    }
    Ok(())
}

/// What a step returned, kept for the expectations that read it.
#[derive(Debug)]
enum Out {
    Unit,
    Accepted,
    Stopped(Stopped),
    Changed(Changed),
    Ack(ProgressAck),
    Ended(SessionEnded),
    Served(usize),
    Withdrawn(Withdrawn),
}

struct Logged {
    /// Index of the op that queued the action (`ops.len()` for the closing phase).
    op: usize,
    action: Action,
    expected: bool,
}

struct Req {
    tag: &'static str,
    id: RequestId,
    handler: HandlerId,
    accepted: Accepted,
    items: Vec<ItemId>,
}

struct Run<'r> {
    row: &'r Row,
    engine: Engine,
    log: Vec<Logged>,
    /// Session `n` of the row is `sessions[n - 1]`.
    sessions: Vec<SessionId>,
    requests: Vec<Req>,
    /// The op being checked.
    at: usize,
    /// The last step: its index and what it returned.
    last: Option<(usize, Result<Out, Error>)>,
    /// Whether the last step's error was expected by a `fails`.
    error_expected: bool,
    before: String,
    after: String,
}

impl<'r> Run<'r> {
    /// Runs the row; returns its action log, described.
    fn go(row: &'r Row) -> Result<Vec<String>, String> {
        let engine = match row.ops.first() {
            Some(Op::Limits(config)) => {
                Engine::new(*config).map_err(|e| format!("row `{}`: {e}", row.name))?
            }
            _ => Engine::default(),
        };
        let mut run = Run {
            row,
            engine,
            log: Vec::new(),
            sessions: Vec::new(),
            requests: Vec::new(),
            at: 0,
            last: None,
            error_expected: false,
            before: String::new(),
            after: String::new(),
        };
        for (at, op) in row.ops.iter().enumerate() {
            run.at = at;
            match op {
                Op::Limits(_) if at == 0 => {}
                Op::Limits(_) => return Err(run.fail("`limits` must be the first op")),
                Op::Expect(expect) => run.expect(expect)?,
                step => {
                    run.ready_for_a_step()?;
                    run.before = format!("{:?}", run.engine);
                    let out = run.step(step).map_err(|e| run.fail(&e))?;
                    run.after = format!("{:?}", run.engine);
                    run.drain(at);
                    let ok = out.is_ok();
                    run.last = Some((at, out));
                    run.error_expected = false;
                    if ok {
                        run.record_acceptance(step)?;
                    }
                    run.consistent()?;
                }
            }
        }
        run.at = row.ops.len();
        run.ready_for_a_step()?;
        run.close()?;
        Ok(run.log.iter().map(|l| run.describe(l)).collect())
    }

    // ----- steps -----------------------------------------------------------------------------

    /// Calls the engine for one step. The outer error is a mistake in the row, the inner one
    /// the engine's (or the ID/flag constructors') answer.
    fn step(&mut self, op: &Op) -> Result<Result<Out, Error>, String> {
        let e = &mut self.engine;
        Ok(match op {
            Op::Register(spec) => e.register_handler(spec.clone()).map(|()| Out::Unit),
            Op::Start {
                handler,
                items,
                flags,
                tag,
                retain,
            } => {
                if self.requests.iter().any(|r| r.tag == *tag) {
                    return Err(format!("tag `{tag}` used twice"));
                }
                (|| {
                    let h = HandlerId::new(handler)?;
                    let flags = if *retain {
                        SyncControlFlags::from_bits_retain(*flags)
                    } else {
                        SyncControlFlags::from_raw(*flags)?
                    };
                    let acc = match items {
                        None => e.start_handler_sync(&h, flags)?,
                        Some(list) => {
                            let list = list
                                .iter()
                                .map(ItemId::new)
                                .collect::<Result<Vec<_>, _>>()?;
                            e.start_item_sync(&h, &list, flags)?
                        }
                    };
                    Ok(vec![acc])
                })()
                .map(|accs| self.stash(accs))
            }
            Op::StartAll { flags, .. } => (|| {
                let flags = SyncControlFlags::from_raw(*flags)?;
                e.start_sync_all(flags)
            })()
            .map(|accs| self.stash(accs)),
            Op::CancelRequest(tag) => {
                let id = self.req(tag)?.id;
                self.engine.cancel_request(id).map(Out::Withdrawn)
            }
            Op::Progress {
                s,
                item,
                status,
                text_units,
            } => {
                let s = self.session(*s)?;
                let text = "x".repeat(*text_units);
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine.report_progress(s, &item, *status, &text)
                })()
                .map(Out::Ack)
            }
            Op::Event { s, item, level } => {
                let s = self.session(*s)?;
                (|| {
                    let item = item.map(ItemId::new).transpose()?;
                    self.engine.report_event(s, item.as_ref(), *level)
                })()
                .map(|()| Out::Unit)
            }
            Op::Conflict { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = item.map(ItemId::new).transpose()?;
                    self.engine.report_conflict(s, item.as_ref())
                })()
                .map(|()| Out::Unit)
            }
            Op::AddToSession { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine.add_item_to_session(s, &item)
                })()
                .map(Out::Served)
            }
            Op::Propose { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine.propose_item(s, ItemSpec::new(item))
                })()
                .map(|()| Out::Unit)
            }
            Op::Commit { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine.commit_item(s, &item)
                })()
                .map(|()| Out::Unit)
            }
            Op::Finish { s, failed } => {
                let s = self.session(*s)?;
                let end = if *failed {
                    SessionEnd::Failed
                } else {
                    SessionEnd::Returned
                };
                self.engine.session_finished(s, end).map(Out::Ended)
            }
            Op::StopHandler(h) => (|| e.stop_handler_sync(&HandlerId::new(h)?))().map(Out::Stopped),
            Op::StopItems(h, items) => (|| {
                let h = HandlerId::new(h)?;
                let items = items
                    .iter()
                    .map(ItemId::new)
                    .collect::<Result<Vec<_>, _>>()?;
                e.stop_item_sync(&h, &items)
            })()
            .map(Out::Stopped),
            Op::StopAll => Ok(Out::Stopped(e.stop_sync_all())),
            Op::SetActive(h, on) => {
                (|| e.set_handler_active(&HandlerId::new(h)?, *on))().map(Out::Changed)
            }
            Op::SetEnabled(h, on) => {
                (|| e.set_handler_enabled(&HandlerId::new(h)?, *on))().map(Out::Changed)
            }
            Op::SetItemEnabled(h, item, on) => {
                (|| e.set_item_enabled(&HandlerId::new(h)?, &ItemId::new(item)?, *on))()
                    .map(Out::Changed)
            }
            Op::SetConnected(h, on) => {
                (|| e.set_handler_connected(&HandlerId::new(h)?, *on))().map(Out::Changed)
            }
            Op::Update(h, items) => (|| {
                let h = HandlerId::new(h)?;
                let (caps, policies) = e
                    .handler_view(&h)
                    .map(|v| (v.capabilities, v.policies))
                    .unwrap_or_default();
                let specs = items
                    .iter()
                    .map(|i| ItemId::new(i).map(ItemSpec::new))
                    .collect::<Result<Vec<_>, _>>()?;
                e.update_handler(&h, caps, policies, specs)
            })()
            .map(Out::Changed),
            Op::UpdateCapabilities(h, caps) => (|| {
                let h = HandlerId::new(h)?;
                let (policies, items) = e
                    .handler_view(&h)
                    .map(|v| (v.policies, v.items))
                    .unwrap_or_default();
                let specs = items
                    .into_iter()
                    .map(|(id, on)| ItemSpec::new(id).with_enabled(on))
                    .collect();
                e.update_handler(&h, *caps, policies, specs)
            })()
            .map(Out::Changed),
            Op::UpsertItem(h, item, enabled) => (|| {
                let spec = ItemSpec::new(ItemId::new(item)?).with_enabled(*enabled);
                e.upsert_item(&HandlerId::new(h)?, spec)
            })()
            .map(|_reason| Out::Unit),
            Op::RemoveHandler(h) => (|| e.remove_handler(&HandlerId::new(h)?))().map(Out::Changed),
            Op::RemoveItem(h, item) => {
                (|| e.remove_item(&HandlerId::new(h)?, &ItemId::new(item)?))().map(Out::Changed)
            }
            Op::Shutdown => Ok(Out::Stopped(e.shutdown())),
            Op::Limits(_) | Op::Expect(_) => unreachable!("not a step"),
        })
    }

    /// Keeps the tickets of a start call until its actions are drained (see
    /// `record_acceptance`).
    fn stash(&mut self, accs: Vec<Accepted>) -> Out {
        self.requests.extend(accs.into_iter().map(|acc| Req {
            tag: "",
            id: acc.request,
            handler: acc.handler.clone(),
            accepted: acc,
            items: Vec::new(),
        }));
        Out::Accepted
    }

    /// Names the requests a successful start step made and records their items (from the
    /// engine, or from the result when the request completed at once).
    fn record_acceptance(&mut self, op: &Op) -> Result<(), String> {
        let tags: &[&'static str] = match op {
            Op::Start { tag, .. } => std::slice::from_ref(tag),
            Op::StartAll { tags, .. } => tags,
            _ => return Ok(()),
        };
        let fresh: Vec<usize> = (0..self.requests.len())
            .filter(|&i| self.requests[i].tag.is_empty())
            .collect();
        if fresh.len() != tags.len() {
            return Err(self.fail(&format!(
                "the step made {} requests but the row names {}: {tags:?}",
                fresh.len(),
                tags.len()
            )));
        }
        for (i, tag) in fresh.into_iter().zip(tags) {
            if self.requests.iter().any(|r| r.tag == *tag) {
                return Err(self.fail(&format!("tag `{tag}` used twice")));
            }
            let id = self.requests[i].id;
            let items = match self.engine.request_items(id) {
                Some(items) => items,
                None => self
                    .log
                    .iter()
                    .find_map(|l| match &l.action {
                        Action::Deliver(r) if r.request == id => {
                            Some(r.items.iter().map(|(i, _)| i.clone()).collect())
                        }
                        _ => None,
                    })
                    .ok_or_else(|| self.fail(&format!("{id} is neither open nor delivered")))?,
            };
            let req = &mut self.requests[i];
            req.tag = tag;
            req.items = items;
        }
        Ok(())
    }

    fn drain(&mut self, op: usize) {
        let closing = op == self.row.ops.len();
        for action in self.engine.drain_actions() {
            if let Action::StartSession { session, .. } = &action {
                self.sessions.push(*session);
            }
            self.log.push(Logged {
                op,
                action,
                expected: closing,
            });
        }
    }

    fn consistent(&self) -> Result<(), String> {
        self.engine
            .check_consistency()
            .map_err(|e| self.fail(&format!("check_consistency: {e}")))
    }

    /// Before a step (and at the end): the last step's error and every action so far must
    /// have been expected.
    fn ready_for_a_step(&self) -> Result<(), String> {
        if let Some((at, Err(e))) = &self.last
            && !self.error_expected
        {
            return Err(self.fail(&format!(
                "op #{} failed with {e:?} ({:?}) but the row expects it to succeed",
                at + 1,
                Hr(e.hresult())
            )));
        }
        let unexpected: Vec<String> = self
            .log
            .iter()
            .filter(|l| !l.expected)
            .map(|l| self.describe(l))
            .collect();
        if !unexpected.is_empty() {
            return Err(self.fail(&format!(
                "actions the row does not expect:\n    {}",
                unexpected.join("\n    ")
            )));
        }
        Ok(())
    }

    /// Ends every session still running, then checks that every accepted request got exactly
    /// one result.
    fn close(&mut self) -> Result<(), String> {
        let end = self.row.ops.len();
        for _ in 0..1000 {
            let running = self.engine.sessions();
            if running.is_empty() {
                break;
            }
            for s in running {
                let _ended = self
                    .engine
                    .session_finished(s, SessionEnd::Returned)
                    .map_err(|e| self.fail(&format!("closing {s}: {e}")))?;
                self.drain(end);
                self.consistent()?;
            }
        }
        if !self.engine.sessions().is_empty() {
            return Err(self.fail("sessions keep starting"));
        }
        let open = self.engine.open_requests();
        if !open.is_empty() {
            return Err(self.fail(&format!(
                "no session runs but requests are still open: {open:?}"
            )));
        }
        for req in &self.requests {
            let n = self.results_for(req.id).count();
            if n != 1 {
                return Err(self.fail(&format!(
                    "request `{}` got {n} results; every accepted request gets exactly one",
                    req.tag
                )));
            }
        }
        for l in &self.log {
            if let Action::Deliver(r) = &l.action
                && !self.requests.iter().any(|q| q.id == r.request)
            {
                return Err(self.fail(&format!("a result for a request never accepted: {r:?}")));
            }
        }
        Ok(())
    }

    fn results_for(&self, id: RequestId) -> impl Iterator<Item = &RequestResult> {
        self.log.iter().filter_map(move |l| match &l.action {
            Action::Deliver(r) if r.request == id => Some(r),
            _ => None,
        })
    }

    // ----- expectations ----------------------------------------------------------------------

    fn expect(&mut self, expect: &Expect) -> Result<(), String> {
        match expect {
            Expect::Started { s, handler, items } => {
                let want = Action::StartSession {
                    session: self.session(*s).map_err(|e| self.fail(&e))?,
                    handler: hid(handler),
                    items: items.iter().map(|i| iid(i)).collect(),
                    // The table drives Sync Center requests only.
                    key: MergeKey::DEFAULT,
                };
                self.take(&want)
            }
            Expect::Delivers {
                tag,
                status,
                items,
                errors,
                conflicts,
            } => {
                let req = self.req(tag).map_err(|e| self.fail(&e))?;
                let want = Action::Deliver(RequestResult {
                    request: req.id,
                    handler: req.handler.clone(),
                    status: *status,
                    errors: *errors,
                    conflicts: *conflicts,
                    items: items.iter().map(|(i, o)| (iid(i), *o)).collect(),
                });
                self.take(&want)
            }
            Expect::SendsCancel { s, item } => {
                let want = Action::Cancel {
                    session: self.session(*s).map_err(|e| self.fail(&e))?,
                    request: if item.is_some() {
                        CancelRequest::CancelItem
                    } else {
                        CancelRequest::CancelAll
                    },
                    item: item.map(iid),
                };
                self.take(&want)
            }
            Expect::NothingElse => self.ready_for_a_step(),
            Expect::Fails(hresult, error) => match &self.last {
                Some((_, Err(e))) if e == error && Hr(e.hresult()) == *hresult => {
                    self.error_expected = true;
                    Ok(())
                }
                Some((_, Err(e))) => Err(self.fail(&format!(
                    "expected {error:?} ({hresult:?}), got {e:?} ({:?})",
                    Hr(e.hresult())
                ))),
                other => Err(self.fail(&format!("expected {error:?}, the step gave {other:?}"))),
            },
            Expect::FailsNoSession(n) => {
                let s = self.session(*n).map_err(|e| self.fail(&e))?;
                self.expect(&Expect::Fails(Hr(E_UNEXPECTED), Error::UnknownSession(s)))
            }
            Expect::Unchanged => {
                if self.before == self.after {
                    Ok(())
                } else {
                    let (before, after) = difference(&self.before, &self.after);
                    Err(self.fail(&format!(
                        "the step changed the engine (`{{:?}}` around the first difference):\n    \
                         before: {before}\n    after:  {after}"
                    )))
                }
            }
            Expect::Accepted {
                tag,
                items,
                duplicates,
            } => {
                let req = self.req(tag).map_err(|e| self.fail(&e))?;
                let got: Vec<(String, D)> = req
                    .items
                    .iter()
                    .zip(req.accepted.dispositions())
                    .map(|(i, d)| (i.to_string(), self.disposition(*d)))
                    .collect();
                let want: Vec<(String, D)> =
                    items.iter().map(|(i, d)| (i.to_string(), *d)).collect();
                if got != want || req.items.len() != req.accepted.dispositions().len() {
                    return Err(self.fail(&format!(
                        "`{tag}` dispositions: expected {want:?}, got {got:?}"
                    )));
                }
                if req.accepted.duplicates != *duplicates {
                    return Err(self.fail(&format!(
                        "`{tag}` repeats: expected {duplicates}, got {}",
                        req.accepted.duplicates
                    )));
                }
                Ok(())
            }
            Expect::Pending { handler, items } => {
                let got = self.engine.pending_items(&hid(handler));
                let want: Vec<ItemId> = items.iter().map(|i| iid(i)).collect();
                self.same("pending", &want, &got)
            }
            Expect::Query { s, items, tags } => {
                let s = self.session(*s).map_err(|e| self.fail(&e))?;
                let got = self
                    .engine
                    .query_for_additional_items(s)
                    .map_err(|e| self.fail(&format!("query: {e}")))?;
                let got_tags: Vec<&str> = got.requests.iter().map(|r| self.tag(*r)).collect();
                let want: Vec<ItemId> = items.iter().map(|i| iid(i)).collect();
                self.same("query items", &want, &got.items)?;
                self.same("query requests", &tags.to_vec(), &got_tags)
            }
            Expect::CanContinue { s, item, yes } => {
                let s = self.session(*s).map_err(|e| self.fail(&e))?;
                let got = self
                    .engine
                    .can_continue(s, item.map(iid).as_ref())
                    .map_err(|e| self.fail(&format!("can_continue: {e}")))?;
                self.same("can_continue", yes, &got)
            }
            Expect::Acks { cancel, terminal } => match &self.last {
                Some((_, Ok(Out::Ack(ack)))) => self.same(
                    "progress ack",
                    &(*cancel, *terminal),
                    &(ack.cancel, ack.terminal),
                ),
                other => Err(self.fail(&format!("expected a progress ack, got {other:?}"))),
            },
            Expect::Stops { pending, cancels } => match &self.last {
                Some((_, Ok(Out::Stopped(st)))) => self.same(
                    "stop (canceled pending, cancel requests)",
                    &(*pending, *cancels),
                    &(st.canceled_pending, st.cancel_requests),
                ),
                other => Err(self.fail(&format!("expected a stop, got {other:?}"))),
            },
            Expect::Changes {
                changed,
                canceled_pending,
            } => match &self.last {
                Some((_, Ok(Out::Changed(ch)))) => self.same(
                    "state change (changed, canceled pending)",
                    &(*changed, *canceled_pending),
                    &(ch.changed, ch.canceled_pending),
                ),
                other => Err(self.fail(&format!("expected a state change, got {other:?}"))),
            },
            Expect::EndsWith(outcomes) => match &self.last {
                Some((_, Ok(Out::Ended(ended)))) => {
                    let want: Vec<(ItemId, O)> =
                        outcomes.iter().map(|(i, o)| (iid(i), *o)).collect();
                    self.same("session outcomes", &want, &ended.outcomes)
                }
                other => Err(self.fail(&format!("expected a session end, got {other:?}"))),
            },
            Expect::Served(n) => match &self.last {
                Some((_, Ok(Out::Served(got)))) => self.same("requests served", n, got),
                other => Err(self.fail(&format!("expected add_item_to_session, got {other:?}"))),
            },
            Expect::Withdraws(w) => match &self.last {
                Some((_, Ok(Out::Withdrawn(got)))) => self.same("request cancel", w, got),
                other => Err(self.fail(&format!("expected a request cancel, got {other:?}"))),
            },
            Expect::Idle => {
                if self.engine.is_idle() {
                    Ok(())
                } else {
                    Err(self.fail("the engine is not idle"))
                }
            }
        }
    }

    /// Marks the first unexpected action equal to `want` as expected.
    fn take(&mut self, want: &Action) -> Result<(), String> {
        match self
            .log
            .iter_mut()
            .find(|l| !l.expected && l.action == *want)
        {
            Some(l) => {
                l.expected = true;
                Ok(())
            }
            None => {
                let want = self.describe_action(want);
                let open: Vec<String> = self
                    .log
                    .iter()
                    .filter(|l| !l.expected)
                    .map(|l| self.describe(l))
                    .collect();
                Err(self.fail(&format!(
                    "expected action `{want}`; the unexpected actions are:\n    {}",
                    if open.is_empty() {
                        "(none)".to_string()
                    } else {
                        open.join("\n    ")
                    }
                )))
            }
        }
    }

    fn same<T: PartialEq + std::fmt::Debug + ?Sized>(
        &self,
        what: &str,
        want: &T,
        got: &T,
    ) -> Result<(), String> {
        if want == got {
            Ok(())
        } else {
            Err(self.fail(&format!("{what}: expected {want:?}, got {got:?}")))
        }
    }

    // ----- names -----------------------------------------------------------------------------

    fn session(&self, n: usize) -> Result<SessionId, String> {
        n.checked_sub(1)
            .and_then(|i| self.sessions.get(i))
            .copied()
            .ok_or_else(|| format!("session {n} never started"))
    }

    fn session_number(&self, s: SessionId) -> usize {
        self.sessions
            .iter()
            .position(|x| *x == s)
            .map_or(0, |i| i + 1)
    }

    fn req(&self, tag: &str) -> Result<&Req, String> {
        self.requests
            .iter()
            .find(|r| r.tag == tag)
            .ok_or_else(|| format!("no accepted request is tagged `{tag}`"))
    }

    fn tag(&self, id: RequestId) -> &'static str {
        self.requests
            .iter()
            .find(|r| r.id == id)
            .map_or("?", |r| r.tag)
    }

    fn disposition(&self, d: Disposition) -> D {
        match d {
            Disposition::Queued => Queued,
            Disposition::Merged => Merged,
            Disposition::Joined(s) => Joined(self.session_number(s)),
            Disposition::Settled(o) => Settled(o),
        }
    }

    fn describe(&self, l: &Logged) -> String {
        let when = if l.op == self.row.ops.len() {
            "closing".to_string()
        } else {
            format!("op #{}", l.op + 1)
        };
        format!("[{when}] {}", self.describe_action(&l.action))
    }

    fn describe_action(&self, action: &Action) -> String {
        let names = |items: &[ItemId]| {
            items
                .iter()
                .map(ItemId::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match action {
            Action::StartSession {
                session,
                handler,
                items,
                ..
            } => format!(
                "session {} starts: {handler} [{}]",
                self.session_number(*session),
                names(items)
            ),
            Action::Cancel {
                session,
                request,
                item,
            } => format!(
                "session {} gets {request:?}{}",
                self.session_number(*session),
                item.as_ref().map_or(String::new(), |i| format!(" {i}"))
            ),
            Action::Deliver(r) => {
                let mut items = String::new();
                for (i, o) in &r.items {
                    let _ = write!(
                        items,
                        "{}{i} {o:?}",
                        if items.is_empty() { "" } else { ", " }
                    );
                }
                format!(
                    "`{}` gets {:?} errors={} conflicts={} [{items}]",
                    self.tag(r.request),
                    r.status,
                    r.errors,
                    r.conflicts
                )
            }
        }
    }

    fn fail(&self, msg: &str) -> String {
        let op = match self.row.ops.get(self.at) {
            Some(op) => format!("op #{} of {} `{op:?}`", self.at + 1, self.row.ops.len()),
            None => "after the last op".to_string(),
        };
        let mut out = format!("row `{}`, {op}:\n  {msg}\n  action log:", self.row.name);
        if self.log.is_empty() {
            out.push_str(" (empty)");
        }
        for l in &self.log {
            let mark = if l.expected { " " } else { "!" };
            let _ = write!(out, "\n   {mark} {}", self.describe(l));
        }
        out
    }
}

/// The parts of two `{:?}` texts around their first difference.
fn difference(a: &str, b: &str) -> (String, String) {
    let same_start = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let same_end = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let window = |s: &str| {
        let mut from = same_start.saturating_sub(120);
        let mut to = (s.len() - same_end.min(s.len() - same_start)).min(s.len()) + 40;
        to = to.min(s.len());
        while !s.is_char_boundary(from) {
            from -= 1;
        }
        while !s.is_char_boundary(to) {
            to += 1;
        }
        format!("…{}…", &s[from..to])
    };
    (window(a), window(b))
}

// =============================================================================================
// SPEC section 4: starting a sync (the validation table)
// =============================================================================================

/// 64 UTF-16 units: one more than an ID may hold.
const LONG_ID: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn bad_item_text(text: &str) -> Error {
    Error::InvalidId(ItemId::new(text).unwrap_err())
}

fn bad_handler_text(text: &str) -> Error {
    Error::InvalidId(HandlerId::new(text).unwrap_err())
}

fn unknown_flags(bits: u32, unknown: u32) -> Error {
    Error::UnknownFlags {
        type_name: "SyncControlFlags",
        bits,
        unknown,
    }
}

fn validation_table_rows() -> Vec<Row> {
    use HandlerPolicies as HP;
    use ItemPolicies as IP;
    const S: O = O::Succeeded;
    const DISC: O = O::Disconnected;
    vec![
        row(
            "unknown_handler_is_class_e_classnotavailable",
            vec![
                reg(a()),
                start("r1", "nobody", &["a1"]),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("nobody")),
                unchanged(),
                sync_handler("r2", "nobody"),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("nobody")),
                unchanged(),
            ],
        ),
        row(
            "invalid_id_text_is_e_invalidarg",
            vec![
                reg(a()),
                start("r1", "a", &[""]),
                fails(E_INVALIDARG, bad_item_text("")),
                unchanged(),
                start("r2", "a", &["a1", "a\0"]),
                fails(E_INVALIDARG, bad_item_text("a\0")),
                unchanged(),
                start("r3", "a", &[LONG_ID]),
                fails(E_INVALIDARG, bad_item_text(LONG_ID)),
                unchanged(),
                sync_handler("r4", ""),
                fails(E_INVALIDARG, bad_handler_text("")),
                unchanged(),
                sync_handler("r5", LONG_ID),
                fails(E_INVALIDARG, bad_handler_text(LONG_ID)),
                unchanged(),
            ],
        ),
        row(
            "empty_item_list_is_e_invalidarg",
            vec![
                reg(a()),
                start("r1", "a", &[]),
                fails(E_INVALIDARG, Error::EmptyItemList),
                unchanged(),
            ],
        ),
        row(
            "unknown_flag_bits_are_e_invalidarg",
            vec![
                reg(a()),
                start_raw("r1", "a", &["a1"], 0x2),
                fails(E_INVALIDARG, unknown_flags(0x2, 0x2)),
                unchanged(),
                start_raw("r2", "a", &["a1"], 0x8000_0001),
                fails(E_INVALIDARG, unknown_flags(0x8000_0001, 0x8000_0000)),
                unchanged(),
                // Typed flags can carry unknown bits too: the engine refuses them itself.
                start_retained("r3", "a", &["a1"], 0x3),
                fails(E_INVALIDARG, unknown_flags(0x3, 0x2)),
                unchanged(),
            ],
        ),
        row(
            "item_the_handler_does_not_own_is_e_invalidarg_naming_the_item",
            vec![
                reg(a()),
                reg(b()),
                start("r1", "a", &["a1", "b1", "a2"]),
                fails(E_INVALIDARG, unknown_item("a", "b1")),
                unchanged(),
                remove_item("a", "a2"),
                changes(true, 0),
                start("r2", "a", &["a2"]),
                fails(E_INVALIDARG, unknown_item("a", "a2")),
                unchanged(),
            ],
        ),
        row(
            "the_same_item_twice_is_accepted_and_counted_once",
            vec![
                reg(a()),
                start("r1", "a", &["a2", "a1", "a2"]),
                accepted_with_repeats("r1", &[("a2", Queued), ("a1", Queued)], 1),
                started(1, "a", &["a2", "a1"]),
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers("r1", S, &[("a2", S), ("a1", S)]),
            ],
        ),
        row(
            "handler_prevent_start_sync_is_e_accessdenied",
            vec![
                reg(a().policy(HP::PREVENT_START_SYNC)),
                start("r1", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_START_SYNC)),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_START_SYNC)),
                unchanged(),
            ],
        ),
        row(
            "item_prevent_start_sync_is_e_accessdenied",
            vec![
                reg(a().item_policy("a2", IP::PREVENT_START_SYNC)),
                start("r1", "a", &["a1", "a2"]),
                fails(E_ACCESSDENIED, denied_by_item("a2", IP::PREVENT_START_SYNC)),
                unchanged(),
                // DECISIONS 2: the handler sync leaves the protected item out.
                sync_handler("r2", "a"),
                accepted("r2", &[("a1", Queued), ("a3", Queued), ("a4", Queued)]),
                started(1, "a", &["a1", "a3", "a4"]),
            ],
        ),
        row(
            "inactive_handler_is_e_accessdenied_handler_inactive",
            vec![
                reg(a().inactive()),
                start("r1", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerInactive)),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_ACCESSDENIED, denied(Denied::HandlerInactive)),
                unchanged(),
            ],
        ),
        row(
            "disabled_handler_is_e_accessdenied_handler_disabled",
            vec![
                reg(a().disabled()),
                start("r1", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerDisabled)),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_ACCESSDENIED, denied(Denied::HandlerDisabled)),
                unchanged(),
            ],
        ),
        row(
            "disabled_named_item_is_e_accessdenied_item_disabled",
            vec![
                reg(a().item_off("a3")),
                start("r1", "a", &["a1", "a3"]),
                fails(E_ACCESSDENIED, denied(Denied::ItemDisabled(iid("a3")))),
                unchanged(),
            ],
        ),
        row(
            "handler_sync_leaves_disabled_items_out",
            vec![
                reg(a().item_off("a2")),
                sync_handler("r1", "a"),
                accepted("r1", &[("a1", Queued), ("a3", Queued), ("a4", Queued)]),
                started(1, "a", &["a1", "a3", "a4"]),
                succeed(1, "a1"),
                succeed(1, "a3"),
                succeed(1, "a4"),
                finish(1),
                delivers("r1", S, &[("a1", S), ("a3", S), ("a4", S)]),
            ],
        ),
        row(
            "disconnected_handler_is_accepted_and_completes_at_once_disconnected",
            vec![
                reg(a().offline()),
                start("r1", "a", &["a2", "a1", "a2"]),
                accepted_with_repeats("r1", &[("a2", Settled(DISC)), ("a1", Settled(DISC))], 1),
                delivers("r1", DISC, &[("a2", DISC), ("a1", DISC)]),
                nothing_else(),
                idle(),
                sync_handler("r2", "a"),
                delivers(
                    "r2",
                    DISC,
                    &[("a1", DISC), ("a2", DISC), ("a3", DISC), ("a4", DISC)],
                ),
                // DECISIONS 3: Disconnected even with zero items.
                reg(handler("e", &["e1"]).item_off("e1").offline()),
                sync_handler("r3", "e"),
                delivers("r3", DISC, &[]),
                connect("a", true),
                changes(true, 0),
                start("r4", "a", &["a1"]),
                started(1, "a", &["a1"]),
            ],
        ),
        row(
            "shut_down_is_e_unexpected",
            vec![
                reg(a()),
                shutdown(),
                stops(0, 0),
                start("r1", "a", &["a1"]),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                sync_all(&[]),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
            ],
        ),
        row(
            "handler_with_no_enabled_items_succeeds_at_once_with_zero_items",
            vec![
                reg(handler("e", &["e1", "e2"]).item_off("e1").item_off("e2")),
                reg(handler("none", &[])),
                sync_handler("r1", "e"),
                accepted("r1", &[]),
                delivers("r1", S, &[]),
                sync_handler("r2", "none"),
                delivers("r2", S, &[]),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            // DECISIONS 1 (and the engine docs, which add the flags check): shut down >
            // unknown handler > unknown flag bits > empty list > handler policy > inactive >
            // disabled > each named item in input order.
            "validation_order_first_failure_wins",
            vec![
                reg(a().policy(HP::PREVENT_START_SYNC).inactive().disabled()),
                reg(handler("i", &["i1"]).inactive().disabled()),
                reg(handler("d", &["d1"]).disabled()),
                reg(handler("n", &["n1", "n2", "n3"])
                    .item_policy("n2", IP::PREVENT_START_SYNC)
                    .item_off("n3")),
                start_retained("r1", "nobody", &[], 0x2),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("nobody")),
                start_retained("r1b", "a", &[], 0x2),
                fails(E_INVALIDARG, unknown_flags(0x2, 0x2)),
                start("r2", "a", &[]),
                fails(E_INVALIDARG, Error::EmptyItemList),
                start("r3", "a", &["zz"]),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_START_SYNC)),
                start("r4", "i", &["zz"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerInactive)),
                start("r5", "d", &["zz"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerDisabled)),
                start("r6", "n", &["n3", "zz", "n2"]),
                fails(E_ACCESSDENIED, denied(Denied::ItemDisabled(iid("n3")))),
                start("r7", "n", &["n1", "zz", "n3"]),
                fails(E_INVALIDARG, unknown_item("n", "zz")),
                start("r8", "n", &["n2", "n3"]),
                fails(E_ACCESSDENIED, denied_by_item("n2", IP::PREVENT_START_SYNC)),
                unchanged(),
                shutdown(),
                stops(0, 0),
                start("r9", "nobody", &[]),
                fails(E_UNEXPECTED, Error::ShutDown),
            ],
        ),
        row(
            "start_sync_all_makes_one_request_per_active_enabled_handler",
            vec![
                reg(a()),
                reg(b().offline()),
                reg(c().disabled()),
                reg(handler("e", &["e1"]).item_off("e1")),
                reg(handler("p", &["p1"]).policy(HP::PREVENT_START_SYNC)),
                sync_all(&["ra", "rb"]),
                accepted(
                    "ra",
                    &[
                        ("a1", Queued),
                        ("a2", Queued),
                        ("a3", Queued),
                        ("a4", Queued),
                    ],
                ),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                delivers("rb", DISC, &[("b1", DISC), ("b2", DISC)]),
            ],
        ),
    ]
}

#[test]
fn validation_table() {
    check_all(validation_table_rows());
}

/// Invalid ID text and unknown flag bits never reach the engine: the constructors refuse them
/// with `E_INVALIDARG` (the rows above go through the same constructors).
#[test]
fn id_and_flag_constructors_refuse_bad_input_with_e_invalidarg() {
    let too_long_but_few_bytes = "é".repeat(64);
    for text in ["", "a\0b", LONG_ID, too_long_but_few_bytes.as_str()] {
        let item = ItemId::new(text).unwrap_err();
        assert_eq!(item.input(), text);
        assert_eq!(Error::from(item).hresult(), E_INVALIDARG, "{text:?}");
        let handler = HandlerId::new(text).unwrap_err();
        assert_eq!(Error::from(handler).hresult(), E_INVALIDARG, "{text:?}");
    }
    assert!(ItemId::new("é".repeat(63)).is_ok());
    for bits in [0x2, 0x3, 0x10, 0x8000_0000] {
        let err = SyncControlFlags::from_raw(bits).unwrap_err();
        assert_eq!(err, unknown_flags(bits, bits & !0x1));
        assert_eq!(err.hresult(), E_INVALIDARG);
    }
    assert_eq!(
        SyncControlFlags::from_raw(JOIN),
        Ok(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING)
    );
}

// =============================================================================================
// SPEC section 5: current versus queued
// =============================================================================================

fn current_versus_queued_rows() -> Vec<Row> {
    const S: O = O::Succeeded;
    const F: O = O::Failed;
    const C: O = O::Canceled;
    vec![
        row(
            "one_session_at_a_time_per_handler",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                accepted("r1", &[("a1", Queued)]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                accepted("r2", &[("a2", Queued)]),
                nothing_else(),
                pending("a", &["a2"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2"]),
                succeed(2, "a2"),
                finish(2),
                delivers("r2", S, &[("a2", S)]),
                idle(),
            ],
        ),
        row(
            "different_handlers_run_side_by_side",
            vec![
                reg(a()),
                reg(b()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "b", &["b1"]),
                started(2, "b", &["b1"]),
            ],
        ),
        row(
            "concurrent_handler_runs_sessions_up_to_its_limit",
            vec![
                reg(k()),
                start("r1", "k", &["k1"]),
                started(1, "k", &["k1"]),
                start("r2", "k", &["k2"]),
                started(2, "k", &["k2"]),
                start("r3", "k", &["k3"]),
                nothing_else(),
                pending("k", &["k3"]),
                succeed(2, "k2"),
                finish(2),
                delivers("r2", S, &[("k2", S)]),
                started(3, "k", &["k3"]),
            ],
        ),
        row(
            "concurrent_handler_never_runs_an_item_in_two_sessions",
            vec![
                reg(k()),
                start("r1", "k", &["k1"]),
                started(1, "k", &["k1"]),
                start("r2", "k", &["k1", "k2"]),
                accepted("r2", &[("k1", Queued), ("k2", Queued)]),
                started(2, "k", &["k2"]),
                pending("k", &["k1"]),
                succeed(1, "k1"),
                finish(1),
                delivers("r1", S, &[("k1", S)]),
                started(3, "k", &["k1"]),
                succeed(2, "k2"),
                finish(2),
                nothing_else(),
                report(3, "k1", PS::Failed),
                finish(3),
                delivers("r2", F, &[("k1", F), ("k2", S)]),
            ],
        ),
        row(
            "global_limit_caps_sessions_across_handlers",
            vec![
                limits(2),
                reg(a()),
                reg(b()),
                reg(k()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "k", &["k1"]),
                started(2, "k", &["k1"]),
                // k may run two sessions, but two run in all.
                start("r3", "k", &["k2"]),
                start("r4", "b", &["b1"]),
                nothing_else(),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(3, "k", &["k2"]),
                succeed(2, "k1"),
                finish(2),
                delivers("r2", S, &[("k1", S)]),
                started(4, "b", &["b1"]),
            ],
        ),
        row(
            "fairness_the_handler_with_the_oldest_pending_request_gets_the_next_slot",
            vec![
                limits(1),
                reg(a()),
                reg(b()),
                reg(c()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                // Arrival order c, b, a: the reverse of registration order.
                start("r2", "c", &["c1"]),
                start("r3", "b", &["b1"]),
                start("r4", "a", &["a2"]),
                start("r5", "c", &["c2"]),
                nothing_else(),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "c", &["c1", "c2"]),
                succeed(2, "c1"),
                succeed(2, "c2"),
                finish(2),
                delivers("r2", S, &[("c1", S)]),
                delivers("r5", S, &[("c2", S)]),
                started(3, "b", &["b1"]),
                succeed(3, "b1"),
                finish(3),
                delivers("r3", S, &[("b1", S)]),
                started(4, "a", &["a2"]),
            ],
        ),
        row(
            "join_with_the_flag_takes_the_running_outcome_and_is_not_queued",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                join("r2", "a", &["a1", "a3"]),
                accepted("r2", &[("a1", Joined(1)), ("a3", Queued)]),
                pending("a", &["a3"]),
                report(1, "a1", PS::Failed),
                succeed(1, "a2"),
                finish(1),
                delivers("r1", F, &[("a1", F), ("a2", S)]),
                started(2, "a", &["a3"]),
                succeed(2, "a3"),
                finish(2),
                delivers("r2", F, &[("a1", F), ("a3", S)]),
            ],
        ),
        row(
            "join_of_an_item_that_is_only_pending_merges",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                join("r3", "a", &["a2"]),
                accepted("r3", &[("a2", Merged)]),
                pending("a", &["a2"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2"]),
                succeed(2, "a2"),
                finish(2),
                delivers("r2", S, &[("a2", S)]),
                delivers("r3", S, &[("a2", S)]),
            ],
        ),
        row(
            "without_the_flag_a_running_item_is_synced_again_in_a_later_session",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a1"]),
                accepted("r2", &[("a1", Queued)]),
                pending("a", &["a1"]),
                nothing_else(),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a1"]),
                report(2, "a1", PS::Failed),
                finish(2),
                delivers("r2", F, &[("a1", F)]),
            ],
        ),
        row(
            "a_pending_item_is_queued_once_and_later_requests_merge",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2", "a3"]),
                accepted("r2", &[("a2", Queued), ("a3", Queued)]),
                start("r3", "a", &["a3", "a2"]),
                accepted("r3", &[("a3", Merged), ("a2", Merged)]),
                pending("a", &["a2", "a3"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2", "a3"]),
                succeed(2, "a2"),
                report(2, "a3", PS::Canceled),
                finish(2),
                delivers("r2", C, &[("a2", S), ("a3", C)]),
                delivers("r3", C, &[("a3", C), ("a2", S)]),
            ],
        ),
        row(
            "no_stale_join_after_a_terminal_report",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                succeed(1, "a1"),
                join("r2", "a", &["a1"]),
                accepted("r2", &[("a1", Queued)]),
                pending("a", &["a1"]),
                succeed(1, "a2"),
                finish(1),
                delivers("r1", S, &[("a1", S), ("a2", S)]),
                started(2, "a", &["a1"]),
                report(2, "a1", PS::Failed),
                finish(2),
                delivers("r2", F, &[("a1", F)]),
            ],
        ),
        row(
            // DECISIONS 5: an item with a cancel requested is not "currently syncing".
            "no_join_once_a_cancel_was_requested",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                stop_items("a", &["a1"]),
                stops(0, 1),
                sends_cancel_item(1, "a1"),
                join("r2", "a", &["a1"]),
                accepted("r2", &[("a1", Queued)]),
                finish(1),
                ends_with(&[("a1", C)]),
                delivers("r1", C, &[("a1", C)]),
                started(2, "a", &["a1"]),
                succeed(2, "a1"),
                finish(2),
                delivers("r2", S, &[("a1", S)]),
            ],
        ),
        row(
            "flags_are_judged_at_acceptance_a_join_keeps_its_join_after_a_stop",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                join("r2", "a", &["a1"]),
                accepted("r2", &[("a1", Joined(1))]),
                stop_items("a", &["a1"]),
                stops(0, 1),
                sends_cancel_item(1, "a1"),
                // r2 is not queued again: it takes what session 1 gives.
                pending("a", &[]),
                finish(1),
                ends_with(&[("a1", C)]),
                delivers("r1", C, &[("a1", C)]),
                delivers("r2", C, &[("a1", C)]),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            "busy_time_requests_give_exactly_one_next_session_with_the_union_in_order",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a3", "a2"]),
                start("r3", "a", &["a2", "a4"]),
                sync_handler("r4", "a"),
                accepted(
                    "r4",
                    &[
                        ("a1", Queued),
                        ("a2", Merged),
                        ("a3", Merged),
                        ("a4", Merged),
                    ],
                ),
                nothing_else(),
                pending("a", &["a3", "a2", "a4", "a1"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a3", "a2", "a4", "a1"]),
                nothing_else(),
                succeed(2, "a1"),
                succeed(2, "a2"),
                succeed(2, "a3"),
                succeed(2, "a4"),
                finish(2),
                delivers("r2", S, &[("a3", S), ("a2", S)]),
                delivers("r3", S, &[("a2", S), ("a4", S)]),
                delivers("r4", S, &[("a1", S), ("a2", S), ("a3", S), ("a4", S)]),
                nothing_else(),
            ],
        ),
        row(
            "query_for_additional_items_lists_pending_items_and_the_requests_waiting",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                query_gives(1, &[], &[]),
                start("r2", "a", &["a2", "a3"]),
                start("r3", "a", &["a3"]),
                start("r4", "a", &["a4"]),
                query_gives(1, &["a2", "a3", "a4"], &["r2", "r3", "r4"]),
            ],
        ),
        row(
            "add_item_to_session_pulls_an_item_and_its_requests_take_the_outcome_there",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                start("r3", "a", &["a2", "a3"]),
                add_to_session(1, "a2"),
                served(2),
                pending("a", &["a3"]),
                query_gives(1, &["a3"], &["r3"]),
                succeed(1, "a1"),
                report(1, "a2", PS::Failed),
                finish(1),
                ends_with(&[("a1", S), ("a2", F)]),
                delivers("r1", S, &[("a1", S)]),
                delivers("r2", F, &[("a2", F)]),
                started(2, "a", &["a3"]),
                succeed(2, "a3"),
                finish(2),
                delivers("r3", F, &[("a2", F), ("a3", S)]),
            ],
        ),
        row(
            "adding_an_item_already_in_the_session_is_e_invalidarg",
            vec![
                reg(a()),
                reg(b()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                add_to_session(1, "a1"),
                fails(E_INVALIDARG, Error::ItemAlreadyInSession(iid("a1"))),
                unchanged(),
                // Requested again while it runs: pending, but still in this session.
                start("r2", "a", &["a1"]),
                add_to_session(1, "a1"),
                fails(E_INVALIDARG, Error::ItemAlreadyInSession(iid("a1"))),
                unchanged(),
                add_to_session(1, "a2"),
                fails(E_INVALIDARG, Error::ItemNotPending(iid("a2"))),
                unchanged(),
                add_to_session(1, "b1"),
                fails(E_INVALIDARG, unknown_item("a", "b1")),
                unchanged(),
            ],
        ),
        row(
            "add_item_to_session_never_takes_an_item_another_session_holds",
            vec![
                reg(k()),
                start("r1", "k", &["k1"]),
                started(1, "k", &["k1"]),
                start("r2", "k", &["k1", "k2"]),
                started(2, "k", &["k2"]),
                pending("k", &["k1"]),
                query_gives(2, &[], &[]),
                add_to_session(2, "k1"),
                fails(E_INVALIDARG, Error::ItemNotPending(iid("k1"))),
                unchanged(),
            ],
        ),
        row(
            // Every row runs twice and must give the same log; this one mixes the most.
            "the_same_steps_give_the_same_sessions_in_the_same_order",
            vec![
                limits(2),
                reg(a()),
                reg(b()),
                reg(k()),
                sync_all(&["ra", "rb", "rk"]),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                started(2, "b", &["b1", "b2"]),
                join("r4", "a", &["a2", "a1"]),
                accepted("r4", &[("a2", Joined(1)), ("a1", Joined(1))]),
                start("r5", "k", &["k3", "k1"]),
                accepted("r5", &[("k3", Merged), ("k1", Merged)]),
                start("r6", "b", &["b2"]),
                start("r7", "a", &["a4"]),
                nothing_else(),
                succeed(1, "a1"),
                report(1, "a2", PS::Disconnected),
                finish(1),
                ends_with(&[("a1", S), ("a2", O::Disconnected), ("a3", F), ("a4", F)]),
                delivers(
                    "ra",
                    F,
                    &[("a1", S), ("a2", O::Disconnected), ("a3", F), ("a4", F)],
                ),
                delivers("r4", O::Disconnected, &[("a2", O::Disconnected), ("a1", S)]),
                started(3, "k", &["k1", "k2", "k3"]),
                finish(2),
                delivers("rb", F, &[("b1", F), ("b2", F)]),
                started(4, "b", &["b2"]),
                stop_all(),
                stops(1, 2),
                sends_cancel_all(3),
                sends_cancel_all(4),
                delivers("r7", C, &[("a4", C)]),
            ],
        ),
    ]
}

#[test]
fn current_versus_queued() {
    check_all(current_versus_queued_rows());
}

// =============================================================================================
// SPEC section 6: inside a session (the engine's side of it)
// =============================================================================================

fn inside_a_session_rows() -> Vec<Row> {
    const S: O = O::Succeeded;
    const F: O = O::Failed;
    const C: O = O::Canceled;
    const NO_CANCEL: CancelRequest = CancelRequest::None;
    vec![
        row(
            "terminal_rule_only_failed_is_accepted_after_a_terminal_report",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3", "a4"]),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                report(1, "a1", PS::Updating),
                acks(NO_CANCEL, false),
                report(1, "a1", PS::UpdatingIndeterminate),
                acks(NO_CANCEL, false),
                succeed(1, "a1"),
                acks(NO_CANCEL, true),
                report(1, "a1", PS::Updating),
                fails(E_ACCESSDENIED, terminal("a1", S, PS::Updating)),
                report(1, "a2", PS::Canceled),
                report(1, "a2", PS::Failed),
                acks(NO_CANCEL, true),
                report(1, "a3", PS::Disconnected),
                report(1, "a3", PS::Succeeded),
                fails(
                    E_ACCESSDENIED,
                    terminal("a3", O::Disconnected, PS::Succeeded),
                ),
                report(1, "a4", PS::Failed),
                report(1, "a4", PS::Canceled),
                fails(E_ACCESSDENIED, terminal("a4", F, PS::Canceled)),
                finish(1),
                // The refused reports marked a1 and a3 Failed.
                ends_with(&[("a1", F), ("a2", F), ("a3", F), ("a4", F)]),
                delivers("r1", F, &[("a1", F), ("a2", F), ("a3", F), ("a4", F)]),
            ],
        ),
        row(
            "unreported_items_end_failed_and_canceled_ones_canceled",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3"]),
                started(1, "a", &["a1", "a2", "a3"]),
                report(1, "a1", PS::Updating),
                stop_items("a", &["a2"]),
                stops(0, 1),
                sends_cancel_item(1, "a2"),
                succeed(1, "a3"),
                finish(1),
                ends_with(&[("a1", F), ("a2", C), ("a3", S)]),
                delivers("r1", F, &[("a1", F), ("a2", C), ("a3", S)]),
            ],
        ),
        row(
            "a_failed_or_panicked_session_settles_its_items_by_the_same_rule",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3"]),
                started(1, "a", &["a1", "a2", "a3"]),
                succeed(1, "a1"),
                stop_items("a", &["a3"]),
                stops(0, 1),
                sends_cancel_item(1, "a3"),
                finish_failed(1),
                ends_with(&[("a1", S), ("a2", F), ("a3", C)]),
                delivers("r1", F, &[("a1", S), ("a2", F), ("a3", C)]),
                // The engine keeps working.
                start("r2", "a", &["a2"]),
                started(2, "a", &["a2"]),
            ],
        ),
        row(
            "progress_text_over_the_limit_is_e_invalidarg_and_changes_nothing",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                report_text(1, "a1", PS::Succeeded, 260),
                fails(
                    E_INVALIDARG,
                    Error::TextTooLong {
                        kind: TextKind::Progress,
                        units: 261,
                        max: 260,
                    },
                ),
                unchanged(),
                report_text(1, "a1", PS::Succeeded, 259),
                acks(NO_CANCEL, true),
            ],
        ),
        row(
            "progress_for_an_item_not_in_the_session_is_e_invalidarg",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                report(1, "a2", PS::Succeeded),
                fails(E_INVALIDARG, Error::ItemNotInSession(iid("a2"))),
                unchanged(),
                report(1, "zz", PS::Succeeded),
                fails(E_INVALIDARG, Error::ItemNotInSession(iid("zz"))),
                unchanged(),
            ],
        ),
        row(
            "proposed_items_join_the_handler_and_the_session_once_committed",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                propose(1, "new"),
                propose(1, "new"),
                fails(E_INVALIDARG, item_exists("a", "new")),
                unchanged(),
                propose(1, "a2"),
                fails(E_INVALIDARG, item_exists("a", "a2")),
                unchanged(),
                commit(1, "other"),
                fails(E_INVALIDARG, Error::ItemNotProposed(iid("other"))),
                unchanged(),
                // Not an item of the handler until committed.
                start("r2", "a", &["new"]),
                fails(E_INVALIDARG, unknown_item("a", "new")),
                unchanged(),
                commit(1, "new"),
                succeed(1, "new"),
                succeed(1, "a1"),
                finish(1),
                ends_with(&[("a1", S), ("new", S)]),
                delivers("r1", S, &[("a1", S)]),
                start("r3", "a", &["new"]),
                started(2, "a", &["new"]),
            ],
        ),
        row(
            "a_session_that_ended_refuses_session_calls_with_e_unexpected",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                succeed(1, "a1"),
                fails_no_session(1),
                unchanged(),
                event(1, None, EventLevel::Error),
                fails_no_session(1),
                add_to_session(1, "a2"),
                fails_no_session(1),
                finish(1),
                fails_no_session(1),
                unchanged(),
            ],
        ),
    ]
}

fn item_exists(h: &str, item: &str) -> Error {
    Error::ItemExists {
        handler: hid(h),
        item: iid(item),
    }
}

#[test]
fn inside_a_session() {
    check_all(inside_a_session_rows());
}

// =============================================================================================
// SPEC section 7: results (status precedence, error and conflict counts)
// =============================================================================================

fn results_and_aggregation_rows() -> Vec<Row> {
    use EventLevel::{Error as ERROR, Information, Warning};
    const S: O = O::Succeeded;
    const F: O = O::Failed;
    const C: O = O::Canceled;
    const DISC: O = O::Disconnected;
    vec![
        row(
            "status_all_succeeded_is_succeeded",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                succeed(1, "a1"),
                succeed(1, "a2"),
                // DECISIONS 8: outcomes reach the request when the session ends.
                nothing_else(),
                finish(1),
                delivers("r1", S, &[("a1", S), ("a2", S)]),
            ],
        ),
        row(
            "status_canceled_beats_succeeded",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                succeed(1, "a1"),
                report(1, "a2", PS::Canceled),
                finish(1),
                delivers("r1", C, &[("a1", S), ("a2", C)]),
            ],
        ),
        row(
            "status_disconnected_beats_canceled",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3"]),
                started(1, "a", &["a1", "a2", "a3"]),
                report(1, "a1", PS::Canceled),
                report(1, "a2", PS::Disconnected),
                succeed(1, "a3"),
                finish(1),
                delivers("r1", DISC, &[("a1", C), ("a2", DISC), ("a3", S)]),
            ],
        ),
        row(
            "status_failed_beats_disconnected",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3", "a4"]),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                report(1, "a1", PS::Disconnected),
                report(1, "a2", PS::Failed),
                report(1, "a3", PS::Canceled),
                succeed(1, "a4"),
                finish(1),
                delivers("r1", F, &[("a1", DISC), ("a2", F), ("a3", C), ("a4", S)]),
            ],
        ),
        row(
            // The closing phase of `check` ends session 1 (a1 unreported) and counts results.
            "exactly_one_result_per_accepted_request_whatever_happens",
            vec![
                reg(a()),
                reg(b()),
                reg(c().offline()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                start("r3", "a", &["a3"]),
                start("r4", "b", &["b1"]),
                started(2, "b", &["b1"]),
                start("r5", "b", &["b2"]),
                start("r6", "c", &["c1"]),
                delivers("r6", DISC, &[("c1", DISC)]),
                cancel_request("r2"),
                withdraws(Withdrawn::Withdrawn),
                delivers("r2", C, &[("a2", C)]),
                cancel_request("r2"),
                withdraws(Withdrawn::AlreadyComplete),
                stop_items("a", &["a3"]),
                stops(1, 0),
                delivers("r3", C, &[("a3", C)]),
                remove("b"),
                changes(true, 1),
                delivers("r5", C, &[("b2", C)]),
                report(2, "b1", PS::Succeeded),
                finish(2),
                delivers("r4", S, &[("b1", S)]),
            ],
        ),
        row(
            "errors_and_conflicts_count_for_the_requests_items_or_handler_wide",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                join("r2", "a", &["a2"]),
                // Pending: session 1 does not serve r3.
                start("r3", "a", &["a3"]),
                event(1, Some("a1"), ERROR),   // r1
                event(1, Some("a2"), ERROR),   // r1, r2
                event(1, None, ERROR),         // r1, r2: handler-wide
                event(1, Some("a1"), Warning), // nobody: not an error
                event(1, None, Information),   // nobody
                event(1, Some("a3"), ERROR),   // nobody: a3 is not in session 1
                event(1, Some("zz"), ERROR),
                fails(E_INVALIDARG, unknown_item("a", "zz")),
                unchanged(),
                conflict(1, Some("a2")), // r1, r2
                conflict(1, None),       // r1, r2
                conflict(1, Some("a1")), // r1
                conflict(1, Some("a4")), // nobody
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers_counted("r1", S, &[("a1", S), ("a2", S)], 3, 3),
                delivers_counted("r2", S, &[("a2", S)], 2, 2),
                started(2, "a", &["a3"]),
                event(2, None, ERROR),
                succeed(2, "a3"),
                finish(2),
                delivers_counted("r3", S, &[("a3", S)], 1, 0),
            ],
        ),
        row(
            "errors_add_up_over_every_session_that_served_the_request",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                join("r2", "a", &["a1", "a2"]),
                accepted("r2", &[("a1", Joined(1)), ("a2", Queued)]),
                event(1, None, ERROR),
                conflict(1, Some("a1")),
                succeed(1, "a1"),
                finish(1),
                delivers_counted("r1", S, &[("a1", S)], 1, 1),
                started(2, "a", &["a2"]),
                event(2, None, ERROR),
                event(2, Some("a2"), ERROR),
                succeed(2, "a2"),
                finish(2),
                delivers_counted("r2", S, &[("a1", S), ("a2", S)], 3, 1),
            ],
        ),
        row(
            "a_pulled_item_counts_the_sessions_events_for_its_requests",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                // Before the pull, and still counted for r2: a request shares the result of
                // the whole session that serves it, however late it joined.
                event(1, None, ERROR),
                add_to_session(1, "a2"),
                served(1),
                event(1, None, ERROR),       // r1, r2
                event(1, Some("a2"), ERROR), // r2
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers_counted("r1", S, &[("a1", S)], 2, 0),
                delivers_counted("r2", S, &[("a2", S)], 3, 0),
                nothing_else(),
            ],
        ),
    ]
}

#[test]
fn results_and_aggregation() {
    check_all(results_and_aggregation_rows());
}

// =============================================================================================
// SPEC section 7: stopping
// =============================================================================================

fn stopping_rows() -> Vec<Row> {
    use HandlerPolicies as HP;
    use ItemPolicies as IP;
    const S: O = O::Succeeded;
    const C: O = O::Canceled;
    vec![
        row(
            "stop_handler_cancels_pending_at_once_and_sends_cancel_all_to_running",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                start("r2", "a", &["a3"]),
                start("r3", "a", &["a3", "a1"]),
                stop_handler("a"),
                stops(2, 1),
                delivers("r2", C, &[("a3", C)]),
                delivers("r3", C, &[("a3", C), ("a1", C)]),
                sends_cancel_all(1),
                pending("a", &[]),
                succeed(1, "a1"),
                acks(CancelRequest::CancelAll, true),
                finish(1),
                ends_with(&[("a1", S), ("a2", C)]),
                delivers("r1", C, &[("a1", S), ("a2", C)]),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            "stop_item_cancels_the_named_pending_and_running_items_only",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                start("r2", "a", &["a3", "a4"]),
                stop_items("a", &["a2", "a3"]),
                stops(1, 1),
                sends_cancel_item(1, "a2"),
                pending("a", &["a4"]),
                succeed(1, "a1"),
                finish(1),
                ends_with(&[("a1", S), ("a2", C)]),
                delivers("r1", C, &[("a1", S), ("a2", C)]),
                started(2, "a", &["a4"]),
                succeed(2, "a4"),
                finish(2),
                delivers("r2", C, &[("a3", C), ("a4", S)]),
            ],
        ),
        row(
            "stop_sync_all_stops_every_handler",
            vec![
                reg(a()),
                reg(b()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "b", &["b1"]),
                started(2, "b", &["b1"]),
                start("r3", "a", &["a2"]),
                stop_all(),
                stops(1, 2),
                sends_cancel_all(1),
                sends_cancel_all(2),
                delivers("r3", C, &[("a2", C)]),
                finish(1),
                delivers("r1", C, &[("a1", C)]),
                finish(2),
                delivers("r2", C, &[("b1", C)]),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            "running_items_see_the_cancel_through_report_progress_and_can_continue",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                can_continue(1, None, true),
                can_continue(1, Some("a1"), true),
                stop_items("a", &["a1"]),
                stops(0, 1),
                sends_cancel_item(1, "a1"),
                report(1, "a1", PS::Updating),
                acks(CancelRequest::CancelItem, false),
                report(1, "a2", PS::Updating),
                acks(CancelRequest::None, false),
                can_continue(1, Some("a1"), false),
                can_continue(1, Some("a2"), true),
                can_continue(1, None, true),
                stop_handler("a"),
                stops(0, 1),
                sends_cancel_all(1),
                report(1, "a2", PS::UpdatingIndeterminate),
                acks(CancelRequest::CancelAll, false),
                can_continue(1, Some("a2"), false),
                can_continue(1, None, false),
                report(1, "a1", PS::Canceled),
                acks(CancelRequest::CancelAll, true),
            ],
        ),
        row(
            "handler_prevent_stop_sync_refuses_the_stop_and_changes_nothing",
            vec![
                reg(a().policy(HP::PREVENT_STOP_SYNC)),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                stop_handler("a"),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_STOP_SYNC)),
                unchanged(),
                stop_items("a", &["a2"]),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_STOP_SYNC)),
                unchanged(),
                // DECISIONS 11: stop_sync_all skips the handler and never fails.
                stop_all(),
                stops(0, 0),
                unchanged(),
            ],
        ),
        row(
            "item_prevent_stop_sync_refuses_the_stop_and_changes_nothing",
            vec![
                reg(a().item_policy("a2", IP::PREVENT_STOP_SYNC)),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                start("r2", "a", &["a2", "a3"]),
                stop_items("a", &["a1", "a2"]),
                fails(E_ACCESSDENIED, denied_by_item("a2", IP::PREVENT_STOP_SYNC)),
                unchanged(),
                stop_items("a", &["a3", "a2"]),
                fails(E_ACCESSDENIED, denied_by_item("a2", IP::PREVENT_STOP_SYNC)),
                unchanged(),
            ],
        ),
        row(
            // DECISIONS 11: a whole-handler stop leaves protected items alone.
            "stop_handler_leaves_items_with_prevent_stop_sync_alone",
            vec![
                reg(a().item_policy("a2", IP::PREVENT_STOP_SYNC)),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                start("r2", "a", &["a2", "a3"]),
                stop_handler("a"),
                stops(1, 1),
                sends_cancel_item(1, "a1"),
                pending("a", &["a2"]),
                succeed(1, "a2"),
                finish(1),
                ends_with(&[("a1", C), ("a2", S)]),
                delivers("r1", C, &[("a1", C), ("a2", S)]),
                started(2, "a", &["a2"]),
                succeed(2, "a2"),
                finish(2),
                delivers("r2", C, &[("a2", S), ("a3", C)]),
            ],
        ),
        row(
            "stopping_what_is_not_running_or_pending_succeeds_and_does_nothing",
            vec![
                reg(a()),
                reg(b()),
                stop_handler("a"),
                stops(0, 0),
                unchanged(),
                stop_items("a", &["a1"]),
                stops(0, 0),
                unchanged(),
                stop_all(),
                stops(0, 0),
                unchanged(),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                stop_items("a", &["a3"]),
                stops(0, 0),
                unchanged(),
                stop_handler("b"),
                stops(0, 0),
                unchanged(),
                stop_items("a", &["a1"]),
                stops(0, 1),
                sends_cancel_item(1, "a1"),
                // Asked already: no second cancel.
                stop_items("a", &["a1"]),
                stops(0, 0),
                unchanged(),
                // Finished already: nothing to cancel.
                succeed(1, "a2"),
                stop_items("a", &["a2"]),
                stops(0, 0),
                unchanged(),
                stop_handler("a"),
                stops(0, 1),
                sends_cancel_all(1),
                stop_handler("a"),
                stops(0, 0),
                unchanged(),
                stop_all(),
                stops(0, 0),
                unchanged(),
            ],
        ),
        row(
            "stop_calls_check_their_arguments_all_or_nothing",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                stop_handler("nobody"),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("nobody")),
                unchanged(),
                stop_items("a", &[]),
                fails(E_INVALIDARG, Error::EmptyItemList),
                unchanged(),
                stop_items("a", &["a1", "zz"]),
                fails(E_INVALIDARG, unknown_item("a", "zz")),
                unchanged(),
            ],
        ),
    ]
}

#[test]
fn stopping() {
    check_all(stopping_rows());
}

// =============================================================================================
// SPEC section 7: per-request cancel
// =============================================================================================

fn per_request_cancel_rows() -> Vec<Row> {
    const S: O = O::Succeeded;
    const C: O = O::Canceled;
    const W: Withdrawn = Withdrawn::Withdrawn;
    vec![
        row(
            "cancel_withdraws_only_that_request_and_the_others_keep_going",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                start("r3", "a", &["a2", "a3"]),
                cancel_request("r2"),
                withdraws(W),
                delivers("r2", C, &[("a2", C)]),
                pending("a", &["a2", "a3"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2", "a3"]),
                succeed(2, "a2"),
                succeed(2, "a3"),
                finish(2),
                delivers("r3", S, &[("a2", S), ("a3", S)]),
            ],
        ),
        row(
            "cancel_removes_a_pending_item_nobody_else_waits_for",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2", "a3"]),
                start("r3", "a", &["a3"]),
                cancel_request("r2"),
                withdraws(W),
                delivers("r2", C, &[("a2", C), ("a3", C)]),
                pending("a", &["a3"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a3"]),
            ],
        ),
        row(
            "cancel_sends_cancel_item_for_a_running_item_nobody_else_waits_for",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                join("r2", "a", &["a2"]),
                accepted("r2", &[("a2", Joined(1))]),
                cancel_request("r1"),
                withdraws(W),
                sends_cancel_item(1, "a1"),
                delivers("r1", C, &[("a1", C), ("a2", C)]),
                can_continue(1, Some("a1"), false),
                can_continue(1, Some("a2"), true),
                succeed(1, "a2"),
                finish(1),
                ends_with(&[("a1", C), ("a2", S)]),
                delivers("r2", S, &[("a2", S)]),
            ],
        ),
        row(
            "a_canceled_request_gets_canceled_only_for_unfinished_items",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                join("r2", "a", &["a1", "a2", "a3"]),
                accepted("r2", &[("a1", Joined(1)), ("a2", Queued), ("a3", Queued)]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2", "a3"]),
                succeed(2, "a2"),
                cancel_request("r2"),
                withdraws(W),
                // a1 ended in session 1, a2 reached Succeeded in session 2: both kept.
                sends_cancel_item(2, "a3"),
                delivers("r2", C, &[("a1", S), ("a2", S), ("a3", C)]),
                finish(2),
                ends_with(&[("a2", S), ("a3", C)]),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            "canceling_a_completed_request_changes_nothing",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                cancel_request("r1"),
                withdraws(Withdrawn::AlreadyComplete),
                unchanged(),
                connect("a", false),
                start("r2", "a", &["a1"]),
                delivers("r2", O::Disconnected, &[("a1", O::Disconnected)]),
                cancel_request("r2"),
                withdraws(Withdrawn::AlreadyComplete),
                unchanged(),
            ],
        ),
    ]
}

#[test]
fn per_request_cancel() {
    check_all(per_request_cancel_rows());
}

// =============================================================================================
// SPEC section 7: state changes
// =============================================================================================

fn state_change_rows() -> Vec<Row> {
    use HandlerPolicies as HP;
    use ItemPolicies as IP;
    const S: O = O::Succeeded;
    const C: O = O::Canceled;
    vec![
        row(
            "disabling_a_handler_cancels_pending_and_the_running_session_finishes",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                start("r3", "a", &["a1", "a3"]),
                enable("a", false),
                changes(true, 3),
                delivers("r2", C, &[("a2", C)]),
                delivers("r3", C, &[("a1", C), ("a3", C)]),
                nothing_else(),
                pending("a", &[]),
                can_continue(1, None, true),
                start("r4", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerDisabled)),
                unchanged(),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                nothing_else(),
                enable("a", true),
                changes(true, 0),
                start("r5", "a", &["a1"]),
                started(2, "a", &["a1"]),
            ],
        ),
        row(
            "deactivating_a_handler_cancels_pending_and_the_running_session_finishes",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                activate("a", false),
                changes(true, 1),
                delivers("r2", C, &[("a2", C)]),
                nothing_else(),
                start("r3", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerInactive)),
                unchanged(),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                nothing_else(),
                activate("a", true),
                changes(true, 0),
                start("r4", "a", &["a1"]),
                started(2, "a", &["a1"]),
            ],
        ),
        row(
            // DECISIONS 16: the ID is free at once; the old session still finishes.
            "removing_a_handler_cancels_pending_and_the_running_session_finishes",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                remove("a"),
                changes(true, 1),
                delivers("r2", C, &[("a2", C)]),
                nothing_else(),
                start("r3", "a", &["a1"]),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("a")),
                unchanged(),
                reg(a()),
                start("r4", "a", &["a1"]),
                started(2, "a", &["a1"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                succeed(2, "a1"),
                finish(2),
                delivers("r4", S, &[("a1", S)]),
            ],
        ),
        row(
            "disabling_an_item_cancels_its_pending_entry_and_the_running_session_keeps_it",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                start("r2", "a", &["a1", "a3"]),
                enable_item("a", "a1", false),
                changes(true, 1),
                nothing_else(),
                pending("a", &["a3"]),
                can_continue(1, Some("a1"), true),
                start("r3", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied(Denied::ItemDisabled(iid("a1")))),
                unchanged(),
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers("r1", S, &[("a1", S), ("a2", S)]),
                started(2, "a", &["a3"]),
                succeed(2, "a3"),
                finish(2),
                delivers("r2", C, &[("a1", C), ("a3", S)]),
            ],
        ),
        row(
            "removing_an_item_cancels_its_pending_entry_and_the_running_session_keeps_it",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                start("r2", "a", &["a1", "a3"]),
                remove_item("a", "a1"),
                changes(true, 1),
                nothing_else(),
                pending("a", &["a3"]),
                start("r3", "a", &["a1"]),
                fails(E_INVALIDARG, unknown_item("a", "a1")),
                unchanged(),
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers("r1", S, &[("a1", S), ("a2", S)]),
                started(2, "a", &["a3"]),
                succeed(2, "a3"),
                finish(2),
                delivers("r2", C, &[("a1", C), ("a3", S)]),
            ],
        ),
        row(
            "update_handler_cancels_pending_items_that_went_away_and_running_ones_finish",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                start("r2", "a", &["a2", "a3", "a4"]),
                update("a", &["a1", "a3"]),
                changes(true, 2),
                nothing_else(),
                pending("a", &["a3"]),
                start("r3", "a", &["a4"]),
                fails(E_INVALIDARG, unknown_item("a", "a4")),
                unchanged(),
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                ends_with(&[("a1", S), ("a2", S)]),
                delivers("r1", S, &[("a1", S), ("a2", S)]),
                started(2, "a", &["a3"]),
                succeed(2, "a3"),
                finish(2),
                delivers("r2", C, &[("a2", C), ("a3", S), ("a4", C)]),
            ],
        ),
        row(
            "update_item_disabling_an_item_cancels_its_pending_entry",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2", "a3"]),
                update_item("a", "a2", false),
                nothing_else(),
                pending("a", &["a3"]),
                update_item("a", "a5", true),
                start("r3", "a", &["a5"]),
                accepted("r3", &[("a5", Queued)]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a3", "a5"]),
                succeed(2, "a3"),
                succeed(2, "a5"),
                finish(2),
                delivers("r2", C, &[("a2", C), ("a3", S)]),
                delivers("r3", S, &[("a5", S)]),
            ],
        ),
        row(
            "disconnecting_affects_only_requests_accepted_afterwards",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                connect("a", false),
                changes(true, 0),
                nothing_else(),
                pending("a", &["a2"]),
                start("r3", "a", &["a3"]),
                accepted("r3", &[("a3", Settled(O::Disconnected))]),
                delivers("r3", O::Disconnected, &[("a3", O::Disconnected)]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2"]),
            ],
        ),
        row(
            "prevent_enable_refuses_enable_handler_with_e_accessdenied",
            vec![
                reg(a().disabled().policy(HP::PREVENT_ENABLE)),
                enable("a", true),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_ENABLE)),
                unchanged(),
            ],
        ),
        row(
            "prevent_disable_refuses_disable_handler_with_e_accessdenied",
            vec![
                reg(a().policy(HP::PREVENT_DISABLE)),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                enable("a", false),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_DISABLE)),
                unchanged(),
            ],
        ),
        row(
            "prevent_activate_refuses_activate_handler_with_e_accessdenied",
            vec![
                reg(a().inactive().policy(HP::PREVENT_ACTIVATE)),
                activate("a", true),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_ACTIVATE)),
                unchanged(),
            ],
        ),
        row(
            "prevent_deactivate_refuses_deactivate_handler_with_e_accessdenied",
            vec![
                reg(a().policy(HP::PREVENT_DEACTIVATE)),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                activate("a", false),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_DEACTIVATE)),
                unchanged(),
            ],
        ),
        row(
            // DECISIONS 13: the policy refuses the call even when it would change nothing.
            "state_policies_refuse_even_a_call_that_changes_nothing",
            vec![
                reg(a().policy(HP::PREVENT_ENABLE | HP::PREVENT_ACTIVATE)),
                enable("a", true),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_ENABLE)),
                unchanged(),
                activate("a", true),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_ACTIVATE)),
                unchanged(),
                // The other direction is not protected.
                enable("a", false),
                changes(true, 0),
            ],
        ),
        row(
            "item_prevent_enable_and_prevent_disable_refuse_with_e_accessdenied",
            vec![
                reg(a()
                    .item_policy("a1", IP::PREVENT_DISABLE)
                    .item_off("a2")
                    .item_policy("a2", IP::PREVENT_ENABLE)),
                start("r1", "a", &["a3"]),
                started(1, "a", &["a3"]),
                start("r2", "a", &["a1"]),
                enable_item("a", "a1", false),
                fails(E_ACCESSDENIED, denied_by_item("a1", IP::PREVENT_DISABLE)),
                unchanged(),
                enable_item("a", "a2", true),
                fails(E_ACCESSDENIED, denied_by_item("a2", IP::PREVENT_ENABLE)),
                unchanged(),
            ],
        ),
    ]
}

#[test]
fn state_changes() {
    check_all(state_change_rows());
}

// =============================================================================================
// SPEC section 7: shutdown
// =============================================================================================

fn shutdown_rows() -> Vec<Row> {
    const S: O = O::Succeeded;
    const F: O = O::Failed;
    const C: O = O::Canceled;
    vec![
        row(
            "shutdown_cancels_pending_asks_sessions_to_cancel_and_refuses_new_work",
            vec![
                reg(a()),
                reg(b()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                start("r3", "b", &["b1"]),
                started(2, "b", &["b1"]),
                join("r4", "b", &["b1", "b2"]),
                accepted("r4", &[("b1", Joined(2)), ("b2", Queued)]),
                shutdown(),
                stops(2, 2),
                delivers("r2", C, &[("a2", C)]),
                sends_cancel_all(1),
                sends_cancel_all(2),
                pending("a", &[]),
                pending("b", &[]),
                start("r5", "a", &["a1"]),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                sync_all(&[]),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                reg(c()),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                enable("a", false),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                activate("a", false),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                enable_item("a", "a1", false),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                connect("a", false),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                update("a", &["a1"]),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                update_item("a", "a9", true),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                remove_item("a", "a1"),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                remove("a"),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                // Session calls keep working so the sessions can end.
                succeed(1, "a1"),
                acks(CancelRequest::CancelAll, true),
                event(2, None, EventLevel::Error),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                nothing_else(),
                finish(2),
                ends_with(&[("b1", C)]),
                delivers_counted("r3", C, &[("b1", C)], 1, 0),
                delivers_counted("r4", C, &[("b1", C), ("b2", C)], 1, 0),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            "stops_cancels_and_session_calls_keep_working_after_shutdown",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                join("r2", "a", &["a2"]),
                shutdown(),
                stops(0, 1),
                sends_cancel_all(1),
                shutdown(),
                stops(0, 0),
                unchanged(),
                stop_all(),
                stops(0, 0),
                unchanged(),
                stop_handler("a"),
                stops(0, 0),
                unchanged(),
                stop_items("a", &["a1"]),
                stops(0, 0),
                unchanged(),
                cancel_request("r2"),
                withdraws(Withdrawn::Withdrawn),
                delivers("r2", C, &[("a2", C)]),
                report(1, "a1", PS::Failed),
                acks(CancelRequest::CancelAll, true),
                can_continue(1, None, false),
                finish(1),
                ends_with(&[("a1", F), ("a2", C)]),
                delivers("r1", F, &[("a1", F), ("a2", C)]),
                idle(),
            ],
        ),
    ]
}

#[test]
fn shutting_down() {
    check_all(shutdown_rows());
}

// =============================================================================================
// Where the engine and SPEC disagree: rows kept with the SPEC-correct expectation
// =============================================================================================

/// SPEC section 7 (and DECISIONS 13): `update_handler` re-reads capabilities, and running
/// sessions finish normally. Dropping `SUPPORTS_CONCURRENT_SESSIONS` while two sessions run
/// is legal: both sessions finish normally and no new one starts until the handler is under
/// its new limit of one. (Regression: the engine's self-check once called this state broken.)
#[test]
fn update_handler_dropping_concurrency_lets_running_sessions_finish() {
    const S: O = O::Succeeded;
    check_all(vec![row(
        "update_handler_dropping_concurrency_lets_running_sessions_finish",
        vec![
            reg(k()),
            start("r1", "k", &["k1"]),
            started(1, "k", &["k1"]),
            start("r2", "k", &["k2"]),
            started(2, "k", &["k2"]),
            start("r3", "k", &["k3"]),
            update_capabilities("k", HandlerCapabilities::empty()),
            changes(true, 0),
            nothing_else(),
            succeed(1, "k1"),
            finish(1),
            delivers("r1", S, &[("k1", S)]),
            // One session still runs: the new limit of one is reached.
            nothing_else(),
            succeed(2, "k2"),
            finish(2),
            delivers("r2", S, &[("k2", S)]),
            started(3, "k", &["k3"]),
        ],
    )]);
}

/// SPEC section 5: "handlers waiting for a slot get it in the order their oldest pending
/// request arrived". After b's oldest request is withdrawn, b's oldest pending request is r4,
/// younger than c's r3, so c goes first. (Regression: the engine once ranked b by the
/// withdrawn request that created its pending entry.)
#[test]
fn fairness_ranks_by_requests_still_pending() {
    const S: O = O::Succeeded;
    const C: O = O::Canceled;
    check_all(vec![row(
        "fairness_ranks_handlers_by_their_oldest_request_still_pending",
        vec![
            limits(1),
            reg(a()),
            reg(b()),
            reg(c()),
            start("r1", "a", &["a1"]),
            started(1, "a", &["a1"]),
            start("r2", "b", &["b1"]),
            start("r3", "c", &["c1"]),
            start("r4", "b", &["b1"]),
            cancel_request("r2"),
            withdraws(Withdrawn::Withdrawn),
            delivers("r2", C, &[("b1", C)]),
            succeed(1, "a1"),
            finish(1),
            delivers("r1", S, &[("a1", S)]),
            started(2, "c", &["c1"]),
        ],
    )]);
}
