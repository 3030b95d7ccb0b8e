//! `billiard_pool`: the pool handle. Every function may be called from any
//! thread at once, except billiard_pool_free, which must be the last call.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use super::config::billiard_config;
use super::error::fail;
use super::result::billiard_result;
use super::{arg_bytes, arg_mut, arg_ref, arg_timeout, call};
use crate::error::Error;
use crate::pool::{Pool, TaskOptions};

/// Submit flag: fail with BILLIARD_EFULL instead of blocking on a full queue.
pub const BILLIARD_SUBMIT_NONBLOCK: u32 = 1;

/// A pool of worker processes (opaque). Thread-safe.
pub struct billiard_pool {
    pool: Pool,
}

/// Per-task options. Initialise with billiard_task_opts_init(), then set
/// fields; fields added in later versions go at the end, and `struct_size`
/// tells the library which ones the caller knows.
#[repr(C)]
pub struct billiard_task_opts {
    /// sizeof(billiard_task_opts), set by billiard_task_opts_init.
    pub struct_size: u32,
    /// BILLIARD_SUBMIT_* flags.
    pub flags: u32,
    /// Returned unchanged by billiard_result_tag.
    pub tag: u64,
}

/// Sets `opts` to the defaults for this header's version. NULL is EINVAL.
#[no_mangle]
pub unsafe extern "C" fn billiard_task_opts_init(opts: *mut billiard_task_opts) -> c_int {
    call(|| {
        let opts = unsafe { arg_mut(opts, "opts") }?;
        *opts = billiard_task_opts {
            struct_size: std::mem::size_of::<billiard_task_opts>() as u32,
            flags: 0,
            tag: 0,
        };
        Ok(())
    })
}

/// A counted reference to the pool for the duration of one call, so a
/// thread blocked inside the pool keeps it alive while another frees it.
unsafe fn pool_ref(p: *const billiard_pool) -> Result<Arc<billiard_pool>, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument("pool is NULL".into()));
    }
    // SAFETY: p came from Arc::into_raw in billiard_pool_new and the caller
    // has not finished billiard_pool_free on it.
    unsafe {
        Arc::increment_strong_count(p);
        Ok(Arc::from_raw(p))
    }
}

/// Runs `f` on the pool behind `p`, mapping errors to codes. `p` comes
/// straight from C: NULL or a live pool from billiard_pool_new.
fn with_pool(p: *const billiard_pool, f: impl FnOnce(&Pool) -> Result<(), Error>) -> c_int {
    call(|| {
        let handle = unsafe { pool_ref(p) }?;
        f(&handle.pool)
    })
}

/// Starts a pool from `cfg` (copied: the config may be freed or reused
/// afterwards). Returns once every worker is ready; on failure no worker is
/// left and `*out` is NULL (BILLIARD_ESPAWN says why in billiard_last_error).
/// The caller owns `*out` and must call billiard_pool_free.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_new(
    cfg: *const billiard_config,
    out: *mut *mut billiard_pool,
) -> c_int {
    call(|| {
        let out = unsafe { arg_mut(out, "out") }?;
        *out = std::ptr::null_mut();
        let cfg = unsafe { arg_ref(cfg, "cfg") }?;
        let pool = Pool::new(cfg.inner.clone())?;
        *out = Arc::into_raw(Arc::new(billiard_pool { pool })).cast_mut();
        Ok(())
    })
}

/// Submits a task. `data`/`len` is copied before return, so the caller may
/// free it at once; (NULL, 0) is an empty payload. `opts` may be NULL for
/// defaults. On success `*task_id` (may be NULL) is the task's id, and the
/// task will produce exactly one result. Blocks while a bounded queue is
/// full unless BILLIARD_SUBMIT_NONBLOCK is set. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_submit(
    pool: *mut billiard_pool,
    data: *const c_void,
    len: usize,
    opts: *const billiard_task_opts,
    task_id: *mut u64,
) -> c_int {
    if !task_id.is_null() {
        // SAFETY: a valid out-pointer when not NULL.
        unsafe { *task_id = 0 };
    }
    with_pool(pool, |p| {
        let payload = unsafe { arg_bytes(data.cast(), len, "data") }?;
        let opts = unsafe { task_options(opts) }?;
        let id = p.submit(payload, &opts)?;
        if !task_id.is_null() {
            // SAFETY: a valid out-pointer when not NULL.
            unsafe { *task_id = id };
        }
        Ok(())
    })
}

