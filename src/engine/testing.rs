//! Driving the engine by hand in tests: [`Driver`] plays the shell, [`Op`] is one engine
//! input as a value.
//!
//! A shell around [`Engine`] takes the actions the engine queues, runs the sessions they
//! start, reports each item's progress, ends each session and hands every result to its
//! caller. A test of your own queue semantics needs that same loop, with the sessions played
//! by the test. [`Driver`] is that loop. It owns the engine and takes every action the
//! engine queues, marking each session it starts as started. It keeps the results and the
//! actions in the order they came, and it finishes sessions with the outcome a closure
//! chooses for each item. It runs no thread and reads no clock, so a test that uses it is as
//! deterministic as the engine.
//!
//! ```
//! use syncmgr::engine::testing::Driver;
//! use syncmgr::engine::{Engine, HandlerSpec};
//! use syncmgr::{HandlerId, ItemId, Outcome, SyncControlFlags};
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let mail = HandlerId::new("mail")?;
//! let (inbox, sent) = (ItemId::new("inbox")?, ItemId::new("sent")?);
//! let mut engine = Engine::default();
//! engine.register_handler(HandlerSpec::new(mail.clone()).items([inbox.clone(), sent.clone()]))?;
//! let mut driver = Driver::new(engine);
//!
//! // The first request starts a session at once; two more arrive while it runs and merge.
//! let first = driver.engine_mut().start_item_sync(&mail, &[inbox.clone()], SyncControlFlags::NONE)?;
//! let all = driver.engine_mut().start_handler_sync(&mail, SyncControlFlags::NONE)?;
//! let just_sent = driver.engine_mut().start_item_sync(&mail, &[sent.clone()], SyncControlFlags::NONE)?;
//!
//! // Play every session to its end: `sent` fails, everything else succeeds.
//! let fail_sent = |_: &HandlerId, item: &ItemId| {
//!     if *item == sent { Outcome::Failed } else { Outcome::Succeeded }
//! };
//! assert_eq!(driver.finish_all(fail_sent)?, 2); // the first session, then one for the merged two
//!
//! let status = |request| driver.result_of(request).map(|r| r.status);
//! assert_eq!(status(first.request), Some(Outcome::Succeeded));
//! assert_eq!(status(all.request), Some(Outcome::Failed));
//! assert_eq!(status(just_sent.request), Some(Outcome::Failed));
//! assert_eq!(driver.results().len(), 3); // exactly one result each
//! assert!(driver.engine().is_idle());
//! # Ok(()) }
//! ```
//!
//! [`Op`] is one engine input as a value: a start, the end of a session, a cancel, a stop, a
//! state change, time passing. It is resolved against what exists when it runs (the
//! handler's oldest running session, the n-th open request), so a sequence of them means
//! something whatever came before it, which is what a property test generates. With the
//! `proptest` feature, the crate's `strategies` module generates them.

use std::time::Duration;

use super::{
    Accepted, Action, Changed, Engine, RequestId, SessionEnd, SessionEnded, SessionId, Stopped,
    Withdrawn,
};
use crate::error::Error;
use crate::flags::{ProgressStatus, SyncControlFlags};
use crate::id::{HandlerId, ItemId};
use crate::result::{Outcome, RequestResult};
use crate::time::Time;

/// Plays the shell around an [`Engine`] for a test: takes its actions, marks the sessions it
/// starts as started, ends sessions with the outcomes a closure chooses, and keeps the
/// results. See the [module docs](self).
///
/// Every method takes the actions the engine queued before it returns, so
/// [`results`](Driver::results) and [`actions`](Driver::actions) are up to date after each
/// call. Calls made through [`engine_mut`](Driver::engine_mut) queue their actions in the
/// engine until the driver's next call (or [`pump`](Driver::pump)) takes them; taking the
/// engine's actions yourself (`engine_mut().drain_actions()`) hides them from the driver.
///
/// The closures that choose outcomes get the handler and the item; one that always answers
/// the same is `|_, _| Outcome::Succeeded`.
#[derive(Debug, Default)]
pub struct Driver {
    engine: Engine,
    /// Every action taken from the engine and not yet taken by the test, oldest first.
    actions: Vec<Action>,
    /// Every result delivered and not yet taken by the test, in delivery order.
    results: Vec<RequestResult>,
}

