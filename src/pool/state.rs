//! The pool's shared state, behind one mutex: tasks, queue, workers as the
//! scheduler sees them, finished results and the threads waiting for them.
//!
//! Every accepted task is in `tasks` until it finishes; finishing removes it
//! and hands its result to exactly one place (a waiter or the `done` store),
//! which is what makes delivery exactly-once.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::ids::{IdMap, SeqMap};
use super::notice::Notice;
use super::result::TaskResult;
use super::task::{Stop, Task};
use super::timers::{Due, Timers};
use crate::area::{self, Area};
use crate::config::NoticeKinds;
use crate::error::Error;
use crate::progress::monotonic_ns;
use crate::sys;
use crate::watch::{Epoll, Token, OUTPUT, QUIET, RESULTS_EVENTS};

/// Where the pool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Workers are starting; `Pool::new` waits.
    Starting,
    /// Accepting tasks.
    Running,
    /// No new tasks; queued and running ones finish, then workers stop.
    Closed,
    /// `terminate` asked: the supervisor kills and reaps everything.
    Terminating,
    /// Closed, drained, every worker exited and reaped. Final.
    Joined,
    /// Terminated; every worker reaped. Final.
    Terminated,
    /// Could not start or keep workers; the supervisor is stopping them.
    Failing,
    /// Could not start or keep workers; every worker reaped. Final.
    Failed,
}

impl Phase {
    /// The supervisor has stopped and no worker exists.
    pub(crate) fn is_final(self) -> bool {
        matches!(self, Phase::Joined | Phase::Terminated | Phase::Failed)
    }
}

/// What a worker is doing, for [`WorkerInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Started, not ready yet.
    Starting,
    /// Ready, holding no task.
    Idle,
    /// Running a task (or holding some).
    Busy,
    /// Takes no new task; exits after those it holds.
    Retiring,
    /// Being stopped by the pool.
    Stopping,
}

/// Who reads a worker's channel right now (see `reader.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    Supervisor,
    /// A thread waiting for a task the worker holds.
    Waiter,
}

/// Bytes read from a worker's channel and not yet applied. Locked by
/// whoever reads the channel (only one party at a time, by the role); a
/// waiting thread holds it while it blocks reading, so nobody else may
/// lock it without holding the role.
pub(crate) type Inbox = Arc<Mutex<Vec<u8>>>;

