//! A month of hourly runs of a podcast client, replayed through the crate's
//! real layer, state file and decision code with a manual clock and a
//! recording transport, for several policies.
//!
//! ```text
//! cargo run --release --example simulate [-- --days 30 --seed 7]
//! ```
//!
//! Twenty feeds fail in three ways: one-off blips (a feed fails one run),
//! short outages (2–3 runs) and long outages (a day or more). For each policy
//! it prints the emails sent, how many of the long outages were reported,
//! the median runs from an outage's start to its first report, and the emails
//! sent while no long outage was under way (noise).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::Level;
use tracing_email::{
    Builder, EmailLayer, clock::ManualClock, transport::BoxError, transport::Email,
    transport::Transport,
};
use tracing_subscriber::{filter::LevelFilter, prelude::*};

const FEEDS: usize = 20;
const HOUR: Duration = Duration::from_secs(3600);
/// An outage this long or longer is one a person wants to hear about.
const LASTING: usize = 24;

/// A deterministic pseudo-random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Which feeds fail in which run, and the lasting outages.
pub struct Schedule {
    /// `fails[run][feed]`.
    pub fails: Vec<[bool; FEEDS]>,
    /// Lasting outages: `(feed, first run, last run)`.
    pub lasting: Vec<(usize, usize, usize)>,
}

/// Blips (2 % of feed-runs), two short outages of 2–3 runs per feed a
/// month, and a few lasting outages of 1–3 days (one every 7.5 days).
pub fn schedule(runs: usize, seed: u64) -> Schedule {
    let mut rng = Rng(seed.max(1));
    let mut fails = vec![[false; FEEDS]; runs];
    let mut lasting = Vec::new();
    let long_outages = (runs / 180).max(1);
    for _ in 0..long_outages {
        let feed = rng.below(FEEDS as u64) as usize;
        let length = LASTING + rng.below(2 * 24 + 1) as usize;
        let start = rng.below(runs.saturating_sub(length).max(1) as u64) as usize;
        let end = (start + length).min(runs) - 1;
        if lasting
            .iter()
            .any(|&(f, s, e)| f == feed && start <= e + 2 && s <= end + 2)
        {
            continue; // keep outages of one feed apart
        }
        for run in fails.iter_mut().take(end + 1).skip(start) {
            run[feed] = true;
        }
        lasting.push((feed, start, end));
    }
    for feed in 0..FEEDS {
        for _ in 0..(runs / 360).max(1) * 2 {
            let start = rng.below(runs as u64) as usize;
            for run in fails.iter_mut().skip(start).take(2 + rng.below(2) as usize) {
                run[feed] = true;
            }
        }
    }
    for run in fails.iter_mut() {
        for fails in run.iter_mut() {
            if rng.below(100) < 2 {
                *fails = true;
            }
        }
    }
    // A short failure touching a lasting outage would lengthen it: what
    // counts as lasting is read back from the final schedule.
    let lasting = lasting
        .into_iter()
        .map(|(feed, start, _)| {
            let mut start = start;
            while start > 0 && fails[start - 1][feed] {
                start -= 1;
            }
            let mut end = start;
            while end + 1 < runs && fails[end + 1][feed] {
                end += 1;
            }
            (feed, start, end)
        })
        .collect();
    Schedule { fails, lasting }
}

/// Streaks of at least `k` runs in a row in which one feed failed.
pub fn streaks_of_at_least(schedule: &Schedule, k: usize) -> usize {
    (0..FEEDS)
        .map(|feed| {
            let mut streaks = 0;
            let mut run = 0;
            for fails in &schedule.fails {
                run = if fails[feed] { run + 1 } else { 0 };
                if run == k {
                    streaks += 1;
                }
            }
            streaks
        })
        .sum()
}

/// An email: the run it was sent in and the feeds it held.
type Sent = (usize, BTreeSet<String>);

/// Keeps, for each email, the run it was sent in and the feeds it held.
#[derive(Clone, Default)]
struct Recording {
    run: Arc<Mutex<usize>>,
    emails: Arc<Mutex<Vec<Sent>>>,
}

impl Transport for Recording {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        let feeds = email
            .records()
            .iter()
            .filter_map(|r| r.fields.get("feed")?.as_str().map(str::to_owned))
            .collect();
        let run = *self.run.lock().map_err(|_| "poisoned")?;
        self.emails
            .lock()
            .map_err(|_| "poisoned")?
            .push((run, feeds));
        Ok(())
    }
}

/// One policy's results.
#[derive(Debug, Clone)]
pub struct Row {
    /// The policy, as builder calls.
    pub policy: &'static str,
    /// Emails sent.
    pub emails: usize,
    /// Lasting outages reported while under way.
    pub reported: usize,
    /// Lasting outages.
    pub lasting: usize,
    /// Median runs from a lasting outage's start to its first report.
    pub median_runs_to_report: Option<usize>,
    /// The most runs any lasting outage waited for its first report.
    pub max_runs_to_report: Option<usize>,
    /// Emails sent while no lasting outage was under way.
    pub noise: usize,
}

