//! The FORK start method: the supervisor thread forks the host; the child
//! makes itself a clean worker and runs the handler pointer it inherited.
//!
//! Between `fork()` and the worker loop the child only makes raw system calls:
//! no allocation, no lock (another host thread may have held one at fork
//! time). Everything it needs is prepared in the parent before the fork.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{watch_child, Channel, Launcher, Reaper, Started};
use crate::area::Area;
use crate::config::{Config, Handler, WorkerHooks};
use crate::sys;
use crate::worker::{self, EXIT_PANIC, EXIT_PARENT_GONE};

/// Forks workers that call a handler living in the host's memory.
pub(crate) struct ForkLauncher {
    handler: Handler,
    hooks: WorkerHooks,
    close_inherited_fds: bool,
    keep_fds: Vec<RawFd>,
    max_frame: usize,
    use_pidfd: bool,
}

impl ForkLauncher {
    pub(crate) fn new(config: &Config, handler: Handler) -> ForkLauncher {
        ForkLauncher {
            handler,
            hooks: config.hooks.clone(),
            close_inherited_fds: config.close_inherited_fds,
            keep_fds: config.keep_fds.clone(),
            max_frame: config.max_frame,
            use_pidfd: config.use_pidfd,
        }
    }
}

impl Launcher for ForkLauncher {
    fn launch(&mut self) -> io::Result<Started> {
        let channel = Channel::new(self.max_frame)?;
        let [tasks, results, area] = channel.worker_fds();
        // Prepared before the fork: the sorted list of fds the child keeps.
        let mut keep: Vec<RawFd> = self.keep_fds.clone();
        keep.extend([tasks, results, area]);
        keep.sort_unstable();
        keep.dedup();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };

        // SAFETY: the child branch below runs only async-signal-safe system
        // calls until it reaches the worker loop, and never returns.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let child = Child {
                channel: tasks,
                results,
                ours: [channel.tasks.as_raw_fd(), channel.results.as_raw_fd()],
                keep: &keep,
                area: &channel.area,
                parent,
                launcher: self,
            };
            child.run();
        }
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        let pidfd = watch_child(pid, self.use_pidfd)?;
        let mut started = channel.started(pid, pidfd, Reaper::Pool);
        started.runs_pool_code = true;
        Ok(started)
    }
}

/// What the child needs, all prepared before the fork.
struct Child<'a> {
    channel: RawFd,
    results: RawFd,
    /// The pool's ends of this worker's channel.
    ours: [RawFd; 2],
    keep: &'a [RawFd],
    area: &'a Area,
    parent: libc::pid_t,
    launcher: &'a ForkLauncher,
}

impl Child<'_> {
    /// The child's whole life. Ends with `_exit`, never returns to host code.
    fn run(&self) -> ! {
        // SAFETY: raw async-signal-safe calls in a fresh single-threaded child.
        unsafe {
            sys::reset_signal_dispositions();
            libc::setpgid(0, 0);
            if !sys::die_with_parent(self.parent) {
                libc::_exit(EXIT_PARENT_GONE);
            }
            if self.launcher.close_inherited_fds {
                close_all_except(self.keep);
            } else {
                libc::close(self.ours[0]);
                libc::close(self.ours[1]);
            }
        }
        let l = self.launcher;
        let code = catch_unwind(AssertUnwindSafe(|| {
            worker::serve(
                self.channel,
                self.results,
                self.area.handle(),
                &l.handler,
                &l.hooks,
                l.max_frame,
                worker::Origin::Forked,
            )
        }))
        .unwrap_or(EXIT_PANIC);
        // SAFETY: ends the child without running the host's atexit handlers.
        unsafe { libc::_exit(code) }
    }
}

/// Closes every fd above 2 except those in `keep` (sorted).
///
/// # Safety
/// Only raw syscalls; meant for a freshly forked child.
unsafe fn close_all_except(keep: &[RawFd]) {
    let mut next: libc::c_uint = 3;
    for &fd in keep {
        let fd = fd as libc::c_uint;
        if fd < next {
            continue;
        }
        if fd > next {
            close_range(next, fd - 1);
        }
        next = fd + 1;
    }
    close_range(next, libc::c_uint::MAX);
}

/// `close_range(first, last)`, with a loop when the kernel lacks it.
///
/// # Safety
/// Closes fds the caller does not own; only for a fresh child.
unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    if libc::syscall(libc::SYS_close_range, first, last, 0) == 0 {
        return;
    }
    let limit = libc::sysconf(libc::_SC_OPEN_MAX);
    let top = if limit > 0 {
        limit as libc::c_uint - 1
    } else {
        1023
    };
    let mut fd = first;
    while fd <= last.min(top) {
        libc::close(fd as RawFd);
        fd += 1;
    }
}
