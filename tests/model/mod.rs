//! A deliberately naive reference model of `syncmgr::engine::Engine`, written from SPEC.md
//! (sections 4, 5, 7, 8, 10 and 11) and notes/DECISIONS.md, not from the engine's code.
//! Time (SPEC 11: debounce, retries, schedules, triggers) is `time.rs`: a pending entry may
//! be held back (`Hold`), and every deadline is listed afresh from the state and scanned in
//! full; see its docs.
//!
//! Everything is a `Vec` scanned from the front:
//!
//! - every handler registration ever made, in registration order (a removed one stays in the
//!   list, marked removed, so its running sessions can still find it);
//! - each registration's item table (an item removed by an update keeps its place in the table,
//!   marked not live, because `start_handler_sync` lists items in table order and a re-added
//!   item comes back where it was) and its pending entries, oldest first;
//! - every session ever started (ended ones marked) and every request ever accepted.
//!
//! Nothing is indexed and nothing is counted that a scan can derive: the next request number
//! is `requests.len() + 1`, the next session number `sessions.len() + 1`, "running" is a scan
//! over the sessions, "who waits for this item" is a scan over the waiter lists. It is slow on
//! purpose; being obviously right is its only job.
//!
//! Request and session numbers are `u64`s from 1 in issue order, as the engine's
//! `RequestId::get` and `SessionId::get` give them.
//!
//! Where SPEC.md and DECISIONS.md leave a reading open, the model takes the one the engine's
//! rustdoc states:
//!
//! - an event for an item counts for the requests that take that item's outcome *from this
//!   session* ("every request the session serves for that item");
//! - "table order" keeps an item's place for the life of the registration: an item an update
//!   dropped and a later update lists again comes back where it was;
//! - a discovered item may not take the ID of an item an update dropped while a running
//!   session still holds it (`propose_item` and `commit_item` both refuse it);
//! - a session call on a session that is not running is `E_UNEXPECTED`;
//! - a session may start for a disconnected handler with what was queued before it
//!   disconnected ("judged when a request is accepted").
//!
//! **Merge keys** (SPEC 10: "the cookie is part of a legacy request's identity", and "legacy
//! and current-API requests for the same handler follow the same rules of section 5"). Every
//! request has a key, [`MKey`]: `None` for the default key of `start_handler_sync`,
//! `start_item_sync` and `start_sync_all`, `Some(cookie)` for a keyed `start_sync` (an empty
//! cookie is a key too). The model reads the rules this way:
//!
//! - a pending entry belongs to one (item, key); a queued item merges only into the entry of
//!   its own item *and* key, so an item can be pending under several keys at once;
//! - joining a running session (`IGNORE_IF_ALREADY_SYNCING`) ignores keys: the item is
//!   syncing whoever asked for it;
//! - the choice among handlers is unchanged (the oldest request waiting on any entry of any
//!   key); within the chosen handler, a session serves one key: among the keys that have an
//!   entry no running session holds, the one whose oldest waiting request (on any of its
//!   entries) is oldest. It takes every entry of that key no running session holds, in entry
//!   order, and nothing of any other key;
//! - `query_for_additional_items` and `add_item_to_session` see only the session's key;
//! - cancels, stops, state changes, updates and shutdown remove the entries of every key.
//!
//! The handler view lists the default key's entries first, then each other key's, the keys in
//! the order their pending sets came into being (a key whose entries all went starts again at
//! the back): the order the engine's `HandlerView::pending` documents as "oldest key first".

mod time;

use syncmgr::engine::{HandlerSpec, ItemSpec};
use syncmgr::{
    CancelRequest, Denied, Error, EventLevel, HandlerCapabilities, HandlerId, HandlerPolicies,
    ItemCapabilities, ItemId, ItemPolicies, Outcome, ProgressStatus, SyncControlFlags, SyncPolicy,
    TextKind, Time, TriggerReason, UpdateReason, hresult,
};

use self::time::{Ticker, Window};

/// `MAX_SYNCMGR_PROGRESSTEXT`: 260 UTF-16 units counting the terminating NUL.
const MAX_PROGRESS_TEXT: usize = 260;

// ----- what the model decides ----------------------------------------------------------------

/// An error, in the model's own words (the engine's `SessionId`/`RequestId` cannot be built
/// outside the crate, so numbers stand for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MError {
    ShutDown,
    UnknownHandler(HandlerId),
    HandlerExists(HandlerId),
    UnknownItem {
        handler: HandlerId,
        item: ItemId,
    },
    ItemExists {
        handler: HandlerId,
        item: ItemId,
    },
    EmptyItemList,
    AccessDenied(Denied),
    UnknownSession(u64),
    ItemNotInSession(ItemId),
    ItemAlreadyInSession(ItemId),
    ItemNotPending(ItemId),
    ItemNotProposed(ItemId),
    UnknownRequest(u64),
    /// Start flags with bits outside the valid mask (0x1).
    UnknownFlags {
        bits: u32,
    },
    /// A progress text over the limit; `units` counts the NUL.
    TextTooLong {
        units: usize,
    },
    /// A sync policy out of range, naming the field (SPEC 11).
    InvalidPolicy(&'static str),
    /// An engine error the model never produces (kept as its debug text).
    Other(String),
}

impl MError {
    /// The engine's error in the model's words.
    pub fn from_engine(e: &Error) -> MError {
        match e {
            Error::ShutDown => MError::ShutDown,
            Error::UnknownHandler(h) => MError::UnknownHandler(h.clone()),
            Error::HandlerExists(h) => MError::HandlerExists(h.clone()),
            Error::UnknownItem { handler, item } => MError::UnknownItem {
                handler: handler.clone(),
                item: item.clone(),
            },
            Error::ItemExists { handler, item } => MError::ItemExists {
                handler: handler.clone(),
                item: item.clone(),
            },
            Error::EmptyItemList => MError::EmptyItemList,
            Error::AccessDenied(d) => MError::AccessDenied(d.clone()),
            Error::UnknownSession(s) => MError::UnknownSession(s.get()),
            Error::ItemNotInSession(i) => MError::ItemNotInSession(i.clone()),
            Error::ItemAlreadyInSession(i) => MError::ItemAlreadyInSession(i.clone()),
            Error::ItemNotPending(i) => MError::ItemNotPending(i.clone()),
            Error::ItemNotProposed(i) => MError::ItemNotProposed(i.clone()),
            Error::UnknownRequest(r) => MError::UnknownRequest(r.get()),
            Error::UnknownFlags {
                type_name: "SyncControlFlags",
                bits,
                ..
            } => MError::UnknownFlags { bits: *bits },
            Error::TextTooLong {
                kind: TextKind::Progress,
                units,
                max: MAX_PROGRESS_TEXT,
            } => MError::TextTooLong { units: *units },
            Error::InvalidPolicy { field, .. } => MError::InvalidPolicy(field),
            other => MError::Other(format!("{other:?}")),
        }
    }

    /// The HRESULT the SPEC (section 3 and 4) gives this error. Where the SPEC is silent
    /// (a session that is not running) the engine's documented choice is used.
    pub fn hresult(&self) -> i32 {
        match self {
            MError::UnknownHandler(_) => hresult::CLASS_E_CLASSNOTAVAILABLE,
            MError::AccessDenied(_) => hresult::E_ACCESSDENIED,
            MError::ShutDown | MError::UnknownSession(_) => hresult::E_UNEXPECTED,
            MError::HandlerExists(_)
            | MError::UnknownItem { .. }
            | MError::ItemExists { .. }
            | MError::EmptyItemList
            | MError::ItemNotInSession(_)
            | MError::ItemAlreadyInSession(_)
            | MError::ItemNotPending(_)
            | MError::ItemNotProposed(_)
            | MError::UnknownRequest(_)
            | MError::UnknownFlags { .. }
            | MError::TextTooLong { .. }
            | MError::InvalidPolicy(_) => hresult::E_INVALIDARG,
            MError::Other(_) => hresult::E_FAIL,
        }
    }
}

