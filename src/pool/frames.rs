//! Applying what a worker sent (HELLO, ACK, RESULT, RESULT_SHM, FATAL) to
//! the shared state, for whichever thread read it: the supervisor, or a
//! thread waiting for a task of that worker (`reader.rs`). Frames of a
//! worker that is gone or being stopped no longer count. A frame a worker
//! had no right to send is a protocol violation, returned to the reader,
//! which leaves it to the supervisor to stop the worker.

use parking_lot::MutexGuard;

use super::notice::NoticeKind;
use super::result::Outcome;
use super::shared::Shared;
use super::state::{Phase, Send, State, Worker};
use crate::area::Area;
use crate::progress::Clock;
use crate::protocol::{self, Frame, PROTOCOL_VERSION};
use crate::sys;

/// Decodes complete frames from `buf` and applies them under one lock.
/// Returns the bytes consumed, frames to send, and a protocol violation.
pub(crate) fn apply_frames(
    shared: &Shared,
    slot: usize,
    generation: u32,
    area: &Area,
    buf: &[u8],
) -> (usize, Vec<Send>, Option<String>) {
    if buf.is_empty() {
        return (0, Vec::new(), None);
    }
    let mut st = shared.state.lock();
    let set_applying = |st: &mut State, on: bool| {
        if let Some(w) = st.worker_mut(slot, generation) {
            w.applying = on;
        }
    };
    set_applying(&mut st, true);
    let outcome = apply_locked(&mut st, shared, slot, generation, area, buf);
    set_applying(&mut st, false);
    // Frames the results let into the worker's window go out now, in one
    // write, rather than after another trip through epoll.
    let flush = st
        .worker_mut(slot, generation)
        .is_some_and(|w| !w.outbox.is_empty() && !w.direct_sending);
    drop(st);
    if flush {
        shared.flush_outbox(slot, generation);
    }
    outcome
}

fn apply_locked(
    st: &mut MutexGuard<'_, State>,
    shared: &Shared,
    slot: usize,
    generation: u32,
    area: &Area,
    buf: &[u8],
) -> (usize, Vec<Send>, Option<String>) {
    let mut used = 0;
    let mut sends = Vec::new();
    let ctx = Applying {
        clock: Clock::now(),
        soft_memory: shared.limits.soft_memory,
    };
    while used < buf.len() {
        let (frame, n) = match protocol::decode(&buf[used..], shared.max_frame) {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(e) => return (used, sends, Some(format!("it sent a bad frame: {e}"))),
        };
        match apply(st, slot, generation, area, frame, &ctx) {
            Ok(Some(send)) => sends.push(send),
            Ok(None) => {}
            // The bad frame stays unconsumed: a waiting thread leaves it to
            // the supervisor, which kills the worker (and drops its bytes).
            Err(v) => return (used, sends, Some(v)),
        }
        used += n;
    }
    (used, sends, None)
}

/// What applying a batch of frames needs besides the state: the time they
/// were read, and the pool's soft memory limit (checked after each result).
struct Applying {
    clock: Clock,
    soft_memory: Option<u64>,
}

/// The worker whose frames are being applied, unless it is gone or the pool
/// is stopping it (its frames no longer count).
fn live_worker(st: &mut State, slot: usize, generation: u32) -> Option<&mut Worker> {
    st.worker_mut(slot, generation).filter(|w| w.stop.is_none())
}

