//! The text the display and the summary are made of: a session's label, a request's decisions,
//! an item's cell and mark, colours, and a line cut to the screen's width.

use std::sync::OnceLock;

use syncmgr::engine::Disposition;
use syncmgr::{Outcome, ProgressStatus};

use crate::model::{ItemView, RequestView, SessionView};

impl SessionView {
    /// "mail     session#1  ", bold while it runs.
    pub fn label(&self) -> String {
        let style = if self.ended { Style::Dim } else { Style::Bold };
        let id = paint(style, &format!("{:<10}", self.id.to_string()));
        format!("{:<9}{id}", self.handler.as_str())
    }
}

/// What became of a request's items, grouped: "queued inbox sent; merged drafts".
pub fn decisions(request: &RequestView) -> String {
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
pub fn cell(item: &ItemView) -> String {
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
pub fn mark(item: &ItemView) -> String {
    match item.finished() {
        Some(outcome) => outcome_mark(outcome),
        None if item.max > 0 => paint(Style::Cyan, "▸"),
        None => paint(Style::Dim, "·"),
    }
}

pub fn outcome_mark(outcome: Outcome) -> String {
    match outcome {
        Outcome::Succeeded => paint(Style::Green, "✓"),
        Outcome::Failed => paint(Style::Red, "✗"),
        Outcome::Canceled => paint(Style::Yellow, "⊘"),
        Outcome::Disconnected => paint(Style::Yellow, "⌁"),
    }
}

/// Whether to colour the output: a terminal without `NO_COLOR`. Set once, in `main`.
pub static COLOR: OnceLock<bool> = OnceLock::new();

#[derive(Clone, Copy)]
pub enum Style {
    Dim,
    Bold,
    Green,
    Red,
    Yellow,
    Cyan,
}

pub fn paint(style: Style, text: &str) -> String {
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
pub fn cut(line: &str, width: usize) -> String {
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
