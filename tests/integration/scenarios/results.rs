//! SPEC section 7: results (status precedence, error and conflict counts)

use super::lang::*;
use super::run::check_all;

fn results_and_aggregation_rows() -> Vec<Row> {
    use EventLevel::{Error as ERROR, Information, Warning};
    const S: O = O::Succeeded;
    const F: O = O::Failed;
    const C: O = O::Canceled;
    const DISC: O = O::Disconnected;
    vec![
        row(
            "status_all_succeeded_is_succeeded",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                succeed(1, "a1"),
                succeed(1, "a2"),
                // DECISIONS 8: outcomes reach the request when the session ends.
                nothing_else(),
                finish(1),
                delivers("r1", S, &[("a1", S), ("a2", S)]),
            ],
        ),
        row(
            "status_canceled_beats_succeeded",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                succeed(1, "a1"),
                report(1, "a2", PS::Canceled),
                finish(1),
                delivers("r1", C, &[("a1", S), ("a2", C)]),
            ],
        ),
        row(
            "status_disconnected_beats_canceled",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3"]),
                started(1, "a", &["a1", "a2", "a3"]),
                report(1, "a1", PS::Canceled),
                report(1, "a2", PS::Disconnected),
                succeed(1, "a3"),
                finish(1),
                delivers("r1", DISC, &[("a1", C), ("a2", DISC), ("a3", S)]),
            ],
        ),
        row(
            "status_failed_beats_disconnected",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3", "a4"]),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                report(1, "a1", PS::Disconnected),
                report(1, "a2", PS::Failed),
                report(1, "a3", PS::Canceled),
                succeed(1, "a4"),
                finish(1),
                delivers("r1", F, &[("a1", DISC), ("a2", F), ("a3", C), ("a4", S)]),
            ],
        ),
        row(
            // The closing phase of `check` ends session 1 (a1 unreported) and counts results.
            "exactly_one_result_per_accepted_request_whatever_happens",
            vec![
                reg(a()),
                reg(b()),
                reg(c().offline()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                start("r3", "a", &["a3"]),
                start("r4", "b", &["b1"]),
                started(2, "b", &["b1"]),
                start("r5", "b", &["b2"]),
                start("r6", "c", &["c1"]),
                delivers("r6", DISC, &[("c1", DISC)]),
                cancel_request("r2"),
                withdraws(Withdrawn::Withdrawn),
                delivers("r2", C, &[("a2", C)]),
                cancel_request("r2"),
                withdraws(Withdrawn::AlreadyComplete),
                stop_items("a", &["a3"]),
                stops(1, 0),
                delivers("r3", C, &[("a3", C)]),
                remove("b"),
                changes(true, 1),
                delivers("r5", C, &[("b2", C)]),
                report(2, "b1", PS::Succeeded),
                finish(2),
                delivers("r4", S, &[("b1", S)]),
            ],
        ),
        row(
            "errors_and_conflicts_count_for_the_requests_items_or_handler_wide",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                join("r2", "a", &["a2"]),
                // Pending: session 1 does not serve r3.
                start("r3", "a", &["a3"]),
                event(1, Some("a1"), ERROR),   // r1
                event(1, Some("a2"), ERROR),   // r1, r2
                event(1, None, ERROR),         // r1, r2: handler-wide
                event(1, Some("a1"), Warning), // nobody: not an error
                event(1, None, Information),   // nobody
                event(1, Some("a3"), ERROR),   // nobody: a3 is not in session 1
                event(1, Some("zz"), ERROR),
                fails(E_INVALIDARG, unknown_item("a", "zz")),
                unchanged(),
                conflict(1, Some("a2")), // r1, r2
                conflict(1, None),       // r1, r2
                conflict(1, Some("a1")), // r1
                conflict(1, Some("a4")), // nobody
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers_counted("r1", S, &[("a1", S), ("a2", S)], 3, 3),
                delivers_counted("r2", S, &[("a2", S)], 2, 2),
                started(2, "a", &["a3"]),
                event(2, None, ERROR),
                succeed(2, "a3"),
                finish(2),
                delivers_counted("r3", S, &[("a3", S)], 1, 0),
            ],
        ),
        row(
            "errors_add_up_over_every_session_that_served_the_request",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                join("r2", "a", &["a1", "a2"]),
                accepted("r2", &[("a1", Joined(1)), ("a2", Queued)]),
                event(1, None, ERROR),
                conflict(1, Some("a1")),
                succeed(1, "a1"),
                finish(1),
                delivers_counted("r1", S, &[("a1", S)], 1, 1),
                started(2, "a", &["a2"]),
                event(2, None, ERROR),
                event(2, Some("a2"), ERROR),
                succeed(2, "a2"),
                finish(2),
                delivers_counted("r2", S, &[("a1", S), ("a2", S)], 3, 1),
            ],
        ),
        row(
            "a_pulled_item_counts_the_sessions_events_for_its_requests",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                // Before the pull, and still counted for r2: a request shares the result of
                // the whole session that serves it, however late it joined.
                event(1, None, ERROR),
                add_to_session(1, "a2"),
                served(1),
                event(1, None, ERROR),       // r1, r2
                event(1, Some("a2"), ERROR), // r2
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers_counted("r1", S, &[("a1", S)], 2, 0),
                delivers_counted("r2", S, &[("a2", S)], 3, 0),
                nothing_else(),
            ],
        ),
    ]
}

#[test]
fn results_and_aggregation() {
    check_all(results_and_aggregation_rows());
}
