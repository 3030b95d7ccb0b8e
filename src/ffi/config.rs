//! `billiard_config`: built single-threaded by the host, then passed to
//! `billiard_pool_new`, which copies what it needs.

use std::ffi::{c_int, c_void};
use std::time::Duration;

use super::reply::billiard_reply;
use super::{arg_mut, arg_timeout, call};
use std::ffi::{c_char, CStr};
use std::sync::Arc;

use super::pool::{
    BILLIARD_NOTICE_SOFT_LIMIT, BILLIARD_NOTICE_STARTED, BILLIARD_NOTICE_WORKER_EXITED,
    BILLIARD_NOTICE_WORKER_STARTED,
};
use crate::config::{Config, ExitHook, Handler, Initializer, NoticeKinds, ServerFork, StartMethod};
use crate::error::Error;

/// Start method: fork the host from the pool's own thread; workers call
/// the handler set with billiard_config_set_handler. Fastest start, memory
/// shared copy-on-write. Only for hosts whose runtime survives fork()
/// (not Go; not hosts whose other threads hold locks the handler needs).
pub const BILLIARD_START_FORK: c_int = 0;
/// Start method: each worker is a fresh run of the worker program
/// (billiard_config_set_worker_argv), started with posix_spawn: no host
/// code runs in the child, so it is safe in any host. The program calls
/// billiard_worker_main (or speaks docs/PROTOCOL.md itself).
pub const BILLIARD_START_SPAWN: c_int = 1;
/// Start method: the worker program is started once as a fork server
/// (posix_spawn, safe in any host); it initializes once, then forks each
/// worker, so workers share its initialized memory copy-on-write and start
/// at fork speed. The server reports every worker's exit status; if it
/// dies, its workers die too, their tasks are accounted for as for any
/// death, and a new server starts.
pub const BILLIARD_START_FORKSERVER: c_int = 2;

/// A task handler, run inside a worker process for each task. `in`/`len` is
/// the task's payload (valid during the call). Append the answer with
/// billiard_reply_write(); return 0. To fail the task, call
/// billiard_reply_error() and return non-zero (a non-zero return alone fails
/// it with "handler returned N"; billiard_reply_error() fails it whatever the
/// return value).
pub type billiard_handler = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        input: *const u8,
        len: usize,
        reply: *mut billiard_reply,
    ) -> c_int,
>;

/// Runs once in each worker before its first task (the after-fork hook).
/// Non-zero: the worker does not start; it is a failed start, counted by
/// the restart intensity (billiard_pool_new fails with BILLIARD_ESPAWN
/// while no worker ever started). The message is "initializer returned N",
/// or what the hook passed to billiard_worker_set_error.
pub type billiard_initializer = Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>;

/// Runs in a worker when it exits in an orderly way: the pool closed its
/// channel (recycle, shrink, restart, close and join). Not on a crash, a
/// kill, a stop for a task or terminate.
pub type billiard_exit_hook = Option<unsafe extern "C" fn(ctx: *mut c_void)>;

/// Forks a fork server (BILLIARD_START_FORKSERVER with
/// billiard_config_set_fork_server_callback): in the parent, returns the
/// child's pid (> 0), or a negative number when it could not fork. The
/// child calls billiard_forkserver_serve(server_fd, ...) and then _exit()s
/// with what it returned. Called on the thread that calls
/// billiard_pool_new for the first server, and on the pool's own thread
/// for each replacement (a server that died).
pub type billiard_fork_server =
    Option<unsafe extern "C" fn(ctx: *mut c_void, server_fd: c_int) -> c_int>;

/// Pool configuration (opaque). Not thread-safe: build it on one thread.
pub struct billiard_config {
    pub(crate) inner: Config,
}

/// A C function pointer and its context, callable from worker processes.
#[derive(Clone, Copy)]
struct CCallback<F> {
    f: F,
    ctx: *mut c_void,
}
// SAFETY: the pointers are only used inside worker processes (each has its
// own copy of memory) and the host promises ctx stays valid; the library
// never dereferences ctx itself.
unsafe impl<F> Send for CCallback<F> {}
// SAFETY: as above.
unsafe impl<F> Sync for CCallback<F> {}

