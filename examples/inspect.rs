//! Looks into a state file: what is pending, which failures persist across
//! runs, and why no email came.
//!
//! ```text
//! cargo run --example inspect -- [--config FILE] [--app NAME | --state-file PATH]
//!     [--threshold K[:LEVEL]] [--batch N] [--immediately-at LEVEL]
//!     [--consecutive-runs N] [--repeat-after DURATION] [--min-interval DURATION]
//!     [--max-age DURATION] [--fingerprint-field NAME]...
//!     [--send-now --smtp-url URL [--ca-cert PEM] [--from ADDR] [--to ADDR]]
//!     [--clear [--forget-history]]
//! ```
//!
//! `--config FILE` reads the program's own `[email]` table (its `app`,
//! `state_file` and `policy`); the policy options set or override single
//! rules (durations as `90`, `90s`, `15m`, `24h` or `7d`). Given a policy,
//! it says what the policy waits for and which failures it keeps quiet.
//! `--send-now` sends everything pending, whatever the rules (the password
//! comes from the URL or `SMTP_PASSWORD`). `--clear` removes the pending
//! records and keeps the history (the failures' streaks and when each was
//! reported, so a reported failure stays quiet); `--forget-history` removes
//! that too. Exit status: 0 done, 1 a send or the file failed, 2 bad
//! arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use tracing::Level;
use tracing_email::{EmailConfig, EmailLayer, PolicyConfig, Smtp, StateFile};

const USAGE: &str = "usage: inspect [--config FILE] [--app NAME | --state-file PATH] \
                     [--threshold K[:LEVEL]] [--batch N] [--immediately-at LEVEL] \
                     [--consecutive-runs N] [--repeat-after DURATION] [--min-interval DURATION] \
                     [--max-age DURATION] [--fingerprint-field NAME]... \
                     [--send-now --smtp-url URL [--ca-cert PEM] [--from ADDR] [--to ADDR]] \
                     [--clear [--forget-history]]";

#[derive(Default)]
struct Args {
    config: Option<PathBuf>,
    app: Option<String>,
    state_file: Option<String>,
    /// Rules given on the command line, over the config's.
    policy: PolicyConfig,
    /// Whether any rule was given on the command line.
    rules: bool,
    send_now: bool,
    smtp_url: Option<String>,
    ca_cert: Option<String>,
    from: Option<String>,
    to: Option<String>,
    clear: bool,
    forget_history: bool,
}

/// `90`, `90s`, `15m`, `24h`, `7d`: more than 0.
fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    let (number, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(format!("{flag}: {v:?}: the unit is one of s, m, h, d")),
    };
    let seconds = number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or(format!(
            "{flag}: {v:?} is not a duration above 0 (e.g. 24h)"
        ))?;
    Duration::try_from_secs_f64(seconds * scale).map_err(|e| format!("{flag}: {v:?}: {e}"))
}

fn level(flag: &str, v: &str) -> Result<Level, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a level (trace, debug, info, warn, error)"))
}

fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(
    flag: &str,
    v: &str,
) -> Result<T, String> {
    v.parse::<T>()
        .ok()
        .filter(|n| *n >= T::from(1))
        .ok_or(format!("{flag}: {v:?} is not a number of at least 1"))
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let p = &mut a.policy;
        match flag.as_str() {
            "--config" => a.config = Some(value()?.into()),
            "--app" => a.app = Some(value()?),
            "--state-file" => a.state_file = Some(value()?),
            "--threshold" => {
                let v = value()?;
                let (count, l) = v.split_once(':').unwrap_or((&v, "warn"));
                p.threshold = Some((at_least_one(&flag, count)?, level(&flag, l)?));
            }
            "--batch" => p.batch = Some(at_least_one(&flag, &value()?)?),
            "--immediately-at" => p.immediately_at = Some(level(&flag, &value()?)?),
            "--consecutive-runs" => p.consecutive_runs = Some(at_least_one(&flag, &value()?)?),
            "--repeat-after" => p.repeat_after = Some(duration(&flag, &value()?)?),
            "--min-interval" => p.min_interval = Some(duration(&flag, &value()?)?),
            "--max-age" => p.max_age = Some(duration(&flag, &value()?)?),
            "--fingerprint-field" => p.fingerprint_fields.push(value()?),
            "--send-now" => a.send_now = true,
            "--smtp-url" => a.smtp_url = Some(value()?),
            "--ca-cert" => a.ca_cert = Some(value()?),
            "--from" => a.from = Some(value()?),
            "--to" => a.to = Some(value()?),
            "--clear" => a.clear = true,
            "--forget-history" => a.forget_history = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    a.rules = a.policy != PolicyConfig::default();
    if a.app.is_some() && a.state_file.is_some() {
        return Err("give one of --app NAME or --state-file PATH".into());
    }
    if a.config.is_none() && a.app.is_none() && a.state_file.is_none() {
        return Err("give --config FILE, --app NAME or --state-file PATH".into());
    }
    if a.send_now != a.smtp_url.is_some() {
        return Err("--send-now and --smtp-url go together".into());
    }
    if a.send_now && a.clear {
        return Err("--send-now and --clear exclude each other".into());
    }
    if a.forget_history && !a.clear {
        return Err("--forget-history goes with --clear".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    ExitCode::from(exit_status(std::env::args().skip(1).collect()))
}

/// Runs the command; returns the exit status.
pub fn exit_status(args: Vec<String>) -> u8 {
    let args = match parse(args) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("inspect: {message}\n{USAGE}");
            return 2;
        }
    };
    match run(&args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("inspect: {message}");
            1
        }
    }
}