/// A worker as the scheduler sees it.
pub(crate) struct Worker {
    pub generation: u32,
    pub pid: libc::pid_t,
    /// Its task socket (the pool's end).
    pub channel: Arc<OwnedFd>,
    /// The read end of its results pipe.
    pub results: Arc<OwnedFd>,
    /// Its shared area: where it records the task it starts, and where
    /// large payloads and replies travel.
    pub area: Arc<Area>,
    /// Its pidfd (none on old kernels): a thread reading its results
    /// watches it too, to see its death even while a process it started
    /// holds the results pipe open.
    pub pidfd: Option<Arc<OwnedFd>>,
    /// When the first task it holds became the first (CLOCK_MONOTONIC ns):
    /// the start of that task's time limits if it never reports starting.
    pub front_since: u64,
    /// Its task region holds only what the pool wrote: it is a FORK worker
    /// (billiard's own loop) or said `FEATURE_TASKS_READ_ONLY`. So a payload
    /// there can be run elsewhere when it dies before starting the task;
    /// any other worker program could have written the region itself.
    pub area_trusted: bool,
    /// It is the host's child (FORK, SPAWN), which the supervisor reaps:
    /// its pid is the pool's to signal until then.
    pub own_child: bool,
    /// When its stop's grace ends (CLOCK_MONOTONIC ns): the SIGKILL to its
    /// group then, whether or not it is still there.
    pub kill_at: Option<u64>,
    /// Its task region is reserved by a submitting thread copying a large
    /// payload there ([`State::reserve_idle_area`]): it takes nothing else.
    pub area_reserved: bool,
    /// Said hello: may take tasks.
    pub ready: bool,
    /// Said in its HELLO that it takes TASK_SHM frames.
    pub area_tasks: bool,
    /// Said in its HELLO that it reads its control page (cancel list,
    /// RSS reports, the soft-limit signal).
    pub control: bool,
    /// Tasks handed to it so far.
    pub given: u64,
    /// Tasks it finished.
    pub done: u64,
    /// Replace it once it was given this many tasks.
    pub max_tasks: Option<u64>,
    /// Takes no more tasks; its channel is closed once those it has are
    /// done, and a new worker takes its place (why).
    pub retiring: Option<String>,
    /// The task whose payload is in its task region, if any: the region
    /// belongs to the pool's submitting thread and then that task until
    /// the task's result arrives (or the worker dies).
    pub task_region: Option<u64>,
    /// Largest payload written to the task region since it was given back.
    pub task_region_used: usize,
    /// Tasks handed to it and not finished (at most the pool's prefetch).
    /// It runs them one at a time; all but the one it started last (see
    /// its progress page) have not started.
    pub tasks: Vec<u64>,
    /// The task it last sent an (optional) ACK frame for.
    pub acked: Option<u64>,
    /// Frames waiting for room in the channel, and how many bytes of the
    /// first already went out. Written by the supervisor on EPOLLOUT.
    pub outbox: VecDeque<Arc<Vec<u8>>>,
    pub outbox_sent: usize,
    /// A host thread is writing a frame to the channel itself right now;
    /// nobody else writes until it is done.
    pub direct_sending: bool,
    /// EPOLLOUT is armed on the channel (changed only under the lock).
    pub out_armed: bool,
    /// Bytes read from its channel and not yet applied.
    pub inbox: Inbox,
    /// Who reads its channel now, if anyone.
    pub reading: Option<Reader>,
    /// The supervisor saw its channel become readable (or its pidfd) while
    /// a waiting thread read the channel: it must look again afterwards.
    pub missed_edge: bool,
    /// Its frames are being applied; the thread applying them writes its
    /// outbox afterwards (so assigning a task to it arms nothing).
    pub applying: bool,
    /// The supervisor saw it exit (set under the lock before it reaps it,
    /// and before its accounting, which waits for a waiting thread reading
    /// its channel to give the channel back): no host thread may signal
    /// its pid any more.
    pub dead: bool,
    /// Why the pool is stopping it, if it is.
    pub stop: Option<Stop>,
    /// A FATAL message it sent before exiting.
    pub last_words: Option<String>,
}

/// What the pool holds of a new worker's process: its channel, results
/// pipe, area, pidfd and inbox (shared with the supervisor's view).
pub(crate) struct WorkerFds {
    pub channel: Arc<OwnedFd>,
    pub results: Arc<OwnedFd>,
    pub area: Arc<Area>,
    pub pidfd: Option<Arc<OwnedFd>>,
    pub inbox: Inbox,
    /// See [`Worker::area_trusted`].
    pub area_trusted: bool,
    /// See [`Worker::own_child`].
    pub own_child: bool,
}

impl Worker {
    /// A worker just started: not ready until its HELLO.
    pub(crate) fn new(
        generation: u32,
        pid: libc::pid_t,
        fds: WorkerFds,
        max_tasks: Option<u64>,
    ) -> Worker {
        Worker {
            generation,
            pid,
            channel: fds.channel,
            results: fds.results,
            area: fds.area,
            pidfd: fds.pidfd,
            front_since: 0,
            kill_at: None,
            area_trusted: fds.area_trusted,
            own_child: fds.own_child,
            area_reserved: false,
            ready: false,
            area_tasks: false,
            control: false,
            given: 0,
            done: 0,
            max_tasks,
            retiring: None,
            task_region: None,
            task_region_used: 0,
            inbox: fds.inbox,
            reading: None,
            missed_edge: false,
            applying: false,
            dead: false,
            tasks: Vec::new(),
            acked: None,
            outbox: VecDeque::new(),
            outbox_sent: 0,
            direct_sending: false,
            out_armed: false,
            stop: None,
            last_words: None,
        }
    }
}

/// Turns EPOLLOUT on or off for a worker's task socket. Called under the
/// state lock, so that turning it on and off cannot be reordered between
/// threads. (Changing a gone worker's interest fails harmlessly.)
fn set_epollout(epoll: &Epoll, slot: usize, w: &mut Worker, on: bool) {
    if w.out_armed == on {
        return;
    }
    w.out_armed = on;
    let events = if on { OUTPUT } else { QUIET };
    let token = Token::Tasks {
        slot,
        generation: w.generation,
    };
    let _ = epoll.modify(w.channel.as_raw_fd(), events, token);
}

