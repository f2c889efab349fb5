//! Replays a busy few minutes of three sync handlers through the pure `Engine`, printing every
//! queue, merge, join, session, cancel and result as it happens.
//!
//! The example plays the shell's part itself, with no threads, clocks or randomness: it takes
//! the engine's actions in a loop and "runs" each session by reporting progress, one item per
//! tick, following a fixed script of what each handler does with each item. Run it with
//! `cargo run --release --example engine_replay`; the output is the same every time.

use std::collections::BTreeMap;
use std::error::Error;

use syncmgr::engine::{
    Accepted, Action, Disposition, Engine, EngineConfig, HandlerSpec, ItemSpec, SessionEnd,
};
use syncmgr::{
    CancelRequest, EventLevel, HandlerCapabilities, HandlerId, ItemId, ItemPolicies, Outcome,
    Progress, ProgressStatus, RequestId, RequestResult, SessionId, SyncControlFlags,
};

type Res<T = ()> = Result<T, Box<dyn Error>>;

const NONE: SyncControlFlags = SyncControlFlags::NONE;
const IGNORE: SyncControlFlags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;

fn main() -> Res {
    let mut shell = Shell::new()?;

    shell.heading("t=0  the user opens the laptop: requests pile up");
    shell.sync_items("mail", &["inbox"], NONE, "new-mail push")?;
    shell.sync_items("calendar", &["work", "team"], NONE, "calendar opened")?;
    shell.sync_handler("photos", NONE, "phone plugged in")?;
    shell.sync_handler("mail", NONE, "user clicks Sync mail")?;
    shell.sync_items("calendar", &["holidays"], IGNORE, "holiday reminder")?;
    shell.sync_items(
        "mail",
        &["inbox", "sent", "inbox"],
        IGNORE,
        "mail app refresh",
    )?;

    shell.tick()?;
    shell.note("the user stops photos; camera-roll has PREVENT_STOP_SYNC and carries on");
    let stopped = shell.engine.stop_handler_sync(&shell.handler("photos")?)?;
    shell.say(format!(
        "stop photos: {} pending item(s) removed, {} cancel request(s) sent",
        stopped.canceled_pending, stopped.cancel_requests
    ));
    shell.pump()?;
    let camera_roll = [shell.item("camera-roll")?];
    match shell
        .engine
        .stop_item_sync(&shell.handler("photos")?, &camera_roll)
    {
        Ok(_) => shell.say("stop camera-roll: accepted (unexpected)"),
        Err(e) => {
            shell.say(format!(
                "stop camera-roll: refused, HRESULT {:#010x}",
                e.hresult()
            ));
            shell.say(format!("  {e}"));
        }
    }
    shell.sync_items("mail", &["archive"], NONE, "archive rule fired")?;
    shell.sync_items("calendar", &["team", "holidays"], NONE, "meeting invite")?;
    let archive = shell.request_labelled("archive rule fired")?;
    let withdrawn = shell.engine.cancel_request(archive)?;
    shell.say(format!(
        "cancel {archive} (archive rule fired): {withdrawn:?}"
    ));
    shell.pump()?;

    shell.tick()?;
    shell.note("two more mail refreshes while session#1 is still busy: they merge");
    shell.sync_items("mail", &["inbox", "sent"], NONE, "send/receive button")?;
    shell.sync_items("mail", &["sent"], IGNORE, "sent-items watcher")?;
    shell.note("the photo server drops off the network for a moment");
    let photos = shell.handler("photos")?;
    let _ = shell.engine.set_handler_connected(&photos, false)?;
    shell.sync_handler("photos", NONE, "photo upload while offline")?;
    let _ = shell.engine.set_handler_connected(&photos, true)?;

    shell.run_until_idle()?;
    shell.summary()
}

