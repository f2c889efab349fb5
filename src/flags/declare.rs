//! The two macros that declare the SDK's types with their exact values: `sdk_flags!` (a
//! `bitflags` type with `from_raw`/`to_raw`) and `sdk_enum!` (explicit discriminants with
//! `from_raw`/`to_raw`), used here and in `legacy`.

/// Declares an SDK flags type: a `bitflags` type plus `VALID_MASK`, `from_raw` and `to_raw`.
///
/// `VALID_MASK` is the union of the named flags; the tests pin it to the literal SDK value.
///
/// With the `serde` feature the type is written as bitflags writes flags (see
/// `serde_flags`), and read back through `from_raw`'s check. A type whose names bitflags
/// would not write well gives its own text writer after the body: `serde_text = path;`.
macro_rules! sdk_flags {
    (
        $(#[$($outer:tt)*])*
        pub struct $name:ident: u32 {
            $(
                $(#[$($inner:tt)*])*
                const $flag:ident = $value:expr;
            )*
        }
        $(serde_text = $text:path;)?
    ) => {
        // Attributes pass as token trees: `bitflags!` cannot re-parse a `meta` fragment.
        bitflags::bitflags! {
            $(#[$($outer)*])*
            ///
            /// # Unknown bits
            ///
            /// A raw value is never silently truncated: [`from_raw`](Self::from_raw) rejects any
            /// bit outside [`VALID_MASK`](Self::VALID_MASK) with
            /// [`Error::UnknownFlags`](crate::Error::UnknownFlags). The named constants, the bit
            /// operators (`|`, `&`, `^`, `!`, `-`) and bitflags' `from_bits` and
            /// `from_bits_truncate` cannot make unknown bits. Only bitflags' `from_bits_retain`
            /// (and its text parser, which reads hex) keep them as given, so take raw bits from
            /// outside through `from_raw`.
            ///
            /// # Serialization
            ///
            /// With the `serde` feature, human-readable formats (JSON, TOML, …) write the flags'
            /// names joined by `" | "` (`"WAIT | NOUI"`; no flag is `""`), and binary formats
            /// write the raw `u32`. The text may also give raw bits in hex (`"0x3"`), as
            /// bitflags' text grammar allows. Reading refuses a name the type does not have
            /// (naming it) and, as `from_raw` does and with its message, any bit outside
            /// `VALID_MASK`. A value that carries unknown bits (from `from_bits_retain`) is
            /// written with them in hex, and so cannot be read back.
            pub struct $name: u32 {
                $(
                    $(#[$($inner)*])*
                    const $flag = $value;
                )*
            }
        }

        impl $name {
            #[doc = concat!("Every bit defined for `", stringify!($name), "`.")]
            pub const VALID_MASK: u32 = Self::all().bits();

            /// Converts raw bits, rejecting any bit outside [`VALID_MASK`](Self::VALID_MASK).
            ///
            /// # Errors
            ///
            /// [`Error::UnknownFlags`](crate::Error::UnknownFlags) with the whole value and the
            /// unknown bits (`E_INVALIDARG`).
            pub fn from_raw(bits: u32) -> Result<Self, $crate::Error> {
                let unknown = bits & !Self::VALID_MASK;
                if unknown != 0 {
                    return Err($crate::Error::UnknownFlags {
                        type_name: stringify!($name),
                        bits,
                        unknown,
                    });
                }
                Ok(Self::from_bits_retain(bits))
            }

            /// The raw bits, as the SDK writes them.
            pub const fn to_raw(self) -> u32 {
                self.bits()
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[allow(unused_variables)]
                let text: $crate::flags::serde_flags::WriteText<Self> =
                    |flags, f| bitflags::parser::to_writer(flags, f);
                $(let text: $crate::flags::serde_flags::WriteText<Self> = $text;)?
                $crate::flags::serde_flags::serialize(self, text, serializer)
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::flags::serde_flags::deserialize(
                    deserializer,
                    stringify!($name),
                    Self::from_raw,
                )
            }
        }
    };
}
pub(crate) use sdk_flags;

/// Declares an SDK enum: explicit `u32` discriminants plus `from_raw`, `TryFrom<u32>`, `to_raw`
/// and `From<Self> for u32`.
macro_rules! sdk_enum {
    (
        $(#[$outer:meta])*
        pub enum $name:ident {
            $(
                $(#[$inner:meta])*
                $variant:ident = $value:literal,
            )+
        }
    ) => {
        $(#[$outer])*
        ///
        /// With the `serde` feature a value is written as its variant's name (`"Updating"`),
        /// not its raw SDK number; reading refuses any other name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[repr(u32)]
        pub enum $name {
            $(
                $(#[$inner])*
                $variant = $value,
            )+
        }

        impl $name {
            /// Converts a raw SDK value.
            ///
            /// # Errors
            ///
            /// [`Error::UnknownValue`](crate::Error::UnknownValue) if `value` is not one of the
            /// defined values (`E_INVALIDARG`).
            pub fn from_raw(value: u32) -> Result<Self, $crate::Error> {
                match value {
                    $( $value => Ok(Self::$variant), )+
                    _ => Err($crate::Error::UnknownValue {
                        type_name: stringify!($name),
                        value,
                    }),
                }
            }

            /// The raw SDK value.
            pub const fn to_raw(self) -> u32 {
                self as u32
            }
        }

        impl TryFrom<u32> for $name {
            type Error = $crate::Error;

            fn try_from(value: u32) -> Result<Self, $crate::Error> {
                Self::from_raw(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value.to_raw()
            }
        }
    };
}
pub(crate) use sdk_enum;
