"""billiard's Pool API (billiard 4.3, multiprocessing.Pool) on libbilliard.

    from libbilliard import Pool

    def square(x):
        return x * x

    if __name__ == "__main__":
        with Pool(processes=3) as pool:
            print(pool.map(square, range(5)))

Calls are pickled and run by workers of a :class:`~libbilliard.BytesPool`:
by default a fork server started as ``python -c`` and forked per worker
(``context="forkserver"``), or spawned programs (``"spawn"``), or forks of
this process (``"fork"``: a fork server forked with ``os.fork``). Workers
import the host's main script as ``__mp_main__``, so functions and classes
defined there work, behind the ``if __name__ == "__main__":`` guard.

One thread of this process (the result thread) collects every result and
runs every callback, in result order; the library never calls Python
code. What differs from billiard is written next to each item, and in
the README.
"""
import ctypes
import itertools
import logging
import os
import pickle
import select
import signal as _signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from multiprocessing.pool import RemoteTraceback

from . import _core, _lib, _worker
from ._core import BilliardError, BytesPool, Closed, NotFound, Outcome, StartMethod
from ._lib import TaskOpts, fast, lib
from .exceptions import (RestartFreqExceeded, Terminated, TimeLimitExceeded, TimeoutError,
                         WorkerLostError)

__all__ = ["ApplyResult", "ExceptionInfo", "IMapIterator", "IMapUnorderedIterator", "MapResult",
           "Pool", "cpu_count"]

logger = logging.getLogger("libbilliard.pool")

RUN, CLOSE, TERMINATE = 0, 1, 2
_CONTEXTS = {"fork": StartMethod.FORK, "spawn": StartMethod.SPAWN,
             "forkserver": StartMethod.FORKSERVER}
# A setup this large goes through a file rather than the environment
# (one variable may hold at most 128 KiB).
_ENV_SETUP_MAX = 64 * 1024
_job_counter = itertools.count()
_OPTS_SIZE = ctypes.sizeof(TaskOpts)
_OK = int(Outcome.OK)
_dumps = pickle.dumps
_loads = pickle.loads
_PROTOCOL = pickle.HIGHEST_PROTOCOL
# A default map chunk is cut smaller when it pickles to more than this:
# large frames cost more per byte (fresh buffers fault in on both sides) and
# keep the other workers waiting (1 MiB items: 650 -> 1,500 MiB/s).
_CHUNK_BYTES = 1 << 20
# Makes one wait event per result when threads wait at once (ApplyResult.wait).
_WAIT_LOCK = threading.Lock()


