"""The exceptions of billiard's Pool API, with billiard's names and meanings.

When billiard is installed they are billiard's own classes (so code written
for billiard and Celery catches them); otherwise they are defined here with
the same names and bases.

- WorkerLostError: the worker running the task died (killed, crashed,
  exited) before it answered.
- SoftTimeLimitExceeded: raised *inside* a task when its soft limit passes.
- TimeLimitExceeded: the task passed its hard limit; its worker was killed.
- Terminated: the task was stopped on request (Pool.terminate_job,
  Pool.terminate); args[0] is minus the signal, as billiard's.
- TimeoutError: a get()/next() wait ran out (multiprocessing's class).
- RestartFreqExceeded: workers crashed too often; the pool gave up.
- MaybeEncodingError: a task's result (or exception) could not be pickled.
"""
from multiprocessing import TimeoutError  # billiard's is the same class

try:
    from billiard.exceptions import (RestartFreqExceeded, SoftTimeLimitExceeded, Terminated,
                                     TimeLimitExceeded, WorkerLostError)
    from billiard.pool import MaybeEncodingError
except ImportError:
    class TimeLimitExceeded(Exception):
        """The time limit has been exceeded and the job has been terminated."""

        def __str__(self):
            return f"TimeLimitExceeded{self.args}"

    class SoftTimeLimitExceeded(Exception):
        """The soft time limit has been exceeded: raised in the task so that
        it can clean up."""

        def __str__(self):
            return f"SoftTimeLimitExceeded{self.args}"

    class WorkerLostError(Exception):
        """The worker processing a job has exited prematurely."""

    class Terminated(Exception):
        """The worker processing a job has been terminated by user request."""

    class RestartFreqExceeded(Exception):
        """Restarts too fast."""

    class MaybeEncodingError(Exception):
        """Wraps a result or exception that could not be pickled."""

        def __init__(self, exc, value):
            self.exc = repr(exc)
            self.value = repr(value)
            super().__init__(self.exc, self.value)

        def __repr__(self):
            return f"<{type(self).__name__}: {self}>"

        def __str__(self):
            return f"Error sending result: '{self.value!r}'. Reason: '{self.exc!r}'."

__all__ = ["MaybeEncodingError", "RestartFreqExceeded", "SoftTimeLimitExceeded", "Terminated",
           "TimeLimitExceeded", "TimeoutError", "WorkerLostError"]
