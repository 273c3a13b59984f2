//! The in-memory pending records of this process: the event path's only
//! destination.
//!
//! Records go into one of several shards, chosen per thread, so threads that
//! log at the same time do not meet on a lock or a shared counter. Each shard
//! keeps its records in time order (a clock that steps back is clamped), so
//! draining merges the shards by time and keeps each thread's order. Times
//! outside the years 1970 to 9999 (a clock gone wrong) are clamped, so that
//! every record can be stored and shown. A shard keeps its records in chunks
//! of a bounded size: a burst adds chunks rather than copying every record
//! into a larger list, and a drain gives all but the first chunk back.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use serde_json::Value;
use tracing::Metadata;

use crate::capture::record::Record;
use crate::capture::scope::Spans;
use crate::sync::lock;

/// 56 bytes each beside text and values; a drained shard keeps one chunk's room.
const CHUNK: usize = 1024;

const TEXT_KEEP: usize = 64 * 1024;

/// The event's static metadata by reference, made a [`Record`] only at flush.
enum Captured {
    Event(Event),
    Record(Box<Record>),
}

/// Message and values live in the buffer's shared text and list: no allocation per event.
struct Event {
    time: SystemTime,
    meta: &'static Metadata<'static>,
    message_len: usize,
    fields: usize,
    /// Shared with the span's other records while no span of it changes.
    spans: Spans,
}

#[repr(align(128))] // one cache line pair per shard: no false sharing
struct Shard(Mutex<Queue>);

/// No chunk is empty unless it is the only one.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Chunk>,
    len: usize,
}

#[derive(Default)]
struct Chunk {
    records: VecDeque<Captured>,
    text: String,
    /// Messages of records dropped from the front stay until the chunk goes.
    text_start: usize,
    values: Vec<(&'static str, Value)>,
    /// Values of records dropped from the front are emptied, and stay until the chunk goes.
    values_start: usize,
}

impl Chunk {
    /// Once the dead part outweighs the live: a full shard drops one record per add.
    fn compact(&mut self) {
        if self.text_start * 2 > self.text.len() && self.text.is_char_boundary(self.text_start) {
            self.text.replace_range(..self.text_start, "");
            self.text_start = 0;
        }
        if self.values_start * 2 > self.values.len() {
            self.values.drain(..self.values_start);
            self.values_start = 0;
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Record>) {
        let mut at = self.text_start;
        let mut values = self.values.drain(..).skip(self.values_start);
        for captured in self.records.drain(..) {
            out.push(match captured {
                Captured::Record(record) => *record,
                Captured::Event(e) => {
                    let end = (at + e.message_len).min(self.text.len());
                    let message = self.text.get(at..end).unwrap_or_default().to_owned();
                    at = end;
                    // Exactly the room the fields need.
                    let mut fields = Vec::with_capacity(e.fields);
                    let taken = values.by_ref().take(e.fields);
                    fields.extend(taken.map(|(k, v)| (Cow::Borrowed(k), v)));
                    Record::of_event(e.meta, Cow::Borrowed, e.time, message, fields, e.spans)
                }
            });
        }
        drop(values);
        self.text.clear();
        self.text_start = 0;
        self.values_start = 0;
    }
}

impl Queue {
    fn last(&mut self) -> &mut Chunk {
        if self.chunks.back().is_none_or(|c| c.records.len() >= CHUNK) {
            let mut chunk = Chunk::default();
            if !self.chunks.is_empty() {
                chunk.records.reserve_exact(CHUNK);
            }
            self.chunks.push_back(chunk);
        }
        let last = self.chunks.len() - 1;
        &mut self.chunks[last]
    }

    fn push_front(&mut self, record: Captured) {
        match self.chunks.front_mut() {
            Some(first) if first.records.len() < CHUNK => first.records.push_front(record),
            _ => self.chunks.push_front(Chunk {
                records: VecDeque::from([record]),
                ..Chunk::default()
            }),
        }
        self.len += 1;
    }

