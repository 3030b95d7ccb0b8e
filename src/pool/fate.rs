//! A task's fate: the one place that decides every transition of a task
//! from submit to its one result.
//!
//! ```text
//! queued --assign--> sent --start--> started --RESULT--> result (OK / FAILED)
//!   |                 |                 |
//!   |                 |                 +-- hard limit ----> TIME_LIMIT  (stop claimed)
//!   |                 |                 +-- cancel --------> CANCELLED   (stop claimed, or
//!   |                 |                 |                                 its result dropped)
//!   |                 |                 +-- worker died ---> WORKER_LOST (or MEMORY_LIMIT)
//!   |                 +-- cancel ---------------------------> CANCELLED   (the worker skips it)
//!   |                 +-- worker died or stopped ----------> requeued (front of the queue)
//!   +-- cancel -------------------------------------------> CANCELLED
//!   +-- terminate, pool failed (any state but result) -----> ABANDONED
//! ```
//!
//! Rules: a task that provably never started (no ACK, no progress-page
//! entry) is never `WORKER_LOST`: while the pool runs it goes back to the
//! queue as often as its worker dies (restart intensity ends a crash loop),
//! and when the pool stops first it is `ABANDONED`. A stop aimed at a task
//! is claimed on the worker's control page first (`src/control.rs`), so it
//! never hits another task. Everything here runs under the state lock and
//! touches no process, so each rule has a plain unit test below.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::result::{Outcome, TaskResult};
use super::state::{Phase, State, Worker};
use super::task::Stop;
use crate::control::StopClaim;
use crate::error::{Error, Result};
use crate::protocol;
use crate::sys;

/// How a dead worker's tasks were settled ([`State::settle_dead_worker`]).
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Tasks that had started and died with it (for `TaskLost` events).
    pub lost: Vec<u64>,
}

impl State {
    /// Removes a finished task and delivers its result exactly once.
    pub(crate) fn finish(
        &mut self,
        task_id: u64,
        outcome: Outcome,
        data: Vec<u8>,
        pid: i32,
        status: Option<sys::ExitStatus>,
        now: Instant,
    ) {
        let Some(task) = self.tasks.remove(&task_id) else {
            return;
        };
        self.counts.outcomes[outcome as usize] += 1;
        let (queued, running) = match task.started {
            Some(s) => (s - task.submitted, now - s),
            None => (now - task.submitted, Duration::ZERO),
        };
        let (exit_code, signal) = status.map_or((None, None), sys::ExitStatus::parts);
        let result = TaskResult {
            task_id,
            tag: task.tag,
            outcome,
            data,
            pid,
            exit_code,
            signal,
            queued,
            running,
        };
        self.deliver(result, task.waiter);
    }

    /// Puts a task its worker did not start back at the front of the queue.
    fn requeue(&mut self, task_id: u64) {
        if let Some(t) = self.tasks.get_mut(&task_id) {
            t.holder = None;
            self.queue.push_front(task_id);
        }
    }

    /// Ends every task not yet finished with `outcome`.
    pub(crate) fn finish_all(&mut self, outcome: Outcome, message: &str) {
        let holders: std::collections::HashMap<u64, i32> = self
            .workers
            .iter()
            .flatten()
            .flat_map(|w| w.tasks.iter().map(|&t| (t, w.pid)))
            .collect();
        let mut ids: Vec<u64> = self.tasks.keys().collect();
        ids.sort_unstable();
        let now = Instant::now();
        for id in ids {
            let pid = holders.get(&id).copied().unwrap_or(0);
            self.finish(id, outcome, message.as_bytes().to_vec(), pid, None, now);
        }
        self.queue.clear();
        for w in self.workers.iter_mut().flatten() {
            w.tasks.clear();
        }
    }

    /// Cancels task `id` (see [`crate::Pool::cancel`]). Under the lock, so
    /// that nothing can be assigned to a worker the cancel stops, and no
    /// result of the task can be applied after the cancel returned OK.
    pub(crate) fn cancel(&mut self, id: u64, grace: Duration) -> Result<()> {
        let Some(task) = self.tasks.get(&id) else {
            return Err(Error::NotFound(format!(
                "task {id} is not pending (unknown, or it finished)"
            )));
        };
        let now = Instant::now();
        let Some((slot, generation)) = task.holder else {
            self.queue.retain(|&t| t != id);
            let message = format!("task {id} was cancelled while it waited in the queue");
            self.finish(id, Outcome::Cancelled, message.into_bytes(), 0, None, now);
            return Ok(());
        };
        let acked = task.started.is_some();
        let Some(w) = self.worker_mut(slot, generation) else {
            return Err(Error::Io(format!(
                "task {id} has no worker (a bug in billiard)"
            )));
        };
        let pid = w.pid;
        match &w.stop {
            // Its worker is being stopped for it already (time limit): the
            // task ends cancelled instead.
            Some(stop) if stop.outcome_for(id).is_some() => {
                w.stop = Some(Stop::Cancel { task: id });
                return Ok(());
            }
            // Its worker is being stopped for another reason: whatever it
            // did of this task no longer counts.
            Some(_) => {
                let message =
                    format!("task {id} was cancelled while worker {pid} was being stopped");
                self.finish(id, Outcome::Cancelled, message.into_bytes(), pid, None, now);
                return Ok(());
            }
            None => {}
        }
        let stop_it = match cancel_on_worker(w, id, acked) {
            CancelSeen::NotStarted => {
                format!("task {id} was cancelled before worker {pid} started it")
            }
            CancelSeen::Finished => {
                format!(
                    "task {id} was cancelled as worker {pid} finished it; its result was dropped"
                )
            }
            CancelSeen::Running => String::new(),
        };
        if !stop_it.is_empty() {
            // It stays in the worker's list until its (skipped or dropped)
            // result arrives; finishing it now makes that result a no-op.
            self.finish(id, Outcome::Cancelled, stop_it.into_bytes(), pid, None, now);
            return Ok(());
        }
        self.begin_stop(slot, generation, Stop::Cancel { task: id }, grace);
        Ok(())
    }

