//! What an ID's text may not be: [`IdRule`], and [`IdError`], the error that names the rule
//! broken.

use std::fmt;

use super::MAX_SYNCMGR_ID;
#[cfg(doc)]
use super::{HandlerId, ItemId};

/// Which kind of ID an [`IdError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum IdKind {
    /// A [`HandlerId`].
    Handler,
    /// An [`ItemId`].
    Item,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Handler => "handler",
            IdKind::Item => "item",
        })
    }
}

/// The rule an ID's text broke. The rules are checked in this order and the first one broken
/// is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum IdRule {
    /// The text is empty.
    Empty,
    /// The text contains a NUL character, which would end it early on Windows.
    ContainsNul {
        /// Byte offset of the first NUL.
        at: usize,
    },
    /// The text is longer than [`MAX_SYNCMGR_ID`] allows.
    TooLong {
        /// Length in UTF-16 code units, counting the terminating NUL as Windows does.
        units: usize,
        /// The limit, counting the NUL: [`MAX_SYNCMGR_ID`].
        max: usize,
    },
}

impl fmt::Display for IdRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IdRule::Empty => f.write_str("it is empty"),
            IdRule::ContainsNul { at } => write!(f, "it contains a NUL at byte {at}"),
            IdRule::TooLong { units, max } => write!(
                f,
                "it is {units} UTF-16 units with its NUL; the limit is {max}"
            ),
        }
    }
}

/// The error of [`HandlerId::new`] and [`ItemId::new`] (and their `FromStr`/`TryFrom`): the
/// text broke a rule. It keeps the rejected input so the caller can report or recover it.
///
/// ```
/// use syncmgr::{IdKind, IdRule, ItemId};
///
/// let err = ItemId::new("a\0b").unwrap_err();
/// assert_eq!(err.kind(), IdKind::Item);
/// assert_eq!(err.input(), "a\0b");
/// assert_eq!(err.rule(), IdRule::ContainsNul { at: 1 });
/// assert_eq!(err.to_string(), r#"invalid item ID "a\0b": it contains a NUL at byte 1"#);
/// ```
///
/// With the `serde` feature it is written as `{"kind", "input", "rule"}`; reading one back
/// checks that `input` really breaks `rule` first, as `new` would have found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "IdErrorWire")
)]
#[error("invalid {kind} ID {}: {rule}", Preview(&self.input))]
pub struct IdError {
    pub(super) kind: IdKind,
    pub(super) input: String,
    pub(super) rule: IdRule,
}

impl IdError {
    /// Which kind of ID was being made.
    pub fn kind(&self) -> IdKind {
        self.kind
    }

    /// The rejected text, unchanged.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The rule the text broke.
    pub fn rule(&self) -> IdRule {
        self.rule
    }

    /// Gives back the rejected text (without copying it when it came from a `String`).
    pub fn into_input(self) -> String {
        self.input
    }
}

/// Quotes an input for an error message, cut short so that a huge input gives a short message.
struct Preview<'a>(&'a str);

impl fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 80;
        match self.0.char_indices().nth(SHOWN) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

/// Checks `text` against the ID rules, in the order [`IdRule`] lists them.
pub(crate) fn check(text: &str) -> Result<(), IdRule> {
    if text.is_empty() {
        return Err(IdRule::Empty);
    }
    if let Some(at) = text.bytes().position(|b| b == 0) {
        return Err(IdRule::ContainsNul { at });
    }
    // A UTF-8 string never has more UTF-16 units than bytes, so short texts skip the count.
    if text.len() >= MAX_SYNCMGR_ID {
        let units = text.encode_utf16().count() + 1;
        if units > MAX_SYNCMGR_ID {
            return Err(IdRule::TooLong {
                units,
                max: MAX_SYNCMGR_ID,
            });
        }
    }
    Ok(())
}

/// An [`IdError`] as it is read, before the check that its input breaks its rule.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(rename = "IdError")]
struct IdErrorWire {
    kind: IdKind,
    input: String,
    rule: IdRule,
}

#[cfg(feature = "serde")]
impl TryFrom<IdErrorWire> for IdError {
    type Error = String;

    fn try_from(wire: IdErrorWire) -> Result<IdError, String> {
        match check(&wire.input) {
            Err(rule) if rule == wire.rule => Ok(IdError {
                kind: wire.kind,
                input: wire.input,
                rule,
            }),
            Err(rule) => Err(format!(
                "an ID error whose input breaks {rule:?}, not {:?}",
                wire.rule
            )),
            Ok(()) => Err(format!(
                "an ID error whose input {} is a valid ID",
                Preview(&wire.input)
            )),
        }
    }
}
