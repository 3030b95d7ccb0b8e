"""Helpers shared by the binding's tests."""
import os
import sys

WORKER = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")]


def alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