    /// Whether the worker in `slot` may be stopped for `task`, whose hard
    /// time limit passed; `started` says whether the pool saw it start.
    /// A worker that reads its control page is stopped only if the stop
    /// could be claimed (the task still runs); one that does not holds no
    /// other task (its window is one), and a task it never reported
    /// starting is the one it hangs in.
    pub(crate) fn may_stop_for(w: &Worker, task: u64, started: bool) -> bool {
        if !w.control || !started {
            return true;
        }
        w.area.control().claim_stop(task) == StopClaim::Claimed
    }

    /// Settles every task a dead worker held. `w` was taken out of the
    /// state; `about` says how it ended; `memory_limit` describes the hard
    /// memory limit for a task that died out of memory. The caller
    /// dispatches the queue afterwards, so requeued tasks keep their order
    /// at its front.
    pub(crate) fn settle_dead_worker(
        &mut self,
        w: &Worker,
        status: sys::ExitStatus,
        about: &str,
        memory_limit: &str,
    ) -> Settled {
        let live = matches!(self.phase, Phase::Running | Phase::Closed);
        let oom_task = w.area.control().oom_task();
        let now = Instant::now();
        let mut settled = Settled::default();
        // Backwards, so that requeued tasks keep their order at the front.
        for &task_id in w.tasks.iter().rev() {
            let started_at = w.area.progress().started_at(task_id);
            let started = w.acked == Some(task_id) || started_at.is_some();
            let Some(t) = self.tasks.get_mut(&task_id) else {
                continue; // finished already (cancelled)
            };
            t.started = t.started.or(started_at);
            let mut rerunnable = true;
            if let (Some(len), false) = (t.in_area, started) {
                t.in_area = None;
                // Its payload is in the dead worker's area: another worker
                // gets it in the frame.
                match w.area.read_task(len) {
                    Ok(payload) => {
                        t.frame = Some(Arc::new(protocol::encode_task(task_id, &payload)))
                    }
                    Err(_) => rerunnable = false,
                }
            }
            let pid = w.pid;
            if let Some(outcome) = w.stop.as_ref().and_then(|s| s.outcome_for(task_id)) {
                self.finish(
                    task_id,
                    outcome,
                    about.as_bytes().to_vec(),
                    pid,
                    Some(status),
                    now,
                );
            } else if started && oom_task == task_id {
                let message = format!(
                    "{about} while running task {task_id}: an allocation failed \
                     (out of memory: {memory_limit})"
                );
                let message = message.into_bytes();
                self.finish(
                    task_id,
                    Outcome::MemoryLimit,
                    message,
                    pid,
                    Some(status),
                    now,
                );
                settled.lost.push(task_id);
            } else if started {
                let message = format!("{about} while running task {task_id}").into_bytes();
                self.finish(
                    task_id,
                    Outcome::WorkerLost,
                    message,
                    pid,
                    Some(status),
                    now,
                );
                settled.lost.push(task_id);
            } else if live && rerunnable {
                self.requeue(task_id);
            } else {
                let why = if rerunnable {
                    "the pool stopped before it could run it elsewhere"
                } else {
                    "its payload, in the worker's shared area, could not be read back to run it \
                     elsewhere"
                };
                let message = format!("{about} before starting task {task_id}; {why}");
                let message = message.into_bytes();
                self.finish(task_id, Outcome::Abandoned, message, pid, Some(status), now);
            }
        }
        settled
    }
}

/// What a cancel found on the worker holding the task.
enum CancelSeen {
    /// The worker has not started it and will skip it.
    NotStarted,
    /// It ran and finished (the worker may have moved on).
    Finished,
    /// It runs, and the worker will start nothing else until stopped.
    Running,
}

/// Settles a cancel of `id` with worker `w` (see `src/control.rs`): ask
/// first, then look for a start; take the request back if it started, and
/// then claim the stop.
fn cancel_on_worker(w: &Worker, id: u64, acked: bool) -> CancelSeen {
    if !w.control {
        // A worker without the control page runs what it was sent, one
        // task at a time: a task it has not acknowledged ends now (its
        // result is dropped when it comes); one it has is stopped.
        return if acked {
            CancelSeen::Running
        } else {
            CancelSeen::NotStarted
        };
    }
    let control = w.area.control();
    control.request_cancel(id);
    let started = acked || w.area.progress().started_at(id).is_some();
    if !started || !control.claim_cancel(id) {
        return CancelSeen::NotStarted;
    }
    match control.claim_stop(id) {
        StopClaim::Claimed => CancelSeen::Running,
        StopClaim::Finished => CancelSeen::Finished,
    }
}
