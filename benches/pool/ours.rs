//! billiard itself, through its Rust API (the C ABI is a thin layer over it).

use std::time::{Duration, Instant};

use billiard::{Config, Outcome, Pool, StartMethod, TaskOptions};

use crate::os;

const FOREVER: Option<Duration> = Some(Duration::from_secs(120));

/// A pool whose handler echoes its input; "sleep" blocks the worker.
fn pool(workers: usize) -> Pool {
    Pool::new(echo_config(workers)).expect("billiard pool starts")
}

fn echo_config(workers: usize) -> Config {
    Config::new().workers(workers).handler(|input, reply| {
        if input == b"sleep" {
            std::thread::sleep(Duration::from_secs(3600));
        }
        reply.write(input);
        Ok(())
    })
}

/// The hard time limit of [`hard_limit_overshoot`], in ms.
const HARD_LIMIT_MS: u64 = 200;

/// Microseconds past a 200 ms hard time limit until the host holds the
/// task's `TIME_LIMIT` result: from submit (the task starts within tens of
/// microseconds, counted against billiard) less the limit.
pub fn hard_limit_overshoot(n: usize) -> Vec<f64> {
    let limit = Duration::from_millis(HARD_LIMIT_MS);
    let cfg = echo_config(1).hard_time_limit(Some(limit)).expect("limit");
    let pool = Pool::new(cfg).expect("billiard pool starts");
    (0..n)
        .map(|_| {
            echo(&pool, b"ready?");
            let t = Instant::now();
            let id = pool
                .submit(b"sleep", &TaskOptions::default())
                .expect("submit");
            let r = pool.wait_task(id, FOREVER).expect("result");
            let us = os::micros_since(t) - limit.as_micros() as f64;
            assert_eq!(r.outcome, Outcome::TimeLimit, "{}", r.text());
            us
        })
        .collect()
}

fn echo(pool: &Pool, data: &[u8]) -> billiard::TaskResult {
    let id = pool.submit(data, &TaskOptions::default()).expect("submit");
    let r = pool.wait_task(id, FOREVER).expect("result");
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
    r
}

pub fn round_trip(n: usize) -> Vec<f64> {
    let pool = pool(1);
    let msg = [7u8; 16];
    echo(&pool, &msg);
    (0..n)
        .map(|_| {
            let t = Instant::now();
            echo(&pool, &msg);
            os::micros_since(t)
        })
        .collect()
}

/// Tasks per second: submit all `n`, then wait for all.
pub fn task_rate(workers: usize, n: usize) -> f64 {
    let pool = pool(workers);
    let msg = [1u8; 16];
    let t = Instant::now();
    for _ in 0..n {
        pool.submit(&msg, &TaskOptions::default()).expect("submit");
    }
    for _ in 0..n {
        let r = pool.wait(FOREVER).expect("result");
        assert_eq!(r.data.len(), 16);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Bytes per second, in plus out, echoing `size` bytes one task at a time.
pub fn echo_rate(size: usize, iterations: usize) -> f64 {
    let pool = pool(1);
    let data = vec![5u8; size];
    echo(&pool, &data);
    let t = Instant::now();
    for _ in 0..iterations {
        let r = echo(&pool, &data);
        assert_eq!(r.data.len(), size);
    }
    (2 * size * iterations) as f64 / t.elapsed().as_secs_f64()
}

/// Microseconds per worker until a pool of `workers` is ready.
pub fn start_per_worker(workers: usize) -> f64 {
    let t = Instant::now();
    let pool = pool(workers);
    let us = os::micros_since(t) / workers as f64;
    drop(pool);
    us
}

/// The echo handler as a worker program: the benchmark executable itself,
/// started by a SPAWN or FORKSERVER pool. Returns the exit code.
pub fn worker_program() -> i32 {
    let echo = std::sync::Arc::new(|input: &[u8], reply: &mut billiard::Reply| {
        reply.write(input);
        Ok(())
    });
    billiard::worker::main(echo, billiard::WorkerHooks::default()).unwrap_or(2)
}

/// A pool of `workers` running this executable as its worker program.
fn program_pool(method: StartMethod, workers: usize) -> Pool {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let config = Config::new()
        .workers(workers)
        .start_method(method)
        .worker_argv(&[exe.as_os_str().as_encoded_bytes()])
        .expect("argv");
    let pool = Pool::new(config).expect("billiard pool starts");
    echo(&pool, b"ready");
    pool
}

/// Microseconds per worker until a SPAWN pool of `workers` is ready.
pub fn spawn_start_per_worker(workers: usize) -> f64 {
    let t = Instant::now();
    let pool = program_pool(StartMethod::Spawn, workers);
    let us = os::micros_since(t) / workers as f64;
    drop(pool);
    us
}

/// Microseconds per worker a FORKSERVER pool takes to start `workers`
/// workers once its server is up: the start of a pool of `workers + 1`
/// less that of a pool of 1 (both start the server once).
pub fn forkserver_start_per_worker(workers: usize) -> f64 {
    let time = |n: usize| {
        let t = Instant::now();
        let pool = program_pool(StartMethod::ForkServer, n);
        let us = os::micros_since(t);
        drop(pool);
        us
    };
    let one = time(1);
    let many = time(workers + 1);
    (many - one).max(0.0) / workers as f64
}

/// Microseconds from SIGKILL of a worker running a task to that task's
/// WORKER_LOST result in the host.
pub fn kill_to_lost(n: usize) -> Vec<f64> {
    let pool = pool(1);
    (0..n)
        .map(|_| {
            echo(&pool, b"ready?");
            let pid = pool.worker_pids()[0];
            let id = pool
                .submit(b"sleep", &TaskOptions::default())
                .expect("submit");
            std::thread::sleep(Duration::from_millis(20)); // let it start the task
            let t = Instant::now();
            os::kill9(pid);
            let r = pool.wait_task(id, FOREVER).expect("result");
            let us = os::micros_since(t);
            assert_eq!(r.outcome, Outcome::WorkerLost, "{}", r.text());
            us
        })
        .collect()
}

/// Microseconds from SIGKILL of an idle worker until a task submitted at
/// that moment has been served by its replacement.
pub fn crash_to_replacement(n: usize) -> Vec<f64> {
    let pool = pool(1);
    (0..n)
        .map(|_| {
            echo(&pool, b"ready?");
            let pid = pool.worker_pids()[0];
            let t = Instant::now();
            os::kill9(pid);
            let r = echo(&pool, b"after the crash");
            let us = os::micros_since(t);
            assert_ne!(r.pid, pid);
            us
        })
        .collect()
}
