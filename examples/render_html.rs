//! Writes the HTML part of a realistic digest to a file, through the crate's
//! real code: a layer whose transport keeps the email instead of sending
//! it, one run of a podcast client (feeds failing, an ERROR, INFO context,
//! spans), one flush.
//!
//! ```text
//! cargo run --example render_html                      # writes target/digest.html
//! cargo run --example render_html -- PATH              # writes PATH
//! ```
//!
//! `scripts/screenshot-digest.sh` runs it and renders the file with
//! headless Chromium into `docs/digest.png`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing_email::{BoxError, Email, EmailLayer, Transport};
use tracing_subscriber::prelude::*;

/// A transport that keeps the last email it is given.
#[derive(Clone, Default)]
struct Keep(Arc<Mutex<Option<Email>>>);

impl Transport for Keep {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        *self.0.lock().map_err(|_| "poisoned")? = Some(email.clone());
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target: PathBuf = [env!("CARGO_MANIFEST_DIR"), "target"].iter().collect();
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| target.join("digest.html"), PathBuf::from);
    // A fresh state file, so the digest holds this run's records only.
    let state = target.join("render-html").join("state.json");
    match std::fs::remove_file(&state) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }

    let kept = Keep::default();
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(kept.clone())
        .state_file(&state)
        .from("poca <robot@example.com>")
        .to("me@example.com")
        .threshold(1, Level::WARN)
        .checkpoint_interval(None)
        .build()?;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), run);
    let outcome = guard.flush();
    if !outcome.is_sent() {
        return Err(format!("the digest was not sent: {outcome}").into());
    }

    let email = kept
        .0
        .lock()
        .map_err(|_| "poisoned")?
        .take()
        .ok_or("no email")?;
    let html = email.html().ok_or("the email has no HTML part")?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, html)?;
    println!("{}", email.subject());
    println!("wrote {} ({} bytes)", out.display(), html.len());
    Ok(())
}

/// One nightly run of a podcast client: eight feeds, three of them failing.
fn run() {
    let run = tracing::info_span!("run", job = "nightly");
    let _run = run.enter();
    tracing::info!(target: "poca", feeds = 8, version = "1.4.2", "run started");

    let fetch = |feed: &str, log: &dyn Fn()| {
        let span = tracing::info_span!("fetch", feed);
        let _fetch = span.enter();
        log();
    };
    fetch("Hörspiel Stunde", &|| {
        tracing::info!(target: "poca::feed", new_episodes = 2, "feed updated");
    });
    fetch("Radio Café", &|| {
        tracing::warn!(
            target: "poca::feed",
            url = "https://radio-cafe.example/rss",
            error = "connection timed out after 30 s",
            attempt = 3,
            "feed failed"
        );
    });
    fetch("ポッドキャスト", &|| {
        tracing::warn!(
            target: "poca::feed",
            url = "https://podcast.example.jp/feed.xml",
            status = 503,
            "feed failed: the server is unavailable"
        );
    });
    fetch("Ääniraita", &|| {
        tracing::debug!(target: "poca::feed", etag = "\"5f1e-9a\"", "feed not modified (304)");
    });
    fetch("<Late Night> & Co", &|| {
        tracing::warn!(
            target: "poca::feed",
            error = "unexpected '<' at line 12, column 4",
            "feed is not valid XML"
        );
    });
    {
        let span = tracing::info_span!("download", episode = "Folge 42: Kaffee");
        let _download = span.enter();
        tracing::info!(target: "poca::download", bytes = 48_213_771, seconds = 12.4, "episode downloaded");
    }
    tracing::error!(
        target: "poca::db",
        path = "/home/me/.local/share/poca/episodes.sqlite",
        error = "database is locked",
        "could not save the episode list; new episodes will be fetched again next run"
    );
    tracing::warn!(target: "poca", failed = 3, feeds = 8, "some feeds failed; they are retried on the next run");
    tracing::info!(target: "poca", seconds = 41.2, "run finished");
}
