//! The queue of jobs for the worker threads: a deque behind a mutex, and a condition variable
//! that idle workers sleep on.
//!
//! A crossbeam channel did this first. Its receivers spin, then `yield_now`, before they park,
//! and every idle worker did so again each time it was woken: in a stream of requests to one
//! handler, half the context switches of the whole program were idle workers yielding to each
//! other (`benches/manager.rs`, `stream_1_thread`, counted with `perf record -e
//! sched:sched_switch`). Here one idle worker at a time waits briefly for the next job, the
//! others sleep until there is one.
//!
//! How long it waits ([`IdleWait`]) depends on the session its worker ran last
//! (`threads::worker`). After one that started with a single request (callers that joined it
//! while it ran are not counted), nothing merged into it and the next request is likely its
//! caller's next: the worker then waits as long as a caller waits for its result (`spin.rs`:
//! a spin, then yields for up to 50 µs). Otherwise it yields a few times, as crossbeam's
//! backoff did. With only the few yields, a caller making one request after
//! another to a manager with one worker (`max_sessions(1)`) settled into sleeping on its
//! result while the worker slept on the queue: every request cost two wake-ups of a sleeping
//! thread, 50 to 67 µs instead of 4 (`benches/join.rs`, one key, one caller, on a 2-vCPU
//! virtual machine; `benches/README.md`, eighteenth session). Waiting that long after every
//! session cost a stream of requests up to 9%: its next session started sooner, with fewer
//! requests merged into it.
//!
//! Waking: under the scheduler's lock, a job wakes a sleeper only if no worker at all is on
//! its way to the queue (spinning, or woken and not yet back). The other workers a burst of
//! jobs needs are woken once the lock is released ([`WakeWorkers`], from the scheduler's
//! after-lock work), one per job that no worker is on its way to take; and a worker that
//! takes a job while more wait than workers come wakes one more before it runs its own. So
//! a burst's wake-ups (system calls) are made under the scheduler's lock only while no worker
//! is on its way (most often only the first), and every job of a burst gets a worker of its
//! own at once, not one wake-up after the one before.
//!
//! Two designs came before. One wake-up per job under the lock: a caller starting eight
//! sessions at once made eight system calls holding the lock the woken workers then needed
//! (`benches/join.rs`, eight keys, one caller each). Then a chain, each worker waking the
//! next as it took its job: one wake-up under the lock, but the eighth session started seven
//! wake-ups after the first, on two processors. Waking the rest after the lock cut the
//! eight-key join rows by a fifth to a third (`benches/README.md`, twenty-first session).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::spin::{self, SPIN_YIELDS};

/// The yields of an idle worker that waits briefly: crossbeam's backoff, which the channel
/// this queue replaced had.
const FEW_YIELDS: u32 = 4;

/// How long an idle worker that finds no job waits awake for one before it sleeps.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IdleWait {
    /// A spin and a few yields.
    Brief,
    /// A spin, then yields for up to 50 µs (`spin::SPIN_TIME`), as a caller waits for its
    /// result: after a session that started with one request at most.
    Linger,
}

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
    /// Sleepers woken for a job and not yet back under the lock: they are on their way, so
    /// nobody else wakes another. At most `sleeping` (each wake-up, spurious or not, takes
    /// one off both), so a count left by a wake that found nobody cannot stop later wakes.
    notified: usize,
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
            notified: 0,
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
    /// Queues a job and wakes a sleeping worker if no worker at all is on its way to the
    /// queue. Hands the job back when no worker is left to take it. The sender calls this
    /// under the scheduler's lock, so it wakes one worker at most: `Ok(true)` says that more
    /// jobs wait than workers come, and that [`JobSender::waker`] should wake the others
    /// once the lock is released.
    pub fn send(&self, job: T) -> Result<bool, T> {
        let mut state = self.0.state();
        if state.receivers == 0 {
            return Err(job);
        }
        state.jobs.push_back(job);
        self.0.queued.store(state.jobs.len(), Ordering::Release);
        let wake = !state.spinning && state.notified == 0 && state.wake_one_if_needed();
        let more = must_wake(
            state.sleeping,
            state.spinning,
            state.notified,
            state.jobs.len(),
        );
        drop(state);
        if wake {
            self.0.ready.notify_one();
        }
        Ok(more)
    }

    /// What wakes the rest of a burst's workers once the scheduler's lock is released.
    pub fn waker(&self) -> WakeWorkers<T> {
        WakeWorkers(self.0.clone())
    }
}

