//! The pool's timers: time limits and kill deadlines, in one heap, behind
//! one timerfd that the supervisor's epoll watches. Any thread that holds
//! the state lock may add a deadline (a task assigned to a worker); only
//! an earlier one than the timerfd's costs a system call.
//!
//! A time limit runs from the task's start, which the pool learns only
//! when it looks (the progress page, or an ACK). So a task's first
//! deadline is its assignment plus the limit: the start cannot be earlier.
//! When that passes, the supervisor looks: a task that started at `s` gets
//! `s + limit` (and is stopped if that passed too); one not yet started
//! gets `now + limit`. No deadline fires late, and none costs a wake-up
//! before it could be due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// Task `id`'s soft time limit may have passed.
    Soft(u64),
    /// Task `id`'s hard time limit may have passed.
    Hard(u64),
    /// The grace of the worker in (slot, generation) after SIGTERM ended.
    Kill(usize, u32),
}

pub(crate) struct Timers {
    /// Deadlines in CLOCK_MONOTONIC nanoseconds.
    heap: BinaryHeap<Reverse<(u64, Due)>>,
    /// What the timerfd is set to.
    armed: Option<u64>,
    fd: OwnedFd,
}

impl Timers {
    pub(crate) fn new() -> io::Result<Timers> {
        Ok(Timers {
            heap: BinaryHeap::new(),
            armed: None,
            fd: sys::timerfd()?,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Adds a deadline at `at` (monotonic ns).
    pub(crate) fn add(&mut self, at: u64, due: Due) {
        self.heap.push(Reverse((at, due)));
        if self.armed.is_none_or(|armed| at < armed) {
            self.armed = Some(at);
            sys::timerfd_set(self.fd(), Some(at));
        }
    }

    /// The next deadline that passed by `now`, taken off the heap.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Due> {
        let Reverse((at, due)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some(due)
    }

    /// After [`Timers::pop_due`]: sets the timerfd to the next deadline.
    pub(crate) fn rearm(&mut self) {
        let next = self.heap.peek().map(|Reverse((at, _))| *at);
        // The timerfd fired (or the supervisor looked early): drain it.
        let mut ticks = [0u8; 8];
        // SAFETY: reads into a local buffer from our non-blocking timerfd.
        unsafe { libc::read(self.fd(), ticks.as_mut_ptr().cast(), 8) };
        self.armed = next;
        sys::timerfd_set(self.fd(), next);
    }

    /// Deadlines not yet handled (for tests and stats).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::monotonic_ns;

    #[test]
    fn deadlines_come_out_in_order_and_the_timerfd_fires_for_the_first() {
        let mut t = Timers::new().unwrap();
        let now = monotonic_ns();
        t.add(now + 2_000_000, Due::Hard(2));
        t.add(now + 1_000_000, Due::Soft(1));
        t.add(now + 60_000_000_000, Due::Kill(0, 1));
        assert_eq!(t.pop_due(now), None, "nothing due yet");
        assert!(sys::poll_readable(t.fd(), 5000), "the timerfd fires");
        assert_eq!(t.pop_due(monotonic_ns()), Some(Due::Soft(1)));
        t.rearm();
        assert!(sys::poll_readable(t.fd(), 5000), "then for the next one");
        assert_eq!(t.pop_due(monotonic_ns()), Some(Due::Hard(2)));
        t.rearm();
        assert!(!sys::poll_readable(t.fd(), 20), "not for one a minute away");
        assert_eq!(t.len(), 1);
    }
}
