//! An async program: the guard may drop at the end of a `#[tokio::main]`
//! without panicking, and its flush, which blocks the thread it runs on, ends
//! by the send deadline while the runtime's other tasks go on.

#![cfg(feature = "smtp")]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::setup::{PASSWORD, USER, builder, smtp_for};
use support::{Fault, MockSmtp, Security};
use tracing::Level;
use tracing_subscriber::prelude::*;

#[test]
fn the_guard_drops_in_an_async_program_within_the_send_deadline() {
    let stderr = support::child::in_own_process(
        "the_guard_drops_in_an_async_program_within_the_send_deadline",
        || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(guard_drops_within_the_send_deadline());
        },
    );
    // The drop says why nothing was sent, on stderr.
    assert_eq!(
        support::child::crate_lines(&stderr),
        [
            "tracing-email: not sent, 1 record kept for a later run: the send did not finish \
             before the send deadline; the records are kept and a later flush tries again"
        ],
        "{stderr}"
    );
}

async fn guard_drops_within_the_send_deadline() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    // A server so slow the send cannot finish: the deadline ends it.
    server.set_fault(Fault::Delay {
        each_reply: Duration::from_millis(300),
    });
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = builder(&dir.path().join("state.json"), smtp_for(&server))
        .threshold(1, Level::WARN)
        .send_deadline(Duration::from_millis(800))
        .build()
        .unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    tracing::warn!(feed = "Radio Café", "feed failed");

    let before = ticks.load(Ordering::Relaxed);
    let started = Instant::now();
    drop(guard); // the end of `main`
    let took = started.elapsed();
    let during = ticks.load(Ordering::Relaxed) - before;

    assert!(took < Duration::from_millis(1500), "the drop took {took:?}");
    assert!(
        during >= 10,
        "other tasks ran only {during} ticks meanwhile"
    );
    ticker.abort();
    // The record waits for the next run.
    let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("state.json"))
        .snapshot()
        .unwrap();
    assert_eq!(snapshot.pending.len(), 1);
    assert!(snapshot.last_error.unwrap().contains("send deadline"));
}

#[test]
fn the_guard_drops_on_a_current_thread_runtime_without_panicking() {
    let stderr = support::child::in_own_process(
        "the_guard_drops_on_a_current_thread_runtime_without_panicking",
        || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(guard_drops_on_a_current_thread_runtime());
        },
    );
    // Closing the pooled SMTP connection at the drop (lettre logs its QUIT,
    // and this layer takes every level) is no record logged after the guard.
    assert!(support::child::crate_lines(&stderr).is_empty(), "{stderr}");
}

async fn guard_drops_on_a_current_thread_runtime() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = builder(&dir.path().join("state.json"), smtp_for(&server))
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    tokio::task::yield_now().await;
    tracing::warn!("from an async task");
    drop(guard);
    assert_eq!(server.messages().len(), 1);
}
