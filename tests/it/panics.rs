//! A panic in code a flush calls (the clock, the transport, a transport
//! error's `Display`) loses no record: the flush ends in `Outcome::Failed`
//! saying what panicked, this run's records are in the state file or kept in
//! memory, and the next good flush sends each of them exactly once. A clock
//! that panics on the event path does not panic it. A guard dropped on its
//! own worker thread (a panic hook while that thread panics) neither aborts
//! the process nor loses the records.

use crate::support;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use support::child::{act_as_child_if_asked, command};
use support::recorder::Recorder;
use tracing::Level;
use tracing_email::{
    Builder, EmailLayer, ErrorKind, Outcome, clock::Clock, clock::ManualClock, transport::BoxError,
    transport::Email, transport::Transport,
};
use tracing_subscriber::prelude::*;

/// A switch a test flips to make user code panic.
#[derive(Clone, Default)]
struct Switch(Arc<AtomicBool>);

impl Switch {
    fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }
    fn on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock, or a panic while its switch is on.
struct PanickyClock(Switch);

impl Clock for PanickyClock {
    fn now(&self) -> SystemTime {
        if self.0.on() {
            panic!("the clock's battery is flat");
        }
        SystemTime::now()
    }
}

/// A [`Recorder`], or a panic while its switch is on.
struct PanickyTransport(Recorder, Switch);

impl Transport for PanickyTransport {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        if self.1.on() {
            panic!("the webhook client crashed");
        }
        self.0.send(email)
    }
}

fn builder(state: &Path, transport: impl Transport, clock: impl Clock) -> Builder {
    EmailLayer::builder("panics")
        .transport(transport)
        .clock(clock)
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::WARN)
        .checkpoint_interval(None)
}

/// The messages of the records pending in the state file.
/// The pending records' messages: the snapshot and the journal as one.
fn pending(state: &Path) -> Vec<String> {
    tracing_email::inspect::StateFile::open(state)
        .snapshot()
        .unwrap()
        .pending
        .into_iter()
        .map(|r| r.message)
        .collect()
}

fn sent(recorder: &Recorder) -> Vec<String> {
    recorder
        .emails()
        .concat()
        .into_iter()
        .map(|r| r.message)
        .collect()
}

fn failed_with(outcome: &Outcome, kind: ErrorKind, words: &str) {
    match outcome {
        Outcome::Failed { error, .. } => {
            assert_eq!(error.kind(), kind, "{error}");
            assert!(error.to_string().contains(words), "{error}");
        }
        other => panic!("expected a failure saying {words:?}, got {other}"),
    }
}

#[test]
fn a_clock_and_a_transport_that_panic_lose_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = Switch::default();
    let transport = Switch::default();
    let recorder = Recorder::default();
    let (layer, guard) = builder(
        &state,
        PanickyTransport(recorder.clone(), transport.clone()),
        PanickyClock(clock.clone()),
    )
    .build()
    .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for n in 0..3 {
            tracing::warn!("warning {n}");
        }
        // The clock panics at flush time: nothing can be decided, but this
        // run's records are stored.
        clock.set(true);
        let outcome = guard.flush();
        failed_with(
            &outcome,
            ErrorKind::Panic,
            "the clock panicked: the clock's battery is flat",
        );
        assert!(outcome.to_string().contains("kept in the state file"));
        assert_eq!(pending(&state), ["warning 0", "warning 1", "warning 2"]);
        // Looking in says why it cannot judge, as the flush does.
        let err = guard.snapshot().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panic);
        assert_eq!(
            err.to_string(),
            "the clock panicked: the clock's battery is flat; no verdict can be given; fix the \
             Clock given to the builder"
        );

        // On the event path, a panicking clock does not panic the program:
        // the record is kept with the system's time.
        tracing::warn!("warning 3");
        clock.set(false);

        // The transport panics on its thread: the records stay pending.
        transport.set(true);
        let outcome = guard.flush();
        failed_with(
            &outcome,
            ErrorKind::Panic,
            "the transport panicked while sending: the webhook client crashed",
        );
        assert_eq!(pending(&state).len(), 4);

        // Both at once, then both healthy: each record goes exactly once.
        clock.set(true);
        tracing::warn!("warning 4");
        assert!(guard.flush().is_failed());
        assert_eq!(pending(&state).len(), 5);
        clock.set(false);
        transport.set(false);
        let outcome = guard.flush();
        assert!(
            matches!(
                outcome,
                Outcome::Sent {
                    records: 5,
                    emails: 1
                }
            ),
            "{outcome}"
        );
    });
    assert_eq!(
        sent(&recorder),
        [
            "warning 0",
            "warning 1",
            "warning 2",
            "warning 3",
            "warning 4"
        ]
    );
    assert!(pending(&state).is_empty());
    drop(guard);
    assert_eq!(recorder.emails().len(), 1);
}

