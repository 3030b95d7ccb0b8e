//! `billiard_result`: one finished task, owned by the caller.

use std::ffi::c_int;

use crate::pool::TaskResult;

/// The task succeeded; data is the handler's reply.
pub const BILLIARD_OUTCOME_OK: c_int = 0;
/// The handler reported an error; data is its message. Also a task whose
/// worker program died before starting it while its large payload sat in
/// that worker's shared area (which it could have written): data says so.
pub const BILLIARD_OUTCOME_FAILED: c_int = 1;
/// The worker died while running the task (it had started it: a task
/// that never started is run elsewhere instead); see exit code or signal.
pub const BILLIARD_OUTCOME_WORKER_LOST: c_int = 2;
/// The task ran past its hard time limit.
pub const BILLIARD_OUTCOME_TIME_LIMIT: c_int = 3;
/// The task was cancelled.
pub const BILLIARD_OUTCOME_CANCELLED: c_int = 4;
/// The pool was terminated or failed before the task finished (or, for
/// a task that never started, before it could run).
pub const BILLIARD_OUTCOME_ABANDONED: c_int = 5;
/// The worker died out of memory while running the task (an allocation
/// failed under the hard memory limit, then it crashed); see the signal.
pub const BILLIARD_OUTCOME_MEMORY_LIMIT: c_int = 6;

/// A finished task (opaque). Owned by the caller until billiard_result_free;
/// it outlives its pool. Use from one thread at a time.
pub struct billiard_result {
    pub(crate) inner: TaskResult,
}

/// Reads a field of a result; NULL gives `default`.
fn field<T: Copy>(r: *const billiard_result, default: T, f: impl FnOnce(&TaskResult) -> T) -> T {
    boundary!(default, {
        // SAFETY: r is NULL or a live result from this library.
        match unsafe { r.as_ref() } {
            Some(r) => f(&r.inner),
            None => default,
        }
    })
}

/// The id billiard_pool_submit returned; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_task_id(r: *const billiard_result) -> u64 {
    field(r, 0, |r| r.task_id)
}

/// The tag given at submit (0 by default); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_tag(r: *const billiard_result) -> u64 {
    field(r, 0, |r| r.tag)
}

/// One of BILLIARD_OUTCOME_*; BILLIARD_EINVAL for NULL.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_outcome(r: *const billiard_result) -> c_int {
    field(r, super::BILLIARD_EINVAL, |r| r.outcome as c_int)
}

/// The reply (OK) or a message (every other outcome), with its length in
/// `*len` (may be NULL). Owned by the result: valid until
/// billiard_result_free. Not NUL-terminated. NULL result: NULL and 0.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_data(
    r: *const billiard_result,
    len: *mut usize,
) -> *const u8 {
    let (ptr, n) = field(r, (std::ptr::null(), 0), |r| {
        (r.data.as_ptr(), r.data.len())
    });
    if !len.is_null() {
        // SAFETY: len is a valid out-pointer when not NULL.
        unsafe { *len = n };
    }
    ptr
}

/// Pid of the worker that ran (or last held) the task; 0 if none did or NULL.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_pid(r: *const billiard_result) -> c_int {
    field(r, 0, |r| r.pid)
}

/// Exit code of the worker when it exited while holding the task; -1 when
/// none (it did not die, was killed by a signal, or NULL).
#[no_mangle]
pub unsafe extern "C" fn billiard_result_exit_code(r: *const billiard_result) -> c_int {
    field(r, -1, |r| r.exit_code.unwrap_or(-1))
}

/// Signal that killed the worker while it held the task; 0 when none or NULL.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_signal(r: *const billiard_result) -> c_int {
    field(r, 0, |r| r.signal.unwrap_or(0))
}

/// Microseconds from submit until a worker started the task (or until the
/// end, if none did); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_queued_us(r: *const billiard_result) -> u64 {
    field(r, 0, |r| r.queued.as_micros() as u64)
}

/// Microseconds the task ran; 0 if it never started or NULL.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_running_us(r: *const billiard_result) -> u64 {
    field(r, 0, |r| r.running.as_micros() as u64)
}

/// Frees a result and its data. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn billiard_result_free(r: *mut billiard_result) {
    boundary!((), {
        if !r.is_null() {
            // SAFETY: r came from this library and is freed once.
            drop(unsafe { Box::from_raw(r) });
        }
    })
}
