//! Handler and item identifiers, the engine's request and session numbers, and the SDK's
//! text limits.
//!
//! [`HandlerId`] and [`ItemId`] are validated, immutable strings that are cheap to clone
//! (one reference-count increment) and cheap to hash (a `u64` computed once, when the ID is
//! made). Item dedup hashes and compares IDs millions of times, so both costs are paid up front.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use uuid::Uuid;

/// `MAX_SYNCMGR_ID` (64): the longest handler or item ID, in UTF-16 code units counting the
/// terminating NUL, so an ID holds at most 63 units of text.
pub const MAX_SYNCMGR_ID: usize = 64;

/// `MAX_SYNCMGR_NAME` (128): the longest display name, in UTF-16 code units counting the
/// terminating NUL.
pub const MAX_SYNCMGR_NAME: usize = 128;

/// `MAX_SYNCMGR_PROGRESSTEXT` (260): the longest progress or status text, in UTF-16 code
/// units counting the terminating NUL.
pub const MAX_SYNCMGR_PROGRESSTEXT: usize = 260;

/// `MAX_SYNCMGRHANDLERNAME` (32): the longest legacy (mobsync) handler name, in UTF-16 code
/// units counting the terminating NUL.
pub const MAX_SYNCMGRHANDLERNAME: usize = 32;

/// `MAX_SYNCMGRITEMNAME` (128): the longest legacy (mobsync) item name, in UTF-16 code units
/// counting the terminating NUL.
pub const MAX_SYNCMGRITEMNAME: usize = 128;

mod error;
pub(crate) use error::check;
pub use error::{IdError, IdKind, IdRule};

/// The shared representation of both ID types: the text and its hash, computed once.
#[derive(Clone)]
struct IdRepr {
    hash: u64,
    text: Arc<str>,
}

impl IdRepr {
    /// Wraps text that has already passed [`check`].
    fn new_unchecked(text: Arc<str>) -> Self {
        // One random key per process: hashes stay stable for the process's life (so they can be
        // stored) yet cannot be predicted by whoever chooses the ID text (HashDoS).
        static KEY: OnceLock<RandomState> = OnceLock::new();
        let hash = KEY.get_or_init(RandomState::new).hash_one(&*text);
        IdRepr { hash, text }
    }
}

