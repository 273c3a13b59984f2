//! Flush: the stage that runs the others. One flush ([`flusher`]) locks the
//! store and runs three steps: `ingest` adds this process's new records,
//! `decide` asks the policy for a plan, `dispatch` sends the digest, the
//! recovery notice and the alerts (`alerting`) and keeps what was not
//! accepted; `taken` owns the records meanwhile. The [`worker`] runs flushes off
//! the event path during the run; [`panic`](mod@panic) checkpoints on a panic; each
//! flush ends in an [`outcome::Outcome`]; [`deadline`] sends each email within
//! the send deadline; [`exit`] stores at `std::process::exit` what no
//! flush stored. [`by_hand`] sends outside any run
//! (the `tracing-email` tool's `send` and `test`).

mod alerting;
mod by_hand;
pub(crate) mod deadline;
mod decide;
pub(crate) mod destination;
mod dispatch;
pub(crate) mod exit;
pub(crate) mod flusher;
mod ingest;
pub(crate) mod outcome;
pub(crate) mod panic;
#[cfg(test)]
mod store_model;
mod taken;
pub(crate) mod worker;

pub(crate) use flusher::Flusher;
