//! The control page: the second page of a worker's shared area. A few
//! words the pool and one worker read and write without a frame, so that
//! limits and cancellation cost the hot path nothing ("private resident
//! memory" is `Private_Clean + Private_Dirty` of `/proc/self/smaps_rollup`):
//!
//! | offset | type           | writer | what |
//! |--------|----------------|--------|------|
//! | 4096   | u32            | both   | `reply_busy` (see `src/area.rs`) |
//! | 4104   | u64            | pool   | `soft_limit_task`: the task whose soft time limit passed |
//! | 4112   | u64            | worker | `oom_task`: the task it ran when it crashed out of memory |
//! | 4120   | u64            | pool   | `memory_watch`: non-zero asks the worker to report its memory |
//! | 4128   | u64            | worker | `memory`: its private resident memory, in bytes, after its last task |
//! | 4136   | u64            | both   | `cancels`: entries of `cancel` in use |
//! | 4144   | [u64; 256]     | both   | `cancel`: ids of tasks not to start (0: free) |
//! | 6192   | u64            | both   | `running`: the task the worker started last, with flag bits (below) |
//! | 6200   | u64            | pool   | `ack_starts`: non-zero asks the worker to send an ACK for each task it starts |
//!
//! A worker says it reads this page with the HELLO feature
//! [`crate::protocol::FEATURE_CONTROL`].
//!
//! **Cancelling a task a worker holds but may not have started** is a race
//! between the two sides, settled without a lock: the worker records a
//! start in the progress page *before* it looks in `cancel`; the pool
//! writes the id into `cancel` *before* it looks at the progress page
//! (both sequentially consistent). So if the pool sees no start, the
//! worker will see the entry, and it claims it (compare-and-swap to 0)
//! and skips the task. If the pool sees a start, it takes the entry back
//! the same way: if that works the worker runs the task (the pool stops
//! it); if it fails the worker claimed it first and skips the task.
//!
//! **Stopping a worker for one task, never for the next** is settled the
//! same way, on `running`. The worker stores a task's id there *before* it
//! records the start in the progress page, and when the task is done it
//! swaps `id` for `id | DONE` (compare-and-swap); only after that does it
//! look at its next task. The pool, which stops a worker only for a task
//! it saw start (so `running` already holds that id or a later one), swaps
//! `id` for `id | STOP`. Exactly one of the two swaps succeeds:
//!
//! - the pool's: the task has not finished, and the worker, whose own swap
//!   now fails, starts nothing more; it waits to be stopped. The signal can
//!   only hit that task.
//! - the worker's (or `running` already names a later task): the task
//!   finished; the pool does not stop the worker, and for a cancel drops
//!   the result it produced.
//!
//! **Signalling a worker for one task without stopping it** uses a third
//! flag, `HOLD`: under the state lock the pool swaps `id` for `id | HOLD`,
//! sends the signal, and swaps back. A worker whose end-of-task swap finds
//! `HOLD` waits (yielding) until it is gone; the signal is pending by then,
//! and the next system call it makes (the yield, or the RESULT's write)
//! delivers it, before it can start another task. If the pool's swap
//! fails, the task is done and nothing is sent.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Offset of the control page in the area.
pub const CONTROL_OFFSET: usize = 4096;
/// Entries in the cancel list: as many as a worker's window can hold, so
/// it never fills (see [`crate::config::MAX_PREFETCH`]).
pub const CANCEL_SLOTS: usize = 256;

#[repr(C)]
struct Words {
    reply_busy: AtomicU32,
    _pad: u32,
    soft_limit_task: AtomicU64,
    oom_task: AtomicU64,
    memory_watch: AtomicU64,
    memory: AtomicU64,
    cancels: AtomicU64,
    cancel: [AtomicU64; CANCEL_SLOTS],
    running: AtomicU64,
    ack_starts: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Words>() <= 4096);
const _: () = assert!(std::mem::offset_of!(Words, cancel) == 48);
const _: () = assert!(std::mem::offset_of!(Words, running) == 2096);
const _: () = assert!(std::mem::offset_of!(Words, ack_starts) == 2104);

/// In `running`: the worker finished the task.
pub const RUNNING_DONE: u64 = 1 << 63;
/// In `running`: the pool claimed a stop of the worker for the task.
pub const RUNNING_STOP: u64 = 1 << 62;
/// In `running`: the pool is signalling the worker for the task (without
/// stopping it); the worker's end-of-task swap waits until it is gone.
pub const RUNNING_HOLD: u64 = 1 << 61;