/// Sets whether the supervisor's epoll watches a worker's results pipe for
/// input: not while a waiting thread reads the pipe itself. Called under
/// the state lock. Turning input back on reports bytes already waiting, so
/// none is left unread.
pub(crate) fn watch_results(epoll: &Epoll, slot: usize, w: &Worker) {
    let events = if w.reading == Some(Reader::Waiter) {
        QUIET
    } else {
        RESULTS_EVENTS
    };
    let token = Token::Results {
        slot,
        generation: w.generation,
    };
    let _ = epoll.modify(w.results.as_raw_fd(), events, token);
}

/// A worker's task region, reserved by a submitting thread
/// ([`State::reserve_idle_area`]).
pub(crate) struct AreaReservation {
    pub slot: usize,
    pub generation: u32,
    pub area: Arc<Area>,
}

/// Adds a task to those worker `w` holds; a task that is the first it
/// holds starts its clock now (see [`Worker::front_since`]).
fn push_task(w: &mut Worker, task_id: u64) {
    if w.tasks.is_empty() {
        w.front_since = monotonic_ns();
    }
    w.tasks.push(task_id);
}

/// A frame to send to a worker, outside the lock.
pub(crate) struct Send {
    pub slot: usize,
    pub generation: u32,
    pub channel: Arc<OwnedFd>,
    pub frame: Arc<Vec<u8>>,
}

struct Mailbox {
    wake: Arc<Wake>,
    got: Option<TaskResult>,
}

/// How a waiting thread learns that its mailbox has a result: a flag it may
/// watch without the lock, and a condvar to sleep on.
pub(crate) struct Wake {
    pub cv: Condvar,
    mail: AtomicBool,
}

impl Wake {
    /// Whether a result was put in the mailbox (read it under the lock).
    pub(crate) fn has_mail(&self) -> bool {
        self.mail.load(Ordering::Acquire)
    }

    pub(crate) fn clear_mail(&self) {
        self.mail.store(false, Ordering::Relaxed);
    }
}

pub(crate) struct State {
    pub phase: Phase,
    /// Why the pool failed to start or keep workers.
    pub failure: Option<Error>,
    pub tasks: SeqMap<Task>,
    pub queue: VecDeque<u64>,
    pub workers: Vec<Option<Worker>>,
    pub idle: Vec<usize>,
    /// Submitters blocked on a full queue.
    pub blocked_submitters: usize,
    /// Channels the supervisor must read again: a waiting thread read them
    /// while the supervisor saw an edge, or hit trouble there.
    pub recheck: Vec<(usize, u32)>,
    done: SeqMap<TaskResult>,
    done_order: VecDeque<u64>,
    any_waiters: VecDeque<u64>,
    /// Tasks some thread waits for by id.
    claimed: usize,
    mailboxes: IdMap<Mailbox>,
    /// Wake objects of waiters that left, for the next ones: waiting
    /// allocates nothing once the pool is warm.
    spare_wakes: Vec<Arc<Wake>>,
    next_waiter: u64,
    results_fd: RawFd,
    /// `results_fd` is signalled (results or notices wait).
    results_fd_ready: bool,
    /// Which notices the host asked for.
    pub notice_kinds: NoticeKinds,
    /// Notices not yet read, oldest first.
    pub(super) notices: VecDeque<Notice>,
    /// The pool's epoll set (the supervisor waits in it).
    pub(crate) epoll: Arc<Epoll>,
    /// Most tasks in flight per worker.
    prefetch: usize,
    /// Time limits and kill deadlines.
    pub timers: Timers,
    /// Workers the pool should have.
    pub target: usize,
    wake_fd: RawFd,
    /// Counts for `stats`.
    pub counts: Counts,
    /// Workers being stopped that the supervisor must send the first
    /// signal to ([`State::begin_stop`]).
    pub stop_requests: Vec<(usize, u32)>,
}

/// What happened so far, for `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tasks finished, by outcome (indexed by `Outcome as usize`).
    pub outcomes: [u64; 7],
    /// Workers that crashed or failed to start and were replaced.
    pub restarts: u64,
    /// Workers replaced on purpose (max tasks, memory, restart, resize).
    pub recycles: u64,
}

