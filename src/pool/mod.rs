//! The safe Rust core: a [`Pool`] of worker processes.
//!
//! Host threads submit and wait; one supervisor thread per pool starts,
//! watches and reaps the workers. A submit that finds an idle worker writes
//! the task to that worker's channel from the submitting thread itself; a
//! result is handed straight to one waiting thread.

mod ids;
mod reader;
mod result;
mod state;
mod supervisor;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use reader::SessionEnd;
pub use result::{Outcome, TaskResult};
use state::{NoResult, Phase, State, Task};
pub(crate) use supervisor::LAUNCHER_TOKEN;
use supervisor::{Shared, Supervisor, WAKE};

use crate::area;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::{self, TASK_PREFIX};
use crate::spawn;
use crate::sys;

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
}

/// A pool of worker processes. Every method may be called from any thread at
/// once (`Pool` is `Send + Sync`). Dropping it terminates the workers and
/// reaps them: afterwards no child process of the pool exists.
pub struct Pool {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("phase", &self.shared.state.lock().phase)
            .finish()
    }
}

impl Pool {
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
        let epoll = sys::epoll_create().map_err(|e| Error::io("epoll_create1", e))?;
        sys::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake_fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE,
        )
        .map_err(|e| Error::io("epoll_ctl", e))?;
        let launcher = spawn::launcher_for(&config, epoll.as_raw_fd())?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(
                results_fd.as_raw_fd(),
                epoll.as_raw_fd(),
                config.prefetch,
            )),
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
        });
        let supervisor = Supervisor::new(shared.clone(), launcher, workers, config.start_timeout);
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
        if data.len() >= area::AREA_MIN {
            if let Some(id) = self.submit_through_area(data, opts)? {
                return Ok(id);
            }
        }
        let id = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        let frame = Arc::new(protocol::encode_task(id, data));
        let mut st = self.shared.state.lock();
        self.admit(&mut st, opts)?;
        st.tasks.insert(id, Task::new(frame, None, opts.tag));
        let send = match st.pick_worker() {
            Some(slot) => st.assign(slot, id),
            None => {
                st.queue.push_back(id);
                None
            }
        };
        drop(st);
        if let Some(send) = send {
            self.shared.send(send);
        }
        Ok(id)
    }

    /// Submits a large payload through the shared area of an idle worker:
    /// copied once, into memory the worker maps, instead of into a frame
    /// and through the channel. `None` when no idle worker has its area
    /// free (the caller sends the payload through a channel instead).
    fn submit_through_area(&self, data: &[u8], opts: &TaskOptions) -> Result<Option<u64>> {
        let mut st = self.shared.state.lock();
        self.admit(&mut st, opts)?;
        let Some(slot) = st.take_idle_area_worker() else {
            return Ok(None);
        };
        let id = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        let at = area::TASK_OFFSET as u64;
        let frame = Arc::new(protocol::encode_task_shm(id, at, data.len() as u64));
        st.tasks
            .insert(id, Task::new(frame, Some(data.len()), opts.tag));
        let Some((mut send, area)) = st.assign_through_area(slot, id, data.len()) else {
            // Unreachable (the slot came from the idle list under this
            // lock), but never leave the task stranded: it waits in the
            // queue with its payload in the frame.
            if let Some(t) = st.tasks.get_mut(&id) {
                t.frame = Some(Arc::new(protocol::encode_task(id, data)));
                t.in_area = None;
            }
            st.queue.push_back(id);
            return Ok(Some(id));
        };
        drop(st);
        if area.write_task(data).is_err() {
            // No memory to map the region: send the payload in the frame.
            let full = Arc::new(protocol::encode_task(id, data));
            let mut st = self.shared.state.lock();
            if let Some(t) = st.tasks.get_mut(&id) {
                t.frame = Some(full.clone());
                t.in_area = None;
            }
            st.task_region_done(slot, id);
            drop(st);
            send.frame = full;
        }
        self.shared.send(send);
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

    /// A file descriptor that is readable while results wait to be collected
    /// by [`Pool::wait`]. Owned by the pool: poll it, never read or close it.
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

    /// Terminates if needed and waits for the supervisor thread to end.
    /// Afterwards no child process of the pool exists. Idempotent.
    pub fn shutdown(&self) {
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
        self.shutdown();
    }
}