/// What [`ControlPage::claim_stop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopClaim {
    /// The task is still running and the worker will start nothing else:
    /// stopping it hits only this task.
    Claimed,
    /// The task finished (the worker may have moved on): do not stop it.
    Finished,
}

/// A view of the control page. Only atomics: safe to share between threads
/// and processes.
#[derive(Clone, Copy)]
pub(crate) struct ControlPage<'a> {
    words: &'a Words,
}

impl<'a> ControlPage<'a> {
    /// # Safety
    /// `head` must point to a shared mapping of the area's first two pages
    /// that stays mapped for `'a` and whose control page is only accessed
    /// atomically.
    pub(crate) unsafe fn from_head(head: NonNull<u8>) -> ControlPage<'a> {
        ControlPage {
            words: &*head.as_ptr().add(CONTROL_OFFSET).cast::<Words>(),
        }
    }

    pub(crate) fn reply_busy(&self) -> &'a AtomicU32 {
        &self.words.reply_busy
    }

    /// In the pool: task `id`'s soft time limit passed.
    pub(crate) fn set_soft_limit(&self, id: u64) {
        self.words.soft_limit_task.store(id, Ordering::Release);
    }

    /// In the worker: whether task `id`'s soft time limit passed.
    pub(crate) fn soft_limit_reached(&self, id: u64) -> bool {
        id != 0 && self.words.soft_limit_task.load(Ordering::Acquire) == id
    }

    /// In the worker (a crash handler): it dies out of memory running `id`.
    pub(crate) fn set_oom(&self, id: u64) {
        self.words.oom_task.store(id, Ordering::Release);
    }

    /// In the pool: the task the worker ran when it died out of memory.
    pub(crate) fn oom_task(&self) -> u64 {
        self.words.oom_task.load(Ordering::Acquire)
    }

    /// In the pool: ask the worker to report its private memory after
    /// each task.
    pub(crate) fn watch_memory(&self) {
        self.words.memory_watch.store(1, Ordering::Release);
    }

    /// In the worker: whether to report its memory.
    pub(crate) fn memory_watched(&self) -> bool {
        self.words.memory_watch.load(Ordering::Relaxed) != 0
    }

    /// In the worker: its private resident memory after its last task.
    pub(crate) fn set_memory(&self, bytes: u64) {
        self.words.memory.store(bytes, Ordering::Release);
    }

    /// In the pool: the memory the worker last reported (0: none yet).
    pub(crate) fn memory(&self) -> u64 {
        self.words.memory.load(Ordering::Acquire)
    }

    /// In the pool: asks the worker not to start task `id`. Returns false if
    /// the list is full (it cannot be while the pool keeps at most
    /// [`CANCEL_SLOTS`] tasks in the worker's window).
    pub(crate) fn request_cancel(&self, id: u64) -> bool {
        for slot in &self.words.cancel {
            if slot
                .compare_exchange(0, id, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.words.cancels.fetch_add(1, Ordering::SeqCst);
                return true;
            }
        }
        false
    }

    /// In the worker: task `id` starts (before its start is recorded in the
    /// progress page).
    pub(crate) fn begin_task(&self, id: u64) {
        self.words.running.store(id, Ordering::SeqCst);
    }

    /// In the worker: task `id` is done. False if the pool claimed a stop
    /// for it first: then the worker must start nothing more.
    /// While the pool holds the task to signal the worker (`RUNNING_HOLD`)
    /// it waits, yielding: the signal is pending once the hold is gone, and
    /// the next system call (the yield, or the RESULT's write) delivers it,
    /// so it lands on this task, never on the next.
    pub(crate) fn end_task(&self, id: u64) -> bool {
        loop {
            match self.words.running.compare_exchange(
                id,
                id | RUNNING_DONE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) if now == id | RUNNING_HOLD => {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
                Err(_) => return false,
            }
        }
    }

    /// In the pool: holds task `id` (which the pool saw start) while it
    /// sends the worker a signal meant for that task. False if the task is
    /// done (or being stopped): then no signal may be sent for it. Every
    /// hold is released ([`ControlPage::release_hold`]) right after the
    /// signal, under the same state lock that a stop's claim takes.
    pub(crate) fn hold(&self, id: u64) -> bool {
        self.words
            .running
            .compare_exchange(id, id | RUNNING_HOLD, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// In the pool: ends a [`ControlPage::hold`].
    pub(crate) fn release_hold(&self, id: u64) {
        let _ = self.words.running.compare_exchange(
            id | RUNNING_HOLD,
            id,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// In the pool: asks the worker to send an ACK frame for every task it
    /// starts (after the cancel list said to run it), so that the pool
    /// learns of each start at once ([`crate::Notice`]).
    pub(crate) fn ask_for_acks(&self) {
        self.words.ack_starts.store(1, Ordering::Release);
    }

    /// In the pool: stops asking for ACKs (starts are then noticed with
    /// their results).
    pub(crate) fn stop_acks(&self) {
        self.words.ack_starts.store(0, Ordering::Release);
    }

    /// In the worker: whether the pool wants an ACK for each start.
    pub(crate) fn acks_wanted(&self) -> bool {
        self.words.ack_starts.load(Ordering::Relaxed) != 0
    }

    /// In the pool: claims the stop of the worker for task `id`, which the
    /// pool saw start (see the module text).
    pub(crate) fn claim_stop(&self, id: u64) -> StopClaim {
        let running = &self.words.running;
        match running.compare_exchange(id, id | RUNNING_STOP, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => StopClaim::Claimed,
            Err(now) if now == id | RUNNING_STOP => StopClaim::Claimed,
            Err(_) => StopClaim::Finished,
        }
    }

    /// Either side: takes task `id` out of the cancel list. True if this
    /// call did (the worker then skips the task; the pool then knows the
    /// worker had not claimed it).
    pub(crate) fn claim_cancel(&self, id: u64) -> bool {
        if id == 0 || self.words.cancels.load(Ordering::SeqCst) == 0 {
            return false;
        }
        for slot in &self.words.cancel {
            if slot
                .compare_exchange(id, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.words.cancels.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::area::Area;

    #[test]
    fn a_cancel_is_claimed_once_by_whichever_side_comes_first() {
        let area = Area::new(4096).unwrap();
        let c = area.control();
        assert!(!c.claim_cancel(5), "nothing requested");
        assert!(c.request_cancel(5));
        assert!(c.request_cancel(6));
        assert!(c.claim_cancel(5));
        assert!(!c.claim_cancel(5), "claimed already");
        assert!(c.claim_cancel(6));
        for id in 1..=CANCEL_SLOTS as u64 {
            assert!(c.request_cancel(id));
        }
        assert!(!c.request_cancel(999), "full");
    }

    #[test]
    fn a_stop_is_claimed_only_while_the_task_runs() {
        let area = Area::new(4096).unwrap();
        let c = area.control();
        c.begin_task(7);
        assert_eq!(c.claim_stop(7), StopClaim::Claimed);
        assert_eq!(c.claim_stop(7), StopClaim::Claimed, "claimed already");
        assert!(
            !c.end_task(7),
            "the worker sees the claim and starts nothing more"
        );
        c.begin_task(8);
        assert!(c.end_task(8), "nobody claimed it");
        assert_eq!(c.claim_stop(8), StopClaim::Finished);
        c.begin_task(9);
        assert_eq!(c.claim_stop(8), StopClaim::Finished, "the worker moved on");
    }

    #[test]
    fn the_stop_claim_and_the_task_end_race_to_one_winner() {
        let area = Area::new(4096).unwrap();
        for id in 1..2000u64 {
            let c = area.control();
            c.begin_task(id);
            let (pool, worker) = std::thread::scope(|s| {
                let pool = s.spawn(|| area.control().claim_stop(id));
                let worker = s.spawn(|| area.control().end_task(id));
                (pool.join().unwrap(), worker.join().unwrap())
            });
            assert_ne!(pool == StopClaim::Claimed, worker, "exactly one side wins");
        }
    }

    #[test]
    fn a_held_task_cannot_end_until_the_hold_is_released_nor_be_held_once_done() {
        let area = Area::new(4096).unwrap();
        let c = area.control();
        c.begin_task(3);
        assert!(c.hold(3));
        assert!(!c.hold(2), "only the task that runs");
        let ended = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(c.end_task(3));
                ended.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!ended.load(Ordering::SeqCst), "the end waits for the hold");
            c.release_hold(3);
        });
        assert!(ended.load(Ordering::SeqCst));
        assert!(!c.hold(3), "a finished task is not held");
        assert_eq!(c.claim_stop(3), StopClaim::Finished);
    }

    #[test]
    fn the_soft_limit_flag_names_one_task() {
        let area = Area::new(4096).unwrap();
        let c = area.control();
        assert!(!c.soft_limit_reached(3));
        c.set_soft_limit(3);
        assert!(c.soft_limit_reached(3));
        assert!(!c.soft_limit_reached(4), "the next task starts clean");
        assert!(!c.soft_limit_reached(0));
    }
}