/// How a result wait ended without a result.
pub(crate) enum NoResult {
    /// Keep waiting.
    Pending,
    /// Nothing can ever arrive for this waiter.
    Gone(Error),
}

impl State {
    pub(crate) fn new(
        results_fd: RawFd,
        epoll: Arc<Epoll>,
        wake_fd: RawFd,
        prefetch: usize,
    ) -> std::io::Result<State> {
        Ok(State {
            phase: Phase::Starting,
            failure: None,
            tasks: SeqMap::default(),
            queue: VecDeque::new(),
            workers: Vec::new(),
            idle: Vec::new(),
            blocked_submitters: 0,
            recheck: Vec::new(),
            done: SeqMap::default(),
            done_order: VecDeque::new(),
            any_waiters: VecDeque::new(),
            claimed: 0,
            mailboxes: IdMap::default(),
            spare_wakes: Vec::new(),
            next_waiter: 0,
            results_fd,
            results_fd_ready: false,
            notice_kinds: NoticeKinds::default(),
            notices: VecDeque::new(),
            epoll,
            prefetch: prefetch.max(1),
            timers: Timers::new()?,
            target: 0,
            wake_fd,
            counts: Counts::default(),
            stop_requests: Vec::new(),
        })
    }

    /// Most tasks in flight to worker `w`: the pool's prefetch for a worker
    /// that reads its control page; one for a worker that does not, which
    /// can only be stopped for a task safely while it holds no other (see
    /// `src/control.rs`: the `running` word is on the control page).
    fn window(&self, w: &Worker) -> usize {
        if w.control {
            self.prefetch
        } else {
            1
        }
    }

    /// Starts stopping the worker in `slot` for `stop`, under the lock, so
    /// that from now on it is given nothing and its frames no longer count:
    /// marks it, sets its kill deadline (after `grace`), and asks the
    /// supervisor to send the first signal. False if it is gone or being
    /// stopped already.
    pub(crate) fn begin_stop(
        &mut self,
        slot: usize,
        generation: u32,
        stop: Stop,
        grace: Duration,
    ) -> bool {
        let Some(w) = self.worker_mut(slot, generation) else {
            return false;
        };
        if w.stop.is_some() {
            return false;
        }
        w.stop = Some(stop);
        if !grace.is_zero() {
            let at = monotonic_ns() + grace.as_nanos() as u64;
            w.kill_at = Some(at);
            self.timers.add(at, Due::Kill(slot, generation));
        }
        self.idle.retain(|&s| s != slot);
        self.stop_requests.push((slot, generation));
        sys::eventfd_signal(self.wake_fd);
        true
    }

    /// Whether the worker may be given tasks.
    fn serving(w: &Worker) -> bool {
        w.ready && w.stop.is_none() && w.retiring.is_none()
    }

    /// Workers that are (or will be, once started) serving: not stopping,
    /// not retiring.
    pub(crate) fn serving_count(&self) -> usize {
        self.workers
            .iter()
            .flatten()
            .filter(|w| w.stop.is_none() && w.retiring.is_none())
            .count()
    }

    /// Hands task `task_id` to the worker in `slot`: marks it held, starts
    /// its time limits, and returns its frame and the worker's generation.
    /// One lookup of the task: this is on every submit's path.
    fn hand_over(&mut self, task_id: u64, slot: usize) -> Option<(Arc<Vec<u8>>, u32)> {
        let generation = self.workers.get(slot)?.as_ref()?.generation;
        let t = self.tasks.get_mut(&task_id)?;
        let frame = t.frame.clone()?;
        t.holder = Some((slot, generation));
        let limits = t.limits;
        if limits.soft.is_some() || limits.hard.is_some() {
            // The task cannot start before now: see timers.rs.
            let now = monotonic_ns();
            if let Some(soft) = limits.soft {
                self.timers
                    .add(now + soft.as_nanos() as u64, Due::Soft(task_id));
            }
            if let Some(hard) = limits.hard {
                self.timers
                    .add(now + hard.as_nanos() as u64, Due::Hard(task_id));
            }
        }
        Some((frame, generation))
    }

