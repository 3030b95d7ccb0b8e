//! Helpers shared by the Rust integration tests: inspecting this process's
//! children, fds and signal dispositions through /proc and libc.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Pids whose parent is this process (zombies included), read from /proc.
pub fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 4 (ppid) follows the ")" that closes the command name.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: i32 = rest.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == me {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` exists at all (a zombie counts).
pub fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// In a handler: forks a child that stays in the worker's process group,
/// ignores SIGTERM and sleeps two minutes, so that only the group's SIGKILL
/// ends it. Returns its pid.
pub fn fork_stubborn_child() -> i32 {
    let child = unsafe { libc::fork() };
    if child == 0 {
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::sleep(120);
            libc::_exit(0);
        }
    }
    child
}

pub fn kill(pid: i32, sig: i32) {
    unsafe { libc::kill(pid, sig) };
}

/// A generous bound for anything that should be near-instant.
pub const LONG: Option<Duration> = Some(Duration::from_secs(20));
