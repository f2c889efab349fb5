//! The tour of the threaded `SyncManager`: three handlers in a realistic embedding, with live
//! per-item progress in the terminal.
//!
//! Mail (inbox, sent, drafts, archive; a folder that fails is retried with backoff), calendar
//! (which runs several sessions at once: `SUPPORTS_CONCURRENT_SESSIONS`) and photos (six
//! albums; a burst of requests is debounced into one upload) sync with simulated work that now
//! and then fails or finds a conflict. Two threads, "app" and "push", make overlapping
//! requests with both control flags; the app withdraws one of its requests and stops an album
//! that is syncing; the mail handler pulls folders requested while it runs into its running
//! session. A display thread draws what `manager.subscribe()` reports: in a terminal, a block
//! of lines redrawn in place; piped, one line per finished item and session. A summary of
//! requests, sessions, merge decisions and results follows, then the `ShutdownReport`.
//!
//! Run it with `cargo run --release --example demo` (about ten seconds). The randomness is a
//! seeded xorshift, seeded per item and per run of the item, and the script moves on cues it
//! reads from its own subscription rather than on timers, so every run tells the same story:
//! only the timings differ, and the order of lines that land at the same moment.
//!
//! This file sets the scene and tells the story; beside it are the handlers (`handlers.rs`,
//! with their simulated work in `work.rs`), how a script thread makes requests and waits for
//! its cues (`script.rs`), what the notifications say (`model.rs`), and the display
//! (`display.rs`, `render.rs`, `summary.rs`).

mod display;
mod handlers;
mod model;
mod render;
mod script;
mod summary;
mod work;

use std::error::Error;
use std::io::{self, IsTerminal};
use std::thread;
use std::time::{Duration, Instant};

use syncmgr::{ControlFlags, RequestResult, SyncControlFlags, SyncManager, SyncTicket};

use display::Display;
use handlers::{Calendar, Mail, Photos};
use script::Script;

type Res<T = ()> = Result<T, Box<dyn Error>>;

const NONE: SyncControlFlags = SyncControlFlags::NONE;
const IGNORE: SyncControlFlags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;

/// The story's seed; `DEMO_SEED=<number>` tells another one.
const SEED: u64 = 19;

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
    let _ = render::COLOR.set(tty && std::env::var_os("NO_COLOR").is_none());
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
    summary::print(&seen, results, report, start.elapsed())?;
    Ok(())
}

// ----- the story -------------------------------------------------------------------------------

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
