//! One run of a podcast client, as in the blog post this crate comes from:
//! some feeds fail, each failure is a WARN record, and one email goes out
//! only once enough failures have piled up across runs.
//!
//! ```text
//! cargo run --example podcast -- --state-file PATH --smtp-url URL [--ca-cert PEM_FILE]
//!     [--feeds M] [--failures N] [--threshold K] [--timeout SECS] [--from ADDR] [--to ADDR]
//! ```
//!
//! M feeds (default 8), the first N of which (default 0) fail; app name
//! `poca`; `threshold(K, WARN)` with K = 5 by default. The password comes from
//! the URL or from `SMTP_PASSWORD`. Prints the outcome; exit status 0 for
//! nothing, held or sent, 1 when sending failed, 2 for bad arguments.

use std::process::ExitCode;
use std::time::Duration;

use tracing::Level;
use tracing_email::{EmailLayer, Outcome, Smtp};
use tracing_subscriber::{filter::LevelFilter, prelude::*};

const USAGE: &str = "usage: podcast --state-file PATH --smtp-url URL [--ca-cert PEM_FILE] \
                     [--feeds M] [--failures N] [--threshold K] [--timeout SECS] [--from ADDR] [--to ADDR]";

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

struct Args {
    state_file: String,
    smtp_url: String,
    ca_cert: Option<String>,
    feeds: usize,
    failures: usize,
    threshold: usize,
    timeout: Option<u64>,
    from: String,
    to: Option<String>,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut parsed = Args {
        state_file: String::new(),
        smtp_url: String::new(),
        ca_cert: None,
        feeds: 8,
        failures: 0,
        threshold: 5,
        timeout: None,
        from: "poca <poca@localhost>".into(),
        to: None,
    };
    let number = |flag: &str, v: String| {
        v.parse::<usize>()
            .map_err(|_| format!("{flag} needs a number, not {v:?}"))
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--state-file" => parsed.state_file = value,
            "--smtp-url" => parsed.smtp_url = value,
            "--ca-cert" => parsed.ca_cert = Some(value),
            "--feeds" => parsed.feeds = number(&flag, value)?,
            "--failures" => parsed.failures = number(&flag, value)?,
            "--threshold" => parsed.threshold = number(&flag, value)?,
            "--timeout" => parsed.timeout = Some(number(&flag, value)? as u64),
            "--from" => parsed.from = value,
            "--to" => parsed.to = Some(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if parsed.state_file.is_empty() || parsed.smtp_url.is_empty() {
        return Err("--state-file and --smtp-url are required".into());
    }
    if parsed.failures > parsed.feeds {
        return Err(format!(
            "--failures {} is more than --feeds {}",
            parsed.failures, parsed.feeds
        ));
    }
    Ok(parsed)
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

    let run = tracing::info_span!("poca", feeds = args.feeds);
    run.in_scope(|| {
        for i in 0..args.feeds {
            let feed = FEEDS
                .get(i)
                .map(|f| f.to_string())
                .unwrap_or_else(|| format!("Feed {}", i + 1));
            let url = format!("https://podcasts.example/{}/rss", i + 1);
            if i < args.failures {
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

fn setup(args: &Args) -> Result<tracing_email::FlushGuard, String> {
    let mut smtp = Smtp::from_url(&args.smtp_url).map_err(|e| e.to_string())?;
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
    let (email, guard) = EmailLayer::builder("poca")
        .transport(smtp)
        .state_file(&args.state_file)
        .from(args.from.clone())
        .to(to)
        .subject("POCA log")
        .threshold(args.threshold, Level::WARN)
        .build()
        .map_err(|e| e.to_string())?;
    tracing_subscriber::registry()
        .with(email.with_filter(LevelFilter::INFO))
        .init();
    Ok(guard)
}
