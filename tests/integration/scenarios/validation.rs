//! SPEC section 4: starting a sync (the validation table)

use super::lang::*;
use super::run::check_all;

/// 64 UTF-16 units: one more than an ID may hold.
const LONG_ID: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn bad_item_text(text: &str) -> Error {
    Error::InvalidId(ItemId::new(text).unwrap_err())
}

fn bad_handler_text(text: &str) -> Error {
    Error::InvalidId(HandlerId::new(text).unwrap_err())
}

fn unknown_flags(bits: u32, unknown: u32) -> Error {
    Error::UnknownFlags {
        type_name: "SyncControlFlags",
        bits,
        unknown,
    }
}

fn validation_table_rows() -> Vec<Row> {
    use HandlerPolicies as HP;
    use ItemPolicies as IP;
    const S: O = O::Succeeded;
    const DISC: O = O::Disconnected;
    vec![
        row(
            "unknown_handler_is_class_e_classnotavailable",
            vec![
                reg(a()),
                start("r1", "nobody", &["a1"]),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("nobody")),
                unchanged(),
                sync_handler("r2", "nobody"),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("nobody")),
                unchanged(),
            ],
        ),
        row(
            "invalid_id_text_is_e_invalidarg",
            vec![
                reg(a()),
                start("r1", "a", &[""]),
                fails(E_INVALIDARG, bad_item_text("")),
                unchanged(),
                start("r2", "a", &["a1", "a\0"]),
                fails(E_INVALIDARG, bad_item_text("a\0")),
                unchanged(),
                start("r3", "a", &[LONG_ID]),
                fails(E_INVALIDARG, bad_item_text(LONG_ID)),
                unchanged(),
                sync_handler("r4", ""),
                fails(E_INVALIDARG, bad_handler_text("")),
                unchanged(),
                sync_handler("r5", LONG_ID),
                fails(E_INVALIDARG, bad_handler_text(LONG_ID)),
                unchanged(),
            ],
        ),
        row(
            "empty_item_list_is_e_invalidarg",
            vec![
                reg(a()),
                start("r1", "a", &[]),
                fails(E_INVALIDARG, Error::EmptyItemList),
                unchanged(),
            ],
        ),
        row(
            "unknown_flag_bits_are_e_invalidarg",
            vec![
                reg(a()),
                start_raw("r1", "a", &["a1"], 0x2),
                fails(E_INVALIDARG, unknown_flags(0x2, 0x2)),
                unchanged(),
                start_raw("r2", "a", &["a1"], 0x8000_0001),
                fails(E_INVALIDARG, unknown_flags(0x8000_0001, 0x8000_0000)),
                unchanged(),
                // Typed flags can carry unknown bits too: the engine refuses them itself.
                start_retained("r3", "a", &["a1"], 0x3),
                fails(E_INVALIDARG, unknown_flags(0x3, 0x2)),
                unchanged(),
            ],
        ),
        row(
            "item_the_handler_does_not_own_is_e_invalidarg_naming_the_item",
            vec![
                reg(a()),
                reg(b()),
                start("r1", "a", &["a1", "b1", "a2"]),
                fails(E_INVALIDARG, unknown_item("a", "b1")),
                unchanged(),
                remove_item("a", "a2"),
                changes(true, 0),
                start("r2", "a", &["a2"]),
                fails(E_INVALIDARG, unknown_item("a", "a2")),
                unchanged(),
            ],
        ),
        row(
            "the_same_item_twice_is_accepted_and_counted_once",
            vec![
                reg(a()),
                start("r1", "a", &["a2", "a1", "a2"]),
                accepted_with_repeats("r1", &[("a2", Queued), ("a1", Queued)], 1),
                started(1, "a", &["a2", "a1"]),
                succeed(1, "a1"),
                succeed(1, "a2"),
                finish(1),
                delivers("r1", S, &[("a2", S), ("a1", S)]),
            ],
        ),
        row(
            "handler_prevent_start_sync_is_e_accessdenied",
            vec![
                reg(a().policy(HP::PREVENT_START_SYNC)),
                start("r1", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_START_SYNC)),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_START_SYNC)),
                unchanged(),
            ],
        ),
        row(
            "item_prevent_start_sync_is_e_accessdenied",
            vec![
                reg(a().item_policy("a2", IP::PREVENT_START_SYNC)),
                start("r1", "a", &["a1", "a2"]),
                fails(E_ACCESSDENIED, denied_by_item("a2", IP::PREVENT_START_SYNC)),
                unchanged(),
                // DECISIONS 2: the handler sync leaves the protected item out.
                sync_handler("r2", "a"),
                accepted("r2", &[("a1", Queued), ("a3", Queued), ("a4", Queued)]),
                started(1, "a", &["a1", "a3", "a4"]),
            ],
        ),
        row(
            "inactive_handler_is_e_accessdenied_handler_inactive",
            vec![
                reg(a().inactive()),
                start("r1", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerInactive)),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_ACCESSDENIED, denied(Denied::HandlerInactive)),
                unchanged(),
            ],
        ),
        row(
            "disabled_handler_is_e_accessdenied_handler_disabled",
            vec![
                reg(a().disabled()),
                start("r1", "a", &["a1"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerDisabled)),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_ACCESSDENIED, denied(Denied::HandlerDisabled)),
                unchanged(),
            ],
        ),
        row(
            "disabled_named_item_is_e_accessdenied_item_disabled",
            vec![
                reg(a().item_off("a3")),
                start("r1", "a", &["a1", "a3"]),
                fails(E_ACCESSDENIED, denied(Denied::ItemDisabled(iid("a3")))),
                unchanged(),
            ],
        ),
        row(
            "handler_sync_leaves_disabled_items_out",
            vec![
                reg(a().item_off("a2")),
                sync_handler("r1", "a"),
                accepted("r1", &[("a1", Queued), ("a3", Queued), ("a4", Queued)]),
                started(1, "a", &["a1", "a3", "a4"]),
                succeed(1, "a1"),
                succeed(1, "a3"),
                succeed(1, "a4"),
                finish(1),
                delivers("r1", S, &[("a1", S), ("a3", S), ("a4", S)]),
            ],
        ),
        row(
            "disconnected_handler_is_accepted_and_completes_at_once_disconnected",
            vec![
                reg(a().offline()),
                start("r1", "a", &["a2", "a1", "a2"]),
                accepted_with_repeats("r1", &[("a2", Settled(DISC)), ("a1", Settled(DISC))], 1),
                delivers("r1", DISC, &[("a2", DISC), ("a1", DISC)]),
                nothing_else(),
                idle(),
                sync_handler("r2", "a"),
                delivers(
                    "r2",
                    DISC,
                    &[("a1", DISC), ("a2", DISC), ("a3", DISC), ("a4", DISC)],
                ),
                // DECISIONS 3: Disconnected even with zero items.
                reg(handler("e", &["e1"]).item_off("e1").offline()),
                sync_handler("r3", "e"),
                delivers("r3", DISC, &[]),
                connect("a", true),
                changes(true, 0),
                start("r4", "a", &["a1"]),
                started(1, "a", &["a1"]),
            ],
        ),
        row(
            "shut_down_is_e_unexpected",
            vec![
                reg(a()),
                shutdown(),
                stops(0, 0),
                start("r1", "a", &["a1"]),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                sync_handler("r2", "a"),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
                sync_all(&[]),
                fails(E_UNEXPECTED, Error::ShutDown),
                unchanged(),
            ],
        ),
        row(
            "handler_with_no_enabled_items_succeeds_at_once_with_zero_items",
            vec![
                reg(handler("e", &["e1", "e2"]).item_off("e1").item_off("e2")),
                reg(handler("none", &[])),
                sync_handler("r1", "e"),
                accepted("r1", &[]),
                delivers("r1", S, &[]),
                sync_handler("r2", "none"),
                delivers("r2", S, &[]),
                nothing_else(),
                idle(),
            ],
        ),
        row(
            // DECISIONS 1 (and the engine docs, which add the flags check): shut down >
            // unknown handler > unknown flag bits > empty list > handler policy > inactive >
            // disabled > each named item in input order.
            "validation_order_first_failure_wins",
            vec![
                reg(a().policy(HP::PREVENT_START_SYNC).inactive().disabled()),
                reg(handler("i", &["i1"]).inactive().disabled()),
                reg(handler("d", &["d1"]).disabled()),
                reg(handler("n", &["n1", "n2", "n3"])
                    .item_policy("n2", IP::PREVENT_START_SYNC)
                    .item_off("n3")),
                start_retained("r1", "nobody", &[], 0x2),
                fails(CLASS_E_CLASSNOTAVAILABLE, unknown_handler("nobody")),
                start_retained("r1b", "a", &[], 0x2),
                fails(E_INVALIDARG, unknown_flags(0x2, 0x2)),
                start("r2", "a", &[]),
                fails(E_INVALIDARG, Error::EmptyItemList),
                start("r3", "a", &["zz"]),
                fails(E_ACCESSDENIED, denied_by_handler(HP::PREVENT_START_SYNC)),
                start("r4", "i", &["zz"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerInactive)),
                start("r5", "d", &["zz"]),
                fails(E_ACCESSDENIED, denied(Denied::HandlerDisabled)),
                start("r6", "n", &["n3", "zz", "n2"]),
                fails(E_ACCESSDENIED, denied(Denied::ItemDisabled(iid("n3")))),
                start("r7", "n", &["n1", "zz", "n3"]),
                fails(E_INVALIDARG, unknown_item("n", "zz")),
                start("r8", "n", &["n2", "n3"]),
                fails(E_ACCESSDENIED, denied_by_item("n2", IP::PREVENT_START_SYNC)),
                unchanged(),
                shutdown(),
                stops(0, 0),
                start("r9", "nobody", &[]),
                fails(E_UNEXPECTED, Error::ShutDown),
            ],
        ),
        row(
            "start_sync_all_makes_one_request_per_active_enabled_handler",
            vec![
                reg(a()),
                reg(b().offline()),
                reg(c().disabled()),
                reg(handler("e", &["e1"]).item_off("e1")),
                reg(handler("p", &["p1"]).policy(HP::PREVENT_START_SYNC)),
                sync_all(&["ra", "rb"]),
                accepted(
                    "ra",
                    &[
                        ("a1", Queued),
                        ("a2", Queued),
                        ("a3", Queued),
                        ("a4", Queued),
                    ],
                ),
                started(1, "a", &["a1", "a2", "a3", "a4"]),
                delivers("rb", DISC, &[("b1", DISC), ("b2", DISC)]),
            ],
        ),
    ]
}

