//! The benchmark: billiard against the machine floor and its peers, in one
//! run. `make bench` (or `make bench-quick`) from the project root; see
//! docs/PERFORMANCE.md. Not a test: it measures, it does not judge.

mod floor;
mod os;
mod ours;
mod peers;
mod procspawn_peer;
mod report;

use report::{Better, Row};

/// How much to measure. Quick mode only proves the benchmark still runs.
#[derive(Clone, Copy)]
pub struct Sizes {
    pub rt: usize,
    pub reps: usize,
    pub rate: usize,
    pub rate_reps: usize,
    pub echo1: usize,
    pub echo64: usize,
    pub echo_reps: usize,
    pub start_workers: usize,
    pub start_reps: usize,
    pub deaths: usize,
    pub workers: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        let workers = billiard::config::usable_cpus();
        if quick {
            return Sizes {
                rt: 200,
                reps: 2,
                rate: 2_000,
                rate_reps: 1,
                echo1: 5,
                echo64: 1,
                echo_reps: 1,
                start_workers: 2,
                start_reps: 1,
                deaths: 2,
                workers,
            };
        }
        Sizes {
            rt: 5_000,
            reps: 5,
            rate: 200_000,
            rate_reps: 3,
            echo1: 100,
            echo64: 3,
            echo_reps: 3,
            start_workers: 8,
            start_reps: 5,
            deaths: 20,
            workers,
        }
    }
}

const MIB: usize = 1 << 20;

/// `--only WORD`: measure only the metrics whose name contains WORD.
static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

fn wanted(metric: &str) -> bool {
    ONLY.get()
        .and_then(|o| o.as_deref())
        .is_none_or(|w| metric.contains(w))
}

fn reps<T>(n: usize, f: impl FnMut(usize) -> T) -> Vec<T> {
    (0..n).map(f).collect()
}

