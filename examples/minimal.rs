//! The smallest embedding: register a handler, start a sync, wait on the ticket, print the result.

use syncmgr::{
    ControlFlags, HandlerError, ItemId, Progress, ProgressStatus, SyncControlFlags, SyncHandler,
    SyncItem, SyncManager, SyncSession,
};

struct Notes(Vec<SyncItem>);

impl SyncHandler for Notes {
    fn items(&self) -> Vec<SyncItem> {
        self.0.clone()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        for item in items {
            session.report_progress(
                item,
                Progress::new(ProgressStatus::Succeeded)
                    .text("3 notes uploaded")
                    .steps(1, 1),
            )?;
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let personal = SyncItem::new("personal", "Personal notebook")?;
    let work = SyncItem::new("work", "Work notebook")?;
    let manager = SyncManager::new()?;
    manager.register_handler("notes", Notes(vec![personal, work]), ControlFlags::WAIT)?;
    let ticket = manager.start_handler_sync("notes", SyncControlFlags::NONE, None)?;
    let result = ticket.wait(); // blocks until every item has an outcome
    println!(
        "{} {:?} ({} errors)",
        result.request, result.status, result.errors
    );
    for o in &result.items {
        match &o.cause {
            Some(cause) => println!("  {}: {:?} ({cause:#})", o.item, o.outcome),
            None => println!("  {}: {:?}", o.item, o.outcome),
        }
    }
    println!("{:?}", manager.shutdown());
    Ok(())
}
