"""The Python peers of the benchmark: billiard (Celery's pool) and
multiprocessing.Pool, through the same workloads as benches/pool.

Run by the benchmark itself (make bench), which passes the sizes. Prints one
line per figure: ROW|metric|placement|subject|unit|better|values|p50|p99|n/a
"""
import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time

import billiard
from billiard.exceptions import TimeoutError as BilliardTimeout


def echo(data):
    return data


def getpid(_=None):
    return os.getpid()


def sleep_forever(_=None):
    time.sleep(3600)


def percentile(values, p):
    v = sorted(values)
    rank = max(1, min(len(v), -(-len(v) * p // 100)))
    return v[int(rank) - 1]


def emit(metric, placement, subject, unit, better, values, p50="", p99="", na=""):
    print("  %s %s %s" % (subject, metric, placement), file=sys.stderr, flush=True)
    vals = ",".join(repr(float(v)) for v in values)
    print("|".join(["ROW", metric, placement, subject, unit, better, vals,
                    str(p50), str(p99), na]), flush=True)


def latency(metric, placement, subject, reps):
    flat = [x for r in reps for x in r]
    emit(metric, placement, subject, "us", "lower",
         [percentile(r, 50) for r in reps], percentile(flat, 50), percentile(flat, 99))


def make_pool(kind, n):
    if kind == "py-billiard":
        return billiard.Pool(n, lost_worker_timeout=0.01)
    return multiprocessing.get_context("fork").Pool(n)


def us_since(t):
    return (time.perf_counter() - t) * 1e6


def round_trip(kind, n):
    with make_pool(kind, 1) as pool:
        msg = b"\x07" * 16
        pool.apply_async(echo, (msg,)).get()
        out = []
        for _ in range(n):
            t = time.perf_counter()
            pool.apply_async(echo, (msg,)).get()
            out.append(us_since(t))
        pool.terminate()
    return out


def start_per_worker(kind, workers):
    t = time.perf_counter()
    pool = make_pool(kind, workers)
    pool.map(getpid, range(workers), chunksize=1)
    us = us_since(t) / workers
    pool.terminate()
    pool.join()
    return us


def kill_to_lost(kind, n):
    if kind == "multiprocessing":
        return None, "a killed worker's task never gets a result"
    pool = make_pool(kind, 1)
    out = []
    for _ in range(n):
        pid = pool.apply_async(getpid).get(timeout=10)
        r = pool.apply_async(sleep_forever)
        time.sleep(0.02)
        t = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        try:
            r.get(timeout=10)
            return None, "the task returned after its worker was killed"
        except BilliardTimeout:
            return None, "no result within 10 s"
        except Exception as e:  # WorkerLostError, wrapped
            if "WorkerLostError" not in repr(e) and "exited prematurely" not in str(e):
                return None, "unexpected error: %r" % (e,)
        out.append(us_since(t))
    return out, ""


def crash_to_replacement(kind, n):
    pool = make_pool(kind, 1)
    out = []
    for _ in range(n):
        pid = pool.apply_async(getpid).get(timeout=10)
        t = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        try:
            served_by = pool.apply_async(getpid).get(timeout=10)
        except Exception as e:
            return None, "a task submitted as its worker was killed got no result in 10 s (%s)" % (
                type(e).__name__,)
        out.append(us_since(t))
        if served_by == pid:
            return None, "served by the killed worker?"
    return out, ""


def isolated(fn, kind, n):
    """Runs fn(kind, n) in a child process in its own process group and kills
    the whole group afterwards: a pool whose worker was killed may deadlock,
    even in terminate(), and must not take the benchmark with it."""
    with tempfile.NamedTemporaryFile("r") as out:
        child = subprocess.Popen(
            [sys.executable, __file__, "--isolated", fn.__name__, kind, str(n), out.name],
            start_new_session=True)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pass
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
        text = out.read()
    if not text.startswith("OK "):
        return None, text.strip() or "the measuring process died"
    return [float(x) for x in text[3:].split(",")], ""


def run_isolated(name, kind, n, path):
    samples, why = globals()[name](kind, n)
    with open(path, "w") as f:
        f.write("OK " + ",".join(map(repr, samples)) if samples else why)
    sys.stdout.flush()
    os._exit(0)  # no atexit: terminate() of a broken pool may hang


def task_rate(kind, workers, n):
    with make_pool(kind, workers) as pool:
        msg = b"\x01" * 16
        t = time.perf_counter()
        results = [pool.apply_async(echo, (msg,)) for _ in range(n)]
        for r in results:
            assert len(r.get()) == 16
        rate = n / (time.perf_counter() - t)
        pool.terminate()
    return rate


def echo_rate(kind, size, iterations):
    with make_pool(kind, 1) as pool:
        data = b"\x05" * size
        pool.apply_async(echo, (data,)).get()
        t = time.perf_counter()
        for _ in range(iterations):
            assert len(pool.apply_async(echo, (data,)).get()) == size
        rate = 2 * size * iterations / (time.perf_counter() - t)
        pool.terminate()
    return rate


def idle_memory(kind):
    with make_pool(kind, 1) as pool:
        pid = pool.apply_async(getpid).get()
        time.sleep(0.2)
        fields = {}
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in ("Rss:", "Pss:"):
                    fields[parts[0]] = float(parts[1])
        pool.terminate()
    return fields["Rss:"], fields["Pss:"]


def main():
    if sys.argv[1:2] == ["--isolated"]:
        name, kind, n, path = sys.argv[2:6]
        run_isolated(name, kind, int(n), path)
    ap = argparse.ArgumentParser()
    for name in ("rt", "reps", "rate", "rate-reps", "echo1", "echo64", "echo-reps",
                 "start-workers", "start-reps", "deaths", "workers", "cpu"):
        ap.add_argument("--" + name, type=int, required=True)
    a = ap.parse_args()
    everywhere = os.sched_getaffinity(0)
    # Idle memory first, while this driver is still small: a forked worker's
    # RSS counts the pages it shares with the process it was forked from.
    for kind in ("py-billiard", "multiprocessing"):
        rss, pss = idle_memory(kind)
        emit("idle worker RSS", "unpinned", kind, "kB", "lower", [rss])
        emit("idle worker PSS", "unpinned", kind, "kB", "lower", [pss])
    for kind in ("py-billiard", "multiprocessing"):
        for placement, cpus in (("unpinned", everywhere), ("pinned", {a.cpu})):
            os.sched_setaffinity(0, cpus)
            latency("round trip 16 B", placement, kind,
                    [round_trip(kind, a.rt) for _ in range(a.reps)])
            emit("worker start (fork)", placement, kind, "us", "lower",
                 [start_per_worker(kind, a.start_workers) for _ in range(a.start_reps)])
            for metric, fn in (("kill -9 -> WORKER_LOST", kill_to_lost),
                               ("crash -> replacement", crash_to_replacement)):
                samples, why = isolated(fn, kind, a.deaths)
                if samples is None:
                    emit(metric, placement, kind, "us", "lower", [], na=why)
                else:
                    latency(metric, placement, kind, [samples])
        os.sched_setaffinity(0, everywhere)
        emit("tiny-task rate", "unpinned", kind, "tasks/s", "higher",
             [task_rate(kind, a.workers, a.rate) for _ in range(a.rate_reps)])
        for metric, size, n in (("echo 1 MiB", 1 << 20, a.echo1), ("echo 64 MiB", 64 << 20, a.echo64)):
            emit(metric, "unpinned", kind, "MB/s", "higher",
                 [echo_rate(kind, size, n) / 1e6 for _ in range(a.echo_reps)])


if __name__ == "__main__":
    sys.exit(main())
