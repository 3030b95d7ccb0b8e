"""The Celery app the Celery tests and benchmark run: real tasks that
record what happened in the test's own redis-server.

Set by the environment (the harness sets them): LIBBILLIARD_TEST_BROKER
(the redis URL, broker and result backend), LIBBILLIARD_TEST_POOL (the
worker pool: ours by default, or "prefork"), LIBBILLIARD_TEST_CONF (JSON:
more settings, such as time limits).
"""
import json
import os
import signal
import threading
import time

import redis
from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded
from celery.worker.control import inspect_command

URL = os.environ.get("LIBBILLIARD_TEST_BROKER", "redis://127.0.0.1:6379/0")

app = Celery("celery_app", broker=URL, backend=URL)
app.conf.update(
    worker_pool=os.environ.get("LIBBILLIARD_TEST_POOL", "libbilliard.celery:TaskPool"),
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_pool_restarts=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)
app.conf.update(json.loads(os.environ.get("LIBBILLIARD_TEST_CONF", "{}")))

_redis = {}

try:  # a module a test writes, then has Celery reload (pool_restart)
    import celery_reload_probe
except ImportError:
    celery_reload_probe = None


def db():
    """This process's connection to the test's redis (one per pid: a forked
    worker does not share its parent's socket)."""
    pid = os.getpid()
    if pid not in _redis:
        _redis.clear()
        _redis[pid] = redis.Redis.from_url(URL)
    return _redis[pid]


# Every import of this module, by pid: a pool worker forked from the fork
# server has it already and never imports it again.
db().rpush("imports", os.getpid())


@signals.worker_process_init.connect
def _process_init(**_):
    db().sadd("process_init", os.getpid())


@signals.worker_process_shutdown.connect
def _process_shutdown(pid=None, **_):
    db().sadd("process_shutdown", pid or os.getpid())


@inspect_command()
def threads(state):
    """The names of the threads of the worker's main process."""
    return {"threads": [t.name for t in threading.enumerate()]}


@app.task
def add(x, y):
    return x + y


@app.task
def probe_value():
    return celery_reload_probe.VALUE


@app.task
def whoami():
    return os.getpid()


@app.task
def barrier(key, n, timeout=60):
    """Returns once ``n`` tasks entered the barrier ``key`` (concurrency)."""
    r = db()
    r.incr(key)
    deadline = time.monotonic() + timeout
    while int(r.get(key)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"barrier {key}: only {int(r.get(key))} of {n} came")
        time.sleep(0.01)
    return os.getpid()


@app.task
def block(key, seconds):
    """Marks ``key:started`` (with its pid), runs ``seconds``, then marks
    ``key:done``. A SIGUSR2 is recorded in ``key:signal`` before it kills."""

    def on_usr2(signum, _frame):
        db().set(f"{key}:signal", signum)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGUSR2, on_usr2)
    r = db()
    r.set(f"{key}:started", os.getpid())
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)
    r.set(f"{key}:done", os.getpid())
    return os.getpid()


@app.task
def die(code=3):
    db().set("died_at", repr(time.time()))
    os._exit(code)


@app.task(acks_late=True, reject_on_worker_lost=True)
def die_once(key):
    """Its worker dies the first time; the redelivered message succeeds."""
    attempt = db().incr(key)
    if attempt == 1:
        os._exit(9)
    return attempt


@app.task
def sleep(seconds):
    db().set("slept_from", repr(time.time()))
    time.sleep(seconds)
    return seconds


@app.task
def sleep_soft(seconds):
    """Sleeps; a soft limit raised inside it is caught: returns how long
    after its start it came."""
    start = time.time()
    db().set("slept_from", repr(start))
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return ["soft", time.time() - start]
    return ["slept", time.time() - start]


_hoard = []


@app.task
def hog(mib):
    """Keeps ``mib`` MiB, touched, in the worker; returns its pid."""
    _hoard.append(bytearray(b"x" * (mib << 20)))
    return os.getpid()


@app.task(acks_late=True, reject_on_worker_lost=True)
def record(i, pause=0.0):
    """Records that task ``i`` completed (idempotent: a set)."""
    if pause:
        time.sleep(pause)
    db().sadd("done", i)
    return i
