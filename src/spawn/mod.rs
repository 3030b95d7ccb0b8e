//! Start methods behind one interface. The supervisor asks a [`Launcher`] for
//! a new worker and gets back its pid, its pidfd and the pool's end of its
//! channel; how the process came to be (fork, spawn, fork server) is hidden.

mod exec;
mod fork;
mod forkserver;
mod program;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub(crate) use exec::SpawnLauncher;
pub(crate) use fork::ForkLauncher;
pub(crate) use forkserver::ForkServerLauncher;

use crate::area::{self, Area};
use crate::config::{Config, StartMethod};
use crate::error::{Error, Result};
use crate::sys::{self, ExitStatus};

/// A freshly started worker. It has not said hello yet.
pub(crate) struct Started {
    pub pid: libc::pid_t,
    /// `None` when the kernel has no `pidfd_open` (or the test hook is on).
    pub pidfd: Option<OwnedFd>,
    /// The pool's end of the worker's task socket (CLOEXEC).
    pub channel: OwnedFd,
    /// The read end of the worker's results pipe (CLOEXEC, non-blocking).
    pub results: OwnedFd,
    /// The worker's shared area (progress page, large payloads).
    pub area: Area,
    /// Who reaps it and reports its exit status.
    pub reaper: Reaper,
    /// It runs billiard's own worker loop, forked from the pool (FORK), so
    /// its area holds only what the pool and that loop wrote there.
    pub runs_pool_code: bool,
}

/// Who collects a worker's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reaper {
    /// The worker is the host's child: the supervisor reaps it (FORK, SPAWN).
    Pool,
    /// The worker is a child of fork server number `n`, which reaps it and
    /// reports its status ([`LaunchEvent::Exited`]).
    Server(u32),
}

/// What a launcher reports about processes it looks after itself.
#[derive(Debug)]
pub(crate) enum LaunchEvent {
    /// The fork server reaped one of its workers.
    Exited {
        pid: libc::pid_t,
        status: ExitStatus,
    },
    /// Fork server number `server` is gone. Its workers die with it (their
    /// parent-death signal); their exit status is lost.
    ServerLost { server: u32, why: String },
    /// A fork server failed before it could start any worker.
    StartFailed(String),
    /// The fork server is ready: workers can be started now.
    Ready,
}

/// Starts workers. Called only from the supervisor thread.
pub(crate) trait Launcher: Send {
    /// Starts one worker. `WouldBlock` means "not now, and not a failure":
    /// the fork server is still starting; try again after [`Launcher::events`].
    fn launch(&mut self) -> io::Result<Started>;

    /// Reads what the launcher's own fds (registered in the pool's epoll
    /// under [`crate::watch::Token::Launcher`]) have to say; called when one
    /// is ready. What it learns waits in [`Launcher::events`].
    fn watch(&mut self) {}

    /// Takes what the launcher learned (in `watch` or while starting
    /// workers). Cheap: no system call.
    fn events(&mut self) -> Vec<LaunchEvent> {
        Vec::new()
    }

    /// Stops and reaps whatever the launcher runs itself (the fork server).
    /// Called once no worker is left; the launcher may start again later.
    fn shutdown(&mut self) {}
}

/// The launcher for a config's start method. Runs in the thread that
/// creates the pool (the worker program's environment is copied here).
pub(crate) fn launcher_for(
    config: &Config,
    epoll: std::sync::Arc<crate::watch::Epoll>,
) -> Result<Box<dyn Launcher>> {
    config.validate()?;
    Ok(match config.start_method {
        StartMethod::Fork => {
            let handler = config.handler.clone().ok_or_else(|| {
                Error::InvalidArgument("the FORK start method needs a handler".into())
            })?;
            Box::new(ForkLauncher::new(config, handler))
        }
        StartMethod::Spawn => Box::new(SpawnLauncher::new(config)?),
        StartMethod::ForkServer => Box::new(ForkServerLauncher::new(config, epoll)?),
    })
}

/// One worker's channel and area: the pool's ends, and the worker's.
pub(crate) struct Channel {
    /// The pool's end of the task socket.
    pub tasks: OwnedFd,
    /// The read end of the results pipe.
    pub results: OwnedFd,
    pub area: Area,
    /// The worker's end of the task socket.
    pub worker_tasks: OwnedFd,
    /// The write end of the results pipe.
    pub worker_results: OwnedFd,
}

impl Channel {
    pub(crate) fn new(max_frame: usize) -> io::Result<Channel> {
        let (tasks, worker_tasks) = sys::socketpair()?;
        let (results, worker_results) = sys::results_pipe()?;
        let area = Area::new(area::region_size(max_frame))?;
        Ok(Channel {
            tasks,
            results,
            area,
            worker_tasks,
            worker_results,
        })
    }

    /// The worker's fds: task socket, results pipe, area.
    pub(crate) fn worker_fds(&self) -> [RawFd; 3] {
        [
            self.worker_tasks.as_raw_fd(),
            self.worker_results.as_raw_fd(),
            self.area.fd(),
        ]
    }

    /// The worker has its copies: keep only the pool's ends.
    pub(crate) fn started(
        self,
        pid: libc::pid_t,
        pidfd: Option<OwnedFd>,
        reaper: Reaper,
    ) -> Started {
        Started {
            pid,
            pidfd,
            channel: self.tasks,
            results: self.results,
            area: self.area,
            reaper,
            runs_pool_code: false,
        }
    }
}

/// Puts a new child of ours in its own process group (from the parent too,
/// so the group exists before either side runs on) and opens its pidfd.
/// On failure the child is killed and reaped.
pub(crate) fn watch_child(pid: libc::pid_t, use_pidfd: bool) -> io::Result<Option<OwnedFd>> {
    // SAFETY: pid is our child; EACCES (it exec'd already) and ESRCH are harmless.
    unsafe { libc::setpgid(pid, pid) };
    if !use_pidfd {
        return Ok(None);
    }
    match sys::pidfd_open(pid) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(None),
        Err(e) => {
            // SAFETY: our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            sys::reap_blocking(pid);
            Err(e)
        }
    }
}