/// Reads a caller's task options, checking the struct was initialised.
unsafe fn task_options(opts: *const billiard_task_opts) -> Result<TaskOptions, Error> {
    // SAFETY: NULL or a caller-owned struct.
    let Some(o) = (unsafe { opts.as_ref() }) else {
        return Ok(TaskOptions::default());
    };
    let ours = std::mem::size_of::<billiard_task_opts>() as u32;
    if o.struct_size != ours {
        return Err(Error::InvalidArgument(format!(
            "opts->struct_size is {} but this library expects {ours}: call billiard_task_opts_init first",
            o.struct_size
        )));
    }
    if o.flags & !BILLIARD_SUBMIT_NONBLOCK != 0 {
        return Err(Error::InvalidArgument(format!(
            "unknown submit flags {:#x}",
            o.flags
        )));
    }
    Ok(TaskOptions {
        tag: o.tag,
        nonblocking: o.flags & BILLIARD_SUBMIT_NONBLOCK != 0,
    })
}

/// Hands a result to the caller through `out`.
fn deliver(out: &mut *mut billiard_result, r: crate::pool::TaskResult) {
    *out = Box::into_raw(Box::new(billiard_result { inner: r }));
}

/// Waits for the next finished task, whichever it is. `timeout_ms`: -1
/// forever, 0 poll, > 0 milliseconds. BILLIARD_ETIMEDOUT when time runs out;
/// BILLIARD_ENOTFOUND at once when no task is pending and no result waits
/// (so `while (billiard_pool_wait(p, -1, &r) == 0)` drains and ends).
/// Results of tasks another thread awaits with billiard_task_wait are left to
/// it. The caller owns `*out` and must call billiard_result_free. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_wait(
    pool: *mut billiard_pool,
    timeout_ms: i64,
    out: *mut *mut billiard_result,
) -> c_int {
    with_pool(pool, |p| {
        let out = unsafe { arg_mut(out, "out") }?;
        *out = std::ptr::null_mut();
        deliver(out, p.wait(arg_timeout(timeout_ms)?)?);
        Ok(())
    })
}

/// Waits for the result of task `task_id` (timeout as billiard_pool_wait).
/// BILLIARD_ENOTFOUND if that id is not pending and not waiting to be
/// collected (unknown, or collected already); BILLIARD_EINVAL if another
/// thread waits for it. The caller owns `*out` and must call
/// billiard_result_free. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_task_wait(
    pool: *mut billiard_pool,
    task_id: u64,
    timeout_ms: i64,
    out: *mut *mut billiard_result,
) -> c_int {
    with_pool(pool, |p| {
        let out = unsafe { arg_mut(out, "out") }?;
        *out = std::ptr::null_mut();
        deliver(out, p.wait_task(task_id, arg_timeout(timeout_ms)?)?);
        Ok(())
    })
}

/// A file descriptor that is readable while results wait to be collected,
/// for poll/epoll/libuv/netpoll. Owned by the pool: never read or close it;
/// drain with billiard_pool_wait(pool, 0, &r) until BILLIARD_ETIMEDOUT or
/// BILLIARD_ENOTFOUND. Returns the fd, or BILLIARD_EINVAL for NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_fd(pool: *const billiard_pool) -> c_int {
    boundary!(super::BILLIARD_EPANIC, {
        match unsafe { pool_ref(pool) } {
            Ok(handle) => handle.pool.event_fd(),
            Err(e) => fail(e),
        }
    })
}

/// Stops accepting tasks (submit gives BILLIARD_ECLOSED); queued and running
/// tasks still finish, then workers exit. Idempotent. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_close(pool: *mut billiard_pool) -> c_int {
    with_pool(pool, |p| p.close())
}

/// Waits until a closed pool has finished every task and reaped every
/// worker (timeout as billiard_pool_wait). BILLIARD_EINVAL if the pool was
/// neither closed nor terminated. Results stay collectable. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_join(pool: *mut billiard_pool, timeout_ms: i64) -> c_int {
    with_pool(pool, |p| p.join(arg_timeout(timeout_ms)?))
}

/// Stops now: kills every worker, reaps it, and ends every unfinished task
/// as BILLIARD_OUTCOME_ABANDONED (results stay collectable). Returns when no
/// worker is left. Idempotent. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_terminate(pool: *mut billiard_pool) -> c_int {
    with_pool(pool, |p| p.terminate())
}

/// Terminates the pool if needed, reaps every worker and frees the handle:
/// afterwards no child process of the pool exists, not even a zombie, and
/// none of its fds is open. Uncollected results are freed; results already
/// collected stay valid. NULL is a no-op. Must be the last call on `pool`:
/// threads blocked in billiard_pool_wait return, but no thread may enter a
/// pool function after this starts.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_free(pool: *mut billiard_pool) {
    boundary!((), {
        if pool.is_null() {
            return;
        }
        // SAFETY: pool came from billiard_pool_new; this drops its reference.
        let handle = unsafe { Arc::from_raw(pool.cast_const()) };
        handle.pool.shutdown();
        drop(handle);
    })
}
