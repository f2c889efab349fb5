//! The built-in event store (`ISyncMgrEventStore`): events handlers report through their
//! sessions, kept per handler up to a bound.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use uuid::Uuid;

use crate::engine::SessionId;
use crate::flags::EventLevel;
use crate::id::{HandlerId, ItemId};

/// An event as a handler reports it (`ISyncMgrSyncCallback::ReportEvent`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EventReport {
    /// The item the event is about, or `None` for the handler as a whole.
    pub item: Option<ItemId>,
    /// How serious it is; `Error` events count in the `errors` of the requests concerned.
    pub level: EventLevel,
    /// A short name.
    pub name: String,
    /// A longer description.
    pub description: String,
    /// The text of a link a UI may show.
    pub link_text: String,
    /// Where that link points.
    pub link_ref: String,
    /// Free-form context the handler wants to keep with the event.
    pub context: String,
}

impl EventReport {
    /// An event with a level and a name, about the handler as a whole.
    pub fn new(level: EventLevel, name: impl Into<String>) -> EventReport {
        EventReport {
            item: None,
            level,
            name: name.into(),
            description: String::new(),
            link_text: String::new(),
            link_ref: String::new(),
            context: String::new(),
        }
    }

    /// The same event, about one item.
    pub fn item(mut self, item: ItemId) -> EventReport {
        self.item = Some(item);
        self
    }

    /// The same event, with a description.
    pub fn description(mut self, description: impl Into<String>) -> EventReport {
        self.description = description.into();
        self
    }

    /// The same event, with a link.
    pub fn link(mut self, text: impl Into<String>, reference: impl Into<String>) -> EventReport {
        self.link_text = text.into();
        self.link_ref = reference.into();
        self
    }

    /// The same event, with context.
    pub fn context(mut self, context: impl Into<String>) -> EventReport {
        self.context = context.into();
        self
    }
}

/// An event kept in the event log.
///
/// With the `serde` feature its `id` is written as a hyphenated UUID and its `time` in serde's
/// shape for `SystemTime` (`{"secs_since_epoch": …, "nanos_since_epoch": …}`; a time before
/// the Unix epoch cannot be written).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HandlerEvent {
    /// Its fresh, random ID.
    pub id: Uuid,
    /// The handler that reported it.
    pub handler: HandlerId,
    /// The session it was reported in (`None` for events the manager recorded itself outside
    /// a session).
    pub session: Option<SessionId>,
    /// When the manager recorded it.
    pub time: SystemTime,
    /// What the handler reported.
    pub report: EventReport,
}

/// Events per handler, oldest first, at most `capacity` each (the oldest go first).
#[derive(Debug)]
pub(crate) struct EventLog {
    /// Events kept per handler.
    capacity: usize,
    /// Bytes kept per handler (see [`HandlerEvent::bytes`]).
    byte_budget: usize,
    by_handler: HashMap<HandlerId, Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    events: VecDeque<HandlerEvent>,
    bytes: usize,
}

impl HandlerEvent {
    /// What keeping the event costs: its record and its texts.
    fn bytes(&self) -> usize {
        let r = &self.report;
        std::mem::size_of::<HandlerEvent>()
            + r.name.len()
            + r.description.len()
            + r.link_text.len()
            + r.link_ref.len()
            + r.context.len()
    }
}

impl EventLog {
    pub fn new(capacity: usize, byte_budget: usize) -> EventLog {
        EventLog {
            capacity,
            byte_budget,
            by_handler: HashMap::new(),
        }
    }

    /// Keeps an event, dropping the handler's oldest while it has more than `capacity`
    /// events or `byte_budget` bytes. An event larger than the whole budget is not kept.
    pub fn record(&mut self, event: HandlerEvent) {
        let bytes = event.bytes();
        if self.capacity == 0 || bytes > self.byte_budget {
            return;
        }
        let kept = self.by_handler.entry(event.handler.clone()).or_default();
        while kept.events.len() >= self.capacity || kept.bytes + bytes > self.byte_budget {
            match kept.events.pop_front() {
                Some(old) => kept.bytes -= old.bytes(),
                None => break,
            }
        }
        kept.bytes += bytes;
        kept.events.push_back(event);
    }

    pub fn list(&self, handler: &HandlerId) -> Vec<HandlerEvent> {
        self.by_handler
            .get(handler)
            .map(|k| k.events.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, handler: &HandlerId, id: Uuid) -> Option<HandlerEvent> {
        self.by_handler
            .get(handler)?
            .events
            .iter()
            .find(|e| e.id == id)
            .cloned()
    }

    pub fn remove(&mut self, handler: &HandlerId, id: Uuid) -> bool {
        let Some(kept) = self.by_handler.get_mut(handler) else {
            return false;
        };
        match kept.events.iter().position(|e| e.id == id) {
            Some(at) => {
                if let Some(gone) = kept.events.remove(at) {
                    kept.bytes -= gone.bytes();
                }
                true
            }
            None => false,
        }
    }

    /// Forgets a removed handler's events.
    pub fn forget(&mut self, handler: &HandlerId) {
        self.by_handler.remove(handler);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u128) -> HandlerEvent {
        HandlerEvent {
            id: Uuid::from_u128(n),
            handler: HandlerId::new("h").unwrap(),
            session: None,
            time: SystemTime::UNIX_EPOCH,
            report: EventReport::new(EventLevel::Information, format!("e{n}")),
        }
    }

    #[test]
    fn keeps_the_newest_up_to_capacity() {
        let mut log = EventLog::new(2, usize::MAX);
        let h = HandlerId::new("h").unwrap();
        for n in 1..=3 {
            log.record(event(n));
        }
        let ids: Vec<u128> = log.list(&h).iter().map(|e| e.id.as_u128()).collect();
        assert_eq!(ids, [2, 3]);
        assert!(log.get(&h, Uuid::from_u128(1)).is_none());
        assert!(log.remove(&h, Uuid::from_u128(2)));
        assert!(!log.remove(&h, Uuid::from_u128(2)));
        assert_eq!(log.list(&h).len(), 1);
    }

    #[test]
    fn keeps_the_newest_within_the_byte_budget() {
        let big = |n: u128| {
            let mut e = event(n);
            e.report.description = "x".repeat(1000);
            e
        };
        let one = big(0).bytes();
        // Room for three (names differ by a byte or two), not four.
        let mut log = EventLog::new(1000, 3 * one + 16);
        let h = HandlerId::new("h").unwrap();
        for n in 1..=10 {
            log.record(big(n));
        }
        let ids: Vec<u128> = log.list(&h).iter().map(|e| e.id.as_u128()).collect();
        assert_eq!(ids, [8, 9, 10], "the oldest went first");
        // Larger than the whole budget: not kept, and nothing else goes for it.
        let mut huge = event(11);
        huge.report.description = "x".repeat(4 * one);
        log.record(huge);
        assert_eq!(log.list(&h).len(), 3);
        assert!(log.remove(&h, Uuid::from_u128(9)));
        log.record(big(12));
        log.record(big(13));
        let ids: Vec<u128> = log.list(&h).iter().map(|e| e.id.as_u128()).collect();
        assert_eq!(ids, [10, 12, 13], "removing gives its bytes back");
    }
}
