//! What time costs (issue 12): the engine's timers against the same engine with no time
//! policy, at 1k and 100k handlers, and what an idle manager with 100k schedules spends
//! between deadlines.
//!
//! - `timers/cycle/{timed,untimed}/{1k,100k}`: one handler's request from its start to its
//!   result, per element. *Timed*: every handler has a schedule (every 60 s, first ticks
//!   spread 1 ms apart), a debounce (1 s quiet, 5 s max-wait) and a retry (3 attempts, 10 s
//!   doubling); the shell polls the engine at each next deadline, and each tick's request is
//!   debounced, run, and (one item in three fails) retried. *Untimed*: the same handlers
//!   with the default policy, and the shell makes the same handler syncs itself, round robin.
//!   Sessions end at once with their items reported, one in three `Failed`. The difference,
//!   divided by the timer events per request (printed), is the cost of one timer event.
//! - `timers/next_deadline/{1k,100k}`: asking for the next deadline with every handler's
//!   timers set.
//! - Printed, not timed: the CPU time a `SyncManager` with 100k scheduled handlers (every
//!   hour) spends over two idle seconds (`/proc/self/stat`, Linux only): its scheduler thread
//!   sleeps until the next deadline, so this should read zero.
//!
//! Every iteration checks what it timed (results delivered, timers fired). Run with
//! `cargo bench --bench timers` in `benches/` (about a minute on 2 cores);
//! `SYNCMGR_BENCH_QUICK=1` shortens it.

#[path = "common/group.rs"]
mod group;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use syncmgr::engine::{Action, Engine, EngineConfig, HandlerSpec, SessionEnd};
use syncmgr::{
    ControlFlags, HandlerError, HandlerId, ItemId, ProgressStatus, Retry, SyncControlFlags,
    SyncHandler, SyncItem, SyncManager, SyncPolicy, SyncSession, Time,
};

use group::{flat_group, quick_mode};

const SIZES: [(usize, &str); 2] = [(1_000, "1k"), (100_000, "100k")];

fn policy() -> SyncPolicy {
    SyncPolicy::default()
        .every(Duration::from_secs(60))
        .debounce(Duration::from_secs(1), Duration::from_secs(5))
        .retry(Retry::exponential(
            3,
            Duration::from_secs(10),
            Duration::from_secs(60),
        ))
}

/// An engine with `n` one-item handlers and the shell that drives it.
struct Sim {
    engine: Engine,
    ids: Vec<HandlerId>,
    item: ItemId,
    /// Round-robin position of the untimed shell.
    next: usize,
    /// Items reported so far: every third fails.
    reported: u64,
}

impl Sim {
    fn new(n: usize, timed: bool) -> Sim {
        let engine = Engine::new(EngineConfig {
            max_sessions: 8,
            ..EngineConfig::default()
        })
        .expect("valid limits");
        let item = ItemId::new("x").expect("valid ID");
        let ids: Vec<HandlerId> = (0..n)
            .map(|i| HandlerId::new(format!("h{i}")).expect("valid ID"))
            .collect();
        let mut sim = Sim {
            engine,
            ids: Vec::new(),
            item,
            next: 0,
            reported: 0,
        };
        for (i, id) in ids.iter().enumerate() {
            // Registered 1 ms apart: their schedules tick 1 ms apart too. With 100k handlers
            // the first ones tick while the last register: the shell serves them as it goes.
            let _ = sim.engine.poll(Time::from_millis(i as u64));
            let _ = sim.carry_out();
            let mut spec = HandlerSpec::new(id.clone()).items([sim.item.clone()]);
            if timed {
                spec = spec.with_sync_policy(policy());
            }
            sim.engine.register_handler(spec).expect("registers");
        }
        sim.ids = ids;
        sim
    }

    /// Timed: polls at each next deadline until `requests` results came. Returns the timer
    /// events fired.
    fn run_timed(&mut self, requests: usize) -> usize {
        let (mut delivered, mut fired) = (0, 0);
        while delivered < requests {
            let due = self
                .engine
                .next_deadline()
                .expect("schedules keep timers set");
            fired += self.engine.poll(due);
            delivered += self.carry_out();
        }
        fired
    }

