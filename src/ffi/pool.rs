//! `billiard_pool`: the pool handle. Every function may be called from any
//! thread at once, except billiard_pool_free, which must be the last call.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use super::config::{billiard_config, notice_kinds};
use super::error::fail;
use super::result::billiard_result;
use super::{arg_bytes, arg_mut, arg_ref, arg_timeout, call};
use crate::error::Error;
use crate::pool::{Limit, NoticeKind, Pool, TaskOptions, TaskState, WorkerState};

/// Submit flag: fail with BILLIARD_EFULL instead of blocking on a full queue.
pub const BILLIARD_SUBMIT_NONBLOCK: u32 = 1;

/// Per-task time limit: use the pool's (billiard_task_opts_init's value).
pub const BILLIARD_LIMIT_DEFAULT: i64 = -1;
/// Per-task time limit: none for this task, whatever the pool's.
pub const BILLIARD_LIMIT_NONE: i64 = 0;

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
    /// This task's soft time limit in ms from its start;
    /// BILLIARD_LIMIT_DEFAULT (the pool's) or BILLIARD_LIMIT_NONE.
    pub soft_time_limit_ms: i64,
    /// This task's hard time limit in ms from its start;
    /// BILLIARD_LIMIT_DEFAULT (the pool's) or BILLIARD_LIMIT_NONE.
    pub hard_time_limit_ms: i64,
}

/// Size of billiard_task_opts before the time limits were added (0.1).
const TASK_OPTS_V1_SIZE: u32 = 16;

