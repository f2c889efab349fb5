//! `HandlerId` and `ItemId` from arbitrary text (SPEC section 2): every constructor (`new`,
//! `FromStr`, `TryFrom<&str>`, `TryFrom<String>`) accepts a text iff it is non-empty, has no
//! NUL and is at most 63 UTF-16 units, judged here by an independent restatement of the rules;
//! a refusal names the first rule broken and carries the input; an accepted ID round-trips
//! through `as_str`, `Display` and parsing; equality, ordering and hashing follow the text;
//! `to_guid` is `Some` exactly for a braced hyphenated GUID; `from_guid`/`from_clsid` give the
//! braced uppercase form, a valid ID, and round-trip. Nothing may panic.

#![no_main]

use std::hash::{BuildHasher, RandomState};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use syncmgr::{HandlerId, IdError, IdKind, IdRule, ItemId, MAX_SYNCMGR_ID, hresult};
use uuid::Uuid;

/// How a text is made: mostly raw input, plus a shape that reaches the length limit with
/// characters of one to four UTF-8 bytes and one or two UTF-16 units.
#[derive(Arbitrary, Debug)]
enum Text {
    /// Raw bytes; invalid UTF-8 becomes U+FFFD (the API takes `&str`).
    Bytes(Vec<u8>),
    /// A run of one character, then a tail.
    Repeat { unit: char, count: u8, tail: String },
    /// A GUID's braced text, in either case, maybe altered at one byte.
    Guid {
        value: u128,
        lower: bool,
        poke: Option<(u8, u8)>,
    },
}

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Text::Repeat { unit, count, tail } => {
                let mut s = unit.to_string().repeat(usize::from(*count));
                s.push_str(tail);
                s
            }
            Text::Guid { value, lower, poke } => {
                let mut bytes = braced_upper(*value).into_bytes();
                if *lower {
                    bytes.make_ascii_lowercase();
                }
                if let Some((at, byte)) = poke {
                    let at = usize::from(*at) % bytes.len();
                    bytes[at] = *byte;
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    a: Text,
    b: Text,
    guid: u128,
}

/// The rules of SPEC section 2, restated: the first one broken, in `IdRule`'s order.
fn expected_rule(text: &str) -> Option<IdRule> {
    if text.is_empty() {
        return Some(IdRule::Empty);
    }
    // A NUL byte in UTF-8 is only ever the NUL character; the offset is in bytes.
    if let Some(at) = text.find('\0') {
        return Some(IdRule::ContainsNul { at });
    }
    let units = text.chars().map(char::len_utf16).sum::<usize>() + 1;
    if units > 64 {
        return Some(IdRule::TooLong { units, max: 64 });
    }
    None
}

/// `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`, uppercase, written out from the `u128`.
fn braced_upper(v: u128) -> String {
    format!(
        "{{{:08X}-{:04X}-{:04X}-{:04X}-{:012X}}}",
        v >> 96,
        (v >> 80) & 0xFFFF,
        (v >> 64) & 0xFFFF,
        (v >> 48) & 0xFFFF,
        v & 0xFFFF_FFFF_FFFF
    )
}

/// The GUID a text spells in the braced hyphenated form (hex digits in either case), if it
/// spells one; parsed here by hand, not with `uuid`.
fn expected_guid(text: &str) -> Option<Uuid> {
    let bytes = text.as_bytes();
    if bytes.len() != 38 || bytes[0] != b'{' || bytes[37] != b'}' {
        return None;
    }
    let mut value: u128 = 0;
    for (n, &b) in bytes[1..37].iter().enumerate() {
        if matches!(n, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let digit = (b as char).to_digit(16)?;
        value = (value << 4) | u128::from(digit);
    }
    Some(Uuid::from_u128(value))
}

fn check_error(err: &IdError, kind: IdKind, text: &str, rule: IdRule) {
    assert_eq!(err.kind(), kind, "{text:?}");
    assert_eq!(err.input(), text);
    assert_eq!(err.rule(), rule, "{text:?}");
    let message = err.to_string();
    let prefix = match kind {
        IdKind::Handler => "invalid handler ID ",
        _ => "invalid item ID ",
    };
    assert!(message.starts_with(prefix), "{message}");
    assert!(message.ends_with(&rule.to_string()), "{message}");
    // The input is quoted cut short: a huge input never gives a huge message.
    assert!(message.len() <= 2048, "{} bytes", message.len());
    let error = syncmgr::Error::from(err.clone());
    assert_eq!(error.hresult(), hresult::E_INVALIDARG);
    let _ = format!("{error} {error:?}");
}

/// Every constructor of one ID type agrees with the rules, and what it makes round-trips.
macro_rules! check_type {
    ($ty:ident, $kind:expr, $text:expr, $rule:expr) => {{
        let text: &str = $text;
        let rule: Option<IdRule> = $rule;
        let made = [
            $ty::new(text),
            $ty::new(text.to_owned()),
            text.parse::<$ty>(),
            $ty::try_from(text),
            $ty::try_from(text.to_owned()),
        ];
        match rule {
            None => {
                let ids: Vec<$ty> = made
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|e| panic!("{text:?} refused: {e}")))
                    .collect();
                let hasher = RandomState::new();
                for id in &ids {
                    assert_eq!(id.as_str(), text);
                    assert_eq!(AsRef::<str>::as_ref(id), text);
                    assert_eq!(id.to_string(), text);
                    assert_eq!(
                        format!("{id:?}"),
                        format!("{}({:?})", stringify!($ty), text)
                    );
                    // Width and alignment go through `pad`: count in chars.
                    let padded = format!("{id:>70}");
                    assert_eq!(padded.chars().count(), text.chars().count().max(70));
                    assert_eq!(*id, ids[0]);
                    assert_eq!(hasher.hash_one(id), hasher.hash_one(&ids[0]));
                    assert_eq!(id.clone(), *id);
                    assert_eq!(id.to_string().parse::<$ty>().as_ref(), Ok(id));
                    assert_eq!(id.to_guid(), expected_guid(text), "{text:?}");
                }
                Some(ids.into_iter().next().unwrap())
            }
            Some(rule) => {
                for r in made {
                    check_error(&r.unwrap_err(), $kind, text, rule);
                }
                let back = $ty::try_from(text.to_owned()).unwrap_err().into_input();
                assert_eq!(back, text);
                None
            }
        }
    }};
}

