//! The worker's shared area: one memfd per worker, mapped by the pool and by
//! the worker, through which large payloads and replies travel without
//! being pushed through the channel (see `docs/PROTOCOL.md`).
//!
//! Layout (offsets in bytes; `R` is the maximum frame size rounded up to a
//! page, so every payload the channel could carry fits a region):
//!
//! | offset        | size | what |
//! |---------------|------|------|
//! | 0             | 4096 | the progress page (`src/progress.rs`) |
//! | 4096          | 4096 | the control page (`src/control.rs`) |
//! | 8192          | R    | the task region: written by the pool, read by the worker |
//! | 8192 + R      | R    | the reply region: written by the worker, read by the pool |
//!
//! The file is sized once, sparse (a page costs memory only once written),
//! and sealed against shrinking, so no side can make the other's mapping
//! fault. Each region has one writer at a time:
//!
//! - the task region belongs to the pool from the moment it picks the
//!   worker for a TASK_SHM until that task's result arrives (one such task
//!   per worker at a time);
//! - the reply region belongs to the worker while `reply_busy` is 0; the
//!   worker sets it to 1 before sending RESULT_SHM, and the pool sets it
//!   back to 0 once it has copied the reply out.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

use crate::control::ControlPage;
use crate::progress::ProgressPage;
use crate::protocol::{worth_giving_back, KEEP_CAPACITY as KEEP};
use crate::sys::cvt;

const PAGE: usize = 4096;
/// Bytes before the task region: the progress page and the control page.
pub const HEAD: usize = 2 * PAGE;
/// Payloads and replies of at least this many bytes go through the area
/// when it is free; smaller ones are cheaper through the channel.
pub const AREA_MIN: usize = 64 * 1024;

/// The size of each region for a pool whose maximum frame is `max_frame`.
pub fn region_size(max_frame: usize) -> usize {
    max_frame.div_ceil(PAGE) * PAGE
}

/// Offset of the task region.
pub const TASK_OFFSET: usize = HEAD;

/// Offset of the reply region for regions of `region` bytes.
pub const fn reply_offset(region: usize) -> usize {
    HEAD + region
}

/// One worker's area as the pool holds it. Shared by host threads (the task
/// region, while they own it) and the supervisor (the reply region); each
/// window sits behind its own lock, which is only ever contended by design
/// errors, never on the hot path.
pub(crate) struct Area {
    fd: OwnedFd,
    head: NonNull<u8>,
    region: usize,
    task: Mutex<Window>,
    reply: Mutex<Window>,
}

// SAFETY: the head mapping holds only atomics (progress page, control word);
// the windows are behind mutexes.
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Area {
    /// A fresh area for regions of `region` bytes (see [`region_size`]).
    pub(crate) fn new(region: usize) -> io::Result<Area> {
        // SAFETY: plain syscall with a static name.
        let raw = unsafe {
            libc::memfd_create(
                c"billiard-area".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        cvt(raw as libc::c_long)?;
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = HEAD + 2 * region;
        // SAFETY: sizing and sealing our own memfd.
        unsafe {
            cvt(libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) as libc::c_long)?;
            cvt(libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            ) as libc::c_long)?;
        }
        let head = map(fd.as_raw_fd(), 0, HEAD, false)?;
        Ok(Area {
            task: Mutex::new(Window::new(fd.as_raw_fd(), TASK_OFFSET, region)),
            reply: Mutex::new(Window::new(fd.as_raw_fd(), reply_offset(region), region)),
            fd,
            head,
            region,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Bytes of each region.
    #[cfg(test)]
    pub(crate) fn region(&self) -> usize {
        self.region
    }

    pub(crate) fn progress(&self) -> ProgressPage<'_> {
        // SAFETY: the first page of the head mapping, alive as long as self.
        unsafe { ProgressPage::from_raw(self.head) }
    }

    pub(crate) fn control(&self) -> ControlPage<'_> {
        // SAFETY: the head mapping, alive as long as self.
        unsafe { ControlPage::from_head(self.head) }
    }

    fn reply_busy(&self) -> &AtomicU32 {
        reply_busy(self.head)
    }

    /// In the pool, by the thread that owns the task region: copies a
    /// payload into it. Gives back memory a much larger payload left.
    pub(crate) fn write_task(&self, payload: &[u8]) -> io::Result<()> {
        let mut w = self.task.lock();
        w.shrink_for(payload.len());
        w.ensure(payload.len())?;
        // SAFETY: ensure() mapped at least payload.len() bytes; the region
        // belongs to this thread until the task's result arrives.
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), w.base(), payload.len()) };
        Ok(())
    }

    /// In the pool: a copy of the first `len` bytes of the task region (to
    /// run a task elsewhere when its worker died before starting it).
    pub(crate) fn read_task(&self, len: usize) -> io::Result<Vec<u8>> {
        self.task.lock().copy_out(len)
    }

    /// In the pool's supervisor: copies a reply the worker announced in a
    /// RESULT_SHM frame out of the reply region and hands the region back.
    pub(crate) fn take_reply(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        let start = reply_offset(self.region) as u64;
        if offset != start || len > self.region as u64 {
            return Err(format!(
                "its RESULT_SHM names {len} bytes at offset {offset}; the reply region is \
                 {} bytes at offset {start}",
                self.region
            ));
        }
        let data = self
            .reply
            .lock()
            .copy_out(len as usize)
            .map_err(|e| format!("its reply could not be mapped: {e}"))?;
        self.reply_busy().store(0, Ordering::Release);
        Ok(data)
    }

    /// In the pool: gives back the task region's memory if it grew large,
    /// when no task owns it (the caller makes sure of that).
    pub(crate) fn release_task_region(&self) {
        self.task.lock().shrink_for(0);
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: unmapping the head mapped in new(), once.
        unsafe { libc::munmap(self.head.as_ptr().cast(), HEAD) };
    }
}

