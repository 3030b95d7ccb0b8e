//! The safe Rust core, end to end, with real processes.
//!
//! Tests in this file fork workers from a multithreaded test binary; each
//! test owns its pool and checks for its own workers only, because cargo runs
//! tests in parallel threads of one process.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use billiard::{Config, Error, Outcome, Pool, TaskOptions, WorkerState};
use common::{eventually, exists, kill, LONG};

fn echo_pool(workers: usize) -> Pool {
    Pool::new(Config::new().workers(workers).handler(|input, reply| {
        reply.write(input);
        Ok(())
    }))
    .unwrap()
}

/// A handler driven by its input: "echo:x", "fail:msg", "exit:N", "sleep:ms",
/// "work:ms" (sleep after creating a started marker), "pid", "panic".
fn scripted(input: &[u8], reply: &mut billiard::Reply) -> Result<(), String> {
    let text = std::str::from_utf8(input).unwrap();
    let (cmd, arg) = text.split_once(':').unwrap_or((text, ""));
    match cmd {
        "echo" => reply.write(arg.as_bytes()),
        "fail" => return Err(arg.to_string()),
        "exit" => unsafe { libc::_exit(arg.parse().unwrap()) },
        "sleep" => std::thread::sleep(Duration::from_millis(arg.parse().unwrap())),
        "work" => {
            std::fs::write(started_marker(std::process::id() as i32), b"").unwrap();
            std::thread::sleep(Duration::from_millis(arg.parse().unwrap()))
        }
        "pid" => reply.write(std::process::id().to_string().as_bytes()),
        "panic" => panic!("scripted panic"),
        _ => return Err(format!("unknown command {cmd}")),
    }
    Ok(())
}

/// File a worker creates when it starts a "work" task.
fn started_marker(pid: i32) -> String {
    format!("/tmp/billiard-test-started-{pid}")
}

/// Waits until worker `pid` has started a "work" task.
fn wait_started(pid: i32) {
    let marker = started_marker(pid);
    assert!(eventually(Duration::from_secs(20), || {
        std::path::Path::new(&marker).exists()
    }));
    let _ = std::fs::remove_file(marker);
}

fn scripted_pool(workers: usize) -> Pool {
    Pool::new(Config::new().workers(workers).handler(scripted)).unwrap()
}

fn submit(pool: &Pool, text: &str) -> u64 {
    pool.submit(text.as_bytes(), &TaskOptions::default())
        .unwrap()
}

#[test]
fn echo_many_tasks_every_result_once() {
    let pool = echo_pool(3);
    let mut expected = HashSet::new();
    for i in 0..500u32 {
        let id = pool
            .submit(
                &i.to_le_bytes(),
                &TaskOptions {
                    tag: i as u64 + 1000,
                    ..Default::default()
                },
            )
            .unwrap();
        expected.insert(id);
    }
    let mut seen = HashSet::new();
    while let Ok(r) = pool.wait(LONG) {
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(r.data, ((r.tag - 1000) as u32).to_le_bytes());
        assert!(pool.worker_pids().contains(&r.pid));
        assert!(seen.insert(r.task_id), "task {} delivered twice", r.task_id);
    }
    assert_eq!(seen, expected);
    assert!(matches!(pool.wait(LONG), Err(Error::NotFound(_))));
}

#[test]
fn empty_and_large_payloads() {
    let pool = echo_pool(1);
    let id = pool.submit(b"", &TaskOptions::default()).unwrap();
    assert_eq!(pool.wait_task(id, LONG).unwrap().data, b"");
    let big: Vec<u8> = (0..(3 << 20)).map(|i| (i * 7) as u8).collect();
    let id = pool.submit(&big, &TaskOptions::default()).unwrap();
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    assert!(r.data == big);
}

#[test]
fn handler_error_is_failed_with_message() {
    let pool = scripted_pool(1);
    let id = submit(&pool, "fail:bad input");
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.text(), "bad input");
    let id = submit(&pool, "panic");
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.text().contains("scripted panic"), "{}", r.text());
    // The same worker keeps serving.
    let id = submit(&pool, "echo:after");
    assert_eq!(pool.wait_task(id, LONG).unwrap().data, b"after");
}

