//! The C ABI exercised from Rust through the extern functions: ownership,
//! out-pointers, options, error codes and last-error text.

use std::ffi::{c_int, c_void, CStr};
use std::ptr::{null, null_mut};

use billiard::ffi::*;

/// Handler: upper-cases the input; input "fail" fails with a message and
/// "ret7" returns 7 without one. `ctx` points to a byte appended to replies.
unsafe extern "C" fn upper(
    ctx: *mut c_void,
    input: *const u8,
    len: usize,
    reply: *mut billiard_reply,
) -> c_int {
    let data = std::slice::from_raw_parts(input, len);
    match data {
        b"fail" => {
            billiard_reply_error(reply, c"refused".as_ptr());
            1
        }
        b"ret7" => 7,
        _ => {
            let up = data.to_ascii_uppercase();
            billiard_reply_write(reply, up.as_ptr().cast(), up.len());
            billiard_reply_write(reply, ctx.cast_const(), 1)
        }
    }
}

unsafe extern "C" fn failing_init(_ctx: *mut c_void) -> c_int {
    2
}

fn last_error() -> String {
    let p = billiard_last_error();
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

static SUFFIX: u8 = b'!';

unsafe fn new_pool(workers: u32, init: billiard_initializer) -> (c_int, *mut billiard_pool) {
    let mut cfg = null_mut();
    assert_eq!(billiard_config_new(&mut cfg), BILLIARD_OK);
    assert_eq!(billiard_config_set_workers(cfg, workers), BILLIARD_OK);
    assert_eq!(
        billiard_config_set_handler(cfg, Some(upper), (&SUFFIX as *const u8).cast_mut().cast()),
        BILLIARD_OK
    );
    assert_eq!(
        billiard_config_set_initializer(cfg, init, null_mut()),
        BILLIARD_OK
    );
    let mut pool = std::ptr::dangling_mut::<billiard_pool>(); // garbage: must be reset
    let rc = billiard_pool_new(cfg, &mut pool);
    billiard_config_free(cfg);
    (rc, pool)
}

unsafe fn data_of(r: *const billiard_result) -> Vec<u8> {
    let mut len = 0usize;
    let p = billiard_result_data(r, &mut len);
    std::slice::from_raw_parts(p, len).to_vec()
}

#[test]
fn submit_wait_and_result_accessors() {
    unsafe {
        let (rc, pool) = new_pool(2, None);
        assert_eq!(rc, BILLIARD_OK);
        let mut opts = std::mem::zeroed::<billiard_task_opts>();
        assert_eq!(billiard_task_opts_init(&mut opts), BILLIARD_OK);
        opts.tag = 42;
        let mut id = 0u64;
        assert_eq!(
            billiard_pool_submit(pool, b"abc".as_ptr().cast(), 3, &opts, &mut id),
            BILLIARD_OK
        );
        assert!(id > 0);
        let mut r = null_mut();
        assert_eq!(billiard_task_wait(pool, id, 20_000, &mut r), BILLIARD_OK);
        assert_eq!(billiard_result_task_id(r), id);
        assert_eq!(billiard_result_tag(r), 42);
        assert_eq!(billiard_result_outcome(r), BILLIARD_OUTCOME_OK);
        assert_eq!(data_of(r), b"ABC!");
        assert!(billiard_result_pid(r) > 0);
        assert_eq!(billiard_result_exit_code(r), -1);
        assert_eq!(billiard_result_signal(r), 0);
        billiard_result_free(r);

        // Handler failures: explicit message, and a bare non-zero return.
        let mut fail_id = 0;
        billiard_pool_submit(pool, b"fail".as_ptr().cast(), 4, null(), &mut fail_id);
        let mut ret_id = 0;
        billiard_pool_submit(pool, b"ret7".as_ptr().cast(), 4, null(), &mut ret_id);
        assert_eq!(
            billiard_task_wait(pool, fail_id, 20_000, &mut r),
            BILLIARD_OK
        );
        assert_eq!(billiard_result_outcome(r), BILLIARD_OUTCOME_FAILED);
        assert_eq!(data_of(r), b"refused");
        billiard_result_free(r);
        assert_eq!(
            billiard_task_wait(pool, ret_id, 20_000, &mut r),
            BILLIARD_OK
        );
        assert_eq!(billiard_result_outcome(r), BILLIARD_OUTCOME_FAILED);
        assert_eq!(data_of(r), b"handler returned 7");

        // A result outlives its pool.
        billiard_pool_free(pool);
        assert_eq!(data_of(r), b"handler returned 7");
        billiard_result_free(r);
    }
}

#[test]
fn initializer_failure_is_espawn_with_detail_and_null_out() {
    unsafe {
        let (rc, pool) = new_pool(2, Some(failing_init));
        assert_eq!(rc, BILLIARD_ESPAWN);
        assert!(pool.is_null());
        let text = last_error();
        assert!(text.contains("initializer returned 2"), "{text}");
    }
}

#[test]
fn codes_are_fixed_and_described() {
    let codes = [
        (BILLIARD_OK, 0),
        (BILLIARD_EINVAL, -1),
        (BILLIARD_ETIMEDOUT, -2),
        (BILLIARD_ECLOSED, -3),
        (BILLIARD_EFULL, -4),
        (BILLIARD_ENOTFOUND, -5),
        (BILLIARD_ESPAWN, -6),
        (BILLIARD_ERESTARTS, -7),
        (BILLIARD_ENOMEM, -8),
        (BILLIARD_EIO, -9),
        (BILLIARD_EPANIC, -10),
    ];
    for (code, value) in codes {
        assert_eq!(code, value);
        let text = unsafe { CStr::from_ptr(billiard_strerror(code)) }
            .to_str()
            .unwrap();
        assert_ne!(text, "unknown error", "code {code} has text");
        let name = unsafe { CStr::from_ptr(billiard_errname(code)) }
            .to_str()
            .unwrap();
        assert!(name.starts_with("BILLIARD_") && name != "BILLIARD_E?");
    }
}

#[test]
fn timeouts_and_nonblocking_submit() {
    unsafe {
        let mut cfg = null_mut();
        billiard_config_new(&mut cfg);
        billiard_config_set_workers(cfg, 1);
        billiard_config_set_max_queued(cfg, 1);
        billiard_config_set_handler(cfg, Some(upper), (&SUFFIX as *const u8).cast_mut().cast());
        let mut pool = null_mut();
        assert_eq!(billiard_pool_new(cfg, &mut pool), BILLIARD_OK);
        billiard_config_free(cfg);
        let mut r = null_mut();
        assert_eq!(billiard_pool_wait(pool, 0, &mut r), BILLIARD_ENOTFOUND);
        let mut opts = std::mem::zeroed::<billiard_task_opts>();
        billiard_task_opts_init(&mut opts);
        opts.flags = BILLIARD_SUBMIT_NONBLOCK;
        // Fill the worker and the one queue slot, fast enough that EFULL shows
        // at least once before the worker drains them.
        let mut full = 0;
        for _ in 0..200 {
            match billiard_pool_submit(pool, b"x".as_ptr().cast(), 1, &opts, null_mut()) {
                BILLIARD_OK => {}
                BILLIARD_EFULL => full += 1,
                other => panic!("submit gave {other}"),
            }
        }
        assert!(full > 0, "a queue of 1 never reported full");
        assert!(last_error().contains("queue is full"));
        while billiard_pool_wait(pool, 20_000, &mut r) == BILLIARD_OK {
            assert_eq!(billiard_result_outcome(r), BILLIARD_OUTCOME_OK);
            billiard_result_free(r);
        }
        assert!(r.is_null());
        billiard_pool_free(pool);
    }
}

#[test]
fn free_wakes_a_thread_blocked_in_wait() {
    unsafe {
        let (rc, pool) = new_pool(1, None);
        assert_eq!(rc, BILLIARD_OK);
        let mut r = null_mut();
        let mut id = 0;
        billiard_pool_submit(pool, b"a".as_ptr().cast(), 1, null(), &mut id);
        assert_eq!(billiard_task_wait(pool, id, 20_000, &mut r), BILLIARD_OK);
        let pid = billiard_result_pid(r);
        billiard_result_free(r);
        // The only worker is stopped: the next task can never finish by itself.
        libc::kill(pid, libc::SIGSTOP);
        billiard_pool_submit(pool, b"b".as_ptr().cast(), 1, null(), &mut id);
        let pool_addr = pool as usize;
        let waiter = std::thread::spawn(move || {
            let mut r = null_mut();
            let rc = billiard_task_wait(pool_addr as *mut billiard_pool, id, -1, &mut r);
            let outcome = billiard_result_outcome(r);
            billiard_result_free(r);
            (rc, outcome)
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        billiard_pool_free(pool);
        assert_eq!(
            waiter.join().unwrap(),
            (BILLIARD_OK, BILLIARD_OUTCOME_ABANDONED)
        );
        assert_ne!(
            libc::kill(pid, 0),
            0,
            "the stopped worker was killed and reaped"
        );
    }
}
