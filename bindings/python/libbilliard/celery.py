"""A Celery worker pool on libbilliard: prefork's behaviour, supervised.

Select it with one setting::

    app.conf.worker_pool = "libbilliard.celery:TaskPool"

or, on the command line (Celery 5's ``-P`` takes no ``module:Class``)::

    CELERY_CUSTOM_WORKER_POOL=libbilliard.celery:TaskPool celery -A proj worker -P custom

Install with ``pip install './bindings/python[celery]'``.

How it maps onto Celery (``celery/concurrency/prefork.py`` is the model):

- The pool is a :class:`libbilliard.Pool` with the ``fork`` context: the
  worker's main process forks one fork server (with the app imported), and
  each pool worker is a fork of it; a replacement costs a fork, not an
  interpreter start. Each worker runs Celery's own ``process_initializer``
  (``worker_process_init`` fires) and, at an orderly exit,
  ``process_destructor`` (``worker_process_shutdown`` fires).
- Results and notices reach Celery's event loop through the pool's fd
  (``register_with_event_loop``): no thread of ours runs beside the loop.
  Without the loop (a broker with no event loop) one result thread
  delivers them.
- Scheduling is fair (prefork's default): a task is sent only to an idle
  pool worker. ``-O fast`` lets busy workers hold more.
- The worker's semaphore bounds what is sent to the pool to ``-c N``
  running tasks (``uses_semaphore``, as prefork), released once per task
  outcome.
- A worker that dies is seen at once (a pidfd), not after
  ``worker_lost_wait``: the task fails with ``WorkerLostError``.
- Hard limits kill the task's worker (``TimeLimitExceeded``); soft limits
  raise ``SoftTimeLimitExceeded`` in the task (SIGUSR1, as prefork).
- ``pool_restart`` starts a new pool (a new fork server, forked from the
  node as it is now, so modules Celery reloaded reach the new workers);
  the old pool finishes what it holds and ends.
- ``revoke(terminate=True, signal=...)`` sends that signal to the task's
  worker (its whole process group); a task not yet started never starts.
- ``worker_max_memory_per_child`` (KiB) is compared after each task with the
  worker's private resident memory.

Thread safety: Celery calls the pool from its main thread; so does this
module.
"""
import threading

from celery.concurrency.base import BasePool
from celery.concurrency.prefork import process_destructor, process_initializer
from celery.utils.functional import noop
from celery.utils.log import get_logger
from kombu.asynchronous import get_event_loop

from ._core import BilliardError
from .pool import CLOSE, RUN, Pool

__all__ = ["TaskPool"]

logger = get_logger(__name__)


class TaskPool(BasePool):
    """Celery's task pool on libbilliard (see the module doc)."""

    Pool = Pool

    #: The worker bounds what it sends to ``-c N`` with a semaphore, which
    #: this pool releases once per outcome.
    uses_semaphore = True

    _hub = None
    _retired = ()

    def on_start(self):
        self._retired = []
        self._install(self._make_pool(self.limit))

    def _make_pool(self, processes):
        options = dict(self.options)
        # Prefork's options that mean nothing here: workers are forked by
        # the library's fork server, and seen dead at once.
        for name in ("proc_alive_timeout", "forking_enable"):
            options.pop(name, None)
        # Fair scheduling (Celery's default, -O fair): a task goes only to an
        # idle worker, never behind a long one. -O fast lets a busy worker
        # hold more (the library's prefetch window).
        if options.pop("sched_strategy", None) not in ("fast", "fcfs"):
            options["prefetch"] = 1
        return self.Pool(
            processes=processes,
            initializer=process_initializer,
            on_process_exit=process_destructor,
            enable_timeouts=True,
            context="fork",
            **options,
        )

    def _install(self, pool):
        self._pool = pool
        self.on_apply = pool.apply_async
        self.maintain_pool = pool.maintain_pool
        self.grow = pool.grow
        self.shrink = pool.shrink
        if self._hub is not None:
            pool.register_with_event_loop(self._hub)

    def restart(self):
        """``pool_restart``: a new pool, whose fork server is a fresh fork of
        this process (so modules Celery reloaded here reach its workers),
        takes every new task; the old one finishes the tasks it holds,
        delivers their outcomes, and ends."""
        old = self._pool
        self._install(self._make_pool(old._processes))
        self._retired.append(old)
        old.close()
        if self._hub is not None:
            old._engine.when_drained(lambda: self._end_retired(old))
        else:
            threading.Thread(target=self._end_retired, args=(old,), daemon=True,
                             name="libbilliard-celery-retired").start()
        self._pool.apply_async(noop)

    def terminate_job(self, pid, signal=None):
        """Stops the task the pool worker ``pid`` runs (in the pool, or in
        one that a restart retired and that still finishes its tasks)."""
        for pool in [self._pool, *self._retired]:
            if pool is None:  # stopped
                continue
            try:
                pool.terminate_job(pid, signal)
            except BilliardError:  # that pool ended meanwhile
                pass

    def _end_retired(self, pool):
        pool.join()
        if pool in self._retired:
            self._retired.remove(pool)

    def did_start_ok(self):
        return self._pool.did_start_ok()

    def register_with_event_loop(self, loop):
        self._hub = loop
        self._pool.register_with_event_loop(loop)

    def on_stop(self):
        """Warm shutdown: no new task; every task given runs to its end and
        its outcome reaches Celery, then the workers exit."""
        pool = self._pool
        if pool is None or pool._state not in (RUN, CLOSE):
            return
        pool.close()
        for retired in list(self._retired):  # restarted pools finish too
            retired.close()
        # Keep the loop's timers firing (broker heartbeats) while the pool
        # drains, as prefork does.
        hub = get_event_loop()
        done = threading.Event()
        timers = None
        if hub is not None:
            timers = threading.Thread(target=self._fire_timers, args=(hub, done), daemon=True,
                                      name="libbilliard-celery-timers")
            timers.start()
        try:
            for retired in list(self._retired):
                self._end_retired(retired)
            pool.join()
        finally:
            done.set()
            if timers is not None:
                timers.join(timeout=1.0)
        self._pool = None

    @staticmethod
    def _fire_timers(hub, done):
        while not done.is_set():
            try:
                hub.fire_timers()
            except Exception:
                logger.warning("libbilliard: a timer failed during shutdown", exc_info=True)
            done.wait(0.5)

    def on_terminate(self):
        """Cold shutdown: every worker stops now; unfinished tasks end as
        Terminated (Celery marks them revoked)."""
        if self._pool is not None:
            for pool in [*self._retired, self._pool]:
                pool.terminate()
                pool.join()
            self._retired = []
            self._pool = None

    def on_close(self):
        if self._pool is not None and self._pool._state == RUN:
            self._pool.close()

    def _get_info(self):
        info = super()._get_info()
        pool = self._pool
        if pool is None:
            return info
        info.update({
            "max-concurrency": self.limit,
            "processes": [p.pid for p in pool._pool],
            "max-tasks-per-child": pool._maxtasksperchild or "N/A",
            "put-guarded-by-semaphore": self.putlocks,
            "timeouts": (pool.soft_timeout or 0, pool.timeout or 0),
            "writes": "N/A",
        })
        return info

    @property
    def num_processes(self):
        return self._pool._processes if self._pool is not None else self.limit
