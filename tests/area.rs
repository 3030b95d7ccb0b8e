//! Large payloads and replies travel through each worker's shared area (a
//! memfd both the pool and the worker map), not through the channel; small
//! ones, and large ones while the area is taken, go through the channel.
//! Either way every task gets its own bytes back, exactly once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use billiard::{Config, Outcome, Pool, TaskOptions};
use common::{kill, LONG};

/// The pool's threshold for the area (`AREA_MIN` in `src/area.rs`).
const AREA_MIN: usize = 64 * 1024;

/// Whether `ptr` lies in a mapping of a worker's shared area, by this
/// process's own memory map.
fn in_area(ptr: *const u8) -> bool {
    let p = ptr as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| l.contains("memfd:billiard-area"))
        .any(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let a = usize::from_str_radix(a, 16).unwrap();
            let b = usize::from_str_radix(b, 16).unwrap();
            a <= p && p < b
        })
}

/// Echoes its input, then appends two bytes: whether the input was read
/// from the area, and whether the reply was being written there.
fn where_pool(workers: usize) -> Pool {
    Pool::new(Config::new().workers(workers).handler(|input, reply| {
        let input_in_area = !input.is_empty() && in_area(input.as_ptr());
        reply.write(input);
        let reply_in_area = !input.is_empty() && in_area(reply.data().as_ptr());
        reply.write(&[input_in_area as u8, reply_in_area as u8]);
        Ok(())
    }))
    .unwrap()
}

fn patterned(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (seed.wrapping_mul(131) ^ j ^ (j >> 8)) as u8)
        .collect()
}

fn echo_checked(pool: &Pool, payload: &[u8]) -> (bool, bool) {
    let id = pool.submit(payload, &TaskOptions::default()).unwrap();
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
    let (data, flags) = r.data.split_at(r.data.len() - 2);
    assert!(data == payload, "{} bytes came back changed", payload.len());
    (flags[0] == 1, flags[1] == 1)
}

#[test]
fn large_payloads_and_replies_go_through_the_area_small_ones_do_not() {
    let pool = where_pool(1);
    for (len, through_area) in [
        (1, false),
        (100, false),
        (AREA_MIN - 2, false),
        (AREA_MIN, true),
        ((1 << 20) + 7, true),
        (8 << 20, true),
        (100, false),
        (3 << 20, true),
    ] {
        let got = echo_checked(&pool, &patterned(len, len));
        assert_eq!(got, (through_area, through_area), "{len} bytes");
    }
}

#[test]
fn a_large_task_whose_worker_died_before_starting_it_runs_elsewhere_with_its_payload() {
    let pool = where_pool(1);
    let victim = pool.worker_pids()[0];
    // Stopped, the worker cannot start the task it is given next.
    kill(victim, libc::SIGSTOP);
    let payload = patterned(7, 2 << 20);
    let id = pool.submit(&payload, &TaskOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    kill(victim, libc::SIGKILL);
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
    assert_ne!(r.pid, victim, "the replacement ran it");
    assert!(
        r.data[..payload.len()] == payload[..],
        "the replacement got the payload the dead worker's area held"
    );
}

#[test]
fn large_tasks_from_many_threads_each_get_their_own_bytes_back() {
    // Two workers, four threads: the areas are taken most of the time, so
    // payloads go through areas and channels, replies likewise.
    let pool = Arc::new(where_pool(2));
    let mut via_area = 0;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut via_area = 0;
                for i in 0..25 {
                    let seed = t * 1000 + i;
                    let len = AREA_MIN + (seed * 104_729) % (3 << 20);
                    let (input, _) = echo_checked(&pool, &patterned(seed, len));
                    via_area += input as usize;
                }
                via_area
            })
        })
        .collect();
    for t in threads {
        via_area += t.join().unwrap();
    }
    assert!(via_area > 0, "some payloads went through an area");
}

#[test]
fn large_tasks_submitted_at_once_to_busy_workers_all_come_back_right() {
    let pool = where_pool(2);
    let ids: Vec<(u64, Vec<u8>)> = (0..40)
        .map(|i| {
            let payload = patterned(i, AREA_MIN + i * 40_000);
            let id = pool.submit(&payload, &TaskOptions::default()).unwrap();
            (id, payload)
        })
        .collect();
    for (id, payload) in ids {
        let r = pool.wait_task(id, LONG).unwrap();
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
        assert!(r.data[..payload.len()] == payload[..], "task {id}");
    }
}

#[test]
fn a_worker_that_served_a_large_task_gives_its_memory_back_after_small_ones() {
    let pool = where_pool(1);
    let pid = pool.worker_pids()[0];
    echo_checked(&pool, &patterned(1, 48 << 20));
    let big = shared_kb(pid);
    for _ in 0..3 {
        echo_checked(&pool, b"small");
    }
    let after = shared_kb(pid);
    assert!(
        big > 40 << 10 && after < big / 4,
        "the worker's shared memory went from {big} kB to {after} kB"
    );
}

/// Resident shared memory of a process (RssShmem), in kB.
fn shared_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssShmem:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