/// What a handler does with one item of a session, decided by the script (never at random).
enum Fate {
    Succeed,
    /// Succeeds, but reports a conflict first.
    Conflict,
    /// Reports an `Error`-level event, then `Failed`.
    Fail(&'static str),
    /// `synchronize` returns an error before reporting anything for the item.
    GiveUp(&'static str),
}

/// The script of the handlers' behaviour. `attempt` counts this item's sessions, from 1.
fn fate(handler: &str, item: &str, attempt: u32) -> Fate {
    match (handler, item, attempt) {
        ("mail", "drafts", _) => Fate::Fail("draft too large for the server"),
        ("calendar", "work", _) => Fate::Conflict,
        ("calendar", "team", 1) => Fate::GiveUp("server timed out"),
        _ => Fate::Succeed,
    }
}

/// Whether the handler pulls queued items into its running session before returning.
fn pulls_queued_items(handler: &str) -> bool {
    handler == "mail"
}

/// A session the shell is "running": the items it got (and pulled), and how far it is.
struct Run {
    handler: HandlerId,
    items: Vec<ItemId>,
    next: usize,
}

#[derive(Default)]
struct Stats {
    queued: usize,
    merged: usize,
    joined: usize,
    settled: usize,
    duplicates: usize,
    pulled: usize,
    sessions: usize,
}

/// The shell around the engine: it carries out actions and plays the handlers.
struct Shell {
    engine: Engine,
    handlers: Vec<HandlerId>,
    labels: BTreeMap<RequestId, &'static str>,
    runs: BTreeMap<SessionId, Run>,
    results: BTreeMap<RequestId, RequestResult>,
    attempts: BTreeMap<(HandlerId, ItemId), u32>,
    stats: Stats,
    ticks: u32,
}

impl Shell {
    fn new() -> Res<Shell> {
        let mut engine = Engine::new(EngineConfig {
            max_sessions: 4,
            default_concurrent_sessions: 2,
            ..EngineConfig::default()
        })?;
        let ids = |names: &[&str]| -> Result<Vec<ItemId>, syncmgr::IdError> {
            names.iter().map(ItemId::new).collect()
        };
        let (mail, calendar, photos) = (
            HandlerId::new("mail")?,
            HandlerId::new("calendar")?,
            HandlerId::new("photos")?,
        );
        engine.register_handler(
            HandlerSpec::new(mail.clone()).items(ids(&["inbox", "sent", "drafts", "archive"])?),
        )?;
        engine.register_handler(
            HandlerSpec::new(calendar.clone())
                .with_capabilities(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS)
                .items(ids(&["work", "team", "holidays"])?),
        )?;
        engine.register_handler(
            HandlerSpec::new(photos.clone())
                .items(ids(&["albums"])?)
                .item(
                    ItemSpec::new(ItemId::new("camera-roll")?)
                        .with_policies(ItemPolicies::PREVENT_STOP_SYNC),
                )
                .items(ids(&["shared"])?),
        )?;
        println!("syncmgr engine replay: one pure Engine, three handlers, no threads\n");
        println!("  mail      inbox sent drafts archive   (pulls queued items into its session)");
        println!(
            "  calendar  work team holidays          (SUPPORTS_CONCURRENT_SESSIONS, 2 at once)"
        );
        println!("  photos    albums camera-roll shared   (camera-roll: PREVENT_STOP_SYNC)");
        println!("\n  outcomes: ✓ Succeeded  ✗ Failed  ⊘ Canceled  ⌁ Disconnected");
        Ok(Shell {
            engine,
            handlers: vec![mail, calendar, photos],
            labels: BTreeMap::new(),
            runs: BTreeMap::new(),
            results: BTreeMap::new(),
            attempts: BTreeMap::new(),
            stats: Stats::default(),
            ticks: 0,
        })
    }

    fn handler(&self, name: &str) -> Res<HandlerId> {
        let id = HandlerId::new(name)?;
        if self.handlers.contains(&id) {
            Ok(id)
        } else {
            Err(format!("no handler {name} in this replay").into())
        }
    }

    fn item(&self, name: &str) -> Res<ItemId> {
        Ok(ItemId::new(name)?)
    }

    fn request_labelled(&self, label: &str) -> Res<RequestId> {
        self.labels
            .iter()
            .find(|(_, l)| **l == label)
            .map(|(id, _)| *id)
            .ok_or_else(|| format!("no request labelled {label:?}").into())
    }

    fn heading(&self, text: &str) {
        println!(
            "\n── {text} {}",
            "─".repeat(78_usize.saturating_sub(text.len()))
        );
    }

    fn note(&self, text: &str) {
        println!("  ({text})");
    }

    fn say(&self, text: impl AsRef<str>) {
        println!("  {}", text.as_ref());
    }

    // ----- requests ------------------------------------------------------------------------

    fn sync_items(
        &mut self,
        handler: &str,
        items: &[&str],
        flags: SyncControlFlags,
        why: &'static str,
    ) -> Res {
        let id = self.handler(handler)?;
        let items: Vec<ItemId> = items.iter().map(ItemId::new).collect::<Result<_, _>>()?;
        let accepted = self.engine.start_item_sync(&id, &items, flags)?;
        self.accepted(accepted, flags, why)
    }

    fn sync_handler(&mut self, handler: &str, flags: SyncControlFlags, why: &'static str) -> Res {
        let id = self.handler(handler)?;
        let accepted = self.engine.start_handler_sync(&id, flags)?;
        self.accepted(accepted, flags, why)
    }

    /// Prints how each item of a new request was placed, then carries out what followed.
    fn accepted(&mut self, acc: Accepted, flags: SyncControlFlags, why: &'static str) -> Res {
        self.labels.insert(acc.request, why);
        self.stats.queued += acc.queued_new();
        self.stats.merged += acc.merged();
        self.stats.joined += acc.joined();
        self.stats.duplicates += acc.duplicates;
        let join = flags.contains(IGNORE);
        let flag = if join {
            "IGNORE_IF_ALREADY_SYNCING"
        } else {
            "NONE"
        };
        println!("{} {} [{flag}] \"{why}\"", acc.request, acc.handler);
        // The request's item list is known only while it is open; one that completed at once
        // shows its items in its result, just below.
        let Some(names) = self.engine.request_items(acc.request) else {
            let n = acc.dispositions().len();
            println!("    completed at once ({n} items); no session needed");
            self.stats.settled += n;
            return self.pump();
        };
        let mut placed = Vec::new();
        for (n, d) in acc.dispositions().iter().enumerate() {
            let name = names.get(n).map_or(String::new(), |i| format!("{i} "));
            placed.push(match d {
                Disposition::Queued => match self.holder(&acc.handler, names.get(n)) {
                    Some(s) if join => format!("{name}queued (done in {s}: no stale join)"),
                    Some(s) => format!("{name}queued (again, after {s})"),
                    None => format!("{name}queued"),
                },
                Disposition::Merged => match self.holder(&acc.handler, names.get(n)) {
                    Some(s) if join => format!("{name}merged (done in {s}: no stale join)"),
                    _ => format!("{name}merged"),
                },
                Disposition::Joined(s) => format!("{name}joined {s}"),
                Disposition::Settled(o) => format!("{name}settled at once: {o:?}"),
            });
        }
        if acc.duplicates > 0 {
            placed.push(format!("{} repeated name counted once", acc.duplicates));
        }
        if placed.is_empty() {
            placed.push("no items".into());
        }
        println!("    {}", placed.join(", "));
        self.pump()
    }

    /// The running session (as the shell runs it) whose items include `item`, if any.
    fn holder(&self, handler: &HandlerId, item: Option<&ItemId>) -> Option<SessionId> {
        let item = item?;
        self.runs
            .iter()
            .find(|(_, r)| r.handler == *handler && r.items.contains(item))
            .map(|(s, _)| *s)
    }

    // ----- the shell's loop ----------------------------------------------------------------

    /// Carries out every action the engine has decided, oldest first.
    fn pump(&mut self) -> Res {
        while let Some(action) = self.engine.next_action() {
            match action {
                Action::StartSession {
                    session,
                    handler,
                    items,
                    ..
                } => {
                    self.stats.sessions += 1;
                    println!("    ▶ {session} {handler} starts: {}", join(&items));
                    self.engine.session_started(session)?;
                    for item in &items {
                        *self
                            .attempts
                            .entry((handler.clone(), item.clone()))
                            .or_default() += 1;
                    }
                    self.runs.insert(
                        session,
                        Run {
                            handler,
                            items,
                            next: 0,
                        },
                    );
                }
                Action::Cancel {
                    session,
                    request,
                    item,
                } => {
                    let what = item.map_or("the whole session".to_string(), |i| i.to_string());
                    println!("    ■ cancel → {session}: {request:?} for {what}");
                }
                Action::Deliver(result) => {
                    let why = self.labels.get(&result.request).copied().unwrap_or("?");
                    println!(
                        "    ● result {} \"{why}\": {}",
                        result.request,
                        outcome_line(&result)
                    );
                    self.results.insert(result.request, result);
                }
                // Timing decisions: this replay sets no time policy, so none come.
                other => println!("    · {other:?}"),
            }
        }
        Ok(())
    }

    /// One step of time: every session that was running when the tick began handles one item.
    fn tick(&mut self) -> Res {
        self.ticks += 1;
        self.heading(&format!("tick {}", self.ticks));
        let running: Vec<SessionId> = self.runs.keys().copied().collect();
        for session in running {
            self.step(session)?;
            self.pump()?;
        }
        Ok(())
    }

    fn run_until_idle(&mut self) -> Res {
        while !self.runs.is_empty() {
            self.tick()?;
        }
        Ok(())
    }

    /// Plays the handler of `session` for one item, and ends the session when it has no more.
    fn step(&mut self, session: SessionId) -> Res {
        let run = self.runs.get_mut(&session).ok_or("session not running")?;
        let handler = run.handler.clone();
        let Some(item) = run.items.get(run.next).cloned() else {
            return self.finish(session, SessionEnd::Returned);
        };
        run.next += 1;
        let attempt = self
            .attempts
            .get(&(handler.clone(), item.clone()))
            .copied()
            .unwrap_or(1);
        let e = &mut self.engine;
        let head = format!("  {session} {handler}: {item}");
        let ack = e.report_progress(
            session,
            &item,
            Progress::new(ProgressStatus::Updating).text("syncing"),
        )?;
        if ack.cancel != CancelRequest::None {
            // The handler honours the cancel request it was just told about.
            let _ = e.report_progress(
                session,
                &item,
                Progress::new(ProgressStatus::Canceled).text("stopped"),
            )?;
            println!("{head} saw {:?}, reports Canceled", ack.cancel);
        } else {
            match fate(handler.as_str(), item.as_str(), attempt) {
                Fate::Succeed => {
                    let _ = e.report_progress(session, &item, ProgressStatus::Succeeded)?;
                    println!("{head} ✓");
                }
                Fate::Conflict => {
                    e.report_conflict(session, Some(&item))?;
                    let _ = e.report_progress(session, &item, ProgressStatus::Succeeded)?;
                    println!("{head} ✓ (one conflict reported)");
                }
                Fate::Fail(why) => {
                    e.report_event(session, Some(&item), EventLevel::Error)?;
                    let _ = e.report_failure(session, &item, why.into())?;
                    println!("{head} ✗ Failed, error event \"{why}\"");
                }
                Fate::GiveUp(why) => {
                    println!(
                        "{head} … synchronize returns an error (\"{why}\"), {item} unreported"
                    );
                    return self.finish(session, SessionEnd::Failed(why.into()));
                }
            }
        }
        if run_done(&self.runs, session) {
            if pulls_queued_items(handler.as_str()) && self.pull(session)? {
                return Ok(());
            }
            return self.finish(session, SessionEnd::Returned);
        }
        Ok(())
    }

    /// The mail handler's habit: before returning, take whatever is queued for it.
    fn pull(&mut self, session: SessionId) -> Res<bool> {
        let more = self.engine.query_for_additional_items(session)?;
        if more.items.is_empty() {
            return Ok(false);
        }
        let waiting: Vec<String> = more.requests.iter().map(ToString::to_string).collect();
        println!(
            "  {session} asks for more: {} queued for {}; pulls them in",
            join(&more.items),
            waiting.join(", ")
        );
        for item in &more.items {
            let _served = self.engine.add_item_to_session(session, item)?;
            self.stats.pulled += 1;
        }
        if let Some(run) = self.runs.get_mut(&session) {
            for item in &more.items {
                *self
                    .attempts
                    .entry((run.handler.clone(), item.clone()))
                    .or_default() += 1;
            }
            run.items.extend(more.items);
        }
        Ok(true)
    }

    fn finish(&mut self, session: SessionId, end: SessionEnd) -> Res {
        self.runs.remove(&session);
        let how = match &end {
            SessionEnd::Returned => "returned".to_owned(),
            SessionEnd::Failed(cause) => format!("failed: {cause}"),
        };
        let ended = self.engine.session_finished(session, end)?;
        let outcomes: Vec<String> = ended
            .outcomes
            .iter()
            .map(|(item, o)| format!("{item} {}", mark(*o)))
            .collect();
        println!("    ◼ {session} ends ({how}): {}", outcomes.join(", "));
        Ok(())
    }

    // ----- the end -------------------------------------------------------------------------

    fn summary(&self) -> Res {
        let s = &self.stats;
        self.heading("summary");
        println!(
            "  {} requests made, {} sessions run, one result each:",
            self.labels.len(),
            s.sessions
        );
        println!(
            "  items {} queued new, {} merged into a pending entry, {} joined a running session,",
            s.queued, s.merged, s.joined
        );
        println!(
            "  {} settled at once (offline); {} repeated name counted once; {} pulled in by mail",
            s.settled, s.duplicates, s.pulled
        );
        for (id, why) in &self.labels {
            let line = self
                .results
                .get(id)
                .map_or("NO RESULT".to_string(), outcome_line);
            println!("  {:<11} {why:<27} {line}", id.to_string());
        }
        // The engine's promise: exactly one result per accepted request, nothing left over.
        if self.results.len() != self.labels.len() || !self.engine.is_idle() {
            return Err("the engine left a request without a result".into());
        }
        self.engine.check_consistency()?;
        Ok(())
    }
}

fn run_done(runs: &BTreeMap<SessionId, Run>, session: SessionId) -> bool {
    runs.get(&session).is_some_and(|r| r.next == r.items.len())
}

fn join(items: &[ItemId]) -> String {
    let names: Vec<&str> = items.iter().map(ItemId::as_str).collect();
    names.join(" ")
}

fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "✓",
        Outcome::Failed => "✗",
        Outcome::Canceled => "⊘",
        Outcome::Disconnected => "⌁",
    }
}

/// `Failed, 1 error, 0 conflicts: inbox ✓ drafts ✗`.
fn outcome_line(r: &RequestResult) -> String {
    let items: Vec<String> = r
        .items
        .iter()
        .map(|o| format!("{} {}", o.item, mark(o.outcome)))
        .collect();
    let mut counts = String::new();
    if r.errors > 0 {
        counts += &format!(", {} error(s)", r.errors);
    }
    if r.conflicts > 0 {
        counts += &format!(", {} conflict(s)", r.conflicts);
    }
    format!("{:?}{counts}: {}", r.status, items.join(", "))
}