fn reply_busy<'a>(head: NonNull<u8>) -> &'a AtomicU32 {
    // SAFETY: the head mapping holds the control page; callers keep it alive.
    unsafe { ControlPage::from_head(head) }.reply_busy()
}

/// Below this, a fresh buffer is left to the kernel's default page size.
const HUGE_MIN: usize = 4 << 20;

/// Asks for transparent huge pages on the whole 2 MiB pages inside a fresh
/// buffer of `len` bytes at `ptr` about to be filled: a 64 MiB reply then
/// costs 32 page faults instead of 16,384. Only a hint (the kernel may
/// ignore it, and does unless huge pages are enabled for `madvise`).
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < HUGE_MIN {
        return;
    }
    let start = (ptr as usize).div_ceil(HUGE) * HUGE;
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice on whole pages inside memory this process owns;
        // it changes no content.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// `mmap` of `len` bytes of `fd` at `offset`, shared, read and write
/// (read only when `read_only`).
fn map(fd: RawFd, offset: usize, len: usize, read_only: bool) -> io::Result<NonNull<u8>> {
    let prot = if read_only {
        libc::PROT_READ
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    // SAFETY: a fresh shared mapping of our own fd.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// A mapping of the start of one region, grown as payloads need. Owned by
/// one side; not shared between threads without a lock.
pub(crate) struct Window {
    fd: RawFd,
    offset: usize,
    limit: usize,
    base: Option<NonNull<u8>>,
    mapped: usize,
    /// Bytes written since the window was last given back (high water).
    used: usize,
    /// Mapped read-only (the worker's view of its task region).
    read_only: bool,
}

// SAFETY: a plain mapping owned by whoever holds the Window.
unsafe impl Send for Window {}

impl Window {
    /// A window on `limit` bytes of `fd` at `offset`; maps nothing yet.
    pub(crate) fn new(fd: RawFd, offset: usize, limit: usize) -> Window {
        Window {
            fd,
            offset,
            limit,
            base: None,
            mapped: 0,
            used: 0,
            read_only: false,
        }
    }

    /// Maps at least `len` bytes (at most the region).
    pub(crate) fn ensure(&mut self, len: usize) -> io::Result<()> {
        if len > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{len} bytes do not fit a region of {}", self.limit),
            ));
        }
        self.used = self.used.max(len);
        if len <= self.mapped && self.base.is_some() {
            return Ok(());
        }
        let want = len.max(KEEP).next_power_of_two().min(self.limit).max(len);
        let want = want.div_ceil(PAGE) * PAGE;
        self.unmap();
        self.base = Some(map(self.fd, self.offset, want, self.read_only)?);
        self.mapped = want;
        Ok(())
    }

    /// Start of the mapping; only after a successful [`Window::ensure`].
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.map_or(std::ptr::null_mut(), |b| b.as_ptr())
    }

    /// A copy of the first `len` bytes.
    fn copy_out(&mut self, len: usize) -> io::Result<Vec<u8>> {
        self.ensure(len)?;
        let mut out = Vec::with_capacity(len);
        advise_huge_pages(out.as_mut_ptr(), len);
        // SAFETY: ensure() mapped len bytes; out has room for len.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base(), out.as_mut_ptr(), len);
            out.set_len(len);
        }
        Ok(out)
    }

    /// Gives back the memory past what a payload of `len` bytes needs, when
    /// that is worth it ([`worth_giving_back`]). Only by the side that owns
    /// the region right now.
    pub(crate) fn shrink_for(&mut self, len: usize) {
        if !worth_giving_back(self.used, len) {
            return;
        }
        let from = len.div_ceil(PAGE) * PAGE;
        // SAFETY: punching a hole in our own region of the memfd; the file
        // keeps its size, so mappings read zeros there instead of faulting.
        unsafe {
            libc::fallocate(
                self.fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (self.offset + from) as libc::off_t,
                (self.used.div_ceil(PAGE) * PAGE - from) as libc::off_t,
            )
        };
        self.used = len;
        if self.mapped > KEEP {
            self.unmap();
        }
    }

    fn unmap(&mut self) {
        if let Some(b) = self.base.take() {
            // SAFETY: unmapping what ensure() mapped.
            unsafe { libc::munmap(b.as_ptr().cast(), self.mapped) };
        }
        self.mapped = 0;
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.unmap();
    }
}

