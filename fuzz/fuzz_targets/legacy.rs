//! The legacy invoke path (`update_items`, now and then `update_all`; SPEC section 10) with
//! arbitrary `InvokeFlags` raw bits and cookies, through a real `SyncManager` with real
//! threads. Each input makes up to four invoke calls without waiting in between (so that
//! requests meet while the handler is busy and merge, or must not), then waits for every
//! ticket. Checked:
//!
//! - an unregistered CLSID is `UnknownHandler` (`CLASS_E_CLASSNOTAVAILABLE`), whatever the
//!   flags (the handler is judged before the flags);
//! - unknown flag bits are `UnknownFlags` naming `InvokeFlags`, the value and the unknown bits
//!   (`E_INVALIDARG`);
//! - `STARTSYNC` gives `Started` with the checked items, or `EmptyItemList` if none is checked;
//! - no `STARTSYNC` gives a `Choice` with the CLSID, the cookie byte for byte, `MINIMIZED` as
//!   given and the handler's items; it is then started with its checked items, started with an
//!   arbitrary selection (a foreign item is `UnknownItem`, an empty one `EmptyItemList`), or
//!   dropped (and then nothing is accepted);
//! - `update_all` starts one request, for `MAIN`'s checked items, under the empty cookie;
//! - every ticket resolves within `PATIENCE` (a hang is a crash), lists the request's items,
//!   and ends `Succeeded`, or `Canceled` if the handler declined the cookie in `initialize`;
//! - the session that served a request called `initialize(INVOKE, cookie)` with that
//!   request's cookie, byte for byte (so requests with different cookies never share a
//!   session);
//! - the manager accepted exactly the requests that got tickets, and its engine is consistent.
//!
//! The manager is built once per process (`OnceLock`), so an execution costs a few thread
//! round trips.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use syncmgr::legacy::{
    InvokeFlags, Invoked, ItemState, LegacyCallback, LegacyHandler, LegacyHandlerInfo, LegacyItem,
    SyncEvent, SyncMgrFlag, SyncMgrStatus,
};
use syncmgr::{
    ControlFlags, Error, HandlerError, ItemId, Notification, Notifications, Outcome, SyncManager,
    SyncTicket, TriggerReason, hresult,
};
use uuid::Uuid;

/// The handler with items: `A` and `C` checked, `B` not.
const MAIN: Uuid = Uuid::from_u128(0x6295DF27_35EE_11D1_8707_00C04FD93327);
/// A handler whose only item is unchecked.
const UNCHECKED: Uuid = Uuid::from_u128(0x2A15A14B_7C61_4F3B_B93E_152E8452B096);
const A: Uuid = Uuid::from_u128(0xA);
const B: Uuid = Uuid::from_u128(0xB);
const C: Uuid = Uuid::from_u128(0xC);
const X: Uuid = Uuid::from_u128(0x1A);
/// An item no handler owns.
const FOREIGN: Uuid = Uuid::from_u128(0xF0F0);
/// A cookie that starts with this byte is declined in `initialize`.
const DECLINE: u8 = 0xD0;
/// How long a ticket may take before the execution counts as a hang.
const PATIENCE: Duration = Duration::from_secs(10);

// ----- the handler ---------------------------------------------------------------------------

/// What the handlers saw, for the execution under way.
#[derive(Default)]
struct Seen {
    /// Every `initialize` call: flags and cookie.
    inits: Vec<(SyncMgrFlag, Vec<u8>)>,
    /// For every request a `synchronize` served: the cookie its session's `initialize` got.
    served: HashMap<u64, Vec<u8>>,
}

fn seen() -> MutexGuard<'static, Seen> {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    SEEN.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// The cookie of the last `initialize` on this worker thread: the manager calls
    /// `initialize` and then `synchronize` of one session on one thread.
    static LAST_COOKIE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

struct Probe {
    items: Vec<LegacyItem>,
}

impl LegacyHandler for Probe {
    fn initialize(&self, flags: SyncMgrFlag, cookie: &[u8]) -> bool {
        seen().inits.push((flags, cookie.to_vec()));
        LAST_COOKIE.with(|c| *c.borrow_mut() = Some(cookie.to_vec()));
        cookie.first() != Some(&DECLINE)
    }