impl PartialEq for IdRepr {
    fn eq(&self, other: &Self) -> bool {
        // Different hashes settle most comparisons; clones of one ID share their text.
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for IdRepr {}

impl PartialOrd for IdRepr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IdRepr {
    // By text, never by hash, so that ordering does not change from one process to the next.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

/// Defines one validated ID type over [`IdRepr`]; both ID types share this definition.
macro_rules! define_id {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, kind $kind:expr;
        $(#[$guid_meta:meta])*
        fn $from_guid:ident;
    ) => {
        $(#[$meta])*
        ///
        /// # Rules
        ///
        /// The text is not empty, holds no NUL character and is at most 63 UTF-16 code units
        /// long ([`MAX_SYNCMGR_ID`] counts the terminating NUL). Length is counted in UTF-16
        /// units as on Windows, not in bytes: `"é"` is 2 bytes but 1 unit, `"😀"` is 4 bytes
        /// but 2 units. A text that breaks a rule gives an [`IdError`] naming the rule.
        ///
        /// # Equality
        ///
        /// IDs compare exactly, code unit by code unit: case-sensitive and without Unicode
        /// normalisation, so `"Mail"` and `"mail"` are two IDs. Ordering is by text.
        ///
        /// # Cost
        ///
        /// Cloning copies a pointer and bumps a reference count; hashing feeds one `u64`
        /// computed when the ID was made (with a per-process random key). For that reason the
        /// type does not implement `Borrow<str>`: a `&str` would hash differently. To look an
        /// ID up, make one.
        ///
        /// # Serialization
        ///
        /// With the `serde` feature an ID is written as its text, and reading one checks the
        /// rules above: a text that breaks one is refused with the [`IdError`]'s message, so
        /// no deserialized ID is one `new` would have refused.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name(IdRepr);

        impl $name {
            #[doc = concat!("Makes a `", stringify!($name), "` from `text`, checking the rules.")]
            ///
            /// # Errors
            ///
            /// [`IdError`] naming the input and the first rule it breaks.
            pub fn new(text: impl AsRef<str>) -> Result<Self, IdError> {
                let text = text.as_ref();
                match check(text) {
                    Ok(()) => Ok(Self(IdRepr::new_unchecked(Arc::from(text)))),
                    Err(rule) => Err(IdError {
                        kind: $kind,
                        input: text.to_owned(),
                        rule,
                    }),
                }
            }

            /// The ID's text.
            pub fn as_str(&self) -> &str {
                &self.0.text
            }

            $(#[$guid_meta])*
            ///
            /// The text is the braced, uppercase form
            /// (`{6295DF27-35EE-11D1-8707-00C04FD93327}`): 38 units, always a valid ID.
            pub fn $from_guid(guid: Uuid) -> Self {
                let mut buf = Uuid::encode_buffer();
                let text: &str = guid.braced().encode_upper(&mut buf);
                debug_assert!(check(text).is_ok());
                Self(IdRepr::new_unchecked(Arc::from(text)))
            }

            /// Parses the ID back into a GUID if its text is exactly a braced GUID
            /// (`{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`, hex digits in either case);
            /// otherwise `None`. Other GUID spellings (no braces, no hyphens, `urn:uuid:`)
            /// are plain text IDs and give `None`.
            pub fn to_guid(&self) -> Option<Uuid> {
                let inner = self.as_str().strip_prefix('{')?.strip_suffix('}')?;
                // 36 bytes selects the hyphenated form in `Uuid::try_parse`.
                if inner.len() != 36 {
                    return None;
                }
                Uuid::try_parse(inner).ok()
            }

            /// The precomputed hash of the text: the one value `Hash` feeds to the hasher.
            pub(crate) fn hash_value(&self) -> u64 {
                self.0.hash
            }
        }

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                state.write_u64(self.hash_value());
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.as_str()).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, not `write_str`, so that width and alignment work: `{:<12}`.
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            /// Like [`new`](Self::new), but a rejected `String` moves into the error
            /// uncopied. (An accepted one is copied once: `Arc<str>` cannot adopt a
            /// `String`'s buffer.)
            fn try_from(s: String) -> Result<Self, IdError> {
                match check(&s) {
                    Ok(()) => Ok(Self(IdRepr::new_unchecked(Arc::from(s)))),
                    Err(rule) => Err(IdError {
                        kind: $kind,
                        input: s,
                        rule,
                    }),
                }
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        /// Written as its text.
        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        /// Read from its text, checked by the same rules as [`new`](Self::new): a text that
        /// breaks one is a deserialization error that names the rule.
        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;

                impl serde::de::Visitor<'_> for Text {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("the text of a ", stringify!($name)))
                    }

                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        $name::new(text).map_err(E::custom)
                    }

                    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<$name, E> {
                        $name::try_from(text).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(Text)
            }
        }
    };
}

define_id! {
    /// Names a registered sync handler.
    ///
    /// A legacy (mobsync) handler is known by its CLSID; [`HandlerId::from_clsid`] gives the ID
    /// it lives under in the manager.
    ///
    /// ```
    /// use syncmgr::HandlerId;
    ///
    /// let mail: HandlerId = "mail".parse()?;
    /// assert_eq!(mail.as_str(), "mail");
    /// assert_ne!(mail, HandlerId::new("Mail")?); // case-sensitive
    /// assert!(HandlerId::new("").is_err());
    /// # Ok::<(), syncmgr::IdError>(())
    /// ```
    pub struct HandlerId, kind IdKind::Handler;
    /// The ID of a legacy handler with this CLSID.
    ///
    /// ```
    /// use syncmgr::HandlerId;
    /// use uuid::Uuid;
    ///
    /// let clsid = Uuid::parse_str("6295df27-35ee-11d1-8707-00c04fd93327")?;
    /// let id = HandlerId::from_clsid(clsid);
    /// assert_eq!(id.as_str(), "{6295DF27-35EE-11D1-8707-00C04FD93327}");
    /// assert_eq!(id.to_guid(), Some(clsid));
    /// # Ok::<(), uuid::Error>(())
    /// ```
    fn from_clsid;
}

define_id! {
    /// Names an item within its handler (two handlers may both have an item `"inbox"`).
    ///
    /// A legacy (mobsync) item is known by its `SYNCMGRITEMID` GUID; [`ItemId::from_guid`]
    /// gives the ID it lives under in the manager.
    ///
    /// ```
    /// use syncmgr::{IdRule, ItemId};
    ///
    /// assert!(ItemId::new("é".repeat(63)).is_ok()); // 126 bytes, 63 units
    /// let err = ItemId::new("x".repeat(64)).unwrap_err();
    /// assert_eq!(err.rule(), IdRule::TooLong { units: 65, max: 64 });
    /// ```
    pub struct ItemId, kind IdKind::Item;
    /// The ID of a legacy item with this `SYNCMGRITEMID`.
    fn from_guid;
}

mod hash;
pub(crate) use hash::{IdMap, IdSet};

// ----- sequence numbers ---------------------------------------------------------------------

/// Defines a sequence number issued by the engine: opaque outside the crate, ordered by issue.
/// They live here, with the other IDs, so that the vocabulary (errors, results) never needs
/// the engine.
macro_rules! sequence_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        ///
        /// With the `serde` feature it is written as its number. Any number reads back: one
        /// this process never issued names no request or session, and calls given it
        /// refuse it as unknown.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(transparent)
        )]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The number behind the ID: its place in issue order, from 1.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad` so that width and alignment work: `{:<12}`.
                f.pad(&format!(concat!($label, "#{}"), self.0))
            }
        }
    };
}

sequence_id!(
    /// Identifies one accepted request. Issued in increasing order, never reused.
    RequestId,
    "request"
);
sequence_id!(
    /// Identifies one session. Issued in increasing order, never reused.
    SessionId,
    "session"
);

#[cfg(test)]
mod tests {
    use super::hash::IdBuildHasher;
    use super::*;
    use std::collections::HashSet;

    fn rule_of(text: &str) -> IdRule {
        ItemId::new(text).unwrap_err().rule()
    }

    #[test]
    fn constants_are_the_sdk_values() {
        assert_eq!(MAX_SYNCMGR_ID, 64);
        assert_eq!(MAX_SYNCMGR_NAME, 128);
        assert_eq!(MAX_SYNCMGR_PROGRESSTEXT, 260);
        assert_eq!(MAX_SYNCMGRHANDLERNAME, 32);
        assert_eq!(MAX_SYNCMGRITEMNAME, 128);
    }

    #[test]
    fn empty_is_rejected() {
        assert_eq!(rule_of(""), IdRule::Empty);
        assert_eq!(HandlerId::new("").unwrap_err().rule(), IdRule::Empty);
    }

    #[test]
    fn nul_is_rejected_at_its_byte_offset() {
        assert_eq!(rule_of("\0"), IdRule::ContainsNul { at: 0 });
        assert_eq!(rule_of("ab\0c"), IdRule::ContainsNul { at: 2 });
        // The offset is in bytes: "é" takes two.
        assert_eq!(rule_of("é\0"), IdRule::ContainsNul { at: 2 });
        // NUL is checked before length.
        let long = format!("{}\0", "a".repeat(100));
        assert_eq!(rule_of(&long), IdRule::ContainsNul { at: 100 });
    }

    #[test]
    fn length_is_63_utf16_units_whatever_the_bytes() {
        let too_long = |units| IdRule::TooLong { units, max: 64 };
        // ASCII: one byte, one unit.
        assert!(ItemId::new("a".repeat(63)).is_ok());
        assert_eq!(rule_of(&"a".repeat(64)), too_long(65));
        // "é": two bytes, one unit.
        assert!(ItemId::new("é".repeat(63)).is_ok());
        assert_eq!(rule_of(&"é".repeat(64)), too_long(65));
        // "😀": four bytes, two units.
        assert!(ItemId::new(format!("{}a", "😀".repeat(31))).is_ok());
        assert_eq!(rule_of(&"😀".repeat(32)), too_long(65));
        assert!(HandlerId::new("a".repeat(63)).is_ok());
        assert!(HandlerId::new("a".repeat(64)).is_err());
    }

    #[test]
    fn error_carries_kind_input_and_rule() {
        let err = HandlerId::new("x".repeat(70)).unwrap_err();
        assert_eq!(err.kind(), IdKind::Handler);
        assert_eq!(err.input(), "x".repeat(70));
        assert_eq!(err.rule(), IdRule::TooLong { units: 71, max: 64 });
        let msg = err.to_string();
        assert!(msg.starts_with("invalid handler ID \"xxx"), "{msg}");
        assert!(msg.ends_with("it is 71 UTF-16 units with its NUL; the limit is 64"));

        assert_eq!(
            ItemId::new("").unwrap_err().to_string(),
            "invalid item ID \"\": it is empty"
        );
        let err = crate::Error::from(ItemId::new("").unwrap_err());
        assert!(matches!(err, crate::Error::InvalidId(_)));
    }

    #[test]
    fn error_message_shortens_a_huge_input() {
        let err = ItemId::new("y".repeat(10_000)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 250, "{msg}");
        assert!(msg.contains("(10000 bytes)"), "{msg}");
        assert_eq!(err.input().len(), 10_000);
    }

    #[test]
    fn try_from_string_gives_the_string_back_on_error() {
        let text = "z".repeat(100);
        let ptr = text.as_ptr();
        let back = ItemId::try_from(text).unwrap_err().into_input();
        assert_eq!(back.as_ptr(), ptr);
        assert_eq!(ItemId::try_from(String::from("ok")).unwrap().as_str(), "ok");
    }

    #[test]
    fn display_honours_width_and_alignment() {
        let id = ItemId::new("inbox").unwrap();
        assert_eq!(format!("[{id:<7}]"), "[inbox  ]");
        assert_eq!(format!("[{id:>7}]"), "[  inbox]");
        assert_eq!(format!("[{:<12}]", crate::RequestId(3)), "[request#3   ]");
    }

    #[test]
    fn display_and_from_str_round_trip() {
        for text in ["mail", "é", "😀x", "{not-a-guid}"] {
            let id: HandlerId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
            assert_eq!(id.to_string().parse::<HandlerId>().unwrap(), id);
            assert_eq!(ItemId::try_from(text).unwrap().as_ref(), text);
        }
        assert_eq!(
            format!("{:?}", HandlerId::new("mail").unwrap()),
            r#"HandlerId("mail")"#
        );
        assert_eq!(format!("{:?}", ItemId::new("a").unwrap()), r#"ItemId("a")"#);
    }

    #[test]
    fn equal_ids_have_equal_hashes() {
        let a = ItemId::new("inbox").unwrap();
        let b = ItemId::new(String::from("inbox")).unwrap();
        assert!(!Arc::ptr_eq(&a.0.text, &b.0.text));
        assert_eq!(a, b);
        assert_eq!(a.hash_value(), b.hash_value());
        let s = RandomState::new();
        assert_eq!(s.hash_one(&a), s.hash_one(&b));
        assert_eq!(IdBuildHasher.hash_one(&a), IdBuildHasher.hash_one(&b));
        assert_ne!(a, ItemId::new("outbox").unwrap());
    }

    #[test]
    fn comparison_is_case_sensitive_and_not_normalised() {
        assert_ne!(ItemId::new("Inbox").unwrap(), ItemId::new("inbox").unwrap());
        // "é" precomposed versus "e" + combining acute.
        assert_ne!(
            ItemId::new("\u{e9}").unwrap(),
            ItemId::new("e\u{301}").unwrap()
        );
    }

    #[test]
    fn clone_shares_the_text() {
        let a = HandlerId::new("mail").unwrap();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.0.text, &b.0.text));
        assert_eq!(a, b);
    }

    #[test]
    fn guid_round_trips_through_the_braced_form() {
        let guid = Uuid::from_u128(0x6295DF27_35EE_11D1_8707_00C04FD93327);
        let h = HandlerId::from_clsid(guid);
        assert_eq!(h.as_str(), "{6295DF27-35EE-11D1-8707-00C04FD93327}");
        assert_eq!(h.as_str().encode_utf16().count(), 38);
        assert_eq!(h.to_guid(), Some(guid));
        assert_eq!(HandlerId::new(h.as_str()).unwrap(), h);

        let i = ItemId::from_guid(Uuid::max());
        assert_eq!(i.as_str(), "{FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF}");
        assert_eq!(i.to_guid(), Some(Uuid::max()));
        // Lowercase braced text parses too.
        let lower = ItemId::new("{6295df27-35ee-11d1-8707-00c04fd93327}").unwrap();
        assert_eq!(lower.to_guid(), Some(guid));
        // Same GUID, different text: different IDs (exact comparison).
        assert_ne!(lower, ItemId::from_guid(guid));
    }

    #[test]
    fn to_guid_is_none_for_other_text() {
        for text in [
            "mail",
            "6295DF27-35EE-11D1-8707-00C04FD93327",
            "6295DF2735EE11D1870700C04FD93327",
            "urn:uuid:6295DF27-35EE-11D1-8707-00C04FD93327",
            "{6295DF2735EE11D1870700C04FD93327}",
            "{6295DF27-35EE-11D1-8707-00C04FD9332G}",
            "{6295DF27-35EE-11D1-8707-00C04FD93327",
            "{{6295DF27-35EE-11D1-8707-00C04FD9332}",
            "{6295DF27-35EE-11D1-8707-00C04FD9332é}",
            "{}",
        ] {
            assert_eq!(ItemId::new(text).unwrap().to_guid(), None, "{text}");
        }
    }

    #[test]
    fn ordering_is_by_text() {
        let mut ids: Vec<ItemId> = ["b", "a", "C", "aa"]
            .iter()
            .map(|s| ItemId::new(s).unwrap())
            .collect();
        ids.sort();
        let texts: Vec<&str> = ids.iter().map(ItemId::as_str).collect();
        assert_eq!(texts, ["C", "a", "aa", "b"]);
    }

    #[test]
    fn id_map_works_with_ids_and_tuples() {
        let mut map: IdMap<(HandlerId, ItemId), u32> = IdMap::default();
        let h = HandlerId::new("h").unwrap();
        for (n, text) in ["a", "b", "c", "a"].iter().enumerate() {
            map.insert((h.clone(), ItemId::new(text).unwrap()), n as u32);
        }
        assert_eq!(map.len(), 3);
        assert_eq!(map[&(h.clone(), ItemId::new("a").unwrap())], 3);

        // Same text as handler and item: the pair must not hash to 0.
        let same = (HandlerId::new("x").unwrap(), ItemId::new("x").unwrap());
        assert_ne!(IdBuildHasher.hash_one(&same), 0);

        let set: HashSet<ItemId, IdBuildHasher> = (0..1000)
            .map(|n| ItemId::new(n.to_string()).unwrap())
            .collect();
        assert_eq!(set.len(), 1000);
    }

    #[test]
    fn id_hasher_spreads_sequential_numbers() {
        // Request numbers 1, 2, 3...: both the low bits (bucket) and the top 7 bits (tag)
        // must vary, or every lookup would compare against a whole group of entries.
        let hashes: Vec<u64> = (1..=256u64).map(|n| IdBuildHasher.hash_one(n)).collect();
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 0xFF).collect();
        assert!(tags.len() > 100, "{} distinct tags", tags.len());
        assert!(buckets.len() > 128, "{} distinct buckets", buckets.len());
    }
}
