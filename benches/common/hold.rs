//! A run held open by the bench while callers arrive (`join.rs`, `manager.rs`'s gate rows,
//! and the join workloads of `instructions.rs`): never a sleep, a blocking run (a manager
//! session, the coalescer's batch) waits on a channel the bench closes ([`Gate`], [`Holds`]),
//! an async session for a semaphore its first caller armed ([`AsyncGates`]). Included with
//! `#[path]`, like `group.rs`; `coalescer.rs` takes its `Holds` from here.

#![allow(dead_code)] // each bench uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::Semaphore;

/// Whether the first caller's work is held open for the others to join. With one caller
/// there is nobody to join: the work runs straight through, and the row times a start, the
/// work and the result, with no hand-off to and from the bench's gate (for the blocking
/// handler those were two more thread hand-offs, on top of the two that running the work on
/// a worker takes).
pub fn held(callers: usize) -> bool {
    callers > 1
}

/// How the two sides of a blocking gate wait for each other: the bench thread for the run to
/// say it started, the run for the gate to open.
#[derive(Clone, Copy)]
pub enum Wait {
    /// Asleep on the channel. Waking a sleeping thread is a thread hand-off, about 30 µs on
    /// a VM whose idle processors halt, so a timed join row would time the bench's two
    /// hand-offs as much as the manager. For callgrind (`instructions.rs`), where a spin
    /// would count, and for `manager.rs`'s gate rows, where both systems pass the same gate.
    Park,
    /// Awake: a spin, then yields, never asleep. The timed rows (`join.rs`), so that they
    /// time the manager's own hand-offs, as the singleflight crates' rows, whose callers and
    /// gate are tasks on one thread, time theirs.
    Awake,
}

/// How long a wait for something already on its way may take before the bench fails (the
/// join bench's waits for results too).
pub const PATIENCE: Duration = Duration::from_secs(30);

impl Wait {
    /// Waits for one message on `rx`, or for its senders to be gone; false if it waited
    /// `PATIENCE` for neither.
    fn recv(self, rx: &Receiver<()>) -> bool {
        match self {
            Wait::Park => !matches!(
                rx.recv_timeout(PATIENCE),
                Err(crossbeam_channel::RecvTimeoutError::Timeout)
            ),
            Wait::Awake => {
                let deadline = Instant::now() + PATIENCE;
                let mut spins = 0;
                loop {
                    if !matches!(rx.try_recv(), Err(TryRecvError::Empty)) {
                        return true;
                    }
                    if spins < 64 {
                        spins += 1;
                        std::hint::spin_loop();
                    } else if Instant::now() < deadline {
                        std::thread::yield_now();
                    } else {
                        return false;
                    }
                }
            }
        }
    }
}

/// The held side of a blocking gate: a run (a manager session, the coalescer's batch) that
/// finds a hold armed says so on `entered` and waits until the hold's gate opens. Runs that
/// find none go straight through: the one caller's session at N = 1, which nothing holds, or
/// one that should not have run, which the bench's checks then catch instead of it hanging.
#[derive(Clone)]
pub struct Holds {
    armed: Receiver<Receiver<()>>,
    entered: Sender<()>,
    wait: Wait,
}

impl Holds {
    /// Holds that are never armed: every run goes straight through.
    pub fn none() -> Holds {
        Gate::new(Wait::Park).1
    }

    pub fn pass(&self) {
        if let Ok(gate) = self.armed.try_recv() {
            let _ = self.entered.send(());
            // Opening is the sender going away. A panic here fails the run, and so the
            // bench's check of every result.
            assert!(self.wait.recv(&gate), "the gate should have opened");
        }
    }
}

/// The bench's side of a blocking gate.
pub struct Gate {
    arm: Sender<Receiver<()>>,
    entered: Receiver<()>,
    wait: Wait,
}

impl Gate {
    /// A gate whose two sides wait for each other as `wait` says.
    pub fn new(wait: Wait) -> (Gate, Holds) {
        let (arm, armed) = crossbeam_channel::unbounded();
        let (entered_tx, entered) = crossbeam_channel::unbounded();
        let gate = Gate { arm, entered, wait };
        let holds = Holds {
            armed,
            entered: entered_tx,
            wait,
        };
        (gate, holds)
    }

    /// Arms `runs` holds, one for each of the next runs; dropping the returned sender opens
    /// them all.
    pub fn arm(&self, runs: usize) -> Sender<()> {
        let (open, gate) = crossbeam_channel::bounded(0);
        for _ in 0..runs {
            self.arm.send(gate.clone()).expect("the runner is alive");
        }
        open
    }

    /// Waits until `runs` held runs have said they started.
    pub fn wait_entered(&self, runs: usize) {
        for _ in 0..runs {
            assert!(
                self.wait.recv(&self.entered),
                "the held run should have started"
            );
        }
    }
}

/// The gates of an async handler's held sessions: the first caller's task arms one just
/// before its request, and the session that serves that request takes it. Not the request's
/// context: a context is a user value, which the manager lets go of on its delivery thread,
/// a wake-up of that thread every round, where the singleflight crates' gate is captured in
/// the leader's own future.
#[derive(Default)]
pub struct AsyncGates {
    armed: Mutex<Vec<Arc<Semaphore>>>,
    /// Sessions that took a gate since the last `check_held`.
    held: AtomicUsize,
}

impl AsyncGates {
    /// Arms a gate for the next session to start.
    pub fn arm(&self, gate: Arc<Semaphore>) {
        self.armed.lock().unwrap().push(gate);
    }

    /// In an async handler's `synchronize`: waits for a gate, if one is armed. A session that
    /// finds none goes straight on: the one caller's at N = 1, or one that should not have
    /// run, which the bench's checks then catch instead of it hanging.
    pub async fn hold(&self) {
        let gate = self.armed.lock().unwrap().pop();
        if let Some(gate) = gate {
            self.held.fetch_add(1, Ordering::SeqCst);
            let _permit = gate.acquire().await.expect("the gate is never closed");
        }
    }

    /// After a round: checks that exactly `sessions` sessions were held, and that no gate is
    /// left armed for the next round.
    pub fn check_held(&self, sessions: usize) {
        assert_eq!(
            self.held.swap(0, Ordering::SeqCst),
            sessions,
            "every key's session was held"
        );
        assert!(self.armed.lock().unwrap().is_empty(), "no gate left armed");
    }
}
