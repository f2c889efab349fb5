//! The random operations that drive the engine and the model, and how each one resolves into
//! the concrete calls of `driver.rs` against what exists when it runs. The property tests
//! (`tests/properties.rs`) draw operations with proptest; the engine fuzz target
//! (`fuzz/fuzz_targets/engine.rs`) decodes them from libFuzzer's bytes. Both include this file
//! with `#[path]`, next to the model and the driver, so both run the same operations.

use std::time::Duration;

use syncmgr::engine::{
    Action, Engine, HandlerSpec, ItemSpec, MergeKey, RequestOptions, SessionEnd,
};
use syncmgr::{
    Cause, EngineConfig, Error, EventLevel, HandlerCapabilities, HandlerId, ItemId, ItemPolicies,
    MAX_DELAY, ProgressStatus, RequestId, Retry, SessionId, SyncControlFlags, SyncPolicy, Time,
    Trigger, TriggerReason,
};

use crate::driver::{Call, Reply};
use crate::model::MDisposition;

pub fn hid(s: &str) -> HandlerId {
    HandlerId::new(s).unwrap()
}

pub fn iid(s: &str) -> ItemId {
    ItemId::new(s).unwrap()
}

/// Every item name a handler of the universe may ever own: the first few are registered (3
/// to 5 in the property tests, 3 or 4 in the fuzz target), the rest can come with an update.
pub const NAMES: [&str; 6] = ["i0", "i1", "i2", "i3", "i4", "i5"];
/// Names no handler owns at first ("i5") or ever ("zz").
pub const STRANGERS: [&str; 2] = ["i5", "zz"];
/// The most items one start or stop names; longer lists (only the fuzzer makes them) are cut.
pub const MAX_NAMED: usize = 6;
/// See `Op::StartKeyed`.
pub const AGAIN: u8 = 96;

// ----- the universe: handlers fixed per case --------------------------------------------------

/// The engine's limits and the handlers a case registers first.
#[derive(Clone, Debug)]
pub struct Universe {
    pub config: EngineConfig,
    pub specs: Vec<HandlerSpec>,
    /// Whether the policies that operations set have retry jitter and schedule flex (see
    /// `policy`). The model knows neither: only the engine-alone properties set this.
    pub jitter: bool,
}

impl Universe {
    pub fn spec(&self, id: &HandlerId) -> Option<&HandlerSpec> {
        self.specs.iter().find(|s| s.id == *id)
    }
}

/// The first `count` names, with these policies (none past the end of `policies`), disabled
/// where `disabled` has the item's bit.
pub fn items(count: usize, policies: &[ItemPolicies], disabled: u8) -> Vec<ItemSpec> {
    (0..count)
        .map(|n| {
            ItemSpec::new(iid(NAMES[n]))
                .with_policies(policies.get(n).copied().unwrap_or_default())
                .with_enabled(disabled & (1 << n) == 0)
        })
        .collect()
}

// ----- operations: indices into what exists, resolved when they run ---------------------------

/// One random operation. The `u8`s select among what exists when the operation runs (a
/// handler, a running session, an issued request, an item), so a sequence stays meaningful
/// whatever came before it. High values select something unknown on purpose.
///
/// The fuzz target derives `Arbitrary` for it; the property tests build with `cfg(test)` and
/// have no `arbitrary` (they draw operations with proptest).
#[derive(Clone, Debug)]
#[cfg_attr(not(test), derive(arbitrary::Arbitrary))]
pub enum Op {
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
    /// `Engine::start_sync`: a handler sync (`items: None`) or an item sync, under a key.
    /// `key` below `AGAIN` repeats the handler and key of the last keyed request accepted (as
    /// a legacy application invokes its handler with its cookie again and again), so that
    /// requests of one key meet while a session of that key runs.
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
        /// See [`status`].
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
        /// See [`level`].
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
    /// `disabled` below 128 keeps every listed item enabled; from 128 its bits disable.
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
    /// Time moves (by zero, a little, several periods, exactly to the next deadline or just
    /// before it, or back), then `Engine::poll`. See [`advance`].
    Advance {
        by: u8,
    },
    /// `Engine::set_sync_policy`, now and then out of range on purpose. See [`policy`].
    SetPolicy {
        h: u8,
        policy: PolicySel,
    },
    /// `Engine::trigger`, one of the three triggers.
    Trigger {
        which: u8,
    },
    /// `Engine::start_sync_with`: expedited ("Sync now") and/or without retry; mostly of the
    /// default key (`key` below 192).
    StartWith {
        h: u8,
        items: Option<Vec<u8>>,
        flags: u8,
        key: u8,
        expedite: bool,
        no_retry: bool,
    },
    /// `Engine::report_permanent_failure` for an item of a session.
    Permanent {
        s: u8,
        item: u8,
        text: u8,
    },
}

