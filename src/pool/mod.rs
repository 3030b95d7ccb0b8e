//! The safe Rust core: a [`Pool`] of worker processes.
//!
//! Host threads submit and wait; one supervisor thread per pool starts,
//! watches and reaps the workers. A submit that finds an idle worker writes
//! the task to that worker's channel from the submitting thread itself; a
//! result is handed straight to one waiting thread.

mod callback;
mod fate;
mod frames;
mod ids;
mod life;
mod notice;
mod notify;
mod reader;
mod result;
mod shared;
mod state;
mod supervisor;
mod task;
mod timers;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use callback::refuse_in_event_handler;
pub use notice::{Notice, NoticeKind, TaskState, TaskStatus};
use reader::SessionEnd;
pub use result::{Outcome, TaskResult};
use shared::Shared;
pub use state::{Counts, WorkerState};
use state::{NoResult, Phase, State};
use supervisor::Supervisor;
use task::{Task, TimeLimits};

use crate::area;
use crate::config::{Config, NoticeKinds};
use crate::error::{Error, Result};
use crate::protocol::{self, TASK_PREFIX};
use crate::spawn;
use crate::sys;
use crate::watch::{Epoll, Token, INPUT};

/// How long a waiting thread watches for its result before it sleeps, when
/// the pool was made on more than one CPU (on one CPU it would only delay
/// the worker it waits for).
const SPIN_WAIT: Duration = Duration::from_micros(50);

/// Most workers one pool may have.
pub const MAX_WORKERS: usize = 4096;

/// Per-task options. `Default` gives the pool's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// Returned unchanged in the task's result.
    pub tag: u64,
    /// Fail with [`Error::Full`] instead of blocking when the queue is full.
    pub nonblocking: bool,
    /// This task's soft time limit.
    pub soft_time_limit: Limit,
    /// This task's hard time limit.
    pub hard_time_limit: Limit,
}

/// A per-task time limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Limit {
    /// The pool's (from the config).
    #[default]
    PoolDefault,
    /// No limit for this task, whatever the pool's.
    Unlimited,
    /// This long from the task's start (longer than zero).
    After(Duration),
}

impl Limit {
    fn resolve(self, pool: Option<Duration>, what: &str) -> Result<Option<Duration>> {
        match self {
            Limit::PoolDefault => Ok(pool),
            Limit::Unlimited => Ok(None),
            Limit::After(d) if d.is_zero() => Err(Error::InvalidArgument(format!(
                "a {what} of zero would stop the task at once (use Unlimited for no limit)"
            ))),
            Limit::After(d) => Ok(Some(d)),
        }
    }
}

/// The time limits of a task submitted with `opts` to a pool with `limits`:
/// a soft limit that could never fire (not below the hard one) is refused,
/// never ignored.
fn task_limits(opts: &TaskOptions, limits: &crate::config::Limits) -> Result<TimeLimits> {
    let soft = opts
        .soft_time_limit
        .resolve(limits.soft_time, "soft time limit")?;
    let hard = opts
        .hard_time_limit
        .resolve(limits.hard_time, "hard time limit")?;
    crate::config::check_soft_below_hard(soft, hard, "the task's")?;
    Ok(TimeLimits { soft, hard })
}

/// A signal number a task may be sent: 1 to SIGRTMAX.
fn check_signal(signal: i32) -> Result<()> {
    if (1..=libc::SIGRTMAX()).contains(&signal) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{signal} is not a signal number (1 to {})",
            libc::SIGRTMAX()
        )))
    }
}

/// What a pool is doing now ([`Pool::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Worker processes that exist (starting, serving, or being replaced).
    pub workers: usize,
    /// Workers holding tasks (running one, or about to): the listing's
    /// `Busy`.
    pub busy: usize,
    /// Workers ready and holding no task.
    pub idle: usize,
    /// Workers the pool keeps (its size).
    pub target: usize,
    /// Tasks waiting to start (queued or sent ahead to a worker).
    pub queued: usize,
    /// Tasks running.
    pub running: usize,
    /// Results waiting to be collected.
    pub uncollected: usize,
    /// Tasks finished by outcome, restarts and recycles so far.
    pub counts: Counts,
}