/// Figures where the scheduler's placement matters: run unpinned and pinned.
fn latencies(s: Sizes, placement: &'static str, rows: &mut Vec<Row>) {
    // A latency row: `s.reps` repetitions of `f`'s samples.
    let lat = |metric, subject, f: &dyn Fn() -> Vec<f64>| {
        Row::latency(metric, placement, subject, reps(s.reps, |_| f()))
    };

    const RT: &str = "round trip 16 B";
    if wanted(RT) {
        rows.push(lat(RT, "floor", &|| floor::ping_pong(s.rt)));
        rows.push(lat(RT, "floor: socket", &|| floor::socket_ping_pong(s.rt)));
        rows.push(lat(RT, "billiard", &|| ours::round_trip(s.rt)));
        rows.push(lat(RT, "procspawn", &|| procspawn_peer::round_trip(s.rt)));
    }

    const START: &str = "worker start (fork)";
    let n = s.start_workers;
    let fork_floor = Row::latency(
        START,
        placement,
        "floor",
        reps(s.start_reps, |_| floor::fork_exit_wait(n)),
    );
    if wanted(START) {
        for (subject, f) in [
            ("billiard", ours::start_per_worker as fn(usize) -> f64),
            ("procspawn", procspawn_peer::start_per_worker),
        ] {
            rows.push(
                Row::new(START, placement, subject, "us", Better::Lower)
                    .values(reps(s.start_reps, |_| f(n))),
            );
        }
    }

    const SPAWN: &str = "worker start (spawn)";
    if wanted(SPAWN) {
        rows.push(Row::latency(
            SPAWN,
            placement,
            "floor",
            reps(s.start_reps, |_| floor::spawn_exit_wait(n)),
        ));
        rows.push(
            Row::new(SPAWN, placement, "billiard", "us", Better::Lower)
                .values(reps(s.start_reps, |_| ours::spawn_start_per_worker(n))),
        );
    }
    const FORKSERVER: &str = "worker start (forkserver)";
    if wanted(FORKSERVER) {
        // Its floor is the fork floor: the server forks each worker.
        rows.push(fork_floor.floor_for(FORKSERVER));
        rows.push(
            Row::new(FORKSERVER, placement, "billiard", "us", Better::Lower)
                .values(reps(s.start_reps, |_| ours::forkserver_start_per_worker(n))),
        );
    }

    const LOST: &str = "kill -9 -> WORKER_LOST";
    let death_floor = lat(LOST, "floor", &|| floor::death_detection(s.deaths));
    if wanted(LOST) {
        rows.push(lat(LOST, "billiard", &|| ours::kill_to_lost(s.deaths)));
        rows.push(Row::latency_or(
            LOST,
            placement,
            "procspawn",
            procspawn_peer::kill_to_lost(s.deaths),
            "a killed worker's task never reports an error",
        ));
    }

    const CRASH: &str = "crash -> replacement";
    if wanted(CRASH) {
        // The floor: seeing the death plus starting a process.
        let sum = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a + b);
        let both = sum(death_floor.median(), fork_floor.median());
        let mut crash_floor = Row::new(CRASH, placement, "floor", "us", Better::Lower)
            .values(vec![both.unwrap_or(f64::NAN)]);
        crash_floor.p50 = sum(death_floor.p50, fork_floor.p50);
        crash_floor.p99 = sum(death_floor.p99, fork_floor.p99);
        rows.push(crash_floor);
        rows.push(lat(CRASH, "billiard", &|| {
            ours::crash_to_replacement(s.deaths)
        }));
        rows.push(Row::latency_or(
            CRASH,
            placement,
            "procspawn",
            procspawn_peer::crash_to_replacement(s.deaths),
            "the task after the crash fails",
        ));
    }
    const OVERSHOOT: &str = "hard limit 200 ms -> TIME_LIMIT, overshoot";
    if wanted(OVERSHOOT) {
        // The floor: seeing a killed process die (the limit's own timer is
        // free; stopping the worker is the part no pool can skip).
        rows.push(death_floor.floor_for(OVERSHOOT));
        rows.push(lat(OVERSHOOT, "billiard", &|| {
            ours::hard_limit_overshoot(s.deaths)
        }));
    }
    rows.push(fork_floor);
    rows.push(death_floor);
}

/// Throughput figures, unpinned (every CPU is meant to be used).
fn throughput(s: Sizes, rows: &mut Vec<Row>) {
    const RATE: &str = "tiny-task rate";
    if wanted(RATE) {
        let rate = |subject: &str, f: &dyn Fn() -> f64| {
            Row::new(RATE, "unpinned", subject, "tasks/s", Better::Higher)
                .values(reps(s.rate_reps, |_| f()))
        };
        rows.push(rate("floor", &|| floor::message_rate(s.workers, s.rate)));
        rows.push(rate("billiard", &|| ours::task_rate(s.workers, s.rate)));
        rows.push(rate("procspawn", &|| {
            procspawn_peer::task_rate(s.workers, s.rate)
        }));
    }

    for (metric, size, n) in [
        ("echo 1 MiB", MIB, s.echo1),
        ("echo 64 MiB", 64 * MIB, s.echo64),
    ] {
        if !wanted(metric) {
            continue;
        }
        let echo = |subject: &str, f: &dyn Fn() -> f64| {
            Row::new(metric, "unpinned", subject, "MB/s", Better::Higher)
                .values(reps(s.echo_reps, |_| f() / 1e6))
        };
        rows.push(echo("floor", &|| floor::memfd_echo_rate(size, n)));
        rows.push(echo("floor: memcpy", &|| floor::memcpy_rate(size, n)));
        rows.push(echo("billiard", &|| ours::echo_rate(size, n)));
        rows.push(echo("procspawn", &|| procspawn_peer::echo_rate(size, n)));
    }
}

