//! The calls the property tests (`tests/properties.rs`) and the engine fuzz target
//! (`fuzz/fuzz_targets/engine.rs`) make, and how the engine and the naive model each answer
//! them, in one shape so that the two answers compare. Both include this file with
//! `#[path]`, next to the model.

use syncmgr::engine::{
    Accepted, Action, Disposition, Engine, HandlerSpec, HandlerView, ItemSpec, MergeKey,
    RequestOptions, RequestView, SessionEnd, SessionView, Withdrawn,
};
use syncmgr::{
    CancelRequest, Cause, Error, EventLevel, HandlerCapabilities, HandlerId, HandlerPolicies,
    ItemId, Outcome, Progress, ProgressStatus, RequestId, SessionId, SyncControlFlags, SyncPolicy,
    Time, Trigger, UpdateReason,
};

use crate::model::{
    HView, MAccepted, MAction, MChanged, MDisposition, MError, MKey, MResult, MStopped, Model,
    Options, RView, SItemView, SView,
};

/// A merge key in the model's words.
pub fn mkey(key: &MergeKey) -> MKey {
    key.as_cookie().map(<[u8]>::to_vec)
}

// ----- concrete calls, and how the engine and the model answer them --------------------------

/// One concrete call, the same for the engine and the model.
#[derive(Clone, Debug)]
pub enum Call {
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
    /// `Engine::poll`: time moves to this value (or stays, if it is older).
    Poll(Time),
    SetPolicy(HandlerId, SyncPolicy),
    Trigger(Trigger),
    /// `Engine::start_sync_with`: a start with request options (expedite, no retry, key).
    StartWith(
        HandlerId,
        Option<Vec<ItemId>>,
        SyncControlFlags,
        RequestOptions,
    ),
    /// `Engine::report_permanent_failure`.
    Permanent(SessionId, ItemId, String),
}

impl Call {
    pub fn start_flags(&self) -> Option<SyncControlFlags> {
        match self {
            Call::StartItems(_, _, f)
            | Call::StartHandler(_, f)
            | Call::StartAll(f)
            | Call::StartSync(_, _, f, _)
            | Call::StartWith(_, _, f, _) => Some(*f),
            _ => None,
        }
    }

    /// The merge key of the requests a start call makes.
    pub fn merge_key(&self) -> MergeKey {
        match self {
            Call::StartSync(_, _, _, key) => key.clone(),
            Call::StartWith(_, _, _, options) => options.key.clone(),
            _ => MergeKey::DEFAULT,
        }
    }

    /// The items a start call names, if it names them.
    pub fn named(&self) -> Option<&[ItemId]> {
        match self {
            Call::StartItems(_, items, _)
            | Call::StartSync(_, Some(items), _, _)
            | Call::StartWith(_, Some(items), _, _) => Some(items),
            _ => None,
        }
    }

    /// The request options of a start call (plain for all but `StartWith`).
    pub fn options(&self) -> RequestOptions {
        match self {
            Call::StartWith(_, _, _, options) => options.clone(),
            _ => RequestOptions::keyed(self.merge_key()),
        }
    }
}

/// A successful reply, in one shape for both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
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
    /// A session's end: the session, its handler, each item's outcome, and the items that
    /// will be tried again.
    Ended(u64, HandlerId, Vec<(ItemId, Outcome)>, Vec<ItemId>),
    /// How many timers a poll fired.
    Fired(usize),
}

impl Reply {
    pub fn accepted(&self) -> Vec<&MAccepted> {
        match self {
            Reply::Accepted(a) => vec![a],
            Reply::AcceptedAll(all) => all.iter().collect(),
            _ => Vec::new(),
        }
    }
}

pub fn from_accepted(a: &Accepted) -> MAccepted {
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

pub fn from_action(a: &Action) -> MAction {
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
            items: r
                .items
                .iter()
                .map(|o| (o.item.clone(), o.outcome))
                .collect(),
            attempts: r.items.iter().map(|o| o.attempts).collect(),
            causes: r
                .items
                .iter()
                .map(|o| o.cause.as_ref().map(|c| format!("{c:#}")))
                .collect(),
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
        Action::Debounced { handler, until } => MAction::Debounced {
            handler: handler.clone(),
            until: *until,
        },
        Action::RetryScheduled {
            handler,
            item,
            attempt,
            max_attempts,
            at,
        } => MAction::RetryScheduled {
            handler: handler.clone(),
            item: item.clone(),
            attempt: *attempt,
            max_attempts: *max_attempts,
            at: *at,
        },
        Action::Issued {
            request,
            handler,
            reason,
        } => MAction::Issued {
            request: request.get(),
            handler: handler.clone(),
            reason: *reason,
        },
        Action::TickSkipped { handler, open } => MAction::TickSkipped {
            handler: handler.clone(),
            open: open.get(),
        },
        other => panic!("an action the model does not know: {other:?}"),
    }
}