impl<F: Copy> CCallback<F> {
    /// The pointer and context (a method, so closures capture the whole
    /// `Send` wrapper rather than its raw-pointer field).
    fn parts(&self) -> (F, *mut c_void) {
        (self.f, self.ctx)
    }
}

/// Creates a configuration with defaults: one worker per usable CPU, FORK,
/// inherited fds closed, 256 MiB frames, unbounded queue. A handler must be
/// set before billiard_pool_new. The caller owns `*out` and must call
/// billiard_config_free. `*out` is NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_new(out: *mut *mut billiard_config) -> c_int {
    call(|| {
        let out = unsafe { arg_mut(out, "out") }?;
        *out = Box::into_raw(Box::new(billiard_config {
            inner: Config::new(),
        }));
        Ok(())
    })
}

/// Frees a configuration. NULL is a no-op. Pools made from it are unaffected.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_free(cfg: *mut billiard_config) {
    boundary!((), {
        if !cfg.is_null() {
            // SAFETY: cfg came from billiard_config_new and is freed once.
            drop(unsafe { Box::from_raw(cfg) });
        }
    })
}

/// Applies `f` to the config behind `cfg`, mapping errors to codes. `cfg`
/// comes straight from C: NULL or a config from billiard_config_new.
fn update(cfg: *mut billiard_config, f: impl FnOnce(Config) -> Result<Config, Error>) -> c_int {
    call(|| {
        let cfg = unsafe { arg_mut(cfg, "cfg") }?;
        cfg.inner = f(cfg.inner.clone())?;
        Ok(())
    })
}

/// Number of workers; 0 means one per CPU this process may use.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_workers(cfg: *mut billiard_config, n: u32) -> c_int {
    update(cfg, |c| Ok(c.workers(n as usize)))
}

/// How workers start: BILLIARD_START_FORK (default), BILLIARD_START_SPAWN
/// or BILLIARD_START_FORKSERVER. SPAWN and FORKSERVER need a worker program
/// and no handler or initializer in the config (billiard_pool_new says
/// BILLIARD_EINVAL otherwise).
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_start_method(
    cfg: *mut billiard_config,
    method: c_int,
) -> c_int {
    update(cfg, |c| match method {
        BILLIARD_START_FORK => Ok(c.start_method(StartMethod::Fork)),
        BILLIARD_START_SPAWN => Ok(c.start_method(StartMethod::Spawn)),
        BILLIARD_START_FORKSERVER => Ok(c.start_method(StartMethod::ForkServer)),
        other => Err(Error::InvalidArgument(format!(
            "unknown start method {other}"
        ))),
    })
}

/// The task handler and its context (FORK: called in forked workers, so
/// `ctx` must stay valid for as long as any pool made from this config).
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_handler(
    cfg: *mut billiard_config,
    handler: billiard_handler,
    ctx: *mut c_void,
) -> c_int {
    update(cfg, |mut c| {
        c.handler = Some(c_handler(handler, ctx)?);
        Ok(c)
    })
}

/// A C handler and its context as a [`Handler`]; `EINVAL` for NULL.
pub(crate) fn c_handler(handler: billiard_handler, ctx: *mut c_void) -> Result<Handler, Error> {
    let f = handler.ok_or_else(|| Error::InvalidArgument("handler is NULL".into()))?;
    let cb = CCallback { f, ctx };
    Ok(Arc::new(
        move |input: &[u8], reply: &mut crate::worker::Reply| {
            let reply = (reply as *mut crate::worker::Reply).cast::<billiard_reply>();
            let (f, ctx) = cb.parts();
            // SAFETY: the host's handler, called with a valid buffer and reply.
            let rc = unsafe { f(ctx, input.as_ptr(), input.len(), reply) };
            if rc == 0 {
                Ok(())
            } else {
                Err(format!("handler returned {rc}"))
            }
        },
    ))
}

