//! Notices: what a host may learn about a task before its result (that it
//! started, that its soft time limit passed), and about its workers (one
//! started, one exited), kept in order until read
//! ([`crate::Pool::notices`]); and a task's state on demand
//! ([`crate::Pool::task_status`]).

use std::time::{Duration, Instant, SystemTime};

/// What a notice says. Values are fixed; they are the C `BILLIARD_NOTICE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum NoticeKind {
    /// A worker started the task.
    Started = 1,
    /// The task's soft time limit passed (its worker got SIGUSR1).
    SoftLimit = 2,
    /// A worker process started (`pid`; no task: `task_id` and `tag` 0).
    WorkerStarted = 4,
    /// A worker process exited and was reaped (`pid`; no task).
    WorkerExited = 8,
}

/// Something that happened to a task before its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub task_id: u64,
    /// The tag given at submit.
    pub tag: u64,
    /// The worker running the task (or, for a worker notice, the worker).
    pub pid: i32,
    /// When it happened (wall clock).
    pub at: SystemTime,
    /// `Started`: from submit to the start. `SoftLimit`: from the start to
    /// the notice.
    pub elapsed: Duration,
}

/// Where a task is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting in the queue for a worker.
    Queued,
    /// Sent to a worker (`pid`) that has not started it.
    Sent,
    /// Running on a worker (`pid`) since `started`.
    Running,
    /// Finished; its result waits to be collected.
    Done,
}

/// A task's state now ([`crate::Pool::task_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskStatus {
    pub state: TaskState,
    /// The worker holding or running it (or that ran it); 0 if none.
    pub pid: i32,
    pub tag: u64,
    /// When it started (wall clock), once it did.
    pub started: Option<SystemTime>,
}

/// `at` on the wall clock.
pub(crate) fn wall_time(at: Instant) -> SystemTime {
    let now = Instant::now();
    let wall = SystemTime::now();
    match now.checked_duration_since(at) {
        Some(ago) => wall - ago,
        None => wall + (at - now),
    }
}
