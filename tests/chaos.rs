//! Chaos: several host threads submit thousands of tasks while workers are
//! killed at random moments (SIGKILL from outside, exit, abort, a segfault,
//! hangs past the hard limit), tasks are cancelled (often just as they
//! end), handlers fork children that ignore SIGTERM, and the pool is
//! resized and restarted. Every task must get exactly one result, with an
//! outcome that fits what it was (`CANCELLED` whenever cancel said OK), and
//! at the end no worker, no zombie, no process a handler started and no fd
//! of the pool may be left.
//!
//! `BILLIARD_CHAOS_TASKS` sets the number of tasks (default 10000, which CI
//! runs; 100000 for a long run).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use billiard::{Config, Error, Outcome, Pool, TaskOptions};
use common::{exists, fd_count};

fn handler(input: &[u8], reply: &mut billiard::Reply) -> Result<(), String> {
    let text = std::str::from_utf8(input).unwrap();
    let (cmd, arg) = text.split_once(':').unwrap_or((text, ""));
    match cmd {
        "echo" => reply.write(arg.as_bytes()),
        "sleep" => std::thread::sleep(Duration::from_millis(arg.parse().unwrap())),
        "fail" => return Err(arg.into()),
        "exit" => unsafe { libc::_exit(7) },
        "abort" => std::process::abort(),
        "segv" => unsafe {
            libc::raise(libc::SIGSEGV);
        },
        "hang" => std::thread::sleep(Duration::from_secs(600)),
        "family" => {
            // A child in the worker's group that ignores SIGTERM: only the
            // group's SIGKILL, at the worker's end, may end it.
            let child = common::fork_stubborn_child();
            use std::io::Write;
            let path = FAMILY_FILE.get().expect("set before the pool");
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .unwrap();
            f.write_all(format!("{child}\n").as_bytes()).unwrap();
            if arg == "stay" {
                std::thread::sleep(Duration::from_secs(600));
            }
        }
        _ => return Err(format!("unknown {cmd}")),
    };
    Ok(())
}

/// Where "family" tasks write the pids of the children they fork.
static FAMILY_FILE: OnceLock<String> = OnceLock::new();

/// A small xorshift generator: the test needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a task was, so its outcome can be checked.
#[derive(Clone, Debug)]
enum Kind {
    Echo(String),
    Sleep,
    Fail,
    Crash,
    Hang,
    /// Forks a child; returns at once, or stays until the hard limit.
    Family {
        stays: bool,
    },
}

fn pick(rng: &mut Rng, n: usize) -> (String, Kind) {
    match rng.below(100) {
        0..=74 => {
            let text = format!("t{n}");
            (format!("echo:{text}"), Kind::Echo(text))
        }
        75..=84 => (format!("sleep:{}", 1 + rng.below(5)), Kind::Sleep),
        85..=89 => ("fail:no".into(), Kind::Fail),
        90..=95 => (
            ["exit:", "abort:", "segv:"][rng.below(3) as usize].into(),
            Kind::Crash,
        ),
        96 => ("family:go".into(), Kind::Family { stays: false }),
        97 => ("family:stay".into(), Kind::Family { stays: true }),
        _ => ("hang:".into(), Kind::Hang),
    }
}

/// Whether `outcome` (with `data`) fits a task of `kind` in this test.
fn fits(kind: &Kind, outcome: Outcome, data: &[u8]) -> bool {
    use Outcome::*;
    // Any task may be cancelled, or lose its worker to an outside SIGKILL;
    // and on a machine busy enough, any may run past the 150 ms limit.
    if matches!(outcome, Cancelled | WorkerLost | TimeLimit) {
        return true;
    }
    match kind {
        Kind::Echo(text) => outcome == Ok && data == text.as_bytes(),
        Kind::Sleep => outcome == Ok,
        Kind::Fail => outcome == Failed && data == b"no",
        Kind::Crash => false,
        Kind::Hang | Kind::Family { stays: true } => outcome == TimeLimit,
        Kind::Family { stays: false } => outcome == Ok,
    }
}