impl From<Engine> for Driver {
    fn from(engine: Engine) -> Driver {
        Driver::new(engine)
    }
}

impl Driver {
    /// A driver for this engine. Actions the engine has already queued are taken at once.
    pub fn new(engine: Engine) -> Driver {
        let mut driver = Driver {
            engine,
            actions: Vec::new(),
            results: Vec::new(),
        };
        driver.pump();
        driver
    }

    /// The engine, to inspect.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to call directly. The driver takes the actions such calls queue at its
    /// next call.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The engine back, with any actions the driver has not taken still queued in it.
    pub fn into_engine(self) -> Engine {
        self.engine
    }

    /// Takes every action the engine has queued, oldest first: records each one, keeps each
    /// delivered result, and marks each session it starts as started
    /// ([`Engine::session_started`]). Returns how many actions it took.
    pub fn pump(&mut self) -> usize {
        let taken: Vec<Action> = self.engine.drain_actions().collect();
        for action in &taken {
            match action {
                Action::StartSession { session, .. } => {
                    // A session ended through `engine_mut` before this pump is no longer
                    // running: there is nothing left to mark, and that is not an error.
                    let _ = self.engine.session_started(*session);
                }
                Action::Deliver(result) => self.results.push(result.clone()),
                _ => {}
            }
        }
        let count = taken.len();
        self.actions.extend(taken);
        count
    }

    /// Applies one operation (see [`Op::apply`]) and takes the actions it queued.
    ///
    /// # Errors
    ///
    /// The error of the engine call the operation makes; a refused call changes nothing.
    pub fn apply(&mut self, op: &Op) -> Result<Applied, Error> {
        self.pump();
        let applied = op.apply(&mut self.engine);
        self.pump();
        applied
    }

    /// The running sessions of the handler with this ID, oldest first.
    pub fn sessions_of(&self, handler: &HandlerId) -> Vec<SessionId> {
        sessions_of(&self.engine, handler)
    }

    /// Ends a running session: each of its items with no terminal report yet reports the
    /// outcome `outcome` chooses for it, then the session ends with
    /// [`SessionEnd::Returned`]. Items that already have a terminal report keep it (a second
    /// one would break the terminal rule). Returns what the engine decided; the results it
    /// delivered are in [`results`](Driver::results), the sessions it started are running.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSession`] if the session is not running; otherwise the error of a
    /// progress report, with the reports before it made and the session still running.
    pub fn finish(
        &mut self,
        session: SessionId,
        outcome: impl FnMut(&HandlerId, &ItemId) -> Outcome,
    ) -> Result<SessionEnded, Error> {
        self.pump();
        let ended = finish_session(&mut self.engine, session, outcome);
        self.pump();
        ended
    }

    /// Ends the oldest running session as [`finish`](Driver::finish) does, if any runs.
    ///
    /// # Errors
    ///
    /// The error of a progress report (see [`finish`](Driver::finish)).
    pub fn step(
        &mut self,
        outcome: impl FnMut(&HandlerId, &ItemId) -> Outcome,
    ) -> Result<Option<SessionEnded>, Error> {
        self.pump();
        match self.engine.sessions().first() {
            Some(&session) => self.finish(session, outcome).map(Some),
            None => Ok(None),
        }
    }

    /// Ends running sessions, oldest first, and those their ends start, until none runs.
    /// Returns how many it ended.
    ///
    /// Time does not move, so it always stops: each session takes pending items, and what a
    /// session leaves pending again (an item to retry) waits for a backoff that only a
    /// [`poll`](Driver::poll) ends. [`run_until`](Driver::run_until) lets time move too.
    ///
    /// # Errors
    ///
    /// The error of a progress report (see [`finish`](Driver::finish)).
    pub fn finish_all(
        &mut self,
        mut outcome: impl FnMut(&HandlerId, &ItemId) -> Outcome,
    ) -> Result<usize, Error> {
        let mut ended = 0;
        while self.step(&mut outcome)?.is_some() {
            ended += 1;
        }
        Ok(ended)
    }

