//! The fork server, the worker program's FORKSERVER mode: initialized once
//! (whatever the program did before `billiard_worker_main`), it forks one
//! worker per FORK request on its control socket, passes back the worker's
//! pid and pidfd, and reports each worker's exit status once it has reaped
//! it. The workers are its children; it reaps only them (by pidfd), and
//! before it exits it kills and reaps every one still there.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{serve, Origin, EXIT_PANIC, EXIT_PARENT_GONE, EXIT_PROTOCOL};
use crate::area::AreaHandle;
use crate::config::{Handler, WorkerHooks};
use crate::protocol::{
    self, KIND_EXITED, KIND_FORK, KIND_FORKED, KIND_FORK_FAILED, KIND_SERVER_HELLO,
    PROTOCOL_VERSION,
};
use crate::sys;

/// Poll interval for children without a pidfd (kernels before 5.3).
const REAP_POLL_MS: i32 = 20;

/// A worker this server forked and has not reaped yet.
struct Child {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
}

/// Serves FORK requests until the pool closes the control socket. Returns
/// the server's exit code.
pub(crate) fn serve_forks(
    control: RawFd,
    handler: &Handler,
    hooks: &WorkerHooks,
    max_frame: usize,
) -> i32 {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut hello = PROTOCOL_VERSION.to_le_bytes().to_vec();
    hello.extend_from_slice(&(me as u32).to_le_bytes());
    if send(control, KIND_SERVER_HELLO, &hello, &[]).is_err() {
        return EXIT_PARENT_GONE;
    }
    let mut children: Vec<Child> = Vec::new();
    let mut buf = [0u8; 64];
    let code = loop {
        let mut fds: Vec<libc::pollfd> = std::iter::once(control)
            .chain(
                children
                    .iter()
                    .filter_map(|c| c.pidfd.as_ref().map(|p| p.as_raw_fd())),
            )
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let polling = children.iter().any(|c| c.pidfd.is_none());
        if sys::poll(&mut fds, if polling { REAP_POLL_MS } else { -1 }).is_err() {
            break EXIT_PARENT_GONE;
        }
        if report_exits(control, &mut children).is_err() {
            break EXIT_PARENT_GONE;
        }
        if fds[0].revents == 0 {
            continue;
        }
        let (n, passed) = match sys::recv_with_fds(control, &mut buf) {
            Ok(x) => x,
            Err(_) => break EXIT_PARENT_GONE,
        };
        if n == 0 {
            break 0; // the pool is done with this server
        }
        match protocol::decode_control(&buf[..n]) {
            Some((KIND_FORK, _)) if passed.len() == 3 => {
                let reply = fork_worker(control, &children, passed, handler, hooks, max_frame);
                let sent = match reply {
                    Ok(child) => {
                        let pid = (child.pid as u32).to_le_bytes();
                        let pidfd: Vec<RawFd> = child.pidfd.iter().map(|p| p.as_raw_fd()).collect();
                        let sent = send(control, KIND_FORKED, &pid, &pidfd);
                        children.push(child);
                        sent
                    }
                    Err(errno) => send(control, KIND_FORK_FAILED, &errno.to_le_bytes(), &[]),
                };
                if sent.is_err() {
                    break EXIT_PARENT_GONE;
                }
            }
            _ => {
                let why = "the pool sent a control message the fork server cannot understand";
                let _ = send(control, protocol::KIND_FATAL, why.as_bytes(), &[]);
                break EXIT_PROTOCOL;
            }
        }
    };
    // Nothing is left to report to: every worker still there goes now,
    // with whatever is left in its process group.
    for child in &children {
        // SAFETY: our own unreaped child.
        unsafe { libc::kill(child.pid, libc::SIGKILL) };
        sys::signal_group(child.pid, libc::SIGKILL);
    }
    for child in children {
        sys::reap_blocking(child.pid);
    }
    code
}

fn send(control: RawFd, kind: u8, body: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    sys::send_with_fds(control, &protocol::encode_control(kind, body), fds)
}

/// Reaps the children that exited and reports each with its raw status.
fn report_exits(control: RawFd, children: &mut Vec<Child>) -> std::io::Result<()> {
    let mut i = 0;
    while i < children.len() {
        let c = &children[i];
        let exited = match &c.pidfd {
            Some(p) => sys::pidfd_exited(p.as_raw_fd()),
            None => sys::exit_status_unreaped(c.pid).is_some(), // polled
        };
        let status = if exited {
            // Before the reap, while the zombie still holds the group id:
            // nothing the worker's handler started outlives it.
            sys::signal_group(c.pid, libc::SIGKILL);
            sys::try_reap_raw(c.pid)
        } else {
            None
        };
        match status {
            Some(status) => {
                let mut body = (c.pid as u32).to_le_bytes().to_vec();
                body.extend_from_slice(&status.to_le_bytes());
                children.swap_remove(i);
                send(control, KIND_EXITED, &body, &[])?;
            }
            None => i += 1,
        }
    }
    Ok(())
}

/// Forks a worker that serves the channel in `passed` (task socket,
/// results pipe, area). Returns the child, or the fork's errno.
fn fork_worker(
    control: RawFd,
    siblings: &[Child],
    passed: Vec<OwnedFd>,
    handler: &Handler,
    hooks: &WorkerHooks,
    max_frame: usize,
) -> Result<Child, u32> {
    // Prepared before the fork: the server's fds the worker must not keep.
    let server_fds: Vec<RawFd> = std::iter::once(control)
        .chain(
            siblings
                .iter()
                .filter_map(|c| c.pidfd.as_ref().map(|p| p.as_raw_fd())),
        )
        .collect();
    // SAFETY: getpid has no preconditions.
    let server = unsafe { libc::getpid() };
    // SAFETY: the server is single-threaded (billiard_worker_main's rule),
    // so the child may run ordinary code; it never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let [tasks, results, area] = [0, 1, 2].map(|i| passed[i].as_raw_fd());
        // SAFETY: closing the server's own fds in the child; raw calls.
        let parent_alive = unsafe {
            for &fd in &server_fds {
                libc::close(fd);
            }
            libc::setpgid(0, 0);
            sys::die_with_parent(server)
        };
        let code = if !parent_alive {
            EXIT_PARENT_GONE
        } else {
            catch_unwind(AssertUnwindSafe(|| match AreaHandle::open(area) {
                Ok(area) => serve(
                    tasks,
                    results,
                    area,
                    handler,
                    hooks,
                    max_frame,
                    Origin::Forked,
                ),
                Err(e) => {
                    let why = format!("the fork server passed no usable area: {e}");
                    let _ = sys::write_all(results, &protocol::encode_fatal(why.as_bytes()));
                    EXIT_PROTOCOL
                }
            }))
            .unwrap_or(EXIT_PANIC)
        };
        // SAFETY: ends the worker without the server's atexit handlers
        // (its at-exit hook ran in serve, on an orderly end).
        unsafe { libc::_exit(code) };
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32);
    }
    drop(passed);
    // SAFETY: our child; from the parent too, so the group exists at once.
    unsafe { libc::setpgid(pid, pid) };
    let pidfd = sys::pidfd_open(pid).ok();
    Ok(Child { pid, pidfd })
}
