//! Limits and supervision through the safe Rust core, with real processes:
//! time limits, the stop ladder, cancel, recycling, memory limits, restart
//! intensity, resize, rolling restart, stats and events.
//!
//! Timing here only bounds behaviour generously (a limit of 200 ms must not
//! take seconds); the benchmark measures how close to the limit it is.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billiard::{Config, Error, Event, Limit, Outcome, Pool, TaskOptions, WorkerState};
use common::{eventually, exists, LONG};

/// Commands: "sleep:ms", "pid", "echo:x", "soft:ms" (poll the soft-limit
/// flag for up to ms), "nap:ms" (one nanosleep; says if it was
/// interrupted), "stubborn:ms" (ignore SIGTERM, then sleep), "family:path"
/// (fork a grandchild that sleeps, write its pid to path, sleep),
/// "hold:MiB" (keep that much touched memory for the worker's life),
/// "grow" (allocate until an allocation fails), "touch:path" (create path),
/// "exit:N".
fn handler(input: &[u8], reply: &mut billiard::Reply) -> Result<(), String> {
    let text = std::str::from_utf8(input).unwrap();
    let (cmd, arg) = text.split_once(':').unwrap_or((text, ""));
    let ms = || Duration::from_millis(arg.parse().unwrap());
    match cmd {
        "sleep" => std::thread::sleep(ms()),
        "pid" => reply.write(std::process::id().to_string().as_bytes()),
        "echo" => reply.write(arg.as_bytes()),
        "soft" => {
            let start = Instant::now();
            while !billiard::worker::soft_limit_reached() && start.elapsed() < ms() {
                std::hint::spin_loop();
            }
            let seen = billiard::worker::soft_limit_reached();
            reply.write(format!("{seen} {}", start.elapsed().as_millis()).as_bytes());
        }
        "nap" => {
            let t = libc::timespec {
                tv_sec: arg.parse::<i64>().unwrap() / 1000,
                tv_nsec: 0,
            };
            let rc = unsafe { libc::nanosleep(&t, std::ptr::null_mut()) };
            let interrupted =
                rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
            let flag = billiard::worker::soft_limit_reached();
            reply.write(format!("interrupted={interrupted} flag={flag}").as_bytes());
        }
        "stubborn" => {
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            std::thread::sleep(ms());
        }
        "family" => {
            let child = unsafe { libc::fork() };
            if child == 0 {
                unsafe {
                    libc::sleep(60);
                    libc::_exit(0);
                }
            }
            std::fs::write(arg, child.to_string()).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        "hold" => {
            let mib: usize = arg.parse().unwrap();
            let block = vec![1u8; mib << 20];
            std::mem::forget(block);
        }
        "grow" => {
            let mut kept: Vec<Vec<u8>> = Vec::new();
            loop {
                kept.push(vec![7u8; 8 << 20]);
            }
        }
        "touch" => std::fs::write(arg, b"").unwrap(),
        "exit" => unsafe { libc::_exit(arg.parse().unwrap()) },
        _ => return Err(format!("unknown command {cmd}")),
    }
    Ok(())
}

fn config(workers: usize) -> Config {
    Config::new().workers(workers).handler(handler)
}

fn run(pool: &Pool, cmd: &str) -> billiard::TaskResult {
    let id = pool
        .submit(cmd.as_bytes(), &TaskOptions::default())
        .unwrap();
    pool.wait_task(id, LONG).unwrap()
}

fn with_limits(soft: Limit, hard: Limit) -> TaskOptions {
    TaskOptions {
        soft_time_limit: soft,
        hard_time_limit: hard,
        ..TaskOptions::default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn tmp(name: &str) -> String {
    format!("/tmp/billiard-limits-{}-{name}", std::process::id())
}

#[test]
fn a_hard_time_limit_stops_the_task_and_a_new_worker_takes_over() {
    let pool = Pool::new(config(1).hard_time_limit(Some(ms(200))).unwrap()).unwrap();
    let first = run(&pool, "pid");
    let started = Instant::now();
    let r = run(&pool, "sleep:20000");
    assert_eq!(r.outcome, Outcome::TimeLimit, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(r.running >= ms(200), "ran {:?}", r.running);
    assert_eq!(r.signal, Some(libc::SIGTERM), "stopped with TERM first");
    assert!(
        r.text().contains("hard time limit of 200 ms"),
        "{}",
        r.text()
    );
    let pid = first.text().parse::<i32>().unwrap();
    assert_eq!(r.pid, pid);
    assert!(eventually(Duration::from_secs(10), || !exists(pid)));
    let next = run(&pool, "pid");
    assert_eq!(next.outcome, Outcome::Ok);
    assert_ne!(next.text(), first.text(), "a new worker serves");
    let stats = pool.stats();
    assert_eq!(stats.counts.outcomes[Outcome::TimeLimit as usize], 1);
    assert_eq!(stats.counts.restarts, 0, "a time limit is not a crash");
}

#[test]
fn the_clock_starts_when_the_worker_starts_the_task_not_when_it_is_sent() {
    // Ten 100 ms tasks sent at once to one worker: the last is sent at
    // once but ends a second later; a 700 ms limit (7 times a task, so a
    // loaded machine's delays do not reach it) must not stop any.
    let cfg = config(1)
        .prefetch(16)
        .unwrap()
        .hard_time_limit(Some(ms(700)))
        .unwrap();
    let pool = Pool::new(cfg).unwrap();
    let ids: Vec<u64> = (0..10)
        .map(|_| pool.submit(b"sleep:100", &TaskOptions::default()).unwrap())
        .collect();
    for id in ids {
        let r = pool.wait_task(id, LONG).unwrap();
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
    }
}

#[test]
fn per_task_limits_override_the_pool_and_are_never_ignored() {
    let pool = Pool::new(config(1).hard_time_limit(Some(ms(100))).unwrap()).unwrap();
    let free = with_limits(Limit::PoolDefault, Limit::Unlimited);
    let id = pool.submit(b"sleep:300", &free).unwrap();
    assert_eq!(pool.wait_task(id, LONG).unwrap().outcome, Outcome::Ok);
    let tight = with_limits(Limit::PoolDefault, Limit::After(ms(50)));
    let id = pool.submit(b"sleep:5000", &tight).unwrap();
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::TimeLimit);
    assert!(r.text().contains("50 ms"), "{}", r.text());

    let never_fires = with_limits(Limit::After(ms(200)), Limit::PoolDefault);
    assert!(matches!(
        pool.submit(b"x", &never_fires),
        Err(Error::InvalidArgument(m)) if m.contains("soft time limit")
    ));
    let zero = with_limits(Limit::PoolDefault, Limit::After(Duration::ZERO));
    assert!(matches!(
        pool.submit(b"x", &zero),
        Err(Error::InvalidArgument(_))
    ));
    let bad = config(1)
        .soft_time_limit(Some(ms(100)))
        .unwrap()
        .hard_time_limit(Some(ms(100)))
        .unwrap();
    assert!(matches!(Pool::new(bad), Err(Error::InvalidArgument(_))));
    assert!(config(1).hard_time_limit(Some(Duration::ZERO)).is_err());
}

#[test]
fn the_soft_limit_sets_the_flag_and_interrupts_a_blocking_call() {
    let cfg = config(1)
        .soft_time_limit(Some(ms(100)))
        .unwrap()
        .hard_time_limit(Some(ms(20_000)))
        .unwrap();
    let pool = Pool::new(cfg).unwrap();
    let r = run(&pool, "soft:10000");
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
    let text = r.text();
    let (seen, after) = text.split_once(' ').unwrap();
    assert_eq!(seen, "true", "{text}");
    let after: u64 = after.parse().unwrap();
    // Timed by the handler, which starts a moment after the worker
    // records the start: 99.9 ms reads as 99.
    assert!((99..5000).contains(&after), "flag after {after} ms");

    let r = run(&pool, "nap:10000");
    assert_eq!(r.text(), "interrupted=true flag=true");
    assert!(r.running < Duration::from_secs(5));

    // The next task starts with the flag off, and without a limit it stays off.
    let none = with_limits(Limit::Unlimited, Limit::PoolDefault);
    let id = pool.submit(b"soft:300", &none).unwrap();
    let r = pool.wait_task(id, LONG).unwrap();
    assert!(r.text().starts_with("false "), "{}", r.text());
    assert_eq!(pool.stats().counts.restarts, 0);
}

#[test]
fn a_worker_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let cfg = config(1)
        .hard_time_limit(Some(ms(100)))
        .unwrap()
        .kill_grace(ms(300));
    let pool = Pool::new(cfg).unwrap();
    let r = run(&pool, "stubborn:20000");
    assert_eq!(r.outcome, Outcome::TimeLimit);
    assert_eq!(r.signal, Some(libc::SIGKILL));
    assert!(r.running >= ms(400), "ran {:?}: limit + grace", r.running);
    assert!(r.running < Duration::from_secs(10));

    let cfg = config(1)
        .hard_time_limit(Some(ms(100)))
        .unwrap()
        .kill_grace(Duration::ZERO);
    let pool = Pool::new(cfg).unwrap();
    let r = run(&pool, "sleep:20000");
    assert_eq!(r.signal, Some(libc::SIGKILL), "no grace: KILL at once");
}

#[test]
fn terminate_sends_term_then_kill_and_reaps_everything() {
    let pool = Pool::new(config(2).kill_grace(ms(300))).unwrap();
    let a = pool
        .submit(b"stubborn:20000", &TaskOptions::default())
        .unwrap();
    let b = pool
        .submit(b"sleep:20000", &TaskOptions::default())
        .unwrap();
    std::thread::sleep(ms(200));
    let pids = pool.worker_pids();
    let started = Instant::now();
    pool.terminate().unwrap();
    let took = started.elapsed();
    assert!(
        took >= ms(250),
        "the stubborn worker had its grace: {took:?}"
    );
    assert!(took < Duration::from_secs(10));
    for pid in pids {
        assert!(!exists(pid), "worker {pid} left behind");
    }
    for id in [a, b] {
        assert_eq!(
            pool.wait_task(id, LONG).unwrap().outcome,
            Outcome::Abandoned
        );
    }
}

#[test]
fn stopping_a_worker_stops_its_process_group() {
    let pool = Pool::new(config(1).hard_time_limit(Some(ms(300))).unwrap()).unwrap();
    let file = tmp("grandchild");
    let r = run(&pool, &format!("family:{file}"));
    assert_eq!(r.outcome, Outcome::TimeLimit);
    let grandchild: i32 = std::fs::read_to_string(&file).unwrap().parse().unwrap();
    let _ = std::fs::remove_file(&file);
    // Reparented to init (or a subreaper) and reaped there once killed.
    assert!(
        eventually(Duration::from_secs(10), || !exists(grandchild)
            || std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .is_ok_and(|s| s.contains(") Z "))),
        "grandchild {grandchild} survived its worker"
    );
}

#[test]
fn cancel_drops_a_queued_task_skips_a_sent_one_and_stops_a_running_one() {
    let cfg = config(1).prefetch(4).unwrap().kill_grace(ms(2000));
    let pool = Pool::new(cfg).unwrap();
    let pid = run(&pool, "pid").text();
    let marker = tmp("skipped");
    let running = pool.submit(b"sleep:600", &TaskOptions::default()).unwrap();
    let sent = pool
        .submit(
            format!("touch:{marker}").as_bytes(),
            &TaskOptions::default(),
        )
        .unwrap();
    std::thread::sleep(ms(100));
    pool.cancel(sent).unwrap();
    let r = pool.wait_task(sent, Some(Duration::ZERO)).unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled, "at once: {}", r.text());
    assert!(matches!(pool.cancel(sent), Err(Error::NotFound(_))));
    let r = pool.wait_task(running, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "the running task was not touched");
    assert_eq!(run(&pool, "pid").text(), pid, "and neither was its worker");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the worker ran a task cancelled before it started"
    );

    // Queued behind a full window (prefetch 1 here): dropped.
    let pool = Pool::new(config(1).prefetch(1).unwrap()).unwrap();
    let first = pool.submit(b"sleep:300", &TaskOptions::default()).unwrap();
    let queued = pool.submit(b"echo:q", &TaskOptions::default()).unwrap();
    pool.cancel(queued).unwrap();
    let r = pool.wait_task(queued, Some(Duration::ZERO)).unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert!(r.text().contains("queue"), "{}", r.text());
    assert_eq!(pool.wait_task(first, LONG).unwrap().outcome, Outcome::Ok);
    assert!(matches!(pool.cancel(987_654), Err(Error::NotFound(_))));
}

