//! The command line: where the state file is (as the program finds it),
//! the subcommands and their options, checked by clap (exit 2 when wrong).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing::Level;
use tracing_email::{EmailConfig, PolicyConfig, inspect::StateFile};

use crate::Fail;

/// What a program that uses tracing-email keeps pending, why no email came,
/// and sending or clearing it by hand.
///
/// The state file is found as the program finds it: from its app name
/// (--app), its path (--state-file), or the program's own settings: its
/// config file's [email] table (--config) or its environment variables
/// (--env PREFIX).
#[derive(Debug, Parser)]
#[command(
    name = "tracing-email",
    version,
    after_help = "Exit status: 0 done, 1 failed (a send, the state file, the settings), \
                  2 bad arguments."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) place: Place,
    /// Colours: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, help_heading = OUTPUT)]
    pub(crate) color: Color,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The heading of the options that say how the answer is printed.
const OUTPUT: &str = "Output";

/// Where the state file is: one of --app, --state-file, or the program's
/// settings (which may also give it).
#[derive(Debug, Args)]
#[command(next_help_heading = "Where the state is (one of --app, --state-file, --config, --env)")]
pub(crate) struct Place {
    /// The program's app name (as given to EmailLayer::builder): its default state file.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        conflicts_with = "state_file"
    )]
    pub(crate) app: Option<String>,
    /// The state file itself.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) state_file: Option<PathBuf>,
    /// The program's TOML config file, whose [email] table holds its settings.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "env")]
    pub(crate) config: Option<PathBuf>,
    /// The table of --config that holds the settings [default: email].
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) table: Option<String>,
    /// The program's settings from environment variables PREFIX_APP, PREFIX_SMTP_URL, ….
    #[arg(long, global = true, value_name = "PREFIX")]
    pub(crate) env: Option<String>,
}

/// The heading of `clear`'s own options.
const CLEARING: &str = "Clearing";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// What waits (counts by level, oldest, newest), the failures with their
    /// streaks, the alerts firing, the last email and error, and what the
    /// policy would do now.
    Status {
        #[command(flatten)]
        rules: Rules,
    },
    /// The pending records, oldest first: as text, or one JSON object per line.
    Show {
        /// One JSON object per line (for jq), as the state file holds it;
        /// then an {"alert": …} line per alert firing and {"alert_post": …}.
        #[arg(long, help_heading = OUTPUT)]
        json: bool,
        /// Only records at this level or more severe.
        #[arg(long, value_name = "LEVEL", value_parser = level, help_heading = OUTPUT)]
        level: Option<Level>,
    },
    /// Sends every pending record now, whatever the rules, through the
    /// program's transport or --smtp-url. Not a run of the program: its
    /// streaks and run count stay. Exit 0 sent, 1 failed (the records stay).
    Send {
        #[command(flatten)]
        transport: TransportArgs,
    },
    /// Empties the pending records (the history stays unless --all) and says
    /// how many it removed. Asks first; off a terminal it wants --yes.
    Clear {
        /// Do not ask.
        #[arg(long, short = 'y', help_heading = CLEARING)]
        yes: bool,
        /// Forget the history too: the failures' streaks, when each was
        /// reported, the run count and the time of the last email.
        #[arg(long, help_heading = CLEARING)]
        all: bool,
    },
    /// Sends one test email through the program's transport (or --smtp-url)
    /// and prints the server's answer or the failure. Exit 0 sent, 1 not.
    Test {
        #[command(flatten)]
        transport: TransportArgs,
    },
}

impl Command {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Status { .. } => "status",
            Command::Show { .. } => "show",
            Command::Send { .. } => "send",
            Command::Clear { .. } => "clear",
            Command::Test { .. } => "test",
        }
    }
}

