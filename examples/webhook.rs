//! A transport of one's own: each digest is POSTed as JSON to a webhook (a
//! chat, an incident tool), over plain HTTP with nothing but `std::net`.
//!
//! ```text
//! cargo run --example webhook -- http://127.0.0.1:8080/hooks/poca
//! ```
//!
//! It logs two warnings and flushes with `threshold(1, WARN)`: one POST with
//! `{"subject": …, "text": …, "records": [...]}`. Exit status 0 sent, 1 failed,
//! 2 bad arguments. (For HTTPS, use an HTTP client crate in `send`.)

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use tracing::Level;
use tracing_email::{EmailLayer, transport::BoxError, transport::Email, transport::Transport};
use tracing_subscriber::prelude::*;

/// POSTs each digest as JSON to `http://host:port/path`.
pub struct Webhook {
    host: String,
    port: u16,
    path: String,
}

impl Webhook {
    /// Parses `http://host[:port]/path`.
    pub fn new(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported here"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url:?}"))?),
            None => (authority, 80),
        };
        Ok(Webhook {
            host: host.to_owned(),
            port,
            path: format!("/{path}"),
        })
    }
}

impl Transport for Webhook {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "subject": email.subject(),
            "text": email.text(),
            "records": email.records(),
        }))?;
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            body.len()
        )?;
        stream.write_all(&body)?;
        let mut status = String::new();
        BufReader::new(stream).read_line(&mut status)?;
        // "HTTP/1.1 204 No Content": accepted only on a 2xx status.
        match status.split_whitespace().nth(1) {
            Some(code) if code.starts_with('2') => Ok(()),
            _ => Err(format!("the webhook answered {:?}", status.trim()).into()),
        }
    }

    fn check(&mut self) -> Result<(), BoxError> {
        if self.host.is_empty() {
            return Err("the webhook URL has no host".into());
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    ExitCode::from(exit_status(std::env::args().skip(1).collect()))
}

/// Runs the example; returns the exit status.
pub fn exit_status(args: Vec<String>) -> u8 {
    let [url] = args.as_slice() else {
        eprintln!("usage: webhook http://host:port/path");
        return 2;
    };
    let webhook = match Webhook::new(url) {
        Ok(w) => w,
        Err(message) => {
            eprintln!("webhook: {message}");
            return 2;
        }
    };
    let state =
        std::env::temp_dir().join(format!("tracing-email-webhook-{}.json", std::process::id()));
    let (layer, guard) = match EmailLayer::builder("webhook-demo")
        .transport(webhook)
        .state_file(&state)
        .from("robot@example.com")
        .to("ops@example.com")
        .threshold(1, Level::WARN)
        .build()
    {
        Ok(built) => built,
        Err(e) => {
            eprintln!("webhook: {e}");
            return 2;
        }
    };
    tracing_subscriber::registry().with(layer).init();
    tracing::warn!(feed = "Radio Café", "feed failed");
    tracing::warn!(feed = "Ääniraita", "feed failed");
    let outcome = guard.flush();
    println!("{outcome}");
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(state.with_extension("json.lock"));
    u8::from(!outcome.is_sent())
}