    /// Counts a task handed to the worker in `slot`, and retires the
    /// worker when that was its last one (max tasks per worker).
    fn count_given(&mut self, slot: usize) {
        let Some(w) = self.workers.get_mut(slot).and_then(|w| w.as_mut()) else {
            return;
        };
        w.given += 1;
        if w.max_tasks.is_some_and(|max| w.given >= max) {
            let why = format!("it was given its {} tasks (max tasks per worker)", w.given);
            self.retire(slot, why);
        }
    }

    /// The worker in `slot` takes no more tasks and is replaced: its
    /// channel is closed (end of stream: it exits cleanly) once the tasks
    /// it holds are done. Wakes the supervisor to start its replacement.
    pub(crate) fn retire(&mut self, slot: usize, why: String) {
        let Some(w) = self.workers.get_mut(slot).and_then(|w| w.as_mut()) else {
            return;
        };
        if w.retiring.is_some() || w.stop.is_some() {
            return;
        }
        w.retiring = Some(why);
        self.idle.retain(|&s| s != slot);
        self.close_if_retired(slot);
        sys::eventfd_signal(self.wake_fd);
    }

    /// Closes a retiring worker's channel once it holds no task.
    fn close_if_retired(&mut self, slot: usize) {
        let Some(w) = self.workers.get_mut(slot).and_then(|w| w.as_mut()) else {
            return;
        };
        if w.retiring.is_some() && w.tasks.is_empty() && w.outbox.is_empty() && !w.direct_sending {
            // SAFETY: shutting down our own socket.
            unsafe { libc::shutdown(w.channel.as_raw_fd(), libc::SHUT_WR) };
        }
    }

    /// [`State::worker_mut`], with the epoll set beside it (borrowed apart,
    /// so switching the worker's interests costs no reference count).
    pub(crate) fn worker_and_epoll(
        &mut self,
        slot: usize,
        generation: u32,
    ) -> Option<(&mut Worker, &Epoll)> {
        let w = self
            .workers
            .get_mut(slot)?
            .as_mut()
            .filter(|w| w.generation == generation)?;
        Some((w, &self.epoll))
    }

    /// The live worker in `slot` if it is still generation `generation`.
    pub(crate) fn worker_mut(&mut self, slot: usize, generation: u32) -> Option<&mut Worker> {
        self.workers
            .get_mut(slot)
            .and_then(|w| w.as_mut())
            .filter(|w| w.generation == generation)
    }

    /// A worker for one more task: an idle one first, else the least busy
    /// one with room in its prefetch window.
    pub(crate) fn pick_worker(&mut self) -> Option<usize> {
        if let Some(slot) = self.idle.pop() {
            return Some(slot);
        }
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
            .filter(|(_, w)| {
                State::serving(w) && !w.area_reserved && w.tasks.len() < self.window(w)
            })
            .min_by_key(|(_, w)| w.tasks.len())
            .map(|(i, _)| i)
    }

    /// Reserves the task region of an idle worker for a large payload of
    /// `len` bytes: the worker is taken off the idle list, given nothing
    /// else, and nobody writes to its channel, until the submitting thread,
    /// having copied the payload there (without the lock), hands it the
    /// task ([`State::assign_reserved`]) or gives the reservation back
    /// ([`State::release_reserved`]). The payload is thus in the area
    /// before the task exists: a worker that dies at any moment never
    /// leaves a task whose payload is not where the pool rebuilds it from.
    pub(crate) fn reserve_idle_area(&mut self, len: usize) -> Option<AreaReservation> {
        let workers = &self.workers;
        let at = self.idle.iter().rposition(|&slot| {
            workers[slot].as_ref().is_some_and(|w| {
                State::serving(w)
                    && w.area_tasks
                    && w.task_region.is_none()
                    && w.tasks.is_empty()
                    && w.outbox.is_empty()
                    && !w.direct_sending
            })
        })?;
        let slot = self.idle.remove(at);
        let w = self.workers[slot].as_mut()?;
        w.area_reserved = true;
        w.direct_sending = true;
        w.task_region_used = w.task_region_used.max(len);
        Some(AreaReservation {
            slot,
            generation: w.generation,
            area: w.area.clone(),
        })
    }