/// One worker, as [`Pool::workers`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerInfo {
    pub pid: i32,
    pub state: WorkerState,
    /// The task it runs now (started), if any.
    pub task: Option<u64>,
    /// Tasks it finished.
    pub tasks_done: u64,
    /// Its resident set in bytes, read now (0 if unknown).
    pub rss: u64,
}

/// A pool of worker processes. Every method may be called from any thread at
/// once (`Pool` is `Send + Sync`). Dropping it terminates the workers and
/// reaps them: afterwards no child process of the pool exists.
pub struct Pool {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// The fork generation of the process that made it (see
    /// [`Pool::in_owner_process`]).
    generation: u64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("phase", &self.shared.state.lock().phase)
            .finish()
    }
}

impl Pool {
    /// False in a process forked from the one that made the pool (a FORK
    /// worker, a host-forked fork server and its workers): there the pool
    /// is a copy whose supervisor thread does not exist, and no call may
    /// wait for it. Dropping such a copy frees its memory and nothing else.
    pub fn in_owner_process(&self) -> bool {
        sys::fork_generation() == self.generation
    }

    /// This pool's identity, for [`callback`]: where its shared state lives.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// Fails with [`Error::InvalidArgument`] when called from this pool's
    /// own event handler, for a call (`what`) that would wait for the
    /// thread running it. Other pools' handlers may call anything.
    pub(crate) fn refuse_in_own_event_handler(&self, what: &str) -> Result<()> {
        refuse_in_event_handler(what, self.id())
    }

    /// Starts the workers and returns once every one of them is ready, or
    /// fails with [`Error::Spawn`] (and no worker left behind).
    pub fn new(config: Config) -> Result<Pool> {
        let workers = config.effective_workers();
        if workers > MAX_WORKERS {
            return Err(Error::InvalidArgument(format!(
                "{workers} workers requested; at most {MAX_WORKERS}"
            )));
        }
        let wake_fd = sys::eventfd().map_err(|e| Error::io("eventfd", e))?;
        let results_fd = sys::eventfd().map_err(|e| Error::io("eventfd", e))?;
        let epoll = Arc::new(Epoll::new().map_err(|e| Error::io("epoll_create1", e))?);
        epoll
            .add(wake_fd.as_raw_fd(), INPUT, Token::Wake)
            .map_err(|e| Error::io("epoll_ctl", e))?;
        let launcher = spawn::launcher_for(&config, epoll.clone())?;
        let limits = config.limits;
        let mut state = State::new(
            results_fd.as_raw_fd(),
            epoll.clone(),
            wake_fd.as_raw_fd(),
            config.effective_prefetch(),
        )
        .map_err(|e| Error::io("timerfd_create", e))?;
        state.notice_kinds = config.notices;
        state.target = workers;
        epoll
            .add(state.timers.fd(), INPUT, Token::Timer)
            .map_err(|e| Error::io("epoll_ctl", e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            wake_fd,
            results_fd,
            epoll,
            max_frame: config.max_frame,
            max_queued: config.max_queued,
            next_task: AtomicU64::new(1),
            spin_wait: if sys::cpus_in_affinity() > 1 {
                SPIN_WAIT
            } else {
                Duration::ZERO
            },
            limits,
            on_event: config.on_event.clone(),
        });
        let supervisor = Supervisor::new(shared.clone(), launcher, config.start_timeout);
        // The supervisor thread blocks every signal: host signals go to host
        // threads, and workers (which unblock everything) start clean.
        let saved = sys::block_all_signals();
        let handle = std::thread::Builder::new()
            .name("billiard-super".into())
            .spawn(move || supervisor.run());
        sys::restore_signals(&saved);
        let handle = handle.map_err(|e| Error::io("starting the supervisor thread", e))?;
        let pool = Pool {
            shared,
            supervisor: Mutex::new(Some(handle)),
            generation: sys::fork_generation(),
        };
        let mut st = pool.shared.state.lock();
        while matches!(st.phase, Phase::Starting | Phase::Failing) {
            pool.shared.changed.wait(&mut st);
        }
        if st.phase == Phase::Running {
            drop(st);
            return Ok(pool);
        }
        let err = st
            .failure
            .clone()
            .unwrap_or_else(|| Error::Spawn("the pool stopped while starting".into()));
        drop(st);
        drop(pool);
        Err(err)
    }

