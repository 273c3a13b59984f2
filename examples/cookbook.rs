//! The Python logging cookbook's `BufferingSMTPHandler` script, in Rust:
//! 102 INFO records, one email per 10 records (11 emails: ten of 10, one of 2).
//!
//! ```text
//! cargo run --example cookbook -- HOST USER PASSWORD TO SENDER \
//!     [--port N] [--subject S] [--tls starttls|implicit|none] [--ca-cert PEM_FILE] [--state-file PATH]
//! ```
//!
//! Default: port 587 with STARTTLS. An empty USER logs in as nobody. Exit
//! status: 0 sent, 1 sending failed (the records wait in the state file for
//! the next run), 2 bad arguments.

use std::process::ExitCode;

use tracing_email::{EmailLayer, Outcome, Smtp};
use tracing_subscriber::prelude::*;

const USAGE: &str = "usage: cookbook HOST USER PASSWORD TO SENDER [--port N] [--subject S] \
                     [--tls starttls|implicit|none] [--ca-cert PEM_FILE] [--state-file PATH]";

fn main() -> ExitCode {
    ExitCode::from(exit_status(std::env::args().skip(1).collect()))
}

/// Runs the script; returns the exit status.
pub fn exit_status(args: Vec<String>) -> u8 {
    match run(args) {
        Ok(Outcome::Sent { .. } | Outcome::Nothing) => 0,
        Ok(_) => 1,
        Err(message) => {
            eprintln!("cookbook: {message}\n{USAGE}");
            2
        }
    }
}

fn run(args: Vec<String>) -> Result<Outcome, String> {
    let mut positional = Vec::new();
    let (mut port, mut subject, mut tls, mut ca, mut state) = (None, None, None, None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                port = Some(v.parse::<u16>().map_err(|_| format!("bad port {v:?}"))?);
            }
            "--subject" => subject = Some(value("--subject")?),
            "--tls" => tls = Some(value("--tls")?),
            "--ca-cert" => ca = Some(value("--ca-cert")?),
            "--state-file" => state = Some(value("--state-file")?),
            "-h" | "--help" => return Err("help".into()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg),
        }
    }
    let [host, user, password, to, sender] = <[String; 5]>::try_from(positional)
        .map_err(|p| format!("expected 5 arguments, got {}", p.len()))?;

    let mut smtp = match tls.as_deref().unwrap_or("starttls") {
        "starttls" => Smtp::starttls(host),
        "implicit" => Smtp::tls(host),
        "none" => Smtp::plain(host),
        other => {
            return Err(format!(
                "--tls must be starttls, implicit or none, not {other:?}"
            ));
        }
    };
    if !user.is_empty() {
        smtp = smtp.credentials(user, password);
    }
    if let Some(port) = port {
        smtp = smtp.port(port);
    }
    if let Some(path) = ca {
        let pem = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        smtp = smtp.root_certificate(pem);
    }
    let mut builder =
        EmailLayer::builder("cookbook")
            .transport(smtp)
            .from(sender)
            .to(to)
            .subject(subject.unwrap_or_else(|| {
                "Test Logging email from Rust logging module (buffering)".into()
            }))
            .batch(10);
    if let Some(path) = state {
        builder = builder.state_file(path);
    }
    let (email, guard) = builder.build().map_err(|e| e.to_string())?;
    tracing_subscriber::registry().with(email).init();

    for index in 0..102 {
        tracing::info!("Info index = {index}");
    }

    let outcome = guard.flush();
    println!("{outcome}");
    Ok(outcome)
}
