//! The progress page: one page of memory shared by the pool and one worker,
//! in which the worker records the task it is about to run.
//!
//! A start costs the worker a few stores instead of an ACK frame, and the
//! pool nothing at all: the supervisor is not woken to learn it. The pool
//! reads the page only when it needs to know, when the worker died (was its
//! task started? then `WORKER_LOST`; if not, it is run elsewhere) and when a
//! result arrives (when did the task start?). The page outlives the worker's
//! death, so what it recorded before dying is still there.
//!
//! The page keeps the last [`RING`] starts, not only the last one: with a
//! prefetch window the worker may start its next task before the pool has
//! read the previous task's result, and that result still needs its start.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Starts remembered: as many as fit in the page after the counter.
const RING: usize = (PAGE - 8) / 16;

/// One start: the task id (0: empty or being rewritten) and when it
/// started, CLOCK_MONOTONIC in nanoseconds.
#[repr(C)]
struct Start {
    id: AtomicU64,
    ns: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slots>() <= PAGE);

#[repr(C)]
struct Slots {
    /// Starts recorded so far; the newest is at `(count - 1) % RING`.
    count: AtomicU64,
    ring: [Start; RING],
}

/// A view of the progress page, the first page of a worker's shared area
/// (`src/area.rs`), which owns the mapping. Safe to share between threads
/// and processes: only atomics.
#[derive(Clone, Copy)]
pub(crate) struct ProgressPage<'a> {
    slots: &'a Slots,
}

const PAGE: usize = 4096;

/// CLOCK_MONOTONIC now, in nanoseconds (what the progress page records).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl<'a> ProgressPage<'a> {
    /// # Safety
    /// `page` must point to a page-aligned, shared mapping of at least one
    /// page that stays mapped for `'a` and is only accessed atomically.
    pub(crate) unsafe fn from_raw(page: NonNull<u8>) -> ProgressPage<'a> {
        ProgressPage {
            slots: &*page.as_ptr().cast::<Slots>(),
        }
    }

    fn slots(&self) -> &Slots {
        self.slots
    }

    /// In the worker: task `id` (never 0) starts now. No allocation, no
    /// system call but the vDSO clock.
    pub(crate) fn mark_started(&self, id: u64) {
        let s = self.slots();
        let n = s.count.load(Ordering::Relaxed);
        let e = &s.ring[(n % RING as u64) as usize];
        // Emptied first, so a reader never pairs an id with another's time.
        e.id.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        e.ns.store(monotonic_ns(), Ordering::Relaxed);
        e.id.store(id, Ordering::Release);
        s.count.store(n + 1, Ordering::Release);
    }

    /// In the pool: when the worker started task `id`, if it did and the
    /// start is among the last [`RING`]. Looks from the newest back, where
    /// a task whose result is being read almost always is.
    pub(crate) fn started_at(&self, id: u64) -> Option<Instant> {
        self.started_at_by(id, &Clock::now())
    }

    /// [`ProgressPage::started_at`], read against a clock taken once for
    /// many lookups.
    pub(crate) fn started_at_by(&self, id: u64, clock: &Clock) -> Option<Instant> {
        let s = self.slots();
        let count = s.count.load(Ordering::Acquire);
        let ns = (1..=count.min(RING as u64)).find_map(|back| {
            let e = &s.ring[((count - back) % RING as u64) as usize];
            if e.id.load(Ordering::Acquire) != id {
                return None;
            }
            let ns = e.ns.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            // Still the same start (ids are never reused)?
            (e.id.load(Ordering::Relaxed) == id).then_some(ns)
        })?;
        let ago = clock.ns.saturating_sub(ns);
        clock.instant.checked_sub(Duration::from_nanos(ago))
    }
}

/// The time now, as an [`Instant`] and as the CLOCK_MONOTONIC nanoseconds
/// the progress page records, read together.
pub(crate) struct Clock {
    pub instant: Instant,
    pub ns: u64,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            ns: monotonic_ns(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::area::Area;

    #[test]
    fn a_start_recorded_in_a_child_is_seen_by_the_parent_after_it_died() {
        let area = Area::new(4096).unwrap();
        let page = area.progress();
        assert!(page.started_at(7).is_none());
        // SAFETY: the child only stores to the page and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            page.mark_started(7);
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let at = page.started_at(7).expect("a start time");
        assert!(at <= Instant::now());
        assert!(page.started_at(8).is_none());
    }

    #[test]
    fn earlier_starts_are_still_known_after_later_ones() {
        let area = Area::new(4096).unwrap();
        let page = area.progress();
        for id in 1..=(RING as u64 + 5) {
            page.mark_started(id);
        }
        let newest = RING as u64 + 5;
        assert!(page.started_at(newest).is_some());
        assert!(
            page.started_at(newest - 1).is_some(),
            "a result read one start late"
        );
        assert!(
            page.started_at(6).is_some(),
            "the oldest start the ring holds"
        );
        assert!(page.started_at(5).is_none(), "overwritten");
        assert!(page.started_at(newest + 1).is_none(), "never started");
    }
}
