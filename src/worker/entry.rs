//! The entry point of worker programs (SPAWN and FORKSERVER): find the
//! channel the pool passed in the environment, make the process a clean
//! worker, then serve tasks (or, as a fork server, fork workers that do).

use std::os::fd::RawFd;

use super::{forkserver, serve, Origin, EXIT_PARENT_GONE};
use crate::area::AreaHandle;
use crate::config::{Handler, WorkerHooks};
use crate::error::{Error, Result};
use crate::protocol::{
    self, ENV_ALL, ENV_AREA_FD, ENV_FORKSERVER_FD, ENV_MAX_FRAME, ENV_POOL_PID, ENV_PROTOCOL,
    ENV_RESULT_FD, ENV_TASK_FD, PROTOCOL_VERSION,
};
use crate::sys;

/// What the pool asked this program to be.
enum Role {
    /// A SPAWN worker with its channel and area.
    Worker {
        tasks: RawFd,
        results: RawFd,
        area: RawFd,
    },
    /// A fork server with its control socket.
    Server { control: RawFd },
}

/// Runs the worker loop of a worker program: the whole life of a SPAWN
/// worker, or of a fork server and the workers it forks.
///
/// Reads the `BILLIARD_*` variables (and removes them, so programs the
/// handler starts do not see them), marks the fds CLOEXEC, asks for SIGKILL
/// when the pool's thread that started it exits and checks the pool is
/// still there. Then serves tasks until the pool closes the channel.
///
/// Signals are left as the program set them: the pool started it with
/// every signal at its default action and an empty mask, so anything else
/// is the program's own doing (a runtime such as Go's or Python's installs
/// handlers it needs before `main`). Only the C library's reserved signals,
/// which posix_spawn cannot reset, are set back to default if ignored.
///
/// Returns the code the program should exit with: 0 when the pool closed
/// the channel, [`super::EXIT_PARENT_GONE`] and the other `EXIT_*` codes
/// otherwise. Fails at once, without waiting for anything, with
/// [`Error::InvalidArgument`] when the program was not started by a pool.
/// A fork server's workers never return from it: they `_exit`.
///
/// `hooks` run in each worker: after it came to be (a SPAWN worker: here;
/// a fork server's: after each fork), and at its orderly end.
///
/// Call it from the program's main thread while no other thread runs (a
/// fork server forks).
pub fn main(handler: Handler, hooks: WorkerHooks) -> Result<i32> {
    let protocol = std::env::var(ENV_PROTOCOL).ok();
    if protocol.is_none() && std::env::var_os(ENV_FORKSERVER_FD).is_none() {
        return Err(Error::InvalidArgument(format!(
            "this program was not started by a billiard pool ({ENV_PROTOCOL} is not set): \
             run it as the worker program of a SPAWN or FORKSERVER pool"
        )));
    }
    let max_frame = env_number(ENV_MAX_FRAME)?;
    let pool_pid = env_number(ENV_POOL_PID)?;
    let role = match std::env::var_os(ENV_FORKSERVER_FD) {
        Some(_) => Role::Server {
            control: env_fd(ENV_FORKSERVER_FD, libc::S_IFSOCK)?,
        },
        None => Role::Worker {
            tasks: env_fd(ENV_TASK_FD, libc::S_IFSOCK)?,
            results: env_fd(ENV_RESULT_FD, libc::S_IFIFO)?,
            area: env_fd(ENV_AREA_FD, libc::S_IFREG)?,
        },
    };
    if protocol.as_deref() != Some(&PROTOCOL_VERSION.to_string()) {
        let why = format!(
            "the pool speaks protocol {}, this worker speaks {PROTOCOL_VERSION}",
            protocol.as_deref().unwrap_or("(none)")
        );
        report_start_failure(&why);
        return Err(Error::InvalidArgument(why));
    }
    for name in ENV_ALL {
        std::env::remove_var(name);
    }
    // SAFETY: raw calls only.
    let parent_alive = unsafe {
        sys::reset_ignored_reserved_signals();
        sys::die_with_parent(pool_pid as libc::pid_t)
    };
    if !parent_alive {
        return Ok(EXIT_PARENT_GONE);
    }
    match role {
        Role::Worker {
            tasks,
            results,
            area,
        } => {
            let area = AreaHandle::open(area)
                .map_err(|e| Error::InvalidArgument(format!("{ENV_AREA_FD}: {e}")))?;
            Ok(serve(
                tasks,
                results,
                area,
                &handler,
                &hooks,
                max_frame,
                Origin::Spawned,
            ))
        }
        Role::Server { control } => Ok(forkserver::serve_forks(
            control, &handler, &hooks, max_frame,
        )),
    }
}

