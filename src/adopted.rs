//! Fork servers the host forks itself (`billiard_forkserver_serve`): a
//! lock-free table of the control sockets the pool made for them, which
//! the pool fills before it asks the host to fork and a server reads in the
//! child. A forked child may find any lock held by a thread that no longer
//! exists there, so the table has none: only atomics, read once.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// Most host-forked servers that may be starting or running at once in
/// one process (one per pool that uses one).
pub(crate) const SLOTS: usize = 64;

struct Slot {
    /// The server's end of the control socket; -1: free.
    server_end: AtomicI32,
    /// The pool's end, which every server closes in itself.
    pool_end: AtomicI32,
    /// The pool's maximum frame size.
    max_frame: AtomicU64,
    /// The pid of the process the pool runs in.
    pool_pid: AtomicI32,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    server_end: AtomicI32::new(-1),
    pool_end: AtomicI32::new(-1),
    max_frame: AtomicU64::new(0),
    pool_pid: AtomicI32::new(0),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];

/// A control socket pair registered for a host-forked server. Dropping it
/// frees the entry (once the server is gone, or was never forked).
#[derive(Debug)]
pub(crate) struct Registered {
    index: usize,
}

/// What a server finds about itself in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerSocket {
    pub max_frame: usize,
    pub pool_pid: libc::pid_t,
}

/// Registers a new server's control socket (`pool_end`, `server_end`).
/// `None` when every entry is taken.
pub(crate) fn register(pool_end: RawFd, server_end: RawFd, max_frame: usize) -> Option<Registered> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for (index, slot) in TABLE.iter().enumerate() {
        // Claimed with a placeholder, then filled, then published.
        if slot
            .server_end
            .compare_exchange(-1, -2, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            slot.pool_end.store(pool_end, Ordering::Relaxed);
            slot.max_frame.store(max_frame as u64, Ordering::Relaxed);
            slot.pool_pid.store(me, Ordering::Relaxed);
            slot.server_end.store(server_end, Ordering::Release);
            return Some(Registered { index });
        }
    }
    None
}

impl Drop for Registered {
    fn drop(&mut self) {
        let slot = &TABLE[self.index];
        slot.pool_end.store(-1, Ordering::Relaxed);
        slot.server_end.store(-1, Ordering::Release);
    }
}

/// In a host-forked server: the entry for its control socket `fd`, after
/// closing every pool's end of every registered control socket (so that a
/// pool's end of the socket is held by the pool alone, and the server
/// sees the end of stream when the pool is gone). No allocation, no lock.
pub(crate) fn claim_in_server(fd: RawFd) -> Option<ServerSocket> {
    let mut found = None;
    for slot in &TABLE {
        let server_end = slot.server_end.load(Ordering::Acquire);
        if server_end < 0 {
            continue;
        }
        let pool_end = slot.pool_end.load(Ordering::Relaxed);
        if server_end == fd {
            found = Some(ServerSocket {
                max_frame: slot.max_frame.load(Ordering::Relaxed) as usize,
                pool_pid: slot.pool_pid.load(Ordering::Relaxed),
            });
        }
        if pool_end >= 0 && pool_end != fd {
            // SAFETY: closing this process's copy of a pool's fd.
            unsafe { libc::close(pool_end) };
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_socket_is_found_by_its_server_end_and_freed_on_drop() {
        let r = register(1000, 1001, 4096).unwrap();
        let slot = &TABLE[r.index];
        assert_eq!(slot.server_end.load(Ordering::SeqCst), 1001);
        assert_eq!(slot.max_frame.load(Ordering::SeqCst), 4096);
        drop(r);
        assert_eq!(slot.server_end.load(Ordering::SeqCst), -1);
    }
}
