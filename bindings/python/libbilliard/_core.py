"""The byte-level pool of libbilliard: BytesPool ships bytes to workers.

    import sys, libbilliard
    with libbilliard.BytesPool([sys.executable, "worker.py"], workers=4) as pool:
        task = pool.submit(b"hello")
        print(task.result().value())

Imported as ``libbilliard`` so that it never shadows Celery's ``billiard``.
Workers are separate programs (SPAWN by default, safe in any host) that call
:func:`worker_main`, or, with ``BytesPool(handler=fn)``, forks of this process:
a fork server forked with ``os.fork`` (so the interpreter's at-fork
handlers run) serves them, and ``fn`` with everything loaded before the
pool was made comes along. Every task ends with exactly one
:class:`Result`; its bytes are copied into Python and the C result is
freed at once. Errors are :class:`BilliardError` (with ``code``, ``name``
and the library's message). Waits release the GIL and wake at least every
200 ms, so Ctrl-C works. The library calls into Python from its own thread
only to fork a replacement fork server (``handler=`` pools).
"""
import asyncio
import atexit
import collections
import contextlib
import ctypes
import enum
import math
import os
import signal as _signal
import sys
import threading
import time
import weakref
from dataclasses import dataclass

from ._lib import (ABI_VERSION, AFTER_FORK, AT_EXIT, FORK_SERVER, HANDLER, LIMIT_DEFAULT,
                   LIMIT_NONE, SONAME, SUBMIT_NONBLOCK, Notice as _Notice, Stats, TaskInfo,
                   TaskOpts, WorkerHooks, WorkerInfo, fast, lib)
from . import _lib
from .exceptions import SoftTimeLimitExceeded

__all__ = [
    "ABI_VERSION", "SONAME", "BilliardError", "Closed", "Full", "NotFound", "Notice",
    "NoticeKind", "Outcome", "BytesPool", "Result", "SoftTimeLimitExceeded", "SpawnError",
    "StartMethod", "Task", "TaskError", "TaskState", "TaskStatus", "Timeout", "Worker",
    "WorkerState", "soft_limit_reached", "version", "worker_main",
]

# How long one blocking call into the library may last, so that signals
# (KeyboardInterrupt) are seen while a wait runs.
_WAIT_SLICE_MS = 200


def version():
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return lib.billiard_version().decode()


class Outcome(enum.IntEnum):
    """How a task ended (BILLIARD_OUTCOME_*)."""
    OK = 0
    FAILED = 1
    WORKER_LOST = 2
    TIME_LIMIT = 3
    CANCELLED = 4
    ABANDONED = 5
    MEMORY_LIMIT = 6


class StartMethod(enum.IntEnum):
    """How workers start (BILLIARD_START_*)."""
    FORK = 0
    SPAWN = 1
    FORKSERVER = 2


class NoticeKind(enum.IntEnum):
    """What a Notice says (BILLIARD_NOTICE_*)."""
    STARTED = 1
    SOFT_LIMIT = 2
    WORKER_STARTED = 4  # a worker started (pid; task_id and tag 0)
    WORKER_EXITED = 8  # a worker exited and was reaped (pid; no task)


class TaskState(enum.IntEnum):
    """Where a task is (BILLIARD_TASK_*)."""
    QUEUED = 1
    SENT = 2
    RUNNING = 3
    DONE = 4


class WorkerState(enum.IntEnum):
    """A worker's state (BILLIARD_WORKER_*)."""
    STARTING = 0
    IDLE = 1
    BUSY = 2
    RETIRING = 3
    STOPPING = 4


@dataclass(frozen=True)
class Notice:
    """Something that happened to a task before its result
    (:meth:`BytesPool.notices`)."""
    kind: NoticeKind
    task_id: int
    tag: int
    pid: int  # the worker running the task
    time: float  # when, in seconds since the epoch (time.time())
    elapsed: float  # STARTED: from submit to start; SOFT_LIMIT: from start


@dataclass(frozen=True)
class TaskStatus:
    """Where a task is now (:meth:`Task.status`)."""
    state: TaskState
    pid: int  # the worker holding or running it; 0 if none
    tag: int
    started: float  # RUNNING: when it started (time.time()); else None


