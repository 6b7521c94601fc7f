//! The error of every fallible helper.

use std::path::PathBuf;
use std::time::Duration;

/// Why a process, port, directory or binary could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// The short name given to the process.
        name: String,
        /// The program run.
        program: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The process did not become ready in time, or exited first.
    #[error("{name} not ready: {why}\n{log_tail}")]
    NotReady {
        /// The short name given to the process.
        name: String,
        /// What was awaited and what happened instead.
        why: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// Every try on a fresh port failed.
    #[error("{what}: {tries} ports tried; last failure: {last}")]
    Ports {
        /// What was being started.
        what: String,
        /// How many ports were tried.
        tries: usize,
        /// The last try's error.
        last: Box<Error>,
    },
    /// `cargo build` of a missing binary failed.
    #[error("`{command}` failed ({status}); the binary {binary} is still missing")]
    Build {
        /// The command run.
        command: String,
        /// Its exit status.
        status: String,
        /// The path that was expected.
        binary: PathBuf,
    },
    /// A line that should name listening addresses did not arrive in time.
    #[error("no `{prefix}` line within {limit:?}")]
    NoListening {
        /// The line's expected start.
        prefix: String,
        /// How long it was awaited.
        limit: Duration,
    },
}
