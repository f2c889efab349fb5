//! Starting and stopping a manager: the builder and its limits, the threads it spawns, and
//! shutdown, which every caller sees complete.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::SyncManager;
use super::access::Access;
use super::clock::{Clock, ManualClock};
use super::command::{Command, Link};
use super::registry::Registry;
use super::scheduler::{Scheduler, SchedulerLock, SchedulerParts, deadline_after};
use super::{pool, threads};
use crate::engine::{Engine, EngineConfig};
use crate::error::Error;
use crate::unwind::{self};

/// What shutting down did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Sessions still running when the grace period ended: their requests got results
    /// anyway (items without a terminal report `Canceled`).
    pub abandoned_sessions: usize,
    /// Threads still inside user code (a handler or a result callback that did not return)
    /// when shutdown gave up waiting; each ends when that code returns.
    pub detached_threads: usize,
}

pub(super) struct Threads {
    pub(super) handles: Vec<JoinHandle<()>>,
    /// Disconnects once every thread has ended (each holds a sender).
    pub(super) alive: Receiver<()>,
}

/// Where the manager is in its life. Shutdown moves it from `Running` to `Stopping` (the
/// thread doing the work) to `Stopped` (the report every later caller gets).
pub(super) enum Life {
    Running(Threads),
    Stopping { by: ThreadId },
    Stopped(ShutdownReport),
}

pub(super) struct Shared {
    pub(super) core: Access,
    pub(super) life: Mutex<Life>,
    /// Signalled when `life` becomes `Stopped`.
    pub(super) stopped: Condvar,
    /// The manager's own threads: user code on them must never wait for the shutdown, which
    /// waits for them.
    pub(super) own: Vec<ThreadId>,
    pub(super) grace: Duration,
}

