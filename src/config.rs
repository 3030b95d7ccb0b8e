//! Pool configuration: plain data, built once, read by the pool.

use std::ffi::CString;
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

/// Runs in a worker when it exits in an orderly way: the pool closed its
/// channel (recycle, shrink, restart, close). Not on a crash, a kill or a
/// stop for a task.
pub type ExitHook = Arc<dyn Fn() + Send + Sync>;

/// Code each worker runs around its life, whatever the start method:
/// `after_fork` once after the worker came to be and before its first task
/// (outside any time limit; an `Err` is a failed start, reported with its
/// message and counted by the restart intensity), `at_exit` when it exits
/// in an orderly way ([`ExitHook`]).
#[derive(Clone, Default)]
pub struct WorkerHooks {
    pub after_fork: Option<Initializer>,
    pub at_exit: Option<ExitHook>,
}

/// Forks a fork server in the host's own language (see
/// [`Config::fork_server_by_host`]): given the server's end of the control
/// socket, returns the child's pid; the child calls
/// [`crate::worker::serve_host_forked`].
pub type ServerFork = Arc<dyn Fn(RawFd) -> std::result::Result<libc::pid_t, String> + Send + Sync>;

/// How workers are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// Fork the host from the pool's supervisor thread.
    Fork,
    /// Start a fresh worker program for each worker ([`Config::worker_argv`]).
    Spawn,
    /// Start the worker program once as a fork server, which forks a
    /// worker for each request.
    ForkServer,
}

/// Everything a pool needs to start. Cheap to clone; not shared once the pool
/// has been built (the pool keeps its own copy).
#[derive(Clone)]
pub struct Config {
    pub(crate) workers: usize,
    pub(crate) start_method: StartMethod,
    pub(crate) handler: Option<Handler>,
    pub(crate) hooks: WorkerHooks,
    pub(crate) notices: NoticeKinds,
    pub(crate) close_inherited_fds: bool,
    pub(crate) keep_fds: Vec<RawFd>,
    pub(crate) max_frame: usize,
    pub(crate) max_queued: usize,
    /// `None`: the default, [`DEFAULT_PREFETCH`], or 1 under a soft memory
    /// limit ([`Config::effective_prefetch`]).
    pub(crate) prefetch: Option<usize>,
    pub(crate) use_pidfd: bool,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) program: WorkerProgram,
    pub(crate) server_fork: Option<ServerFork>,
    pub(crate) limits: Limits,
    pub(crate) on_event: Option<EventHandler>,
}

/// Which notices a pool keeps for its host (see [`crate::Notice`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoticeKinds {
    /// A task started (id, worker pid, time).
    pub started: bool,
    /// A task's soft time limit passed.
    pub soft_limit: bool,
    /// A worker process started.
    pub worker_started: bool,
    /// A worker process exited.
    pub worker_exited: bool,
}

impl NoticeKinds {
    /// Whether any kind is on.
    pub fn any(&self) -> bool {
        self.started || self.soft_limit || self.worker_started || self.worker_exited
    }
}

/// Called on the pool's supervisor thread for each [`Event`]. It must not
/// block for long: the pool waits for it. Pool calls that would block
/// return [`Error::InvalidArgument`] when made from inside it.
pub type EventHandler = Arc<dyn Fn(&Event) + Send + Sync>;

/// Something that happened to the pool's workers, as reported to the event
/// handler ([`Config::on_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A worker process was started.
    WorkerStarted { pid: i32 },
    /// A worker exited and was reaped. `planned` is true when the pool
    /// stopped it on purpose (recycling, resize, restart, a time limit,
    /// a cancel, shutdown); a crash is unplanned.
    WorkerExited {
        pid: i32,
        exit_code: Option<i32>,
        signal: Option<i32>,
        planned: bool,
        about: String,
    },
    /// A worker the pool replaced on purpose exited after its last task
    /// (`why`: max tasks, memory, restart, resize); its `WorkerExited`
    /// follows.
    WorkerRecycled { pid: i32, why: String },
    /// A task's worker died while running it (the result is `WORKER_LOST`
    /// or `MEMORY_LIMIT`).
    TaskLost { task_id: u64, pid: i32 },
    /// The pool gave up (restart intensity, start failures): `why`.
    PoolFailed { why: String },
}

/// The limits a pool puts on its workers and tasks (see the setters on
/// [`Config`]). Plain data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub soft_time: Option<Duration>,
    pub hard_time: Option<Duration>,
    /// From SIGTERM to SIGKILL when the pool stops a worker.
    pub kill_grace: Duration,
    pub max_tasks: Option<u64>,
    pub max_tasks_jitter: u64,
    pub soft_memory: Option<u64>,
    pub hard_memory: Option<u64>,
    /// At most this many crash restarts ...
    pub max_restarts: Option<u32>,
    /// ... within this period.
    pub restart_period: Duration,
}

