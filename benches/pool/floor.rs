//! The machine floor: the same work done with bare syscalls between two
//! processes, measured in the same run as billiard and its peers.

use std::time::Instant;

use crate::os;

/// Round trips of a 16-byte message over two blocking pipes to a child.
pub fn ping_pong(n: usize) -> Vec<f64> {
    // os::pipe() gives (read end, write end).
    let (child_reads, parent_writes) = os::pipe();
    let (parent_reads, child_writes) = os::pipe();
    ping_pong_over(
        n,
        [parent_reads, parent_writes],
        [child_reads, child_writes],
    )
}

/// The same over one Unix stream socket pair, the kind of channel billiard
/// uses (a socket's read and write cost more than a pipe's).
pub fn socket_ping_pong(n: usize) -> Vec<f64> {
    let (parent, child) = os::socketpair();
    ping_pong_over(n, [parent, parent], [child, child])
}

/// Ping-pong with a forked child; each side is `[read fd, write fd]`.
fn ping_pong_over(n: usize, parent: [i32; 2], child: [i32; 2]) -> Vec<f64> {
    let pid = os::fork_child(|| {
        os::keep_only(child[0], child[1]);
        let mut buf = [0u8; 16];
        while os::read_exact(child[0], &mut buf) {
            os::write_all(child[1], &buf);
        }
    });
    for fd in dedup(child) {
        os::close(fd);
    }
    let msg = [7u8; 16];
    let mut buf = [0u8; 16];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert!(os::write_all(parent[1], &msg) && os::read_exact(parent[0], &mut buf));
        samples.push(os::micros_since(t));
    }
    for fd in dedup(parent) {
        os::close(fd);
    }
    os::reap(pid);
    samples
}

/// The distinct fds of a `[read, write]` pair (one socket serves both).
fn dedup(fds: [i32; 2]) -> Vec<i32> {
    if fds[0] == fds[1] {
        vec![fds[0]]
    } else {
        fds.to_vec()
    }
}

/// Messages per second: `n` 16-byte messages through `children` children and
/// back, one write per message on both sides.
pub fn message_rate(children: usize, n: usize) -> f64 {
    let per_child = n / children;
    let mut kids = Vec::new();
    for _ in 0..children {
        let (child_reads, parent_writes) = os::pipe();
        let (parent_reads, child_writes) = os::pipe();
        let pid = os::fork_child(|| {
            os::keep_only(child_reads, child_writes);
            // Every write is 16 bytes (atomic in a pipe) and every read asks
            // for a multiple of 16, so a read holds whole messages.
            let mut buf = [0u8; 4096];
            loop {
                // SAFETY: reading into a local buffer.
                let got = unsafe { libc::read(child_reads, buf.as_mut_ptr().cast(), buf.len()) };
                if got <= 0 {
                    return;
                }
                for m in buf[..got as usize].chunks(16) {
                    os::write_all(child_writes, m);
                }
            }
        });
        os::close(child_reads);
        os::close(child_writes);
        // SAFETY: setting O_NONBLOCK on our own descriptor.
        unsafe { libc::fcntl(parent_writes, libc::F_SETFL, libc::O_NONBLOCK) };
        kids.push((pid, parent_writes, parent_reads));
    }
    let msg = [1u8; 16];
    let mut buf = vec![0u8; 65536];
    let mut sent = vec![0usize; children];
    let mut received = vec![0usize; children];
    let t = Instant::now();
    while received.iter().sum::<usize>() < per_child * children * 16 {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        for (i, &(_, w, r)) in kids.iter().enumerate() {
            if sent[i] < per_child {
                fds.push(libc::pollfd {
                    fd: w,
                    events: libc::POLLOUT,
                    revents: 0,
                });
            }
            fds.push(libc::pollfd {
                fd: r,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: a valid array of pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as u64, -1) };
        for (i, &(_, w, r)) in kids.iter().enumerate() {
            while sent[i] < per_child {
                // SAFETY: writing one message from a local buffer.
                let n = unsafe { libc::write(w, msg.as_ptr().cast(), 16) };
                if n != 16 {
                    break;
                }
                sent[i] += 1;
            }
            let ready = fds
                .iter()
                .any(|p| p.fd == r && p.revents & libc::POLLIN != 0);
            if ready {
                // SAFETY: reading into a local buffer.
                let n = unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    received[i] += n as usize;
                }
            }
        }
    }
    let rate = (per_child * children) as f64 / t.elapsed().as_secs_f64();
    for (pid, w, r) in kids {
        os::close(w);
        os::close(r);
        os::reap(pid);
    }
    rate
}

