//! The pool's epoll set, with one owner and typed tokens. Everything the
//! supervisor waits for is registered here: the wake eventfd, the timerfd,
//! each worker's results pipe, task socket and pidfd, and the fds a
//! launcher asks to have watched (a fork server's control socket and
//! pidfd). Shared (`Arc`) by the supervisor, the state (which switches a
//! worker's interests under its lock) and the launcher; thread-safe, as
//! `epoll_ctl` is.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys;

/// What an epoll event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// The wake eventfd: host threads ask the supervisor to look.
    Wake,
    /// The timerfd: a time limit or kill deadline may have passed.
    Timer,
    /// An fd the launcher watches itself (a fork server's).
    Launcher,
    /// A worker's results pipe has input.
    Results { slot: usize, generation: u32 },
    /// A worker's task socket has room (while its outbox has frames).
    Tasks { slot: usize, generation: u32 },
    /// A worker's pidfd: it exited.
    Pidfd { slot: usize, generation: u32 },
}

const WAKE: u64 = u64::MAX;
const TIMER: u64 = u64::MAX - 1;
const LAUNCHER: u64 = 0;
const KIND_RESULTS: u64 = 1;
const KIND_PIDFD: u64 = 2;
const KIND_TASKS: u64 = 3;

impl Token {
    fn encode(self) -> u64 {
        let worker = |slot: usize, generation: u32, kind: u64| {
            ((slot as u64) << 34) | ((generation as u64) << 2) | kind
        };
        match self {
            Token::Wake => WAKE,
            Token::Timer => TIMER,
            Token::Launcher => LAUNCHER,
            Token::Results { slot, generation } => worker(slot, generation, KIND_RESULTS),
            Token::Tasks { slot, generation } => worker(slot, generation, KIND_TASKS),
            Token::Pidfd { slot, generation } => worker(slot, generation, KIND_PIDFD),
        }
    }

    fn decode(data: u64) -> Token {
        match data {
            WAKE => return Token::Wake,
            TIMER => return Token::Timer,
            LAUNCHER => return Token::Launcher,
            _ => {}
        }
        let (slot, generation) = ((data >> 34) as usize, (data >> 2) as u32);
        match data & 3 {
            KIND_RESULTS => Token::Results { slot, generation },
            KIND_TASKS => Token::Tasks { slot, generation },
            _ => Token::Pidfd { slot, generation },
        }
    }
}

/// What the supervisor watches on a results pipe. Edge-triggered: a waiting
/// thread may read the pipe itself, and the supervisor must not be woken
/// again and again by bytes it leaves to that thread (see `pool/reader.rs`).
pub(crate) const RESULTS_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLET) as u32;
/// Input, level-triggered (eventfds, the timerfd, pidfds, a control socket).
pub(crate) const INPUT: u32 = libc::EPOLLIN as u32;
/// Nothing but hang-ups and errors, edge-triggered (a task socket while its
/// outbox is empty; a results pipe a waiting thread reads).
pub(crate) const QUIET: u32 = libc::EPOLLET as u32;
/// Room for output, edge-triggered (a task socket with frames waiting).
pub(crate) const OUTPUT: u32 = (libc::EPOLLOUT | libc::EPOLLET) as u32;

/// One epoll set.
pub(crate) struct Epoll {
    fd: OwnedFd,
}

/// One event from [`Epoll::wait`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub token: Token,
    pub events: u32,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            fd: sys::epoll_create()?,
        })
    }

    /// Starts watching `fd` for `events`.
    pub(crate) fn add(&self, fd: RawFd, events: u32, token: Token) -> io::Result<()> {
        sys::epoll_ctl(self.raw(), libc::EPOLL_CTL_ADD, fd, events, token.encode())
    }

    /// Changes what is watched on `fd`. Fails only for an fd no longer in
    /// the set (a worker that is gone), which callers may ignore.
    pub(crate) fn modify(&self, fd: RawFd, events: u32, token: Token) -> io::Result<()> {
        sys::epoll_ctl(self.raw(), libc::EPOLL_CTL_MOD, fd, events, token.encode())
    }

    /// Stops watching `fd` (nothing if it was not watched).
    pub(crate) fn remove(&self, fd: RawFd) {
        let _ = sys::epoll_ctl(self.raw(), libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// Waits up to `timeout_ms` (-1: forever) and fills `out`.
    pub(crate) fn wait(
        &self,
        buf: &mut [libc::epoll_event],
        timeout_ms: i32,
        out: &mut Vec<Ready>,
    ) -> io::Result<()> {
        let n = sys::epoll_wait(self.raw(), buf, timeout_ms)?;
        out.clear();
        out.extend(buf[..n].iter().map(|ev| Ready {
            token: Token::decode(ev.u64),
            events: ev.events,
        }));
        Ok(())
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_back_as_they_went_in() {
        for token in [
            Token::Wake,
            Token::Timer,
            Token::Launcher,
            Token::Results {
                slot: 4095,
                generation: u32::MAX,
            },
            Token::Tasks {
                slot: 7,
                generation: 1,
            },
            Token::Pidfd {
                slot: 0,
                generation: 3,
            },
        ] {
            assert_eq!(Token::decode(token.encode()), token);
        }
    }
}
