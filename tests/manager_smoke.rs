use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use syncmgr::*;

struct Gate {
    items: Vec<&'static str>,
    entered: Sender<Vec<ItemId>>,
    release: Receiver<()>,
}

impl SyncHandler for Gate {
    fn items(&self) -> Vec<SyncItem> {
        self.items
            .iter()
            .map(|i| SyncItem::new(ItemId::new(i).unwrap(), *i))
            .collect()
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let _ = self.entered.send(items.to_vec());
        let _ = self.release.recv();
        for item in items {
            session.report_progress(item, "ok", ProgressStatus::Succeeded, 1, 1)?;
        }
        Ok(())
    }
}

#[test]
fn requests_while_busy_merge_and_every_ticket_resolves() {
    let manager = SyncManager::new().unwrap();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded();
    manager
        .register_handler(
            "mail",
            Gate {
                items: vec!["a", "b", "c"],
                entered: entered_tx,
                release,
            },
            ControlFlags::WAIT,
        )
        .unwrap();
    let notes = manager.subscribe();
    let t1 = manager
        .start_item_sync("mail", ["a"], SyncControlFlags::NONE, None)
        .unwrap();
    assert_eq!(entered.recv().unwrap(), [ItemId::new("a").unwrap()]);
    let t2 = manager
        .start_item_sync("mail", ["b", "c"], SyncControlFlags::NONE, None)
        .unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let t3 = manager
        .start_item_sync(
            "mail",
            ["c", "a"],
            SyncControlFlags::IGNORE_IF_ALREADY_SYNCING,
            Some(Box::new(move |r: &RequestResult| {
                let _ = tx.send(r.clone());
            })),
        )
        .unwrap();
    assert!(t1.try_result().is_none());
    release_tx.send(()).unwrap();
    assert_eq!(t1.wait().status, Outcome::Succeeded);
    assert_eq!(
        entered.recv().unwrap(),
        [ItemId::new("b").unwrap(), ItemId::new("c").unwrap()]
    );
    release_tx.send(()).unwrap();
    assert_eq!(t2.wait().status, Outcome::Succeeded);
    let r3 = t3.wait();
    assert_eq!(r3.status, Outcome::Succeeded);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), r3);
    manager.check_consistency().unwrap();
    let report = manager.shutdown();
    assert_eq!(report, ShutdownReport::default());
    let kinds: Vec<String> = notes
        .try_iter()
        .map(|n| {
            format!("{n:?}")
                .split([' ', '(', '{'])
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(kinds.contains(&"RequestAccepted".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"SessionEnded".to_owned()), "{kinds:?}");
}

#[test]
fn panicking_handler_fails_items_and_manager_keeps_working() {
    struct Boom;
    impl SyncHandler for Boom {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new(ItemId::new("x").unwrap(), "x")]
        }
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            panic!("kaboom")
        }
    }
    let manager = SyncManager::new().unwrap();
    manager
        .register_handler("boom", Boom, ControlFlags::WAIT)
        .unwrap();
    let r = manager
        .start_handler_sync("boom", SyncControlFlags::NONE, None)
        .unwrap()
        .wait();
    assert_eq!(r.status, Outcome::Failed);
    assert_eq!(r.errors, 1);
    let events = manager.events("boom").unwrap();
    assert!(events[0].report.description.contains("kaboom"));
    let r = manager
        .start_handler_sync("boom", SyncControlFlags::NONE, None)
        .unwrap()
        .wait();
    assert_eq!(r.status, Outcome::Failed);
    assert!(matches!(
        manager.start_handler_sync("nobody", SyncControlFlags::NONE, None),
        Err(Error::UnknownHandler(_))
    ));
    assert!(matches!(
        manager.start_item_sync("boom", ["bad\0id"], SyncControlFlags::NONE, None),
        Err(Error::InvalidId(_))
    ));
}

#[test]
fn shutdown_abandons_a_handler_that_ignores_cancel() {
    struct Stuck(Sender<()>, Receiver<()>);
    impl SyncHandler for Stuck {
        fn items(&self) -> Vec<SyncItem> {
            vec![SyncItem::new(ItemId::new("x").unwrap(), "x")]
        }
        fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
            let _ = self.0.send(());
            let _ = self.1.recv();
            Ok(())
        }
    }
    let (release_tx, release) = crossbeam_channel::unbounded();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let manager = SyncManager::builder()
        .shutdown_grace(Duration::from_millis(50))
        .build()
        .unwrap();
    manager
        .register_handler(
            "stuck",
            Arc::new(Stuck(entered_tx, release)),
            ControlFlags::WAIT,
        )
        .unwrap();
    let t = manager
        .start_handler_sync("stuck", SyncControlFlags::NONE, None)
        .unwrap();
    entered.recv().unwrap();
    let report = manager.shutdown();
    assert_eq!(report.abandoned_sessions, 1);
    assert_eq!(report.detached_threads, 1);
    let r = t.wait();
    assert_eq!(r.status, Outcome::Canceled);
    release_tx.send(()).unwrap();
    assert!(matches!(
        manager.start_handler_sync("stuck", SyncControlFlags::NONE, None),
        Err(Error::ShutDown)
    ));
}
