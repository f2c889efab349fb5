//! The `serde` feature: every serializable type reads back equal through serde_json, the wire
//! shapes a user reads are pinned, and input the crate would refuse from its constructors
//! (bad IDs, unknown flag bits, unknown names) is refused with a message that says why.
//!
//! `cargo test --features serde --test integration serde`

#![cfg(feature = "serde")]

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use syncmgr::engine::{Disposition, Engine, EngineConfig, HandlerSpec};
use syncmgr::legacy::{
    InvokeFlags, ItemState, LegacyHandlerFlags, LegacyItemFlags, LogLevel, SyncEvent, SyncMgrFlag,
    SyncMgrStatus,
};
use syncmgr::{Outcome as O, ProgressStatus as PS, *};
use uuid::Uuid;

// ----- helpers -------------------------------------------------------------------------------

/// Writes `value` as JSON, reads it back, checks it is equal, and gives the JSON.
#[track_caller]
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(&back, value, "{json}");
    json
}

/// The message of reading `json` as a `T`, which must fail.
#[track_caller]
fn refused<T: DeserializeOwned + Debug>(json: &str) -> String {
    match serde_json::from_str::<T>(json) {
        Ok(value) => panic!("{json} was read as {value:?}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_refused<T: DeserializeOwned + Debug>(json: &str, needle: &str) {
    let message = refused::<T>(json);
    assert!(
        message.contains(needle),
        "{json}: {message:?} lacks {needle:?}"
    );
}

fn item(text: &str) -> ItemId {
    ItemId::new(text).unwrap()
}

fn handler(text: &str) -> HandlerId {
    HandlerId::new(text).unwrap()
}

/// IDs the engine issues, read from their numbers (the only way to make one outside it).
fn request(n: u64) -> RequestId {
    serde_json::from_str(&n.to_string()).unwrap()
}

fn session(n: u64) -> SessionId {
    serde_json::from_str(&n.to_string()).unwrap()
}

/// A deserializer of one `u32` for a binary (not human-readable) format, where bitflags reads
/// the raw bits.
struct Compact(u32);

impl<'de> serde::Deserializer<'de> for Compact {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_u32(self.0)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

// ----- IDs -----------------------------------------------------------------------------------

#[test]
fn ids_are_their_text() {
    assert_eq!(round_trip(&item("inbox")), r#""inbox""#);
    assert_eq!(round_trip(&handler("mail")), r#""mail""#);
    round_trip(&item(&"é".repeat(63))); // 126 bytes, 63 units: fits
    round_trip(&item(&format!("{}a", "😀".repeat(31))));
    round_trip(&HandlerId::from_clsid(Uuid::from_u128(
        0x6295DF27_35EE_11D1_8707_00C04FD93327,
    )));
}

#[test]
fn ids_are_checked_as_new_checks_them() {
    // 64 UTF-16 units: one too many with the NUL, whatever the bytes.
    let long = serde_json::to_string(&"x".repeat(64)).unwrap();
    assert_refused::<ItemId>(&long, "65 UTF-16 units with its NUL; the limit is 64");
    let emoji = serde_json::to_string(&"😀".repeat(32)).unwrap();
    assert_refused::<HandlerId>(&emoji, "65 UTF-16 units");
    assert_refused::<ItemId>(r#""""#, r#"invalid item ID "": it is empty"#);
    assert_refused::<HandlerId>(r#""""#, r#"invalid handler ID "": it is empty"#);
    assert_refused::<ItemId>(r#""a\u0000b""#, "it contains a NUL at byte 1");
    assert_refused::<ItemId>("7", "the text of a ItemId");
    assert_refused::<Vec<ItemId>>(r#"["ok", ""]"#, "it is empty");
}

#[test]
fn request_and_session_ids_are_numbers() {
    assert_eq!(request(7).get(), 7);
    assert_eq!(round_trip(&request(7)), "7");
    assert_eq!(round_trip(&session(u64::MAX)), u64::MAX.to_string());
    assert_refused::<RequestId>(r#""7""#, "invalid type");
    assert_refused::<SessionId>("-1", "invalid value");
}

// ----- flags ---------------------------------------------------------------------------------

#[test]
fn flags_are_their_names() {
    assert_eq!(
        round_trip(&SyncControlFlags::IGNORE_IF_ALREADY_SYNCING),
        r#""IGNORE_IF_ALREADY_SYNCING""#
    );
    assert_eq!(
        round_trip(&(ControlFlags::WAIT | ControlFlags::NOUI)),
        r#""WAIT | NOUI""#
    );
    assert_eq!(round_trip(&ControlFlags::NOWAIT), r#""""#);
    // A multi-bit name reads back; it is written flag by flag.
    let background: HandlerPolicies = serde_json::from_str(r#""BACKGROUND_SYNC_ONLY""#).unwrap();
    assert_eq!(background, HandlerPolicies::BACKGROUND_SYNC_ONLY);
    assert_eq!(
        round_trip(&background),
        r#""PREVENT_START_SYNC | PREVENT_STOP_SYNC""#
    );
    // Raw bits in hex, as bitflags' text allows.
    let hex: ItemPolicies = serde_json::from_str(r#""0x10001""#).unwrap();
    assert_eq!(
        hex,
        ItemPolicies::PREVENT_ENABLE | ItemPolicies::HIDDEN_BY_DEFAULT
    );
}

/// Every bit of every flags type, alone and all together.
#[test]
fn every_flag_of_every_type_round_trips() {
    fn each<F>(mask: u32, from_raw: fn(u32) -> Result<F, Error>)
    where
        F: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        round_trip(&from_raw(mask).unwrap());
        round_trip(&from_raw(0).unwrap());
        for bit in (0..32).map(|s| 1u32 << s).filter(|b| mask & b != 0) {
            round_trip(&from_raw(bit).unwrap());
        }
    }
    each(SyncControlFlags::VALID_MASK, SyncControlFlags::from_raw);
    each(ControlFlags::VALID_MASK, ControlFlags::from_raw);
    each(
        HandlerCapabilities::VALID_MASK,
        HandlerCapabilities::from_raw,
    );
    each(HandlerPolicies::VALID_MASK, HandlerPolicies::from_raw);
    each(ItemCapabilities::VALID_MASK, ItemCapabilities::from_raw);
    each(ItemPolicies::VALID_MASK, ItemPolicies::from_raw);
    each(InvokeFlags::VALID_MASK, InvokeFlags::from_raw);
    each(LegacyItemFlags::VALID_MASK, LegacyItemFlags::from_raw);
    each(LegacyHandlerFlags::VALID_MASK, LegacyHandlerFlags::from_raw);
    each(SyncMgrFlag::VALID_MASK, SyncMgrFlag::from_raw);
}

#[test]
fn unknown_flag_bits_are_refused_as_from_raw_refuses_them() {
    assert_refused::<SyncControlFlags>(r#""0x2""#, "SyncControlFlags: unknown bits 0x2 in 0x2");
    assert_refused::<ControlFlags>(r#""WAIT | 0x4""#, "ControlFlags: unknown bits 0x4 in 0x5");
    assert_refused::<LegacyItemFlags>(r#""0x40""#, "unknown bits 0x40");
    assert_refused::<SyncMgrFlag>(r#""INVOKE | 0x400""#, "SyncMgrFlag: unknown bits 0x400");
    // An unknown name, or a name of another type.
    assert_refused::<ControlFlags>(
        r#""WAIT | SOON""#,
        "ControlFlags: `SOON` is not one of its flags",
    );
    assert_refused::<ControlFlags>(r#""WAIT |""#, "ControlFlags: an empty part");
    assert_refused::<ControlFlags>(r#""0x1ffffffff""#, "not a 32-bit hex number");
    assert_refused::<ControlFlags>(
        r#""IGNORE_IF_ALREADY_SYNCING""#,
        "IGNORE_IF_ALREADY_SYNCING",
    );
    // JSON is human-readable: flags are text, not numbers.
    assert_refused::<ControlFlags>("1", "invalid type");

    // A value that carries unknown bits is written with them, and cannot be read back.
    let retained = ControlFlags::from_bits_retain(0x9);
    let json = serde_json::to_string(&retained).unwrap();
    assert_eq!(json, r#""WAIT | 0x8""#);
    assert_refused::<ControlFlags>(&json, "unknown bits 0x8 in 0x9");
}

#[test]
fn binary_formats_read_raw_bits_through_the_same_check() {
    use serde::Deserialize;
    let ok = ControlFlags::deserialize(Compact(0x3)).unwrap();
    assert_eq!(ok, ControlFlags::WAIT | ControlFlags::NOUI);
    let err = ControlFlags::deserialize(Compact(0x7)).unwrap_err();
    assert_eq!(err.to_string(), "ControlFlags: unknown bits 0x4 in 0x7");
    let err = SyncMgrFlag::deserialize(Compact(0x1000)).unwrap_err();
    assert!(err.to_string().contains("unknown bits 0x1000"), "{err}");
}

#[test]
fn sync_mgr_flag_writes_its_event_code_by_name() {
    let invoke = SyncMgrFlag::from_event(SyncEvent::Invoke) | SyncMgrFlag::MAYBOTHERUSER;
    assert_eq!(round_trip(&invoke), r#""INVOKE | MAYBOTHERUSER""#);
    assert_eq!(round_trip(&SyncMgrFlag::MANUAL), r#""MANUAL""#);
    assert_eq!(round_trip(&SyncMgrFlag::SETTINGS), r#""SETTINGS""#);
    assert_eq!(round_trip(&SyncMgrFlag::from_raw(0).unwrap()), r#""""#);
    // An undefined code is kept in hex (it is within the event byte, so it is valid).
    let odd = SyncMgrFlag::from_raw(0x107).unwrap();
    assert_eq!(round_trip(&odd), r#""0x7 | SETTINGS""#);
    // bitflags' spelling of a code reads as the same value.
    let split: SyncMgrFlag = serde_json::from_str(r#""CONNECT | IDLE""#).unwrap();
    assert_eq!(split.event(), SyncEvent::Invoke);
    for code in 0..=0xFFu32 {
        round_trip(&SyncMgrFlag::from_raw(code | 0x300).unwrap());
    }
}

// ----- enums ---------------------------------------------------------------------------------

#[test]
fn enums_are_their_variant_names() {
    assert_eq!(
        round_trip(&PS::UpdatingIndeterminate),
        r#""UpdatingIndeterminate""#
    );
    for v in [1, 2, 3, 4, 5, 6] {
        round_trip(&PS::from_raw(v).unwrap());
    }
    for v in [0, 1, 2] {
        round_trip(&CancelRequest::from_raw(v).unwrap());
        round_trip(&UpdateReason::from_raw(v).unwrap());
        round_trip(&ItemState::from_raw(v.min(1)).unwrap());
    }
    for v in [1, 2, 3] {
        round_trip(&EventLevel::from_raw(v).unwrap());
        round_trip(&LogLevel::from_raw(v).unwrap());
    }
    for v in 0..=5 {
        round_trip(&HandlerType::from_raw(v).unwrap());
    }
    for v in 1..=6 {
        round_trip(&SyncEvent::from_raw(v).unwrap());
    }
    for v in [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x100] {
        round_trip(&SyncMgrStatus::from_raw(v).unwrap());
    }
    assert_eq!(round_trip(&O::Disconnected), r#""Disconnected""#);
    round_trip(&Trigger::PendingDisconnect);
    round_trip(&TriggerReason::Scheduled);
}

#[test]
fn unknown_enum_names_are_refused() {
    assert_refused::<PS>(r#""Paused""#, "unknown variant `Paused`, expected one of");
    assert_refused::<PS>(r#""updating""#, "unknown variant `updating`"); // names are exact
    assert_refused::<PS>("3", "expected value"); // names, not raw SDK numbers
    assert_refused::<O>(r#""Skipped""#, "unknown variant `Skipped`");
    assert_refused::<SyncMgrStatus>(r#""Gone""#, "unknown variant");
    assert_refused::<TriggerReason>(r#""Boot""#, "unknown variant");
}

// ----- causes and results --------------------------------------------------------------------

#[test]
fn a_cause_is_its_chain_of_messages() {
    let cause = Cause::new("could not fetch").with_source(Cause::new("timed out"));
    assert_eq!(round_trip(&cause), r#"["could not fetch","timed out"]"#);
    let back: Cause = serde_json::from_str(r#"["could not fetch","timed out"]"#).unwrap();
    assert_eq!(back.chain().count(), 2);
    assert_eq!(format!("{back:#}"), "could not fetch: timed out");

    let io = std::io::Error::other("disk full");
    round_trip(&Cause::from_error(&io));
    // The longest chain the crate keeps reads back; a longer one never came from it.
    let longest: Vec<String> = (0..Cause::MAX_CHAIN).map(|n| n.to_string()).collect();
    let json = serde_json::to_string(&longest).unwrap();
    let cause: Cause = serde_json::from_str(&json).unwrap();
    assert_eq!(cause.chain().count(), Cause::MAX_CHAIN);
    round_trip(&cause);

    let too_long: Vec<String> = (0..=Cause::MAX_CHAIN).map(|n| n.to_string()).collect();
    assert_refused::<Cause>(
        &serde_json::to_string(&too_long).unwrap(),
        "invalid length 17",
    );
    assert_refused::<Cause>(
        "[]",
        "invalid length 0, expected a list of 1 to 16 messages",
    );
    assert_refused::<Cause>(r#""one message""#, "invalid type");
}

fn sample_result() -> RequestResult {
    let mut sent = ItemOutcome::new(item("sent"), O::Failed, 3);
    sent.cause = Some(Cause::new("timed out").with_source(Cause::new("no route")));
    RequestResult {
        request: request(4),
        handler: handler("mail"),
        status: O::Failed,
        errors: 1,
        conflicts: 2,
        items: vec![ItemOutcome::new(item("inbox"), O::Succeeded, 1), sent],
    }
}

#[test]
fn results_round_trip_with_their_causes() {
    let result = sample_result();
    let json = round_trip(&result);
    assert_eq!(
        json,
        concat!(
            r#"{"request":4,"handler":"mail","status":"Failed","errors":1,"conflicts":2,"items":["#,
            r#"{"item":"inbox","outcome":"Succeeded","attempts":1,"cause":null},"#,
            r#"{"item":"sent","outcome":"Failed","attempts":3,"cause":["timed out","no route"]}]}"#
        )
    );
    // The IDs inside are checked too.
    let bad = json.replace(r#""sent""#, r#""""#);
    assert_refused::<RequestResult>(&bad, "invalid item ID");
    assert_refused::<RequestResult>(&json.replace(r#""Failed""#, r#""Lost""#), "unknown variant");
}

#[test]
fn progress_time_dispositions_and_state_changes_round_trip() {
    let progress = Progress::new(PS::Updating).text("12 of 24").steps(12, 24);
    assert_eq!(
        round_trip(&progress),
        r#"{"status":"Updating","text":"12 of 24","step":12,"max":24}"#
    );
    assert_eq!(
        round_trip(&Time::from_millis(1500)),
        r#"{"secs":1,"nanos":500000000}"#
    );
    round_trip(&Time::MAX);
    round_trip(&Time::ZERO);
    assert_refused::<Time>(
        r#"{"secs":18446744073709551615,"nanos":1000000000}"#,
        "overflow",
    );

    assert_eq!(round_trip(&Disposition::Queued), r#""Queued""#);
    round_trip(&Disposition::Merged);
    assert_eq!(
        round_trip(&Disposition::Joined(session(3))),
        r#"{"Joined":3}"#
    );
    assert_eq!(
        round_trip(&Disposition::Settled(O::Disconnected)),
        r#"{"Settled":"Disconnected"}"#
    );
    use syncmgr::StateChange as S;
    for change in [
        S::Activate,
        S::Deactivate,
        S::Enable,
        S::Disable,
        S::EnableItem(item("inbox")),
        S::DisableItem(item("inbox")),
    ] {
        round_trip(&change);
    }
    assert_refused::<S>(r#"{"EnableItem":""}"#, "it is empty");
}

// ----- policies ------------------------------------------------------------------------------

#[test]
fn policies_round_trip_and_are_validated_where_used() {
    let policy = SyncPolicy::default()
        .debounce(Duration::from_secs(2), Duration::from_secs(30))
        .retry(
            Retry::exponential(5, Duration::from_millis(1500), Duration::from_secs(3600))
                .with_jitter(0.25),
        )
        .every_with_flex(Duration::from_secs(900), Duration::from_secs(60))
        .on(Trigger::Connect)
        .on(Trigger::Idle);
    let json = round_trip(&policy);
    assert!(
        json.starts_with(r#"{"debounce":{"quiet":{"secs":2,"nanos":0},"#),
        "{json}"
    );
    assert!(
        json.ends_with(r#""triggers":["Connect","Idle"]}"#),
        "{json}"
    );
    round_trip(&SyncPolicy::default());

    // Missing fields take the default's.
    let partial: SyncPolicy = serde_json::from_str(r#"{"triggers":["Connect"]}"#).unwrap();
    assert_eq!(partial, SyncPolicy::default().on(Trigger::Connect));
    assert_eq!(
        serde_json::from_str::<SyncPolicy>("{}").unwrap(),
        SyncPolicy::default()
    );

    // A policy out of range reads, and is refused where it is used.
    let bad: SyncPolicy = serde_json::from_str(
        r#"{"debounce":{"quiet":{"secs":5,"nanos":0},"max_wait":{"secs":1,"nanos":0}}}"#,
    )
    .unwrap();
    let mut engine = Engine::default();
    let registered = engine.register_handler(HandlerSpec::new(handler("h")).with_sync_policy(bad));
    assert!(matches!(
        registered,
        Err(Error::InvalidPolicy {
            field: "debounce.max_wait",
            ..
        })
    ));
    assert_refused::<SyncPolicy>(r#"{"triggers":["Reboot"]}"#, "unknown variant");
}

// ----- events and notifications -------------------------------------------------------------

fn sample_event() -> HandlerEvent {
    HandlerEvent {
        id: Uuid::from_u128(0x1234),
        handler: handler("mail"),
        session: Some(session(2)),
        time: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5),
        report: EventReport::new(EventLevel::Warning, "slow")
            .item(item("inbox"))
            .description("the server took 30 s")
            .link("details", "https://example.com/x")
            .context("ctx"),
    }
}

#[test]
fn events_round_trip() {
    let json = round_trip(&sample_event());
    assert!(
        json.contains(r#""id":"00000000-0000-0000-0000-000000001234""#),
        "{json}"
    );
    assert!(
        json.contains(r#""time":{"secs_since_epoch":1700000000,"nanos_since_epoch":5}"#),
        "{json}"
    );
    round_trip(&EventReport::new(EventLevel::Information, ""));
}

/// One of every error variant, with texts the crate really produces.
fn every_error() -> Vec<Error> {
    let inbox = item("inbox");
    let mut errors = vec![
        Error::InvalidId(ItemId::new("").unwrap_err()),
        Error::InvalidId(HandlerId::new("x".repeat(70)).unwrap_err()),
        Error::UnknownHandler(handler("mail")),
        Error::HandlerExists(handler("mail")),
        Error::UnknownItem {
            handler: handler("mail"),
            item: inbox.clone(),
        },
        Error::ItemExists {
            handler: handler("mail"),
            item: inbox.clone(),
        },
        Error::EmptyItemList,
        Error::AccessDenied(Denied::HandlerPolicy(HandlerPolicies::PREVENT_START_SYNC)),
        Error::AccessDenied(Denied::ItemPolicy {
            item: inbox.clone(),
            policy: ItemPolicies::PREVENT_DISABLE,
        }),
        Error::AccessDenied(Denied::HandlerInactive),
        Error::AccessDenied(Denied::HandlerDisabled),
        Error::AccessDenied(Denied::ItemDisabled(inbox.clone())),
        Error::AccessDenied(Denied::Refused),
        Error::AccessDenied(Denied::TerminalState {
            item: inbox.clone(),
            reached: O::Succeeded,
            reported: PS::Updating,
        }),
        Error::ShutDown,
        Error::UnknownSession(session(9)),
        Error::ItemNotInSession(inbox.clone()),
        Error::ItemAlreadyInSession(inbox.clone()),
        Error::ItemNotPending(inbox.clone()),
        Error::ItemNotProposed(inbox),
        Error::UnknownRequest(request(8)),
        Error::TextTooLong {
            kind: TextKind::Progress,
            units: 261,
            max: 260,
        },
        Error::HandlerFailed(Cause::new("hook failed").with_source(Cause::new("io"))),
        Error::Spawn("no threads left".into()),
    ];

    // Every flags type's and enum's refusal names its type.
    errors.extend(
        [
            SyncControlFlags::from_raw(u32::MAX).map(drop),
            ControlFlags::from_raw(u32::MAX).map(drop),
            HandlerCapabilities::from_raw(u32::MAX).map(drop),
            HandlerPolicies::from_raw(u32::MAX).map(drop),
            ItemCapabilities::from_raw(u32::MAX).map(drop),
            ItemPolicies::from_raw(u32::MAX).map(drop),
            InvokeFlags::from_raw(u32::MAX).map(drop),
            SyncMgrFlag::from_raw(u32::MAX).map(drop),
            LegacyItemFlags::from_raw(u32::MAX).map(drop),
            LegacyHandlerFlags::from_raw(u32::MAX).map(drop),
            PS::from_raw(u32::MAX).map(drop),
            CancelRequest::from_raw(u32::MAX).map(drop),
            EventLevel::from_raw(u32::MAX).map(drop),
            HandlerType::from_raw(u32::MAX).map(drop),
            UpdateReason::from_raw(u32::MAX).map(drop),
            SyncEvent::from_raw(u32::MAX).map(drop),
            SyncMgrStatus::from_raw(u32::MAX).map(drop),
            LogLevel::from_raw(u32::MAX).map(drop),
            ItemState::from_raw(u32::MAX).map(drop),
        ]
        .into_iter()
        .map(Result::unwrap_err),
    );

    // Every configuration refusal.
    let zero_sessions = EngineConfig {
        max_sessions: 0,
        ..EngineConfig::default()
    };
    let zero_concurrent = EngineConfig {
        default_concurrent_sessions: 0,
        ..EngineConfig::default()
    };
    errors.push(Engine::new(zero_sessions).unwrap_err());
    errors.push(Engine::new(zero_concurrent).unwrap_err());
    let mut spec = HandlerSpec::new(handler("h"));
    spec.max_concurrent_sessions = Some(0);
    errors.push(Engine::default().register_handler(spec).unwrap_err());
    for builder in [
        SyncManager::builder().worker_threads(0),
        SyncManager::builder().worker_threads(5000),
        SyncManager::builder().notification_capacity(0),
    ] {
        match builder.build() {
            Err(refused) => errors.push(refused),
            Ok(_) => panic!("a builder out of range built a manager"),
        }
    }

    // Every policy refusal.
    let s = Duration::from_secs;
    let p = SyncPolicy::default;
    let r = Retry::exponential(3, s(1), s(10));
    for bad in [
        p().debounce(Duration::MAX, Duration::MAX),
        p().debounce(s(1), Duration::MAX),
        p().debounce(s(2), s(1)),
        p().retry(Retry {
            max_attempts: 0,
            ..r
        }),
        p().retry(r.with_factor(0.5)),
        p().retry(r.with_jitter(2.0)),
        p().retry(Retry {
            initial: Duration::MAX,
            ..r
        }),
        p().retry(Retry {
            max: Duration::MAX,
            ..r
        }),
        p().every(Duration::ZERO),
        p().every(Duration::MAX),
        p().every_with_flex(s(10), s(11)),
    ] {
        errors.push(bad.validate().unwrap_err());
    }
    errors
}

#[test]
fn every_error_round_trips() {
    let errors = every_error();
    for error in &errors {
        round_trip(error);
    }
    let json = |i: usize| serde_json::to_string(&errors[i]).unwrap();
    assert_eq!(
        json(0),
        r#"{"InvalidId":{"kind":"Item","input":"","rule":"Empty"}}"#
    );
    assert_eq!(json(6), r#""EmptyItemList""#);
    assert_eq!(
        serde_json::to_string(&Error::InvalidPolicy {
            field: "retry.factor",
            rule: "a finite number, at least 1"
        })
        .unwrap(),
        r#"{"InvalidPolicy":{"field":"retry.factor","rule":"a finite number, at least 1"}}"#
    );
    assert_eq!(
        serde_json::to_string(&Error::UnknownFlags {
            type_name: "SyncControlFlags",
            bits: 3,
            unknown: 2
        })
        .unwrap(),
        r#"{"UnknownFlags":{"type_name":"SyncControlFlags","bits":3,"unknown":2}}"#
    );
}

#[test]
fn errors_the_crate_never_makes_are_refused() {
    assert_refused::<Error>(
        r#"{"UnknownFlags":{"type_name":"Nope","bits":3,"unknown":2}}"#,
        r#"flags type "Nope" is not one this version of syncmgr produces"#,
    );
    // An enum's name is not a flags type's.
    assert_refused::<Error>(
        r#"{"UnknownFlags":{"type_name":"ProgressStatus","bits":3,"unknown":2}}"#,
        "flags type",
    );
    assert_refused::<Error>(r#"{"InvalidConfig":"too big"}"#, "configuration message");
    assert_refused::<Error>(
        r#"{"InvalidPolicy":{"field":"retry.factor","rule":"be nice"}}"#,
        "policy rule",
    );
    // An ID error must be one `new` would give.
    assert_refused::<Error>(
        r#"{"InvalidId":{"kind":"Item","input":"inbox","rule":"Empty"}}"#,
        r#"input "inbox" is a valid ID"#,
    );
    assert_refused::<IdError>(
        r#"{"kind":"Item","input":"","rule":{"ContainsNul":{"at":0}}}"#,
        "breaks Empty",
    );
    assert_refused::<Error>(r#""Exploded""#, "unknown variant `Exploded`");
    assert_refused::<Error>(r#"{"UnknownHandler":""}"#, "it is empty");
    assert_refused::<Error>(
        r#"{"AccessDenied":{"HandlerPolicy":"0x40000000"}}"#,
        "HandlerPolicies: unknown bits",
    );
}

fn every_notification() -> Vec<Notification> {
    use syncmgr::HandlerChange as C;
    let mail = handler("mail");
    let inbox = item("inbox");
    let mut notes = vec![
        Notification::RequestAccepted {
            request: request(1),
            handler: mail.clone(),
            reason: TriggerReason::Manual,
            items: vec![
                (inbox.clone(), Disposition::Queued),
                (item("sent"), Disposition::Joined(session(1))),
            ],
        },
        Notification::SessionStarted {
            session: session(1),
            handler: mail.clone(),
            items: vec![inbox.clone()],
        },
        Notification::ItemProgress {
            session: session(1),
            handler: mail.clone(),
            item: inbox.clone(),
            progress: Progress::new(PS::Updating).steps(1, 2),
        },
        Notification::ItemAdded {
            session: session(1),
            item: inbox.clone(),
            requests: 2,
        },
        Notification::ManualSync {
            session: session(1),
            handler: mail.clone(),
        },
        Notification::HandlerProgress {
            session: session(1),
            text: "halfway".into(),
        },
        Notification::CancelRequested {
            session: session(1),
            request: CancelRequest::CancelItem,
            item: Some(inbox.clone()),
        },
        Notification::EventReported(sample_event()),
        Notification::SessionEnded {
            session: session(1),
            handler: mail.clone(),
            outcomes: vec![(inbox.clone(), O::Failed)],
            retried: vec![inbox.clone()],
            error: Some(Cause::new("gone")),
        },
        Notification::RequestCompleted(sample_result()),
        Notification::CallbackPanicked {
            request: request(1),
            message: "oops".into(),
        },
        Notification::Debounced {
            handler: mail.clone(),
            until: Time::from_secs(3),
        },
        Notification::RetryScheduled {
            handler: mail.clone(),
            item: inbox.clone(),
            attempt: 1,
            max_attempts: 3,
            at: Time::from_secs(30),
        },
        Notification::RequestIssued {
            request: request(2),
            handler: mail.clone(),
            reason: TriggerReason::Connect,
        },
        Notification::TickSkipped {
            handler: mail.clone(),
            open: request(2),
        },
        Notification::Lagged { missed: 12 },
    ];
    for change in [
        C::Registered,
        C::Removed,
        C::State(StateChange::DisableItem(inbox.clone())),
        C::Updated,
        C::ItemUpdated(inbox.clone(), UpdateReason::Changed),
        C::EventsUpdated(None),
        C::ConflictsUpdated(Some(inbox.clone())),
    ] {
        notes.push(Notification::HandlerChanged {
            handler: mail.clone(),
            change,
        });
    }
    for error in every_error() {
        notes.push(Notification::StateChangeFailed {
            handler: mail.clone(),
            error,
        });
    }
    notes
}

#[test]
fn every_notification_round_trips() {
    let notes = every_notification();
    for note in &notes {
        round_trip(note);
    }
    assert_eq!(
        serde_json::to_string(&Notification::Lagged { missed: 12 }).unwrap(),
        r#"{"Lagged":{"missed":12}}"#
    );
    assert_eq!(
        serde_json::to_string(&Notification::HandlerChanged {
            handler: handler("mail"),
            change: HandlerChange::ItemUpdated(item("inbox"), UpdateReason::Added),
        })
        .unwrap(),
        r#"{"HandlerChanged":{"handler":"mail","change":{"ItemUpdated":["inbox","Added"]}}}"#
    );
    assert_refused::<Notification>(r#"{"Lagged":{"missed":-1}}"#, "invalid value");
    assert_refused::<Notification>(r#"{"Exploded":{}}"#, "unknown variant `Exploded`");
}

/// What a real manager publishes, serialized as it comes, reads back equal.
#[test]
fn a_real_managers_notifications_round_trip() {
    struct Mail;

    impl SyncHandler for Mail {
        fn items(&self) -> Vec<SyncItem> {
            vec![
                SyncItem::new("inbox", "Inbox").unwrap(),
                SyncItem::new("sent", "Sent").unwrap(),
            ]
        }

        fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
            for item in items {
                let progress = Progress::new(PS::Updating).text("fetching").steps(1, 2);
                session.report_progress(item, progress)?;
            }
            let slow = EventReport::new(EventLevel::Error, "slow").item(items[0].clone());
            session.report_event(slow)?;
            session.report_progress(&items[0], PS::Succeeded)?;
            Err(Box::new(std::io::Error::other("the server went away")))
        }
    }

    let manager = SyncManager::new().unwrap();
    let notes = manager.subscribe();
    manager
        .register_handler("mail", Mail, ControlFlags::WAIT)
        .unwrap();
    let ticket = manager
        .start_handler_sync("mail", SyncControlFlags::NONE, None)
        .unwrap();
    let result = ticket.wait();
    assert_eq!(result.status, O::Failed);
    assert_eq!(
        result
            .cause_of(&item("sent"))
            .map(Cause::to_string)
            .as_deref(),
        Some("the server went away")
    );
    round_trip(&result);
    manager.shutdown();

    let seen: Vec<Notification> = notes.try_iter().collect();
    assert!(seen.len() >= 6, "{seen:?}");
    for note in &seen {
        round_trip(note);
    }
    assert!(
        seen.iter()
            .any(|n| matches!(n, Notification::EventReported(_)))
    );
}
