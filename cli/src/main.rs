//! `tracing-email`: for whoever runs a program that uses the `tracing-email`
//! library. It finds the program's state file the way the program does and
//! says what waits and why no email came (`status`, `show`), sends it by
//! hand (`send`), empties it (`clear`), or checks the mail settings with a
//! test email (`test`).
//!
//! Exit status: 0 done, 1 failed (a send, the state file, the settings),
//! 2 bad arguments.

mod args;
mod status;

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use tracing_email::{EmailConfig, Outcome, PolicyConfig, inspect::StateFile};

use args::{Cli, Command, Located, TransportArgs};

/// Why the command stopped: bad arguments (exit 2) or a failure (exit 1).
#[derive(Debug)]
enum Fail {
    Usage(String),
    Failed(String),
    /// Standard output was closed early (`show | head`): not an error.
    Closed,
}

impl From<tracing_email::Error> for Fail {
    fn from(e: tracing_email::Error) -> Self {
        Fail::Failed(e.to_string())
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Fail::Closed;
        }
        Fail::Failed(format!("could not write the output: {e}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(&cli);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fail::Usage(message)) => {
            eprintln!("tracing-email {}: {message}", cli.command.name());
            eprintln!("\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
        Err(Fail::Closed) => ExitCode::SUCCESS,
        Err(Fail::Failed(message)) => {
            eprintln!("tracing-email {}: {message}", cli.command.name());
            ExitCode::from(1)
        }
    }
}

/// Runs the command; the exit status when it did not fail.
fn run(cli: &Cli) -> Result<u8, Fail> {
    let located = cli.place.locate()?;
    let color = cli.color.enabled();
    match &cli.command {
        Command::Status { rules } => {
            let file = located.require_file()?;
            let policy = match (&located.config, rules.any()) {
                (Some(config), _) => Some(rules.over(&config.policy)),
                (None, true) => Some(rules.over(&PolicyConfig::default())),
                (None, false) => None,
            };
            let snapshot = match &policy {
                Some(p) => file.snapshot_with(p)?,
                None => file.snapshot()?,
            };
            let mut out = io::stdout().lock();
            status::write_status(&mut out, &snapshot, policy.is_some(), color)?;
            out.flush()?;
            Ok(0)
        }
        Command::Show { json, level } => {
            let file = located.require_file()?;
            let snapshot = file.snapshot()?;
            if !snapshot.exists {
                // On stderr, so that `--json` output stays JSON lines.
                eprintln!(
                    "tracing-email show: no state file at {} (no run has flushed there yet)",
                    file.path().display()
                );
            }
            let mut out = io::BufWriter::new(io::stdout().lock());
            status::write_records(&mut out, &snapshot, *json, *level, color)?;
            out.flush()?;
            Ok(0)
        }
        Command::Send { transport } => {
            let file = located.require_file()?;
            let (builder, _, _) = sender(&located, transport, Some(file))?;
            match builder.send_pending()? {
                Outcome::Failed { error, pending } => Err(Fail::Failed(format!(
                    "not sent, {pending} record{} still pending in {}: {error}",
                    if pending == 1 { " is" } else { "s are" },
                    file.path().display()
                ))),
                outcome => {
                    println!("{outcome}");
                    Ok(0)
                }
            }
        }
        Command::Clear { yes, all } => clear(located.require_file()?, *yes, *all),
        Command::Test { transport } => {
            let (builder, from, to) = sender(&located, transport, located.file.as_ref())?;
            match builder.send_test_email() {
                Ok(reply) => {
                    let reply = reply.unwrap_or_else(|| "accepted".to_owned());
                    println!("sent a test email from {from} to {to}: {reply}");
                    Ok(0)
                }
                Err(e) => Err(Fail::Failed(format!(
                    "the test email from {from} to {to} was not sent: {e}"
                ))),
            }
        }
    }
}

/// The builder `send` and `test` send with: the program's settings, with
/// what the command line gives over them. Returns it with its sender and
/// recipients, to say them.
fn sender(
    located: &Located,
    t: &TransportArgs,
    file: Option<&StateFile>,
) -> Result<(tracing_email::Builder, String, String), Fail> {
    let mut config = located.config.clone().unwrap_or_else(|| {
        let mut c = EmailConfig::default();
        c.app = located
            .app
            .clone()
            .unwrap_or_else(|| "tracing-email".to_owned());
        c
    });
    if let Some(url) = &t.smtp_url {
        let smtp = tracing_email::Smtp::from_url(url)
            .map_err(|e| Fail::Usage(format!("--smtp-url: {e}")))?;
        if !smtp.has_password()
            && config.password_env.is_none()
            && let Ok(password) = std::env::var("SMTP_PASSWORD")
        {
            config.set_password(password);
        }
        config.smtp_url = Some(url.as_str().into());
        config.outbox = None;
    }
    if let Some(ca) = &t.ca_cert {
        config.root_certificate = Some(ca.clone());
    }
    if !t.to.is_empty() {
        config.to.clone_from(&t.to);
    }
    if let Some(from) = &t.from {
        config.from = Some(from.clone());
    }
    if config.smtp_url.is_none() && config.outbox.is_none() {
        return Err(Fail::Usage(
            "no transport: give --smtp-url URL, or the program's settings (--config FILE or \
             --env PREFIX) with its smtp_url or outbox"
                .into(),
        ));
    }
    if config.to.is_empty() {
        return Err(Fail::Usage(
            "no recipient: give --to ADDRESS, or the program's settings with its `to`".into(),
        ));
    }
    if config.from.is_none() {
        // The login is often the sender's address.
        let user = config
            .smtp_url
            .as_deref()
            .and_then(|url| tracing_email::Smtp::from_url(url).ok())
            .and_then(|smtp| smtp.user().filter(|u| u.contains('@')).map(str::to_owned));
        config.from = Some(user.unwrap_or_else(|| config.to[0].clone()));
    }
    let from = config.from.clone().unwrap_or_default();
    let to = config.to.join(", ");
    let mut builder = config.builder()?;
    if let Some(file) = file {
        builder = builder.state_file(file.path());
    }
    Ok((builder, from, to))
}

/// `clear`: asks first on a terminal, wants `--yes` elsewhere.
fn clear(file: &StateFile, yes: bool, all: bool) -> Result<u8, Fail> {
    if !yes {
        let pending = file.snapshot()?.pending.len();
        let what = if all {
            format!("{pending} pending records and the history (streaks, runs, last email)")
        } else {
            format!("{pending} pending records")
        };
        if !io::stdin().is_terminal() {
            return Err(Fail::Usage(format!(
                "would remove the {what} of {}, but there is no terminal to ask: add --yes",
                file.path().display()
            )));
        }
        eprint!("Remove the {what} of {}? [y/N] ", file.path().display());
        io::stderr().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            eprintln!("nothing removed");
            return Ok(1);
        }
    }
    let cleared = if all {
        file.clear_all()?
    } else {
        file.clear()?
    };
    println!("{cleared}");
    if !all && cleared.failures > 0 {
        println!("(`clear --all` forgets the history too)");
    }
    Ok(0)
}
