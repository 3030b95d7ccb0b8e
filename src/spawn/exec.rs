//! The SPAWN start method: every worker is a fresh run of the worker
//! program (`posix_spawn`), which finds its channel in its environment and
//! serves tasks with `billiard_worker_main` (or speaks the protocol itself).

use std::io;

use super::program::Program;
use super::{watch_child, Channel, Launcher, Reaper, Started};
use crate::config::Config;
use crate::error::Result;
use crate::protocol::{ENV_AREA_FD, ENV_RESULT_FD, ENV_TASK_FD};

/// Spawns one worker program per worker.
pub(crate) struct SpawnLauncher {
    program: Program,
    max_frame: usize,
    use_pidfd: bool,
}

impl SpawnLauncher {
    pub(crate) fn new(config: &Config) -> Result<SpawnLauncher> {
        Ok(SpawnLauncher {
            program: Program::new(config)?,
            max_frame: config.max_frame,
            use_pidfd: config.use_pidfd,
        })
    }
}

impl Launcher for SpawnLauncher {
    fn launch(&mut self) -> io::Result<Started> {
        let channel = Channel::new(self.max_frame)?;
        let [tasks, results, area] = channel.worker_fds();
        let pid = self.program.spawn(&[
            (ENV_TASK_FD, tasks),
            (ENV_RESULT_FD, results),
            (ENV_AREA_FD, area),
        ])?;
        let pidfd = watch_child(pid, self.use_pidfd)?;
        Ok(channel.started(pid, pidfd, Reaper::Pool))
    }
}