#[test]
fn the_guard_dropped_with_a_panicking_clock_and_transport_stores_the_run() {
    let stderr = support::child::in_own_process(
        "the_guard_dropped_with_a_panicking_clock_and_transport_stores_the_run",
        guard_dropped_with_a_panicking_clock_and_transport,
    );
    // The drop says why nothing was sent, on stderr.
    assert_eq!(
        support::child::crate_lines(&stderr),
        [
            "tracing-email: not sent, 2 records kept for a later run: the clock panicked: the \
             clock's battery is flat; this run's records are kept in the state file and nothing \
             was sent; fix the Clock given to the builder"
        ],
        "{stderr}"
    );
}

fn guard_dropped_with_a_panicking_clock_and_transport() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let on = Switch::default();
    let (layer, guard) = builder(
        &state,
        PanickyTransport(Recorder::default(), on.clone()),
        PanickyClock(on.clone()),
    )
    .build()
    .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("first");
        on.set(true);
        tracing::error!("second");
    });
    drop(guard); // does not panic
    assert_eq!(pending(&state), ["first", "second"]);

    // A later, healthy run sends both, once.
    let recorder = Recorder::default();
    let (_layer, guard) = builder(&state, recorder.clone(), PanickyClock(Switch::default()))
        .build()
        .unwrap();
    assert!(matches!(guard.flush(), Outcome::Sent { records: 2, .. }));
    drop(guard);
    assert_eq!(sent(&recorder), ["first", "second"]);
}

/// A transport error whose `Display` panics or fails: user code the flush
/// formats (for the state file's `last_error`) and the guard prints.
#[derive(Debug)]
struct BadDisplay {
    panics: bool,
}

impl fmt::Display for BadDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the webhook said ")?;
        if self.panics {
            panic!("Display of the webhook error");
        }
        Err(fmt::Error)
    }
}

impl std::error::Error for BadDisplay {}

struct BadErrors {
    panics: bool,
}

impl Transport for BadErrors {
    fn send(&self, _email: &Email) -> Result<(), BoxError> {
        Err(Box::new(BadDisplay {
            panics: self.panics,
        }))
    }
}

#[test]
fn a_transport_error_whose_display_panics_or_fails_keeps_the_records() {
    let stderr = support::child::in_own_process(
        "a_transport_error_whose_display_panics_or_fails_keeps_the_records",
        transport_errors_whose_display_panics_or_fails,
    );
    // Each guard's drop says so on stderr, with the same marker.
    let said = |marker| {
        format!(
            "tracing-email: not sent, 3 records kept for a later run: could not send the \
             digest: the webhook said …[its Display {marker}]"
        )
    };
    assert_eq!(
        support::child::crate_lines(&stderr),
        [said("panicked"), said("failed")],
        "{stderr}"
    );
}

