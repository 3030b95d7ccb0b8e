#!/usr/bin/env python3
"""A worker program written from docs/PROTOCOL.md alone, without
billiard_worker_main, that misbehaves on purpose. The tests start it as a
pool's worker program; the first argument says how:

  hang          say HELLO (no features), take one TASK, never ACK, hang
  scribble      say HELLO (area feature); echo a TASK (ACK, then RESULT);
                for a TASK_SHM, write over the payload in the area and die
                without ACK
  fork-liar X   act as a fork server and answer every FORK request with
                FORKED naming pid X (0, or another process's pid); with
                "pidfd:X", pass a pidfd of process X besides
"""
import array
import mmap
import os
import socket
import struct
import sys
import time

VERSION = 2


def frame(kind, body=b""):
    return struct.pack("<IB", len(body) + 1, kind) + body


def read_exact(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def hang():
    tasks = int(os.environ["BILLIARD_TASK_FD"])
    results = int(os.environ["BILLIARD_RESULT_FD"])
    os.write(results, frame(1, struct.pack("<III", VERSION, os.getpid(), 0)))
    length, _kind = struct.unpack("<IB", read_exact(tasks, 5))
    read_exact(tasks, length - 1)
    while True:
        time.sleep(3600)


def scribble():
    tasks = int(os.environ["BILLIARD_TASK_FD"])
    results = int(os.environ["BILLIARD_RESULT_FD"])
    area = int(os.environ["BILLIARD_AREA_FD"])
    os.write(results, frame(1, struct.pack("<III", VERSION, os.getpid(), 1)))
    while True:
        length, kind = struct.unpack("<IB", read_exact(tasks, 5))
        body = read_exact(tasks, length - 1)
        (task_id,) = struct.unpack_from("<Q", body)
        if kind == 6:
            _id, offset, size = struct.unpack("<QQQ", body)
            region = mmap.mmap(area, size, offset=offset)
            region[:] = b"X" * size
            region.close()
            os._exit(1)
        os.write(results, frame(3, struct.pack("<Q", task_id)))
        os.write(results, frame(4, struct.pack("<QB", task_id, 0) + body[8:]))


def fork_liar(what):
    fd = int(os.environ["BILLIARD_FORKSERVER_FD"])
    control = socket.socket(fileno=fd)
    control.send(frame(16, struct.pack("<II", VERSION, os.getpid())))
    pidfd = None
    if what.startswith("pidfd:"):
        what = what[len("pidfd:"):]
        pidfd = os.pidfd_open(int(what))
    pid = int(what)
    while True:
        message, ancillary, _flags, _addr = control.recvmsg(64, socket.CMSG_SPACE(3 * 4))
        if not message:
            return
        for _level, _type, data in ancillary:
            for passed in array.array("i", data[: len(data) - len(data) % 4]):
                os.close(passed)
        reply = frame(18, struct.pack("<I", pid & 0xFFFFFFFF))
        if pidfd is None:
            control.send(reply)
        else:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [pidfd]))]
            control.sendmsg([reply], rights)


if __name__ == "__main__":
    if sys.argv[1] == "hang":
        hang()
    elif sys.argv[1] == "scribble":
        scribble()
    elif sys.argv[1] == "fork-liar":
        fork_liar(sys.argv[2])