/// What became of one item of an accepted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MDisposition {
    Queued,
    Merged,
    Joined(u64),
    Settled(Outcome),
}

/// An accepted start call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MAccepted {
    pub request: u64,
    pub handler: HandlerId,
    pub dispositions: Vec<MDisposition>,
    pub duplicates: usize,
    pub completed: bool,
}

/// A request's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MResult {
    pub request: u64,
    pub handler: HandlerId,
    pub status: Outcome,
    pub errors: u32,
    pub conflicts: u32,
    pub items: Vec<(ItemId, Outcome)>,
    /// Per item, in the order of `items`: the sessions that ran it while the request waited.
    pub attempts: Vec<u16>,
    /// Per item, in the order of `items`: why it failed, as one line (`outer: inner`).
    pub causes: Vec<Option<String>>,
}

/// A request's merge key: `None` is the default key (Sync Center requests), `Some(cookie)`
/// a legacy invoke's cookie, byte for byte.
pub type MKey = Option<Vec<u8>>;

/// What the shell must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MAction {
    Start {
        session: u64,
        handler: HandlerId,
        items: Vec<ItemId>,
        key: MKey,
    },
    Deliver(MResult),
    Cancel {
        session: u64,
        request: CancelRequest,
        item: Option<ItemId>,
    },
    /// The handler's debounced items become ready at `until` unless more requests come.
    Debounced {
        handler: HandlerId,
        until: Time,
    },
    /// `item` failed attempt `attempt` of `max_attempts` and may start again at `at`.
    RetryScheduled {
        handler: HandlerId,
        item: ItemId,
        attempt: u16,
        max_attempts: u16,
        at: Time,
    },
    /// The model made request `request` by itself: a schedule's tick or a trigger.
    Issued {
        request: u64,
        handler: HandlerId,
        reason: TriggerReason,
    },
    /// A tick found the handler's scheduled request `open` still open and issued nothing.
    TickSkipped {
        handler: HandlerId,
        open: u64,
    },
}

/// What a state change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MChanged {
    pub changed: bool,
    pub canceled_pending: usize,
}

/// What ending a session decided: its handler, each item's outcome in session order, and the
/// items that will be tried again.
pub type Ended = (HandlerId, Vec<(ItemId, Outcome)>, Vec<ItemId>);

/// What a start call asks beyond its items and flags (SPEC 11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// "Sync now": the handler's whole pending set is ready at once.
    pub expedite: bool,
    /// The request takes each item's first `Failed`.
    pub no_retry: bool,
}

impl Options {
    pub const PLAIN: Options = Options {
        expedite: false,
        no_retry: false,
    };
}

/// What a stop did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MStopped {
    pub canceled_pending: usize,
    pub cancel_requests: usize,
}

// ----- the observable state, in one shape for the engine and the model ----------------------

/// A live handler as the outside sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HView {
    pub id: HandlerId,
    pub active: bool,
    pub enabled: bool,
    pub connected: bool,
    pub session_limit: usize,
    pub items: Vec<(ItemId, bool)>,
    pub pending: Vec<ItemId>,
    pub running: Vec<u64>,
}

/// One item of a running session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SItemView {
    pub item: ItemId,
    pub last: Option<ProgressStatus>,
    pub terminal: Option<Outcome>,
    pub cancel_requested: bool,
    pub waiting: Vec<u64>,
}

/// A running session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SView {
    pub id: u64,
    pub handler: HandlerId,
    pub started: bool,
    pub manual: bool,
    pub cancel_all: bool,
    pub key: MKey,
    pub items: Vec<SItemView>,
}

/// An open request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RView {
    pub id: u64,
    pub handler: HandlerId,
    pub items: Vec<(ItemId, Option<Outcome>)>,
    pub errors: u32,
    pub conflicts: u32,
}

// ----- the model's records -------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Item {
    id: ItemId,
    capabilities: ItemCapabilities,
    policies: ItemPolicies,
    enabled: bool,
    /// False once an update dropped it (it keeps its place in the table).
    live: bool,
    /// The attempts of its current run of failures in default-key sessions: how many
    /// sessions in a row ended it `Failed` while it stayed wanted (SPEC 11.2). Zero when
    /// no run is going on.
    attempts: u16,
}

#[derive(Clone, Debug)]
struct Entry {
    item: ItemId,
    /// The key of every request waiting here.
    key: MKey,
    /// Request numbers, in the order they started waiting.
    waiters: Vec<u64>,
    /// Whether it may start yet (only entries of the default key are ever held).
    hold: Hold,
}

/// Why a pending entry may not start yet (SPEC 11.1 and 11.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    Ready,
    /// Its handler's debounce window is open.
    Debounced,
    /// It failed, and waits until this time to be tried again.
    Backoff(Time),
}

#[derive(Clone, Debug)]
struct Handler {
    id: HandlerId,
    capabilities: HandlerCapabilities,
    policies: HandlerPolicies,
    active: bool,
    enabled: bool,
    connected: bool,
    max_concurrent: Option<usize>,
    removed: bool,
    items: Vec<Item>,
    /// Entries of every key, in the order they were made.
    pending: Vec<Entry>,
    /// The non-default keys in the order their pending sets came into being, for the view
    /// only. A key with no entry left may linger here until the next new entry or view, which
    /// skip it (`tidy_keys`).
    key_order: Vec<MKey>,
    /// Its timing (SPEC 11).
    policy: SyncPolicy,
    /// Its debounce window, if one was opened. It is open only while an entry is
    /// `Hold::Debounced` (`Model::window_open`): a window whose entries all went is stale.
    window: Option<Window>,
    /// Its schedule, while its policy has one.
    ticker: Option<Ticker>,
}

#[derive(Clone, Debug)]
struct SessionItem {
    item: ItemId,
    last: Option<ProgressStatus>,
    terminal: Option<Outcome>,
    cancel: bool,
    waiters: Vec<u64>,
    /// The handler said no retry can mend its failure (`report_permanent_failure`).
    permanent: bool,
    /// Why it failed, when said: the latest failure report, or the refusal of a report
    /// after a terminal one.
    cause: Option<String>,
}

#[derive(Clone, Debug)]
struct Session {
    /// Index of the handler registration in `Model::handlers`.
    handler: usize,
    /// The key whose entries it took.
    key: MKey,
    ended: bool,
    started: bool,
    manual: bool,
    cancel_all: bool,
    items: Vec<SessionItem>,
    proposed: Vec<ItemSpec>,
    /// Every error event and conflict the session counted, in order: the item it named
    /// (`None` for the handler as a whole) and whether it was a conflict.
    log: Vec<(Option<ItemId>, bool)>,
}

#[derive(Clone, Debug)]
struct Request {
    handler: usize,
    key: MKey,
    items: Vec<(ItemId, Option<Outcome>)>,
    errors: u32,
    conflicts: u32,
    disconnected: bool,
    done: bool,
    /// Made without retry: it takes each item's first `Failed`.
    no_retry: bool,
    /// A schedule's tick made it.
    scheduled: bool,
    /// Per item, in the order of `items`: the sessions that ran it while it waited.
    attempts: Vec<u16>,
    /// Per item, in the order of `items`: why it failed.
    causes: Vec<Option<String>>,
}

/// The reason a result gives for an item whose session ended before any report for it.
const NO_REPORT: &str = "the session ended without reporting how the item ended";

/// The naive model. See the module docs.
#[derive(Clone, Debug)]
pub struct Model {
    max_sessions: usize,
    default_concurrent: usize,
    shut_down: bool,
    /// The last time polled: every other call happens then.
    now: Time,
    /// A poll is firing the deadlines of one instant: sessions start after them, but for the
    /// handler of a request a tick makes (`Model::poll`).
    in_instant: bool,
    handlers: Vec<Handler>,
    sessions: Vec<Session>,
    requests: Vec<Request>,
    actions: Vec<MAction>,
}

fn outcome_of(status: ProgressStatus) -> Option<Outcome> {
    match status {
        ProgressStatus::Succeeded => Some(Outcome::Succeeded),
        ProgressStatus::Failed => Some(Outcome::Failed),
        ProgressStatus::Canceled => Some(Outcome::Canceled),
        ProgressStatus::Disconnected => Some(Outcome::Disconnected),
        ProgressStatus::Updating | ProgressStatus::UpdatingIndeterminate => None,
    }
}

