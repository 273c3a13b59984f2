//! The quickstart: a small job that logs a few warnings each run.
//!
//! ```text
//! cargo run --example quickstart   # 1st run: held
//! cargo run --example quickstart   # 2nd run: held
//! cargo run --example quickstart   # 3rd run: sent, into target/tracing-email-quickstart/outbox/
//! ```
//!
//! No mail server needed: the digest is written as an `.eml` file. Set
//! `SMTP_URL` (e.g. `smtps://me%40example.com@smtp.example.com`) and
//! `SMTP_PASSWORD` to send it for real; `SMTP_TO` and `SMTP_FROM` default to
//! the URL's user name.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use tracing::Level;
use tracing_email::{EmailLayer, FileDrop, Outcome, Smtp, inspect::WaitingFor};
use tracing_subscriber::{filter::LevelFilter, prelude::*};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "target",
        "tracing-email-quickstart",
    ]
    .iter()
    .collect();
    run(&home)
}

/// One run of the job, keeping its state (and outbox) in `home`.
pub fn run(home: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let outbox = home.join("outbox");

    let builder = EmailLayer::builder("quickstart")
        .state_file(home.join("state.json"))
        .subject("quickstart: the nightly job needs a look")
        .threshold(5, Level::WARN)
        // A failure is its feed (a field of the `fetch` span), not its
        // message: two feeds failing are two failures.
        .fingerprint_fields(["feed"]);
    let builder = match std::env::var("SMTP_URL") {
        Ok(url) => {
            let mut smtp = Smtp::from_url(&url)?;
            if !smtp.has_password()
                && let Ok(password) = std::env::var("SMTP_PASSWORD")
            {
                smtp = smtp.password(password);
            }
            let user = smtp.user().filter(|u| u.contains('@')).map(str::to_owned);
            let to = std::env::var("SMTP_TO")
                .ok()
                .or(user.clone())
                .ok_or("set SMTP_TO to the address the digest should go to")?;
            let from = std::env::var("SMTP_FROM")
                .ok()
                .or(user)
                .unwrap_or(to.clone());
            builder.transport(smtp).from(from).to(to)
        }
        Err(_) => builder
            .transport(FileDrop::new(&outbox))
            .from("quickstart <robot@example.com>")
            .to("you@example.com"),
    };
    let (email, guard) = builder.build()?;

    tracing_subscriber::registry()
        // Colours only on a terminal: none into a pipe, a file or a log.
        .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()))
        .with(email.with_filter(LevelFilter::INFO))
        .init();

    run_job();

    let outcome = guard.flush();
    println!("{outcome}");
    match &outcome {
        Outcome::Held {
            waiting_for: WaitingFor::Threshold {
                needed, counted, ..
            },
            ..
        } => println!(
            "run it again: {} more warning(s) and the digest goes out",
            needed - counted
        ),
        Outcome::Sent { .. } if std::env::var("SMTP_URL").is_err() => {
            if let Some(eml) = newest_file(&outbox) {
                println!("the digest is in {}", eml.display());
            }
        }
        _ => {}
    }
    println!("state file: {}", guard.state_file().display());
    Ok(())
}

/// A small simulated job: three feeds, two of which fail today.
fn run_job() {
    let span = tracing::info_span!("nightly", job = "podcasts");
    let _entered = span.enter();
    tracing::info!("job started");
    for (feed, ok) in [
        ("Radio Café", true),
        ("Ääniraita", false),
        ("ポッドキャスト", false),
    ] {
        tracing::info_span!("fetch", feed).in_scope(|| {
            if ok {
                tracing::info!(episodes = 2, "feed fetched");
            } else {
                tracing::warn!(error = "timed out after 30 s", "feed failed");
            }
        });
    }
    tracing::info!("job finished");
}

fn newest_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .max()
}
