//! `syncmgr` in a tokio application: async handlers whose sessions are tasks (stand-in network
//! I/O with `tokio::time::sleep`), callers that `.await` their tickets, a progress display
//! fed by the notification stream, a failed item retried, and an async shutdown. No thread
//! blocks anywhere: the sessions hold no thread while they wait.
//!
//! Run it with `cargo run --example async_app --features tokio`.

use std::time::Duration;

use syncmgr::{
    AsyncHandler, ControlFlags, HandlerError, ItemId, Notification, Progress, ProgressStatus,
    Retry, SyncControlFlags, SyncItem, SyncManager, SyncPolicy, SyncRequest, SyncSession,
};

/// Fetches each item over a (pretend) network.
struct Feed {
    items: Vec<&'static str>,
    /// How long one item takes.
    latency: Duration,
    /// An item whose first attempt times out.
    flaky: Option<&'static str>,
    /// Whether the flaky item has been tried yet.
    tried: std::sync::atomic::AtomicBool,
}

impl Feed {
    fn new(items: Vec<&'static str>, latency_ms: u64, flaky: Option<&'static str>) -> Feed {
        Feed {
            items,
            latency: Duration::from_millis(latency_ms),
            flaky,
            tried: Default::default(),
        }
    }
}

impl AsyncHandler for Feed {
    fn items(&self) -> Vec<SyncItem> {
        self.items
            .iter()
            .filter_map(|i| SyncItem::new(*i, *i).ok())
            .collect()
    }

    /// A timeout is worth a quick second try.
    fn sync_policy(&self) -> SyncPolicy {
        let retry = Retry::exponential(3, Duration::from_millis(200), Duration::from_secs(2));
        SyncPolicy::default().retry(retry)
    }

    async fn synchronize(
        &self,
        items: Vec<ItemId>,
        session: SyncSession,
    ) -> Result<(), HandlerError> {
        for item in &items {
            session.report_progress(
                item,
                Progress::new(ProgressStatus::Updating)
                    .text("fetching")
                    .steps(0, 1),
            )?;
            tokio::time::sleep(self.latency).await; // the network, awaited
            let flaky = self.flaky == Some(item.as_str());
            if flaky && !self.tried.swap(true, std::sync::atomic::Ordering::SeqCst) {
                session.report_progress(
                    item,
                    Progress::new(ProgressStatus::Failed)
                        .text("timed out")
                        .steps(0, 1),
                )?;
                continue;
            }
            session.report_progress(
                item,
                Progress::new(ProgressStatus::Succeeded)
                    .text("fetched")
                    .steps(1, 1),
            )?;
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;
    runtime.block_on(app(runtime.handle().clone()))
}

async fn app(runtime: tokio::runtime::Handle) -> Result<(), Box<dyn std::error::Error>> {
    let manager = SyncManager::new()?;
    let news = Feed::new(vec!["world", "tech", "sport"], 120, Some("tech"));
    let weather = Feed::new(vec!["today", "week"], 80, None);
    manager.register_async_handler("news", news, runtime.clone(), ControlFlags::WAIT)?;
    manager.register_async_handler("weather", weather, runtime.clone(), ControlFlags::WAIT)?;

    // The progress display: a task reading the notification stream.
    let mut notes = manager.subscribe();
    let display = runtime.spawn(async move {
        while let Some(note) = notes.recv_async().await {
            match note {
                Notification::ItemProgress {
                    handler,
                    item,
                    progress,
                    ..
                } => println!("  {handler:<8} {item:<6} {progress}"),
                Notification::RetryScheduled { item, attempt, .. } => {
                    println!("  retry: {item} failed attempt {attempt}, trying again soon")
                }
                _ => {}
            }
        }
    });

    // Two callers at once, each awaiting its own result.
    let news = manager.start_handler_sync("news", SyncControlFlags::NONE, None)?;
    let weather = manager.request(SyncRequest::handler("weather").on_result(|r| {
        println!("callback: {r}");
    }))?;
    // Both run at once already; awaiting one after the other takes as long as the slower.
    println!("awaited:  {}", news.await);
    println!("awaited:  {}", weather.await);

    // Shutting down waits for the manager's threads on a thread of its own, not on the
    // runtime; the notification stream then ends, and so does the display.
    let report = manager.shutdown_async().await;
    display.await?;
    println!("shut down: {report:?}");
    Ok(())
}