/// Bytes per second (in plus out) of copying `size` bytes in and out.
pub fn memcpy_rate(size: usize, iterations: usize) -> f64 {
    let src = vec![3u8; size];
    let mut mid = vec![0u8; size];
    let mut dst = vec![0u8; size];
    let t = Instant::now();
    for _ in 0..iterations {
        mid.copy_from_slice(std::hint::black_box(&src));
        dst.copy_from_slice(std::hint::black_box(&mid));
    }
    std::hint::black_box(&dst);
    (2 * size * iterations) as f64 / t.elapsed().as_secs_f64()
}

/// Bytes per second (in plus out) of an echo through a memfd mapped in both
/// processes: copy in, signal, the child copies input to output, signal
/// back, copy out. The memfd is made once and reused.
pub fn memfd_echo_rate(size: usize, iterations: usize) -> f64 {
    // SAFETY: creating, sizing and mapping our own memfd.
    let base = unsafe {
        let fd = libc::memfd_create(c"bench".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0, "memfd_create failed");
        assert_eq!(libc::ftruncate(fd, (2 * size) as i64), 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            2 * size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        libc::close(fd);
        p as usize
    };
    let (go, go_w) = os::pipe();
    let (done_r, done) = os::pipe();
    let pid = os::fork_child(|| {
        os::keep_only(go, done);
        let mut b = [0u8; 1];
        while os::read_exact(go, &mut b) {
            // SAFETY: both halves of the shared mapping are `size` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(base as *const u8, (base + size) as *mut u8, size)
            };
            os::write_all(done, &b);
        }
    });
    os::close(go);
    os::close(done);
    let input = vec![5u8; size];
    let mut output = vec![0u8; size];
    let mut b = [0u8; 1];
    let t = Instant::now();
    for _ in 0..iterations {
        // SAFETY: the mapping is 2 * size bytes and the child is idle now.
        unsafe {
            std::ptr::copy_nonoverlapping(input.as_ptr(), base as *mut u8, size);
            os::write_all(go_w, &b);
            os::read_exact(done_r, &mut b);
            std::ptr::copy_nonoverlapping((base + size) as *const u8, output.as_mut_ptr(), size);
        }
    }
    let rate = (2 * size * iterations) as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(&output);
    os::close(go_w);
    os::close(done_r);
    os::reap(pid);
    // SAFETY: unmapping what we mapped.
    unsafe { libc::munmap(base as *mut libc::c_void, 2 * size) };
    rate
}

/// Microseconds per child for fork + `_exit` + waitpid.
pub fn fork_exit_wait(n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let pid = os::fork_child(|| {});
            os::reap(pid);
            os::micros_since(t)
        })
        .collect()
}

/// Environment variable that makes the benchmark executable exit at once:
/// the program the posix_spawn floor starts.
pub const EXIT_AT_ONCE: &str = "BILLIARD_BENCH_EXIT_AT_ONCE";

/// Microseconds per child for `posix_spawn` of this same executable (which
/// exits at once, see [`EXIT_AT_ONCE`]) + waitpid: what a SPAWN worker's
/// start cannot beat.
pub fn spawn_exit_wait(n: usize) -> Vec<f64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let exe = std::env::current_exe().expect("the benchmark's path");
    let path = CString::new(exe.as_os_str().as_bytes()).expect("a path without NUL");
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).expect("no NUL")
        })
        .chain(std::iter::once(
            CString::new(format!("{EXIT_AT_ONCE}=1")).expect("no NUL"),
        ))
        .collect();
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|s| s.as_ptr() as *mut _).collect();
    envp.push(std::ptr::null_mut());
    let argv: [*mut libc::c_char; 2] = [path.as_ptr() as *mut _, std::ptr::null_mut()];
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let mut pid = 0;
            // SAFETY: valid NULL-terminated argv/envp that outlive the call.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    path.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                )
            };
            assert_eq!(rc, 0, "posix_spawn of the benchmark");
            os::reap(pid);
            os::micros_since(t)
        })
        .collect()
}

/// Microseconds from SIGKILL of a child blocked in a sleep (as a busy
/// worker would be: it has run, and waits 20 ms first like the billiard
/// figure) until its death is seen through its pidfd and its exit status is
/// collected (what a WORKER_LOST result reports).
pub fn death_detection(n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (ready_r, ready_w) = os::pipe();
            let pid = os::fork_child(|| {
                os::keep_only(ready_r, ready_w);
                os::write_all(ready_w, b"!");
                // SAFETY: waits for the signal; no allocation.
                unsafe { libc::pause() };
            });
            os::close(ready_w);
            os::read_exact(ready_r, &mut [0u8; 1]);
            os::close(ready_r);
            std::thread::sleep(std::time::Duration::from_millis(20));
            let pidfd = os::pidfd_open(pid);
            let t = Instant::now();
            os::kill9(pid);
            os::wait_readable(pidfd);
            os::reap(pid);
            let us = os::micros_since(t);
            os::close(pidfd);
            us
        })
        .collect()
}
