//! Pool configuration: plain data, built once, read by the pool.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::{DEFAULT_MAX_FRAME, MAX_FRAME_CEILING, TASK_PREFIX};
use crate::worker::Reply;

/// The task handler that runs inside each worker: reads `input`, writes its
/// answer into `reply`. An `Err` (or [`Reply::error`]) makes the task `FAILED`
/// with that message. Called only in worker processes, one task at a time.
pub type Handler = Arc<dyn Fn(&[u8], &mut Reply) -> std::result::Result<(), String> + Send + Sync>;

/// Runs once in each worker before its first task. An `Err` stops the worker
/// from starting; the message reaches the host.
pub type Initializer = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// How workers are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// Fork the host from the pool's supervisor thread.
    Fork,
    /// Start a fresh worker program (not built yet).
    Spawn,
    /// Fork workers from a fresh server program (not built yet).
    ForkServer,
}

/// Everything a pool needs to start. Cheap to clone; not shared once the pool
/// has been built (the pool keeps its own copy).
#[derive(Clone)]
pub struct Config {
    pub(crate) workers: usize,
    pub(crate) start_method: StartMethod,
    pub(crate) handler: Option<Handler>,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) close_inherited_fds: bool,
    pub(crate) keep_fds: Vec<RawFd>,
    pub(crate) max_frame: usize,
    pub(crate) max_queued: usize,
    pub(crate) prefetch: usize,
    pub(crate) use_pidfd: bool,
    pub(crate) start_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("workers", &self.workers)
            .field("start_method", &self.start_method)
            .field("handler", &self.handler.is_some())
            .field("initializer", &self.initializer.is_some())
            .field("close_inherited_fds", &self.close_inherited_fds)
            .field("keep_fds", &self.keep_fds)
            .field("max_frame", &self.max_frame)
            .field("max_queued", &self.max_queued)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

/// Tasks in flight per worker unless [`Config::prefetch`] says otherwise.
pub const DEFAULT_PREFETCH: usize = 16;
/// Most tasks in flight per worker [`Config::prefetch`] accepts.
pub const MAX_PREFETCH: usize = 4096;

/// Number of CPUs this process may run on (affinity and cgroup quota).
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Config {
    /// Defaults: one worker per usable CPU, FORK, no handler yet, inherited
    /// fds closed, 256 MiB frames, unbounded queue.
    pub fn new() -> Config {
        Config {
            workers: 0,
            start_method: StartMethod::Fork,
            handler: None,
            initializer: None,
            close_inherited_fds: true,
            keep_fds: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            max_queued: 0,
            prefetch: DEFAULT_PREFETCH,
            use_pidfd: true,
            start_timeout: None,
        }
    }

    /// Number of workers; 0 means one per CPU this process may use.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How workers are started. Only [`StartMethod::Fork`] exists so far.
    pub fn start_method(mut self, method: StartMethod) -> Result<Self> {
        match method {
            StartMethod::Fork => {
                self.start_method = method;
                Ok(self)
            }
            other => Err(Error::InvalidArgument(format!(
                "start method {other:?} is not available in this version; use FORK"
            ))),
        }
    }

    /// The task handler (required for FORK).
    pub fn handler<F>(mut self, f: F) -> Self
    where
        F: Fn(&[u8], &mut Reply) -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        self.handler = Some(Arc::new(f));
        self
    }

    /// Code run once in each worker before its first task.
    pub fn initializer<F>(mut self, f: F) -> Self
    where
        F: Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        self.initializer = Some(Arc::new(f));
        self
    }

    /// Whether workers close every fd they inherit except 0, 1, 2, their
    /// channel and [`Config::keep_fds`] (default: true).
    pub fn close_inherited_fds(mut self, on: bool) -> Self {
        self.close_inherited_fds = on;
        self
    }

    /// Fds a worker keeps open when inherited fds are closed.
    pub fn keep_fds(mut self, fds: &[RawFd]) -> Result<Self> {
        if let Some(bad) = fds.iter().find(|&&fd| fd < 0) {
            return Err(Error::InvalidArgument(format!(
                "negative fd {bad} in keep list"
            )));
        }
        self.keep_fds = fds.to_vec();
        Ok(self)
    }

    /// Largest frame (task or reply plus a few header bytes) either side may
    /// send. A task payload must fit with its 9 header bytes.
    pub fn max_frame_size(mut self, bytes: usize) -> Result<Self> {
        if !(TASK_PREFIX..=MAX_FRAME_CEILING).contains(&bytes) {
            return Err(Error::InvalidArgument(format!(
                "max frame size {bytes} is outside {TASK_PREFIX}..={MAX_FRAME_CEILING}"
            )));
        }
        self.max_frame = bytes;
        Ok(self)
    }

    /// Most tasks waiting to start (in the queue or in a worker's prefetch
    /// window) before submit blocks (or fails with [`Error::Full`] when
    /// non-blocking); 0 means no bound.
    pub fn max_queued(mut self, n: usize) -> Self {
        self.max_queued = n;
        self
    }

    /// Most tasks in flight to one worker at a time (at least 1; default
    /// [`DEFAULT_PREFETCH`]). Above 1, a busy worker is sent its next tasks
    /// before it asks, many frames per write, which is what makes tiny tasks
    /// fast; idle workers are always served first. The cost: a task waiting
    /// behind a long one in a worker's window waits for it even if another
    /// worker becomes free. 1 sends a task only to an idle worker.
    pub fn prefetch(mut self, n: usize) -> Result<Self> {
        if n == 0 || n > MAX_PREFETCH {
            return Err(Error::InvalidArgument(format!(
                "prefetch must be between 1 and {MAX_PREFETCH}, not {n}"
            )));
        }
        self.prefetch = n;
        Ok(self)
    }

    /// How long [`crate::Pool::new`] waits for every worker to say hello
    /// (default: no limit; an initializer may legitimately take long).
    pub fn start_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Test hook: watch workers with bounded `waitpid` polling instead of
    /// pidfds, as on kernels without `pidfd_open`.
    #[doc(hidden)]
    pub fn without_pidfd(mut self) -> Self {
        self.use_pidfd = false;
        self
    }

    /// The worker count after applying the CPU default.
    pub(crate) fn effective_workers(&self) -> usize {
        if self.workers == 0 {
            usable_cpus()
        } else {
            self.workers
        }
    }
}
