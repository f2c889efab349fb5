//! SPEC section 7: per-request cancel

use super::lang::*;
use super::run::check_all;

fn per_request_cancel_rows() -> Vec<Row> {
    const S: O = O::Succeeded;
    const C: O = O::Canceled;
    const W: Withdrawn = Withdrawn::Withdrawn;
    vec![
        row(
            "cancel_withdraws_only_that_request_and_the_others_keep_going",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                start("r3", "a", &["a2", "a3"]),
                cancel_request("r2"),
                withdraws(W),
                delivers("r2", C, &[("a2", C)]),
                pending("a", &["a2", "a3"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2", "a3"]),
                succeed(2, "a2"),
                succeed(2, "a3"),
                finish(2),
                delivers("r3", S, &[("a2", S), ("a3", S)]),
            ],
        ),
        row(
            "cancel_removes_a_pending_item_nobody_else_waits_for",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2", "a3"]),
                start("r3", "a", &["a3"]),
                cancel_request("r2"),
                withdraws(W),
                delivers("r2", C, &[("a2", C), ("a3", C)]),
                pending("a", &["a3"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a3"]),
            ],
        ),
        row(
            "cancel_sends_cancel_item_for_a_running_item_nobody_else_waits_for",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2"]),
                started(1, "a", &["a1", "a2"]),
                join("r2", "a", &["a2"]),
                accepted("r2", &[("a2", Joined(1))]),
                cancel_request("r1"),
                withdraws(W),
                sends_cancel_item(1, "a1"),
                delivers("r1", C, &[("a1", C), ("a2", C)]),
                can_continue(1, Some("a1"), false),
                can_continue(1, Some("a2"), true),
                succeed(1, "a2"),
                finish(1),
                ends_with(&[("a1", C), ("a2", S)]),
                delivers("r2", S, &[("a2", S)]),
            ],
        ),
        row(
            "a_canceled_request_gets_canceled_only_for_unfinished_items",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                join("r2", "a", &["a1", "a2", "a3"]),
                accepted("r2", &[("a1", Joined(1)), ("a2", Queued), ("a3", Queued)]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                started(2, "a", &["a2", "a3"]),
                succeed(2, "a2"),
                cancel_request("r2"),
                withdraws(W),
                // a1 ended in session 1, a2 reached Succeeded in session 2: both kept.
                sends_cancel_item(2, "a3"),
                delivers("r2", C, &[("a1", S), ("a2", S), ("a3", C)]),
                finish(2),
                ends_with(&[("a2", S), ("a3", C)]),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            "canceling_a_completed_request_changes_nothing",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                cancel_request("r1"),
                withdraws(Withdrawn::AlreadyComplete),
                unchanged(),
                connect("a", false),
                start("r2", "a", &["a1"]),
                delivers("r2", O::Disconnected, &[("a1", O::Disconnected)]),
                cancel_request("r2"),
                withdraws(Withdrawn::AlreadyComplete),
                unchanged(),
            ],
        ),
    ]
}

#[test]
fn per_request_cancel() {
    check_all(per_request_cancel_rows());
}
