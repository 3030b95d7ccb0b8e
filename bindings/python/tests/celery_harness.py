"""A real redis-server and real `celery worker` processes for the Celery
tests and the benchmark. Nothing is mocked: the server is Debian's
redis-server on a free loopback port (no persistence), stopped by its pid;
each node is `python -m celery worker` in a session of its own."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from helpers import alive  # noqa: F401 (the tests and the benchmark take it from here)

HERE = os.path.dirname(os.path.abspath(__file__))
OUR_POOL = "libbilliard.celery:TaskPool"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout=60, what="a condition"):
    """Polls ``check`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def children(pid):
    """The pids whose parent is ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def descendants(pid):
    out = []
    for child in children(pid):
        out.append(child)
        out.extend(descendants(child))
    return out


class RedisServer:
    """redis-server on a free loopback port, no persistence."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="libbilliard-redis-")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis
        self.client = redis.Redis(port=self.port)
        wait_until(self._pong, 30, "redis-server to answer")

    def _pong(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {self.proc.returncode}")
        try:
            return self.client.ping()
        except Exception:
            return False

    def stop(self):
        self.client.close()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """One `celery worker` process (a node) on ``url``, its output in a
    log file of its own (kept if LIBBILLIARD_TEST_KEEP_LOGS is set).

    ``pool``: the worker_pool setting (ours, or "prefork"); ``via_env``
    selects ours with CELERY_CUSTOM_WORKER_POOL and ``-P custom`` instead;
    ``conf``: more Celery settings; ``args``: more command-line arguments.
    """

    def __init__(self, url, name="n1", concurrency=2, pool=OUR_POOL, conf=None, args=(),
                 via_env=False, env=None):
        self.name = name
        self.hostname = f"{name}@{socket.gethostname()}"
        fd, self.logpath = tempfile.mkstemp(prefix=f"libbilliard-celery-{name}-", suffix=".log")
        self.log = os.fdopen(fd, "wb")
        environ = dict(os.environ, LIBBILLIARD_TEST_BROKER=url,
                       LIBBILLIARD_TEST_CONF=json.dumps(conf or {}),
                       PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
        argv = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-n", self.hostname,
                "-c", str(concurrency), "-l", "info", "--without-mingle", "--without-gossip",
                *args]
        if via_env:
            environ["CELERY_CUSTOM_WORKER_POOL"] = OUR_POOL
            environ["LIBBILLIARD_TEST_POOL"] = "solo"  # the setting must not be what selects it
            argv += ["-P", "custom"]
        else:
            environ["LIBBILLIARD_TEST_POOL"] = pool
        environ.update(env or {})
        self.proc = subprocess.Popen(argv, cwd=HERE, env=environ, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def wait_ready(self, app, timeout=90):
        """Waits until the node answers a ping."""

        def answered():
            if self.proc.poll() is not None:
                raise AssertionError(f"celery worker exited: {self.proc.returncode}\n"
                                     + self.output())
            return app.control.ping(destination=[self.hostname], timeout=0.5)

        wait_until(answered, timeout, f"{self.hostname} to answer")
        return self

    def inspect(self, app, timeout=10):
        return app.control.inspect(destination=[self.hostname], timeout=timeout)

    def stats(self, app):
        """This node's `inspect stats` (retried: a busy node may answer late)."""
        return wait_until(lambda: (self.inspect(app).stats() or {}).get(self.hostname), 60,
                          "stats")

    def pool_pids(self, app):
        return self.stats(app)["pool"]["processes"]

    def log_text(self):
        """Everything the node wrote."""
        self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def output(self):
        """The end of what the node wrote (for an assertion's message)."""
        return self.log_text()[-8000:]

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout=90):
        return self.proc.wait(timeout)

    def stop(self, timeout=90):
        """Warm shutdown (SIGTERM) and its exit status."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        """SIGKILL to the node alone (its pool must end by itself)."""
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        self.proc.wait()

    def cleanup(self):
        """Ends everything of the node, whatever the test did."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()
        if not os.environ.get("LIBBILLIARD_TEST_KEEP_LOGS"):
            os.unlink(self.logpath)
