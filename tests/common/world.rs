//! The manager fixtures: a [`World`] (a manager and a subscription to everything it
//! publishes) for the tests that read the notification stream from the start, and [`setup`]
//! (a manager with one driven handler, no subscription) for the tests that subscribe when they
//! need to.

use std::fmt::Debug;

use crossbeam_channel::Receiver;
use syncmgr::*;

use super::{Driven, PATIENCE, Running, built};

/// The ID tests register their driven handler under.
pub const H: &str = "driven";

/// A manager with one [`Driven`] handler owning `items` as [`H`], and the receiver of its
/// sessions.
pub fn setup(items: &[&str]) -> (SyncManager, Receiver<Running>) {
    let manager = super::manager();
    let (handler, sessions) = Driven::new(items);
    manager
        .register_handler(H, handler, ControlFlags::WAIT)
        .expect("the handler registers");
    (manager, sessions)
}

/// Starts a sync of these items of [`H`].
pub fn start(manager: &SyncManager, items: &[&str]) -> SyncTicket {
    manager
        .start_item_sync(H, items.iter().copied(), SyncControlFlags::NONE, None)
        .expect("the request is accepted")
}

/// A manager and a subscription to everything it publishes.
pub struct World {
    pub manager: SyncManager,
    pub notes: Notifications,
}

impl World {
    /// The fixture's manager (default limits, a test-sized grace period).
    pub fn new() -> World {
        World::with(super::manager())
    }

    /// A manager with other limits (and the fixture's short shutdown grace).
    pub fn built(builder: SyncManagerBuilder) -> World {
        World::with(built(builder))
    }

    pub fn with(manager: SyncManager) -> World {
        let notes = manager.subscribe();
        World { manager, notes }
    }

    /// Registers a handler; with `WAIT`, so it is there when this returns.
    pub fn register(&self, id: &str, handler: impl SyncHandler) {
        self.manager
            .register_handler(id, handler, ControlFlags::WAIT)
            .expect("the handler registers");
    }

    pub fn start(&self, handler: &str, items: &[&str]) -> SyncTicket {
        self.start_with(handler, items, SyncControlFlags::NONE)
    }

    pub fn start_with(&self, handler: &str, items: &[&str], flags: SyncControlFlags) -> SyncTicket {
        self.manager
            .start_item_sync(handler, items.iter().copied(), flags, None)
            .expect("the request is accepted")
    }

    /// Everything published since the last call. A round trip through the scheduler comes
    /// first (and checks the engine's bookkeeping), so every earlier command is in.
    pub fn happened(&self) -> Vec<Notification> {
        self.manager
            .check_consistency()
            .expect("the engine is consistent");
        self.notes.try_iter().collect()
    }

    /// Waits until `session` has ended, then returns everything published up to a round trip
    /// later: whatever its end set off (results, a next session) is in.
    pub fn after_end_of(&self, session: SessionId) -> Vec<Notification> {
        let mut notes = Vec::new();
        loop {
            let note = self
                .notes
                .recv_timeout(PATIENCE)
                .expect("the session should end");
            let done =
                matches!(&note, Notification::SessionEnded { session: s, .. } if *s == session);
            notes.push(note);
            if done {
                break;
            }
        }
        notes.extend(self.happened());
        notes
    }

    /// Makes a call that must be refused (all or nothing), checks its HRESULT and that it
    /// published nothing (no request, no session) and left the engine consistent, and returns
    /// the error for a closer look.
    pub fn refused<T: Debug>(
        &self,
        hresult: i32,
        call: impl FnOnce(&SyncManager) -> Result<T, Error>,
    ) -> Error {
        let _earlier = self.happened();
        let error = match call(&self.manager) {
            Ok(value) => panic!("the call must be refused; it gave {value:?}"),
            Err(error) => error,
        };
        assert_eq!(error.hresult(), hresult, "{error:?}");
        let after = self.happened();
        assert!(
            after.is_empty(),
            "a refused call changed something: {after:#?}"
        );
        error
    }
}

/// The requests completed in these notifications, in order.
pub fn completed(notes: &[Notification]) -> Vec<RequestId> {
    notes
        .iter()
        .filter_map(|n| match n {
            Notification::RequestCompleted(r) => Some(r.request),
            _ => None,
        })
        .collect()
}