/// What a worker needs to find its area: the memfd, where the head is
/// mapped, and the region size. Plain data, copied into a forked worker.
#[derive(Clone, Copy)]
pub(crate) struct AreaHandle {
    pub fd: RawFd,
    pub head: NonNull<u8>,
    pub region: usize,
}

impl Area {
    pub(crate) fn handle(&self) -> AreaHandle {
        AreaHandle {
            fd: self.fd(),
            head: self.head,
            region: self.region,
        }
    }
}

impl AreaHandle {
    /// In a worker program: maps the head of the area memfd `fd` it was
    /// given. The region size follows from the file size (`HEAD + 2R`).
    /// The mapping lives as long as the process.
    pub(crate) fn open(fd: RawFd) -> io::Result<AreaHandle> {
        // SAFETY: fstat fills a plain struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        cvt(unsafe { libc::fstat(fd, &mut st) } as libc::c_long)?;
        let size = st.st_size as usize;
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
            "fd {fd} is not a billiard area ({size} bytes, not 8192 + 2 x a whole number of pages)"
        ),
            )
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || size < HEAD + 2 * PAGE {
            return Err(bad());
        }
        let region = (size - HEAD) / 2;
        if region % PAGE != 0 || HEAD + 2 * region != size {
            return Err(bad());
        }
        Ok(AreaHandle {
            fd,
            head: map(fd, 0, HEAD, false)?,
            region,
        })
    }

    pub(crate) fn progress(&self) -> ProgressPage<'static> {
        // SAFETY: in a worker the head mapping is never unmapped.
        unsafe { ProgressPage::from_raw(self.head) }
    }

    pub(crate) fn control(&self) -> ControlPage<'static> {
        // SAFETY: in a worker the head mapping is never unmapped.
        unsafe { ControlPage::from_head(self.head) }
    }
}

/// The worker's window on its task region. Single-threaded.
pub(crate) struct TaskRegion {
    window: Window,
}

impl TaskRegion {
    pub(crate) fn new(area: AreaHandle) -> TaskRegion {
        TaskRegion {
            window: Window {
                read_only: true,
                ..Window::new(area.fd, TASK_OFFSET, area.region)
            },
        }
    }

    /// The payload a TASK_SHM frame names, mapped; `None` if it does not
    /// lie in the task region (the window refuses more than the region) or
    /// cannot be mapped.
    pub(crate) fn payload(&mut self, offset: u64, len: u64) -> Option<&[u8]> {
        if offset != TASK_OFFSET as u64 {
            return None;
        }
        let len = usize::try_from(len).ok()?;
        self.window.ensure(len).ok()?;
        // SAFETY: ensure() mapped len bytes; the pool does not write the task
        // region until this task's result arrives.
        Some(unsafe { std::slice::from_raw_parts(self.window.base(), len) })
    }
}

/// The worker's window on its reply region, and the reply being written
/// there. Single-threaded.
pub(crate) struct ReplyRegion {
    head: NonNull<u8>,
    window: Window,
    len: usize,
    active: bool,
}

impl ReplyRegion {
    pub(crate) fn new(area: AreaHandle) -> ReplyRegion {
        ReplyRegion {
            head: area.head,
            window: Window::new(area.fd, reply_offset(area.region), area.region),
            len: 0,
            active: false,
        }
    }

    /// Whether this task's reply is being written here.
    pub(crate) fn active(&self) -> bool {
        self.active
    }

