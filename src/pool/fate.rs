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

use super::notice::NoticeKind;
use super::result::{Outcome, TaskResult};
use super::state::{Phase, State, Worker};
use super::task::{Stop, Task};
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
        if self.notice_kinds.started {
            // A task that started has its notice before its result.
            if let Some(t) = self.tasks.get(&task_id).filter(|t| !t.noticed) {
                if let (Some(at), holder) = self.start_of(t, task_id) {
                    let pid = if holder != 0 { holder } else { pid };
                    self.notice(NoticeKind::Started, task_id, pid, at);
                }
            }
        }
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
    /// `signal`: the stop's first signal (`None`: SIGTERM); SIGKILL after
    /// the grace either way, and at once when `signal` is SIGKILL.
    pub(crate) fn cancel(&mut self, id: u64, grace: Duration, signal: Option<i32>) -> Result<()> {
        let grace = if signal == Some(libc::SIGKILL) {
            Duration::ZERO
        } else {
            grace
        };
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
            return Err(Error::internal(format!(
                "task {id} has no worker (a bug in billiard)"
            )));
        };
        let pid = w.pid;
        match &w.stop {
            // Its worker is being stopped for it already (time limit): the
            // task ends cancelled instead.
            Some(stop) if stop.outcome_for(id).is_some() => {
                w.stop = Some(Stop::Cancel { task: id, signal });
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
        let message = match cancel_on_worker(w, id, acked) {
            CancelSeen::Running => {
                let stop = Stop::Cancel { task: id, signal };
                self.begin_stop(slot, generation, stop, grace);
                return Ok(());
            }
            CancelSeen::NotStarted => {
                format!("task {id} was cancelled before worker {pid} started it")
            }
            CancelSeen::Finished => {
                format!(
                    "task {id} was cancelled as worker {pid} finished it; its result was dropped"
                )
            }
        };
        // It stays in the worker's list until its (skipped or dropped)
        // result arrives; finishing it now makes that result a no-op.
        self.finish(id, Outcome::Cancelled, message.into_bytes(), pid, None, now);
        Ok(())
    }

    /// Takes hold of task `id` for a signal to its worker (see
    /// [`crate::Pool::signal_task`]): only a task that runs, held on its
    /// worker's control page so that it cannot end until the hold is
    /// released (`src/control.rs`); the caller sends the signal and
    /// releases the hold under this same lock. [`Error::NotFound`] when the
    /// task does not run: no signal may go out for it.
    pub(crate) fn hold_for_signal(&mut self, id: u64) -> Result<SignalTarget> {
        let not_running = |why: String| {
            Err(Error::NotFound(format!(
                "task {id} {why}; no signal was sent"
            )))
        };
        let Some(task) = self.tasks.get(&id) else {
            return not_running("is not pending (unknown, or it finished)".into());
        };
        let (started, _) = self.start_of(task, id);
        let Some((slot, generation)) = task.holder else {
            return not_running("waits in the queue".into());
        };
        let Some(w) = self.worker_mut(slot, generation) else {
            return not_running("has no worker".into());
        };
        if w.stop.is_some() || w.dead {
            return not_running(format!("is on worker {}, which is being stopped", w.pid));
        }
        if started.is_none() {
            return not_running(format!("has not started on worker {}", w.pid));
        }
        if w.pidfd.is_none() && !w.own_child {
            // Its fork server may reap it any time: its pid is not ours.
            return Err(Error::InvalidArgument(
                "signals to a fork server's workers need pidfds (Linux 5.3 and later)".into(),
            ));
        }
        // A worker without the control page holds this task alone (its
        // window is one) and gets no other before the pool applies this
        // one's result, which needs the lock the caller holds.
        let held = w.control.then(|| w.area.clone());
        if let Some(area) = &held {
            if !area.control().hold(id) {
                return not_running("has just finished".into());
            }
        }
        Ok(SignalTarget {
            task: id,
            pid: w.pid,
            pidfd: w.pidfd.clone(),
            own_child: w.own_child,
            held,
        })
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
            let pid = w.pid;
            let end = |st: &mut State, outcome: Outcome, message: String| {
                st.finish(
                    task_id,
                    outcome,
                    message.into_bytes(),
                    pid,
                    Some(status),
                    now,
                );
            };
            if let Some(outcome) = w.stop.as_ref().and_then(|s| s.outcome_for(task_id)) {
                end(self, outcome, about.to_string());
            } else if started && oom_task == task_id {
                let message = format!(
                    "{about} while running task {task_id}: an allocation failed \
                     (out of memory: {memory_limit})"
                );
                end(self, Outcome::MemoryLimit, message);
                settled.lost.push(task_id);
            } else if started {
                let message = format!("{about} while running task {task_id}");
                end(self, Outcome::WorkerLost, message);
                settled.lost.push(task_id);
            } else if !live {
                let message = format!(
                    "{about} before starting task {task_id}; the pool stopped before it could \
                     run it elsewhere"
                );
                end(self, Outcome::Abandoned, message);
            } else if let Err(why) = take_payload_back(w, task_id, t) {
                // Never run on a payload the pool cannot vouch for: the
                // task fails, clearly, instead.
                end(
                    self,
                    Outcome::Failed,
                    format!("{about} before starting task {task_id}; {why}"),
                );
            } else {
                self.requeue(task_id);
            }
        }
        settled
    }
}

