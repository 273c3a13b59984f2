//! One run of a podcast client, as in the blog post this crate comes from:
//! some feeds fail, each failure is a WARN record with the feed in a `feed`
//! field, and an email goes out only once the failures say something.
//!
//! ```text
//! cargo run --example podcast -- --state-file PATH (--smtp-url URL | --outbox DIR)
//!     [--alertmanager URL]... [--host NAME]
//!     [--ca-cert PEM_FILE] [--feeds M] [--failures N] [--fail NAME]...
//!     [--threshold K] [--consecutive-runs K] [--repeat-after SECS] [--now RFC3339]
//!     [--timeout SECS] [--from ADDR] [--to ADDR] [--notify-recovery]
//! ```
//!
//! M feeds (default 8, among them `Radio Café`, `Ääniraita`, `ポッドキャスト`);
//! the first N (default 0) fail, or with `--fail NAME` (repeatable) exactly the
//! named feeds fail (a name that is not built in adds a feed). App name `poca`;
//! records are fingerprinted by their `feed`. `threshold(K, WARN)` with K = 5
//! by default; with `--consecutive-runs K`, a feed failing in each of the last
//! K runs sends, and the count threshold applies only if `--threshold` is
//! given too. `--repeat-after SECS` keeps a reported feed quiet that long;
//! `--now` sets the clock for this run. With `--notify-recovery`, a feed
//! that was reported as persisting and then does not fail in a run gets a
//! "resolved" email (or a Resolved section in a digest going out).
//! `--alertmanager URL` (repeatable) also posts the failures to
//! Alertmanager, as the host `--host NAME` (the machine's name by default;
//! the digest names it too); with `--alertmanager` and neither `--smtp-url`
//! nor `--outbox`, alerts are the only destination. The password comes from
//! the URL or from `SMTP_PASSWORD`. Prints the outcome; exit status 0 for nothing, held,
//! waiting or sent, 1 when sending failed, 2 for bad arguments.

use std::process::ExitCode;
use std::time::Duration;

use tracing::Level;
use tracing_email::{Builder, EmailLayer, FileDrop, Outcome, Smtp, clock::ManualClock};
use tracing_subscriber::{filter::LevelFilter, prelude::*};

const USAGE: &str = "usage: podcast --state-file PATH (--smtp-url URL | --outbox DIR) \
                     [--alertmanager URL]... [--host NAME] [--ca-cert PEM_FILE] [--feeds M] [--failures N] [--fail NAME]... \
                     [--threshold K] [--consecutive-runs K] [--repeat-after SECS] \
                     [--now RFC3339] [--timeout SECS] [--from ADDR] [--to ADDR] \
                     [--notify-recovery]";

/// The built-in feeds; more than these are named `Feed 9`, `Feed 10`, …
const FEEDS: [&str; 8] = [
    "Radio Café",
    "Ääniraita",
    "ポッドキャスト",
    "Hörspiel Stunde",
    "Ψηφιακό Ραδιόφωνο",
    "Rust in Production",
    "The Changelog",
    "Late Night Linux",
];

fn main() -> ExitCode {
    ExitCode::from(run(std::env::args().skip(1).collect()))
}

#[derive(Default)]
struct Args {
    state_file: String,
    smtp_url: Option<String>,
    outbox: Option<String>,
    ca_cert: Option<String>,
    feeds: Option<usize>,
    failures: usize,
    fail: Vec<String>,
    threshold: Option<usize>,
    consecutive_runs: Option<u64>,
    repeat_after: Option<u64>,
    now: Option<time::OffsetDateTime>,
    timeout: Option<u64>,
    from: Option<String>,
    to: Option<String>,
    notify_recovery: bool,
    alertmanager: Vec<String>,
    host: Option<String>,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut parsed = Args::default();
    let number = |flag: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{flag} needs a number, not {v:?}"))
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--notify-recovery" {
            parsed.notify_recovery = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--state-file" => parsed.state_file = value,
            "--smtp-url" => parsed.smtp_url = Some(value),
            "--outbox" => parsed.outbox = Some(value),
            "--ca-cert" => parsed.ca_cert = Some(value),
            "--feeds" => parsed.feeds = Some(number(&flag, &value)? as usize),
            "--failures" => parsed.failures = number(&flag, &value)? as usize,
            "--fail" => parsed.fail.push(value),
            "--threshold" => parsed.threshold = Some(number(&flag, &value)? as usize),
            "--consecutive-runs" => parsed.consecutive_runs = Some(number(&flag, &value)?),
            "--repeat-after" => parsed.repeat_after = Some(number(&flag, &value)?),
            "--now" => {
                let now = time::OffsetDateTime::parse(
                    &value,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| format!("--now needs an RFC 3339 time, not {value:?} ({e})"))?;
                parsed.now = Some(now);
            }
            "--timeout" => parsed.timeout = Some(number(&flag, &value)?),
            "--from" => parsed.from = Some(value),
            "--to" => parsed.to = Some(value),
            "--alertmanager" => parsed.alertmanager.push(value),
            "--host" => parsed.host = Some(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if parsed.state_file.is_empty() {
        return Err("--state-file is required".into());
    }
    if parsed.smtp_url.is_some() && parsed.outbox.is_some()
        || parsed.smtp_url.is_none() && parsed.outbox.is_none() && parsed.alertmanager.is_empty()
    {
        return Err("give one of --smtp-url URL or --outbox DIR (or --alertmanager URL)".into());
    }
    let feeds = parsed.feeds.unwrap_or(FEEDS.len());
    if parsed.fail.is_empty() && parsed.failures > feeds {
        return Err(format!(
            "--failures {} is more than --feeds {feeds}",
            parsed.failures
        ));
    }
    Ok(parsed)
}

/// The feeds of this run and whether each fails.
fn feeds(args: &Args) -> Vec<(String, bool)> {
    let count = args.feeds.unwrap_or(FEEDS.len());
    let mut feeds: Vec<(String, bool)> = (0..count)
        .map(|i| {
            let name = FEEDS
                .get(i)
                .map(|f| f.to_string())
                .unwrap_or_else(|| format!("Feed {}", i + 1));
            let fails = if args.fail.is_empty() {
                i < args.failures
            } else {
                args.fail.contains(&name)
            };
            (name, fails)
        })
        .collect();
    for name in &args.fail {
        if !feeds.iter().any(|(f, _)| f == name) {
            feeds.push((name.clone(), true));
        }
    }
    feeds
}

/// Runs one podcast client run; returns the exit status.
pub fn run(args: Vec<String>) -> u8 {
    let args = match parse(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("podcast: {message}\n{USAGE}");
            return 2;
        }
    };
    let guard = match setup(&args) {
        Ok(guard) => guard,
        Err(message) => {
            eprintln!("podcast: {message}");
            return 2;
        }
    };

