//! Thin wrappers over the Linux system calls the pool uses. Every fd made here
//! is CLOEXEC; every write to a peer uses `MSG_NOSIGNAL`; `EINTR` is retried.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Turns a `-1` return into the thread's `errno` as an error.
pub(crate) fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Send buffer asked for on each end of a worker channel, in bytes.
const CHANNEL_SEND_BUFFER: libc::c_int = 4 << 20;

/// A connected `AF_UNIX` stream socket pair, both ends CLOEXEC, each asking
/// for a 4 MiB send buffer.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = unix_pair(libc::SOCK_STREAM)?;
    let fds = [a.as_raw_fd(), b.as_raw_fd()];
    for fd in fds {
        // Large payloads cross in fewer, larger steps (1 MiB echo: +40% here).
        // The kernel caps the request at net.core.wmem_max; failure is harmless.
        let size: libc::c_int = CHANNEL_SEND_BUFFER;
        // SAFETY: setting an int option on a socket we just made.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    Ok((a, b))
}

/// A connected `AF_UNIX` pair of `kind`, both ends CLOEXEC.
fn unix_pair(kind: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    cvt(r as libc::c_long)?;
    // SAFETY: socketpair returned two fresh fds we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Pipe size asked for on each results pipe, in bytes.
const RESULTS_PIPE_SIZE: libc::c_int = 1 << 20;

/// A worker's results pipe: the read end (the pool's: CLOEXEC, non-blocking)
/// and the write end (the worker's: CLOEXEC, blocking), asking for a 1 MiB
/// pipe buffer.
///
/// Results travel through a pipe, not back through the task socket: a
/// socket wakes every thread blocked reading it each time its peer
/// consumes data it sent, and a pipe's readers and writers wait apart.
pub(crate) fn results_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    cvt(r as libc::c_long)?;
    // SAFETY: pipe2 returned two fresh fds we now own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: flag changes on fds we own; a smaller pipe is harmless.
    unsafe {
        cvt(libc::fcntl(write.as_raw_fd(), libc::F_SETFL, 0) as libc::c_long)?;
        libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, RESULTS_PIPE_SIZE);
    }
    Ok((read, write))
}

