//! billiard: a supervised process pool with a C ABI.
//!
//! A host creates a [`Pool`] of worker processes, submits tasks as byte
//! buffers and gets one [`TaskResult`] back for every task, whatever happens
//! to the worker that ran it. The same core is exported to C in [`ffi`]
//! (`include/billiard.h`).
//!
//! ```no_run
//! use billiard::{Config, Pool, TaskOptions};
//! let pool = Pool::new(Config::new().workers(2).handler(|input, reply| {
//!     reply.write(&input.to_ascii_uppercase());
//!     Ok(())
//! }))?;
//! let id = pool.submit(b"hello", &TaskOptions::default())?;
//! let result = pool.wait_task(id, None)?;
//! assert_eq!(result.data, b"HELLO");
//! # Ok::<(), billiard::Error>(())
//! ```

/// cbindgen:ignore
mod adopted;
/// cbindgen:ignore
mod area;
/// cbindgen:ignore
pub mod config;
/// cbindgen:ignore
mod control;
/// cbindgen:ignore
pub mod error;
pub mod ffi;
/// cbindgen:ignore
pub mod pool;
/// cbindgen:ignore
mod progress;
/// cbindgen:ignore
pub mod protocol;
/// cbindgen:ignore
mod spawn;
/// cbindgen:ignore
mod sys;
/// cbindgen:ignore
mod watch;
/// cbindgen:ignore
pub mod worker;

pub use config::{Config, Event, NoticeKinds, StartMethod, WorkerHooks};
pub use error::{Error, Result};
pub use pool::{
    Limit, Notice, NoticeKind, Outcome, Pool, Stats, TaskOptions, TaskResult, TaskState,
    TaskStatus, WorkerInfo, WorkerState,
};
pub use worker::Reply;
