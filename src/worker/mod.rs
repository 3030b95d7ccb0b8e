//! The worker side: the loop a worker process runs, its reply buffer, the
//! entry point of worker programs and the fork server.
//!
//! Everything here runs in a worker process (or a fork server), never in
//! the host.

mod entry;
mod forkserver;
mod limits;
mod reply;
mod serve;

pub use entry::{main, report_start_failure, serve_host_forked};
pub use limits::soft_limit_reached;
pub use reply::Reply;
pub(crate) use serve::serve;

/// How a worker process came to be, which decides what its memory measure
/// leaves out (see [`limits::MemoryProbe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A fresh program (SPAWN): everything it holds is its own.
    Spawned,
    /// Forked from a process whose memory it shares copy-on-write (the
    /// host under FORK, the fork server under FORKSERVER).
    Forked,
}

/// Exit code of a worker whose initializer failed.
pub const EXIT_INIT_FAILED: i32 = 120;
/// Exit code of a worker that received a frame it cannot understand.
pub const EXIT_PROTOCOL: i32 = 121;
/// Exit code of a worker whose own code panicked outside a handler.
pub const EXIT_PANIC: i32 = 122;
/// Exit code of a worker whose pool is gone (parent died or channel closed mid-frame).
pub const EXIT_PARENT_GONE: i32 = 123;
