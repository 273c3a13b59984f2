//! The journal beside the state file (issue 11): checkpoints append only
//! what is new; a torn last line or a garbage line never costs the rest;
//! version 1 files migrate; inspection and `clear` see snapshot + journal as
//! one state; processes appending and compacting at once, or killed in the
//! middle of it, lose nothing that was stored and duplicate nothing.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::child::{act_as_child_if_asked, command};
use crate::support::recorder::Recorder;
use tracing::Level;
use tracing_email::{
    EmailLayer, FileDrop, FlushGuard, Outcome, inspect::StateFile, record::Record,
};
use tracing_subscriber::prelude::*;

/// A layer that holds everything (no rule is met), keeps any number of
/// records and has no background checkpoint.
fn holding(state: &Path) -> (EmailLayer, FlushGuard) {
    holding_at_most(state, usize::MAX)
}

/// [`holding`], keeping at most `max_pending` records.
fn holding_at_most(state: &Path, max_pending: usize) -> (EmailLayer, FlushGuard) {
    EmailLayer::builder("journal")
        .transport(FileDrop::new(state.with_file_name("outbox")))
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(usize::MAX, Level::ERROR)
        .max_pending(max_pending)
        .lock_timeout(Duration::from_secs(60))
        .checkpoint_interval(None)
        .build()
        .unwrap()
}

/// A later run that sends everything pending: returns what it sent.
fn send_all(state: &Path) -> Vec<Record> {
    let recorder = Recorder::default();
    let (layer, guard) = EmailLayer::builder("journal")
        .transport(recorder.clone())
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::WARN)
        .max_pending(usize::MAX)
        .build()
        .unwrap();
    drop(layer);
    let outcome = guard.flush();
    assert!(outcome.is_sent(), "{outcome}");
    recorder.emails().concat()
}

/// `(proc, i)` of records logged as `warn!(proc, i, ..)`.
fn pairs(records: &[Record]) -> Vec<(u64, u64)> {
    records
        .iter()
        .filter_map(|r| {
            let get = |k: &str| r.fields.get(k).and_then(|v| v.as_u64());
            Some((get("proc")?, get("i")?))
        })
        .collect()
}

fn journal(state: &Path) -> std::path::PathBuf {
    state.with_file_name("state.json.journal")
}

/// Logs `from..to` as process `proc` into `guard`'s layer and flushes.
fn log_and_hold(dispatch: &tracing::Dispatch, guard: &FlushGuard, proc: u64, from: u64, to: u64) {
    tracing::dispatcher::with_default(dispatch, || {
        for i in from..to {
            tracing::warn!(proc, i, "feed failed");
        }
    });
    let outcome = guard.flush();
    assert!(matches!(outcome, Outcome::Held { .. }), "{outcome}");
}

fn layer(state: &Path) -> (tracing::Dispatch, FlushGuard) {
    let (layer, guard) = holding(state);
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
    )
}

/// The snapshot file itself (its inode where there is one, its length and
/// time) and the generation it names.
fn snapshot_id(state: &Path) -> (u64, u64, std::time::SystemTime, serde_json::Value) {
    let meta = std::fs::metadata(state).unwrap();
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    (
        ino,
        meta.len(),
        meta.modified().unwrap(),
        value["generation"].clone(),
    )
}

/// The bytes of the record lines (not facts) in `journal`.
fn record_bytes(journal: &str) -> usize {
    journal
        .lines()
        .filter(|l| !l.starts_with("{\"@\":"))
        .map(|l| l.len() + 1)
        .sum()
}

