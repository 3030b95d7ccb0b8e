"""libbilliard for Python: billiard's Pool on a supervised process pool.

    from libbilliard import Pool

    def square(x):
        return x * x

    if __name__ == "__main__":
        with Pool(processes=3) as pool:
            print(pool.map(square, range(5)))

:class:`Pool` is billiard's (and multiprocessing's) Pool API; its
exceptions are in :mod:`libbilliard.exceptions` (billiard's own classes
when billiard is installed). :class:`BytesPool` is the library's own
pool: bytes in, one Result per task out, workers that call
:func:`worker_main` or a handler forked from this process.

Imported as ``libbilliard`` so that it never shadows Celery's ``billiard``.
"""
from . import exceptions
from ._core import (ABI_VERSION, SONAME, BilliardError, BytesPool, Closed, Full, NotFound,
                    Notice, NoticeKind, Outcome, Result, SpawnError, StartMethod, Task,
                    TaskError, TaskState, TaskStatus, Timeout, Worker, WorkerState,
                    soft_limit_reached, version, worker_main)
from .exceptions import (MaybeEncodingError, RestartFreqExceeded, SoftTimeLimitExceeded,
                         Terminated, TimeLimitExceeded, TimeoutError, WorkerLostError)
from .pool import ApplyResult, ExceptionInfo, MapResult, Pool, cpu_count

__all__ = [
    "ABI_VERSION", "SONAME", "ApplyResult", "BilliardError", "BytesPool", "Closed",
    "ExceptionInfo", "Full", "MapResult", "MaybeEncodingError", "NotFound", "Notice",
    "NoticeKind", "Outcome", "Pool", "RestartFreqExceeded", "Result", "SoftTimeLimitExceeded",
    "SpawnError", "StartMethod", "Task", "TaskError", "TaskState", "TaskStatus", "Terminated",
    "TimeLimitExceeded", "Timeout", "TimeoutError", "Worker", "WorkerLostError", "WorkerState",
    "cpu_count", "exceptions", "soft_limit_reached", "version", "worker_main",
]

# The public classes say where users find them (tracebacks, reprs, pickles).
for _cls in (BilliardError, BytesPool, Closed, Full, NotFound, Notice, NoticeKind, Outcome, Result,
             SpawnError, StartMethod, Task, TaskError, TaskState, TaskStatus, Timeout, Worker,
             WorkerState):
    _cls.__module__ = __name__
del _cls