pub fn on_engine(e: &mut Engine, call: &Call) -> Result<Reply, Error> {
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
            let ack = e.report_progress(*s, i, Progress::new(*st).text(text.as_str()))?;
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
            let queued = e.pending_actions().len();
            let ended = e.session_finished(*s, end.clone())?;
            // The one order of results the engine promises (the model compares results as
            // sets): one session's end delivers oldest request first.
            let delivered: Vec<_> = e
                .pending_actions()
                .skip(queued)
                .filter_map(|a| match a {
                    Action::Deliver(r) => Some(r.request),
                    _ => None,
                })
                .collect();
            assert!(
                delivered.is_sorted(),
                "one session's end delivers oldest request first: {delivered:?}"
            );
            Reply::Ended(
                ended.session.get(),
                ended.handler,
                ended.outcomes,
                ended.retried,
            )
        }
        Call::Poll(now) => Reply::Fired(e.poll(*now)),
        Call::SetPolicy(h, policy) => changed(e.set_sync_policy(h, policy.clone())?),
        Call::Trigger(t) => Reply::AcceptedAll(e.trigger(*t)?.iter().map(from_accepted).collect()),
        Call::StartWith(h, items, f, options) => Reply::Accepted(from_accepted(
            &e.start_sync_with(h, items.as_deref(), *f, options)?,
        )),
        Call::Permanent(s, i, text) => {
            let ack = e.report_permanent_failure(*s, i, Cause::new(text.as_str()))?;
            Reply::Ack(ack.cancel, ack.terminal)
        }
    })
}

pub fn on_model(m: &mut Model, call: &Call) -> Result<Reply, MError> {
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
        Call::Finish(s, end) => {
            let failed = end.cause().map(|c| format!("{c:#}"));
            let (handler, outcomes, retried) = m.session_finished(s.get(), failed.as_deref())?;
            Reply::Ended(s.get(), handler, outcomes, retried)
        }
        Call::Poll(now) => Reply::Fired(m.poll(*now)),
        Call::SetPolicy(h, policy) => Reply::Changed(m.set_sync_policy(h, policy.clone())?),
        Call::Trigger(t) => Reply::AcceptedAll(m.trigger(*t)?),
        Call::StartWith(h, items, f, options) => {
            let plain = Options {
                expedite: options.expedite,
                no_retry: options.no_retry,
            };
            Reply::Accepted(m.start_sync_with(
                h,
                items.as_deref(),
                *f,
                mkey(&options.key),
                plain,
            )?)
        }
        Call::Permanent(s, i, text) => {
            let (cancel, terminal) = m.report_failure(s.get(), i, text, true)?;
            Reply::Ack(cancel, terminal)
        }
    })
}

// ----- views ---------------------------------------------------------------------------------

/// What the engine shows before or after a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub handlers: Vec<HandlerView>,
    pub sessions: Vec<SessionView>,
    pub requests: Vec<RequestView>,
    /// The engine's time and its next deadline.
    pub now: Time,
    pub deadline: Option<Time>,
    /// Each live handler's sync policy, in registration order.
    pub policies: Vec<(HandlerId, SyncPolicy)>,
}

impl Snapshot {
    pub fn take(e: &Engine) -> Snapshot {
        Snapshot {
            now: e.now(),
            deadline: e.next_deadline(),
            policies: e
                .handlers()
                .into_iter()
                .filter_map(|h| Some((h.clone(), e.sync_policy(&h)?.clone())))
                .collect(),
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

    pub fn handler(&self, id: &HandlerId) -> Option<&HandlerView> {
        self.handlers.iter().find(|h| h.id == *id)
    }

    pub fn session(&self, id: SessionId) -> Option<&SessionView> {
        self.sessions.iter().find(|s| s.id == id)
    }

    pub fn request(&self, id: u64) -> Option<&RequestView> {
        self.requests.iter().find(|r| r.id.get() == id)
    }

    pub fn h_views(&self) -> Vec<HView> {
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

    pub fn s_views(&self) -> Vec<SView> {
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

    pub fn r_views(&self) -> Vec<RView> {
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

/// Whether `item` of this session view is "currently syncing" (SPEC 5, DECISIONS 5).
pub fn syncing(session: &SessionView, item: &ItemId) -> bool {
    !session.cancel_all
        && session
            .items
            .iter()
            .any(|si| si.item == *item && si.terminal.is_none() && !si.cancel_requested)
}

pub fn aggregate(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    // Failed > Disconnected > Canceled > Succeeded (SPEC 7).
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
