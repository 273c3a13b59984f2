//! A fake Alertmanager on 127.0.0.1, for the tests that need exact answers
//! or timings (the real one runs in `support::alertmanager`): it answers
//! every request with the status and body it is told to give now (after a
//! delay, if told), each connection on a thread of its own, and keeps every
//! request with the time it came.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// When its last byte came.
    pub at: SystemTime,
    /// The whole request: request line, headers and body.
    pub text: String,
}

impl Request {
    /// What follows the headers.
    pub fn body(&self) -> &str {
        self.text
            .find("\r\n\r\n")
            .map_or("", |end| &self.text[end + 4..])
    }
}

/// The answer given now: status, body, delay.
type Answer = (u16, String, Duration);

/// The fake; it serves until the test process ends.
pub struct FakeAlertmanager {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl FakeAlertmanager {
    /// A fake that accepts every post at once (HTTP 200).
    pub fn start() -> FakeAlertmanager {
        Self::answering(200, "", Duration::ZERO)
    }

    /// A fake that answers `status` and `body` after `delay`.
    pub fn answering(status: u16, body: &str, delay: Duration) -> FakeAlertmanager {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake alertmanager: bind");
        let port = listener.local_addr().expect("local_addr").port();
        let answer = Arc::new(Mutex::new((status, body.to_owned(), delay)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (given, noted) = (Arc::clone(&answer), Arc::clone(&seen));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let (given, noted) = (Arc::clone(&given), Arc::clone(&noted));
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let text = read_request(&mut s);
                    let at = SystemTime::now();
                    noted.lock().unwrap().push(Request { at, text });
                    let (status, body, delay) = given.lock().unwrap().clone();
                    std::thread::sleep(delay);
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        FakeAlertmanager { port, answer, seen }
    }

    /// Answers the next requests with `status` and `body`, at once.
    pub fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned(), Duration::ZERO);
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Every request received so far, oldest first.
    pub fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The headers, then the body by its length.
fn read_request(s: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0; 8192];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let len = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
