use crossbeam_channel::{Receiver, Sender};
use std::sync::Mutex;
use syncmgr::legacy::*;
use syncmgr::*;
use uuid::Uuid;

const CLSID: Uuid = Uuid::from_u128(0xABCDEF);
fn g(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

struct Legacy {
    inits: Sender<(SyncMgrFlag, Vec<u8>)>,
    gate: Mutex<Option<Receiver<()>>>,
    interested: bool,
}
impl LegacyHandler for Legacy {
    fn initialize(&self, flags: SyncMgrFlag, cookie: &[u8]) -> bool {
        let _ = self.inits.send((flags, cookie.to_vec()));
        self.interested
    }
    fn handler_info(&self) -> LegacyHandlerInfo {
        LegacyHandlerInfo::new("Legacy")
    }
    fn enum_items(&self) -> Vec<LegacyItem> {
        vec![
            LegacyItem::new(g(1), "one"),
            LegacyItem::new(g(2), "two").with_state(ItemState::Unchecked),
        ]
    }
    fn synchronize(&self, items: &[Uuid], cb: &LegacyCallback) -> Result<(), HandlerError> {
        if let Some(gate) = self.gate.lock().unwrap().take() {
            let _ = gate.recv();
        }
        for &i in items {
            cb.progress(i, SyncMgrStatus::Succeeded, "ok", 1, 1)?;
        }
        Ok(())
    }
}

#[test]
fn cookie_reaches_initialize_and_cookies_separate_sessions() {
    let m = SyncManager::new().unwrap();
    let (tx, inits) = crossbeam_channel::unbounded();
    let (open, gate) = crossbeam_channel::unbounded();
    m.register_legacy_handler(
        CLSID,
        Legacy {
            inits: tx,
            gate: Mutex::new(Some(gate)),
            interested: true,
        },
        ControlFlags::WAIT,
    )
    .unwrap();
    let big: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let Invoked::Started(t1) = m.update_items(InvokeFlags::STARTSYNC, CLSID, b"").unwrap() else {
        panic!()
    };
    let (flags, cookie) = inits.recv().unwrap();
    assert_eq!(flags.event(), SyncEvent::Invoke);
    assert!(cookie.is_empty());
    // While the first session is held: two with cookie A, one with B.
    let Invoked::Started(a1) = m.update_items(InvokeFlags::STARTSYNC, CLSID, &big).unwrap() else {
        panic!()
    };
    let Invoked::Started(a2) = m.update_items(InvokeFlags::STARTSYNC, CLSID, &big).unwrap() else {
        panic!()
    };
    let Invoked::Started(b1) = m.update_items(InvokeFlags::STARTSYNC, CLSID, b"B").unwrap() else {
        panic!()
    };
    open.send(()).unwrap();
    for t in [&t1, &a1, &a2, &b1] {
        assert_eq!(t.wait().status, Outcome::Succeeded);
    }
    let later: Vec<Vec<u8>> = inits.try_iter().map(|(_, c)| c).collect();
    assert_eq!(
        later,
        vec![big.clone(), b"B".to_vec()],
        "equal cookies merge, different ones do not"
    );
    // Choice: nothing runs until started; unchecked items can be chosen.
    let Invoked::Choice(choice) = m.update_items(InvokeFlags::MINIMIZED, CLSID, b"c").unwrap()
    else {
        panic!()
    };
    assert!(choice.minimized());
    assert_eq!(choice.items().len(), 2);
    assert!(inits.try_recv().is_err());
    let t = choice.start(&[g(2)]).unwrap();
    assert_eq!(
        t.wait().items,
        [(ItemId::from_guid(g(2)), Outcome::Succeeded)]
    );
    let Invoked::Choice(dropped) = m.update_items(InvokeFlags::empty(), CLSID, b"d").unwrap()
    else {
        panic!()
    };
    drop(dropped);
    assert!(matches!(
        m.update_items(InvokeFlags::from_bits_retain(0x1), CLSID, b""),
        Err(Error::UnknownFlags { .. })
    ));
    assert!(matches!(
        m.update_items(InvokeFlags::STARTSYNC, g(99), b""),
        Err(Error::UnknownHandler(_))
    ));
    m.check_consistency().unwrap();
}

#[test]
fn not_interested_handler_runs_nothing() {
    let m = SyncManager::new().unwrap();
    let (tx, _inits) = crossbeam_channel::unbounded();
    m.register_legacy_handler(
        CLSID,
        Legacy {
            inits: tx,
            gate: Mutex::new(None),
            interested: false,
        },
        ControlFlags::WAIT,
    )
    .unwrap();
    let Invoked::Started(t) = m.update_items(InvokeFlags::STARTSYNC, CLSID, b"x").unwrap() else {
        panic!()
    };
    let r = t.wait();
    assert_eq!(r.status, Outcome::Canceled);
    assert_eq!(
        m.events(HandlerId::from_clsid(CLSID)).unwrap()[0]
            .report
            .name,
        "not interested"
    );
}
