//! The worker side of the C ABI for worker programs (SPAWN, FORKSERVER).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr};

use super::arg_ref;
use super::config::{
    billiard_exit_hook, billiard_handler, billiard_initializer, c_after_fork, c_at_exit, c_handler,
};
use super::error::{status, BILLIARD_EPANIC};
use crate::config::WorkerHooks;
use crate::error::Error;

/// Code a worker program's workers run around their lives (see
/// billiard_worker_main_hooks). Initialise with zeros and set
/// `struct_size`; NULL members are not run.
#[repr(C)]
pub struct billiard_worker_hooks {
    /// sizeof(billiard_worker_hooks).
    pub struct_size: u32,
    pub reserved: u32,
    /// Runs in each worker after it came to be (a fork server's: after
    /// each fork) and before its first task, outside any time limit.
    /// Non-zero is a failed start, reported with the message given to
    /// billiard_worker_set_error (else "initializer returned N") and
    /// counted by the restart intensity.
    pub after_fork: billiard_initializer,
    /// Runs in each worker when it exits in an orderly way (the pool closed
    /// its channel: recycle, shrink, restart, close); not on a crash, a
    /// kill, a stop for a task or terminate.
    pub at_exit: billiard_exit_hook,
    /// Passed to both hooks.
    pub ctx: *mut c_void,
}