/// What a sync policy is made of; see [`policy`]. All zeros is the default policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(test), derive(arbitrary::Arbitrary))]
pub struct PolicySel {
    pub debounce: u8,
    pub retry: u8,
    pub schedule: u8,
    /// Bit 0: `Connect`, bit 1: `PendingDisconnect`, bit 2: `Idle`.
    pub triggers: u8,
    /// From 224, one field is out of range (`broken`); below, the policy is valid.
    pub broken: u8,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A sync policy. Debounce: none (3 in 8), or (quiet, max-wait) of (0, 0), (1 s, 3 s), (2 s,
/// 5 s), (500 ms, 10 s), (5 s, 5 s), and (`MAX_DELAY`, `MAX_DELAY`) for `debounce` ≥ 248. Retry:
/// none (3 in 8), or up to 2 attempts from 1 s doubling to 10 s, 3 from 250 ms tripling to 2 s,
/// 4 from 1 s by 1.5 to 5 s, 3 with no delay, 4 every 2 s; 3 from `MAX_DELAY` for `retry` ≥
/// 248. Schedule: none (half), or every 5 s, 10 s, 30 s or 2 s; every `MAX_DELAY` for
/// `schedule` ≥ 248. Triggers from the bits of `triggers`. With `jitter` the retry gets a
/// jitter of 0.25, 0.5 or 1 and the schedule a flex of 0, half or all of its period; without,
/// both are 0, and the delays are multiples of 250 ms and the factors of 1/2, so that the
/// model's exact arithmetic and the engine's floating point agree.
pub fn policy(sel: &PolicySel, jitter: bool) -> SyncPolicy {
    let debounce = match (sel.debounce, sel.debounce % 8) {
        (248.., _) => Some((MAX_DELAY, MAX_DELAY)),
        (_, 0..=2) => None,
        (_, 3) => Some((Duration::ZERO, Duration::ZERO)),
        (_, 4) => Some((secs(1), secs(3))),
        (_, 5) => Some((secs(2), secs(5))),
        (_, 6) => Some((millis(500), secs(10))),
        _ => Some((secs(5), secs(5))),
    }
    .map(|(quiet, max_wait)| syncmgr::Debounce { quiet, max_wait });
    let retry = match (sel.retry, sel.retry % 8) {
        (248.., _) => Retry::exponential(3, MAX_DELAY, MAX_DELAY).with_factor(3.0),
        (_, 0..=2) => Retry::NONE,
        (_, 3) => Retry::exponential(2, secs(1), secs(10)),
        (_, 4) => Retry::exponential(3, millis(250), secs(2)).with_factor(3.0),
        (_, 5) => Retry::exponential(4, secs(1), secs(5)).with_factor(1.5),
        (_, 6) => Retry::exponential(3, Duration::ZERO, Duration::ZERO).with_factor(1.0),
        _ => Retry::exponential(4, secs(2), secs(3)).with_factor(1.0),
    };
    let mut p = SyncPolicy {
        debounce,
        retry,
        ..SyncPolicy::default()
    };
    if jitter && p.retry.retries() {
        p.retry.jitter = [0.25, 0.5, 1.0][usize::from(sel.retry / 8) % 3];
    }
    let every = match (sel.schedule, sel.schedule % 8) {
        (248.., _) => Some(MAX_DELAY),
        (_, 0..=3) => None,
        (_, 4) => Some(secs(5)),
        (_, 5) => Some(secs(10)),
        (_, 6) => Some(secs(30)),
        _ => Some(secs(2)),
    };
    if let Some(every) = every {
        let flex = match (jitter, sel.schedule / 8 % 3) {
            (false, _) | (_, 0) => Duration::ZERO,
            (_, 1) => every / 2,
            _ => every,
        };
        p = p.every_with_flex(every, flex);
    }
    for (bit, trigger) in Trigger::ALL.into_iter().enumerate() {
        if sel.triggers & (1 << bit) != 0 {
            p = p.on(trigger);
        }
    }
    if sel.broken >= 224 {
        broken(&mut p, sel.broken - 224);
    }
    p
}

/// Puts one field of `p` out of range (SPEC 11: max-wait below quiet, a factor below 1 or not
/// finite, jitter outside [0, 1], flex above the period, a zero period, zero attempts, a delay
/// over `MAX_DELAY`); each case breaks exactly one field, so the field the refusal names is
/// not a matter of checking order.
fn broken(p: &mut SyncPolicy, sel: u8) {
    let over = MAX_DELAY + secs(1);
    let debounce = |quiet, max_wait| Some(syncmgr::Debounce { quiet, max_wait });
    match sel % 14 {
        0 => p.debounce = debounce(secs(5), secs(1)),
        1 => p.debounce = debounce(over, over),
        2 => p.debounce = debounce(secs(1), over),
        3 => p.retry.factor = 0.5,
        4 => p.retry.factor = f64::NAN,
        5 => p.retry.factor = f64::INFINITY,
        6 => p.retry.jitter = 1.5,
        7 => p.retry.jitter = -0.25,
        8 => p.retry.max_attempts = 0,
        9 => p.retry.initial = over,
        10 => p.retry.max = over,
        11 => {
            p.schedule = Some(syncmgr::Schedule {
                every: Duration::ZERO,
                flex: Duration::ZERO,
            })
        }
        12 => {
            p.schedule = Some(syncmgr::Schedule {
                every: secs(5),
                flex: secs(6),
            })
        }
        _ => {
            p.schedule = Some(syncmgr::Schedule {
                every: over,
                flex: Duration::ZERO,
            })
        }
    }
}

/// Where `Op::Advance` moves time, from `now`: not at all (1 in 16), 250 ms to 1 s, 1 to 5 s,
/// 5 to 30 s, one to ten minutes (many periods at once), exactly to the next deadline, 1 ns
/// before it, or 1 s back (which counts as now).
pub fn advance(by: u8, now: Time, deadline: Option<Time>) -> Time {
    let back = |d: Duration| Time::from_duration(now.since_origin().saturating_sub(d));
    let step = |unit: Duration, n: u8, of: u8| now + unit * u32::from(1 + n % of);
    match by {
        0..=15 => now,
        16..=79 => step(millis(250), by, 4),
        80..=159 => step(secs(1), by, 5),
        160..=199 => step(secs(5), by, 6),
        200..=219 => step(secs(60), by, 10),
        220..=239 => deadline.unwrap_or(now + secs(1)),
        240..=247 => match deadline {
            Some(d) if d > now => Time::from_duration(d.since_origin() - Duration::from_nanos(1)),
            _ => now,
        },
        _ => back(secs(1)),
    }
}

/// Start flags: `NONE` or `IGNORE_IF_ALREADY_SYNCING`, and rarely a value with an undefined
/// bit (possible through bitflags' `from_bits_retain`).
pub fn start_flags(sel: u8) -> SyncControlFlags {
    match sel {
        0..=247 if sel % 2 == 1 => SyncControlFlags::IGNORE_IF_ALREADY_SYNCING,
        0..=247 => SyncControlFlags::NONE,
        _ => SyncControlFlags::from_bits_retain(0x2 | u32::from(sel % 2)),
    }
}

/// The merge key of a keyed start (`Engine::start_sync`): the default key now and then, else
/// one of three cookies (the empty cookie is a key of its own, distinct from the default).
pub fn merge_key(sel: u8) -> MergeKey {
    match sel % 8 {
        0 => MergeKey::DEFAULT,
        1 => MergeKey::cookie(b""),
        2..=5 => MergeKey::cookie(b"a"),
        _ => MergeKey::cookie(b"b"),
    }
}

/// A progress status, `Succeeded` twice as often as each other one.
pub fn status(sel: u8) -> ProgressStatus {
    match sel % 7 {
        0 => ProgressStatus::Updating,
        1 => ProgressStatus::UpdatingIndeterminate,
        2 | 3 => ProgressStatus::Succeeded,
        4 => ProgressStatus::Failed,
        5 => ProgressStatus::Canceled,
        _ => ProgressStatus::Disconnected,
    }
}

/// An event level, `Error` half the time.
pub fn level(sel: u8) -> EventLevel {
    match sel % 4 {
        0 => EventLevel::Information,
        1 => EventLevel::Warning,
        _ => EventLevel::Error,
    }
}

/// Progress texts: mostly short; at the limit (259 units) and just over it (260) rarely,
/// including characters of two UTF-16 units and of two UTF-8 bytes.
pub fn text(sel: u8) -> String {
    match sel {
        0..=199 => String::new(),
        200..=239 => "syncing".to_string(),
        240..=243 => "x".repeat(259),
        244..=247 => "é".repeat(259),
        248..=251 => "x".repeat(260),
        _ => "😀".repeat(130),
    }
}

/// A name for `propose_item`/`commit_item`: mostly a new one (so that commits find their
/// proposal), sometimes one the handler usually owns, or one only an update adds.
pub fn proposal(sel: u8) -> ItemId {
    iid(match sel {
        0..=159 => "n0",
        160..=207 => "n1",
        208..=231 => "i0",
        _ => STRANGERS[0],
    })
}

/// One of `candidates`; a stranger for high values or when there is none.
pub fn pick(sel: u8, candidates: &[ItemId]) -> ItemId {
    if sel >= 236 || candidates.is_empty() {
        iid(STRANGERS[usize::from(sel) % STRANGERS.len()])
    } else {
        candidates[usize::from(sel) % candidates.len()].clone()
    }
}

// ----- what operations select from ------------------------------------------------------------

/// What a harness has seen of a run, besides the engine's own state: what operations select
/// sessions and requests from, and repeat keyed starts of.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every session started so far, running or ended, in start order.
    pub started: Vec<SessionId>,
    /// Every request accepted so far, in acceptance order (request `n` is at `n - 1`).
    pub requests: Vec<RequestId>,
    /// The handler and key of the last keyed request accepted (`Op::StartKeyed`).
    pub last_keyed: Option<(HandlerId, MergeKey)>,
}

/// A request one call made: the start call's, a trigger's or a tick's.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub id: RequestId,
    pub handler: HandlerId,
    pub items: Vec<ItemId>,
    /// What became of each item, when the call's reply says (a poll's ticks have no reply).
    pub dispositions: Option<Vec<MDisposition>>,
    /// Why the engine made it (`Action::Issued`), if the engine made it.
    pub issued: Option<TriggerReason>,
}

