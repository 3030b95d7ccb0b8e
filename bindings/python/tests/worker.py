"""The test worker program, written with the binding's worker_main.

Commands: "echo:X" replies X, "pid" its pid, "fail:MSG" raises MSG,
"crash" SIGKILLs itself, "exit:N" exits with N, "sleep:S" sleeps S seconds
and replies "slept", "soft:S" polls soft_limit_reached() for S seconds at
most and replies "reached" or "not reached", "stubborn:S" ignores SIGTERM
and sleeps S seconds, "hooked" replies the pid the after-fork hook ran in.

With TEST_HOOKS=DIR the worker has hooks: at_exit creates DIR/atexit-PID
and an atexit function DIR/pyatexit-PID. TEST_SOFT_RAISES=1 makes a soft
time limit raise in the task.
"""
import atexit
import os
import signal
import sys
import time

import libbilliard


HOOKED = 0


def after_fork():
    global HOOKED
    HOOKED = os.getpid()


def mark(name):
    with open(os.path.join(os.environ["TEST_HOOKS"], f"{name}-{os.getpid()}"), "w"):
        pass


def handle(payload):
    command, _, arg = payload.decode().partition(":")
    if command == "echo":
        return arg
    if command == "pid":
        return str(os.getpid())
    if command == "fail":
        raise ValueError(arg)
    if command == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if command == "exit":
        sys.exit(int(arg))
    if command == "sleep":
        time.sleep(float(arg))
        return "slept"
    if command == "soft":
        end = time.monotonic() + float(arg)
        while time.monotonic() < end:
            if libbilliard.soft_limit_reached():
                return "reached"
            time.sleep(0.005)
        return "not reached"
    if command == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(float(arg))
        return "slept"
    if command == "hooked":
        return str(HOOKED)
    raise ValueError(f"unknown command {command!r}")


if __name__ == "__main__":
    options = {"soft_limit_raises": bool(os.environ.get("TEST_SOFT_RAISES"))}
    if os.environ.get("TEST_HOOKS"):
        atexit.register(mark, "pyatexit")
        options.update(after_fork=after_fork, at_exit=lambda: mark("atexit"))
    sys.exit(libbilliard.worker_main(handle, **options))