/// Code run once in each worker before its first task, with its context.
/// NULL removes it.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_initializer(
    cfg: *mut billiard_config,
    initializer: billiard_initializer,
    ctx: *mut c_void,
) -> c_int {
    update(cfg, |mut c| {
        c.hooks.after_fork = c_after_fork(initializer, ctx);
        Ok(c)
    })
}

/// A C after-fork hook and its context as an [`Initializer`] (NULL: none).
/// A failing hook's message is what it gave billiard_worker_set_error.
pub(crate) fn c_after_fork(
    initializer: billiard_initializer,
    ctx: *mut c_void,
) -> Option<Initializer> {
    let cb = CCallback {
        f: initializer?,
        ctx,
    };
    Some(Arc::new(move || {
        let (f, ctx) = cb.parts();
        super::worker::take_hook_error();
        // SAFETY: the host's hook with its own context.
        match unsafe { f(ctx) } {
            0 => Ok(()),
            rc => Err(super::worker::take_hook_error()
                .unwrap_or_else(|| format!("initializer returned {rc}"))),
        }
    }))
}

/// A C at-exit hook and its context as an [`ExitHook`] (NULL: none).
pub(crate) fn c_at_exit(at_exit: billiard_exit_hook, ctx: *mut c_void) -> Option<ExitHook> {
    let cb = CCallback { f: at_exit?, ctx };
    Some(Arc::new(move || {
        let (f, ctx) = cb.parts();
        // SAFETY: the host's hook with its own context.
        unsafe { f(ctx) }
    }))
}

/// Code run in each FORK worker when it exits in an orderly way (see
/// billiard_exit_hook), with its context. NULL removes it. Worker programs
/// pass theirs to billiard_worker_main_hooks.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_at_exit(
    cfg: *mut billiard_config,
    at_exit: billiard_exit_hook,
    ctx: *mut c_void,
) -> c_int {
    update(cfg, |mut c| {
        c.hooks.at_exit = c_at_exit(at_exit, ctx);
        Ok(c)
    })
}

/// Which notices the pool keeps for billiard_pool_notices: a bit set of
/// BILLIARD_NOTICE_STARTED, BILLIARD_NOTICE_SOFT_LIMIT,
/// BILLIARD_NOTICE_WORKER_STARTED and BILLIARD_NOTICE_WORKER_EXITED
/// (default 0: none, and no cost). Unknown bits are BILLIARD_EINVAL.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_notices(
    cfg: *mut billiard_config,
    kinds: u32,
) -> c_int {
    update(cfg, |c| Ok(c.notices(notice_kinds(kinds)?)))
}

/// The notice kinds of a BILLIARD_NOTICE_* bit set; unknown bits are an
/// error.
pub(super) fn notice_kinds(kinds: u32) -> Result<NoticeKinds, Error> {
    let bit = |kind: i32| kinds & kind as u32 != 0;
    let known = (BILLIARD_NOTICE_STARTED
        | BILLIARD_NOTICE_SOFT_LIMIT
        | BILLIARD_NOTICE_WORKER_STARTED
        | BILLIARD_NOTICE_WORKER_EXITED) as u32;
    if kinds & !known != 0 {
        return Err(Error::InvalidArgument(format!(
            "unknown notice kinds {:#x} (known: BILLIARD_NOTICE_STARTED, \
             BILLIARD_NOTICE_SOFT_LIMIT, BILLIARD_NOTICE_WORKER_STARTED, \
             BILLIARD_NOTICE_WORKER_EXITED)",
            kinds & !known
        )));
    }
    Ok(NoticeKinds {
        started: bit(BILLIARD_NOTICE_STARTED),
        soft_limit: bit(BILLIARD_NOTICE_SOFT_LIMIT),
        worker_started: bit(BILLIARD_NOTICE_WORKER_STARTED),
        worker_exited: bit(BILLIARD_NOTICE_WORKER_EXITED),
    })
}

