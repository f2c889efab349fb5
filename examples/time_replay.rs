//! Replays a day of three sync handlers with time policies through the pure `Engine`, printing
//! each timing decision with its time: a burst of edits debounced into one session and cut
//! off by max-wait, a failing item retried with backoff while its siblings settle at once, a
//! periodic schedule skipping a tick while its previous run is open, a reconnect that ends a
//! backoff, and an expedited "Sync now".
//!
//! The shell here is a few lines: a virtual clock that jumps to the next thing that happens
//! (a scripted event, a session finishing, or the engine's next deadline), and sessions that
//! take a fixed time. No threads, no sleeping, no randomness beyond the engine's seeded
//! jitter: `cargo run --release --example time_replay` prints the same thing every time.

use std::collections::BTreeMap;
use std::error::Error;
use std::time::Duration;

use syncmgr::engine::{Action, Engine, HandlerSpec, RequestOptions, SessionEnd};
use syncmgr::{
    HandlerId, ItemId, Outcome, ProgressStatus, Retry, SessionId, SyncControlFlags, SyncPolicy,
    Time,
};

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mins(n: u64) -> Duration {
    secs(60 * n)
}

/// Something the day's script does at a time.
enum Event {
    /// A local edit: sync these items of the handler.
    Edit(&'static str, &'static [&'static str]),
    /// The user presses "Sync now" on a handler.
    SyncNow(&'static str),
    /// Mail's network goes or comes back (before the application notices).
    Network(bool),
    /// The application tells the engine whether the handler is connected.
    Connected(&'static str, bool),
}

/// The day, from 08:00.
fn script() -> Vec<(Duration, Event)> {
    use Event::*;
    let mut day = vec![
        // 08:00: a mail sync; `outbox` will fail twice before it gets through.
        (mins(0), Edit("mail", &["inbox", "outbox", "drafts"])),
        // 09:00: the user types in a note: an edit every 20 s for three minutes.
        (mins(60), Edit("notes", &["todo"])),
    ];
    for k in 1..=9 {
        let item: &'static [&'static str] = if k % 2 == 0 { &["todo"] } else { &["journal"] };
        day.push((mins(60) + secs(20 * k), Edit("notes", item)));
    }
    // 10:00: another note edit, and the user does not want to wait.
    day.push((mins(120), Edit("notes", &["todo"])));
    day.push((mins(120) + secs(5), SyncNow("notes")));
    // 11:00: the train enters a tunnel just as the user sends a mail: the outbox fails and
    // backs off for five minutes...
    day.push((mins(180), Network(false)));
    day.push((mins(180), Edit("mail", &["outbox"])));
    day.push((mins(181), Connected("mail", false)));
    // ...and the train is out two minutes later: the reconnect ends the backoff at once.
    day.push((mins(183), Network(true)));
    day.push((mins(183), Connected("mail", true)));
    day
}

fn main() -> Res {
    let mut shell = Shell::new()?;
    let mut script = script().into_iter().peekable();
    // Photos' schedule runs from 08:00 to 12:00 of the replay, which is four hours long.
    let end_of_day = Time::from_duration(mins(240));
    loop {
        let next_event = script.peek().map(|(t, _)| Time::from_duration(*t));
        let next_finish = shell.running.values().map(|r| r.until).min();
        let next = [next_event, next_finish, shell.engine.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        let Some(now) = next.filter(|t| *t <= end_of_day) else {
            break;
        };
        let _ = shell.engine.poll(now);
        shell.pump()?;
        shell.finish_due()?;
        while let Some((_, event)) = script.next_if(|(t, _)| Time::from_duration(*t) <= now) {
            shell.apply(event)?;
        }
        shell.pump()?;
    }
    println!("{} end of the replay", shell.clock());
    Ok(())
}

/// A session in flight: when it ends and what it holds.
struct Run {
    handler: HandlerId,
    items: Vec<ItemId>,
    until: Time,
}

struct Shell {
    engine: Engine,
    running: BTreeMap<SessionId, Run>,
    /// How many times each item has run, for the scripted failures.
    runs: BTreeMap<ItemId, u32>,
    /// Whether mail can reach its server (the script's tunnel).
    mail_online: bool,
}

impl Shell {
    fn new() -> Res<Shell> {
        let mut engine = Engine::default();
        let ids = |names: &[&str]| -> Result<Vec<ItemId>, syncmgr::IdError> {
            names.iter().map(ItemId::new).collect()
        };
        // Notes: let edits settle for 30 s, but never hold them more than 2 minutes.
        engine.register_handler(
            HandlerSpec::new(HandlerId::new("notes")?)
                .items(ids(&["todo", "journal"])?)
                .with_sync_policy(SyncPolicy::default().debounce(secs(30), mins(2))),
        )?;
        // Mail: retry failed items after 5 minutes, doubling, up to an hour; five attempts.
        engine.register_handler(
            HandlerSpec::new(HandlerId::new("mail")?)
                .items(ids(&["inbox", "outbox", "drafts"])?)
                .with_sync_policy(SyncPolicy::default().retry(Retry::exponential(
                    5,
                    mins(5),
                    mins(60),
                ))),
        )?;
        // Photos: every 15 minutes; an upload takes 20, so every other tick finds it busy.
        engine.register_handler(
            HandlerSpec::new(HandlerId::new("photos")?)
                .items(ids(&["camera"])?)
                .with_sync_policy(SyncPolicy::default().every(mins(15))),
        )?;
        Ok(Shell {
            engine,
            running: BTreeMap::new(),
            runs: BTreeMap::new(),
            mail_online: true,
        })
    }

    fn clock(&self) -> String {
        // The replay starts at 08:00.
        let t = self.engine.now() + Duration::from_secs(8 * 3600);
        t.to_string()[..8].to_string()
    }

    fn apply(&mut self, event: Event) -> Res {
        match event {
            Event::Edit(handler, items) => {
                let ids: Vec<ItemId> = items.iter().map(ItemId::new).collect::<Result<_, _>>()?;
                let a = self.engine.start_item_sync(
                    &HandlerId::new(handler)?,
                    &ids,
                    SyncControlFlags::NONE,
                )?;
                println!(
                    "{} {handler}: {} for {} ({} new, {} merged)",
                    self.clock(),
                    a.request,
                    items.join(", "),
                    a.queued_new(),
                    a.merged()
                );
            }
            Event::SyncNow(handler) => {
                let options = RequestOptions::default().expedited();
                let a = self.engine.start_sync_with(
                    &HandlerId::new(handler)?,
                    None,
                    SyncControlFlags::NONE,
                    &options,
                )?;
                println!(
                    "{} {handler}: \"Sync now\", {} (expedited)",
                    self.clock(),
                    a.request
                );
            }
            Event::Network(up) => {
                self.mail_online = up;
                let what = if up { "back" } else { "gone (a tunnel)" };
                println!("{} the network is {what}", self.clock());
            }
            Event::Connected(handler, up) => {
                let _ = self
                    .engine
                    .set_handler_connected(&HandlerId::new(handler)?, up)?;
                let what = if up {
                    "is connected again"
                } else {
                    "is disconnected"
                };
                println!("{} {handler} {what}", self.clock());
            }
        }
        Ok(())
    }

    /// Ends the sessions whose time has come, reporting each item as the script says.
    fn finish_due(&mut self) -> Res {
        let now = self.engine.now();
        let due: Vec<SessionId> = self
            .running
            .iter()
            .filter(|(_, r)| r.until <= now)
            .map(|(s, _)| *s)
            .collect();
        for session in due {
            let Some(run) = self.running.remove(&session) else {
                continue;
            };
            for item in &run.items {
                let status = self.status_of(&run.handler, item);
                let _ = self.engine.report_progress(session, item, status)?;
            }
            let ended = self
                .engine
                .session_finished(session, SessionEnd::Returned)?;
            let outcomes: Vec<String> = ended
                .outcomes
                .iter()
                .map(|(i, o)| format!("{i} {o:?}"))
                .collect();
            println!(
                "{}   {} {session} ends: {}",
                self.clock(),
                ended.handler,
                outcomes.join(", ")
            );
            self.pump()?;
        }
        Ok(())
    }

    /// The script's handlers: mail's outbox fails its first two runs and any run offline.
    fn status_of(&mut self, handler: &HandlerId, item: &ItemId) -> ProgressStatus {
        let runs = self.runs.entry(item.clone()).or_default();
        *runs += 1;
        let fails = handler.as_str() == "mail"
            && item.as_str() == "outbox"
            && (*runs <= 2 || !self.mail_online);
        if fails {
            ProgressStatus::Failed
        } else {
            ProgressStatus::Succeeded
        }
    }

    fn pump(&mut self) -> Res {
        while let Some(action) = self.engine.next_action() {
            let now = self.clock();
            match action {
                Action::StartSession {
                    session,
                    handler,
                    items,
                    ..
                } => {
                    self.engine.session_started(session)?;
                    let took = if handler.as_str() == "photos" {
                        mins(20)
                    } else {
                        secs(10)
                    };
                    let names: Vec<&str> = items.iter().map(ItemId::as_str).collect();
                    println!("{now}   {handler} {session} starts: {}", names.join(", "));
                    let until = self.engine.now() + took;
                    self.running.insert(
                        session,
                        Run {
                            handler,
                            items,
                            until,
                        },
                    );
                }
                Action::Deliver(r) => {
                    let items: Vec<String> = r
                        .items
                        .iter()
                        .map(|o| match (o.outcome, o.attempts) {
                            (Outcome::Succeeded, 1) => format!("{}", o.item),
                            (outcome, n) => format!("{} {outcome:?} after {n} attempts", o.item),
                        })
                        .collect();
                    println!(
                        "{now}   {}: {:?} [{}]",
                        r.request,
                        r.status,
                        items.join(", ")
                    );
                }
                Action::Debounced { handler, until } => {
                    let until = (until + Duration::from_secs(8 * 3600)).to_string();
                    println!("{now}   {handler}: debounced until {}", &until[..8]);
                }
                Action::RetryScheduled {
                    handler,
                    item,
                    attempt,
                    max_attempts,
                    at,
                } => {
                    let at = (at + Duration::from_secs(8 * 3600)).to_string();
                    println!(
                        "{now}   {handler}: {item} failed attempt {attempt} of {max_attempts}, retry at {}",
                        &at[..8]
                    );
                }
                Action::Issued {
                    request,
                    handler,
                    reason,
                } => println!("{now} {handler}: {reason:?} tick issues {request}"),
                Action::TickSkipped { handler, open } => {
                    println!("{now} {handler}: tick skipped, {open} still open")
                }
                other => println!("{now}   {other:?}"),
            }
        }
        Ok(())
    }
}
