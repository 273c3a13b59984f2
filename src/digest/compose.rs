//! Composing the digest email: each record's text line rendered once
//! (measured to split a large digest), the plain-text body (headline first,
//! records run by run), the headers, and the parts put together from one
//! [`Summary`] ([`crate::digest::summary`]): the text and HTML alternatives
//! and the log attached; and the short email that only says failures are
//! over (`notify_recovery`). MIME and header encoding are lettre's.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use time::{OffsetDateTime, UtcOffset};
use tracing::Level;

use crate::capture::record::{Record, write_escaped};
use crate::digest::html;
use crate::digest::subject::{Template, default_subject};
use crate::digest::summary::{MAX_PROBLEMS, Summary, footer, problems, resolved_subject};
use crate::error::{Error, ErrorKind};
use crate::say::plural;
use crate::store::history::{History, Resolved, strip_text, unmatched_fields};
use crate::transport::Email;

/// Everything needed to turn records into an email.
#[derive(Debug, Clone)]
pub(crate) struct Composer {
    pub(crate) app: String,
    pub(crate) from: Mailbox,
    pub(crate) to: Vec<Mailbox>,
    /// The subject template; `None` for the default subject.
    pub(crate) subject: Option<Template>,
    /// This machine's name (the `host` setting, else the system's), read
    /// once by `build()`: in the first lines and for `{host}`.
    pub(crate) host: String,
    /// Whether emails carry an HTML alternative to the text.
    pub(crate) html: bool,
    pub(crate) offset: UtcOffset,
    pub(crate) state_path: PathBuf,
    /// The fields that identify a failure (the policy's).
    pub(crate) fingerprint_fields: Vec<String>,
    /// Records at this level or above are summarised as problems.
    pub(crate) level: Level,
    /// Most records listed one by one; the oldest beyond it are only counted.
    pub(crate) detail_lines: usize,
}

/// Appends `text` as a line of the text part, control characters escaped.
fn line(out: &mut String, text: &str) {
    write_escaped(out, text, false);
    out.push('\n');
}

impl Composer {
    /// The plain-text body: the headline (what failed, where, since when),
    /// an overview line, what went wrong, then one line per record (with
    /// its span context indented below), oldest first, each run's after a
    /// `— run 3, 2026-11-21 03:00 —` line. What comes from the records has
    /// its control characters shown escaped (`\n`, `\u{1b}`), so a record is
    /// always one line and cannot fake another one. `lines` are the shown
    /// records' lines, made by [`Composer::render`].
    fn body(&self, summary: &Summary<'_>, lines: &[String]) -> String {
        let lines_len: usize = lines.iter().map(String::len).sum();
        let mut out = String::with_capacity(lines_len + 4096);
        line(&mut out, &summary.headline());
        line(&mut out, &summary.overview());
        summary.notes().for_each(|note| line(&mut out, &note));
        // `WARN feed "Radio Café": connection timed out; 5 records, 2026-11-20
        // 08:00:00 to 12:00:00, in each of the last 5 runs; last 5 runs, …`.
        let problems = summary.problems.iter().take(MAX_PROBLEMS).map(|p| {
            let detail = p.detail.as_ref().map(|d| format!("{d}; "));
            let strip = p.recent.as_deref().map(|s| format!("; {}", strip_text(s)));
            let (detail, strip) = (detail.unwrap_or_default(), strip.unwrap_or_default());
            let facts = summary.problem_facts(p);
            format!("{} {}: {detail}{facts}{strip}", p.level, p.label)
        });
        let more = summary.more_problems_note();
        write_section(&mut out, "What went wrong", (problems.collect(), more));
        write_section(&mut out, "Resolved", summary.resolved_lines());
        out.push('\n');
        if let Some(note) = summary.hidden_note() {
            let _ = write!(out, "{note}\n\n");
        }
        let mut run = None;
        for (record, rendered) in summary.shown().iter().zip(lines) {
            if run != Some(record.run) {
                run = Some(record.run);
                line(&mut out, &summary.run_line(record));
            }
            out.push_str(rendered);
        }
        self.write_footer(&mut out);
        if let Some(note) = &summary.fields_note {
            let _ = writeln!(out, "Note: {note}");
        }
        out
    }