fn check_text(text: &str) -> (Option<HandlerId>, Option<ItemId>) {
    let rule = expected_rule(text);
    let h = check_type!(HandlerId, IdKind::Handler, text, rule);
    let i = check_type!(ItemId, IdKind::Item, text, rule);
    (h, i)
}

fn check_guid(value: u128) {
    let guid = Uuid::from_u128(value);
    let text = braced_upper(value);
    let h = HandlerId::from_clsid(guid);
    let i = ItemId::from_guid(guid);
    assert_eq!(h.as_str(), text);
    assert_eq!(i.as_str(), text);
    // 38 units plus the NUL: within MAX_SYNCMGR_ID.
    assert!(text.encode_utf16().count() < MAX_SYNCMGR_ID);
    assert_eq!(text.len(), 38);
    assert_eq!(h.to_guid(), Some(guid));
    assert_eq!(i.to_guid(), Some(guid));
    assert_eq!(HandlerId::new(&text).unwrap(), h);
    assert_eq!(ItemId::new(&text).unwrap(), i);
    // The same GUID in lowercase parses back to it, but is another ID unless no digit is a
    // letter (IDs compare exactly).
    let lower = ItemId::new(text.to_ascii_lowercase()).unwrap();
    assert_eq!(lower.to_guid(), Some(guid));
    assert_eq!(lower == i, text == text.to_ascii_lowercase());
}

fn check_pair<T: Ord + std::fmt::Debug>(a: &T, b: &T, ta: &str, tb: &str) {
    // Equality is exact text equality; ordering is by text.
    assert_eq!(a == b, ta == tb, "{a:?} {b:?}");
    assert_eq!(a.cmp(b), ta.cmp(tb), "{a:?} {b:?}");
}

fuzz_target!(|input: Input| {
    let ta = input.a.render();
    let tb = input.b.render();
    let (ha, ia) = check_text(&ta);
    let (hb, ib) = check_text(&tb);
    if let (Some(ha), Some(hb)) = (&ha, &hb) {
        check_pair(ha, hb, &ta, &tb);
        if ha == hb {
            let hasher = RandomState::new();
            assert_eq!(hasher.hash_one(ha), hasher.hash_one(hb));
        }
    }
    if let (Some(ia), Some(ib)) = (&ia, &ib) {
        check_pair(ia, ib, &ta, &tb);
    }
    check_guid(input.guid);
});