    /// Moves a reply that has grown large (`so_far`) into the region, if the
    /// pool has copied out the last one. Returns whether it did.
    pub(crate) fn begin(&mut self, so_far: &[u8]) -> bool {
        if self.active || reply_busy(self.head).load(Ordering::Acquire) != 0 {
            return false;
        }
        self.len = 0;
        self.active = true;
        if self.write(so_far).is_err() {
            self.active = false;
            return false;
        }
        true
    }

    /// Appends to the reply in the region.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let end = self.len + data.len();
        self.window.ensure(end)?;
        // SAFETY: ensure() mapped `end` bytes; the region is ours while
        // reply_busy is 0.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.window.base().add(self.len),
                data.len(),
            )
        };
        self.len = end;
        Ok(())
    }

    /// The reply written so far.
    pub(crate) fn data(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: len bytes were written through the mapping.
        unsafe { std::slice::from_raw_parts(self.window.base(), self.len) }
    }

    /// Hands the reply to the pool: the region is busy until it copied it
    /// out. Returns where the reply lies in the area: offset and length,
    /// as RESULT_SHM names them.
    pub(crate) fn hand_over(&mut self) -> (u64, u64) {
        reply_busy(self.head).store(1, Ordering::Release);
        self.active = false;
        (self.window.offset as u64, self.len as u64)
    }

    /// Drops the reply being written here (the task failed after all).
    pub(crate) fn discard(&mut self) {
        self.active = false;
        self.len = 0;
    }

    /// Ready for the next task. Gives back memory a large reply left once
    /// the pool no longer needs it and a much smaller reply (`last`)
    /// followed.
    pub(crate) fn reset(&mut self, last: usize) {
        self.discard();
        if reply_busy(self.head).load(Ordering::Acquire) == 0 {
            self.window.shrink_for(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_written_by_the_pool_is_read_by_a_forked_worker_and_a_reply_comes_back() {
        let area = Area::new(region_size(8 << 20)).unwrap();
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        area.write_task(&payload).unwrap();
        // SAFETY: the child only uses the inherited fd and mappings and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut task = TaskRegion::new(area.handle());
            let mut reply = ReplyRegion::new(area.handle());
            let ok = task.payload(TASK_OFFSET as u64, payload.len() as u64) == Some(&payload[..]);
            let reversed: Vec<u8> = payload.iter().rev().copied().collect();
            let ok = ok && reply.begin(&reversed[..10]) && reply.write(&reversed[10..]).is_ok();
            let ok = ok
                && reply.data() == &reversed[..]
                && reply.hand_over() == (reply_offset(area.region) as u64, reversed.len() as u64);
            let ok = ok && !reply.begin(b"x");
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(area.reply_busy().load(Ordering::Acquire), 1);
        let at = reply_offset(area.region()) as u64;
        let reply = area.take_reply(at, payload.len() as u64).unwrap();
        assert!(reply.iter().eq(payload.iter().rev()));
        assert_eq!(area.reply_busy().load(Ordering::Acquire), 0, "handed back");
    }

    #[test]
    fn replies_outside_the_reply_region_are_refused() {
        let area = Area::new(region_size(1 << 20)).unwrap();
        let at = reply_offset(area.region()) as u64;
        assert!(area.take_reply(at, (2 << 20) as u64).is_err(), "too long");
        assert!(area.take_reply(0, 16).is_err(), "the progress page");
        assert!(area.take_reply(at + 4096, 16).is_err(), "another offset");
        let mut task = TaskRegion::new(area.handle());
        assert!(task.payload(0, 16).is_none());
        assert!(task.payload(TASK_OFFSET as u64, 2 << 20).is_none());
    }

    #[test]
    fn the_area_cannot_be_shrunk_and_large_regions_are_given_back() {
        let area = Area::new(region_size(64 << 20)).unwrap();
        // SAFETY: trying to shrink our own memfd: the seal refuses.
        let r = unsafe { libc::ftruncate(area.fd(), 4096) };
        assert_eq!(r, -1, "sealed against shrinking");
        area.write_task(&vec![1u8; 32 << 20]).unwrap();
        let before = shmem_pages(&area);
        area.release_task_region();
        let after = shmem_pages(&area);
        assert!(
            before >= (32 << 20) / 4096 && after < before / 8,
            "{before} -> {after} pages"
        );
    }

    /// Pages of the memfd that hold memory (from its st_blocks).
    fn shmem_pages(area: &Area) -> u64 {
        // SAFETY: fstat into a local.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        unsafe { libc::fstat(area.fd(), &mut st) };
        st.st_blocks as u64 * 512 / 4096
    }
}
