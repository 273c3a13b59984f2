//! The real Prometheus Alertmanager (Debian's `prometheus-alertmanager`),
//! started on 127.0.0.1 for a test: a free port, a temporary storage path,
//! the documented config (`examples/alertmanager.yml`) with the tests' mock
//! SMTP server as its relay, grouping by app and failure with short waits.
//! One node, or peers of a cluster.
//!
//! Without the binary, [`binary`] says so on one line and the test passes as
//! skipped, unless `TRACING_EMAIL_REQUIRE_ALERTMANAGER=1` (CI) makes it fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the binary is looked for, first the variable's path.
const CANDIDATES: [&str; 2] = [
    "/usr/bin/prometheus-alertmanager",
    "/usr/local/bin/alertmanager",
];

/// Set (to anything but empty or 0) where a missing binary fails the tests.
pub const REQUIRE: &str = "TRACING_EMAIL_REQUIRE_ALERTMANAGER";

/// The Alertmanager binary, or `None` (after one line on stderr) when it is
/// not installed and not required.
pub fn binary(test: &str) -> Option<PathBuf> {
    let given = std::env::var_os("TRACING_EMAIL_ALERTMANAGER").map(PathBuf::from);
    let found = given
        .into_iter()
        .chain(CANDIDATES.iter().map(PathBuf::from))
        .find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var(REQUIRE).is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{test}: {REQUIRE} is set but prometheus-alertmanager is not installed \
             (apt-get install prometheus-alertmanager)"
        );
        eprintln!(
            "{test}: skipped, prometheus-alertmanager is not installed (apt-get install \
             prometheus-alertmanager; set {REQUIRE}=1 to make this a failure)"
        );
    }
    found
}

/// The configuration the README and the alertmanager guide page point to, `examples/alertmanager.yml`, as
/// the tests run it: its relay is the mock SMTP server on `smtp_port` and
/// its waits are short (`group_wait: 3s`, `group_interval: 2s`). Each key
/// changed must be there once, so the file users copy is the file tested.
pub fn example_config(smtp_port: u16) -> String {
    let changes = [
        ("smtp_smarthost", format!("'127.0.0.1:{smtp_port}'")),
        ("group_wait", "3s".to_owned()),
        ("group_interval", "2s".to_owned()),
    ];
    let text = std::fs::read_to_string(example_path()).expect("examples/alertmanager.yml");
    let mut seen = [0; 3];
    let mut out = String::new();
    for line in text.lines() {
        let key = line.trim_start().split(':').next().unwrap_or_default();
        match changes.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                seen[i] += 1;
                let indent = &line[..line.len() - line.trim_start().len()];
                out += &format!("{indent}{key}: {}\n", changes[i].1);
            }
            None => out += &format!("{line}\n"),
        }
    }
    assert_eq!(
        seen,
        [1; 3],
        "examples/alertmanager.yml should set each of {:?} once",
        changes.map(|(k, _)| k)
    );
    out
}

/// `examples/alertmanager.yml`.
pub fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/alertmanager.yml")
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local_addr").port()
}

/// A running Alertmanager; killed when dropped.
pub struct Alertmanager {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// One node whose email receiver is the mock SMTP server on `smtp_port`.
    pub fn start(binary: &PathBuf, smtp_port: u16) -> Alertmanager {
        Alertmanager::spawn(binary, smtp_port, None, &[])
    }

    /// A cluster peer listening for gossip on `cluster_port`, joining `peers`.
    pub fn peer(
        binary: &PathBuf,
        smtp_port: u16,
        cluster_port: u16,
        peers: &[u16],
    ) -> Alertmanager {
        Alertmanager::spawn(binary, smtp_port, Some(cluster_port), peers)
    }

    fn spawn(
        binary: &PathBuf,
        smtp_port: u16,
        cluster_port: Option<u16>,
        peers: &[u16],
    ) -> Alertmanager {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, example_config(smtp_port)).expect("write config");
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        match cluster_port {
            None => {
                cmd.arg("--cluster.listen-address=");
            }
            Some(cp) => {
                cmd.arg(format!("--cluster.listen-address=127.0.0.1:{cp}"))
                    .arg(format!("--cluster.advertise-address=127.0.0.1:{cp}"))
                    .arg("--cluster.settle-timeout=2s")
                    .arg("--cluster.gossip-interval=50ms")
                    .arg("--cluster.pushpull-interval=1s")
                    .arg("--cluster.peer-timeout=1s");
                for p in peers {
                    cmd.arg(format!("--cluster.peer=127.0.0.1:{p}"));
                }
            }
        }
        let log = std::fs::File::create(dir.path().join("log")).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child: Some(child),
            port,
            _dir: dir,
        };
        am.wait_ready();
        am
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if get(self.port, "/-/ready").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default();
        panic!(
            "alertmanager on port {} did not get ready: {log}",
            self.port
        );
    }

    /// The alerts it holds (`GET /api/v2/alerts`), as JSON.
    pub fn alerts(&self) -> serde_json::Value {
        let reply = get(self.port, "/api/v2/alerts").expect("GET alerts");
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or("[]");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply}"))
    }

    /// Stops it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (no keep-alive): the whole reply.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
