//! Store: what is pending across runs, on disk. The snapshot file and its
//! append-only journal under one lock ([`file`], [`journal`]), and the
//! history of runs and failures kept in it ([`history`]).

pub(crate) mod file;
pub(crate) mod history;
pub(crate) mod journal;