impl Shared {
    pub(super) fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every caller returns only once every result is delivered, however many shut down at
    /// once: the first does the work, the others wait for its report. The exceptions are
    /// callers that the work waits for (user code on the manager's own threads, or a `Drop`
    /// that the shutting-down thread runs): waiting would wait for itself, so they return
    /// at once with an empty report while the shutdown goes on.
    pub(super) fn shutdown(&self) -> ShutdownReport {
        let me = std::thread::current().id();
        let threads = {
            let mut life = self.life();
            loop {
                match &*life {
                    Life::Stopped(report) => return *report,
                    Life::Stopping { by } if *by == me || self.own.contains(&me) => {
                        return ShutdownReport::default();
                    }
                    Life::Stopping { .. } => {
                        life = self
                            .stopped
                            .wait(life)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    Life::Running(_) => {
                        if let Life::Running(threads) =
                            std::mem::replace(&mut *life, Life::Stopping { by: me })
                        {
                            break threads;
                        }
                    }
                }
            }
        };
        // A panic in `stop` is a bug in this crate. Contained, so that the shutdown still
        // ends: callers waiting for `Stopped` would otherwise wait forever.
        let report = unwind::contain(|| self.stop(threads, me)).unwrap_or_default();
        *self.life() = Life::Stopped(report);
        self.stopped.notify_all();
        report
    }

    pub(super) fn stop(&self, threads: Threads, me: ThreadId) -> ShutdownReport {
        // User code on one of our own threads can drop the last handle: that thread cannot
        // wait for itself, so it waits for nothing and the threads finish on their own.
        let from_inside = self.own.contains(&me);
        let (reply, answer) = crossbeam_channel::bounded(1);
        let command = Command::Shutdown { reply, from_inside };
        // The scheduler's own thread (user code it runs after its lock dropped the last
        // handle) cannot wait for the report: that thread sends it only when it ends.
        let own = self.core.link.on_scheduler_thread();
        let mut report = match self.core.link.send(command) {
            Ok(()) if own => ShutdownReport::default(),
            Ok(()) => answer.recv().unwrap_or_default(),
            Err(_) => ShutdownReport::default(),
        };
        // The scheduler has ended every session; give threads still inside user code one
        // more grace period, then leave them to finish on their own.
        // Idle threads end within microseconds of the scheduler; a zero grace still gives
        // them a moment.
        let deadline = deadline_after(self.grace.max(Duration::from_millis(200)));
        // Nobody sends on `alive`: this returns when every thread has dropped its sender, or
        // at the deadline.
        let all_ended = if from_inside {
            // Our own thread holds a sender too: wait for the others instead, checking each
            // few milliseconds (the channel's timeout is the pause).
            loop {
                let others_done = threads
                    .handles
                    .iter()
                    .all(|h| h.thread().id() == me || h.is_finished());
                if others_done || Instant::now() >= deadline {
                    break false;
                }
                let _ = threads.alive.recv_timeout(Duration::from_millis(5));
            }
        } else {
            matches!(
                threads.alive.recv_deadline(deadline),
                Err(RecvTimeoutError::Disconnected)
            )
        };
        #[cfg(test)]
        tests::panic_if_asked();
        // Let go of the handler objects: one that holds a `SyncManager` would otherwise keep
        // the whole manager alive forever. Dropped here, outside every lock; a panicking
        // `Drop` is the handler's and is not let out.
        unwind::dispose(self.core.registry.take_all());
        for handle in threads.handles {
            // Once every token is gone every thread is past user code, so joining is quick
            // even for one that is not quite finished yet.
            if all_ended || handle.is_finished() {
                let _ = handle.join();
            } else {
                report.detached_threads += 1;
            }
        }
        report
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Worker threads started when the builder is not told how many.
pub(super) const DEFAULT_WORKERS_CAP: usize = 64;
/// The most worker threads a manager starts.
pub(super) const MAX_WORKERS: usize = 4096;

/// Builds a [`SyncManager`] with limits other than the defaults.
#[derive(Clone, Debug)]
pub struct SyncManagerBuilder {
    engine: EngineConfig,
    workers: Option<usize>,
    grace: Duration,
    event_log_capacity: usize,
    event_log_bytes: usize,
    notification_capacity: usize,
    clock: Option<ManualClock>,
}

impl Default for SyncManagerBuilder {
    fn default() -> Self {
        SyncManagerBuilder {
            engine: EngineConfig::default(),
            workers: None,
            grace: Duration::from_secs(5),
            event_log_capacity: 1000,
            event_log_bytes: 1 << 20,
            notification_capacity: 4096,
            clock: None,
        }
    }
}

impl SyncManagerBuilder {
    /// Sessions that may run at once across all handlers (default 8).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.engine.max_sessions = n;
        self
    }

    /// Sessions one handler with `SUPPORTS_CONCURRENT_SESSIONS` may run at once, unless it
    /// says otherwise (default 4).
    pub fn concurrent_sessions(mut self, n: usize) -> Self {
        self.engine.default_concurrent_sessions = n;
        self
    }

    /// Worker threads (default: `max_sessions`, so every running session has one, but at
    /// most 64: a large `max_sessions` does not start hundreds of threads). With fewer
    /// workers than running sessions, started sessions wait for a free worker. More than
    /// 4096 is [`Error::InvalidConfig`].
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// How long shutdown waits for running sessions to honour their cancel before it
    /// abandons them (default 5 s). Any `Duration` works: one too long to add to the clock
    /// (`Duration::MAX`) means "wait as long as it takes".
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Events kept per handler in the event log; the oldest go first (default 1000).
    pub fn event_log_capacity(mut self, n: usize) -> Self {
        self.event_log_capacity = n;
        self
    }

    /// Bytes kept per handler in the event log, counting each event's texts and record; the
    /// oldest go first (default 1 MiB). Event texts have no length limit of their own, so
    /// this is what bounds the log's memory, and what one [`SyncManager::events`] call
    /// copies. An event larger than the whole budget is published and counted, not kept.
    pub fn event_log_bytes(mut self, n: usize) -> Self {
        self.event_log_bytes = n;
        self
    }

    /// Notifications buffered per subscriber before it starts missing some (default 4096).
    /// Memory is taken for what is buffered, not for the whole capacity up front, so a large
    /// capacity costs nothing until a subscriber falls behind.
    pub fn notification_capacity(mut self, n: usize) -> Self {
        self.notification_capacity = n;
        self
    }

    /// Reads time from this manual clock instead of the real one: timers (debounce, retries,
    /// schedules) fire only when the clock is advanced, before `advance` returns. For tests
    /// that must not sleep.
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Seeds the deterministic jitter of retries and schedules (default 0): the same seed and
    /// the same inputs at the same times give the same timing.
    pub fn seed(mut self, seed: u64) -> Self {
        self.engine.seed = seed;
        self
    }

    /// Starts the manager's threads. Zero limits are [`Error::InvalidConfig`]; a thread
    /// that cannot be started is [`Error::Spawn`].
    pub fn build(self) -> Result<SyncManager, Error> {
        let engine = Engine::new(self.engine)?;
        let workers = self
            .workers
            .unwrap_or(self.engine.max_sessions.min(DEFAULT_WORKERS_CAP));
        if workers == 0 {
            return Err(Error::InvalidConfig("worker_threads must be at least 1"));
        }
        if workers > MAX_WORKERS {
            return Err(Error::InvalidConfig("worker_threads must be at most 4096"));
        }
        if self.notification_capacity == 0 {
            return Err(Error::InvalidConfig(
                "notification_capacity must be at least 1",
            ));
        }
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (jobs, job_rx) = pool::queue();
        let (deliveries, delivery_rx) = crossbeam_channel::unbounded();
        let (alive, alive_rx) = crossbeam_channel::bounded::<()>(0);
        let (delivery_done, delivery_done_rx) = crossbeam_channel::bounded::<()>(0);
        let registry = Registry::default();
        let clock = match &self.clock {
            Some(manual) => Clock::Manual(manual.clone()),
            None => Clock::real(),
        };
        // One link for the scheduler and every caller: what the scheduler notes on it (whether
        // the engine keeps time) is what the calls read.
        let mut shared_link = None;
        let scheduler = Arc::new_cyclic(|me| {
            let link = Link::new(commands.clone(), me.clone(), clock.clone());
            shared_link = Some(link.clone());
            SchedulerLock::new(Scheduler::new(SchedulerParts {
                engine,
                link,
                registry: registry.clone(),
                jobs,
                deliveries,
                delivery_done: delivery_done_rx,
                event_log_capacity: self.event_log_capacity,
                event_log_bytes: self.event_log_bytes,
                grace: self.grace,
                clock: clock.clone(),
            }))
        });
        if let Some(manual) = &self.clock {
            manual.attach(Arc::downgrade(&scheduler));
        }
        // The scheduler thread holds the only strong reference: when it ends, every link
        // finds the scheduler gone. (`new_cyclic` always runs its closure: the fallback, a
        // link of its own, would only cost calls a clock read the scheduler could spare.)
        let link =
            shared_link.unwrap_or_else(|| Link::new(commands, Arc::downgrade(&scheduler), clock));
        let mut handles = Vec::with_capacity(workers + 2);
        let spawned = spawn_threads(
            &mut handles,
            alive,
            move || Scheduler::run(scheduler, command_rx),
            workers,
            |alive| {
                let (jobs, link) = (job_rx.clone(), link.clone());
                move || threads::worker(jobs, link, alive)
            },
            {
                let link = link.clone();
                move |alive| threads::delivery(delivery_rx, link, alive, delivery_done)
            },
        );
        let shared = Shared {
            core: Access { link, registry },
            own: handles.iter().map(|h| h.thread().id()).collect(),
            life: Mutex::new(Life::Running(Threads {
                handles,
                alive: alive_rx,
            })),
            stopped: Condvar::new(),
            grace: self.grace,
        };
        // On failure `shared` drops here, which shuts down whatever did start.
        spawned?;
        Ok(SyncManager {
            shared: Arc::new(shared),
            notification_capacity: self.notification_capacity,
        })
    }
}

/// Starts the scheduler, the workers and the delivery thread, each holding a clone of
/// `alive` until it ends.
pub(super) fn spawn_threads<W: FnOnce() + Send + 'static>(
    handles: &mut Vec<JoinHandle<()>>,
    alive: Sender<()>,
    scheduler: impl FnOnce() + Send + 'static,
    workers: usize,
    worker: impl Fn(Sender<()>) -> W,
    delivery: impl FnOnce(Sender<()>) + Send + 'static,
) -> Result<(), Error> {
    let mut spawn = |name: String, f: Box<dyn FnOnce() + Send>| -> Result<(), Error> {
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map_err(|e| Error::Spawn(e.to_string()))?;
        handles.push(handle);
        Ok(())
    };
    let token = alive.clone();
    spawn(
        "syncmgr-scheduler".into(),
        Box::new(move || {
            let _alive = token;
            scheduler();
        }),
    )?;
    for n in 0..workers {
        spawn(
            format!("syncmgr-worker-{n}"),
            Box::new(worker(alive.clone())),
        )?;
    }
    let token = alive.clone();
    spawn("syncmgr-delivery".into(), Box::new(move || delivery(token)))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Makes `Shared::stop` panic on this thread, once its threads have ended.
        static PANIC_IN_STOP: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn panic_if_asked() {
        if PANIC_IN_STOP.with(Cell::get) {
            panic!("a panic injected into Shared::stop");
        }
    }

    #[test]
    fn a_panic_while_stopping_still_ends_the_shutdown() {
        let manager = SyncManager::new().unwrap();
        let other = manager.clone();
        PANIC_IN_STOP.with(|p| p.set(true));
        let report = manager.shutdown();
        PANIC_IN_STOP.with(|p| p.set(false));
        assert_eq!(report, ShutdownReport::default());
        // Another thread's call finds the shutdown ended and gets its report, where it
        // waited for `Stopped` forever.
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send(other.shutdown());
        });
        let late = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(late, Ok(report));
    }
}