/// At `max_pending`, a checkpoint that adds records appends them and a
/// trim line ("the oldest N leave") instead of rewriting the snapshot; the
/// trimmed state reads back the same in another process: the newest
/// records in order, the trimmed ones counted as dropped.
#[test]
fn at_max_pending_a_checkpoint_appends_a_trim_line_instead_of_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (layer, guard) = holding_at_most(&state, 100);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    // 150 records: the first write is the snapshot, with the newest 100.
    log_and_hold(&dispatch, &guard, 0, 0, 150);
    let snapshot = snapshot_id(&state);
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    // Trim lines need version 3: an older tracing-email refuses the file.
    assert_eq!(value["version"], 3);
    let mut journal_len = 0;
    for step in 0..10 {
        let from = 150 + step * 10;
        log_and_hold(&dispatch, &guard, 0, from, from + 10);
        assert_eq!(snapshot_id(&state), snapshot, "the snapshot was rewritten");
        let text = std::fs::read_to_string(journal(&state)).unwrap();
        let grown = text.len() - journal_len;
        let added = record_bytes(&text) - record_bytes(&text[..journal_len]);
        // The ten new records and a few short fact lines (how they were
        // observed, the trim; the header the first time): about 80 bytes
        // here, where a rewrite would write the whole 20 kB snapshot.
        assert!(
            text.ends_with("{\"@\":\"trim\",\"count\":10,\"dropped\":10}\n"),
            "{text}"
        );
        assert!(
            added > 0 && grown <= added + 200,
            "{grown} bytes for {added}"
        );
        journal_len = text.len();
    }
    // Another process reads the trimmed state: the newest 100, 150 dropped.
    let seen = StateFile::open(&state).snapshot().unwrap();
    let newest: Vec<_> = (150..250).map(|i| (0, i)).collect();
    assert_eq!(pairs(&seen.pending), newest);
    assert_eq!(seen.dropped, 150);
    std::mem::forget(guard);
    assert_eq!(pairs(&send_all(&state)), newest);
}

/// A version 2 state file and its journal, as the previous release left
/// them, load whole; the first write rewrites them as version 3 (which
/// that release refuses, as any newer version); a file of a newer version
/// is left untouched.
#[test]
fn a_version_2_file_and_its_journal_load_and_migrate_to_version_3() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let record = |i: u64| {
        format!(
            r#"{{"time":"2026-11-21T10:00:0{i}Z","level":"WARN","target":"old","message":"feed failed","fields":{{"proc":9,"i":{i}}},"run":1}}"#
        )
    };
    let v2 = format!(
        r#"{{"version":2,"generation":5,"pending":[{}],"dropped":1,"last_sent":null,"last_error":null,"history":{{"runs":1,"streaks":{{}}}}}}"#,
        record(0)
    );
    std::fs::write(&state, v2).unwrap();
    let lines = format!(
        "{{\"@\":\"journal\",\"base\":5}}\n{{\"@\":\"observe\",\"level\":\"WARN\",\"fields\":[]}}\n{}\n{}\n{{\"@\":\"dropped\",\"count\":2}}\n",
        record(1),
        record(2)
    );
    std::fs::write(journal(&state), lines).unwrap();
    let seen = StateFile::open(&state).snapshot().unwrap();
    assert_eq!(pairs(&seen.pending), [(9, 0), (9, 1), (9, 2)]);
    assert_eq!(seen.dropped, 3);
    let (layer, guard) = holding_at_most(&state, 3);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    log_and_hold(&dispatch, &guard, 0, 0, 1);
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(value["version"], 3);
    assert!(!journal(&state).exists());
    // Then trims append.
    log_and_hold(&dispatch, &guard, 0, 1, 2);
    let text = std::fs::read_to_string(journal(&state)).unwrap();
    assert!(text.contains("\"trim\""), "{text}");
    std::mem::forget(guard);
    let seen = StateFile::open(&state).snapshot().unwrap();
    assert_eq!(pairs(&seen.pending), [(9, 2), (0, 0), (0, 1)]);
    assert_eq!(seen.dropped, 5);
    // A newer version than this crate's is refused and left as it is.
    let newer =
        std::fs::read_to_string(&state)
            .unwrap()
            .replacen("\"version\":3", "\"version\":4", 1);
    std::fs::write(&state, &newer).unwrap();
    let journal_before = std::fs::read(journal(&state)).unwrap();
    let err = StateFile::open(&state).snapshot().unwrap_err();
    assert!(err.to_string().contains("version 4"), "{err}");
    let (layer, guard) = holding_at_most(&state, 3);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || tracing::warn!(proc = 1u64, i = 0u64, "x"));
    assert!(matches!(guard.flush(), Outcome::Failed { .. }));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), newer);
    assert_eq!(std::fs::read(journal(&state)).unwrap(), journal_before);
    std::mem::forget(guard);
}

