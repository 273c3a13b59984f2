//! What `status` and `show` print: a table a person reads in one look, the
//! records as text or JSON lines. Colours only when asked (`Paint`).

use std::io::{self, Write};

use time::{OffsetDateTime, UtcOffset};
use tracing::Level;
use tracing_email::{inspect::AlertPost, inspect::Failure, inspect::Snapshot, inspect::Verdict};

/// ANSI colours, or plain text.
#[derive(Clone, Copy)]
struct Paint(bool);

const RED: &str = "31";
const YELLOW: &str = "33";
const GREEN: &str = "32";
const BLUE: &str = "34";
const BOLD: &str = "1";
const DIM: &str = "2";

impl Paint {
    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn level(self, level: Level) -> String {
        let code = match level {
            Level::ERROR => RED,
            Level::WARN => YELLOW,
            Level::INFO => GREEN,
            Level::DEBUG => BLUE,
            _ => DIM,
        };
        self.paint(code, level.as_str())
    }

    /// A row's label, padded to the table's first column.
    fn label(self, label: &str) -> String {
        self.paint(BOLD, &format!("{label:<12}"))
    }
}

/// `2026-11-21 10:00:03 UTC`.
fn utc(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    format!("{} UTC", t.format(format).unwrap_or_default())
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

const LEVELS: [Level; 5] = [
    Level::ERROR,
    Level::WARN,
    Level::INFO,
    Level::DEBUG,
    Level::TRACE,
];

/// The `status` table. `policy_known`: a policy was given (the snapshot
/// has a verdict).
pub(crate) fn write_status(
    out: &mut impl Write,
    s: &Snapshot,
    policy_known: bool,
    color: bool,
) -> io::Result<()> {
    let p = Paint(color);
    if s.exists {
        writeln!(out, "{} {}", p.label("state file"), s.path.display())?;
        writeln!(out, "{} {} flushed so far", p.label("runs"), s.runs)?;
    } else {
        writeln!(
            out,
            "{} none at {} (no run has flushed there yet; a program whose config sets \
             state_file keeps it there)",
            p.label("state file"),
            s.path.display()
        )?;
    }
    let by_level: Vec<String> = LEVELS
        .iter()
        .map(|l| (*l, s.count(*l)))
        .filter(|(_, n)| *n > 0)
        .map(|(l, n)| format!("{n} {}", p.level(l)))
        .collect();
    write!(
        out,
        "{} {}",
        p.label("pending"),
        plural(s.pending.len(), "record")
    )?;
    if !by_level.is_empty() {
        write!(out, ": {}", by_level.join(", "))?;
    }
    writeln!(out)?;
    if let (Some(first), Some(last)) = (s.pending.first(), s.pending.last()) {
        writeln!(out, "{} {}", p.label("  oldest"), utc(first.timestamp))?;
        writeln!(out, "{} {}", p.label("  newest"), utc(last.timestamp))?;
    }
    if s.dropped > 0 {
        writeln!(
            out,
            "{} {} older records (over max_pending), said in the next email",
            p.label("dropped"),
            s.dropped
        )?;
    }
    if s.parked_files > 0 {
        writeln!(
            out,
            "{} {} (records of runs that found the file locked; the next flush merges them)",
            p.label("parked"),
            plural(s.parked_files, "file")
        )?;
    }
    write_failures(out, s, p)?;
    write_alerts(out, s, p)?;
    let last_sent = s.last_sent.map_or_else(|| "never".to_owned(), utc);
    writeln!(out, "{} {last_sent}", p.label("last sent"))?;
    match &s.last_error {
        Some(e) => writeln!(out, "{} {}", p.label("last error"), p.paint(RED, e))?,
        None => writeln!(out, "{} none", p.label("last error"))?,
    }
    let pending = s.pending.len();
    let verdict = match &s.verdict {
        _ if !policy_known => p.paint(
            DIM,
            "not known: give the program's settings (--config FILE, --env PREFIX) or its rules \
             (--threshold 5:warn, --consecutive-runs 3, …)",
        ),
        None | Some(Verdict::Nothing) => "nothing pending, nothing to send".to_owned(),
        Some(Verdict::Hold { waiting_for }) => p.paint(
            YELLOW,
            &format!("holds {}: {waiting_for}", plural(pending, "record")),
        ),
        Some(Verdict::Wait { until }) => p.paint(
            YELLOW,
            &format!(
                "waits: a rule is met, but min_interval keeps the next email until {}",
                utc(*until)
            ),
        ),
        Some(Verdict::Send { records }) => p.paint(
            GREEN,
            &format!("sends {records} of the {pending} pending records at the next flush"),
        ),
        Some(other) => format!("{other:?}"),
    };
    writeln!(out, "{} {verdict}", p.label("policy"))
}

/// The failures followed across runs, one row each.
fn write_failures(out: &mut impl Write, s: &Snapshot, p: Paint) -> io::Result<()> {
    if s.failures.is_empty() {
        return writeln!(out, "{} none followed", p.label("failures"));
    }
    writeln!(
        out,
        "{} {}",
        p.label("failures"),
        p.paint(
            DIM,
            &format!(
                "{:>4}  {:<5}  {:<23}  {:<23}  FAILURE",
                "RUNS", "LEVEL", "SINCE", "REPORTED"
            )
        )
    )?;
    for f in &s.failures {
        let reported = f.reported.map_or_else(|| "not yet".to_owned(), utc);
        writeln!(
            out,
            "{:<12} {:>4}  {}{}  {:<23}  {reported:<23}  {}{}",
            "",
            f.runs,
            p.level(f.level),
            " ".repeat(5 - f.level.as_str().len()),
            utc(f.since),
            f.label,
            note(f, s.runs, p)
        )?;
    }
    Ok(())
}

/// The alerts Alertmanager holds as firing, one row each, and the last
/// post's answer; nothing for a program that never posted.
fn write_alerts(out: &mut impl Write, s: &Snapshot, p: Paint) -> io::Result<()> {
    if s.alerts.is_empty() && s.last_alert_post.is_none() {
        return Ok(());
    }
    writeln!(
        out,
        "{} Alertmanager: {}",
        p.label("alerts"),
        alert_count(s)
    )?;
    for alert in &s.alerts {
        let colour = if alert.is_firing() { RED } else { YELLOW };
        writeln!(out, "{:<12}   {}", "", p.paint(colour, &alert.to_string()))?;
    }
    if let Some(post) = &s.last_alert_post {
        let answer = post.to_string();
        let answer = if post.is_accepted() {
            answer
        } else {
            p.paint(RED, &answer)
        };
        writeln!(out, "{:<12}   last post: {}, {answer}", "", utc(post.at))?;
    }
    Ok(())
}

/// `2 alerts firing`, `none firing, 1 resolution not accepted yet`.
fn alert_count(s: &Snapshot) -> String {
    let firing = s.alerts.iter().filter(|a| a.is_firing()).count();
    let over = s.alerts.len() - firing;
    let mut text = match firing {
        0 => "none firing".to_owned(),
        1 => "1 alert firing".to_owned(),
        n => format!("{n} alerts firing"),
    };
    if over > 0 {
        text.push_str(&format!(
            ", {} not accepted yet",
            plural(over, "resolution")
        ));
    }
    text
}

/// What else a person needs to know of a failure: its streak is over, or
/// the policy keeps it quiet.
fn note(f: &Failure, last_run: u64, p: Paint) -> String {
    let mut notes = Vec::new();
    if f.last_run < last_run {
        notes.push("streak over: not in the last run".to_owned());
    }
    if f.quiet {
        notes.push(match f.quiet_until {
            Some(until) => format!("quiet until {} (repeat_after)", utc(until)),
            None => {
                "quiet until a run without it (consecutive_runs reports a streak once)".to_owned()
            }
        });
    }
    if notes.is_empty() {
        String::new()
    } else {
        p.paint(DIM, &format!("  ({})", notes.join("; ")))
    }
}

/// `show`: the pending records, oldest first, at `level` or above.
pub(crate) fn write_records(
    out: &mut impl Write,
    s: &Snapshot,
    json: bool,
    level: Option<Level>,
    color: bool,
) -> io::Result<()> {
    let p = Paint(color && !json);
    // Level's order: TRACE > DEBUG > … > ERROR ("more verbose is greater").
    let shown = s
        .pending
        .iter()
        .filter(|r| level.is_none_or(|l| r.level <= l));
    for record in shown {
        if json {
            serde_json::to_writer(&mut *out, record)?;
            writeln!(out)?;
            continue;
        }
        let line = record.to_line(UtcOffset::UTC);
        let tag = format!(" {} ", record.level);
        match line.split_once(&tag) {
            Some((time, rest)) if p.0 => writeln!(
                out,
                "{} {} {rest}",
                p.paint(DIM, time),
                p.level(record.level)
            )?,
            _ => writeln!(out, "{line}")?,
        }
        if let Some(context) = record.span_context() {
            writeln!(out, "    {context}")?;
        }
    }
    if json {
        write_alert_lines(out, s, level)?;
    }
    Ok(())
}

/// `show --json`'s last lines: one `{"alert": …}` per alert Alertmanager
/// holds as firing (at `level` or above), then `{"alert_post": …}`.
fn write_alert_lines(out: &mut impl Write, s: &Snapshot, level: Option<Level>) -> io::Result<()> {
    let shown = s.alerts.iter().filter(|a| {
        let at = if a.severity == "error" {
            Level::ERROR
        } else {
            Level::WARN
        };
        level.is_none_or(|l| at <= l)
    });
    for a in shown {
        let alert = serde_json::json!({ "alert": {
            "failure": a.failure,
            "severity": a.severity,
            "status": if a.is_firing() { "firing" } else { "resolved, not accepted yet" },
            "labels": a.labels,
            "since": rfc3339(Some(a.since)),
            "runs": a.runs,
            "resolved": rfc3339(a.resolved),
            "last_accepted": rfc3339(a.last_accepted),
        }});
        serde_json::to_writer(&mut *out, &alert)?;
        writeln!(out)?;
    }
    if let Some(post) = &s.last_alert_post {
        let line = serde_json::json!({ "alert_post": post_json(post) });
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
    }
    Ok(())
}

fn post_json(post: &AlertPost) -> serde_json::Value {
    serde_json::json!({
        "at": rfc3339(Some(post.at)),
        "firing": post.firing,
        "resolved": post.resolved,
        "accepted": post.accepted,
        "of": post.of,
        "error": post.error,
        "outcome": post.to_string(),
    })
}

/// A time as the state file writes it, or `null`.
fn rfc3339(t: Option<OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}
