"""billiard's Pool API, three ways, same run, same machine: libbilliard.Pool
(ours), billiard 4.3.2's Pool and multiprocessing.Pool, each with 2
processes and its default start method, through the same workloads.

    python bench/python_pool.py [--quick]      (make bench-python)

Each row is the median of 5 runs (--quick: 1, sizes / 10) on one warm
pool per subject; the ratios are ours against each peer (above 1: ours is
faster; for the kill row, the peer's time over ours). Pool start is not
timed. Prints a Markdown table (docs/PERFORMANCE.md keeps the latest).
"""
import argparse
import multiprocessing
import os
import signal
import statistics
import time

import billiard
import billiard.exceptions

import libbilliard


def tiny(x):
    return x + 1


def echo(data):
    return data


def sleep_forever():
    time.sleep(3600)


def make(subject):
    if subject == "libbilliard":
        return libbilliard.Pool(2)
    if subject == "billiard":
        # The shortest wait billiard allows before it reports a lost worker
        # (its default is 10 s).
        return billiard.Pool(2, lost_worker_timeout=0.01)
    return multiprocessing.Pool(2)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def row_map(pool, n):
    return n / timed(lambda: pool.map(tiny, range(n)))


def row_apply_async(pool, n):
    def burst():
        results = [pool.apply_async(tiny, (i,)) for i in range(n)]
        for r in results:
            r.get(60)
    return n / timed(burst)


def row_imap_unordered(pool, n):
    return n / timed(lambda: sum(1 for _ in pool.imap_unordered(tiny, range(n))))


def row_map_mib(pool, n):
    payloads = [bytes(1 << 20) for _ in range(n)]
    return 2 * n / timed(lambda: pool.map(echo, payloads))  # MiB moved, both ways


def row_kill(pool, subject):
    """Seconds from SIGKILL of the worker running a task to get() raising
    WorkerLostError; None if it never does."""
    if subject == "multiprocessing":
        return None  # multiprocessing.Pool's get() blocks forever
    result = pool.apply_async(sleep_forever)
    deadline = time.monotonic() + 30
    while not result.worker_pids() and time.monotonic() < deadline:
        time.sleep(0.001)
    pid = result.worker_pids()[0]
    time.sleep(0.02)
    start = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    try:
        result.get(60)
    except Exception as exc:  # billiard wraps it in its ExceptionWithTraceback
        if isinstance(exc, billiard.exceptions.WorkerLostError) or \
                "WorkerLostError" in str(exc):
            return time.perf_counter() - start
        raise
    raise AssertionError("the task did not end WorkerLostError")


ROWS = [
    ("map(f, range(N)), tiny f", "tasks/s", "higher", row_map, 100_000),
    ("apply_async burst of N", "tasks/s", "higher", row_apply_async, 10_000),
    ("imap_unordered of N", "tasks/s", "higher", row_imap_unordered, 10_000),
    ("map of N 1 MiB bytes", "MiB/s", "higher", row_map_mib, 64),
]
SUBJECTS = ["libbilliard", "billiard", "multiprocessing"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 rep")
    args = parser.parse_args()
    reps = 1 if args.quick else 5
    scale = 10 if args.quick else 1
    table = {}
    for subject in SUBJECTS:
        pool = make(subject)
        try:
            for name, _, _, fn, n in ROWS:
                n = max(1, n // scale)
                fn(pool, n)  # warm
                table[(name, subject)] = statistics.median(fn(pool, n) for _ in range(reps))
            if subject != "multiprocessing":
                kills = [row_kill(pool, subject) for _ in range(reps)]
                table[("kill -9 -> WorkerLostError", subject)] = statistics.median(kills)
        finally:
            pool.terminate()
            pool.join()
    print("| row | libbilliard.Pool | billiard 4.3.2 | multiprocessing.Pool "
          "| vs billiard | vs multiprocessing |")
    print("|---|---|---|---|---|---|")
    for name, unit, _, _, n in ROWS:
        label = name.replace("N", f"{max(1, n // scale):,}")
        ours, bil, mp = (table[(name, s)] for s in SUBJECTS)
        print(f"| {label} | {ours:,.0f} {unit} | {bil:,.0f} {unit} | {mp:,.0f} {unit} "
              f"| {ours / bil:.1f}x | {ours / mp:.1f}x |")
    name = "kill -9 -> WorkerLostError"
    ours, bil = table[(name, "libbilliard")], table[(name, "billiard")]
    print(f"| {name} | {ours * 1000:.1f} ms | {bil * 1000:.1f} ms "
          f"(lost_worker_timeout=0.01) | never (get() blocks) | {bil / ours:.0f}x | - |")

if __name__ == "__main__":
    main()
