//! [`Progress`]: one item's progress report, the one shape the engine, the session and the
//! notifications share.

use crate::flags::ProgressStatus;

/// One progress report for an item (`ReportProgress`): its status, an optional text, and how
/// many steps of how many are done.
///
/// A bare status converts into a report, so the common case stays short; the builder methods
/// add the rest. Steps are for displays: the engine keeps only the status, and `step`/`max`
/// mean nothing with [`ProgressStatus::UpdatingIndeterminate`]. The text must fit
/// [`MAX_SYNCMGR_PROGRESSTEXT`](crate::MAX_SYNCMGR_PROGRESSTEXT) UTF-16 units with its NUL,
/// or the report is refused.
///
/// ```
/// use syncmgr::{Progress, ProgressStatus};
///
/// let done: Progress = ProgressStatus::Succeeded.into();
/// assert_eq!(done, Progress::new(ProgressStatus::Succeeded));
///
/// let halfway = Progress::new(ProgressStatus::Updating).text("12 of 24 messages").steps(12, 24);
/// assert_eq!((halfway.step, halfway.max), (12, 24));
/// assert_eq!(halfway.to_string(), "updating 12/24: 12 of 24 messages");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Progress {
    /// The item's status.
    pub status: ProgressStatus,
    /// What the handler is doing, for people (may be empty).
    pub text: String,
    /// Steps done.
    pub step: u32,
    /// Steps in all (0: not said).
    pub max: u32,
}

impl Progress {
    /// A report of this status, with no text and no steps.
    pub fn new(status: ProgressStatus) -> Progress {
        Progress {
            status,
            text: String::new(),
            step: 0,
            max: 0,
        }
    }

    /// The same report with this text.
    pub fn text(mut self, text: impl Into<String>) -> Progress {
        self.text = text.into();
        self
    }

    /// The same report with `step` of `max` steps done.
    pub fn steps(mut self, step: u32, max: u32) -> Progress {
        self.step = step;
        self.max = max;
        self
    }
}

impl From<ProgressStatus> for Progress {
    fn from(status: ProgressStatus) -> Progress {
        Progress::new(status)
    }
}

impl std::fmt::Display for Progress {
    /// `updating 3/10: text`: the status, the steps when a total is given, the text when there
    /// is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            ProgressStatus::Updating => "updating",
            ProgressStatus::UpdatingIndeterminate => "updating",
            ProgressStatus::Succeeded => "succeeded",
            ProgressStatus::Failed => "failed",
            ProgressStatus::Canceled => "canceled",
            ProgressStatus::Disconnected => "disconnected",
        };
        f.write_str(status)?;
        if self.max > 0 && self.status != ProgressStatus::UpdatingIndeterminate {
            write!(f, " {}/{}", self.step, self.max)?;
        }
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}
