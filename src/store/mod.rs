//! Store: what is pending across runs. The state ([`state`]) with the
//! history of runs and failures kept in it ([`history`]), on disk as a
//! snapshot file ([`snapshot`]) and its append-only journal ([`journal`],
//! [`journal_file`]) under one lock ([`file`](mod@file)), records parked
//! beside them when the lock is busy ([`park`]), the view kept in memory
//! between flushes ([`kept`]), the file types the store accepts
//! ([`fs`](mod@fs)), and the temporary files killed writers leave beside it
//! ([`leftovers`]).

pub(crate) mod file;
pub(crate) mod fs;
pub(crate) mod history;
pub(crate) mod journal;
pub(crate) mod journal_file;
pub(crate) mod kept;
pub(crate) mod leftovers;
pub(crate) mod park;
pub(crate) mod snapshot;
pub(crate) mod state;
