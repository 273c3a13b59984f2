//! What the state file remembers across runs beyond the pending records:
//! how many runs there were, and for each fingerprint (one kind of failure)
//! how many consecutive runs saw it and when it was last reported. Pure data:
//! updated by the flush under the state lock, read by the policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::Level;

use crate::record::{Record, severity};

/// Most fingerprints remembered; beyond it those seen longest ago are
/// forgotten first.
pub(crate) const MAX_STREAKS: usize = 1000;

/// One kind of failure: the same callsite and message, or the same callsite
/// and values of the chosen fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Fingerprint {
    /// A stable key: a 64-bit FNV-1a hash of the identifying text, in hex.
    pub(crate) key: String,
    /// What a person reads: `feed "Radio Café"`, or the message.
    pub(crate) label: String,
}

fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The fingerprint of `record`: its callsite (target, file, line) plus the
/// values of `fields` when it has any of them, else plus its message.
pub(crate) fn fingerprint(record: &Record, fields: &[String]) -> Fingerprint {
    let line = record.line.map(|l| l.to_string()).unwrap_or_default();
    let file = record.file.as_deref().unwrap_or("");
    let chosen: Vec<(String, String)> = fields
        .iter()
        .filter_map(|name| {
            record.fields.get(name).map(|v| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (name.clone(), text)
            })
        })
        .collect();
    if chosen.is_empty() {
        let hash = fnv1a(&[&record.target, file, &line, &record.message]);
        let mut label: String = record.message.chars().take(80).collect();
        if label.len() < record.message.len() {
            label.push('…');
        }
        return Fingerprint {
            key: format!("{hash:016x}"),
            label,
        };
    }
    let mut parts: Vec<&str> = vec![&record.target, file, &line];
    for (name, value) in &chosen {
        parts.push(name);
        parts.push(value);
    }
    let label = chosen
        .iter()
        .map(|(name, value)| format!("{name} {value:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Fingerprint {
        key: format!("{:016x}", fnv1a(&parts)),
        label,
    }
}

/// One fingerprint's run of consecutive runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Streak {
    pub(crate) label: String,
    /// The most severe level it was seen at.
    #[serde(with = "crate::record::level_serde")]
    pub(crate) level: Level,
    /// Consecutive runs that saw it, up to `last_run`.
    pub(crate) runs: u64,
    /// The last run that saw it.
    pub(crate) last_run: u64,
    /// When this streak's first record happened.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) since: OffsetDateTime,
    /// When its latest record happened.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) last_seen: OffsetDateTime,
    /// When a digest holding it was last sent, during this streak.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) reported: Option<OffsetDateTime>,
    /// How many runs long the streak was when last reported: a streak
    /// counts as reported for `consecutive_runs(k)` only once it went out
    /// at `k` runs or more, not when it merely rode along earlier.
    #[serde(default)]
    pub(crate) reported_runs: u64,
}

/// Runs and streaks, as kept in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct History {
    /// Runs that have flushed so far: the last run's number.
    #[serde(default)]
    pub(crate) runs: u64,
    /// Streaks by fingerprint key.
    #[serde(default)]
    pub(crate) streaks: BTreeMap<String, Streak>,
}

impl History {
    /// Counts a new run and returns its number. Streaks that missed the run
    /// before it are over: a run without the failure breaks its streak.
    pub(crate) fn start_run(&mut self) -> u64 {
        self.runs += 1;
        let run = self.runs;
        self.streaks.retain(|_, s| s.last_run + 1 >= run);
        run
    }

    /// Notes that run `run` saw `fingerprint` at `level` at `time`.
    /// Observing the same run again changes only the times and level.
    pub(crate) fn observe(
        &mut self,
        run: u64,
        fingerprint: &Fingerprint,
        level: Level,
        time: OffsetDateTime,
    ) {
        match self.streaks.get_mut(&fingerprint.key) {
            Some(s) if s.last_run == run => {}
            Some(s) if s.last_run + 1 == run => {
                s.runs += 1;
                s.last_run = run;
            }
            _ => {
                self.streaks.insert(
                    fingerprint.key.clone(),
                    Streak {
                        label: fingerprint.label.clone(),
                        level,
                        runs: 1,
                        last_run: run,
                        since: time,
                        last_seen: time,
                        reported: None,
                        reported_runs: 0,
                    },
                );
                self.forget_oldest();
                return;
            }
        }
        if let Some(s) = self.streaks.get_mut(&fingerprint.key) {
            if severity(level) > severity(s.level) {
                s.level = level;
            }
            if time > s.last_seen {
                s.last_seen = time;
            }
        }
    }

