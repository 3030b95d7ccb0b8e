//! The worker side of the C ABI for worker programs (SPAWN, FORKSERVER).

use std::ffi::{c_int, c_void};

use super::config::{billiard_handler, c_handler};
use super::error::{status, BILLIARD_EPANIC};

/// The whole life of a worker program (SPAWN and FORKSERVER): call it from
/// main() with the task handler and its context. It finds the channel the
/// pool passed (fds named in BILLIARD_* environment variables, which it
/// then removes), asks for SIGKILL if the pool goes away, and runs
/// `handler` for each task until the pool closes the channel. The pool
/// starts the program with every signal at its default action and an empty
/// mask; handlers the program (or its language runtime) installed itself
/// are kept. The worker loop catches SIGUSR1 (the soft time limit) and,
/// where they are still at their default action, SIGSEGV, SIGBUS and
/// SIGABRT (to tell a memory-limit crash), all with SA_ONSTACK.
///
/// Returns the code to exit with: 0 when the pool closed the channel,
/// 120-123 for the ends listed in docs/PROTOCOL.md. Returns a negative
/// BILLIARD_E* code at once (never waits) when the program was not started
/// by a pool (BILLIARD_EINVAL, detail in billiard_last_error()).
///
/// Started as a fork server (FORKSERVER), it serves fork requests instead:
/// whatever the program did before this call (loading data, opening
/// files, the initializer) is done once and every worker inherits it. Its
/// workers run `handler` and never return from this call (they _exit).
/// Call it while the program runs only one thread.
#[no_mangle]
pub unsafe extern "C" fn billiard_worker_main(
    handler: billiard_handler,
    ctx: *mut c_void,
) -> c_int {
    boundary!(BILLIARD_EPANIC, {
        match c_handler(handler, ctx).and_then(crate::worker::main) {
            Ok(code) => code,
            Err(e) => status(Err(e)),
        }
    })
}

/// Inside a worker: true once the soft time limit of the task it runs has
/// passed (the pool also sends SIGUSR1, so a blocking call returns EINTR).
/// A long handler polls it and returns cleanly. False between tasks and
/// outside workers. Async-signal-safe; costs no system call.
#[no_mangle]
pub extern "C" fn billiard_worker_soft_limit_reached() -> bool {
    boundary!(false, crate::worker::soft_limit_reached())
}
