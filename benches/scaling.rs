//! Calls that must cost in proportion to their own input, never to unrelated state: each
//! group times one call against the same call where the unrelated state is absent (or
//! against the modern call over the same items), so the figures read as ratios.
//!
//! - `scaling/invoke_80k_items`: `update_items(STARTSYNC)` of a legacy handler with 80,000
//!   checked items against `start_handler_sync` of the same handler. Only the call is timed;
//!   the session (which reports nothing, so every item ends `Failed`) runs after it.
//! - `scaling/sync_all_40k_disconnected`: `start_sync_all` over 40,000 disconnected handlers
//!   with a subscriber, against the same call without one.
//! - `scaling/unknown_id`: `update_handler` on an ID nobody registered, with 200,000 pending
//!   items in the manager, against the same call in an empty manager.
//! - `scaling/request_with_100k_handlers`: one request to its result with 100,000 idle
//!   handlers registered, against the same with one handler.
//!
//! Every iteration checks what it timed (the error, the ticket count, the result).
//! Run with `cargo bench --bench scaling` in `benches/` (about a minute on 2 cores, most of it
//! set-up); `SYNCMGR_BENCH_QUICK=1` shortens the sample times.

#[path = "common/group.rs"]
mod group;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use syncmgr::legacy::{
    InvokeFlags, Invoked, LegacyCallback, LegacyHandler, LegacyHandlerInfo, LegacyItem, SyncMgrFlag,
};
use syncmgr::{
    ControlFlags, Error, HandlerError, HandlerId, ItemId, Outcome, ProgressStatus,
    SyncControlFlags, SyncHandler, SyncItem, SyncManager, SyncSession, SyncTicket,
};
use uuid::Uuid;

use group::{flat_group, quick_mode};

/// How long a check waits for a result already on its way before it fails the bench.
const PATIENCE: Duration = Duration::from_secs(60);

fn times() -> (Duration, Duration) {
    if quick_mode() {
        (Duration::from_millis(200), Duration::from_millis(800))
    } else {
        (Duration::from_millis(500), Duration::from_secs(3))
    }
}

fn done(ticket: SyncTicket) -> Outcome {
    ticket
        .wait_timeout(PATIENCE)
        .expect("the result arrives")
        .status
}

// ----- a legacy handler with many items --------------------------------------------------------

struct Wide(Vec<LegacyItem>);

impl LegacyHandler for Wide {
    fn initialize(&self, _: SyncMgrFlag, _: &[u8]) -> bool {
        true
    }
    fn handler_info(&self) -> LegacyHandlerInfo {
        LegacyHandlerInfo::new("wide")
    }
    fn enum_items(&self) -> Vec<LegacyItem> {
        self.0.clone()
    }
    fn synchronize(&self, _: &[Uuid], _: &LegacyCallback) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn invoke(c: &mut Criterion) {
    const N: u128 = 80_000;
    let manager = SyncManager::new().unwrap();
    let clsid = Uuid::from_u128(0xC1);
    let items = (0..N)
        .map(|i| LegacyItem::new(Uuid::from_u128(i + 1), format!("item {i}")))
        .collect();
    manager
        .register_legacy_handler(clsid, Wide(items), ControlFlags::WAIT)
        .unwrap();
    let id = HandlerId::from_clsid(clsid);
    let (warm_up, measurement) = times();
    let mut group = flat_group(c, "scaling/invoke_80k_items", warm_up, measurement);
    group.bench_function("start_handler_sync", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let ticket = manager
                    .start_handler_sync(&id, SyncControlFlags::NONE, None)
                    .unwrap();
                spent += start.elapsed();
                assert_eq!(done(ticket), Outcome::Failed);
            }
            spent
        })
    });
    group.bench_function("update_items", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let invoked = manager
                    .update_items(InvokeFlags::STARTSYNC, clsid, b"bench")
                    .unwrap();
                spent += start.elapsed();
                let Invoked::Started(ticket) = invoked else {
                    panic!("STARTSYNC starts")
                };
                assert_eq!(done(ticket), Outcome::Failed);
            }
            spent
        })
    });
    group.finish();
    manager.shutdown();
}

// ----- start_sync_all over many disconnected handlers ------------------------------------------

struct Offline;

