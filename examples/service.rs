//! A long-running service: tokio tasks that log, each `flush_every` period
//! a run, and a graceful shutdown on SIGTERM or Ctrl-C that loses nothing.
//!
//! ```text
//! cargo run --example service                   # until Ctrl-C (or SIGTERM)
//! cargo run --example service -- --for 30s      # a bounded run
//! cargo run --example service -- --for 1m --every 5s --dir /tmp/svc
//! ```
//!
//! No mail server needed: digests are written as `.eml` files into
//! `DIR/outbox/` (by default `target/tracing-email-service/`). One feed fails
//! for the first half of the run: once it has failed two periods in a row
//! (`consecutive_runs(2)`), a digest goes out; a period after it is fetched
//! again, a "resolved" email says so (`notify_recovery`).
//!
//! The guard's last flush (which ends the last period, and may block on a
//! send) runs after the runtime is shut down, where blocking is allowed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing_email::{EmailLayer, FileDrop, Outcome};
use tracing_subscriber::{filter::LevelFilter, prelude::*};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = run(&args)?;
    println!("{outcome}");
    Ok(())
}

/// The command line: `--for 10s`, `--every 2s`, `--dir PATH`.
pub struct Args {
    /// How long to serve; until a signal if not given.
    pub run_for: Option<Duration>,
    /// The period of one run (`flush_every`).
    pub every: Duration,
    /// Where the state file and the outbox go.
    pub dir: PathBuf,
}

impl Args {
    /// Reads `args`; an unknown option or a bad duration is an error.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut parsed = Args {
            run_for: None,
            every: Duration::from_secs(5),
            dir: [
                env!("CARGO_MANIFEST_DIR"),
                "target",
                "tracing-email-service",
            ]
            .iter()
            .collect(),
        };
        let mut it = args.iter();
        while let Some(option) = it.next() {
            let value = it.next().ok_or_else(|| format!("{option} needs a value"))?;
            match option.as_str() {
                "--for" => parsed.run_for = Some(duration(value)?),
                "--every" => parsed.every = duration(value)?,
                "--dir" => parsed.dir = PathBuf::from(value),
                _ => {
                    return Err(format!(
                        "unknown option {option}; use --for, --every, --dir"
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

/// `10s`, `500ms`, `2m` or a number of seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration; write 10s, 500ms or 2m");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let n: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// Serves until a signal or the end of `--for`, then ends the last period
/// with the guard's flush; returns its outcome.
pub fn run(args: &[String]) -> Result<Outcome, Box<dyn std::error::Error>> {
    let args = Args::parse(args)?;
    let (email, guard) = builder(&args.dir).flush_every(args.every).build()?;
    // `try_init`: a test may run this twice in one process.
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(false))
        .with(email.with_filter(LevelFilter::INFO))
        .try_init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args.run_for, args.every))?;
    // Every task has ended; the runtime's threads go with it.
    drop(runtime);
    // Blocking is allowed here: the last period's flush may send.
    Ok(guard.flush())
}

/// The layer's settings: a digest once a failure lasts two periods, and a
/// notice when it is over.
fn builder(dir: &Path) -> tracing_email::Builder {
    EmailLayer::builder("service")
        .state_file(dir.join("state.json"))
        .transport(FileDrop::new(dir.join("outbox")))
        .from("service <robot@example.com>")
        .to("you@example.com")
        .fingerprint_fields(["feed"])
        .consecutive_runs(2)
        .notify_recovery(true)
}

/// Runs the tasks until SIGTERM, Ctrl-C or `run_for`, then stops them and
/// waits for each to finish what it is doing.
async fn serve(run_for: Option<Duration>, every: Duration) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    // One feed fails for the first half of a bounded run (or 4 periods).
    let failing = run_for.map_or(every * 4, |d| d / 2);
    for feed in ["Radio Café", "Jazz FM"] {
        tasks.spawn(fetch(feed, failing, stopped.clone()));
    }
    tracing::info!(period = ?every, "serving");
    let why = shutdown_signal(run_for).await?;
    tracing::info!(why, "stopping");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// Fetches `feed` every 500 ms until told to stop; "Radio Café" fails
/// during its first `failing`.
async fn fetch(
    feed: &'static str,
    failing: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if feed == "Radio Café" && started.elapsed() < failing {
            tracing::warn!(feed, "feed failed: HTTP 503");
        } else {
            tracing::info!(feed, episodes = 3, "fetched");
        }
    }
}

/// What ends the service: SIGTERM (systemd's stop), Ctrl-C, or the end of
/// `run_for`. Returns which.
async fn shutdown_signal(run_for: Option<Duration>) -> std::io::Result<&'static str> {
    let timer = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let term = term.recv();
    #[cfg(not(unix))]
    let term = std::future::pending::<Option<()>>();
    tokio::select! {
        ctrl_c = tokio::signal::ctrl_c() => ctrl_c.map(|()| "Ctrl-C"),
        _ = term => Ok("SIGTERM"),
        () = timer => Ok("--for elapsed"),
    }
}
