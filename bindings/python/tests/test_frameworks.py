"""What frameworks need, through the Python binding: notices, task status,
cancel with a signal, a signal to a task, restart and the worker listing,
worker hooks (Python's atexit included) and pools whose workers are forks
of this process (Pool(handler=...))."""
import os
import signal
import time

import pytest

import libbilliard
from libbilliard import NoticeKind, Outcome, StartMethod, TaskState

from helpers import WORKER, alive


def wait_until(check, timeout=30):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_submit_refuses_what_is_not_bytes():
    with libbilliard.BytesPool(WORKER, workers=1) as pool:
        for bad in (3, 2.5, None, [1, 2]):
            with pytest.raises(TypeError, match="bytes-like"):
                pool.submit(bad)
        assert pool.submit(bytearray(b"echo:ba")).result(30).value() == b"ba"
        assert pool.submit(memoryview(b"echo:mv")).result(30).value() == b"mv"


def test_started_notice_status_and_pid_before_the_result():
    with libbilliard.BytesPool(WORKER, workers=2, notices=True) as pool:
        assert pool.notices() == []
        task = pool.submit(b"sleep:1", tag=7)
        wait_until(task.started)
        status = task.status()
        assert status.state is TaskState.RUNNING and status.tag == 7
        assert abs(status.started - time.time()) < 30
        assert task.pid == status.pid and alive(task.pid)
        # The status reads the progress page; the notice comes from the ACK
        # frame, which the supervisor may read a moment later.
        notices = []
        wait_until(lambda: notices.extend(pool.notices()) or notices)
        assert [(n.kind, n.task_id, n.tag, n.pid) for n in notices] == [
            (NoticeKind.STARTED, task.id, 7, status.pid)]
        assert pool.notices() == []  # each once
        with pytest.raises(libbilliard.Timeout):  # reading notices took no result
            pool.wait(timeout=0.01)
        result = task.result(30)
        assert result.pid == status.pid
        assert pool.notices() == []
        # Many tasks: every one that ran has exactly one STARTED notice.
        tasks = [pool.submit(b"echo:x") for _ in range(50)]
        for t in tasks:
            t.result(30)
        started = [n.task_id for n in pool.notices() if n.kind is NoticeKind.STARTED]
        assert sorted(started) == sorted(t.id for t in tasks)


def test_soft_limit_notice():
    with libbilliard.BytesPool(WORKER, workers=1, notices=True) as pool:
        task = pool.submit(b"soft:10", soft_time_limit=0.2)
        assert task.result(30).value() == b"reached"
        kinds = {n.kind for n in pool.notices() if n.task_id == task.id}
        assert kinds == {NoticeKind.STARTED, NoticeKind.SOFT_LIMIT}


def test_a_queued_task_is_queued_and_gets_no_signal():
    with libbilliard.BytesPool(WORKER, workers=1) as pool:
        first = pool.submit(b"sleep:1")
        second = pool.submit(b"echo:later")
        assert second.status().state in (TaskState.QUEUED, TaskState.SENT)
        assert second.signal(signal.SIGTERM) is False
        assert not second.started()
        assert first.result(30).ok and second.result(30).value() == b"later"
        assert first.started() and second.started()
        third = pool.submit(b"sleep:1")
        fourth = pool.submit(b"echo:never")
        assert fourth.cancel()
        assert fourth.result(30).outcome is Outcome.CANCELLED
        assert not fourth.started()  # cancelled in the queue: never ran
        third.cancel()


def test_cancel_with_sigkill_kills_at_once():
    with libbilliard.BytesPool(WORKER, workers=1, kill_grace=60) as pool:
        task = pool.submit(b"stubborn:60")
        wait_until(task.started)
        time.sleep(0.3)  # its SIGTERM handler is set by now
        start = time.monotonic()
        assert task.cancel(signal=signal.SIGKILL)
        result = task.result(30)
        assert result.outcome is Outcome.CANCELLED and result.signal == signal.SIGKILL
        assert time.monotonic() - start < 30  # not the 60 s grace
        assert pool.submit(b"echo:next").result(30).value() == b"next"


def test_a_signal_to_a_running_task_without_cancelling_it():
    with libbilliard.BytesPool(WORKER, workers=1) as pool:
        task = pool.submit(b"sleep:30")
        wait_until(task.started)
        assert task.signal(signal.SIGTERM) is True
        result = task.result(30)
        assert result.outcome is Outcome.WORKER_LOST and result.signal == signal.SIGTERM
        assert task.signal(signal.SIGTERM) is False  # finished: nothing sent


def test_soft_limit_raises_in_the_task_when_asked():
    env = {"TEST_SOFT_RAISES": "1"}
    with libbilliard.BytesPool(WORKER, workers=1, env=env, soft_time_limit=0.3) as pool:
        start = time.monotonic()
        result = pool.submit(b"sleep:5").result(30)
        assert result.outcome is Outcome.FAILED
        assert b"SoftTimeLimitExceeded" in result.data
        assert time.monotonic() - start < 4.5
        # The worker goes on; a task within the limit is not touched.
        assert pool.submit(b"echo:fine").result(30).value() == b"fine"


def test_worker_listing_restart_and_resize():
    with libbilliard.BytesPool(WORKER, workers=2) as pool:
        task = pool.submit(b"sleep:1")
        wait_until(task.started)
        workers = pool.workers()
        assert len(workers) == 2
        assert [w.task_id for w in workers if w.task_id] == [task.id]
        running = [w for w in workers if w.task_id][0]
        assert running.pid == task.pid and running.state is libbilliard.WorkerState.BUSY
        before = set(pool.worker_pids())
        pool.restart()
        assert task.result(30).ok  # restarted after its task
        wait_until(lambda: not (set(pool.worker_pids()) & before)
                   and len(pool.worker_pids()) == 2)
        pool.resize(3)
        wait_until(lambda: len(pool.workers()) == 3)
        assert pool.stats()["target"] == 3


