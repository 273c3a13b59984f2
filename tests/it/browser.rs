//! The digest as a person reads it, in a real browser: Debian's headless
//! Chromium loads real digests (the podcast example's six hourly runs on one
//! host, a threshold digest with an ERROR, the resolved email that follows
//! the scenario) at 320 and 800 px, in both colour schemes. A script in the
//! page measures the email (shown in an iframe of that width, as a phone
//! or a mail client's pane would) and writes what it found into the DOM,
//! which `--dump-dom` prints: sideways scrolling, the contrast of every text
//! against its effective background, elements that say something by colour
//! alone, the first line, the height.
//!
//! Skipped (one line, "skipped: no chromium") where /usr/bin/chromium is
//! missing, unless TRACING_EMAIL_REQUIRE_CHROMIUM=1 (as `.ci/run` sets it).

#![cfg(feature = "smtp")]

use crate::podcast::podcast;
use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::child::{act_as_child_if_asked, command, outcome_line};
use tracing::Level;
use tracing_email::{EmailLayer, clock::ManualClock};
use tracing_subscriber::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether Chromium is here; without it, says so once and the test passes,
/// unless it is required.
fn chromium_is_here() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    assert!(
        std::env::var("TRACING_EMAIL_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "TRACING_EMAIL_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing: apt-get install chromium"
    );
    println!("skipped: no chromium");
    false
}

/// The measuring script: runs in the harness page once the email's iframe
/// has loaded, and writes its findings as ASCII JSON into `<pre
/// id="measure">`.
const MEASURE: &str = r#"
function measure(doc, win) {
  var root = doc.documentElement, body = doc.body;
  var out = {
    width: root.clientWidth,
    scrollWidth: Math.max(root.scrollWidth, body.scrollWidth),
    height: Math.ceil(root.getBoundingClientRect().height),
    dark: win.matchMedia('(prefers-color-scheme: dark)').matches,
    firstLine: body.innerText.trim().split('\n')[0],
    texts: 0, lowContrast: [], colourOnly: []
  };
  function rgba(c) {
    var m = c.match(/[\d.]+/g).map(Number);
    return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1];
  }
  function over(top, bottom) {
    var a = top[3];
    return [0, 1, 2].map(function (i) { return top[i] * a + bottom[i] * (1 - a); }).concat([1]);
  }
  function lin(v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
  function lum(c) { return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]); }
  // The colour behind an element: its own and its ancestors' backgrounds,
  // blended down to the first opaque one; null if none is.
  function background(el) {
    var layers = [];
    for (var e = el; e; e = e.parentElement) {
      var c = rgba(win.getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    if (!layers.length || layers[layers.length - 1][3] < 1) return null;
    var base = layers.pop();
    while (layers.length) base = over(layers.pop(), base);
    return base;
  }
  var walker = doc.createTreeWalker(body, NodeFilter.SHOW_TEXT);
  for (var n = walker.nextNode(); n; n = walker.nextNode()) {
    var text = n.nodeValue.trim(), el = n.parentElement;
    if (!text || !el.getClientRects().length) continue;
    var style = win.getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    out.texts++;
    var bg = background(el);
    if (!bg) { out.lowContrast.push({text: text.slice(0, 40), why: 'no opaque background'}); continue; }
    var fg = over(rgba(style.color), bg);
    var a = lum(fg), b = lum(bg);
    var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) {
      out.lowContrast.push({text: text.slice(0, 40), ratio: Math.round(ratio * 100) / 100,
                            color: style.color, background: 'rgb(' + bg.slice(0, 3).join(',') + ')'});
    }
  }
  var all = body.querySelectorAll('*');
  for (var i = 0; i < all.length; i++) {
    var e = all[i], r = e.getBoundingClientRect();
    if (rgba(win.getComputedStyle(e).backgroundColor)[3] > 0 && r.width > 0 && r.height > 0
        && !e.innerText.trim()) {
      out.colourOnly.push(e.outerHTML.slice(0, 120));
    }
  }
  return out;
}
var frame = document.getElementById('email');
frame.addEventListener('load', function () {
  var json = JSON.stringify(measure(frame.contentDocument, frame.contentWindow));
  var ascii = json.replace(/[\u007f-\uffff<>&]/g, function (c) {
    return '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4);
  });
  var pre = document.createElement('pre');
  pre.id = 'measure';
  pre.textContent = ascii;
  document.body.appendChild(pre);
});
// The email goes in only now, with the listener there to see it load.
frame.srcdoc = frame.getAttribute('data-email');
"#;