#[test]
fn every_task_gets_exactly_one_fitting_result_whatever_happens() {
    let total: usize = std::env::var("BILLIARD_CHAOS_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let submitters = 4;
    let family_file = format!("/tmp/billiard-chaos-{}-family", std::process::id());
    let _ = std::fs::remove_file(&family_file);
    FAMILY_FILE.set(family_file.clone()).unwrap();
    let fds_before = fd_count();
    let cfg = Config::new()
        .workers(3)
        .handler(handler)
        .hard_time_limit(Some(Duration::from_millis(150)))
        .unwrap()
        .kill_grace(Duration::from_millis(20))
        .max_tasks_per_worker(Some(200), 50)
        .unwrap()
        .max_queued(500)
        .notices(billiard::NoticeKinds {
            started: true,
            ..Default::default()
        });
    let pool = Arc::new(Pool::new(cfg).unwrap());
    // Started notices by task: each started task has exactly one, read
    // before (or with) its result.
    let mut started: HashMap<u64, usize> = HashMap::new();
    let expected: Arc<Mutex<HashMap<u64, Kind>>> = Arc::default();
    let seen_pids: Arc<Mutex<Vec<i32>>> = Arc::default();
    // Tasks whose cancel returned OK: each must end CANCELLED.
    let cancelled_ok: Arc<Mutex<Vec<u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));

    let chaos = {
        let (pool, expected, seen_pids, done) = (
            pool.clone(),
            expected.clone(),
            seen_pids.clone(),
            done.clone(),
        );
        let cancelled_ok = cancelled_ok.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(0x9e3779b97f4a7c15);
            let mut cancels = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1 + rng.below(10)));
                let pids = pool.worker_pids();
                seen_pids.lock().unwrap().extend(&pids);
                match rng.below(20) {
                    0..=5 if !pids.is_empty() => {
                        let pid = pids[rng.below(pids.len() as u64) as usize];
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    6..=13 => {
                        // The newest ids most often: those race their end.
                        let ids: Vec<u64> = expected.lock().unwrap().keys().copied().collect();
                        let newest = ids.iter().max().copied().unwrap_or(0);
                        let id = if rng.below(2) == 0 {
                            newest.saturating_sub(rng.below(8))
                        } else {
                            ids.get(rng.below(ids.len().max(1) as u64) as usize)
                                .copied()
                                .unwrap_or(0)
                        };
                        match pool.cancel(id) {
                            Ok(()) => {
                                cancels += 1;
                                cancelled_ok.lock().unwrap().push(id);
                            }
                            Err(Error::NotFound(_)) => {} // finished meanwhile
                            Err(e) => panic!("cancel: {e}"),
                        }
                    }
                    14 => pool.resize(1 + rng.below(5) as usize).unwrap(),
                    15 => pool.restart().unwrap(),
                    _ => {}
                }
            }
            cancels
        })
    };

    // Cancels racing the end of short tasks, as a host cancelling a task
    // that is just finishing: cancel said OK => CANCELLED, and the stop
    // never hits the next task.
    let racer = {
        let (pool, expected, cancelled_ok) = (pool.clone(), expected.clone(), cancelled_ok.clone());
        let rounds = total / 50;
        std::thread::spawn(move || {
            let mut rng = Rng(0x51ed2701);
            for _ in 0..rounds {
                let ms = 1 + rng.below(3);
                let mut map = expected.lock().unwrap();
                let id = pool
                    .submit(format!("sleep:{ms}").as_bytes(), &TaskOptions::default())
                    .unwrap();
                map.insert(id, Kind::Sleep);
                drop(map);
                std::thread::sleep(Duration::from_micros(ms * 1000 - 300 + rng.below(600)));
                match pool.cancel(id) {
                    Ok(()) => cancelled_ok.lock().unwrap().push(id),
                    Err(Error::NotFound(_)) => {}
                    Err(e) => panic!("cancel: {e}"),
                }
            }
            rounds
        })
    };

    let per_thread = total / submitters;
    let threads: Vec<_> = (0..submitters)
        .map(|t| {
            let (pool, expected) = (pool.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x2545f4914f6cdd1d ^ ((t as u64 + 1) * 0x9e37));
                for n in 0..per_thread {
                    let (cmd, kind) = pick(&mut rng, t * per_thread + n);
                    // Registered under the lock that also covers submit, so
                    // the collector never sees a result for an unknown id.
                    let mut map = expected.lock().unwrap();
                    let id = match pool.submit(
                        cmd.as_bytes(),
                        &TaskOptions {
                            nonblocking: true,
                            ..TaskOptions::default()
                        },
                    ) {
                        Ok(id) => id,
                        Err(Error::Full(_)) => {
                            drop(map);
                            let id = pool
                                .submit(cmd.as_bytes(), &TaskOptions::default())
                                .unwrap();
                            map = expected.lock().unwrap();
                            map.entry(id).or_insert(kind);
                            continue;
                        }
                        Err(e) => panic!("submit: {e}"),
                    };
                    map.entry(id).or_insert(kind);
                }
            })
        })
        .collect();

    let mut results: HashMap<u64, Outcome> = HashMap::new();
    let mut early: Vec<billiard::TaskResult> = Vec::new();
    let submitted = per_thread * submitters + total / 50;
    while results.len() < submitted {
        let r = match pool.wait(Some(Duration::from_secs(60))) {
            Ok(r) => r,
            Err(Error::NotFound(_)) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => panic!("wait: {e} after {} results", results.len()),
        };
        for n in pool.notices(usize::MAX) {
            assert_eq!(n.kind, billiard::NoticeKind::Started);
            *started.entry(n.task_id).or_default() += 1;
        }
        // Outcomes that need a start: each has its notice by now.
        if matches!(
            r.outcome,
            Outcome::Ok | Outcome::Failed | Outcome::WorkerLost
        ) {
            assert_eq!(
                started.get(&r.task_id),
                Some(&1),
                "task {} ended {:?} with no started notice before it",
                r.task_id,
                r.outcome
            );
        }
        // A blocking submit registers its id after submit returns: a fast
        // result may come first; it is checked once the id is known.
        early.push(r);
        let map = expected.lock().unwrap();
        early.retain(|r| {
            let Some(kind) = map.get(&r.task_id) else {
                return true;
            };
            assert!(
                fits(kind, r.outcome, &r.data),
                "task {} ({kind:?}) ended {:?}: {}",
                r.task_id,
                r.outcome,
                r.text()
            );
            assert!(
                results.insert(r.task_id, r.outcome).is_none(),
                "task {} had two results",
                r.task_id
            );
            false
        });
    }
    for t in threads {
        t.join().unwrap();
    }
    racer.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let cancels = chaos.join().unwrap();
    assert!(
        early.is_empty(),
        "results for ids never submitted: {early:?}"
    );
    assert_eq!(expected.lock().unwrap().len(), submitted);
    assert!(matches!(
        pool.wait(Some(Duration::ZERO)),
        Err(Error::NotFound(_))
    ));

    for n in pool.notices(usize::MAX) {
        *started.entry(n.task_id).or_default() += 1;
    }
    assert!(
        started.values().all(|&n| n == 1),
        "a task had two started notices"
    );
    assert!(
        started.keys().all(|id| results.contains_key(id)),
        "a started notice for a task never submitted"
    );
    let by_outcome = |o: Outcome| results.values().filter(|&&x| x == o).count();
    let stats = pool.stats();
    eprintln!(
        "chaos: {submitted} tasks, {cancels} cancels; ok {} failed {} lost {} time limit {} \
         cancelled {}; restarts {} recycles {}",
        by_outcome(Outcome::Ok),
        by_outcome(Outcome::Failed),
        by_outcome(Outcome::WorkerLost),
        by_outcome(Outcome::TimeLimit),
        by_outcome(Outcome::Cancelled),
        stats.counts.restarts,
        stats.counts.recycles
    );
    assert!(
        by_outcome(Outcome::Ok) > submitted / 4,
        "the pool kept working"
    );
    assert_eq!(by_outcome(Outcome::Abandoned), 0);
    for id in cancelled_ok.lock().unwrap().iter() {
        assert_eq!(
            results.get(id),
            Some(&Outcome::Cancelled),
            "cancel of task {id} said OK"
        );
    }

    pool.close().unwrap();
    pool.join(Some(Duration::from_secs(60))).unwrap();
    drop(pool);
    let pids = seen_pids.lock().unwrap().clone();
    assert!(
        pids.iter().all(|&p| !exists(p)),
        "a worker or zombie is left"
    );
    assert!(common::children().is_empty(), "a child is left");
    assert_eq!(fd_count(), fds_before, "an fd leaked");
    // Every child a handler forked was killed with its worker's group.
    let family = std::fs::read_to_string(&family_file).unwrap_or_default();
    let _ = std::fs::remove_file(&family_file);
    let children = family.lines().filter_map(|l| l.parse::<i32>().ok());
    let mut forked = 0;
    for pid in children {
        forked += 1;
        // A FORK worker, and so its child, has the supervisor thread's name;
        // a pid reused since by something else does not.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z ") || !stat.contains("(billiard-super)"),
            "child {pid} of a handler outlived the pool: {stat}"
        );
    }
    assert!(forked > 0 || total < 1000, "no handler forked a child");
}