impl Seen {
    /// Notes what one call did (the engine's reply and actions): the sessions it started, a
    /// keyed start, and the requests it made (those its reply accepted, and those a poll's
    /// ticks issued), which it returns in order with their items (from the result if the
    /// request completed at once, else from the open request). An error says that request
    /// numbers came out of order or a request was lost.
    pub fn note(
        &mut self,
        engine: &Engine,
        call: &Call,
        got: &Result<Reply, Error>,
        actions: &[Action],
    ) -> Result<Vec<NewRequest>, String> {
        if let (Call::StartSync(h, _, _, key), Ok(_)) = (call, got)
            && !key.is_default()
        {
            self.last_keyed = Some((h.clone(), key.clone()));
        }
        let mut made: Vec<(u64, HandlerId, Option<Vec<MDisposition>>)> = got
            .as_ref()
            .map(Reply::accepted)
            .unwrap_or_default()
            .into_iter()
            .map(|acc| {
                let d = Some(acc.dispositions.clone());
                (acc.request, acc.handler.clone(), d)
            })
            .collect();
        let issued: Vec<(u64, HandlerId, TriggerReason)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Issued {
                    request,
                    handler,
                    reason,
                } => Some((request.get(), handler.clone(), *reason)),
                _ => None,
            })
            .collect();
        if made.is_empty() {
            // A poll: its ticks' requests have no reply.
            made = issued
                .iter()
                .map(|(r, h, _)| (*r, h.clone(), None))
                .collect();
        }
        let mut accepted = Vec::new();
        for (request, handler, dispositions) in made {
            if request != self.requests.len() as u64 + 1 {
                return Err(format!(
                    "request numbers are issued in order: got {} after {}",
                    request,
                    self.requests.len()
                ));
            }
            let delivered = actions.iter().find_map(|a| match a {
                Action::Deliver(r) if r.request.get() == request => Some(r),
                _ => None,
            });
            let (id, items) = match delivered {
                Some(result) => (
                    result.request,
                    result.items.iter().map(|o| o.item.clone()).collect(),
                ),
                None => {
                    let open = engine.open_requests();
                    let Some(&id) = open.iter().find(|r| r.get() == request) else {
                        return Err(format!(
                            "(a) accepted request {request} is neither open nor delivered"
                        ));
                    };
                    (id, engine.request_items(id).unwrap_or_default())
                }
            };
            self.requests.push(id);
            accepted.push(NewRequest {
                id,
                handler,
                items,
                dispositions,
                issued: issued
                    .iter()
                    .find(|(r, _, _)| *r == request)
                    .map(|(_, _, why)| *why),
            });
        }
        if accepted.len() < issued.len() {
            return Err(format!(
                "the engine announced {issued:?}, the call made {} requests",
                accepted.len()
            ));
        }
        for a in actions {
            if let Action::StartSession { session, .. } = a {
                self.started.push(*session);
            }
        }
        Ok(accepted)
    }
}