/// Reads what is available into the spare capacity of `buf` and extends it,
/// with `read` (for pipes), retrying `EINTR`. `Ok(0)` is end of stream.
pub(crate) fn read_into(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let len = buf.len();
    let spare = buf.capacity() - len;
    loop {
        // SAFETY: reads into the vector's spare capacity.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().add(len).cast(), spare) };
        if n >= 0 {
            // SAFETY: n bytes were initialised by read.
            unsafe { buf.set_len(len + n as usize) };
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Writes all of `buf` to a blocking pipe (in a worker: if the pool is
/// gone, the default SIGPIPE ends the worker, which is what it should do).
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// An eventfd (CLOEXEC, non-blocking) starting at 0.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    cvt(fd as libc::c_long)?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd, making it readable.
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64. EAGAIN (counter full) cannot
    // matter: the fd is readable either way.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd to 0 (not readable).
pub(crate) fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64; EAGAIN means it was already 0.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// An epoll instance (CLOEXEC).
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    cvt(fd as libc::c_long)?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl` with `op` for `fd`, carrying `data` back in events.
pub(crate) fn epoll_ctl(epfd: RawFd, op: i32, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: ev is a valid epoll_event.
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } as libc::c_long).map(drop)
}

/// Waits for events; `EINTR` returns zero events.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    // SAFETY: events is a valid writable buffer of the given length.
    let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
    match cvt(n as libc::c_long) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// `pidfd_open(pid)`: a CLOEXEC fd that becomes readable when `pid` exits.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the kernel sets CLOEXEC on pidfds.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the process behind `pidfd` (no pid-reuse race).
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall with a null siginfo.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Outcome of a non-blocking send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Everything went out.
    All,
    /// The socket buffer is full; this many bytes went out so far.
    Partial(usize),
    /// The peer is gone (or another hard error).
    Broken(io::ErrorKind),
}

/// Sends `buf[from..]` without blocking and without SIGPIPE.
pub(crate) fn send_nonblocking(fd: RawFd, buf: &[u8], mut from: usize) -> Sent {
    while from < buf.len() {
        let rest = &buf[from..];
        // SAFETY: rest is a valid readable slice.
        let n = unsafe {
            libc::send(
                fd,
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            from += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Sent::Partial(from),
            kind => return Sent::Broken(kind),
        }
    }
    Sent::All
}

/// Sends as much of `bufs` (after skipping `skip` bytes of the first) as
/// the socket takes in one `sendmsg`, without blocking and without SIGPIPE.
/// Returns the bytes sent (0 when the buffer is full), or the error kind.
pub(crate) fn send_vectored_nonblocking(
    fd: RawFd,
    bufs: &[&[u8]],
    skip: usize,
) -> Result<usize, io::ErrorKind> {
    let iov: Vec<libc::iovec> = bufs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let b = if i == 0 { &b[skip.min(b.len())..] } else { b };
            libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            }
        })
        .collect();
    // SAFETY: msghdr is plain data; every iovec points into a live slice.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    loop {
        // SAFETY: msg describes readable memory only.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            kind => return Err(kind),
        }
    }
}

/// Reads into `buf` with `flags`, retrying `EINTR`. `Ok(0)` is end of stream.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid writable slice.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads what is available into the spare capacity of `buf` and extends it.
/// `Ok(0)` is end of stream. The caller makes sure there is spare capacity.
pub(crate) fn recv_into(fd: RawFd, buf: &mut Vec<u8>, flags: i32) -> io::Result<usize> {
    let len = buf.len();
    let spare = buf.capacity() - len;
    // SAFETY: reads into the vector's spare capacity, then extends its length
    // by exactly the number of bytes the kernel wrote.
    let n = unsafe {
        let dst = std::slice::from_raw_parts_mut(buf.as_mut_ptr().add(len), spare);
        recv(fd, dst, flags)?
    };
    // SAFETY: n bytes were initialised by recv.
    unsafe { buf.set_len(len + n) };
    Ok(n)
}

/// Blocks until `fd` is readable (or has hung up), `timeout_ms` passes
/// (-1: no limit), or a signal interrupts the wait. Returns whether it is
/// readable; on false the caller looks again (a signal is not retried, so
/// a caller's deadline holds).
pub(crate) fn poll_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout_ms) == 1 }
}

/// CPUs the calling thread may run on (its affinity mask); 1 if unknown.
pub(crate) fn cpus_in_affinity() -> usize {
    // SAFETY: cpu_set_t is plain data that sched_getaffinity fills in.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        (libc::CPU_COUNT(&set) as usize).max(1)
    }
}

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Reaped by someone else (the host called `waitpid` on our pid).
    Unknown,
}

impl ExitStatus {
    /// (exit code, signal), each `None` when it does not apply.
    pub(crate) fn parts(self) -> (Option<i32>, Option<i32>) {
        match self {
            ExitStatus::Code(c) => (Some(c), None),
            ExitStatus::Signal(s) => (None, Some(s)),
            ExitStatus::Unknown => (None, None),
        }
    }
}

/// `waitpid(pid, WNOHANG)`, retrying `EINTR`: the raw status once it has
/// exited, `None` while it runs, an error if it is not our child.
fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<i32>> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(Some(status));
        }
        if r == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `waitpid(pid, WNOHANG)` with the raw status: `None` while it still runs
/// (or if it is not our child).
pub(crate) fn try_reap_raw(pid: libc::pid_t) -> Option<i32> {
    wait_nohang(pid).ok().flatten()
}

/// `waitpid(pid, WNOHANG)`: `None` while it still runs; `Unknown` when
/// somebody else reaped it (ECHILD).
pub(crate) fn try_reap(pid: libc::pid_t) -> Option<ExitStatus> {
    match wait_nohang(pid) {
        Ok(status) => status.map(decode_status),
        Err(_) => Some(ExitStatus::Unknown),
    }
}

/// Blocking `waitpid(pid)`, for a process already sent SIGKILL.
pub(crate) fn reap_blocking(pid: libc::pid_t) -> ExitStatus {
    let mut status = 0;
    loop {
        // SAFETY: as in try_reap.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return decode_status(status);
        }
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return ExitStatus::Unknown;
    }
}

pub(crate) fn decode_status(status: i32) -> ExitStatus {
    if libc::WIFEXITED(status) {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Unknown
    }
}

/// Name of a signal such as `SIGKILL`, or `signal N`.
pub(crate) fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

/// A connected `AF_UNIX` `SOCK_SEQPACKET` pair (message boundaries kept, fds
/// passed with SCM_RIGHTS), both ends CLOEXEC: a fork server's control socket.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    unix_pair(libc::SOCK_SEQPACKET)
}

/// Sends one message with `fds` attached (SCM_RIGHTS), `MSG_NOSIGNAL`.
pub(crate) fn send_with_fds(sock: RawFd, message: &[u8], fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(message)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message into `buf` and the fds attached to it (made
/// CLOEXEC). `Ok((0, _))` is end of stream.
pub(crate) fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([RawFd; 4]);
    loop {
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel just installed these fds for us.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        return Ok((msg.bytes, fds));
    }
}

/// `poll` on `fds`, retrying `EINTR` (with the full timeout again: callers
/// loop on their own deadline). Returns how many have events.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: fds is a valid array of pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        match cvt(r as libc::c_long) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One `poll`, returning early (0) when a signal interrupts it, so that
/// the caller looks at its deadline again: a signal sent again and again
/// (a language runtime interrupting a blocked thread) must not keep
/// restarting the full timeout.
pub(crate) fn poll_once(fds: &mut [libc::pollfd], timeout_ms: i32) -> usize {
    // SAFETY: fds is a valid array of pollfd.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    r.max(0) as usize
}

/// Whether `fd` is an open file descriptor.
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Whether the process behind a pidfd has exited (the pidfd is readable).
pub(crate) fn pidfd_exited(pidfd: RawFd) -> bool {
    poll_readable(pidfd, 0)
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 share this layout).
#[repr(C)]
#[derive(Clone, Copy)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// The default action, as the kernel takes it.
const DEFAULT_ACTION: KernelSigaction = KernelSigaction {
    handler: libc::SIG_DFL,
    flags: 0,
    restorer: 0,
    mask: 0,
};

/// The raw `rt_sigaction` system call: glibc's `sigaction()` refuses
/// signals 32 and 33, which a host may still have ignored. Returns the
/// call's result (0 on success).
///
/// # Safety
/// A raw syscall (async-signal-safe); changes the whole process's action.
unsafe fn raw_sigaction(
    sig: libc::c_int,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> libc::c_long {
    libc::syscall(
        libc::SYS_rt_sigaction,
        sig,
        new.map_or(std::ptr::null(), |n| n as *const KernelSigaction),
        old.map_or(std::ptr::null_mut(), |o| o as *mut KernelSigaction),
        8usize,
    )
}

/// Default disposition for every catchable signal, and an empty mask.
///
/// # Safety
/// Only raw syscalls (async-signal-safe). Meant for a fresh worker process
/// with one thread: another thread's handlers would be reset too.
pub(crate) unsafe fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            raw_sigaction(sig, Some(&DEFAULT_ACTION), None);
        }
    }
    let empty: u64 = 0;
    libc::syscall(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty as *const u64,
        std::ptr::null_mut::<u64>(),
        8usize,
    );
}

/// Sets back to the default action the signals the C library reserves
/// (32 up to SIGRTMIN) if they are ignored. posix_spawn cannot reset them
/// (sigfillset leaves them out), so a worker program would inherit a
/// host's SIG_IGN for them, breaking thread cancellation and setuid in the
/// worker. Other signals are left alone: the pool spawned the program with
/// them at their defaults, and what it changed since is its own.
///
/// # Safety
/// Only raw syscalls (async-signal-safe).
pub(crate) unsafe fn reset_ignored_reserved_signals() {
    for sig in 32..libc::SIGRTMIN() {
        let mut old = DEFAULT_ACTION;
        if raw_sigaction(sig, None, Some(&mut old)) == 0 && old.handler == libc::SIG_IGN {
            raw_sigaction(sig, Some(&DEFAULT_ACTION), None);
        }
    }
}

/// Asks for SIGKILL when the thread that started this process exits, then
/// checks that `parent` is still the parent. False if it is not (the
/// parent died before the request took effect).
///
/// # Safety
/// Only raw syscalls (async-signal-safe).
pub(crate) unsafe fn die_with_parent(parent: libc::pid_t) -> bool {
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );
    libc::getppid() == parent
}

/// Blocks every signal in the calling thread; returns the previous mask.
pub(crate) fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigfillset/pthread_sigmask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Restores a mask saved by [`block_all_signals`].
pub(crate) fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: old is a valid mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// A random number below `n` (`n` at least 1), from the kernel.
pub(crate) fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: fills a local buffer; a short read leaves zeros, which is fine.
    unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), 8, 0) };
    u64::from_ne_bytes(bytes) % n.max(1)
}

/// How our child `pid` ended, if it has, without reaping it (`waitid`
/// with `WNOWAIT`): the zombie keeps its pid, and so its process group id,
/// from being reused until it is reaped. `Unknown` when it is not our
/// child any more (somebody else reaped it).
pub(crate) fn exit_status_unreaped(pid: libc::pid_t) -> Option<ExitStatus> {
    // SAFETY: a zeroed siginfo for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: WNOWAIT leaves the child to be reaped later.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc != 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Some(ExitStatus::Unknown);
        }
        break;
    }
    // SAFETY: the fields are valid for waitid results.
    let (who, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if who == 0 {
        return None;
    }
    Some(match code {
        libc::CLD_EXITED => ExitStatus::Code(status),
        libc::CLD_KILLED | libc::CLD_DUMPED => ExitStatus::Signal(status),
        _ => ExitStatus::Unknown,
    })
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo` (`None` if the fd
/// is not a pidfd; -1 once the process has been reaped).
pub(crate) fn pidfd_pid(pidfd: RawFd) -> Option<libc::pid_t> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{pidfd}")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("Pid:"))?;
    line.trim().parse().ok()
}

/// The parent and the process group of process `pid`, from
/// `/proc/<pid>/stat` (`None` once it is gone).
pub(crate) fn parent_and_group(pid: libc::pid_t) -> Option<(libc::pid_t, libc::pid_t)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold anything but the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(1);
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// Sends `sig` to process group `pgid`. Callers make sure the id is still
/// the group's: its leader is our unreaped child (a zombie holds it too).
pub(crate) fn signal_group(pgid: libc::pid_t, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill has no memory preconditions; pgid > 0 never names
        // every process (-1) or our own group (0).
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// Whether process group `pgid` has a member other than its leader (whose
/// pid is `pgid`), from `/proc`. Costs a directory scan: only for stops.
pub(crate) fn group_has_others(pgid: libc::pid_t) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|entry| {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            return false;
        };
        pid != pgid && parent_and_group(pid).is_some_and(|(_, group)| group == pgid)
    })
}

/// Whether process group `pgid` has a member (zombies count until their
/// parent reaps them).
pub(crate) fn group_exists(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks.
    pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// The resident set of process `pid`, in bytes (`None` if it is gone):
/// the second field of `/proc/<pid>/statm`, in pages.
pub(crate) fn rss_of(pid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split(' ').nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Some(pages * page)
}

/// What `/proc/PID/smaps_rollup` says of a process's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rollup {
    /// `Private_Clean + Private_Dirty`: pages only this process maps.
    pub private: u64,
    /// `Anonymous`: anonymous pages it maps, shared or not.
    pub anonymous: u64,
}

/// Reads a kept `smaps_rollup` fd (one `pread`).
pub(crate) fn read_rollup(smaps_rollup: RawFd) -> Option<Rollup> {
    let mut buf = [0u8; 2048];
    // SAFETY: reads into a local buffer.
    let n = unsafe { libc::pread(smaps_rollup, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return None;
    }
    let kib = |rest: &[u8]| {
        let digits = rest.iter().filter(|b| b.is_ascii_digit());
        digits.fold(0u64, |acc, &d| acc * 10 + (d - b'0') as u64)
    };
    let (mut private, mut anonymous, mut found) = (0u64, 0u64, 0);
    for line in buf[..n as usize].split(|&b| b == b'\n') {
        if let Some(rest) = line
            .strip_prefix(b"Private_Clean:")
            .or_else(|| line.strip_prefix(b"Private_Dirty:"))
        {
            private += kib(rest);
            found += 1;
        } else if let Some(rest) = line.strip_prefix(b"Anonymous:") {
            anonymous = kib(rest);
            found += 1;
        }
    }
    (found == 3).then_some(Rollup {
        private: private * 1024,
        anonymous: anonymous * 1024,
    })
}

/// The private memory of process `pid` ([`Rollup::private`]; `None` if it is gone) (`None` if it is gone).
pub(crate) fn private_memory_of(pid: libc::pid_t) -> Option<u64> {
    let fd = open_proc(&pid.to_string(), "smaps_rollup")?;
    read_rollup(fd.as_raw_fd()).map(|r| r.private)
}

/// Opens `/proc/<who>/<name>` read-only (`who`: a pid, or "self").
pub(crate) fn open_proc(who: &str, name: &str) -> Option<OwnedFd> {
    let path = std::ffi::CString::new(format!("/proc/{who}/{name}")).ok()?;
    // SAFETY: opening a path we built.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: a fresh fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Limits the address space of process `pid` (ours, same user) to `bytes`
/// (`RLIMIT_AS`, soft and hard): its allocations past that fail.
pub(crate) fn limit_address_space(pid: libc::pid_t, bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit64 {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: a valid rlimit; no old value asked for.
    let rc = unsafe { libc::prlimit64(pid, libc::RLIMIT_AS, &limit, std::ptr::null_mut()) };
    cvt(rc as libc::c_long).map(drop)
}

/// A monotonic timerfd, CLOEXEC and non-blocking, disarmed.
pub(crate) fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
        )
    };
    cvt(fd as libc::c_long)?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arms `timer` to fire once at `at` (CLOCK_MONOTONIC nanoseconds), or
/// disarms it (`None`). A time already past fires at once.
pub(crate) fn timerfd_set(timer: RawFd, at_ns: Option<u64>) {
    let ns = at_ns.map_or(0, |n| n.max(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        },
    };
    // SAFETY: a valid spec; fails only for a bad fd, which ours is not.
    unsafe { libc::timerfd_settime(timer, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
}

/// How many times this process's memory was copied into a child by
/// `fork()` and the copy went on as the child: 0 in the process that
/// started, more in a forked child (a `pthread_atfork` child handler, an
/// atomic add: safe right after a fork). Lets an object tell it is a copy
/// in a forked child, whose threads are gone.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// This process's fork generation (see [`FORK_GENERATION`]); the first
/// call registers the handler.
pub(crate) fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only adds to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Writing to a peer that is gone returns an error instead of raising
    /// SIGPIPE, even where SIGPIPE has its default action (as in a C host).
    #[test]
    fn sends_to_a_closed_peer_raise_no_sigpipe() {
        let (ours, theirs) = socketpair().unwrap();
        drop(theirs);
        // SAFETY: the child only makes raw calls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: plain calls in the forked child.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                let fd = ours.as_raw_fd();
                let broken = matches!(send_nonblocking(fd, b"x", 0), Sent::Broken(_));
                let failed = send_vectored_nonblocking(fd, &[b"y"], 0).is_err();
                libc::_exit(if broken && failed { 0 } else { 1 });
            }
        }
        assert!(pid > 0);
        assert_eq!(
            reap_blocking(pid),
            ExitStatus::Code(0),
            "killed by SIGPIPE, or a send did not fail"
        );
    }

    #[test]
    fn fds_are_cloexec() {
        let (a, b) = socketpair().unwrap();
        let (r, w) = results_pipe().unwrap();
        let e = eventfd().unwrap();
        let p = epoll_create().unwrap();
        // SAFETY: getpid has no preconditions.
        let me = pidfd_open(unsafe { libc::getpid() }).unwrap();
        for fd in [
            a.as_raw_fd(),
            b.as_raw_fd(),
            r.as_raw_fd(),
            w.as_raw_fd(),
            e.as_raw_fd(),
            p.as_raw_fd(),
            me.as_raw_fd(),
        ] {
            // SAFETY: F_GETFD on an fd we own.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(flags & libc::FD_CLOEXEC != 0, "fd {fd} is not CLOEXEC");
        }
    }
}
