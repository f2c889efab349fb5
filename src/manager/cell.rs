//! A one-shot reply: the answer to one command, written once by the scheduler and read once by
//! the caller.
//!
//! Most commands are applied on the caller's own thread, so the answer is written before the
//! caller reads it: the read is a lock that finds it there. A `crossbeam_channel::bounded(1)`
//! per call cost three allocations and most of a start call's time (`benches/manager.rs`);
//! this is one allocation, a mutex and a condition variable that is only waited on when the
//! command went to the scheduler thread (after shutdown began).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// What the cell holds.
enum State<T> {
    /// No answer yet.
    Empty,
    /// The answer, not read yet.
    Full(T),
    /// The writer went away without answering (the command was dropped).
    Closed,
}

struct Cell<T> {
    state: Mutex<Slot<T>>,
    written: Condvar,
}

struct Slot<T> {
    state: State<T>,
    /// The reader is blocked on the condition variable: only then does the writer notify
    /// (a notify is a system call even with nobody waiting).
    sleeping: bool,
}

impl<T> Cell<T> {
    fn state(&self) -> MutexGuard<'_, Slot<T>> {
        // Nothing runs under this lock but moves of the answer: it is never poisoned.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `state` if the cell is empty; wakes a blocked reader.
    fn fill(&self, state: State<T>) -> Result<(), State<T>> {
        let mut slot = self.state();
        if !matches!(slot.state, State::Empty) {
            return Err(state);
        }
        slot.state = state;
        let sleeping = slot.sleeping;
        drop(slot);
        if sleeping {
            self.written.notify_all();
        }
        Ok(())
    }
}

/// The write end: answer once with [`send`](Self::send); dropping it unanswered tells the
/// reader so.
pub(crate) struct Answer<T>(Arc<Cell<T>>);

/// The read end.
pub(crate) struct Question<T>(Arc<Cell<T>>);

/// The writer dropped its end without answering.
#[derive(Debug)]
pub(crate) struct Unanswered;

/// A new cell: its write end and its read end.
pub(crate) fn oneshot<T>() -> (Answer<T>, Question<T>) {
    let cell = Arc::new(Cell {
        state: Mutex::new(Slot {
            state: State::Empty,
            sleeping: false,
        }),
        written: Condvar::new(),
    });
    (Answer(cell.clone()), Question(cell))
}

impl<T> Answer<T> {
    /// Writes the answer. The first answer wins; a later one is handed back.
    pub fn send(&self, value: T) -> Result<(), T> {
        match self.0.fill(State::Full(value)) {
            Err(State::Full(value)) => Err(value),
            // `fill` hands back what it was given: a refused answer is `Full`.
            Ok(()) | Err(State::Empty | State::Closed) => Ok(()),
        }
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        let _ = self.0.fill(State::Closed);
    }
}

impl<T> Question<T> {
    /// Waits for the answer (at once when it was written on this thread).
    pub fn recv(self) -> Result<T, Unanswered> {
        let mut slot = self.0.state();
        loop {
            match std::mem::replace(&mut slot.state, State::Closed) {
                State::Full(value) => return Ok(value),
                State::Closed => return Err(Unanswered),
                State::Empty => {
                    slot.state = State::Empty;
                    slot.sleeping = true;
                    slot = self
                        .0
                        .written
                        .wait(slot)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_written_first_is_read_at_once_and_only_the_first_counts() {
        let (answer, question) = oneshot();
        assert!(answer.send(1).is_ok());
        assert_eq!(answer.send(2), Err(2));
        assert_eq!(question.recv().ok(), Some(1));
    }

    #[test]
    fn a_dropped_writer_ends_the_wait() {
        let (answer, question) = oneshot::<u8>();
        let reader = std::thread::spawn(move || question.recv().is_err());
        drop(answer);
        assert!(reader.join().unwrap_or(false));
    }

    #[test]
    fn an_answer_from_another_thread_wakes_the_reader() {
        let (answer, question) = oneshot();
        let writer = std::thread::spawn(move || answer.send("done").is_ok());
        assert_eq!(question.recv().ok(), Some("done"));
        assert!(writer.join().unwrap_or(false));
    }
}
