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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    capacity: usize,
    by_handler: HashMap<HandlerId, VecDeque<HandlerEvent>>,
}

impl EventLog {
    pub fn new(capacity: usize) -> EventLog {
        EventLog {
            capacity,
            by_handler: HashMap::new(),
        }
    }

    pub fn record(&mut self, event: HandlerEvent) {
        if self.capacity == 0 {
            return;
        }
        let events = self.by_handler.entry(event.handler.clone()).or_default();
        if events.len() == self.capacity {
            events.pop_front();
        }
        events.push_back(event);
    }

    pub fn list(&self, handler: &HandlerId) -> Vec<HandlerEvent> {
        self.by_handler
            .get(handler)
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, handler: &HandlerId, id: Uuid) -> Option<HandlerEvent> {
        self.by_handler
            .get(handler)?
            .iter()
            .find(|e| e.id == id)
            .cloned()
    }

    pub fn remove(&mut self, handler: &HandlerId, id: Uuid) -> bool {
        let Some(events) = self.by_handler.get_mut(handler) else {
            return false;
        };
        let before = events.len();
        events.retain(|e| e.id != id);
        before != events.len()
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
        let mut log = EventLog::new(2);
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
}
