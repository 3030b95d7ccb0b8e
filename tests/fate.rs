//! Every task one correct outcome, nothing left behind: the edges where a
//! stop, a death or a cancel meets a task's end (see src/pool/fate.rs).
//! Each test here failed before the rule it checks was in place.
//!
//! Timing only bounds behaviour generously: these pass with every CPU busy.

mod common;

use std::time::{Duration, Instant};

use billiard::{Config, Error, Limit, Outcome, Pool, StartMethod, TaskOptions};
use common::{eventually, exists, LONG};

/// Commands: "sleep:ms", "echo:x", "exit:N", "orphan:path" (fork a child
/// that ignores SIGTERM and sleeps, write its pid to path, sleep),
/// "holder:path" (fork a child that keeps the worker's fds and sleeps,
/// write its pid to path, then die of SIGKILL).
fn handler(input: &[u8], reply: &mut billiard::Reply) -> Result<(), String> {
    let text = std::str::from_utf8(input).unwrap();
    let (cmd, arg) = text.split_once(':').unwrap_or((text, ""));
    match cmd {
        "sleep" => std::thread::sleep(Duration::from_millis(arg.parse().unwrap())),
        "echo" => reply.write(arg.as_bytes()),
        "exit" => unsafe { libc::_exit(arg.parse().unwrap()) },
        "orphan" | "holder" => {
            let child = common::fork_stubborn_child();
            std::fs::write(arg, child.to_string()).unwrap();
            if cmd == "holder" {
                unsafe { libc::raise(libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_secs(120));
        }
        _ => return Err(format!("unknown command {cmd}")),
    }
    Ok(())
}

fn config(workers: usize) -> Config {
    Config::new().workers(workers).handler(handler)
}

fn submit(pool: &Pool, cmd: &str) -> u64 {
    pool.submit(cmd.as_bytes(), &TaskOptions::default())
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn tmp(name: &str) -> String {
    format!("/tmp/billiard-fate-{}-{name}", std::process::id())
}

/// The pid a handler wrote to `path`, once it is there.
fn pid_in(path: &str) -> i32 {
    assert!(
        eventually(Duration::from_secs(20), || std::fs::read_to_string(path)
            .is_ok_and(|s| !s.is_empty())),
        "no pid in {path}"
    );
    let pid = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let _ = std::fs::remove_file(path);
    pid
}

/// Whether `pid` is gone or a zombie (its killing is done; reaping it is
/// its new parent's business).
fn dead(pid: i32) -> bool {
    !exists(pid)
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn a_cancel_racing_the_task_end_gives_one_fitting_outcome_and_never_hits_the_next_task() {
    let pool = Pool::new(config(1).kill_grace(ms(100))).unwrap();
    let (mut cancelled, mut finished) = (0, 0);
    for round in 0..150u64 {
        let r = 1 + round % 12;
        let a = submit(&pool, &format!("sleep:{r}"));
        let b = submit(&pool, "echo:b");
        std::thread::sleep(Duration::from_micros(r * 1000 - 500 + (round % 7) * 150));
        let said = pool.cancel(a);
        let ra = pool.wait_task(a, LONG).unwrap();
        let rb = pool.wait_task(b, LONG).unwrap();
        match said {
            Ok(()) => {
                cancelled += 1;
                assert_eq!(
                    ra.outcome,
                    Outcome::Cancelled,
                    "round {round}: cancel said OK, task ended {:?}: {}",
                    ra.outcome,
                    ra.text()
                );
            }
            Err(Error::NotFound(_)) => {
                finished += 1;
                assert_eq!(ra.outcome, Outcome::Ok, "round {round}: {}", ra.text());
            }
            Err(e) => panic!("round {round}: cancel failed: {e}"),
        }
        assert_eq!(
            (rb.outcome, rb.text().as_str()),
            (Outcome::Ok, "b"),
            "round {round}: a stop aimed at task {a} hit task {b}"
        );
    }
    assert!(
        cancelled > 0,
        "no cancel landed ({finished} finished first)"
    );
}

#[test]
fn a_cancel_of_a_finished_task_whose_result_is_in_is_not_found() {
    let pool = Pool::new(config(1)).unwrap();
    let a = submit(&pool, "echo:a");
    let r = pool.wait_task(a, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    assert!(matches!(pool.cancel(a), Err(Error::NotFound(_))));
}

/// A handler's child that ignores SIGTERM is killed with the rest of the
/// group when its worker is stopped, though the worker itself died at the
/// SIGTERM: by a hard time limit, a cancel, or the pool's end.
#[test]
fn every_stop_kills_the_whole_process_group_even_after_the_worker_died() {
    for how in ["time limit", "cancel", "free"] {
        let cfg = config(1)
            .kill_grace(ms(300))
            .hard_time_limit(Some(ms(500)))
            .unwrap();
        let pool = Pool::new(cfg).unwrap();
        let file = tmp(&format!("orphan-{}", how.replace(' ', "-")));
        let id = pool
            .submit(
                format!("orphan:{file}").as_bytes(),
                &TaskOptions {
                    hard_time_limit: if how == "time limit" {
                        Limit::PoolDefault
                    } else {
                        Limit::Unlimited
                    },
                    ..TaskOptions::default()
                },
            )
            .unwrap();
        let orphan = pid_in(&file);
        match how {
            "time limit" => {
                let r = pool.wait_task(id, LONG).unwrap();
                assert_eq!(r.outcome, Outcome::TimeLimit, "{}", r.text());
                assert_eq!(r.signal, Some(libc::SIGTERM), "the worker died at once");
            }
            "cancel" => {
                pool.cancel(id).unwrap();
                let r = pool.wait_task(id, LONG).unwrap();
                assert_eq!(r.outcome, Outcome::Cancelled, "{}", r.text());
            }
            _ => {
                drop(pool);
                assert!(dead(orphan), "{how}: {orphan} outlived billiard_pool_free");
                continue;
            }
        }
        assert!(
            eventually(Duration::from_secs(20), || dead(orphan)),
            "{how}: the worker's child {orphan}, which ignores SIGTERM, was never killed"
        );
        drop(pool);
    }
}

#[test]
fn a_thread_reading_its_workers_results_sees_the_worker_die_while_a_child_holds_the_pipe() {
    let pool = Pool::new(config(1)).unwrap();
    let file = tmp("holder");
    let started = Instant::now();
    let id = submit(&pool, &format!("holder:{file}"));
    let r = pool.wait_task(id, LONG).unwrap();
    let took = started.elapsed();
    assert_eq!(r.outcome, Outcome::WorkerLost, "{}", r.text());
    assert_eq!(r.signal, Some(libc::SIGKILL));
    // The child lives 120 s: only the worker's pidfd can have said it.
    assert!(took < Duration::from_secs(60), "seen after {took:?}");
    let holder = pid_in(&file);
    assert!(
        eventually(Duration::from_secs(20), || dead(holder)),
        "the child holding the pipe outlived its worker's group"
    );
    assert_eq!(submit_and_wait(&pool, "echo:on"), "on");
}

fn submit_and_wait(pool: &Pool, cmd: &str) -> String {
    let id = submit(pool, cmd);
    pool.wait_task(id, LONG).unwrap().text()
}

#[test]
fn a_task_that_never_started_is_requeued_every_time_its_worker_dies() {
    let cfg = config(1)
        .restart_intensity(None, Duration::from_secs(1))
        .unwrap();
    let pool = Pool::new(cfg).unwrap();
    // Every crash sends the echoes behind it back to the queue: each of
    // them is requeued five times before it runs.
    let crashes: Vec<u64> = (0..5).map(|_| submit(&pool, "exit:3")).collect();
    let echoes: Vec<u64> = (0..10)
        .map(|i| submit(&pool, &format!("echo:{i}")))
        .collect();
    for id in crashes {
        let r = pool.wait_task(id, LONG).unwrap();
        assert_eq!(r.outcome, Outcome::WorkerLost, "{}", r.text());
        assert_eq!(r.exit_code, Some(3));
    }
    for (i, id) in echoes.into_iter().enumerate() {
        let r = pool.wait_task(id, LONG).unwrap();
        assert_eq!(
            (r.outcome, r.text()),
            (Outcome::Ok, i.to_string()),
            "a task that never started must not end WORKER_LOST"
        );
    }
}

#[test]
fn a_worker_hanging_without_ack_or_progress_entry_still_gets_its_hard_limit() {
    let cfg = Config::new()
        .workers(1)
        .start_method(StartMethod::Spawn)
        .worker_argv(&["python3", script("raw_worker.py").as_str(), "hang"])
        .unwrap()
        .hard_time_limit(Some(ms(500)))
        .unwrap()
        .kill_grace(ms(100));
    let pool = Pool::new(cfg).unwrap();
    let id = submit(&pool, "anything");
    let r = pool.wait_task(id, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.outcome, Outcome::TimeLimit, "{}", r.text());
}

/// A worker program that writes over a large payload in its shared area
/// and dies before starting the task: the task is never run on what it
/// wrote (it fails, saying why), and small tasks still run.
#[test]
fn a_payload_a_dying_worker_program_could_have_written_is_never_run() {
    let cfg = Config::new()
        .workers(1)
        .start_method(StartMethod::Spawn)
        .worker_argv(&["python3", script("raw_worker.py").as_str(), "scribble"])
        .unwrap()
        .restart_intensity(None, Duration::from_secs(1))
        .unwrap();
    let pool = Pool::new(cfg).unwrap();
    let small = submit(&pool, "small");
    assert_eq!(pool.wait_task(small, LONG).unwrap().text(), "small");
    let large = vec![b'p'; 200_000];
    let id = pool.submit(&large, &TaskOptions::default()).unwrap();
    let r = pool.wait_task(id, LONG).unwrap();
    assert_ne!(
        (r.outcome, r.data.first()),
        (Outcome::Ok, Some(&b'X')),
        "the task ran on what the dead worker wrote"
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(r.text().contains("could have written"), "{}", r.text());
    let after = submit(&pool, "after");
    assert_eq!(pool.wait_task(after, LONG).unwrap().text(), "after");
}

fn script(name: &str) -> String {
    format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn address_space_limit() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) };
    lim
}

/// A fork server that names pid 0, the host, or an unrelated process (with
/// or without a pidfd of it) as its new worker is stopped: nothing is
/// signalled, no limit lands on the host, and the pool does not start.
#[test]
fn a_lying_fork_server_is_stopped_never_obeyed() {
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let other = bystander.id().to_string();
    let me = std::process::id().to_string();
    let before = address_space_limit();
    for lie in [
        "0".to_string(),
        me.clone(),
        other.clone(),
        format!("pidfd:{other}"),
    ] {
        let cfg = Config::new()
            .workers(1)
            .start_method(StartMethod::ForkServer)
            .worker_argv(&[
                "python3",
                script("raw_worker.py").as_str(),
                "fork-liar",
                &lie,
            ])
            .unwrap()
            .hard_memory_limit(Some(1 << 30))
            .unwrap()
            .start_timeout(Some(Duration::from_secs(30)));
        let err = Pool::new(cfg).expect_err("a pool whose server lies must not start");
        assert!(matches!(err, Error::Spawn(_)), "{lie}: {err}");
        assert!(err.to_string().contains("lied"), "{lie}: {err}");
        assert_eq!(
            address_space_limit(),
            before,
            "{lie}: a limit landed on the host"
        );
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "{lie}: the unrelated process was signalled"
        );
    }
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// Inside a pool's event handler, a call that would wait for that pool's
/// supervisor fails; pools created there may be used, terminated and
/// freed there, and leave nothing behind.
#[test]
fn the_event_handler_may_free_other_pools_but_not_wait_for_its_own() {
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    type Seen = (Option<Error>, Vec<i32>, Vec<String>);
    let own: Arc<OnceLock<Weak<Pool>>> = Arc::new(OnceLock::new());
    let seen: Arc<Mutex<Option<Seen>>> = Arc::new(Mutex::new(None));
    let (own2, seen2) = (own.clone(), seen.clone());
    let cfg = config(1).on_event(move |event| {
        let billiard::Event::WorkerExited { .. } = event else {
            return;
        };
        let Some(me) = own2.get().and_then(Weak::upgrade) else {
            return;
        };
        if seen2.lock().unwrap().is_some() {
            return;
        }
        let refused = me.terminate().err();
        let inner = Pool::new(config(2)).unwrap();
        let pids = inner.worker_pids();
        let texts = (0..3)
            .map(|i| submit_and_wait(&inner, &format!("echo:{i}")))
            .collect();
        inner.terminate().unwrap();
        drop(inner);
        *seen2.lock().unwrap() = Some((refused, pids, texts));
    });
    let pool = Arc::new(Pool::new(cfg).unwrap());
    own.set(Arc::downgrade(&pool)).unwrap();
    let id = submit(&pool, "exit:1");
    assert_eq!(
        pool.wait_task(id, LONG).unwrap().outcome,
        Outcome::WorkerLost
    );
    assert!(eventually(Duration::from_secs(30), || seen
        .lock()
        .unwrap()
        .is_some()));
    let (refused, pids, texts) = seen.lock().unwrap().take().unwrap();
    assert!(
        matches!(refused, Some(Error::InvalidArgument(_))),
        "terminate of its own pool from the handler: {refused:?}"
    );
    assert_eq!(texts, ["0", "1", "2"]);
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(
            !exists(pid),
            "worker {pid} of a pool freed in the handler is left"
        );
    }
}

/// The counters add up when a cancel meets a task's end: a task cancelled
/// as its worker finished it ends at once, but stays at the head of that
/// worker until its dropped result arrives. `stats` counted it as running
/// beside the tasks left, which overflowed `queued` (a panic in a debug
/// build, BILLIARD_EPANIC through the C API; the Ruby ForkPool test caught
/// it).
#[test]
fn stats_add_up_when_a_cancel_meets_the_task_end() {
    let pool = Pool::new(config(1).kill_grace(ms(100))).unwrap();
    for round in 0..300u64 {
        let r = 1 + round % 6;
        let a = submit(&pool, &format!("sleep:{r}"));
        std::thread::sleep(Duration::from_micros(r * 1000 - 300 + (round % 5) * 120));
        let _ = pool.cancel(a);
        let s = pool.stats();
        assert!(s.running + s.queued <= 1, "round {round}: {s:?}");
        let _ = pool.wait_task(a, LONG).unwrap();
        let s = pool.stats();
        assert_eq!(
            (s.running, s.queued, s.uncollected),
            (0, 0, 0),
            "round {round}: {s:?}"
        );
    }
}