    /// Hands task `task_id`, whose payload the caller copied into the
    /// reserved region, to the reserved worker. The caller sends the
    /// returned frame itself (and reports with [`State::direct_done`]).
    /// `None` if the worker is gone: the payload must travel in a frame.
    pub(crate) fn assign_reserved(&mut self, r: &AreaReservation, task_id: u64) -> Option<Send> {
        let w = self.worker_mut(r.slot, r.generation)?;
        if !std::mem::take(&mut w.area_reserved) {
            return None;
        }
        let (frame, generation) = self.hand_over(task_id, r.slot)?;
        let w = self.workers.get_mut(r.slot)?.as_mut()?;
        push_task(w, task_id);
        w.task_region = Some(task_id);
        let send = Send {
            slot: r.slot,
            generation,
            channel: w.channel.clone(),
            frame,
        };
        self.count_given(r.slot);
        Some(send)
    }

    /// Gives a reservation back unused; returns a frame the worker may now
    /// take from the queue.
    pub(crate) fn release_reserved(&mut self, r: &AreaReservation) -> Option<Send> {
        let w = self.worker_mut(r.slot, r.generation)?;
        w.area_reserved = false;
        self.direct_done(r.slot, r.generation, None);
        self.worker_free(r.slot)
    }

    /// Task `task_id`'s result arrived from the worker in `slot`: its task
    /// region is free again. Memory a large payload left there is given
    /// back once a task with a small payload comes back instead.
    pub(crate) fn task_region_done(&mut self, slot: usize, task_id: u64) {
        let Some(w) = self.workers.get_mut(slot).and_then(|w| w.as_mut()) else {
            return;
        };
        if w.task_region == Some(task_id) {
            w.task_region = None;
        } else if w.task_region.is_none() && w.task_region_used > area::AREA_MIN {
            w.task_region_used = 0;
            w.area.release_task_region();
        }
    }

    /// What worker `w` is doing, as the listing and the stats say it.
    pub(crate) fn worker_state(w: &Worker) -> WorkerState {
        if w.stop.is_some() {
            WorkerState::Stopping
        } else if w.retiring.is_some() {
            WorkerState::Retiring
        } else if !w.ready {
            WorkerState::Starting
        } else if w.tasks.is_empty() {
            WorkerState::Idle
        } else {
            WorkerState::Busy
        }
    }

    /// The task worker `w` runs now: the oldest it holds, if it started it
    /// and it has not ended. (A task cancelled as its worker finished it
    /// ends at once but stays at the head until its dropped result comes.)
    pub(crate) fn running_task(&self, w: &Worker) -> Option<u64> {
        let &id = w.tasks.first()?;
        let started = w.acked == Some(id) || w.area.progress().started_at(id).is_some();
        (started && self.tasks.get(&id).is_some()).then_some(id)
    }

    /// Results waiting to be collected.
    pub(crate) fn uncollected(&self) -> usize {
        self.done.len()
    }

    /// Tasks waiting to start: in the queue or in a worker's prefetch window
    /// behind the task it runs. What [`crate::Config::max_queued`] bounds.
    pub(crate) fn waiting(&self) -> usize {
        let running = self
            .workers
            .iter()
            .flatten()
            .filter(|w| !w.tasks.is_empty())
            .count();
        self.tasks.len().saturating_sub(running)
    }

    /// Hands `task_id` to the worker in `slot`. A worker that was idle, with
    /// nothing being written to it, gets the frame written by the calling
    /// thread at once (the returned [`Send`], then [`State::direct_done`]);
    /// otherwise the frame joins its outbox, which the supervisor writes,
    /// many frames at a time, when the channel has room.
    pub(crate) fn assign(&mut self, slot: usize, task_id: u64) -> Option<Send> {
        let (frame, generation) = self.hand_over(task_id, slot)?;
        let (w, epoll) = self.worker_and_epoll(slot, generation)?;
        let was_idle = w.tasks.is_empty();
        push_task(w, task_id);
        let send = if was_idle && w.outbox.is_empty() && !w.direct_sending {
            w.direct_sending = true;
            Some(Send {
                slot,
                generation,
                channel: w.channel.clone(),
                frame,
            })
        } else {
            w.outbox.push_back(frame);
            // Frames queued while a worker's results are applied are written
            // right after, by the thread applying them (see apply_frames).
            if !w.direct_sending && !w.applying {
                set_epollout(epoll, slot, w, true);
            }
            None
        };
        self.count_given(slot);
        send
    }