    /// False only when empty.
    fn pop_front(&mut self) -> bool {
        let Some(first) = self.chunks.front_mut() else {
            return false;
        };
        match first.records.pop_front() {
            Some(Captured::Event(e)) => {
                first.text_start += e.message_len;
                let end = (first.values_start + e.fields).min(first.values.len());
                for (_, value) in &mut first.values[first.values_start..end] {
                    *value = Value::Null;
                }
                first.values_start = end;
                first.compact();
            }
            Some(Captured::Record(_)) => {}
            None => return false,
        }
        if first.records.is_empty() && self.chunks.len() > 1 {
            self.chunks.pop_front();
        }
        self.len -= 1;
        true
    }
}

pub(crate) struct Buffer {
    shards: Box<[Shard]>,
    /// Past it the pushing thread drops the shard's oldest record.
    cap: usize,
    dropped: AtomicU64,
}

fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SHARD.try_with(|s| *s).unwrap_or(0)
}

impl Buffer {
    pub(crate) fn new(cap: usize) -> Self {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)
            .clamp(2, 32)
            * 2;
        // A power of two, so that a thread finds its shard by a mask.
        let n = n.next_power_of_two();
        Buffer {
            shards: (0..n).map(|_| Shard(Mutex::default())).collect(),
            cap: cap.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn push(&self, mut record: Record) -> usize {
        let made = SystemTime::from(record.timestamp);
        self.add(made, |time, chunk| {
            if time != made {
                record.timestamp = time.into();
            }
            chunk.records.push_back(Captured::Record(Box::new(record)));
        })
    }

    pub(crate) fn push_event(
        &self,
        time: SystemTime,
        meta: &'static Metadata<'static>,
        spans: Spans,
        message: &str,
        fields: &mut Vec<(&'static str, Value)>,
    ) -> usize {
        self.add(time, |time, chunk| {
            chunk.records.push_back(Captured::Event(Event {
                time,
                meta,
                message_len: message.len(),
                fields: fields.len(),
                spans,
            }));
            chunk.text.push_str(message);
            chunk.values.append(fields);
        })
    }

    fn add(&self, time: SystemTime, add: impl FnOnce(SystemTime, &mut Chunk)) -> usize {
        let shard = &self.shards[thread_shard() & (self.shards.len() - 1)];
        let mut queue = lock(&shard.0);
        // Keep the shard in time order even if the clock stepped back.
        let time = crate::clock::representable(time);
        let last = queue.chunks.back().and_then(|c| c.records.back());
        let kept = last.map_or(time, |last| time.max(last.time()));
        add(kept, queue.last());
        queue.len += 1;
        if queue.len > self.cap && queue.pop_front() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.len
    }

    pub(crate) fn drain(&self) -> Vec<Record> {
        // Taken whole, so that each shard's lock is held only for that.
        let taken: Vec<Queue> = self
            .shards
            .iter()
            .map(|shard| std::mem::take(&mut *lock(&shard.0)))
            .collect();
        let mut out = Vec::with_capacity(taken.iter().map(|q| q.len).sum());
        for (shard, queue) in self.shards.iter().zip(taken) {
            let mut chunks = queue.chunks.into_iter();
            let Some(mut first) = chunks.next() else {
                continue;
            };
            first.drain_into(&mut out);
            chunks.for_each(|mut chunk| chunk.drain_into(&mut out));
            // The first chunk's room is kept for the next records, unless
            // some came meanwhile, or its text grew large.
            if first.text.capacity() > TEXT_KEEP {
                first.text = String::new();
            }
            if first.values.capacity() > CHUNK {
                first.values = Vec::new();
            }
            let mut queue = lock(&shard.0);
            if queue.chunks.is_empty() {
                queue.chunks.push_back(first);
            }
        }
        // Each shard is in time order: the stable sort merges the runs and
        // keeps the order of records with the same time.
        out.sort_by_key(|r| r.timestamp);
        out
    }

    /// Ahead of anything pushed since, with the dropped count not yet reported.
    pub(crate) fn restore(&self, records: Vec<Record>, dropped: u64) {
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        if let Some(shard) = self.shards.first() {
            let mut queue = lock(&shard.0);
            for record in records.into_iter().rev() {
                queue.push_front(Captured::Record(Box::new(record)));
            }
        }
    }

    pub(crate) fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).len).sum()
    }
}

impl Captured {
    fn time(&self) -> SystemTime {
        match self {
            Captured::Event(e) => e.time,
            Captured::Record(r) => SystemTime::from(r.timestamp),
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
    fn a_burst_fills_chunks_and_a_drain_keeps_only_the_first_ones_room() {
        let buffer = Buffer::new(10_000);
        for i in 0..3 * CHUNK + 5 {
            let mut r = record_at(Level::INFO);
            r.message = i.to_string();
            buffer.push(r);
        }
        let shard = &buffer.shards[thread_shard() & (buffer.shards.len() - 1)];
        assert_eq!(lock(&shard.0).chunks.len(), 4);
        let drained = buffer.drain();
        let expected: Vec<String> = (0..3 * CHUNK + 5).map(|i| i.to_string()).collect();
        let messages: Vec<String> = drained.into_iter().map(|r| r.message).collect();
        assert_eq!(messages, expected);
        let queue = lock(&shard.0);
        assert_eq!((queue.chunks.len(), queue.len), (1, 0));
        assert!(queue.chunks[0].records.capacity() <= CHUNK);
    }

    /// The metadata of an event, as the layer is given it.
    fn event_metadata() -> &'static tracing::Metadata<'static> {
        use tracing_subscriber::prelude::*;
        static GRABBED: Mutex<Option<&'static tracing::Metadata<'static>>> = Mutex::new(None);
        struct Grab;
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Grab {
            fn on_event(
                &self,
                e: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                *lock(&GRABBED) = Some(e.metadata());
            }
        }
        let subscriber = tracing_subscriber::registry().with(Grab);
        tracing::subscriber::with_default(subscriber, || tracing::info!(n = 1, "m"));
        lock(&GRABBED).expect("an event")
    }

    #[test]
    fn a_full_shard_that_keeps_dropping_keeps_only_its_records_texts_and_values() {
        let meta = event_metadata();
        let buffer = Buffer::new(3);
        for i in 0..10_000u64 {
            let mut fields = vec![("n", Value::from(i))];
            let message = format!("message {i}");
            buffer.push_event(SystemTime::now(), meta, None, &message, &mut fields);
            assert!(fields.is_empty());
        }
        assert_eq!(buffer.take_dropped(), 9_997);
        {
            let shard = &buffer.shards[thread_shard() & (buffer.shards.len() - 1)];
            let queue = lock(&shard.0);
            let chunk = &queue.chunks[0];
            assert!(
                chunk.text.len() <= 2 * 3 * "message 9999".len(),
                "{}",
                chunk.text.len()
            );
            assert!(chunk.values.len() <= 2 * 3, "{}", chunk.values.len());
        }
        let kept: Vec<(String, Value)> = buffer
            .drain()
            .into_iter()
            .map(|r| (r.message.clone(), r.fields.get("n").cloned().unwrap()))
            .collect();
        let expected: Vec<(String, Value)> = (9_997..10_000u64)
            .map(|i| (format!("message {i}"), Value::from(i)))
            .collect();
        assert_eq!(kept, expected);
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
