//! The in-memory pending records of this process: the event path's only
//! destination.
//!
//! Records go into one of several shards, chosen per thread, so threads that
//! log at the same time rarely meet on the same lock. A global sequence number
//! gives back the order in which records arrived when the shards are drained.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::record::Record;

/// A record and its place in the order of arrival.
pub(crate) type Entry = (u64, Record);

#[repr(align(128))] // one cache line pair per shard: no false sharing
struct Shard(Mutex<VecDeque<Entry>>);

pub(crate) struct Buffer {
    shards: Box<[Shard]>,
    /// Records ever pushed; also the next sequence number.
    seq: AtomicU64,
    /// Records that left the buffer (drained or dropped); `seq - taken` is
    /// how many it holds. Written only off the common path.
    taken: AtomicU64,
    /// Most records held at once; past it the pushing thread drops its own
    /// oldest record.
    cap: u64,
    /// Records dropped because of `cap`, not yet reported.
    dropped: AtomicU64,
}

/// Locks a mutex, taking the data even if a thread panicked while holding it:
/// a queue of records is never left half-updated by a push.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            s.get()
        })
        .unwrap_or(0)
}

impl Buffer {
    /// A buffer that holds at most `cap` records.
    pub(crate) fn new(cap: usize) -> Self {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)
            .clamp(2, 32)
            * 2;
        Buffer {
            shards: (0..n).map(|_| Shard(Mutex::new(VecDeque::new()))).collect(),
            seq: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            cap: cap.max(1) as u64,
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds a record; returns how many records have been pushed so far,
    /// this one included.
    pub(crate) fn push(&self, record: Record) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let shard = &self.shards[thread_shard() % self.shards.len()];
        let mut queue = lock(&shard.0);
        queue.push_back((seq, record));
        if seq + 1 - self.taken.load(Ordering::Relaxed).min(seq + 1) > self.cap
            && queue.pop_front().is_some()
        {
            self.taken.fetch_add(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        seq + 1
    }

    /// Takes every record out, oldest first.
    pub(crate) fn drain(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(lock(&shard.0).drain(..));
        }
        self.taken.fetch_add(out.len() as u64, Ordering::Relaxed);
        // Each shard is already in order: the stable sort merges the runs.
        out.sort_by_key(|(seq, _)| *seq);
        out
    }

    /// Puts back records that [`drain`](Self::drain) took but could not be
    /// stored, and the count of dropped records that could not be reported;
    /// the records keep their place in the order.
    pub(crate) fn restore(&self, entries: Vec<Entry>, dropped: u64) {
        self.taken
            .fetch_sub(entries.len() as u64, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        if let Some(shard) = self.shards.first() {
            let mut queue = lock(&shard.0);
            queue.extend(entries);
            queue.make_contiguous().sort_by_key(|(seq, _)| *seq);
        }
    }

    /// Takes the count of records dropped because the buffer was full.
    pub(crate) fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// How many records are waiting.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use tracing::Level;

    #[test]
    fn drain_returns_records_in_arrival_order_across_threads() {
        let buffer = Buffer::new(10_000);
        std::thread::scope(|s| {
            for t in 0..4 {
                let buffer = &buffer;
                s.spawn(move || {
                    for i in 0..250 {
                        let mut r = record_at(Level::INFO);
                        r.message = format!("{t}:{i}");
                        buffer.push(r);
                    }
                });
            }
        });
        assert_eq!(buffer.len(), 1000);
        let drained = buffer.drain();
        assert_eq!(drained.len(), 1000);
        assert!(drained.windows(2).all(|w| w[0].0 < w[1].0));
        // Per thread, the order of logging is kept.
        for t in 0..4 {
            let mine: Vec<usize> = drained
                .iter()
                .filter_map(|(_, r)| r.message.strip_prefix(&format!("{t}:")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..250).collect::<Vec<_>>());
        }
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn restored_records_come_back_first() {
        let buffer = Buffer::new(10_000);
        buffer.push(record_at(Level::WARN));
        let taken = buffer.drain();
        buffer.push(record_at(Level::INFO));
        buffer.restore(taken, 0);
        let levels: Vec<Level> = buffer.drain().into_iter().map(|(_, r)| r.level).collect();
        assert_eq!(levels, [Level::WARN, Level::INFO]);
    }
}

#[cfg(test)]
mod cap_tests {
    use super::*;
    use crate::policy::tests::record_at;
    use tracing::Level;

    #[test]
    fn a_full_buffer_drops_the_oldest_records_and_counts_them() {
        let buffer = Buffer::new(3);
        for i in 0..5 {
            let mut r = record_at(Level::INFO);
            r.message = i.to_string();
            buffer.push(r);
        }
        assert_eq!(buffer.take_dropped(), 2);
        assert_eq!(buffer.take_dropped(), 0);
        let kept: Vec<String> = buffer.drain().into_iter().map(|(_, r)| r.message).collect();
        assert_eq!(kept, ["2", "3", "4"]);
        // Draining makes room again.
        buffer.push(record_at(Level::INFO));
        assert_eq!(buffer.take_dropped(), 0);
    }

    #[test]
    fn restored_records_count_toward_the_cap_again() {
        let buffer = Buffer::new(2);
        buffer.push(record_at(Level::INFO));
        buffer.push(record_at(Level::INFO));
        let taken = buffer.drain();
        buffer.restore(taken, 7);
        buffer.push(record_at(Level::WARN));
        assert_eq!(buffer.take_dropped(), 8);
        assert_eq!(buffer.len(), 2);
    }
}
