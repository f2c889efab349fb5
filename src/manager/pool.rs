//! The queue of jobs for the worker threads: a deque behind a mutex, and a condition variable
//! that idle workers sleep on.
//!
//! A crossbeam channel did this first. Its receivers spin, then `yield_now`, before they park,
//! and every idle worker did so again each time it was woken: in a stream of requests to one
//! handler, half the context switches of the whole program were idle workers yielding to each
//! other (`benches/manager.rs`, `stream_1_thread`, counted with `perf record -e
//! sched:sched_switch`). Here one idle worker at a time spins briefly for the next job (a
//! caller that makes one request after another then finds a worker awake, as it did with the
//! channel), the others sleep until there is a job, and a job wakes one sleeper unless a spinning
//! worker is there to take it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// `state.jobs.len()`, written under the lock, read by the spinning worker without it.
    queued: AtomicUsize,
}

struct State<T> {
    jobs: VecDeque<T>,
    /// Workers waiting on `ready`.
    sleeping: usize,
    /// A worker is spinning for the next job (at most one): it needs no wake-up.
    spinning: bool,
    /// Live receivers: with none left, `send` refuses.
    receivers: usize,
    /// The sender is gone: receivers take what is left, then stop.
    closed: bool,
}

impl<T> Queue<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Nothing runs under this lock but moves of jobs and counter updates: never poisoned.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new queue: its one sending end and a first receiving end (clone it for each worker).
pub(crate) fn queue<T>() -> (JobSender<T>, JobReceiver<T>) {
    let queue = Arc::new(Queue {
        state: Mutex::new(State {
            jobs: VecDeque::new(),
            sleeping: 0,
            spinning: false,
            receivers: 1,
            closed: false,
        }),
        ready: Condvar::new(),
        queued: AtomicUsize::new(0),
    });
    (JobSender(queue.clone()), JobReceiver(queue))
}

/// The sending end, held by the scheduler. Dropping it lets the workers finish the jobs left
/// and stop.
pub(crate) struct JobSender<T>(Arc<Queue<T>>);

impl<T> JobSender<T> {
    /// Queues a job and wakes a sleeping worker if there is one. Hands the job back when no
    /// worker is left to take it.
    pub fn send(&self, job: T) -> Result<(), T> {
        let mut state = self.0.state();
        if state.receivers == 0 {
            return Err(job);
        }
        state.jobs.push_back(job);
        self.0.queued.store(state.jobs.len(), Ordering::Release);
        let wake = must_wake(state.sleeping, state.spinning, state.jobs.len());
        drop(state);
        if wake {
            self.0.ready.notify_one();
        }
        Ok(())
    }
}

/// Whether a job just queued must wake a sleeping worker: yes if one sleeps, unless a
/// spinning worker will take it. A spinner takes one job; any more need a sleeper, or they
/// would wait for the spinner to finish its job (sessions meant to run at once would not).
fn must_wake(sleeping: usize, spinning: bool, queued: usize) -> bool {
    sleeping > 0 && (!spinning || queued > 1)
}

impl<T> Drop for JobSender<T> {
    fn drop(&mut self) {
        self.0.state().closed = true;
        self.0.ready.notify_all();
    }
}

/// A receiving end, one per worker.
pub(crate) struct JobReceiver<T>(Arc<Queue<T>>);

impl<T> JobReceiver<T> {
    /// The next job, sleeping until there is one; `None` once the sender is gone and no job
    /// is left.
    pub fn recv(&self) -> Option<T> {
        let mut state = self.0.state();
        let mut may_spin = true;
        loop {
            if let Some(job) = state.jobs.pop_front() {
                self.0.queued.store(state.jobs.len(), Ordering::Release);
                return Some(job);
            }
            if state.closed {
                return None;
            }
            if may_spin && !state.spinning {
                // Spin once, outside the lock, then look again under it: a job that came
                // meanwhile is found there, so none is missed by going to sleep after.
                may_spin = false;
                state.spinning = true;
                drop(state);
                self.spin();
                state = self.0.state();
                state.spinning = false;
                continue;
            }
            state.sleeping += 1;
            state = self
                .0
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.sleeping -= 1;
        }
    }
}

impl<T> JobReceiver<T> {
    /// Waits a few microseconds for a job: rounds of `spin_loop`, then a few `yield_now`s
    /// (crossbeam's backoff, which the channel this queue replaced had).
    fn spin(&self) {
        for round in 0..10u32 {
            if self.0.queued.load(Ordering::Acquire) > 0 {
                return;
            }
            if round < 6 {
                for _ in 0..1u32 << round {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl<T> Clone for JobReceiver<T> {
    fn clone(&self) -> Self {
        self.0.state().receivers += 1;
        JobReceiver(self.0.clone())
    }
}

impl<T> Drop for JobReceiver<T> {
    fn drop(&mut self) {
        self.0.state().receivers -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_come_out_in_order_and_the_rest_after_the_sender_is_gone() {
        let (tx, rx) = queue();
        for n in 0..3 {
            assert!(tx.send(n).is_ok());
        }
        assert_eq!(rx.recv(), Some(0));
        drop(tx);
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(rx.recv(), Some(2));
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn a_send_with_no_receiver_left_hands_the_job_back() {
        let (tx, rx) = queue();
        let other = rx.clone();
        drop(rx);
        assert!(tx.send(1).is_ok());
        drop(other);
        assert_eq!(tx.send(2), Err(2));
    }

    #[test]
    fn a_job_wakes_a_sleeper_unless_the_spinner_takes_it() {
        assert!(!must_wake(0, false, 1), "nobody sleeps");
        assert!(must_wake(1, false, 1));
        assert!(!must_wake(1, true, 1), "the spinner takes it");
        assert!(
            must_wake(1, true, 2),
            "the second job of a spinner needs a sleeper"
        );
    }

    #[test]
    fn a_sleeping_worker_wakes_for_a_job_and_for_the_end() {
        let (tx, rx) = queue();
        let (seen_tx, seen) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            while let Some(job) = rx.recv() {
                let _ = seen_tx.send(job);
            }
        });
        assert!(tx.send(7).is_ok());
        // The worker took the job: it was awake, or a sleeper was woken for it.
        assert_eq!(seen.recv().ok(), Some(7));
        // Asleep now or soon: dropping the sender must end its loop either way.
        drop(tx);
        assert!(worker.join().is_ok());
        assert!(seen.recv().is_err());
    }
}