    /// The text part's footer, after the signature separator.
    fn write_footer(&self, out: &mut String) {
        let footer = footer(&self.app, &self.state_path.display().to_string());
        let _ = write!(out, "\n-- \n{footer}\n");
    }

    /// A summary of `records` for this composer's email, saying that the
    /// failures `resolved` are over; its problems, notes and part are
    /// filled in by [`compose_with`](Self::compose_with).
    pub(crate) fn summary<'a>(
        &'a self,
        records: &'a [Record],
        resolved: &'a [Resolved],
    ) -> Summary<'a> {
        Summary {
            app: &self.app,
            records,
            dropped: 0,
            part: None,
            offset: self.offset,
            problems: Vec::new(),
            detail_lines: self.detail_lines,
            fields_note: None,
            resolved,
            host: &self.host,
            level: self.level,
            late: None,
        }
    }

    /// The email that only says failures are over: `[poca] resolved: …`,
    /// one line per failure (the same as a digest's "Resolved" section).
    pub(crate) fn compose_recovery(&self, resolved: &[Resolved]) -> Result<Email, Error> {
        let summary = self.summary(&[], resolved);
        let mut text = String::new();
        write_escaped(&mut text, &summary.resolved_headline(), false);
        let (app, failures) = (&self.app, plural(resolved.len(), "failure", "failures"));
        let verb = if resolved.len() == 1 { "is" } else { "are" };
        let _ = writeln!(text, "\n{app}: {failures} reported earlier {verb} over.");
        write_section(&mut text, "Resolved", summary.resolved_lines());
        self.write_footer(&mut text);
        let page = || html::render_recovery(&summary, &self.state_path);
        let html = self.html.then(page);
        self.email(resolved_subject(&self.app, resolved), text, html, &[])
    }

    /// `record` as it appears in the text body (and the attached log): its
    /// line and its span context's indented below, each with its newline,
    /// control characters shown escaped (`\n`, `\u{1b}`). Made once: measured
    /// to split a digest by size (see [`bytes`](Self::bytes)), then put into
    /// the email as it is, so that what is counted is what is sent.
    pub(crate) fn render(&self, record: &Record) -> String {
        let mut text = record.to_line(self.offset);
        text.push('\n');
        if let Some(context) = record.span_context() {
            let _ = writeln!(text, "    {context}");
        }
        text
    }

    /// The bytes a record's `rendered` text adds to an email: once in the
    /// text part and, with an HTML part, again in the attached log. (The
    /// HTML part shows a bounded number of records whatever the digest's
    /// size.)
    pub(crate) fn bytes(&self, rendered: &str) -> usize {
        rendered.len() * (1 + usize::from(self.html))
    }

    /// Builds the email holding `records`; `part` is `(k, n)` when this is
    /// part k of a digest split into n emails; with a "Resolved" section
    /// saying that the failures `resolved` are over (when there are any),
    /// and a note saying why it is `late` (an earlier send failed: the state file's last error and when). `shown`
    /// are the records listed one by one (the newest `detail_lines`) made by
    /// [`Composer::render`] when they were measured; when they are not
    /// (`&[]`), they are made here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compose_with(
        &self,
        records: &[Record],
        shown: &[String],
        dropped: u64,
        part: Option<(usize, usize)>,
        history: &History,
        resolved: &[Resolved],
        late: Option<(&str, Option<OffsetDateTime>)>,
    ) -> Result<Email, Error> {
        let mut summary = self.summary(records, resolved);
        (summary.dropped, summary.part, summary.late) = (dropped, part, late);
        let fields = &self.fingerprint_fields;
        summary.problems = problems(records, history, fields, self.level);
        summary.fields_note = unmatched_fields(records, fields, self.level, history);
        let made: Vec<String>;
        let shown = if shown.len() == summary.shown().len() {
            shown
        } else {
            made = summary.shown().iter().map(|r| self.render(r)).collect();
            &made
        };
        let mut subject = match &self.subject {
            Some(template) => template.render(&summary),
            None => default_subject(&summary),
        };
        if let Some((k, n)) = part {
            let _ = write!(subject, " (part {k} of {n})");
        }
        let text = self.body(&summary, shown);
        let html = self.html.then(|| html::render(&summary, &self.state_path));
        self.email(subject, text, html, records)
    }

    /// The email with these parts, from and to the configured addresses
    /// (lettre adds the `Date`):
    /// the text alone, or the text and HTML alternatives and, for a digest
    /// (an email with records), the log attached, every record, for the
    /// readers of the HTML part, which shows only a few.
    pub(crate) fn email(
        &self,
        subject: String,
        text: String,
        html: Option<String>,
        records: &[Record],
    ) -> Result<Email, Error> {
        let builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject.clone())
            .message_id(Some(message_id(&self.from)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        let builder = self.to.iter().cloned().fold(builder, |b, to| b.to(to));
        let alternatives =
            |html: &String| MultiPart::alternative_plain_html(text.clone(), html.clone());
        let message = match (&html, records.is_empty()) {
            (None, _) => builder.singlepart(SinglePart::plain(text.clone())),
            (Some(html), true) => builder.multipart(alternatives(html)),
            (Some(html), false) => {
                // `app` as a file name: letters, digits, `-`, `_` and `.` kept.
                let file = self
                    .app
                    .replace(|c: char| !c.is_alphanumeric() && !"-_.".contains(c), "_");
                let log = Attachment::new(format!("{file}-log.txt"));
                let log = log.body(text.clone(), ContentType::TEXT_PLAIN);
                let mixed = MultiPart::mixed().multipart(alternatives(html));
                builder.multipart(mixed.singlepart(log))
            }
        };
        let message = message.map_err(|e| {
            Error::with_source(ErrorKind::Compose, "could not compose the digest email", e)
        })?;
        let records = records.into();
        Ok(Email {
            subject,
            text,
            html,
            message,
            records,
        })
    }
}