/// Sets `opts` to the defaults for this header's version. NULL is EINVAL.
#[no_mangle]
pub unsafe extern "C" fn billiard_task_opts_init(opts: *mut billiard_task_opts) -> c_int {
    call(|| {
        let opts = unsafe { arg_mut(opts, "opts") }?;
        *opts = billiard_task_opts {
            struct_size: std::mem::size_of::<billiard_task_opts>() as u32,
            flags: 0,
            tag: 0,
            soft_time_limit_ms: BILLIARD_LIMIT_DEFAULT,
            hard_time_limit_ms: BILLIARD_LIMIT_DEFAULT,
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
    let handle = unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    };
    if !handle.pool.in_owner_process() {
        return Err(not_in_owner_process());
    }
    Ok(handle)
}

/// Why a forked child's copy of a pool refuses every call.
fn not_in_owner_process() -> Error {
    Error::InvalidArgument(
        "this pool belongs to the process that made it; a process forked from it has only a \
         copy, which it can neither use nor stop (billiard_pool_free there frees only the copy)"
            .into(),
    )
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
    if o.struct_size != ours && o.struct_size != TASK_OPTS_V1_SIZE {
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
    let (soft, hard) = if o.struct_size >= ours {
        (
            task_limit(o.soft_time_limit_ms, "soft_time_limit_ms")?,
            task_limit(o.hard_time_limit_ms, "hard_time_limit_ms")?,
        )
    } else {
        (Limit::PoolDefault, Limit::PoolDefault)
    };
    Ok(TaskOptions {
        tag: o.tag,
        nonblocking: o.flags & BILLIARD_SUBMIT_NONBLOCK != 0,
        soft_time_limit: soft,
        hard_time_limit: hard,
    })
}

/// A per-task limit field: -1 the pool's, 0 none, > 0 milliseconds.
fn task_limit(ms: i64, name: &str) -> Result<Limit, Error> {
    match ms {
        BILLIARD_LIMIT_DEFAULT => Ok(Limit::PoolDefault),
        BILLIARD_LIMIT_NONE => Ok(Limit::Unlimited),
        ms if ms > 0 => Ok(Limit::After(std::time::Duration::from_millis(ms as u64))),
        ms => Err(Error::InvalidArgument(format!(
            "opts->{name} is {ms}: use BILLIARD_LIMIT_DEFAULT (-1), BILLIARD_LIMIT_NONE (0) or milliseconds"
        ))),
    }
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
/// pool function after this starts. Called from this pool's own event
/// callback, it does nothing (it would wait for the thread running the
/// callback) and records why in billiard_last_error(); other pools may be
/// freed there.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_free(pool: *mut billiard_pool) {
    boundary!((), {
        if pool.is_null() {
            return;
        }
        // SAFETY: pool came from billiard_pool_new and is not freed yet.
        if !unsafe { &(*pool).pool }.in_owner_process() {
            // SAFETY: as above; dropping the copy waits for nothing.
            drop(unsafe { Arc::from_raw(pool.cast_const()) });
            fail(not_in_owner_process());
            return;
        }
        // SAFETY: pool came from billiard_pool_new and is not freed yet.
        let own = unsafe { &(*pool).pool }.refuse_in_own_event_handler("billiard_pool_free");
        if let Err(e) = own {
            fail(e);
            return;
        }
        // SAFETY: pool came from billiard_pool_new; this drops its reference.
        let handle = unsafe { Arc::from_raw(pool.cast_const()) };
        handle.pool.shutdown();
        drop(handle);
    })
}

/// Cancels task `task_id`: a queued task is dropped; one sent ahead to a
/// worker that has not started it is skipped; a running one has its worker
/// stopped (SIGTERM, then SIGKILL after the kill grace) and replaced.
/// Either way the task ends BILLIARD_OUTCOME_CANCELLED, exactly once (at
/// once if it had not started or had just finished, whose result is then
/// dropped; once its worker is gone if it ran). The stop can only hit this
/// task, never the one the worker would run next. BILLIARD_ENOTFOUND if
/// the task is not pending (unknown, or its result is in: it stands).
/// Thread-safe; never blocks.
#[no_mangle]
pub unsafe extern "C" fn billiard_task_cancel(pool: *mut billiard_pool, task_id: u64) -> c_int {
    with_pool(pool, |p| p.cancel(task_id))
}

/// billiard_task_cancel with `signal` as the first signal a running task's
/// worker (and its process group) gets instead of SIGTERM: SIGKILL kills at
/// once; another (SIGUSR1, SIGINT) lets the task react, and SIGKILL follows
/// after the kill grace. The same exactly-once rules as billiard_task_cancel.
/// BILLIARD_EINVAL for a number that is not a signal. Thread-safe; never
/// blocks.
#[no_mangle]
pub unsafe extern "C" fn billiard_task_cancel_signal(
    pool: *mut billiard_pool,
    task_id: u64,
    signal: c_int,
) -> c_int {
    with_pool(pool, |p| p.cancel_with_signal(task_id, signal))
}

/// Sends `signal` to the worker process running task `task_id` without
/// cancelling the task (billiard's terminate_job without the stop: SIGUSR1
/// to make a Python task raise, say). Sent only while that task runs, never
/// to the task after it. BILLIARD_ENOTFOUND when the task is not running
/// (queued, not started yet, finished, or its worker is being stopped):
/// nothing was sent. A signal that kills the worker ends the task
/// BILLIARD_OUTCOME_WORKER_LOST. Thread-safe; never blocks.
#[no_mangle]
pub unsafe extern "C" fn billiard_task_signal(
    pool: *mut billiard_pool,
    task_id: u64,
    signal: c_int,
) -> c_int {
    with_pool(pool, |p| p.signal_task(task_id, signal))
}

/// Notice kind (and billiard_config_set_notices bit): a task started.
pub const BILLIARD_NOTICE_STARTED: i32 = 1;
/// Notice kind (and billiard_config_set_notices bit): a task's soft time
/// limit passed (its worker got SIGUSR1).
pub const BILLIARD_NOTICE_SOFT_LIMIT: i32 = 2;
/// Notice kind (and bit): a worker process started (its pid; task_id and
/// tag are 0). Workers started before the kind was turned on have none.
pub const BILLIARD_NOTICE_WORKER_STARTED: i32 = 4;
/// Notice kind (and bit): a worker process exited and was reaped (its pid;
/// task_id and tag are 0): every worker, however short its life.
pub const BILLIARD_NOTICE_WORKER_EXITED: i32 = 8;

/// Something that happened to a task before its result
/// (billiard_pool_notices).
#[repr(C)]
pub struct billiard_notice {
    /// BILLIARD_NOTICE_*.
    pub kind: i32,
    /// The worker running the task (a worker notice: that worker).
    pub pid: i32,
    /// The task (0 for a worker notice).
    pub task_id: u64,
    /// The task's tag (billiard_task_opts; 0 for a worker notice).
    pub tag: u64,
    /// When it happened: microseconds since the Unix epoch.
    pub time_us: u64,
    /// STARTED: from submit to the start. SOFT_LIMIT: from the start.
    pub elapsed_us: u64,
}

/// Takes up to `cap` waiting notices into `out`, oldest first, and their
/// number into `*count` (0: none). Never blocks and never takes a result.
/// Notices are kept only for the kinds turned on with
/// billiard_config_set_notices, each once, until read; billiard_pool_fd is
/// readable while a notice or a result waits. A task's STARTED notice is
/// queued before its result is handed out (to billiard_pool_wait,
/// billiard_task_wait or the fd), and only for a task that started.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_notices(
    pool: *mut billiard_pool,
    out: *mut billiard_notice,
    cap: usize,
    count: *mut usize,
) -> c_int {
    with_pool(pool, |p| {
        // SAFETY: the caller's array and count, per the contract.
        unsafe {
            fill_array(out, cap, count, |cap| {
                let notices = p.notices(cap);
                let total = notices.len();
                let items = notices.into_iter().map(|n| billiard_notice {
                    kind: match n.kind {
                        NoticeKind::Started => BILLIARD_NOTICE_STARTED,
                        NoticeKind::SoftLimit => BILLIARD_NOTICE_SOFT_LIMIT,
                        NoticeKind::WorkerStarted => BILLIARD_NOTICE_WORKER_STARTED,
                        NoticeKind::WorkerExited => BILLIARD_NOTICE_WORKER_EXITED,
                    },
                    pid: n.pid,
                    task_id: n.task_id,
                    tag: n.tag,
                    time_us: unix_us(n.at),
                    elapsed_us: n.elapsed.as_micros() as u64,
                });
                (total, items)
            })
        }
    })
}

/// Changes which notices the pool keeps from now on, as
/// billiard_config_set_notices does at the start (a bit set of
/// BILLIARD_NOTICE_*; unknown bits are BILLIARD_EINVAL). A task that starts
/// after STARTED is turned on has its notice at once; one that started
/// before has it with its result if STARTED is still on then. So a host
/// can pay for STARTED notices only while it needs them: each task has at
/// most one, and exactly one if STARTED stays on from its submit to its
/// result. Notices already queued stay until read. Thread-safe; never
/// blocks.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_set_notices(pool: *mut billiard_pool, kinds: u32) -> c_int {
    with_pool(pool, |p| {
        p.set_notices(notice_kinds(kinds)?);
        Ok(())
    })
}

/// Fills a caller's array: `*count` is set to 0 first, `out` may be NULL
/// only with `cap` 0, and `items(cap)` gives the total count (which may be
/// more than `cap`) and the entries, of which the first `cap` are written.
///
/// # Safety
/// `out` is NULL or has room for `cap` entries; `count` is NULL or valid.
unsafe fn fill_array<T, I: Iterator<Item = T>>(
    out: *mut T,
    cap: usize,
    count: *mut usize,
    items: impl FnOnce(usize) -> (usize, I),
) -> Result<(), Error> {
    let count = unsafe { arg_mut(count, "count") }?;
    *count = 0;
    if out.is_null() && cap > 0 {
        return Err(Error::InvalidArgument(format!(
            "out is NULL with a capacity of {cap}"
        )));
    }
    let (total, items) = items(cap);
    for (i, item) in items.take(cap).enumerate() {
        // SAFETY: out has room for cap entries and i < cap.
        unsafe { out.add(i).write(item) };
    }
    *count = total;
    Ok(())
}

/// Microseconds since the Unix epoch (0 before it).
fn unix_us(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Task state: waiting in the queue.
pub const BILLIARD_TASK_QUEUED: i32 = 1;
/// Task state: sent to a worker (pid) that has not started it.
pub const BILLIARD_TASK_SENT: i32 = 2;
/// Task state: running on a worker (pid) since started_us.
pub const BILLIARD_TASK_RUNNING: i32 = 3;
/// Task state: finished; its result waits to be collected.
pub const BILLIARD_TASK_DONE: i32 = 4;

/// Where a task is now (billiard_task_status).
#[repr(C)]
pub struct billiard_task_info {
    /// Set to sizeof(billiard_task_info) before the call.
    pub struct_size: u32,
    /// BILLIARD_TASK_*.
    pub state: i32,
    /// The worker holding or running it (or that ran it); 0 if none.
    pub pid: i32,
    pub reserved: i32,
    pub tag: u64,
    /// RUNNING: when it started, in microseconds since the Unix epoch;
    /// else 0.
    pub started_us: u64,
}

/// Where task `task_id` is now: queued, sent to a worker, running (which
/// worker, since when) or done with its result waiting (for `inspect
/// active`, billiard's ApplyResult.accepted()). Works whether or not
/// notices are on; costs one lock. BILLIARD_ENOTFOUND for an unknown task
/// or a collected result. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_task_status(
    pool: *mut billiard_pool,
    task_id: u64,
    out: *mut billiard_task_info,
) -> c_int {
    with_pool(pool, |p| {
        let out = unsafe { arg_mut(out, "out") }?;
        let size = std::mem::size_of::<billiard_task_info>() as u32;
        if out.struct_size < size {
            return Err(Error::InvalidArgument(format!(
                "out->struct_size is {}; set it to sizeof(billiard_task_info) ({size})",
                out.struct_size
            )));
        }
        let st = p.task_status(task_id)?;
        *out = billiard_task_info {
            struct_size: size,
            state: match st.state {
                TaskState::Queued => BILLIARD_TASK_QUEUED,
                TaskState::Sent => BILLIARD_TASK_SENT,
                TaskState::Running => BILLIARD_TASK_RUNNING,
                TaskState::Done => BILLIARD_TASK_DONE,
            },
            pid: st.pid,
            reserved: 0,
            tag: st.tag,
            started_us: st.started.map_or(0, unix_us),
        };
        Ok(())
    })
}

/// Grows or shrinks the pool to `n` workers (1 to 4096). Growing starts
/// workers at once; shrinking retires idle workers first, then the least
/// busy ones, each after the tasks it holds (nothing is lost). Returns at
/// once. BILLIARD_ECLOSED unless the pool is running. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_resize(pool: *mut billiard_pool, n: u32) -> c_int {
    with_pool(pool, |p| p.resize(n as usize))
}

