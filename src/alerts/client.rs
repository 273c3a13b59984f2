//! Posting: one JSON body to `POST /api/v2/alerts` of every Alertmanager in
//! the list, at once, each within its timeout and the flush's send
//! deadline; delivered when at least one accepted it (as Prometheus does).
//! Failures are told in words, without the credentials.

use std::io::Read as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Poster;
use crate::error::{Error, ErrorKind};
use crate::redact::MAX_QUOTED;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Accepted,
    /// A 4xx: retrying the same will not help until the setup changes.
    Refused(String),
    Failed(String),
}

impl Poster {
    /// In parallel, until all answered or `deadline`. `Ok(n)`: `n` accepted it (at
    /// least one); else an error that says what each one did.
    pub(crate) fn send(&self, body: &[u8], deadline: Instant) -> Result<usize, Error> {
        let (tx, rx) = mpsc::channel();
        let body: std::sync::Arc<[u8]> = body.into();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let timeout = self
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let (body, poster, tx) = (body.clone(), self.clone(), tx.clone());
            let endpoint = endpoint.clone();
            // A thread that cannot start drops its `tx`: no answer from it.
            let _ = std::thread::Builder::new()
                .name("tracing-email-alerts".into())
                .spawn(move || {
                    // Nothing the HTTP client logs (its TRACE level shows
                    // the Authorization header, through a `log` bridge)
                    // reaches a subscriber, nor this crate's own layer.
                    let _sending = crate::capture::layer::SendingScope::enter();
                    let silent = tracing::subscriber::NoSubscriber::default();
                    let reply = if timeout.is_zero() {
                        Reply::Failed("no time left before the send deadline".into())
                    } else {
                        tracing::subscriber::with_default(silent, || {
                            poster.post_one(&endpoint, &body, timeout)
                        })
                    };
                    let _ = tx.send((i, reply));
                });
        }
        drop(tx);
        // Until every thread has answered (or could not start), or the deadline.
        let no_answer = Reply::Failed("no answer before the send deadline".into());
        let mut replies = vec![no_answer; self.endpoints.len()];
        let left = || deadline.saturating_duration_since(Instant::now());
        while let Ok((i, reply)) = rx.recv_timeout(left()) {
            replies[i] = reply;
        }
        match replies.iter().filter(|r| **r == Reply::Accepted).count() {
            0 => Err(self.none_accepted(&replies)),
            accepted => Ok(accepted),
        }
    }

    fn none_accepted(&self, replies: &[Reply]) -> Error {
        let refused = replies.iter().any(|r| matches!(r, Reply::Refused(_)));
        let causes: Vec<String> = self
            .endpoints
            .iter()
            .zip(replies)
            .map(|(url, reply)| {
                let what = match reply {
                    Reply::Refused(why) | Reply::Failed(why) => why.as_str(),
                    Reply::Accepted => "accepted",
                };
                format!("{}: {what}", base(url))
            })
            .collect();
        let then = if refused {
            "check the Alertmanager URL, its credentials and its version (API v2); the records \
             are kept and a later flush posts again"
        } else {
            "the records are kept and a later flush posts again"
        };
        Error::new(
            ErrorKind::Alertmanager,
            format!(
                "no Alertmanager accepted the alerts ({}); {then}",
                causes.join("; ")
            ),
        )
    }

    fn post_one(&self, endpoint: &str, body: &[u8], timeout: Duration) -> Reply {
        let mut request = self
            .agent
            .post(endpoint)
            .header("Content-Type", "application/json");
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        let response = match request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body)
        {
            Ok(response) => response,
            Err(e) => return Reply::Failed(self.quote(describe(&e).as_bytes(), false)),
        };
        let status = response.status();
        if status.is_success() {
            return Reply::Accepted;
        }
        let (mut reply, read) = (Vec::new(), self.redactor.read_limit(MAX_QUOTED));
        let mut reader = response.into_body().into_reader().take(read as u64 + 1);
        let _ = reader.read_to_end(&mut reply);
        let text = self.quote(&reply[..reply.len().min(read)], reply.len() > read);
        let said = match text.is_empty() {
            true => format!("HTTP {}", status.as_u16()),
            false => format!("HTTP {}, replying {text:?}", status.as_u16()),
        };
        match status.is_client_error() {
            true => Reply::Refused(said),
            false => Reply::Failed(said),
        }
    }

    /// Secrets hidden, bounded (`more`: it was cut).
    fn quote(&self, text: &[u8], more: bool) -> String {
        self.redactor.quote(text, MAX_QUOTED, more)
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "no answer within the timeout".into(),
        ureq::Error::ConnectionFailed => "could not connect".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "no answer within the timeout".into(),
            _ => format!("network error: {io}"),
        },
        other => other.to_string(),
    }
}

fn base(endpoint: &str) -> &str {
    endpoint.strip_suffix(super::PATH).unwrap_or(endpoint)
}
