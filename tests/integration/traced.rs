//! The `tracing` feature: a span per session, an event per decision, seen by a subscriber
//! installed the way an application installs one (the global default).

#![cfg(feature = "tracing")]

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use syncmgr::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::common::World;

/// What the subscriber saw: each event's message, its fields, and the span it was in.
#[derive(Clone, Debug)]
struct Seen {
    level: Level,
    message: String,
    fields: HashMap<String, String>,
    span: Option<String>,
}

/// A span's name and fields.
type Named = (String, HashMap<String, String>);

/// A subscriber that keeps every `syncmgr` event and the events inside its spans.
#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    /// Span ID → its name and fields.
    spans: Mutex<HashMap<u64, Named>>,
    seen: Mutex<Vec<Seen>>,
}

thread_local! {
    /// The spans this thread is in, innermost last.
    static CURRENT: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut fields = Fields::default();
        span.record(&mut fields);
        let name = span.metadata().name().to_owned();
        self.spans.lock().unwrap().insert(id, (name, fields.0));
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let span = CURRENT.with(|c| c.borrow().last().copied()).and_then(|id| {
            let spans = self.spans.lock().unwrap();
            spans.get(&id).map(|(name, f)| {
                format!(
                    "{name}{{handler={}}}",
                    f.get("handler").cloned().unwrap_or_default()
                )
            })
        });
        let message = fields.0.remove("message").unwrap_or_default();
        self.seen.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            message,
            fields: fields.0,
            span,
        });
    }
    fn enter(&self, span: &Id) {
        CURRENT.with(|c| c.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, span: &Id) {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(at) = c.iter().rposition(|s| *s == span.into_u64()) {
                c.remove(at);
            }
        });
    }
}

/// The process's one recorder, installed as the global default on first use.
fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::default());
        struct Shared(&'static Recorder);
        impl Subscriber for Shared {
            fn enabled(&self, m: &Metadata<'_>) -> bool {
                self.0.enabled(m)
            }
            fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
                self.0.max_level_hint()
            }
            fn new_span(&self, span: &Attributes<'_>) -> Id {
                self.0.new_span(span)
            }
            fn record(&self, id: &Id, values: &Record<'_>) {
                self.0.record(id, values)
            }
            fn record_follows_from(&self, a: &Id, b: &Id) {
                self.0.record_follows_from(a, b)
            }
            fn event(&self, event: &Event<'_>) {
                self.0.event(event)
            }
            fn enter(&self, span: &Id) {
                self.0.enter(span)
            }
            fn exit(&self, span: &Id) {
                self.0.exit(span)
            }
        }
        tracing::subscriber::set_global_default(Shared(recorder))
            .expect("no other test sets a global subscriber");
        recorder
    })
}

/// The events about one handler (tests run beside each other), in order.
fn about(handler: &str) -> Vec<Seen> {
    recorder()
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.fields.get("handler").map(String::as_str) == Some(handler)
                || s.span
                    .as_deref()
                    .is_some_and(|sp| sp.contains(&format!("handler={handler}")))
        })
        .cloned()
        .collect()
}

/// Logs while it syncs, succeeds `a`, then fails the session.
struct Logs;

impl SyncHandler for Logs {
    fn items(&self) -> Vec<SyncItem> {
        vec![
            SyncItem::new("a", "A").unwrap(),
            SyncItem::new("b", "B").unwrap(),
        ]
    }
    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        tracing::info!(target: "app", "fetching {} items", items.len());
        session.report_progress(&items[0], ProgressStatus::Succeeded)?;
        Err("the server went away".into())
    }
}

#[test]
fn a_session_has_its_span_and_every_decision_its_event() {
    let recorder = recorder();
    let world = World::new();
    world
        .manager
        .register_handler("traced", Logs, ControlFlags::WAIT)
        .unwrap();
    let ticket = world
        .manager
        .start_item_sync("traced", ["a", "b"], SyncControlFlags::NONE, None)
        .unwrap();
    let result = ticket.wait();
    assert_eq!(result.status, Outcome::Failed);
    // Shutting down waits for the scheduler's last steps, and their events.
    let _ = world.manager.shutdown();

    let seen = about("traced");
    let messages: Vec<&str> = seen.iter().map(|s| s.message.as_str()).collect();
    for expected in [
        "request accepted",
        "session started",
        "fetching 2 items",
        "progress",
        "session failed",
        "request completed",
    ] {
        assert!(
            messages.contains(&expected),
            "no `{expected}` in {messages:?}"
        );
    }
    let accepted = seen
        .iter()
        .find(|s| s.message == "request accepted")
        .unwrap();
    assert_eq!(accepted.fields.get("queued").map(String::as_str), Some("2"));
    assert_eq!(accepted.level, Level::DEBUG);
    let logged = seen
        .iter()
        .find(|s| s.message == "fetching 2 items")
        .unwrap();
    assert_eq!(
        logged.span.as_deref(),
        Some("sync_session{handler=traced}"),
        "what the handler logs is inside its session's span"
    );
    let failed = seen.iter().find(|s| s.message == "session failed").unwrap();
    assert_eq!(failed.level, Level::WARN);
    assert!(
        failed.fields["error"].contains("the server went away"),
        "{failed:?}"
    );
    let item = seen.iter().find(|s| s.message == "item failed").unwrap();
    assert_eq!(item.level, Level::WARN);
    assert_eq!(item.fields.get("item").map(String::as_str), Some("b"));
    assert_eq!(
        item.fields.get("cause").map(String::as_str),
        Some("the server went away")
    );
    let spans = recorder.spans.lock().unwrap();
    assert!(
        spans.values().any(|(name, f)| name == "sync_session"
            && f.get("handler").map(String::as_str) == Some("traced")),
        "a sync_session span for the handler"
    );
}