/// Replaces every worker, each after the tasks it holds, with a freshly
/// started one (new workers start at once): a rolling restart that drops
/// no work, to load new code or data. Returns at once. BILLIARD_ECLOSED
/// unless the pool is running. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_restart(pool: *mut billiard_pool) -> c_int {
    with_pool(pool, |p| p.restart())
}

/// Outcome slots in billiard_stats (room for outcomes added later).
pub const BILLIARD_OUTCOME_SLOTS: usize = 8;

/// What a pool does now and did so far (billiard_pool_stats).
#[repr(C)]
pub struct billiard_stats {
    /// Set to sizeof(billiard_stats) before the call.
    pub struct_size: u32,
    /// Worker processes that exist (starting, serving or being replaced).
    pub workers: u32,
    /// Workers holding tasks (running one, or about to).
    pub busy: u32,
    /// Workers ready with no task.
    pub idle: u32,
    /// Workers the pool keeps (its size).
    pub target: u32,
    pub reserved: u32,
    /// Tasks waiting to start (queued, or sent ahead to a busy worker).
    pub queued: u64,
    /// Tasks running.
    pub running: u64,
    /// Results waiting to be collected.
    pub uncollected: u64,
    /// Tasks finished so far, indexed by BILLIARD_OUTCOME_*.
    pub outcomes: [u64; BILLIARD_OUTCOME_SLOTS],
    /// Workers that crashed (or failed to start) and were replaced.
    pub restarts: u64,
    /// Workers replaced on purpose (max tasks, memory, resize, restart).
    pub recycles: u64,
}

