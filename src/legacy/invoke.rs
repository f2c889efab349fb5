//! `ISyncMgrSynchronizeInvoke`: [`SyncManager::update_items`] and
//! [`SyncManager::update_all`], and the choice an `update_items` without `STARTSYNC` returns.

use std::sync::Arc;

use uuid::Uuid;

use super::handler::{LegacyAdapter, LegacyHandler, LegacyItem};
use super::values::{InvokeFlags, ItemState};
use crate::cause::Cause;
use crate::engine::{MergeKey, RequestOptions};
use crate::error::{Error, TextKind, check_text};
use crate::flags::{ControlFlags, SyncControlFlags};
use crate::id::{HandlerId, ItemId, MAX_SYNCMGRHANDLERNAME, MAX_SYNCMGRITEMNAME};
use crate::manager::{Extra, Object, StartParts, SyncManager, SyncTicket, TriggerReason};
use crate::unwind;

/// What [`SyncManager::update_items`] did.
#[derive(Debug)]
#[must_use = "a choice runs nothing until it is started"]
pub enum Invoked {
    /// `STARTSYNC`: the sync of the checked items started; its ticket.
    Started(SyncTicket),
    /// No `STARTSYNC`: the items to choose from. Start it with a selection, or drop it and
    /// nothing runs.
    Choice(InvokeChoice),
}

/// The items of a legacy handler to choose from before a sync starts (what
/// Synchronization Manager shows in its dialog when `UpdateItems` comes without
/// `SYNCMGRINVOKE_STARTSYNC`). Dropping it runs nothing and keeps nothing.
#[derive(Debug)]
pub struct InvokeChoice {
    manager: SyncManager,
    clsid: Uuid,
    cookie: Vec<u8>,
    items: Vec<LegacyItem>,
    minimized: bool,
}

impl InvokeChoice {
    /// The handler's CLSID.
    pub fn clsid(&self) -> Uuid {
        self.clsid
    }

    /// The handler's items, with their checked state, as `enum_items` gave them.
    pub fn items(&self) -> &[LegacyItem] {
        &self.items
    }

    /// The invoke call's cookie.
    pub fn cookie(&self) -> &[u8] {
        &self.cookie
    }

    /// Whether the call asked for `SYNCMGRINVOKE_MINIMIZED`: a presentation hint for an
    /// application that shows progress; the manager itself shows nothing.
    pub fn minimized(&self) -> bool {
        self.minimized
    }

    /// Starts a sync of the selected items. Every one must be an item of the handler
    /// ([`Error::UnknownItem`] otherwise); an empty selection is [`Error::EmptyItemList`].
    pub fn start(self, selection: &[Uuid]) -> Result<SyncTicket, Error> {
        let items = selection.iter().map(|g| ItemId::from_guid(*g)).collect();
        invoke(&self.manager, self.clsid, &self.cookie, items)
    }

    /// Starts a sync of the checked items, as `STARTSYNC` would have.
    pub fn start_checked(self) -> Result<SyncTicket, Error> {
        let checked: Vec<Uuid> = self
            .items
            .iter()
            .filter(|i| i.state == ItemState::Checked)
            .map(|i| i.id)
            .collect();
        self.start(&checked)
    }
}

/// Starts an invoke request: the cookie is its merge key, the reason `Invoke`.
fn invoke(
    manager: &SyncManager,
    clsid: Uuid,
    cookie: &[u8],
    items: Vec<ItemId>,
) -> Result<SyncTicket, Error> {
    manager.start(StartParts {
        handler: HandlerId::from_clsid(clsid),
        items: Some(items.into()),
        flags: SyncControlFlags::NONE,
        options: RequestOptions::keyed(MergeKey::cookie(cookie)),
        reason: TriggerReason::Invoke,
        context: None,
        sink: None,
    })
}

/// The legacy handler kept with a handler registered by [`SyncManager::register_legacy_handler`];
/// `None` for any other handler.
fn legacy_of(extra: Option<Extra>) -> Option<Arc<dyn LegacyHandler>> {
    extra?.downcast_ref::<Arc<dyn LegacyHandler>>().cloned()
}

fn checked_items(handler: &dyn LegacyHandler) -> Result<Vec<LegacyItem>, Error> {
    let items = guard(|| handler.enum_items())?;
    for item in &items {
        check_text(&item.name, TextKind::Name, MAX_SYNCMGRITEMNAME)?;
    }
    Ok(items)
}

fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    unwind::run(f).map_err(|panic| {
        Error::HandlerFailed(Cause::new(format!("the legacy handler panicked: {panic}")))
    })
}

impl SyncManager {
    /// The checked items the manager has enabled: disabled ones are left out, as a handler
    /// sync leaves them out. A checked item the manager does not know yet (the handler's
    /// `enum_items` grew since it was registered or last updated) makes the manager re-read
    /// the handler first, as [`SyncManager::update_handler`] does, so that it is synced
    /// rather than silently left out. Costs O(items), whatever their number.
    fn checked_and_enabled(
        &self,
        id: &HandlerId,
        items: &[LegacyItem],
    ) -> Result<Vec<ItemId>, Error> {
        let checked = || {
            items
                .iter()
                .filter(|i| i.state == ItemState::Checked)
                .map(|i| ItemId::from_guid(i.id))
                .collect()
        };
        let (enabled, unknown) = self.enabled_among(id, checked())?;
        if !unknown {
            return Ok(enabled);
        }
        self.update_handler(id, ControlFlags::WAIT)?;
        Ok(self.enabled_among(id, checked())?.0)
    }