fn transport_errors_whose_display_panics_or_fails() {
    for panics in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let (layer, guard) = builder(
            &state,
            BadErrors { panics },
            PanickyClock(Switch::default()),
        )
        .build()
        .unwrap();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::warn!("first");
            tracing::warn!("second");
        });
        assert!(matches!(
            guard.flush(),
            Outcome::Failed {
                pending: 2,
                error
            } if error.kind() == ErrorKind::Send
        ));
        assert_eq!(pending(&state), ["first", "second"]);
        let snapshot = tracing_email::inspect::StateFile::open(&state)
            .snapshot()
            .unwrap();
        let last_error = snapshot.last_error.as_deref().unwrap();
        let marker = if panics { "panicked" } else { "failed" };
        assert_eq!(
            last_error,
            format!("could not send the digest: the webhook said …[its Display {marker}]")
        );
        // The guard's drop flushes the new record, fails the same way and
        // prints that on stderr: no panic.
        tracing::dispatcher::with_default(&dispatch, || tracing::warn!("third"));
        drop(guard);
        assert_eq!(pending(&state), ["first", "second", "third"]);
    }
}

/// A run whose clock panics once its switch is on, with a panic hook that
/// drops the guard: the switch goes on, a checkpoint runs on the worker
/// thread, the clock panics there, and the hook drops the guard on that
/// very thread. `args[0]` is the state file.
fn guard_dropped_on_its_worker(args: Vec<String>) -> u8 {
    use std::sync::Mutex;
    static GUARD: Mutex<Option<tracing_email::FlushGuard>> = Mutex::new(None);
    let state = Path::new(&args[0]);
    let on = Switch::default();
    let (layer, guard) = EmailLayer::builder("panics")
        .transport(Recorder::default())
        .clock(PanickyClock(on.clone()))
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .batch(2)
        .build()
        .unwrap();
    *GUARD.lock().unwrap() = Some(guard);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("tracing-email") {
            println!("dropping the guard on the worker thread");
            // The lock is not held here: the guard is taken, then dropped.
            let guard = GUARD.lock().map(|mut g| g.take()).ok().flatten();
            drop(guard);
            println!("dropped");
        }
        previous(info);
    }));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    tracing::warn!("first");
    // The second record completes a batch: the worker wakes and flushes, and
    // asks the clock, which panics.
    on.set(true);
    tracing::warn!("second");
    // The worker stores the records, runs the guard's last flush and ends;
    // wait for that.
    for _ in 0..1000 {
        if state.exists() && !pending(state).is_empty() && !worker_alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("main ends");
    0
}

/// Whether the `tracing-email` worker thread still runs (Linux: its name in
/// `/proc`; elsewhere a guess after a while).
fn worker_alive() -> bool {
    if !cfg!(target_os = "linux") {
        std::thread::sleep(Duration::from_millis(500));
        return false;
    }
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .any(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end() == "tracing-email")
        })
}

#[test]
fn a_guard_dropped_on_its_own_worker_thread_stores_the_records() {
    act_as_child_if_asked(guard_dropped_on_its_worker);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let output = command(
        "a_guard_dropped_on_its_own_worker_thread_stores_the_records",
        &[state.to_str().unwrap().to_owned()],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("dropping the guard on the worker thread"));
    assert!(stdout.contains("dropped"), "{stdout}");
    assert!(stdout.contains("main ends"), "{stdout}");
    assert_eq!(pending(&state), ["first", "second"], "{stderr}");
    // The guard's last flush, run by the worker, failed for the same clock
    // and said so.
    assert!(stderr.contains("the clock panicked"), "{stderr}");
}

/// A run whose clock always panics, against a state file that cannot be
/// written (`args[0]` lies under a regular file): the event path keeps the
/// records with the system's time, and the guard's drop, which cannot store
/// them, prints them on stderr.
fn unstorable_run(args: Vec<String>) -> u8 {
    let on = Switch::default();
    on.set(true);
    let (layer, guard) = builder(
        Path::new(&args[0]),
        Recorder::default(),
        PanickyClock(on.clone()),
    )
    .build()
    .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    for n in 0..3 {
        tracing::warn!(n, "precious");
    }
    drop(guard);
    println!("dropped");
    0
}