impl SyncHandler for Offline {
    fn items(&self) -> Vec<SyncItem> {
        vec![SyncItem::new("only", "Only").unwrap()]
    }
    fn is_connected(&self) -> bool {
        false
    }
    fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn sync_all(c: &mut Criterion) {
    const N: usize = 40_000;
    let manager = SyncManager::builder()
        .notification_capacity(1 << 22)
        .build()
        .unwrap();
    for n in 0..N {
        manager
            .register_handler(format!("offline-{n}"), Offline, ControlFlags::WAIT)
            .unwrap();
    }
    let (warm_up, measurement) = times();
    let mut group = flat_group(c, "scaling/sync_all_40k_disconnected", warm_up, measurement);
    let run = |manager: &SyncManager| {
        let tickets = manager.start_sync_all(SyncControlFlags::NONE).unwrap();
        assert_eq!(tickets.len(), N);
        assert!(
            tickets
                .iter()
                .all(|t| t.try_result().map(|r| r.status) == Some(Outcome::Disconnected))
        );
        black_box(tickets);
    };
    group.bench_function("no_subscriber", |b| b.iter(|| run(&manager)));
    group.bench_function("one_subscriber", |b| {
        // A fresh subscriber per iteration, drained after it: it never lags.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let stream = manager.subscribe();
                let start = Instant::now();
                run(&manager);
                spent += start.elapsed();
                assert!(stream.try_iter().count() >= 2 * N);
            }
            spent
        })
    });
    group.finish();
    manager.shutdown();
}

// ----- an unknown ID with a lot pending --------------------------------------------------------

/// Holds its one session until the manager shuts down, so everything else stays pending.
struct Holds(Vec<SyncItem>);

impl SyncHandler for Holds {
    fn items(&self) -> Vec<SyncItem> {
        self.0.clone()
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        while session.can_continue(None)? {
            std::thread::park_timeout(Duration::from_millis(50));
        }
        for item in items {
            session.report_progress(item, ProgressStatus::Canceled)?;
        }
        Ok(())
    }
}

fn unknown_id(c: &mut Criterion) {
    const PENDING: usize = 200_000;
    let items: Vec<SyncItem> = (0..=PENDING)
        .map(|i| SyncItem::new(format!("i{i}"), "I").unwrap())
        .collect();
    let loaded = SyncManager::new().unwrap();
    loaded
        .register_handler("holds", Holds(items.clone()), ControlFlags::WAIT)
        .unwrap();
    let _running = loaded
        .start_item_sync("holds", ["i0"], SyncControlFlags::NONE, None)
        .unwrap();
    let _pending = loaded
        .start_item_sync(
            "holds",
            items[1..].iter().map(|i| i.id.clone()),
            SyncControlFlags::NONE,
            None,
        )
        .unwrap();
    let empty = SyncManager::new().unwrap();
    let (warm_up, measurement) = times();
    let mut group = flat_group(c, "scaling/unknown_id", warm_up, measurement);
    let call = |manager: &SyncManager| {
        let answer = manager.update_handler("nobody", ControlFlags::WAIT);
        assert!(
            matches!(answer, Err(Error::UnknownHandler(_))),
            "{answer:?}"
        );
    };
    group.bench_function("empty_manager", |b| b.iter(|| call(&empty)));
    group.bench_function("200k_pending", |b| b.iter(|| call(&loaded)));
    group.finish();
    empty.shutdown();
    loaded.shutdown();
}

// ----- one request among many idle handlers ---------------------------------------------------

struct Quick;

impl SyncHandler for Quick {
    fn items(&self) -> Vec<SyncItem> {
        vec![SyncItem::new("q", "Q").unwrap()]
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        for item in items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    }
}

fn idle_handlers(c: &mut Criterion) {
    const IDLE: usize = 100_000;
    let crowded = SyncManager::new().unwrap();
    for n in 0..IDLE {
        crowded
            .register_handler(format!("idle-{n}"), Quick, ControlFlags::WAIT)
            .unwrap();
    }
    let alone = SyncManager::new().unwrap();
    for manager in [&crowded, &alone] {
        manager
            .register_handler("busy", Quick, ControlFlags::WAIT)
            .unwrap();
    }
    let (warm_up, measurement) = times();
    let mut group = flat_group(
        c,
        "scaling/request_with_100k_handlers",
        warm_up,
        measurement,
    );
    let run = |manager: &SyncManager| {
        for _ in 0..100 {
            let ticket = manager
                .start_handler_sync("busy", SyncControlFlags::NONE, None)
                .unwrap();
            assert_eq!(done(ticket), Outcome::Succeeded);
        }
    };
    group.bench_function("1_handler", |b| b.iter(|| run(&alone)));
    group.bench_function("100k_idle_handlers", |b| b.iter(|| run(&crowded)));
    group.finish();
    alone.shutdown();
    crowded.shutdown();
}

criterion_group!(benches, invoke, sync_all, unknown_id, idle_handlers);
criterion_main!(benches);
