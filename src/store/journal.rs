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

/// A line that is not a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@", rename_all = "snake_case")]
pub(crate) enum Fact {
    /// The first line: the snapshot generation this journal extends.
    Journal {
        /// The snapshot's generation.
        base: u64,
    },
    /// A run started.
    Run {
        /// Its number.
        run: u64,
        /// When, if known.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "time::serde::rfc3339::option"
        )]
        at: Option<OffsetDateTime>,
    },
    /// How the records that follow were observed.
    Observe {
        /// Records at or above this level count in streaks.
        level: String,
        /// The fingerprint fields.
        fields: Vec<String>,
    },
    /// Records dropped.
    Dropped {
        /// How many.
        count: u64,
    },
}

/// How fact lines begin; a record's line never does.
const FACT_PREFIX: &[u8] = b"{\"@\":";

/// What one checkpoint adds to the state, in the order the flush applied it.
pub(crate) struct Append<'a> {
    /// The run that started in this flush, if one did, and when (if known).
    pub(crate) run: Option<(u64, Option<OffsetDateTime>)>,
    /// The level and fingerprint fields the records were observed with.
    pub(crate) level: Level,
    /// See `level`.
    pub(crate) fields: &'a [String],
    /// This run's new records (with their run number set).
    pub(crate) records: &'a [Record],
    /// Records dropped since the last flush.
    pub(crate) dropped: u64,
}

impl Append<'_> {
    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.run.is_none() && self.records.is_empty() && self.dropped == 0
    }

    /// The lines, each ending in a newline.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let fact = |f: &Fact, out: &mut Vec<u8>| -> Result<(), serde_json::Error> {
            serde_json::to_writer(&mut *out, f)?;
            out.push(b'\n');
            Ok(())
        };
        if let Some((run, at)) = self.run {
            fact(&Fact::Run { run, at }, out)?;
        }
        if !self.records.is_empty() {
            let observe = Fact::Observe {
                level: self.level.as_str().to_owned(),
                fields: self.fields.to_vec(),
            };
            fact(&observe, out)?;
            for record in self.records {
                serde_json::to_writer(&mut *out, record)?;
                out.push(b'\n');
            }
        }
        if self.dropped > 0 {
            fact(
                &Fact::Dropped {
                    count: self.dropped,
                },
                out,
            )?;
        }
        Ok(())
    }
}

/// The header line of a journal extending generation `base`.
pub(crate) fn header(base: u64) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Fact::Journal { base }).unwrap_or_default();
    line.push(b'\n');
    line
}

/// What replaying some journal bytes found.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Replayed {
    /// Bytes up to the end of the last whole line.
    pub(crate) good_len: usize,
    /// Whether the bytes ended in a line without its newline (a torn append).
    pub(crate) torn: bool,
    /// Whole lines that did not parse, skipped.
    pub(crate) garbage: usize,
    /// Whether the journal extends another snapshot than the state's (and
    /// nothing was replayed).
    pub(crate) stale: bool,
}

/// Replays `bytes` onto `state`. `from_start`: the bytes are the whole
/// journal, whose first line names the snapshot generation it extends (any
/// generation is taken with `any_base`: there is no snapshot to match);
/// else they are what was appended after a point already replayed.
pub(crate) fn replay(
    state: &mut State,
    bytes: &[u8],
    from_start: bool,
    any_base: bool,
) -> Replayed {
    let mut out = Replayed::default();
    let mut observe: Option<(Level, Vec<String>)> = None;
    let mut first = from_start;
    let mut at = 0;
    while at < bytes.len() {
        let Some(end) = bytes[at..].iter().position(|&b| b == b'\n') else {
            out.torn = true;
            break;
        };
        let line = &bytes[at..at + end];
        at += end + 1;
        out.good_len = at;
        if first {
            first = false;
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
        if line.is_empty() {
            continue;
        }
        if line.starts_with(FACT_PREFIX) {
            match serde_json::from_slice::<Fact>(line) {
                Ok(Fact::Journal { .. }) => {}
                Ok(Fact::Run { run, at }) => {
                    if run > state.history.runs {
                        // Runs are numbered one after another under the
                        // lock; a gap means a run line was lost to damage.
                        state.history.runs = run - 1;
                        state.history.start_run_at(at);
                    }
                }
                Ok(Fact::Observe { level, fields }) => {
                    observe = level.parse::<Level>().ok().map(|l| (l, fields));
                }
                Ok(Fact::Dropped { count }) => {
                    state.dropped = state.dropped.saturating_add(count);
                }
                Err(_) => out.garbage += 1,
            }
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => {
                if let (Some(run), Some((level, fields))) = (record.run, &observe)
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
            Err(_) => out.garbage += 1,
        }
    }
    out
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
        }
        .encode(&mut out)
        .unwrap();
        let _ = state;
        out
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
