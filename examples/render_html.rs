//! Writes the HTML parts of realistic emails to files, through the crate's
//! real code: six hourly runs of a podcast client on the host `web-3`
//! (`Radio Café` failing in each, `Ääniraita` in every other one, INFO
//! context, spans), `consecutive_runs(4)` and `notify_recovery`, then a run
//! with every feed working. Each run is a layer and guard of its own over
//! one state file, with a clock set to its hour, and a transport that keeps
//! the emails instead of sending them.
//!
//! ```text
//! cargo run --example render_html              # writes target/digest.html and target/resolved.html
//! cargo run --example render_html -- DIR       # writes DIR/digest.html and DIR/resolved.html
//! ```
//!
//! `scripts/screenshot-digest.sh` runs it and renders the digest with
//! headless Chromium into `docs/` (800 and 320 px, light and dark).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_email::{
    EmailLayer, clock::ManualClock, transport::BoxError, transport::Email, transport::Transport,
};
use tracing_subscriber::prelude::*;

/// A transport that keeps the emails it is given.
#[derive(Clone, Default)]
struct Keep(Arc<Mutex<Vec<Email>>>);

impl Transport for Keep {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        self.0.lock().map_err(|_| "poisoned")?.push(email.clone());
        Ok(())
    }
}

/// The podcast client's feeds.
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target: PathBuf = [env!("CARGO_MANIFEST_DIR"), "target"].iter().collect();
    let out = std::env::args_os()
        .nth(1)
        .map_or(target.clone(), PathBuf::from);
    // A fresh state file, so the emails hold these runs' records only; in
    // the temporary folder, so the footer (which names it) shows no checkout.
    let state = std::env::temp_dir().join("poca").join("state.json");
    match std::fs::remove_file(&state) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let kept = Keep::default();
    let start = time::macros::datetime!(2026-11-21 00:00 UTC);
    let clock = ManualClock::new(start.into());
    for hour in 1..=7 {
        clock.advance(Duration::from_secs(3600));
        println!("run {hour}: {}", one_run(hour, &state, &kept, &clock)?);
    }
    let emails = kept.0.lock().map_err(|_| "poisoned")?.clone();
    let [digest, resolved] = &emails[..] else {
        return Err(format!(
            "expected a digest and a resolved email, got {}",
            emails.len()
        )
        .into());
    };
    std::fs::create_dir_all(&out)?;
    for (email, name) in [(digest, "digest.html"), (resolved, "resolved.html")] {
        let html = email.html().ok_or("an email has no HTML part")?;
        let path = out.join(name);
        std::fs::write(&path, html)?;
        println!(
            "{}\nwrote {} ({} bytes)",
            email.subject(),
            path.display(),
            html.len()
        );
    }
    Ok(())
}

/// Run `hour` of the scenario, a layer and guard of its own: `Radio Café`
/// failing in the first six, `Ääniraita` in every other one, no feed in the
/// seventh. Returns the flush's outcome.
fn one_run(
    hour: u32,
    state: &std::path::Path,
    kept: &Keep,
    clock: &ManualClock,
) -> Result<tracing_email::Outcome, tracing_email::Error> {
    let failing: &[&str] = match hour {
        7.. => &[],
        h if h % 2 == 0 => &["Radio Café", "Ääniraita"],
        _ => &["Radio Café"],
    };
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(kept.clone())
        .state_file(state)
        .from("poca <robot@example.com>")
        .to("me@example.com")
        .host("web-3")
        .clock(clock.clone())
        .checkpoint_interval(None)
        .consecutive_runs(4)
        .fingerprint_fields(["feed"])
        .notify_recovery(true)
        .build()?;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || run(failing));
    Ok(guard.flush())
}

/// One run of the podcast client: each feed fetched in a span of its own,
/// those in `failing` failing.
fn run(failing: &[&str]) {
    let run = tracing::info_span!("poca", feeds = FEEDS.len());
    let _run = run.enter();
    for (i, feed) in FEEDS.iter().enumerate() {
        let url = format!("https://podcasts.example/{}/rss", i + 1);
        if failing.contains(feed) {
            tracing::warn!(target: "poca::feed", feed, url, error = "connection timed out", "feed failed");
        } else {
            tracing::info!(target: "poca::feed", feed, new_episodes = i % 3, "feed updated");
        }
    }
}
