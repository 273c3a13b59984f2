//! Sending by hand, outside any run of the program (the `tracing-email`
//! tool's `send` and `test`): every pending record now, whatever the rules,
//! or one test email. Neither is a run: the history (run count, streaks,
//! when each failure was reported) stays as the program left it.

use std::sync::Arc;

use crate::error::Error;
use crate::flush::deadline::send_before;
use crate::flush::flusher::Flusher;
use crate::flush::outcome::Outcome;
use crate::flush::taken::Commit;
use crate::transport::{Email, Transport};

impl Flusher {
    pub(crate) fn send_pending(mut self) -> Result<Outcome, Error> {
        transport_of(&self)?;
        let lock = self.store.lock()?;
        let loaded = self.store.load(&lock, None)?;
        let (mut state, mut commit) = (loaded.state, Commit::default());
        // What the load repaired (a corrupt snapshot moved aside and what
        // could be read of it, parked files merged) is stored before
        // anything is sent, so that a failed send loses none of it.
        if loaded.repair || !loaded.parked.is_empty() {
            commit.save(&self.store, &lock, &mut state)?;
            self.store.remove_parked(&loaded.parked);
        }
        if state.pending.is_empty() {
            return Ok(Outcome::Nothing);
        }
        let deadline = crate::clock::instant_after(self.send_deadline);
        let all = (state.pending.len(), None);
        let (sent, emails, error) = self.deliver(&state, all, false, deadline);
        let pending = state.pending.len() - sent;
        let outcome = match error {
            Some(error) => Outcome::Failed { error, pending },
            None => Outcome::Sent {
                records: sent,
                emails,
            },
        };
        // Nothing went: nothing changes.
        if sent == 0 {
            return Ok(outcome);
        }
        let now = crate::clock::datetime(std::time::SystemTime::now());
        self.took(&mut state, sent, now);
        let what = crate::say::plural(sent, "record", "records");
        let at = (now, None);
        Ok(self.settle(&lock, &mut state, &mut commit, at, (&what, sent), outcome))
    }

    pub(crate) fn send_test_email(self) -> Result<Option<String>, Error> {
        let email = test_email(&self.composer)?;
        let deadline = crate::clock::instant_after(self.send_deadline);
        send_before(
            transport_of(&self)?,
            &self.outstanding,
            email,
            deadline,
            |t, e| t.send_with_reply(e),
        )
    }
}

fn transport_of(flusher: &Flusher) -> Result<&Arc<dyn Transport>, Error> {
    flusher.transport.as_ref().ok_or_else(|| {
        Error::config(
            "no email transport: sending by hand needs smtp_url, outbox or .transport(…), \
             not only Alertmanager",
        )
    })
}

fn test_email(composer: &crate::digest::Composer) -> Result<Email, Error> {
    let host = crate::digest::subject::hostname();
    let now = crate::capture::record::utc_time(time::OffsetDateTime::now_utc());
    let subject = format!("[{}] test email from tracing-email on {host}", composer.app);
    let text = format!(
        "This is a test email from {app} on {host}, sent at {now} to check its mail settings \
         (tracing-email test). If you read it, they work: the digests of {app} will reach \
         you the same way.\n\n-- \nState file: {}\n",
        composer.state_path.display(),
        app = composer.app,
    );
    composer.email(subject, text, None, &[])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tracing_subscriber::prelude::*;

    use crate::builder::Builder;
    use crate::{EmailLayer, FileDrop, Outcome, inspect::StateFile};

    fn builder(dir: &Path) -> Builder {
        EmailLayer::builder("poca")
            .transport(FileDrop::new(dir.join("outbox")))
            .state_file(dir.join("state.json"))
            .from("robot@example.com")
            .to("me@example.com")
            .consecutive_runs(3)
            .fingerprint_fields(["feed"])
            .checkpoint_interval(None)
    }

    /// One run of the program: a warning about feed `b.json`.
    fn run(dir: &Path) -> Outcome {
        let (layer, guard) = builder(dir).build().unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!(feed = "b.json", "fetch failed");
        });
        guard.flush()
    }

    #[test]
    fn sending_by_hand_is_not_a_run_and_keeps_the_streak() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::open(dir.path().join("state.json"));
        for _ in 0..2 {
            assert!(matches!(run(dir.path()), Outcome::Held { .. }));
        }
        let before = file.snapshot().unwrap();
        assert_eq!((before.runs, before.pending.len()), (2, 2));

        let outcome = builder(dir.path()).send_pending().unwrap();
        assert_eq!(outcome.to_string(), "sent 2 records in 1 email");
        let after = file.snapshot().unwrap();
        assert!(after.pending.is_empty() && after.last_sent.is_some());
        assert_eq!(after.runs, 2, "not a run");
        assert_eq!(
            after.failures, before.failures,
            "streaks untouched, not reported"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("outbox"))
                .unwrap()
                .count(),
            1
        );

        // The third run in a row meets consecutive_runs as if no one had sent.
        assert_eq!(run(dir.path()).to_string(), "sent 1 record in 1 email");
        assert_eq!(file.snapshot().unwrap().failures[0].runs, 3);
    }

    #[test]
    fn a_failed_send_by_hand_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path());
        let state = dir.path().join("state.json");
        let text = std::fs::read(&state).unwrap();
        // The outbox is a file: nothing can be written into it.
        std::fs::write(dir.path().join("outbox"), "").unwrap();
        let outcome = builder(dir.path()).send_pending().unwrap();
        assert!(
            matches!(&outcome, Outcome::Failed { pending: 1, .. }),
            "{outcome}"
        );
        assert_eq!(std::fs::read(&state).unwrap(), text);
        let err = builder(dir.path()).send_test_email().unwrap_err();
        assert!(err.to_string().contains("outbox"), "{err}");
    }

    /// Issue 19, case 2: a state file with one hand-edited record is moved
    /// aside and what could be read of it is kept; a send by hand that then
    /// fails keeps those records in the state file all the same.
    #[test]
    fn a_failed_send_by_hand_keeps_what_was_salvaged() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        // Five records in the snapshot: a run whose send failed (the outbox
        // is a file) rewrote it.
        std::fs::write(dir.path().join("outbox"), "").unwrap();
        let (layer, guard) = builder(dir.path())
            .threshold(1, tracing::Level::WARN)
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for i in 0..5 {
                tracing::warn!(feed = i, "fetch failed");
            }
        });
        assert!(guard.flush().is_failed());
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(!dir.path().join("state.json.journal").exists());
        // One record edited by hand into something that is not a record.
        let edited = text.replacen("\"level\":\"WARN\"", "\"level\":42", 1);
        assert_ne!(edited, text);
        std::fs::write(&state, edited).unwrap();

        let outcome = builder(dir.path()).send_pending().unwrap();
        assert!(
            matches!(&outcome, Outcome::Failed { pending: 4, .. }),
            "{outcome}"
        );
        let after = StateFile::open(&state).snapshot().unwrap();
        assert!(after.exists, "the salvaged records are stored again");
        assert_eq!(after.pending.len(), 4);
        // And a send that works then sends them.
        std::fs::remove_file(dir.path().join("outbox")).unwrap();
        let outcome = builder(dir.path()).send_pending().unwrap();
        assert_eq!(outcome.to_string(), "sent 4 records in 1 email");
    }
}