    let feeds = feeds(&args);
    let run = tracing::info_span!("poca", feeds = feeds.len());
    run.in_scope(|| {
        for (i, (feed, fails)) in feeds.iter().enumerate() {
            let url = format!("https://podcasts.example/{}/rss", i + 1);
            if *fails {
                tracing::warn!(feed, url, error = "connection timed out", "feed failed");
            } else {
                tracing::info!(feed, new_episodes = i % 3, "feed updated");
            }
        }
    });

    let outcome = guard.flush();
    println!("{outcome}");
    match outcome {
        Outcome::Failed { .. } => 1,
        _ => 0,
    }
}

fn policy(args: &Args, builder: Builder) -> Builder {
    let mut builder = builder.fingerprint_fields(["feed"]);
    match (args.consecutive_runs, args.threshold) {
        (Some(k), Some(count)) => {
            builder = builder.consecutive_runs(k).threshold(count, Level::WARN)
        }
        (Some(k), None) => builder = builder.consecutive_runs(k),
        (None, count) => builder = builder.threshold(count.unwrap_or(5), Level::WARN),
    }
    if let Some(secs) = args.repeat_after {
        builder = builder.repeat_after(Duration::from_secs(secs));
    }
    if let Some(now) = args.now {
        builder = builder.clock(ManualClock::new(now.into()));
    }
    builder.notify_recovery(args.notify_recovery)
}

#[cfg(feature = "alertmanager")]
fn alerts(args: &Args, builder: Builder) -> Result<Builder, String> {
    let mut am = tracing_email::Alertmanager::new(args.alertmanager.iter().cloned());
    if let Some(secs) = args.timeout {
        am = am.timeout(Duration::from_secs(secs));
    }
    Ok(builder.alerts(am))
}

#[cfg(not(feature = "alertmanager"))]
fn alerts(_: &Args, _: Builder) -> Result<Builder, String> {
    Err("--alertmanager needs tracing-email's `alertmanager` feature".into())
}

fn setup(args: &Args) -> Result<tracing_email::FlushGuard, String> {
    let mut builder = EmailLayer::builder("poca").state_file(&args.state_file);
    if args.smtp_url.is_some() || args.outbox.is_some() {
        builder = builder.from(
            args.from
                .clone()
                .unwrap_or_else(|| "poca <poca@localhost>".into()),
        );
    }
    if let Some(host) = &args.host {
        builder = builder.host(host);
    }
    if !args.alertmanager.is_empty() {
        builder = alerts(args, builder)?;
    }
    // The blog post's subject; following failures across runs, the default
    // subject names the feed that keeps failing instead.
    if args.consecutive_runs.is_none() {
        builder = builder.subject("POCA log");
    }
    let builder = match (&args.smtp_url, &args.outbox) {
        (Some(url), _) => {
            let mut smtp = Smtp::from_url(url).map_err(|e| e.to_string())?;
            if !smtp.has_password()
                && let Ok(password) = std::env::var("SMTP_PASSWORD")
            {
                smtp = smtp.password(password);
            }
            if let Some(secs) = args.timeout {
                smtp = smtp.timeout(Duration::from_secs(secs));
            }
            if let Some(path) = &args.ca_cert {
                let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
                smtp = smtp.root_certificate(pem);
            }
            let to = args
                .to
                .clone()
                .or_else(|| smtp.user().filter(|u| u.contains('@')).map(str::to_owned))
                .unwrap_or_else(|| "poca@localhost".into());
            builder.transport(smtp).to(to)
        }
        (None, Some(outbox)) => builder
            .transport(FileDrop::new(outbox))
            .to(args.to.clone().unwrap_or_else(|| "poca@localhost".into())),
        // Alertmanager alone (checked by parse).
        (None, None) => builder,
    };
    let (email, guard) = policy(args, builder).build().map_err(|e| e.to_string())?;
    tracing_subscriber::registry()
        .with(email.with_filter(LevelFilter::INFO))
        .init();
    Ok(guard)
}
