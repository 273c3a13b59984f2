//! The journal's figures (issue 11), a plain bench binary:
//!
//! - bytes written per checkpoint ÷ JSON bytes of the new records, at
//!   1 000, 10 000 and 100 000 pending: 60 checkpoints of 200 records each
//!   (the long run: 200 records/s for 60 s with 1 s checkpoints, the time
//!   simulated by calling the flush directly), counted from `/proc/self/io`
//!   (`wchar`: every byte passed to `write`, compactions included;
//!   `write_bytes`: what reached the block layer), with the process's CPU
//!   time;
//! - a holding flush with 100 new records (the state kept in memory between
//!   flushes), against a bare "append these 100 lines + fsync", and the
//!   first flush of a run (everything read once).
//!
//! ```text
//! cargo bench --bench journal
//! ```

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::time::{Duration, Instant};

use tracing_email::Outcome;

/// User + system CPU time of this process (clock ticks of 10 ms).
fn cpu() -> Duration {
    let text = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = text.rsplit(')').next().unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// JSON bytes of the records `from..from + n` as the state file keeps them:
/// the snapshot of a state holding `from..=from + n`, less that of one
/// holding only `from + n`.
fn json_bytes(from: usize, n: usize) -> u64 {
    let size = |first: usize, count: usize| {
        let dir = tempfile::tempdir().expect("folder");
        let (dispatch, guard) = common::holding_dispatch(dir.path());
        common::log_failures(&dispatch, first, count);
        assert!(matches!(guard.flush(), Outcome::Held { .. }));
        let len = fs::metadata(dir.path().join("state.json"))
            .expect("state")
            .len();
        std::mem::forget(guard);
        len
    };
    size(from, n + 1) - size(from + n, 1)
}

/// CPU time of this thread so far (`/proc/thread-self/schedstat`, ns).
fn thread_cpu() -> Duration {
    let text = fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    // `JOURNAL_BENCH_HOLD_ONLY=1`: only the holding flushes at 100 000
    // pending (for a profiler).
    let hold_only = std::env::var_os("JOURNAL_BENCH_HOLD_ONLY").is_some();
    let sizes: &[usize] = if hold_only {
        &[100_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    println!("bytes written per checkpoint (60 checkpoints of 200 new records)");
    for &n in sizes.iter().filter(|_| !hold_only) {
        let dir = tempfile::tempdir().expect("folder");
        let (dispatch, guard) = common::holding_dispatch(dir.path());
        common::log_failures(&dispatch, 0, n);
        assert!(matches!(guard.flush(), Outcome::Held { .. }));
        let (w0, b0) = common::io();
        let c0 = cpu();
        let t0 = Instant::now();
        for i in 0..60 {
            common::log_failures(&dispatch, n + i * 200, 200);
            assert!(matches!(guard.flush(), Outcome::Held { .. }));
        }
        let wall = t0.elapsed();
        let cpu_time = cpu() - c0;
        let (w1, b1) = common::io();
        std::mem::forget(guard);
        let new = json_bytes(n, 60 * 200);
        println!(
            "  {n:>6} pending: new records {new} B of JSON; written {} B (wchar) = {:.2}x, \
             {} B (write_bytes) = {:.2}x; CPU {:?}, wall {:?} for 60 checkpoints",
            w1 - w0,
            (w1 - w0) as f64 / new as f64,
            b1 - b0,
            (b1 - b0) as f64 / new as f64,
            cpu_time,
            wall
        );
    }

    println!(
        "holding flush with 100 new records, alternating with a bare append of the same \
         100 lines + fsync (medians of 50; N grows by 100 per flush)"
    );
    for &n in sizes {
        let dir = tempfile::tempdir().expect("folder");
        let (dispatch, guard) = common::holding_dispatch(dir.path());
        common::log_failures(&dispatch, 0, n);
        assert!(matches!(guard.flush(), Outcome::Held { .. }));
        let journal = dir.path().join("state.json.journal");
        let bare_path = dir.path().join("bare.jsonl");
        let (mut times, mut cpu_times, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..50 {
            common::log_failures(&dispatch, n + i * 100, 100);
            let before = fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
            let (t, c) = (Instant::now(), thread_cpu());
            assert!(matches!(guard.flush(), Outcome::Held { .. }));
            times.push(t.elapsed());
            cpu_times.push(thread_cpu() - c);
            // The bare work: the lines this flush appended, appended to a
            // file of their own, fsync.
            let bytes = fs::read(&journal).unwrap_or_default();
            let start = (before as usize).min(bytes.len());
            let chunk = &bytes[start..];
            let t = Instant::now();
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&bare_path)
                .expect("bare");
            f.write_all(chunk).expect("write");
            f.sync_data().expect("fsync");
            bare.push(t.elapsed());
        }
        std::mem::forget(guard);
        // The first flush of a run: a new guard reads everything once.
        let mut first = Vec::new();
        for i in 0..if hold_only { 1 } else { 5 } {
            let (d, g) = common::holding_dispatch(dir.path());
            common::log_failures(&d, n + 5_000 + i * 100, 100);
            let t = Instant::now();
            assert!(matches!(g.flush(), Outcome::Held { .. }));
            first.push(t.elapsed());
            std::mem::forget(g);
        }
        let (h, b) = (median(times), median(bare));
        println!(
            "  {n:>6} pending: hold {h:?} (CPU {:?}), bare append+fsync {b:?} ({:.2}x); \
             first flush of a run {:?}",
            median(cpu_times),
            h.as_secs_f64() / b.as_secs_f64(),
            median(first)
        );
    }
}