    fn handler_info(&self) -> LegacyHandlerInfo {
        LegacyHandlerInfo::new("Probe")
    }

    fn enum_items(&self) -> Vec<LegacyItem> {
        self.items.clone()
    }

    fn synchronize(&self, items: &[Uuid], callback: &LegacyCallback) -> Result<(), HandlerError> {
        let cookie = LAST_COOKIE
            .with(|c| c.borrow_mut().take())
            .expect("synchronize without initialize on this thread");
        {
            let mut seen = seen();
            for r in callback.session().requests() {
                seen.served.insert(r.request.get(), cookie.clone());
            }
        }
        for &item in items {
            callback.progress(item, SyncMgrStatus::Succeeded, "done", 1, 1)?;
        }
        Ok(())
    }
}

// ----- the manager, once per process ---------------------------------------------------------

struct World {
    manager: SyncManager,
    notes: Notifications,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let manager = SyncManager::builder()
            .event_log_capacity(16)
            .build()
            .expect("a manager");
        let main = Probe {
            items: vec![
                LegacyItem::new(A, "Alpha"),
                LegacyItem::new(B, "Bravo").with_state(ItemState::Unchecked),
                LegacyItem::new(C, "Charlie"),
            ],
        };
        let unchecked = Probe {
            items: vec![LegacyItem::new(X, "X-ray").with_state(ItemState::Unchecked)],
        };
        manager
            .register_legacy_handler(MAIN, main, ControlFlags::WAIT)
            .expect("register MAIN");
        manager
            .register_legacy_handler(UNCHECKED, unchecked, ControlFlags::WAIT)
            .expect("register UNCHECKED");
        let notes = manager.subscribe();
        World { manager, notes }
    })
}

// ----- the input -----------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct Input {
    calls: Vec<Call>,
}

#[derive(Arbitrary, Debug)]
enum Call {
    /// `update_items`.
    Invoke(Invoke),
    /// `update_all`: `MAIN`'s checked items under the empty cookie; `UNCHECKED` is skipped.
    UpdateAll,
}

#[derive(Arbitrary, Debug)]
struct Invoke {
    flags: Flags,
    cookie: Vec<u8>,
    target: Target,
    then: Then,
}

#[derive(Arbitrary, Debug)]
enum Flags {
    /// Only defined bits (`STARTSYNC` 0x2, `MINIMIZED` 0x4).
    Known(u8),
    /// Any bits at all.
    Raw(u32),
}

