//! Reading a worker's results pipe, by the supervisor or by the thread
//! waiting for a task that worker holds.
//!
//! A thread waiting for one task (`wait_task`) takes the **reading role**
//! for the results pipe of the worker that holds it, when nobody else is
//! reading it, and reads the result itself: the worker's write wakes the
//! waiting thread directly, as in a pipe ping-pong, instead of waking the
//! supervisor, which then wakes the waiter (one context switch fewer per
//! round trip, the larger part of its cost on one CPU).
//!
//! While a waiter holds the role, the supervisor's epoll does not watch the
//! pipe, so the worker's write wakes only the waiter; giving the role back
//! turns it on again, which reports bytes already waiting, so no byte is
//! left unread. The supervisor watches results pipes edge-triggered: an
//! edge it still sees meanwhile (a hang-up is always reported) is noted
//! (`missed_edge`), and the waiter, when it gives the role back, asks the
//! supervisor to look at the pipe again. A waiter never handles trouble
//! itself: on end of stream or a protocol violation it stops where it is
//! (the bytes stay in the shared inbox) and hands the pipe back to the
//! supervisor, which kills, reaps and accounts as usual. A worker's death
//! seen through its pidfd while a waiter reads is likewise deferred until
//! the role is given back (the waiter sees end of stream at once).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::frames::apply_frames;
use super::shared::Shared;
use super::state::{watch_results, Inbox, Reader, State, Wake};
use crate::area::Area;
use crate::protocol;
use crate::sys;

/// A waiting thread reads its task's result itself only for a task
/// submitted this recently: what it saves (a context switch, microseconds)
/// matters for short tasks, and a task that has run for a while is as well
/// served by the supervisor, which then also sees its worker's death first
/// hand instead of after a hand-over.
const DIRECT_READ_WINDOW: Duration = Duration::from_millis(1);

/// What a waiting thread needs to read one worker's channel.
pub(crate) struct ReaderSession {
    slot: usize,
    generation: u32,
    results: Arc<OwnedFd>,
    inbox: Inbox,
    area: Arc<Area>,
    /// The worker's pidfd: its death ends the reading even when a process
    /// it started keeps the results pipe open (no end of stream).
    pidfd: Option<Arc<OwnedFd>>,
}

/// How a waiting thread's reading ended.
pub(crate) enum SessionEnd {
    /// Its mailbox has the result.
    Mail,
    /// The deadline passed first.
    TimedOut,
    /// End of stream, or the worker's pidfd says it exited: the worker is
    /// gone or going. Giving the pipe back turns the supervisor's interest
    /// in it on again, which reports the end at once (and its pidfd reports
    /// the death).
    Ended,
    /// A bad frame, left in the inbox: the supervisor must be woken to
    /// read it again and stop the worker.
    Violation,
}

impl State {
    /// Gives the thread waiting for `task_id` the reading role for the
    /// channel of the worker holding it, if that worker is live and nobody
    /// reads its channel now.
    pub(crate) fn take_reader_for(&mut self, task_id: u64) -> Option<ReaderSession> {
        use super::state::Phase;
        if !matches!(self.phase, Phase::Running | Phase::Closed) {
            return None;
        }
        let recent = self
            .tasks
            .get(&task_id)
            .is_some_and(|t| t.submitted.elapsed() < DIRECT_READ_WINDOW);
        if !recent {
            return None;
        }
        let (slot, w) = self
            .workers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, w)| w.as_mut().map(|w| (i, w)))
            .find(|(_, w)| w.tasks.contains(&task_id))?;
        if !w.ready || w.dead || w.stop.is_some() || w.reading.is_some() {
            return None;
        }
        w.reading = Some(Reader::Waiter);
        watch_results(&self.epoll, slot, w);
        Some(ReaderSession {
            slot,
            generation: w.generation,
            results: w.results.clone(),
            inbox: w.inbox.clone(),
            area: w.area.clone(),
            pidfd: w.pidfd.clone(),
        })
    }

    /// Ends a waiting thread's reading. Returns true when the supervisor
    /// must look at the pipe again (it saw an edge meanwhile, or a bad frame
    /// waits in the inbox: `trouble`); the caller then wakes it.
    pub(crate) fn give_back_reader(&mut self, s: &ReaderSession, trouble: bool) -> bool {
        let Some((w, epoll)) = self.worker_and_epoll(s.slot, s.generation) else {
            return false;
        };
        w.reading = None;
        watch_results(epoll, s.slot, w);
        if !(w.missed_edge || trouble) {
            return false;
        }
        w.missed_edge = false;
        self.recheck.push((s.slot, s.generation));
        true
    }
}

