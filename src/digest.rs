//! Composing the digest email: subject, plain-text body, headers. MIME and
//! header encoding are lettre's.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use time::UtcOffset;
use tracing::Level;

use crate::error::{Error, ErrorKind};
use crate::record::Record;
use crate::transport::Email;

/// Everything needed to turn records into an email.
#[derive(Debug, Clone)]
pub(crate) struct Composer {
    pub(crate) app: String,
    pub(crate) from: Mailbox,
    pub(crate) to: Vec<Mailbox>,
    pub(crate) subject: Option<String>,
    pub(crate) offset: UtcOffset,
    pub(crate) state_path: PathBuf,
}

fn json_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len() + 2,
        other => other.to_string().len(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn count(records: &[Record], level: Level) -> usize {
    records.iter().filter(|r| r.level == level).count()
}

fn offset_label(offset: UtcOffset) -> String {
    if offset.is_utc() {
        "UTC".to_owned()
    } else {
        let (h, m, _) = offset.as_hms();
        format!(
            "UTC{}{:02}:{:02}",
            if offset.is_negative() { '-' } else { '+' },
            h.abs(),
            m.abs()
        )
    }
}

impl Composer {
    /// The default subject: `[app] 2 errors, 5 warnings (9 records)`.
    fn default_subject(&self, records: &[Record]) -> String {
        let errors = count(records, Level::ERROR);
        let warnings = count(records, Level::WARN);
        let mut parts = Vec::new();
        if errors > 0 {
            parts.push(plural(errors, "error", "errors"));
        }
        if warnings > 0 {
            parts.push(plural(warnings, "warning", "warnings"));
        }
        let total = plural(records.len(), "log record", "log records");
        if parts.is_empty() {
            format!("[{}] {total}", self.app)
        } else {
            format!("[{}] {} ({total})", self.app, parts.join(", "))
        }
    }

    /// The plain-text body: a summary line, then one line per record (with
    /// its span context indented below), oldest first.
    fn body(&self, records: &[Record], dropped: u64) -> String {
        let mut out = String::with_capacity(records.len() * 120 + 256);
        let mut by_level = Vec::new();
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            let n = count(records, level);
            if n > 0 {
                by_level.push(format!("{n} {level}"));
            }
        }
        let _ = write!(
            out,
            "{}: {} ({})",
            self.app,
            plural(records.len(), "log record", "log records"),
            by_level.join(", ")
        );
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            let line = |r: &Record| r.to_line(self.offset);
            let first = line(first);
            let last = line(last);
            let _ = write!(
                out,
                " from {} to {}, times in {}",
                &first[..19.min(first.len())],
                &last[..19.min(last.len())],
                offset_label(self.offset)
            );
        }
        out.push_str(".\n");
        if dropped > 0 {
            let _ = writeln!(
                out,
                "{} dropped before this digest because too many were pending.",
                plural(dropped as usize, "older record was", "older records were")
            );
        }
        out.push('\n');
        for record in records {
            out.push_str(&record.to_line(self.offset));
            out.push('\n');
            if let Some(context) = record.span_context() {
                out.push_str("    ");
                out.push_str(&context);
                out.push('\n');
            }
        }
        let _ = write!(
            out,
            "\n-- \nSent by tracing-email for {}. Records wait in {} until they are worth an email.\n",
            self.app,
            self.state_path.display()
        );
        out
    }

    /// Builds the email holding `records`.
    /// How many bytes `record` takes in the body (its line and context).
    pub(crate) fn line_bytes(&self, record: &Record) -> usize {
        // "2026-11-21 10:00:03 ERROR " is at most 26 bytes, then the target,
        // ": ", the message, the fields and a newline.
        let fields: usize = record
            .fields
            .iter()
            .map(|(k, v)| k.len() + json_len(v) + 2)
            .sum();
        let context = record.span_context().map_or(0, |c| c.len() + 5);
        29 + record.target.len() + record.message.len() + fields + context
    }

    /// Builds the email holding `records`; `part` is `(k, n)` when this is
    /// part k of a digest split into n emails.
    pub(crate) fn compose(
        &self,
        records: &[Record],
        dropped: u64,
        part: Option<(usize, usize)>,
    ) -> Result<Email, Error> {
        let mut subject = self
            .subject
            .clone()
            .unwrap_or_else(|| self.default_subject(records));
        let mut text = String::new();
        if let Some((k, n)) = part {
            let _ = write!(subject, " (part {k} of {n})");
            let _ = writeln!(
                text,
                "This is part {k} of {n}: the digest was split to stay under the size limit."
            );
        }
        text.push_str(&self.body(records, dropped));
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject.clone())
            .date(SystemTime::now())
            .message_id(None)
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text.clone()),
            )
            .map_err(|e| {
                Error::with_source(ErrorKind::Compose, "could not compose the digest email", e)
            })?;
        Ok(Email {
            subject,
            text,
            message,
            records: records.into(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::tests::record_at;

    pub(crate) fn composer() -> Composer {
        Composer {
            app: "poca".into(),
            from: "poca <robot@example.com>".parse().unwrap(),
            to: vec![
                "me@example.com".parse().unwrap(),
                "Zoë <zoe@example.org>".parse().unwrap(),
            ],
            subject: None,
            offset: UtcOffset::UTC,
            state_path: "/tmp/state.json".into(),
        }
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
    fn default_subject_counts_errors_and_warnings() {
        let c = composer();
        let rs = records(&[Level::ERROR, Level::WARN, Level::WARN, Level::INFO]);
        assert_eq!(
            c.default_subject(&rs),
            "[poca] 1 error, 2 warnings (4 log records)"
        );
        assert_eq!(c.default_subject(&rs[3..]), "[poca] 1 log record");
    }

    #[test]
    fn body_lists_every_record_oldest_first_after_a_summary() {
        let rs = records(&[Level::WARN, Level::INFO, Level::ERROR]);
        let body = composer().body(&rs, 0);
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines[0],
            "poca: 3 log records (1 ERROR, 1 WARN, 1 INFO) from 1970-01-01 00:00:00 to 1970-01-01 00:00:00, times in UTC."
        );
        let r0 = lines.iter().position(|l| l.ends_with("record 0")).unwrap();
        let r2 = lines.iter().position(|l| l.ends_with("record 2")).unwrap();
        assert!(r0 < r2);
        assert!(!body.contains("dropped"));
        assert!(
            composer()
                .body(&rs, 412)
                .contains("412 older records were dropped")
        );
    }

    #[test]
    fn email_has_the_headers_a_mail_client_needs() {
        let rs = records(&[Level::WARN]);
        let email = composer().compose(&rs, 0, None).unwrap();
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
        let email = composer().compose(&rs, 0, Some((2, 3))).unwrap();
        assert!(
            email.subject().ends_with(" (part 2 of 3)"),
            "{}",
            email.subject()
        );
        assert!(email.text().starts_with("This is part 2 of 3"));
    }

    #[test]
    fn line_bytes_is_close_to_the_real_line() {
        let c = composer();
        let mut r = record_at(Level::WARN);
        r.message = "feed failed".into();
        r.fields.0.push(("feed".into(), "Radio Café".into()));
        r.fields.0.push(("n".into(), 42.into()));
        let real = r.to_line(UtcOffset::UTC).len() + 1;
        let estimate = c.line_bytes(&r);
        assert!(
            estimate >= real && estimate <= real + 8,
            "{estimate} vs {real}"
        );
    }

    #[test]
    fn local_offsets_are_labelled() {
        assert_eq!(offset_label(UtcOffset::UTC), "UTC");
        assert_eq!(
            offset_label(UtcOffset::from_hms(-3, -30, 0).unwrap()),
            "UTC-03:30"
        );
        assert_eq!(
            offset_label(UtcOffset::from_hms(1, 0, 0).unwrap()),
            "UTC+01:00"
        );
    }
}
