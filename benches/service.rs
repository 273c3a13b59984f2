//! A long-running service at `max_pending` (issue 22, point 3): 10 000
//! records pending, 200 new records a second, a checkpoint every second,
//! for 60 s of simulated time (a [`ManualClock`] moved a second per
//! checkpoint; nothing sleeps). Printed before the timing:
//!
//! - bytes written over the 60 checkpoints ÷ JSON bytes of the 12 000 new
//!   records, from `/proc/self/io` (`wchar`: every byte passed to `write`;
//!   `write_bytes`: what reached the block layer), and the snapshot's
//!   rewrites (compactions) among them; the target is at most 2×;
//! - the same over 300 s, long enough for the journal to outgrow the
//!   snapshot and be compacted: what a service pays in the long run;
//! - memory (a counting allocator) after each checkpoint: the first, the
//!   last and the largest; the target is flat.
//!
//! Then criterion times one checkpoint of 200 records at 10 000 pending.
//!
//! ```text
//! cargo bench --bench service              # a few seconds
//! cargo bench --bench service -- --quick   # criterion's short mode
//! ```

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::Level;
use tracing_email::{EmailLayer, FileDrop, FlushGuard, Outcome, clock::ManualClock};
use tracing_subscriber::prelude::*;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

const MAX_PENDING: usize = 10_000;
const PER_SECOND: usize = 200;

/// A service's layer: holds everything (no rule is met), keeps at most
/// `max_pending` records, reads the time from `clock`; its checkpoints are
/// the flushes the bench calls.
fn service(dir: &Path, clock: &ManualClock, max_pending: usize) -> (tracing::Dispatch, FlushGuard) {
    let (layer, guard) = EmailLayer::builder("bench")
        .clock(clock.clone())
        .transport(FileDrop::new(dir.join("outbox")))
        .state_file(dir.join("state.json"))
        .from("bench@example.com")
        .to("bench@example.com")
        .threshold(usize::MAX, Level::ERROR)
        .max_pending(max_pending)
        .checkpoint_interval(None)
        .build()
        .expect("layer");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    (dispatch, guard)
}

fn hold(guard: &FlushGuard) {
    let outcome = guard.flush();
    assert!(matches!(outcome, Outcome::Held { .. }), "{outcome}");
}

/// A service at `max_pending`, its clock and the number of the next record.
struct Service {
    dir: tempfile::TempDir,
    clock: ManualClock,
    dispatch: tracing::Dispatch,
    guard: FlushGuard,
    next: usize,
}

impl Service {
    /// Filled to `max_pending`, and stored.
    fn at_max_pending() -> Self {
        let dir = tempfile::tempdir().expect("folder");
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let (dispatch, guard) = service(dir.path(), &clock, MAX_PENDING);
        common::log_failures(&dispatch, 0, MAX_PENDING);
        hold(&guard);
        Service {
            dir,
            clock,
            dispatch,
            guard,
            next: MAX_PENDING,
        }
    }

    /// One simulated second: 200 records, then the checkpoint.
    fn second(&mut self) {
        self.clock.advance(Duration::from_secs(1));
        common::log_failures(&self.dispatch, self.next, PER_SECOND);
        self.next += PER_SECOND;
        hold(&self.guard);
    }

    fn snapshot_inode(&self) -> u64 {
        let meta = fs::metadata(self.dir.path().join("state.json")).expect("snapshot");
        std::os::unix::fs::MetadataExt::ino(&meta)
    }
}

/// JSON bytes of the records `from..from + n` as the state file keeps them:
/// the snapshot of a state holding `from..=from + n`, less that of one
/// holding only `from + n`.
fn json_bytes(from: usize, n: usize) -> u64 {
    let size = |first: usize, count: usize| {
        let dir = tempfile::tempdir().expect("folder");
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let (dispatch, guard) = service(dir.path(), &clock, usize::MAX);
        common::log_failures(&dispatch, first, count);
        hold(&guard);
        fs::metadata(dir.path().join("state.json"))
            .expect("state")
            .len()
    };
    size(from, n + 1) - size(from + n, 1)
}

/// Runs `seconds` simulated seconds at `max_pending` and prints what was
/// written and the memory after each checkpoint.
fn run_for(seconds: usize) {
    let mut service = Service::at_max_pending();
    let (w0, b0) = common::io();
    let mut inode = service.snapshot_inode();
    let (mut rewrites, mut live) = (0, Vec::new());
    for _ in 0..seconds {
        service.second();
        live.push(common::allocated());
        let now = service.snapshot_inode();
        rewrites += usize::from(now != inode);
        inode = now;
    }
    let (w1, b1) = common::io();
    let new = json_bytes(MAX_PENDING, seconds * PER_SECOND);
    let ratio = |written: u64| written as f64 / new as f64;
    println!(
        "  {seconds:>3} s: new records {new} B of JSON; written {} B (wchar) = {:.2}x, \
         {} B (write_bytes) = {:.2}x; snapshot rewritten {rewrites} times",
        w1 - w0,
        ratio(w1 - w0),
        b1 - b0,
        ratio(b1 - b0),
    );
    let mib = |b: isize| b as f64 / (1 << 20) as f64;
    let (first, last) = (live[0], live[live.len() - 1]);
    let most = live.iter().copied().max().unwrap_or(0);
    println!(
        "         memory after each checkpoint: first {:.2} MiB, last {:.2} MiB, largest \
         {:.2} MiB ({:+.1}% first to last)",
        mib(first),
        mib(last),
        mib(most),
        (last - first) as f64 * 100.0 / first as f64
    );
}

fn at_max_pending(c: &mut Criterion) {
    println!(
        "a service at max_pending ({MAX_PENDING} pending, {PER_SECOND} new records a second, \
         a checkpoint a second, simulated time)"
    );
    run_for(60);
    run_for(300);

    let mut service = Service::at_max_pending();
    let mut group = c.benchmark_group("service");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("checkpoint_200_records_at_10k_pending", |b| {
        b.iter(|| service.second())
    });
    group.finish();
}

criterion_group!(benches, at_max_pending);
criterion_main!(benches);
