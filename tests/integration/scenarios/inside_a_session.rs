//! SPEC section 6: inside a session (the engine's side of it)

use super::lang::*;
use super::run::check_all;

fn inside_a_session_rows() -> Vec<Row> {
    const S: O = O::Succeeded;
    const F: O = O::Failed;
    const C: O = O::Canceled;
    const NO_CANCEL: CancelRequest = CancelRequest::None;
    vec![
        row(
            "terminal_rule_only_failed_is_accepted_after_a_terminal_report",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3", "a4"]),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                report(1, "a1", PS::Updating),
                acks(NO_CANCEL, false),
                report(1, "a1", PS::UpdatingIndeterminate),
                acks(NO_CANCEL, false),
                succeed(1, "a1"),
                acks(NO_CANCEL, true),
                report(1, "a1", PS::Updating),
                fails(E_ACCESSDENIED, terminal("a1", S, PS::Updating)),
                report(1, "a2", PS::Canceled),
                report(1, "a2", PS::Failed),
                acks(NO_CANCEL, true),
                report(1, "a3", PS::Disconnected),
                report(1, "a3", PS::Succeeded),
                fails(
                    E_ACCESSDENIED,
                    terminal("a3", O::Disconnected, PS::Succeeded),
                ),
                report(1, "a4", PS::Failed),
                report(1, "a4", PS::Canceled),
                fails(E_ACCESSDENIED, terminal("a4", F, PS::Canceled)),
                finish(1),
                // The refused reports marked a1 and a3 Failed.
                ends_with(&[("a1", F), ("a2", F), ("a3", F), ("a4", F)]),
                delivers("r1", F, &[("a1", F), ("a2", F), ("a3", F), ("a4", F)]),
            ],
        ),
        row(
            "unreported_items_end_failed_and_canceled_ones_canceled",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3"]),
                started(1, "a", &["a1", "a2", "a3"]),
                report(1, "a1", PS::Updating),
                stop_items("a", &["a2"]),
                stops(0, 1),
                sends_cancel_item(1, "a2"),
                succeed(1, "a3"),
                finish(1),
                ends_with(&[("a1", F), ("a2", C), ("a3", S)]),
                delivers("r1", F, &[("a1", F), ("a2", C), ("a3", S)]),
            ],
        ),
        row(
            "a_failed_or_panicked_session_settles_its_items_by_the_same_rule",
            vec![
                reg(a()),
                start("r1", "a", &["a1", "a2", "a3"]),
                started(1, "a", &["a1", "a2", "a3"]),
                succeed(1, "a1"),
                stop_items("a", &["a3"]),
                stops(0, 1),
                sends_cancel_item(1, "a3"),
                finish_failed(1),
                ends_with(&[("a1", S), ("a2", F), ("a3", C)]),
                delivers("r1", F, &[("a1", S), ("a2", F), ("a3", C)]),
                // The engine keeps working.
                start("r2", "a", &["a2"]),
                started(2, "a", &["a2"]),
            ],
        ),
        row(
            "progress_text_over_the_limit_is_e_invalidarg_and_changes_nothing",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                report_text(1, "a1", PS::Succeeded, 260),
                fails(
                    E_INVALIDARG,
                    Error::TextTooLong {
                        kind: TextKind::Progress,
                        units: 261,
                        max: 260,
                    },
                ),
                unchanged(),
                report_text(1, "a1", PS::Succeeded, 259),
                acks(NO_CANCEL, true),
            ],
        ),
        row(
            "progress_for_an_item_not_in_the_session_is_e_invalidarg",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                start("r2", "a", &["a2"]),
                report(1, "a2", PS::Succeeded),
                fails(E_INVALIDARG, Error::ItemNotInSession(iid("a2"))),
                unchanged(),
                report(1, "zz", PS::Succeeded),
                fails(E_INVALIDARG, Error::ItemNotInSession(iid("zz"))),
                unchanged(),
            ],
        ),
        row(
            "proposed_items_join_the_handler_and_the_session_once_committed",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                propose(1, "new"),
                propose(1, "new"),
                fails(E_INVALIDARG, item_exists("a", "new")),
                unchanged(),
                propose(1, "a2"),
                fails(E_INVALIDARG, item_exists("a", "a2")),
                unchanged(),
                commit(1, "other"),
                fails(E_INVALIDARG, Error::ItemNotProposed(iid("other"))),
                unchanged(),
                // Not an item of the handler until committed.
                start("r2", "a", &["new"]),
                fails(E_INVALIDARG, unknown_item("a", "new")),
                unchanged(),
                commit(1, "new"),
                succeed(1, "new"),
                succeed(1, "a1"),
                finish(1),
                ends_with(&[("a1", S), ("new", S)]),
                delivers("r1", S, &[("a1", S)]),
                start("r3", "a", &["new"]),
                started(2, "a", &["new"]),
            ],
        ),
        row(
            "a_session_that_ended_refuses_session_calls_with_e_unexpected",
            vec![
                reg(a()),
                start("r1", "a", &["a1"]),
                started(1, "a", &["a1"]),
                succeed(1, "a1"),
                finish(1),
                delivers("r1", S, &[("a1", S)]),
                succeed(1, "a1"),
                fails_no_session(1),
                unchanged(),
                event(1, None, EventLevel::Error),
                fails_no_session(1),
                add_to_session(1, "a2"),
                fails_no_session(1),
                finish(1),
                fails_no_session(1),
                unchanged(),
            ],
        ),
    ]
}

fn item_exists(h: &str, item: &str) -> Error {
    Error::ItemExists {
        handler: hid(h),
        item: iid(item),
    }
}

#[test]
fn inside_a_session() {
    check_all(inside_a_session_rows());
}