    /// Arms EPOLLOUT for a worker whose channel is full, so the supervisor
    /// writes the rest of its outbox once there is room.
    pub(crate) fn outbox_full(&mut self, slot: usize, generation: u32) {
        if let Some((w, epoll)) = self.worker_and_epoll(slot, generation) {
            set_epollout(epoll, slot, w, true);
        }
    }

    /// A direct write to the worker in `slot` ended; `rest` is the frame and
    /// how much of it went out if the socket was full.
    pub(crate) fn direct_done(
        &mut self,
        slot: usize,
        generation: u32,
        rest: Option<(Arc<Vec<u8>>, usize)>,
    ) {
        let Some((w, epoll)) = self.worker_and_epoll(slot, generation) else {
            return;
        };
        w.direct_sending = false;
        if let Some((frame, sent)) = rest {
            w.outbox.push_front(frame);
            w.outbox_sent = sent;
        }
        if !w.outbox.is_empty() {
            set_epollout(epoll, slot, w, true);
        }
        if w.retiring.is_some() {
            self.close_if_retired(slot);
        }
    }

    /// Turns EPOLLOUT off for a worker whose outbox is empty or who is being
    /// written to directly (the direct writer turns it back on if needed).
    pub(crate) fn outbox_idle(&mut self, slot: usize, generation: u32) {
        if let Some((w, epoll)) = self.worker_and_epoll(slot, generation) {
            set_epollout(epoll, slot, w, false);
        }
    }

    /// Hands a new task to a worker with room, or queues it; returns the
    /// direct write, if any.
    pub(crate) fn place(&mut self, task_id: u64) -> Option<Send> {
        match self.pick_worker() {
            Some(slot) => self.assign(slot, task_id),
            None => {
                self.queue.push_back(task_id);
                None
            }
        }
    }

    /// Gives queued tasks to workers with room; returns the direct writes.
    pub(crate) fn dispatch(&mut self) -> Vec<Send> {
        let mut out = Vec::new();
        while !self.queue.is_empty() {
            let Some(slot) = self.pick_worker() else {
                break;
            };
            let id = self.queue.pop_front().expect("queue is not empty");
            if let Some(send) = self.assign(slot, id) {
                out.push(send);
            }
        }
        out
    }

    /// A worker said hello or finished a task: fill its prefetch window from
    /// the queue, or mark it idle. Returns the direct write, if any.
    pub(crate) fn worker_free(&mut self, slot: usize) -> Option<Send> {
        let mut direct = None;
        loop {
            let Some(w) = self.workers.get(slot).and_then(|w| w.as_ref()) else {
                return direct;
            };
            if !State::serving(w) {
                self.close_if_retired(slot);
                return direct;
            }
            if w.area_reserved {
                return direct;
            }
            if w.tasks.len() >= self.window(w) {
                return direct;
            }
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            if let Some(send) = self.assign(slot, id) {
                direct = Some(send);
            }
        }
        let idle = self.workers[slot]
            .as_ref()
            .is_some_and(|w| w.tasks.is_empty());
        if idle && !self.idle.contains(&slot) {
            self.idle.push(slot);
        }
        direct
    }

    /// Hands a finished task's result to exactly one place: the thread
    /// waiting for it by id (`waiter`), else the longest-waiting "any"
    /// waiter, else the store.
    pub(crate) fn deliver(&mut self, result: TaskResult, waiter: Option<u64>) {
        if waiter.is_some() {
            self.claimed -= 1;
        }
        let target = waiter.or_else(|| self.any_waiters.pop_front());
        match target {
            Some(waiter) => {
                let mb = self
                    .mailboxes
                    .get_mut(&waiter)
                    .expect("waiter has a mailbox");
                mb.got = Some(result);
                mb.wake.mail.store(true, Ordering::Release);
                mb.wake.cv.notify_one();
            }
            None => {
                self.done_order.push_back(result.task_id);
                self.done.insert(result.task_id, result);
                self.sync_results_fd();
            }
        }
        self.wake_hopeless_waiters();
    }

