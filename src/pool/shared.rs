//! What host threads and the supervisor share: the state behind its lock,
//! the pool's fds, its settings, and the writing of frames to a worker's
//! task socket, which any thread may do (one writer per channel at a time:
//! `direct_sending`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::state::{Phase, Send, State};
use crate::config::{EventHandler, Limits};
use crate::sys::{self, Sent};
use crate::watch::Epoll;

/// Most frames written by one `sendmsg` from an outbox.
const OUTBOX_BATCH: usize = 64;

/// What host threads and the supervisor share.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Signalled on phase changes and when a full queue shrinks.
    pub changed: Condvar,
    /// Written to wake the supervisor.
    pub wake_fd: OwnedFd,
    /// Readable while results wait to be collected (`billiard_pool_fd`).
    pub results_fd: OwnedFd,
    pub epoll: Arc<Epoll>,
    pub max_frame: usize,
    pub max_queued: usize,
    pub next_task: AtomicU64,
    /// How long a waiter spins before sleeping (zero: not at all).
    pub spin_wait: Duration,
    /// The pool's limits (from its config).
    pub limits: Limits,
    pub on_event: Option<EventHandler>,
}

impl Shared {
    pub(crate) fn wake(&self) {
        sys::eventfd_signal(self.wake_fd.as_raw_fd());
    }

    pub(crate) fn set_phase(&self, st: &mut State, phase: Phase) {
        st.phase = phase;
        self.changed.notify_all();
    }

    /// Writes a TASK frame from whichever thread assigned it, without
    /// blocking. What does not fit into the socket goes to the worker's
    /// outbox, for the supervisor (EPOLLOUT). A broken channel is ignored
    /// here: the supervisor sees the death and requeues unstarted tasks.
    pub(crate) fn send(&self, s: Send) {
        let fd = s.channel.as_raw_fd();
        let rest = match sys::send_nonblocking(fd, &s.frame, 0) {
            Sent::Partial(offset) => Some((s.frame, offset)),
            Sent::All | Sent::Broken(_) => None,
        };
        self.state.lock().direct_done(s.slot, s.generation, rest);
    }

    /// Writes a worker's outbox, many frames per `sendmsg`, while the
    /// channel has room; turns EPOLLOUT off once it is empty, on when the
    /// channel is full. Any thread may call it: it writes only if nobody
    /// else writes to the channel (`direct_sending`, which it sets while it
    /// writes; whoever writes picks up frames queued meanwhile).
    pub(crate) fn flush_outbox(&self, slot: usize, generation: u32) {
        loop {
            let (frames, skip, fd) = {
                let mut st = self.state.lock();
                let Some(w) = st.worker_mut(slot, generation) else {
                    return;
                };
                if w.outbox.is_empty() || w.direct_sending {
                    st.outbox_idle(slot, generation);
                    return;
                }
                w.direct_sending = true;
                let frames: Vec<Arc<Vec<u8>>> =
                    w.outbox.iter().take(OUTBOX_BATCH).cloned().collect();
                (frames, w.outbox_sent, w.channel.clone())
            };
            let bufs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            let sent = sys::send_vectored_nonblocking(fd.as_raw_fd(), &bufs, skip);
            let mut st = self.state.lock();
            let Some(w) = st.worker_mut(slot, generation) else {
                return;
            };
            w.direct_sending = false;
            let Ok(mut n) = sent else {
                // Broken: the death is handled through the pidfd and EOF.
                w.outbox.clear();
                w.outbox_sent = 0;
                st.outbox_idle(slot, generation);
                return;
            };
            if n == 0 {
                st.outbox_full(slot, generation);
                return;
            }
            n += w.outbox_sent;
            w.outbox_sent = 0;
            while let Some(front) = w.outbox.front() {
                if n < front.len() {
                    w.outbox_sent = n;
                    break;
                }
                n -= front.len();
                w.outbox.pop_front();
            }
        }
    }

    pub(crate) fn send_all(&self, sends: Vec<Send>) {
        for s in sends {
            self.send(s);
        }
    }
}