#[test]
fn cancelling_a_running_task_stops_its_worker_and_replaces_it() {
    let pool = Pool::new(config(1).kill_grace(ms(2000))).unwrap();
    let pid: i32 = run(&pool, "pid").text().parse().unwrap();
    let id = pool
        .submit(b"sleep:20000", &TaskOptions::default())
        .unwrap();
    std::thread::sleep(ms(200));
    pool.cancel(id).unwrap();
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled, "{}", r.text());
    assert_eq!(r.signal, Some(libc::SIGTERM));
    assert!(r.running > Duration::ZERO);
    assert!(eventually(Duration::from_secs(10), || !exists(pid)));
    let next: i32 = run(&pool, "pid").text().parse().unwrap();
    assert_ne!(next, pid);
    assert_eq!(pool.stats().counts.restarts, 0, "a cancel is not a crash");
    assert_eq!(pool.stats().counts.outcomes[Outcome::Cancelled as usize], 1);
}

/// How many tasks each worker ran, for `n` "pid" tasks in a row.
fn tasks_per_worker(pool: &Pool, n: usize) -> Vec<usize> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..n {
        let r = run(pool, "pid");
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
        let pid = r.text();
        if !counts.contains_key(&pid) {
            order.push(pid.clone());
        }
        *counts.entry(pid).or_default() += 1;
    }
    order.iter().map(|p| counts[p]).collect()
}

