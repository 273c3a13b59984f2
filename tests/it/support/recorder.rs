//! A transport that keeps a copy of every email it is asked to send, and
//! fails on request.

use std::sync::{Arc, Mutex};

use tracing_email::{record::Record, transport::BoxError, transport::Email, transport::Transport};

/// Records every email; fails while `fail` holds a reason.
#[derive(Clone, Default)]
pub struct Recorder {
    pub sent: Arc<Mutex<Vec<Email>>>,
    pub fail: Arc<Mutex<Option<String>>>,
}

impl Transport for Recorder {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        // Whatever a transport logs while sending is never captured.
        tracing::error!(target: "my_transport", "sending {}", email.subject());
        if let Some(reason) = self.fail.lock().unwrap().clone() {
            return Err(reason.into());
        }
        self.sent.lock().unwrap().push(email.clone());
        Ok(())
    }
}

impl Recorder {
    /// The records of each email sent so far.
    pub fn emails(&self) -> Vec<Vec<Record>> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.records().to_vec())
            .collect()
    }

    /// Makes every send fail with `reason`, or succeed again with `None`.
    pub fn fail_with(&self, reason: Option<&str>) {
        *self.fail.lock().unwrap() = reason.map(str::to_owned);
    }
}