/// FORKSERVER with a fork server the host forks itself, in its own
/// language (Python's os.fork, Ruby's Process.fork: their at-fork handlers
/// run), instead of a worker program: the pool makes the control socket
/// and calls `fork_server` with the server's end, which forks; the child
/// calls billiard_forkserver_serve. Every worker is forked from that
/// server, so it has the host's code, data and closures as they were when
/// the server was forked. Sets the start method to FORKSERVER; no worker
/// argv, handler or hooks go in the config (the child passes its own).
/// If the server dies, its workers' tasks end as for any death and the
/// pool calls `fork_server` again, on its own thread (counted by the
/// restart intensity). `ctx` must stay valid while any pool made from this
/// config exists. NULL removes it.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_fork_server_callback(
    cfg: *mut billiard_config,
    fork_server: billiard_fork_server,
    ctx: *mut c_void,
) -> c_int {
    update(cfg, |c| {
        let Some(f) = fork_server else {
            return Ok(c.fork_server_by_host(None));
        };
        let cb = CCallback { f, ctx };
        let fork: ServerFork = Arc::new(move |server_fd| {
            let (f, ctx) = cb.parts();
            // SAFETY: the host's callback with its own context.
            match unsafe { f(ctx, server_fd) } {
                pid if pid > 0 => Ok(pid),
                rc => Err(format!("the fork server callback returned {rc}")),
            }
        });
        Ok(c.fork_server_by_host(Some(fork))
            .start_method(StartMethod::ForkServer))
    })
}

/// Whether workers close every inherited fd except 0, 1, 2, their own
/// channel (task socket and results pipe), their shared memory area and the
/// keep list (default: true).
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_close_inherited_fds(
    cfg: *mut billiard_config,
    on: bool,
) -> c_int {
    update(cfg, |c| Ok(c.close_inherited_fds(on)))
}

/// Fds workers keep open when inherited fds are closed; `fds` is copied.
/// Replaces any earlier list; (NULL, 0) empties it.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_keep_fds(
    cfg: *mut billiard_config,
    fds: *const c_int,
    n: usize,
) -> c_int {
    update(cfg, |c| {
        if fds.is_null() && n > 0 {
            return Err(Error::InvalidArgument(format!(
                "fds is NULL with a count of {n}"
            )));
        }
        let list = if n == 0 {
            &[][..]
        } else {
            // SAFETY: the caller passes n readable ints.
            unsafe { std::slice::from_raw_parts(fds, n) }
        };
        c.keep_fds(list)
    })
}

/// Largest frame either side may send, in bytes (a task payload plus 9
/// bytes; a reply plus 10). Default 256 MiB; at least 13, at most 4 GiB - 1.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_max_frame_size(
    cfg: *mut billiard_config,
    bytes: usize,
) -> c_int {
    update(cfg, |c| c.max_frame_size(bytes))
}

/// Most tasks waiting to start (in the pool's queue or in a worker's
/// prefetch window) before billiard_pool_submit blocks (or fails with
/// BILLIARD_EFULL when non-blocking); 0 means no bound (default).
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_max_queued(
    cfg: *mut billiard_config,
    n: usize,
) -> c_int {
    update(cfg, |c| Ok(c.max_queued(n)))
}

/// Most tasks in flight to one worker (1 to 256; default 16, or 1 with a
/// soft memory limit). Above 1, a busy worker is sent its next tasks before
/// it asks, many per write (fast tiny tasks); idle workers are always
/// served first. A task queued behind a long one in a worker's window
/// waits for it even if another worker frees up: 1 sends a task only to an
/// idle worker. BILLIARD_EINVAL if out of range.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_prefetch(cfg: *mut billiard_config, n: u32) -> c_int {
    update(cfg, |c| c.prefetch(n as usize))
}

