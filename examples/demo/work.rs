//! The handlers' simulated work: steps reported as progress, now and then a failure or a
//! conflict, decided by a xorshift seeded per item and per run of the item.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use syncmgr::{
    CancelRequest, Cause, EventLevel, EventReport, HandlerError, ItemId, Progress, ProgressStatus,
    SyncSession,
};

// The seeded generator the crate's tests and benches use too (xorshift64, no dependency).
#[path = "../../tests/common/rng.rs"]
mod rng;
use rng::XorShift;

/// How a handler's simulated work behaves.
pub struct Work {
    pub handler: &'static str,
    pub unit: &'static str,
    /// Units of work per item (inclusive range), and milliseconds per unit.
    pub units: (u32, u32),
    pub pace_ms: (u32, u32),
    /// One item sync in `fail_one_in` fails, somewhere past its halfway mark.
    pub fail_one_in: u32,
    pub failure: &'static str,
    /// One item sync in `conflict_one_in` finds a conflict (0: never).
    pub conflict_one_in: u32,
    pub seed: u64,
    /// How many times each item has synced: each run of an item has its own seed, so the
    /// story does not depend on which thread runs first.
    pub runs: Mutex<HashMap<ItemId, u64>>,
}

impl Work {
    fn rng(&self, item: &ItemId) -> XorShift {
        // Nothing that can leave the map half-changed runs under this lock: if a panic
        // elsewhere poisoned it, its counts are still good.
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let run = runs.entry(item.clone()).or_insert(0);
        *run += 1;
        XorShift::seeded(self.seed ^ fnv(self.handler) ^ fnv(item.as_str()).rotate_left(17) ^ *run)
    }

    /// Syncs one item: `units` steps of simulated work, reported as it goes.
    pub fn sync(&self, session: &SyncSession, item: &ItemId) -> Result<(), HandlerError> {
        let mut rng = self.rng(item);
        let total = rng.between(self.units.0, self.units.1);
        let fail_at = rng
            .one_in(self.fail_one_in)
            .then(|| rng.between(total / 2, total - 1));
        let conflict_at = rng
            .one_in(self.conflict_one_in)
            .then(|| rng.between(1, total - 1));
        for step in 0..total {
            let text = format!("{step}/{total} {}", self.unit);
            let cancel = session.report_progress(
                item,
                Progress::new(ProgressStatus::Updating)
                    .text(&text)
                    .steps(step, total),
            )?;
            if cancel != CancelRequest::None {
                let text = format!("stopped after {step} {}", self.unit);
                session.report_progress(
                    item,
                    Progress::new(ProgressStatus::Canceled)
                        .text(&text)
                        .steps(step, total),
                )?;
                return Ok(());
            }
            if conflict_at == Some(step) {
                session.report_conflict(Some(item))?;
                let event = EventReport::new(EventLevel::Warning, "edited on both sides")
                    .item(item.clone())
                    .description("both versions were kept");
                session.report_event(event)?;
            }
            if fail_at == Some(step) {
                let event = EventReport::new(EventLevel::Error, self.failure).item(item.clone());
                session.report_event(event)?;
                // The reason reaches the item's result (`ItemOutcome::cause`).
                session.report_failure(item, &Cause::new(self.failure))?;
                return Ok(());
            }
            let pause = rng.between(self.pace_ms.0, self.pace_ms.1);
            thread::sleep(Duration::from_millis(pause.into())); // the simulated work
        }
        let text = format!("{total} {}", self.unit);
        session.report_progress(
            item,
            Progress::new(ProgressStatus::Succeeded)
                .text(&text)
                .steps(total, total),
        )?;
        Ok(())
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}
