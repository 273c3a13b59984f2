//! The subject line: a template parsed once by `build()` into pieces, and
//! rendered for each email from its [`Summary`]; or, without a template, a
//! default that counts errors and warnings.

use std::fmt::Write as _;

use tracing::Level;

use crate::digest::Summary;
use crate::error::Error;
use crate::record::show_time;

/// How `{first}`, `{last}` and the default subject show a time:
/// `2026-11-20 08:00`.
const SUBJECT_TIME: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");

/// One piece of a parsed subject template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Literal text, braces already unescaped.
    Text(String),
    App,
    Host,
    Count,
    Errors,
    Warnings,
    MaxLevel,
    First,
    Last,
}

/// The placeholders, by name, in the order error messages list them.
const PLACEHOLDERS: [(&str, Piece); 8] = [
    ("app", Piece::App),
    ("host", Piece::Host),
    ("count", Piece::Count),
    ("errors", Piece::Errors),
    ("warnings", Piece::Warnings),
    ("max_level", Piece::MaxLevel),
    ("first", Piece::First),
    ("last", Piece::Last),
];

/// `{app}, {host}, … and {last}`, for error messages.
fn placeholder_list() -> String {
    let mut out = String::new();
    for (i, (name, _)) in PLACEHOLDERS.iter().enumerate() {
        if i + 1 == PLACEHOLDERS.len() {
            out.push_str(" and ");
        } else if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{{{name}}}");
    }
    out
}

/// A subject template, e.g. `[{app}@{host}] {errors} errors since {first}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `template`: `{name}` is a placeholder, `{{` and `}}` are
    /// literal braces, a `}` on its own is kept as it is.
    ///
    /// An unknown placeholder or a `{` that is never closed is an error of
    /// kind `Config` that names it and lists the valid placeholders.
    pub(crate) fn parse(template: &str) -> Result<Template, Error> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['{', '}']) {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if rest.as_bytes()[i] == b'}' {
                text.push('}');
                rest = after.strip_prefix('}').unwrap_or(after);
                continue;
            }
            if let Some(after) = after.strip_prefix('{') {
                text.push('{');
                rest = after;
                continue;
            }
            let name = match after.find(['{', '}']) {
                Some(end) if after.as_bytes()[end] == b'}' => &after[..end],
                _ => {
                    return Err(Error::config(format!(
                        "the subject {template:?} has a \"{{\" that is not closed, at {:?}; \
                         the placeholders are {}, and {{{{ is a literal brace",
                        &rest[i..],
                        placeholder_list()
                    )));
                }
            };
            let piece = PLACEHOLDERS
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, piece)| piece.clone())
                .ok_or_else(|| {
                    Error::config(format!(
                        "the subject {template:?} has an unknown placeholder {{{name}}}; \
                         the placeholders are {} ({{{{ and }}}} are literal braces)",
                        placeholder_list()
                    ))
                })?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
            rest = &after[name.len() + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// Whether the template shows the host name (so `build()` reads it only
    /// when needed).
    pub(crate) fn uses_host(&self) -> bool {
        self.pieces.contains(&Piece::Host)
    }

    /// The subject for the email that `summary` describes; `host` is this
    /// machine's name.
    pub(crate) fn render(&self, summary: &Summary<'_>, host: &str) -> String {
        let mut out = String::with_capacity(64);
        let time = |t: Option<time::OffsetDateTime>| {
            t.map(|t| show_time(t, summary.offset, SUBJECT_TIME))
                .unwrap_or_default()
        };
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::App => out.push_str(summary.app),
                Piece::Host => out.push_str(host),
                Piece::Count => {
                    let _ = write!(out, "{}", summary.records.len());
                }
                Piece::Errors => {
                    let _ = write!(out, "{}", summary.count(Level::ERROR));
                }
                Piece::Warnings => {
                    let _ = write!(out, "{}", summary.count(Level::WARN));
                }
                Piece::MaxLevel => {
                    if let Some(level) = summary.max_level() {
                        out.push_str(level.as_str());
                    }
                }
                Piece::First => out.push_str(&time(summary.first())),
                Piece::Last => out.push_str(&time(summary.last())),
            }
        }
        out
    }
}

