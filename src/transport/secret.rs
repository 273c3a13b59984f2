//! The secret of an SMTP login that is not a fixed password: fetched when a
//! send needs it, from a closure or from the standard output of a command
//! (run without a shell, with a timeout). The secret is returned to the
//! caller and nowhere else: no error, `Debug` output or log line holds it.

use std::fmt;
use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::BoxError;
use crate::redact::{MAX_QUOTED, Redactor};

/// Most bytes of a command's standard output read: a token or a password
/// is far shorter.
const MAX_STDOUT: usize = 64 * 1024;

/// Most bytes of a command's standard error read (at most
/// [`MAX_QUOTED`] of them are shown).
const MAX_STDERR: usize = 2048;

/// How many lines of a failed command's standard output are taken as
/// secrets to hide in its standard error.
const SECRET_LINES: usize = 4;

/// Where a secret comes from.
#[derive(Clone)]
pub(crate) enum Source {
    /// Called at each send that needs it.
    Closure(Arc<dyn Fn() -> Result<String, BoxError> + Send + Sync>),
    /// A program and its arguments, and the key that set it (named in
    /// errors): the first line of its standard output is the secret.
    Command { argv: Vec<String>, key: String },
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Closure(_) => f.write_str("a closure"),
            Source::Command { argv, .. } => write!(f, "the command {argv:?}"),
        }
    }
}

impl Source {
    /// What `build()` can check: a command with a program to run.
    pub(crate) fn check(&self, what: &str) -> Result<(), String> {
        match self {
            Source::Command { argv, key } if argv.first().is_none_or(|p| p.trim().is_empty()) => {
                Err(format!(
                    "{key} is empty; give the program that prints the {what}, then its \
                     arguments, such as [\"pass\", \"show\", \"smtp\"]"
                ))
            }
            _ => Ok(()),
        }
    }

    /// The secret (`what`: "SMTP password", "OAuth2 token"), from the
    /// closure or from the command, which is stopped after `timeout`. The
    /// error says what failed and never holds the secret.
    pub(crate) fn fetch(&self, what: &str, timeout: Duration) -> Result<String, String> {
        let fetch = match self {
            Source::Command { argv, key } => {
                return output(argv, what, timeout).map_err(|e| format!("{key}: {e}"));
            }
            Source::Closure(fetch) => fetch,
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fetch())) {
            Ok(Ok(secret)) if secret.is_empty() => {
                Err(format!("the closure that fetches the {what} returned ''"))
            }
            Ok(Ok(secret)) => Ok(secret),
            Ok(Err(e)) => {
                let said = Redactor::new().quote_error(e.as_ref());
                Err(format!("the {what} could not be fetched: {said}"))
            }
            Err(payload) => {
                crate::error::drop_payload(payload);
                Err(format!("the closure that fetches the {what} panicked"))
            }
        }
    }
}

/// A thread reading a pipe: what it read, and whether there was more.
type Reader = JoinHandle<(Vec<u8>, bool)>;

/// Runs `argv` without a shell, stdin closed, and returns the first line of
/// its standard output; on Unix in a process group of its own, so that a
/// timeout stops whatever it started too.
fn output(argv: &[String], what: &str, timeout: Duration) -> Result<String, String> {
    let name = argv.first().map_or("", String::as_str);
    let mut child = spawn(name, &argv[argv.len().min(1)..]).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => " (not found: give its path, or put it on PATH)",
            _ => "",
        };
        format!("could not start {name:?}{hint}: {e}")
    })?;
    let deadline = Instant::now() + timeout;
    let waited = read_pipes(&mut child)
        .map_err(|e| format!("could not start a thread to read {name:?}: {e}"))
        .and_then(|readers| match wait(&mut child, &readers, deadline) {
            Ok(Some(status)) => Ok((readers, status)),
            Ok(None) => Err(format!(
                "{name:?} did not finish within {timeout:?} (the SMTP timeout), so it was \
                 stopped; check that it runs without asking anything"
            )),
            Err(e) => Err(format!("could not wait for {name:?}: {e}")),
        });
    let (readers, status) = waited.inspect_err(|_| stop(&mut child))?;
    if !readers.iter().all(JoinHandle::is_finished) {
        stop(&mut child);
        return Err(format!(
            "{name:?} exited, but something it started still holds its output open after \
             {timeout:?}"
        ));
    }
    let [(out, out_more), (err, err_more)] = readers.map(|r| r.join().unwrap_or_default());
    if !status.success() {
        return Err(match shown(&err, err_more, &out) {
            stderr if stderr.is_empty() => {
                format!("{name:?} failed ({status}), saying nothing on stderr")
            }
            stderr => format!("{name:?} failed ({status}): {stderr}"),
        });
    }
    if out_more {
        return Err(format!(
            "{name:?} printed more than {MAX_STDOUT} bytes; it must print only the {what}"
        ));
    }
    first_line(out, name, what)
}