#[test]
fn sigkill_mid_task_is_worker_lost_and_pool_keeps_serving() {
    let pool = scripted_pool(1);
    let before = pool.worker_pids();
    let _ = std::fs::remove_file(started_marker(before[0])); // stale, from an old pid
    let id = submit(&pool, "work:30000");
    // Wait until the task is running (acknowledged), then kill its worker.
    wait_started(before[0]);
    kill(before[0], libc::SIGKILL);
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::WorkerLost);
    assert_eq!(r.signal, Some(libc::SIGKILL));
    assert_eq!(r.exit_code, None);
    assert_eq!(r.pid, before[0]);
    assert!(r.text().contains("SIGKILL"), "{}", r.text());
    assert!(!exists(before[0]), "the dead worker was reaped");
    let id = submit(&pool, "pid");
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    assert_ne!(
        r.text(),
        before[0].to_string(),
        "a replacement worker served it"
    );
}

#[test]
fn exit_code_is_reported() {
    let pool = scripted_pool(1);
    let id = submit(&pool, "exit:3");
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::WorkerLost);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.signal, None);
    assert!(r.text().contains("exited with code 3"), "{}", r.text());
}

#[test]
fn task_given_to_a_worker_that_dies_before_ack_is_requeued() {
    let pool = scripted_pool(1);
    let victim = pool.worker_pids()[0];
    // A stopped worker cannot read, so the task sits unacknowledged in its channel.
    kill(victim, libc::SIGSTOP);
    let id = submit(&pool, "pid");
    std::thread::sleep(Duration::from_millis(50));
    kill(victim, libc::SIGKILL);
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
    assert_ne!(r.text(), victim.to_string());
    assert_ne!(r.pid, victim);
}