#[test]
fn workers_are_replaced_after_max_tasks_without_losing_one() {
    let cfg = config(1).max_tasks_per_worker(Some(3), 0).unwrap();
    let pool = Pool::new(cfg).unwrap();
    assert_eq!(tasks_per_worker(&pool, 9), [3, 3, 3]);
    // Counted as each retired worker is reaped, a moment after its last result.
    assert!(eventually(Duration::from_secs(10), || pool
        .stats()
        .counts
        .recycles
        >= 2));
    assert_eq!(pool.stats().counts.restarts, 0, "recycling is not crashing");

    let cfg = config(1).max_tasks_per_worker(Some(2), 3).unwrap();
    let pool = Pool::new(cfg).unwrap();
    let runs = tasks_per_worker(&pool, 40);
    let (last, full) = runs.split_last().unwrap();
    assert!(full.iter().all(|n| (2..=5).contains(n)), "{runs:?}");
    assert!(*last <= 5);
    assert!(config(1).max_tasks_per_worker(Some(0), 0).is_err());
}

#[test]
fn the_soft_memory_limit_counts_what_the_worker_holds_not_what_it_shares() {
    // The host holds 96 MiB before forking; its workers share those pages
    // and must not be recycled for them.
    let ballast = vec![3u8; 96 << 20];
    let cfg = config(1).soft_memory_limit(Some(48 << 20)).unwrap();
    let pool = Pool::new(cfg).unwrap();
    let first = run(&pool, "pid").text();
    assert_eq!(run(&pool, "pid").text(), first, "a fresh worker stays");
    let r = run(&pool, "hold:64");
    assert_eq!(
        r.outcome,
        Outcome::Ok,
        "the task that crosses it still succeeds"
    );
    assert_eq!(r.pid.to_string(), first);
    let after = run(&pool, "pid").text();
    assert_ne!(after, first, "replaced after the task that crossed it");
    assert_eq!(run(&pool, "pid").text(), after);
    assert!(eventually(Duration::from_secs(10), || pool
        .stats()
        .counts
        .recycles
        == 1));
    assert_eq!(pool.stats().counts.restarts, 0);
    drop(ballast);
}