#[test]
fn validation_table() {
    check_all(validation_table_rows());
}

/// Invalid ID text and unknown flag bits never reach the engine: the constructors refuse them
/// with `E_INVALIDARG` (the rows above go through the same constructors).
#[test]
fn id_and_flag_constructors_refuse_bad_input_with_e_invalidarg() {
    let too_long_but_few_bytes = "é".repeat(64);
    for text in ["", "a\0b", LONG_ID, too_long_but_few_bytes.as_str()] {
        let item = ItemId::new(text).unwrap_err();
        assert_eq!(item.input(), text);
        assert_eq!(Error::from(item).hresult(), E_INVALIDARG, "{text:?}");
        let handler = HandlerId::new(text).unwrap_err();
        assert_eq!(Error::from(handler).hresult(), E_INVALIDARG, "{text:?}");
    }
    assert!(ItemId::new("é".repeat(63)).is_ok());
    for bits in [0x2, 0x3, 0x10, 0x8000_0000] {
        let err = SyncControlFlags::from_raw(bits).unwrap_err();
        assert_eq!(err, unknown_flags(bits, bits & !0x1));
        assert_eq!(err.hresult(), E_INVALIDARG);
    }
    assert_eq!(
        SyncControlFlags::from_raw(JOIN),
        Ok(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING)
    );
}