@pytest.mark.parametrize("method", [StartMethod.SPAWN, StartMethod.FORKSERVER])
def test_hooks_run_after_fork_and_at_an_orderly_exit(method, tmp_path):
    env = {"TEST_HOOKS": str(tmp_path)}
    with libbilliard.BytesPool(WORKER, workers=1, start_method=method, env=env,
                          max_tasks_per_worker=2) as pool:
        pid = int(pool.submit(b"pid").result(30).value())
        assert int(pool.submit(b"hooked").result(30).value()) == pid  # in the worker itself
        # Recycled after two tasks: its at_exit hook and Python's atexit ran.
        wait_until(lambda: (tmp_path / f"atexit-{pid}").exists()
                   and (tmp_path / f"pyatexit-{pid}").exists())
        # A crash runs neither.
        crashed = pool.submit(b"crash").result(30)
        assert crashed.outcome is Outcome.WORKER_LOST
        last = int(pool.submit(b"pid").result(30).value())
    wait_until(lambda: (tmp_path / f"atexit-{last}").exists())
    assert not (tmp_path / f"atexit-{crashed.pid}").exists()
    assert not (tmp_path / f"pyatexit-{crashed.pid}").exists()


def test_a_failing_after_fork_hook_is_a_failed_start_with_its_message():
    def refuse():
        raise RuntimeError("no database here")

    with pytest.raises(libbilliard.SpawnError, match="no database here"):
        libbilliard.BytesPool(handler=lambda data: data, workers=1, after_fork=refuse)


LOADED = {"value": "loaded before the pool"}


def test_handler_pools_fork_this_process_with_its_closures(tmp_path):
    secret = "a closure's value"
    seen = []

    def handler(data):
        seen.append(data)  # the worker's own copy
        if data == b"data":
            return f"{LOADED['value']} / {secret} / {len(seen)}"
        if data == b"pid":
            return str(os.getpid())
        if data == b"hooked":
            return str(HOOKED.get("pid"))
        if data == b"sleep":
            time.sleep(3)
            return b"slept"
        return data.upper()

    HOOKED = {}

    def after_fork():
        HOOKED["pid"] = os.getpid()

    def at_exit():
        (tmp_path / f"atexit-{os.getpid()}").write_text("")

    pool = libbilliard.BytesPool(handler=handler, workers=2, after_fork=after_fork, at_exit=at_exit,
                            notices=True)
    try:
        LOADED["value"] = "changed after the pool"
        assert pool.submit(b"data").result(30).value() == \
            b"loaded before the pool / a closure's value / 1"
        assert pool.map([b"a", b"b"], timeout=30) == [b"A", b"B"]
        pid = int(pool.submit(b"pid").result(30).value())
        assert pid != os.getpid() and int(pool.submit(b"hooked").result(30).value()) == pid
        server = parent_of(pid)
        assert parent_of(server) == os.getpid()
        # Kill the server with a task running and others queued: the
        # running one is lost, the rest run on a server forked anew.
        slow = [pool.submit(b"sleep") for _ in range(2)]
        queued = [pool.submit(f"q{i}".encode()) for i in range(10)]
        wait_until(lambda: all(t.started() for t in slow))
        os.kill(server, signal.SIGKILL)
        assert all(t.result(30).outcome is Outcome.WORKER_LOST for t in slow)
        assert [t.result(30).value() for t in queued] == [f"Q{i}".encode() for i in range(10)]
        pid = int(pool.submit(b"pid").result(30).value())
        assert parent_of(parent_of(pid)) == os.getpid() and parent_of(pid) != server
        # The new server was forked now: it sees the data as it is now.
        assert pool.submit(b"data").result(30).value().startswith(b"changed after the pool")
        workers = pool.worker_pids()
    finally:
        pool.shutdown()
    assert not any(alive(p) for p in workers)
    wait_until(lambda: all((tmp_path / f"atexit-{p}").exists() for p in workers))


def test_asyncio_with_notices_does_not_spin_and_keeps_them():
    import asyncio

    async def main(pool):
        task = pool.submit(b"sleep:1")
        cpu = time.process_time()
        result = await task
        return result, time.process_time() - cpu, task

    with libbilliard.BytesPool(WORKER, workers=1, notices=True) as pool:
        result, cpu, task = asyncio.run(main(pool))
        assert result.ok
        assert cpu < 0.5  # the loop did not wake again and again for the notice
        assert [n.task_id for n in pool.notices()] == [task.id]


def test_notices_switched_on_and_off_while_the_pool_runs():
    with libbilliard.BytesPool(WORKER, workers=1) as pool:
        pool.submit(b"echo:quiet").result(30)
        assert pool.notices() == []
        pool.set_notices(started=True)
        task = pool.submit(b"sleep:3")
        deadline = time.monotonic() + 30
        notices = []
        while not notices and time.monotonic() < deadline:
            notices = pool.notices()
            time.sleep(0.01)
        assert [(n.kind, n.task_id) for n in notices] == [(NoticeKind.STARTED, task.id)]
        assert task.status().state is TaskState.RUNNING  # noticed at its start
        assert task.result(30).ok
        pool.set_notices()
        pool.submit(b"echo:quiet again").result(30)
        assert pool.notices() == []