    /// Makes `results_fd` readable exactly while results or notices wait.
    pub(super) fn sync_results_fd(&mut self) {
        let want = !self.done.is_empty() || !self.notices.is_empty();
        if want == self.results_fd_ready {
            return;
        }
        self.results_fd_ready = want;
        if want {
            sys::eventfd_signal(self.results_fd);
        } else {
            sys::eventfd_drain(self.results_fd);
        }
    }

    /// Tasks whose result no thread waits for by id.
    fn unclaimed_pending(&self) -> usize {
        self.tasks.len() - self.claimed
    }

    /// Wakes "any result" waiters when nothing is left for them.
    fn wake_hopeless_waiters(&mut self) {
        if self.any_waiters.is_empty() || !self.done.is_empty() {
            return;
        }
        if self.unclaimed_pending() > 0 {
            return;
        }
        for w in &self.any_waiters {
            if let Some(mb) = self.mailboxes.get(w) {
                mb.wake.cv.notify_one();
            }
        }
    }

    /// Takes a finished result: the one for `want`, or the oldest.
    pub(crate) fn take_done(&mut self, want: Option<u64>) -> Option<TaskResult> {
        let result = match want {
            Some(id) => self.done.remove(&id),
            None => loop {
                let id = self.done_order.pop_front()?;
                if let Some(r) = self.done.remove(&id) {
                    break Some(r);
                }
            },
        };
        if result.is_some() && self.done.is_empty() {
            self.done_order.clear();
            self.sync_results_fd();
        }
        result
    }

    /// The result of task `id` waiting to be collected, if it is.
    pub(super) fn done_result(&self, id: u64) -> Option<&TaskResult> {
        self.done.get(&id)
    }

    /// Why a waiter for `want` has nothing to wait for, if so.
    pub(crate) fn nothing_to_wait_for(&self, want: Option<u64>, waiter: Option<u64>) -> NoResult {
        match want {
            Some(id) => match self.tasks.get(&id) {
                None => NoResult::Gone(Error::NotFound(format!(
                    "task {id} is not pending and its result is not waiting to be collected"
                ))),
                Some(t) if t.waiter.is_some() && t.waiter != waiter => {
                    NoResult::Gone(Error::InvalidArgument(format!(
                        "another thread is already waiting for task {id}"
                    )))
                }
                Some(_) => NoResult::Pending,
            },
            None if self.unclaimed_pending() == 0 => NoResult::Gone(Error::NotFound(
                "no task is pending and no result is waiting".into(),
            )),
            None => NoResult::Pending,
        }
    }

    /// Registers the calling thread as a waiter; returns its id and condvar.
    pub(crate) fn add_waiter(&mut self, want: Option<u64>) -> (u64, Arc<Wake>) {
        let id = self.next_waiter;
        self.next_waiter += 1;
        let wake = self.spare_wakes.pop().unwrap_or_else(|| {
            Arc::new(Wake {
                cv: Condvar::new(),
                mail: AtomicBool::new(false),
            })
        });
        wake.clear_mail();
        self.mailboxes.insert(
            id,
            Mailbox {
                wake: wake.clone(),
                got: None,
            },
        );
        match want {
            Some(task) => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.waiter = Some(id);
                    self.claimed += 1;
                }
            }
            None => self.any_waiters.push_back(id),
        }
        (id, wake)
    }

    /// The result delivered to a waiter, if any.
    pub(crate) fn take_mail(&mut self, waiter: u64) -> Option<TaskResult> {
        self.mailboxes.get_mut(&waiter).and_then(|m| m.got.take())
    }

    /// Unregisters a waiter. A result delivered meanwhile goes back to the store.
    pub(crate) fn remove_waiter(&mut self, waiter: u64, want: Option<u64>) {
        let mail = self.mailboxes.remove(&waiter).and_then(|m| {
            self.spare_wakes.push(m.wake);
            m.got
        });
        match want {
            Some(task) => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    if t.waiter.take().is_some() {
                        self.claimed -= 1;
                    }
                }
            }
            None => self.any_waiters.retain(|&w| w != waiter),
        }
        if let Some(r) = mail {
            self.done_order.push_back(r.task_id);
            self.done.insert(r.task_id, r);
            self.sync_results_fd();
        }
    }
}
