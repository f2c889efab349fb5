//! SPEC section 11: time (debounce with max-wait, retries with backoff, schedules, triggers,
//! and the default policy that changes nothing). Times are seconds after the row's start.

use super::lang::*;
use super::run::check_all;

const S: O = O::Succeeded;
const F: O = O::Failed;
const C: O = O::Canceled;

fn debounce_rows() -> Vec<Row> {
    vec![
        row(
            "default_policy_sets_no_timer",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                next_deadline(None),
                finish(1),
                delivers("r1", F, &[("a1", F)]),
                attempts("r1", &[("a1", 1)]),
                at(3600),
                nothing_else(),
            ],
        ),
        row(
            "debounce_holds_a_burst_until_it_is_quiet",
            vec![
                reg(a_with(debounce(10, 30))),
                start("r1", "a", &["a1"]),
                debounced("a", 10),
                nothing_else(),
                at(5),
                start("r2", "a", &["a2", "a1"]),
                accepted("r2", &[("a2", Queued), ("a1", Merged)]),
                debounced("a", 15),
                at(14),
                nothing_else(),
                at(15),
                started(1, "a", &["a1", "a2"]),
                next_deadline(None),
            ],
        ),
        row(
            "debounce_max_wait_cuts_a_stream_off",
            vec![
                reg(a_with(debounce(10, 30))),
                start("r1", "a", &["a1"]),
                debounced("a", 10),
                at(8),
                start("r2", "a", &["a1"]),
                debounced("a", 18),
                at(16),
                start("r3", "a", &["a1"]),
                debounced("a", 26),
                at(24),
                start("r4", "a", &["a2"]),
                // last + quiet would be 34: the first request's max-wait says 30.
                debounced("a", 30),
                at(29),
                nothing_else(),
                at(30),
                started(1, "a", &["a1", "a2"]),
            ],
        ),
        row(
            "debounce_an_expedited_request_makes_everything_ready",
            vec![
                reg(a_with(debounce(10, 30))),
                start("r1", "a", &["a1"]),
                debounced("a", 10),
                start_expedited("r2", "a", &["a2"]),
                started(1, "a", &["a1", "a2"]),
                next_deadline(None),
            ],
        ),
        row(
            "debounce_never_delays_a_join",
            vec![
                reg(a_with(debounce(10, 30))),
                start("r1", "a", &["a1"]),
                debounced("a", 10),
                at(10),
                started(1, "a", &["a1"]),
                join("r2", "a", &["a1"]),
                accepted("r2", &[("a1", Joined(1))]),
                nothing_else(),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                delivers("r2", S, &[("a1", S)]),
            ],
        ),
        row(
            "debounce_never_stops_a_pull",
            vec![
                reg(a_with(debounce(10, 30))),
                start("r1", "a", &["a1"]),
                debounced("a", 10),
                at(10),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                debounced("a", 20),
                add_to_session(1, "a2"),
                served(1),
                next_deadline(None),
            ],
        ),
        row(
            "debounce_a_stop_removes_debounced_items",
            vec![
                reg(a_with(debounce(10, 30))),
                start("r1", "a", &["a1"]),
                debounced("a", 10),
                stop_items("a", &["a1"]),
                stops(1, 0),
                delivers("r1", C, &[("a1", C)]),
                attempts("r1", &[("a1", 0)]),
                next_deadline(None),
            ],
        ),
    ]
}

