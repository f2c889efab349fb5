//! Why an item failed: [`Cause`], the handler's error as the crate keeps it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Why an item failed: the error its handler reported or returned, with its `source()` chain,
/// kept as text.
///
/// Every `Failed` item in a [`RequestResult`](crate::RequestResult) carries one when the
/// handler gave a reason (see [`ItemOutcome::cause`](crate::ItemOutcome::cause)), and so do
/// [`Error::HandlerFailed`](crate::Error::HandlerFailed) and the manager's `SessionEnded`
/// notification. A `Cause` is itself an [`Error`](std::error::Error) whose `source()` walks
/// the original chain, so error reporters print it as they would the original.
///
/// The crate keeps the error's *texts*, not the error value: results are cloned to every
/// caller, compared, sent across threads and built while the scheduler's lock is held, and a
/// user's error type may be neither `Clone` nor safe to format or drop there (its `Display`
/// or `Drop` may panic or call back into the manager). So the chain is read once, on the
/// thread that ran the handler, and a `Cause` is plain shared data: cloning it is a
/// reference-count increment, and two causes are equal when their chains read the same. The
/// cost is that you cannot downcast a `Cause` to your error type: give it the information
/// you will want to match on in its message, or keep your own record beside the result.
/// Only what `Display` prints is kept: an `std::io::Error` made with `Error::new(kind, msg)`
/// prints `msg`, not its kind, so say the kind in a message of your own if it matters.
///
/// ```
/// use syncmgr::Cause;
///
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "the server did not answer");
/// let cause = Cause::from_error(&io);
/// assert_eq!(cause.to_string(), "the server did not answer");
///
/// let cause = Cause::new("could not fetch the inbox").with_source(cause);
/// assert_eq!(format!("{cause:#}"), "could not fetch the inbox: the server did not answer");
/// let messages: Vec<&str> = cause.chain().map(|c| c.message()).collect();
/// assert_eq!(messages, ["could not fetch the inbox", "the server did not answer"]);
/// assert!(std::error::Error::source(&cause).is_some());
/// ```
///
/// With the `serde` feature a cause is written as its chain's messages, outermost first
/// (`["could not fetch the inbox", "the server did not answer"]`), and read back into the
/// same chain, so it compares equal after a round trip. Reading refuses an empty list and
/// one longer than [`Cause::MAX_CHAIN`], which no `Cause` has.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cause(Arc<Link>);

#[derive(PartialEq, Eq, Hash)]
struct Link {
    message: Box<str>,
    source: Option<Cause>,
}

impl Cause {
    /// The longest chain kept: links past it are cut, so a `source()` that loops ends.
    pub const MAX_CHAIN: usize = 16;

    /// A cause with this message and no source.
    pub fn new(message: impl Into<String>) -> Cause {
        Cause(Arc::new(Link {
            message: message.into().into_boxed_str(),
            source: None,
        }))
    }

    /// This cause with `source` at the end of its chain (the chain is rebuilt, so any cause
    /// can be extended; a chain longer than [`Cause::MAX_CHAIN`] is cut).
    pub fn with_source(self, source: Cause) -> Cause {
        let texts: Vec<String> = self
            .chain()
            .chain(source.chain())
            .map(|c| c.message().to_owned())
            .collect();
        Cause::from_texts(texts).unwrap_or(self)
    }

    /// Reads an error and its `source()` chain (at most [`Cause::MAX_CHAIN`] links).
    ///
    /// This runs the error's `Display` and `source`. The manager reads the errors handlers
    /// return with the same rule but contains a panic in them; this plain form is for your
    /// own errors, on your own thread.
    pub fn from_error(error: &(dyn StdError + 'static)) -> Cause {
        let mut texts = vec![error.to_string()];
        let mut next = error.source();
        while let Some(source) = next {
            if texts.len() == Cause::MAX_CHAIN {
                break;
            }
            texts.push(source.to_string());
            next = source.source();
        }
        Cause::from_texts(texts).unwrap_or_else(|| Cause::new(""))
    }

    /// A chain from its messages, outermost first; `None` when there are none.
    pub(crate) fn from_texts(texts: Vec<String>) -> Option<Cause> {
        texts
            .into_iter()
            .take(Cause::MAX_CHAIN)
            .rev()
            .fold(None, |source, message| {
                Some(Cause(Arc::new(Link {
                    message: message.into_boxed_str(),
                    source,
                })))
            })
    }

    /// This link's message (without its sources).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The next link of the chain, as a `Cause`.
    pub fn next(&self) -> Option<&Cause> {
        self.0.source.as_ref()
    }

    /// This cause and its sources, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &Cause> {
        std::iter::successors(Some(self), |c| c.next())
    }
}

impl fmt::Display for Cause {
    /// The message; with `{:#}`, the whole chain as `"outer: inner: root"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())?;
        if f.alternate() {
            for source in self.chain().skip(1) {
                write!(f, ": {}", source.message())?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Cause {
    /// `Cause("outer: inner: root")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cause").field(&format!("{self:#}")).finish()
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.next().map(|c| c as &(dyn StdError + 'static))
    }
}

/// Writes the chain's messages, outermost first.
#[cfg(feature = "serde")]
impl serde::Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.chain().map(Cause::message))
    }
}

/// Reads the chain's messages, outermost first: at least one, at most [`Cause::MAX_CHAIN`].
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Cause {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cause, D::Error> {
        struct Messages;

        impl<'de> serde::de::Visitor<'de> for Messages {
            type Value = Cause;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a list of 1 to {} messages, outermost first",
                    Cause::MAX_CHAIN
                )
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Cause, A::Error> {
                use serde::de::Error as _;
                let mut texts: Vec<String> = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    // Refused as soon as it is too long: a hostile list is not read to its end.
                    if texts.len() == Cause::MAX_CHAIN {
                        return Err(A::Error::invalid_length(texts.len() + 1, &self));
                    }
                    texts.push(text);
                }
                Cause::from_texts(texts).ok_or_else(|| A::Error::invalid_length(0, &self))
            }
        }

        deserializer.deserialize_seq(Messages)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Cause {
        Cause::new(message)
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Cause {
        Cause::new(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Looping;

    impl fmt::Display for Looping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("again")
        }
    }

    impl StdError for Looping {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(self)
        }
    }

    #[test]
    fn a_looping_source_is_cut() {
        let cause = Cause::from_error(&Looping);
        assert_eq!(cause.chain().count(), Cause::MAX_CHAIN);
        let long = cause.clone().with_source(Cause::new("more"));
        assert_eq!(long.chain().count(), Cause::MAX_CHAIN);
    }

    #[test]
    fn equal_when_the_chains_read_the_same() {
        let a = Cause::new("a").with_source(Cause::new("b"));
        assert_eq!(a, Cause::from_texts(vec!["a".into(), "b".into()]).unwrap());
        assert_ne!(a, Cause::new("a"));
        assert_eq!(format!("{a:?}"), "Cause(\"a: b\")");
        assert_eq!(Cause::from_texts(Vec::new()), None);
    }
}
