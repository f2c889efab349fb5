//! What a running session reports and asks: progress, events, conflicts, cancel checks,
//! pending items it may pull in, and items it discovers.

use std::collections::HashSet;

use super::AdditionalItems;
use super::Engine;
use super::ItemSpec;
use super::ProgressAck;
use super::SessionId;
use super::accept::{leave_default_queue, unknown_item};
use super::denied;
use super::queue::PendingQueue;
use super::queue::WaitList;
use super::queue::waiters_of;
use super::registry::apply_spec;
use super::registry::check_spec_bits;
use super::registry::id_taken;
use super::registry::upsert;
use super::state::Counts;
use super::state::Session;
use super::state::SessionItem;
use super::state::SessionPos;
use crate::cause::Cause;
use crate::error::Denied;
use crate::error::Error;
use crate::error::TextKind;
use crate::error::check_text;
use crate::flags::CancelRequest;
use crate::flags::EventLevel;
use crate::flags::HandlerCapabilities;
use crate::flags::HandlerPolicies;
use crate::flags::ProgressStatus;
use crate::id::ItemId;
use crate::id::MAX_SYNCMGR_PROGRESSTEXT;
use crate::progress::Progress;
use crate::result::Outcome;

impl Engine {
    pub(super) fn session(&self, id: SessionId) -> Result<&Session, Error> {
        match self.sessions.get(&id) {
            Some(session) => Ok(session),
            None => Err(Error::UnknownSession(id)),
        }
    }

    /// The index in session `id` of an item it holds.
    pub(super) fn position(&self, id: SessionId, item: &ItemId) -> Result<usize, Error> {
        let session = self.session(id)?;
        let h = &self.handlers[&session.handler_key];
        h.index
            .get(item)
            .and_then(|&idx| match h.slot(idx).held {
                Some((s, pos)) if s == id => Some(pos.get()),
                _ => None,
            })
            .ok_or_else(|| Error::ItemNotInSession(item.clone()))
    }

    /// Records that the shell started running the session. Idempotent.
    pub fn session_started(&mut self, id: SessionId) -> Result<(), Error> {
        self.sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?
            .started = true;
        Ok(())
    }

    /// A progress report for one item (`ReportProgress`). Returns the cancel request pending
    /// for it. Texts over `MAX_SYNCMGR_PROGRESSTEXT` and items not in the session are
    /// refused. **Terminal rule:** after `Succeeded`, `Failed`, `Canceled` or `Disconnected`,
    /// only `Failed` is accepted; anything else is [`Denied::TerminalState`] and marks the
    /// item `Failed`. Steps are the shell's business; the engine keeps only the status.
    pub fn report_progress(
        &mut self,
        id: SessionId,
        item: &ItemId,
        progress: impl Into<Progress>,
    ) -> Result<ProgressAck, Error> {
        let progress = progress.into();
        self.report_status(id, item, progress.status, &progress.text)
    }