impl ReaderSession {
    /// Reads and applies the worker's frames until the waiter's mailbox has
    /// its result, the deadline passes, or trouble. Spins (reading without
    /// blocking) up to `spin`, then waits in `poll`.
    pub(crate) fn run(
        &self,
        shared: &Shared,
        wake: &Wake,
        deadline: Option<Instant>,
        spin: Duration,
    ) -> SessionEnd {
        let fd = self.results.as_raw_fd();
        let spin_until = Instant::now() + spin;
        let mut exited = false;
        loop {
            let (saw_eof, violation) = self.pump(shared);
            if wake.has_mail() {
                return SessionEnd::Mail;
            }
            if violation.is_some() {
                return SessionEnd::Violation;
            }
            if saw_eof || exited {
                return SessionEnd::Ended;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return SessionEnd::TimedOut;
            }
            if now < spin_until {
                std::hint::spin_loop();
                continue;
            }
            // The pipe is non-blocking (the supervisor reads it too): wait
            // in poll, on the worker's pidfd too.
            let wait_ms = deadline.map_or(-1, |d| {
                // Rounded up, so the deadline is never cut short.
                let left = d.saturating_duration_since(now).as_micros();
                left.div_ceil(1000).min(i32::MAX as u128) as i32
            });
            let mut fds =
                [fd, self.pidfd.as_ref().map_or(-1, |p| p.as_raw_fd())].map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            sys::poll_once(&mut fds, wait_ms);
            // It exited: what it wrote before is read once more, then the
            // supervisor takes over.
            exited = fds[1].revents != 0;
        }
    }

    /// Reads and applies what the worker's pipe holds now (see [`pump`]).
    fn pump(&self, shared: &Shared) -> (bool, Option<String>) {
        let fd = self.results.as_raw_fd();
        pump(
            shared,
            self.slot,
            self.generation,
            &self.area,
            fd,
            &self.inbox,
        )
    }
}

/// Reads what a worker's results pipe holds into its inbox and applies
/// every complete frame; the supervisor and waiting threads read through
/// here alike. Returns whether the stream ended, and a protocol violation
/// (its bytes stay in the inbox, for the supervisor).
pub(crate) fn pump(
    shared: &Shared,
    slot: usize,
    generation: u32,
    area: &Area,
    fd: RawFd,
    inbox: &Mutex<Vec<u8>>,
) -> (bool, Option<String>) {
    let mut inbox = inbox.lock();
    let saw_eof = fill(fd, &mut inbox, shared.max_frame);
    let (used, sends, mut violation) = apply_frames(shared, slot, generation, area, &inbox);
    inbox.drain(..used);
    protocol::release_large_buffer(&mut inbox, 0, used);
    if saw_eof && violation.is_none() {
        if let Err(e) = protocol::check_eof(&inbox, shared.max_frame) {
            violation = Some(format!("it sent a bad frame: {e}"));
        }
    }
    drop(inbox);
    shared.send_all(sends);
    (saw_eof, violation)
}

/// Reads everything the pipe holds now into `buf`, without blocking.
/// Returns whether the stream ended (or broke).
fn fill(fd: RawFd, buf: &mut Vec<u8>, max_frame: usize) -> bool {
    loop {
        protocol::reserve_read_space(buf, max_frame);
        let room = buf.capacity() - buf.len();
        match sys::read_into(fd, buf) {
            Ok(0) => return true,
            // A short read drained the socket; whatever comes next is a new
            // edge for epoll, and wakes a waiter's poll.
            Ok(n) if n < room => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}
