//! The summary printed after shutdown: requests, sessions and merge decisions, each request's
//! result, and the `ShutdownReport`.

use std::io::{self, Write};
use std::time::Duration;

use syncmgr::engine::Disposition;
use syncmgr::{Outcome, RequestResult, ShutdownReport};

use crate::HANDLERS;
use crate::model::Model;
use crate::render::{Style, outcome_mark, paint};

pub fn print(
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
        "  {} queued items pulled into a running session; {} retries; {} error events",
        seen.pulled, seen.retries, seen.error_events
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
        // An item that took more than one attempt says how many.
        let items: Vec<String> = r
            .items
            .iter()
            .map(|o| {
                let item = match o.attempts {
                    0 | 1 => format!("{}{}", outcome_mark(o.outcome), o.item),
                    n => format!("{}{} ({n} attempts)", outcome_mark(o.outcome), o.item),
                };
                // A failed item says why.
                match &o.cause {
                    Some(cause) => format!("{item}: {}", paint(Style::Dim, &cause.to_string())),
                    None => item,
                }
            })
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