/// How long a stopped worker has between SIGTERM and SIGKILL by default.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_millis(1000);

/// The worker program of SPAWN and FORKSERVER: what to run, in which
/// environment and directory. Plain data; the pool turns it into a spawn
/// recipe once, at start.
#[derive(Clone, Debug, Default)]
pub struct WorkerProgram {
    /// argv; `argv[0]` is the program (searched in `PATH` when it has no `/`).
    pub(crate) argv: Vec<CString>,
    /// Start from an empty environment instead of the host's.
    pub(crate) env_clear: bool,
    /// Variables set (`Some`) or removed (`None`) on top, in order.
    pub(crate) env: Vec<(CString, Option<CString>)>,
    /// Working directory; `None` keeps the host's.
    pub(crate) cwd: Option<CString>,
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
            .field("after_fork", &self.hooks.after_fork.is_some())
            .field("at_exit", &self.hooks.at_exit.is_some())
            .field("notices", &self.notices)
            .field("close_inherited_fds", &self.close_inherited_fds)
            .field("keep_fds", &self.keep_fds)
            .field("max_frame", &self.max_frame)
            .field("max_queued", &self.max_queued)
            .field("prefetch", &self.prefetch)
            .field("program", &self.program)
            .field("limits", &self.limits)
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

/// Tasks in flight per worker unless [`Config::prefetch`] says otherwise.
pub const DEFAULT_PREFETCH: usize = 16;
/// Most tasks in flight per worker [`Config::prefetch`] accepts.
pub const MAX_PREFETCH: usize = crate::control::CANCEL_SLOTS;

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
            hooks: WorkerHooks::default(),
            server_fork: None,
            notices: NoticeKinds::default(),
            close_inherited_fds: true,
            keep_fds: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            max_queued: 0,
            prefetch: None,
            use_pidfd: true,
            start_timeout: None,
            program: WorkerProgram::default(),
            limits: Limits {
                kill_grace: DEFAULT_KILL_GRACE,
                ..Limits::default()
            },
            on_event: None,
        }
    }

    /// The soft time limit of every task (per-task options may override
    /// it): once a task has run this long, its worker's
    /// [`crate::worker::soft_limit_reached`] turns true and the worker gets
    /// [`crate::protocol::SOFT_LIMIT_SIGNAL`] (a blocking call returns
    /// EINTR), so the handler can stop cleanly. `None`: no limit.
    pub fn soft_time_limit(mut self, limit: Option<Duration>) -> Result<Self> {
        self.limits.soft_time = check_limit(limit, "soft time limit")?;
        Ok(self)
    }

    /// The hard time limit of every task (per-task options may override
    /// it): once a task has run this long, its worker is stopped (SIGTERM,
    /// then SIGKILL after the kill grace), the task ends `TimeLimit` and a
    /// new worker takes its place. `None`: no limit.
    pub fn hard_time_limit(mut self, limit: Option<Duration>) -> Result<Self> {
        self.limits.hard_time = check_limit(limit, "hard time limit")?;
        Ok(self)
    }

    /// How long a worker the pool stops (hard time limit, cancel,
    /// terminate) has between SIGTERM and SIGKILL (default 1 s; zero sends
    /// SIGKILL at once). Workers start with SIGTERM's default action, so
    /// this matters only for handlers that catch SIGTERM to clean up.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.limits.kill_grace = grace;
        self
    }

    /// Replace each worker after it was given `n` tasks, give or take a
    /// random `jitter` more (so workers started together do not all restart
    /// together, as gunicorn's `max_requests_jitter`). `None`: never.
    pub fn max_tasks_per_worker(mut self, n: Option<u64>, jitter: u64) -> Result<Self> {
        if n == Some(0) {
            return Err(Error::InvalidArgument(
                "max tasks per worker must be at least 1 (None for no limit)".into(),
            ));
        }
        self.limits.max_tasks = n;
        self.limits.max_tasks_jitter = jitter;
        Ok(self)
    }

    /// Soft memory limit: after a task, a worker whose *current* private
    /// resident memory (pages only it holds: not its peak, and not pages it
    /// still shares with the host or fork server it was forked from) is
    /// above `bytes` takes no more tasks and is replaced once those already
    /// sent to it are done. `None`: no limit. With a limit the prefetch
    /// window defaults to 1, so that none are sent ahead (a window set with
    /// [`Config::prefetch`] stands).
    pub fn soft_memory_limit(mut self, bytes: Option<u64>) -> Result<Self> {
        self.limits.soft_memory = check_bytes(bytes, "soft memory limit")?;
        Ok(self)
    }

    /// Hard memory limit: each worker's address space is limited to
    /// `bytes` (`RLIMIT_AS`, which counts everything mapped, including what
    /// a FORK worker inherited from the host). An allocation past it fails
    /// in the worker; a worker that crashes on that ends its task
    /// `MemoryLimit`. `None`: no limit.
    pub fn hard_memory_limit(mut self, bytes: Option<u64>) -> Result<Self> {
        self.limits.hard_memory = check_bytes(bytes, "hard memory limit")?;
        Ok(self)
    }

    /// Restart intensity: more than `max` crash restarts (workers that died
    /// on their own, or failed to start) within `period` make the pool
    /// fail: submit returns [`Error::Restarts`], unfinished tasks end
    /// `Abandoned`. Planned replacements do not count. `None` (default):
    /// no limit (only [`MAX_START_FAILURES_IN_A_ROW`] applies).
    pub fn restart_intensity(mut self, max: Option<u32>, period: Duration) -> Result<Self> {
        if max.is_some() && period.is_zero() {
            return Err(Error::InvalidArgument(
                "the restart intensity period must be longer than zero".into(),
            ));
        }
        self.limits.max_restarts = max;
        self.limits.restart_period = period;
        Ok(self)
    }

    /// A handler called on the pool's supervisor thread for each [`Event`]
    /// (see [`EventHandler`]).
    pub fn on_event<F>(mut self, f: F) -> Self
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Number of workers; 0 means one per CPU this process may use.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How workers are started (default [`StartMethod::Fork`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = method;
        self
    }

    /// The worker program of SPAWN and FORKSERVER and its arguments:
    /// `argv[0]` is the program, searched in `PATH` (when the pool starts)
    /// if it has no `/`. The program calls [`crate::worker::main`] (or
    /// `billiard_worker_main`), or speaks `docs/PROTOCOL.md` itself.
    pub fn worker_argv<S: AsRef<[u8]>>(mut self, argv: &[S]) -> Result<Self> {
        if argv.is_empty() || argv[0].as_ref().is_empty() {
            return Err(Error::InvalidArgument(
                "the worker argv needs at least the program".into(),
            ));
        }
        self.program.argv = argv
            .iter()
            .map(|a| c_string(a.as_ref(), "a worker argument"))
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// Whether workers start from a copy of the host's environment (true,
    /// the default; copied when the pool starts) or from an empty one.
    pub fn worker_env_inherit(mut self, inherit: bool) -> Self {
        self.program.env_clear = !inherit;
        self
    }

    /// Sets (`Some`) or removes (`None`) a variable in the workers'
    /// environment. Names starting with `BILLIARD_` are the pool's own.
    pub fn worker_env(mut self, name: &str, value: Option<&str>) -> Result<Self> {
        if name.is_empty() || name.contains('=') {
            return Err(Error::InvalidArgument(format!(
                "environment variable name {name:?} is empty or contains '='"
            )));
        }
        if name.starts_with(crate::protocol::ENV_PREFIX) {
            return Err(Error::InvalidArgument(format!(
                "environment variable {name} is reserved: the pool sets BILLIARD_* itself"
            )));
        }
        let name = c_string(name.as_bytes(), "an environment variable name")?;
        let value = value
            .map(|v| c_string(v.as_bytes(), "an environment value"))
            .transpose()?;
        self.program.env.retain(|(n, _)| *n != name);
        self.program.env.push((name, value));
        Ok(self)
    }

    /// The workers' working directory; `None` (default) keeps the host's.
    pub fn worker_cwd(mut self, dir: Option<&str>) -> Result<Self> {
        self.program.cwd = dir
            .map(|d| c_string(d.as_bytes(), "the working directory"))
            .transpose()?;
        Ok(self)
    }

    /// The task handler (FORK only: SPAWN and FORKSERVER workers are
    /// programs with their own).
    pub fn handler<F>(mut self, f: F) -> Self
    where
        F: Fn(&[u8], &mut Reply) -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        self.handler = Some(Arc::new(f));
        self
    }

    /// Code run once in each worker before its first task (FORK; worker
    /// programs set theirs with their entry call).
    pub fn initializer<F>(mut self, f: F) -> Self
    where
        F: Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        self.hooks.after_fork = Some(Arc::new(f));
        self
    }

    /// Code run in each worker when it exits in an orderly way (FORK;
    /// see [`ExitHook`]).
    pub fn at_exit<F>(mut self, f: F) -> Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.hooks.at_exit = Some(Arc::new(f));
        self
    }

    /// FORKSERVER with a fork server the host forks itself (`None`: the
    /// worker program's). The pool calls `fork` with the server's end of a
    /// control socket it made; the child calls
    /// [`crate::worker::serve_host_forked`] with it. The first server is
    /// forked on the thread that calls [`crate::Pool::new`], a replacement
    /// (after the server died) on the pool's own thread.
    pub fn fork_server_by_host(mut self, fork: Option<ServerFork>) -> Self {
        self.server_fork = fork;
        self
    }

    /// Which notices the pool keeps for the host ([`crate::Pool::notices`]).
    /// Off by default; costs nothing while off.
    pub fn notices(mut self, kinds: NoticeKinds) -> Self {
        self.notices = kinds;
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
    /// [`DEFAULT_PREFETCH`], or 1 with a soft memory limit). Above 1, a busy
    /// worker is sent its next tasks before it asks, many frames per write,
    /// which is what makes tiny tasks fast; idle workers are always served first. The cost: a task waiting
    /// behind a long one in a worker's window waits for it even if another
    /// worker becomes free. 1 sends a task only to an idle worker.
    pub fn prefetch(mut self, n: usize) -> Result<Self> {
        if n == 0 || n > MAX_PREFETCH {
            return Err(Error::InvalidArgument(format!(
                "prefetch must be between 1 and {MAX_PREFETCH}, not {n}"
            )));
        }
        self.prefetch = Some(n);
        Ok(self)
    }

    /// The prefetch window the pool uses: the one set with
    /// [`Config::prefetch`]; else 1 under a soft memory limit (a worker
    /// over it must hold no task sent ahead, which it would still run),
    /// else [`DEFAULT_PREFETCH`].
    pub(crate) fn effective_prefetch(&self) -> usize {
        match (self.prefetch, self.limits.soft_memory) {
            (Some(n), _) => n,
            (None, Some(_)) => 1,
            (None, None) => DEFAULT_PREFETCH,
        }
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

    /// Checks that the start method has what it needs.
    pub(crate) fn validate(&self) -> Result<()> {
        check_soft_below_hard(self.limits.soft_time, self.limits.hard_time, "the pool's")?;
        if self.server_fork.is_some() && self.start_method != StartMethod::ForkServer {
            return Err(Error::InvalidArgument(format!(
                "a fork server callback needs the ForkServer start method, not {:?}",
                self.start_method
            )));
        }
        match self.start_method {
            StartMethod::Fork => {
                if self.handler.is_none() {
                    return Err(Error::InvalidArgument(
                        "the FORK start method needs a handler".into(),
                    ));
                }
            }
            StartMethod::Spawn | StartMethod::ForkServer => {
                let method = self.start_method;
                let by_host = self.server_fork.is_some();
                if self.program.argv.is_empty() && !by_host {
                    return Err(Error::InvalidArgument(format!(
                        "the {method:?} start method needs a worker program (worker argv)"
                    )));
                }
                if self.handler.is_some()
                    || self.hooks.after_fork.is_some()
                    || self.hooks.at_exit.is_some()
                {
                    let own = if by_host {
                        "the fork server the host forks passes its own to \
                         billiard_forkserver_serve"
                    } else {
                        "the worker program passes its own to billiard_worker_main"
                    };
                    return Err(Error::InvalidArgument(format!(
                        "a handler, initializer or at-exit hook set in the config runs only in \
                         FORK workers; for {method:?} workers {own}"
                    )));
                }
            }
        }
        Ok(())
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

/// Replacement workers that may fail to start in a row before the pool
/// fails, whatever the restart intensity.
pub const MAX_START_FAILURES_IN_A_ROW: u32 = 5;

/// A soft time limit must be below the hard one, or it could never fire
/// (`whose`: "the pool's", "the task's").
pub(crate) fn check_soft_below_hard(
    soft: Option<Duration>,
    hard: Option<Duration>,
    whose: &str,
) -> Result<()> {
    match (soft, hard) {
        (Some(s), Some(h)) if s >= h => Err(Error::InvalidArgument(format!(
            "{whose} soft time limit ({s:?}) is not below {whose} hard time limit ({h:?}), so it \
             could never fire"
        ))),
        _ => Ok(()),
    }
}

/// A time limit: `None` or longer than zero.
fn check_limit(limit: Option<Duration>, what: &str) -> Result<Option<Duration>> {
    if limit.is_some_and(|l| l.is_zero()) {
        return Err(Error::InvalidArgument(format!(
            "a {what} of zero would stop every task at once (None means no limit)"
        )));
    }
    Ok(limit)
}

/// A memory limit: `None` or at least one page.
fn check_bytes(bytes: Option<u64>, what: &str) -> Result<Option<u64>> {
    if bytes.is_some_and(|b| b < 4096) {
        return Err(Error::InvalidArgument(format!(
            "a {what} under 4096 bytes cannot be met (None means no limit)"
        )));
    }
    Ok(bytes)
}

/// `bytes` as a C string, or `EINVAL` if it holds a NUL.
fn c_string(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::InvalidArgument(format!("{what} contains a NUL byte")))
}
