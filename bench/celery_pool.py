"""Celery on libbilliard against Celery's prefork pool: the same app, the
same redis-server, the same run, one `celery worker -c 2` node each.

    python bench/celery_pool.py [--quick]      (make bench-celery)

Rows (median of 7 repetitions; --quick: 3, and smaller sizes):
- round trip: `add.delay(1, 1).get()` one after another;
- burst: N `record` tasks queued where the node does not consume yet, then
  the node told to consume that queue, until the last one is recorded
  (the node's own rate, not the client's publishing);
- os._exit in a task -> WorkerLostError at the client: from the task's own
  timestamp just before os._exit to the client's get() raising;
- hard limit 1 s: from the task's start (its own timestamp) to the client
  seeing TimeLimitExceeded, minus 1 s;
- soft limit 1 s: measured in the task, from its start to
  SoftTimeLimitExceeded raised in it, minus 1 s;
- revoke(terminate=True): from the client's revoke to the task's worker
  gone, and to the client seeing REVOKED.
The task, the node and the client share one clock (one machine).
Prints a Markdown table (docs/PERFORMANCE.md keeps the latest).
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python", "tests"))

from celery_harness import OUR_POOL, Node, RedisServer, alive, wait_until  # noqa: E402

SUBJECTS = [("libbilliard", OUR_POOL), ("prefork", "prefork")]


def poll_until(check, timeout=60, every=0.0005):
    """Polls every 0.5 ms (wait_until's 20 ms would quantize the rows)."""
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise AssertionError("timed out")
        time.sleep(every)


def row_round_trip(capp, n):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        capp.add.delay(1, 1).get(timeout=60)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row_burst(capp, r, node, n, queue):
    """N tasks queued on a queue the node does not consume yet, then the
    node told to consume it: its own rate, not the client's publishing."""
    r.delete("done")
    for i in range(n):
        capp.record.apply_async((i,), queue=queue)
    start = time.perf_counter()
    capp.app.control.add_consumer(queue, destination=[node.hostname], reply=True, timeout=10)
    poll_until(lambda: r.scard("done") >= n, 600, every=0.005)  # light on the broker
    elapsed = time.perf_counter() - start
    capp.app.control.cancel_consumer(queue, destination=[node.hostname], reply=True, timeout=10)
    return n / elapsed


def row_worker_lost(capp, r):
    result = capp.die.delay(3)
    try:
        result.get(timeout=60)
    except Exception:
        seen = time.time()
    else:
        raise AssertionError("the task did not fail")
    return seen - float(r.get("died_at"))


def row_hard_limit(capp, r):
    result = capp.sleep.apply_async((30,), time_limit=1)
    try:
        result.get(timeout=60)
    except Exception:
        seen = time.time()
    return seen - float(r.get("slept_from")) - 1.0


def row_soft_limit(capp):
    kind, after = capp.sleep_soft.apply_async((30,), soft_time_limit=1).get(timeout=60)
    assert kind == "soft"
    return after - 1.0


def row_revoke(capp, r, key):
    result = capp.block.delay(key, 30)
    pid = int(wait_until(lambda: r.get(f"{key}:started"), 60, "the task to start"))
    start = time.perf_counter()
    capp.app.control.revoke(result.id, terminate=True, signal="SIGKILL")
    poll_until(lambda: not alive(pid))
    gone = time.perf_counter() - start
    poll_until(lambda: result.state == "REVOKED")
    return gone, time.perf_counter() - start


def measure(capp, r, node, reps, n_round, n_burst):
    rows = {}
    capp.add.delay(0, 0).get(timeout=60)  # warm
    rows["round trip"] = statistics.median(row_round_trip(capp, n_round) for _ in range(reps))
    rows["burst"] = statistics.median(row_burst(capp, r, node, n_burst, f"burst{i}")
                                      for i in range(reps))
    rows["lost"] = statistics.median(row_worker_lost(capp, r) for _ in range(reps))
    rows["hard"] = statistics.median(row_hard_limit(capp, r) for _ in range(reps))
    rows["soft"] = statistics.median(row_soft_limit(capp) for _ in range(reps))
    revokes = [row_revoke(capp, r, f"rv{i}") for i in range(reps)]
    rows["revoke gone"] = statistics.median(g for g, _ in revokes)
    rows["revoke seen"] = statistics.median(s for _, s in revokes)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer reps")
    args = parser.parse_args()
    reps = 3 if args.quick else 7
    n_round, n_burst = (50, 500) if args.quick else (300, 3000)
    server = RedisServer()
    os.environ["LIBBILLIARD_TEST_BROKER"] = server.url
    import celery_app as capp
    table = {}
    try:
        for name, pool in SUBJECTS:
            node = Node(server.url, name=f"bench-{name}", concurrency=2, pool=pool)
            try:
                node.wait_ready(capp.app)
                table[name] = measure(capp, server.client, node, reps, n_round, n_burst)
            finally:
                node.stop()
                node.cleanup()
    finally:
        server.stop()
    ours, peer = table["libbilliard"], table["prefork"]
    ms = 1000
    print("| row | libbilliard.celery | prefork | ours vs prefork |")
    print("|---|---|---|---|")
    print(f"| round trip (`add.delay().get()`, median of {n_round}) | "
          f"{ours['round trip'] * ms:.2f} ms | {peer['round trip'] * ms:.2f} ms | "
          f"{peer['round trip'] / ours['round trip']:.2f}x |")
    print(f"| burst of {n_burst:,} queued tasks | {ours['burst']:,.0f} tasks/s | "
          f"{peer['burst']:,.0f} tasks/s | {ours['burst'] / peer['burst']:.2f}x |")
    for key, label in (("lost", "os._exit in a task -> WorkerLostError at the client"),
                       ("hard", "hard limit 1 s: overshoot seen at the client"),
                       ("soft", "soft limit 1 s: overshoot inside the task"),
                       ("revoke gone", "revoke(terminate=True) -> worker gone"),
                       ("revoke seen", "revoke(terminate=True) -> REVOKED at the client")):
        # A limit may fire a fraction of a millisecond early (negative): no
        # ratio of two such numbers means much, so those rows show none.
        ratio = f"{peer[key] / ours[key]:.1f}x" if min(ours[key], peer[key]) > 0.0005 else "-"
        print(f"| {label} | {ours[key] * ms:.1f} ms | {peer[key] * ms:.1f} ms | {ratio} |")


if __name__ == "__main__":
    main()
