//! The worker loop: hello, then read TASK (or TASK_SHM, whose payload is in
//! the shared area), record its start in the progress page, run the
//! handler, send the RESULT, until the pool closes the task socket.

use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{limits, Origin, Reply, EXIT_INIT_FAILED, EXIT_PARENT_GONE, EXIT_PROTOCOL};
use crate::area::{AreaHandle, TaskRegion};
use crate::config::{Handler, WorkerHooks};
use crate::error::panic_text;
use crate::protocol::{self, Frame, FEATURE_AREA, FEATURE_CONTROL, FEATURE_TASKS_READ_ONLY};
use crate::sys;

/// Runs the after-fork hook and then serves the tasks read from `tasks`
/// (the task socket), writing results to `results` (the results pipe),
/// until end of stream; then runs the at-exit hook. Returns the exit code
/// the process should `_exit` with.
pub(crate) fn serve(
    tasks: RawFd,
    results: RawFd,
    area: AreaHandle,
    handler: &Handler,
    hooks: &WorkerHooks,
    max_frame: usize,
    origin: Origin,
) -> i32 {
    if let Some(init) = &hooks.after_fork {
        let outcome = catch_unwind(AssertUnwindSafe(|| init()))
            .unwrap_or_else(|_| Err("the after-fork hook panicked".to_string()));
        if let Err(message) = outcome {
            let _ = sys::write_all(results, &protocol::encode_fatal(message.as_bytes()));
            return EXIT_INIT_FAILED;
        }
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    limits::enter(&area);
    let features = FEATURE_AREA | FEATURE_CONTROL | FEATURE_TASKS_READ_ONLY;
    let hello = protocol::encode_hello(pid, features);
    if sys::write_all(results, &hello).is_err() {
        return EXIT_PARENT_GONE;
    }

    let progress = area.progress();
    let control = area.control();
    let memory = limits::MemoryProbe::new(origin);
    let mut task_region = TaskRegion::new(area);
    let mut inbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut start = 0usize;
    let mut reply = Reply::with_area(area);
    loop {
        // Decode one frame from what we have, or read more.
        let decoded = match protocol::decode(&inbuf[start..], max_frame) {
            Ok(d) => d,
            Err(e) => return fatal(results, &format!("bad frame from pool: {e}")),
        };
        let Some((frame, used)) = decoded else {
            if start > 0 {
                inbuf.drain(..start);
                start = 0;
            }
            protocol::reserve_read_space(&mut inbuf, max_frame);
            match sys::recv_into(tasks, &mut inbuf, 0) {
                // The pool closed the socket: an orderly end.
                Ok(0) if inbuf.is_empty() => return exit_in_order(hooks),
                Ok(0) => return EXIT_PARENT_GONE,
                Ok(_) => continue,
                Err(_) => return EXIT_PARENT_GONE,
            }
        };
        let (id, payload) = match frame {
            Frame::Task { id, payload } => (id, payload),
            Frame::TaskShm { id, offset, len } => {
                match task_region.payload(offset, len) {
                    Some(payload) => (id, payload),
                    None => {
                        let why = format!("TASK_SHM names {len} bytes at offset {offset}, outside the task region");
                        return fatal(results, &why);
                    }
                }
            }
            _ => {
                return fatal(
                    results,
                    "unexpected frame from pool (only TASK and TASK_SHM are valid)",
                )
            }
        };
        // `running`, then the progress page, then the cancel list: see
        // src/control.rs for why that order settles cancels and stops.
        control.begin_task(id);
        progress.mark_started(id);
        reply.reset();
        let frame = if control.claim_cancel(id) {
            reply.finish(id, Err("cancelled before it started".into()), max_frame)
        } else {
            if control.acks_wanted() && sys::write_all(results, &protocol::encode_ack(id)).is_err()
            {
                return EXIT_PARENT_GONE;
            }
            limits::set_current(Some(id));
            let returned = catch_unwind(AssertUnwindSafe(|| handler(payload, &mut reply)))
                .unwrap_or_else(|panic| Err(format!("handler panicked: {}", panic_text(&*panic))));
            limits::set_current(None);
            if control.memory_watched() {
                control.set_memory(memory.read().unwrap_or(0));
            }
            reply.finish(id, returned, max_frame)
        };
        if !control.end_task(id) {
            // The pool is stopping this worker for this task: start nothing
            // more (the stop must not hit the next one), and wait for it.
            park_until_stopped();
        }
        if sys::write_all(results, frame).is_err() {
            return EXIT_PARENT_GONE;
        }
        start += used;
        if start == inbuf.len() {
            inbuf.clear();
            protocol::release_large_buffer(&mut inbuf, 0, used);
            start = 0;
        }
    }
}

/// The worker's orderly end: its at-exit hook, then exit code 0.
fn exit_in_order(hooks: &WorkerHooks) -> i32 {
    if let Some(at_exit) = &hooks.at_exit {
        // A panicking hook still ends the worker in order.
        let _ = catch_unwind(AssertUnwindSafe(|| at_exit()));
    }
    0
}

/// Waits for the pool's stop (SIGTERM, then SIGKILL), whatever handler the
/// program has for SIGTERM.
fn park_until_stopped() -> ! {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

fn fatal(results: RawFd, message: &str) -> i32 {
    let _ = sys::write_all(results, &protocol::encode_fatal(message.as_bytes()));
    EXIT_PROTOCOL
}