/// Fills `*out` with the pool's numbers. Set `out->struct_size =
/// sizeof(billiard_stats)` first (BILLIARD_EINVAL otherwise). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_stats(
    pool: *mut billiard_pool,
    out: *mut billiard_stats,
) -> c_int {
    with_pool(pool, |p| {
        let out = unsafe { arg_mut(out, "out") }?;
        let ours = std::mem::size_of::<billiard_stats>() as u32;
        if out.struct_size != ours {
            return Err(Error::InvalidArgument(format!(
                "out->struct_size is {} but this library expects {ours}: set it to sizeof(billiard_stats)",
                out.struct_size
            )));
        }
        let s = p.stats();
        let mut outcomes = [0u64; BILLIARD_OUTCOME_SLOTS];
        outcomes[..s.counts.outcomes.len()].copy_from_slice(&s.counts.outcomes);
        *out = billiard_stats {
            struct_size: ours,
            workers: s.workers as u32,
            busy: s.busy as u32,
            idle: s.idle as u32,
            target: s.target as u32,
            reserved: 0,
            queued: s.queued as u64,
            running: s.running as u64,
            uncollected: s.uncollected as u64,
            outcomes,
            restarts: s.counts.restarts,
            recycles: s.counts.recycles,
        };
        Ok(())
    })
}

