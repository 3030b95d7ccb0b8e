//! Every task gets exactly one result while the fast paths all run at once:
//! threads waiting by id (reading their workers' results themselves),
//! threads collecting any result, tiny and large payloads (through the
//! channel and the shared areas), and workers killed at random moments.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billiard::{Config, Outcome, Pool, TaskOptions};
use common::{children, kill, LONG};

/// Payload for task number `n` of thread `t`: tiny or large, recognisable.
fn payload(t: usize, n: usize) -> Vec<u8> {
    let len = if n % 7 == 0 {
        70_000 + n * 13
    } else {
        16 + n % 50
    };
    (0..len).map(|i| (t * 31 + n * 7 + i) as u8).collect()
}

#[test]
fn every_task_gets_one_right_result_under_mixed_load_and_kills() {
    let pool = Arc::new(
        Pool::new(Config::new().workers(3).handler(|input, reply| {
            if input.len() % 11 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            reply.write(input);
            Ok(())
        }))
        .unwrap(),
    );
    let before = children().len();
    let stop = Arc::new(AtomicBool::new(false));
    // Results collected by "any" waiters, by task id.
    let collected: Arc<Mutex<HashMap<u64, billiard::TaskResult>>> = Arc::default();
    let killer = {
        let (pool, stop) = (pool.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(15));
                let pids = pool.worker_pids();
                if let Some(&pid) = pids.get(kills % pids.len().max(1)) {
                    kill(pid, libc::SIGKILL);
                    kills += 1;
                }
            }
            kills
        })
    };
    let by_id: Vec<_> = (0..3)
        .map(|t| {
            let (pool, collected) = (pool.clone(), collected.clone());
            std::thread::spawn(move || {
                let (mut ok, mut lost) = (0, 0);
                for n in 0..300 {
                    let data = payload(t, n);
                    let id = pool.submit(&data, &TaskOptions::default()).unwrap();
                    let r = match pool.wait_task(id, LONG) {
                        Ok(r) => r,
                        // A result that came back before this thread waited
                        // for it may go to a thread waiting for any result:
                        // then it is there, and only there.
                        Err(billiard::Error::NotFound(_)) => {
                            let taken = common::eventually(Duration::from_secs(5), || {
                                collected.lock().unwrap().contains_key(&id)
                            });
                            assert!(taken, "task {id}: no result anywhere");
                            continue;
                        }
                        Err(e) => panic!("task {id}: {e}"),
                    };
                    assert_eq!(r.task_id, id);
                    match r.outcome {
                        Outcome::Ok => {
                            assert!(
                                r.data == data,
                                "task {id}: wrong bytes back ({} bytes for {}, got {:?}, sent {:?}, first difference at {:?}, pid {})",
                                r.data.len(),
                                data.len(),
                                &r.data[..8.min(r.data.len())],
                                &data[..8.min(data.len())],
                                r.data.iter().zip(&data).position(|(a, b)| a != b),
                                r.pid
                            );
                            ok += 1;
                        }
                        Outcome::WorkerLost => lost += 1,
                        other => panic!("task {id}: {other:?} {}", r.text()),
                    }
                }
                (ok, lost)
            })
        })
        .collect();
    // One thread submits in bursts and leaves the results to "any" waiters.
    let mut burst_tasks: HashMap<u64, Vec<u8>> = HashMap::new();
    for n in 0..600 {
        let data = payload(9, n);
        let id = pool.submit(&data, &TaskOptions::default()).unwrap();
        burst_tasks.insert(id, data);
    }
    let burst_ids: Arc<Vec<u64>> = Arc::new(burst_tasks.keys().copied().collect());
    let collectors: Vec<_> = (0..2)
        .map(|_| {
            let (pool, collected) = (pool.clone(), collected.clone());
            let burst_ids = burst_ids.clone();
            let give_up = std::time::Instant::now() + Duration::from_secs(60);
            std::thread::spawn(move || loop {
                match pool.wait(Some(Duration::from_millis(200))) {
                    Ok(r) => {
                        let id = r.task_id;
                        assert!(
                            collected.lock().unwrap().insert(id, r).is_none(),
                            "task {id} delivered twice"
                        );
                    }
                    Err(billiard::Error::NotFound(_)) | Err(billiard::Error::TimedOut) => {
                        let got = collected.lock().unwrap();
                        if burst_ids.iter().all(|id| got.contains_key(id))
                            || std::time::Instant::now() > give_up
                        {
                            return;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut totals = (0, 0);
    for h in by_id {
        let (ok, lost) = h.join().unwrap();
        totals.0 += ok;
        totals.1 += lost;
    }
    for h in collectors {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    let collected = collected.lock().unwrap();
    for (id, data) in &burst_tasks {
        let r = collected
            .get(id)
            .unwrap_or_else(|| panic!("task {id}: no result"));
        match r.outcome {
            Outcome::Ok => assert!(&r.data == data, "task {id}: wrong bytes back"),
            Outcome::WorkerLost => {}
            other => panic!("task {id}: {other:?} {}", r.text()),
        }
    }
    println!("{kills} kills; by id: {} ok, {} lost", totals.0, totals.1);
    assert!(
        kills > 0 && totals.0 > 0,
        "kills {kills}, results {totals:?}"
    );
    drop(collected);
    let pool = Arc::try_unwrap(pool).expect("the last handle");
    drop(pool);
    assert_eq!(children().len(), before.saturating_sub(3), "no worker left");
}