    /// [`report_progress`](Self::report_progress) of a report the caller keeps (the manager
    /// publishes it next).
    pub(crate) fn report_status(
        &mut self,
        id: SessionId,
        item: &ItemId,
        status: ProgressStatus,
        text: &str,
    ) -> Result<ProgressAck, Error> {
        check_text(text, TextKind::Progress, MAX_SYNCMGR_PROGRESSTEXT)?;
        let pos = self.position(id, item)?;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(Error::UnknownSession(id));
        };
        let si = &mut session.items[pos];
        if let Some(reached) = si.terminal {
            si.terminal = Some(Outcome::Failed);
            si.last = Some(ProgressStatus::Failed);
            if status != ProgressStatus::Failed {
                let err = denied(Denied::TerminalState {
                    item: item.clone(),
                    reached,
                    reported: status,
                });
                // The item's result says why it failed after all.
                si.cause = Some(Cause::new(err.to_string()));
                return Err(err);
            }
        } else {
            si.last = Some(status);
            si.terminal = Outcome::from_status(status);
        }
        let terminal = session.items[pos].terminal.is_some();
        Ok(ProgressAck {
            cancel: session.cancel_for(pos),
            terminal,
        })
    }

    /// Reports that an item failed, and why: `report_progress` with `Failed` (and no text),
    /// and the cause that the item's requests get in their results. A later failure report
    /// replaces the cause. If the session ends with its own error, this cause still stands
    /// for this item.
    pub fn report_failure(
        &mut self,
        id: SessionId,
        item: &ItemId,
        cause: Cause,
    ) -> Result<ProgressAck, Error> {
        self.record_failure(id, item, cause, false)
    }

    /// Reports that an item failed for good ([`report_failure`](Self::report_failure), plus
    /// a promise that trying again cannot help: bad credentials, a deleted remote). Its
    /// requests take the `Failed` when the session ends, whatever the handler's retry policy.
    pub fn report_permanent_failure(
        &mut self,
        id: SessionId,
        item: &ItemId,
        cause: Cause,
    ) -> Result<ProgressAck, Error> {
        self.record_failure(id, item, cause, true)
    }

    fn record_failure(
        &mut self,
        id: SessionId,
        item: &ItemId,
        cause: Cause,
        permanent: bool,
    ) -> Result<ProgressAck, Error> {
        let ack = self.report_status(id, item, ProgressStatus::Failed, "")?;
        let pos = self.position(id, item)?;
        if let Some(session) = self.sessions.get_mut(&id) {
            let si = &mut session.items[pos];
            si.cause = Some(cause);
            si.permanent |= permanent;
        }
        Ok(ack)
    }

    /// Checks a handler-wide progress text (`SetHandlerProgressText`) and returns the
    /// session's cancel request: `CancelAll` or `None`.
    pub fn set_handler_progress_text(
        &mut self,
        id: SessionId,
        text: &str,
    ) -> Result<CancelRequest, Error> {
        check_text(text, TextKind::Progress, MAX_SYNCMGR_PROGRESSTEXT)?;
        Ok(if self.session(id)?.cancel_all {
            CancelRequest::CancelAll
        } else {
            CancelRequest::None
        })
    }

    /// Whether the session may go on with an item (`CanContinue`), or with anything at all
    /// for `None`: false once a cancel for it, or for the whole session, was requested.
    pub fn can_continue(&self, id: SessionId, item: Option<&ItemId>) -> Result<bool, Error> {
        let session = self.session(id)?;
        match item {
            None => Ok(!session.cancel_all),
            Some(item) => {
                let pos = self.position(id, item)?;
                Ok(session.cancel_for(pos) == CancelRequest::None)
            }
        }
    }

    /// Records an event reported by a session. An `Error`-level event counts towards the
    /// `errors` of every request the session serves for that item, or of every request the
    /// session serves when `item` is `None`: all of them, including those that join the item
    /// or are pulled into the session after the event, because a request that shares a run
    /// shares its result. The counts are credited when a request leaves the session (it
    /// ends, or the request is withdrawn), so this costs O(1) however many requests wait.
    /// An item of the handler that is not in the session counts for no request; an item
    /// the handler does not own is refused.
    pub fn report_event(
        &mut self,
        id: SessionId,
        item: Option<&ItemId>,
        level: EventLevel,
    ) -> Result<(), Error> {
        let counts = self.event_counts(id, item)?;
        if level == EventLevel::Error
            && let Some(counts) = counts
        {
            counts.errors += 1;
        }
        Ok(())
    }

    /// Records a conflict reported by a session, counted like an `Error` event into the
    /// `conflicts` of the requests it concerns.
    pub fn report_conflict(&mut self, id: SessionId, item: Option<&ItemId>) -> Result<(), Error> {
        if let Some(counts) = self.event_counts(id, item)? {
            counts.conflicts += 1;
        }
        Ok(())
    }

    /// The counts an event for `item` (or the whole handler) goes into, if any.
    pub(super) fn event_counts(
        &mut self,
        id: SessionId,
        item: Option<&ItemId>,
    ) -> Result<Option<&mut Counts>, Error> {
        let Some(item) = item else {
            let session = self
                .sessions
                .get_mut(&id)
                .ok_or(Error::UnknownSession(id))?;
            return Ok(Some(&mut session.counts));
        };
        // An item the session holds counts even if an update removed it meanwhile; any other
        // item must still belong to the handler.
        match self.position(id, item) {
            Ok(pos) => {
                let session = self
                    .sessions
                    .get_mut(&id)
                    .ok_or(Error::UnknownSession(id))?;
                Ok(Some(&mut session.items[pos].counts))
            }
            Err(_) => {
                let session = self.session(id)?;
                let h = &self.handlers[&session.handler_key];
                match h.find(item) {
                    None => Err(unknown_item(&h.id, item)),
                    Some(_) => Ok(None),
                }
            }
        }
    }

    /// Marks the session as started by hand (`ReportManualSync`).
    pub fn report_manual_sync(&mut self, id: SessionId) -> Result<(), Error> {
        self.sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?
            .manual = true;
        Ok(())
    }

    /// What the session's handler has pending (`QueryForAdditionalItems`).
    pub fn query_for_additional_items(&self, id: SessionId) -> Result<AdditionalItems, Error> {
        let session = self.session(id)?;
        let h = &self.handlers[&session.handler_key];
        let mut out = AdditionalItems::default();
        let mut seen = HashSet::new();
        // Only the session's own merge key: a legacy session never takes another cookie's
        // items, and a Sync Center session never takes a legacy one's.
        let queue = if session.merge.is_default() {
            Some(&h.pending)
        } else {
            h.keyed
                .iter()
                .find(|k| k.key == session.merge)
                .map(|k| k.queue())
        };
        for (_, entry) in queue.into_iter().flat_map(PendingQueue::iter) {
            let slot = h.slot(entry.item);
            if slot.held.is_some() {
                continue;
            }
            out.items.push(slot.id.clone());
            let list = if session.merge.is_default() {
                &slot.waiting
            } else {
                &entry.list
            };
            out.requests.extend(
                waiters_of(list, &self.requests)
                    .into_iter()
                    .map(|w| w.request)
                    .filter(|r| seen.insert(*r)),
            );
        }
        out.requests.sort_unstable();
        Ok(out)
    }

    /// Pulls a pending item into the running session (`AddItemToSession`): the requests
    /// waiting on it take its outcome from this session. Returns how many requests that is.
    /// A session that was asked to cancel everything may still pull items; like its other
    /// items they end `Canceled` unless the handler reports otherwise.
    pub fn add_item_to_session(&mut self, id: SessionId, item: &ItemId) -> Result<usize, Error> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?;
        let h = self
            .handlers
            .get_mut(&session.handler_key)
            .ok_or(Error::UnknownSession(id))?;
        let idx = h.find(item).ok_or_else(|| unknown_item(&h.id, item))?;
        let slot = &mut h.items[idx];
        match slot.held {
            Some((s, _)) if s == id => return Err(Error::ItemAlreadyInSession(item.clone())),
            Some(_) => return Err(Error::ItemNotPending(item.clone())),
            None => {}
        }
        let list = if session.merge.is_default() {
            if slot.entry.is_none() {
                return Err(Error::ItemNotPending(item.clone()));
            }
            // Debounce and backoff never keep a running session from pulling an item.
            leave_default_queue(h, session.handler_key, idx, &mut self.timers);
            h.items[idx].waiting.take()
        } else {
            let at = h
                .keyed
                .iter()
                .position(|k| k.key == session.merge)
                .ok_or_else(|| Error::ItemNotPending(item.clone()))?;
            let keyed = &mut h.keyed[at];
            let entry = keyed
                .find(idx)
                .and_then(|e| keyed.remove(e))
                .ok_or_else(|| Error::ItemNotPending(item.clone()))?;
            if keyed.is_empty() {
                h.keyed.remove(at);
            }
            // Its default-key entry, if any, now waits for this session to end.
            if slot.startable() {
                h.startable -= 1;
            }
            entry.list
        };
        let slot = &mut h.items[idx];
        slot.held = Some((id, SessionPos::next_of(&session.items)));
        let served = list.len as usize;
        session.items.push(SessionItem::new(idx, list));
        Ok(served)
    }

    /// Proposes an item discovered during the sync (`ProposeItem`). It is not an item of the
    /// handler until committed. An ID the handler already has, or one already proposed, is
    /// [`Error::ItemExists`].
    pub fn propose_item(&mut self, id: SessionId, spec: ItemSpec) -> Result<(), Error> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?;
        let h = &self.handlers[&session.handler_key];
        check_spec_bits(
            HandlerCapabilities::empty(),
            HandlerPolicies::empty(),
            std::slice::from_ref(&spec),
        )?;
        if id_taken(h, &spec.id) || session.proposed.iter().any(|p| p.id == spec.id) {
            return Err(Error::ItemExists {
                handler: h.id.clone(),
                item: spec.id,
            });
        }
        session.proposed.push(spec);
        Ok(())
    }

    /// Commits a proposed item (`CommitItem`): it becomes an item of the handler and part of
    /// this session. An ID never proposed in this session is [`Error::ItemNotProposed`].
    pub fn commit_item(&mut self, id: SessionId, item: &ItemId) -> Result<(), Error> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?;
        let at = session
            .proposed
            .iter()
            .position(|p| p.id == *item)
            .ok_or_else(|| Error::ItemNotProposed(item.clone()))?;
        let h = self
            .handlers
            .get_mut(&session.handler_key)
            .ok_or(Error::UnknownSession(id))?;
        if id_taken(h, item) {
            return Err(Error::ItemExists {
                handler: h.id.clone(),
                item: item.clone(),
            });
        }
        let spec = session.proposed.remove(at);
        let _ = upsert(h, &spec);
        apply_spec(h, &spec);
        let idx = h.index[item];
        h.slot_mut(idx).held = Some((id, SessionPos::next_of(&session.items)));
        session
            .items
            .push(SessionItem::new(idx, WaitList::default()));
        Ok(())
    }
}
