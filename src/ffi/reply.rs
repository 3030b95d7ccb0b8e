//! Worker side: what a handler uses to answer.

use std::ffi::{c_char, c_int, c_void, CStr};

use super::{arg_bytes, arg_mut, call};
use crate::error::Error;
use crate::worker::Reply;

/// A handler's reply being built (opaque). Valid only during the handler
/// call that received it, in the worker process.
pub struct billiard_reply {
    _private: [u8; 0],
}

fn reply<'a>(p: *mut billiard_reply) -> Result<&'a mut Reply, Error> {
    // SAFETY: a billiard_reply pointer is a Reply handed to the handler.
    unsafe { arg_mut(p.cast::<Reply>(), "reply") }
}

/// Appends `len` bytes to the reply (copied). (NULL, 0) appends nothing.
#[no_mangle]
pub unsafe extern "C" fn billiard_reply_write(
    r: *mut billiard_reply,
    data: *const c_void,
    len: usize,
) -> c_int {
    call(|| {
        let r = reply(r)?;
        let bytes = unsafe { arg_bytes(data.cast(), len, "data") }?;
        r.write(bytes);
        Ok(())
    })
}

/// Fails the task with `message` (a NUL-terminated string, copied); what was
/// written so far is dropped. The task ends FAILED whatever the handler returns.
#[no_mangle]
pub unsafe extern "C" fn billiard_reply_error(
    r: *mut billiard_reply,
    message: *const c_char,
) -> c_int {
    call(|| {
        let r = reply(r)?;
        if message.is_null() {
            return Err(Error::InvalidArgument("message is NULL".into()));
        }
        // SAFETY: the caller passes a NUL-terminated string.
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        r.error(text);
        Ok(())
    })
}
