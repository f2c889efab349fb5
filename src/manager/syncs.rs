//! The manager's calls that start and stop syncs: a handler's, some items', everything, a
//! built [`SyncRequest`] or a batch of them under one lock.

use super::access::guard;
use super::command::{Command, Ran, Start, StopTarget, call, call_here};
use super::request::{IntoId, StartParts, SyncRequest, item_ids};
use super::scheduler::Scheduler;
use super::{SyncManager, SyncResult, SyncTicket};
use crate::engine::Stopped;
use crate::error::Error;
use crate::flags::SyncControlFlags;
use crate::id::{HandlerId, ItemId};
use crate::unwind;

impl SyncManager {
    /// Syncs every enabled item of a handler (`StartHandlerSync`). Returns at once with a
    /// ticket, or with the reason the request was refused (an unknown handler, a policy, a
    /// disabled or inactive handler: see [`Error`]); a refused call changes nothing.
    pub fn start_handler_sync(
        &self,
        handler: impl IntoId<HandlerId>,
        flags: SyncControlFlags,
        result: Option<Box<dyn SyncResult>>,
    ) -> Result<SyncTicket, Error> {
        self.start(StartParts::plain(handler.into_id()?, None, flags, result))
    }

    /// Syncs named items of a handler (`StartItemSync`).
    pub fn start_item_sync<I: IntoId<ItemId>>(
        &self,
        handler: impl IntoId<HandlerId>,
        items: impl IntoIterator<Item = I>,
        flags: SyncControlFlags,
        result: Option<Box<dyn SyncResult>>,
    ) -> Result<SyncTicket, Error> {
        let handler = handler.into_id()?;
        let items = item_ids(items)?;
        self.start(StartParts::plain(handler, Some(items), flags, result))
    }

    /// Syncs everything (`StartSyncAll`): one request per active, enabled handler with
    /// something to sync; their tickets.
    ///
    /// All or nothing: the requests are made in one step of the scheduler, so either every
    /// one of them is accepted and its ticket returned, or (the manager was shut down) none
    /// is. Each handler's connectivity is asked first, on the calling thread; a handler whose
    /// `is_connected` panics counts as disconnected here (its request completes as
    /// `Disconnected`), so that one handler cannot refuse everyone's sync. It costs in
    /// proportion to the handlers it covers, with or without subscribers.
    pub fn start_sync_all(&self, flags: SyncControlFlags) -> Result<Vec<SyncTicket>, Error> {
        let connected = self
            .core()
            .registry
            .all()
            .into_iter()
            .map(|(id, e)| {
                let up = guard(|| e.object.is_connected()).unwrap_or(false);
                (id, up)
            })
            .collect();
        call(&self.core().link, |reply| Command::StartAll {
            flags,
            connected,
            reply,
        })
    }

    /// Runs a [`SyncRequest`].
    pub fn request(&self, request: SyncRequest) -> Result<SyncTicket, Error> {
        self.start(request.parts()?)
    }

