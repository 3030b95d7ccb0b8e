"""Helpers shared by the binding's tests."""
import os
import random
import signal
import sys

WORKER = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")]


def alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_one(pids, choose=random.choice):
    """SIGKILLs one of ``pids`` (chaos); whether it was still there."""
    if not pids:
        return False
    try:
        os.kill(choose(pids), signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
