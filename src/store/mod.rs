//! Store: what is pending across runs. The state ([`state`]) with the
//! history of runs and failures kept in it ([`history`]), on disk as a
//! snapshot file and its append-only journal under one lock ([`file`](mod@file),
//! [`journal`]), and the temporary files killed writers leave beside it
//! ([`leftovers`]).

pub(crate) mod file;
pub(crate) mod history;
pub(crate) mod journal;
pub(crate) mod leftovers;
pub(crate) mod state;
