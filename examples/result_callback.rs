//! Results by callback: a closure and a struct implementing `SyncResult`, and a `SyncRequest`
//! whose context value the handler reads from `SyncSession::requests()`.
//!
//! Result callbacks run on the manager's delivery thread once the request has its result;
//! here they send a line to the main thread, which prints it.

use std::sync::mpsc;

use syncmgr::{
    ControlFlags, HandlerError, ItemId, Progress, ProgressStatus, RequestResult, SyncControlFlags,
    SyncHandler, SyncItem, SyncManager, SyncRequest, SyncResult, SyncSession,
};

/// The context value a caller attaches to a request (Sync Center's `punk`): here, how many
/// files the caller allows this sync to upload per folder.
struct Budget {
    max_files: u32,
}

struct Backup(Vec<SyncItem>);

impl SyncHandler for Backup {
    fn items(&self) -> Vec<SyncItem> {
        self.0.clone()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        // A session can serve several requests; honour the tightest budget among them.
        let budget = session
            .requests()
            .iter()
            .filter_map(|served| served.context.as_ref()?.downcast_ref::<Budget>())
            .map(|budget| budget.max_files)
            .min();
        let served: Vec<String> = session
            .requests()
            .iter()
            .map(|r| r.request.to_string())
            .collect();
        let limit = budget.map_or("no budget".to_owned(), |n| format!("at most {n} files"));
        println!(
            "  handler: {} serves {}: {limit}",
            session.id(),
            served.join(", ")
        );
        for item in items {
            let text = match budget {
                Some(n) => format!("uploaded {n} files, the rest next time"),
                None => "uploaded every file".to_owned(),
            };
            session.report_progress(
                item,
                Progress::new(ProgressStatus::Succeeded)
                    .text(&text)
                    .steps(1, 1),
            )?;
        }
        Ok(())
    }
}

/// The struct form of a result sink: it keeps what it needs to report the result.
struct Report {
    label: &'static str,
    lines: mpsc::Sender<String>,
}

impl SyncResult for Report {
    fn result(self: Box<Self>, result: &RequestResult) {
        let items: Vec<String> = result
            .items
            .iter()
            .map(|o| format!("{} {:?}", o.item, o.outcome))
            .collect();
        let line = format!(
            "  {} got {}: {}",
            self.label,
            result.request,
            items.join(", ")
        );
        let _ = self.lines.send(line);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folders = vec![
        SyncItem::new("documents", "Documents")?,
        SyncItem::new("pictures", "Pictures")?,
    ];
    let manager = SyncManager::new()?;
    manager.register_handler("backup", Backup(folders), ControlFlags::WAIT)?;
    let (lines, printed) = mpsc::channel();

    println!("a closure as the result sink, no context:");
    let to_main = lines.clone();
    let on_result = move |result: &RequestResult| {
        let _ = to_main.send(format!(
            "  closure got {}: {:?}",
            result.request, result.status
        ));
    };
    // Only the callback is wanted; dropping the ticket does not cancel the request.
    let _ticket = manager.start_item_sync(
        "backup",
        ["documents"],
        SyncControlFlags::NONE,
        Some(Box::new(on_result)),
    )?;
    println!("{}", printed.recv()?);

    println!("a struct as the result sink, with a context value:");
    let sink = Report {
        label: "Report",
        lines,
    };
    let request = SyncRequest::handler("backup").context(Budget { max_files: 100 });
    let ticket = manager.request(request.with_sink(sink))?;
    println!("{}", printed.recv()?);
    let result = ticket.wait(); // the ticket holds the same result
    println!(
        "  the ticket has it too: {:?}, {} errors",
        result.status, result.errors
    );

    println!("{:?}", manager.shutdown());
    Ok(())
}
