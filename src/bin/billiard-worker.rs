//! `billiard-worker`: the worker program for hosts that keep their handler
//! in a shared object.
//!
//! ```text
//! billiard-worker --plugin lib.so --symbol name [--init symbol]
//! ```
//!
//! Loads the plugin, looks up `name` (a `billiard_handler`: `int name(void
//! *ctx, const uint8_t *in, size_t len, billiard_reply *reply)`, called with
//! `ctx` NULL), runs the optional initializer (`int init(void *ctx)`, NULL
//! context; non-zero fails the start) once, then serves tasks with
//! `billiard_worker_main`. In a FORKSERVER pool the initializer runs once in
//! the server, before any worker is forked.
//!
//! The plugin calls `billiard_reply_write` and `billiard_reply_error`; this
//! program exports them, so the plugin need not link libbilliard.
//!
//! Exit codes: those of `billiard_worker_main`, and 2 for bad usage or a
//! program not started by a pool, 3 when the plugin cannot be loaded, 4 when
//! a symbol is missing, 120 when the initializer fails.

use std::ffi::{c_int, c_void, CStr, CString};
use std::process::ExitCode;

use billiard::ffi::{self, billiard_handler, billiard_initializer};

const USAGE: &str = "usage: billiard-worker --plugin LIB.so --symbol HANDLER [--init INITIALIZER]";
const EXIT_USAGE: u8 = 2;
const EXIT_NO_PLUGIN: u8 = 3;
const EXIT_NO_SYMBOL: u8 = 4;

struct Args {
    plugin: CString,
    symbol: CString,
    init: Option<CString>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut plugin, mut symbol, mut init) = (None, None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--plugin" => &mut plugin,
            "--symbol" => &mut symbol,
            "--init" => &mut init,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        *slot = Some(CString::new(value).map_err(|_| format!("{flag} holds a NUL byte"))?);
    }
    Ok(Args {
        plugin: plugin.ok_or("--plugin is required")?,
        symbol: symbol.ok_or("--symbol is required")?,
        init,
    })
}

/// The last `dlerror()` text.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a thread-local string.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: a NUL-terminated string from dlerror.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Prints why the worker cannot start, tells the pool too, and gives `code`.
fn fail(code: u8, message: String) -> ExitCode {
    eprintln!("billiard-worker: {message}");
    billiard::worker::report_start_failure(&message);
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(EXIT_USAGE, format!("{e}\n{USAGE}")),
    };
    let plugin = args.plugin.to_string_lossy().into_owned();
    // SAFETY: loading a library the user named; its constructors run.
    let lib = unsafe { libc::dlopen(args.plugin.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return fail(
            EXIT_NO_PLUGIN,
            format!("cannot load plugin {plugin}: {}", dl_error()),
        );
    }
    let lookup = |name: &CString| {
        // SAFETY: lib is a live handle; name is NUL-terminated.
        let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
        if p.is_null() {
            Err(format!(
                "plugin {plugin} has no symbol {}: {}",
                name.to_string_lossy(),
                dl_error()
            ))
        } else {
            Ok(p)
        }
    };
    let handler = match lookup(&args.symbol) {
        // SAFETY: the user names a function with the billiard_handler signature.
        Ok(p) => unsafe { std::mem::transmute::<*mut c_void, billiard_handler>(p) },
        Err(e) => return fail(EXIT_NO_SYMBOL, e),
    };
    if let Some(name) = &args.init {
        let init = match lookup(name) {
            // SAFETY: the user names a function with the billiard_initializer signature.
            Ok(p) => unsafe { std::mem::transmute::<*mut c_void, billiard_initializer>(p) },
            Err(e) => return fail(EXIT_NO_SYMBOL, e),
        };
        // SAFETY: the plugin's initializer with a NULL context.
        let rc = init.map_or(0, |f| unsafe { f(std::ptr::null_mut()) });
        if rc != 0 {
            let message = format!("initializer {} returned {rc}", name.to_string_lossy());
            return fail(billiard::worker::EXIT_INIT_FAILED as u8, message);
        }
    }
    // SAFETY: handler is a live function from the loaded plugin.
    let rc: c_int = unsafe { ffi::billiard_worker_main(handler, std::ptr::null_mut()) };
    if rc < 0 {
        let detail = ffi::billiard_last_error();
        let detail = if detail.is_null() {
            String::new()
        } else {
            // SAFETY: as above.
            unsafe { CStr::from_ptr(detail) }
                .to_string_lossy()
                .into_owned()
        };
        return fail(EXIT_USAGE, detail);
    }
    ExitCode::from(rc as u8)
}
