//! Where the engine and SPEC disagree: rows kept with the SPEC-correct expectation

use super::lang::*;
use super::run::check_all;

/// SPEC section 7 (and DECISIONS 13): `update_handler` re-reads capabilities, and running
/// sessions finish normally. Dropping `SUPPORTS_CONCURRENT_SESSIONS` while two sessions run
/// is legal: both sessions finish normally and no new one starts until the handler is under
/// its new limit of one. (Regression: the engine's self-check once called this state broken.)
#[test]
fn update_handler_dropping_concurrency_lets_running_sessions_finish() {
    const S: O = O::Succeeded;
    check_all(vec![row(
        "update_handler_dropping_concurrency_lets_running_sessions_finish",
        vec![
            reg(k()),
            start("r1", "k", &["k1"]),
            started(1, "k", &["k1"]),
            start("r2", "k", &["k2"]),
            started(2, "k", &["k2"]),
            start("r3", "k", &["k3"]),
            update_capabilities("k", HandlerCapabilities::empty()),
            changes(true, 0),
            nothing_else(),
            succeed(1, "k1"),
            finish(1),
            delivers("r1", S, &[("k1", S)]),
            // One session still runs: the new limit of one is reached.
            nothing_else(),
            succeed(2, "k2"),
            finish(2),
            delivers("r2", S, &[("k2", S)]),
            started(3, "k", &["k3"]),
        ],
    )]);
}

/// SPEC section 5: "handlers waiting for a slot get it in the order their oldest pending
/// request arrived". After b's oldest request is withdrawn, b's oldest pending request is r4,
/// younger than c's r3, so c goes first. (Regression: the engine once ranked b by the
/// withdrawn request that created its pending entry.)
#[test]
fn fairness_ranks_by_requests_still_pending() {
    const S: O = O::Succeeded;
    const C: O = O::Canceled;
    check_all(vec![row(
        "fairness_ranks_handlers_by_their_oldest_request_still_pending",
        vec![
            limits(1),
            reg(a()),
            reg(b()),
            reg(c()),
            start("r1", "a", &["a1"]),
            started(1, "a", &["a1"]),
            start("r2", "b", &["b1"]),
            start("r3", "c", &["c1"]),
            start("r4", "b", &["b1"]),
            cancel_request("r2"),
            withdraws(Withdrawn::Withdrawn),
            delivers("r2", C, &[("b1", C)]),
            succeed(1, "a1"),
            finish(1),
            delivers("r1", S, &[("a1", S)]),
            started(2, "c", &["c1"]),
        ],
    )]);
}