    /// Submits a task; the payload is copied. Returns its id, unique within
    /// the pool. Every accepted task produces exactly one result.
    pub fn submit(&self, data: &[u8], opts: &TaskOptions) -> Result<u64> {
        let max = self.shared.max_frame;
        if data.len() > max - (TASK_PREFIX - 4) {
            return Err(Error::InvalidArgument(format!(
                "task of {} bytes does not fit the maximum frame size of {} bytes (a task carries {} bytes of header)",
                data.len(),
                max,
                TASK_PREFIX - 4
            )));
        }
        let limits = task_limits(opts, &self.shared.limits)?;
        if data.len() >= area::AREA_MIN {
            if let Some(id) = self.submit_through_area(data, opts, limits)? {
                return Ok(id);
            }
        }
        let id = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        let frame = Arc::new(protocol::encode_task(id, data));
        let mut st = self.shared.state.lock();
        self.admit(&mut st, opts)?;
        st.tasks
            .insert(id, Task::new(frame, None, opts.tag, limits));
        let send = st.place(id);
        drop(st);
        if let Some(send) = send {
            self.shared.send(send);
        }
        Ok(id)
    }

    /// Submits a large payload through the shared area of an idle worker:
    /// copied once, into memory the worker maps, instead of into a frame
    /// and through the channel. `None` when no idle worker has its area
    /// free, or the pool stopped meanwhile (the caller sends the payload
    /// through a channel instead, or fails as the pool's state says).
    fn submit_through_area(
        &self,
        data: &[u8],
        opts: &TaskOptions,
        limits: TimeLimits,
    ) -> Result<Option<u64>> {
        let mut st = self.shared.state.lock();
        self.admit(&mut st, opts)?;
        let Some(reserved) = st.reserve_idle_area(data.len()) else {
            return Ok(None);
        };
        drop(st);
        // The payload is in the area before the task exists (see
        // State::reserve_idle_area).
        let written = reserved.area.write_task(data).is_ok();
        let mut st = self.shared.state.lock();
        if !written || st.phase != Phase::Running {
            let send = st.release_reserved(&reserved);
            drop(st);
            if let Some(send) = send {
                self.shared.send(send);
            }
            return Ok(None);
        }
        let id = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        let at = area::TASK_OFFSET as u64;
        let frame = Arc::new(protocol::encode_task_shm(id, at, data.len() as u64));
        st.tasks
            .insert(id, Task::new(frame, Some(data.len()), opts.tag, limits));
        let send = match st.assign_reserved(&reserved, id) {
            Some(send) => Some(send),
            None => {
                // Its worker went away meanwhile: the payload goes in a frame.
                if let Some(t) = st.tasks.get_mut(&id) {
                    t.frame = Some(Arc::new(protocol::encode_task(id, data)));
                    t.in_area = None;
                }
                st.place(id)
            }
        };
        drop(st);
        if let Some(send) = send {
            self.shared.send(send);
        }
        Ok(Some(id))
    }

    /// Checks that the pool takes tasks, and waits for room in a full queue
    /// (or fails with [`Error::Full`] when `opts.nonblocking`).
    fn admit(&self, st: &mut MutexGuard<'_, State>, opts: &TaskOptions) -> Result<()> {
        loop {
            match st.phase {
                Phase::Running => {}
                Phase::Failing | Phase::Failed => {
                    return Err(st
                        .failure
                        .clone()
                        .unwrap_or_else(|| Error::Closed("the pool failed".into())))
                }
                Phase::Terminating | Phase::Terminated => {
                    return Err(Error::Closed("the pool was terminated".into()))
                }
                _ => return Err(Error::Closed("the pool was closed".into())),
            }
            let max_queued = self.shared.max_queued;
            if max_queued == 0 || st.waiting() < max_queued {
                return Ok(());
            }
            if opts.nonblocking {
                return Err(Error::Full(st.waiting()));
            }
            refuse_in_event_handler("a submit to a full queue", self.id())?;
            st.blocked_submitters += 1;
            self.shared.changed.wait(st);
            st.blocked_submitters -= 1;
        }
    }

