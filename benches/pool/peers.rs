//! Runs bench/peers.py (Python billiard and multiprocessing.Pool) and reads
//! its rows. Without the Python environment every Python row is "n/a".

use crate::report::{Better, Row};
use crate::Sizes;

/// The interpreter of the environment `make bench-setup` makes.
fn interpreter() -> String {
    std::env::var("BILLIARD_BENCH_PYTHON").unwrap_or_else(|_| "target/bench-venv/bin/python".into())
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn parse(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.strip_prefix("ROW|")?.split('|').collect();
    let [metric, placement, subject, unit, better, values, p50, p99, na] = f[..] else {
        return None;
    };
    let better = if better == "lower" {
        Better::Lower
    } else {
        Better::Higher
    };
    let mut row = Row::new(leak(metric), leak(placement), subject, leak(unit), better);
    row.values = values.split(',').filter_map(|v| v.parse().ok()).collect();
    row.p50 = p50.parse().ok();
    row.p99 = p99.parse().ok();
    if !na.is_empty() {
        row.na = Some(na.to_string());
    }
    Some(row)
}

pub fn python(s: Sizes, cpu: usize) -> Vec<Row> {
    let python = interpreter();
    let arg = |name: &str, v: usize| [format!("--{name}"), v.to_string()];
    let args: Vec<String> = [
        arg("rt", s.rt),
        arg("reps", s.reps),
        arg("rate", s.rate),
        arg("rate-reps", s.rate_reps),
        arg("echo1", s.echo1),
        arg("echo64", s.echo64),
        arg("echo-reps", s.echo_reps),
        arg("start-workers", s.start_workers),
        arg("start-reps", s.start_reps),
        arg("deaths", s.deaths),
        arg("workers", s.workers),
        arg("cpu", cpu),
    ]
    .concat();
    let out = std::process::Command::new(&python)
        .arg("bench/peers.py")
        .args(&args)
        .stderr(std::process::Stdio::inherit())
        .output();
    let rows: Vec<Row> = match &out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(parse)
            .collect(),
        Err(_) => Vec::new(),
    };
    if rows.is_empty() {
        let why = match out {
            Ok(o) => format!("bench/peers.py failed ({})", o.status),
            Err(e) => format!("{python}: {e} (make bench-setup makes it)"),
        };
        eprintln!("Python peers: {why}");
        return ["py-billiard", "multiprocessing"]
            .iter()
            .map(|p| {
                Row::new("round trip 16 B", "unpinned", p, "us", Better::Lower)
                    .unavailable(why.clone())
            })
            .collect();
    }
    rows
}
