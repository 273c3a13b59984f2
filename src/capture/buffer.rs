//! The in-memory pending records of this process: the event path's only
//! destination.
//!
//! Records go into one of several shards, chosen per thread, so threads that
//! log at the same time do not meet on a lock or a shared counter. Each shard
//! keeps its records in time order (a clock that steps back is clamped), so
//! draining merges the shards by time and keeps each thread's order. Times
//! outside the years 1970 to 9999 (a clock gone wrong) are clamped, so that
//! every record can be stored and shown.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::capture::record::{Captured, Record};
use crate::sync::lock;

/// Most records' room a shard keeps once drained (80 bytes each): a larger
/// queue, grown by a burst, is freed at the drain.
const SHARD_KEEP: usize = 1024;

#[repr(align(128))] // one cache line pair per shard: no false sharing
struct Shard(Mutex<VecDeque<Captured>>);

pub(crate) struct Buffer {
    shards: Box<[Shard]>,
    /// Most records one shard holds; past it the pushing thread drops the
    /// shard's oldest record.
    cap: usize,
    /// Records dropped because of `cap`, not yet reported.
    dropped: AtomicU64,
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
    /// A buffer whose shards hold at most `cap` records each.
    pub(crate) fn new(cap: usize) -> Self {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)
            .clamp(2, 32)
            * 2;
        Buffer {
            shards: (0..n).map(|_| Shard(Mutex::new(VecDeque::new()))).collect(),
            cap: cap.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds a record; returns how many records its shard now holds.
    pub(crate) fn push(&self, record: impl Into<Captured>) -> usize {
        let mut record = record.into();
        let shard = &self.shards[thread_shard() % self.shards.len()];
        let mut queue = lock(&shard.0);
        // Keep the shard in time order even if the clock stepped back.
        let time = record.time();
        let mut kept = crate::clock::representable(time);
        if let Some(last) = queue.back().map(Captured::time)
            && kept < last
        {
            kept = last;
        }
        if kept != time {
            record.set_time(kept);
        }
        queue.push_back(record);
        if queue.len() > self.cap && queue.pop_front().is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.len()
    }

    /// Takes every record out, oldest first.
    pub(crate) fn drain(&self) -> Vec<Record> {
        let mut out: Vec<Captured> = Vec::new();
        for shard in self.shards.iter() {
            let mut queue = lock(&shard.0);
            if queue.capacity() > SHARD_KEEP {
                // A burst's room is given back rather than kept for the
                // rest of the run beside the state the flush keeps.
                let taken = std::mem::take(&mut *queue);
                drop(queue);
                out.extend(taken);
            } else {
                out.extend(queue.drain(..));
            }
        }
        // Each shard is in time order: the stable sort merges the runs and
        // keeps the order of records with the same time.
        out.sort_by_key(Captured::time);
        out.into_iter().map(Record::from).collect()
    }

    /// Puts back records that [`drain`](Self::drain) took but could not be
    /// stored, ahead of anything pushed since, and the count of dropped
    /// records that could not be reported.
    pub(crate) fn restore(&self, records: Vec<Record>, dropped: u64) {
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        if let Some(shard) = self.shards.first() {
            let mut queue = lock(&shard.0);
            for record in records.into_iter().rev() {
                queue.push_front(Captured::from(record));
            }
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

impl Captured {
    /// When the record was made.
    fn time(&self) -> SystemTime {
        match self {
            Captured::Event(e) => e.time,
            Captured::Record(r) => SystemTime::from(r.timestamp),
        }
    }

    fn set_time(&mut self, time: SystemTime) {
        match self {
            Captured::Event(e) => e.time = time,
            Captured::Record(r) => r.timestamp = time.into(),
        }
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
        assert!(drained.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        // Per thread, the order of logging is kept.
        for t in 0..4 {
            let mine: Vec<usize> = drained
                .iter()
                .filter_map(|r| r.message.strip_prefix(&format!("{t}:")))
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
        let levels: Vec<Level> = buffer.drain().into_iter().map(|r| r.level).collect();
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
        let kept: Vec<String> = buffer.drain().into_iter().map(|r| r.message).collect();
        assert_eq!(kept, ["2", "3", "4"]);
        // Draining makes room again.
        buffer.push(record_at(Level::INFO));
        assert_eq!(buffer.take_dropped(), 0);
    }

    #[test]
    fn restored_records_and_their_drop_count_come_back() {
        let buffer = Buffer::new(2);
        buffer.push(record_at(Level::INFO));
        buffer.push(record_at(Level::INFO));
        let taken = buffer.drain();
        buffer.push(record_at(Level::WARN));
        buffer.restore(taken, 7);
        assert_eq!(buffer.take_dropped(), 7);
        let levels: Vec<Level> = buffer.drain().into_iter().map(|r| r.level).collect();
        assert_eq!(levels, [Level::INFO, Level::INFO, Level::WARN]);
    }

    #[test]
    fn a_clock_stepping_back_does_not_reorder_a_thread() {
        let buffer = Buffer::new(10);
        let later = SystemTime::now();
        let earlier = later - std::time::Duration::from_secs(3600);
        for (i, time) in [later, earlier].into_iter().enumerate() {
            let mut r = record_at(Level::INFO);
            r.message = i.to_string();
            r.timestamp = time.into();
            buffer.push(r);
        }
        let drained = buffer.drain();
        let messages: Vec<&str> = drained.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["0", "1"]);
        assert_eq!(SystemTime::from(drained[1].timestamp), later);
    }
}
