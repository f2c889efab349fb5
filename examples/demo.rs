//! The tour of the threaded `SyncManager`: three handlers in a realistic embedding, with live
//! per-item progress in the terminal.
//!
//! Mail (inbox, sent, drafts, archive), calendar (which runs several sessions at once:
//! `SUPPORTS_CONCURRENT_SESSIONS`) and photos (six albums) sync with simulated work that now
//! and then fails or finds a conflict. Two threads, "app" and "push", make overlapping
//! requests with both control flags; the app withdraws one of its requests and stops an album
//! that is syncing; the mail handler pulls folders requested while it runs into its running
//! session. A display thread draws what `manager.subscribe()` reports: in a terminal, a block
//! of lines redrawn in place; piped, one line per finished item and session. A summary of
//! requests, sessions, merge decisions and results follows, then the `ShutdownReport`.
//!
//! Run it with `cargo run --release --example demo` (about eight seconds). The randomness is a
//! seeded xorshift, seeded per item and per run of the item, and the script moves on cues it
//! reads from its own subscription rather than on timers, so every run tells the same story:
//! only the timings differ, and the order of lines that land at the same moment.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::error::Error;
use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use syncmgr::engine::Disposition;
use syncmgr::{
    CancelRequest, ControlFlags, EventLevel, EventReport, HandlerCapabilities, HandlerError,
    HandlerId, IdError, ItemId, Notification, Outcome, ProgressStatus, RequestId, RequestResult,
    SessionId, ShutdownReport, SyncControlFlags, SyncHandler, SyncItem, SyncManager, SyncRequest,
    SyncSession, SyncTicket,
};

type Res<T = ()> = Result<T, Box<dyn Error>>;

const NONE: SyncControlFlags = SyncControlFlags::NONE;
const IGNORE: SyncControlFlags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;

/// The story's seed; `DEMO_SEED=<number>` tells another one.
const SEED: u64 = 19;
/// How long the script waits for a cue before it gives up: only a bug takes that long.
const CUE_TIMEOUT: Duration = Duration::from_secs(20);
/// At most one redraw per frame.
const FRAME: Duration = Duration::from_millis(50);
/// Lines of the live block are cut to this many characters, so that none wraps (a wrapped
/// line would throw the cursor-up arithmetic off).
const WIDTH: usize = 79;

const HANDLERS: [&str; 3] = ["mail", "calendar", "photos"];
const FOLDERS: [&str; 4] = ["inbox", "sent", "drafts", "archive"];
const CAMERA: [&str; 4] = ["camera-roll", "trip-2024", "family", "pets"];
const MORE_ALBUMS: [&str; 2] = ["screenshots", "shared"];

fn main() -> Res {
    let start = Instant::now();
    let manager = SyncManager::builder()
        .shutdown_grace(Duration::from_secs(2))
        .build()?;
    let seed = match std::env::var("DEMO_SEED") {
        Ok(seed) => seed.parse()?,
        Err(_) => SEED,
    };
    manager.register_handler("mail", Mail::new(seed)?, ControlFlags::WAIT)?;
    manager.register_handler("calendar", Calendar::new(seed)?, ControlFlags::WAIT)?;
    manager.register_handler("photos", Photos::new(seed)?, ControlFlags::WAIT)?;

    let tty = io::stdout().is_terminal();
    let _ = COLOR.set(tty && std::env::var_os("NO_COLOR").is_none());
    let notes = manager.subscribe();
    let (say, said) = crossbeam_channel::unbounded();
    let display = Display::new(tty, start);
    let display = thread::Builder::new()
        .name("display".into())
        .spawn(move || display.run(notes, said))?;

    // Both scripts subscribe before the first request, so they miss nothing.
    let app = Script::new("app", &manager, say.clone());
    let push = Script::new("push", &manager, say);
    let push = thread::Builder::new()
        .name("push".into())
        .spawn(move || push_script(push).map_err(|e| e.to_string()))?;
    let mut requests = app_script(app)?;
    requests.extend(push.join().map_err(|_| "the push script panicked")??);

    let results: Vec<(String, RequestResult)> = requests
        .into_iter()
        .map(|(label, ticket)| (label, ticket.wait()))
        .collect();
    // Shutting down ends the subscription too, which ends the display thread.
    let report = manager.shutdown();
    let seen = display
        .join()
        .map_err(|_| "the display thread panicked")??;
    summary(&seen, results, report, start.elapsed())?;
    Ok(())
}

