//! A worker's life as the supervisor sees it: the process (pid, pidfd,
//! who reaps it), how it is signalled, how its process group is ended and
//! waited for, and how its end is described. Only the supervisor thread
//! uses these.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fate::SignalTarget;
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
struct Anchor {
    slot: usize,
    generation: u32,
    pid: libc::pid_t,
}

/// Every worker process of a pool as the supervisor sees it: the live ones,
/// by slot and generation, and the anchors. Owned by the supervisor thread,
/// which alone starts, signals and reaps workers.
#[derive(Default)]
pub(crate) struct Lives {
    links: Vec<Option<Link>>,
    anchors: Vec<Anchor>,
    next_generation: u32,
}

impl Lives {
    /// A free slot and a new generation, for a worker about to be adopted.
    pub(crate) fn reserve(&mut self) -> (usize, u32) {
        let slot = match self.links.iter().position(|l| l.is_none()) {
            Some(s) => s,
            None => {
                self.links.push(None);
                self.links.len() - 1
            }
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        (slot, self.next_generation)
    }

    /// Adds a worker in the slot [`Lives::reserve`] gave.
    pub(crate) fn insert(&mut self, slot: usize, link: Link) {
        self.links[slot] = Some(link);
    }

    /// The live worker in `slot`, if it is still generation `generation`.
    pub(crate) fn get(&mut self, slot: usize, generation: u32) -> Option<&mut Link> {
        self.links
            .get_mut(slot)
            .and_then(|l| l.as_mut())
            .filter(|l| l.generation == generation)
    }

    /// Takes a worker out (it is being finalized).
    pub(crate) fn take(&mut self, slot: usize, generation: u32) -> Option<Link> {
        self.links
            .get_mut(slot)?
            .take_if(|l| l.generation == generation)
    }

    /// The first live worker `pred` holds for.
    pub(crate) fn find(&self, pred: impl Fn(&Link) -> bool) -> Option<(usize, u32)> {
        self.links
            .iter()
            .enumerate()
            .find_map(|(slot, l)| l.as_ref().filter(|l| pred(l)).map(|l| (slot, l.generation)))
    }

    /// Live workers (anchors not counted).
    pub(crate) fn count(&self) -> usize {
        self.links.iter().flatten().count()
    }

    /// No process of the pool is left: no live worker, no anchor.
    pub(crate) fn none_left(&self) -> bool {
        self.count() == 0 && self.anchors.is_empty()
    }

    /// Some worker of ours has no pidfd: its exit must be polled for.
    pub(crate) fn needs_polling(&self) -> bool {
        self.links
            .iter()
            .flatten()
            .any(|l| l.pidfd.is_none() && l.ours())
    }

    /// Workers of ours without a pidfd that have exited (old kernels only).
    pub(crate) fn exited_unwatched(&self) -> Vec<(usize, u32, ExitStatus)> {
        self.links
            .iter()
            .enumerate()
            .filter_map(|(slot, l)| {
                let l = l.as_ref()?;
                if l.pidfd.is_some() || l.dead.is_some() || !l.ours() {
                    return None;
                }
                sys::exit_status_unreaped(l.pid).map(|status| (slot, l.generation, status))
            })
            .collect()
    }

    /// End of stream on every worker's task socket: each exits cleanly.
    pub(crate) fn close_channels(&self) {
        for l in self.links.iter().flatten() {
            // SAFETY: shutting down our own socket.
            unsafe { libc::shutdown(l.channel.as_raw_fd(), libc::SHUT_WR) };
        }
    }

    /// Sends `sig` to a worker and its process group, whether or not the
    /// worker has exited (see [`signal_link`]); SIGKILL also reaches the
    /// group of a worker that exited meanwhile and is anchored ([`Anchor`]).
    pub(crate) fn signal(&mut self, slot: usize, generation: u32, sig: i32) {
        if let Some(link) = self.get(slot, generation) {
            if sig == libc::SIGKILL {
                link.inbox.lock().clear();
            }
            signal_link(link, sig, true);
            return;
        }
        if sig != libc::SIGKILL {
            return;
        }
        if let Some(at) = self
            .anchors
            .iter()
            .position(|a| (a.slot, a.generation) == (slot, generation))
        {
            let anchor = self.anchors.swap_remove(at);
            end_group(anchor.pid);
        }
    }

    /// Ends the process group of a worker that exited (`status`), so that
    /// nothing its handler started outlives it: SIGKILL to the group, then
    /// the reap. A worker being stopped whose grace still runs (`graced`:
    /// its kill timer is still due, and removes the anchor) and whose group
    /// has other members keeps its zombie (an [`Anchor`]) until its kill
    /// deadline, so those members get the whole grace after the
    /// SIGTERM, as the worker did (with no member left, none can appear:
    /// only a member can fork one). A fork server's worker is reaped by
    /// the server, which ends its group first (worker/forkserver.rs).
    pub(crate) fn end_group_of(
        &mut self,
        slot: usize,
        link: &Link,
        status: ExitStatus,
        graced: bool,
    ) {
        // Reaped by somebody else: no zombie holds the group id any more.
        if !link.ours() || status == ExitStatus::Unknown {
            return;
        }
        if graced && sys::group_has_others(link.pid) {
            self.anchors.push(Anchor {
                slot,
                generation: link.generation,
                pid: link.pid,
            });
            return;
        }
        end_group(link.pid);
    }

    /// Stops and reaps every worker: SIGTERM to every group, SIGKILL to
    /// every group after `grace` (to a worker's group whether or not the
    /// worker is still there: until it is reaped, its zombie keeps the
    /// group id from being reused), then the reaps. Returns the groups, for
    /// [`wait_groups_empty`] once the launcher is shut down too.
    pub(crate) fn stop_every(&mut self, grace: Duration) -> Vec<libc::pid_t> {
        let first = first_stop_signal(grace);
        for link in self.links.iter().flatten() {
            signal_link(link, first, true);
        }
        for anchor in &self.anchors {
            sys::signal_group(anchor.pid, first);
        }
        let deadline = Instant::now() + grace;
        if first != libc::SIGKILL {
            for link in self.links.iter().flatten() {
                wait_gone(link, deadline);
            }
        }
        let mut groups = Vec::new();
        for link in self.links.drain(..).flatten() {
            signal_link(&link, libc::SIGKILL, true);
            if !link.reaped_elsewhere() {
                groups.push(link.pid);
            }
            match (link.reaper, &link.pidfd) {
                // (Unless somebody else reaped it: its pid may be anyone's.)
                (Reaper::Pool, _) if link.reaped_elsewhere() => {}
                (Reaper::Pool, _) => {
                    sys::reap_blocking(link.pid);
                }
                // The fork server reaps it; its pidfd says when it is gone.
                (Reaper::Server(_), Some(p)) => while !sys::poll_readable(p.as_raw_fd(), -1) {},
                (Reaper::Server(_), None) => {}
            }
        }
        for anchor in self.anchors.drain(..) {
            groups.push(anchor.pid);
            end_group(anchor.pid);
        }
        groups
    }
}

/// How long [`wait_groups_empty`] waits for the members of stopped groups
/// to be reaped by their new parent (init, or a subreaper).
const GROUPS_EMPTY_WAIT: Duration = Duration::from_secs(2);

/// SIGKILL to the group of our exited, unreaped child `pid` (its zombie
/// holds the group id), then the reap.
fn end_group(pid: libc::pid_t) {
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
fn wait_gone(link: &Link, deadline: Instant) -> bool {
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

/// Sends `sig` to the worker process of a held task (not its group), for
/// [`crate::Pool::signal_task`], while the caller holds the state lock:
/// through its pidfd; by pid where the kernel has no `pidfd_send_signal`
/// (valgrind) and the pid is known to be the worker's (our own unreaped
/// child, which the supervisor marks dead under that lock before it
/// reaps; a fork server's worker while its pidfd says it lives).
pub(crate) fn signal_held(target: &SignalTarget, sig: i32) -> std::io::Result<()> {
    let by_pid = || {
        // SAFETY: kill has no memory preconditions.
        sys::cvt(unsafe { libc::kill(target.pid, sig) } as libc::c_long).map(drop)
    };
    match &target.pidfd {
        Some(pidfd) => match sys::pidfd_send_signal(pidfd.as_raw_fd(), sig) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                if !target.own_child && sys::pidfd_exited(pidfd.as_raw_fd()) {
                    Ok(())
                } else {
                    by_pid()
                }
            }
            other => other,
        },
        None => by_pid(),
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