    /// Runs many [`SyncRequest`]s at once: one result per request, in order, each what its
    /// own [`request`](Self::request) call would have returned had the calls been made
    /// back to back with nothing in between.
    ///
    /// Use it when requests come in bunches (a file watcher's batch of changes, a queue
    /// drained at once) and belong together: the bunch is accepted in one step of the
    /// scheduler, so no other call and no session's report comes between its requests, and
    /// they merge with each other as calls one by one would with nothing in between. Each
    /// request still gets its own ticket, its own result and its own dispositions. Each
    /// handler's `is_connected` is asked once for the whole bunch, on the calling thread; if
    /// it panics, that handler's requests are refused with `HandlerFailed` and the others go
    /// on. It costs about what the calls one by one cost (the scheduler's lock is taken once,
    /// but the work is per request: `benches/manager.rs`, `stream_batched_16`).
    ///
    /// ```
    /// # use syncmgr::{ControlFlags, HandlerError, ItemId, Outcome, ProgressStatus, SyncHandler, SyncItem, SyncManager, SyncRequest, SyncSession};
    /// # struct Files;
    /// # impl SyncHandler for Files {
    /// #     fn items(&self) -> Vec<SyncItem> {
    /// #         ["a.txt", "b.txt"].into_iter().map(|f| SyncItem::new(f, f).unwrap()).collect()
    /// #     }
    /// #     fn synchronize(&self, items: &[ItemId], s: &SyncSession) -> Result<(), HandlerError> {
    /// #         for i in items { s.report_progress(i, ProgressStatus::Succeeded)?; } Ok(())
    /// #     }
    /// # }
    /// # fn main() -> Result<(), syncmgr::Error> {
    /// let manager = SyncManager::new()?;
    /// manager.register_handler("files", Files, ControlFlags::WAIT)?;
    /// let changed = ["a.txt", "b.txt", "missing.txt"];
    /// let tickets = manager.request_many(
    ///     changed.iter().map(|file| SyncRequest::handler("files").items([*file])),
    /// );
    /// assert!(tickets[0].as_ref().is_ok_and(|t| t.wait().status == Outcome::Succeeded));
    /// assert!(tickets[1].as_ref().is_ok_and(|t| t.wait().status == Outcome::Succeeded));
    /// // Refused on its own: the others went on.
    /// assert!(matches!(tickets[2], Err(syncmgr::Error::UnknownItem { .. })));
    /// # Ok(()) }
    /// ```
    pub fn request_many(
        &self,
        requests: impl IntoIterator<Item = SyncRequest>,
    ) -> Vec<Result<SyncTicket, Error>> {
        // Each handler asked once: a bunch is mostly for one or a few handlers.
        let mut asked: Vec<(HandlerId, Result<Option<bool>, Error>)> = Vec::new();
        let link = &self.core().link;
        let starts: Vec<Result<Box<Start>, Error>> = requests
            .into_iter()
            .map(|request| {
                let parts = request.parts()?;
                let connected = match asked.iter().find(|(h, _)| *h == parts.handler) {
                    Some((_, answer)) => answer.clone()?,
                    None => {
                        let answer = self.connected(&parts.handler);
                        asked.push((parts.handler.clone(), answer.clone()));
                        answer?
                    }
                };
                Ok(Start::new(parts, connected, link))
            })
            .collect();
        let n = starts.len();
        let start_all = |s: &mut Scheduler, starts: Vec<Result<Box<Start>, Error>>| -> Vec<_> {
            starts.into_iter().map(|start| s.start(start?)).collect()
        };
        match link.run(starts, start_all) {
            Ran::Done(tickets) => tickets,
            // Shutdown has begun: one by one, through the scheduler thread.
            Ran::Later(starts) => starts
                .into_iter()
                .map(|start| {
                    let start = start?;
                    call(link, |reply| start.into_command(reply))
                })
                .collect(),
            Ran::Broken(starts) => {
                unwind::dispose(starts);
                vec![Err(Error::ShutDown); n]
            }
        }
    }

    /// What a handler's `is_connected` says, asked here, on the caller's thread: a slow
    /// `is_connected` never stalls the scheduler. A panic refuses the call (`HandlerFailed`,
    /// nothing changes): a hook that cannot answer is not a handler that answered
    /// "disconnected". `None` for an unknown handler (the scheduler refuses the call).
    fn connected(&self, handler: &HandlerId) -> Result<Option<bool>, Error> {
        match self.core().registry.get(handler) {
            Some(h) => Ok(Some(guard(|| h.is_connected())?)),
            None => Ok(None),
        }
    }

    /// Sends a start call: what every start method and the legacy invoke API come down to.
    pub(crate) fn start(&self, parts: StartParts) -> Result<SyncTicket, Error> {
        let connected = self.connected(&parts.handler)?;
        let link = &self.core().link;
        let start = Start::new(parts, connected, link);
        call_here(link, start, Scheduler::start, Start::into_command)
    }

    // ----- stopping --------------------------------------------------------------------------

    /// Stops a handler's syncs (`StopHandlerSync`).
    pub fn stop_handler_sync(&self, handler: impl IntoId<HandlerId>) -> Result<Stopped, Error> {
        let target = StopTarget::Handler(handler.into_id()?);
        call(&self.core().link, |reply| Command::Stop { target, reply })
    }

    /// Stops named items (`StopItemSync`).
    pub fn stop_item_sync<I: IntoId<ItemId>>(
        &self,
        handler: impl IntoId<HandlerId>,
        items: impl IntoIterator<Item = I>,
    ) -> Result<Stopped, Error> {
        let target = StopTarget::Items(handler.into_id()?, item_ids(items)?.into_vec());
        call(&self.core().link, |reply| Command::Stop { target, reply })
    }

    /// Stops everything that may be stopped (`StopSyncAll`).
    pub fn stop_sync_all(&self) -> Result<Stopped, Error> {
        call(&self.core().link, |reply| Command::Stop {
            target: StopTarget::All,
            reply,
        })
    }
}