/// Turns an operation into the calls it stands for, given what exists now.
pub fn resolve(op: &Op, universe: &Universe, engine: &Engine, seen: &Seen) -> Vec<Call> {
    Scene {
        universe,
        engine,
        seen,
    }
    .resolve(op)
}

/// What an operation is resolved against.
struct Scene<'a> {
    universe: &'a Universe,
    engine: &'a Engine,
    seen: &'a Seen,
}

impl Scene<'_> {
    fn handler(&self, sel: u8) -> HandlerId {
        if sel >= 240 {
            return hid("ghost");
        }
        let specs = &self.universe.specs;
        specs[usize::from(sel) % specs.len()].id.clone()
    }

    /// The handler's items now (live ones, enabled or not), or every name.
    fn items_of(&self, h: &HandlerId) -> Vec<ItemId> {
        match self.engine.handler_view(h) {
            Some(view) => view.items.into_iter().map(|(i, _)| i).collect(),
            None => NAMES.iter().map(|n| iid(n)).collect(),
        }
    }

    /// Up to `MAX_NAMED` of the handler's items.
    fn named(&self, h: &HandlerId, sels: &[u8]) -> Vec<ItemId> {
        let known = self.items_of(h);
        sels.iter()
            .take(MAX_NAMED)
            .map(|&i| pick(i, &known))
            .collect()
    }

    /// A running session mostly; sometimes one that already ended.
    fn session(&self, sel: u8) -> Option<SessionId> {
        let running = self.engine.sessions();
        let started = &self.seen.started;
        if (sel >= 224 || running.is_empty()) && !started.is_empty() {
            return Some(started[usize::from(sel) % started.len()]);
        }
        (!running.is_empty()).then(|| running[usize::from(sel) % running.len()])
    }

    /// The session's items, for choosing one; a stranger now and then.
    fn session_item(&self, s: SessionId, sel: u8) -> ItemId {
        let items: Vec<ItemId> = self
            .engine
            .session_view(s)
            .map(|v| v.items.into_iter().map(|si| si.item).collect())
            .unwrap_or_default();
        if sel >= 200 {
            // An item of the handler that may or may not be in this session.
            let names: Vec<ItemId> = NAMES.iter().map(|n| iid(n)).collect();
            return pick(sel, &names);
        }
        pick(sel, &items)
    }

    fn resolve(&self, op: &Op) -> Vec<Call> {
        let session = |sel| self.session(sel);
        let one = |c: Option<Call>| c.into_iter().collect::<Vec<_>>();
        match op {
            Op::StartItems { h, items, flags } => {
                let h = self.handler(*h);
                let items = self.named(&h, items);
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
                let (h, key) = match &self.seen.last_keyed {
                    Some(last) if *key < AGAIN => last.clone(),
                    _ => (self.handler(*h), merge_key(*key)),
                };
                let items = items.as_ref().map(|items| self.named(&h, items));
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
            Op::AddItem { s, pick: sel } => one(session(*s).map(|s| {
                // Mostly an item the session could take (query_for_additional_items); else
                // one of its own, or a stranger.
                let free = self
                    .engine
                    .query_for_additional_items(s)
                    .map(|extra| extra.items)
                    .unwrap_or_default();
                let item = if *sel < 160 && !free.is_empty() {
                    free[usize::from(*sel) % free.len()].clone()
                } else if *sel < 200 {
                    self.session_item(s, *sel)
                } else {
                    let handler = self.engine.session_view(s).map(|v| v.handler);
                    let items = handler.map(|h| self.items_of(&h)).unwrap_or_default();
                    pick(*sel, &items)
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
                        SessionEnd::Failed(Cause::new("synchronize failed"))
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
                let items = self.named(&h, items);
                vec![Call::StopItems(h, items)]
            }
            Op::StopAll => vec![Call::StopAll],
            Op::CancelRequest { r } => {
                // Any request accepted so far: open ones are withdrawn, completed ones answer
                // "already complete".
                let requests = &self.seen.requests;
                let n = requests.len();
                one((n > 0).then(|| Call::Cancel(requests[usize::from(*r) % n])))
            }
            Op::SetActive { h, on } => vec![Call::SetActive(self.handler(*h), *on)],
            Op::SetEnabled { h, on } => vec![Call::SetEnabled(self.handler(*h), *on)],
            Op::SetItemEnabled { h, item, on } => {
                let h = self.handler(*h);
                let item = pick(*item, &self.items_of(&h));
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
                    // Lowering the limit while sessions run leaves them running (DECISIONS
                    // 13); raising it may start more at once.
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
                // Mostly the item's own policies; sometimes new ones while it is pending or
                // running (judged at the next call that looks at them).
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
                let item = pick(*item, &self.items_of(&h));
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
            Op::Advance { by } => vec![Call::Poll(advance(
                *by,
                self.engine.now(),
                self.engine.next_deadline(),
            ))],
            Op::SetPolicy { h, policy: sel } => {
                vec![Call::SetPolicy(
                    self.handler(*h),
                    policy(sel, self.universe.jitter),
                )]
            }
            Op::Trigger { which } => {
                vec![Call::Trigger(
                    Trigger::ALL[usize::from(*which) % Trigger::ALL.len()],
                )]
            }
            Op::StartWith {
                h,
                items,
                flags,
                key,
                expedite,
                no_retry,
            } => {
                let h = self.handler(*h);
                let items = items.as_ref().map(|items| self.named(&h, items));
                let options = RequestOptions {
                    key: if *key < 192 {
                        MergeKey::DEFAULT
                    } else {
                        merge_key(*key)
                    },
                    expedite: *expedite,
                    no_retry: *no_retry,
                };
                vec![Call::StartWith(h, items, start_flags(*flags), options)]
            }
            Op::Permanent { s, item, text: t } => {
                one(session(*s).map(|s| Call::Permanent(s, self.session_item(s, *item), text(*t))))
            }
        }
    }
}
