//! Small raw-syscall helpers for the floors. Code that runs in a forked child
//! of this (multithreaded) process uses only these: no allocation, no lock.

use std::time::Instant;

pub fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2 failed");
    (fds[0], fds[1])
}

/// A connected pair of Unix stream sockets, as billiard's channels are.
pub fn socketpair() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two descriptors.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair failed");
    (fds[0], fds[1])
}

pub fn close(fd: i32) {
    // SAFETY: closing a descriptor this benchmark owns.
    unsafe { libc::close(fd) };
}

/// Reads exactly `buf.len()` bytes; false at end of stream or on error.
pub fn read_exact(fd: i32, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: writing into the rest of `buf`.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        got += n as usize;
    }
    true
}

/// Writes all of `buf`; false on error.
pub fn write_all(fd: i32, buf: &[u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reading from the rest of `buf`.
        let n = unsafe { libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

/// Forks; the child runs `body` (raw syscalls only) and `_exit`s.
pub fn fork_child(body: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child only runs `body`, which makes raw syscalls, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        body();
        // SAFETY: leaving the child without running any Rust runtime code.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// In a forked child: closes every descriptor from 3 up except `a` and `b`,
/// so that the child holds no other end of any pipe.
pub fn keep_only(a: i32, b: i32) {
    let (lo, hi) = (a.min(b) as u32, a.max(b) as u32);
    // SAFETY: close_range on ranges of descriptors; no allocation.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            lo.saturating_sub(1).max(2),
            0u32,
        );
        if hi > lo + 1 {
            libc::syscall(libc::SYS_close_range, lo + 1, hi - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, hi + 1, u32::MAX, 0u32);
    }
}

pub fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

pub fn kill9(pid: libc::pid_t) {
    // SAFETY: a pid of our own child (benchmark or pool worker), not yet reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

pub fn pidfd_open(pid: libc::pid_t) -> i32 {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    assert!(fd >= 0, "pidfd_open failed");
    fd
}

/// Blocks until `fd` is readable.
pub fn wait_readable(fd: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    while unsafe { libc::poll(&mut p, 1, -1) } < 0 {}
}

pub fn micros_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// Pins the calling thread (and every thread and process it creates after)
/// to one CPU, or lets it run anywhere again.
pub fn pin(cpu: Option<usize>) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        match cpu {
            Some(c) => libc::CPU_SET(c, &mut set),
            None => {
                for c in 0..libc::CPU_SETSIZE as usize {
                    libc::CPU_SET(c, &mut set);
                }
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The first CPU this thread may run on.
pub fn first_cpu() -> usize {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap_or(0)
    }
}

/// Rss and Pss of a process in kB, from /proc/PID/smaps_rollup.
pub fn rss_pss(pid: i32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("Rss:")?, field("Pss:")?))
}
