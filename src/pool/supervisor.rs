//! The supervisor thread: the only thread that starts, reads, kills and reaps
//! workers. One epoll set watches every worker's channel and pidfd plus a wake
//! eventfd; a worker's death is seen the moment its pidfd or channel says so.

use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::life::{describe_exit, first_stop_signal, signal_link, wait_groups_empty, Link, Lives};
use super::notice::NoticeKind;
use super::reader::pump;
use super::result::Outcome;
use super::shared::Shared;
use super::state::Inbox;
use super::state::{Phase, Reader, State, Worker, WorkerFds};
use super::task::{describe_duration, Stop};
use super::timers::Due;
use crate::config::{Event, MAX_START_FAILURES_IN_A_ROW};
use crate::error::Error;
use crate::progress::{monotonic_ns, Clock};
use crate::protocol;
use crate::spawn::{LaunchEvent, Launcher, Reaper};
use crate::sys::{self, ExitStatus};
use crate::watch::{Ready, Token, INPUT, QUIET, RESULTS_EVENTS};

/// Poll interval for workers without a pidfd (old kernels only).
const REAP_POLL_MS: i32 = 20;

pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    /// Every worker process: the one owner of their lives.
    lives: Lives,
    launcher: Box<dyn Launcher>,
    start_failures: u32,
    start_deadline: Option<Instant>,
    stopping: bool,
    /// When recent crash restarts happened (restart intensity).
    crashes: std::collections::VecDeque<Instant>,
}

