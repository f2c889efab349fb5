//! A handler with `SUPPORTS_CONCURRENT_SESSIONS`: two of its sessions run at once, and an item
//! requested again while it runs waits for a later session (per-item non-reentrancy).
//!
//! The calendar handler allows two sessions at once (`max_concurrent_sessions`). "work" takes
//! 400 ms to sync, "home" 100 ms. Asking for "work" again while it runs does not start a
//! third session beside the first, nor a second one once "home" is done and a slot is free:
//! the item waits until the session that is syncing it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use syncmgr::{
    ControlFlags, HandlerCapabilities, HandlerError, ItemId, Notification, Progress,
    ProgressStatus, SyncControlFlags, SyncHandler, SyncItem, SyncManager, SyncSession,
};

struct Calendars {
    items: Vec<(SyncItem, Duration)>,
    running: AtomicUsize,
    most: AtomicUsize,
}

impl SyncHandler for Calendars {
    fn capabilities(&self) -> HandlerCapabilities {
        HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
    }

    fn max_concurrent_sessions(&self) -> Option<usize> {
        Some(2)
    }

    fn items(&self) -> Vec<SyncItem> {
        self.items.iter().map(|(item, _)| item.clone()).collect()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let synced = items.iter().try_for_each(|id| {
            let work = self.items.iter().find(|(item, _)| &item.id == id);
            thread::sleep(work.map_or(Duration::ZERO, |(_, took)| *took)); // the simulated work
            session.report_progress(
                id,
                Progress::new(ProgressStatus::Succeeded)
                    .text("up to date")
                    .steps(1, 1),
            )?;
            Ok(())
        });
        self.running.fetch_sub(1, Ordering::SeqCst);
        synced
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = SyncItem::new("work", "Work")?;
    let home = SyncItem::new("home", "Home")?;
    let calendars = Arc::new(Calendars {
        items: vec![
            (work, Duration::from_millis(400)),
            (home, Duration::from_millis(100)),
        ],
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let manager = SyncManager::new()?;
    manager.register_handler("calendar", calendars.clone(), ControlFlags::WAIT)?;
    let notes = manager.subscribe();

    let none = SyncControlFlags::NONE;
    let first = manager.start_item_sync("calendar", ["work"], none, None)?;
    let second = manager.start_item_sync("calendar", ["home"], none, None)?;
    // "work" is syncing in the first session: this request waits for the next one.
    let again = manager.start_item_sync("calendar", ["work"], none, None)?;
    let results = [first.wait(), second.wait(), again.wait()];
    let report = manager.shutdown();

    // What happened, in order (a subscription keeps what it received after shutdown).
    let names = |items: &[ItemId]| {
        items
            .iter()
            .map(ItemId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for note in notes.try_iter() {
        match note {
            Notification::RequestAccepted { request, items, .. } => {
                for (item, disposition) in items {
                    println!("{request}: {item} {disposition:?}");
                }
            }
            Notification::SessionStarted { session, items, .. } => {
                println!("  {session} started: {}", names(&items));
            }
            Notification::SessionEnded {
                session, outcomes, ..
            } => {
                let items: Vec<ItemId> = outcomes.into_iter().map(|(item, _)| item).collect();
                println!("  {session} ended: {}", names(&items));
            }
            _ => {}
        }
    }
    let most = calendars.most.load(Ordering::SeqCst);
    println!("at most {most} calendar sessions ran at once");
    for result in results {
        println!("{}: {:?}", result.request, result.status);
    }
    println!("{report:?}");
    Ok(())
}