/// How long billiard_pool_new waits for every worker to be ready, in ms;
/// -1 (default) waits as long as the initializers take; 0 counts as 1 ms.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_start_timeout(
    cfg: *mut billiard_config,
    timeout_ms: i64,
) -> c_int {
    update(cfg, |c| {
        Ok(c.start_timeout(arg_timeout(timeout_ms)?.map(|t| t.max(Duration::from_millis(1)))))
    })
}

/// The worker program of SPAWN and FORKSERVER: `argv[0]` is the program
/// (a name without '/' is searched in the host's PATH, a relative path is
/// taken from the host's working directory, both when billiard_pool_new
/// runs), then its arguments. `argc` strings are copied. BILLIARD_EINVAL
/// for argc 0 or a NULL string.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_worker_argv(
    cfg: *mut billiard_config,
    argv: *const *const c_char,
    argc: usize,
) -> c_int {
    update(cfg, |c| {
        if argv.is_null() || argc == 0 {
            return Err(Error::InvalidArgument(
                "argv must hold at least the program".into(),
            ));
        }
        let mut args = Vec::with_capacity(argc);
        for i in 0..argc {
            // SAFETY: the caller passes argc readable pointers.
            let p = unsafe { *argv.add(i) };
            args.push(unsafe { arg_str(p, "argv[i]") }?.to_bytes());
        }
        c.worker_argv(&args)
    })
}

/// Whether worker programs start from a copy of the host's environment
/// (true, the default; copied when billiard_pool_new runs) or from an
/// empty one. Variables set with billiard_config_set_worker_env apply on
/// top either way.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_worker_env_inherit(
    cfg: *mut billiard_config,
    inherit: bool,
) -> c_int {
    update(cfg, |c| Ok(c.worker_env_inherit(inherit)))
}

/// Sets `name` to `value` in the worker programs' environment, or removes
/// it when `value` is NULL (both copied, both UTF-8). BILLIARD_EINVAL for an
/// empty name, a name with '=', a name starting with BILLIARD_ (the pool's
/// own), or text that is not UTF-8.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_worker_env(
    cfg: *mut billiard_config,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    update(cfg, |c| {
        let name = unsafe { arg_str(name, "name") }?;
        let value = if value.is_null() {
            None
        } else {
            Some(unsafe { arg_str(value, "value") }?)
        };
        let value = value.map(|v| utf8(v, "value")).transpose()?;
        c.worker_env(utf8(name, "name")?, value)
    })
}

/// The worker programs' working directory (copied, UTF-8); NULL (default)
/// keeps the host's.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_worker_cwd(
    cfg: *mut billiard_config,
    dir: *const c_char,
) -> c_int {
    update(cfg, |c| {
        if dir.is_null() {
            return c.worker_cwd(None);
        }
        let dir = unsafe { arg_str(dir, "dir") }?;
        c.worker_cwd(Some(utf8(dir, "dir")?))
    })
}

/// A C string as UTF-8, or `EINVAL` naming it.
fn utf8<'a>(s: &'a CStr, what: &str) -> Result<&'a str, Error> {
    s.to_str()
        .map_err(|_| Error::InvalidArgument(format!("{what} is not UTF-8")))
}

/// A C string argument, or `EINVAL` naming it when NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string alive for the returned lifetime.
unsafe fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a CStr, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{name} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(p) })
}

/// Milliseconds from C where 0 means "none": `None`, or that long.
fn optional_ms(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// Bytes from C where 0 means "none".
fn optional_bytes(bytes: u64) -> Option<u64> {
    (bytes > 0).then_some(bytes)
}

/// Soft time limit of every task, in ms from its start (0: none, the
/// default; per-task options may override it). When it passes, the
/// worker's billiard_worker_soft_limit_reached() turns true and the worker
/// gets SIGUSR1 (billiard's worker loop catches it, so a blocking call in
/// the handler returns EINTR): the handler can stop cleanly. Must be below
/// the hard limit (billiard_pool_new says BILLIARD_EINVAL otherwise).
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_soft_time_limit(
    cfg: *mut billiard_config,
    ms: u64,
) -> c_int {
    update(cfg, |c| c.soft_time_limit(optional_ms(ms)))
}

/// Hard time limit of every task, in ms from its start (0: none, the
/// default; per-task options may override it). When it passes, the
/// worker and its process group are stopped (SIGTERM, then SIGKILL after
/// the kill grace), the task ends BILLIARD_OUTCOME_TIME_LIMIT, and a new
/// worker takes its place.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_hard_time_limit(
    cfg: *mut billiard_config,
    ms: u64,
) -> c_int {
    update(cfg, |c| c.hard_time_limit(optional_ms(ms)))
}

