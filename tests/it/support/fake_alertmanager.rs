//! A fake Alertmanager on 127.0.0.1 for the tests that read what a program
//! kept of its posts (`inspect`, and the `tracing-email` command's tests):
//! it answers every `POST` with the status and body it is told to give
//! now, and counts the requests.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fake; it serves until the test process ends.
pub struct FakeAlertmanager {
    port: u16,
    answer: Arc<Mutex<(u16, String)>>,
    requests: Arc<AtomicUsize>,
}

impl FakeAlertmanager {
    /// A fake that accepts every post (HTTP 200).
    pub fn start() -> FakeAlertmanager {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake alertmanager: bind");
        let port = listener.local_addr().expect("local_addr").port();
        let answer = Arc::new(Mutex::new((200, String::new())));
        let requests = Arc::new(AtomicUsize::new(0));
        let (given, count) = (Arc::clone(&answer), Arc::clone(&requests));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                read_request(&mut s);
                count.fetch_add(1, Ordering::SeqCst);
                let (status, body) = given.lock().unwrap().clone();
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeAlertmanager {
            port,
            answer,
            requests,
        }
    }

    /// Answers the next posts with `status` and `body`.
    pub fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    /// Posts received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Reads the headers, then the body by its length.
fn read_request(s: &mut impl Read) {
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
}
