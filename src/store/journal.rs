//! The journal beside the state file: JSON lines that checkpoints and
//! holding flushes append (and fsync) instead of rewriting the whole state.
//!
//! The state is the snapshot (`<file>`, one JSON document, rewritten
//! atomically only when records leave or on compaction) plus this journal
//! (`<file>.journal`) replayed in order. Its lines:
//!
//! - `{"@":"journal","base":G}`: the first line; the journal extends the
//!   snapshot of generation `G`. A journal whose base is not the snapshot's
//!   generation was left by a compaction that crashed after replacing the
//!   snapshot: everything in it is already in the snapshot, and it is ignored.
//! - `{"@":"run","run":N,"at":T}`: run `N` started at `T`
//!   (`History::start_run_at`); `at` is absent when the clock could not be
//!   read, and from lines written before it was kept.
//! - `{"@":"observe","level":"WARN","fields":[..]}`: the records that follow
//!   (up to the next such line) were observed at that level with those
//!   fingerprint fields, as the flush that wrote them did: replay derives
//!   the streak updates from the records themselves, exactly.
//! - a record, as in the snapshot's `pending`, with its run number.
//! - `{"@":"dropped","count":N}`: records dropped, added to the count.
//! - `{"@":"trim","count":N,"dropped":D}`: the oldest `N` pending records
//!   leave (trimmed at `max_pending`), and `D` is added to the dropped count
//!   (`D` can exceed `N`: this flush's own records that were trimmed are
//!   not in the journal at all). New in version 3 of the state file: an
//!   older crate refuses a version 3 snapshot (see
//!   [`VERSION`](crate::store::state::VERSION)) rather than replaying a
//!   journal whose trim lines it would skip.
//!
//! A last line without its newline was torn by a crash during an append: it
//! is ignored (and counted), and the next append writes over it. A line in
//! the middle that does not parse is skipped and counted; the flush keeps a
//! copy of the journal and compacts it away.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::Level;

use crate::capture::record::Record;
use crate::store::state::State;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@", rename_all = "snake_case")]
pub(crate) enum Fact {
    /// The first line.
    Journal {
        base: u64,
    },
    Run {
        run: u64,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "time::serde::rfc3339::option"
        )]
        at: Option<OffsetDateTime>,
    },
    Observe {
        level: String,
        fields: Vec<String>,
    },
    Dropped {
        count: u64,
    },
    /// Trimmed at `max_pending`.
    Trim {
        count: u64,
        dropped: u64,
    },
}

/// A record's line never begins so.
const FACT_PREFIX: &[u8] = b"{\"@\":";

pub(crate) struct Append<'a> {
    pub(crate) run: Option<(u64, Option<OffsetDateTime>)>,
    pub(crate) level: Level,
    pub(crate) fields: &'a [String],
    /// With their run number set.
    pub(crate) records: &'a [Record],
    pub(crate) dropped: u64,
    pub(crate) trim: Option<(u64, u64)>,
}

impl Append<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.run.is_none() && self.records.is_empty() && self.dropped == 0 && self.trim.is_none()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if let Some((run, at)) = self.run {
            line(out, &Fact::Run { run, at })?;
        }
        if !self.records.is_empty() {
            let observe = Fact::Observe {
                level: self.level.as_str().to_owned(),
                fields: self.fields.to_vec(),
            };
            line(out, &observe)?;
            for record in self.records {
                line(out, record)?;
            }
        }
        if let count @ 1.. = self.dropped {
            line(out, &Fact::Dropped { count })?;
        }
        if let Some((count, dropped)) = self.trim {
            line(out, &Fact::Trim { count, dropped })?;
        }
        Ok(())
    }
}

fn line(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, value)?;
    out.push(b'\n');
    Ok(())
}

