//! Error codes, their text, and the thread-local detail of the last failure.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};

use crate::error::Error;

/// Success.
pub const BILLIARD_OK: c_int = 0;
/// A bad argument, or a call not valid in the object's state.
pub const BILLIARD_EINVAL: c_int = -1;
/// The timeout passed first.
pub const BILLIARD_ETIMEDOUT: c_int = -2;
/// The pool is closed or terminated.
pub const BILLIARD_ECLOSED: c_int = -3;
/// The queue is full (non-blocking submit).
pub const BILLIARD_EFULL: c_int = -4;
/// No such task pending or waiting to be collected.
pub const BILLIARD_ENOTFOUND: c_int = -5;
/// A worker could not be started.
pub const BILLIARD_ESPAWN: c_int = -6;
/// Workers crashed too often; the pool gave up.
pub const BILLIARD_ERESTARTS: c_int = -7;
/// Out of memory.
pub const BILLIARD_ENOMEM: c_int = -8;
/// A system call failed.
pub const BILLIARD_EIO: c_int = -9;
/// A bug in billiard was caught at the boundary; the call did nothing.
pub const BILLIARD_EPANIC: c_int = -10;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// The code for a core error.
pub(crate) fn code_of(e: &Error) -> c_int {
    match e {
        Error::InvalidArgument(_) => BILLIARD_EINVAL,
        Error::TimedOut => BILLIARD_ETIMEDOUT,
        Error::Closed(_) => BILLIARD_ECLOSED,
        Error::Full(_) => BILLIARD_EFULL,
        Error::NotFound(_) => BILLIARD_ENOTFOUND,
        Error::Spawn(_) => BILLIARD_ESPAWN,
        Error::Restarts(_) => BILLIARD_ERESTARTS,
        Error::NoMemory(_) => BILLIARD_ENOMEM,
        Error::Io(_) => BILLIARD_EIO,
    }
}

/// Saves the detail text for this thread.
pub(crate) fn set_last_error(text: String) {
    let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(text));
}

/// Records `e` as this thread's last error and returns its code.
pub(crate) fn fail(e: Error) -> c_int {
    let code = code_of(&e);
    set_last_error(e.to_string());
    code
}

/// `BILLIARD_OK`, or the code of the error (detail recorded).
pub(crate) fn status(r: Result<(), Error>) -> c_int {
    match r {
        Ok(()) => BILLIARD_OK,
        Err(e) => fail(e),
    }
}

/// Records a caught panic as this thread's last error.
pub(crate) fn record_panic(panic: &(dyn std::any::Any + Send)) {
    set_last_error(format!(
        "internal error (please report): {}",
        crate::error::panic_text(panic)
    ));
}

/// Static text describing `code`; never NULL. Unknown codes give
/// "unknown error". Thread-safe.
#[no_mangle]
pub extern "C" fn billiard_strerror(code: c_int) -> *const c_char {
    let text: &'static [u8] = match code {
        BILLIARD_OK => b"success\0",
        BILLIARD_EINVAL => b"invalid argument\0",
        BILLIARD_ETIMEDOUT => b"timed out\0",
        BILLIARD_ECLOSED => b"pool is closed\0",
        BILLIARD_EFULL => b"queue is full\0",
        BILLIARD_ENOTFOUND => b"no such task\0",
        BILLIARD_ESPAWN => b"worker could not be started\0",
        BILLIARD_ERESTARTS => b"too many worker restarts\0",
        BILLIARD_ENOMEM => b"out of memory\0",
        BILLIARD_EIO => b"system call failed\0",
        BILLIARD_EPANIC => b"internal error in billiard\0",
        _ => b"unknown error\0",
    };
    text.as_ptr().cast()
}

/// The symbolic name of `code`, such as "BILLIARD_EINVAL"; never NULL.
/// Unknown codes give "BILLIARD_E?". Thread-safe.
#[no_mangle]
pub extern "C" fn billiard_errname(code: c_int) -> *const c_char {
    let text: &'static [u8] = match code {
        BILLIARD_OK => b"BILLIARD_OK\0",
        BILLIARD_EINVAL => b"BILLIARD_EINVAL\0",
        BILLIARD_ETIMEDOUT => b"BILLIARD_ETIMEDOUT\0",
        BILLIARD_ECLOSED => b"BILLIARD_ECLOSED\0",
        BILLIARD_EFULL => b"BILLIARD_EFULL\0",
        BILLIARD_ENOTFOUND => b"BILLIARD_ENOTFOUND\0",
        BILLIARD_ESPAWN => b"BILLIARD_ESPAWN\0",
        BILLIARD_ERESTARTS => b"BILLIARD_ERESTARTS\0",
        BILLIARD_ENOMEM => b"BILLIARD_ENOMEM\0",
        BILLIARD_EIO => b"BILLIARD_EIO\0",
        BILLIARD_EPANIC => b"BILLIARD_EPANIC\0",
        _ => b"BILLIARD_E?\0",
    };
    text.as_ptr().cast()
}

/// Detail of the last failed call on the calling thread (what failed and
/// why), or NULL if none failed yet. Owned by the library: valid until the
/// next failing call on this thread. Successful calls do not clear it, so
/// test the return code, never this, to detect failure.
#[no_mangle]
pub extern "C" fn billiard_last_error() -> *const c_char {
    boundary!(std::ptr::null(), {
        LAST_ERROR.with(|slot| {
            slot.borrow()
                .as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr())
        })
    })
}
