//! What happened to a task: its outcome, its data, and who ran it.

use std::time::Duration;

/// How a task ended. Values are fixed; they are the C `BILLIARD_OUTCOME_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Outcome {
    /// The handler succeeded; data is its reply.
    Ok = 0,
    /// The handler reported an error; data is its message.
    Failed = 1,
    /// The worker died while running the task; exit code or signal given.
    WorkerLost = 2,
    /// The task ran past its hard time limit.
    TimeLimit = 3,
    /// The task was cancelled.
    Cancelled = 4,
    /// The pool was terminated or failed before the task finished.
    Abandoned = 5,
    /// The worker died out of memory while running the task: an allocation
    /// failed (the hard memory limit, or the system) and it crashed.
    MemoryLimit = 6,
}

/// The result of one task. Owned by whoever received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    /// The id `submit` returned.
    pub task_id: u64,
    /// The user tag given at submit (0 by default).
    pub tag: u64,
    pub outcome: Outcome,
    /// The reply for `Ok`; a human-readable message for every other outcome.
    pub data: Vec<u8>,
    /// The worker that ran (or last held) the task; 0 if none did.
    pub pid: i32,
    /// Exit code of the worker, when it exited while holding the task.
    pub exit_code: Option<i32>,
    /// Signal that killed the worker, when one did while holding the task.
    pub signal: Option<i32>,
    /// From submit until a worker started the task (or until the end, if none did).
    pub queued: Duration,
    /// From start to finish; zero if it never started.
    pub running: Duration,
}

impl TaskResult {
    /// The data as text (lossy), handy for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}