/// Failed > Disconnected > Canceled > Succeeded, written out rather than taken from `Ord`.
fn worse(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Succeeded => 0,
        Outcome::Canceled => 1,
        Outcome::Disconnected => 2,
        Outcome::Failed => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// `SyncControlFlags` defines one bit, `IGNORE_IF_ALREADY_SYNCING` (0x1).
fn check_start_flags(flags: SyncControlFlags) -> Result<(), MError> {
    if flags.bits() & !0x1 != 0 {
        return Err(MError::UnknownFlags { bits: flags.bits() });
    }
    Ok(())
}

fn check_progress_text(text: &str) -> Result<(), MError> {
    let units = text.encode_utf16().count() + 1;
    if units > MAX_PROGRESS_TEXT {
        return Err(MError::TextTooLong { units });
    }
    Ok(())
}

impl Model {
    /// An empty model with these limits.
    pub fn new(max_sessions: usize, default_concurrent: usize) -> Model {
        Model {
            max_sessions,
            default_concurrent,
            shut_down: false,
            now: Time::ZERO,
            in_instant: false,
            handlers: Vec::new(),
            sessions: Vec::new(),
            requests: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Takes the actions decided so far, oldest first.
    pub fn take_actions(&mut self) -> Vec<MAction> {
        std::mem::take(&mut self.actions)
    }

    // ----- lookups (all scans) ---------------------------------------------------------------

    fn live_handler(&self, id: &HandlerId) -> Option<usize> {
        self.handlers.iter().position(|h| !h.removed && h.id == *id)
    }

    fn known_handler(&self, id: &HandlerId) -> Result<usize, MError> {
        self.live_handler(id)
            .ok_or_else(|| MError::UnknownHandler(id.clone()))
    }

    /// A handler that state changes may touch: not after shutdown, and registered.
    fn writable(&self, id: &HandlerId) -> Result<usize, MError> {
        if self.shut_down {
            return Err(MError::ShutDown);
        }
        self.known_handler(id)
    }

    fn live_item(&self, h: usize, item: &ItemId) -> Option<&Item> {
        self.handlers[h]
            .items
            .iter()
            .find(|i| i.live && i.id == *item)
    }

    /// The table record of an item, live or not.
    fn any_item(&self, h: usize, item: &ItemId) -> Option<&Item> {
        self.handlers[h].items.iter().find(|i| i.id == *item)
    }

    fn item_policies(&self, h: usize, item: &ItemId) -> ItemPolicies {
        self.any_item(h, item)
            .map_or(ItemPolicies::empty(), |i| i.policies)
    }

    /// Indices of the running sessions, oldest first.
    fn running(&self) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&s| !self.sessions[s].ended)
            .collect()
    }

    fn running_of(&self, h: usize) -> Vec<usize> {
        self.running()
            .into_iter()
            .filter(|&s| self.sessions[s].handler == h)
            .collect()
    }

    /// The running session of handler `h` that holds `item`, if any.
    fn holder(&self, h: usize, item: &ItemId) -> Option<usize> {
        self.running_of(h)
            .into_iter()
            .find(|&s| self.sessions[s].items.iter().any(|si| si.item == *item))
    }

    fn session(&self, number: u64) -> Result<usize, MError> {
        let at = number as usize;
        if at >= 1 && at <= self.sessions.len() && !self.sessions[at - 1].ended {
            Ok(at - 1)
        } else {
            Err(MError::UnknownSession(number))
        }
    }

    fn position_in(&self, s: usize, item: &ItemId) -> Result<usize, MError> {
        self.sessions[s]
            .items
            .iter()
            .position(|si| si.item == *item)
            .ok_or_else(|| MError::ItemNotInSession(item.clone()))
    }

    fn limit(&self, h: usize) -> usize {
        let h = &self.handlers[h];
        if h.capabilities
            .contains(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS)
        {
            h.max_concurrent.unwrap_or(self.default_concurrent)
        } else {
            1
        }
    }

    fn cancel_for(&self, s: usize, pos: usize) -> CancelRequest {
        let session = &self.sessions[s];
        if session.cancel_all {
            CancelRequest::CancelAll
        } else if session.items[pos].cancel {
            CancelRequest::CancelItem
        } else {
            CancelRequest::None
        }
    }

    // ----- outcomes and results --------------------------------------------------------------

    /// Records `outcome` for `item` in each waiting request; delivers those now complete.
    fn settle(&mut self, item: &ItemId, waiters: &[u64], outcome: Outcome, cause: Option<&str>) {
        for &r in waiters {
            let req = &mut self.requests[r as usize - 1];
            if req.done {
                continue;
            }
            if let Some(at) = req.items.iter().position(|(i, o)| i == item && o.is_none()) {
                req.items[at].1 = Some(outcome);
                req.causes[at] = cause.map(str::to_owned);
            }
            if req.items.iter().all(|(_, o)| o.is_some()) {
                self.complete(r);
            }
        }
    }

    fn complete(&mut self, r: u64) {
        let req = &mut self.requests[r as usize - 1];
        req.done = true;
        let items: Vec<(ItemId, Outcome)> = req
            .items
            .iter()
            .map(|(i, o)| (i.clone(), o.unwrap_or(Outcome::Canceled)))
            .collect();
        let mut status = Outcome::Succeeded;
        for (_, o) in &items {
            status = worse(status, *o);
        }
        if req.disconnected {
            status = worse(status, Outcome::Disconnected);
        }
        let result = MResult {
            request: r,
            handler: self.handlers[req.handler].id.clone(),
            status,
            errors: req.errors,
            conflicts: req.conflicts,
            items,
            attempts: req.attempts.clone(),
            causes: req.causes.clone(),
        };
        self.actions.push(MAction::Deliver(result));
    }

    /// Forgets the keys of handler `h` that have no entry left, so that a key whose pending
    /// set comes into being again goes to the back of `key_order`.
    fn tidy_keys(&mut self, h: usize) {
        let handler = &mut self.handlers[h];
        let pending = &handler.pending;
        handler
            .key_order
            .retain(|k| pending.iter().any(|e| e.key == *k));
    }

    /// Removes handler `h`'s pending entries whose item matches, under every key; their
    /// waiters record `Canceled`. Returns how many entries went.
    fn cancel_pending(&mut self, h: usize, matches: impl Fn(&Model, &ItemId) -> bool) -> usize {
        let mut gone = Vec::new();
        let mut kept = Vec::new();
        for entry in self.handlers[h].pending.clone() {
            if matches(self, &entry.item) {
                gone.push(entry);
            } else {
                kept.push(entry);
            }
        }
        self.handlers[h].pending = kept;
        for entry in &gone {
            if entry.key.is_none() {
                self.run_over_if_idle(h, &entry.item);
            }
        }
        for entry in &gone {
            self.settle(&entry.item, &entry.waiters, Outcome::Canceled, None);
        }
        gone.len()
    }

    // ----- scheduling ------------------------------------------------------------------------

    /// Whether a new session of handler `h` could take this entry: no running session of `h`
    /// holds its item, and nothing holds it back (debounce or backoff, SPEC 11).
    fn free(&self, h: usize, entry: &Entry) -> bool {
        entry.hold == Hold::Ready && self.holder(h, &entry.item).is_none()
    }

    /// Starts sessions while the global limit allows: the startable handler whose oldest
    /// request still waiting on one of its pending entries (of any key, held back or not) is
    /// oldest (ties: earlier registration) takes every free pending item of one key
    /// (`next_key`, `free`).
    fn schedule(&mut self) {
        if self.shut_down {
            return;
        }
        while self.running().len() < self.max_sessions {
            let mut best: Option<(u64, usize)> = None;
            for h in 0..self.handlers.len() {
                if !self.can_start(h) {
                    continue;
                }
                let handler = &self.handlers[h];
                let oldest = handler
                    .pending
                    .iter()
                    .flat_map(|e| e.waiters.iter().copied())
                    .min()
                    .unwrap();
                if best.is_none_or(|(a, _)| oldest < a) {
                    best = Some((oldest, h));
                }
            }
            match best {
                Some((_, h)) => self.start_session(h),
                None => break,
            }
        }
    }

    /// Whether handler `h` could start a session now, the global limit aside.
    fn can_start(&self, h: usize) -> bool {
        let handler = &self.handlers[h];
        !handler.removed
            && handler.active
            && handler.enabled
            && self.running_of(h).len() < self.limit(h)
            && handler.pending.iter().any(|e| self.free(h, e))
    }

    /// Starts sessions of handler `h` alone while it can and the global limit allows.
    fn schedule_one(&mut self, h: usize) {
        while !self.shut_down && self.running().len() < self.max_sessions && self.can_start(h) {
            self.start_session(h);
        }
    }

    /// The oldest request waiting on any entry of handler `h` under `key`.
    fn oldest_of_key(&self, h: usize, key: &MKey) -> Option<u64> {
        self.handlers[h]
            .pending
            .iter()
            .filter(|e| e.key == *key)
            .flat_map(|e| e.waiters.iter().copied())
            .min()
    }

    /// The key a new session of handler `h` serves: among the keys with a free entry, the one
    /// whose oldest waiting request (on any of its entries, free or not) is oldest.
    fn next_key(&self, h: usize) -> Option<MKey> {
        let mut best: Option<(u64, MKey)> = None;
        for entry in &self.handlers[h].pending {
            if !self.free(h, entry) {
                continue;
            }
            let oldest = self.oldest_of_key(h, &entry.key).unwrap();
            if best.as_ref().is_none_or(|(o, _)| oldest < *o) {
                best = Some((oldest, entry.key.clone()));
            }
        }
        best.map(|(_, key)| key)
    }

    fn start_session(&mut self, h: usize) {
        let key = self.next_key(h).unwrap();
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        for entry in self.handlers[h].pending.clone() {
            if entry.key == key && self.free(h, &entry) {
                taken.push(entry);
            } else {
                kept.push(entry);
            }
        }
        self.handlers[h].pending = kept;
        let number = self.sessions.len() as u64 + 1;
        self.actions.push(MAction::Start {
            session: number,
            handler: self.handlers[h].id.clone(),
            items: taken.iter().map(|e| e.item.clone()).collect(),
            key: key.clone(),
        });
        self.sessions.push(Session {
            handler: h,
            key,
            ended: false,
            started: false,
            manual: false,
            cancel_all: false,
            items: taken
                .into_iter()
                .map(|e| SessionItem {
                    item: e.item,
                    last: None,
                    terminal: None,
                    cancel: false,
                    waiters: e.waiters,
                    permanent: false,
                    cause: None,
                })
                .collect(),
            proposed: Vec::new(),
            log: Vec::new(),
        });
    }

    // ----- handlers --------------------------------------------------------------------------

    pub fn register_handler(&mut self, spec: &HandlerSpec) -> Result<(), MError> {
        if self.shut_down {
            return Err(MError::ShutDown);
        }
        if self.live_handler(&spec.id).is_some() {
            return Err(MError::HandlerExists(spec.id.clone()));
        }
        if spec.max_concurrent_sessions == Some(0) {
            return Err(MError::Other("max_concurrent_sessions 0".into()));
        }
        for (n, item) in spec.items.iter().enumerate() {
            if spec.items[..n].iter().any(|i| i.id == item.id) {
                return Err(MError::ItemExists {
                    handler: spec.id.clone(),
                    item: item.id.clone(),
                });
            }
        }
        time::check_policy(&spec.policy)?;
        self.handlers.push(Handler {
            id: spec.id.clone(),
            capabilities: spec.capabilities,
            policies: spec.policies,
            active: spec.active,
            enabled: spec.enabled,
            connected: spec.connected,
            max_concurrent: spec.max_concurrent_sessions,
            removed: false,
            items: spec
                .items
                .iter()
                .map(|i| Item {
                    id: i.id.clone(),
                    capabilities: i.capabilities,
                    policies: i.policies,
                    enabled: i.enabled,
                    live: true,
                    attempts: 0,
                })
                .collect(),
            pending: Vec::new(),
            key_order: Vec::new(),
            policy: spec.policy.clone(),
            window: None,
            // A schedule counts from its registration.
            ticker: spec.policy.schedule.map(|_| Ticker::from(self.now)),
        });
        Ok(())
    }

    pub fn remove_handler(&mut self, id: &HandlerId) -> Result<MChanged, MError> {
        let h = self.writable(id)?;
        let canceled_pending = self.cancel_pending(h, |_, _| true);
        self.handlers[h].removed = true;
        self.handlers[h].ticker = None;
        self.schedule();
        Ok(MChanged {
            changed: true,
            canceled_pending,
        })
    }

    pub fn set_handler_active(&mut self, id: &HandlerId, on: bool) -> Result<MChanged, MError> {
        let policy = if on {
            HandlerPolicies::PREVENT_ACTIVATE
        } else {
            HandlerPolicies::PREVENT_DEACTIVATE
        };
        let h = self.writable(id)?;
        if self.handlers[h].policies.contains(policy) {
            return Err(MError::AccessDenied(Denied::HandlerPolicy(policy)));
        }
        let changed = self.handlers[h].active != on;
        self.handlers[h].active = on;
        self.after_handler_flag(h, on, changed)
    }

    pub fn set_handler_enabled(&mut self, id: &HandlerId, on: bool) -> Result<MChanged, MError> {
        let policy = if on {
            HandlerPolicies::PREVENT_ENABLE
        } else {
            HandlerPolicies::PREVENT_DISABLE
        };
        let h = self.writable(id)?;
        if self.handlers[h].policies.contains(policy) {
            return Err(MError::AccessDenied(Denied::HandlerPolicy(policy)));
        }
        let changed = self.handlers[h].enabled != on;
        self.handlers[h].enabled = on;
        self.after_handler_flag(h, on, changed)
    }

    fn after_handler_flag(
        &mut self,
        h: usize,
        on: bool,
        changed: bool,
    ) -> Result<MChanged, MError> {
        let canceled_pending = if on {
            0
        } else {
            self.cancel_pending(h, |_, _| true)
        };
        self.schedule();
        Ok(MChanged {
            changed,
            canceled_pending,
        })
    }

    pub fn set_handler_connected(&mut self, id: &HandlerId, on: bool) -> Result<MChanged, MError> {
        let h = self.writable(id)?;
        let changed = self.handlers[h].connected != on;
        self.handlers[h].connected = on;
        if changed && on {
            // A reconnect: every backoff of the handler ends now (SPEC 11.2).
            self.release(h, |hold| matches!(hold, Hold::Backoff(_)));
            self.schedule();
        }
        Ok(MChanged {
            changed,
            canceled_pending: 0,
        })
    }

    pub fn set_item_enabled(
        &mut self,
        id: &HandlerId,
        item: &ItemId,
        on: bool,
    ) -> Result<MChanged, MError> {
        let h = self.writable(id)?;
        let Some(record) = self.live_item(h, item) else {
            return Err(MError::UnknownItem {
                handler: id.clone(),
                item: item.clone(),
            });
        };
        let policy = if on {
            ItemPolicies::PREVENT_ENABLE
        } else {
            ItemPolicies::PREVENT_DISABLE
        };
        if record.policies.contains(policy) {
            return Err(MError::AccessDenied(Denied::ItemPolicy {
                item: item.clone(),
                policy,
            }));
        }
        let changed = record.enabled != on;
        for i in &mut self.handlers[h].items {
            if i.live && i.id == *item {
                i.enabled = on;
            }
        }
        let canceled_pending = if on {
            0
        } else {
            self.cancel_pending(h, |_, i| i == item)
        };
        Ok(MChanged {
            changed,
            canceled_pending,
        })
    }

    pub fn update_handler(
        &mut self,
        id: &HandlerId,
        capabilities: HandlerCapabilities,
        policies: HandlerPolicies,
        items: &[ItemSpec],
    ) -> Result<MChanged, MError> {
        let h = self.writable(id)?;
        for (n, spec) in items.iter().enumerate() {
            if items[..n].iter().any(|i| i.id == spec.id) {
                return Err(MError::ItemExists {
                    handler: id.clone(),
                    item: spec.id.clone(),
                });
            }
        }
        let handler = &mut self.handlers[h];
        let mut changed = handler.capabilities != capabilities || handler.policies != policies;
        handler.capabilities = capabilities;
        handler.policies = policies;
        for item in &mut handler.items {
            if item.live && !items.iter().any(|s| s.id == item.id) {
                item.live = false;
                changed = true;
            }
        }
        for spec in items {
            match handler.items.iter_mut().find(|i| i.id == spec.id) {
                Some(item) => {
                    changed |= !item.live
                        || item.capabilities != spec.capabilities
                        || item.policies != spec.policies
                        || item.enabled != spec.enabled;
                    item.live = true;
                    item.capabilities = spec.capabilities;
                    item.policies = spec.policies;
                    item.enabled = spec.enabled;
                }
                None => {
                    changed = true;
                    handler.items.push(Item {
                        id: spec.id.clone(),
                        capabilities: spec.capabilities,
                        policies: spec.policies,
                        enabled: spec.enabled,
                        live: true,
                        attempts: 0,
                    });
                }
            }
        }
        let canceled_pending = self.cancel_pending(h, |m, i| {
            m.live_item(h, i).is_none_or(|record| !record.enabled)
        });
        self.schedule();
        Ok(MChanged {
            changed,
            canceled_pending,
        })
    }

    /// Adds an item or changes one; says which. A disabled item loses its pending entry.
    pub fn upsert_item(&mut self, id: &HandlerId, spec: &ItemSpec) -> Result<UpdateReason, MError> {
        let h = self.writable(id)?;
        let items = &mut self.handlers[h].items;
        let reason = match items.iter_mut().find(|i| i.id == spec.id) {
            Some(item) => {
                let reason = if item.live {
                    UpdateReason::Changed
                } else {
                    UpdateReason::Added
                };
                item.live = true;
                item.capabilities = spec.capabilities;
                item.policies = spec.policies;
                item.enabled = spec.enabled;
                reason
            }
            None => {
                items.push(Item {
                    id: spec.id.clone(),
                    capabilities: spec.capabilities,
                    policies: spec.policies,
                    enabled: spec.enabled,
                    live: true,
                    attempts: 0,
                });
                UpdateReason::Added
            }
        };
        if !spec.enabled {
            let _ = self.cancel_pending(h, |_, i| *i == spec.id);
        }
        Ok(reason)
    }

    /// Removes one item; its pending entry is canceled, a running session keeps it.
    pub fn remove_item(&mut self, id: &HandlerId, item: &ItemId) -> Result<MChanged, MError> {
        let h = self.writable(id)?;
        if self.live_item(h, item).is_none() {
            return Err(MError::UnknownItem {
                handler: id.clone(),
                item: item.clone(),
            });
        }
        for i in &mut self.handlers[h].items {
            if i.id == *item {
                i.live = false;
            }
        }
        let canceled_pending = self.cancel_pending(h, |_, i| i == item);
        Ok(MChanged {
            changed: true,
            canceled_pending,
        })
    }

    // ----- requests --------------------------------------------------------------------------

    pub fn start_handler_sync(
        &mut self,
        id: &HandlerId,
        flags: SyncControlFlags,
    ) -> Result<MAccepted, MError> {
        self.accept(id, None, flags, None, Options::PLAIN)
    }

    pub fn start_item_sync(
        &mut self,
        id: &HandlerId,
        items: &[ItemId],
        flags: SyncControlFlags,
    ) -> Result<MAccepted, MError> {
        self.accept(id, Some(items), flags, None, Options::PLAIN)
    }

    /// A handler sync (`None`) or an item sync under a merge key.
    pub fn start_sync(
        &mut self,
        id: &HandlerId,
        items: Option<&[ItemId]>,
        flags: SyncControlFlags,
        key: MKey,
    ) -> Result<MAccepted, MError> {
        self.accept(id, items, flags, key, Options::PLAIN)
    }

    /// `start_sync` with the request options of SPEC 11: expedited ("Sync now": the
    /// handler's whole pending set is ready at once) and without retry (it takes each item's
    /// first `Failed`).
    pub fn start_sync_with(
        &mut self,
        id: &HandlerId,
        items: Option<&[ItemId]>,
        flags: SyncControlFlags,
        key: MKey,
        options: Options,
    ) -> Result<MAccepted, MError> {
        self.accept(id, items, flags, key, options)
    }

    pub fn start_sync_all(&mut self, flags: SyncControlFlags) -> Result<Vec<MAccepted>, MError> {
        if self.shut_down {
            return Err(MError::ShutDown);
        }
        check_start_flags(flags)?;
        let covered: Vec<HandlerId> = self
            .handlers
            .iter()
            .filter(|h| {
                !h.removed
                    && h.active
                    && h.enabled
                    && !h.policies.contains(HandlerPolicies::PREVENT_START_SYNC)
                    && h.items.iter().any(|i| {
                        i.live
                            && i.enabled
                            && !i.policies.contains(ItemPolicies::PREVENT_START_SYNC)
                    })
            })
            .map(|h| h.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in covered {
            out.push(self.accept(&id, None, flags, None, Options::PLAIN)?);
        }
        Ok(out)
    }

    fn accept(
        &mut self,
        id: &HandlerId,
        named: Option<&[ItemId]>,
        flags: SyncControlFlags,
        key: MKey,
        options: Options,
    ) -> Result<MAccepted, MError> {
        // DECISIONS 1: the validation order; the first failure wins and nothing changes.
        if self.shut_down {
            return Err(MError::ShutDown);
        }
        let h = self.known_handler(id)?;
        check_start_flags(flags)?;
        if named.is_some_and(|n| n.is_empty()) {
            return Err(MError::EmptyItemList);
        }
        let handler = &self.handlers[h];
        if handler
            .policies
            .contains(HandlerPolicies::PREVENT_START_SYNC)
        {
            return Err(MError::AccessDenied(Denied::HandlerPolicy(
                HandlerPolicies::PREVENT_START_SYNC,
            )));
        }
        if !handler.active {
            return Err(MError::AccessDenied(Denied::HandlerInactive));
        }
        if !handler.enabled {
            return Err(MError::AccessDenied(Denied::HandlerDisabled));
        }
        let asked: Vec<ItemId> = match named {
            None => handler
                .items
                .iter()
                .filter(|i| {
                    i.live && i.enabled && !i.policies.contains(ItemPolicies::PREVENT_START_SYNC)
                })
                .map(|i| i.id.clone())
                .collect(),
            Some(named) => {
                for item in named {
                    let Some(record) = self.live_item(h, item) else {
                        return Err(MError::UnknownItem {
                            handler: id.clone(),
                            item: item.clone(),
                        });
                    };
                    if record.policies.contains(ItemPolicies::PREVENT_START_SYNC) {
                        return Err(MError::AccessDenied(Denied::ItemPolicy {
                            item: item.clone(),
                            policy: ItemPolicies::PREVENT_START_SYNC,
                        }));
                    }
                    if !record.enabled {
                        return Err(MError::AccessDenied(Denied::ItemDisabled(item.clone())));
                    }
                }
                named.to_vec()
            }
        };
        // DECISIONS 4: an item named twice counts once, at its first place.
        let mut distinct: Vec<ItemId> = Vec::new();
        for item in &asked {
            if !distinct.contains(item) {
                distinct.push(item.clone());
            }
        }
        let number = self.requests.len() as u64 + 1;
        let duplicates = asked.len() - distinct.len();
        let mut request = Request {
            handler: h,
            key: key.clone(),
            items: Vec::new(),
            errors: 0,
            conflicts: 0,
            disconnected: false,
            done: false,
            no_retry: options.no_retry,
            scheduled: false,
            attempts: vec![0; distinct.len()],
            causes: vec![None; distinct.len()],
        };
        // SPEC 11.1: the entries a Sync Center request makes wait for the debounce window,
        // unless a person asked for the sync now. Whether a window is open is judged before.
        let debounced = self.handlers[h].policy.debounce.is_some() && key.is_none();
        let debounced = debounced && !options.expedite;
        let window_was_open = self.window_open(h);
        let (mut touched_default, mut held_back) = (false, 0);
        let mut dispositions = Vec::new();
        if !self.handlers[h].connected {
            // DECISIONS 3: completes at once, every item Disconnected, nothing queued.
            request.disconnected = true;
            for item in distinct {
                request.items.push((item, Some(Outcome::Disconnected)));
                dispositions.push(MDisposition::Settled(Outcome::Disconnected));
            }
        } else {
            let join = flags.contains(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING);
            for item in distinct {
                let syncing = self.holder(h, &item).filter(|&s| {
                    let session = &self.sessions[s];
                    let si = session.items.iter().find(|si| si.item == item).unwrap();
                    !session.cancel_all && !si.cancel && si.terminal.is_none()
                });
                let disposition = match syncing {
                    Some(s) if join => {
                        let si = self.sessions[s]
                            .items
                            .iter_mut()
                            .find(|si| si.item == item)
                            .unwrap();
                        si.waiters.push(number);
                        MDisposition::Joined(s as u64 + 1)
                    }
                    _ => {
                        // Only the entry of the same item under the same key takes it. A key
                        // whose pending set comes into being goes to the back of the order.
                        self.tidy_keys(h);
                        if key.is_some() && !self.handlers[h].key_order.contains(&key) {
                            self.handlers[h].key_order.push(key.clone());
                        }
                        let pending = &mut self.handlers[h].pending;
                        touched_default |= key.is_none();
                        match pending.iter_mut().find(|e| e.item == item && e.key == key) {
                            Some(entry) => {
                                entry.waiters.push(number);
                                MDisposition::Merged
                            }
                            None => {
                                held_back += usize::from(debounced);
                                pending.push(Entry {
                                    item: item.clone(),
                                    key: key.clone(),
                                    waiters: vec![number],
                                    hold: if debounced {
                                        Hold::Debounced
                                    } else {
                                        Hold::Ready
                                    },
                                });
                                MDisposition::Queued
                            }
                        }
                    }
                };
                request.items.push((item, None));
                dispositions.push(disposition);
            }
        }
        let completed = request.items.iter().all(|(_, o)| o.is_some());
        self.requests.push(request);
        if completed {
            self.complete(number);
        } else {
            if options.expedite && key.is_none() {
                // "Sync now": nothing of the handler's pending set waits any more.
                self.release(h, |hold| hold != Hold::Ready);
            } else if touched_default {
                self.debounce(h, held_back, window_was_open);
            }
            if self.in_instant {
                // A tick's request in a poll: the other handlers start after the instant.
                self.schedule_one(h);
            } else {
                self.schedule();
            }
        }
        Ok(MAccepted {
            request: number,
            handler: id.clone(),
            dispositions,
            duplicates,
            completed,
        })
    }

    pub fn cancel_request(&mut self, r: u64) -> Result<bool, MError> {
        if r == 0 || r as usize > self.requests.len() {
            return Err(MError::UnknownRequest(r));
        }
        let req = self.requests[r as usize - 1].clone();
        if req.done {
            return Ok(false);
        }
        let h = req.handler;
        for s in 0..self.sessions.len() {
            if !self.sessions[s].ended {
                self.credit(r, s);
            }
        }
        let mut outcomes = Vec::new();
        for (item, outcome) in &req.items {
            if outcome.is_some() {
                outcomes.push(*outcome);
                continue;
            }
            let mut now = Outcome::Canceled;
            let pending = &mut self.handlers[h].pending;
            if let Some(at) = pending
                .iter()
                .position(|e| e.item == *item && e.key == req.key && e.waiters.contains(&r))
            {
                pending[at].waiters.retain(|w| *w != r);
                if pending[at].waiters.is_empty() {
                    pending.remove(at);
                    if req.key.is_none() {
                        self.run_over_if_idle(h, item);
                    }
                }
            } else if let Some(s) = self.holder(h, item) {
                let pos = self.position_in(s, item).unwrap();
                let session = &mut self.sessions[s];
                let cancel_all = session.cancel_all;
                let si = &mut session.items[pos];
                if si.waiters.contains(&r) {
                    si.waiters.retain(|w| *w != r);
                    now = si.terminal.unwrap_or(Outcome::Canceled);
                    if si.waiters.is_empty() && si.terminal.is_none() && !si.cancel && !cancel_all {
                        si.cancel = true;
                        self.actions.push(MAction::Cancel {
                            session: s as u64 + 1,
                            request: CancelRequest::CancelItem,
                            item: Some(item.clone()),
                        });
                    }
                }
            }
            outcomes.push(Some(now));
        }
        let req = &mut self.requests[r as usize - 1];
        for (slot, outcome) in req.items.iter_mut().zip(outcomes) {
            slot.1 = outcome;
        }
        self.complete(r);
        Ok(true)
    }

    // ----- stopping --------------------------------------------------------------------------

    pub fn stop_handler_sync(&mut self, id: &HandlerId) -> Result<MStopped, MError> {
        let h = self.known_handler(id)?;
        if self.handlers[h]
            .policies
            .contains(HandlerPolicies::PREVENT_STOP_SYNC)
        {
            return Err(MError::AccessDenied(Denied::HandlerPolicy(
                HandlerPolicies::PREVENT_STOP_SYNC,
            )));
        }
        Ok(self.stop(h, None))
    }

    pub fn stop_item_sync(&mut self, id: &HandlerId, items: &[ItemId]) -> Result<MStopped, MError> {
        let h = self.known_handler(id)?;
        if items.is_empty() {
            return Err(MError::EmptyItemList);
        }
        if self.handlers[h]
            .policies
            .contains(HandlerPolicies::PREVENT_STOP_SYNC)
        {
            return Err(MError::AccessDenied(Denied::HandlerPolicy(
                HandlerPolicies::PREVENT_STOP_SYNC,
            )));
        }
        for item in items {
            let Some(record) = self.live_item(h, item) else {
                return Err(MError::UnknownItem {
                    handler: id.clone(),
                    item: item.clone(),
                });
            };
            if record.policies.contains(ItemPolicies::PREVENT_STOP_SYNC) {
                return Err(MError::AccessDenied(Denied::ItemPolicy {
                    item: item.clone(),
                    policy: ItemPolicies::PREVENT_STOP_SYNC,
                }));
            }
        }
        Ok(self.stop(h, Some(items)))
    }

    pub fn stop_sync_all(&mut self) -> MStopped {
        let mut total = MStopped::default();
        for h in 0..self.handlers.len() {
            let handler = &self.handlers[h];
            if handler.removed
                || handler
                    .policies
                    .contains(HandlerPolicies::PREVENT_STOP_SYNC)
            {
                continue;
            }
            let one = self.stop(h, None);
            total.canceled_pending += one.canceled_pending;
            total.cancel_requests += one.cancel_requests;
        }
        total
    }

    /// DECISIONS 11: stops the named items, or (`None`) every item without the item policy
    /// `PREVENT_STOP_SYNC`.
    fn stop(&mut self, h: usize, named: Option<&[ItemId]>) -> MStopped {
        let stoppable = |m: &Model, item: &ItemId| match named {
            Some(named) => named.contains(item),
            None => !m
                .item_policies(h, item)
                .contains(ItemPolicies::PREVENT_STOP_SYNC),
        };
        let mut cancel_requests = 0;
        for s in self.running_of(h) {
            let hit: Vec<usize> = (0..self.sessions[s].items.len())
                .filter(|&pos| stoppable(self, &self.sessions[s].items[pos].item))
                .collect();
            let session = &mut self.sessions[s];
            if named.is_none() && hit.len() == session.items.len() {
                if !session.cancel_all {
                    session.cancel_all = true;
                    cancel_requests += 1;
                    self.actions.push(MAction::Cancel {
                        session: s as u64 + 1,
                        request: CancelRequest::CancelAll,
                        item: None,
                    });
                }
            } else if !session.cancel_all {
                for pos in hit {
                    let si = &mut session.items[pos];
                    if !si.cancel && si.terminal.is_none() {
                        si.cancel = true;
                        cancel_requests += 1;
                        self.actions.push(MAction::Cancel {
                            session: s as u64 + 1,
                            request: CancelRequest::CancelItem,
                            item: Some(si.item.clone()),
                        });
                    }
                }
            }
        }
        let canceled_pending = self.cancel_pending(h, stoppable);
        MStopped {
            canceled_pending,
            cancel_requests,
        }
    }

    pub fn shutdown(&mut self) -> MStopped {
        self.shut_down = true;
        let mut canceled_pending = 0;
        for h in 0..self.handlers.len() {
            canceled_pending += self.cancel_pending(h, |_, _| true);
            // No schedule ticks after shutdown.
            self.handlers[h].ticker = None;
        }
        let mut cancel_requests = 0;
        for s in self.running() {
            if !self.sessions[s].cancel_all {
                self.sessions[s].cancel_all = true;
                cancel_requests += 1;
                self.actions.push(MAction::Cancel {
                    session: s as u64 + 1,
                    request: CancelRequest::CancelAll,
                    item: None,
                });
            }
        }
        MStopped {
            canceled_pending,
            cancel_requests,
        }
    }

    // ----- sessions --------------------------------------------------------------------------

    pub fn session_started(&mut self, s: u64) -> Result<(), MError> {
        let s = self.session(s)?;
        self.sessions[s].started = true;
        Ok(())
    }

    pub fn report_manual_sync(&mut self, s: u64) -> Result<(), MError> {
        let s = self.session(s)?;
        self.sessions[s].manual = true;
        Ok(())
    }

    /// Returns the cancel request for the item and whether it is now terminal.
    pub fn report_progress(
        &mut self,
        s: u64,
        item: &ItemId,
        status: ProgressStatus,
        text: &str,
    ) -> Result<(CancelRequest, bool), MError> {
        check_progress_text(text)?;
        let s = self.session(s)?;
        let pos = self.position_in(s, item)?;
        let si = &mut self.sessions[s].items[pos];
        if let Some(reached) = si.terminal {
            // The terminal rule: only Failed is accepted, and the item ends Failed either way.
            si.terminal = Some(Outcome::Failed);
            si.last = Some(ProgressStatus::Failed);
            if status != ProgressStatus::Failed {
                let refusal = Denied::TerminalState {
                    item: item.clone(),
                    reached,
                    reported: status,
                };
                // The item's result gives the refusal as the reason it failed.
                si.cause = Some(syncmgr::Error::AccessDenied(refusal.clone()).to_string());
                return Err(MError::AccessDenied(refusal));
            }
        } else {
            si.last = Some(status);
            si.terminal = outcome_of(status);
        }
        let terminal = self.sessions[s].items[pos].terminal.is_some();
        Ok((self.cancel_for(s, pos), terminal))
    }

    /// `report_progress` with `Failed` and no text, and the reason the item's result gives;
    /// `permanent`: the failure is final, no retry (SPEC 11.2).
    pub fn report_failure(
        &mut self,
        s: u64,
        item: &ItemId,
        cause: &str,
        permanent: bool,
    ) -> Result<(CancelRequest, bool), MError> {
        let ack = self.report_progress(s, item, ProgressStatus::Failed, "")?;
        let s = self.session(s)?;
        let pos = self.position_in(s, item)?;
        let si = &mut self.sessions[s].items[pos];
        si.permanent |= permanent;
        si.cause = Some(cause.to_owned());
        Ok(ack)
    }

    pub fn set_handler_progress_text(&self, s: u64, text: &str) -> Result<CancelRequest, MError> {
        check_progress_text(text)?;
        let s = self.session(s)?;
        Ok(if self.sessions[s].cancel_all {
            CancelRequest::CancelAll
        } else {
            CancelRequest::None
        })
    }

    pub fn can_continue(&self, s: u64, item: Option<&ItemId>) -> Result<bool, MError> {
        let s = self.session(s)?;
        match item {
            None => Ok(!self.sessions[s].cancel_all),
            Some(item) => {
                let pos = self.position_in(s, item)?;
                Ok(self.cancel_for(s, pos) == CancelRequest::None)
            }
        }
    }

    /// The open requests an event in session `s` counts for (DECISIONS 9): the requests that
    /// take the item's outcome from this session, or for `None` every request the session
    /// serves. An item of the handler that is not in the session counts for nobody; an item
    /// the handler does not own is refused.
    fn counted(&self, s: u64, item: Option<&ItemId>) -> Result<bool, MError> {
        let s = self.session(s)?;
        let session = &self.sessions[s];
        match item {
            None => Ok(true),
            Some(item) => match session.items.iter().find(|si| si.item == *item) {
                Some(_) => Ok(true),
                None if self.live_item(session.handler, item).is_some() => Ok(false),
                None => Err(MError::UnknownItem {
                    handler: self.handlers[session.handler].id.clone(),
                    item: item.clone(),
                }),
            },
        }
    }

    pub fn report_event(
        &mut self,
        s: u64,
        item: Option<&ItemId>,
        level: EventLevel,
    ) -> Result<(), MError> {
        let counted = self.counted(s, item)?;
        if level == EventLevel::Error && counted {
            let s = self.session(s)?;
            self.sessions[s].log.push((item.cloned(), false));
        }
        Ok(())
    }

    pub fn report_conflict(&mut self, s: u64, item: Option<&ItemId>) -> Result<(), MError> {
        if self.counted(s, item)? {
            let s = self.session(s)?;
            self.sessions[s].log.push((item.cloned(), true));
        }
        Ok(())
    }

    /// What a request takes from a session that served it: every logged error and conflict
    /// for the handler as a whole or for an item it waited on there, whenever it was logged.
    fn session_counts(&self, r: u64, s: usize) -> (u32, u32) {
        let session = &self.sessions[s];
        let mine: Vec<&ItemId> = session
            .items
            .iter()
            .filter(|si| si.waiters.contains(&r))
            .map(|si| &si.item)
            .collect();
        if mine.is_empty() {
            return (0, 0);
        }
        let (mut errors, mut conflicts) = (0, 0);
        for (item, conflict) in &session.log {
            let counts = match item {
                None => true,
                Some(item) => mine.contains(&item),
            };
            if counts && *conflict {
                conflicts += 1;
            } else if counts {
                errors += 1;
            }
        }
        (errors, conflicts)
    }

    /// Adds what session `s` counted for request `r` to its result.
    fn credit(&mut self, r: u64, s: usize) {
        let (errors, conflicts) = self.session_counts(r, s);
        let req = &mut self.requests[r as usize - 1];
        req.errors += errors;
        req.conflicts += conflicts;
    }

    /// The pending items of the session's key that no running session of the handler holds,
    /// oldest first, and the requests waiting on them, each once, in number order.
    pub fn query_for_additional_items(&self, s: u64) -> Result<(Vec<ItemId>, Vec<u64>), MError> {
        let s = self.session(s)?;
        let h = self.sessions[s].handler;
        let key = &self.sessions[s].key;
        let mut items = Vec::new();
        let mut requests: Vec<u64> = Vec::new();
        for entry in &self.handlers[h].pending {
            if entry.key != *key || self.holder(h, &entry.item).is_some() {
                continue;
            }
            items.push(entry.item.clone());
            for &r in &entry.waiters {
                if !requests.contains(&r) {
                    requests.push(r);
                }
            }
        }
        requests.sort();
        Ok((items, requests))
    }

    /// DECISIONS 14. Returns how many requests now take the item's outcome from the session.
    pub fn add_item_to_session(&mut self, s: u64, item: &ItemId) -> Result<usize, MError> {
        let s = self.session(s)?;
        let h = self.sessions[s].handler;
        if self.live_item(h, item).is_none() {
            return Err(MError::UnknownItem {
                handler: self.handlers[h].id.clone(),
                item: item.clone(),
            });
        }
        match self.holder(h, item) {
            Some(other) if other == s => return Err(MError::ItemAlreadyInSession(item.clone())),
            Some(_) => return Err(MError::ItemNotPending(item.clone())),
            None => {}
        }
        let key = &self.sessions[s].key;
        let pending = &mut self.handlers[h].pending;
        let Some(at) = pending
            .iter()
            .position(|e| e.item == *item && e.key == *key)
        else {
            // Pending under another key only: not for this session.
            return Err(MError::ItemNotPending(item.clone()));
        };
        let entry = pending.remove(at);
        let served = entry.waiters.len();
        self.sessions[s].items.push(SessionItem {
            item: entry.item,
            last: None,
            terminal: None,
            cancel: false,
            waiters: entry.waiters,
            permanent: false,
            cause: None,
        });
        Ok(served)
    }

    /// An ID a discovered item may not take: the handler has it, or an update dropped it
    /// while a running session still holds it (committing it then would put one item in two
    /// sessions).
    fn id_taken(&self, h: usize, item: &ItemId) -> bool {
        self.live_item(h, item).is_some() || self.holder(h, item).is_some()
    }

    pub fn propose_item(&mut self, s: u64, spec: &ItemSpec) -> Result<(), MError> {
        let s = self.session(s)?;
        let h = self.sessions[s].handler;
        if self.id_taken(h, &spec.id) || self.sessions[s].proposed.iter().any(|p| p.id == spec.id) {
            return Err(MError::ItemExists {
                handler: self.handlers[h].id.clone(),
                item: spec.id.clone(),
            });
        }
        self.sessions[s].proposed.push(spec.clone());
        Ok(())
    }

    /// A committed item becomes an item of the handler and of this session. The ID must still
    /// be free (see `id_taken`): an update may have added it since the proposal.
    pub fn commit_item(&mut self, s: u64, item: &ItemId) -> Result<(), MError> {
        let s = self.session(s)?;
        let Some(at) = self.sessions[s].proposed.iter().position(|p| p.id == *item) else {
            return Err(MError::ItemNotProposed(item.clone()));
        };
        let h = self.sessions[s].handler;
        if self.id_taken(h, item) {
            return Err(MError::ItemExists {
                handler: self.handlers[h].id.clone(),
                item: item.clone(),
            });
        }
        let spec = self.sessions[s].proposed.remove(at);
        let items = &mut self.handlers[h].items;
        match items.iter_mut().find(|i| i.id == spec.id) {
            Some(record) => {
                record.live = true;
                record.capabilities = spec.capabilities;
                record.policies = spec.policies;
                record.enabled = spec.enabled;
            }
            None => items.push(Item {
                id: spec.id.clone(),
                capabilities: spec.capabilities,
                policies: spec.policies,
                enabled: spec.enabled,
                live: true,
                attempts: 0,
            }),
        }
        self.sessions[s].items.push(SessionItem {
            item: spec.id,
            last: None,
            terminal: None,
            cancel: false,
            waiters: Vec::new(),
            permanent: false,
            cause: None,
        });
        Ok(())
    }

    /// DECISIONS 8: every item's outcome is its terminal report, else `Canceled` if a cancel
    /// was requested for it or the session, else `Failed`. Returns the handler and outcomes.
    ///
    /// SPEC 11.2: a `Failed` item may go back to the pending set for another attempt instead
    /// (`Model::split_for_retry`); the requests that wait for it keep waiting there. Returns
    /// the handler, the outcomes in session order and the items that will be tried again.
    /// `failed`: the session's own error, when `synchronize` failed.
    pub fn session_finished(&mut self, s: u64, failed: Option<&str>) -> Result<Ended, MError> {
        let s = self.session(s)?;
        self.sessions[s].ended = true;
        let session = self.sessions[s].clone();
        let h = session.handler;
        let mut outcomes = Vec::new();
        let mut causes = Vec::new();
        for si in &session.items {
            let outcome = si.terminal.unwrap_or(if session.cancel_all || si.cancel {
                Outcome::Canceled
            } else {
                Outcome::Failed
            });
            outcomes.push((si.item.clone(), outcome));
            // A failure's reason: the item's own, else the session's, else (never reported)
            // that the session ended first; a bare `Failed` report has none.
            causes.push(match outcome {
                Outcome::Failed => si
                    .cause
                    .clone()
                    .or(failed.map(str::to_owned))
                    .or(si.terminal.is_none().then(|| NO_REPORT.to_owned())),
                _ => None,
            });
        }
        let mut served: Vec<u64> = Vec::new();
        for si in &session.items {
            for &r in &si.waiters {
                if !served.contains(&r) {
                    served.push(r);
                }
            }
        }
        for r in served {
            if !self.requests[r as usize - 1].done {
                self.credit(r, s);
            }
        }
        // Every request that waited for an item here had one more attempt of it.
        for si in &session.items {
            for &r in &si.waiters {
                self.count_attempt(r, &si.item);
            }
        }
        let mut again = Vec::new();
        for ((si, (_, outcome)), cause) in session.items.iter().zip(&outcomes).zip(&causes) {
            let (now, later, attempt) = self.split_for_retry(&session, si, *outcome);
            self.settle(&si.item, &now, *outcome, cause.as_deref());
            if !later.is_empty() {
                again.push((si.item.clone(), later, attempt));
            }
        }
        for (item, waiters, attempt) in &again {
            self.retry_later(h, item, waiters, *attempt);
        }
        self.schedule();
        let retried = again.into_iter().map(|(item, _, _)| item).collect();
        Ok((self.handlers[h].id.clone(), outcomes, retried))
    }

    // ----- views -----------------------------------------------------------------------------

    /// The live handlers, in registration order.
    pub fn handler_views(&self) -> Vec<HView> {
        (0..self.handlers.len())
            .filter(|&h| !self.handlers[h].removed)
            .map(|h| {
                let handler = &self.handlers[h];
                HView {
                    id: handler.id.clone(),
                    active: handler.active,
                    enabled: handler.enabled,
                    connected: handler.connected,
                    session_limit: self.limit(h),
                    items: handler
                        .items
                        .iter()
                        .filter(|i| i.live)
                        .map(|i| (i.id.clone(), i.enabled))
                        .collect(),
                    pending: std::iter::once(&None)
                        .chain(&handler.key_order)
                        .flat_map(|k| handler.pending.iter().filter(move |e| e.key == *k))
                        .map(|e| e.item.clone())
                        .collect(),
                    running: self
                        .running_of(h)
                        .into_iter()
                        .map(|s| s as u64 + 1)
                        .collect(),
                }
            })
            .collect()
    }

    /// The running sessions, in start order.
    pub fn session_views(&self) -> Vec<SView> {
        self.running()
            .into_iter()
            .map(|s| {
                let session = &self.sessions[s];
                SView {
                    id: s as u64 + 1,
                    handler: self.handlers[session.handler].id.clone(),
                    started: session.started,
                    manual: session.manual,
                    cancel_all: session.cancel_all,
                    key: session.key.clone(),
                    items: session
                        .items
                        .iter()
                        .map(|si| SItemView {
                            item: si.item.clone(),
                            last: si.last,
                            terminal: si.terminal,
                            cancel_requested: si.cancel,
                            waiting: si.waiters.clone(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The open requests, oldest first.
    pub fn request_views(&self) -> Vec<RView> {
        (0..self.requests.len())
            .filter(|&r| !self.requests[r].done)
            .map(|r| {
                let req = &self.requests[r];
                let so_far = (0..self.sessions.len())
                    .filter(|&s| !self.sessions[s].ended)
                    .map(|s| self.session_counts(r as u64 + 1, s))
                    .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                RView {
                    id: r as u64 + 1,
                    handler: self.handlers[req.handler].id.clone(),
                    items: req.items.clone(),
                    errors: req.errors + so_far.0,
                    conflicts: req.conflicts + so_far.1,
                }
            })
            .collect()
    }
}