    /// Tells the engine the time ([`Engine::poll`]) and takes the actions the timers that
    /// fired queued. Returns how many timers fired.
    pub fn poll(&mut self, now: Time) -> usize {
        self.pump();
        let fired = self.engine.poll(now);
        self.pump();
        fired
    }

    /// Lets time run to `until`: ends every running session as
    /// [`finish_all`](Driver::finish_all) does, polls at each deadline up to `until` (debounce
    /// windows close, backoffs end, schedules tick) and ends the sessions that starts, then
    /// polls at `until`. Returns how many sessions it ended. With a schedule, every tick up to
    /// `until` runs a session.
    ///
    /// ```
    /// use std::time::Duration;
    /// use syncmgr::engine::testing::Driver;
    /// use syncmgr::engine::{Engine, HandlerSpec};
    /// use syncmgr::{HandlerId, ItemId, Outcome, Retry, SyncControlFlags, SyncPolicy, Time};
    ///
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// let mail = HandlerId::new("mail")?;
    /// let retry = Retry::exponential(3, Duration::from_secs(30), Duration::from_secs(600));
    /// let spec = HandlerSpec::new(mail.clone())
    ///     .items([ItemId::new("outbox")?])
    ///     .with_sync_policy(SyncPolicy::default().retry(retry));
    /// let mut engine = Engine::default();
    /// engine.register_handler(spec)?;
    /// let mut driver = Driver::new(engine);
    /// let request = driver.engine_mut().start_handler_sync(&mail, SyncControlFlags::NONE)?.request;
    ///
    /// // The first attempt fails; the retry 30 s later succeeds.
    /// let mut attempts = 0;
    /// let flaky = |_: &HandlerId, _: &ItemId| {
    ///     attempts += 1;
    ///     if attempts == 1 { Outcome::Failed } else { Outcome::Succeeded }
    /// };
    /// assert_eq!(driver.run_until(Time::from_secs(60), flaky)?, 2);
    /// assert_eq!(driver.result_of(request).map(|r| r.status), Some(Outcome::Succeeded));
    /// assert_eq!(driver.engine().now(), Time::from_secs(60));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The error of a progress report (see [`finish`](Driver::finish)).
    pub fn run_until(
        &mut self,
        until: Time,
        mut outcome: impl FnMut(&HandlerId, &ItemId) -> Outcome,
    ) -> Result<usize, Error> {
        let mut ended = self.finish_all(&mut outcome)?;
        while let Some(due) = self.engine.next_deadline().filter(|&due| due <= until) {
            // A poll at a deadline fires at least the timer due then; if none fired, the
            // same deadline would come back forever.
            if self.poll(due) == 0 {
                break;
            }
            ended += self.finish_all(&mut outcome)?;
        }
        self.poll(until);
        Ok(ended)
    }

    /// The results delivered and not yet taken, in delivery order.
    pub fn results(&self) -> &[RequestResult] {
        &self.results
    }

    /// The result of this request, if it was delivered and not yet taken.
    pub fn result_of(&self, request: RequestId) -> Option<&RequestResult> {
        self.results.iter().find(|r| r.request == request)
    }

    /// Takes the results delivered so far, in delivery order.
    pub fn take_results(&mut self) -> Vec<RequestResult> {
        std::mem::take(&mut self.results)
    }

    /// Every action taken from the engine and not yet taken by the test, in the order the
    /// engine decided them (results included: a result is both an action and a result).
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Takes the actions recorded so far, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }
}

/// The running sessions of the handler with this ID, oldest first.
fn sessions_of(engine: &Engine, handler: &HandlerId) -> Vec<SessionId> {
    engine
        .sessions()
        .into_iter()
        .filter(|&s| {
            engine
                .session_view(s)
                .is_some_and(|v| v.handler == *handler)
        })
        .collect()
}

/// Reports `outcome` for each item of a running session with no terminal report, then ends it.
fn finish_session(
    engine: &mut Engine,
    session: SessionId,
    mut outcome: impl FnMut(&HandlerId, &ItemId) -> Outcome,
) -> Result<SessionEnded, Error> {
    let view = engine
        .session_view(session)
        .ok_or(Error::UnknownSession(session))?;
    for item in view.items.iter().filter(|i| i.terminal.is_none()) {
        let status = ProgressStatus::from(outcome(&view.handler, &item.item));
        // The cancel request it answers is the handler's business; the test chose already.
        let _ = engine.report_progress(session, &item.item, status)?;
    }
    engine.session_finished(session, SessionEnd::Returned)
}

