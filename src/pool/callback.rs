//! The host's event handler runs on a pool's supervisor thread. A call on
//! that same pool that would wait for the supervisor (terminate, free,
//! join, a wait with a timeout, a submit to a full queue) would wait for
//! itself: it fails instead. Calls on other pools, including pools
//! created and freed inside the handler, are not affected.

use std::cell::Cell;

use crate::error::{Error, Result};

thread_local! {
    /// The pool (its identity, see `Pool::id`) whose handler this thread
    /// runs now; 0 when none.
    static HANDLER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Runs the event handler of pool `pool`, marking the thread so that
/// blocking calls on that pool made from inside it fail instead of
/// deadlocking. A panic in a Rust handler is caught: the supervisor keeps
/// running.
pub(crate) fn in_event_handler(pool: usize, f: impl FnOnce()) {
    let outer = HANDLER_OF.with(|c| c.replace(pool));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    HANDLER_OF.with(|c| c.set(outer));
}

/// Fails `what`, a call on pool `pool` that would block, when made from
/// that pool's own event handler: the supervisor that must wake it is the
/// thread running the handler.
pub(crate) fn refuse_in_event_handler(what: &str, pool: usize) -> Result<()> {
    if HANDLER_OF.with(|c| c.get()) == pool {
        return Err(Error::InvalidArgument(format!(
            "{what} would block, and it was called from the pool's own event handler, which \
             runs on the thread it would wait for"
        )));
    }
    Ok(())
}