/// The subject when none was set: `[poca] 3 errors, 4 warnings since
/// 2026-11-20 08:00`, leaving out a count that is zero, and counting the log
/// records when there is no error or warning.
pub(crate) fn default_subject(summary: &Summary<'_>) -> String {
    let mut out = String::with_capacity(64);
    let _ = write!(out, "[{}] ", summary.app);
    // A failure seen run after run names itself:
    // `[poca] feed "Radio Café" failing for 5 runs; 3 other warnings`.
    if let Some(main) = summary.problems.first()
        && let Some(runs) = main.runs
    {
        let _ = write!(out, "{} failing for {runs} runs", main.label);
        let others =
            |level| summary.count(level) - if main.level == level { main.count } else { 0 };
        let (errors, warnings) = (others(Level::ERROR), others(Level::WARN));
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if errors > 0 {
            let _ = write!(out, "; {errors} other error{}", plural(errors));
        }
        if warnings > 0 {
            let sep = if errors > 0 { ", " } else { "; " };
            let _ = write!(out, "{sep}{warnings} other warning{}", plural(warnings));
        }
        return out;
    }
    let errors = summary.count(Level::ERROR);
    let warnings = summary.count(Level::WARN);
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if errors > 0 {
        let _ = write!(out, "{errors} error{}", plural(errors));
    }
    if warnings > 0 {
        if errors > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{warnings} warning{}", plural(warnings));
    }
    if errors == 0 && warnings == 0 {
        let n = summary.records.len();
        let _ = write!(out, "{n} log record{}", plural(n));
    }
    if let Some(first) = summary.first() {
        let _ = write!(
            out,
            " since {}",
            show_time(first, summary.offset, SUBJECT_TIME)
        );
    }
    out
}