    /// Registers a legacy handler under its CLSID (its ID is
    /// [`HandlerId::from_clsid`]`(clsid)`, its items' [`ItemId::from_guid`]). It reads
    /// `handler_info` (a name over `MAX_SYNCMGRHANDLERNAME` is [`Error::TextTooLong`]) and
    /// `enum_items` now, and is then scheduled like any handler.
    pub fn register_legacy_handler(
        &self,
        clsid: Uuid,
        handler: impl LegacyHandler,
        flags: ControlFlags,
    ) -> Result<(), Error> {
        let legacy: Arc<dyn LegacyHandler> = Arc::new(handler);
        let info = guard(|| legacy.handler_info())?;
        check_text(&info.name, TextKind::Name, MAX_SYNCMGRHANDLERNAME)?;
        checked_items(&*legacy)?;
        let adapter = Arc::new(LegacyAdapter {
            inner: legacy.clone(),
        });
        // Kept with the adapter, for the invoke API to find (see `legacy_of`).
        let extra: Extra = Arc::new(legacy);
        self.register_object(
            HandlerId::from_clsid(clsid),
            Object::blocking(adapter),
            Some(extra),
            flags,
        )
    }

    /// `ISyncMgrSynchronizeInvoke::UpdateItems`. With `STARTSYNC`, starts a sync of the
    /// handler's checked and enabled items now (each session calls `initialize(INVOKE, cookie)` with
    /// this cookie, byte for byte) and returns its ticket; no checked item is
    /// [`Error::EmptyItemList`]. Without it, returns the [`InvokeChoice`]. `MINIMIZED` is
    /// kept on the choice as a hint. Unknown flag bits are [`Error::UnknownFlags`]; a CLSID
    /// with no legacy handler registered is [`Error::UnknownHandler`]
    /// (`CLASS_E_CLASSNOTAVAILABLE`).
    ///
    /// Queued invoke requests merge only with requests that carry the same cookie.
    pub fn update_items(
        &self,
        flags: InvokeFlags,
        clsid: Uuid,
        cookie: &[u8],
    ) -> Result<Invoked, Error> {
        // The start calls' order: shutdown first, then the handler, then the flags.
        if self.is_shut_down() {
            return Err(Error::ShutDown);
        }
        let id = HandlerId::from_clsid(clsid);
        let handler =
            legacy_of(self.handler_extra(&id)).ok_or_else(|| Error::UnknownHandler(id.clone()))?;
        InvokeFlags::from_raw(flags.bits())?;
        let items = checked_items(&*handler)?;
        if flags.contains(InvokeFlags::STARTSYNC) {
            let checked = self.checked_and_enabled(&id, &items)?;
            return invoke(self, clsid, cookie, checked).map(Invoked::Started);
        }
        Ok(Invoked::Choice(InvokeChoice {
            manager: self.clone(),
            clsid,
            cookie: cookie.to_vec(),
            items,
            minimized: flags.contains(InvokeFlags::MINIMIZED),
        }))
    }

    /// `ISyncMgrSynchronizeInvoke::UpdateAll`: syncs the checked items of every legacy
    /// handler (disabled ones left out; as invoke requests with an empty cookie) and the
    /// enabled items of every other handler (as handler syncs), in ID order, and returns
    /// their tickets. Handlers that refuse to start (inactive, disabled, a policy) or have
    /// nothing to sync are skipped.
    ///
    /// It makes one request per handler, so a shutdown can begin part way through. It then
    /// returns exactly the tickets of the requests it made before (they complete like any
    /// other, as `Canceled` if the shutdown cancels them): no accepted request is ever
    /// without its ticket. Only a call that made no request at all because the manager was
    /// shut down is [`Error::ShutDown`].
    pub fn update_all(&self) -> Result<Vec<SyncTicket>, Error> {
        if self.is_shut_down() {
            return Err(Error::ShutDown);
        }
        let mut tickets = Vec::new();
        for (id, extra) in self.handler_extras() {
            let started = match legacy_of(extra) {
                Some(handler) => {
                    let checked = checked_items(&*handler)
                        .and_then(|items| self.checked_and_enabled(&id, &items));
                    match checked {
                        Ok(checked) if checked.is_empty() => continue,
                        Ok(checked) => self.start(StartParts {
                            handler: id,
                            items: Some(checked.into()),
                            flags: SyncControlFlags::NONE,
                            options: RequestOptions::keyed(MergeKey::cookie(&[])),
                            reason: TriggerReason::Invoke,
                            context: None,
                            sink: None,
                        }),
                        Err(e) => Err(e),
                    }
                }
                None => self.start_handler_sync(id, SyncControlFlags::NONE, None),
            };
            match started {
                Ok(ticket) => tickets.push(ticket),
                Err(Error::ShutDown) if tickets.is_empty() => return Err(Error::ShutDown),
                // The tickets already made are returned: their requests were accepted.
                Err(Error::ShutDown) => return Ok(tickets),
                // Removed meanwhile, refused by state or policy: not this handler.
                Err(_) => {}
            }
        }
        Ok(tickets)
    }
}