impl Flags {
    fn bits(&self) -> u32 {
        match self {
            Flags::Known(b) => u32::from(*b) & 0x6,
            Flags::Raw(b) => *b,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Target {
    Main,
    Unchecked,
    /// Any CLSID (almost surely unregistered).
    Other(u128),
}

/// What becomes of a choice (no `STARTSYNC`).
#[derive(Arbitrary, Debug)]
enum Then {
    StartChecked,
    /// A selection: each byte picks one of the handler's items, or `FOREIGN`.
    Start(Vec<u8>),
    Drop,
}

// ----- one execution -------------------------------------------------------------------------

/// A ticket and what its result must say.
struct Expect {
    ticket: SyncTicket,
    cookie: Vec<u8>,
    items: Vec<ItemId>,
}

fn id(guid: Uuid) -> ItemId {
    ItemId::from_guid(guid)
}

fn dedup(items: &[Uuid]) -> Vec<ItemId> {
    let mut out: Vec<ItemId> = Vec::new();
    for &g in items {
        if !out.contains(&id(g)) {
            out.push(id(g));
        }
    }
    out
}

fn expect_err(
    what: &str,
    got: Result<impl std::fmt::Debug, Error>,
    hr: i32,
    ok: impl Fn(&Error) -> bool,
) {
    match got {
        Err(e) if e.hresult() == hr && ok(&e) => {}
        other => panic!("{what}: expected an error with HRESULT {hr:#x}, got {other:?}"),
    }
}

/// The handler's items, and those `STARTSYNC` syncs.
fn handler_items(clsid: Uuid) -> (Vec<Uuid>, Vec<Uuid>) {
    if clsid == MAIN {
        (vec![A, B, C], vec![A, C])
    } else {
        (vec![X], vec![])
    }
}

/// Starts what the choice's `then` says; returns the ticket if one is expected.
fn follow_choice(
    choice: syncmgr::legacy::InvokeChoice,
    clsid: Uuid,
    cookie: &[u8],
    minimized: bool,
    then: &Then,
) -> Option<Expect> {
    let (all, checked) = handler_items(clsid);
    assert_eq!(choice.clsid(), clsid);
    assert_eq!(
        choice.cookie(),
        cookie,
        "the choice keeps the cookie byte for byte"
    );
    assert_eq!(choice.minimized(), minimized);
    let listed: Vec<Uuid> = choice.items().iter().map(|i| i.id).collect();
    assert_eq!(listed, all);
    let checked_listed: Vec<Uuid> = choice
        .items()
        .iter()
        .filter(|i| i.state == ItemState::Checked)
        .map(|i| i.id)
        .collect();
    assert_eq!(checked_listed, checked);
    match then {
        Then::Drop => {
            drop(choice);
            None
        }
        Then::StartChecked => {
            let got = choice.start_checked();
            if checked.is_empty() {
                expect_err(
                    "start_checked with nothing checked",
                    got,
                    hresult::E_INVALIDARG,
                    |e| matches!(e, Error::EmptyItemList),
                );
                None
            } else {
                let ticket = got.unwrap_or_else(|e| panic!("start_checked: {e:?}"));
                Some(Expect {
                    ticket,
                    cookie: cookie.to_vec(),
                    items: dedup(&checked),
                })
            }
        }
        Then::Start(picks) => {
            let selection: Vec<Uuid> = picks
                .iter()
                .take(6)
                .map(|&p| {
                    let n = usize::from(p) % (all.len() + 1);
                    all.get(n).copied().unwrap_or(FOREIGN)
                })
                .collect();
            let got = choice.start(&selection);
            if selection.contains(&FOREIGN) {
                expect_err(
                    "a foreign item in the selection",
                    got,
                    hresult::E_INVALIDARG,
                    |e| matches!(e, Error::UnknownItem { item, .. } if *item == id(FOREIGN)),
                );
                None
            } else if selection.is_empty() {
                expect_err("an empty selection", got, hresult::E_INVALIDARG, |e| {
                    matches!(e, Error::EmptyItemList)
                });
                None
            } else {
                let ticket = got.unwrap_or_else(|e| panic!("start {selection:?}: {e:?}"));
                Some(Expect {
                    ticket,
                    cookie: cookie.to_vec(),
                    items: dedup(&selection),
                })
            }
        }
    }
}

fn invoke(manager: &SyncManager, call: &Invoke) -> Option<Expect> {
    let bits = call.flags.bits();
    let clsid = match call.target {
        Target::Main => MAIN,
        Target::Unchecked => UNCHECKED,
        Target::Other(v) => Uuid::from_u128(v),
    };
    let got = manager.update_items(InvokeFlags::from_bits_retain(bits), clsid, &call.cookie);
    if clsid != MAIN && clsid != UNCHECKED {
        expect_err(
            "an unregistered CLSID",
            got,
            hresult::CLASS_E_CLASSNOTAVAILABLE,
            |e| matches!(e, Error::UnknownHandler(h) if h.to_guid() == Some(clsid)),
        );
        return None;
    }
    if bits & !0x6 != 0 {
        expect_err("unknown invoke flags", got, hresult::E_INVALIDARG, |e| {
            matches!(
                e,
                Error::UnknownFlags { type_name: "InvokeFlags", bits: b, unknown }
                    if *b == bits && *unknown == bits & !0x6
            )
        });
        return None;
    }
    let (_, checked) = handler_items(clsid);
    match got {
        Ok(Invoked::Started(ticket)) => {
            assert_ne!(bits & 0x2, 0, "Started without STARTSYNC ({bits:#x})");
            assert!(!checked.is_empty(), "Started with nothing checked");
            Some(Expect {
                ticket,
                cookie: call.cookie.clone(),
                items: dedup(&checked),
            })
        }
        Ok(Invoked::Choice(choice)) => {
            assert_eq!(bits & 0x2, 0, "a Choice despite STARTSYNC ({bits:#x})");
            follow_choice(choice, clsid, &call.cookie, bits & 0x4 != 0, &call.then)
        }
        Err(Error::EmptyItemList) if bits & 0x2 != 0 && checked.is_empty() => None,
        Err(e) => panic!("update_items({bits:#x}, {clsid}) failed: {e:?}"),
    }
}

fn update_all(manager: &SyncManager) -> Vec<Expect> {
    let tickets = manager
        .update_all()
        .unwrap_or_else(|e| panic!("update_all: {e:?}"));
    assert_eq!(tickets.len(), 1, "update_all: one ticket, for MAIN");
    tickets
        .into_iter()
        .map(|ticket| {
            assert_eq!(ticket.handler().to_guid(), Some(MAIN));
            Expect {
                ticket,
                cookie: Vec::new(),
                items: dedup(&[A, C]),
            }
        })
        .collect()
}

fn drain(notes: &Notifications) -> Vec<Notification> {
    notes.try_iter().collect()
}

fuzz_target!(|input: Input| {
    let world = world();
    let manager = &world.manager;
    // Earlier executions' late notifications (sessions ending) are not this one's.
    let _ = drain(&world.notes);
    *seen() = Seen::default();

    let expects: Vec<Expect> = input
        .calls
        .iter()
        .take(4)
        .flat_map(|call| match call {
            Call::Invoke(call) => invoke(manager, call).into_iter().collect(),
            Call::UpdateAll => update_all(manager),
        })
        .collect();

    for e in &expects {
        let request = e.ticket.request();
        let Some(result) = e.ticket.wait_timeout(PATIENCE) else {
            panic!("{request} did not resolve within {PATIENCE:?}: a hang");
        };
        assert_eq!(result.request, request);
        assert_eq!(e.ticket.try_result().as_ref(), Some(&result));
        let items: Vec<ItemId> = result.items.iter().map(|o| o.item.clone()).collect();
        assert_eq!(items, e.items, "{request} lists other items");
        let declined = e.cookie.first() == Some(&DECLINE);
        let want = if declined {
            Outcome::Canceled
        } else {
            Outcome::Succeeded
        };
        assert_eq!(result.status, want, "{request}: {result:?}");
        assert!(result.items.iter().all(|o| o.outcome == want), "{result:?}");
        let seen = seen();
        if declined {
            assert!(
                seen.inits.iter().any(|(_, c)| *c == e.cookie),
                "{request}: no initialize saw its cookie"
            );
        } else {
            let served = seen.served.get(&request.get());
            assert_eq!(
                served.map(Vec::as_slice),
                Some(e.cookie.as_slice()),
                "{request}: its session's initialize got another cookie"
            );
        }
    }
    {
        let seen = seen();
        for (flags, cookie) in &seen.inits {
            assert_eq!(flags.event(), SyncEvent::Invoke, "{flags:?}");
            assert!(
                expects.iter().any(|e| e.cookie == *cookie),
                "initialize got a cookie no request of this execution carried"
            );
        }
    }

    // A round trip through the scheduler: every start call's notification is out by now.
    if let Err(what) = manager.check_consistency() {
        panic!("check_consistency: {what}");
    }
    let accepted: Vec<(u64, TriggerReason)> = drain(&world.notes)
        .into_iter()
        .filter_map(|n| match n {
            Notification::RequestAccepted {
                request, reason, ..
            } => Some((request.get(), reason)),
            _ => None,
        })
        .collect();
    let tickets: Vec<u64> = expects.iter().map(|e| e.ticket.request().get()).collect();
    let ids: Vec<u64> = accepted.iter().map(|(r, _)| *r).collect();
    assert_eq!(ids, tickets, "accepted requests and tickets differ");
    assert!(accepted.iter().all(|(_, r)| *r == TriggerReason::Invoke));
});