thread_local! {
    /// What a failing after-fork hook gave billiard_worker_set_error.
    static HOOK_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Takes the message a failing hook left (and clears it).
pub(crate) fn take_hook_error() -> Option<String> {
    HOOK_ERROR.with(|e| e.borrow_mut().take())
}

/// Inside an after-fork hook (or a FORK initializer): the message the pool
/// reports when the hook then returns non-zero. Copied; NULL clears it.
#[no_mangle]
pub unsafe extern "C" fn billiard_worker_set_error(message: *const c_char) {
    boundary!((), {
        let text = (!message.is_null())
            // SAFETY: the caller passes a NUL-terminated string.
            .then(|| {
                unsafe { CStr::from_ptr(message) }
                    .to_string_lossy()
                    .into_owned()
            });
        HOOK_ERROR.with(|e| *e.borrow_mut() = text);
    })
}

/// The hooks behind a C pointer (NULL: none), checked.
///
/// # Safety
/// `hooks` is NULL or points to a `billiard_worker_hooks` of at least
/// `struct_size` bytes.
unsafe fn hooks_from(hooks: *const billiard_worker_hooks) -> Result<WorkerHooks, Error> {
    if hooks.is_null() {
        return Ok(WorkerHooks::default());
    }
    // SAFETY: as the function's contract says.
    let h = unsafe { arg_ref(hooks, "hooks") }?;
    if (h.struct_size as usize) < std::mem::size_of::<billiard_worker_hooks>() {
        return Err(Error::InvalidArgument(format!(
            "hooks->struct_size is {}; set it to sizeof(billiard_worker_hooks) ({})",
            h.struct_size,
            std::mem::size_of::<billiard_worker_hooks>()
        )));
    }
    Ok(WorkerHooks {
        after_fork: c_after_fork(h.after_fork, h.ctx),
        at_exit: c_at_exit(h.at_exit, h.ctx),
    })
}

/// The whole life of a worker program (SPAWN and FORKSERVER): call it from
/// main() with the task handler and its context. It finds the channel the
/// pool passed (fds named in BILLIARD_* environment variables, which it
/// then removes), asks for SIGKILL if the pool goes away, and runs
/// `handler` for each task until the pool closes the channel. The pool
/// starts the program with every signal at its default action and an empty
/// mask; handlers the program (or its language runtime) installed itself
/// are kept. The worker loop catches SIGUSR1 (the soft time limit) and,
/// where they are still at their default action, SIGSEGV, SIGBUS and
/// SIGABRT (to tell a memory-limit crash), all with SA_ONSTACK.
///
/// Returns the code to exit with: 0 when the pool closed the channel,
/// 120-123 for the ends listed in docs/PROTOCOL.md. Returns a negative
/// BILLIARD_E* code at once (never waits) when the program was not started
/// by a pool (BILLIARD_EINVAL, detail in billiard_last_error()).
///
/// Started as a fork server (FORKSERVER), it serves fork requests instead:
/// whatever the program did before this call (loading data, opening
/// files, the initializer) is done once and every worker inherits it. Its
/// workers run `handler` and never return from this call (they _exit).
/// Call it while the program runs only one thread.
#[no_mangle]
pub unsafe extern "C" fn billiard_worker_main(
    handler: billiard_handler,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: no hooks.
    unsafe { billiard_worker_main_hooks(handler, ctx, std::ptr::null()) }
}

/// billiard_worker_main with worker hooks (NULL: none): `after_fork` runs
/// in each worker before its first task (a SPAWN worker: in this call; a
/// fork server's worker: after each fork), `at_exit` at its orderly end.
/// Needed under FORKSERVER, where per-worker set-up (reconnect, reseed)
/// must run after the fork, and where workers end with _exit (no atexit
/// handler of the program runs: put what must run in `at_exit`).
#[no_mangle]
pub unsafe extern "C" fn billiard_worker_main_hooks(
    handler: billiard_handler,
    ctx: *mut c_void,
    hooks: *const billiard_worker_hooks,
) -> c_int {
    // SAFETY: the caller's hooks pointer, per the contract.
    unsafe { run_worker(handler, ctx, hooks, crate::worker::main) }
}

/// Runs a worker entry (`serve`) with the C handler and hooks: its exit
/// code, or a negative BILLIARD_E* code (detail recorded).
///
/// # Safety
/// As [`hooks_from`].
unsafe fn run_worker(
    handler: billiard_handler,
    ctx: *mut c_void,
    hooks: *const billiard_worker_hooks,
    serve: impl FnOnce(crate::config::Handler, WorkerHooks) -> Result<c_int, Error>,
) -> c_int {
    boundary!(BILLIARD_EPANIC, {
        // SAFETY: as this function's contract says.
        let run = || serve(c_handler(handler, ctx)?, unsafe { hooks_from(hooks) }?);
        match run() {
            Ok(code) => code,
            Err(e) => status(Err(e)),
        }
    })
}

/// In the child of the fork a pool asked for (see
/// billiard_config_set_fork_server_callback): serves as the pool's fork
/// server on `server_fd` until the pool is done with it, forking one worker
/// per request; each runs `handler` (with the hooks, NULL: none). Every
/// worker is a fork of this process, so it has the code, data and closures
/// the host had when it forked the server. Returns the exit code (0 when
/// the pool closed the socket): call _exit() with it. Returns
/// BILLIARD_EINVAL at once when `server_fd` is not the server end of a
/// socket a pool made for a fork server in this process.
///
/// The child must not use the host's threads (they do not exist there) or
/// locks they may have held; this call takes none. Its workers get SIGKILL
/// when it dies; it gets SIGKILL when the thread that forked it exits.
#[no_mangle]
pub unsafe extern "C" fn billiard_forkserver_serve(
    server_fd: c_int,
    handler: billiard_handler,
    ctx: *mut c_void,
    hooks: *const billiard_worker_hooks,
) -> c_int {
    // SAFETY: the caller's hooks pointer, per the contract.
    unsafe {
        run_worker(handler, ctx, hooks, |handler, hooks| {
            crate::worker::serve_host_forked(server_fd, handler, hooks)
        })
    }
}

/// Inside a worker: true once the soft time limit of the task it runs has
/// passed (the pool also sends SIGUSR1, so a blocking call returns EINTR).
/// A long handler polls it and returns cleanly. False between tasks and
/// outside workers. Async-signal-safe; costs no system call.
#[no_mangle]
pub extern "C" fn billiard_worker_soft_limit_reached() -> bool {
    boundary!(false, crate::worker::soft_limit_reached())
}
