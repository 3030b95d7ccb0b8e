#!/usr/bin/env python3
"""A billiard worker written from docs/PROTOCOL.md alone, standard library only.

It serves SPAWN tasks: "upper:TEXT" replies TEXT in upper case, "pid" its pid,
"fail:MSG" fails with MSG, "exit:N" exits with N; anything else fails. It
declines the shared area (features 0), so every payload comes in TASK
frames, and it reports each start with an ACK frame instead of the progress
page: the other paths the protocol allows.
"""
import os
import struct
import sys

KIND_HELLO, KIND_TASK, KIND_ACK, KIND_RESULT, KIND_FATAL = 1, 2, 3, 4, 5
PROTOCOL_VERSION = 2


def frame(kind, body):
    return struct.pack("<IB", len(body) + 1, kind) + body


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd, n):
    """n bytes, or None at end of stream before the first byte."""
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            if got == 0:
                return None
            sys.exit(123)  # the stream ended inside a frame
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def handle(payload):
    """(ok, bytes) for one task."""
    command, _, arg = payload.partition(b":")
    if command == b"upper":
        return True, arg.upper()
    if command == b"pid":
        return True, str(os.getpid()).encode()
    if command == b"fail":
        return False, arg
    if command == b"exit":
        os._exit(int(arg))
    return False, b"unknown command: " + payload


def main():
    if "BILLIARD_TASK_FD" not in os.environ:
        print("worker.py: not started by a billiard pool", file=sys.stderr)
        return 2
    tasks = int(os.environ["BILLIARD_TASK_FD"])
    results = int(os.environ["BILLIARD_RESULT_FD"])
    max_frame = int(os.environ["BILLIARD_MAX_FRAME"])
    if os.environ.get("BILLIARD_PROTOCOL") != str(PROTOCOL_VERSION):
        message = b"worker.py speaks protocol 2"
        write_all(results, frame(KIND_FATAL, message))
        return 121
    write_all(results, frame(KIND_HELLO, struct.pack("<III", PROTOCOL_VERSION, os.getpid(), 0)))
    while True:
        header = read_exact(tasks, 5)
        if header is None:
            return 0  # the pool closed the task socket: done
        length, kind = struct.unpack("<IB", header)
        if length > max_frame or kind != KIND_TASK:
            write_all(results, frame(KIND_FATAL, b"unexpected frame"))
            return 121
        body = read_exact(tasks, length - 1)
        (task_id,) = struct.unpack_from("<Q", body)
        write_all(results, frame(KIND_ACK, struct.pack("<Q", task_id)))
        ok, reply = handle(body[8:])
        status = 0 if ok else 1
        write_all(results, frame(KIND_RESULT, struct.pack("<QB", task_id, status) + reply))


if __name__ == "__main__":
    sys.exit(main())
