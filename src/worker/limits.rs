//! What a worker knows about its limits: whether the soft time limit of
//! the task it runs has passed, its private memory, and a crash handler that
//! tells the pool when the worker died out of memory.
//!
//! The state is two process-wide words (the control page and the task
//! running now), set by the worker loop; a worker runs one task at a time.

use std::os::fd::OwnedFd;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::Origin;
use crate::area::AreaHandle;
use crate::control::ControlPage;
use crate::protocol::SOFT_LIMIT_SIGNAL;
use crate::sys;

/// The head of this worker's area (NULL outside a worker).
static HEAD: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
/// The task this worker runs now (0: none).
static CURRENT: AtomicU64 = AtomicU64::new(0);

fn control() -> Option<ControlPage<'static>> {
    let head = std::ptr::NonNull::new(HEAD.load(Ordering::Acquire))?;
    // SAFETY: set from a worker's area mapping, which is never unmapped.
    Some(unsafe { ControlPage::from_head(head) })
}

/// Whether the soft time limit of the task this worker runs has passed.
/// False outside a worker and between tasks. Async-signal-safe, no system
/// call: a handler may poll it in a tight loop.
pub fn soft_limit_reached() -> bool {
    control().is_some_and(|c| c.soft_limit_reached(CURRENT.load(Ordering::Relaxed)))
}

/// Called once by the worker loop before its first task: publishes the
/// area and installs the signal handlers (see [`install_handlers`]).
pub(crate) fn enter(area: &AreaHandle) {
    HEAD.store(area.head.as_ptr(), Ordering::Release);
    install_handlers();
}

/// The worker starts (`Some`) or ended (`None`) a task.
pub(crate) fn set_current(id: Option<u64>) {
    CURRENT.store(id.unwrap_or(0), Ordering::Relaxed);
}

/// The soft limit's signal only interrupts: a blocking call in the handler
/// returns EINTR (no SA_RESTART), and [`soft_limit_reached`] says why.
extern "C" fn on_soft_limit(_: libc::c_int) {}

/// A crash with `errno` ENOMEM (a failed allocation, then abort or a NULL
/// dereference) is recorded in the control page before the worker dies of
/// the signal as it would have, so the pool can say memory was the cause.
extern "C" fn on_crash(sig: libc::c_int) {
    // SAFETY: reads this thread's errno; then only atomics and raise().
    let errno = unsafe { *libc::__errno_location() };
    if errno == libc::ENOMEM {
        if let Some(c) = control() {
            c.set_oom(CURRENT.load(Ordering::Relaxed));
        }
    }
    // SA_RESETHAND made the action the default again; SA_NODEFER lets the
    // signal through at once.
    // SAFETY: async-signal-safe.
    unsafe { libc::raise(sig) };
}

/// Installs the soft-limit handler and the crash handlers where those
/// signals are at their default action: a worker program's runtime may
/// need its own (Go turns SIGSEGV into a panic), and a program may catch
/// the soft limit's signal itself (Python's binding raises in the task). Every handler has
/// SA_ONSTACK, which runtimes with small stacks (Go) require of handlers
/// installed by other code. Raw sigaction calls: safe in a freshly forked
/// child.
fn install_handlers() {
    let set = |sig: libc::c_int, handler: extern "C" fn(libc::c_int), flags: libc::c_int| {
        // SAFETY: a zeroed sigaction with a valid handler and empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = flags | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, ptr::null_mut());
        }
    };
    let is_default = |sig: libc::c_int| {
        // SAFETY: reads the current action into a zeroed struct.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL
        }
    };
    if is_default(SOFT_LIMIT_SIGNAL) {
        set(SOFT_LIMIT_SIGNAL, on_soft_limit, 0);
    }
    for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGABRT] {
        if is_default(sig) {
            set(sig, on_crash, libc::SA_RESETHAND | libc::SA_NODEFER);
        }
    }
}

/// Reads the memory this worker holds, for the soft memory limit, from a
/// kept `/proc/self/smaps_rollup` (one `pread`).
///
/// A spawned worker's is its private memory ([`sys::Rollup::private`]).
/// A forked worker's is what its anonymous memory grew by since it started:
/// pages it shares with the process it was forked from count for neither,
/// and a page that process rewrites after the fork, which becomes private
/// to the worker though the worker never touched it, does not change the
/// worker's anonymous memory either (it keeps the old page mapped). Only
/// pages the worker newly maps count (a copy it makes by writing an
/// inherited page in place replaces that page, and is left out).
pub(crate) struct MemoryProbe {
    smaps: Option<OwnedFd>,
    /// A forked worker's anonymous memory when it started.
    baseline: Option<u64>,
}

impl MemoryProbe {
    pub(crate) fn new(origin: Origin) -> MemoryProbe {
        let mut probe = MemoryProbe {
            smaps: sys::open_proc("self", "smaps_rollup"),
            baseline: None,
        };
        if origin == Origin::Forked {
            probe.baseline = Some(probe.rollup().map_or(0, |r| r.anonymous));
        }
        probe
    }

    fn rollup(&self) -> Option<sys::Rollup> {
        use std::os::fd::AsRawFd;
        sys::read_rollup(self.smaps.as_ref()?.as_raw_fd())
    }

    /// The memory this worker holds now, in bytes.
    pub(crate) fn read(&self) -> Option<u64> {
        let now = self.rollup()?;
        Some(match self.baseline {
            Some(base) => now.anonymous.saturating_sub(base),
            None => now.private,
        })
    }
}