#[test]
fn initializer_runs_first_and_its_failure_fails_new() {
    let err = Pool::new(
        Config::new()
            .workers(2)
            .handler(scripted)
            .initializer(|| Err("no database".into())),
    )
    .unwrap_err();
    match err {
        Error::Spawn(m) => assert!(m.contains("no database"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A working initializer sets state the handler sees.
    static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let pool = Pool::new(
        Config::new()
            .workers(1)
            .initializer(|| {
                READY.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .handler(|_, reply| {
                let v = READY.load(std::sync::atomic::Ordering::SeqCst);
                reply.write(if v { b"ready" } else { b"cold!" });
                Ok(())
            }),
    )
    .unwrap();
    let id = pool.submit(b"", &TaskOptions::default()).unwrap();
    assert_eq!(pool.wait_task(id, LONG).unwrap().data, b"ready");
    assert!(
        !READY.load(std::sync::atomic::Ordering::SeqCst),
        "initializer ran in the host"
    );
}

#[test]
fn close_then_join_finishes_queued_tasks_and_reaps_workers() {
    let pool = scripted_pool(2);
    let pids = pool.worker_pids();
    let ids: Vec<u64> = (0..6)
        .map(|i| submit(&pool, &format!("echo:{i}")))
        .collect();
    assert!(matches!(pool.join(LONG), Err(Error::InvalidArgument(_))));
    pool.close().unwrap();
    assert!(matches!(
        pool.submit(b"x", &TaskOptions::default()),
        Err(Error::Closed(_))
    ));
    pool.join(LONG).unwrap();
    for pid in pids {
        assert!(!exists(pid), "worker {pid} still exists after join");
    }
    for (i, id) in ids.iter().enumerate() {
        let r = pool.wait_task(*id, Some(Duration::ZERO)).unwrap();
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(r.text(), i.to_string());
    }
}

#[test]
fn terminate_abandons_everything_and_leaves_no_child() {
    let pool = scripted_pool(2);
    let pids = pool.worker_pids();
    let ids: Vec<u64> = (0..5).map(|_| submit(&pool, "sleep:30000")).collect();
    std::thread::sleep(Duration::from_millis(50));
    pool.terminate().unwrap();
    for pid in &pids {
        assert!(!exists(*pid), "worker {pid} left behind");
    }
    let mut outcomes = Vec::new();
    for id in ids {
        let r = pool.wait_task(id, Some(Duration::ZERO)).unwrap();
        outcomes.push(r.outcome);
    }
    assert!(
        outcomes.iter().all(|&o| o == Outcome::Abandoned),
        "{outcomes:?}"
    );
    assert!(matches!(
        pool.submit(b"x", &TaskOptions::default()),
        Err(Error::Closed(_))
    ));
}

#[test]
fn drop_with_tasks_in_flight_leaves_no_child() {
    let pool = scripted_pool(3);
    let pids = pool.worker_pids();
    for _ in 0..10 {
        submit(&pool, "sleep:30000");
    }
    drop(pool);
    for pid in pids {
        assert!(!exists(pid), "worker {pid} left behind");
    }
}

#[test]
fn wait_errors_are_clear() {
    let pool = scripted_pool(1);
    assert!(
        matches!(pool.wait(None), Err(Error::NotFound(_))),
        "nothing pending: no hang"
    );
    assert!(matches!(
        pool.wait_task(12345, None),
        Err(Error::NotFound(_))
    ));
    let id = submit(&pool, "sleep:300");
    assert_eq!(
        pool.wait_task(id, Some(Duration::from_millis(10))),
        Err(Error::TimedOut)
    );
    assert_eq!(pool.wait(Some(Duration::ZERO)), Err(Error::TimedOut));
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    assert!(
        matches!(pool.wait_task(id, LONG), Err(Error::NotFound(_))),
        "collected once only"
    );
}

#[test]
fn bounded_queue_gives_full_when_nonblocking() {
    let pool = Pool::new(Config::new().workers(1).max_queued(2).handler(scripted)).unwrap();
    submit(&pool, "sleep:200"); // running
    submit(&pool, "echo:a"); // queued
    submit(&pool, "echo:b"); // queued
    let nb = TaskOptions {
        nonblocking: true,
        ..Default::default()
    };
    assert!(matches!(pool.submit(b"echo:c", &nb), Err(Error::Full(2))));
    // A blocking submit waits for room instead.
    let id = pool.submit(b"echo:d", &TaskOptions::default()).unwrap();
    assert_eq!(pool.wait_task(id, LONG).unwrap().data, b"d");
}

#[test]
fn oversized_task_is_rejected_at_submit() {
    let pool = Pool::new(
        Config::new()
            .workers(1)
            .max_frame_size(1024)
            .unwrap()
            .handler(scripted),
    )
    .unwrap();
    let err = pool
        .submit(&[0u8; 2000], &TaskOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(pool.submit(&[0u8; 1015], &TaskOptions::default()).is_ok());
}

#[test]
fn event_fd_is_readable_while_results_wait() {
    let pool = echo_pool(1);
    let fd = pool.event_fd();
    let readable = |ms| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    };
    assert!(!readable(0));
    let id = pool.submit(b"x", &TaskOptions::default()).unwrap();
    assert!(readable(20_000));
    assert_eq!(pool.wait(Some(Duration::ZERO)).unwrap().task_id, id);
    assert!(!readable(0), "drained: not readable");
}

#[test]
fn fallback_without_pidfd_still_notices_deaths() {
    let pool = Pool::new(Config::new().workers(1).handler(scripted).without_pidfd()).unwrap();
    let id = submit(&pool, "exit:4");
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::WorkerLost);
    assert_eq!(r.exit_code, Some(4));
    let id = submit(&pool, "echo:ok");
    assert_eq!(pool.wait_task(id, LONG).unwrap().data, b"ok");
    let pids = pool.worker_pids();
    drop(pool);
    assert!(eventually(Duration::from_secs(5), || pids
        .iter()
        .all(|p| !exists(*p))));
}

#[test]
fn every_fd_the_pool_opens_is_cloexec() {
    let before: HashSet<i32> = open_fds();
    let pool = echo_pool(2);
    let id = pool.submit(b"x", &TaskOptions::default()).unwrap();
    pool.wait_task(id, LONG).unwrap();
    let new: Vec<i32> = open_fds().difference(&before).copied().collect();
    assert!(
        new.len() >= 5,
        "expected epoll, eventfds, channels and pidfds, got {new:?}"
    );
    for fd in new {
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        // Another test's fd may have closed meanwhile (flags < 0).
        assert!(
            flags < 0 || flags & libc::FD_CLOEXEC != 0,
            "fd {fd} is not CLOEXEC"
        );
    }
}

fn open_fds() -> HashSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

#[test]
fn start_timeout_fails_new_and_leaves_no_child() {
    // Each worker records its pid, then sleeps far past the start timeout.
    let dir = format!("/tmp/billiard-test-start-timeout-{}", std::process::id());
    std::fs::create_dir_all(&dir).unwrap();
    let worker_dir = dir.clone();
    let err = Pool::new(
        Config::new()
            .workers(2)
            .handler(scripted)
            .initializer(move || {
                std::fs::write(format!("{worker_dir}/{}", std::process::id()), b"").unwrap();
                std::thread::sleep(Duration::from_secs(30));
                Ok(())
            })
            .start_timeout(Some(Duration::from_millis(500))),
    )
    .unwrap_err();
    match err {
        Error::Spawn(m) => assert!(m.contains("start timeout"), "{m}"),
        other => panic!("{other:?}"),
    }
    let pids: Vec<i32> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().parse().unwrap())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(pids.len(), 2, "both workers ran their initializer");
    for pid in pids {
        assert!(!exists(pid), "worker {pid} outlived Pool::new's failure");
    }
}

#[test]
fn replacements_that_cannot_start_fail_the_pool_instead_of_hanging() {
    let marker = format!("/tmp/billiard-test-no-restart-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let path = marker.clone();
    let pool = Pool::new(
        Config::new()
            .workers(1)
            .handler(scripted)
            .initializer(move || {
                if std::path::Path::new(&path).exists() {
                    Err("the plugin directory is gone".into())
                } else {
                    Ok(())
                }
            }),
    )
    .unwrap();
    std::fs::write(&marker, b"").unwrap();
    let lost = submit(&pool, "exit:1");
    let queued = submit(&pool, "echo:never");
    assert_eq!(
        pool.wait_task(lost, LONG).unwrap().outcome,
        Outcome::WorkerLost
    );
    let r = pool.wait_task(queued, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Abandoned);
    assert!(
        r.text().contains("the plugin directory is gone"),
        "{}",
        r.text()
    );
    match pool.submit(b"echo:x", &TaskOptions::default()) {
        Err(Error::Spawn(m)) => assert!(m.contains("the plugin directory is gone"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(pool.worker_pids().is_empty());
    std::fs::remove_file(&marker).unwrap();
}

#[test]
fn death_with_a_full_prefetch_window_loses_only_the_started_task() {
    let pool = Pool::new(
        Config::new()
            .workers(1)
            .prefetch(4)
            .unwrap()
            .handler(scripted),
    )
    .unwrap();
    let victim = pool.worker_pids()[0];
    let _ = std::fs::remove_file(started_marker(victim)); // stale, from an old pid
    let running = submit(&pool, "work:30000");
    // Sent to the same worker behind the running task (its prefetch window).
    let behind: Vec<u64> = (0..3)
        .map(|i| submit(&pool, &format!("echo:{i}")))
        .collect();
    wait_started(victim);
    kill(victim, libc::SIGKILL);
    let r = pool.wait_task(running, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::WorkerLost, "{}", r.text());
    assert_eq!(r.pid, victim);
    for (i, id) in behind.into_iter().enumerate() {
        let r = pool.wait_task(id, LONG).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Ok,
            "never started, so run again: {}",
            r.text()
        );
        assert_eq!(r.data, i.to_string().as_bytes());
        assert_ne!(r.pid, victim);
    }
}

#[test]
fn an_idle_worker_is_preferred_over_a_busy_one_with_room() {
    let pool = Pool::new(
        Config::new()
            .workers(2)
            .prefetch(8)
            .unwrap()
            .handler(scripted),
    )
    .unwrap();
    // A marker left by an earlier process with one of these pids would
    // make an idle worker look busy.
    for p in pool.worker_pids() {
        let _ = std::fs::remove_file(started_marker(p));
    }
    let busy = submit(&pool, "work:30000");
    // Wait until one worker runs it; the other is idle.
    assert!(eventually(Duration::from_secs(20), || {
        pool.worker_pids()
            .iter()
            .any(|&p| std::path::Path::new(&started_marker(p)).exists())
    }));
    let pids = pool.worker_pids();
    let busy_pid = *pids
        .iter()
        .find(|&&p| std::path::Path::new(&started_marker(p)).exists())
        .unwrap();
    let _ = std::fs::remove_file(started_marker(busy_pid));
    let id = submit(&pool, "pid");
    let r = pool.wait_task(id, LONG).unwrap();
    assert_ne!(r.pid, busy_pid, "the idle worker ran it, not the busy one");
    pool.terminate().unwrap();
    assert_eq!(
        pool.wait_task(busy, LONG).unwrap().outcome,
        Outcome::Abandoned
    );
}

#[test]
fn prefetch_must_be_positive_and_bounded() {
    assert!(matches!(
        Config::new().prefetch(0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Config::new().prefetch(billiard::config::MAX_PREFETCH + 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(Config::new().prefetch(1).is_ok());
}

#[test]
fn many_tiny_tasks_through_batched_writes_each_get_one_result() {
    let pool = Pool::new(
        Config::new()
            .workers(2)
            .prefetch(64)
            .unwrap()
            .handler(scripted),
    )
    .unwrap();
    let n = 20_000;
    let ids: HashSet<u64> = (0..n)
        .map(|i| submit(&pool, &format!("echo:{i}")))
        .collect();
    let mut seen = HashSet::new();
    for _ in 0..n {
        let r = pool.wait(LONG).unwrap();
        assert_eq!(r.outcome, Outcome::Ok);
        assert!(ids.contains(&r.task_id));
        assert!(seen.insert(r.task_id), "one result per task");
    }
    assert!(matches!(
        pool.wait(Some(Duration::ZERO)),
        Err(Error::NotFound(_))
    ));
}

/// Payload `i` of a test: its length and bytes depend on `i`, so a result
/// built from pieces of two frames cannot match.
fn patterned(i: usize, max: usize) -> Vec<u8> {
    let len = (i * 7919) % max + 1;
    (0..len).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect()
}

#[test]
fn frames_from_many_threads_to_one_worker_never_interleave() {
    // One worker, a deep window, payloads larger than the socket buffer:
    // direct writes, partial writes and outbox batches all happen at once.
    let pool = std::sync::Arc::new(
        Pool::new(
            Config::new()
                .workers(1)
                .prefetch(8)
                .unwrap()
                .handler(|input, reply| {
                    reply.write(input);
                    Ok(())
                }),
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let ids: Vec<(u64, usize)> = (0..150)
                    .map(|k| {
                        let i = t * 1000 + k;
                        let id = pool.submit(&patterned(i, 600_000), &TaskOptions::default());
                        (id.unwrap(), i)
                    })
                    .collect();
                for (id, i) in ids {
                    let r = pool.wait_task(id, LONG).unwrap();
                    assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
                    assert!(r.data == patterned(i, 600_000), "task {i} came back intact");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn results_under_prefetch_report_when_their_task_started() {
    // The worker starts each next task straight after writing a result,
    // often before the pool has read that result.
    let pool = Pool::new(
        Config::new()
            .workers(1)
            .prefetch(8)
            .unwrap()
            .handler(scripted),
    )
    .unwrap();
    let ids: Vec<u64> = (0..40).map(|_| submit(&pool, "sleep:2")).collect();
    for id in ids {
        let r = pool.wait_task(id, LONG).unwrap();
        assert_eq!(r.outcome, Outcome::Ok);
        assert!(
            r.running >= Duration::from_millis(2),
            "task {id} ran 2 ms, reported {:?}",
            r.running
        );
    }
}

#[test]
fn workers_sigkilled_while_starting_are_crashes_not_failed_starts() {
    // More SIGKILLs of starting workers in a row than the failed-start rule
    // allows (5): they came from outside, so the pool replaces each one.
    let pool = Pool::new(Config::new().workers(1).handler(scripted).initializer(|| {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }))
    .unwrap();
    let mut killed = HashSet::new();
    kill(pool.worker_pids()[0], libc::SIGKILL);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while killed.len() < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "no worker starts any more after {} kills: the pool failed",
            killed.len()
        );
        let starting = pool
            .workers()
            .into_iter()
            .find(|w| w.state == WorkerState::Starting && !killed.contains(&w.pid));
        match starting {
            Some(w) => {
                kill(w.pid, libc::SIGKILL);
                killed.insert(w.pid);
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let r = pool.wait_task(submit(&pool, "echo:alive"), LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.text());
    assert_eq!(r.text(), "alive");
    assert!(pool.stats().counts.restarts >= 9, "each kill was a crash");

    // A worker that fails to start on its own still fails the pool.
    let err = Pool::new(
        Config::new()
            .workers(1)
            .handler(scripted)
            .initializer(|| unsafe { libc::_exit(7) }),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Spawn(_)), "{err:?}");
}