    /// The next finished task, whichever it is. `None` waits forever; zero
    /// polls. Fails with [`Error::NotFound`] at once when no task is pending
    /// and no result is waiting (so a drain loop ends instead of hanging),
    /// and with [`Error::TimedOut`] when the timeout passes first. Results of
    /// tasks another thread waits for by id are not taken.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<TaskResult> {
        self.wait_for(None, timeout)
    }

    /// The result of task `id`. Fails with [`Error::NotFound`] for an id that
    /// is neither pending nor waiting to be collected (unknown, or already
    /// collected), and with [`Error::InvalidArgument`] if another thread
    /// already waits for it.
    pub fn wait_task(&self, id: u64, timeout: Option<Duration>) -> Result<TaskResult> {
        self.wait_for(Some(id), timeout)
    }

    fn wait_for(&self, want: Option<u64>, timeout: Option<Duration>) -> Result<TaskResult> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.shared.state.lock();
        if let Some(r) = st.take_done(want) {
            return Ok(r);
        }
        if let NoResult::Gone(e) = st.nothing_to_wait_for(want, None) {
            return Err(e);
        }
        if timeout == Some(Duration::ZERO) {
            return Err(Error::TimedOut);
        }
        refuse_in_event_handler("a wait with a timeout", self.id())?;
        let (waiter, wake) = st.add_waiter(want);
        // Spin only while no task waits for a worker: with a backlog,
        // results come steadily and the CPU a spinning thread takes is
        // what the workers and the supervisor need.
        let spin = if st.tasks.len() <= st.workers.len() {
            self.shared.spin_wait
        } else {
            Duration::ZERO
        };
        let mut spun = spin.is_zero();
        // A thread waiting for one task reads its worker's channel itself
        // when it can (see reader.rs); after trouble there it leaves the
        // channel to the supervisor for the rest of this wait.
        let mut may_read = want.is_some();
        let mut timed_out = false;
        loop {
            if !wake.has_mail() && !timed_out {
                let session = match want {
                    Some(id) if may_read => st.take_reader_for(id),
                    _ => None,
                };
                if let Some(session) = session {
                    let end = MutexGuard::unlocked(&mut st, || {
                        session.run(&self.shared, &wake, deadline, spin)
                    });
                    let violation = matches!(end, SessionEnd::Violation);
                    if st.give_back_reader(&session, violation) {
                        self.shared.wake();
                    }
                    may_read &= !matches!(end, SessionEnd::Ended | SessionEnd::Violation);
                    timed_out = matches!(end, SessionEnd::TimedOut);
                } else if !spun {
                    // A result often comes back within microseconds; a thread
                    // woken on another CPU costs tens of them. Watch for it a
                    // moment first.
                    spun = true;
                    MutexGuard::unlocked(&mut st, || {
                        let soon = Instant::now() + spin;
                        let until = deadline.map_or(soon, |d| d.min(soon));
                        while !wake.has_mail() && Instant::now() < until {
                            std::hint::spin_loop();
                        }
                    });
                    continue;
                } else {
                    timed_out = match deadline {
                        Some(d) => wake.cv.wait_until(&mut st, d).timed_out(),
                        None => {
                            wake.cv.wait(&mut st);
                            false
                        }
                    };
                }
            }
            let outcome = match st.take_mail(waiter) {
                Some(r) => Ok(r),
                None => match st.nothing_to_wait_for(want, Some(waiter)) {
                    NoResult::Gone(e) => Err(e),
                    NoResult::Pending if timed_out => Err(Error::TimedOut),
                    NoResult::Pending => continue,
                },
            };
            st.remove_waiter(waiter, want);
            return outcome;
        }
    }

    /// Up to `max` notices, oldest first, without waiting (none: empty).
    /// Kept only for the kinds the config turned on
    /// ([`crate::Config::notices`]), each once, until read: a host that
    /// turns them on reads them. A task's `Started` notice is queued before
    /// its result is handed out, whichever way that is collected.
    pub fn notices(&self, max: usize) -> Vec<Notice> {
        self.shared.state.lock().take_notices(max)
    }

    /// Changes which notices the pool keeps from now on (as
    /// [`crate::Config::notices`] does at the start). A task that starts
    /// after STARTED is turned on has its notice at once; one that started
    /// before has it with its result, if STARTED is still on then: each
    /// task that started has at most one STARTED notice, and exactly one if
    /// STARTED stays on from its submit to its result. Notices already
    /// queued stay until read. Thread-safe; never blocks on workers.
    pub fn set_notices(&self, kinds: NoticeKinds) {
        let mut st = self.shared.state.lock();
        st.notice_kinds = kinds;
        for w in st.workers.iter().flatten() {
            if kinds.started {
                w.area.control().ask_for_acks();
            } else {
                w.area.control().stop_acks();
            }
        }
    }

    /// Where task `id` is now: queued, sent, running (worker, start time)
    /// or done (its result waiting). Works whether or not notices are on.
    /// [`Error::NotFound`] for an unknown id or a collected result.
    pub fn task_status(&self, id: u64) -> Result<TaskStatus> {
        self.shared.state.lock().task_status(id)
    }

    /// A file descriptor that is readable while results wait to be
    /// collected by [`Pool::wait`] or notices to be read by
    /// [`Pool::notices`]. Owned by the pool: poll it, never read or close it.
    pub fn event_fd(&self) -> RawFd {
        self.shared.results_fd.as_raw_fd()
    }

    /// Stops accepting tasks; queued and running ones still finish. Then
    /// the workers exit. Calling it again, or after terminate, does nothing.
    pub fn close(&self) -> Result<()> {
        let mut st = self.shared.state.lock();
        if st.phase == Phase::Running {
            self.shared.set_phase(&mut st, Phase::Closed);
            drop(st);
            self.shared.wake();
        }
        Ok(())
    }

    /// Waits until a closed pool has finished every task and every worker
    /// has exited and been reaped. Fails with [`Error::InvalidArgument`] on
    /// a pool that was not closed, [`Error::TimedOut`] if time runs out first.
    pub fn join(&self, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        refuse_in_event_handler("join", self.id())?;
        let mut st = self.shared.state.lock();
        if st.phase == Phase::Running {
            return Err(Error::InvalidArgument(
                "the pool is still open: close (or terminate) it before joining".into(),
            ));
        }
        while !st.phase.is_final() {
            match deadline {
                Some(d) => {
                    if self.shared.changed.wait_until(&mut st, d).timed_out()
                        && !st.phase.is_final()
                    {
                        return Err(Error::TimedOut);
                    }
                }
                None => self.shared.changed.wait(&mut st),
            }
        }
        Ok(())
    }

    /// Stops now: kills every worker, reaps it, and ends every unfinished
    /// task as [`Outcome::Abandoned`]. Returns when no worker is left.
    pub fn terminate(&self) -> Result<()> {
        refuse_in_event_handler("terminate", self.id())?;
        let mut st = self.shared.state.lock();
        if !st.phase.is_final() {
            self.shared.set_phase(&mut st, Phase::Terminating);
            self.shared.wake();
            while !st.phase.is_final() {
                self.shared.changed.wait(&mut st);
            }
        }
        Ok(())
    }

    /// Cancels task `id`. A task waiting in the queue is dropped; one sent
    /// to a worker that has not started it is skipped by that worker; a
    /// running one has its worker stopped (SIGTERM, then SIGKILL after the
    /// kill grace) and replaced. Either way the task ends `Cancelled`,
    /// exactly once: at once when it had not started (or had just finished:
    /// the result it produced is dropped), once its worker is gone when it
    /// ran. The stop can only hit this task: the worker starts nothing else
    /// once the stop is claimed (`src/control.rs`). [`Error::NotFound`] for
    /// an id that is not pending (unknown, or its result is in).
    pub fn cancel(&self, id: u64) -> Result<()> {
        let grace = self.shared.limits.kill_grace;
        self.shared.state.lock().cancel(id, grace, None)
    }

    /// [`Pool::cancel`], with `signal` as the first signal a running
    /// task's worker gets (and its process group) instead of SIGTERM:
    /// SIGKILL kills at once; another (SIGUSR1, SIGINT) lets the task
    /// react, and SIGKILL follows after the kill grace. The same
    /// exactly-once rules hold.
    pub fn cancel_with_signal(&self, id: u64, signal: i32) -> Result<()> {
        check_signal(signal)?;
        let grace = self.shared.limits.kill_grace;
        self.shared.state.lock().cancel(id, grace, Some(signal))
    }

    /// Sends `signal` to the worker process running task `id`, without
    /// cancelling it: the task goes on (or dies of the signal: then it ends
    /// `WorkerLost`). Sent only while the task runs, and never to a worker
    /// for the task after it (the task is held on the worker's control
    /// page meanwhile). [`Error::NotFound`] when task `id` is not running
    /// (queued, not started yet, finished, or its worker is being stopped):
    /// nothing was sent.
    pub fn signal_task(&self, id: u64, signal: i32) -> Result<()> {
        check_signal(signal)?;
        // Decided, sent and released under one lock (see fate.rs).
        let mut st = self.shared.state.lock();
        let target = st.hold_for_signal(id)?;
        let sent = life::signal_held(&target, signal);
        target.release();
        drop(st);
        sent.map_err(|e| Error::io("pidfd_send_signal", e))
    }

    /// Grows or shrinks the pool to `n` workers (at least 1, at most
    /// [`MAX_WORKERS`]). Growing starts workers at once; shrinking retires
    /// idle workers first, then the least busy, each after the tasks it
    /// holds. Returns without waiting for either.
    pub fn resize(&self, n: usize) -> Result<()> {
        if n == 0 || n > MAX_WORKERS {
            return Err(Error::InvalidArgument(format!(
                "a pool needs 1 to {MAX_WORKERS} workers, not {n}"
            )));
        }
        let mut st = self.shared.state.lock();
        if !matches!(st.phase, Phase::Running) {
            return Err(Error::Closed("only a running pool can be resized".into()));
        }
        st.target = n;
        let mut excess = st.serving_count().saturating_sub(n);
        while excess > 0 {
            let slot = st.idle.last().copied().or_else(|| {
                st.workers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
                    .filter(|(_, w)| w.stop.is_none() && w.retiring.is_none())
                    .min_by_key(|(_, w)| (w.ready, w.tasks.len()))
                    .map(|(i, _)| i)
            });
            let Some(slot) = slot else { break };
            st.retire(slot, format!("the pool was resized to {n} workers"));
            excess -= 1;
        }
        drop(st);
        self.shared.wake();
        Ok(())
    }

    /// Replaces every worker, each after the tasks it holds (to load new
    /// code, say, without dropping work). New workers start at once.
    pub fn restart(&self) -> Result<()> {
        let mut st = self.shared.state.lock();
        if !matches!(st.phase, Phase::Running) {
            return Err(Error::Closed("only a running pool can be restarted".into()));
        }
        for slot in 0..st.workers.len() {
            st.retire(slot, "the pool was restarted".into());
        }
        drop(st);
        self.shared.wake();
        Ok(())
    }

    /// What the pool is doing now, and what it did so far.
    pub fn stats(&self) -> Stats {
        let st = self.shared.state.lock();
        let mut s = Stats {
            target: st.target,
            uncollected: st.uncollected(),
            counts: st.counts,
            ..Stats::default()
        };
        for w in st.workers.iter().flatten() {
            s.workers += 1;
            match State::worker_state(w) {
                WorkerState::Idle => s.idle += 1,
                WorkerState::Busy => s.busy += 1,
                _ => {}
            }
            s.running += st.running_task(w).is_some() as usize;
        }
        // Every running task is pending (State::running_task): a count
        // that says otherwise is a bug the tests must see.
        debug_assert!(s.running <= st.tasks.len(), "{s:?}");
        s.queued = st.tasks.len().saturating_sub(s.running);
        s
    }

    /// Every worker process of the pool now.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let st = self.shared.state.lock();
        let list: Vec<WorkerInfo> = st
            .workers
            .iter()
            .flatten()
            .map(|w| WorkerInfo {
                pid: w.pid,
                state: State::worker_state(w),
                task: st.running_task(w),
                tasks_done: w.done,
                rss: 0,
            })
            .collect();
        drop(st);
        // Read outside the lock: /proc is slow next to everything else.
        list.into_iter()
            .map(|mut info| {
                info.rss = sys::rss_of(info.pid).unwrap_or(0);
                info
            })
            .collect()
    }

    /// Terminates if needed and waits for the supervisor thread to end.
    /// Afterwards no child process of the pool exists. Idempotent. Does
    /// nothing when called from the event handler (it would wait for itself).
    pub fn shutdown(&self) {
        if refuse_in_event_handler("shutdown", self.id()).is_err() {
            return;
        }
        let _ = self.terminate();
        if let Some(handle) = self.supervisor.lock().take() {
            let _ = handle.join();
        }
    }

    /// Pids of the current workers (ready or starting).
    pub fn worker_pids(&self) -> Vec<i32> {
        self.shared
            .state
            .lock()
            .workers
            .iter()
            .flatten()
            .map(|w| w.pid)
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.in_owner_process() {
            self.shutdown();
        }
    }
}
