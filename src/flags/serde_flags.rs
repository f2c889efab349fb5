//! The `serde` impls that [`sdk_flags!`] gives every flags type: bitflags' format (its text
//! writer, its text grammar), with `from_raw`'s check on the way in.
//!
//! bitflags' own serde support reads unknown bits without complaint (a hex part of the text,
//! or any integer in a binary format, is kept as given), and its parse errors do not name the
//! part they refuse without its `std` feature, so the text is read here, by the same grammar.

use std::fmt;
use std::marker::PhantomData;

use bitflags::Flags;
use serde::de::{Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes a flags value as text.
pub(crate) type WriteText<F> = fn(&F, &mut fmt::Formatter<'_>) -> fmt::Result;

struct Text<'a, F>(&'a F, WriteText<F>);

impl<F> fmt::Display for Text<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.1)(self.0, f)
    }
}

/// Text in human-readable formats, the raw `u32` in the others (bitflags' choice).
pub(crate) fn serialize<F, S>(
    flags: &F,
    text: WriteText<F>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    F: Flags<Bits = u32>,
    S: Serializer,
{
    if serializer.is_human_readable() {
        serializer.collect_str(&Text(flags, text))
    } else {
        flags.bits().serialize(serializer)
    }
}

/// Text (names and hex parts joined by `|`) in human-readable formats, the raw `u32` in
/// the others; then `from_raw`'s check of the bits.
pub(crate) fn deserialize<'de, F, D>(
    deserializer: D,
    type_name: &'static str,
    from_raw: fn(u32) -> Result<F, crate::Error>,
) -> Result<F, D::Error>
where
    F: Flags<Bits = u32>,
    D: Deserializer<'de>,
{
    let bits = if deserializer.is_human_readable() {
        deserializer.deserialize_str(TextVisitor::<F>(type_name, PhantomData))?
    } else {
        u32::deserialize(deserializer)?
    };
    from_raw(bits).map_err(D::Error::custom)
}

struct TextVisitor<F>(&'static str, PhantomData<F>);

impl<F: Flags<Bits = u32>> Visitor<'_> for TextVisitor<F> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} as text: flag names or hex bits, joined by `|`",
            self.0
        )
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<u32, E> {
        parse::<F>(text).map_err(|why| E::custom(format_args!("{}: {why}", self.0)))
    }
}

/// bitflags' text grammar: the empty text, or parts joined by `|`, each a flag's name or
/// `0x` and hex digits, with whitespace around them. Names are case-sensitive.
fn parse<F: Flags<Bits = u32>>(text: &str) -> Result<u32, String> {
    if text.trim().is_empty() {
        return Ok(0);
    }
    text.split('|').map(str::trim).try_fold(0, |bits, part| {
        let one = if part.is_empty() {
            return Err(format!("an empty part in {text:?}"));
        } else if let Some(hex) = part.strip_prefix("0x") {
            u32::from_str_radix(hex, 16)
                .map_err(|_| format!("`{part}` is not a 32-bit hex number"))?
        } else {
            F::from_name(part)
                .map(|flag| flag.bits())
                .ok_or_else(|| format!("`{part}` is not one of its flags"))?
        };
        Ok(bits | one)
    })
}
