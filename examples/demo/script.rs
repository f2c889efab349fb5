//! How a script thread plays its part: `Script` makes requests and tells the display about
//! them; `Cues` waits, on the script's own subscription, for the moment the story moves on.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use syncmgr::{Notifications, RequestId, SyncControlFlags, SyncManager, SyncRequest, SyncTicket};

use crate::Res;
use crate::model::Model;

/// How long the script waits for a cue before it gives up: only a bug takes that long.
const CUE_TIMEOUT: Duration = Duration::from_secs(20);

/// One thread of the script: makes requests, and waits for its cues on its own subscription.
pub struct Script {
    who: &'static str,
    pub manager: SyncManager,
    pub cues: Cues,
    say: Sender<Say>,
    pub made: Vec<(String, SyncTicket)>,
}

/// What a script tells the display, which prints it above the live block.
pub enum Say {
    Request {
        who: &'static str,
        why: String,
        request: RequestId,
        flags: SyncControlFlags,
    },
    Did {
        who: &'static str,
        what: String,
    },
}

impl Script {
    pub fn new(who: &'static str, manager: &SyncManager, say: Sender<Say>) -> Script {
        Script {
            who,
            manager: manager.clone(),
            cues: Cues {
                notes: manager.subscribe(),
                seen: Model::default(),
            },
            say,
            made: Vec::new(),
        }
    }

    /// Requests a sync of `items` of `handler`, or of all its items if `items` is empty.
    pub fn sync(
        &mut self,
        why: &str,
        handler: &str,
        items: &[&str],
        flags: SyncControlFlags,
    ) -> Res<SyncTicket> {
        let mut request = SyncRequest::handler(handler).flags(flags);
        if !items.is_empty() {
            request = request.items(items.iter().copied());
        }
        let ticket = self.manager.request(request)?;
        // A display that is gone has nothing left to show; the script carries on.
        let _ = self.say.send(Say::Request {
            who: self.who,
            why: why.to_owned(),
            request: ticket.request(),
            flags,
        });
        self.made
            .push((format!("{}: {why}", self.who), ticket.clone()));
        Ok(ticket)
    }

    pub fn did(&self, what: String) {
        let _ = self.say.send(Say::Did {
            who: self.who,
            what,
        });
    }
}

/// A script's view of the notification stream, to wait for "inbox is 15% done" or "the
/// other thread's request was accepted".
pub struct Cues {
    notes: Notifications,
    seen: Model,
}

impl Cues {
    fn until<T>(&mut self, what: &str, found: impl Fn(&Model) -> Option<T>) -> Res<T> {
        let deadline = Instant::now() + CUE_TIMEOUT;
        loop {
            if let Some(found) = found(&self.seen) {
                return Ok(found);
            }
            let note = self
                .notes
                .recv_deadline(deadline)
                .map_err(|_| format!("the script waited {CUE_TIMEOUT:?} for {what}"))?;
            let _ = self.seen.learn(note);
        }
    }

    /// Until `item` of `handler` is `percent` done, or finished.
    pub fn progress(&mut self, handler: &str, item: &str, percent: u32) -> Res {
        self.until(&format!("{handler}/{item} at {percent}%"), |seen| {
            let view = seen.latest(handler, item)?;
            (view.finished().is_some() || (view.max > 0 && view.step * 100 >= percent * view.max))
                .then_some(())
        })
    }

    /// Until a request for exactly `items` of `handler` was accepted.
    pub fn accepted(&mut self, handler: &str, items: &[&str]) -> Res<RequestId> {
        self.until(&format!("a request for {handler} {items:?}"), |seen| {
            seen.requests.iter().find_map(|(id, r)| {
                let same = r
                    .items
                    .iter()
                    .map(|(i, _)| i.as_str())
                    .eq(items.iter().copied());
                (r.handler.as_str() == handler && same).then_some(*id)
            })
        })
    }
}
