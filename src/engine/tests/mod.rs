//! Unit tests of the engine's rules, one or two per rule. The scenario table and the
//! property tests against a naive model are in `tests/`.

use super::*;
use crate::cause::Cause;
use crate::flags::HandlerCapabilities as Caps;
use crate::flags::{
    CancelRequest, EventLevel, HandlerPolicies, ItemPolicies, ProgressStatus, SyncControlFlags,
    UpdateReason,
};
use crate::id::ItemId;
use crate::progress::Progress;
use crate::result::{Outcome, RequestResult};

const NONE: SyncControlFlags = SyncControlFlags::NONE;
const JOIN: SyncControlFlags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;

fn h(s: &str) -> HandlerId {
    HandlerId::new(s).unwrap()
}

fn i(s: &str) -> ItemId {
    ItemId::new(s).unwrap()
}

fn ids(list: &[&str]) -> Vec<ItemId> {
    list.iter().map(|s| i(s)).collect()
}

/// An engine with handler `a` (items a1..a4) and handler `b` (items b1, b2).
fn engine() -> Engine {
    let mut e = Engine::default();
    e.register_handler(HandlerSpec::new(h("a")).items(ids(&["a1", "a2", "a3", "a4"])))
        .unwrap();
    e.register_handler(HandlerSpec::new(h("b")).items(ids(&["b1", "b2"])))
        .unwrap();
    e
}

fn actions(e: &mut Engine) -> Vec<Action> {
    let out: Vec<Action> = e.drain_actions().collect();
    e.check_consistency().unwrap();
    out
}

/// The sessions started by these actions, as (session, item names).
fn starts(actions: &[Action]) -> Vec<(SessionId, Vec<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartSession { session, items, .. } => {
                Some((*session, items.iter().map(|i| i.to_string()).collect()))
            }
            _ => None,
        })
        .collect()
}

fn results(actions: &[Action]) -> Vec<RequestResult> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn only_start(e: &mut Engine) -> (SessionId, Vec<String>) {
    let started = starts(&actions(e));
    assert_eq!(started.len(), 1, "expected one session start: {started:?}");
    started.into_iter().next().unwrap()
}

fn succeed(e: &mut Engine, s: SessionId, items: &[&str]) {
    for item in items {
        let _ = e
            .report_progress(
                s,
                &i(item),
                Progress::new(ProgressStatus::Succeeded).text("done"),
            )
            .unwrap();
    }
}

mod merge_keys;
mod requests;
mod sessions;
mod stopping;
mod timing;
