//! Faults of the state file, with real processes: a folder that cannot be
//! made, a full disk, corrupt files, a file from a newer version. The outcome
//! says what happened and no record is silently lost: the last resort is
//! stderr, as JSON lines.

use crate::support;

use std::path::Path;
use std::process::Output;

use support::child::{act_as_child_if_asked, command, outcome_line};
use tracing::Level;
use tracing_email::{EmailLayer, FileDrop, Outcome, record::Record};
use tracing_subscriber::prelude::*;

/// One run: five warnings, held (the threshold is 100), against the state
/// file `args[0]`. Exit status 1 when the outcome is a failure.
fn run(args: Vec<String>) -> u8 {
    let state = Path::new(&args[0]);
    let (layer, guard) = EmailLayer::builder("state-test")
        .transport(FileDrop::new(
            std::env::temp_dir().join("tracing-email-unused"),
        ))
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(100, Level::WARN)
        .checkpoint_interval(None)
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    for n in 0..5 {
        tracing::warn!(n, "precious");
    }
    let outcome = guard.flush();
    println!("{outcome}");
    u8::from(matches!(outcome, Outcome::Failed { .. }))
}

fn records_on_stderr(output: &Output) -> Vec<Record> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Pending records in the snapshot and the journal, read as one state.
fn pending_count(state: &Path) -> usize {
    tracing_email::inspect::StateFile::open(state)
        .snapshot()
        .unwrap()
        .pending
        .len()
}

#[cfg(unix)]
#[test]
fn a_missing_folder_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("a").join("b").join("state.json");
    let output = command(
        "a_missing_folder_is_created_private",
        &[state.to_str().unwrap().into()],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(state.parent().unwrap()), 0o700);
    assert_eq!(mode(&state), 0o600);
    assert_eq!(pending_count(&state), 5);
}

#[test]
fn a_folder_that_cannot_be_made_fails_and_the_records_go_to_stderr() {
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file where the folder should be").unwrap();
    let state = blocker.join("state.json");
    let output = command(
        "a_folder_that_cannot_be_made_fails_and_the_records_go_to_stderr",
        &[state.to_str().unwrap().into()],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let line = outcome_line(&output);
    assert!(line.starts_with("not sent, 5 records kept"), "{line}");
    assert!(line.contains("could not create the state folder"), "{line}");
    assert!(
        line.contains("written to stderr if none succeeds"),
        "{line}"
    );
    let rescued = records_on_stderr(&output);
    let ns: Vec<i64> = rescued
        .iter()
        .map(|r| r.fields.get("n").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1, 2, 3, 4]);
}

#[cfg(unix)]
#[test]
fn a_full_disk_fails_and_the_records_go_to_stderr() {
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let child = command(
        "a_full_disk_fails_and_the_records_go_to_stderr",
        &[state.to_str().unwrap().into()],
    );
    // A file size limit of one block makes every write past it fail as a
    // full disk would (EFBIG), with the signal it raises ignored.
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 1; exec "$0" "$@""#)
        .arg(child.get_program())
        .args(child.get_args());
    for (k, v) in child.get_envs() {
        match v {
            Some(v) => shell.env(k, v),
            None => shell.env_remove(k),
        };
    }
    let output = shell.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let line = outcome_line(&output);
    assert!(line.contains("could not write the state file"), "{line}");
    assert_eq!(records_on_stderr(&output).len(), 5);
    assert!(!state.exists(), "no half-written state file");
}

#[test]
fn corrupt_files_are_moved_aside_with_a_warning_and_work_goes_on() {
    act_as_child_if_asked(run);
    let cases: [&[u8]; 4] = [
        b"",
        b"{\"version\":1,\"pending\":[{\"time\":\"2026-11-2",
        b"\x8f\x00\xffrandom bytes\x13",
        b"{\"version\":1,\"pending\":\"not a list\"}",
    ];
    for bad in cases {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        std::fs::write(&state, bad).unwrap();
        let output = command(
            "corrupt_files_are_moved_aside_with_a_warning_and_work_goes_on",
            &[state.to_str().unwrap().into()],
        )
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert!(outcome_line(&output).starts_with("held 5 records"));
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(&aside[0]).unwrap(), bad);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("moved to {}", aside[0].display())),
            "{stderr}"
        );
        assert_eq!(pending_count(&state), 5);
    }
}

