//! What the pool tells the host about a task before its result: notices
//! queued as tasks start and pass their soft limit, and a task's state on
//! demand. The types are in `notice.rs`.

use std::time::{Duration, Instant};

use super::notice::{wall_time, Notice, NoticeKind, TaskState, TaskStatus};
use super::state::State;
use super::task::Task;
use crate::error::{Error, Result};

impl State {
    /// Queues a notice of `kind` for task `task_id` (if the host asked for
    /// that kind): `Started` once per task, at `at`; `SoftLimit` now.
    pub(crate) fn notice(&mut self, kind: NoticeKind, task_id: u64, pid: i32, at: Instant) {
        if !self.wants(kind) {
            return;
        }
        let Some(t) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let elapsed = match kind {
            NoticeKind::Started if t.noticed => return,
            NoticeKind::Started => {
                t.noticed = true;
                at.saturating_duration_since(t.submitted)
            }
            NoticeKind::SoftLimit => t.started.map_or(Duration::ZERO, |s| at - s),
            NoticeKind::WorkerStarted | NoticeKind::WorkerExited => return, // worker_notice
        };
        let tag = t.tag;
        self.push_notice(Notice {
            kind,
            task_id,
            tag,
            pid,
            at: wall_time(at),
            elapsed,
        });
    }

    /// Queues a worker notice (`WorkerStarted` or `WorkerExited`, if the
    /// host asked for that kind) for worker `pid`, now.
    pub(crate) fn worker_notice(&mut self, kind: NoticeKind, pid: i32) {
        if !self.wants(kind) {
            return;
        }
        self.push_notice(Notice {
            kind,
            task_id: 0,
            tag: 0,
            pid,
            at: std::time::SystemTime::now(),
            elapsed: Duration::ZERO,
        });
    }

    /// Whether the host asked for notices of `kind`.
    fn wants(&self, kind: NoticeKind) -> bool {
        let kinds = &self.notice_kinds;
        match kind {
            NoticeKind::Started => kinds.started,
            NoticeKind::SoftLimit => kinds.soft_limit,
            NoticeKind::WorkerStarted => kinds.worker_started,
            NoticeKind::WorkerExited => kinds.worker_exited,
        }
    }

    /// Queues `notice`; the pool fd then reads as readable.
    fn push_notice(&mut self, notice: Notice) {
        self.notices.push_back(notice);
        self.sync_results_fd();
    }

    /// Up to `max` notices, oldest first.
    pub(crate) fn take_notices(&mut self, max: usize) -> Vec<Notice> {
        let n = max.min(self.notices.len());
        let taken: Vec<Notice> = self.notices.drain(..n).collect();
        if !taken.is_empty() {
            self.sync_results_fd();
        }
        taken
    }

    /// When task `t` started on its holder, as far as the pool knows now
    /// (an ACK, or the holder's progress page), and the holder's pid.
    pub(crate) fn start_of(&self, t: &Task, id: u64) -> (Option<Instant>, i32) {
        let Some((slot, generation)) = t.holder else {
            return (t.started, 0);
        };
        match self.workers.get(slot).and_then(|w| w.as_ref()) {
            Some(w) if w.generation == generation => (
                t.started.or_else(|| w.area.progress().started_at(id)),
                w.pid,
            ),
            _ => (t.started, 0),
        }
    }

    /// Where task `id` is now (see [`crate::Pool::task_status`]).
    pub(crate) fn task_status(&self, id: u64) -> Result<TaskStatus> {
        if let Some(t) = self.tasks.get(&id) {
            let (started, pid) = self.start_of(t, id);
            let state = match (t.holder, started) {
                (None, _) => TaskState::Queued,
                (Some(_), None) => TaskState::Sent,
                (Some(_), Some(_)) => TaskState::Running,
            };
            return Ok(TaskStatus {
                state,
                pid,
                tag: t.tag,
                started: started.map(wall_time),
            });
        }
        if let Some(r) = self.done_result(id) {
            // Its result says how long it ran; the start time is not kept.
            return Ok(TaskStatus {
                state: TaskState::Done,
                pid: r.pid,
                tag: r.tag,
                started: None,
            });
        }
        Err(Error::NotFound(format!(
            "task {id} is not pending and its result is not waiting to be collected"
        )))
    }
}