#[test]
fn records_that_cannot_be_stored_reach_stderr_despite_a_panicking_clock() {
    act_as_child_if_asked(unstorable_run);
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file where the folder should be").unwrap();
    let state = blocker.join("state.json");
    let output = command(
        "records_that_cannot_be_stored_reach_stderr_despite_a_panicking_clock",
        &[state.to_str().unwrap().to_owned()],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("dropped"));
    let on_stderr: Vec<i64> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let record: tracing_email::record::Record = serde_json::from_str(l).unwrap();
            assert_eq!(record.message, "precious");
            record.fields.get("n").unwrap().as_i64().unwrap()
        })
        .collect();
    assert_eq!(on_stderr, [0, 1, 2], "{stderr}");
}

/// A run with `capture_panics()` whose clock always panics: each panic of
/// the clock is captured (the hook must not ask the clock again, which
/// would panic inside the panic hook and abort). `args[0]` is the state
/// file.
fn captured_clock_panics(args: Vec<String>) -> u8 {
    let on = Switch::default();
    on.set(true);
    let (layer, guard) = builder(
        Path::new(&args[0]),
        Recorder::default(),
        PanickyClock(on.clone()),
    )
    .capture_panics()
    .build()
    .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    tracing::warn!("first");
    tracing::warn!("second");
    drop(guard);
    println!("dropped");
    0
}

#[test]
fn captured_panics_of_the_clock_do_not_abort_and_are_stored() {
    act_as_child_if_asked(captured_clock_panics);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let output = command(
        "captured_panics_of_the_clock_do_not_abort_and_are_stored",
        &[state.to_str().unwrap().to_owned()],
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let pending = pending(&state);
    let warnings: Vec<&String> = pending
        .iter()
        .filter(|m| !m.starts_with("panicked"))
        .collect();
    assert_eq!(warnings, ["first", "second"]);
    // The two on the event path, and the one at the guard's flush.
    let panics = pending
        .iter()
        .filter(|m| *m == "panicked: the clock's battery is flat")
        .count();
    assert_eq!(panics, 3, "{pending:?}");
}

#[test]
fn a_clock_past_the_year_9999_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40); // the year 36812
    // Kept at the last moment a record can hold, and sent.
    let recorder = Recorder::default();
    let (layer, guard) = builder(&state, recorder.clone(), ManualClock::new(far))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("from the far future");
    });
    let outcome = guard.flush();
    assert!(
        matches!(outcome, Outcome::Sent { records: 1, .. }),
        "{outcome}"
    );
    let sent = recorder.emails().concat();
    assert_eq!(sent[0].message, "from the far future");
    assert_eq!(sent[0].timestamp.year(), 9999);
}

#[test]
fn a_huge_panic_message_makes_a_record_within_the_bound() {
    support::child::in_own_process(
        "a_huge_panic_message_makes_a_record_within_the_bound",
        || {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state.json");
            let (layer, guard) = builder(
                &state,
                tracing_email::FileDrop::new(dir.path()),
                tracing_email::clock::SystemClock,
            )
            .threshold(usize::MAX, Level::ERROR)
            .max_record_bytes(1024)
            .capture_panics()
            .build()
            .unwrap();
            let _default =
                tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
            let huge = "x".repeat(1_000_000);
            let name = "n".repeat(10_000);
            let panicked = std::thread::Builder::new()
                .name(name)
                .spawn(move || panic!("{huge}"))
                .unwrap()
                .join();
            assert!(panicked.is_err());
            let _ = guard.flush();
            let snapshot = tracing_email::inspect::StateFile::open(&state)
                .snapshot()
                .unwrap();
            let record = &snapshot.pending[0];
            assert!(
                record.message.starts_with("panicked: xxx"),
                "{}",
                &record.message[..40]
            );
            assert!(
                record.message.ends_with("…[cut: 1000010 bytes in all]"),
                "{}",
                &record.message[record.message.len() - 60..]
            );
            assert!(record.message.len() <= 1024 / 2, "{}", record.message.len());
            let thread = record.fields.get("thread").unwrap().as_str().unwrap();
            assert!(
                thread.len() <= 256 && thread.ends_with("bytes in all]"),
                "{thread}"
            );
            let line = serde_json::to_string(record).unwrap();
            assert!(line.len() <= 1024 + 512, "{}", line.len());
        },
    );
}
