//! What the notifications say: `Model` learns from each one, for the display and for the
//! scripts' cues.

use std::collections::{BTreeMap, HashMap};

use syncmgr::engine::Disposition;
use syncmgr::{
    EventLevel, HandlerId, ItemId, Notification, Outcome, Progress, ProgressStatus, RequestId,
    SessionId,
};

/// What the notification stream has told so far: sessions with their items, the requests and
/// what became of their items, and each handler's queue.
#[derive(Default)]
pub struct Model {
    pub sessions: Vec<SessionView>,
    pub requests: BTreeMap<RequestId, RequestView>,
    /// Items waiting for a session, per handler, with the requests that wait for each.
    pub queues: HashMap<HandlerId, Vec<(ItemId, Vec<RequestId>)>>,
    pub error_events: usize,
    pub pulled: usize,
    pub retries: usize,
    pub missed: u64,
}

pub struct SessionView {
    pub id: SessionId,
    pub handler: HandlerId,
    pub items: Vec<ItemView>,
    pub ended: bool,
}

pub struct ItemView {
    pub id: ItemId,
    pub status: Option<ProgressStatus>,
    pub step: u32,
    pub max: u32,
    pub text: String,
}

impl ItemView {
    pub fn new(id: ItemId) -> ItemView {
        ItemView {
            id,
            status: None,
            step: 0,
            max: 0,
            text: String::new(),
        }
    }

    pub fn finished(&self) -> Option<Outcome> {
        self.status.and_then(Outcome::from_status)
    }
}

pub struct RequestView {
    pub handler: HandlerId,
    pub items: Vec<(ItemId, Disposition)>,
}

/// What the display may want to print a line about.
pub enum Happened {
    ItemDone {
        session: usize,
        item: usize,
    },
    SessionEnded(usize),
    Text {
        session: usize,
        text: String,
    },
    /// A timing decision (a debounce, a retry), already put in words.
    Timing(String),
}

impl Model {
    pub fn learn(&mut self, note: Notification) -> Option<Happened> {
        match note {
            Notification::RequestAccepted {
                request,
                handler,
                items,
                ..
            } => {
                let queue = self.queues.entry(handler.clone()).or_default();
                for (item, disposition) in &items {
                    match disposition {
                        Disposition::Queued => queue.push((item.clone(), vec![request])),
                        Disposition::Merged => {
                            if let Some((_, waiting)) = queue.iter_mut().find(|(i, _)| i == item) {
                                waiting.push(request);
                            }
                        }
                        _ => {}
                    }
                }
                self.requests
                    .insert(request, RequestView { handler, items });
                None
            }
            Notification::SessionStarted {
                session,
                handler,
                items,
            } => {
                if let Some(queue) = self.queues.get_mut(&handler) {
                    queue.retain(|(i, _)| !items.contains(i));
                }
                let items = items.into_iter().map(ItemView::new).collect();
                self.sessions.push(SessionView {
                    id: session,
                    handler,
                    items,
                    ended: false,
                });
                None
            }
            Notification::ItemProgress {
                session,
                item,
                progress:
                    Progress {
                        status,
                        text,
                        step,
                        max,
                    },
                ..
            } => {
                let s = self.position(session)?;
                let view = &mut self.sessions[s];
                let i = match view.items.iter().position(|v| v.id == item) {
                    Some(i) => i,
                    None => {
                        // Not in the session when it started: the handler took it in.
                        if let Some(queue) = self.queues.get_mut(&view.handler) {
                            queue.retain(|(i, _)| *i != item);
                        }
                        self.pulled += 1;
                        view.items.push(ItemView::new(item));
                        view.items.len() - 1
                    }
                };
                let item_view = &mut view.items[i];
                (item_view.status, item_view.step, item_view.max) = (Some(status), step, max);
                item_view.text = text;
                let done = item_view.finished().is_some();
                done.then_some(Happened::ItemDone {
                    session: s,
                    item: i,
                })
            }
            Notification::HandlerProgress { session, text } => {
                let session = self.position(session)?;
                Some(Happened::Text { session, text })
            }
            Notification::SessionEnded {
                session, outcomes, ..
            } => {
                let s = self.position(session)?;
                let view = &mut self.sessions[s];
                view.ended = true;
                // Items the handler never finished get their outcome from the manager.
                for (item, outcome) in outcomes {
                    if let Some(v) = view.items.iter_mut().find(|v| v.id == item)
                        && v.finished().is_none()
                    {
                        v.status = Some(outcome.into());
                    }
                }
                Some(Happened::SessionEnded(s))
            }
            Notification::RequestCompleted(result) => {
                // Whatever it still waited for that nobody else wants leaves the queue.
                if let Some(queue) = self.queues.get_mut(&result.handler) {
                    for (_, waiting) in queue.iter_mut() {
                        waiting.retain(|r| *r != result.request);
                    }
                    queue.retain(|(_, waiting)| !waiting.is_empty());
                }
                None
            }
            Notification::EventReported(event) => {
                if event.report.level == EventLevel::Error {
                    self.error_events += 1;
                }
                None
            }
            Notification::Debounced { handler, until } => Some(Happened::Timing(format!(
                "{:<9}waits for the requests to settle: until +{:.1}s",
                handler.as_str(),
                until.since_origin().as_secs_f64()
            ))),
            Notification::RetryScheduled {
                handler,
                item,
                attempt,
                max_attempts,
                at,
            } => {
                self.retries += 1;
                Some(Happened::Timing(format!(
                    "{:<9}{item} failed attempt {attempt} of {max_attempts}: retry at +{:.1}s",
                    handler.as_str(),
                    at.since_origin().as_secs_f64()
                )))
            }
            Notification::Lagged { missed } => {
                self.missed += missed;
                None
            }
            _ => None,
        }
    }

    pub fn position(&self, session: SessionId) -> Option<usize> {
        self.sessions.iter().position(|s| s.id == session)
    }

    /// The item as its latest session saw it.
    pub fn latest(&self, handler: &str, item: &str) -> Option<&ItemView> {
        self.sessions
            .iter()
            .rev()
            .filter(|s| s.handler.as_str() == handler)
            .find_map(|s| s.items.iter().find(|v| v.id.as_str() == item))
    }
}
