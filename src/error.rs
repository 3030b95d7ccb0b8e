//! The error type of the safe Rust API. Each variant maps to one fixed
//! `BILLIARD_E*` code at the C boundary.

use thiserror::Error;

/// What went wrong in a pool call. The message says what failed and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A bad argument or a call that is not valid in the pool's state.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The timeout passed before the awaited event.
    #[error("timed out")]
    TimedOut,
    /// The pool is closed or terminated and takes no new tasks.
    #[error("pool is closed: {0}")]
    Closed(String),
    /// The queue is full and the submit was non-blocking.
    #[error("queue is full ({0} tasks waiting)")]
    Full(usize),
    /// No task with that id is pending or waiting to be collected.
    #[error("not found: {0}")]
    NotFound(String),
    /// A worker could not be started.
    #[error("worker start failed: {0}")]
    Spawn(String),
    /// Workers crashed too often; the pool gave up.
    #[error("restart limit exceeded: {0}")]
    Restarts(String),
    /// Out of memory.
    #[error("out of memory: {0}")]
    NoMemory(String),
    /// A system call failed: what was being done and why, and the errno
    /// when a system call said it.
    #[error("I/O error: {message}")]
    Io { message: String, errno: Option<i32> },
}

impl Error {
    /// Wraps an OS error with what was being done; keeps its errno.
    pub(crate) fn io(what: &str, err: std::io::Error) -> Error {
        Error::Io {
            message: format!("{what}: {err}"),
            errno: err.raw_os_error(),
        }
    }

    /// An I/O error with no errno behind it (a state billiard cannot
    /// explain by a system call: a bug, say).
    pub(crate) fn internal(message: String) -> Error {
        Error::Io {
            message,
            errno: None,
        }
    }

    /// The errno of a failed system call, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { errno, .. } => *errno,
            _ => None,
        }
    }
}

/// Result type of the safe API.
pub type Result<T> = std::result::Result<T, Error>;

/// The text of a caught panic's payload (`&str` or `String`; else a placeholder).
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_keeps_its_errno() {
        let e = Error::io("opening", std::io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(e.errno(), Some(libc::EMFILE));
        assert!(e.to_string().starts_with("I/O error: opening: "), "{e}");
        assert_eq!(Error::internal("a bug".into()).errno(), None);
        assert_eq!(Error::TimedOut.errno(), None);
    }
}