def cpu_count():
    """The CPUs this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _mapstar(func, chunk):
    return list(map(func, chunk))


def _starmapstar(func, chunk):
    return list(itertools.starmap(func, chunk))


try:  # code written for billiard checks isinstance(x, billiard.einfo.ExceptionInfo)
    from billiard.einfo import ExceptionInfo as _BilliardExceptionInfo
except ImportError:
    _BilliardExceptionInfo = object


class ExceptionInfo(_BilliardExceptionInfo):
    """What ``error_callback`` gets (billiard's ExceptionInfo, and a
    subclass of it when billiard is installed): the task's own
    ``exception`` (also ``type``; ``exc_info`` is the triple, with no
    traceback object), and ``traceback``, the worker's formatted
    traceback."""

    internal = False
    tb = None

    def __init__(self, exception, traceback=""):  # noqa: no billiard __init__: no local tb
        self.exception = exception
        self.type = type(exception)
        self.traceback = traceback

    @property
    def exc_info(self):
        return self.type, self.exception, self.tb

    def __str__(self):
        return self.traceback or repr(self.exception)

    def __repr__(self):
        return f"<ExceptionInfo: {self.exception!r}>"


def _failure(exc, tb=""):
    """The (success, value) pair of a failed task: the exception carries
    the worker's traceback as its __cause__ (as multiprocessing's does)."""
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    return False, ExceptionInfo(exc, tb)


def _human_status(sig, exit_code):
    if sig:
        try:
            name = _signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        return f"signal {sig} ({name})"
    return f"exitcode {exit_code}"


class ApplyResult:
    """The result of :meth:`Pool.apply_async` (billiard's ApplyResult)."""

    def __init__(self, callback=None, error_callback=None, accept_callback=None,
                 timeout_callback=None, soft_timeout=None, timeout=None, correlation_id=None,
                 on_timeout_set=None, on_timeout_cancel=None, callbacks_propagate=(),
                 putlock=None):
        self.correlation_id = correlation_id
        self._putlock = putlock  # released once, when the outcome is known
        self._terminated = None
        self._job = next(_job_counter)
        self._ready = False
        self._event = None  # made by the first wait() that must block
        self._callback = callback
        self._error_callback = error_callback
        self._accept_callback = accept_callback
        self._timeout_callback = timeout_callback
        self._soft_timeout = soft_timeout
        self._timeout = timeout
        self._on_timeout_set = on_timeout_set
        self._on_timeout_cancel = on_timeout_cancel
        self._callbacks_propagate = tuple(callbacks_propagate or ())
        self._accepted = False
        self._worker_pid = None
        self._time_accepted = None
        self._success = None
        self._value = None
        self._tasks = {}  # item index -> (byte pool, library task id)

    def __repr__(self):
        return (f"<{type(self).__name__}: {self._job} ack:{self.accepted()} "
                f"ready:{self.ready()}>")

    def ready(self):
        return self._ready

    def _mark_ready(self):
        # No lock: wait() publishes its event before it looks at _ready
        # again, so one of the two always sees the other.
        self._ready = True
        event = self._event
        if event is not None:
            event.set()

    def accepted(self):
        """Whether a worker started the task."""
        if not self._accepted and not self.ready():
            self._look(None)
        return self._accepted

    def _look(self, index):
        """Asks the library whether item ``index`` runs (its start is
        otherwise known only from a STARTED notice or its result) and
        records its worker if so."""
        pool, task_id = self._tasks.get(index, (None, None))
        if pool is None:
            return
        try:
            status = _core.Task(pool, task_id).status()
        except (NotFound, Closed):
            return
        if status.state is _core.TaskState.RUNNING and not self._acked(index):
            self._record_start(index, status.pid, status.started)

    def _record_start(self, index, pid, started):
        self._accepted = True
        self._worker_pid = pid
        self._time_accepted = time.monotonic() - max(0.0, time.time() - started)

    def _acked(self, i):
        return self._accepted

    def successful(self):
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._success

    def worker_pids(self):
        if not self._accepted and not self.ready():
            self._look(None)
        return [self._worker_pid] if self._worker_pid else []

    def wait(self, timeout=None):
        if self._ready:
            return
        with _WAIT_LOCK:  # one event, whichever thread waits first
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not self._ready:  # checked after the event is published
            event.wait(timeout)

    def get(self, timeout=None):
        """The value; raises the task's own exception (its worker traceback
        as __cause__), or TimeoutError if ``timeout`` seconds pass."""
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value.exception

    def safe_apply_callback(self, fun, *args, **kwargs):
        if fun is None:
            return
        try:
            fun(*args, **kwargs)
        except MemoryError:
            raise
        except self._callbacks_propagate:
            raise
        except Exception as exc:
            logger.error("Pool callback raised exception: %r", exc, exc_info=True)

    def handle_timeout(self, soft=False):
        self.safe_apply_callback(self._timeout_callback, soft=soft,
                                 timeout=self._soft_timeout if soft else self._timeout)

    def _ack(self, i, time_accepted, pid):
        self._accepted = True
        self._time_accepted = time_accepted
        self._worker_pid = pid
        if self._on_timeout_set is not None:
            self._on_timeout_set(self, self._soft_timeout, self._timeout)
        self.safe_apply_callback(self._accept_callback, pid, time_accepted)

    def terminate(self, signum):
        """Cancels the call (billiard's ApplyResult.terminate): a call not
        yet started never starts and raises Terminated(-signum); a running
        one gets ``signum`` (as Pool.terminate_job)."""
        self._terminated = signum
        pool, task_id = self._tasks.get(None, (None, None))
        if pool is None or self.ready():
            return
        try:
            _core.Task(pool, task_id).cancel(signal=signum or _signal.SIGTERM)
        except (Closed, BilliardError):
            pass  # finished, or the pool is gone

    def _set(self, i, obj):
        if self._on_timeout_cancel is not None:
            self._on_timeout_cancel(self)
        if self._putlock is not None:
            self._putlock.release()
        self._success, self._value = obj
        self._mark_ready()
        if self._success:
            self.safe_apply_callback(self._callback, self._value)
        else:
            self.safe_apply_callback(self._error_callback, self._value)


class MapResult(ApplyResult):
    """The result of map_async/starmap_async: chunk ``i`` holds items
    ``i*chunksize`` on; the first failing chunk fails the whole map."""

    def __init__(self, chunksize, length, callback=None, error_callback=None):
        super().__init__(callback, error_callback)
        self._success = True
        self._value = [None] * length
        self._length = length
        self._chunksize = chunksize
        self._chunks_accepted = set()
        self._pids = []
        self._chunks = -(-length // chunksize) if chunksize else 0
        self._number_left = self._chunks
        if self._number_left == 0:
            self._ready = True

    def accepted(self):
        for i in range(self._chunks):
            if i not in self._chunks_accepted and not self.ready():
                self._look(i)
        return len(self._chunks_accepted) == self._chunks

    def _record_start(self, index, pid, started):
        self._ack(index, None, pid)

    def _acked(self, i):
        return i in self._chunks_accepted

    def worker_pids(self):
        return list(self._pids)

    def _ack(self, i, time_accepted, pid):
        self._chunks_accepted.add(i)
        self._pids.append(pid)

    def _set(self, i, obj):
        success, value = obj
        if self._ready:
            return  # failed already: later chunks change nothing
        if success:
            self._value[i * self._chunksize:(i + 1) * self._chunksize] = value
            self._number_left -= 1
            if self._number_left == 0:
                self._mark_ready()
                self.safe_apply_callback(self._callback, self._value)
        else:
            self._success = False
            self._value = value
            self._mark_ready()
            self.safe_apply_callback(self._error_callback, value)


class IMapIterator:
    """The iterator of :meth:`Pool.imap`: items in order; a failed item
    raises its exception where it stands."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._job = next(_job_counter)
        self._items = deque()
        self._index = 0
        self._length = None
        self._unsorted = {}
        self._worker_pids = []
        self._started = set()  # items whose start is known
        self._waiting = 0  # threads in next(): only then is notifying needed

    def __iter__(self):
        return self

    def next(self, timeout=None):
        with self._cond:
            if not self._items:
                if self._index == self._length:
                    raise StopIteration
                self._waiting += 1
                try:
                    self._cond.wait_for(lambda: self._items or self._index == self._length,
                                        timeout)
                finally:
                    self._waiting -= 1
                if not self._items:
                    if self._index == self._length:
                        raise StopIteration
                    raise TimeoutError
            success, value = self._items.popleft()
        if success:
            return value
        raise value.exception

    __next__ = next

    def _put(self, obj):
        self._items.append(obj)
        self._index += 1

    def _set(self, i, obj):
        with self._cond:
            if self._index == i:
                self._put(obj)
                while self._index in self._unsorted:
                    self._put(self._unsorted.pop(self._index))
                if self._waiting:
                    self._cond.notify_all()
            else:
                self._unsorted[i] = obj

    def _set_length(self, length):
        with self._cond:
            self._length = length
            self._cond.notify_all()

    def _ack(self, i, time_accepted, pid):
        self._started.add(i)
        self._worker_pids.append(pid)

    def _acked(self, i):
        """Asked once per item, as its result arrives: forgets it then, so
        a long imap keeps no record per item."""
        if i in self._started:
            self._started.discard(i)
            return True
        return False

    def ready(self):
        with self._cond:
            return self._index == self._length

    def worker_pids(self):
        return list(self._worker_pids)


class IMapUnorderedIterator(IMapIterator):
    """The iterator of :meth:`Pool.imap_unordered`: items as they finish."""

    def _set(self, i, obj):
        with self._cond:
            self._put(obj)
            if self._waiting:
                self._cond.notify_all()


class _SubmitCall:
    """One thread's task options and id, made once and reused for each
    submit (building ctypes objects per call was a fifth of its cost)."""

    def __init__(self):
        self.opts = TaskOpts(struct_size=_OPTS_SIZE)
        self.task_id = ctypes.c_uint64()
        self.opts_ref = ctypes.byref(self.opts)
        self.id_ref = ctypes.byref(self.task_id)


class _WorkerProcess:
    """One worker, as billiard's ``pool._pool`` lists them."""

    exitcode = None

    def __init__(self, pid, index=0):
        self.pid = pid
        self.index = index

    def is_alive(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    def __repr__(self):
        return f"<libbilliard worker pid={self.pid}>"


class _Engine:
    """What the result thread and the finalizer share, so that the Pool
    itself can be collected: the byte pool, the calls in flight, the
    thread. ``jobs`` maps a call's tag (given to the library with the task,
    and recorded before it is submitted) to (result, index)."""

    def __init__(self, pool, timeout, on_process_up, on_process_down):
        self.pool = pool
        self.timeout = timeout  # the pool's hard limit (TimeLimitExceeded's argument)
        self.lock = threading.Lock()  # closing, terminating, stop
        self.jobs = {}
        self.tags = itertools.count(1)
        self.closing = False  # close() or terminate() was called
        self.terminating = False
        self.stop = False
        self.on_process_up = on_process_up
        self.on_process_down = on_process_down
        self.pids = set()  # the workers on_process_up was called for
        self.setup_file = None
        self.tracking = False  # STARTED notices on (track_starts)
        self.watching = on_process_up is not None or on_process_down is not None
        self.out = ctypes.c_void_p()
        self.out_ref = ctypes.byref(self.out)
        self.size = ctypes.c_size_t()
        self.size_ref = ctypes.byref(self.size)
        self.notice_batch = (_lib.Notice * 64)()
        self.thread = threading.Thread(target=self.run, name="libbilliard-results", daemon=True)
        self.hub = None  # the event loop delivering results instead of the thread
        self.start_lock = threading.Lock()
        self.delivering = False  # the thread runs, or an event loop delivers
        self.drained = None  # called once on the loop when a closed pool is done

    def record(self, result, index):
        """The tag of a new call whose outcome goes to ``result`` (dict
        operations are atomic: ``jobs`` needs no lock)."""
        tag = next(self.tags)
        self.jobs[tag] = (result, index)
        return tag

    def forget(self, tag):
        self.jobs.pop(tag, None)

    # Who delivers: the result thread, or the host's event loop.

    def start_thread(self):
        """Starts the result thread unless it runs or an event loop
        delivers (idempotent, any thread)."""
        with self.start_lock:
            if not self.delivering and not self.stop:
                self.thread.start()
                self.delivering = True

    def attach(self, hub):
        """Lets ``hub`` (kombu's Hub, or anything with add_reader and
        remove_reader) deliver results through the pool's fd: no result
        thread. Refused once the thread runs (one deliverer)."""
        with self.start_lock:
            if self.thread.is_alive():
                raise RuntimeError("results are delivered by the result thread already")
            self.hub = hub
            self.delivering = True
        if self.watching:
            self.workers_seen([w.pid for w in self.pool.workers()], [])
        hub.add_reader(self.pool.fileno(), self.on_readable)

    def detach(self):
        hub, self.hub = self.hub, None
        if hub is not None:
            try:
                hub.remove_reader(self.pool.fileno())
            except Exception:  # the loop is gone already, or the pool
                pass

    def on_readable(self, *_):
        """The event loop's reader: delivers what waits, never blocks."""
        try:
            self.drain()
        except Closed:
            pass
        except BaseException as exc:
            logger.exception("libbilliard: delivering results failed")
            self.fail_all(exc)
        if self.drained is not None and self.closing and not self.jobs and self.pool_done():
            drained, self.drained = self.drained, None
            drained()

    def when_drained(self, callback):
        """After close(), with an event loop delivering: ``callback()`` runs
        on the loop once every outcome is delivered (now, if they are)."""
        self.drained = callback
        self.on_readable()

    def run(self):
        """Delivers until the pool is done: the result thread's body, and
        the end of a pool whose results came through an event loop."""
        fd = self.pool.fileno()
        if self.watching and self.hub is None:  # the workers up before notices were asked for
            self.workers_seen([w.pid for w in self.pool.workers()], [])
        while True:
            with self.lock:
                if self.stop or (self.closing and not self.jobs and self.pool_done()):
                    return
            select.select([fd], [], [], 0.2)
            try:
                self.drain()
            except Closed:
                return
            except BaseException as exc:  # never a silent hang: every call fails with it
                logger.exception("libbilliard: the result thread failed")
                self.fail_all(exc)
                return

    def fail_all(self, exc):
        """Ends every call in flight with ``exc`` (the result thread cannot
        go on)."""
        while self.jobs:
            _, (result, index) = self.jobs.popitem()
            try:
                result._set(index, _failure(exc))
            except BaseException:
                logger.exception("libbilliard: a pool callback failed")

    def pool_done(self):
        stats = self.pool.stats()
        return stats["queued"] == 0 and stats["running"] == 0 and stats["uncollected"] == 0

    def drain(self):
        """Takes every waiting result, then the notices (each result's
        notices were queued before it), and delivers them in that order.
        Only calls that never block, keeping the GIL (_lib.fast)."""
        results = []
        f, out, out_ref, size = fast, self.out, self.out_ref, self.size
        wait, outcome_of, tag_of, pid_of = (f.billiard_pool_wait, f.billiard_result_outcome,
                                            f.billiard_result_tag, f.billiard_result_pid)
        with self.pool._call() as h:
            while wait(h, 0, out_ref) == 0:
                ptr = out.value
                outcome = outcome_of(ptr)
                if outcome == _OK:  # unpickled in place by deliver, which frees it
                    results.append((tag_of(ptr), outcome, ptr, pid_of(ptr), 0, 0, -1))
                    continue
                data = f.billiard_result_data(ptr, self.size_ref)  # a small text: copied
                results.append((tag_of(ptr), outcome, ctypes.string_at(data, size.value),
                                pid_of(ptr), f.billiard_result_running_us(ptr),
                                f.billiard_result_signal(ptr), f.billiard_result_exit_code(ptr)))
                f.billiard_result_free(ptr)
            notices = self.read_notices(h)
        for notice in notices:
            self.dispatch_notice(*notice)
        jobs = self.jobs
        for res in results:
            job = jobs.pop(res[0], None)  # dict operations are atomic
            if job is not None:
                self.dispatch_one(res, *job)
            elif res[1] == _OK:
                f.billiard_result_free(res[2])

    def read_notices(self, h):
        """Every waiting notice, as (kind, tag, pid, time in seconds since
        the epoch)."""
        return _core._take_notices(h, self.notice_batch,
                                   lambda n: (n.kind, n.tag, n.pid, n.time_us / 1e6))

    def dispatch_notice(self, kind, tag, pid, when):
        if kind == _lib.NOTICE_WORKER_STARTED:
            return self.workers_seen([pid], [])
        if kind == _lib.NOTICE_WORKER_EXITED:
            return self.workers_seen([], [pid])
        job = self.jobs.get(tag)
        if job is None:
            return
        result, index = job
        try:
            if kind == _lib.NOTICE_STARTED:
                result._ack(index, time.monotonic() - max(0.0, time.time() - when), pid)
            elif isinstance(result, ApplyResult):
                result.handle_timeout(soft=True)
        except BaseException:
            logger.exception("libbilliard: a pool callback failed")

    def dispatch_one(self, res, result, index):
        try:
            self.deliver(res, result, index)
        except BaseException:
            logger.exception("libbilliard: a pool callback failed")

    def deliver(self, res, result, index):
        """Gives ``result`` the outcome of its item ``index``. ``res`` is
        (tag, outcome, data, pid, running_us, signal, exit_code); for OK,
        ``data`` is the C result, unpickled from the library's buffer
        without a copy and freed here whatever happens; else its text."""
        _, outcome, data, pid, running_us, sig, exit_code = res
        if outcome == _OK:
            try:
                address = fast.billiard_result_data(data, self.size_ref)
                size = self.size.value
                try:
                    # A large answer is read in place (no copy); a small one
                    # is cheaper to copy than to wrap.
                    success, value = _loads(ctypes.string_at(address, size) if size < 65536
                                            else (ctypes.c_char * size).from_address(address))
                except Exception as exc:
                    obj = _failure(exc)
                else:
                    obj = (True, value) if success else _failure(*value)
            finally:
                fast.billiard_result_free(data)
            if pid and not result._acked(index):  # no STARTED notice was asked for
                result._ack(index, time.monotonic(), pid)
            result._set(index, obj)
            return
        if pid and not result._acked(index):
            result._ack(index, time.monotonic() - running_us / 1e6, pid)
        if outcome == Outcome.TIME_LIMIT:
            if isinstance(result, ApplyResult):
                result.handle_timeout(soft=False)
            hard = getattr(result, "_timeout", None) or self.timeout  # map, imap: the pool's
            obj = _failure(TimeLimitExceeded(hard if hard is not None else running_us / 1e6))
        elif outcome == Outcome.CANCELLED:  # a queued call has no signal: the one it was given
            obj = _failure(Terminated(-(sig or getattr(result, "_terminated", None)
                                        or _signal.SIGTERM)))
        elif outcome == Outcome.ABANDONED:
            if self.terminating:
                obj = _failure(Terminated(-_signal.SIGTERM))
            else:
                obj = _failure(RestartFreqExceeded(
                    "workers crashed or failed to start too often: the pool stopped"))
        elif outcome in (Outcome.WORKER_LOST, Outcome.MEMORY_LIMIT):
            status = _human_status(sig, exit_code)
            obj = _failure(WorkerLostError(
                f"Worker exited prematurely: {status} Job: {result._job}."))
        else:  # FAILED: the worker program itself failed the task
            obj = _failure(WorkerLostError(data.decode(errors="replace")))
        result._set(index, obj)

    def track_starts(self):
        """Turns STARTED notices on (once): from now on each start is
        known at once (accept callbacks), not with its result."""
        if not self.tracking:
            self.tracking = True
            self.apply_notices()

    def apply_notices(self):
        """Asks the library for the notices this pool needs: soft limits
        always (free until one passes), starts once tracked, workers when
        process hooks are set."""
        self.pool.set_notices(started=self.tracking, soft_limit=True, workers=self.watching)

    def workers_seen(self, started, exited):
        """Calls on_process_up for each started worker and on_process_down
        for each exited one, each worker once up before it is down."""
        for pid in started:
            if pid not in self.pids:
                self.pids.add(pid)
                self.call_hook(self.on_process_up, _WorkerProcess(pid))
        for pid in exited:
            if pid not in self.pids:  # came and went before the hooks saw it
                self.call_hook(self.on_process_up, _WorkerProcess(pid))
            self.pids.discard(pid)
            self.call_hook(self.on_process_down, _WorkerProcess(pid))

    @staticmethod
    def call_hook(hook, proc):
        if hook is not None:
            try:
                hook(proc)
            except Exception:
                logger.exception("libbilliard: a process hook failed")

    # The end.

    def finish(self, terminate):
        """Stops the pool (``terminate``: at once) and the result thread,
        then frees the byte pool. Idempotent; safe from any thread but the
        result thread, which it waits for."""
        with self.lock:
            self.closing = True
            if terminate:
                self.terminating = True
        looped = self.hub is not None
        try:
            if terminate:
                self.pool.terminate()
            else:
                self.pool.close()
            if looped:  # no thread: deliver the rest here, as it comes
                self.detach()
                self.run()
            if not terminate:
                self.pool.join()
        except BilliardError:  # freed already, or a copy in a forked child
            pass
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join()
        with self.lock:
            self.stop = True
        self.pool.shutdown(wait=False)
        if self.setup_file is not None:
            try:
                os.unlink(self.setup_file)
            except FileNotFoundError:
                pass
            self.setup_file = None


def _start_method(context):
    if context is None:
        return StartMethod.FORKSERVER
    if isinstance(context, StartMethod):
        return context
    name = context if isinstance(context, str) else context.get_start_method()
    try:
        return _CONTEXTS[name]
    except KeyError:
        raise ValueError(f"unknown start method {name!r}: fork, spawn or forkserver") from None


def _preparation():
    """What a worker program needs to look like this process (for
    multiprocessing.spawn.prepare), without fixing multiprocessing's own
    start method as its get_preparation_data would."""
    from multiprocessing import process
    sys_path = list(sys.path)
    if "" in sys_path:
        sys_path[sys_path.index("")] = process.ORIGINAL_DIR
    data = {"sys_path": sys_path, "sys_argv": sys.argv, "orig_dir": process.ORIGINAL_DIR,
            "dir": os.getcwd(), "authkey": bytes(process.current_process().authkey)}
    main = sys.modules["__main__"]
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        data["init_main_from_name"] = name
    else:
        path = getattr(main, "__file__", None)
        if path is not None:
            data["init_main_from_path"] = os.path.normpath(
                os.path.join(process.ORIGINAL_DIR or "", path))
    return data


def _check_positive_int(name, value):
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, not {value!r}")


def _seconds(name, value):
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")
    return float(value)


class Pool:
    """billiard's Pool (and multiprocessing's) on libbilliard.

    Arguments as billiard 4.3's, in its order. What is ours:
    ``processes`` defaults to the CPUs this process may use;
    ``lost_worker_timeout`` is accepted and unused (a dead worker is seen
    at once); ``max_memory_per_child`` (KiB) is compared after each task
    with the worker's current *private* resident memory (not its peak), and
    the worker is replaced after that task; per-task ``timeout`` and
    ``soft_timeout`` work without ``enable_timeouts``; a soft limit at or
    above the hard one is dropped (the hard one wins); too many crashes
    in ``max_restart_freq`` seconds fail pending and new calls with
    RestartFreqExceeded (the host lives); ``putlocks`` makes apply_async
    wait while ``processes`` tasks wait to start; ``threads=False``
    starts no result thread until the first task, and none at all if
    :meth:`register_with_event_loop` came first; ``semaphore`` (a
    LaxBoundedSemaphore, as Celery's worker passes) is released once per
    apply_async outcome and grows and shrinks with the pool, but never
    acquired here; ``synack``, ``allow_restart``, ``enable_timeouts`` and
    unknown keywords are accepted and change nothing (restart() always
    works). ``prefetch``: how many tasks a busy worker may hold beyond the
    one it runs (the library's default, 16, suits many short calls; 1 never
    lets a call wait behind a long one while another worker is idle, as
    Celery's fair scheduling). ``context`` is a start method name or a multiprocessing/billiard
    context: "forkserver" (default), "spawn" or "fork".
    """

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 timeout=None, soft_timeout=None, lost_worker_timeout=None, max_restarts=None,
                 max_restart_freq=1, on_process_up=None, on_process_down=None,
                 on_timeout_set=None, on_timeout_cancel=None, threads=True, semaphore=None,
                 putlocks=False, allow_restart=False, synack=False, on_process_exit=None,
                 context=None, max_memory_per_child=None, enable_timeouts=False, prefetch=None,
                 **kwargs):
        self._state = TERMINATE  # until the pool is made
        if _worker.preparing:
            raise RuntimeError(
                "a Pool was made while a worker imported the main module: protect the "
                "script's entry point with `if __name__ == '__main__':`")
        if processes is None:
            processes = cpu_count()
        if not isinstance(processes, int) or processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if on_process_exit is not None and not callable(on_process_exit):
            raise TypeError("on_process_exit must be callable")
        _check_positive_int("maxtasksperchild", maxtasksperchild)
        _check_positive_int("max_memory_per_child", max_memory_per_child)
        self.timeout = _seconds("timeout", timeout)
        self.soft_timeout = _seconds("soft_timeout", soft_timeout)
        self.lost_worker_timeout = lost_worker_timeout
        self.putlocks = putlocks
        self.allow_restart = allow_restart
        self.enable_timeouts = bool(enable_timeouts or timeout or soft_timeout)
        self.on_timeout_set = on_timeout_set
        self.on_timeout_cancel = on_timeout_cancel
        self._processes = processes
        self._maxtasksperchild = maxtasksperchild
        self._initargs = tuple(initargs)
        self.max_restarts = max_restarts or processes * 100
        self.max_restart_freq = max_restart_freq or 1
        method = _start_method(context)

        options = dict(
            workers=processes,
            hard_time_limit=self.timeout,
            soft_time_limit=self._soft_below(self.soft_timeout, self.timeout),
            max_tasks_per_worker=maxtasksperchild,
            soft_memory_limit=max_memory_per_child * 1024 if max_memory_per_child else None,
            restart_intensity=(self.max_restarts, self.max_restart_freq),
            max_queued=processes if putlocks else 0,
            prefetch=prefetch,
        )
        setup_file = None
        if method is StartMethod.FORK:
            after_fork, at_exit = _worker.hooks(initializer, self._initargs, on_process_exit,
                                                forked_host=True)
            pool = BytesPool(handler=_worker.run_call, after_fork=after_fork, at_exit=at_exit,
                             soft_limit_raises=True, payload_view=True, **options)
        else:
            setup = {"prepare": _preparation(),
                     "calls": pickle.dumps((initializer, self._initargs, on_process_exit),
                                           pickle.HIGHEST_PROTOCOL)}
            value = _worker.encode_setup(setup)
            if len(value) > _ENV_SETUP_MAX:
                fd, setup_file = tempfile.mkstemp(prefix="libbilliard-setup-")
                with os.fdopen(fd, "wb") as f:
                    f.write(pickle.dumps(setup, pickle.HIGHEST_PROTOCOL))
                value = "@" + setup_file
            package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
                    "from libbilliard._worker import main; main()")
            argv = [sys.executable, *subprocess._args_from_interpreter_flags(), "-c", code]
            try:
                pool = BytesPool(argv, start_method=method, env={_worker.SETUP_ENV: value},
                                 **options)
            except BaseException:
                if setup_file is not None:
                    os.unlink(setup_file)
                raise
        # An unbounded submit never blocks: it keeps the GIL (see _lib.fast).
        self._submit_call = (lib if putlocks else fast).billiard_pool_submit
        self._calls = threading.local()  # each thread's _SubmitCall
        self._engine = _Engine(pool, self.timeout, on_process_up, on_process_down)
        self._engine.setup_file = setup_file
        # Soft-limit notices cost nothing until a limit passes; STARTED ones
        # (a frame per task) only once something waits for starts.
        if on_timeout_set is not None:
            self._engine.tracking = True
        self._engine.apply_notices()
        self._finalizer = weakref.finalize(self, self._engine.finish, True)
        self._state = RUN
        self._putlock = semaphore
        if threads:
            self._engine.start_thread()

    @staticmethod
    def _soft_below(soft, hard):
        """``soft`` unless it is at or above ``hard`` (the hard one wins)."""
        if soft is not None and hard is not None and soft >= hard:
            return None
        return soft

    # Submitting.

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _submit(self, payload, result, index, soft=None, hard=None):
        """Sends one pickled call; ``result`` gets its outcome as item
        ``index``. Per-task limits: None takes the pool's."""
        soft_ms = hard_ms = _lib.LIMIT_DEFAULT
        if soft is not None or hard is not None:
            hard_eff = hard if hard is not None else self.timeout
            soft_eff = soft if soft is not None else self.soft_timeout
            if hard is not None:
                hard_ms = _core._limit_ms(hard)
            if soft_eff is not None and self._soft_below(soft_eff, hard_eff) is None:
                soft_ms = _lib.LIMIT_NONE  # the hard limit wins
            elif soft is not None:
                soft_ms = _core._limit_ms(soft)
        engine = self._engine
        if not engine.delivering:  # threads=False and no event loop: the thread after all
            engine.start_thread()
        tag = engine.record(result, index)  # before the submit: see drain
        try:
            call = self._calls.call
        except AttributeError:  # this thread's first submit
            call = self._calls.call = _SubmitCall()
        opts = call.opts
        opts.tag = tag
        opts.soft_time_limit_ms = soft_ms
        opts.hard_time_limit_ms = hard_ms
        pool = engine.pool
        gate = pool._gate
        try:
            gate.acquire()
        except Closed:
            engine.forget(tag)
            raise ValueError("Pool not running") from None
        try:
            rc = self._submit_call(pool._ptr, payload, len(payload), call.opts_ref, call.id_ref)
        finally:
            gate.release()
        if rc < 0:
            engine.forget(tag)
            if rc == _lib.ECLOSED:
                raise ValueError("Pool not running")
            if rc == _lib.ERESTARTS:
                raise RestartFreqExceeded(_core._error(rc).message)
            raise _core._error(rc)
        return pool, call.task_id.value

    def apply(self, func, args=(), kwds={}):
        """``func(*args, **kwds)`` in a worker; its value (or exception)."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None,
                    accept_callback=None, timeout_callback=None, waitforslot=None,
                    soft_timeout=None, timeout=None, lost_worker_timeout=None,
                    callbacks_propagate=(), correlation_id=None):
        """Runs ``func(*args, **kwds)`` in a worker; returns an ApplyResult.
        ``accept_callback(pid, time_accepted)`` runs when a worker starts
        it, ``timeout_callback(soft=, timeout=)`` when a limit passes,
        then ``callback(value)`` or ``error_callback(ExceptionInfo)``.
        Arguments that cannot be pickled fail this call's result."""
        if self._state != RUN:
            raise ValueError("Pool not running")
        if timeout is not None:
            timeout = _seconds("timeout", timeout)
        if soft_timeout is not None:
            soft_timeout = _seconds("soft_timeout", soft_timeout)
        if accept_callback is not None:
            self._engine.track_starts()
        result = ApplyResult(callback, error_callback, accept_callback, timeout_callback,
                             soft_timeout or self.soft_timeout, timeout or self.timeout,
                             correlation_id, self.on_timeout_set, self.on_timeout_cancel,
                             callbacks_propagate, self._putlock)
        try:
            payload = _dumps((func, args, kwds), _PROTOCOL)
        except Exception as exc:
            result._set(None, _failure(exc))
            return result
        result._tasks[None] = self._submit(payload, result, None, soft_timeout, timeout)
        return result

    def map(self, func, iterable, chunksize=None):
        """``[func(x) for x in iterable]``, in workers, in chunks."""
        return self.map_async(func, iterable, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        """``[func(*x) for x in iterable]``, in workers, in chunks."""
        return self.starmap_async(func, iterable, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, _mapstar, chunksize, callback, error_callback)

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, _starmapstar, chunksize, callback,
                               error_callback)

    def _map_async(self, func, iterable, mapper, chunksize, callback, error_callback):
        self._check_running()
        # A range is sliced as ranges (three numbers each to pickle); a
        # list or tuple as itself; anything else is read into a list here.
        items = iterable if isinstance(iterable, (range, list, tuple)) else list(iterable)
        first = None
        if chunksize is None:  # billiard's rule, then no chunk above _CHUNK_BYTES
            chunksize, extra = divmod(len(items), self._processes * 4)
            if extra:
                chunksize += 1
            if chunksize > 1:
                first = self._pickle_chunk(mapper, func, items[:chunksize])
                if len(first) > _CHUNK_BYTES:
                    chunksize = max(1, chunksize * _CHUNK_BYTES // len(first))
                    first = None
        if chunksize < 1 and items:
            raise ValueError(f"chunksize must be at least 1, not {chunksize}")
        result = MapResult(chunksize if items else 0, len(items), callback, error_callback)
        for i, start in enumerate(range(0, len(items), max(chunksize, 1))):
            try:
                payload = first if i == 0 and first is not None else \
                    self._pickle_chunk(mapper, func, items[start:start + chunksize])
            except Exception as exc:
                result._set(i, _failure(exc))
                break
            result._tasks[i] = self._submit(payload, result, i)
        return result

    @staticmethod
    def _pickle_chunk(mapper, func, chunk):
        return _dumps((mapper, (func, chunk), {}), _PROTOCOL)

    def imap(self, func, iterable, chunksize=1, lost_worker_timeout=None):
        """Like map, lazily: an iterator of the values in order. The
        iterable is read by a thread of its own as the pool takes tasks."""
        return self._imap(IMapIterator(), func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1, lost_worker_timeout=None):
        """Like imap, the values in the order they finish."""
        return self._imap(IMapUnorderedIterator(), func, iterable, chunksize)

    def _imap(self, result, func, iterable, chunksize):
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"chunksize must be at least 1, not {chunksize}")
        it = iter(iterable)
        if chunksize == 1:
            calls = ((func, (x,), {}) for x in it)
        else:
            calls = ((_mapstar, (func, chunk), {})
                     for chunk in iter(lambda: list(itertools.islice(it, chunksize)), []))
        threading.Thread(target=self._feed, args=(result, calls), daemon=True,
                         name="libbilliard-imap").start()
        if chunksize == 1:
            return result
        return (item for chunk in result for item in chunk)

    def _feed(self, result, calls):
        """Submits ``calls`` for an imap iterator; a failure of the iterable
        (or of the pool) becomes the item where it happened, the last one."""
        i = 0
        try:
            for call in calls:
                try:
                    payload = pickle.dumps(call, pickle.HIGHEST_PROTOCOL)
                except Exception as exc:
                    result._set(i, _failure(exc))
                else:
                    self._submit(payload, result, i)
                i += 1
        except BaseException as exc:  # the iterable raised, or the pool stopped
            result._set(i, _failure(exc))
            i += 1
        result._set_length(i)

    # Control.

    def terminate_job(self, pid, sig=None):
        """Stops the task the worker ``pid`` runs with ``sig`` (SIGTERM by
        default): its result raises Terminated. Nothing if it runs none."""
        for worker in self._engine.pool.workers():
            if worker.pid == pid and worker.task_id:
                task = _core.Task(self._engine.pool, worker.task_id)
                task.cancel(signal=sig or _signal.SIGTERM)
                return

    def grow(self, n=1):
        self._check_running()
        self._processes += n
        self._engine.pool.resize(self._processes)
        if self._putlock is not None:
            for _ in range(n):
                self._putlock.grow()

    def shrink(self, n=1):
        """Retires ``n`` workers, each after the tasks it holds."""
        self._check_running()
        if n >= self._processes:
            raise ValueError("Can't shrink pool: it needs at least one process")
        self._processes -= n
        self._engine.pool.resize(self._processes)
        if self._putlock is not None:
            for _ in range(n):
                self._putlock.shrink()

    def restart(self):
        """Replaces every worker, each after the tasks it holds."""
        self._check_running()
        self._engine.pool.restart()

    def did_start_ok(self):
        """Whether the workers started (the pool is not failed)."""
        try:
            return self._engine.pool.stats()["workers"] > 0
        except Closed:
            return False

    def register_with_event_loop(self, hub):
        """Results and callbacks are delivered by ``hub`` (kombu's Hub, as
        Celery's worker runs it; anything with add_reader/remove_reader)
        when the pool's fd is readable, on the loop's thread: no result
        thread. Call it before the first task (``threads=False`` keeps the
        thread from starting at construction); close/join and terminate
        then deliver the rest on the calling thread."""
        self._engine.attach(hub)

    @property
    def _pool(self):
        """The workers now (objects with ``pid`` and ``is_alive()``)."""
        try:
            pids = self._engine.pool.worker_pids()
        except Closed:
            return []
        return [_WorkerProcess(pid, i) for i, pid in enumerate(pids)]

    def _repopulate_pool(self, *args):
        """The library keeps the pool populated: nothing to do."""

    _maintain_pool = maintain_pool = _repopulate_pool

    def cpu_count(self):
        return cpu_count()

    # Ending.

    def close(self):
        """Takes no more tasks; those given still run."""
        if self._state == RUN:
            self._state = CLOSE
            with self._engine.lock:
                self._engine.closing = True
            try:
                self._engine.pool.close()
            except Closed:
                pass

    def terminate(self):
        """Stops every worker now; unfinished tasks raise Terminated."""
        self._state = TERMINATE
        self._finalizer()

    def join(self):
        """After close() or terminate(): waits for every task's result to
        be delivered and every worker to be reaped."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        self._finalizer.detach()
        self._engine.finish(terminate=self._state == TERMINATE)

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc_info):
        self.terminate()

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")