fn spawn(program: &str, args: &[String]) -> io::Result<Child> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command.spawn()
}

/// Reads the child's standard output and error, each on a thread of its
/// own, detached: a pipe held open by something the command started must
/// not hold the send past its timeout.
fn read_pipes(child: &mut Child) -> io::Result<[Reader; 2]> {
    let stdout = reader(child.stdout.take(), MAX_STDOUT)?;
    Ok([stdout, reader(child.stderr.take(), MAX_STDERR)?])
}

/// Reads at most `limit` bytes, then drains the rest (so the writer never
/// blocks on a full pipe): what it read, and whether there was more.
fn reader(pipe: Option<impl Read + Send + 'static>, limit: usize) -> io::Result<Reader> {
    let thread = std::thread::Builder::new().name("tracing-email-secret".into());
    thread.spawn(move || {
        let mut kept = Vec::new();
        let Some(mut pipe) = pipe else {
            return (kept, false);
        };
        let _ = (&mut pipe).take(limit as u64).read_to_end(&mut kept);
        let more = io::copy(&mut pipe, &mut io::sink()).is_ok_and(|n| n > 0);
        (kept, more)
    })
}

/// Polls until the child has exited and both readers are done, or until
/// `end` (for the readers, at least 100 ms after the exit): the exit
/// status, if it came.
fn wait(child: &mut Child, readers: &[Reader], mut end: Instant) -> io::Result<Option<ExitStatus>> {
    let (mut status, mut pause) = (None, Duration::from_millis(1));
    while status.is_none() || !readers.iter().all(JoinHandle::is_finished) {
        if status.is_none()
            && let Some(exit) = child.try_wait()?
        {
            status = Some(exit);
            end = end.max(Instant::now() + Duration::from_millis(100));
            continue;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(pause.min(end - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    Ok(status)
}

/// The first line of what the command printed, without its line end: the
/// secret.
fn first_line(out: Vec<u8>, name: &str, what: &str) -> Result<String, String> {
    let Ok(text) = String::from_utf8(out) else {
        return Err(format!(
            "{name:?} printed something that is not UTF-8 text; it must print the {what}"
        ));
    };
    // `lines` ends a line at `\n` or `\r\n`.
    let first = text.lines().next().unwrap_or("");
    match (first.is_empty(), text.trim().is_empty()) {
        (false, _) => Ok(first.to_owned()),
        (true, true) => Err(format!(
            "{name:?} printed nothing on its standard output; it must print the {what} (on its \
             first line)"
        )),
        (true, false) => Err(format!(
            "the first line {name:?} printed is empty; it must print the {what} on its first \
             line (lines after it are ignored, as `pass` keeps notes there)"
        )),
    }
}

/// Standard error as shown in an error: through the redactor, which knows
/// the first lines the command printed on its standard output (where the
/// secret would be), on one line, control characters escaped, bounded.
fn shown(err: &[u8], more: bool, out: &[u8]) -> String {
    let redactor = String::from_utf8_lossy(out)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .take(SECRET_LINES)
        .fold(Redactor::new(), |r, line| r.secret(line));
    redactor.quote(err, MAX_QUOTED, more)
}

/// Kills the child, and on Unix the process group it leads (what it
/// started goes too), and reaps it.
fn stop(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it touches no memory of this process.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(unix)]
#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Source {
        Source::Command {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            key: "password_command".into(),
        }
    }

    const SECOND: Duration = Duration::from_secs(5);

    #[test]
    fn the_first_line_of_the_output_is_the_secret() {
        let s = sh("printf 'hunter2\\nuser: me\\n'").fetch("SMTP password", SECOND);
        assert_eq!(s.unwrap(), "hunter2");
        let s = sh("printf 'tok\\r\\n'").fetch("OAuth2 token", SECOND);
        assert_eq!(s.unwrap(), "tok");
        let s = sh("printf 'no newline'").fetch("OAuth2 token", SECOND);
        assert_eq!(s.unwrap(), "no newline");
    }

    #[test]
    fn failures_name_the_key_and_show_stderr_but_never_stdout() {
        let e = sh("echo hunter2; echo 'vault sealed' >&2; exit 3")
            .fetch("SMTP password", SECOND)
            .unwrap_err();
        assert!(e.starts_with("password_command: \"sh\" failed"), "{e}");
        assert!(e.contains("vault sealed") && e.contains('3'), "{e}");
        assert!(!e.contains("hunter2"), "{e}");

        let e = sh("echo").fetch("SMTP password", SECOND).unwrap_err();
        assert!(e.contains("printed nothing"), "{e}");

        // The secret on a later line: the first line is named, not "nothing".
        for script in ["printf '\\nhunter2\\n'", "printf '\\r\\nhunter2'"] {
            let e = sh(script).fetch("SMTP password", SECOND).unwrap_err();
            assert_eq!(
                e,
                "password_command: the first line \"sh\" printed is empty; it must print the \
                 SMTP password on its first line (lines after it are ignored, as `pass` keeps \
                 notes there)",
                "{script}"
            );
        }

        let e = sh("printf '\\377\\376'")
            .fetch("SMTP password", SECOND)
            .unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");

        let e = Source::Command {
            argv: vec!["/nonexistent/helper".into()],
            key: "K".into(),
        }
        .fetch("SMTP password", SECOND)
        .unwrap_err();
        assert!(
            e.starts_with("K: could not start \"/nonexistent/helper\" (not found"),
            "{e}"
        );
    }

    #[test]
    fn stderr_never_shows_what_the_command_printed_on_stdout() {
        let e = sh("echo 'Tr0ub4dor&3'; echo 'token Tr0ub4dor&3 expired' >&2; exit 1")
            .fetch("SMTP password", SECOND)
            .unwrap_err();
        assert!(e.ends_with(": token *** expired"), "{e}");
    }

    #[test]
    fn a_long_stderr_is_cut() {
        let e = sh("head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1")
            .fetch("SMTP password", SECOND)
            .unwrap_err();
        assert!(
            e.len() < MAX_STDERR + 200 && e.ends_with('…'),
            "{}",
            e.len()
        );
    }

    #[test]
    fn a_command_that_hangs_is_stopped_at_the_timeout_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let started = Instant::now();
        let e = sh(&format!("sleep 30 & echo $! > {}; wait", pid.display()))
            .fetch("OAuth2 token", Duration::from_millis(300))
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(e.contains("did not finish within 300ms"), "{e}");
        let pid = std::fs::read_to_string(&pid).unwrap();
        let alive = || {
            Command::new("kill")
                .args(["-0", pid.trim()])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        let gone_by = Instant::now() + Duration::from_secs(2);
        while alive() && Instant::now() < gone_by {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the sleep the command started still runs");
    }

    #[test]
    fn a_closure_that_panics_fails_the_fetch_even_if_its_payload_panics_when_dropped() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        let source = Source::Closure(Arc::new(|| -> Result<String, BoxError> {
            std::panic::panic_any(Bomb)
        }));
        let e = source.fetch("OAuth2 token", SECOND).unwrap_err();
        assert_eq!(e, "the closure that fetches the OAuth2 token panicked");
    }

    #[test]
    fn empty_commands_are_refused_by_check() {
        for argv in [vec![], vec![" ".to_owned()]] {
            let e = Source::Command {
                argv,
                key: "oauth2_token_command".into(),
            }
            .check("OAuth2 token")
            .unwrap_err();
            assert!(e.starts_with("oauth2_token_command is empty"), "{e}");
        }
    }
}
