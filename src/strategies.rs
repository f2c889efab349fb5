//! [proptest] strategies for property tests of your own queue semantics (feature `proptest`).
//!
//! Valid IDs with their edge cases ([`handler_id`], [`item_id`], [`id_text`]), flags with only
//! defined bits ([`sync_control_flags`], [`handler_policies`], …), item lists with repeats
//! ([`item_list`]), whole handlers ([`handler_specs`]), and operation sequences over a small
//! universe of handlers ([`ops`]), which [`Driver`] applies to an engine. Every strategy
//! makes only values the crate accepts, so a failure is about your rule, not the input.
//!
//! A property of your own, over random operation sequences: every accepted request gets
//! exactly one result, however starts, finished sessions, cancels, stops, state changes and
//! a shutdown interleave.
//!
//! ```
//! use proptest::prelude::*;
//! use syncmgr::engine::testing::Driver;
//! use syncmgr::engine::{Engine, HandlerSpec};
//! use syncmgr::strategies::ops;
//! use syncmgr::{HandlerCapabilities, HandlerId, ItemId, Outcome};
//!
//! /// Two handlers: one plain, one that runs sessions side by side.
//! fn universe() -> Vec<HandlerSpec> {
//!     let ids = |names: &[&str]| names.iter().map(|n| ItemId::new(n).unwrap()).collect::<Vec<_>>();
//!     vec![
//!         HandlerSpec::new(HandlerId::new("mail").unwrap()).items(ids(&["inbox", "sent"])),
//!         HandlerSpec::new(HandlerId::new("photos").unwrap())
//!             .with_capabilities(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS)
//!             .items(ids(&["2025", "2026", "2027"])),
//!     ]
//! }
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(64))]
//!     // In a test file, put #[test] here.
//!     fn every_accepted_request_gets_exactly_one_result(ops in ops(&universe(), 0..40)) {
//!         let mut driver = Driver::new(Engine::default());
//!         for spec in universe() {
//!             driver.engine_mut().register_handler(spec)?;
//!         }
//!         let mut accepted = Vec::new();
//!         for op in &ops {
//!             // A refused operation (a disabled handler, a stop of nothing, anything after
//!             // the shutdown) changes nothing and is part of the game.
//!             if let Ok(applied) = driver.apply(op) {
//!                 accepted.extend(applied.accepted().iter().map(|a| a.request));
//!             }
//!         }
//!         driver.finish_all(|_, _| Outcome::Succeeded)?;
//!
//!         let mut delivered: Vec<_> = driver.results().iter().map(|r| r.request).collect();
//!         delivered.sort();
//!         accepted.sort();
//!         prop_assert_eq!(delivered, accepted);
//!         prop_assert!(driver.engine().is_idle());
//!     }
//! }
//! # fn main() { every_accepted_request_gets_exactly_one_result(); }
//! ```
//!
//! To draw the universe too, flat-map over [`handler_specs`]:
//! `handler_specs(1..=3).prop_flat_map(|specs| (ops(&specs, 0..40), Just(specs)))`.
//!
//! [proptest]: https://docs.rs/proptest
//! [`Driver`]: crate::engine::testing::Driver

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use proptest::collection::{SizeRange, btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use uuid::Uuid;

use crate::engine::testing::Op;
use crate::engine::{HandlerSpec, ItemSpec};
use crate::flags::{
    ControlFlags, HandlerCapabilities, HandlerPolicies, ItemCapabilities, ItemPolicies,
    SyncControlFlags,
};
use crate::id::{HandlerId, ItemId, MAX_SYNCMGR_ID};
use crate::result::Outcome;

/// What a plain name starts with.
const FIRST: &[char] = &['a', 'b', 'm', 's', 'x', 'A', 'M', 'Z'];
/// What follows in a plain name: case, digits, punctuation, a space.
const REST: &[char] = &[
    'a', 'e', 'n', 'o', 'x', 'I', 'O', '0', '1', '9', '_', '-', '.', ' ',
];
/// One UTF-16 unit each, of one to three UTF-8 bytes; a combining accent, so that `"é"` and
/// `"e\u{301}"` (two IDs: no normalisation) both occur.
const ONE_UNIT: &[char] = &['a', 'Z', '7', '{', 'é', 'ß', 'Ж', '€', '日', 'e', '\u{301}'];
/// Two UTF-16 units (a surrogate pair) and four UTF-8 bytes each.
const TWO_UNITS: &[char] = &['😀', '𝄞', '𠜎'];
/// The longest ID, in UTF-16 units (the SDK's limit counts the terminating NUL).
const LONGEST: usize = MAX_SYNCMGR_ID - 1;

/// Valid ID text: plain ASCII names (mostly), non-ASCII text with characters of one and two
/// UTF-16 units, text exactly 63 UTF-16 units long (the longest an ID may be, of up to 252
/// bytes), and GUIDs in braces, lowercase (a valid ID, but not the one
/// [`ItemId::from_guid`] makes for the same GUID). Every value passes `ItemId::new` and
/// `HandlerId::new`.
pub fn id_text() -> impl Strategy<Value = String> {
    let plain = (select(FIRST), vec(select(REST), 0..12))
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect());
    // 16 characters of at most 2 units each: 32 units, always valid.
    let unicode = vec(
        select(ONE_UNIT)
            .boxed()
            .prop_union(select(TWO_UNITS).boxed()),
        1..=16,
    )
    .prop_map(String::from_iter);
    let longest = (0..=LONGEST / 2).prop_flat_map(|pairs| {
        (
            vec(select(TWO_UNITS), pairs),
            vec(select(ONE_UNIT), LONGEST - 2 * pairs),
        )
            .prop_map(|(wide, narrow)| wide.into_iter().chain(narrow).collect())
    });
    let guid = any::<u128>().prop_map(|n| format!("{{{}}}", Uuid::from_u128(n).hyphenated()));
    prop_oneof![6 => plain, 2 => unicode, 1 => longest, 1 => guid]
}