#[test]
fn a_fork_worker_is_not_recycled_for_pages_its_host_rewrites_after_the_fork() {
    // The host holds 96 MiB when its lone worker forks, then rewrites all
    // of it again and again: each page it writes becomes private to the
    // worker (which keeps the old copy), but the worker allocated nothing.
    let mut ballast = vec![3u8; 96 << 20];
    let cfg = config(1).soft_memory_limit(Some(32 << 20)).unwrap();
    let pool = Pool::new(cfg).unwrap();
    let first = run(&pool, "pid").text();
    for round in 0..6u8 {
        for page in ballast.chunks_mut(4096) {
            page[0] = round;
        }
        assert_eq!(run(&pool, "pid").text(), first, "round {round}: recycled");
    }
    assert_eq!(pool.stats().counts.recycles, 0);
    // What the worker itself holds still counts.
    assert_eq!(run(&pool, "hold:64").pid.to_string(), first);
    assert_ne!(run(&pool, "pid").text(), first, "replaced after it grew");
    drop(ballast);
}

/// This process's address space, in bytes.
fn address_space() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split(' ').next().unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_task_past_the_hard_memory_limit_fails_in_its_worker_with_memory_named() {
    let limit = address_space() + (512 << 20);
    let pool = Pool::new(config(1).hard_memory_limit(Some(limit)).unwrap()).unwrap();
    let r = run(&pool, "grow");
    assert_eq!(r.outcome, Outcome::MemoryLimit, "{}", r.text());
    assert!(r.text().contains("out of memory"), "{}", r.text());
    assert!(r.text().contains(&limit.to_string()), "{}", r.text());
    assert_eq!(r.signal, Some(libc::SIGABRT));
    assert_eq!(run(&pool, "echo:alive").text(), "alive", "replaced");
    assert_eq!(
        pool.stats().counts.outcomes[Outcome::MemoryLimit as usize],
        1
    );
    assert!(config(1).hard_memory_limit(Some(100)).is_err());
}

