//! Sending one email within a deadline: on a thread of its own, abandoned
//! when the deadline passes, and never more than one abandoned send
//! outstanding per destination (the next waits for it, then is skipped).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::capture::layer::SendingScope;
use crate::error::{Error, ErrorKind, panicked};
use crate::sync::lock;
use crate::transport::{BoxError, Email, Transport};

/// A server that never finishes answering holds its thread and socket until the
/// SMTP timeout, or longer if it drips; it ends when its channel's sender drops.
#[derive(Default)]
pub(crate) struct Outstanding(Mutex<Option<mpsc::Receiver<()>>>);

impl Outstanding {
    fn over_by(&self, deadline: Instant) -> bool {
        let mut slot = lock(&self.0);
        let Some(done) = slot.as_ref() else {
            return true;
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match done.recv_timeout(remaining) {
            Err(RecvTimeoutError::Timeout) => false,
            // Nothing is ever sent on it: the sender is gone, the send over.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                *slot = None;
                true
            }
        }
    }
}

/// A slow server (lettre's timeout is per read) or a panicking transport cannot
/// hold the flush past `deadline`. An abandoned send may still complete: its
/// records may be sent twice, never zero times. While an earlier abandoned send
/// (`outstanding`) runs, this one waits for it, then is skipped: threads and
/// sockets do not pile up behind a server that never answers.
pub(crate) fn send_before<T: Send + 'static>(
    transport: &Arc<dyn Transport>,
    outstanding: &Outstanding,
    email: Email,
    deadline: Instant,
    how: fn(&dyn Transport, &Email) -> Result<T, BoxError>,
) -> Result<T, Error> {
    let failed = |why: &str| Err(Error::new(ErrorKind::Send, why.to_owned()));
    if !outstanding.over_by(deadline) {
        return failed(
            "a send abandoned at the send deadline by an earlier flush is still running (the \
             server has not finished answering), so this one was not started; the records are \
             kept and a later flush tries again",
        );
    }
    const LATE: &str = "the send did not finish before the send deadline; the records are kept \
                        and a later flush tries again";
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return failed(LATE);
    }
    let (result, done) = spawn_send(transport, email, how)?;
    match result.recv_timeout(remaining) {
        Ok(Ok(result)) => result.map_err(|e| match e.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::with_source(ErrorKind::Send, "could not send the digest", other),
        }),
        Ok(Err(panicked)) => Err(panicked),
        Err(RecvTimeoutError::Timeout) => {
            // The next send waits for it (see `over_by`).
            *lock(&outstanding.0) = Some(done);
            failed(LATE)
        }
        Err(RecvTimeoutError::Disconnected) => {
            failed("the transport panicked while sending; the records are kept")
        }
    }
}

type Answer<T> = Result<Result<T, BoxError>, Error>;

fn spawn_send<T: Send + 'static>(
    transport: &Arc<dyn Transport>,
    email: Email,
    how: fn(&dyn Transport, &Email) -> Result<T, BoxError>,
) -> Result<(mpsc::Receiver<Answer<T>>, mpsc::Receiver<()>), Error> {
    let (tx, rx) = mpsc::sync_channel(1);
    let (running, done) = mpsc::channel::<()>();
    let worker = Arc::clone(transport);
    std::thread::Builder::new()
        .name("tracing-email-send".into())
        .spawn(move || {
            let _running = running;
            let _sending = SendingScope::enter();
            let result = catch_unwind(AssertUnwindSafe(|| how(&*worker, &email)));
            let result = result.map_err(|payload| {
                panicked(
                    "the transport panicked while sending",
                    payload,
                    "the records are kept",
                )
            });
            let _ = tx.send(result);
        })
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Send,
                "could not start a thread to send the digest",
                e,
            )
        })?;
    Ok((rx, done))
}