#[test]
fn a_file_from_a_newer_version_is_never_overwritten() {
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let newer = r#"{"version":7,"pending":[],"shiny":"new"}"#;
    std::fs::write(&state, newer).unwrap();
    let output = command(
        "a_file_from_a_newer_version_is_never_overwritten",
        &[state.to_str().unwrap().into()],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let line = outcome_line(&output);
    assert!(
        line.contains("has version 7, written by a newer tracing-email"),
        "{line}"
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), newer);
    assert_eq!(records_on_stderr(&output).len(), 5);
}

/// Runs `cmd` and fails if it has not ended within 20 seconds (a flush
/// blocked on a FIFO would never end).
fn output_within_20s(mut cmd: std::process::Command) -> Output {
    let child = cmd.spawn().unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &id.to_string()])
                .status();
            panic!("the flush hung: the child was still running after 20 s");
        }
    }
}

/// What a flush against a path that is not a regular file must do: fail at
/// once, say what the path is, leave it alone, and give the five records to
/// stderr.
fn refused(test: &str, state: &Path, what: &str) {
    let output = output_within_20s(command(test, &[state.to_str().unwrap().into()]));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let line = outcome_line(&output);
    assert!(line.starts_with("not sent, 5 records kept"), "{line}");
    assert!(
        line.contains(&format!("the state file {}", state.display())),
        "{line}"
    );
    assert!(
        line.contains(&format!("is {what}, not a regular file")),
        "{line}"
    );
    let ns: Vec<i64> = records_on_stderr(&output)
        .iter()
        .map(|r| r.fields.get("n").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1, 2, 3, 4]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("moved to"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_fifo_as_state_file_fails_at_once_and_the_records_go_to_stderr() {
    use std::os::unix::fs::FileTypeExt;
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&state)
        .status()
        .unwrap();
    assert!(made.success());
    refused(
        "a_fifo_as_state_file_fails_at_once_and_the_records_go_to_stderr",
        &state,
        "a FIFO (named pipe)",
    );
    assert!(std::fs::metadata(&state).unwrap().file_type().is_fifo());
    // Nothing beside it: no lock file, nothing moved aside.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[cfg(unix)]
#[test]
fn dev_null_as_state_file_fails_and_is_never_renamed() {
    use std::os::unix::fs::FileTypeExt;
    act_as_child_if_asked(run);
    let state = Path::new("/dev/null");
    refused(
        "dev_null_as_state_file_fails_and_is_never_renamed",
        state,
        "a character device",
    );
    assert!(
        std::fs::metadata(state)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(!Path::new("/dev/null.lock").exists());
    let aside = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("null."))
        .count();
    assert_eq!(aside, 0);
}

#[test]
fn a_folder_as_state_file_fails_and_is_left_alone() {
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("keep.txt"), "mine").unwrap();
    refused(
        "a_folder_as_state_file_fails_and_is_left_alone",
        &state,
        "a folder",
    );
    assert_eq!(
        std::fs::read_to_string(state.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn records_that_parse_are_kept_from_a_file_of_the_wrong_shape() {
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    // One good run first: five records in the file.
    let first = command(
        "records_that_parse_are_kept_from_a_file_of_the_wrong_shape",
        &[state.to_str().unwrap().into()],
    )
    .output()
    .unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    // A hand edit breaks one record and adds a stray entry.
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let pending = value["pending"].as_array_mut().unwrap();
    pending[2]["level"] = serde_json::json!("LOUD");
    pending.push(serde_json::json!(42));
    let bad = serde_json::to_vec_pretty(&value).unwrap();
    std::fs::write(&state, &bad).unwrap();

    let output = command(
        "records_that_parse_are_kept_from_a_file_of_the_wrong_shape",
        &[state.to_str().unwrap().into()],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    // The four good old records and this run's five.
    assert_eq!(pending_count(&state), 9);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bad);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("what could be read is kept: 4 records (2 entries that are not records"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_linked_state_file_stays_a_link_to_the_file_it_shares() {
    act_as_child_if_asked(run);
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.json");
    let link = dir.path().join("state.json");
    std::os::unix::fs::symlink(&shared, &link).unwrap();
    for runs in 1..=2 {
        let output = command(
            "a_linked_state_file_stays_a_link_to_the_file_it_shares",
            &[link.to_str().unwrap().into()],
        )
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(pending_count(&shared), 5 * runs);
        // The journal lives beside the target, never beside the link.
        assert!(!dir.path().join("state.json.journal").exists());
    }
    assert!(dir.path().join("shared.json.journal").exists());
}