#[test]
fn too_many_crashes_fail_the_pool_and_abandon_what_waits() {
    let cfg = config(1)
        .prefetch(1)
        .unwrap()
        .restart_intensity(Some(2), Duration::from_secs(60))
        .unwrap();
    let pool = Pool::new(cfg).unwrap();
    let crashes: Vec<u64> = (0..3)
        .map(|_| pool.submit(b"exit:3", &TaskOptions::default()).unwrap())
        .collect();
    let waiting: Vec<u64> = (0..5)
        .map(|_| pool.submit(b"sleep:10", &TaskOptions::default()).unwrap())
        .collect();
    for id in crashes {
        assert_eq!(
            pool.wait_task(id, LONG).unwrap().outcome,
            Outcome::WorkerLost
        );
    }
    for id in waiting {
        assert_eq!(
            pool.wait_task(id, LONG).unwrap().outcome,
            Outcome::Abandoned
        );
    }
    assert!(matches!(
        pool.submit(b"x", &TaskOptions::default()),
        Err(Error::Restarts(m)) if m.contains("3 workers crashed")
    ));
    assert!(
        matches!(pool.wait(LONG), Err(Error::NotFound(_))),
        "waits drain"
    );
    assert!(pool.worker_pids().is_empty());

    // Planned replacements do not count.
    let cfg = config(1)
        .max_tasks_per_worker(Some(1), 0)
        .unwrap()
        .restart_intensity(Some(0), Duration::from_secs(60))
        .unwrap();
    let pool = Pool::new(cfg).unwrap();
    assert_eq!(tasks_per_worker(&pool, 5), [1, 1, 1, 1, 1]);
}

#[test]
fn resize_grows_at_once_and_shrinks_idle_workers_first() {
    let pool = Pool::new(config(2)).unwrap();
    pool.resize(4).unwrap();
    assert!(eventually(Duration::from_secs(20), || pool.stats().idle == 4));
    let busy = pool.submit(b"sleep:500", &TaskOptions::default()).unwrap();
    std::thread::sleep(ms(100));
    let busy_pid = pool
        .workers()
        .into_iter()
        .find(|w| w.state == WorkerState::Busy)
        .expect("a busy worker")
        .pid;
    pool.resize(1).unwrap();
    assert!(eventually(Duration::from_secs(20), || pool.worker_pids() == [busy_pid]));
    assert_eq!(pool.wait_task(busy, LONG).unwrap().outcome, Outcome::Ok);
    assert_eq!(pool.stats().target, 1);
    assert!(matches!(pool.resize(0), Err(Error::InvalidArgument(_))));
}

#[test]
fn a_rolling_restart_replaces_every_worker_after_its_task() {
    let pool = Pool::new(config(2)).unwrap();
    let old = pool.worker_pids();
    let ids: Vec<u64> = (0..2)
        .map(|_| pool.submit(b"sleep:300", &TaskOptions::default()).unwrap())
        .collect();
    std::thread::sleep(ms(50));
    pool.restart().unwrap();
    for id in ids {
        assert_eq!(pool.wait_task(id, LONG).unwrap().outcome, Outcome::Ok);
    }
    assert!(eventually(Duration::from_secs(20), || {
        let now = pool.worker_pids();
        now.len() == 2 && now.iter().all(|p| !old.contains(p))
    }));
    let stats = pool.stats();
    assert_eq!((stats.counts.recycles, stats.counts.restarts), (2, 0));
}