fn retry_rows() -> Vec<Row> {
    vec![
        row(
            "retry_a_failed_item_backs_off_while_the_others_settle",
            vec![
                reg(a_with(retry(3))),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                join("r2", "a", &["a2"]),
                accepted("r2", &[("a2", Joined(1))]),
                report(1, "a1", PS::Failed),
                succeed(1, "a2"),
                finish(1),
                ends_with(&[("a1", F), ("a2", S)]),
                retry_scheduled("a", "a1", 1, 3, 10),
                // r2 waited only for a2; r1 waits for a1's next attempt.
                delivers("r2", S, &[("a2", S)]),
                nothing_else(),
                at(9),
                nothing_else(),
                at(10),
                started(2, "a", &["a1"]),
                succeed(2, "a1"),
                finish(2),
                delivers("r1", S, &[("a1", S), ("a2", S)]),
                attempts("r1", &[("a1", 2), ("a2", 1)]),
            ],
        ),
        row(
            "retry_at_most_max_attempts_with_growing_delays",
            vec![
                reg(a_with(retry(3))),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                finish(1),
                retry_scheduled("a", "a1", 1, 3, 10),
                at(10),
                started(2, "a", &["a1"]),
                finish(2),
                retry_scheduled("a", "a1", 2, 3, 30),
                at(30),
                started(3, "a", &["a1"]),
                finish(3),
                delivers("r1", F, &[("a1", F)]),
                attempts("r1", &[("a1", 3)]),
                next_deadline(None),
            ],
        ),
        row(
            "retry_a_request_without_retry_takes_the_first_failure",
            vec![
                reg(a_with(retry(3))),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                join_no_retry("r2", "a", &["a1"]),
                report(1, "a1", PS::Failed),
                finish(1),
                delivers("r2", F, &[("a1", F)]),
                retry_scheduled("a", "a1", 1, 3, 10),
                at(10),
                started(2, "a", &["a1"]),
                succeed(2, "a1"),
                finish(2),
                delivers("r1", S, &[("a1", S)]),
            ],
        ),
        row(
            "retry_never_for_permanent_canceled_or_disconnected",
            vec![
                reg(a_with(retry(3))),
                start("r1", "a", &["a1", "a2", "a3"]),
                started(1, "a", &["a1", "a2", "a3"]),
                fail_permanently(1, "a1"),
                report(1, "a2", PS::Canceled),
                report(1, "a3", PS::Disconnected),
                finish(1),
                delivers("r1", F, &[("a1", F), ("a2", C), ("a3", O::Disconnected)]),
                next_deadline(None),
            ],
        ),
        row(
            "retry_a_new_request_merges_into_the_backoff_and_expedite_ends_it",
            vec![
                reg(a_with(retry(3))),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                finish(1),
                retry_scheduled("a", "a1", 1, 3, 10),
                at(5),
                start("r2", "a", &["a1"]),
                accepted("r2", &[("a1", Merged)]),
                nothing_else(),
                start_expedited("r3", "a", &["a1"]),
                accepted("r3", &[("a1", Merged)]),
                started(2, "a", &["a1"]),
                next_deadline(None),
                succeed(2, "a1"),
                finish(2),
                delivers("r1", S, &[("a1", S)]),
                delivers("r2", S, &[("a1", S)]),
                delivers("r3", S, &[("a1", S)]),
                attempts("r1", &[("a1", 2)]),
                attempts("r2", &[("a1", 1)]),
            ],
        ),
        row(
            "retry_a_reconnect_ends_the_backoff",
            vec![
                reg(a_with(retry(3))),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                finish(1),
                retry_scheduled("a", "a1", 1, 3, 10),
                connect("a", false),
                nothing_else(),
                connect("a", true),
                started(2, "a", &["a1"]),
                next_deadline(None),
            ],
        ),
        row(
            "retry_stopping_an_item_in_backoff_settles_it",
            vec![
                reg(a_with(retry(3))),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                finish(1),
                retry_scheduled("a", "a1", 1, 3, 10),
                stop_handler("a"),
                stops(1, 0),
                delivers("r1", C, &[("a1", C)]),
                attempts("r1", &[("a1", 1)]),
                next_deadline(None),
            ],
        ),
    ]
}

fn schedule_and_trigger_rows() -> Vec<Row> {
    let every = |n| SyncPolicy::default().every(secs(n));
    vec![
        row(
            "schedule_ticks_and_skips_while_its_request_is_open",
            vec![
                reg(a_with(every(60))),
                next_deadline(Some(60)),
                at(59),
                nothing_else(),
                at(60),
                issued("t1", "a", TriggerReason::Scheduled),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                at(120),
                tick_skipped("a", "t1"),
                finish(1),
                delivers("t1", F, &[("a1", F), ("a2", F), ("a3", F), ("a4", F)]),
                at(180),
                issued("t2", "a", TriggerReason::Scheduled),
                started(2, "a", &["a1", "a2", "a3", "a4"]),
            ],
        ),
        row(
            "schedule_missed_ticks_do_not_pile_up",
            vec![
                reg(a_with(every(60))),
                at(605),
                issued("t1", "a", TriggerReason::Scheduled),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                nothing_else(),
                next_deadline(Some(660)),
            ],
        ),
        row(
            "schedule_an_inactive_handler_issues_nothing",
            vec![
                reg(a_with(every(60))),
                activate("a", false),
                at(60),
                nothing_else(),
                next_deadline(Some(120)),
            ],
        ),
        row(
            "trigger_syncs_the_handlers_that_listen",
            vec![
                reg(a_with(SyncPolicy::default().on(Trigger::Connect))),
                reg(b()),
                trigger(Trigger::Idle),
                nothing_else(),
                trigger(Trigger::Connect),
                issued("t1", "a", TriggerReason::Connect),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
            ],
        ),
        row(
            "policy_out_of_range_is_refused_and_changes_nothing",
            vec![
                reg(a()),
                set_policy("a", debounce(10, 5)),
                fails(
                    E_INVALIDARG,
                    Error::InvalidPolicy {
                        field: "debounce.max_wait",
                        rule: "at least quiet",
                    },
                ),
                unchanged(),
            ],
        ),
    ]
}

#[test]
fn debounce_rules() {
    check_all(debounce_rows());
}

#[test]
fn retry_rules() {
    check_all(retry_rows());
}

#[test]
fn schedule_and_trigger_rules() {
    check_all(schedule_and_trigger_rows());
}