/// Valid handler IDs: [`id_text`], and now and then a CLSID ([`HandlerId::from_clsid`]).
pub fn handler_id() -> impl Strategy<Value = HandlerId> {
    prop_oneof![
        9 => id_text().prop_filter_map("valid ID text", |t| HandlerId::new(t).ok()),
        1 => any::<u128>().prop_map(|n| HandlerId::from_clsid(Uuid::from_u128(n))),
    ]
}

/// Valid item IDs: [`id_text`], and now and then a GUID ([`ItemId::from_guid`]).
pub fn item_id() -> impl Strategy<Value = ItemId> {
    prop_oneof![
        9 => id_text().prop_filter_map("valid ID text", |t| ItemId::new(t).ok()),
        1 => any::<u128>().prop_map(|n| ItemId::from_guid(Uuid::from_u128(n))),
    ]
}

/// Distinct item IDs, ordered by text: what one handler may own (an ID that repeats in a
/// registration is refused).
pub fn distinct_item_ids(len: impl Into<SizeRange>) -> impl Strategy<Value = Vec<ItemId>> {
    btree_map(item_id(), Just(()), len).prop_map(|ids| ids.into_keys().collect())
}

/// Lists of items drawn from `pool`, so that a small pool gives repeats (which a start call
/// counts once) and lists that overlap from one draw to the next (which merge). Always
/// empty when `pool` is.
pub fn item_list(pool: &[ItemId], len: impl Into<SizeRange>) -> BoxedStrategy<Vec<ItemId>> {
    if pool.is_empty() {
        return Just(Vec::new()).boxed();
    }
    vec(select(pool.to_vec()), len).boxed()
}

/// Flags with only defined bits: none (half the time), one named flag, or any combination.
fn flags<F>() -> BoxedStrategy<F>
where
    F: bitflags::Flags<Bits = u32> + Copy + Debug,
{
    let named: Vec<F> = F::FLAGS.iter().map(|flag| *flag.value()).collect();
    prop_oneof![
        2 => Just(F::empty()),
        1 => select(named),
        1 => any::<u32>().prop_map(F::from_bits_truncate),
    ]
    .boxed()
}

