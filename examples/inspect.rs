//! Looks into a state file: what is pending, and why no email came.
//!
//! ```text
//! cargo run --example inspect -- [--app NAME | --state-file PATH] [--threshold K[:LEVEL]]
//!                                [--send-now --smtp-url URL [--ca-cert PEM] [--from ADDR] [--to ADDR]]
//!                                [--clear]
//! ```
//!
//! `--threshold 5:warn` says how many more records the program's
//! `threshold(5, WARN)` still needs. `--send-now` sends everything pending,
//! whatever the thresholds (the password comes from the URL or
//! `SMTP_PASSWORD`). `--clear` asks nothing: it empties the state file and
//! says how many records it dropped. Exit status: 0 done, 1 a send or the
//! file failed, 2 bad arguments.

use std::process::ExitCode;

use tracing::Level;
use tracing_email::{EmailLayer, Smtp, StateFile};

const USAGE: &str = "usage: inspect [--app NAME | --state-file PATH] [--threshold K[:LEVEL]] \
                     [--send-now --smtp-url URL [--ca-cert PEM] [--from ADDR] [--to ADDR]] [--clear]";

#[derive(Default)]
struct Args {
    app: Option<String>,
    state_file: Option<String>,
    threshold: Option<(usize, Level)>,
    send_now: bool,
    smtp_url: Option<String>,
    ca_cert: Option<String>,
    from: Option<String>,
    to: Option<String>,
    clear: bool,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--app" => a.app = Some(value()?),
            "--state-file" => a.state_file = Some(value()?),
            "--threshold" => {
                let v = value()?;
                let (count, level) = v.split_once(':').unwrap_or((&v, "warn"));
                let count = count
                    .parse()
                    .map_err(|_| format!("--threshold: {count:?} is not a number"))?;
                let level = level
                    .parse()
                    .map_err(|_| format!("--threshold: {level:?} is not a level"))?;
                a.threshold = Some((count, level));
            }
            "--send-now" => a.send_now = true,
            "--smtp-url" => a.smtp_url = Some(value()?),
            "--ca-cert" => a.ca_cert = Some(value()?),
            "--from" => a.from = Some(value()?),
            "--to" => a.to = Some(value()?),
            "--clear" => a.clear = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.app.is_some() == a.state_file.is_some() {
        return Err("give one of --app NAME or --state-file PATH".into());
    }
    if a.send_now != a.smtp_url.is_some() {
        return Err("--send-now and --smtp-url go together".into());
    }
    if a.send_now && a.clear {
        return Err("--send-now and --clear exclude each other".into());
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

fn run(args: &Args) -> Result<(), String> {
    let file = match (&args.app, &args.state_file) {
        (Some(app), _) => StateFile::for_app(app).map_err(|e| e.to_string())?,
        (_, Some(path)) => StateFile::open(path),
        _ => unreachable!("checked by parse"),
    };
    let snapshot = file.snapshot().map_err(|e| e.to_string())?;
    print!("{snapshot}");
    if let Some((count, level)) = args.threshold {
        match snapshot.still_needed(count, level) {
            0 => println!("threshold    met: the next flush sends"),
            n => println!(
                "threshold    {n} more records at {level} or above before threshold({count}, {level}) sends"
            ),
        }
    }
    if args.clear {
        let dropped = file.clear().map_err(|e| e.to_string())?;
        println!("cleared      dropped {dropped} records");
    }
    if args.send_now {
        send_now(args, &file)?;
    }
    Ok(())
}

/// Sends everything pending, whatever the program's thresholds.
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
