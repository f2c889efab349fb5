//! The three handlers. Mail pulls folders requested while it runs into its running session and
//! retries a folder that failed, calendar runs up to three sessions at once, photos lets a
//! burst of album requests settle and uploads one album after another. Their work is
//! simulated (`work.rs`).

use std::collections::VecDeque;
use std::sync::Mutex;

use std::time::Duration;

use syncmgr::{
    HandlerCapabilities, HandlerError, IdError, ItemId, Progress, ProgressStatus, Retry,
    SyncHandler, SyncItem, SyncPolicy, SyncSession,
};

use crate::work::Work;

/// Mail syncs one folder at a time. After each one it looks at what was requested meanwhile
/// and takes those folders into its running session instead of leaving them for another.
pub struct Mail {
    items: Vec<SyncItem>,
    work: Work,
}

impl Mail {
    pub fn new(seed: u64) -> Result<Mail, IdError> {
        Ok(Mail {
            items: items(&[
                ("inbox", "Inbox"),
                ("sent", "Sent"),
                ("drafts", "Drafts"),
                ("archive", "Archive"),
            ])?,
            work: Work {
                handler: "mail",
                unit: "messages",
                units: (20, 32),
                pace_ms: (45, 75),
                fail_one_in: 6,
                failure: "IMAP server timed out",
                conflict_one_in: 0,
                seed,
                runs: Mutex::default(),
            },
        })
    }
}

impl SyncHandler for Mail {
    fn name(&self) -> String {
        "Mail".into()
    }

    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }

    /// A folder whose server timed out is tried again after 400 ms, then 800 ms: its
    /// requests wait for the retry, while the folders that synced settle at once.
    fn sync_policy(&self) -> SyncPolicy {
        let backoff = Retry::exponential(3, Duration::from_millis(400), Duration::from_secs(2));
        SyncPolicy::default().retry(backoff)
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        let mut folders: VecDeque<ItemId> = items.iter().cloned().collect();
        while let Some(folder) = folders.pop_front() {
            self.work.sync(session, &folder)?;
            if !session.can_continue(None)? {
                continue; // asked to stop everything: take nothing more in
            }
            let mut taken = Vec::new();
            for extra in session.query_for_additional_items()?.items {
                // It may have left the queue since the query (stopped, or its request
                // withdrawn): then it is simply not taken.
                if session.add_item_to_session(&extra).is_ok() {
                    // Step 0 of 0: in the session, not started yet.
                    let waiting = "taken into this session";
                    session.report_progress(
                        &extra,
                        Progress::new(ProgressStatus::Updating).text(waiting),
                    )?;
                    taken.push(extra.to_string());
                    folders.push_back(extra);
                }
            }
            if !taken.is_empty() {
                let text = format!("took {} from the queue", taken.join(", "));
                session.set_handler_progress_text(&text)?;
            }
        }
        Ok(())
    }
}

/// Calendar runs up to three sessions at once; an item is never in two of them.
pub struct Calendar {
    items: Vec<SyncItem>,
    work: Work,
}

impl Calendar {
    pub fn new(seed: u64) -> Result<Calendar, IdError> {
        Ok(Calendar {
            items: items(&[
                ("work", "Work"),
                ("team", "Team"),
                ("personal", "Personal"),
                ("holidays", "Holidays"),
            ])?,
            work: Work {
                handler: "calendar",
                unit: "events",
                units: (18, 28),
                pace_ms: (50, 80),
                fail_one_in: 8,
                failure: "CalDAV server answered 503",
                conflict_one_in: 3,
                seed,
                runs: Mutex::default(),
            },
        })
    }
}

impl SyncHandler for Calendar {
    fn name(&self) -> String {
        "Calendar".into()
    }

    fn capabilities(&self) -> HandlerCapabilities {
        HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
    }

    fn max_concurrent_sessions(&self) -> Option<usize> {
        Some(3)
    }

    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        for item in items {
            self.work.sync(session, item)?;
        }
        Ok(())
    }
}

/// Photos uploads one album after another.
pub struct Photos {
    items: Vec<SyncItem>,
    work: Work,
}

impl Photos {
    pub fn new(seed: u64) -> Result<Photos, IdError> {
        Ok(Photos {
            items: items(&[
                ("camera-roll", "Camera roll"),
                ("trip-2024", "Trip 2024"),
                ("family", "Family"),
                ("pets", "Pets"),
                ("screenshots", "Screenshots"),
                ("shared", "Shared with me"),
            ])?,
            work: Work {
                handler: "photos",
                unit: "photos",
                units: (30, 44),
                pace_ms: (40, 65),
                fail_one_in: 6,
                failure: "upload quota exceeded",
                conflict_one_in: 0,
                seed,
                runs: Mutex::default(),
            },
        })
    }
}

impl SyncHandler for Photos {
    fn name(&self) -> String {
        "Photos".into()
    }

    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }

    /// Album requests come in bursts (a camera plugged in, albums picked one by one): wait
    /// until they stop for 300 ms, but never more than a second, then upload them together.
    fn sync_policy(&self) -> SyncPolicy {
        SyncPolicy::default().debounce(Duration::from_millis(300), Duration::from_secs(1))
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        for album in items {
            self.work.sync(session, album)?;
        }
        Ok(())
    }
}

fn items(list: &[(&str, &str)]) -> Result<Vec<SyncItem>, IdError> {
    list.iter()
        .map(|&(id, name)| SyncItem::new(id, name))
        .collect()
}
