//! The records one flush owns ([`Taken`]), from the moment they leave the
//! buffer until they are stored or given back, and what the flush writes of
//! them ([`Commit`]).

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::capture::buffer::Buffer;
use crate::capture::record::Record;
use crate::error::Error;
use crate::flush::outcome::Outcome;
use crate::store::file::{StateLock, StateStore};
use crate::store::kept::Stamp;
use crate::store::state::State;

/// The stamp is updated at each write; `None` once what is on disk is unknown.
#[derive(Default)]
pub(super) struct Commit {
    pub(super) run: Option<(u64, Option<OffsetDateTime>)>,
    pub(super) dropped: u64,
    pub(super) trim: Option<(u64, u64)>,
    pub(super) rewrite: bool,
    pub(super) changed: bool,
    pub(super) parked: Vec<PathBuf>,
    pub(super) stamp: Option<Stamp>,
    pub(super) clamped_at: Option<OffsetDateTime>,
}

impl Commit {
    pub(super) fn save(
        &mut self,
        store: &StateStore,
        lock: &StateLock,
        state: &mut State,
    ) -> Result<(), Error> {
        let written = store.save(lock, state);
        self.noted(state, written)
    }

    pub(super) fn noted(
        &mut self,
        state: &mut State,
        written: Result<Stamp, Error>,
    ) -> Result<(), Error> {
        self.stamp = written.as_ref().ok().copied();
        state.generation = written?.generation;
        Ok(())
    }
}

/// Dropped before [`stored`](Taken::stored) (an error, or a panic unwinding
/// through the flush), it gives them back to the buffer: nothing a flush took is
/// lost. They are the last `count` of `state.pending`.
pub(super) struct Taken<'a> {
    buffer: &'a Buffer,
    pub(super) state: State,
    pub(super) count: usize,
    pub(super) dropped: u64,
}

impl<'a> Taken<'a> {
    pub(super) fn from_buffer(buffer: &'a Buffer) -> Self {
        let mut taken = Taken {
            buffer,
            state: State::default(),
            count: 0,
            dropped: 0,
        };
        // Once `drain` returns, the records are owned by `taken`.
        taken.state.pending = buffer.drain();
        taken.count = taken.state.pending.len();
        taken.dropped = buffer.take_dropped();
        taken
    }

    pub(super) fn records(&self) -> &[Record] {
        &self.state.pending[self.state.pending.len() - self.count..]
    }

    pub(super) fn merge_into(&mut self, mut loaded: State) {
        // The merged list is kept for the run: room for an eighth more, not
        // twice as much as doubling would leave (a large list grows in place
        // where the allocator can).
        let (len, new) = (loaded.pending.len(), self.state.pending.len());
        if loaded.pending.capacity() - len < new {
            loaded.pending.reserve_exact(new.max(len / 8));
        }
        loaded.pending.append(&mut self.state.pending);
        self.state = loaded;
    }

    pub(super) fn stored(&mut self) {
        self.count = 0;
        self.dropped = 0;
    }

    pub(super) fn give_back(&mut self, error: Error) -> Outcome {
        let (count, on_disk) = self.restore();
        let error = match count {
            0 => error,
            _ => error.context(|error| {
                format!(
                    "{error}; this run's {count} records are kept in memory for the next flush \
                     (and written to stderr if none succeeds)"
                )
            }),
        };
        Outcome::Failed {
            error,
            pending: on_disk + count,
        }
    }

    fn restore(&mut self) -> (usize, usize) {
        let at = self.state.pending.len().saturating_sub(self.count);
        let records = self.state.pending.split_off(at);
        let count = records.len();
        self.buffer
            .restore(records, std::mem::take(&mut self.dropped));
        self.count = 0;
        (count, at)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.count > 0 || self.dropped > 0 {
            self.restore();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use std::panic::AssertUnwindSafe;
    use tracing::Level;

    fn record(message: &str) -> Record {
        let mut r = record_at(Level::WARN);
        r.message = message.to_owned();
        r
    }

    fn messages(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.message.as_str()).collect()
    }

    #[test]
    fn taken_records_go_back_to_the_buffer_when_a_panic_unwinds() {
        let buffer = Buffer::new(100);
        buffer.push(record("a"));
        buffer.push(record("b"));
        buffer.restore(Vec::new(), 3);
        let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut taken = Taken::from_buffer(&buffer);
            assert_eq!((taken.count, taken.dropped), (2, 3));
            // Meanwhile the event path goes on.
            buffer.push(record("c"));
            let mut loaded = State::default();
            loaded.pending.push(record("on disk"));
            taken.merge_into(loaded);
            assert_eq!(messages(taken.records()), ["a", "b"]);
            panic!("in the middle of a flush");
        }));
        assert!(panic.is_err());
        // Back, ahead of what came since, with the count of dropped ones;
        // the loaded state's record is not (it is on disk).
        assert_eq!(buffer.take_dropped(), 3);
        assert_eq!(messages(&buffer.drain()), ["a", "b", "c"]);
    }

    #[test]
    fn stored_records_are_not_given_back() {
        let buffer = Buffer::new(100);
        buffer.push(record("a"));
        let mut taken = Taken::from_buffer(&buffer);
        taken.stored();
        drop(taken);
        assert_eq!((buffer.len(), buffer.take_dropped()), (0, 0));
    }
}
