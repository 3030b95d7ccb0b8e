"""The worker side of libbilliard.Pool: runs pickled calls.

Each task is ``pickle.dumps((func, args, kwds))``; its reply is
``pickle.dumps((True, value))`` or ``pickle.dumps((False, (exc, tb)))``
with ``tb`` the worker's formatted traceback. Nothing a task does can end
the worker but ``os._exit`` or a signal: every exception, BaseException
ones such as SystemExit included, is the task's answer (as in billiard).

Under SPAWN and FORKSERVER this module is the worker program (``main``):
it reads the pool's setup from the environment, makes itself look like
the host (``sys.path``, working directory, ``sys.argv``) and imports the
host's main script as ``__mp_main__`` (multiprocessing's rule, so the
``if __name__ == "__main__":`` guard protects it), then serves. Under
FORK the host's own fork server calls ``run_call`` and the hooks.
"""
import atexit
import base64
import os
import pickle
import signal
import sys
import traceback

from .exceptions import MaybeEncodingError

# The environment variable carrying the pool's setup: base64 of a pickle,
# or "@" and the path of a file holding the pickle (a large setup).
SETUP_ENV = "LIBBILLIARD_POOL_SETUP"

# True while a worker program imports the host's main script: a Pool made
# then is a script without the __main__ guard (Pool refuses it).
preparing = False

# The pool's on_process_exit(pid, exitcode), set in each worker.
_on_exit = None


def run_call(payload):
    """Runs one pickled call (``payload``: bytes-like) and returns the
    pickled answer (see above)."""
    try:
        func, args, kwds = pickle.loads(payload)
        answer = (True, func(*args, **kwds))
    except BaseException as exc:  # as billiard (#427): SystemExit too, the worker goes on
        answer = (False, (exc, traceback.format_exc()))
    try:
        return pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # the value (or the exception) cannot be pickled
        wrapped = MaybeEncodingError(exc, answer[1][0] if not answer[0] else answer[1])
        return pickle.dumps((False, (wrapped, traceback.format_exc())), pickle.HIGHEST_PROTOCOL)


def hooks(initializer, initargs, on_process_exit, forked_host=False):
    """The worker hooks (after_fork, at_exit) of a pool: the initializer
    before the first task, on_process_exit(pid, 0) at an orderly exit.
    With ``forked_host`` (workers forked from the host, whose atexit
    functions are the host's) the worker forgets the inherited atexit
    functions and runs, at its orderly exit, those registered in it."""

    def after_fork():
        global _on_exit
        _on_exit = on_process_exit
        if forked_host:
            atexit._clear()
        soft_limit_handler = signal.getsignal(signal.SIGUSR1)
        if initializer is not None:
            initializer(*initargs)
        # After the initializer, as billiard does: one that resets signals
        # (Celery's resets SIGUSR1) cannot turn a soft limit into a death.
        if soft_limit_handler is not None:  # None: set outside Python, left alone
            signal.signal(signal.SIGUSR1, soft_limit_handler)
        # Ctrl-C in a terminal reaches the whole foreground group: the host
        # decides, its workers go on until told.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def at_exit():
        try:
            if _on_exit is not None:
                _on_exit(os.getpid(), 0)
        finally:
            if forked_host:
                atexit._run_exitfuncs()

    return after_fork, at_exit


def encode_setup(setup):
    """The environment value for ``setup`` (a dict, see ``main``)."""
    return base64.b64encode(pickle.dumps(setup, pickle.HIGHEST_PROTOCOL)).decode()


def _read_setup():
    value = os.environ.pop(SETUP_ENV, None)
    if value is None:
        raise SystemExit("libbilliard._worker: not started by a libbilliard.Pool")
    if value.startswith("@"):
        with open(value[1:], "rb") as f:
            return pickle.loads(f.read())
    return pickle.loads(base64.b64decode(value))


def main():
    """The worker program: the setup is a dict with ``prepare`` (what
    multiprocessing.spawn.prepare takes) and ``calls``, a pickle of
    (initializer, initargs, on_process_exit) read once the main script is
    imported (they may be defined there)."""
    global preparing
    from multiprocessing import spawn

    from ._core import worker_main

    setup = _read_setup()
    preparing = True
    try:
        spawn.prepare(setup["prepare"])
    finally:
        preparing = False
    initializer, initargs, on_process_exit = pickle.loads(setup["calls"])
    after_fork, at_exit = hooks(initializer, initargs, on_process_exit)
    sys.exit(worker_main(run_call, after_fork=after_fork, at_exit=at_exit,
                         soft_limit_raises=True, payload_view=True))
