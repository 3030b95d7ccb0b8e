//! A worker's life as the supervisor sees it: the process (pid, pidfd,
//! who reaps it), how it is signalled, how its process group is ended and
//! waited for, and how its end is described. Only the supervisor thread
//! uses these.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{Inbox, Worker};
use crate::area::Area;
use crate::spawn::Reaper;
use crate::sys::{self, ExitStatus};

/// The supervisor's private view of a worker process.
pub(crate) struct Link {
    pub(crate) generation: u32,
    pub(crate) pid: libc::pid_t,
    pub(crate) channel: Arc<OwnedFd>,
    /// The read end of its results pipe.
    pub(crate) results: Arc<OwnedFd>,
    /// Its shared area, from which the supervisor copies large replies.
    pub(crate) area: Arc<Area>,
    /// Shared with the thread that may read its results (which watches it
    /// too, see `reader.rs`).
    pub(crate) pidfd: Option<Arc<OwnedFd>>,
    pub(crate) inbox: Inbox,
    pub(crate) eof: bool,
    /// It exited (our child is not reaped yet: see [`Anchor`]); finalized
    /// at once, or once the waiting thread reading its channel gives the
    /// channel back.
    pub(crate) dead: Option<ExitStatus>,
    /// Who reaps it.
    pub(crate) reaper: Reaper,
    /// A fork server's worker whose pidfd said it exited; its status comes
    /// from the server.
    pub(crate) exited: bool,
    /// Its fork server died: no status will come (why it died).
    pub(crate) server_lost: Option<String>,
}

impl Link {
    /// Whether the supervisor reaps it itself with `waitpid`.
    pub(crate) fn ours(&self) -> bool {
        self.reaper == Reaper::Pool
    }

    /// Our child, but somebody else collected its exit status (a host
    /// thread calling `waitpid(-1)`): no zombie holds its pid or its group
    /// id, so neither may be signalled any more.
    pub(crate) fn reaped_elsewhere(&self) -> bool {
        self.ours() && self.dead == Some(ExitStatus::Unknown)
    }
}

/// A worker of ours that exited and whose tasks are settled, left unreaped
/// until its stop's kill grace ends: its zombie keeps its pid, and so its
/// process group id, from being reused, so that processes its handler
/// started, still in the group, get the stop's SIGKILL safely.
pub(crate) struct Anchor {
    pub(crate) slot: usize,
    pub(crate) generation: u32,
    pub(crate) pid: libc::pid_t,
}

/// How long [`wait_groups_empty`] waits for the members of stopped groups
/// to be reaped by their new parent (init, or a subreaper).
const GROUPS_EMPTY_WAIT: Duration = Duration::from_secs(2);

/// SIGKILL to the group of our exited, unreaped child `pid` (its zombie
/// holds the group id), then the reap.
pub(crate) fn end_group(pid: libc::pid_t) {
    sys::signal_group(pid, libc::SIGKILL);
    sys::reap_blocking(pid);
}

/// Waits (a while at most) until no process of the groups `pgids` is left.
/// Every member was sent SIGKILL and, its leader reaped, is reaped by
/// init; only a checking signal is sent now, so an id reused meanwhile is
/// harmless.
pub(crate) fn wait_groups_empty(pgids: &[libc::pid_t]) {
    let deadline = Instant::now() + GROUPS_EMPTY_WAIT;
    for &pgid in pgids {
        while sys::group_exists(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits until a worker has exited (not reaped), or `deadline` passed.
/// Returns whether it exited.
pub(crate) fn wait_gone(link: &Link, deadline: Instant) -> bool {
    loop {
        if link.dead.is_some() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        match &link.pidfd {
            Some(p) => {
                if sys::poll_readable(p.as_raw_fd(), ms) {
                    return true;
                }
            }
            // Without a pidfd: look every few ms (old kernels only).
            None if link.ours() => {
                if sys::exit_status_unreaped(link.pid).is_some() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(ms.clamp(0, 5) as u64));
            }
            None => return true,
        }
        if left.is_zero() {
            return false;
        }
    }
}

/// The first signal of a stop: SIGTERM, or SIGKILL when there is no grace.
pub(crate) fn first_stop_signal(grace: Duration) -> i32 {
    if grace.is_zero() {
        libc::SIGKILL
    } else {
        libc::SIGTERM
    }
}

/// Sends `sig` to a worker through its pidfd (or pid), and to its process
/// group when `group`. Our own child is not reaped before its tasks are
/// settled and its group ended, so its pid and group id are ours to signal
/// even after it exited. A fork server's worker may be reaped by the
/// server at any time: its group is signalled only while its pidfd says it
/// has not exited.
pub(crate) fn signal_link(link: &Link, sig: i32, group: bool) {
    match &link.pidfd {
        Some(p) => {
            let _ = sys::pidfd_send_signal(p.as_raw_fd(), sig);
            if !link.ours() && (link.exited || sys::pidfd_exited(p.as_raw_fd())) {
                return;
            }
        }
        // A fork server's worker without a pidfd: its pid is not ours to
        // signal (the server may have reaped it); its server's death or the
        // end of its channel stops it.
        None if !link.ours() => return,
        // Reaped by somebody else (a host thread's waitpid(-1)): its pid
        // may be another process's by now.
        None if link.reaped_elsewhere() => return,
        // SAFETY: our own child, not yet reaped, so the pid is still ours.
        None => unsafe {
            libc::kill(link.pid, sig);
        },
    }
    if group && !link.reaped_elsewhere() {
        sys::signal_group(link.pid, sig);
    }
}

/// "worker 12 exited with code 3", with the pool's reason or the worker's
/// last words; or why its status is unknown when its fork server died.
pub(crate) fn describe_exit(
    pid: libc::pid_t,
    status: ExitStatus,
    w: &Worker,
    server_lost: Option<&str>,
) -> String {
    if let Some(why) = server_lost {
        return format!("worker {pid} died with its fork server ({why})");
    }
    let how = match status {
        ExitStatus::Code(c) => format!("worker {pid} exited with code {c}"),
        ExitStatus::Signal(s) => format!("worker {pid} was killed by {}", sys::signal_name(s)),
        ExitStatus::Unknown => {
            format!("worker {pid} ended, but another part of the process collected its exit status")
        }
    };
    match (&w.stop, &w.retiring, &w.last_words) {
        (Some(stop), _, _) => format!("{how} (the pool stopped it because {})", stop.reason()),
        (None, Some(why), _) => format!("{how} (the pool replaced it because {why})"),
        (None, None, Some(words)) => format!("{how} (it said: {words})"),
        (None, None, None) => how,
    }
}