/// This machine's name, for `{host}`; `localhost` if it cannot be read.
pub(crate) fn hostname() -> String {
    hostname::get()
        .map(|name| name.to_string_lossy().into_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::policy::tests::record_at;
    use crate::record::Record;
    use time::UtcOffset;
    use time::macros::datetime;

    /// Records at `levels`, one minute apart from 2026-11-20 08:00 UTC.
    fn records(levels: &[Level]) -> Vec<Record> {
        levels
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let mut r = record_at(*level);
                r.timestamp = datetime!(2026-11-20 08:00 UTC) + time::Duration::minutes(i as i64);
                r
            })
            .collect()
    }

    fn summary(records: &[Record]) -> Summary<'_> {
        Summary::new("poca", records, 0, None, UtcOffset::UTC)
    }

    fn render(template: &str, records: &[Record]) -> String {
        Template::parse(template)
            .unwrap()
            .render(&summary(records), "backup-01")
    }

    #[test]
    fn every_placeholder_is_filled_from_the_email() {
        use Level as L;
        let rs = records(&[L::INFO, L::WARN, L::ERROR, L::WARN, L::DEBUG]);
        assert_eq!(render("{app}", &rs), "poca");
        assert_eq!(render("{host}", &rs), "backup-01");
        assert_eq!(render("{count}", &rs), "5");
        assert_eq!(render("{errors}", &rs), "1");
        assert_eq!(render("{warnings}", &rs), "2");
        assert_eq!(render("{max_level}", &rs), "ERROR");
        assert_eq!(render("{max_level}", &rs[..2]), "WARN");
        assert_eq!(render("{first}", &rs), "2026-11-20 08:00");
        assert_eq!(render("{last}", &rs), "2026-11-20 08:04");
        assert_eq!(
            render(
                "[{app}@{host}] {errors} E / {warnings} W of {count}, {first} to {last}",
                &rs
            ),
            "[poca@backup-01] 1 E / 2 W of 5, 2026-11-20 08:00 to 2026-11-20 08:04"
        );
    }

    #[test]
    fn times_are_shown_in_the_digest_offset() {
        let rs = records(&[Level::WARN]);
        let s = Summary::new(
            "poca",
            &rs,
            0,
            None,
            UtcOffset::from_hms(-3, -30, 0).unwrap(),
        );
        let t = Template::parse("{first}").unwrap();
        assert_eq!(t.render(&s, "h"), "2026-11-20 04:30");
    }

    #[test]
    fn first_and_last_are_the_oldest_and_newest_whatever_the_order() {
        let mut rs = records(&[Level::WARN, Level::WARN, Level::WARN]);
        rs.swap(0, 2);
        assert_eq!(
            render("{first}..{last}", &rs),
            "2026-11-20 08:00..2026-11-20 08:02"
        );
    }

    #[test]
    fn double_braces_are_literal_and_text_is_kept_as_is() {
        let rs = records(&[Level::WARN]);
        assert_eq!(render("{{app}} is {app}", &rs), "{app} is poca");
        assert_eq!(render("{{{app}}}", &rs), "{poca}");
        assert_eq!(render("a }} b", &rs), "a } b");
        assert_eq!(render("smile :}", &rs), "smile :}");
        assert_eq!(render("POCA log — Café", &rs), "POCA log — Café");
        assert_eq!(render("", &rs), "");
        assert_eq!(
            Template::parse("POCA log").unwrap().pieces,
            [Piece::Text("POCA log".into())]
        );
    }

    #[test]
    fn unknown_placeholders_are_named_with_the_valid_ones() {
        for (template, named) in [
            ("[{app}] {eror} errors", "{eror}"),
            ("{}", "{}"),
            ("{APP}", "{APP}"),
            ("{ app }", "{ app }"),
        ] {
            let err = Template::parse(template).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            let text = err.to_string();
            assert!(
                text.contains(&format!("unknown placeholder {named}")),
                "{text}"
            );
            assert!(
                text.contains(
                    "{app}, {host}, {count}, {errors}, {warnings}, {max_level}, {first} and {last}"
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn an_unclosed_brace_is_an_error() {
        for template in ["[{app] log", "{app", "log {", "{first{last}"] {
            let err = Template::parse(template).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            let text = err.to_string();
            assert!(text.contains("not closed"), "{template}: {text}");
            assert!(text.contains("{max_level}"), "{text}");
        }
    }

    #[test]
    fn host_is_read_only_for_templates_that_show_it() {
        assert!(Template::parse("[{host}] log").unwrap().uses_host());
        assert!(!Template::parse("[{app}] {{host}}").unwrap().uses_host());
        assert!(!hostname().is_empty());
    }

    #[test]
    fn default_subject_leaves_out_zero_counts() {
        use Level as L;
        let s = |levels: &[Level]| default_subject(&summary(&records(levels)));
        assert_eq!(
            s(&[
                L::ERROR,
                L::WARN,
                L::ERROR,
                L::INFO,
                L::ERROR,
                L::WARN,
                L::WARN,
                L::WARN
            ]),
            "[poca] 3 errors, 4 warnings since 2026-11-20 08:00"
        );
        assert_eq!(
            s(&[L::INFO, L::WARN, L::WARN, L::WARN, L::WARN]),
            "[poca] 4 warnings since 2026-11-20 08:00"
        );
        assert_eq!(
            s(&[L::ERROR, L::INFO]),
            "[poca] 1 error since 2026-11-20 08:00"
        );
        assert_eq!(s(&[L::WARN]), "[poca] 1 warning since 2026-11-20 08:00");
        assert_eq!(
            s(&[L::INFO; 12]),
            "[poca] 12 log records since 2026-11-20 08:00"
        );
        assert_eq!(s(&[L::DEBUG]), "[poca] 1 log record since 2026-11-20 08:00");
    }
}
