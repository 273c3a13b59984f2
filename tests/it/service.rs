//! A long-running service with `flush_every`: each period is a run, so
//! while the process runs a failure that lasts is emailed once it has
//! lasted `consecutive_runs` periods, its alert is posted to Alertmanager
//! and kept alive, resolved once a period goes by without it, and the
//! recovery email goes out, all before the process exits. Timed against a
//! fake Alertmanager on 127.0.0.1 that notes when each post arrives. And
//! the `service` example, stopped by SIGTERM as systemd stops it.

#![cfg(all(feature = "alertmanager", feature = "smtp"))]

use crate::support;

#[allow(dead_code)]
#[path = "../../examples/service.rs"]
mod service;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::alertmanager as am;
use support::child::{act_as_child_if_asked, command};
use support::fake_alertmanager::FakeAlertmanager;
use support::{MockSmtp, Security};
use tracing_email::{Alertmanager, EmailLayer, Smtp};
use tracing_subscriber::prelude::*;

const PERIOD: Duration = Duration::from_secs(2);
const FAILING: Duration = Duration::from_secs(10);
const HEALTHY: Duration = Duration::from_secs(8);

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// The service: a feed that fails every 250 ms for [`FAILING`], then is
/// fetched fine for [`HEALTHY`], then the guard is dropped. Prints when the
/// failure started and when its last record was logged (Unix ms). `args`:
/// the state file, the SMTP port, the Alertmanager URLs.
fn service(args: Vec<String>) -> u8 {
    let smtp = Smtp::plain("127.0.0.1")
        .port(args[1].parse().unwrap())
        .timeout(Duration::from_secs(2));
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(smtp)
        .from("poca@example.com")
        .to("me@example.com")
        .state_file(Path::new(&args[0]))
        .host("node-1")
        .fingerprint_fields(["feed"])
        .consecutive_runs(2)
        .notify_recovery(true)
        .flush_every(PERIOD)
        .send_deadline(Duration::from_secs(5))
        .alerts(Alertmanager::new(args[2..].iter().cloned()).timeout(Duration::from_secs(2)))
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let start = std::time::Instant::now();
        println!("failing since {}", unix_ms(SystemTime::now()));
        let mut last = SystemTime::now();
        while start.elapsed() < FAILING {
            tracing::warn!(feed = "Radio Café", "feed failed: HTTP 503");
            last = SystemTime::now();
            std::thread::sleep(Duration::from_millis(250));
        }
        println!("failing until {}", unix_ms(last));
        while start.elapsed() < FAILING + HEALTHY {
            tracing::info!(feed = "Radio Café", "fetched 3 episodes");
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    drop(guard);
    0
}

/// One post the fake Alertmanager received: when, and its alerts.
struct Post {
    at: SystemTime,
    alerts: Vec<serde_json::Value>,
}

impl Post {
    /// Whether it holds the alert as firing (its `endsAt` ahead), or as
    /// resolved (its `endsAt` already past).
    fn firing(&self) -> Option<bool> {
        let alert = self.alerts.first()?;
        let ends = time::OffsetDateTime::parse(
            alert["endsAt"].as_str()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        Some(SystemTime::from(ends) > self.at)
    }
}

/// The posts `am` received that hold alerts, with when each came.
fn posts_of(am: &FakeAlertmanager) -> Vec<Post> {
    am.seen()
        .iter()
        .filter_map(|r| {
            let alerts = serde_json::from_str(r.body()).ok()?;
            Some(Post { at: r.at, alerts })
        })
        .collect()
}

/// The time printed on the line of `stdout` that starts with `prefix`.
fn printed(stdout: &str, prefix: &str) -> SystemTime {
    let ms = stdout
        .lines()
        .find_map(|l| l.find(prefix).map(|at| &l[at + prefix.len()..]))
        .unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"));
    UNIX_EPOCH + Duration::from_millis(ms.trim().parse().unwrap())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Each email `server` received, with when it arrived (at most 50 ms
/// late): those not in `seen` yet are added.
fn note_emails(server: &MockSmtp, seen: &mut Vec<(SystemTime, String)>) {
    let received = server.messages();
    for m in &received[seen.len()..] {
        seen.push((SystemTime::now(), m.subject().unwrap_or_default()));
    }
}

/// The run is also posted to the real Alertmanager, where installed (as
/// the fleet tests run it): it holds the alert as active while the failure
/// lasts, and its own notifications (to a mock SMTP server of their own)
/// say FIRING, then RESOLVED, before the process exits.
#[test]
fn a_service_reports_alerts_and_recovers_while_it_runs() {
    act_as_child_if_asked(service);
    let server = MockSmtp::start(Security::Plain);
    let fake = FakeAlertmanager::start();
    let url = fake.url();
    let real = am::binary("a_service_reports_alerts_and_recovers_while_it_runs").map(|bin| {
        let smtp = MockSmtp::start(Security::Plain);
        let alertmanager = am::Alertmanager::start(&bin, smtp.port());
        (smtp, alertmanager)
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("poca.json");
    let mut args = vec![
        state.to_str().unwrap().to_owned(),
        server.port().to_string(),
        url,
    ];
    args.extend(real.iter().map(|(_, a)| a.url()));
    let mut child = command("a_service_reports_alerts_and_recovers_while_it_runs", &args)
        .spawn()
        .unwrap();
    // Each email, with when it arrived, until the child exits; and when
    // the real Alertmanager held the alert as active.
    let mut emails: Vec<(SystemTime, String)> = Vec::new();
    let mut notifications: Vec<(SystemTime, String)> = Vec::new();
    let mut active: Vec<SystemTime> = Vec::new();
    let status = loop {
        note_emails(&server, &mut emails);
        if let Some((smtp, alertmanager)) = &real {
            note_emails(smtp, &mut notifications);
            let held = alertmanager.alerts();
            if held.as_array().is_some_and(|all| {
                all.iter().any(|a| {
                    a["status"]["state"] == "active"
                        && a["labels"]["failure"] == "feed \"Radio Café\""
                })
            }) {
                active.push(SystemTime::now());
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let exited = SystemTime::now();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("tracing-email"), "{stderr}");
    let since = printed(&stdout, "failing since ");
    let until = printed(&stdout, "failing until ");
    let posts = posts_of(&fake);
    let at = |t: SystemTime| secs(t.duration_since(since).unwrap_or_default());
    let shown: Vec<String> = posts
        .iter()
        .map(|p| format!("{:.1}s {:?}", at(p.at), p.firing()))
        .collect();

    // The digest went out while the process ran, once the failure had
    // lasted two periods.
    let digest = emails.iter().find(|(_, s)| !s.contains("resolved"));
    let Some((digest_at, subject)) = digest else {
        panic!("no digest among {emails:?}")
    };
    assert!(*digest_at < exited, "{emails:?}");
    assert!(subject.contains("Radio Café"), "{subject}");

    // Posted within three periods of the failure's start, then again at
    // least every two periods while it lasted.
    let firing: Vec<SystemTime> = posts
        .iter()
        .filter(|p| p.firing() == Some(true))
        .map(|p| p.at)
        .collect();
    let first = *firing.first().unwrap_or_else(|| panic!("{shown:?}"));
    assert!(at(first) <= secs(3 * PERIOD), "{shown:?}");
    let mut last = first;
    for &t in firing.iter().filter(|&&t| t <= until) {
        assert!(
            secs(t.duration_since(last).unwrap()) <= secs(2 * PERIOD),
            "{shown:?}"
        );
        last = t;
    }
    assert!(
        secs(until.duration_since(last).unwrap_or_default()) <= secs(2 * PERIOD),
        "the alert was not posted again in the last two periods of the failure: {shown:?}"
    );

    // Resolved within two periods of its end, and not fired again after it.
    let resolved = posts
        .iter()
        .position(|p| p.firing() == Some(false))
        .unwrap_or_else(|| panic!("no resolution in {shown:?}"));
    let resolved_at = posts[resolved].at;
    let after_end = secs(resolved_at.duration_since(until).unwrap_or_default());
    assert!(after_end <= secs(2 * PERIOD), "{shown:?}");
    assert!(resolved_at < exited, "{shown:?}");
    assert!(
        posts[resolved..].iter().all(|p| p.firing() != Some(true)),
        "{shown:?}"
    );
    assert_eq!(
        posts[resolved].alerts[0]["labels"]["failure"],
        "feed \"Radio Café\""
    );

    // The recovery email too, before the exit.
    let recovery = emails.iter().find(|(_, s)| s.contains("resolved"));
    let Some((recovered_at, subject)) = recovery else {
        panic!("no recovery email among {emails:?}")
    };
    assert!(*recovered_at < exited, "{emails:?}");
    assert!(
        subject.contains("Radio Café") && subject.contains("OK again"),
        "{subject}"
    );
    assert_eq!(emails.len(), 2, "{emails:?}");

    // The real Alertmanager: active while the failure lasted, no longer
    // once it was resolved; FIRING, then RESOLVED, before the exit.
    if real.is_some() {
        let (first_active, last_active) = (active.first(), active.last());
        let (Some(&first_active), Some(&last_active)) = (first_active, last_active) else {
            panic!("never active in Alertmanager: {shown:?}")
        };
        assert!(first_active <= until, "{shown:?}");
        // Posted to the fake first, then to it: a poll may fall between.
        let resolved_there = resolved_at + Duration::from_secs(1);
        assert!(
            last_active >= until && last_active <= resolved_there,
            "{shown:?}"
        );
        let subjects: Vec<&str> = notifications.iter().map(|(_, s)| s.as_str()).collect();
        assert!(
            subjects
                .first()
                .is_some_and(|s| s.starts_with("[FIRING:1] poca")),
            "{subjects:?}"
        );
        assert!(
            subjects
                .last()
                .is_some_and(|s| s.starts_with("[RESOLVED] poca")),
            "{subjects:?}"
        );
    }
}

/// Between runs (here one run, the process, with no `flush_every`), a
/// firing alert is posted again at least every third of its resolve window
/// while the process runs, so Alertmanager does not resolve it at its
/// `endsAt` while the failure lasts.
#[test]
fn a_firing_alert_is_posted_again_within_its_window_between_runs() {
    let fake = FakeAlertmanager::start();
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(3);
    let (layer, guard) = EmailLayer::builder("poca")
        .state_file(dir.path().join("poca.json"))
        .host("node-1")
        .fingerprint_fields(["feed"])
        .immediately_at(tracing::Level::WARN)
        .checkpoint_interval(Duration::from_millis(200))
        .alerts(
            Alertmanager::new([url])
                .timeout(Duration::from_secs(2))
                .resolve_window(window),
        )
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(feed = "Radio Café", "feed failed: HTTP 503");
        assert!(guard.flush().is_alerted());
        std::thread::sleep(Duration::from_millis(3500));
        let posts = posts_of(&fake);
        let shown: Vec<String> = posts
            .iter()
            .map(|p| format!("{:?} {:?}", p.at.duration_since(posts[0].at), p.firing()))
            .collect();
        assert!(posts.len() >= 3, "{shown:?}");
        assert!(posts.iter().all(|p| p.firing() == Some(true)), "{shown:?}");
        for pair in posts.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at).unwrap();
            // Due every second (a third of the window); the bound allows a
            // loaded machine's delay and still keeps the alert alive.
            assert!(gap < window / 2, "{shown:?}");
        }
    });
    drop(guard);
}

/// Alerts an earlier process left firing (posted at its exit) are posted
/// again by the next process a third of their window after it started, even
/// if it logs nothing: a service restarted during an outage keeps them alive.
#[test]
fn alerts_left_firing_by_an_earlier_process_are_kept_alive_by_the_next() {
    let fake = FakeAlertmanager::start();
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(3);
    let build = || {
        EmailLayer::builder("poca")
            .state_file(dir.path().join("poca.json"))
            .host("node-1")
            .fingerprint_fields(["feed"])
            .immediately_at(tracing::Level::WARN)
            .checkpoint_interval(None)
            .alerts(
                Alertmanager::new([url.clone()])
                    .timeout(Duration::from_secs(2))
                    .resolve_window(window),
            )
            .build()
            .unwrap()
    };
    let (layer, guard) = build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(feed = "Radio Café", "feed failed: HTTP 503");
    });
    drop(guard);
    let first = {
        let posts = posts_of(&fake);
        assert_eq!(posts.len(), 1);
        posts[0].at
    };
    // The next process logs nothing.
    let (_layer, guard) = build();
    let waited = std::time::Instant::now();
    while posts_of(&fake).len() < 2 && waited.elapsed() < 2 * window {
        std::thread::sleep(Duration::from_millis(50));
    }
    {
        let posts = posts_of(&fake);
        assert_eq!(posts.len(), 2);
        assert_eq!(posts[1].firing(), Some(true));
        // Before the first post's endsAt.
        let after = posts[1].at.duration_since(first).unwrap();
        assert!(after < window, "{after:?}");
    }
    // Its last flush: a run that did not see the failure resolves it.
    drop(guard);
    let posts = posts_of(&fake);
    assert_eq!(posts.last().unwrap().firing(), Some(false));
}

/// The `service` example, stopped by SIGTERM (systemd's stop) after a few
/// periods: it exits at once, and loses nothing: the digest went out
/// during the run, and what was logged after the signal is in the state
/// file, stored by the guard's last flush.
#[cfg(unix)]
#[test]
fn the_service_example_stops_on_sigterm_and_loses_nothing() {
    use std::io::BufRead as _;
    act_as_child_if_asked(|args| match service::run(&args) {
        Ok(outcome) => {
            println!("{outcome}");
            0
        }
        Err(_) => 1,
    });
    let dir = tempfile::tempdir().unwrap();
    let args = ["--every", "1s", "--dir", dir.path().to_str().unwrap()].map(String::from);
    let mut child = command(
        "the_service_example_stops_on_sigterm_and_loses_nothing",
        &args,
    )
    .spawn()
    .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if line.contains("serving") {
            break;
        }
    }
    // Radio Café fails for its first four periods: reported after two.
    std::thread::sleep(Duration::from_millis(2600));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: a plain signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stopped = std::time::Instant::now();
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stopped.elapsed() < Duration::from_secs(5), "{stdout}");
    assert!(stdout.contains("stopping why=\"SIGTERM\""), "{stdout}");
    assert!(stdout.contains("held "), "{stdout}");
    let outbox: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(outbox.len(), 1, "{stdout}");
    assert!(outbox[0].contains("Radio Caf"), "{}", outbox[0]);
    let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("state.json"))
        .snapshot()
        .unwrap();
    let messages: Vec<&str> = snapshot
        .pending
        .iter()
        .map(|r| r.message.as_str())
        .collect();
    assert!(messages.contains(&"stopping"), "{messages:?}");
    assert_eq!(messages.last(), Some(&"stopped"), "{messages:?}");
    assert!(snapshot.runs >= 3, "{}", snapshot.runs);
}