/// Chromium's DOM of `page` once loaded, `dark` or light (within a minute).
fn dump_dom(page: &Path, dark: bool) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // As on a phone: scrollbars take no width.
            "--hide-scrollbars",
            "--window-size=1000,900",
            if dark {
                "--blink-settings=preferredColorScheme=0"
            } else {
                "--blink-settings=preferredColorScheme=1"
            },
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium took more than 60 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// What the page measured of `html` shown `width` px wide (in a frame 900
/// px tall), `dark` or light.
fn measure(html: &str, width: u32, dark: bool, dir: &Path) -> Value {
    let srcdoc = html.replace('&', "&amp;").replace('"', "&quot;");
    let harness = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body style=\"margin:0\">\
         <iframe id=\"email\" style=\"border:0;width:{width}px;height:900px\" \
         data-email=\"{srcdoc}\"></iframe>\n<script>{MEASURE}</script></body></html>\n"
    );
    let page = dir.join(format!("harness-{width}-{dark}.html"));
    std::fs::write(&page, harness).unwrap();
    let output = dump_dom(&page, dark);
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"measure\">").unwrap_or_else(|| {
        panic!(
            "no measurement in the DOM of {}:\n{dom}\n{}",
            page.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    }) + "<pre id=\"measure\">".len();
    let json = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// Asserts what every email must be at every width and scheme; returns the
/// heights at 800 px.
fn check(name: &str, html: &str, first_line_has: &str, dir: &Path) -> u64 {
    let mut height = 0;
    for width in [320, 800] {
        for dark in [false, true] {
            let m = measure(html, width, dark, dir);
            let at = format!(
                "{name} at {width} px, {}",
                if dark { "dark" } else { "light" }
            );
            assert_eq!(m["width"], width, "{at}: the email's viewport: {m}");
            assert_eq!(m["dark"], dark, "{at}: the colour scheme: {m}");
            assert!(
                m["scrollWidth"].as_u64() <= m["width"].as_u64(),
                "{at}: scrolls sideways: {m}"
            );
            assert!(
                m["texts"].as_u64().unwrap() >= 3,
                "{at}: no text found: {m}"
            );
            assert_eq!(m["lowContrast"], Value::Array(vec![]), "{at}: {m}");
            assert_eq!(m["colourOnly"], Value::Array(vec![]), "{at}: {m}");
            let first = m["firstLine"].as_str().unwrap();
            assert!(first.contains(first_line_has), "{at}: first line {first:?}");
            if width == 800 {
                height = height.max(m["height"].as_u64().unwrap());
            }
        }
    }
    height
}

/// Run `hour` of the scenario (at 01:00 the first) of the podcast example
/// on the host web-3, `consecutive_runs(4)`: `Radio Café` failing in the
/// first six, `Ääniraita` in every other one, no feed in the seventh.
fn podcast_run(test: &str, dir: &Path, hour: u32) -> String {
    let fail: &[&str] = match hour {
        7.. => &[],
        h if h % 2 == 0 => &["Radio Café", "Ääniraita"],
        _ => &["Radio Café"],
    };
    let mut args: Vec<String> = [
        "--state-file",
        dir.join("poca.json").to_str().unwrap(),
        "--outbox",
        dir.join("outbox").to_str().unwrap(),
        "--host",
        "web-3",
        "--consecutive-runs",
        "4",
        "--notify-recovery",
        "--now",
        &format!("2026-11-21T{hour:02}:00:00Z"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if fail.is_empty() {
        args.extend(["--failures".into(), "0".into()]);
    }
    for feed in fail {
        args.extend(["--fail".to_string(), feed.to_string()]);
    }
    let output = command(test, &args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    outcome_line(&output)
}

/// The emails in the outbox, oldest first: subject, text part, HTML part.
fn outbox(dir: &Path) -> Vec<(String, String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let raw = std::fs::read(path).unwrap();
            let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
            (
                m.subject().unwrap().to_owned(),
                m.body_text(0).unwrap().replace("\r\n", "\n"),
                m.body_html(0).unwrap().into_owned(),
            )
        })
        .collect()
}

/// A record's line in the text part: `2026-11-21 01:00:00 WARN poca: …`.
fn is_record_line(line: &str) -> bool {
    let mut words = line.split(' ');
    let (date, time, level) = (words.next(), words.next(), words.next());
    date.is_some_and(|d| d.len() == 10 && d.starts_with("20"))
        && time.is_some_and(|t| t.len() == 8 && t.as_bytes()[2] == b':')
        && level.is_some_and(|l| ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&l))
}

/// The issue's scenario: six hourly runs on web-3, `Radio Café` failing in
/// each, `Ääniraita` in every other one (riding along), `consecutive_runs(4)`;
/// then a run with every feed working.
#[test]
fn the_podcast_digest_and_its_resolved_email_read_well_at_320_and_800_px_light_and_dark() {
    act_as_child_if_asked(podcast::run);
    if !chromium_is_here() {
        return;
    }
    let test =
        "the_podcast_digest_and_its_resolved_email_read_well_at_320_and_800_px_light_and_dark";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let outcomes: Vec<String> = (1..=7).map(|hour| podcast_run(test, d, hour)).collect();
    assert!(
        outcomes[3].starts_with("sent 32 records in 1 email"),
        "{outcomes:?}"
    );
    // Ääniraita, absent from run 5 after riding along in run 4's digest,
    // gets no notice; Radio Café, reported as persisting, gets one.
    assert!(outcomes[4].starts_with("held "), "{outcomes:?}");
    assert!(
        outcomes[6].starts_with("sent the notice that 1 failure is over"),
        "{outcomes:?}"
    );
    let emails = outbox(d);
    assert_eq!(emails.len(), 2, "{emails:?}");
    let (subject, text, html) = &emails[0];
    assert_eq!(
        subject,
        r#"[poca] feed "Radio Café" failing for 4 runs; 2 other warnings"#
    );
    let headline =
        r#"feed "Radio Café" has failed in each of the last 4 runs on web-3, since 01:00"#;
    assert!(text.starts_with(&format!("{headline}\n")), "{text}");
    // Every record is in the email (the text part, and the attached log).
    assert_eq!(
        text.lines().filter(|l| is_record_line(l)).count(),
        32,
        "{text}"
    );
    for run in 1..=4 {
        assert!(
            text.contains(&format!("— run {run}, 2026-11-21 0{run}:00 —")),
            "{text}"
        );
    }
    let height = check("the digest", html, headline, d);
    assert!(height <= 1400, "the digest is {height} px tall at 800 px");

    let (subject, text, html) = &emails[1];
    assert_eq!(
        subject,
        r#"[poca] resolved: feed "Radio Café" OK again after failing 6 runs"#
    );
    let headline =
        r#"Resolved: feed "Radio Café" is OK again on web-3 after failing 6 runs (01:00–06:00)"#;
    assert!(text.starts_with(&format!("{headline}\n")), "{text}");
    assert!(!text.contains("Ääniraita"), "{text}");
    check("the resolved email", html, headline, d);
}

/// `threshold(1, WARN)`: four warnings and an error; the error leads.
#[test]
fn a_threshold_digest_with_an_error_reads_well_at_320_and_800_px_light_and_dark() {
    if !chromium_is_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let email = threshold_digest(dir.path());
    assert!(
        email.subject().starts_with(
            "[poca] could not save the episode database: disk full; 1 error, 4 warnings since "
        ),
        "{}",
        email.subject()
    );
    let html = email.html().unwrap();
    check(
        "the threshold digest",
        html,
        "ERROR on web-3 at 03:00: could not save the episode database",
        dir.path(),
    );
}

/// The digest of one run at 03:00 on web-3 under `threshold(1, WARN)`:
/// four feeds failing (long URLs), INFO context, a database error.
fn threshold_digest(dir: &Path) -> tracing_email::transport::Email {
    let recorder = support::recorder::Recorder::default();
    let at = time::macros::datetime!(2026-11-21 03:00 UTC);
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(recorder.clone())
        .state_file(dir.join("state.json"))
        .from("poca <robot@example.com>")
        .to("me@example.com")
        .host("web-3")
        .clock(ManualClock::new(at.into()))
        .checkpoint_interval(None)
        .threshold(1, Level::WARN)
        .fingerprint_fields(["feed"])
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let run = tracing::info_span!("poca", feeds = 8);
        let _run = run.enter();
        for (i, feed) in [
            "Radio Café",
            "Ääniraita",
            "Hörspiel Stunde",
            "Late Night Linux",
        ]
        .iter()
        .enumerate()
        {
            tracing::info!(feed, new_episodes = i, "feed updated");
            tracing::warn!(
                feed,
                url = "https://podcasts.example/a/very/long/path/without/any/break/feed.rss",
                error = "connection timed out",
                "feed failed"
            );
        }
        tracing::error!(
            path = "/home/me/.local/share/poca/episodes-database-with-a-long-name.sqlite",
            error = "disk full",
            "could not save the episode database"
        );
    });
    assert!(guard.flush().is_sent());
    recorder.sent.lock().unwrap()[0].clone()
}

/// The measurements see what they look for: a page too wide for a phone,
/// grey on grey, and a cell that speaks by colour alone.
#[test]
fn the_measurements_catch_a_wide_page_low_contrast_and_colour_alone() {
    if !chromium_is_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = "<!DOCTYPE html><html><body style=\"margin:0;background:#fff\">\
               <p>Radio Caf\u{e9} failed</p><table width=\"600\"><tr><td>wide</td></tr></table>\
               <p style=\"color:#999;background:#eee\">faint</p>\
               <span style=\"display:inline-block;width:8px;height:8px;background:#d93025\"></span>\
               </body></html>";
    let m = measure(bad, 320, false, dir.path());
    assert_eq!(m["width"], 320, "{m}");
    assert!(m["scrollWidth"].as_u64().unwrap() >= 600, "{m}");
    assert_eq!(m["lowContrast"][0]["text"], "faint", "{m}");
    assert!(
        m["colourOnly"][0].as_str().unwrap().contains("#d93025"),
        "{m}"
    );
    assert_eq!(m["firstLine"], "Radio Caf\u{e9} failed", "{m}");
}