/// How long a worker the pool stops (hard time limit, cancel, terminate,
/// free) has between SIGTERM and SIGKILL, in ms (default 1000; 0 sends
/// SIGKILL at once). Workers start with SIGTERM's default action (exit), so
/// the grace matters only for handlers that catch SIGTERM to clean up.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_kill_grace(
    cfg: *mut billiard_config,
    ms: u64,
) -> c_int {
    update(cfg, |c| Ok(c.kill_grace(Duration::from_millis(ms))))
}

/// Replaces each worker after it was given `n` tasks plus a random 0 to
/// `jitter` more (so workers started together are not replaced together);
/// 0 (default) never. The worker finishes its tasks and exits cleanly; a
/// new one starts at once. Not counted as a crash.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_max_tasks_per_worker(
    cfg: *mut billiard_config,
    n: u64,
    jitter: u64,
) -> c_int {
    update(cfg, |c| {
        c.max_tasks_per_worker((n > 0).then_some(n), jitter)
    })
}

/// Soft memory limit, in bytes (0: none, the default): after each task, a
/// worker whose current private resident memory is above it takes no new
/// task and is replaced once the tasks it holds are done. Private: pages
/// only that worker holds (Private_Clean + Private_Dirty in
/// /proc/PID/smaps_rollup), so neither its peak nor pages a FORK worker
/// still shares with the host count, and a fresh worker never recycles.
/// With a limit the prefetch window defaults to 1, so that no task is sent
/// ahead to a worker that passes it (billiard_config_set_prefetch stands).
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_soft_memory_limit(
    cfg: *mut billiard_config,
    bytes: u64,
) -> c_int {
    update(cfg, |c| c.soft_memory_limit(optional_bytes(bytes)))
}

/// Hard memory limit, in bytes (0: none, the default): each worker's
/// address space (RLIMIT_AS: all it maps, including what a FORK worker
/// shares with the host) cannot grow past it; an allocation past it fails
/// inside the worker, never the host. A worker that crashes on the failed
/// allocation ends its task BILLIARD_OUTCOME_MEMORY_LIMIT.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_hard_memory_limit(
    cfg: *mut billiard_config,
    bytes: u64,
) -> c_int {
    update(cfg, |c| c.hard_memory_limit(optional_bytes(bytes)))
}

/// Restart intensity: more than `max_restarts` crash restarts (workers that
/// died on their own or failed to start) within `period_ms` make the pool
/// fail: submit returns BILLIARD_ERESTARTS, unfinished tasks end
/// BILLIARD_OUTCOME_ABANDONED, waits drain. Planned replacements (time
/// limits, cancel, recycling, resize, restart) do not count. `period_ms`
/// 0 (the default) turns it off; five failed starts in a row still fail
/// the pool.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_restart_intensity(
    cfg: *mut billiard_config,
    max_restarts: u32,
    period_ms: u64,
) -> c_int {
    update(cfg, |c| {
        let max = (period_ms > 0).then_some(max_restarts);
        c.restart_intensity(max, Duration::from_millis(period_ms))
    })
}

