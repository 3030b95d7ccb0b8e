//! A task and why a worker is stopped: plain data, shared by the state
//! (which holds them) and the fate rules (`fate.rs`, which decide on them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::result::Outcome;

/// A task from submit until its result is handed out.
pub(crate) struct Task {
    pub tag: u64,
    /// The encoded TASK (or TASK_SHM) frame; dropped once a worker
    /// acknowledged it.
    pub frame: Option<Arc<Vec<u8>>>,
    /// The payload's length when it sits in its worker's task region (the
    /// frame is a TASK_SHM), rather than in the frame.
    pub in_area: Option<usize>,
    pub submitted: Instant,
    pub started: Option<Instant>,
    /// Its `Started` notice was queued.
    pub noticed: bool,
    /// A thread waits for this task by id.
    pub waiter: Option<u64>,
    /// Its time limits (the pool's, or its own).
    pub limits: TimeLimits,
    /// The worker (slot, generation) it was handed to, while it is not in
    /// the queue.
    pub holder: Option<(usize, u32)>,
}

/// A task's soft and hard time limits, from its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimeLimits {
    pub soft: Option<Duration>,
    pub hard: Option<Duration>,
}

impl Task {
    /// A task just submitted.
    pub(crate) fn new(
        frame: Arc<Vec<u8>>,
        in_area: Option<usize>,
        tag: u64,
        limits: TimeLimits,
    ) -> Task {
        Task {
            tag,
            frame: Some(frame),
            in_area,
            submitted: Instant::now(),
            started: None,
            noticed: false,
            waiter: None,
            limits,
            holder: None,
        }
    }
}

/// Why the pool stops a worker (kills it, rather than letting it finish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// It broke the protocol or lost its channel: counts as a crash.
    Broken(String),
    /// Task `task` ran past its hard time limit.
    TimeLimit { task: u64, limit: Duration },
    /// Task `task` was cancelled while it ran; `signal`: the first signal
    /// the host chose (`None`: SIGTERM, or SIGKILL without a grace).
    Cancel { task: u64, signal: Option<i32> },
}

impl Stop {
    /// Why, for messages ("the pool stopped it because ...").
    pub(crate) fn reason(&self) -> String {
        match self {
            Stop::Broken(why) => why.clone(),
            Stop::TimeLimit { task, limit } => format!(
                "task {task} ran past its hard time limit of {}",
                describe_duration(*limit)
            ),
            Stop::Cancel {
                task,
                signal: Some(sig),
            } => format!(
                "task {task} was cancelled while it ran ({} first)",
                crate::sys::signal_name(*sig)
            ),
            Stop::Cancel { task, .. } => format!("task {task} was cancelled while it ran"),
        }
    }

    /// Whether the pool meant it (not a crash).
    pub(crate) fn planned(&self) -> bool {
        !matches!(self, Stop::Broken(_))
    }

    /// The outcome it gives `task`, if it is the task it is about.
    pub(crate) fn outcome_for(&self, id: u64) -> Option<Outcome> {
        match *self {
            Stop::TimeLimit { task, .. } if task == id => Some(Outcome::TimeLimit),
            Stop::Cancel { task, .. } if task == id => Some(Outcome::Cancelled),
            _ => None,
        }
    }

    /// The first signal of this stop, given the pool's kill grace.
    pub(crate) fn first_signal(&self, grace: Duration) -> i32 {
        match *self {
            Stop::Cancel {
                signal: Some(sig), ..
            } => sig,
            _ if grace.is_zero() => libc::SIGKILL,
            _ => libc::SIGTERM,
        }
    }
}

/// "250 ms", "1.5 s".
pub(crate) fn describe_duration(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
