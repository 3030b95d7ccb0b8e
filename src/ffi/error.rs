//! Error codes, their text, and the thread-local detail of the last failure.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};

use crate::error::Error;

/// The table of error codes: each code once, with its name, its text
/// (`billiard_strerror`), its doc line (the header's comment) and the core
/// error it stands for (`code_of`). Everything else is produced from it,
/// as libuv's `UV_ERRNO_MAP` does: the constants, `billiard_strerror`,
/// `billiard_errname`, `code_of`, and the header's `#define`s
/// ([`header_defines`], since cbindgen does not expand macros). A core
/// error without a code does not compile.
macro_rules! error_table {
    ($( $name:ident = $code:literal, $text:literal, $doc:literal $(, $variant:ident)?; )+) => {
        $(
            #[doc = $doc]
            pub const $name: c_int = $code;
        )+

        /// Every code: value, name, text, doc line.
        pub(crate) static ERRORS: &[ErrorCode] = &[
            $(ErrorCode {
                code: $code,
                name: concat!(stringify!($name), "\0"),
                text: concat!($text, "\0"),
                doc: $doc,
            },)+
        ];

        /// The code for a core error.
        pub(crate) fn code_of(e: &Error) -> c_int {
            match e {
                $($(Error::$variant { .. } => $code,)?)+
            }
        }
    };
}

/// One row of the error table.
pub(crate) struct ErrorCode {
    pub code: c_int,
    /// NUL-terminated.
    pub name: &'static str,
    /// NUL-terminated.
    pub text: &'static str,
    pub doc: &'static str,
}

error_table! {
    BILLIARD_OK = 0, "success", "Success.";
    BILLIARD_EINVAL = -1, "invalid argument",
        "A bad argument, or a call not valid in the object's state.", InvalidArgument;
    BILLIARD_ETIMEDOUT = -2, "timed out", "The timeout passed first.", TimedOut;
    BILLIARD_ECLOSED = -3, "pool is closed", "The pool is closed or terminated.", Closed;
    BILLIARD_EFULL = -4, "queue is full", "The queue is full (non-blocking submit).", Full;
    BILLIARD_ENOTFOUND = -5, "no such task",
        "No such task pending or waiting to be collected.", NotFound;
    BILLIARD_ESPAWN = -6, "worker could not be started", "A worker could not be started.", Spawn;
    BILLIARD_ERESTARTS = -7, "too many worker restarts",
        "Workers crashed too often; the pool gave up.", Restarts;
    BILLIARD_ENOMEM = -8, "out of memory", "Out of memory.", NoMemory;
    BILLIARD_EIO = -9, "system call failed", "A system call failed.", Io;
    BILLIARD_EPANIC = -10, "internal error in billiard",
        "A bug in billiard was caught at the boundary; the call did nothing.";
}

/// The row of `code`, if it is one.
fn row(code: c_int) -> Option<&'static ErrorCode> {
    ERRORS.iter().find(|e| e.code == code)
}

/// Every code with its name (without the NUL), for tests and bindings.
pub fn error_codes() -> impl Iterator<Item = (c_int, &'static str)> {
    ERRORS
        .iter()
        .map(|e| (e.code, e.name.trim_end_matches('\0')))
}

/// The header's `#define`s for the codes, rendered from the table when the
/// header is generated (`tests/header.rs`).
pub fn header_defines() -> String {
    let mut out = String::new();
    for e in ERRORS {
        out.push_str(&format!(
            "\n/**\n * {}\n */\n#define {} {}\n",
            e.doc,
            e.name.trim_end_matches('\0'),
            e.code
        ));
    }
    out
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
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
    row(code)
        .map_or("unknown error\0", |e| e.text)
        .as_ptr()
        .cast()
}

/// The symbolic name of `code`, such as "BILLIARD_EINVAL"; never NULL.
/// Unknown codes give "BILLIARD_E?". Thread-safe.
#[no_mangle]
pub extern "C" fn billiard_errname(code: c_int) -> *const c_char {
    row(code)
        .map_or("BILLIARD_E?\0", |e| e.name)
        .as_ptr()
        .cast()
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
