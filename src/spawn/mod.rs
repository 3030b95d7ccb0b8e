//! Start methods behind one interface. The supervisor asks a [`Launcher`] for
//! a new worker and gets back its pid, its pidfd and the pool's end of its
//! channel; how the process came to be (fork, spawn, fork server) is hidden.

mod fork;

use std::io;
use std::os::fd::OwnedFd;

pub(crate) use fork::ForkLauncher;

use crate::area::Area;
use crate::config::{Config, StartMethod};
use crate::error::{Error, Result};

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
}

/// Starts workers. Called only from the supervisor thread.
pub(crate) trait Launcher: Send {
    fn launch(&mut self) -> io::Result<Started>;
}

/// The launcher for a config's start method.
pub(crate) fn launcher_for(config: &Config) -> Result<Box<dyn Launcher>> {
    match config.start_method {
        StartMethod::Fork => {
            let handler = config.handler.clone().ok_or_else(|| {
                Error::InvalidArgument("the FORK start method needs a handler".into())
            })?;
            Ok(Box::new(ForkLauncher::new(config, handler)))
        }
        other => Err(Error::InvalidArgument(format!(
            "start method {other:?} is not available in this version"
        ))),
    }
}
