//! The Alertmanager destination against the real `prometheus-alertmanager`
//! (see `support::alertmanager`; skipped with one line when it is not
//! installed), whose email receiver is the mock SMTP server: several hosts,
//! one notification; recovery; Alertmanager down; a cluster with a peer
//! killed. And against a tiny fake HTTP server for the replies the real one
//! does not give (4xx, 5xx, a hang).

#![cfg(all(feature = "alertmanager", feature = "smtp"))]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing_email::{Alertmanager, EmailLayer, ErrorKind, FileDrop, Outcome};
use tracing_subscriber::prelude::*;

use crate::podcast::podcast;
use crate::support::alertmanager::{self as am, free_port};
use crate::support::child::{act_as_child_if_asked, command, outcome_line};
use crate::support::fake_alertmanager::FakeAlertmanager;
use crate::support::{MockSmtp, Received, Security};

/// One run of the feed fetcher on `host`: each of `feeds` fails once, then
/// the run flushes. Alerts go to `urls`; digests to `outbox` when given.
fn run(dir: &Path, host: &str, urls: &[String], outbox: Option<&Path>, feeds: &[&str]) -> Outcome {
    let mut b = EmailLayer::builder("poca")
        .state_file(dir.join(format!("{host}.json")))
        .host(host)
        .consecutive_runs(3)
        .fingerprint_fields(["feed"])
        .checkpoint_interval(None)
        .send_deadline(Duration::from_secs(10))
        .alerts(
            Alertmanager::new(urls.iter().cloned())
                .label("team", "media")
                .timeout(Duration::from_secs(3))
                .resolve_window(Duration::from_secs(600)),
        );
    if let Some(outbox) = outbox {
        b = b
            .transport(FileDrop::new(outbox))
            .from("poca@example.com")
            .to("me@example.com");
    }
    let (layer, guard) = b.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in feeds {
            tracing::warn!(feed, "feed failed: HTTP 503");
        }
        guard.flush()
    })
}

/// The HTML of an email Alertmanager sent.
fn html(m: &Received) -> String {
    m.parsed()
        .body_html(0)
        .map(|h| h.into_owned())
        .unwrap_or_else(|| m.data_lossy())
}

/// Waits for an email beyond the `before` already there, then `settle`
/// past the last one (at most `max` in all): every email received.
fn emails_after(
    server: &MockSmtp,
    before: usize,
    settle: Duration,
    max: Duration,
) -> Vec<Received> {
    let start = Instant::now();
    let mut seen = server.messages().len();
    let mut last = Instant::now();
    while start.elapsed() < max {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.messages().len();
        if now != seen {
            seen = now;
            last = Instant::now();
        }
        if seen > before && last.elapsed() >= settle {
            break;
        }
    }
    server.messages()
}

/// Records pending in the state file (snapshot and journal).
fn pending_in(state: &Path) -> usize {
    tracing_email::inspect::StateFile::open(state)
        .snapshot()
        .unwrap()
        .pending
        .len()
}