#[test]
fn a_holding_flush_appends_and_inspection_and_clear_see_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (dispatch, guard) = layer(&state);
    log_and_hold(&dispatch, &guard, 0, 0, 100);
    let snapshot_len = std::fs::metadata(&state).unwrap().len();
    log_and_hold(&dispatch, &guard, 0, 100, 110);
    // The snapshot was not rewritten; the ten records are journal lines.
    assert_eq!(std::fs::metadata(&state).unwrap().len(), snapshot_len);
    let lines = std::fs::read_to_string(journal(&state)).unwrap();
    let records = lines.lines().filter(|l| !l.starts_with("{\"@\":")).count();
    assert_eq!(records, 10, "{lines}");
    // Inspection sees the two files as one state.
    let seen = StateFile::open(&state).snapshot().unwrap();
    assert_eq!(
        pairs(&seen.pending),
        (0..110).map(|i| (0, i)).collect::<Vec<_>>()
    );
    // `clear` empties both.
    let cleared = StateFile::open(&state).clear().unwrap();
    assert_eq!(cleared.records, 110);
    assert!(!journal(&state).exists());
    assert!(
        StateFile::open(&state)
            .snapshot()
            .unwrap()
            .pending
            .is_empty()
    );
    // The guard's kept state is stale now: its next flush reads the files.
    log_and_hold(&dispatch, &guard, 0, 110, 111);
    let seen = StateFile::open(&state).snapshot().unwrap();
    assert_eq!(pairs(&seen.pending), [(0, 110)]);
    std::mem::forget(guard);
}

#[test]
fn a_torn_last_line_is_ignored_and_written_over() {
    // In a process of its own: the crate says on stderr what it repaired,
    // which a test in this process would let through.
    crate::support::child::in_own_process("a_torn_last_line_is_ignored_and_written_over", || {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let (dispatch, guard) = layer(&state);
        log_and_hold(&dispatch, &guard, 0, 0, 50);
        log_and_hold(&dispatch, &guard, 0, 50, 60);
        std::mem::forget(guard);
        // A crash in the middle of an append: half a record, no newline.
        let mut bytes = std::fs::read(journal(&state)).unwrap();
        bytes.extend_from_slice(b"{\"time\":\"2026-11-22T04:00:00Z\",\"level\":\"WA");
        std::fs::write(journal(&state), &bytes).unwrap();
        let seen = StateFile::open(&state).snapshot().unwrap();
        assert_eq!(seen.pending.len(), 60);
        // The next run appends over the torn line; everything loads.
        let (dispatch, guard) = layer(&state);
        log_and_hold(&dispatch, &guard, 1, 0, 5);
        std::mem::forget(guard);
        let text = std::fs::read_to_string(journal(&state)).unwrap();
        assert!(!text.contains("\"level\":\"WA{"), "{text}");
        let sent = send_all(&state);
        let mut want: Vec<_> = (0..60).map(|i| (0, i)).collect();
        want.extend((0..5).map(|i| (1, i)));
        assert_eq!(pairs(&sent), want);
    });
}

