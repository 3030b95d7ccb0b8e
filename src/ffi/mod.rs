//! The C ABI: argument checks, panic catching, code mapping and handle
//! ownership. No pool logic lives here; every call forwards to the safe core.
//!
//! Rules every export follows: a panic never crosses into C (it becomes
//! `BILLIARD_EPANIC`); a NULL handle, a NULL buffer with a non-zero length or
//! a bad value is `BILLIARD_EINVAL` with detail in `billiard_last_error()`;
//! out-pointers are set to NULL/0 on entry and filled only on success.

#![allow(non_camel_case_types)]
// Each export's doc comment (copied into the header) states its pointer
// contract in the C reader's terms; a Rust-style `# Safety` section would
// repeat it.
#![allow(clippy::missing_safety_doc)]

/// Runs an export's body; a panic becomes `$on_panic` with its message saved.
macro_rules! boundary {
    ($on_panic:expr, $body:expr) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(panic) => {
                $crate::ffi::error::record_panic(&*panic);
                $on_panic
            }
        }
    };
}

pub mod config;
pub mod error;
pub mod pool;
pub mod reply;
pub mod result;
pub mod version;
pub mod worker;

pub use config::*;
pub use error::*;
pub use pool::*;
pub use reply::*;
pub use result::*;
pub use version::*;
pub use worker::*;

use crate::error::Error;

/// Runs the body of an export that returns a code: a panic becomes
/// `BILLIARD_EPANIC`, an error its code (detail recorded), success `BILLIARD_OK`.
pub(crate) fn call(body: impl FnOnce() -> Result<(), Error>) -> std::ffi::c_int {
    boundary!(error::BILLIARD_EPANIC, error::status(body()))
}

/// A shared reference from a C pointer, or `EINVAL` naming the argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` for the returned lifetime.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller guarantees p is NULL or valid.
    unsafe { p.as_ref() }.ok_or_else(|| Error::InvalidArgument(format!("{name} is NULL")))
}

/// A mutable reference from a C pointer, or `EINVAL` naming the argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` not aliased for the returned lifetime.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Error> {
    // SAFETY: the caller guarantees p is NULL or valid and unaliased.
    unsafe { p.as_mut() }.ok_or_else(|| Error::InvalidArgument(format!("{name} is NULL")))
}

/// A byte slice from a C pointer and length. `(NULL, 0)` is empty; `(NULL, n)`
/// is `EINVAL`.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes for the returned lifetime.
pub(crate) unsafe fn arg_bytes<'a>(
    p: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Error> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Error::InvalidArgument(format!(
            "{name} is NULL with a length of {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "{name} length {len} is too large"
        )));
    }
    // SAFETY: the caller guarantees p points to len readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A timeout in milliseconds: -1 forever, 0 poll, > 0 that long.
pub(crate) fn arg_timeout(ms: i64) -> Result<Option<std::time::Duration>, Error> {
    match ms {
        -1 => Ok(None),
        ms if ms >= 0 => Ok(Some(std::time::Duration::from_millis(ms as u64))),
        ms => Err(Error::InvalidArgument(format!(
            "timeout {ms} ms: use -1 (forever), 0 (poll) or a positive number"
        ))),
    }
}