/// The transport of `send` and `test`, over the program's settings.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sending (over the program's settings)")]
pub(crate) struct TransportArgs {
    /// The SMTP server, as the config's smtp_url (smtps://user@host, smtp://host?tls=required);
    /// the password from the URL, the settings, or SMTP_PASSWORD.
    #[arg(long, value_name = "URL")]
    pub(crate) smtp_url: Option<String>,
    /// A PEM file with the root certificate of the server's private CA.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// The sender [default: the settings' `from`, else the SMTP user or the recipient].
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) from: Option<String>,
    /// A recipient (repeat for more) [default: the settings' `to`].
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) to: Vec<String>,
}

/// The policy's rules on the command line, over the program's (durations
/// as 90, 90s, 15m, 24h or 7d).
#[derive(Debug, Args)]
#[command(next_help_heading = "Policy (over the program's; durations as 90s, 15m, 24h, 7d)")]
pub(crate) struct Rules {
    /// COUNT[:LEVEL]: send once COUNT records at LEVEL (default warn) or above are pending.
    #[arg(long, value_name = "COUNT[:LEVEL]", value_parser = threshold)]
    threshold: Option<(usize, Level)>,
    /// Send every N records.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    batch: Option<u64>,
    /// Send at once when a record at LEVEL or above is pending.
    #[arg(long, value_name = "LEVEL", value_parser = level)]
    immediately_at: Option<Level>,
    /// Send when a failure was seen in N runs in a row.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    consecutive_runs: Option<u64>,
    /// Report a failure again only after this long.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    repeat_after: Option<Duration>,
    /// At most one email per this long.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    min_interval: Option<Duration>,
    /// Send once the oldest record is this old.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    max_age: Option<Duration>,
    /// A field that tells failures apart (repeat for more).
    #[arg(long, value_name = "NAME")]
    fingerprint_field: Vec<String>,
}

impl Rules {
    /// Whether any rule was given.
    pub(crate) fn any(&self) -> bool {
        self.over(&PolicyConfig::default()) != PolicyConfig::default()
    }

    /// `base` with the rules given here over it.
    pub(crate) fn over(&self, base: &PolicyConfig) -> PolicyConfig {
        let mut p = base.clone();
        p.threshold = self.threshold.or(p.threshold);
        p.batch = self
            .batch
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .or(p.batch);
        p.immediately_at = self.immediately_at.or(p.immediately_at);
        p.consecutive_runs = self.consecutive_runs.or(p.consecutive_runs);
        p.repeat_after = self.repeat_after.or(p.repeat_after);
        p.min_interval = self.min_interval.or(p.min_interval);
        p.max_age = self.max_age.or(p.max_age);
        if !self.fingerprint_field.is_empty() {
            p.fingerprint_fields.clone_from(&self.fingerprint_field);
        }
        p
    }
}

/// `warn`, `ERROR`, …
fn level(v: &str) -> Result<Level, String> {
    v.parse()
        .map_err(|_| format!("{v:?} is not a level (trace, debug, info, warn, error)"))
}

/// `5:warn`, or `5` for `5:warn`.
fn threshold(v: &str) -> Result<(usize, Level), String> {
    let (count, l) = v.split_once(':').unwrap_or((v, "warn"));
    let count = count
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or(format!(
            "{count:?} is not a number of at least 1 (e.g. 5:warn)"
        ))?;
    Ok((count, level(l)?))
}

/// `90`, `90s`, `15m`, `24h`, `7d`: more than 0.
fn duration(v: &str) -> Result<Duration, String> {
    let (number, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(format!("{v:?}: the unit is one of s, m, h, d (e.g. 24h)")),
    };
    let seconds = number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or(format!("{v:?} is not a duration above 0 (e.g. 24h)"))?;
    Duration::try_from_secs_f64(seconds * scale).map_err(|e| format!("{v:?}: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Whether standard output gets colours.
    pub(crate) fn enabled(self) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        colours(self, std::io::stdout().is_terminal(), no_color)
    }
}

/// `auto` colours a terminal, unless NO_COLOR is set (to anything but "").
fn colours(choice: Color, terminal: bool, no_color: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && !no_color,
    }
}