/// Start flags with only defined bits: [`SyncControlFlags::NONE`] or
/// [`SyncControlFlags::IGNORE_IF_ALREADY_SYNCING`].
pub fn sync_control_flags() -> impl Strategy<Value = SyncControlFlags> {
    flags()
}

/// State-change flags with only defined bits.
pub fn control_flags() -> impl Strategy<Value = ControlFlags> {
    flags()
}

/// Handler capabilities with only defined bits, none half the time.
pub fn handler_capabilities() -> impl Strategy<Value = HandlerCapabilities> {
    flags()
}

/// Handler policies with only defined bits, none half the time (the `PREVENT_*` ones refuse
/// calls).
pub fn handler_policies() -> impl Strategy<Value = HandlerPolicies> {
    flags()
}

/// Item capabilities with only defined bits, none half the time.
pub fn item_capabilities() -> impl Strategy<Value = ItemCapabilities> {
    flags()
}

/// Item policies with only defined bits, none half the time.
pub fn item_policies() -> impl Strategy<Value = ItemPolicies> {
    flags()
}

/// An item's outcome: `Succeeded` half the time, `Failed` a quarter, else `Canceled` or
/// `Disconnected`.
pub fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Succeeded),
        2 => Just(Outcome::Failed),
        1 => Just(Outcome::Canceled),
        1 => Just(Outcome::Disconnected),
    ]
}

/// Handlers with distinct IDs (ordered by ID) that an engine registers: up to four distinct
/// items each, capabilities from the strategies above, policies now and then (a `PREVENT_*`
/// policy refuses calls, so seven handlers and items in eight have none), most of them
/// active, enabled and connected, and the default sync policy (no timing).
pub fn handler_specs(len: impl Into<SizeRange>) -> impl Strategy<Value = Vec<HandlerSpec>> {
    let item = (
        item_capabilities(),
        prop_oneof![3 => Just(ItemPolicies::empty()), 1 => item_policies()],
        prop::bool::weighted(0.9),
    );
    let handler = (
        btree_map(item_id(), item, 0..=4),
        handler_capabilities(),
        prop_oneof![3 => Just(HandlerPolicies::empty()), 1 => handler_policies()],
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
    );
    btree_map(handler_id(), handler, len).prop_map(|handlers| {
        handlers
            .into_iter()
            .map(
                |(id, (items, caps, policies, active, enabled, connected))| {
                    let mut spec = HandlerSpec::new(id)
                        .with_capabilities(caps)
                        .with_policies(policies);
                    spec.items = item_specs(items);
                    spec.active = active;
                    spec.enabled = enabled;
                    spec.connected = connected;
                    spec
                },
            )
            .collect()
    })
}

fn item_specs(items: BTreeMap<ItemId, (ItemCapabilities, ItemPolicies, bool)>) -> Vec<ItemSpec> {
    items
        .into_iter()
        .map(|(id, (capabilities, policies, enabled))| ItemSpec {
            id,
            capabilities,
            policies,
            enabled,
        })
        .collect()
}

/// How much time an [`Op::Advance`] lets pass: none, milliseconds, seconds, or hours.
fn time_step() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        2 => (1u64..=1000).prop_map(Duration::from_millis),
        2 => (1u64..=120).prop_map(Duration::from_secs),
        1 => (1u64..=24).prop_map(|h| Duration::from_secs(h * 3600)),
    ]
}