    /// Untimed: the shell makes the handler syncs itself, round robin.
    fn run_untimed(&mut self, requests: usize) {
        let mut delivered = 0;
        while delivered < requests {
            let id = &self.ids[self.next % self.ids.len()];
            self.next += 1;
            let _accepted = self
                .engine
                .start_handler_sync(id, SyncControlFlags::IGNORE_IF_ALREADY_SYNCING)
                .expect("accepted");
            delivered += self.carry_out();
        }
    }

    /// Runs every session at once; returns the results delivered.
    fn carry_out(&mut self) -> usize {
        let mut delivered = 0;
        while let Some(action) = self.engine.next_action() {
            match action {
                Action::StartSession { session, .. } => {
                    self.reported += 1;
                    let status = if self.reported.is_multiple_of(3) {
                        ProgressStatus::Failed
                    } else {
                        ProgressStatus::Succeeded
                    };
                    let _ack = self
                        .engine
                        .report_progress(session, &self.item, status)
                        .expect("the item is in its session");
                    let _ended = self
                        .engine
                        .session_finished(session, SessionEnd::Returned)
                        .expect("the session runs");
                }
                Action::Deliver(_) => delivered += 1,
                _ => {}
            }
        }
        delivered
    }
}

fn cycle(c: &mut Criterion) {
    let (warm_up, measurement, requests) = if quick_mode() {
        (Duration::from_millis(200), Duration::from_secs(1), 2_000)
    } else {
        (Duration::from_millis(500), Duration::from_secs(3), 10_000)
    };
    let mut group = flat_group(c, "timers/cycle", warm_up, measurement);
    group.throughput(Throughput::Elements(requests as u64));
    for (n, label) in SIZES {
        let mut timed = Sim::new(n, true);
        let mut events = (0usize, 0usize);
        group.bench_function(BenchmarkId::new("timed", label), |b| {
            b.iter(|| {
                let fired = timed.run_timed(requests);
                assert!(
                    fired >= requests,
                    "each request took at least its tick: {fired} events for {requests}"
                );
                events = (events.0 + fired, events.1 + requests);
            })
        });
        println!(
            "timers/cycle/timed/{label}: {:.2} timer events per request",
            events.0 as f64 / events.1.max(1) as f64
        );
        drop(timed);
        let mut untimed = Sim::new(n, false);
        group.bench_function(BenchmarkId::new("untimed", label), |b| {
            b.iter(|| untimed.run_untimed(requests))
        });
    }
    group.finish();
}

fn next_deadline(c: &mut Criterion) {
    let (warm_up, measurement) = if quick_mode() {
        (Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (Duration::from_millis(500), Duration::from_secs(2))
    };
    let mut group = c.benchmark_group("timers/next_deadline");
    group.warm_up_time(warm_up).measurement_time(measurement);
    for (n, label) in SIZES {
        let mut sim = Sim::new(n, true);
        // Every handler's tick set, plus a debounce window or a backoff for a tenth of them.
        let _ = sim.run_timed(n / 10);
        group.bench_function(label, |b| {
            b.iter(|| black_box(sim.engine.next_deadline()).expect("timers are set"))
        });
    }
    group.finish();
}

// ----- an idle manager with 100k schedules --------------------------------------------------------

struct Idle;

impl SyncHandler for Idle {
    fn items(&self) -> Vec<SyncItem> {
        vec![SyncItem::new("x", "x").expect("valid ID")]
    }
    fn sync_policy(&self) -> SyncPolicy {
        SyncPolicy::default().every(Duration::from_secs(3600))
    }
    fn synchronize(&self, _: &[ItemId], _: &SyncSession) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// User plus system CPU time of this process, in clock ticks (Linux `/proc/self/stat`).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn idle_manager(_: &mut Criterion) {
    let manager = SyncManager::new().expect("the manager starts");
    for i in 0..100_000 {
        manager
            .register_handler(format!("h{i}"), Idle, ControlFlags::WAIT)
            .expect("registers");
    }
    let Some(before) = cpu_ticks() else {
        println!("timers/idle_manager: no /proc/self/stat here; skipped");
        return;
    };
    std::thread::sleep(Duration::from_secs(2));
    let after = cpu_ticks().unwrap_or(before);
    // A tick is 10 ms on Linux (USER_HZ = 100).
    println!(
        "timers/idle_manager: 100k scheduled handlers, 2 s idle: {} ms of CPU",
        (after - before) * 10
    );
    assert!(
        after - before <= 2,
        "an idle manager should not spin: {} ticks",
        after - before
    );
}

criterion_group!(benches, cycle, next_deadline, idle_manager);
criterion_main!(benches);