/// Applies one frame from a worker to the shared state. Frames of a worker
/// that is gone or being stopped no longer count.
fn apply(
    st: &mut MutexGuard<'_, State>,
    slot: usize,
    generation: u32,
    area: &Area,
    frame: Frame<'_>,
    ctx: &Applying,
) -> Result<Option<Send>, String> {
    let phase = st.phase;
    let Some(w) = live_worker(st, slot, generation) else {
        return Ok(None);
    };
    match frame {
        Frame::Result { id, ok, payload } => {
            apply_result(st, slot, generation, id, ok, payload.to_vec(), ctx)
        }
        Frame::ResultShm {
            id,
            ok,
            offset,
            len,
        } => {
            // Copied without the lock: a large reply takes a while.
            let data = MutexGuard::unlocked(st, || area.take_reply(offset, len))?;
            apply_result(st, slot, generation, id, ok, data, ctx)
        }
        Frame::Hello {
            version,
            pid,
            features,
        } => {
            if w.ready {
                return Err("it sent a second HELLO".into());
            }
            if version != PROTOCOL_VERSION {
                return Err(format!(
                    "it speaks protocol version {version}, the pool speaks {PROTOCOL_VERSION}"
                ));
            }
            if pid as libc::pid_t != w.pid {
                return Err(format!("its HELLO names pid {pid}"));
            }
            w.ready = true;
            w.area_tasks = features & protocol::FEATURE_AREA != 0;
            w.control = features & protocol::FEATURE_CONTROL != 0;
            w.area_trusted |= features & protocol::FEATURE_TASKS_READ_ONLY != 0;
            if !matches!(phase, Phase::Starting | Phase::Running | Phase::Closed) {
                return Ok(None);
            }
            Ok(st.worker_free(slot))
        }
        Frame::Ack { id } => {
            if !w.tasks.contains(&id) || w.acked == Some(id) {
                return Err(format!("it acknowledged task {id}, which it was not given"));
            }
            w.acked = Some(id);
            let pid = w.pid;
            let at = w
                .area
                .progress()
                .started_at_by(id, &ctx.clock)
                .unwrap_or(ctx.clock.instant);
            if let Some(t) = st.tasks.get_mut(&id) {
                t.started = Some(at);
                t.frame = None;
            }
            st.notice(NoticeKind::Started, id, pid, at);
            Ok(None)
        }
        Frame::Fatal { message } => {
            w.last_words = Some(String::from_utf8_lossy(message).into_owned());
            Ok(None)
        }
        Frame::Task { .. } | Frame::TaskShm { .. } => Err("it sent a TASK frame".into()),
    }
}

/// Applies a RESULT (or RESULT_SHM, whose reply was copied out of the
/// area) from a worker: the task finishes, the worker takes the next one.
fn apply_result(
    st: &mut State,
    slot: usize,
    generation: u32,
    id: u64,
    ok: bool,
    data: Vec<u8>,
    ctx: &Applying,
) -> Result<Option<Send>, String> {
    let clock = &ctx.clock;
    let phase = st.phase;
    let Some(w) = live_worker(st, slot, generation) else {
        return Ok(None);
    };
    let Some(at) = w.tasks.iter().position(|&t| t == id) else {
        return Err(format!(
            "it sent a result for task {id}, which it was not running"
        ));
    };
    w.tasks.remove(at);
    if at == 0 {
        w.front_since = clock.ns;
    }
    w.done += 1;
    if w.acked == Some(id) {
        w.acked = None;
    }
    let pid = w.pid;
    let started = w.area.progress().started_at_by(id, clock);
    if let Some(t) = st.tasks.get_mut(&id) {
        t.started = t.started.or(started);
    }
    st.task_region_done(slot, id);
    let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
    st.finish(id, outcome, data, pid, None, clock.instant);
    let over_memory = ctx.soft_memory.and_then(|limit| {
        let w = st.worker_mut(slot, generation)?;
        // A worker that reads its control page reports its private
        // memory after each task; for one that does not, the pool reads it.
        let used = if w.control {
            w.area.control().memory()
        } else {
            sys::private_memory_of(w.pid).unwrap_or(0)
        };
        (used > limit).then(|| {
            format!(
                "its private memory ({used} bytes) passed the soft memory limit ({limit} bytes)"
            )
        })
    });
    if let Some(why) = over_memory {
        st.retire(slot, why);
    }
    if matches!(phase, Phase::Running | Phase::Closed) {
        Ok(st.worker_free(slot))
    } else {
        Ok(None)
    }
}