/// A section of a text body, unless it has no `lines`: `\n{title}:\n`,
/// each line indented, then `more` (the count of those left out); e.g.
/// `\nResolved:\n  WARN feed "Radio Café": OK again after failing 9 runs, …`.
fn write_section(out: &mut String, title: &str, (lines, more): (Vec<String>, Option<String>)) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for text in &lines {
        out.push_str("  ");
        line(out, text);
    }
    if let Some(more) = more {
        let _ = writeln!(out, "  {more}");
    }
}

/// A new `Message-ID` in the sender's domain (RFC 5322 asks for a domain
/// the sender controls, not the bare host name): the time, the process and
/// a counter make it unique. `<18c0f3a2b4d5e6f7.4d2.3@example.com>`.
fn message_id(from: &Mailbox) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    let nanos = since_epoch.map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (pid, domain) = (std::process::id(), from.email.domain());
    format!("<{nanos:x}.{pid:x}.{n}@{domain}>")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use crate::store::history::fingerprint;
    use time::OffsetDateTime;

    impl Composer {
        /// [`Composer::compose_with`] with nothing resolved and nothing late.
        pub(crate) fn compose(
            &self,
            records: &[Record],
            shown: &[String],
            dropped: u64,
            part: Option<(usize, usize)>,
            history: &History,
        ) -> Result<Email, Error> {
            self.compose_with(records, shown, dropped, part, history, &[], None)
        }
    }

    pub(crate) fn composer() -> Composer {
        Composer {
            app: "poca".into(),
            from: "poca <robot@example.com>".parse().unwrap(),
            to: vec![
                "me@example.com".parse().unwrap(),
                "Zoë <zoe@example.org>".parse().unwrap(),
            ],
            subject: None,
            host: "web-3".into(),
            html: true,
            offset: UtcOffset::UTC,
            state_path: "/tmp/state.json".into(),
            fingerprint_fields: vec!["feed".into()],
            level: Level::WARN,
            detail_lines: 200,
        }
    }

    fn body(c: &Composer, records: &[Record], dropped: u64) -> String {
        let mut summary = c.summary(records, &[]);
        summary.dropped = dropped;
        summary.problems = problems(records, &History::default(), &c.fingerprint_fields, c.level);
        let lines: Vec<String> = summary.shown().iter().map(|r| c.render(r)).collect();
        c.body(&summary, &lines)
    }

    fn records(levels: &[Level]) -> Vec<Record> {
        levels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut r = record_at(*l);
                r.message = format!("record {i}");
                r
            })
            .collect()
    }

    #[test]
    fn subject_is_the_template_or_the_default() {
        let rs = records(&[Level::ERROR, Level::WARN, Level::WARN, Level::INFO]);
        let mut c = composer();
        let email = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        // The most severe failure first, then the counts.
        assert_eq!(
            email.subject(),
            "[poca] record 0; 1 error, 2 warnings since 1970-01-01 00:00"
        );
        c.subject = Some(Template::parse("{app} on {host}: {max_level} x{count}").unwrap());
        c.host = "backup-01".into();
        let email = c
            .compose(&rs, &[], 0, Some((1, 2)), &History::default())
            .unwrap();
        assert_eq!(email.subject(), "poca on backup-01: ERROR x4 (part 1 of 2)");
    }

    #[test]
    fn body_lists_every_record_oldest_first_after_a_summary() {
        let rs = records(&[Level::WARN, Level::INFO, Level::ERROR]);
        let text = body(&composer(), &rs, 0);
        let lines: Vec<&str> = text.lines().collect();
        // What failed, where and when; then the counts.
        assert_eq!(lines[0], "ERROR on web-3 at 00:00: record 2");
        assert_eq!(
            lines[1],
            "poca on web-3: 3 log records (1 ERROR, 1 WARN, 1 INFO) from 1970-01-01 00:00:00 to 1970-01-01 00:00:00, times in UTC."
        );
        let r0 = lines.iter().position(|l| l.ends_with("test: record 0"));
        let r2 = lines.iter().position(|l| l.ends_with("test: record 2"));
        assert!(r0.unwrap() < r2.unwrap());
        assert!(!text.contains("dropped"));
        assert!(body(&composer(), &rs, 412).contains("412 older records were dropped"));
        // Each run's records after a line that names it.
        let mut rs = rs;
        rs[0].run = Some(3);
        rs[1].run = Some(4);
        rs[2].run = Some(4);
        rs[2].timestamp += time::Duration::hours(1);
        let text = body(&composer(), &rs, 0);
        let runs: Vec<&str> = text.lines().filter(|l| l.starts_with('—')).collect();
        assert_eq!(
            runs,
            ["— run 3, 1970-01-01 00:00 —", "— run 4, 1970-01-01 00:00 —"]
        );
        let third = text.find("— run 4").unwrap();
        assert!(text[third..].contains("test: record 1\n"), "{text}");
    }

    #[test]
    fn a_record_cannot_fake_a_line_in_the_text_part() {
        let mut c = composer();
        let mut r = record_at(Level::WARN);
        r.message = "disk full\r\nSubject: x\n\u{1b}[31mred".into();
        r.fields
            .push("path\nFrom".into(), "a\r\nTo: evil@example.com".into());
        r.spans
            .push(std::sync::Arc::new(crate::capture::record::SpanRecord {
                name: "job\nX-Fake: 1".into(),
                fields: crate::capture::record::Fields::from_vec(vec![(
                    "k".into(),
                    "v\r\nY: 2".into(),
                )]),
            }));
        let rs = [r];
        c.fingerprint_fields.clear(); // the label is the message
        let email = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        let text = email.text();
        for fake in ["Subject: x", "To: evil", "X-Fake", "Y: 2", "From="] {
            assert!(
                text.lines().all(|l| !l.starts_with(fake)),
                "{fake} starts a line in\n{text}"
            );
        }
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text}");
        assert!(
            text.contains(
                r#"WARN test: disk full\r\nSubject: x\n\u{1b}[31mred path\nFrom="a\r\nTo: evil@example.com""#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"    in job\nX-Fake: 1{k="v\r\nY: 2"}"#),
            "{text}"
        );
        // The summary's label is the message's start, escaped too.
        assert!(
            text.contains(r#"  WARN disk full\r\nSubject: x\n\u{1b}[31mred: 1 record"#),
            "{text}"
        );
        // What is measured is the escaped line, as sent.
        c.html = false;
        let line = rs[0].to_line(UtcOffset::UTC).len() + 1;
        let context = rs[0].span_context().unwrap().len() + 5;
        assert_eq!(c.bytes(&c.render(&rs[0])), line + context);
    }

    #[test]
    fn email_has_the_headers_a_mail_client_needs() {
        let rs = records(&[Level::WARN]);
        let email = composer()
            .compose(&rs, &[], 0, None, &History::default())
            .unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        for header in [
            "From: ",
            "To: ",
            "Subject: ",
            "Date: ",
            "Message-ID: ",
            "Auto-Submitted: auto-generated",
        ] {
            assert!(raw.contains(header), "{header} missing in\n{raw}");
        }
        assert_eq!(email.recipients(), ["me@example.com", "zoe@example.org"]);
        assert_eq!(email.records().len(), 1);
    }

    #[test]
    fn parts_are_numbered_in_subject_and_body() {
        let rs = records(&[Level::WARN]);
        let email = composer()
            .compose(&rs, &[], 0, Some((2, 3)), &History::default())
            .unwrap();
        assert!(
            email.subject().ends_with(" (part 2 of 3)"),
            "{}",
            email.subject()
        );
        let third = email.text().lines().nth(2).unwrap();
        assert!(third.starts_with("This is part 2 of 3"), "{}", email.text());
    }

    #[test]
    fn the_size_of_a_record_is_what_it_adds_to_the_email() {
        let mut c = composer();
        c.html = false;
        // Below the composer's level, so that the summary lists no problem
        // whose count would grow too.
        let mut r = record_at(Level::INFO);
        r.message = "feed <failed> & \"retried\"\n".into();
        r.fields.push("feed".into(), "Radio Café".into());
        r.fields.push("n".into(), 42.into());
        r.spans
            .push(std::sync::Arc::new(crate::capture::record::SpanRecord {
                name: "job".into(),
                fields: crate::capture::record::Fields::from_vec(vec![("id".into(), "<7>".into())]),
            }));
        let real = r.to_line(UtcOffset::UTC).len() + 1 + r.span_context().unwrap().len() + 5;
        assert_eq!(c.bytes(&c.render(&r)), real);

        // With HTML, the text goes twice: in the text part and in the
        // attached log. One more record grows the text by exactly its line
        // ("1 log record" becoming "2 log records" adds a byte of its own
        // to the headline and one to the overview).
        c.html = true;
        let one = c
            .compose(&[r.clone()], &[], 0, None, &History::default())
            .unwrap();
        let two = c
            .compose(&[r.clone(), r.clone()], &[], 0, None, &History::default())
            .unwrap();
        assert_eq!(
            c.bytes(&c.render(&r)),
            2 * (two.text().len() - one.text().len() - 2)
        );
        let raw = String::from_utf8(two.formatted()).unwrap();
        assert!(
            raw.contains("Content-Disposition: attachment; filename=\"poca-log.txt\""),
            "{raw}"
        );
    }

    #[test]
    fn an_email_from_rows_rendered_before_is_the_email_rendered_anew() {
        let c = composer();
        let mut rs = records(&[Level::WARN, Level::ERROR, Level::INFO, Level::WARN]);
        rs[1].message = "disk <full>".into();
        let rendered: Vec<String> = rs.iter().map(|r| c.render(r)).collect();
        let before = c
            .compose(&rs, &rendered, 0, None, &History::default())
            .unwrap();
        let anew = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        assert_eq!(before.text(), anew.text());
        assert_eq!(before.html(), anew.html());
        // Only the shown records' pieces are used: with two of four shown,
        // the newest two.
        let c = Composer {
            detail_lines: 2,
            ..c
        };
        let shown = c
            .compose(&rs, &rendered[2..], 0, None, &History::default())
            .unwrap();
        let anew = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        assert_eq!(shown.text(), anew.text());
        assert_eq!(shown.html(), anew.html());
        assert!(
            !shown.text().contains("test: disk <full>"),
            "{}",
            shown.text()
        );
    }

    /// `n` records of the feed `feed` at `level`, one an hour from `hour`.
    fn feed_records(feed: &str, level: Level, hour: i64, n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let mut r = record_at(level);
                r.message = "feed failed".into();
                r.fields.push("feed".into(), serde_json::json!(feed));
                r.timestamp = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(hour + i as i64);
                r
            })
            .collect()
    }

    /// A history in which `feed` failed in each of the last `runs` runs.
    fn streak(c: &Composer, feed: &str, runs: u64) -> History {
        let mut h = History::default();
        let r = &feed_records(feed, Level::WARN, 0, 1)[0];
        let fp = fingerprint(r, &c.fingerprint_fields);
        for _ in 0..runs {
            let run = h.start_run();
            h.observe(run, &fp, Level::WARN, r.timestamp);
        }
        h
    }

    #[test]
    fn the_summary_puts_the_worst_and_longest_running_failure_first() {
        let c = composer();
        let mut rs = feed_records("Ääniraita", Level::WARN, 0, 1);
        rs.extend(feed_records("Radio Café", Level::WARN, 1, 5));
        rs.extend(feed_records("ポッドキャスト", Level::ERROR, 2, 1));
        if let Some(r) = rs.last_mut() {
            r.fields.push("error".into(), serde_json::json!("HTTP 503"));
        }
        rs.push(record_at(Level::INFO)); // context, not a problem
        let h = streak(&c, "Radio Café", 5);
        let ps = problems(&rs, &h, &c.fingerprint_fields, c.level);
        let labels: Vec<&str> = ps.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                r#"feed "ポッドキャスト""#,
                r#"feed "Radio Café""#,
                r#"feed "Ääniraita""#
            ]
        );
        assert_eq!((ps[1].count, ps[1].runs), (5, Some(5)));
        assert_eq!(ps[2].runs, None);
        let email = c.compose(&rs, &[], 0, None, &h).unwrap();
        let text = email.text();
        // The most severe first, in the first line and the subject, though
        // another failure persists.
        assert!(
            text.starts_with("feed \"ポッドキャスト\" failed on web-3 at 02:00\n"),
            "{text}"
        );
        assert_eq!(
            email.subject(),
            "[poca] feed \"ポッドキャスト\"; feed \"Radio Café\" failing for 5 runs; 1 other warning"
        );
        // Each line with its most telling field: `error`, else the message.
        assert!(text.contains("What went wrong:\n  ERROR feed \"ポッドキャスト\": HTTP 503; 1 record, at 1970-01-01 02:00:00\n"), "{text}");
        assert!(
            text.contains(
                "  WARN feed \"Radio Café\": feed failed; 5 records, 1970-01-01 01:00:00 to 1970-01-01 05:00:00, in each of the last 5 runs; last 5 runs, oldest first: ✗✗✗✗✗\n"
            ),
            "{text}"
        );
        let html = email.html().unwrap();
        assert!(html.contains("What went wrong"), "{html}");
        assert!(html.contains("in each of the last 5 runs"));
    }

    /// The history of runs where run i saw the feeds of `runs[i]`.
    fn runs_of(c: &Composer, runs: &[&[&str]]) -> History {
        let mut h = History::default();
        for feeds in runs {
            let run = h.start_run();
            for feed in *feeds {
                let r = &feed_records(feed, Level::WARN, 0, 1)[0];
                let fp = fingerprint(r, &c.fingerprint_fields);
                h.observe(run, &fp, Level::WARN, r.timestamp);
            }
        }
        h
    }

    #[test]
    fn each_failure_shows_its_recent_runs_flapping_or_out() {
        let c = composer();
        let (a, b) = ("flaky", "down");
        let h = runs_of(&c, &[&[a], &[], &[a], &[], &[a, b], &[b], &[b], &[a, b]]);
        let mut rs = feed_records(a, Level::WARN, 0, 1);
        rs.extend(feed_records(b, Level::WARN, 0, 1));
        let email = c.compose(&rs, &[], 0, None, &h).unwrap();
        let text = email.text();
        assert!(
            text.contains("feed \"flaky\": feed failed; 1 record, at 1970-01-01 00:00:00; last 8 runs, oldest first: ✗✓✗✓✗✓✓✗\n"),
            "{text}"
        );
        assert!(
            text.contains("in each of the last 4 runs; last 8 runs, oldest first: ✓✓✓✓✗✗✗✗\n"),
            "{text}"
        );
        // In HTML: one cell per run, each with its glyph as text (red for
        // a failure, green without, as a second cue).
        let html = email.html().unwrap();
        let flaky = &html[html.find("feed &quot;flaky&quot;").unwrap()..];
        let strip = &flaky[flaky.find("last 8 runs, oldest first: ").unwrap()..];
        let strip = &strip[..strip.find("</p>").unwrap()];
        let glyphs: String = strip
            .split("</span>")
            .filter_map(|cell| cell.rsplit_once("\">").map(|(_, glyph)| glyph))
            .collect();
        assert_eq!(glyphs, "✗✓✗✓✗✓✓✗", "{strip}");
        // One run known: no strip.
        let h = runs_of(&c, &[&[a]]);
        let email = c.compose(&rs[..1], &[], 0, None, &h).unwrap();
        assert!(!email.text().contains("oldest first"), "{}", email.text());
        assert!(!email.html().unwrap().contains("oldest first"));
    }

    #[test]
    fn failures_that_are_over_are_said_in_the_digest_or_alone() {
        let c = composer();
        let t = OffsetDateTime::UNIX_EPOCH;
        let over = crate::store::history::Resolved {
            key: "k".into(),
            label: r#"feed "Radio Café""#.into(),
            level: Level::ERROR,
            runs: 9,
            since: t,
            last_seen: t + time::Duration::hours(8),
            run: 10,
        };
        let rs = records(&[Level::WARN]);
        let email = c
            .compose_with(
                &rs,
                &[],
                0,
                None,
                &History::default(),
                std::slice::from_ref(&over),
                None,
            )
            .unwrap();
        let line = "ERROR feed \"Radio Café\": OK again after failing 9 runs, from 1970-01-01 00:00:00 to 1970-01-01 08:00:00";
        assert!(
            email.text().contains(&format!("\nResolved:\n  {line}\n")),
            "{}",
            email.text()
        );
        let html = email.html().unwrap();
        assert!(html.contains(">Resolved</p>"), "{html}");
        assert!(
            html.contains("feed &quot;Radio Café&quot;: OK again after failing 9 runs"),
            "{html}"
        );
        // Without: no section.
        let plain = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        assert!(!plain.text().contains("Resolved") && !plain.html().unwrap().contains("Resolved"));
        // Alone: its own subject, no records.
        let mut other = over.clone();
        other.label = "disk full".into();
        let email = c.compose_recovery(std::slice::from_ref(&over)).unwrap();
        assert_eq!(
            email.subject(),
            "[poca] resolved: feed \"Radio Café\" OK again after failing 9 runs"
        );
        // It leads with what is over, where, after how long.
        let headline = "Resolved: feed \"Radio Café\" is OK again on web-3 after failing 9 runs \
                        (00:00–08:00)";
        assert!(
            email.text().starts_with(&format!(
                "{headline}\npoca: 1 failure reported earlier is over.\n\nResolved:\n  {line}\n\n-- \n"
            )),
            "{}",
            email.text()
        );
        assert!(email.records().is_empty());
        // In green, with no level badge.
        let html = email.html().unwrap();
        assert!(
            html.contains(&format!(
                "color:#0d652d;background:#e6f4ea;border-left:4px solid #34a853\">{}</p>",
                headline.replace('"', "&quot;")
            )),
            "{html}"
        );
        assert!(
            !html.contains(">WARN<") && !html.contains(">ERROR<"),
            "{html}"
        );
        let both = c.compose_recovery(&[over, other]).unwrap();
        assert_eq!(
            both.subject(),
            "[poca] resolved: feed \"Radio Café\" and 1 more OK again"
        );
        assert!(both.text().starts_with(
            "Resolved: feed \"Radio Café\" and 1 more failure are OK again on web-3\n"
        ));
        assert!(both.text().contains("2 failures reported earlier are over"));
        assert!(
            both.text().contains("  WARN disk full: OK again")
                || both.text().contains("  ERROR disk full: OK again")
        );
    }

    #[test]
    fn the_subject_names_the_failure_that_persists() {
        let c = composer();
        let mut rs = feed_records("Radio Café", Level::WARN, 0, 5);
        rs.extend(feed_records("Ääniraita", Level::WARN, 0, 3));
        let h = streak(&c, "Radio Café", 5);
        let email = c.compose(&rs, &[], 0, None, &h).unwrap();
        assert_eq!(
            email.subject(),
            r#"[poca] feed "Radio Café" failing for 5 runs; 3 other warnings"#
        );
        // No streak: the first failure, then the counts.
        let email = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        assert!(
            email
                .subject()
                .starts_with("[poca] feed \"Radio Café\"; 8 warnings since"),
            "{}",
            email.subject()
        );
    }

    #[test]
    fn the_footer_says_when_no_record_has_a_fingerprint_field() {
        let mut c = composer();
        c.fingerprint_fields = vec!["Feed".into()];
        let rs = feed_records("Radio Café", Level::WARN, 0, 2);
        let email = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        let note = "Note: fingerprint_fields [\"Feed\"]: no record at WARN or above has any of \
                    them; they carry: feed (did you mean \"feed\"?).";
        let text = email.text();
        let footer_at = text.find("\n-- \n").unwrap();
        assert!(text[footer_at..].contains(note), "{text}");
        let html = email.html().unwrap();
        assert!(
            html.contains(
                "Note: fingerprint_fields [&quot;Feed&quot;]: no record at WARN or above"
            ),
            "{html}"
        );
        // The field matches: no note.
        c.fingerprint_fields = vec!["feed".into()];
        let email = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        assert!(!email.text().contains("fingerprint_fields"));
        assert!(!email.html().unwrap().contains("fingerprint_fields"));
    }

    #[test]
    fn the_subject_names_every_failure_that_persists() {
        let c = composer();
        let mut rs = feed_records("Radio Café", Level::WARN, 0, 2);
        rs.extend(feed_records("Ääniraita", Level::WARN, 0, 1));
        rs.extend(feed_records("Hörspiel", Level::WARN, 0, 3));
        let mut h = History::default();
        for _ in 0..3 {
            let run = h.start_run();
            for feed in ["Radio Café", "Ääniraita"] {
                let fp = fingerprint(
                    &feed_records(feed, Level::WARN, 0, 1)[0],
                    &c.fingerprint_fields,
                );
                h.observe(run, &fp, Level::WARN, OffsetDateTime::UNIX_EPOCH);
            }
        }
        let email = c.compose(&rs, &[], 0, None, &h).unwrap();
        assert_eq!(
            email.subject(),
            r#"[poca] feed "Radio Café" and feed "Ääniraita" failing for 3 runs; 3 other warnings"#
        );
    }

    #[test]
    fn the_detail_lists_the_newest_records_and_counts_the_rest() {
        let mut c = composer();
        c.detail_lines = 3;
        let rs: Vec<Record> = (0..10)
            .map(|i| {
                let mut r = record_at(Level::WARN);
                r.message = "disk almost full".into();
                r.fields.push("n".into(), serde_json::json!(i));
                r
            })
            .collect();
        let email = c.compose(&rs, &[], 0, None, &History::default()).unwrap();
        let text = email.text();
        assert!(
            text.contains(
                "The newest 3 records follow, and 7 more (earlier) are only counted above."
            ),
            "{text}"
        );
        assert!(
            text.contains("  WARN disk almost full: 10 records"),
            "{text}"
        );
        let listed: Vec<&str> = text.lines().filter_map(|l| l.split(" n=").nth(1)).collect();
        assert_eq!(listed, ["7", "8", "9"]);
        let html = email.html().unwrap();
        assert!(html.contains(">9<") && !html.contains(">6<"), "{html}");
    }

    #[test]
    fn the_summary_lists_at_most_twenty_kinds_of_failure() {
        let rs: Vec<Record> = (0..25)
            .map(|i| {
                let mut r = record_at(Level::WARN);
                r.message = format!("failure {i}");
                r
            })
            .collect();
        let email = composer()
            .compose(&rs, &[], 0, None, &History::default())
            .unwrap();
        let text = email.text();
        assert_eq!(text.matches("  WARN failure ").count(), MAX_PROBLEMS);
        assert!(
            text.contains("  … and 5 other kinds of failure.\n"),
            "{text}"
        );
        assert!(
            email
                .html()
                .unwrap()
                .contains("… and 5 other kinds of failure.")
        );
    }
}