// ----- the script -----------------------------------------------------------------------------

/// The application: the user opens the mail app, plugs in a camera, clicks Sync, picks two
/// more albums and changes their mind, then stops an album that is syncing.
fn app_script(mut app: Script) -> Res<Vec<(String, SyncTicket)>> {
    app.sync("opens the mail app", "mail", &["inbox"], NONE)?;
    app.sync("plugs in the camera", "photos", &CAMERA, NONE)?;

    app.cues.accepted("calendar", &["personal", "holidays"])?;
    app.cues.progress("mail", "inbox", 15)?;
    // Inbox is syncing: without the flag it is queued again, for a later session.
    app.sync("clicks Sync on mail", "mail", &[], NONE)?;

    app.cues.accepted("calendar", &["work"])?;
    app.cues.progress("photos", "camera-roll", 100)?;
    let extra = app.sync("picks two more albums", "photos", &MORE_ALBUMS, NONE)?;
    app.cues.accepted("photos", &["shared"])?;
    let withdrawn = extra.cancel()?;
    app.did(format!(
        "changes their mind and cancels {}: {withdrawn:?}",
        extra.request()
    ));

    app.cues.progress("photos", "family", 30)?;
    let stopped = app.manager.stop_item_sync("photos", ["family"])?;
    app.did(format!(
        "stops the family album: {} cancel request sent, {} pending dropped",
        stopped.cancel_requests, stopped.canceled_pending
    ));
    Ok(app.made)
}

/// Background services: a phone pushes calendar changes, a reminder service, new mail, a
/// friend sharing an album.
fn push_script(mut push: Script) -> Res<Vec<(String, SyncTicket)>> {
    push.cues.accepted("photos", &CAMERA)?;
    push.sync(
        "the phone changed the calendar",
        "calendar",
        &["work", "team"],
        NONE,
    )?;
    push.cues.progress("calendar", "work", 20)?;
    // Calendar supports concurrent sessions: this one starts beside the first.
    push.sync(
        "reminders wake up",
        "calendar",
        &["personal", "holidays"],
        NONE,
    )?;

    push.cues.accepted("mail", &FOLDERS)?;
    // Inbox is syncing: with the flag, this request takes its outcome from the running session.
    push.sync("new mail arrives", "mail", &["inbox", "drafts"], IGNORE)?;

    push.cues.progress("calendar", "work", 40)?;
    // "work" is syncing in the first calendar session: it waits for that session to end,
    // although a third calendar session could start now.
    push.sync("a meeting moves", "calendar", &["work"], NONE)?;

    push.cues.accepted("photos", &MORE_ALBUMS)?;
    push.sync("a friend shares photos", "photos", &["shared"], NONE)?;
    Ok(push.made)
}

/// One thread of the script: makes requests, and waits for its cues on its own subscription.
struct Script {
    who: &'static str,
    manager: SyncManager,
    cues: Cues,
    say: Sender<Say>,
    made: Vec<(String, SyncTicket)>,
}

