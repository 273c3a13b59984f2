//! Temporary files that writers killed mid-write leave beside the state
//! file: how they are named, and their removal, under the state's lock,
//! once the process that wrote one is gone.
//!
//! A snapshot (or a parked file) is written to `<file>.tmp-<pid>` first and
//! renamed over its name; a kill before the rename leaves that copy behind.
//! Only names of exactly this shape beside the state file are looked at,
//! and one is removed only when no process with its pid is alive, so a
//! writer still at work (a parked file is written without the lock) keeps
//! its file.

use std::path::Path;

use crate::store::fs::beside;

pub(crate) fn tmp_suffix(pid: u32) -> String {
    format!(".tmp-{pid}")
}

/// `<name>.tmp-<pid>` and `<name>.parked-….json.tmp-<pid>`. Call it with the state's lock held.
pub(crate) fn remove_dead_temporaries(target: &Path) -> usize {
    let mut removed = 0;
    for (path, rest) in beside(target) {
        let Some(pid) = writer_of(&rest) else {
            continue;
        };
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if is_file && !alive(pid) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn writer_of(rest: &str) -> Option<u32> {
    let (of, pid) = rest.rsplit_once(".tmp-")?;
    let parked = of.starts_with(".parked-") && of.ends_with(".json") && !of.contains('/');
    if !(of.is_empty() || parked) || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&pid| pid != 0)
}

/// A zombie counts (maybe not reaped yet); where this cannot be told, every
/// writer is taken as alive.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 checks that the process exists; nothing is sent.
        if unsafe { libc::kill(pid, 0) } == 0 {
            return true;
        }
        std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_temporary_names_are_read_as_a_writer() {
        // As `beside` gives them: the rest of a name after the state file's.
        let writer = |file: &str| file.strip_prefix("state.json").and_then(writer_of);
        assert_eq!(writer("state.json.tmp-42"), Some(42));
        assert_eq!(
            writer("state.json.parked-20260101T000000.000001Z-7-0.json.tmp-42"),
            Some(42)
        );
        for other in [
            "state.json",
            "state.json.tmp-",
            "state.json.tmp-0",
            "state.json.tmp-42x",
            "state.json.tmp--1",
            "state.json.journal.tmp-42",
            "state.json.corrupt-1.tmp-42",
            "state.json.parked-1.json",
            "other.json.tmp-42",
            "xstate.json.tmp-42",
            "state.json.tmp-99999999999999999999",
        ] {
            assert_eq!(writer(other), None, "{other}");
        }
    }

    /// A pid that was a process's and is no longer one (reaped).
    pub(crate) fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
        pid
    }

    #[cfg(unix)]
    #[test]
    fn a_dead_writers_files_go_and_a_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state.json");
        let dead = dead_pid();
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let names = [
            format!("state.json.tmp-{dead}"),
            format!("state.json.parked-20260101T000000.000001Z-7-0.json.tmp-{dead}"),
            format!("state.json.tmp-{}", live.id()),
            format!("state.json.tmp-{}", std::process::id()),
            format!("other.json.tmp-{dead}"),
            format!("state.json.journal.tmp-{dead}"),
        ];
        for name in &names {
            std::fs::write(dir.path().join(name), b"{}").unwrap();
        }
        // A folder of that name is not ours: left alone.
        let folder = dir.path().join(format!("state.json.tmp-{}", dead_pid()));
        std::fs::create_dir(&folder).unwrap();
        assert_eq!(remove_dead_temporaries(&target), 2);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(dir.path().join(name).exists(), i >= 2, "{name}");
        }
        assert!(folder.is_dir());
        live.kill().unwrap();
        live.wait().unwrap();
    }
}
