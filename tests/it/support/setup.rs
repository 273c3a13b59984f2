//! What the SMTP tests share: credentials, a client set up for a mock
//! server, one run of a program, and a look into the state file.

use std::path::Path;
use std::time::Duration;

use tracing_email::{Builder, EmailLayer, Outcome, Smtp};
use tracing_subscriber::prelude::*;

use super::smtp::{MockSmtp, Security};

pub const USER: &str = "poca@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// A client for `server`: its security mode and port, trusting its CA and
/// logging in (except on a plain relay).
pub fn smtp_for(server: &MockSmtp) -> Smtp {
    let smtp = match server.security() {
        Security::Plain => Smtp::plain("127.0.0.1"),
        Security::StartTls => Smtp::starttls("127.0.0.1"),
        Security::ImplicitTls => Smtp::tls("127.0.0.1"),
    };
    let smtp = smtp
        .port(server.port())
        .timeout(Duration::from_millis(1500));
    if server.security() == Security::Plain {
        smtp
    } else {
        smtp.root_certificate(server.ca_pem())
            .credentials(USER, PASSWORD)
    }
}

/// The builder every test starts from: app `poca`, two recipients.
pub fn builder(state: &Path, smtp: Smtp) -> Builder {
    EmailLayer::builder("poca")
        .transport(smtp)
        .state_file(state)
        .from("poca <poca@example.com>")
        .to("me@example.com")
        .to("Zoë <zoe@example.org>")
}

/// One run of a program: logs each of `messages` as a warning about the
/// feed "Radio Café", then flushes.
pub fn run(
    state: &Path,
    smtp: Smtp,
    configure: impl FnOnce(Builder) -> Builder,
    messages: &[&str],
) -> Outcome {
    let (layer, guard) = configure(builder(state, smtp)).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for m in messages {
            tracing::warn!(feed = "Radio Café", "{m}");
        }
        guard.flush()
    })
}

/// The records pending in the state file, read as the crate reads them
/// (the snapshot and its journal).
pub fn pending_in(state: &Path) -> Vec<tracing_email::record::Record> {
    tracing_email::inspect::StateFile::open(state)
        .snapshot()
        .unwrap()
        .pending
}

/// The messages of the `feed failed`-style warning lines of a digest body,
/// in order.
pub fn warned(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| l.contains(" WARN ") && l.ends_with("feed=\"Radio Café\""))
        .map(|l| {
            let text = l.split(": ").nth(1).unwrap();
            text.trim_end_matches(" feed=\"Radio Café\"").to_owned()
        })
        .collect()
}