@dataclass(frozen=True)
class Worker:
    """One worker process (:meth:`BytesPool.workers`)."""
    pid: int
    state: WorkerState
    task_id: int  # the task it runs now; 0 if none
    tasks_done: int
    rss_bytes: int


class BilliardError(Exception):
    """A libbilliard call failed: ``code`` (BILLIARD_E*), ``name`` and ``message``."""

    def __init__(self, code, message):
        self.code = code
        self.name = lib.billiard_errname(code).decode()
        self.message = message
        super().__init__(f"{self.name}: {message}")

    def __reduce__(self):  # picklable, like any exception a task may raise
        return type(self), (self.code, self.message)


class Timeout(BilliardError, TimeoutError):
    """BILLIARD_ETIMEDOUT: the wait's time ran out."""


class Closed(BilliardError):
    """BILLIARD_ECLOSED: the pool takes no more tasks."""


class Full(BilliardError):
    """BILLIARD_EFULL: the queue is full and the submit was not to block."""


class NotFound(BilliardError, LookupError):
    """BILLIARD_ENOTFOUND: no such pending task (or nothing to wait for)."""


class SpawnError(BilliardError):
    """BILLIARD_ESPAWN: workers could not start."""


_ERRORS = {_lib.ETIMEDOUT: Timeout, _lib.ECLOSED: Closed, _lib.EFULL: Full,
           _lib.ENOTFOUND: NotFound, _lib.ESPAWN: SpawnError}


def _error(code):
    detail = lib.billiard_last_error()
    message = detail.decode(errors="replace") if detail else lib.billiard_strerror(code).decode()
    return _ERRORS.get(code, BilliardError)(code, message)


def _check(rc):
    if rc < 0:
        raise _error(rc)
    return rc


class TaskError(Exception):
    """Raised by :meth:`Result.value` for a task that did not end OK."""

    def __init__(self, result):
        self.result = result
        super().__init__(f"task {result.task_id}: {result.outcome.name}: "
                         f"{result.data.decode(errors='replace')}")

    def __reduce__(self):
        return type(self), (self.result,)


@dataclass(frozen=True)
class Result:
    """A finished task, copied out of the library."""
    task_id: int
    tag: int
    outcome: Outcome
    data: bytes  # the reply when OK; else what went wrong, as text
    pid: int  # the worker that ran it; 0 if none did
    exit_code: int  # the worker's exit code when it exited; -1 if not
    signal: int  # the signal that killed the worker; 0 if none
    queued_us: int
    running_us: int

    @property
    def ok(self):
        return self.outcome is Outcome.OK

    def value(self):
        """The reply's bytes; raises TaskError unless the task ended OK."""
        if not self.ok:
            raise TaskError(self)
        return self.data


def _ran(result):
    """Whether a finished task had started."""
    return result.running_us > 0 or result.outcome in (
        Outcome.OK, Outcome.FAILED, Outcome.WORKER_LOST, Outcome.MEMORY_LIMIT, Outcome.TIME_LIMIT)


def _take(ptr):
    """Copies the C result at ``ptr`` into a Result and frees it (calls that
    never block: the GIL is kept)."""
    try:
        size = ctypes.c_size_t(0)
        data = fast.billiard_result_data(ptr, ctypes.byref(size))
        return Result(
            task_id=fast.billiard_result_task_id(ptr),
            tag=fast.billiard_result_tag(ptr),
            outcome=Outcome(fast.billiard_result_outcome(ptr)),
            data=ctypes.string_at(data, size.value) if size.value else b"",
            pid=fast.billiard_result_pid(ptr),
            exit_code=fast.billiard_result_exit_code(ptr),
            signal=fast.billiard_result_signal(ptr),
            queued_us=fast.billiard_result_queued_us(ptr),
            running_us=fast.billiard_result_running_us(ptr),
        )
    finally:
        fast.billiard_result_free(ptr)


def _take_notices(handle, batch, row):
    """Every notice waiting in the pool ``handle``, oldest first, each made
    into ``row(struct)`` (read through ``batch``, an array of the C struct,
    reused; calls that never block, so the GIL is kept)."""
    out = []
    count = ctypes.c_size_t()
    while True:
        _check(fast.billiard_pool_notices(handle, batch, len(batch), ctypes.byref(count)))
        out.extend(row(n) for n in batch[:count.value])
        if count.value < len(batch):
            return out