/// Runs a fork server that the host forked itself (in its own language,
/// so its runtime's at-fork handlers ran), for the pool that handed it
/// `control`, the server's end of the control socket the pool made: the
/// pool asked for the fork (see [`crate::Config::fork_server_by_host`]),
/// and the child calls this. It closes the pool's ends of every control
/// socket it inherited, unblocks every signal, asks for SIGKILL when the
/// thread that forked it exits, then serves FORK requests exactly as a
/// spawned fork server does:
/// each worker is a fork of this process, so it has every piece of code
/// and data the host had when it forked. Returns the exit code (0 when the
/// pool closed the socket); the caller exits with it (`_exit` is best: the
/// host's at-exit handlers are the host's). Fails with
/// [`Error::InvalidArgument`] at once if `control` is not a control socket
/// the pool registered in this process.
pub fn serve_host_forked(control: RawFd, handler: Handler, hooks: WorkerHooks) -> Result<i32> {
    let Some(socket) = crate::adopted::claim_in_server(control) else {
        return Err(Error::InvalidArgument(format!(
            "fd {control} is not the server end of a control socket a billiard pool made for a \
             fork server (call this in the child the pool's fork callback forked)"
        )));
    };
    // SAFETY: raw calls only. A server forked on the pool's own thread
    // inherited its mask, which blocks every signal: the server and its
    // workers start with none blocked, as SPAWN workers do.
    let parent_alive = unsafe {
        libc::fcntl(control, libc::F_SETFD, libc::FD_CLOEXEC);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        sys::die_with_parent(socket.pool_pid)
    };
    if !parent_alive {
        return Ok(EXIT_PARENT_GONE);
    }
    Ok(forkserver::serve_forks(
        control,
        &handler,
        &hooks,
        socket.max_frame,
    ))
}

/// A decimal number from the environment, or `EINVAL` naming it.
fn env_number(name: &str) -> Result<usize> {
    let value = std::env::var(name).unwrap_or_default();
    value.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "{name} is {value:?}, not a number: was this program started by a billiard pool?"
        ))
    })
}

/// An fd named in the environment: open, of the expected file type; made
/// CLOEXEC so that programs the handler starts do not inherit it.
fn env_fd(name: &str, kind: libc::mode_t) -> Result<RawFd> {
    let fd = env_number(name)? as RawFd;
    // SAFETY: fstat fills a plain struct; F_SETFD changes only flags.
    let ok = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0
            && st.st_mode & libc::S_IFMT == kind
            && libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0
    };
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "{name}={fd} is not an open fd of the kind the pool passes"
        )));
    }
    Ok(fd)
}

/// For a worker program that cannot start (its plugin is missing, its own
/// initialization failed): tells the pool why, in a FATAL message on the
/// channel named in the environment, so that `billiard_pool_new` reports
/// it. Does nothing when the program was not started by a pool.
pub fn report_start_failure(message: &str) {
    let number = |name: &str| std::env::var(name).ok()?.parse::<RawFd>().ok();
    if let Some(fd) = number(ENV_RESULT_FD) {
        let _ = sys::write_all(fd, &protocol::encode_fatal(message.as_bytes()));
    } else if let Some(fd) = number(ENV_FORKSERVER_FD) {
        let frame = protocol::encode_control(protocol::KIND_FATAL, message.as_bytes());
        let _ = sys::send_with_fds(fd, &frame, &[]);
    }
}
