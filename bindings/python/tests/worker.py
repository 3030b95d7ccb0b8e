"""The test worker program, written with the binding's worker_main.

Commands: "echo:X" replies X, "pid" its pid, "fail:MSG" raises MSG,
"crash" SIGKILLs itself, "exit:N" exits with N, "sleep:S" sleeps S seconds
and replies "slept", "soft:S" polls soft_limit_reached() for S seconds at
most and replies "reached" or "not reached".
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import libbilliard  # noqa: E402


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
    raise ValueError(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(libbilliard.worker_main(handle))
