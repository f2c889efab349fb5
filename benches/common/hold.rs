//! A handler session held open by the bench while callers arrive (`join.rs`, and the join
//! workloads of `instructions.rs`): never a sleep, the session waits on a channel the bench
//! closes (a blocking handler) or for a semaphore its first request carries (an async one).
//! Included with `#[path]`, like `group.rs`.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use syncmgr::SyncSession;
use tokio::sync::Semaphore;

/// Whether the first caller's work is held open for the others to join. With one caller
/// there is nobody to join: the work runs straight through, and the row times a start, the
/// work and the result, with no hand-off to and from the bench's gate (for the blocking
/// handler those were two more thread hand-offs, on top of the two that running the work on
/// a worker takes).
pub fn held(callers: usize) -> bool {
    callers > 1
}

/// In a handler's `synchronize`: if the bench armed a gate, says so on `entered` and waits
/// until the bench drops the gate's sender. A session that finds no gate armed goes straight
/// on: the one caller's session at N = 1, which nothing holds, or one that should not have
/// run, which the bench's checks then catch instead of it hanging.
pub fn hold_if_armed(armed: &Receiver<Receiver<()>>, entered: &Sender<()>) {
    if let Ok(gate) = armed.try_recv() {
        let _ = entered.send(());
        let _ = gate.recv();
    }
}

/// In an async handler's `synchronize`: waits for the gate one of the session's requests
/// carries as its context (the first caller's, while the bench holds the work), if any.
pub async fn hold_while_gated(session: &SyncSession) {
    let gate = session.requests().iter().find_map(|r| {
        r.context
            .as_ref()?
            .downcast_ref::<Arc<Semaphore>>()
            .cloned()
    });
    if let Some(gate) = gate {
        let _permit = gate.acquire().await.expect("the gate is never closed");
    }
}
