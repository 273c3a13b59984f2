//! The in-memory pending records of this process: the event path's only
//! destination.
//!
//! Records go into one of several shards, chosen per thread, so threads that
//! log at the same time rarely meet on the same lock. A global sequence number
//! gives back the order in which records arrived when the shards are drained.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::record::Record;

/// A record and its place in the order of arrival.
pub(crate) type Entry = (u64, Record);

#[repr(align(128))] // one cache line pair per shard: no false sharing
struct Shard(Mutex<Vec<Entry>>);

pub(crate) struct Buffer {
    shards: Box<[Shard]>,
    seq: AtomicU64,
}

/// Locks a mutex, taking the data even if a thread panicked while holding it:
/// a `Vec` of records is never left half-updated by a push.
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
    pub(crate) fn new() -> Self {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)
            .clamp(2, 32)
            * 2;
        Buffer {
            shards: (0..n).map(|_| Shard(Mutex::new(Vec::new()))).collect(),
            seq: AtomicU64::new(0),
        }
    }

    /// Adds a record; returns how many records have been pushed so far,
    /// this one included.
    pub(crate) fn push(&self, record: Record) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let shard = &self.shards[thread_shard() % self.shards.len()];
        lock(&shard.0).push((seq, record));
        seq + 1
    }

    /// Takes every record out, oldest first.
    pub(crate) fn drain(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.append(&mut lock(&shard.0));
        }
        // Each shard is already in order: the stable sort merges the runs.
        out.sort_by_key(|(seq, _)| *seq);
        out
    }

    /// Puts back records that [`drain`](Self::drain) took but could not be
    /// stored; they keep their place in the order.
    pub(crate) fn restore(&self, entries: Vec<Entry>) {
        if let Some(shard) = self.shards.first() {
            lock(&shard.0).extend(entries);
        }
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
        let buffer = Buffer::new();
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
        let buffer = Buffer::new();
        buffer.push(record_at(Level::WARN));
        let taken = buffer.drain();
        buffer.push(record_at(Level::INFO));
        buffer.restore(taken);
        let levels: Vec<Level> = buffer.drain().into_iter().map(|(_, r)| r.level).collect();
        assert_eq!(levels, [Level::WARN, Level::INFO]);
    }
}
