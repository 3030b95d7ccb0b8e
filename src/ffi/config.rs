//! `billiard_config`: built single-threaded by the host, then passed to
//! `billiard_pool_new`, which copies what it needs.

use std::ffi::{c_int, c_void};
use std::time::Duration;

use super::reply::billiard_reply;
use super::{arg_mut, arg_timeout, call};
use std::ffi::{c_char, CStr};
use std::sync::Arc;

use crate::config::{Config, Handler, StartMethod};
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

/// Runs once in each worker before its first task. Non-zero: the worker
/// does not start (billiard_pool_new fails with BILLIARD_ESPAWN).
pub type billiard_initializer = Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>;

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
        let Some(f) = initializer else {
            c.initializer = None;
            return Ok(c);
        };
        let cb = CCallback { f, ctx };
        Ok(c.initializer(move || {
            // SAFETY: the host's initializer with its own context.
            let (f, ctx) = cb.parts();
            match unsafe { f(ctx) } {
                0 => Ok(()),
                rc => Err(format!("initializer returned {rc}")),
            }
        }))
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

/// Most tasks in flight to one worker (1 to 4096; default 16). Above 1, a
/// busy worker is sent its next tasks before it asks, many per write (fast
/// tiny tasks); idle workers are always served first. A task queued behind
/// a long one in a worker's window waits for it even if another worker
/// frees up: 1 sends a task only to an idle worker. BILLIARD_EINVAL if out
/// of range.
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