type Policy = (&'static str, fn(Builder) -> Builder);

/// The policies compared.
pub const POLICIES: &[Policy] = &[
    ("batch(1): an email per record", |b| b.batch(1)),
    ("batch(10): the cookbook", |b| b.batch(10)),
    ("threshold(5, WARN)", |b| b.threshold(5, Level::WARN)),
    ("consecutive_runs(4)", |b| b.consecutive_runs(4)),
    ("consecutive_runs(4) + repeat_after(24 h)", |b| {
        b.consecutive_runs(4).repeat_after(24 * HOUR)
    }),
];

/// Replays `schedule` hour by hour through the real layer with `policy`.
pub fn replay(schedule: &Schedule, policy: &Policy, dir: &Path) -> Row {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_793_491_200); // 2026-11-01
    let clock = ManualClock::new(start);
    let recording = Recording::default();
    let state = dir.join(format!(
        "{}.json",
        policy.0.replace(|c: char| !c.is_alphanumeric(), "_")
    ));
    for (run, fails) in schedule.fails.iter().enumerate() {
        clock.set(start + HOUR * run as u32);
        if let Ok(mut r) = recording.run.lock() {
            *r = run;
        }
        let builder = EmailLayer::builder("poca")
            .transport(recording.clone())
            .state_file(&state)
            .from("poca@localhost")
            .to("me@localhost")
            .fingerprint_fields(["feed"])
            .checkpoint_interval(None)
            .clock(clock.clone());
        let (layer, guard) = match (policy.1)(builder).build() {
            Ok(built) => built,
            Err(e) => panic!("{}: {e}", policy.0),
        };
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(LevelFilter::WARN));
        tracing::subscriber::with_default(subscriber, || {
            for (feed, fails) in fails.iter().enumerate() {
                if *fails {
                    tracing::warn!(feed = format!("feed {feed:02}"), "feed failed");
                }
            }
        });
        drop(guard); // the end of the run: one flush
    }
    let emails = recording
        .emails
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    let mut waits = Vec::new();
    for &(feed, first, last) in &schedule.lasting {
        let name = format!("feed {feed:02}");
        if let Some((run, _)) = emails
            .iter()
            .find(|(run, feeds)| (first..=last).contains(run) && feeds.contains(&name))
        {
            waits.push(run - first + 1);
        }
    }
    let noise = emails
        .iter()
        .filter(|(run, _)| {
            !schedule
                .lasting
                .iter()
                .any(|&(_, s, e)| (s..=e).contains(run))
        })
        .count();
    let mut sorted = waits.clone();
    sorted.sort_unstable();
    Row {
        policy: policy.0,
        emails: emails.len(),
        reported: waits.len(),
        lasting: schedule.lasting.len(),
        median_runs_to_report: sorted.get(sorted.len().saturating_sub(1) / 2).copied(),
        max_runs_to_report: sorted.last().copied(),
        noise,
    }
}

fn main() {
    let mut days = 30;
    let mut seed = 7;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--days", Some(v)) => days = v,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("usage: simulate [--days N] [--seed N]");
                std::process::exit(2);
            }
        }
    }
    let schedule = schedule(days as usize * 24, seed);
    let failures: usize = schedule
        .fails
        .iter()
        .map(|r| r.iter().filter(|f| **f).count())
        .sum();
    println!(
        "{days} days of hourly runs, {FEEDS} feeds, {failures} failed feed-runs, {} streaks of 4 runs or more, {} lasting outages (≥ {LASTING} runs), seed {seed}\n",
        streaks_of_at_least(&schedule, 4),
        schedule.lasting.len()
    );
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("temporary folder: {e}"),
    };
    println!(
        "| policy | emails | lasting outages reported | median runs to first report | emails with no lasting outage under way |"
    );
    println!("|---|---:|---:|---:|---:|");
    let rows: Vec<Row> = POLICIES
        .iter()
        .map(|p| replay(&schedule, p, dir.path()))
        .collect();
    for row in &rows {
        println!(
            "| `{}` | {} | {} of {} | {} | {} |",
            row.policy,
            row.emails,
            row.reported,
            row.lasting,
            row.median_runs_to_report
                .map_or("–".into(), |m| m.to_string()),
            row.noise
        );
    }
    let threshold = rows.iter().find(|r| r.policy.starts_with("threshold"));
    let chosen = rows.iter().find(|r| r.policy.contains("repeat_after"));
    if let (Some(t), Some(c)) = (threshold, chosen) {
        let within = c.reported == c.lasting && c.max_runs_to_report.is_some_and(|m| m <= 4);
        let fewer = c.emails * 10 <= t.emails;
        println!(
            "\nconsecutive_runs(4) + repeat_after(24 h): every lasting outage reported within 4 runs: {}; at most a tenth of threshold(5)'s emails ({} vs {}): {}",
            if within { "yes" } else { "NO" },
            c.emails,
            t.emails,
            if fewer { "yes" } else { "NO" }
        );
    }
}
