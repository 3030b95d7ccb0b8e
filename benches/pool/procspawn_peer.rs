//! procspawn (a Rust process pool) through the same workloads.

use std::time::{Duration, Instant};

use procspawn::Pool;

use crate::os;

fn echo_fn(v: Vec<u8>) -> Vec<u8> {
    v
}

fn pid_fn(_: ()) -> u32 {
    std::process::id()
}

fn sleep_fn(_: ()) -> u32 {
    std::thread::sleep(Duration::from_secs(3600));
    0
}

fn pool(workers: usize) -> Pool {
    Pool::new(workers).expect("procspawn pool starts")
}

fn echo(pool: &Pool, data: Vec<u8>) -> Vec<u8> {
    pool.spawn(data, echo_fn).join().expect("procspawn echo")
}

pub fn round_trip(n: usize) -> Vec<f64> {
    let pool = pool(1);
    echo(&pool, vec![7; 16]);
    (0..n)
        .map(|_| {
            let t = Instant::now();
            echo(&pool, vec![7; 16]);
            os::micros_since(t)
        })
        .collect()
}

/// Each task in flight holds two IPC channels (four fds), so 200k cannot be
/// in flight at once: at most this many are, the oldest joined first.
pub const RATE_WINDOW: usize = 1000;

pub fn task_rate(workers: usize, n: usize) -> f64 {
    let pool = pool(workers);
    let t = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for _ in 0..n {
        if in_flight.len() == RATE_WINDOW {
            let h: procspawn::JoinHandle<Vec<u8>> = in_flight.pop_front().expect("non-empty");
            assert_eq!(h.join().expect("procspawn result").len(), 16);
        }
        in_flight.push_back(pool.spawn(vec![1u8; 16], echo_fn));
    }
    for h in in_flight {
        assert_eq!(h.join().expect("procspawn result").len(), 16);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

pub fn echo_rate(size: usize, iterations: usize) -> f64 {
    let pool = pool(1);
    echo(&pool, vec![5; size]);
    let t = Instant::now();
    for _ in 0..iterations {
        assert_eq!(echo(&pool, vec![5; size]).len(), size);
    }
    (2 * size * iterations) as f64 / t.elapsed().as_secs_f64()
}

/// Microseconds per worker until each of `workers` has served a task.
pub fn start_per_worker(workers: usize) -> f64 {
    let t = Instant::now();
    let pool = pool(workers);
    let handles: Vec<_> = (0..workers).map(|_| pool.spawn((), pid_fn)).collect();
    for h in handles {
        h.join().expect("procspawn result");
    }
    os::micros_since(t) / workers as f64
}

/// SIGKILL of a worker running a task until its handle reports an error.
/// `None` if the error never comes.
pub fn kill_to_lost(n: usize) -> Option<Vec<f64>> {
    let pool = pool(1);
    let mut samples = Vec::new();
    for _ in 0..n {
        let pid = pool.spawn((), pid_fn).join().ok()? as i32;
        let mut h = pool.spawn((), sleep_fn);
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        os::kill9(pid);
        match h.join_timeout(Duration::from_secs(5)) {
            Err(e) if !e.is_timeout() => samples.push(os::micros_since(t)),
            _ => return None,
        }
    }
    Some(samples)
}

/// SIGKILL of an idle worker until a task submitted then is served.
/// `None` if that task fails instead.
pub fn crash_to_replacement(n: usize) -> Option<Vec<f64>> {
    let pool = pool(1);
    let mut samples = Vec::new();
    for _ in 0..n {
        let pid = pool.spawn((), pid_fn).join().ok()?;
        let t = Instant::now();
        os::kill9(pid as i32);
        let served_by = pool
            .spawn((), pid_fn)
            .join_timeout(Duration::from_secs(5))
            .ok()?;
        samples.push(os::micros_since(t));
        if served_by == pid {
            return None;
        }
    }
    Some(samples)
}

/// Rss and Pss (kB) of an idle worker.
pub fn idle_memory() -> Option<(f64, f64)> {
    let pool = pool(1);
    let pid = pool.spawn((), pid_fn).join().ok()?;
    std::thread::sleep(Duration::from_millis(200));
    os::rss_pss(pid as i32)
}