#[test]
fn stats_and_the_worker_listing_say_what_the_pool_does() {
    let pool = Pool::new(config(2).prefetch(1).unwrap()).unwrap();
    let a = pool.submit(b"sleep:400", &TaskOptions::default()).unwrap();
    let _b = pool.submit(b"sleep:400", &TaskOptions::default()).unwrap();
    let _c = pool.submit(b"echo:c", &TaskOptions::default()).unwrap();
    assert!(eventually(Duration::from_secs(10), || pool.stats().running == 2));
    let s = pool.stats();
    assert_eq!((s.workers, s.busy, s.idle, s.queued), (2, 2, 0, 1), "{s:?}");
    let list = pool.workers();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|w| w.state == WorkerState::Busy && w.rss > 0));
    assert!(list.iter().any(|w| w.task == Some(a)));
    pool.close().unwrap();
    pool.join(LONG).unwrap();
    let s = pool.stats();
    assert_eq!(s.counts.outcomes[Outcome::Ok as usize], 3);
    assert_eq!(s.uncollected, 3);
}

#[test]
fn events_report_starts_exits_losses_and_failure_on_the_supervisor_thread() {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let blocked: Arc<Mutex<Vec<String>>> = Arc::default();
    let pool_slot: Arc<Mutex<Option<Arc<Pool>>>> = Arc::default();
    let (log, refusals, slot) = (seen.clone(), blocked.clone(), pool_slot.clone());
    let cfg = config(1)
        .restart_intensity(Some(1), Duration::from_secs(60))
        .unwrap()
        .on_event(move |e| {
            assert_eq!(std::thread::current().name(), Some("billiard-super"));
            log.lock().unwrap().push(e.clone());
            if let Some(pool) = slot.lock().unwrap().as_ref() {
                // Blocking calls from here fail instead of deadlocking.
                for err in [pool.terminate(), pool.join(Some(ms(10)))] {
                    refusals.lock().unwrap().push(format!("{err:?}"));
                }
            }
        });
    let pool = Arc::new(Pool::new(cfg).unwrap());
    *pool_slot.lock().unwrap() = Some(pool.clone());
    let lost = pool.submit(b"exit:4", &TaskOptions::default()).unwrap();
    assert_eq!(
        pool.wait_task(lost, LONG).unwrap().outcome,
        Outcome::WorkerLost
    );
    let again = pool.submit(b"exit:5", &TaskOptions::default()).unwrap();
    pool.wait_task(again, LONG).unwrap();
    assert!(eventually(Duration::from_secs(10), || seen
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::PoolFailed { .. }))));
    let events = seen.lock().unwrap().clone();
    assert!(
        matches!(events[0], Event::WorkerStarted { .. }),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e,
        Event::TaskLost { task_id, .. } if *task_id == lost)));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::WorkerExited {
            exit_code: Some(4),
            planned: false,
            ..
        }
    )));
    let refusals = blocked.lock().unwrap().clone();
    assert!(!refusals.is_empty());
    assert!(
        refusals.iter().all(|m| m.contains("event handler")),
        "{refusals:?}"
    );
    *pool_slot.lock().unwrap() = None;
}

#[test]
fn under_a_soft_memory_limit_no_task_waits_in_a_worker_that_passed_it() {
    // Submitted together: with the default window, the worker that grew
    // past the limit on the first task still ran the ones sent ahead to it.
    // Under a soft memory limit the window is 1, so each "hold" task runs
    // on a fresh worker; a window set explicitly stands.
    for (prefetch, fresh) in [(None, true), (Some(8), false)] {
        let mut cfg = config(1).soft_memory_limit(Some(32 << 20)).unwrap();
        if let Some(n) = prefetch {
            cfg = cfg.prefetch(n).unwrap();
        }
        let pool = Pool::new(cfg).unwrap();
        let ids: Vec<u64> = (0..3)
            .map(|_| pool.submit(b"hold:64", &TaskOptions::default()).unwrap())
            .collect();
        let pids: Vec<i32> = ids
            .iter()
            .map(|&id| pool.wait_task(id, LONG).unwrap().pid)
            .collect();
        let distinct = pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2];
        assert_eq!(distinct, fresh, "prefetch {prefetch:?}: pids {pids:?}");
    }
}