/// `f` for every host at once, each in a thread of its own: the outcomes.
fn on_every_host<F>(hosts: &[&str], f: F) -> Vec<Outcome>
where
    F: Fn(&str) -> Outcome + Sync,
{
    std::thread::scope(|scope| {
        let f = &f;
        let running: Vec<_> = hosts
            .iter()
            .map(|host| scope.spawn(move || f(host)))
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// The file the README and the alertmanager guide page point to is a complete configuration as it stands
/// (the other tests here run it with their relay and shorter waits):
/// Alertmanager's own `amtool check-config`, installed beside it, accepts it.
#[test]
fn the_example_config_is_accepted_as_it_is() {
    let Some(bin) = am::binary("the_example_config_is_accepted_as_it_is") else {
        return;
    };
    let amtool = bin.with_file_name("amtool");
    let output = std::process::Command::new(&amtool)
        .arg("check-config")
        .arg(am::example_path())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", amtool.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("SUCCESS") && stdout.contains("1 receivers"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_fleet_outage_is_one_notification_naming_every_host_and_its_end_one_resolved() {
    let Some(bin) = am::binary("a_fleet_outage_is_one_notification") else {
        return;
    };
    let smtp = MockSmtp::start(Security::Plain);
    let alertmanager = am::Alertmanager::start(&bin, smtp.port());
    let dir = tempfile::tempdir().unwrap();
    let urls = [alertmanager.url()];
    let hosts = ["node-1", "node-2", "node-3", "node-4", "node-5"];
    let outbox = |h: &str| dir.path().join(format!("outbox-{h}"));
    // Three runs on every host: the shared feed fails in each.
    for round in 1..=3 {
        for host in hosts {
            let outcome = run(
                dir.path(),
                host,
                &urls,
                Some(&outbox(host)),
                &["Radio Café"],
            );
            if round < 3 {
                assert!(matches!(outcome, Outcome::Held { .. }), "{outcome}");
            } else {
                assert!(outcome.is_sent(), "{outcome}");
            }
        }
    }
    // Without Alertmanager: one digest per host.
    let digests: usize = hosts.iter().map(|h| files_in(&outbox(h))).sum();
    assert_eq!(digests, hosts.len());
    // With it: one notification, naming every host.
    let emails = emails_after(&smtp, 0, Duration::from_secs(3), Duration::from_secs(15));
    assert_eq!(
        emails.len(),
        1,
        "{:#?}",
        emails.iter().map(Received::subject).collect::<Vec<_>>()
    );
    let subject = emails[0].subject().unwrap();
    assert!(subject.starts_with("[FIRING:5] poca"), "{subject}");
    let body = html(&emails[0]);
    for host in hosts {
        assert!(body.contains(host), "{host} not in {body}");
    }
    assert!(body.contains("Radio Café"), "{body}");
    eprintln!(
        "figure: {} hosts, one outage: {digests} digests without Alertmanager, {} notification \
         with it",
        hosts.len(),
        emails.len()
    );
    // The outage goes on: re-posted at every run, no new notification.
    for host in hosts {
        assert!(
            !run(
                dir.path(),
                host,
                &urls,
                Some(&outbox(host)),
                &["Radio Café"]
            )
            .is_failed()
        );
    }
    // The feed recovers everywhere (the hosts' runs at the same moment, as
    // a fleet's cron jobs): one "resolved" notification, naming every host.
    for outcome in on_every_host(&hosts, |host| {
        run(dir.path(), host, &urls, Some(&outbox(host)), &[])
    }) {
        // The email keeps its own pace: run 4's record waits for a digest.
        assert!(matches!(outcome, Outcome::Held { .. }), "{outcome}");
    }
    let emails = emails_after(&smtp, 1, Duration::from_secs(3), Duration::from_secs(15));
    let subjects: Vec<String> = emails.iter().filter_map(Received::subject).collect();
    let resolved: Vec<&Received> = emails
        .iter()
        .filter(|m| m.subject().unwrap().starts_with("[RESOLVED] poca"))
        .collect();
    assert_eq!(resolved.len(), 1, "{subjects:?}");
    assert!(
        subjects.last().unwrap().starts_with("[RESOLVED]"),
        "{subjects:?}"
    );
    // Two, unless the resolutions straddled a group_interval tick of
    // Alertmanager's (then a [FIRING:k] update comes between).
    assert!(subjects.len() <= 3, "{subjects:?}");
    for host in hosts {
        assert!(html(resolved[0]).contains(host), "{host}");
    }
    // Alertmanager holds no firing alert, and the state files none.
    let held = alertmanager.alerts();
    assert!(
        held.as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"]["state"] != "active"),
        "{held}"
    );
    for host in hosts {
        let state = std::fs::read_to_string(dir.path().join(format!("{host}.json"))).unwrap();
        assert!(!state.contains("\"alerts\""), "{state}");
    }
}

/// Three hosts, each a process of the podcast example with a state file of
/// its own and `--host`, alerts their only destination: the shared feed's
/// outage is one notification naming every host; a failure of one host
/// alone is one notification naming that host.
#[test]
fn podcast_processes_on_three_hosts_one_notification_per_failure() {
    act_as_child_if_asked(podcast::run);
    let Some(bin) = am::binary("podcast_processes_on_three_hosts") else {
        return;
    };
    let smtp = MockSmtp::start(Security::Plain);
    let alertmanager = am::Alertmanager::start(&bin, smtp.port());
    let dir = tempfile::tempdir().unwrap();
    let hosts = ["node-1", "node-2", "node-3"];
    let mut last = Vec::new();
    for _ in 0..3 {
        last.clear();
        for host in hosts {
            let state = dir.path().join(format!("{host}.json"));
            let mut args: Vec<String> = [
                "--state-file",
                state.to_str().unwrap(),
                "--alertmanager",
                &alertmanager.url(),
                "--alertmanager",
                &format!("http://127.0.0.1:{}", free_port()),
                "--host",
                host,
                "--consecutive-runs",
                "3",
                "--fail",
                "Radio Café",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if host == "node-2" {
                args.extend(["--fail".into(), "Local disk".into()]);
            }
            let output = command(
                "podcast_processes_on_three_hosts_one_notification_per_failure",
                &args,
            )
            .output()
            .unwrap();
            assert_eq!(output.status.code(), Some(0), "{output:?}");
            last.push(outcome_line(&output));
        }
    }
    assert_eq!(
        last,
        [
            // Each run logs 8 feeds (7 INFO, 1 WARN; node-2 one WARN more): all
            // three runs' records go, as an email would take them.
            "Alertmanager accepted 1 firing and 0 resolved alert; 24 records delivered",
            "Alertmanager accepted 2 firing and 0 resolved alerts; 27 records delivered",
            "Alertmanager accepted 1 firing and 0 resolved alert; 24 records delivered",
        ]
    );
    let emails = emails_after(&smtp, 0, Duration::from_secs(3), Duration::from_secs(15));
    let mut by_subject: Vec<(String, String)> = emails
        .iter()
        .map(|m| (m.subject().unwrap(), html(m)))
        .collect();
    by_subject.sort();
    assert_eq!(by_subject.len(), 2, "{by_subject:?}");
    let (local, shared) = (&by_subject[0], &by_subject[1]);
    assert!(
        local.0.starts_with("[FIRING:1] poca feed \"Local disk\""),
        "{}",
        local.0
    );
    assert!(local.1.contains("node-2"));
    assert!(!local.1.contains("node-1") && !local.1.contains("node-3"));
    assert!(
        shared.0.starts_with("[FIRING:3] poca feed \"Radio Café\""),
        "{}",
        shared.0
    );
    for host in hosts {
        assert!(shared.1.contains(host), "{host}");
    }
}

#[test]
fn alertmanager_down_during_a_run_fails_keeps_the_records_and_the_next_run_delivers() {
    let Some(bin) = am::binary("alertmanager_down_during_a_run") else {
        return;
    };
    let smtp = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("node-1.json");
    // Where Alertmanager will listen, nothing listens yet.
    let down = format!("http://127.0.0.1:{}", free_port());
    for _ in 0..2 {
        let o = run(
            dir.path(),
            "node-1",
            std::slice::from_ref(&down),
            None,
            &["Radio Café"],
        );
        assert!(matches!(o, Outcome::Held { .. }), "{o}");
    }
    let o = run(
        dir.path(),
        "node-1",
        std::slice::from_ref(&down),
        None,
        &["Radio Café"],
    );
    let Outcome::Failed { error, pending } = &o else {
        panic!("{o}")
    };
    assert_eq!(error.kind(), ErrorKind::Alertmanager);
    assert!(error.to_string().contains("connection refused"), "{error}");
    assert!(
        error.to_string().contains("a later flush posts again"),
        "{error}"
    );
    assert_eq!(*pending, 3);
    assert_eq!(pending_in(&state), 3);

    let alertmanager = am::Alertmanager::start(&bin, smtp.port());
    let urls = [alertmanager.url()];
    let o = run(dir.path(), "node-1", &urls, None, &["Radio Café"]);
    assert!(
        matches!(
            o,
            Outcome::Alerted {
                records: 4,
                firing: 1,
                resolved: 0
            }
        ),
        "{o}"
    );
    assert_eq!(pending_in(&state), 0);
    let emails = emails_after(&smtp, 0, Duration::from_secs(2), Duration::from_secs(15));
    assert_eq!(emails.len(), 1);
    assert!(html(&emails[0]).contains("node-1"));
}

#[test]
fn two_clustered_peers_one_killed_still_one_notification_per_group() {
    let Some(bin) = am::binary("two_clustered_peers") else {
        return;
    };
    let smtp = MockSmtp::start(Security::Plain);
    let (c0, c1) = (free_port(), free_port());
    let mut a = am::Alertmanager::peer(&bin, smtp.port(), c0, &[c1]);
    let b = am::Alertmanager::peer(&bin, smtp.port(), c1, &[c0]);
    let dir = tempfile::tempdir().unwrap();
    let urls = [a.url(), b.url()];
    let hosts = ["node-1", "node-2", "node-3"];
    for _ in 0..3 {
        for host in hosts {
            assert!(!run(dir.path(), host, &urls, None, &["Radio Café", "Jazz FM"]).is_failed());
        }
    }
    // Two groups (one per failure), each notified once though both peers
    // were given every alert.
    let emails = emails_after(&smtp, 0, Duration::from_secs(4), Duration::from_secs(20));
    let mut subjects: Vec<String> = emails.iter().filter_map(Received::subject).collect();
    subjects.sort();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].contains("Jazz FM") && subjects[1].contains("Radio Café"),
        "{subjects:?}"
    );
    // One peer dies mid-outage: the posts still count as delivered.
    a.kill();
    for host in hosts {
        let o = run(dir.path(), host, &urls, None, &["Radio Café", "Jazz FM"]);
        assert!(!o.is_failed(), "{o}");
    }
    // Both feeds recover: one resolved notification per group.
    for o in on_every_host(&hosts, |host| run(dir.path(), host, &urls, None, &[])) {
        assert!(matches!(o, Outcome::Alerted { resolved: 2, .. }), "{o}");
    }
    let emails = emails_after(&smtp, 2, Duration::from_secs(4), Duration::from_secs(20));
    let subjects: Vec<String> = emails.iter().filter_map(Received::subject).collect();
    let mut resolved: Vec<&String> = subjects
        .iter()
        .filter(|s| s.starts_with("[RESOLVED]"))
        .collect();
    resolved.sort();
    assert_eq!(resolved.len(), 2, "{subjects:?}");
    assert!(resolved[0].contains("Jazz FM") && resolved[1].contains("Radio Café"));
    // Four, unless resolutions straddled a group_interval tick.
    assert!(subjects.len() <= 6, "{subjects:?}");
}

/// An alerts-only layer on `host` posting to `urls` with a bearer token.
fn alerts_only(state: &Path, urls: &[String], timeout: Duration) -> tracing_email::Builder {
    EmailLayer::builder("poca")
        .state_file(state)
        .host("node-1")
        .immediately_at(tracing::Level::WARN)
        .fingerprint_fields(["feed"])
        .checkpoint_interval(None)
        .send_deadline(Duration::from_secs(5))
        .alerts(
            Alertmanager::new(urls.iter().cloned())
                .bearer_token("tok-SECRET-123")
                .timeout(timeout),
        )
}

fn one_run(b: tracing_email::Builder, feeds: &[&str]) -> Outcome {
    let (layer, guard) = b.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in feeds {
            tracing::warn!(feed, "feed failed");
        }
        guard.flush()
    })
}