/// The state file and the program's settings, as found.
#[derive(Debug)]
pub(crate) struct Located {
    /// The state file; `None` when nothing says where it is.
    pub(crate) file: Option<StateFile>,
    /// The program's settings, from --config or --env.
    pub(crate) config: Option<EmailConfig>,
    /// --app.
    pub(crate) app: Option<String>,
}

impl Located {
    /// The state file, which every command but `test` needs.
    pub(crate) fn require_file(&self) -> Result<&StateFile, Fail> {
        self.file.as_ref().ok_or_else(|| {
            Fail::Usage(
                "where is the state file? give --app NAME, --state-file PATH, or the program's \
                 settings: --config FILE or --env PREFIX"
                    .into(),
            )
        })
    }
}

impl Place {
    /// Finds the settings and the state file: --state-file, else --app's
    /// default, else the settings' `state_file`, else their app's default.
    pub(crate) fn locate(&self) -> Result<Located, Fail> {
        if self.table.is_some() && self.config.is_none() {
            return Err(Fail::Usage("--table goes with --config FILE".into()));
        }
        let config = match (&self.config, &self.env) {
            (Some(path), _) => Some(read_config(path, self.table.as_deref().unwrap_or("email"))?),
            (None, Some(prefix)) => Some(EmailConfig::from_env(prefix)?),
            (None, None) => None,
        };
        // Bounds are checked as the program's build() checks them.
        if let Some(c) = &config {
            c.validate()?;
        }
        let file = match (&self.state_file, &self.app, &config) {
            (Some(path), _, _) => Some(StateFile::open(path)),
            (None, Some(app), _) => Some(StateFile::for_app(app)?),
            (None, None, Some(c)) => Some(match &c.state_file {
                Some(path) => StateFile::open(path),
                None => StateFile::for_app(&c.app)?,
            }),
            (None, None, None) => None,
        };
        // `clear` waits for the lock as long as the program would.
        let wait = config.as_ref().map(|c| c.lock_timeout);
        let file = match (file, wait) {
            (Some(file), Some(timeout)) => Some(file.lock_timeout(timeout)),
            (file, _) => file,
        };
        Ok(Located {
            file,
            config,
            app: self.app.clone(),
        })
    }
}

/// The table `table` (dotted for a nested one: `jobs.email`) of the TOML
/// file at `path`, as the program's settings.
fn read_config(path: &PathBuf, table: &str) -> Result<EmailConfig, Fail> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fail::Failed(format!("could not read {}: {e}", path.display())))?;
    let file: toml::Table =
        toml::from_str(&text).map_err(|e| Fail::Failed(format!("{}: {e}", path.display())))?;
    let mut value = toml::Value::Table(file);
    for part in table.split('.') {
        value = match value {
            toml::Value::Table(mut t) => t.remove(part),
            _ => None,
        }
        .ok_or_else(|| {
            Fail::Failed(format!(
                "{} has no [{table}] table (the program's email settings; --table NAME names \
                 another)",
                path.display()
            ))
        })?;
    }
    let mut config: EmailConfig = value.try_into().map_err(|e: toml::de::Error| {
        Fail::Failed(format!("{}: [{table}]: {e}", path.display()))
    })?;
    config.set_table(table);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_and_never_with_no_color() {
        assert!(colours(Color::Auto, true, false));
        assert!(!colours(Color::Auto, false, false), "piped");
        assert!(!colours(Color::Auto, true, true), "NO_COLOR");
        assert!(colours(Color::Always, false, true));
        assert!(!colours(Color::Never, true, false));
    }

    #[test]
    fn rules_parse_as_the_config_writes_them() {
        assert_eq!(threshold("5:error"), Ok((5, Level::ERROR)));
        assert_eq!(threshold("5"), Ok((5, Level::WARN)));
        assert!(threshold("0:warn").is_err());
        assert!(threshold("5:loud").unwrap_err().contains("not a level"));
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(duration("0").is_err());
        assert!(duration("1 week").is_err());
    }
}