#[test]
fn a_garbage_line_in_the_middle_is_skipped_and_kept_aside() {
    // In a process of its own: the crate says on stderr what it repaired,
    // which a test in this process would let through.
    crate::support::child::in_own_process(
        "a_garbage_line_in_the_middle_is_skipped_and_kept_aside",
        || {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state.json");
            let (dispatch, guard) = layer(&state);
            log_and_hold(&dispatch, &guard, 0, 0, 50);
            log_and_hold(&dispatch, &guard, 0, 50, 53);
            std::mem::forget(guard);
            let text = std::fs::read_to_string(journal(&state)).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            // The second of the three records is damaged.
            let second = lines.iter().position(|l| l.contains("\"i\":51")).unwrap();
            lines[second] = "{\"time\": garbage \u{1}";
            let damaged = lines.join("\n") + "\n";
            std::fs::write(journal(&state), &damaged).unwrap();

            let (dispatch, guard) = layer(&state);
            log_and_hold(&dispatch, &guard, 1, 0, 1);
            std::mem::forget(guard);
            // A copy of the damaged journal is kept; the journal was compacted.
            let copies: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().contains("state.json.journal.corrupt-"))
                .collect();
            assert_eq!(copies.len(), 1);
            assert_eq!(std::fs::read_to_string(&copies[0]).unwrap(), damaged);
            let mut want: Vec<_> = (0..53).filter(|&i| i != 51).map(|i| (0, i)).collect();
            want.push((1, 0));
            assert_eq!(pairs(&send_all(&state)), want);
        },
    );
}

#[test]
fn a_version_1_file_is_read_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    // What tracing-email wrote before the journal.
    let v1 = r#"{"version":1,"pending":[{"time":"2026-11-21T10:00:00Z","level":"WARN","target":"old","message":"from version 1","fields":{"proc":9,"i":0},"run":1}],"dropped":2,"last_sent":null,"last_error":null,"history":{"runs":1,"streaks":{}}}"#;
    std::fs::write(&state, v1).unwrap();
    let seen = StateFile::open(&state).snapshot().unwrap();
    assert_eq!((seen.pending.len(), seen.dropped, seen.runs), (1, 2, 1));
    let (dispatch, guard) = layer(&state);
    log_and_hold(&dispatch, &guard, 0, 0, 3);
    // The first write rewrote it as version 3 (no journal beside a
    // version 1 file, which an older tracing-email would not read).
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(value["version"], 3);
    assert!(value["generation"].as_u64().is_some());
    assert_eq!(value["pending"].as_array().unwrap().len(), 4);
    assert!(!journal(&state).exists());
    // Later flushes append.
    log_and_hold(&dispatch, &guard, 0, 3, 4);
    assert!(journal(&state).exists());
    std::mem::forget(guard);
    let seen = StateFile::open(&state).snapshot().unwrap();
    assert_eq!((seen.pending.len(), seen.dropped, seen.runs), (5, 2, 2));
}

#[test]
fn a_journal_left_by_a_crashed_compaction_is_not_replayed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (dispatch, guard) = layer(&state);
    log_and_hold(&dispatch, &guard, 0, 0, 10);
    log_and_hold(&dispatch, &guard, 0, 10, 12);
    let old_journal = std::fs::read(journal(&state)).unwrap();
    // A rewrite of the snapshot with everything (a flush that merges a
    // parked file rewrites it, as a compaction does)...
    let (d2, g2) = layer(&state);
    let parked = state.with_file_name("state.json.parked-20260101T000000Z-1.json");
    std::fs::write(&parked, r#"{"version":2,"pending":[],"dropped":0}"#).unwrap();
    log_and_hold(&d2, &g2, 1, 0, 1);
    assert!(!journal(&state).exists());
    // ...and the crash came before the old journal was removed.
    std::fs::write(journal(&state), &old_journal).unwrap();
    std::mem::forget((guard, g2));
    let seen = StateFile::open(&state).snapshot().unwrap();
    assert_eq!(seen.pending.len(), 13);
    let mut want: Vec<_> = (0..12).map(|i| (0, i)).collect();
    want.push((1, 0));
    assert_eq!(pairs(&send_all(&state)), want);
}

