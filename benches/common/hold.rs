//! A handler session held open by the bench while callers arrive (`join.rs`, and the `join`
//! workload of `instructions.rs`): never a sleep, the session waits on a channel the bench
//! closes. Included with `#[path]`, like `group.rs`.

use crossbeam_channel::{Receiver, Sender};

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