/// One operation over `universe`: every handler and item it names is one of the universe's
/// (starts of several items, which may repeat, finishes with chosen outcomes, stops and
/// state changes of these handlers and items), or it names none (a sync or a stop of
/// everything, a cancel of an open request, time passing, and rarely a shutdown). Starts
/// and finished sessions are the most frequent.
///
/// Operations can still be refused when they run (a disabled handler, a policy, a stop of
/// something not syncing, anything after the shutdown): [`Op::apply`] returns the error and
/// nothing changes. With an empty universe only the operations that name no handler come.
pub fn op(universe: &[HandlerSpec]) -> BoxedStrategy<Op> {
    let mut arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            4,
            sync_control_flags()
                .prop_map(|flags| Op::StartAll { flags })
                .boxed(),
        ),
        (6, (0usize..8).prop_map(|nth| Op::Cancel { nth }).boxed()),
        (2, Just(Op::StopAll).boxed()),
        (6, time_step().prop_map(|by| Op::Advance { by }).boxed()),
        (1, Just(Op::Shutdown).boxed()),
    ];
    for (weight, make) in HANDLER_OPS {
        // One strategy per handler that has what the operation needs, each as likely.
        let options: Vec<BoxedStrategy<Op>> = universe
            .iter()
            .filter_map(|spec| {
                let items: Vec<ItemId> = spec.items.iter().map(|i| i.id.clone()).collect();
                make(spec.id.clone(), items)
            })
            .collect();
        if !options.is_empty() {
            arms.push((weight, Union::new(options).boxed()));
        }
    }
    Union::new_weighted(arms).boxed()
}

/// The operations on one handler, with their weights in [`op`].
const HANDLER_OPS: [(u32, ForHandler); 9] = [
    (28, start_items),
    (12, start_handler),
    (32, finish),
    (4, stop_handler),
    (4, stop_items),
    (6, set_active),
    (6, set_enabled),
    (6, set_item_enabled),
    (4, set_connected),
];

/// One kind of operation on a handler with these items; `None` if it needs items and the
/// handler has none.
type ForHandler = fn(HandlerId, Vec<ItemId>) -> Option<BoxedStrategy<Op>>;

fn start_items(handler: HandlerId, items: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    let s = (item_list(&items, 1..=4), sync_control_flags());
    let op = move |(items, flags)| Op::StartItems {
        handler: handler.clone(),
        items,
        flags,
    };
    (!items.is_empty()).then(|| s.prop_map(op).boxed())
}

fn start_handler(handler: HandlerId, _: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    let op = move |flags| Op::StartHandler {
        handler: handler.clone(),
        flags,
    };
    Some(sync_control_flags().prop_map(op).boxed())
}

fn finish(handler: HandlerId, items: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    let outcomes = if items.is_empty() {
        Just(Vec::new()).boxed()
    } else {
        vec((select(items), outcome()), 0..=2).boxed()
    };
    let op = move |outcomes| Op::Finish {
        handler: handler.clone(),
        outcomes,
    };
    Some(outcomes.prop_map(op).boxed())
}

fn stop_handler(handler: HandlerId, _: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    Some(Just(Op::StopHandler { handler }).boxed())
}

fn stop_items(handler: HandlerId, items: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    let s = item_list(&items, 1..=3);
    let op = move |items| Op::StopItems {
        handler: handler.clone(),
        items,
    };
    (!items.is_empty()).then(|| s.prop_map(op).boxed())
}

/// Mostly `true`, so that what is switched off comes back.
fn switch() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.7)
}

fn set_active(handler: HandlerId, _: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    let op = move |active| Op::SetActive {
        handler: handler.clone(),
        active,
    };
    Some(switch().prop_map(op).boxed())
}

fn set_enabled(handler: HandlerId, _: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    let op = move |enabled| Op::SetEnabled {
        handler: handler.clone(),
        enabled,
    };
    Some(switch().prop_map(op).boxed())
}

fn set_item_enabled(handler: HandlerId, items: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    if items.is_empty() {
        return None;
    }
    let op = move |(item, enabled)| Op::SetItemEnabled {
        handler: handler.clone(),
        item,
        enabled,
    };
    Some((select(items), switch()).prop_map(op).boxed())
}

fn set_connected(handler: HandlerId, _: Vec<ItemId>) -> Option<BoxedStrategy<Op>> {
    let op = move |connected| Op::SetConnected {
        handler: handler.clone(),
        connected,
    };
    Some(switch().prop_map(op).boxed())
}

/// Sequences of [`op`]s over `universe`, of `len` operations.
pub fn ops(universe: &[HandlerSpec], len: impl Into<SizeRange>) -> BoxedStrategy<Vec<Op>> {
    vec(op(universe), len).boxed()
}