def _limit_ms(seconds):
    """A per-task limit: None is the pool's, math.inf none, else seconds."""
    if seconds is None:
        return LIMIT_DEFAULT
    if seconds == math.inf:
        return LIMIT_NONE
    if seconds <= 0:
        raise ValueError("a time limit is positive (math.inf for none)")
    return max(1, round(seconds * 1000))


def _ms(seconds):
    return max(1, round(seconds * 1000))


def _sliced(timeout, call):
    """Calls ``call(ms)``, a blocking library call, in slices of at most
    200 ms until it returns something else than ETIMEDOUT or ``timeout``
    (seconds; None: forever) passes, so Python sees signals meanwhile."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        slice_ms = _WAIT_SLICE_MS
        if deadline is not None:
            slice_ms = max(0, min(slice_ms, math.ceil((deadline - time.monotonic()) * 1000)))
        rc = call(slice_ms)
        if rc != _lib.ETIMEDOUT or (deadline is not None and time.monotonic() >= deadline):
            return rc


class _Gate:
    """The close rule: calls into the library enter the gate; closing shuts
    it (later calls raise Closed), then waits for the calls in flight,
    which the library's terminate has woken, before the pool is freed. So
    no thread is ever inside a pool that another thread frees."""

    def __init__(self):
        # A plain lock (not an RLock), taken directly: entering is on every
        # call's path.
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._in_flight = 0
        self._closed = False

    @contextlib.contextmanager
    def enter(self, ptr):
        self.acquire()
        try:
            yield ptr
        finally:
            self.release()

    def acquire(self):
        """Enters the gate (a call begins); Closed once it is shut. Pair
        with release(); enter() does both."""
        with self._lock:
            if self._closed:
                raise Closed(_lib.ECLOSED, "the pool was shut down")
            self._in_flight += 1

    def release(self):
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0 and self._closed:
                self._cv.notify_all()

    def shut(self):
        """Refuses new calls; True for the first caller only."""
        with self._cv:
            first = not self._closed
            self._closed = True
            return first

    def drain(self):
        """Waits until no call is in flight."""
        with self._cv:
            while self._in_flight:
                self._cv.wait()


class Task:
    """A submitted task: a handle like concurrent.futures.Future.

    ``result()`` blocks (GIL released); ``await task`` waits in asyncio
    through the pool's fd. Each result is delivered once.
    """

    def __init__(self, pool, task_id):
        self.pool = pool
        self.id = task_id
        self._result = None  # once collected through this Task

    def result(self, timeout=None):
        """Waits for this task's Result (``timeout`` in seconds; None waits
        forever). Raises Timeout, or NotFound if it was collected already."""
        self._result = self.pool._wait(timeout, lambda h, ms, out: lib.billiard_task_wait(
            h, self.id, ms, out))
        return self._result

    def cancel(self, signal=None):
        """Cancels the task; True if it was pending (it then ends CANCELLED),
        False if it had finished already. ``signal`` is the first signal a
        running task's worker gets instead of SIGTERM (SIGKILL: at once;
        SIGKILL follows any other after the kill grace)."""
        with self.pool._call() as h:
            if signal is None:
                rc = lib.billiard_task_cancel(h, self.id)
            else:
                rc = lib.billiard_task_cancel_signal(h, self.id, int(signal))
        if rc == _lib.ENOTFOUND:
            return False
        _check(rc)
        return True

    def signal(self, signal):
        """Sends ``signal`` to the worker running this task, without
        cancelling it; True if it was sent, False if the task is not
        running (queued, not started, or finished). Never reaches the task
        after it on that worker."""
        with self.pool._call() as h:
            rc = lib.billiard_task_signal(h, self.id, int(signal))
        if rc == _lib.ENOTFOUND:
            return False
        _check(rc)
        return True

    def status(self):
        """Where the task is now (a TaskStatus); NotFound once its result
        was collected."""
        info = TaskInfo()
        info.struct_size = ctypes.sizeof(TaskInfo)
        with self.pool._call() as h:
            _check(lib.billiard_task_status(h, self.id, ctypes.byref(info)))
        return TaskStatus(state=TaskState(info.state), pid=info.pid, tag=info.tag,
                          started=info.started_us / 1e6 if info.started_us else None)

    def started(self):
        """True once a worker started the task (billiard's
        ApplyResult.accepted()): it runs, or it finished after running
        (then judged from its result: a task cancelled or abandoned before
        it ran never started). A result collected elsewhere (pool.wait)
        counts as started."""
        if self._result is not None:
            return _ran(self._result)
        try:
            status = self.status()
        except NotFound:
            return True
        return status.state is TaskState.RUNNING or (
            status.state is TaskState.DONE and status.pid != 0)

    @property
    def pid(self):
        """The worker holding or running the task now (None if none)."""
        try:
            return self.status().pid or None
        except NotFound:
            return None

    def __await__(self):
        return self.pool._bridge().result_of(self.id).__await__()

    def __repr__(self):
        return f"<libbilliard.Task {self.id}>"


class _AsyncBridge:
    """Delivers results to asyncio: the pool's fd is watched with
    loop.add_reader, and results are drained without blocking when it is
    readable (on the loop's own thread: no library thread calls Python)."""

    def __init__(self, pool, loop):
        self.pool = pool
        self.loop = loop
        self.by_task = {}  # task id -> future
        self.any = collections.deque()  # futures of wait_async()
        self.ready = {}  # task id -> Result nobody awaited yet
        loop.add_reader(pool.fileno(), self.drain)

    def drain(self):
        out = ctypes.c_void_p()
        with self.pool._call() as h:
            while lib.billiard_pool_wait(h, 0, ctypes.byref(out)) == 0:
                self.deliver(_take(out))
        # Notices keep the fd readable too: they wait in the pool's backlog
        # for notices() instead of waking the loop again and again.
        self.pool._notice_backlog.extend(self.pool._read_notices())

    def deliver(self, result):
        future = self.by_task.pop(result.task_id, None)
        while future is None and self.any:
            future = self.any.popleft()
            if future.done():
                future = None
        if future is not None and not future.done():
            future.set_result(result)
        else:
            self.ready[result.task_id] = result

    def result_of(self, task_id):
        future = self.loop.create_future()
        if task_id in self.ready:
            future.set_result(self.ready.pop(task_id))
        else:
            self.by_task[task_id] = future
        return future

    def next_result(self):
        future = self.loop.create_future()
        if self.ready:
            future.set_result(self.ready.pop(next(iter(self.ready))))
        else:
            self.any.append(future)
        return future

    def detach(self):
        self.loop.remove_reader(self.pool.fileno())
        for future in list(self.by_task.values()) + list(self.any):
            if not future.done():
                future.set_exception(Closed(_lib.ECLOSED, "the pool was shut down"))


class BytesPool:
    """A pool of worker processes running ``worker`` (an argv list; the
    program calls :func:`worker_main`), or, with ``handler`` instead (a
    function bytes -> bytes), forks of this process: the pool asks this
    process to fork a fork server (``os.fork``, on the thread creating the
    pool; a replacement for a server that died is forked on the pool's own
    thread), and every worker is forked from it, so ``handler`` and all
    the data loaded before the pool was made come along. ``after_fork``,
    ``at_exit`` and ``soft_limit_raises`` are as for :func:`worker_main`.

    Options (seconds for times; None leaves the library's default):
    ``workers`` (0: one per CPU), ``start_method`` (SPAWN by default;
    FORKSERVER starts the program once and forks it per worker), ``env``
    (extra variables), ``inherit_env``, ``cwd``, ``soft_time_limit``,
    ``hard_time_limit``, ``kill_grace``, ``max_tasks_per_worker``,
    ``max_queued`` (0: unbounded), ``prefetch``, ``start_timeout``,
    ``soft_memory_limit`` / ``hard_memory_limit`` (bytes),
    ``restart_intensity`` ((max restarts, period in seconds)), ``notices``
    (True: keep started and soft-limit notices for :meth:`notices`).

    Close it with :meth:`shutdown` or a ``with`` block; if it is lost
    instead, a finalizer frees it (its workers are stopped and reaped).
    Thread-safe, as the C pool is.
    """

    def __init__(self, worker=None, workers=0, *, handler=None, after_fork=None, at_exit=None,
                 soft_limit_raises=False, payload_view=False, start_method=StartMethod.SPAWN,
                 env=None,
                 inherit_env=True, cwd=None, soft_time_limit=None, hard_time_limit=None,
                 kill_grace=None, max_tasks_per_worker=None, max_queued=0, prefetch=None,
                 start_timeout=None, soft_memory_limit=None, hard_memory_limit=None,
                 restart_intensity=None, notices=False):
        if (worker is None) == (handler is None):
            raise TypeError("BytesPool needs a worker program (argv) or a handler, not both")
        # ctypes callbacks the library may call while the pool lives.
        self._callbacks = []
        cfg = ctypes.c_void_p()
        _check(lib.billiard_config_new(ctypes.byref(cfg)))
        try:
            _check(lib.billiard_config_set_workers(cfg, workers))
            if handler is not None:
                fork_server = FORK_SERVER(_server_forker(handler, after_fork, at_exit,
                                                         soft_limit_raises, payload_view))
                self._callbacks.append(fork_server)
                _check(lib.billiard_config_set_fork_server_callback(cfg, fork_server, None))
            else:
                if after_fork or at_exit or soft_limit_raises or payload_view:
                    raise TypeError("after_fork, at_exit, soft_limit_raises and payload_view go "
                                    "with handler=; a worker program passes them to worker_main")
                if isinstance(worker, (str, bytes, os.PathLike)):
                    worker = [worker]
                argv = [os.fsencode(a) for a in worker]
                _check(lib.billiard_config_set_start_method(cfg, int(start_method)))
                _check(lib.billiard_config_set_worker_argv(
                    cfg, (ctypes.c_char_p * len(argv))(*argv), len(argv)))
            if notices:
                _check(lib.billiard_config_set_notices(
                    cfg, _lib.NOTICE_STARTED | _lib.NOTICE_SOFT_LIMIT))
            _check(lib.billiard_config_set_worker_env_inherit(cfg, inherit_env))
            for name, value in (env or {}).items():
                _check(lib.billiard_config_set_worker_env(cfg, os.fsencode(name),
                                                          os.fsencode(value)))
            if cwd is not None:
                _check(lib.billiard_config_set_worker_cwd(cfg, os.fsencode(cwd)))
            _check(lib.billiard_config_set_max_queued(cfg, max_queued))
            if prefetch is not None:
                _check(lib.billiard_config_set_prefetch(cfg, prefetch))
            if start_timeout is not None:
                _check(lib.billiard_config_set_start_timeout(cfg, _ms(start_timeout)))
            if soft_time_limit is not None:
                _check(lib.billiard_config_set_soft_time_limit(cfg, _ms(soft_time_limit)))
            if hard_time_limit is not None:
                _check(lib.billiard_config_set_hard_time_limit(cfg, _ms(hard_time_limit)))
            if kill_grace is not None:
                _check(lib.billiard_config_set_kill_grace(cfg, round(kill_grace * 1000)))
            if max_tasks_per_worker is not None:
                _check(lib.billiard_config_set_max_tasks_per_worker(cfg, max_tasks_per_worker, 0))
            if soft_memory_limit is not None:
                _check(lib.billiard_config_set_soft_memory_limit(cfg, soft_memory_limit))
            if hard_memory_limit is not None:
                _check(lib.billiard_config_set_hard_memory_limit(cfg, hard_memory_limit))
            if restart_intensity is not None:
                restarts, period = restart_intensity
                _check(lib.billiard_config_set_restart_intensity(cfg, restarts, _ms(period)))
            handle = ctypes.c_void_p()
            _check(lib.billiard_pool_new(cfg, ctypes.byref(handle)))
        finally:
            lib.billiard_config_free(cfg)
        self._ptr = handle.value
        self._fd = lib.billiard_pool_fd(self._ptr)
        self._async = None
        self._notice_backlog = []  # notices the asyncio bridge read for notices()
        self._gate = _Gate()
        # The safety net: frees the pool (stopping its workers) if it is
        # dropped without shutdown() (no call can be in flight then: a
        # call holds the pool).
        self._finalizer = weakref.finalize(self, lib.billiard_pool_free, self._ptr)

    def _call(self):
        """``with pool._call() as handle``: a call into the library that
        shutdown() waits for (Closed once it has started)."""
        return self._gate.enter(self._ptr)

    def submit(self, data, *, tag=0, soft_time_limit=None, hard_time_limit=None, block=True):
        """Submits ``data`` (bytes-like; str is encoded as UTF-8) and returns
        its Task. Per-task limits in seconds: None takes the pool's,
        math.inf none. Blocks while a bounded queue is full unless
        ``block=False`` (then Full is raised)."""
        if isinstance(data, str):
            data = data.encode()
        else:
            try:
                data = bytes(memoryview(data))
            except TypeError:
                raise TypeError("submit takes bytes-like data or str, not "
                                f"{type(data).__name__}") from None
        opts = None  # the defaults: no options struct to build
        if tag or not block or soft_time_limit is not None or hard_time_limit is not None:
            opts = TaskOpts()
            lib.billiard_task_opts_init(ctypes.byref(opts))
            opts.tag = tag
            opts.flags = 0 if block else SUBMIT_NONBLOCK
            opts.soft_time_limit_ms = _limit_ms(soft_time_limit)
            opts.hard_time_limit_ms = _limit_ms(hard_time_limit)
            opts = ctypes.byref(opts)
        task_id = ctypes.c_uint64()
        with self._call() as h:
            _check(lib.billiard_pool_submit(h, data, len(data), opts, ctypes.byref(task_id)))
        return Task(self, task_id.value)

    def map(self, items, timeout=None):
        """Submits every item and returns their replies' bytes in order;
        raises TaskError for the first task that did not end OK."""
        tasks = [self.submit(item) for item in items]
        return [task.result(timeout).value() for task in tasks]

    def wait(self, timeout=None):
        """The next finished task's Result, whichever it is; None when no
        task is pending and no result waits. Raises Timeout."""
        try:
            return self._wait(timeout, lib.billiard_pool_wait)
        except NotFound:
            return None

    def results(self, timeout=None):
        """Yields every Result until none is pending."""
        while True:
            result = self.wait(timeout)
            if result is None:
                return
            yield result

    def _wait(self, timeout, call):
        """``call(handle, ms, out)`` in slices, inside the gate."""
        out = ctypes.c_void_p()
        with self._call() as h:
            rc = _sliced(timeout, lambda ms: call(h, ms, ctypes.byref(out)))
        if rc != 0:
            raise _error(rc)
        return _take(out)

    async def wait_async(self):
        """The next finished task's Result, in asyncio (through the fd)."""
        return await self._bridge().next_result()

    def _bridge(self):
        loop = asyncio.get_running_loop()
        if self._async is None:
            self._async = _AsyncBridge(self, loop)
        elif self._async.loop is not loop:
            raise RuntimeError("this pool is attached to another event loop")
        return self._async

    def fileno(self):
        """The pool's fd: readable while results or notices wait (for
        select/selectors)."""
        with self._call():
            return self._fd

    def stats(self):
        """The pool's counters as a dict (see billiard_stats)."""
        stats = Stats()
        stats.struct_size = ctypes.sizeof(Stats)
        with self._call() as h:
            _check(lib.billiard_pool_stats(h, ctypes.byref(stats)))
        out = {name: getattr(stats, name) for name, _ in Stats._fields_
               if name not in ("struct_size", "reserved", "outcomes")}
        out["outcomes"] = {o: stats.outcomes[o] for o in Outcome}
        return out

    def workers(self):
        """Every worker now, as Worker (pid, state, the task it runs,
        tasks done, RSS): all of them (the list grows to what the library
        reports)."""
        room = 64
        with self._call() as h:
            while True:
                infos = (WorkerInfo * room)()
                count = ctypes.c_size_t()
                _check(lib.billiard_pool_workers(h, infos, room, ctypes.byref(count)))
                if count.value <= room:
                    return [Worker(pid=w.pid, state=WorkerState(w.state), task_id=w.task_id,
                                   tasks_done=w.tasks_done, rss_bytes=w.rss_bytes)
                            for w in infos[:count.value]]
                room = count.value + 16

    def worker_pids(self):
        """The pids of the pool's workers now (all of them)."""
        return [w.pid for w in self.workers()]

    def set_notices(self, started=False, soft_limit=False, workers=False):
        """Changes which notices the pool keeps from now on (as
        ``notices=`` does at the start): a task that starts after
        ``started`` is turned on has its notice at once; one that started
        before has it with its result if ``started`` is still on then.
        ``workers``: a WORKER_STARTED and a WORKER_EXITED notice for each
        worker that starts or exits from now on. Notices already waiting
        stay until read."""
        kinds = (_lib.NOTICE_STARTED if started else 0) | \
            (_lib.NOTICE_SOFT_LIMIT if soft_limit else 0) | \
            (_lib.NOTICE_WORKER_STARTED | _lib.NOTICE_WORKER_EXITED if workers else 0)
        with self._call() as h:
            _check(lib.billiard_pool_set_notices(h, kinds))

    def notices(self):
        """Every notice waiting (a list of Notice, oldest first; empty when
        none), without waiting and without taking a result. Kept only for
        pools made with ``notices=True``; the pool's fd is readable while
        one waits."""
        out, self._notice_backlog = self._notice_backlog, []
        out.extend(self._read_notices())
        return out

    def _read_notices(self):
        with self._call() as h:
            return _take_notices(h, (_Notice * 64)(), lambda n: Notice(
                kind=NoticeKind(n.kind), task_id=n.task_id, tag=n.tag, pid=n.pid,
                time=n.time_us / 1e6, elapsed=n.elapsed_us / 1e6))

    def resize(self, workers):
        """Grows or shrinks the pool (shrinking retires workers after the
        tasks they hold)."""
        with self._call() as h:
            _check(lib.billiard_pool_resize(h, workers))

    def restart(self):
        """Replaces every worker, each after the tasks it holds."""
        with self._call() as h:
            _check(lib.billiard_pool_restart(h))

    def close(self):
        """Takes no more tasks; those queued and running still finish."""
        with self._call() as h:
            _check(lib.billiard_pool_close(h))

    def join(self, timeout=None):
        """After close(): waits until every task finished and every worker
        is reaped (Timeout if it takes longer)."""
        with self._call() as h:
            _check(_sliced(timeout, lambda ms: lib.billiard_pool_join(h, ms)))

    def terminate(self):
        """Stops every worker now; unfinished tasks end ABANDONED."""
        with self._call() as h:
            _check(lib.billiard_pool_terminate(h))

    def shutdown(self, wait=True):
        """Closes the pool for good: with ``wait``, lets queued and running
        tasks finish first; then stops and reaps every worker and frees
        the pool. Uncollected results are dropped. Idempotent, and safe
        while other threads are inside the pool: they are woken (their
        waits end, blocked submits raise Closed) and the pool is freed once
        they are out; calls made afterwards raise Closed."""
        if self._async is not None:
            self._async.detach()
            self._async = None
        if wait:
            try:
                self.close()
                self.join()
            except Closed:
                pass
        if not self._gate.shut():
            self._gate.drain()
            return
        # Terminate first: the library wakes every waiter and blocked submit.
        lib.billiard_pool_terminate(self._ptr)
        self._gate.drain()
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        # On an exception, do not wait for the remaining tasks.
        self.shutdown(wait=kind is None)


def _trampoline(handler, payload_view=False):
    """The C task handler calling ``handler(bytes)`` (with ``payload_view``:
    a bytes-like view of the library's buffer, valid during the call, so
    that a large payload is not copied): a str reply is encoded as UTF-8;
    an exception fails the task with its text; SystemExit ends the
    worker."""

    def trampoline(_ctx, data, length, reply):
        try:
            if not length:
                payload = b""
            elif payload_view:
                payload = (ctypes.c_char * length).from_address(data)
            else:
                payload = ctypes.string_at(data, length)
            out = handler(payload)
            if type(out) is not bytes:
                out = out.encode() if isinstance(out, str) else bytes(out or b"")
            # One thread runs in a worker: nothing gains from releasing the GIL.
            return 0 if fast.billiard_reply_write(reply, out, len(out)) == 0 else 1
        except SystemExit as exc:  # the handler ends the worker
            sys.stdout.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException as exc:  # the task fails; the worker goes on
            message = f"{type(exc).__name__}: {exc}".encode(errors="replace")
            lib.billiard_reply_error(reply, message.replace(b"\0", b" "))
            return 1

    return HANDLER(trampoline)


def _hooks(after_fork, at_exit, run_atexit):
    """The C worker hooks: ``after_fork()`` (an exception is a failed start,
    reported with its text), and at the worker's orderly end ``at_exit()``
    and then, with ``run_atexit``, Python's own atexit functions, which a
    forked worker's _exit would skip. (Not in the workers of a
    ``BytesPool(handler=...)``: they are forks of the host, whose atexit
    functions are the host's, as multiprocessing's forked children skip
    them too.) Returns the struct and the callbacks to keep alive."""

    def run_after_fork(_ctx):
        try:
            if after_fork is not None:
                after_fork()
            return 0
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}".encode(errors="replace")
            lib.billiard_worker_set_error(message.replace(b"\0", b" "))
            return 1

    def run_at_exit(_ctx):
        try:
            if at_exit is not None:
                at_exit()
        finally:
            if run_atexit:
                atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()

    keep = [AFTER_FORK(run_after_fork), AT_EXIT(run_at_exit)]
    hooks = WorkerHooks(struct_size=ctypes.sizeof(WorkerHooks), reserved=0,
                        after_fork=keep[0], at_exit=keep[1], ctx=None)
    return hooks, keep