impl Supervisor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        launcher: Box<dyn Launcher>,
        start_timeout: Option<Duration>,
    ) -> Supervisor {
        Supervisor {
            shared,
            lives: Lives::default(),
            launcher,
            start_failures: 0,
            start_deadline: start_timeout.map(|t| Instant::now() + t),
            stopping: false,
            crashes: std::collections::VecDeque::new(),
        }
    }

    /// Queues the worker notice an event makes (if the host asked for it),
    /// then calls the host's event handler, if any, with no lock held.
    fn emit(&self, event: Event) {
        let worker = match event {
            Event::WorkerStarted { pid } => Some((NoticeKind::WorkerStarted, pid)),
            Event::WorkerExited { pid, .. } => Some((NoticeKind::WorkerExited, pid)),
            _ => None,
        };
        if let Some((kind, pid)) = worker {
            self.shared.state.lock().worker_notice(kind, pid);
        }
        if let Some(handler) = &self.shared.on_event {
            let pool = Arc::as_ptr(&self.shared) as usize;
            super::callback::in_event_handler(pool, || handler(&event));
        }
    }

    /// The thread body. Whatever happens, it ends with no worker left.
    pub(crate) fn run(mut self) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.main_loop()));
        if outcome.is_err() {
            // The cause first: stop_all wakes every waiter with the final phase.
            let cause = "the pool's supervisor failed (a bug in billiard)";
            self.shared.state.lock().failure = Some(Error::internal(cause.into()));
            self.stop_all(Phase::Failed, cause);
        }
    }

    fn main_loop(&mut self) {
        let mut buf = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut ready = Vec::with_capacity(64);
        loop {
            if self.maintain() {
                return;
            }
            let waited = self
                .shared
                .epoll
                .wait(&mut buf, self.timeout_ms(), &mut ready);
            if let Err(e) = waited {
                self.fail(Error::io("epoll_wait", e));
                continue;
            }
            for &event in &ready {
                self.handle(event);
            }
            self.recheck();
            self.poll_without_pidfd();
            self.notify_blocked_submitters();
        }
    }

    fn timeout_ms(&self) -> i32 {
        if self.lives.needs_polling() {
            return REAP_POLL_MS;
        }
        match self.start_deadline {
            Some(d) if self.shared.state.lock().phase == Phase::Starting => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_millis().min(i32::MAX as u128) as i32 + 1
            }
            _ => -1,
        }
    }

    /// Brings the worker set in line with the phase. Returns true when the
    /// supervisor is done (every worker reaped, phase final).
    fn maintain(&mut self) -> bool {
        let (phase, live, ready, pending, serving, target) = {
            let st = self.shared.state.lock();
            let ready = st.workers.iter().flatten().filter(|w| w.ready).count();
            let serving = st.serving_count();
            (
                st.phase,
                self.live(),
                ready,
                st.tasks.len(),
                serving,
                st.target,
            )
        };
        match phase {
            Phase::Starting => {
                if ready == target {
                    self.start_failures = 0;
                    let mut st = self.shared.state.lock();
                    self.shared.set_phase(&mut st, Phase::Running);
                } else if self.start_deadline.is_some_and(|d| Instant::now() >= d) {
                    self.fail(Error::Spawn(format!(
                        "{ready} of {target} workers said hello before the start timeout"
                    )));
                    return self.maintain();
                } else if live < target {
                    self.fill(serving, target);
                }
                false
            }
            Phase::Running => {
                if ready == target {
                    self.start_failures = 0;
                }
                self.fill(serving, target);
                false
            }
            Phase::Closed if pending > 0 => {
                self.fill(serving, target);
                false
            }
            Phase::Closed => {
                if !self.stopping {
                    // Drained: end of stream tells each worker to exit cleanly.
                    self.stopping = true;
                    self.lives.close_channels();
                }
                if self.lives.none_left() {
                    self.launcher.shutdown();
                    let mut st = self.shared.state.lock();
                    self.shared.set_phase(&mut st, Phase::Joined);
                    return true;
                }
                false
            }
            Phase::Terminating => {
                self.stop_all(Phase::Terminated, "the pool was terminated");
                true
            }
            Phase::Failing => {
                let why = self
                    .shared
                    .state
                    .lock()
                    .failure
                    .as_ref()
                    .map(|e| e.to_string());
                let why = why.unwrap_or_else(|| "the pool failed".into());
                self.stop_all(Phase::Failed, &format!("the pool failed: {why}"));
                true
            }
            Phase::Joined | Phase::Terminated | Phase::Failed => true,
        }
    }

    fn live(&self) -> usize {
        self.lives.count()
    }

    /// Starts workers until `target` serve (or the launcher asks to wait);
    /// `serving` is how many do (or will, once started). Called only in
    /// the phases that start workers.
    fn fill(&mut self, mut serving: usize, target: usize) {
        loop {
            while serving < target {
                match self.launcher.launch() {
                    Ok(started) => {
                        serving += 1;
                        self.adopt(started)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        if self.start_failed(format!("could not start a worker: {e}")) {
                            return;
                        }
                    }
                }
            }
            // What the launcher read while starting workers (a fork
            // server's exit reports, a failure) may have freed slots or
            // failed the pool.
            if !self.launcher_events() {
                return;
            }
            let st = self.shared.state.lock();
            if !matches!(st.phase, Phase::Starting | Phase::Running | Phase::Closed) {
                return;
            }
            serving = st.serving_count();
        }
    }

    /// Acts on what the launcher reports about the processes it looks
    /// after (a fork server and its workers). Returns whether it had any.
    fn launcher_events(&mut self) -> bool {
        let events = self.launcher.events();
        let any = !events.is_empty();
        for event in events {
            match event {
                LaunchEvent::Exited { pid, status } => {
                    if let Some((slot, generation)) = self.lives.find(|l| l.pid == pid && !l.ours())
                    {
                        self.reaped(slot, generation, status);
                    }
                }
                LaunchEvent::ServerLost { server, why } => {
                    while let Some((slot, generation)) = self
                        .lives
                        .find(|l| l.reaper == Reaper::Server(server) && l.server_lost.is_none())
                    {
                        let Some(link) = self.lives.get(slot, generation) else {
                            break;
                        };
                        link.server_lost = Some(why.clone());
                        // Its parent-death signal kills it; finalized once
                        // its pidfd says it is gone (at once without one).
                        if link.exited || link.pidfd.is_none() {
                            self.reaped(slot, generation, ExitStatus::Unknown);
                        }
                    }
                }
                LaunchEvent::StartFailed(why) => {
                    self.start_failed(why);
                }
                // fill() runs again.
                LaunchEvent::Ready => {}
            }
        }
        any
    }

    /// Records a worker that failed to start. Returns true if the pool failed.
    fn start_failed(&mut self, message: String) -> bool {
        let phase = self.shared.state.lock().phase;
        self.start_failures += 1;
        if phase == Phase::Starting || self.start_failures >= MAX_START_FAILURES_IN_A_ROW {
            self.fail(Error::Spawn(message));
            return true;
        }
        self.crashed(&message)
    }

    /// Counts a crash restart against the restart intensity. Returns true
    /// if that made the pool fail.
    fn crashed(&mut self, about: &str) -> bool {
        let limits = self.shared.limits;
        self.shared.state.lock().counts.restarts += 1;
        let Some(max) = limits.max_restarts else {
            return false;
        };
        let now = Instant::now();
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|&t| now.duration_since(t) > limits.restart_period)
        {
            self.crashes.pop_front();
        }
        if self.crashes.len() as u64 <= max as u64 {
            return false;
        }
        self.fail(Error::Restarts(format!(
            "{} workers crashed within {} (the restart intensity allows {max}); the last: {about}",
            self.crashes.len(),
            describe_duration(limits.restart_period)
        )));
        true
    }

    fn fail(&self, error: Error) {
        let mut st = self.shared.state.lock();
        if st.phase.is_final() || matches!(st.phase, Phase::Terminating | Phase::Failing) {
            return;
        }
        let why = error.to_string();
        st.failure.get_or_insert(error);
        self.shared.set_phase(&mut st, Phase::Failing);
        drop(st);
        // The main loop acts on the new phase before it waits again.
        self.shared.wake();
        self.emit(Event::PoolFailed { why });
    }

    /// Registers a freshly started worker.
    fn adopt(&mut self, started: crate::spawn::Started) {
        let (slot, generation) = self.lives.reserve();
        let channel = Arc::new(started.channel);
        let results = Arc::new(started.results);
        let area = Arc::new(started.area);
        let pidfd = started.pidfd.map(Arc::new);
        let inbox: Inbox = Arc::new(Mutex::new(Vec::with_capacity(4096)));
        let epoll = &self.shared.epoll;
        let _ = epoll.add(
            results.as_raw_fd(),
            RESULTS_EVENTS,
            Token::Results { slot, generation },
        );
        // Output interest comes and goes with the outbox (set_epollout);
        // edge-triggered, so a hang-up is reported once, not on every wait.
        let _ = epoll.add(
            channel.as_raw_fd(),
            QUIET,
            Token::Tasks { slot, generation },
        );
        if let Some(p) = &pidfd {
            let _ = epoll.add(p.as_raw_fd(), INPUT, Token::Pidfd { slot, generation });
        }
        let limits = self.shared.limits;
        if let Some(bytes) = limits.hard_memory {
            // Set before the worker can be given a task (that waits for its
            // HELLO, which the supervisor reads after this).
            if let Err(e) = sys::limit_address_space(started.pid, bytes) {
                // Never run a worker without the limit the host asked for.
                self.fail(Error::Spawn(format!(
                    "the hard memory limit could not be set on worker {}: {e}",
                    started.pid
                )));
            }
        }
        if limits.soft_memory.is_some() {
            area.control().watch_memory();
        }
        let max_tasks = limits
            .max_tasks
            .map(|n| n + sys::random_below(limits.max_tasks_jitter + 1));
        let mut st = self.shared.state.lock();
        if st.notice_kinds.started {
            // Each start is noticed at once rather than with the result.
            // Under the lock that Pool::set_notices takes, so a worker is
            // never left out of a change.
            area.control().ask_for_acks();
        }
        if st.workers.len() <= slot {
            st.workers.resize_with(slot + 1, || None);
        }
        st.workers[slot] = Some(Worker::new(
            generation,
            started.pid,
            WorkerFds {
                channel: channel.clone(),
                results: results.clone(),
                area: area.clone(),
                pidfd: pidfd.clone(),
                inbox: inbox.clone(),
                area_trusted: started.runs_pool_code,
                own_child: started.reaper == crate::spawn::Reaper::Pool,
            },
            max_tasks,
        ));
        drop(st);
        self.emit(Event::WorkerStarted { pid: started.pid });
        self.lives.insert(
            slot,
            Link {
                generation,
                pid: started.pid,
                channel,
                results,
                area,
                pidfd,
                inbox,
                eof: false,
                dead: None,
                reaper: started.reaper,
                exited: false,
                server_lost: None,
            },
        );
    }

    /// Turns one epoll event into a call on the part it concerns.
    fn handle(&mut self, event: Ready) {
        match event.token {
            Token::Wake => {
                sys::eventfd_drain(self.shared.wake_fd.as_raw_fd());
                // Host threads that ask for a stop wake the supervisor.
                self.stop_requested();
            }
            Token::Timer => self.timers_due(),
            Token::Launcher => {
                self.launcher.watch();
                self.launcher_events();
            }
            // A hang-up alone on the task socket needs nothing: the
            // results pipe and the pidfd report the death.
            Token::Tasks { slot, generation } => {
                if event.events & libc::EPOLLOUT as u32 != 0
                    && self.lives.get(slot, generation).is_some()
                {
                    self.shared.flush_outbox(slot, generation);
                }
            }
            Token::Results { slot, generation } => {
                if self.lives.get(slot, generation).is_some() {
                    self.read_channel(slot, generation);
                }
            }
            Token::Pidfd { slot, generation } => self.pidfd_ready(slot, generation),
        }
    }

    /// A worker's pidfd is readable: it exited. Our own child is reaped
    /// now; a fork server's worker once the server reports its status.
    fn pidfd_ready(&mut self, slot: usize, generation: u32) {
        let epoll = self.shared.epoll.clone();
        let Some(link) = self.lives.get(slot, generation) else {
            return;
        };
        if link.ours() {
            if link.dead.is_none() {
                if let Some(status) = sys::exit_status_unreaped(link.pid) {
                    self.reaped(slot, generation, status);
                }
            }
            return;
        }
        link.exited = true;
        if let Some(p) = &link.pidfd {
            // Readable for good now: stop watching it.
            epoll.remove(p.as_raw_fd());
        }
        if link.server_lost.is_some() {
            self.reaped(slot, generation, ExitStatus::Unknown);
        }
    }

    /// Reaps workers that have no pidfd (kernels without `pidfd_open`).
    fn poll_without_pidfd(&mut self) {
        for (slot, generation, status) in self.lives.exited_unwatched() {
            self.reaped(slot, generation, status);
        }
    }

    /// A worker exited: read what it sent last, then account for it,
    /// unless a waiting thread reads its channel now (then once it is done).
    /// Our own child is not reaped yet (its group can still be signalled).
    fn reaped(&mut self, slot: usize, generation: u32, status: ExitStatus) {
        let epoll = self.shared.epoll.clone();
        if let Some(link) = self.lives.get(slot, generation) {
            link.dead = Some(status);
            // Readable for good now: stop watching it.
            if let Some(p) = &link.pidfd {
                epoll.remove(p.as_raw_fd());
            }
        }
        if let Some(w) = self.shared.state.lock().worker_mut(slot, generation) {
            w.dead = true;
            if w.reading == Some(Reader::Waiter) {
                // Finalized by recheck() once the waiter gives it back.
                w.missed_edge = true;
                return;
            }
        }
        self.read_channel(slot, generation);
        if let Some(status) = self.lives.get(slot, generation).and_then(|l| l.dead.take()) {
            self.finalize(slot, generation, status);
        }
    }

    /// Sends the first signal to the workers being stopped
    /// ([`State::begin_stop`]); SIGKILL follows when the kill grace ends.
    fn stop_requested(&mut self) {
        let grace = self.shared.limits.kill_grace;
        let requests: Vec<(usize, u32, i32)> = {
            let mut st = self.shared.state.lock();
            let requests = std::mem::take(&mut st.stop_requests);
            requests
                .into_iter()
                .map(|(slot, generation)| {
                    let first = st
                        .worker_mut(slot, generation)
                        .and_then(|w| w.stop.as_ref())
                        .map_or_else(|| first_stop_signal(grace), |s| s.first_signal(grace));
                    (slot, generation, first)
                })
                .collect()
        };
        for (slot, generation, first) in requests {
            self.signal(slot, generation, first);
        }
    }

    /// Reads the channels waiting threads gave back with something left
    /// for the supervisor, and finalizes workers that died meanwhile.
    fn recheck(&mut self) {
        let list = std::mem::take(&mut self.shared.state.lock().recheck);
        for (slot, generation) in list {
            if !self.read_channel(slot, generation) {
                continue; // another waiter reads it now; it will hand it back
            }
            let dead = self.lives.get(slot, generation).and_then(|l| l.dead.take());
            if let Some(status) = dead {
                self.finalize(slot, generation, status);
            }
        }
    }

    /// Wakes submitters blocked on a full queue once it has room.
    fn notify_blocked_submitters(&self) {
        if self.shared.max_queued == 0 {
            return;
        }
        let st = self.shared.state.lock();
        if st.blocked_submitters > 0 && st.waiting() < self.shared.max_queued {
            self.shared.changed.notify_all();
        }
    }

    /// Reads everything available on a worker's channel and acts on it.
    /// Returns false if it did not, because a waiting thread reads the
    /// channel now (it is noted, and the thread hands the channel back).
    fn read_channel(&mut self, slot: usize, generation: u32) -> bool {
        {
            let mut st = self.shared.state.lock();
            if let Some(w) = st.worker_mut(slot, generation) {
                if w.reading.is_some() {
                    w.missed_edge = true;
                    return false;
                }
                w.reading = Some(Reader::Supervisor);
            }
        }
        self.read_channel_now(slot, generation);
        let mut st = self.shared.state.lock();
        if let Some(w) = st.worker_mut(slot, generation) {
            w.reading = None;
        }
        true
    }

    fn read_channel_now(&mut self, slot: usize, generation: u32) {
        let shared = &self.shared;
        let Some(link) = self.lives.get(slot, generation) else {
            return;
        };
        if link.eof {
            return;
        }
        let fd = link.results.as_raw_fd();
        let (saw_eof, violation) = pump(shared, slot, generation, &link.area, fd, &link.inbox);
        if saw_eof {
            link.eof = true;
            shared.epoll.remove(fd);
        }
        if violation.is_some() || saw_eof {
            // A worker that broke the protocol, or has no channel, is of no use.
            self.kill(slot, generation, violation);
        }
    }

    /// Sends SIGKILL to a worker (and its process group), recording why.
    fn kill(&mut self, slot: usize, generation: u32, reason: Option<String>) {
        if let Some(reason) = reason {
            let mut st = self.shared.state.lock();
            if let Some(w) = st.worker_mut(slot, generation) {
                w.stop.get_or_insert(Stop::Broken(reason));
            }
        }
        self.signal(slot, generation, libc::SIGKILL);
    }

    /// Sends `sig` to a worker and its process group (see [`Lives::signal`]).
    fn signal(&mut self, slot: usize, generation: u32, sig: i32) {
        self.lives.signal(slot, generation, sig);
    }

    /// The timerfd fired: handles every deadline that passed.
    fn timers_due(&mut self) {
        loop {
            let now = monotonic_ns();
            let due = self.shared.state.lock().timers.pop_due(now);
            let Some(due) = due else {
                break;
            };
            match due {
                Due::Kill(slot, generation) => self.signal(slot, generation, libc::SIGKILL),
                Due::Soft(task) | Due::Hard(task) => self.time_limit_due(task, due),
            }
        }
        self.shared.state.lock().timers.rearm();
    }

    /// A time limit of `task` may have passed (see timers.rs): acts on it if
    /// it did, or sets the deadline again from what is known of its start.
    /// A task never seen to start runs from when it became the first its
    /// worker holds (sent to it with nothing ahead): a worker that hangs
    /// without ACK or progress-page entry is stopped all the same.
    fn time_limit_due(&mut self, task: u64, due: Due) {
        let soft = matches!(due, Due::Soft(_));
        let grace = self.shared.limits.kill_grace;
        let (slot, generation, control, area) = {
            let mut st = self.shared.state.lock();
            let Some(t) = st.tasks.get(&task) else {
                return; // finished
            };
            let limit = if soft { t.limits.soft } else { t.limits.hard };
            let (Some(limit), Some((slot, generation))) = (limit, t.holder) else {
                return; // back in the queue: a new deadline comes with a worker
            };
            let acked = t.started;
            let Some(w) = st.worker_mut(slot, generation) else {
                return;
            };
            if w.stop.is_some() {
                return;
            }
            let clock = Clock::now();
            let now = clock.ns;
            let started = acked
                .or_else(|| w.area.progress().started_at_by(task, &clock))
                .map(|at| now.saturating_sub(clock.instant.duration_since(at).as_nanos() as u64));
            let first = w.tasks.first() == Some(&task);
            let limit_ns = limit.as_nanos() as u64;
            let deadline = match started {
                Some(s) => s + limit_ns,
                None if first => w.front_since + limit_ns,
                None => now + limit_ns,
            };
            if deadline > now {
                st.timers.add(deadline, due);
                return;
            }
            if !soft {
                if State::may_stop_for(w, task, started.is_some()) {
                    let stop = Stop::TimeLimit { task, limit };
                    st.begin_stop(slot, generation, stop, grace);
                }
                drop(st);
                self.stop_requested();
                return;
            }
            let found = (slot, generation, w.control, w.area.clone());
            let pid = w.pid;
            st.notice(NoticeKind::SoftLimit, task, pid, clock.instant);
            found
        };
        area.control().set_soft_limit(task);
        // The worker alone: processes its handler started are not told.
        if let Some(link) = self
            .lives
            .get(slot, generation)
            .filter(|l| l.dead.is_none())
        {
            if control {
                signal_link(link, protocol::SOFT_LIMIT_SIGNAL, false);
            }
        }
    }

    /// A worker exited: settle its tasks, free its slot, and end its
    /// process group (see [`Lives::end_group_of`]).
    fn finalize(&mut self, slot: usize, generation: u32, status: ExitStatus) {
        let Some(link) = self.lives.take(slot, generation) else {
            return;
        };
        let epoll = &self.shared.epoll;
        epoll.remove(link.channel.as_raw_fd());
        if !link.eof {
            epoll.remove(link.results.as_raw_fd());
        }
        if let Some(p) = &link.pidfd {
            epoll.remove(p.as_raw_fd());
        }
        // A worker that ended on its own (or was killed for breaking the
        // protocol) has its group ended first, so that its tasks' results
        // are handed out once it is reaped. One whose stop's grace still
        // runs (its kill timer is due: see `State::begin_stop`) has it ended
        // after its results, since looking for members left in the group
        // costs a scan of /proc that the stop's result need not wait for.
        let graced = self
            .shared
            .state
            .lock()
            .worker_mut(slot, generation)
            .and_then(|w| w.kill_at)
            .is_some_and(|at| at > monotonic_ns());
        if !graced {
            self.lives.end_group_of(slot, &link, status, false);
        }
        let mut st = self.shared.state.lock();
        let Some(w) = st.workers[slot].take() else {
            drop(st);
            if graced {
                self.lives.end_group_of(slot, &link, status, true);
            }
            return;
        };
        st.idle.retain(|&s| s != slot);
        let about = describe_exit(w.pid, status, &w, link.server_lost.as_deref());
        let planned = w.retiring.is_some() || w.stop.as_ref().is_some_and(Stop::planned);
        if w.retiring.is_some() {
            st.counts.recycles += 1;
        }
        let memory_limit = match self.shared.limits.hard_memory {
            Some(b) => format!("its hard memory limit of {b} bytes"),
            None => "the memory the system would give it".into(),
        };
        let lost = st
            .settle_dead_worker(&w, status, &about, &memory_limit)
            .lost;
        let sends = st.dispatch();
        let live =
            !self.stopping && matches!(st.phase, Phase::Starting | Phase::Running | Phase::Closed);
        // A SIGKILL the pool did not send comes from outside (an operator,
        // the OOM killer, a chaos test): it says nothing about whether the
        // worker can start, so it is a crash (the restart intensity), not a
        // failed start, which fails the pool after a few in a row.
        let killed_from_outside =
            matches!(status, ExitStatus::Signal(libc::SIGKILL)) && w.stop.is_none();
        let counts_as_start_failure = !w.ready && live && !killed_from_outside;
        drop(st);
        if graced {
            // Anchored until the grace ends (the kill timer is still due).
            self.lives.end_group_of(slot, &link, status, true);
        }
        drop(link);
        self.shared.send_all(sends);
        let (exit_code, signal) = status.parts();
        for task_id in lost {
            self.emit(Event::TaskLost {
                task_id,
                pid: w.pid,
            });
        }
        if let Some(why) = &w.retiring {
            self.emit(Event::WorkerRecycled {
                pid: w.pid,
                why: why.clone(),
            });
        }
        self.emit(Event::WorkerExited {
            pid: w.pid,
            exit_code,
            signal,
            planned: planned || !live,
            about: about.clone(),
        });
        if counts_as_start_failure {
            self.start_failed(format!("{about} before it was ready"));
        } else if live && !planned {
            self.crashed(&about);
        }
    }

    /// Stops and reaps every worker, ends every task, and sets a final
    /// phase: SIGTERM to every group, SIGKILL to every group after the kill
    /// grace (to a worker's group whether or not the worker is still there:
    /// until it is reaped, its zombie keeps the group id from being
    /// reused), then the reaps, then a wait for the groups to be empty.
    fn stop_all(&mut self, phase: Phase, message: &str) {
        let groups = self.lives.stop_every(self.shared.limits.kill_grace);
        // The fork server reaps what is left, then exits and is reaped.
        self.launcher.shutdown();
        wait_groups_empty(&groups);
        let mut st = self.shared.state.lock();
        st.finish_all(Outcome::Abandoned, message);
        st.workers.clear();
        st.idle.clear();
        self.shared.set_phase(&mut st, phase);
    }
}