    /// Notes that a digest holding these fingerprints was sent at `now`.
    pub(crate) fn reported<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a str>,
        now: OffsetDateTime,
    ) {
        for key in keys {
            if let Some(s) = self.streaks.get_mut(key) {
                s.reported = Some(now);
                s.reported_runs = s.runs;
            }
        }
    }

    fn forget_oldest(&mut self) {
        while self.streaks.len() > MAX_STREAKS {
            let oldest = self
                .streaks
                .iter()
                .min_by_key(|(_, s)| (s.last_run, s.last_seen))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => {
                    self.streaks.remove(&key);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use serde_json::json;

    fn fp(label: &str) -> Fingerprint {
        Fingerprint {
            key: label.to_owned(),
            label: label.to_owned(),
        }
    }

    const T: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    #[test]
    fn fingerprints_follow_the_callsite_and_message_or_the_chosen_fields() {
        let mut a = record_at(Level::WARN);
        a.message = "feed failed: timed out after 30.2 s".into();
        a.fields.0.push(("feed".into(), json!("Radio Café")));
        let mut b = a.clone();
        b.message = "feed failed: timed out after 31.7 s".into();
        assert_ne!(fingerprint(&a, &[]).key, fingerprint(&b, &[]).key);
        let fields = ["feed".to_owned()];
        assert_eq!(fingerprint(&a, &fields), fingerprint(&b, &fields));
        assert_eq!(fingerprint(&a, &fields).label, r#"feed "Radio Café""#);
        let mut c = a.clone();
        c.fields.0[0].1 = json!("Ääniraita");
        assert_ne!(fingerprint(&a, &fields).key, fingerprint(&c, &fields).key);
        let mut elsewhere = a.clone();
        elsewhere.line = Some(99);
        assert_ne!(
            fingerprint(&a, &fields).key,
            fingerprint(&elsewhere, &fields).key
        );
        // Without the field, the message decides.
        let mut plain = record_at(Level::WARN);
        plain.message = "disk almost full".into();
        assert_eq!(fingerprint(&plain, &fields).label, "disk almost full");
        // Stable across processes and versions: a fixed hash.
        assert_eq!(
            fingerprint(&plain, &[]).key,
            fingerprint(&plain.clone(), &[]).key
        );
        assert_eq!(fingerprint(&plain, &[]).key.len(), 16);
    }

    #[test]
    fn a_streak_grows_run_after_run_and_breaks_on_a_run_without_it() {
        let mut h = History::default();
        let feed = fp("feed");
        for expected in 1..=3 {
            let run = h.start_run();
            h.observe(run, &feed, Level::WARN, T);
            h.observe(run, &feed, Level::WARN, T); // twice in one run: once
            assert_eq!(h.streaks["feed"].runs, expected);
        }
        h.start_run(); // a run without it
        let run = h.start_run();
        assert!(
            !h.streaks.contains_key("feed"),
            "broken by the run without it"
        );
        h.observe(run, &feed, Level::ERROR, T);
        assert_eq!(h.streaks["feed"].runs, 1);
        assert_eq!(h.streaks["feed"].level, Level::ERROR);
    }

    #[test]
    fn reported_is_kept_while_the_streak_lasts_and_forgotten_with_it() {
        let mut h = History::default();
        let feed = fp("feed");
        let run = h.start_run();
        h.observe(run, &feed, Level::WARN, T);
        h.reported(["feed"], T);
        let run = h.start_run();
        h.observe(run, &feed, Level::WARN, T);
        assert_eq!(h.streaks["feed"].reported, Some(T));
        assert_eq!(
            h.streaks["feed"].reported_runs, 1,
            "as long as when reported"
        );
        h.start_run();
        let run = h.start_run();
        h.observe(run, &feed, Level::WARN, T);
        assert_eq!(h.streaks["feed"].reported, None);
    }

    #[test]
    fn streaks_are_bounded_forgetting_the_oldest_first() {
        let mut h = History::default();
        let run = h.start_run();
        for i in 0..MAX_STREAKS + 5 {
            let t = T + time::Duration::seconds(i as i64);
            h.observe(run, &fp(&format!("{i:05}")), Level::WARN, t);
        }
        assert_eq!(h.streaks.len(), MAX_STREAKS);
        assert!(!h.streaks.contains_key("00000"));
        assert!(h.streaks.contains_key(&format!("{:05}", MAX_STREAKS + 4)));
    }
}