/// The worker a signal for one task goes to ([`State::hold_for_signal`]),
/// with the task held on its control page until [`SignalTarget::release`].
pub(crate) struct SignalTarget {
    pub task: u64,
    pub pid: libc::pid_t,
    pub pidfd: Option<Arc<std::os::fd::OwnedFd>>,
    /// See [`Worker::own_child`].
    pub own_child: bool,
    /// Its area, when the task is held there.
    held: Option<Arc<crate::area::Area>>,
}

impl SignalTarget {
    /// Ends the hold: the task may end again.
    pub(crate) fn release(self) {
        if let Some(area) = self.held {
            area.control().release_hold(self.task);
        }
    }
}

/// Makes task `task_id` (`t`), which dead worker `w` never started, runnable elsewhere:
/// a payload it had in `w`'s task region goes into a TASK frame, if the
/// pool can vouch for it (see [`Worker::area_trusted`]). Only for a task
/// about to be requeued: reading a large payload back costs a copy.
fn take_payload_back(
    w: &Worker,
    task_id: u64,
    t: &mut Task,
) -> std::result::Result<(), &'static str> {
    let Some(len) = t.in_area.take() else {
        return Ok(());
    };
    if !w.area_trusted {
        return Err(
            "its payload was in the shared area of that worker program, which could \
                    have written it before dying, so the pool does not run it again",
        );
    }
    let payload = w.area.read_task(len).map_err(|_| {
        "its payload, in the worker's shared area, could not be read back to run it elsewhere"
    })?;
    t.frame = Some(Arc::new(protocol::encode_task(task_id, &payload)));
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, OwnedFd};

    use parking_lot::Mutex;

    use super::*;
    use crate::area::Area;
    use crate::pool::state::WorkerFds;
    use crate::pool::task::{Task, TimeLimits};

    /// A running state with one ready worker (no process: the rules need
    /// none), and the fds it uses.
    struct Fixture {
        st: State,
        _fds: Vec<OwnedFd>,
    }

    fn fixture(control: bool) -> Fixture {
        let results = sys::eventfd().unwrap();
        let wake = sys::eventfd().unwrap();
        let epoll = Arc::new(crate::watch::Epoll::new().unwrap());
        let mut st = State::new(results.as_raw_fd(), epoll, wake.as_raw_fd(), 16).unwrap();
        st.phase = Phase::Running;
        st.target = 1;
        let mut f = Fixture {
            st,
            _fds: vec![results, wake],
        };
        f.add_worker(control);
        f
    }

    impl Fixture {
        fn add_worker(&mut self, control: bool) -> usize {
            let (a, b) = sys::socketpair().unwrap();
            let generation = self.st.workers.len() as u32 + 1;
            let mut w = Worker::new(
                generation,
                1000 + generation as i32,
                WorkerFds {
                    channel: Arc::new(a),
                    results: Arc::new(b),
                    area: Arc::new(Area::new(4096).unwrap()),
                    pidfd: None,
                    inbox: Arc::new(Mutex::new(Vec::new())),
                    area_trusted: true,
                    own_child: true,
                },
                None,
            );
            w.ready = true;
            w.control = control;
            self.st.workers.push(Some(w));
            let slot = self.st.workers.len() - 1;
            self.st.worker_free(slot);
            slot
        }

        fn worker(&mut self, slot: usize) -> &mut Worker {
            self.st.workers[slot].as_mut().unwrap()
        }

        /// Submits task `id` the way `Pool::submit` does.
        fn submit(&mut self, id: u64) {
            let frame = Arc::new(protocol::encode_task(id, b"x"));
            let task = Task::new(frame, None, id * 10, TimeLimits::default());
            self.st.tasks.insert(id, task);
            match self.st.pick_worker() {
                Some(slot) => {
                    let generation = self.worker(slot).generation;
                    if self.st.assign(slot, id).is_some() {
                        self.st.direct_done(slot, generation, None);
                    }
                }
                None => self.st.queue.push_back(id),
            }
        }

        /// The worker in `slot` starts task `id`, as billiard's loop does.
        fn start(&mut self, slot: usize, id: u64) {
            let area = self.worker(slot).area.clone();
            area.control().begin_task(id);
            area.progress().mark_started(id);
        }

        /// The worker in `slot` dies with `status`; settles its tasks.
        fn die(&mut self, slot: usize, status: sys::ExitStatus) -> Settled {
            let w = self.st.workers[slot].take().unwrap();
            self.st.idle.retain(|&s| s != slot);
            self.st
                .settle_dead_worker(&w, status, "worker died", "no limit")
        }

        fn result(&mut self, id: u64) -> TaskResult {
            self.st.take_done(Some(id)).expect("a result")
        }
    }

    const KILLED: sys::ExitStatus = sys::ExitStatus::Signal(libc::SIGKILL);

    #[test]
    fn a_task_that_never_started_goes_back_to_the_queue_every_time_its_worker_dies() {
        let mut f = fixture(true);
        f.submit(7);
        for round in 0..5 {
            let slot = f.st.workers.iter().position(Option::is_some).unwrap();
            let settled = f.die(slot, KILLED);
            assert!(settled.lost.is_empty());
            assert_eq!(f.st.queue, [7], "round {round}: requeued");
            assert!(f.st.take_done(None).is_none(), "round {round}: no result");
            f.add_worker(true);
            assert!(
                f.st.queue.is_empty(),
                "round {round}: the new worker took it"
            );
        }
    }

    #[test]
    fn a_task_that_started_ends_worker_lost_and_the_ones_behind_it_are_requeued_in_order() {
        let mut f = fixture(true);
        for id in [1, 2, 3] {
            f.submit(id);
        }
        f.start(0, 1);
        let settled = f.die(0, KILLED);
        assert_eq!(settled.lost, [1]);
        let r = f.result(1);
        assert_eq!(
            (r.outcome, r.signal, r.tag),
            (Outcome::WorkerLost, Some(9), 10)
        );
        assert_eq!(r.text(), "worker died while running task 1");
        assert_eq!(f.st.queue, [2, 3]);
    }

    #[test]
    fn a_task_that_never_started_is_abandoned_not_lost_when_the_pool_stops_first() {
        let mut f = fixture(true);
        f.submit(4);
        f.st.phase = Phase::Failing;
        f.die(0, KILLED);
        let r = f.result(4);
        assert_eq!(r.outcome, Outcome::Abandoned, "{}", r.text());
        assert!(f.st.queue.is_empty());
    }

    #[test]
    fn a_stopped_workers_task_gets_the_stops_outcome_and_the_unstarted_ones_run_elsewhere() {
        let mut f = fixture(true);
        f.submit(1);
        f.submit(2);
        f.start(0, 1);
        f.worker(0).stop = Some(Stop::TimeLimit {
            task: 1,
            limit: Duration::from_millis(5),
        });
        f.die(0, sys::ExitStatus::Signal(libc::SIGTERM));
        assert_eq!(f.result(1).outcome, Outcome::TimeLimit);
        assert_eq!(f.st.queue, [2]);
    }

    #[test]
    fn a_queued_task_is_cancelled_at_once_and_an_unknown_one_is_not_found() {
        let mut f = fixture(true);
        f.st.workers[0].as_mut().unwrap().ready = false; // takes nothing
        f.st.idle.clear();
        f.submit(5);
        f.st.cancel(5, Duration::ZERO, None).unwrap();
        let r = f.result(5);
        assert_eq!(r.outcome, Outcome::Cancelled);
        assert!(r.text().contains("queue"), "{}", r.text());
        assert!(f.st.queue.is_empty());
        assert!(matches!(
            f.st.cancel(5, Duration::ZERO, None),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            f.st.cancel(99, Duration::ZERO, None),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn a_task_sent_but_not_started_is_cancelled_at_once_and_the_worker_will_skip_it() {
        let mut f = fixture(true);
        f.submit(1);
        f.submit(2);
        f.start(0, 1);
        f.st.cancel(2, Duration::from_secs(1), None).unwrap();
        assert_eq!(f.result(2).outcome, Outcome::Cancelled);
        let w = f.worker(0);
        assert!(w.stop.is_none(), "the worker runs on");
        assert!(
            w.area.control().claim_cancel(2),
            "the worker finds it in the list"
        );
    }

    #[test]
    fn only_a_running_task_is_held_for_a_signal_and_its_end_waits_for_the_release() {
        let mut f = fixture(true);
        f.submit(1);
        f.submit(2);
        assert!(
            matches!(f.st.hold_for_signal(1), Err(Error::NotFound(_))),
            "not started"
        );
        assert!(
            matches!(f.st.hold_for_signal(9), Err(Error::NotFound(_))),
            "unknown"
        );
        f.start(0, 1);
        let target = f.st.hold_for_signal(1).unwrap();
        assert_eq!(target.pid, f.worker(0).pid);
        let control = f.worker(0).area.clone();
        assert_eq!(
            control.control().claim_stop(1),
            StopClaim::Finished,
            "held: neither a stop nor the task's end can take it now"
        );
        target.release();
        assert!(control.control().end_task(1), "released: the task ends");
        assert!(
            matches!(f.st.hold_for_signal(1), Err(Error::NotFound(_))),
            "a task that ended is not held"
        );
    }

    #[test]
    fn a_running_task_is_cancelled_by_a_claimed_stop_and_its_worker_starts_nothing_more() {
        let mut f = fixture(true);
        f.submit(1);
        f.submit(2);
        f.start(0, 1);
        f.st.cancel(1, Duration::from_secs(1), None).unwrap();
        assert!(
            f.st.take_done(None).is_none(),
            "ends when the worker is gone"
        );
        assert_eq!(f.st.stop_requests, [(0, 1)]);
        let w = f.worker(0);
        assert_eq!(
            w.stop,
            Some(Stop::Cancel {
                task: 1,
                signal: None
            })
        );
        assert!(
            !w.area.control().end_task(1),
            "the worker must not go on to task 2"
        );
        assert_eq!(f.st.pick_worker(), None, "a stopping worker takes nothing");
        f.die(0, sys::ExitStatus::Signal(libc::SIGTERM));
        assert_eq!(f.result(1).outcome, Outcome::Cancelled);
        assert_eq!(f.st.queue, [2], "the next task was not hit");
    }

    #[test]
    fn a_task_cancelled_as_it_finishes_is_cancelled_and_its_worker_is_not_stopped() {
        let mut f = fixture(true);
        f.submit(1);
        f.submit(2);
        f.start(0, 1);
        assert!(
            f.worker(0).area.control().end_task(1),
            "the worker finished it"
        );
        f.start(0, 2);
        f.st.cancel(1, Duration::from_secs(1), None).unwrap();
        let r = f.result(1);
        assert_eq!(r.outcome, Outcome::Cancelled);
        assert!(r.text().contains("dropped"), "{}", r.text());
        assert!(f.worker(0).stop.is_none());
        assert!(f.st.stop_requests.is_empty(), "task 2 runs on");
    }

    #[test]
    fn a_worker_without_the_control_page_holds_one_task_and_is_stopped_only_for_it() {
        let mut f = fixture(false);
        f.submit(1);
        f.submit(2);
        assert_eq!(f.worker(0).tasks, [1], "a window of one");
        assert_eq!(f.st.queue, [2]);
        f.st.cancel(1, Duration::from_secs(1), None).unwrap();
        assert_eq!(f.result(1).outcome, Outcome::Cancelled, "not acknowledged");
        assert!(f.worker(0).stop.is_none());
    }

    #[test]
    fn a_hard_limit_stops_a_worker_only_while_its_task_runs() {
        let mut f = fixture(true);
        f.submit(1);
        f.start(0, 1);
        assert!(State::may_stop_for(f.worker(0), 1, true));
        let mut f = fixture(true);
        f.submit(1);
        f.start(0, 1);
        assert!(f.worker(0).area.control().end_task(1));
        assert!(!State::may_stop_for(f.worker(0), 1, true), "it finished");
        assert!(
            State::may_stop_for(f.worker(0), 2, false),
            "a task never seen to start is the one the worker hangs in"
        );
    }

    #[test]
    fn a_large_payload_is_in_the_area_before_its_task_exists() {
        let mut f = fixture(true);
        f.worker(0).area_tasks = true;
        let reserved = f.st.reserve_idle_area(100_000).expect("an idle worker");
        assert_eq!(
            f.st.pick_worker(),
            None,
            "a reserved worker takes nothing else"
        );
        // The worker dies while the submitter copies: no task of it is
        // settled, whatever the area holds.
        f.die(0, KILLED);
        assert!(f.st.tasks.is_empty() && f.st.queue.is_empty());
        let frame = Arc::new(protocol::encode_task(1, b"x"));
        f.st.tasks
            .insert(1, Task::new(frame, Some(1), 0, TimeLimits::default()));
        assert!(
            f.st.assign_reserved(&reserved, 1).is_none(),
            "the submitter sends the payload in a frame instead"
        );
    }

    #[test]
    fn a_payload_in_a_worker_programs_area_is_not_run_again_but_one_in_a_fork_workers_is() {
        for trusted in [true, false] {
            let mut f = fixture(true);
            f.worker(0).area_trusted = trusted;
            let area = f.worker(0).area.clone();
            area.write_task(b"payload").unwrap();
            let frame = Arc::new(protocol::encode_task_shm(1, 8192, 7));
            f.st.tasks
                .insert(1, Task::new(frame, Some(7), 0, TimeLimits::default()));
            if f.st.assign(0, 1).is_some() {
                f.st.direct_done(0, 1, None);
            }
            f.die(0, KILLED);
            if trusted {
                assert_eq!(f.st.queue, [1], "run elsewhere");
                let t = f.st.tasks.get(&1).unwrap();
                assert_eq!(
                    t.frame.as_deref(),
                    Some(&protocol::encode_task(1, b"payload")),
                    "with the payload in the frame"
                );
            } else {
                let r = f.result(1);
                assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
                assert!(f.st.queue.is_empty());
            }
        }
    }
}