/// One input of the engine, as a value: what a generated operation sequence is made of.
///
/// An operation names handlers and items by ID, and selects a running session by its
/// handler and an open request by position, when it runs, so that any sequence can be
/// applied to any engine: what no longer exists makes the operation do nothing
/// ([`Applied::Nothing`]), and what the engine refuses is an error that changes nothing.
/// [`Op::apply`] applies one to an engine; [`Driver::apply`] also takes the actions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// [`Engine::start_handler_sync`].
    StartHandler {
        /// The handler.
        handler: HandlerId,
        /// The start flags.
        flags: SyncControlFlags,
    },
    /// [`Engine::start_item_sync`]. Items may repeat; the engine counts a repeat once.
    StartItems {
        /// The handler.
        handler: HandlerId,
        /// The items to sync.
        items: Vec<ItemId>,
        /// The start flags.
        flags: SyncControlFlags,
    },
    /// [`Engine::start_sync_all`].
    StartAll {
        /// The start flags.
        flags: SyncControlFlags,
    },
    /// Ends the handler's oldest running session: each item with no terminal report yet
    /// reports the outcome listed for it here (the first listing wins), or `Succeeded` if it
    /// is not listed, then the session ends with [`SessionEnd::Returned`]. Does nothing if
    /// the handler runs no session.
    Finish {
        /// The handler whose oldest session ends.
        handler: HandlerId,
        /// The outcomes of the items that do not succeed.
        outcomes: Vec<(ItemId, Outcome)>,
    },
    /// [`Engine::cancel_request`] of an open request: the `nth` of
    /// [`Engine::open_requests`] (oldest first), counted modulo how many are open. Does
    /// nothing if none is open.
    Cancel {
        /// Which open request.
        nth: usize,
    },
    /// [`Engine::stop_handler_sync`].
    StopHandler {
        /// The handler.
        handler: HandlerId,
    },
    /// [`Engine::stop_item_sync`].
    StopItems {
        /// The handler.
        handler: HandlerId,
        /// The items to stop.
        items: Vec<ItemId>,
    },
    /// [`Engine::stop_sync_all`].
    StopAll,
    /// [`Engine::set_handler_active`].
    SetActive {
        /// The handler.
        handler: HandlerId,
        /// Active or not.
        active: bool,
    },
    /// [`Engine::set_handler_enabled`].
    SetEnabled {
        /// The handler.
        handler: HandlerId,
        /// Enabled or not.
        enabled: bool,
    },
    /// [`Engine::set_item_enabled`].
    SetItemEnabled {
        /// The handler.
        handler: HandlerId,
        /// The item.
        item: ItemId,
        /// Enabled or not.
        enabled: bool,
    },
    /// [`Engine::set_handler_connected`].
    SetConnected {
        /// The handler.
        handler: HandlerId,
        /// Connected or not.
        connected: bool,
    },
    /// Time passes: [`Engine::poll`] at `by` after [`Engine::now`] (saturating).
    Advance {
        /// How much time passes.
        by: Duration,
    },
    /// [`Engine::shutdown`].
    Shutdown,
}

/// What applying an [`Op`] did: the value the engine call returned.
#[must_use = "an applied operation says which requests it made and what it changed"]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// A start: the requests it made (one, or one per handler for a sync of everything).
    Accepted(Vec<Accepted>),
    /// A session ended.
    Finished(SessionEnded),
    /// A request was withdrawn, or had already completed.
    Withdrawn(RequestId, Withdrawn),
    /// A stop or a shutdown.
    Stopped(Stopped),
    /// A state change.
    Changed(Changed),
    /// Time passed; this many timers fired.
    Polled(usize),
    /// There was nothing to act on: no running session of the handler, no open request.
    Nothing,
}

impl Applied {
    /// The requests a start made; empty for the other operations.
    pub fn accepted(&self) -> &[Accepted] {
        match self {
            Applied::Accepted(accepted) => accepted,
            _ => &[],
        }
    }
}