/// The `[email]` table of the program's config file.
fn read_config(path: &PathBuf) -> Result<EmailConfig, String> {
    #[derive(Deserialize)]
    struct File {
        email: Option<EmailConfig>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.email
        .ok_or_else(|| format!("{} has no [email] table", path.display()))
}

/// The config's rules, with those of the command line over them.
fn merge(config: &PolicyConfig, args: &PolicyConfig) -> PolicyConfig {
    let mut p = config.clone();
    p.threshold = args.threshold.or(p.threshold);
    p.batch = args.batch.or(p.batch);
    p.immediately_at = args.immediately_at.or(p.immediately_at);
    p.consecutive_runs = args.consecutive_runs.or(p.consecutive_runs);
    p.repeat_after = args.repeat_after.or(p.repeat_after);
    p.min_interval = args.min_interval.or(p.min_interval);
    p.max_age = args.max_age.or(p.max_age);
    if !args.fingerprint_fields.is_empty() {
        p.fingerprint_fields = args.fingerprint_fields.clone();
    }
    p
}

fn run(args: &Args) -> Result<(), String> {
    let config = args.config.as_ref().map(read_config).transpose()?;
    let file = match (&args.state_file, &args.app, &config) {
        (Some(path), _, _) => StateFile::open(path),
        (None, Some(app), _) => StateFile::for_app(app).map_err(|e| e.to_string())?,
        (
            None,
            None,
            Some(EmailConfig {
                state_file: Some(path),
                ..
            }),
        ) => StateFile::open(path),
        (None, None, Some(config)) => StateFile::for_app(&config.app).map_err(|e| e.to_string())?,
        (None, None, None) => unreachable!("checked by parse"),
    };
    let policy = match &config {
        Some(c) => Some(merge(&c.policy, &args.policy)),
        None => args.rules.then(|| args.policy.clone()),
    };
    let snapshot = match &policy {
        Some(p) => file.snapshot_with(p),
        None => file.snapshot(),
    }
    .map_err(|e| e.to_string())?;
    print!("{snapshot}");
    if policy.is_none() {
        println!(
            "policy       not given: pass --config FILE, or the program's rules (--threshold, \
             --consecutive-runs, --repeat-after, …), to see what it waits for"
        );
    }
    if args.clear {
        let cleared = if args.forget_history {
            file.clear_all()
        } else {
            file.clear()
        }
        .map_err(|e| e.to_string())?;
        println!("cleared      {cleared}");
        if !args.forget_history && cleared.failures > 0 {
            println!("             (--clear --forget-history removes the history too)");
        }
    }
    if args.send_now {
        send_now(args, &file)?;
    }
    Ok(())
}

/// Sends everything pending, whatever the program's rules.
fn send_now(args: &Args, file: &StateFile) -> Result<(), String> {
    let url = args.smtp_url.as_deref().unwrap_or_default();
    let mut smtp = Smtp::from_url(url).map_err(|e| e.to_string())?;
    if !smtp.has_password()
        && let Ok(password) = std::env::var("SMTP_PASSWORD")
    {
        smtp = smtp.password(password);
    }
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        smtp = smtp.root_certificate(pem);
    }
    let user = smtp.user().filter(|u| u.contains('@')).map(str::to_owned);
    let to = args
        .to
        .clone()
        .or(user.clone())
        .ok_or("--to is needed when the URL's user is not an address")?;
    let from = args.from.clone().or(user).unwrap_or_else(|| to.clone());
    let app = args.app.clone().unwrap_or_else(|| "inspect".into());
    let (_layer, guard) = EmailLayer::builder(app)
        .transport(smtp)
        .state_file(file.path())
        .from(from)
        .to(to)
        .threshold(1, Level::TRACE)
        .checkpoint_interval(None)
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = guard.flush();
    println!("send-now     {outcome}");
    if outcome.is_failed() {
        return Err("sending failed; the records are still pending".into());
    }
    Ok(())
}
