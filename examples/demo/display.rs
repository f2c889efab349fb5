//! The display thread. It learns from its subscription and from what the scripts say; in a
//! terminal it prints events above a live block of sessions and queues, redrawn in place, and
//! piped it prints one line per finished item and session.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use syncmgr::{Notification, Notifications, RecvError, SyncControlFlags};

use crate::HANDLERS;
use crate::model::{Happened, Model};
use crate::render::{Style, cell, cut, decisions, mark, paint};
use crate::script::Say;

/// At most one redraw per frame.
const FRAME: Duration = Duration::from_millis(50);
/// Lines of the live block are cut to this many characters, so that none wraps (a wrapped
/// line would throw the cursor-up arithmetic off).
const WIDTH: usize = 79;

pub struct Display {
    tty: bool,
    start: Instant,
    seen: Model,
    /// Lines of the live block on screen now, below the printed lines.
    drawn: usize,
    last_draw: Instant,
}

impl Display {
    pub fn new(tty: bool, start: Instant) -> Display {
        Display {
            tty,
            start,
            seen: Model::default(),
            drawn: 0,
            last_draw: start,
        }
    }

    /// Draws until the manager has shut down and the scripts are done; returns what it saw.
    pub fn run(mut self, notes: Notifications, said: Receiver<Say>) -> io::Result<Model> {
        let (mut notes_open, mut says_open) = (true, true);
        while notes_open || says_open {
            // Wait up to a frame for a notification (or, once they have ended, for a script).
            if notes_open {
                match notes.recv_timeout(FRAME) {
                    Ok(note) => self.on_note(note)?,
                    Err(RecvError::Closed) => notes_open = false,
                    Err(_) => {}
                }
            } else if let Ok(say) = said.recv_timeout(FRAME) {
                self.on_say(say)?;
            }
            loop {
                match said.try_recv() {
                    Ok(say) => {
                        // The request's notification went out before its ticket came back:
                        // take it first, to show what became of the request's items.
                        for note in notes.try_iter() {
                            self.on_note(note)?;
                        }
                        self.on_say(say)?;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        says_open = false;
                        break;
                    }
                }
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

    pub fn on_note(&mut self, note: Notification) -> io::Result<()> {
        let line = match self.seen.learn(note) {
            None => return Ok(()),
            Some(Happened::Text { session, text }) => {
                let view = &self.seen.sessions[session];
                format!("{:<9}{}: {text}", view.handler.as_str(), view.id)
            }
            Some(Happened::Timing(line)) => line,
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

    pub fn on_say(&mut self, say: Say) -> io::Result<()> {
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
                    let flag = if flags.contains(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING) {
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
    pub fn print(&mut self, line: &str) -> io::Result<()> {
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

    pub fn redraw(&mut self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        self.erase(&mut out)?;
        self.draw(&mut out)?;
        out.flush()
    }

    /// Moves the cursor up to the first line of the block and clears to the end of screen.
    pub fn erase(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.drawn > 0 {
            write!(out, "\x1b[{}A", self.drawn)?;
        }
        write!(out, "\r\x1b[J")?;
        self.drawn = 0;
        Ok(())
    }

    pub fn draw(&mut self, out: &mut impl Write) -> io::Result<()> {
        let lines = self.block();
        for line in &lines {
            writeln!(out, "{}", cut(line, WIDTH))?;
        }
        self.drawn = lines.len();
        self.last_draw = Instant::now();
        Ok(())
    }

    /// The live block: per handler, a line per session and one for its queue.
    pub fn block(&self) -> Vec<String> {
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