impl Op {
    /// Makes the engine call this operation stands for. The actions it queues stay in the
    /// engine ([`Driver::apply`] takes them).
    ///
    /// ```
    /// use syncmgr::engine::testing::{Applied, Op};
    /// use syncmgr::engine::{Engine, HandlerSpec};
    /// use syncmgr::{Error, HandlerId, ItemId, Outcome, SyncControlFlags};
    ///
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// let mail = HandlerId::new("mail")?;
    /// let inbox = ItemId::new("inbox")?;
    /// let mut engine = Engine::default();
    /// engine.register_handler(HandlerSpec::new(mail.clone()).items([inbox.clone()]))?;
    ///
    /// let start = Op::StartItems { handler: mail.clone(), items: vec![inbox.clone()], flags: SyncControlFlags::NONE };
    /// let request = start.apply(&mut engine)?.accepted()[0].request;
    /// let finish = Op::Finish { handler: mail.clone(), outcomes: vec![(inbox.clone(), Outcome::Failed)] };
    /// assert!(matches!(finish.apply(&mut engine)?, Applied::Finished(_)));
    /// assert_eq!(finish.apply(&mut engine)?, Applied::Nothing); // no session runs now
    ///
    /// let result = engine.drain_actions().find_map(|a| match a {
    ///     syncmgr::engine::Action::Deliver(r) => Some(r),
    ///     _ => None,
    /// });
    /// assert_eq!(result.map(|r| (r.request, r.status)), Some((request, Outcome::Failed)));
    ///
    /// let ghost = Op::StopHandler { handler: HandlerId::new("ghost")? };
    /// assert!(matches!(ghost.apply(&mut engine), Err(Error::UnknownHandler(_))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The error of the engine call; a refused call changes nothing. [`Op::Finish`] may
    /// fail after some of its progress reports (see [`Driver::finish`]).
    pub fn apply(&self, engine: &mut Engine) -> Result<Applied, Error> {
        Ok(match self {
            Op::StartHandler { handler, flags } => {
                Applied::Accepted(vec![engine.start_handler_sync(handler, *flags)?])
            }
            Op::StartItems {
                handler,
                items,
                flags,
            } => Applied::Accepted(vec![engine.start_item_sync(handler, items, *flags)?]),
            Op::StartAll { flags } => Applied::Accepted(engine.start_sync_all(*flags)?),
            Op::Finish { handler, outcomes } => match sessions_of(engine, handler).first() {
                Some(&session) => {
                    let chosen = |_: &HandlerId, item: &ItemId| {
                        outcomes
                            .iter()
                            .find(|(listed, _)| listed == item)
                            .map_or(Outcome::Succeeded, |&(_, o)| o)
                    };
                    Applied::Finished(finish_session(engine, session, chosen)?)
                }
                None => Applied::Nothing,
            },
            Op::Cancel { nth } => {
                let open = engine.open_requests();
                match open.get(nth.checked_rem(open.len()).unwrap_or(0)) {
                    Some(&request) => Applied::Withdrawn(request, engine.cancel_request(request)?),
                    None => Applied::Nothing,
                }
            }
            Op::StopHandler { handler } => Applied::Stopped(engine.stop_handler_sync(handler)?),
            Op::StopItems { handler, items } => {
                Applied::Stopped(engine.stop_item_sync(handler, items)?)
            }
            Op::StopAll => Applied::Stopped(engine.stop_sync_all()),
            Op::SetActive { handler, active } => {
                Applied::Changed(engine.set_handler_active(handler, *active)?)
            }
            Op::SetEnabled { handler, enabled } => {
                Applied::Changed(engine.set_handler_enabled(handler, *enabled)?)
            }
            Op::SetItemEnabled {
                handler,
                item,
                enabled,
            } => Applied::Changed(engine.set_item_enabled(handler, item, *enabled)?),
            Op::SetConnected { handler, connected } => {
                Applied::Changed(engine.set_handler_connected(handler, *connected)?)
            }
            Op::Advance { by } => {
                let now = engine.now().saturating_add(*by);
                Applied::Polled(engine.poll(now))
            }
            Op::Shutdown => Applied::Stopped(engine.shutdown()),
        })
    }
}