pub(crate) fn header(base: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = line(&mut out, &Fact::Journal { base });
    out
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Replayed {
    pub(crate) good_len: usize,
    /// A torn append.
    pub(crate) torn: bool,
    pub(crate) garbage: usize,
    /// And nothing was replayed.
    pub(crate) stale: bool,
    /// So those there before are no longer where they were.
    pub(crate) trimmed: usize,
}

/// `from_start`: the whole journal (its first line names the generation; any with
/// `any_base`); else what was appended after a point already replayed.
pub(crate) fn replay(
    state: &mut State,
    bytes: &[u8],
    from_start: bool,
    any_base: bool,
) -> Replayed {
    let mut out = Replayed::default();
    let mut lines = Lines::default();
    let mut first = from_start;
    for piece in bytes.split_inclusive(|&b| b == b'\n') {
        let Some(line) = piece.strip_suffix(b"\n") else {
            out.torn = true;
            break;
        };
        out.good_len += piece.len();
        if std::mem::take(&mut first) {
            match serde_json::from_slice::<Fact>(line) {
                Ok(Fact::Journal { base }) if any_base || base == state.generation => continue,
                Ok(Fact::Journal { .. }) => {
                    out.stale = true;
                    out.good_len = 0;
                    return out;
                }
                // A journal without its header: the lines are still the
                // newest facts; replay them.
                _ => {}
            }
        }
        let applied = if line.is_empty() {
            Ok(())
        } else if line.starts_with(FACT_PREFIX) {
            serde_json::from_slice(line).map(|fact| lines.fact(state, fact))
        } else {
            serde_json::from_slice(line).map(|record| lines.record(state, record))
        };
        out.garbage += usize::from(applied.is_err());
    }
    lines.trim_now(state);
    out.trimmed = lines.total;
    out
}

/// Trimmed records go in one go once as many are out as remain, not per trim
/// line: many small trims over a large state replay in linear time.
#[derive(Default)]
struct Lines {
    observe: Option<(Level, Vec<String>)>,
    trimmed: usize,
    total: usize,
}

impl Lines {
    fn fact(&mut self, state: &mut State, fact: Fact) {
        match fact {
            Fact::Journal { .. } => {}
            Fact::Run { run, at } => {
                if run > state.history.runs {
                    // Runs are numbered one after another under the lock;
                    // a gap means a run line was lost to damage.
                    state.history.runs = run - 1;
                    state.history.start_run_at(at);
                }
            }
            Fact::Observe { level, fields } => {
                self.observe = level.parse::<Level>().ok().map(|l| (l, fields));
            }
            Fact::Dropped { count } => {
                state.dropped = state.dropped.saturating_add(count);
            }
            Fact::Trim { count, dropped } => {
                let left = state.pending.len() - self.trimmed;
                let count = usize::try_from(count).unwrap_or(usize::MAX).min(left);
                self.trimmed += count;
                self.total += count;
                state.dropped = state.dropped.saturating_add(dropped);
                if self.trimmed >= state.pending.len() - self.trimmed {
                    self.trim_now(state);
                }
            }
        }
    }

    /// With the streak update the flush that wrote it made.
    fn record(&mut self, state: &mut State, record: Record) {
        if let (Some(run), Some((level, fields))) = (record.run, &self.observe)
            && crate::capture::record::severity(record.level)
                >= crate::capture::record::severity(*level)
        {
            let fp = crate::store::history::fingerprint(&record, fields);
            state
                .history
                .observe(run, &fp, record.level, record.timestamp);
        }
        state.pending.push(record);
    }

    fn trim_now(&mut self, state: &mut State) {
        state.pending.drain(..std::mem::take(&mut self.trimmed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;

    fn appended(state: &mut State, run: Option<u64>, records: &[Record], dropped: u64) -> Vec<u8> {
        let mut out = Vec::new();
        Append {
            run: run.map(|run| (run, None)),
            level: Level::WARN,
            fields: &[],
            records,
            dropped,
            trim: None,
        }
        .encode(&mut out)
        .unwrap();
        let _ = state;
        out
    }

    /// Records named `0..n` from `from`, of run 1.
    fn named(from: usize, n: usize) -> Vec<Record> {
        (from..from + n)
            .map(|i| {
                let mut r = record_at(Level::WARN);
                r.message = i.to_string();
                r.run = Some(1);
                r
            })
            .collect()
    }

    fn trimmed(records: &[Record], trim: (u64, u64)) -> Vec<u8> {
        let mut out = Vec::new();
        Append {
            run: None,
            level: Level::WARN,
            fields: &[],
            records,
            dropped: 0,
            trim: Some(trim),
        }
        .encode(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn trim_lines_remove_the_oldest_records_and_add_to_the_dropped_count() {
        let mut state = State {
            pending: named(0, 3),
            ..State::default()
        };
        let mut bytes = header(0);
        // Each append after its records: the trim counts from the oldest.
        bytes.extend(trimmed(&named(3, 4), (2, 2)));
        // Its own records trimmed too: they are not written, only counted.
        bytes.extend(trimmed(&named(9, 2), (3, 5)));
        assert!(
            String::from_utf8_lossy(&bytes)
                .contains("{\"@\":\"trim\",\"count\":3,\"dropped\":5}\n")
        );
        // Many small trims, then more than is pending.
        for i in 0..20 {
            bytes.extend(trimmed(&named(100 + i, 1), (1, 1)));
        }
        let mut all = state.clone();
        let replayed = replay(&mut state, &bytes, true, false);
        assert_eq!((replayed.garbage, replayed.torn), (0, false));
        let names = |s: &State| {
            s.pending
                .iter()
                .map(|r| r.message.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&state), ["116", "117", "118", "119"]);
        assert_eq!(state.dropped, 2 + 5 + 20);
        bytes.extend(trimmed(&[], (50, 50)));
        replay(&mut all, &bytes, true, false);
        assert!(all.pending.is_empty());
        assert_eq!(all.dropped, 2 + 5 + 20 + 50);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_the_rest_replays() {
        let mut state = State {
            generation: 7,
            ..State::default()
        };
        let mut r = record_at(Level::WARN);
        r.run = Some(1);
        let mut bytes = header(7);
        bytes.extend(appended(&mut state, Some(1), &[r.clone(), r.clone()], 2));
        let whole = bytes.len();
        bytes.extend_from_slice(b"{\"time\":\"2026-");
        let out = replay(&mut state, &bytes, true, false);
        assert!(out.torn);
        assert_eq!(out.good_len, whole);
        assert_eq!(out.garbage, 0);
        assert_eq!(state.pending, [r.clone(), r]);
        assert_eq!(state.dropped, 2);
        assert_eq!(state.history.runs, 1);
        assert_eq!(state.history.streaks.len(), 1);
    }

    #[test]
    fn a_garbage_line_in_the_middle_is_skipped() {
        let mut state = State::default();
        let mut a = record_at(Level::WARN);
        a.message = "a".into();
        let mut b = a.clone();
        b.message = "b".into();
        let mut bytes = header(0);
        bytes.extend(appended(&mut state, None, std::slice::from_ref(&a), 0));
        bytes.extend_from_slice(b"{\"@\":\"dropped\",\"count\":\"x\"}\nnot json at all\n");
        bytes.extend(appended(&mut state, None, std::slice::from_ref(&b), 0));
        let out = replay(&mut state, &bytes, true, false);
        assert_eq!(
            (out.garbage, out.torn, out.good_len),
            (2, false, bytes.len())
        );
        assert_eq!(state.pending, [a, b]);
    }

    #[test]
    fn a_journal_of_another_generation_is_stale_and_changes_nothing() {
        let mut state = State {
            generation: 8,
            ..State::default()
        };
        let mut bytes = header(7);
        bytes.extend(appended(&mut state, Some(1), &[record_at(Level::WARN)], 3));
        let out = replay(&mut state, &bytes, true, false);
        assert!(out.stale);
        assert_eq!(
            state,
            State {
                generation: 8,
                ..State::default()
            }
        );
    }

    #[test]
    fn a_run_line_carries_its_start_and_an_old_one_without_it_still_replays() {
        use time::macros::datetime;
        let at = datetime!(2026-11-22 07:00:00.5 UTC);
        let mut bytes = header(0);
        // A line written before the start time was kept.
        bytes.extend_from_slice(b"{\"@\":\"run\",\"run\":1}\n");
        let mut out = Vec::new();
        Append {
            run: Some((2, Some(at))),
            level: Level::WARN,
            fields: &[],
            records: &[],
            dropped: 0,
            trim: None,
        }
        .encode(&mut out)
        .unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "{\"@\":\"run\",\"run\":2,\"at\":\"2026-11-22T07:00:00.5Z\"}\n"
        );
        bytes.extend(out);
        let mut state = State::default();
        let replayed = replay(&mut state, &bytes, true, false);
        assert_eq!(replayed.garbage, 0);
        assert_eq!(state.history.runs, 2);
        assert_eq!(state.history.run_starts, [at]);
    }
}