/// What a script tells the display, which prints it above the live block.
enum Say {
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
    fn new(who: &'static str, manager: &SyncManager, say: Sender<Say>) -> Script {
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
    fn sync(
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

    fn did(&self, what: String) {
        let _ = self.say.send(Say::Did {
            who: self.who,
            what,
        });
    }
}

/// A script's view of the notification stream, to wait for "inbox is 15% done" or "the
/// other thread's request was accepted".
struct Cues {
    notes: Receiver<Notification>,
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
    fn progress(&mut self, handler: &str, item: &str, percent: u32) -> Res {
        self.until(&format!("{handler}/{item} at {percent}%"), |seen| {
            let view = seen.latest(handler, item)?;
            (view.finished().is_some() || (view.max > 0 && view.step * 100 >= percent * view.max))
                .then_some(())
        })
    }

    /// Until a request for exactly `items` of `handler` was accepted.
    fn accepted(&mut self, handler: &str, items: &[&str]) -> Res<RequestId> {
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

// ----- the handlers ---------------------------------------------------------------------------

/// Mail syncs one folder at a time. After each one it looks at what was requested meanwhile
/// and takes those folders into its running session instead of leaving them for another.
struct Mail {
    items: Vec<SyncItem>,
    work: Work,
}

impl Mail {
    fn new(seed: u64) -> Result<Mail, IdError> {
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
                    session.report_progress(&extra, waiting, ProgressStatus::Updating, 0, 0)?;
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
struct Calendar {
    items: Vec<SyncItem>,
    work: Work,
}

impl Calendar {
    fn new(seed: u64) -> Result<Calendar, IdError> {
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
struct Photos {
    items: Vec<SyncItem>,
    work: Work,
}

impl Photos {
    fn new(seed: u64) -> Result<Photos, IdError> {
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

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        for album in items {
            self.work.sync(session, album)?;
        }
        Ok(())
    }
}

fn items(list: &[(&str, &str)]) -> Result<Vec<SyncItem>, IdError> {
    list.iter()
        .map(|&(id, name)| Ok(SyncItem::new(ItemId::new(id)?, name)))
        .collect()
}

/// How a handler's simulated work behaves.
struct Work {
    handler: &'static str,
    unit: &'static str,
    /// Units of work per item (inclusive range), and milliseconds per unit.
    units: (u32, u32),
    pace_ms: (u32, u32),
    /// One item sync in `fail_one_in` fails, somewhere past its halfway mark.
    fail_one_in: u32,
    failure: &'static str,
    /// One item sync in `conflict_one_in` finds a conflict (0: never).
    conflict_one_in: u32,
    seed: u64,
    /// How many times each item has synced: each run of an item has its own seed, so the
    /// story does not depend on which thread runs first.
    runs: Mutex<HashMap<ItemId, u64>>,
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
    fn sync(&self, session: &SyncSession, item: &ItemId) -> Result<(), HandlerError> {
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
            let cancel =
                session.report_progress(item, &text, ProgressStatus::Updating, step, total)?;
            if cancel != CancelRequest::None {
                let text = format!("stopped after {step} {}", self.unit);
                session.report_progress(item, &text, ProgressStatus::Canceled, step, total)?;
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
                session.report_progress(item, self.failure, ProgressStatus::Failed, step, total)?;
                return Ok(());
            }
            let pause = rng.between(self.pace_ms.0, self.pace_ms.1);
            thread::sleep(Duration::from_millis(pause.into())); // the simulated work
        }
        let text = format!("{total} {}", self.unit);
        session.report_progress(item, &text, ProgressStatus::Succeeded, total, total)?;
        Ok(())
    }
}

/// Marsaglia's xorshift64: tiny, and plenty for a demo.
struct XorShift(u64);

impl XorShift {
    fn seeded(seed: u64) -> XorShift {
        // SplitMix64's finaliser spreads neighbouring seeds apart; the state must not be 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        lo + (self.next_u64() % span) as u32
    }

    /// True once in `n` times; never for 0.
    fn one_in(&mut self, n: u32) -> bool {
        n > 0 && self.next_u64().is_multiple_of(u64::from(n))
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

// ----- what the notifications say ---------------------------------------------------------------

/// What the notification stream has told so far: sessions with their items, the requests and
/// what became of their items, and each handler's queue.
#[derive(Default)]
struct Model {
    sessions: Vec<SessionView>,
    requests: BTreeMap<RequestId, RequestView>,
    /// Items waiting for a session, per handler, with the requests that wait for each.
    queues: HashMap<HandlerId, Vec<(ItemId, Vec<RequestId>)>>,
    error_events: usize,
    pulled: usize,
    missed: u64,
}

struct SessionView {
    id: SessionId,
    handler: HandlerId,
    items: Vec<ItemView>,
    ended: bool,
}

struct ItemView {
    id: ItemId,
    status: Option<ProgressStatus>,
    step: u32,
    max: u32,
    text: String,
}

impl ItemView {
    fn new(id: ItemId) -> ItemView {
        ItemView {
            id,
            status: None,
            step: 0,
            max: 0,
            text: String::new(),
        }
    }

    fn finished(&self) -> Option<Outcome> {
        self.status.and_then(Outcome::from_status)
    }
}

struct RequestView {
    handler: HandlerId,
    items: Vec<(ItemId, Disposition)>,
}

/// What the display may want to print a line about.
enum Happened {
    ItemDone { session: usize, item: usize },
    SessionEnded(usize),
    Text { session: usize, text: String },
}

impl Model {
    fn learn(&mut self, note: Notification) -> Option<Happened> {
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
                status,
                text,
                step,
                max,
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
            Notification::Lagged { missed } => {
                self.missed += missed;
                None
            }
            _ => None,
        }
    }

    fn position(&self, session: SessionId) -> Option<usize> {
        self.sessions.iter().position(|s| s.id == session)
    }

    /// The item as its latest session saw it.
    fn latest(&self, handler: &str, item: &str) -> Option<&ItemView> {
        self.sessions
            .iter()
            .rev()
            .filter(|s| s.handler.as_str() == handler)
            .find_map(|s| s.items.iter().find(|v| v.id.as_str() == item))
    }
}

// ----- the display ------------------------------------------------------------------------------

struct Display {
    tty: bool,
    start: Instant,
    seen: Model,
    /// Lines of the live block on screen now, below the printed lines.
    drawn: usize,
    last_draw: Instant,
}

impl Display {
    fn new(tty: bool, start: Instant) -> Display {
        Display {
            tty,
            start,
            seen: Model::default(),
            drawn: 0,
            last_draw: start,
        }
    }

    /// Draws until the manager has shut down and the scripts are done; returns what it saw.
    fn run(mut self, notes: Receiver<Notification>, said: Receiver<Say>) -> io::Result<Model> {
        let (no_notes, no_says) = (crossbeam_channel::never(), crossbeam_channel::never());
        let (mut notes_open, mut says_open) = (true, true);
        while notes_open || says_open {
            let notes_rx = if notes_open { &notes } else { &no_notes };
            let says_rx = if says_open { &said } else { &no_says };
            select! {
                recv(notes_rx) -> note => match note {
                    Ok(note) => self.on_note(note)?,
                    Err(_) => notes_open = false,
                },
                recv(says_rx) -> say => match say {
                    Ok(say) => {
                        // The request's notification went out before its ticket came back:
                        // take it first, to show what became of the request's items.
                        for note in notes.try_iter() {
                            self.on_note(note)?;
                        }
                        self.on_say(say)?;
                    }
                    Err(_) => says_open = false,
                },
                default(FRAME) => {}
            }
            if self.tty && self.last_draw.elapsed() >= FRAME {
                self.redraw()?;
            }
        }
        if self.tty {
            self.redraw()?;
        }
        Ok(self.seen)
    }

    fn on_note(&mut self, note: Notification) -> io::Result<()> {
        let line = match self.seen.learn(note) {
            None => return Ok(()),
            Some(Happened::Text { session, text }) => {
                let view = &self.seen.sessions[session];
                format!("{:<9}{}: {text}", view.handler.as_str(), view.id)
            }
            // In a terminal the live block shows these.
            Some(_) if self.tty => return Ok(()),
            Some(Happened::ItemDone { session, item }) => {
                let view = &self.seen.sessions[session];
                let item = &view.items[item];
                format!(
                    "{} {} {:<12}{}",
                    view.label(),
                    mark(item),
                    item.id.as_str(),
                    item.text
                )
            }
            Some(Happened::SessionEnded(session)) => {
                let view = &self.seen.sessions[session];
                let items: Vec<String> = view
                    .items
                    .iter()
                    .map(|item| format!("{}{}", mark(item), item.id))
                    .collect();
                format!("{} ended: {}", view.label(), items.join(" "))
            }
        };
        self.print(&line)
    }

    fn on_say(&mut self, say: Say) -> io::Result<()> {
        let line = match say {
            Say::Did { who, what } => {
                format!("{} {what}", paint(Style::Bold, &format!("{who:<4}")))
            }
            Say::Request {
                who,
                why,
                request,
                flags,
            } => {
                let who = paint(Style::Bold, &format!("{who:<4}"));
                let mut line = format!("{who} {why} → {request}");
                if let Some(r) = self.seen.requests.get(&request) {
                    let flag = if flags.contains(IGNORE) {
                        paint(Style::Dim, " IGNORE_IF_ALREADY_SYNCING")
                    } else {
                        String::new()
                    };
                    let decided = paint(Style::Cyan, &decisions(r));
                    line += &format!(" {}{flag}: {decided}", r.handler);
                }
                line
            }
        };
        self.print(&line)
    }

    /// Prints a line; in a terminal, above the live block, which is drawn again below it.
    fn print(&mut self, line: &str) -> io::Result<()> {
        let t = self.start.elapsed().as_secs_f64();
        let mut out = io::stdout().lock();
        if self.tty {
            self.erase(&mut out)?;
        }
        writeln!(out, "{} {line}", paint(Style::Dim, &format!("{t:>6.2}s")))?;
        if self.tty {
            self.draw(&mut out)?;
        }
        out.flush()
    }

    fn redraw(&mut self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        self.erase(&mut out)?;
        self.draw(&mut out)?;
        out.flush()
    }

    /// Moves the cursor up to the first line of the block and clears to the end of screen.
    fn erase(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.drawn > 0 {
            write!(out, "\x1b[{}A", self.drawn)?;
        }
        write!(out, "\r\x1b[J")?;
        self.drawn = 0;
        Ok(())
    }

    fn draw(&mut self, out: &mut impl Write) -> io::Result<()> {
        let lines = self.block();
        for line in &lines {
            writeln!(out, "{}", cut(line, WIDTH))?;
        }
        self.drawn = lines.len();
        self.last_draw = Instant::now();
        Ok(())
    }

    /// The live block: per handler, a line per session and one for its queue.
    fn block(&self) -> Vec<String> {
        let running = self.seen.sessions.iter().filter(|s| !s.ended).count();
        let t = self.start.elapsed().as_secs_f64();
        let header = format!("── live · {t:.1}s · {running} session(s) running ──");
        let mut lines = vec![paint(Style::Dim, &header)];
        for handler in HANDLERS {
            for session in self.seen.sessions.iter() {
                if session.handler.as_str() == handler {
                    let cells: Vec<String> = session.items.iter().map(cell).collect();
                    lines.push(format!("{} {}", session.label(), cells.join(" ")));
                }
            }
            let queue = self.seen.queues.iter().find(|(h, _)| h.as_str() == handler);
            if let Some((_, queue)) = queue.filter(|(_, q)| !q.is_empty()) {
                let items: Vec<String> = queue
                    .iter()
                    .map(|(item, waiting)| {
                        let waiting: Vec<String> =
                            waiting.iter().map(|r| format!("#{}", r.get())).collect();
                        format!(
                            "{item} {}",
                            paint(Style::Dim, &format!("({})", waiting.join(" ")))
                        )
                    })
                    .collect();
                let label = paint(Style::Dim, &format!("{:<10}", "queued"));
                lines.push(format!("{handler:<9}{label} {}", items.join("  ")));
            }
        }
        lines
    }
}

impl SessionView {
    /// "mail     session#1  ", bold while it runs.
    fn label(&self) -> String {
        let style = if self.ended { Style::Dim } else { Style::Bold };
        let id = paint(style, &format!("{:<10}", self.id.to_string()));
        format!("{:<9}{id}", self.handler.as_str())
    }
}

/// What became of a request's items, grouped: "queued inbox sent; merged drafts".
fn decisions(request: &RequestView) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (item, disposition) in &request.items {
        let label = match disposition {
            Disposition::Queued => "queued".to_owned(),
            Disposition::Merged => "merged".to_owned(),
            Disposition::Joined(session) => format!("joined {session}"),
            Disposition::Settled(outcome) => format!("settled {outcome:?}"),
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, items)) => items.push(item.as_str()),
            None => groups.push((label, vec![item.as_str()])),
        }
    }
    let groups: Vec<String> = groups
        .into_iter()
        .map(|(label, items)| format!("{label} {}", items.join(" ")))
        .collect();
    groups.join("; ")
}

/// One item of a session line: its mark and name, with a bar while it runs.
fn cell(item: &ItemView) -> String {
    match item.status {
        Some(ProgressStatus::Updating) if item.max > 0 => {
            let filled = (item.step * 8 / item.max) as usize;
            let bar = paint(Style::Cyan, &"█".repeat(filled))
                + &paint(Style::Dim, &"░".repeat(8 - filled));
            let percent = item.step * 100 / item.max;
            format!(
                "{} {bar} {percent:>2}%",
                paint(Style::Cyan, &format!("▸{}", item.id))
            )
        }
        Some(ProgressStatus::UpdatingIndeterminate) => {
            paint(Style::Cyan, &format!("▸{} …", item.id))
        }
        // Not started yet (no report, or step 0 of 0), or finished.
        _ if item.finished().is_none() => paint(Style::Dim, &format!("·{}", item.id)),
        _ => format!("{}{}", mark(item), item.id),
    }
}

/// An item's status mark: ✓ succeeded, ✗ failed, ⊘ canceled, ⌁ disconnected, ▸ syncing,
/// · waiting.
fn mark(item: &ItemView) -> String {
    match item.finished() {
        Some(outcome) => outcome_mark(outcome),
        None if item.max > 0 => paint(Style::Cyan, "▸"),
        None => paint(Style::Dim, "·"),
    }
}

fn outcome_mark(outcome: Outcome) -> String {
    match outcome {
        Outcome::Succeeded => paint(Style::Green, "✓"),
        Outcome::Failed => paint(Style::Red, "✗"),
        Outcome::Canceled => paint(Style::Yellow, "⊘"),
        Outcome::Disconnected => paint(Style::Yellow, "⌁"),
    }
}

/// Whether to colour the output: a terminal without `NO_COLOR`. Set once, in `main`.
static COLOR: OnceLock<bool> = OnceLock::new();

#[derive(Clone, Copy)]
enum Style {
    Dim,
    Bold,
    Green,
    Red,
    Yellow,
    Cyan,
}

fn paint(style: Style, text: &str) -> String {
    if !COLOR.get().copied().unwrap_or(false) {
        return text.to_owned();
    }
    let code = match style {
        Style::Dim => "2",
        Style::Bold => "1",
        Style::Green => "32",
        Style::Red => "31",
        Style::Yellow => "33",
        Style::Cyan => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Cuts a line to `width` visible characters; colour codes take no room.
fn cut(line: &str, width: usize) -> String {
    // The visible characters, with the byte offset where each starts.
    let mut visible = Vec::new();
    let mut in_code = false;
    for (at, c) in line.char_indices() {
        match c {
            '\x1b' => in_code = true,
            'm' if in_code => in_code = false,
            _ if !in_code => visible.push(at),
            _ => {}
        }
    }
    if visible.len() <= width {
        return line.to_owned();
    }
    let reset = if COLOR.get().copied().unwrap_or(false) {
        "\x1b[0m"
    } else {
        ""
    };
    format!("{}…{reset}", &line[..visible[width - 1]])
}

// ----- the summary ------------------------------------------------------------------------------

fn summary(
    seen: &Model,
    mut results: Vec<(String, RequestResult)>,
    report: ShutdownReport,
    took: Duration,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "\n{}", paint(Style::Bold, "Summary"))?;
    let sessions: Vec<String> = HANDLERS
        .iter()
        .map(|h| {
            let n = seen
                .sessions
                .iter()
                .filter(|s| s.handler.as_str() == *h)
                .count();
            format!("{h} {n}")
        })
        .collect();
    writeln!(
        out,
        "  {} requests made, {} sessions run ({})",
        seen.requests.len(),
        seen.sessions.len(),
        sessions.join(", ")
    )?;
    let (mut queued, mut merged, mut joined, mut settled) = (0, 0, 0, 0);
    for (_, disposition) in seen.requests.values().flat_map(|r| &r.items) {
        match disposition {
            Disposition::Queued => queued += 1,
            Disposition::Merged => merged += 1,
            Disposition::Joined(_) => joined += 1,
            Disposition::Settled(_) => settled += 1,
        }
    }
    write!(
        out,
        "  merge decisions: {queued} queued new, {merged} merged, {joined} joined a running session"
    )?;
    if settled > 0 {
        write!(out, ", {settled} settled at once (disconnected)")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {} queued items pulled into a running session; {} error events",
        seen.pulled, seen.error_events
    )?;
    if seen.missed > 0 {
        writeln!(out, "  the display missed {} notification(s)", seen.missed)?;
    }

    writeln!(out, "{}", paint(Style::Bold, "Results"))?;
    results.sort_by_key(|(_, r)| r.request);
    for (label, r) in &results {
        let status = format!("{:<11}", format!("{:?}", r.status));
        let status = match r.status {
            Outcome::Succeeded => paint(Style::Green, &status),
            Outcome::Failed => paint(Style::Red, &status),
            _ => paint(Style::Yellow, &status),
        };
        writeln!(
            out,
            "  {:<11}{:<9}{status}errors {}  conflicts {}",
            r.request.to_string(),
            r.handler.as_str(),
            r.errors,
            r.conflicts,
        )?;
        let items: Vec<String> = r
            .items
            .iter()
            .map(|(item, outcome)| format!("{}{item}", outcome_mark(*outcome)))
            .collect();
        let label = paint(Style::Dim, &format!("({label})"));
        writeln!(out, "{:13}{}  {label}", "", items.join(" "))?;
    }
    let how = if report == ShutdownReport::default() {
        "cleanly"
    } else {
        "leaving work behind"
    };
    writeln!(
        out,
        "Shut down {how} after {:.1}s:\n  {report:?}",
        took.as_secs_f64()
    )
}