/// Wakes a sleeping worker for every queued job that no worker is on its way to take: after
/// the scheduler's lock, so that the wake-ups (system calls) keep no caller waiting for it,
/// and the workers they wake find it free.
pub(crate) struct WakeWorkers<T>(Arc<Queue<T>>);

impl<T> WakeWorkers<T> {
    /// Wakes them: the sleepers are counted as woken under the queue's lock, and notified
    /// after it.
    pub fn wake(&self) {
        let mut state = self.0.state();
        let mut wakes = 0;
        while state.wake_one_if_needed() {
            wakes += 1;
        }
        drop(state);
        for _ in 0..wakes {
            self.0.ready.notify_one();
        }
    }
}

impl<T> State<T> {
    /// Counts a sleeper as woken if more jobs wait than workers are on their way to take
    /// them. The caller calls `notify_one` once the lock is released.
    fn wake_one_if_needed(&mut self) -> bool {
        let wake = must_wake(self.sleeping, self.spinning, self.notified, self.jobs.len());
        if wake {
            self.notified += 1;
        }
        wake
    }
}

/// Whether jobs queued must wake a sleeping worker: yes if more jobs wait than workers are
/// on their way to the queue (the spinner, and sleepers woken before), and a sleeper is left
/// to wake. So every job of a burst gets a worker of its own, none waits for another to
/// finish.
fn must_wake(sleeping: usize, spinning: bool, notified: usize, queued: usize) -> bool {
    queued > notified + usize::from(spinning) && sleeping > notified
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
    /// is left. A worker that finds no job first waits awake for one, as `idle` says (see the
    /// module docs).
    #[inline]
    pub fn recv(&self, idle: IdleWait) -> Option<T> {
        let mut state = self.0.state();
        let mut may_spin = true;
        loop {
            if let Some(job) = state.jobs.pop_front() {
                self.0.queued.store(state.jobs.len(), Ordering::Release);
                // The next job gets a worker before this one runs: this job may run long.
                let wake = state.wake_one_if_needed();
                drop(state);
                if wake {
                    self.0.ready.notify_one();
                }
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
                self.spin(idle);
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
            state.notified = state.notified.saturating_sub(1);
        }
    }
}

impl<T> JobReceiver<T> {
    /// Waits a few microseconds for a job: a spin, then yields until `spin::SPIN_TIME` has
    /// passed, at most [`SPIN_YIELDS`] of them when lingering and [`FEW_YIELDS`] otherwise.
    fn spin(&self, idle: IdleWait) {
        let queued = || self.0.queued.load(Ordering::Acquire) > 0;
        if spin::spin(queued) {
            return;
        }
        let yields = match idle {
            IdleWait::Linger => SPIN_YIELDS,
            IdleWait::Brief => FEW_YIELDS,
        };
        spin::yield_until(queued, spin::spin_end(), yields);
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
        assert_eq!(rx.recv(IdleWait::Brief), Some(0));
        drop(tx);
        assert_eq!(rx.recv(IdleWait::Brief), Some(1));
        assert_eq!(rx.recv(IdleWait::Brief), Some(2));
        assert_eq!(rx.recv(IdleWait::Brief), None);
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
    fn a_job_wakes_a_sleeper_unless_a_worker_is_on_its_way_to_it() {
        // (sleeping, spinning, notified, queued)
        assert!(!must_wake(0, false, 0, 1), "nobody sleeps");
        assert!(!must_wake(1, false, 0, 0), "no job waits");
        assert!(must_wake(1, false, 0, 1));
        assert!(!must_wake(1, true, 0, 1), "the spinner takes it");
        assert!(!must_wake(2, false, 1, 1), "the woken sleeper takes it");
        assert!(must_wake(2, false, 1, 2), "one comes for two jobs");
        assert!(must_wake(2, true, 0, 2), "the spinner takes one of two");
        assert!(
            !must_wake(1, false, 1, 3),
            "the only sleeper is woken already"
        );
    }

    #[test]
    fn a_send_wakes_one_sleeper_and_the_waker_the_rest_of_a_burst() {
        let (tx, rx) = queue::<u32>();
        // Three sleepers, as three workers asleep on `ready` would count.
        rx.0.state().sleeping = 3;
        assert_eq!(tx.send(1), Ok(false), "the woken sleeper takes it");
        assert_eq!(rx.0.state().notified, 1);
        assert_eq!(
            tx.send(2),
            Ok(true),
            "no wake-up under the lock but the first"
        );
        assert_eq!(tx.send(3), Ok(true));
        assert_eq!(rx.0.state().notified, 1);
        // After the scheduler's lock: one sleeper more for each job nobody comes for.
        tx.waker().wake();
        assert_eq!(rx.0.state().notified, 3);
        // Nothing is left to wake for: a second call wakes nobody.
        tx.waker().wake();
        assert_eq!(rx.0.state().notified, 3);
    }

    #[test]
    fn a_taker_wakes_a_sleeper_while_more_jobs_wait_than_workers_come() {
        let (tx, rx) = queue::<u32>();
        // Two sleepers, as two workers asleep on `ready` would count.
        rx.0.state().sleeping = 2;
        assert!(tx.send(1).is_ok());
        assert!(tx.send(2).is_ok());
        assert!(tx.send(3).is_ok());
        assert_eq!(rx.0.state().notified, 1, "one wake-up under the lock");
        // The woken sleeper comes back (as `recv` does after `wait`) and takes a job: more
        // wait, so it wakes the next sleeper.
        {
            let mut state = rx.0.state();
            state.sleeping -= 1;
            state.notified -= 1;
        }
        assert_eq!(rx.recv(IdleWait::Brief), Some(1));
        assert_eq!(rx.0.state().notified, 1, "the taker woke the next sleeper");
        {
            let mut state = rx.0.state();
            state.sleeping -= 1;
            state.notified -= 1;
        }
        assert_eq!(rx.recv(IdleWait::Brief), Some(2));
        assert_eq!(rx.0.state().notified, 0, "nobody left asleep to wake");
        assert_eq!(rx.recv(IdleWait::Brief), Some(3));
    }

    /// Sessions meant to run at once do: each job of a burst gets a worker of its own while
    /// the others still run, although the sender woke only one.
    #[test]
    fn every_job_of_a_burst_gets_a_worker_while_the_others_run() {
        const JOBS: usize = 4;
        let patience = std::time::Duration::from_secs(30);
        let (tx, rx) = queue::<()>();
        let (started_tx, started) = crossbeam_channel::unbounded();
        let (open, gate) = crossbeam_channel::bounded::<()>(0);
        let workers: Vec<_> = (0..JOBS)
            .map(|_| {
                let (rx, started_tx, gate) = (rx.clone(), started_tx.clone(), gate.clone());
                std::thread::spawn(move || {
                    while let Some(()) = rx.recv(IdleWait::Brief) {
                        let _ = started_tx.send(());
                        // Held until the test opens the gate (drops `open`).
                        let _ = gate.recv();
                    }
                })
            })
            .collect();
        // Every worker asleep first, so that only wake-ups can start the jobs (a worker
        // still on its way to the queue would take one without being woken).
        let asleep_by = std::time::Instant::now() + patience;
        while rx.0.state().sleeping < JOBS {
            assert!(
                std::time::Instant::now() < asleep_by,
                "the workers never slept"
            );
            std::thread::yield_now();
        }
        for _ in 0..JOBS {
            assert!(tx.send(()).is_ok());
        }
        // As the scheduler does once its lock is released.
        tx.waker().wake();
        for n in 0..JOBS {
            assert!(
                started.recv_timeout(patience).is_ok(),
                "job {n} never started while the others ran"
            );
        }
        drop(open);
        drop(tx);
        for worker in workers {
            assert!(worker.join().is_ok());
        }
    }

    #[test]
    fn a_sleeping_worker_wakes_for_a_job_and_for_the_end() {
        let patience = std::time::Duration::from_secs(30);
        // Briefly awake between jobs, or lingering: no job is missed either way.
        for idle in [IdleWait::Brief, IdleWait::Linger] {
            let (tx, rx) = queue();
            // Kept to see the worker's state; it never takes a job itself.
            let watch = rx.clone();
            let (seen_tx, seen) = std::sync::mpsc::channel();
            let worker = std::thread::spawn(move || {
                while let Some(job) = rx.recv(idle) {
                    let _ = seen_tx.send(job);
                }
            });
            // One job at a time, as a caller that waits for each result sends them; every
            // other one once the worker is asleep, so that only a wake-up can start it.
            for job in 0..20 {
                if job % 2 == 1 {
                    let asleep_by = std::time::Instant::now() + patience;
                    while watch.0.state().sleeping == 0 {
                        assert!(std::time::Instant::now() < asleep_by, "it never slept");
                        std::thread::yield_now();
                    }
                }
                assert!(tx.send(job).is_ok());
                assert_eq!(
                    seen.recv_timeout(patience).ok(),
                    Some(job),
                    "{idle:?}: the worker took the job"
                );
            }
            // Waiting or asleep now: dropping the sender must end its loop either way.
            drop(tx);
            assert!(worker.join().is_ok());
            assert!(seen.recv().is_err());
        }
    }
}