/// Worker state: started, not ready yet.
pub const BILLIARD_WORKER_STARTING: i32 = 0;
/// Worker state: ready, holding no task.
pub const BILLIARD_WORKER_IDLE: i32 = 1;
/// Worker state: running (or holding) tasks.
pub const BILLIARD_WORKER_BUSY: i32 = 2;
/// Worker state: takes no new task, exits after those it holds.
pub const BILLIARD_WORKER_RETIRING: i32 = 3;
/// Worker state: being stopped by the pool.
pub const BILLIARD_WORKER_STOPPING: i32 = 4;

/// One worker (billiard_pool_workers).
#[repr(C)]
pub struct billiard_worker_info {
    pub pid: i32,
    /// BILLIARD_WORKER_*.
    pub state: i32,
    /// The task it runs now; 0 if none.
    pub task_id: u64,
    /// Tasks it finished.
    pub tasks_done: u64,
    /// Its resident set now, in bytes (0 if unknown).
    pub rss_bytes: u64,
}

/// Lists the pool's workers: up to `cap` entries into `out` (may be NULL
/// when `cap` is 0), and the number of workers in `*count`, which may be
/// more than `cap` (call again with a larger array). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn billiard_pool_workers(
    pool: *mut billiard_pool,
    out: *mut billiard_worker_info,
    cap: usize,
    count: *mut usize,
) -> c_int {
    with_pool(pool, |p| {
        // SAFETY: the caller's array and count, per the contract.
        unsafe {
            fill_array(out, cap, count, |_| {
                let list = p.workers();
                let total = list.len();
                let items = list.into_iter().map(|w| billiard_worker_info {
                    pid: w.pid,
                    state: match w.state {
                        WorkerState::Starting => BILLIARD_WORKER_STARTING,
                        WorkerState::Idle => BILLIARD_WORKER_IDLE,
                        WorkerState::Busy => BILLIARD_WORKER_BUSY,
                        WorkerState::Retiring => BILLIARD_WORKER_RETIRING,
                        WorkerState::Stopping => BILLIARD_WORKER_STOPPING,
                    },
                    task_id: w.task.unwrap_or(0),
                    tasks_done: w.tasks_done,
                    rss_bytes: w.rss,
                });
                (total, items)
            })
        }
    })
}