def _raise_on_soft_limit(_signum, _frame):
    # Also a SIGUSR1 sent for another reason: only the soft limit raises.
    if soft_limit_reached():
        raise SoftTimeLimitExceeded("the task's soft time limit passed")


def worker_main(handler, *, after_fork=None, at_exit=None, soft_limit_raises=False,
                payload_view=False):
    """Runs a worker program: calls ``handler(bytes) -> bytes`` for each
    task until the pool closes the channel, then returns the exit code
    (use ``sys.exit(worker_main(handler))``). A str reply is encoded as
    UTF-8; an exception fails the task with its text. Raises BilliardError
    when the program was not started by a pool.

    ``after_fork()`` runs in each worker before its first task (under
    FORKSERVER: in each forked worker, not in the server); an exception
    there is a failed start, reported with its text. ``at_exit()`` runs
    when a worker exits in order (recycled, retired, pool closed), and
    then the functions registered with :mod:`atexit` (a FORKSERVER worker
    ends with _exit, which would skip them); neither runs on a crash, a
    kill or terminate. With ``soft_limit_raises``,
    a task whose soft time limit passes gets SoftTimeLimitExceeded raised
    in it (a SIGUSR1 handler), so even ``time.sleep`` stops there. With
    ``payload_view`` the handler gets a bytes-like view of the library's
    buffer instead of a bytes copy (valid only during the call)."""
    if soft_limit_raises:
        _signal.signal(_signal.SIGUSR1, _raise_on_soft_limit)
    callback = _trampoline(handler, payload_view)
    hooks, keep = _hooks(after_fork, at_exit, run_atexit=True)
    rc = lib.billiard_worker_main_hooks(callback, None, ctypes.byref(hooks))
    del keep
    return _check(rc)


def _server_forker(handler, after_fork, at_exit, soft_limit_raises, payload_view):
    """The fork-server callback of a ``BytesPool(handler=...)``: forks this
    process with os.fork; the child serves as the pool's fork server and
    never returns."""

    def fork_server(_ctx, server_fd):
        try:
            pid = os.fork()
        except OSError:
            return -1
        if pid != 0:
            return pid
        code = 2
        try:
            if soft_limit_raises:
                _signal.signal(_signal.SIGUSR1, _raise_on_soft_limit)
            callback = _trampoline(handler, payload_view)
            hooks, keep = _hooks(after_fork, at_exit, run_atexit=False)
            code = lib.billiard_forkserver_serve(server_fd, callback, None, ctypes.byref(hooks))
            del keep
        finally:
            os._exit(code if code >= 0 else 2)

    return fork_server


def soft_limit_reached():
    """Inside a worker: True once the running task's soft time limit passed."""
    return bool(lib.billiard_worker_soft_limit_reached())