/// One process: `rounds` holding flushes of `per` records each. Args:
/// state file, process number, rounds, per.
fn appending_process(args: Vec<String>) -> u8 {
    let state = Path::new(&args[0]);
    let proc: u64 = args[1].parse().unwrap();
    let rounds: u64 = args[2].parse().unwrap();
    let per: u64 = args[3].parse().unwrap();
    let (dispatch, guard) = layer(state);
    for round in 0..rounds {
        log_and_hold(&dispatch, &guard, proc, round * per, (round + 1) * per);
        if rounds == u64::MAX {
            println!("held {}", (round + 1) * per);
        }
    }
    drop(guard);
    0
}

fn processes_append_and_compact(test: &str, count: u64) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let children: Vec<_> = (0..count)
        .map(|p| {
            command(
                test,
                &[
                    state.to_str().unwrap().into(),
                    p.to_string(),
                    "20".into(),
                    "25".into(),
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let sent = pairs(&send_all(&state));
    let unique: BTreeSet<_> = sent.iter().copied().collect();
    assert_eq!(unique.len(), sent.len(), "a record was sent twice");
    let want: BTreeSet<_> = (0..count)
        .flat_map(|p| (0..500).map(move |i| (p, i)))
        .collect();
    assert_eq!(unique, want);
}

#[test]
fn two_processes_appending_and_compacting_keep_every_record_once() {
    act_as_child_if_asked(appending_process);
    processes_append_and_compact(
        "two_processes_appending_and_compacting_keep_every_record_once",
        2,
    );
}

#[test]
fn eight_processes_appending_and_compacting_keep_every_record_once() {
    act_as_child_if_asked(appending_process);
    processes_append_and_compact(
        "eight_processes_appending_and_compacting_keep_every_record_once",
        8,
    );
}

/// SIGKILL at points spread over a run of back-to-back appends and
/// compactions: every record a flush said it held is there once, in order,
/// and at most the flush in progress is lost.
#[test]
fn sigkill_during_appends_and_compactions_loses_at_most_the_current_checkpoint() {
    act_as_child_if_asked(appending_process);
    let test = "sigkill_during_appends_and_compactions_loses_at_most_the_current_checkpoint";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let per = 200u64;
    let mut before = 0u64;
    for (proc, wait) in [3u64, 11, 29, 47, 83, 131, 197, 263]
        .into_iter()
        .enumerate()
    {
        let mut child = command(
            test,
            &[
                state.to_str().unwrap().into(),
                proc.to_string(),
                u64::MAX.to_string(),
                per.to_string(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut held = 0u64;
        // Wait for the first flush, then a while more, then kill.
        for line in lines.by_ref() {
            if let Some(n) = line.unwrap().split("held ").nth(1) {
                held = n.trim().parse().unwrap();
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        for line in lines {
            if let Ok(line) = line
                && let Some(n) = line.split("held ").nth(1)
            {
                held = n.trim().parse().unwrap();
            }
        }
        child.wait().unwrap();
        let seen = StateFile::open(&state).snapshot().unwrap();
        let got: Vec<_> = pairs(&seen.pending);
        let mine: Vec<u64> = got
            .iter()
            .filter(|(p, _)| *p == proc as u64)
            .map(|&(_, i)| i)
            .collect();
        // In order, no duplicates, every held record, at most one flush more.
        assert!(mine.len() as u64 >= held, "lost held records");
        assert!(mine.len() as u64 <= held + per, "more than one flush more");
        assert_eq!(mine, (0..mine.len() as u64).collect::<Vec<_>>());
        assert_eq!(got.len() as u64, before + mine.len() as u64);
        before = got.len() as u64;
    }
    let sent = pairs(&send_all(&state));
    assert_eq!(sent.len() as u64, before);
}