/// Event: a worker process was started (pid).
pub const BILLIARD_EVENT_WORKER_STARTED: c_int = 1;
/// Event: a worker exited and was reaped (pid, exit_code or signal,
/// planned, message).
pub const BILLIARD_EVENT_WORKER_EXITED: c_int = 2;
/// Event: a worker was replaced on purpose (pid, message says why); its
/// BILLIARD_EVENT_WORKER_EXITED follows.
pub const BILLIARD_EVENT_WORKER_RECYCLED: c_int = 3;
/// Event: a worker died while running a task (task_id, pid).
pub const BILLIARD_EVENT_TASK_LOST: c_int = 4;
/// Event: the pool failed (message says why).
pub const BILLIARD_EVENT_POOL_FAILED: c_int = 5;

/// What happened, for the event callback. Valid only during the call.
#[repr(C)]
pub struct billiard_event {
    /// BILLIARD_EVENT_*.
    pub kind: c_int,
    /// The worker's pid; 0 when none.
    pub pid: c_int,
    /// The worker's exit code; -1 when none.
    pub exit_code: c_int,
    /// The signal that killed the worker; 0 when none.
    pub signal: c_int,
    /// 1 when the pool stopped the worker on purpose, else 0.
    pub planned: c_int,
    pub reserved: c_int,
    /// The task; 0 when none.
    pub task_id: u64,
    /// A NUL-terminated description (never NULL).
    pub message: *const c_char,
}

/// Called on the pool's own thread for each event, with the user data
/// given to billiard_config_set_event_callback. Keep it short: the pool
/// waits for it. From inside it, calls on the same pool that would block
/// (a wait with a timeout, a blocking submit, join, terminate, free) fail
/// with BILLIARD_EINVAL instead of deadlocking; the others work, and so
/// does every call on another pool (one created there may be freed there).
pub type billiard_event_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const billiard_event)>;

/// Sets (or, with NULL, removes) the event callback and its user data,
/// which must stay valid while any pool made from this config exists.
#[no_mangle]
pub unsafe extern "C" fn billiard_config_set_event_callback(
    cfg: *mut billiard_config,
    callback: billiard_event_callback,
    user_data: *mut c_void,
) -> c_int {
    update(cfg, |mut c| {
        let Some(f) = callback else {
            c.on_event = None;
            return Ok(c);
        };
        let cb = CCallback { f, ctx: user_data };
        Ok(c.on_event(move |event| {
            let (f, user_data) = cb.parts();
            call_event(f, user_data, event);
        }))
    })
}

/// Hands `event` to a C callback.
fn call_event(
    f: unsafe extern "C" fn(*mut c_void, *const billiard_event),
    user_data: *mut c_void,
    event: &crate::config::Event,
) {
    use crate::config::Event;
    let mut e = billiard_event {
        kind: 0,
        pid: 0,
        exit_code: -1,
        signal: 0,
        planned: 0,
        reserved: 0,
        task_id: 0,
        message: std::ptr::null(),
    };
    let text = match event {
        Event::WorkerStarted { pid } => {
            (e.kind, e.pid) = (BILLIARD_EVENT_WORKER_STARTED, *pid);
            format!("worker {pid} started")
        }
        Event::WorkerExited {
            pid,
            exit_code,
            signal,
            planned,
            about,
        } => {
            (e.kind, e.pid) = (BILLIARD_EVENT_WORKER_EXITED, *pid);
            e.exit_code = exit_code.unwrap_or(-1);
            e.signal = signal.unwrap_or(0);
            e.planned = *planned as c_int;
            about.clone()
        }
        Event::WorkerRecycled { pid, why } => {
            (e.kind, e.pid, e.planned) = (BILLIARD_EVENT_WORKER_RECYCLED, *pid, 1);
            why.clone()
        }
        Event::TaskLost { task_id, pid } => {
            (e.kind, e.pid, e.task_id) = (BILLIARD_EVENT_TASK_LOST, *pid, *task_id);
            format!("worker {pid} died while running task {task_id}")
        }
        Event::PoolFailed { why } => {
            e.kind = BILLIARD_EVENT_POOL_FAILED;
            why.clone()
        }
    };
    let text = std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default();
    e.message = text.as_ptr();
    // SAFETY: the host's callback with its own user data and an event that
    // lives for the call.
    unsafe { f(user_data, &e) };
}