#[test]
fn a_4xx_is_an_error_quoting_the_reply_without_the_token_and_keeps_the_records() {
    let fake = FakeAlertmanager::answering(
        400,
        "{\"code\":400,\"message\":\"bad token tok-SECRET-123 for you\"}",
        Duration::ZERO,
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let o = one_run(
        alerts_only(&state, &[fake.url()], Duration::from_secs(2)),
        &["A"],
    );
    let Outcome::Failed { error, pending: 1 } = &o else {
        panic!("{o}")
    };
    let text = error.to_string();
    assert!(text.contains("HTTP 400, replying"), "{text}");
    assert!(text.contains("bad token *** for you"), "{text}");
    assert!(
        text.contains("check the Alertmanager URL, its credentials"),
        "{text}"
    );
    assert!(
        !text.contains("SECRET") && !format!("{o:?}").contains("SECRET"),
        "{o:?}"
    );
    // It was sent, as a bearer token, with the alert.
    let requests = fake.seen().into_iter().map(|r| r.text).collect::<Vec<_>>();
    assert!(
        requests[0].starts_with("POST /api/v2/alerts HTTP/1.1"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0].contains("authorization: Bearer tok-SECRET-123")
            || requests[0].contains("Authorization: Bearer tok-SECRET-123")
    );
    assert!(
        requests[0].contains(r#""failure":"feed \"A\"""#),
        "{}",
        requests[0]
    );
    let file = std::fs::read_to_string(&state).unwrap();
    assert!(!file.contains("SECRET"));
    assert_eq!(pending_in(&state), 1);
}

#[test]
fn a_5xx_and_a_hang_fail_within_the_timeout_and_the_next_flush_posts_everything() {
    let broken = FakeAlertmanager::answering(503, "overloaded", Duration::ZERO);
    let hanging = FakeAlertmanager::answering(200, "", Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let urls = [broken.url(), hanging.url()];
    let started = Instant::now();
    let o = one_run(
        alerts_only(&state, &urls, Duration::from_millis(700)),
        &["A", "B"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let Outcome::Failed { error, pending: 2 } = &o else {
        panic!("{o}")
    };
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "{}: HTTP 503, replying \"overloaded\"",
            broken.url()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}: no answer within the timeout", hanging.url())),
        "{text}"
    );

    // The next run (the failures gone) still has both records, and posts
    // both alerts to an Alertmanager that accepts them.
    let ok = FakeAlertmanager::answering(200, "", Duration::ZERO);
    let o = one_run(
        alerts_only(&state, &[ok.url()], Duration::from_secs(2)),
        &["C"],
    );
    assert!(
        matches!(
            o,
            Outcome::Alerted {
                records: 3,
                firing: 3,
                resolved: 0
            }
        ),
        "{o}"
    );
    let body = ok.seen()[0].text.clone();
    for feed in ["A", "B", "C"] {
        assert!(body.contains(&format!("feed \\\"{feed}\\\"")), "{body}");
    }
    // A and B were not seen in that run: the next flush resolves them.
    let o = one_run(
        alerts_only(&state, &[ok.url()], Duration::from_secs(2)),
        &[],
    );
    assert!(
        matches!(
            o,
            Outcome::Alerted {
                records: 0,
                firing: 0,
                resolved: 3
            }
        ),
        "{o}"
    );
    let o = one_run(
        alerts_only(&state, &[ok.url()], Duration::from_secs(2)),
        &[],
    );
    assert!(matches!(o, Outcome::Nothing), "{o}");
}

#[test]
fn a_resolution_that_fails_is_posted_again_at_the_next_flush() {
    let ok = FakeAlertmanager::answering(200, "", Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let b = |url: String| alerts_only(&state, &[url], Duration::from_secs(1));
    assert!(one_run(b(ok.url()), &["A"]).is_alerted());
    let down = format!("http://127.0.0.1:{}", free_port());
    assert!(one_run(b(down), &[]).is_failed());
    let o = one_run(b(ok.url()), &[]);
    assert!(matches!(o, Outcome::Alerted { resolved: 1, .. }), "{o}");
    let requests = ok.seen().into_iter().map(|r| r.text).collect::<Vec<_>>();
    assert_eq!(requests.len(), 2);
    // Ended when the run without it flushed, not later.
    let body = &requests[1][requests[1].find("\r\n\r\n").unwrap() + 4..];
    let alerts: serde_json::Value = serde_json::from_str(body).unwrap();
    let ends = alerts[0]["endsAt"].as_str().unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&requests[0][requests[0].find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert!(
        ends < first[0]["endsAt"].as_str().unwrap(),
        "{ends} {first}"
    );
}

#[test]
fn alerts_alone_keep_nothing_without_bound() {
    let ok = FakeAlertmanager::answering(200, "", Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    // Many runs of a long outage of many feeds, with Alertmanager up: the
    // records of failures it accepted do not pile up.
    for _ in 0..20 {
        let feeds: Vec<String> = (0..50).map(|i| format!("feed {i}")).collect();
        let feeds: Vec<&str> = feeds.iter().map(String::as_str).collect();
        let b = alerts_only(&state, &[ok.url()], Duration::from_secs(2)).max_pending(100);
        assert!(one_run(b, &feeds).is_alerted());
    }
    assert_eq!(pending_in(&state), 0);
    // Alertmanager down for many runs: pending stays within max_pending.
    let down = format!("http://127.0.0.1:{}", free_port());
    for _ in 0..5 {
        let feeds: Vec<String> = (0..50).map(|i| format!("feed {i}")).collect();
        let feeds: Vec<&str> = feeds.iter().map(String::as_str).collect();
        let b = alerts_only(
            &state,
            std::slice::from_ref(&down),
            Duration::from_millis(500),
        )
        .max_pending(100);
        assert!(one_run(b, &feeds).is_failed());
    }
    assert_eq!(pending_in(&state), 100);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(v["alerts"].as_object().unwrap().len(), 50);
}

/// An hourly job that fails for the first time (no failure has lasted two
/// runs): its alert lasts three of its run intervals, from the run starts
/// the state file keeps, so it does not resolve before the next run.
#[test]
fn an_hourly_jobs_first_failure_stays_firing_for_three_hours() {
    let ok = FakeAlertmanager::answering(200, "", Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let start = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let clock = tracing_email::clock::ManualClock::new(start);
    for hour in 0..6 {
        clock.set(start + Duration::from_secs(3600 * hour));
        let b = alerts_only(&state, &[ok.url()], Duration::from_secs(2)).clock(clock.clone());
        let feeds: &[&str] = if hour == 5 { &["A"] } else { &[] };
        let o = one_run(b, feeds);
        assert_eq!(o.is_alerted(), hour == 5, "{o}");
    }
    let requests = ok.seen().into_iter().map(|r| r.text).collect::<Vec<_>>();
    assert_eq!(requests.len(), 1);
    let body = &requests[0][requests[0].find("\r\n\r\n").unwrap() + 4..];
    let alerts: serde_json::Value = serde_json::from_str(body).unwrap();
    let ends_at = |alert: &serde_json::Value| {
        time::OffsetDateTime::parse(
            alert["endsAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let now = time::OffsetDateTime::from(start + Duration::from_secs(5 * 3600));
    assert_eq!(
        ends_at(&alerts[0]),
        now + time::Duration::hours(3),
        "{alerts}"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }
}

#[test]
fn the_alertmanager_password_never_leaks() {
    // A global subscriber with the `log` bridge: in a process of its own.
    crate::support::child::in_own_process(
        "the_alertmanager_password_never_leaks",
        the_alertmanager_password_never_leaks_here,
    );
}

fn the_alertmanager_password_never_leaks_here() {
    use tracing_subscriber::util::SubscriberInitExt;
    const PASSWORD: &str = "am-pass-SECRET-42";
    let encoded = {
        // base64("poca:am-pass-SECRET-42"), as the Authorization header holds it.
        let probe = FakeAlertmanager::answering(200, "", Duration::ZERO);
        ureq_probe(&probe.url(), PASSWORD);
        let request = probe.seen()[0].text.clone();
        let line = request
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("authorization: basic "))
            .unwrap()
            .to_owned();
        line["authorization: basic ".len()..].trim().to_owned()
    };
    let forms = [PASSWORD.to_owned(), encoded];
    let clean = |what: &str, text: &str| {
        for secret in &forms {
            let found = text.contains(secret.as_str()) || wire(text).contains(secret.as_str());
            assert!(!found, "{what} holds {secret:?}:\n{text}");
        }
    };
    let refusing = FakeAlertmanager::answering(401, "unauthorized", Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let am = Alertmanager::new([refusing.url()]).basic_auth("poca", PASSWORD);
    clean("Debug of Alertmanager", &format!("{am:?}"));
    let (layer, guard) = EmailLayer::builder("poca")
        .state_file(&state)
        .immediately_at(tracing::Level::WARN)
        .checkpoint_interval(None)
        .alerts(am)
        .build()
        .unwrap();
    clean(
        "Debug of the layer and guard",
        &format!("{layer:?} {guard:?}"),
    );
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        )
        .with(layer.with_filter(tracing_subscriber::filter::LevelFilter::TRACE))
        .init();
    // Without this crate's care, the HTTP client's TRACE shows the header:
    // this check can fail.
    let probe = FakeAlertmanager::answering(200, "", Duration::ZERO);
    ureq_probe(&probe.url(), PASSWORD);
    let unguarded = logs.take();
    assert!(
        wire(&unguarded).contains(&forms[1]),
        "ureq's TRACE is on:\n{unguarded}"
    );

    tracing::warn!(feed = "Radio Café", "feed failed");
    let failed = guard.flush();
    assert!(failed.is_failed(), "{failed}");
    assert!(failed.to_string().contains("HTTP 401"), "{failed}");
    clean("the outcome", &format!("{failed} {failed:?}"));
    clean("the log lines", &logs.take());
    let file = std::fs::read_to_string(&state).unwrap();
    clean("the state file", &file);
    assert!(file.contains("feed failed"));
}

/// The bytes of ureq's wire-level TRACE lines (a hex dump with the text in
/// its last 16 columns), joined: what went over the wire, as logged.
fn wire(logs: &str) -> String {
    logs.lines()
        .filter(|l| l.contains("ureq_proto::util:"))
        .filter_map(|l| l.get(l.len().saturating_sub(16)..))
        .collect()
}

/// A post with basic authentication, straight through the HTTP client.
fn ureq_probe(url: &str, password: &str) {
    let header = format!(
        "Basic {}",
        crate::support::leaks::base64(format!("poca:{password}").as_bytes())
    );
    let _ = ureq::post(url).header("Authorization", &header).send("[]");
}