/// Idle worker memory: billiard's from a C host (bench/idle_rss.c), whose
/// floor is an idle child forked by the same host.
fn memory(rows: &mut Vec<Row>) {
    const RSS: &str = "idle worker RSS";
    const PSS: &str = "idle worker PSS";
    let kb = |metric, subject: &str, v: f64| {
        Row::new(metric, "unpinned", subject, "kB", Better::Lower).values(vec![v])
    };
    if !wanted(RSS) {
        return;
    }
    let program = std::env::var("BILLIARD_IDLE_RSS").unwrap_or_else(|_| "build/idle_rss".into());
    let out = std::process::Command::new(&program).output();
    let figures: Option<Vec<f64>> = out.ok().filter(|o| o.status.success()).and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect()
    });
    match figures.as_deref() {
        Some(&[frss, fpss, wrss, wpss]) => {
            rows.push(kb(RSS, "floor", frss));
            rows.push(kb(RSS, "billiard", wrss));
            rows.push(kb(PSS, "floor", fpss));
            rows.push(kb(PSS, "billiard", wpss));
        }
        _ => {
            let why = format!("{program} did not run (make bench builds it)");
            rows.push(
                Row::new(RSS, "unpinned", "billiard", "kB", Better::Lower).unavailable(why.clone()),
            );
            rows.push(Row::new(PSS, "unpinned", "billiard", "kB", Better::Lower).unavailable(why));
        }
    }
    if let Some((rss, pss)) = procspawn_peer::idle_memory() {
        rows.push(kb(RSS, "procspawn", rss));
        rows.push(kb(PSS, "procspawn", pss));
    }
}

const METRICS: &[&str] = &[
    "round trip 16 B",
    "tiny-task rate",
    "echo 1 MiB",
    "echo 64 MiB",
    "worker start (fork)",
    "worker start (spawn)",
    "worker start (forkserver)",
    "kill -9 -> WORKER_LOST",
    "crash -> replacement",
    "idle worker RSS",
    "idle worker PSS",
];
const SUBJECTS: &[&str] = &[
    "floor",
    "floor: memcpy",
    "floor: socket",
    "billiard",
    "procspawn",
    "py-billiard",
    "multiprocessing",
];

fn main() {
    // The benchmark executable is also the worker program of its SPAWN and
    // FORKSERVER pools, and the program the posix_spawn floor starts.
    if std::env::var_os(floor::EXIT_AT_ONCE).is_some() {
        std::process::exit(0);
    }
    if std::env::var_os(billiard::protocol::ENV_PROTOCOL).is_some() {
        std::process::exit(ours::worker_program());
    }
    procspawn::init();
    // SAFETY: every function given to procspawn lives in this executable
    // (billiard is linked statically here), none in a shared library.
    unsafe { procspawn::assert_spawn_is_safe() };
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let python_too = only.is_none();
    ONLY.set(only).expect("set once");
    let sizes = Sizes::new(quick);
    let cpu = os::first_cpu();
    eprintln!(
        "billiard benchmark ({} mode, {} workers for rates; pinned runs use CPU {cpu})",
        if quick { "quick" } else { "full" },
        sizes.workers
    );
    let mut rows = Vec::new();
    eprintln!("- latencies, unpinned");
    latencies(sizes, "unpinned", &mut rows);
    eprintln!("- latencies, pinned");
    os::pin(Some(cpu));
    latencies(sizes, "pinned", &mut rows);
    os::pin(None);
    eprintln!("- throughput");
    throughput(sizes, &mut rows);
    eprintln!("- memory");
    memory(&mut rows);
    eprintln!("- Python peers");
    if python_too {
        rows.extend(peers::python(sizes, cpu));
    }

    let position = |list: &[&str], x: &str| list.iter().position(|m| *m == x).unwrap_or(list.len());
    rows.sort_by_key(|r| {
        (
            position(METRICS, r.metric),
            r.placement != "unpinned",
            position(SUBJECTS, &r.subject),
        )
    });
    report::print_table(&rows);
    println!();
    report::print_json(&rows);
}
