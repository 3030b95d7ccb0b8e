"""Tests of BytesPool (the byte-level pool) against the real library and real workers."""
import asyncio
import gc
import math
import os
import signal
import sys
import threading
import time

import pytest

import libbilliard
from libbilliard import Outcome, StartMethod

from helpers import WORKER, alive


@pytest.fixture
def pool():
    with libbilliard.BytesPool(WORKER, workers=2) as p:
        yield p


def test_abi_matches_the_loaded_library():
    assert libbilliard._lib.lib.billiard_abi_version() == libbilliard.ABI_VERSION
    assert libbilliard.version().count(".") == 2


def test_round_trip_results_are_python_bytes(pool):
    task = pool.submit(b"echo:hello")
    result = task.result(timeout=30)
    assert result.outcome is Outcome.OK
    assert isinstance(result.data, bytes) and result.data == b"hello"
    assert result.task_id == task.id and result.pid > 0
    assert pool.submit("echo:text").result(30).value() == b"text"


def test_every_task_gets_exactly_one_result(pool):
    ids = {pool.submit(f"echo:{i}".encode(), tag=i).id: i for i in range(300)}
    seen = {}
    for result in pool.results(timeout=60):
        assert result.task_id not in seen
        seen[result.task_id] = result
    assert set(seen) == set(ids)
    for task_id, i in ids.items():
        assert seen[task_id].data == str(i).encode() and seen[task_id].tag == i
    assert pool.wait(timeout=1) is None  # nothing pending


def test_failure_is_an_outcome_and_value_raises(pool):
    result = pool.submit(b"fail:boom").result(30)
    assert result.outcome is Outcome.FAILED
    assert b"ValueError: boom" in result.data
    with pytest.raises(libbilliard.TaskError) as info:
        result.value()
    assert info.value.result is result


def test_worker_crash_is_worker_lost_and_the_pool_goes_on(pool):
    pid = int(pool.submit(b"pid").result(30).value())
    result = None
    for _ in range(4):  # until the crash lands on that worker or another
        result = pool.submit(b"crash").result(30)
        if result.outcome is Outcome.WORKER_LOST:
            break
    assert result.outcome is Outcome.WORKER_LOST
    assert result.signal == signal.SIGKILL and result.exit_code == -1
    assert pool.submit(b"echo:after").result(30).value() == b"after"
    # The other worker may serve that before the replacement is counted.
    deadline = time.monotonic() + 30
    while pool.stats()["restarts"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.stats()["restarts"] >= 1
    assert pid > 0


def test_exit_code_of_a_worker_that_exits(pool):
    result = pool.submit(b"exit:3").result(30)
    assert result.outcome is Outcome.WORKER_LOST and result.exit_code == 3


def test_hard_time_limit():
    with libbilliard.BytesPool(WORKER, workers=1, hard_time_limit=0.3, kill_grace=0.5) as pool:
        start = time.monotonic()
        result = pool.submit(b"sleep:30").result(30)
        assert result.outcome is Outcome.TIME_LIMIT
        assert 0.3 <= time.monotonic() - start < 20
        # A per-task limit overrides the pool's: none at all here.
        assert pool.submit(b"sleep:0.5", hard_time_limit=math.inf).result(30).value() == b"slept"
        tighter = pool.submit(b"sleep:30", hard_time_limit=0.1).result(30)
        assert tighter.outcome is Outcome.TIME_LIMIT


def test_soft_time_limit_is_seen_by_the_handler():
    with libbilliard.BytesPool(WORKER, workers=1, soft_time_limit=0.2) as pool:
        assert pool.submit(b"soft:20").result(30).value() == b"reached"
        assert pool.submit(b"soft:0.05").result(30).value() == b"not reached"


def test_cancel(pool):
    slow = [pool.submit(b"sleep:5") for _ in range(2)]
    queued = pool.submit(b"echo:never")
    assert queued.cancel() is True
    assert queued.result(30).outcome is Outcome.CANCELLED
    assert queued.cancel() is False  # finished: its result stands
    for task in slow:
        task.cancel()
        assert task.result(30).outcome is Outcome.CANCELLED


def test_resize_terminate_and_a_full_queue():
    # prefetch=1: the queued task waits in the pool, not behind the sleep.
    with libbilliard.BytesPool(WORKER, workers=1, max_queued=1, prefetch=1) as pool:
        running = pool.submit(b"sleep:30")
        deadline = time.monotonic() + 30
        while pool.stats()["running"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting = pool.submit(b"echo:queued")
        with pytest.raises(libbilliard.Full):
            pool.submit(b"echo:no room", block=False)
        pool.resize(3)
        while len(pool.worker_pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pool.worker_pids()) == 3
        assert waiting.result(30).value() == b"queued"  # a new worker took it
        pool.terminate()
        assert running.result(30).outcome is Outcome.ABANDONED
        assert pool.worker_pids() == []


def test_a_wait_sees_ctrl_c():
    # The wait is sliced, so SIGINT's KeyboardInterrupt comes within a slice,
    # not when the 30 s task ends.
    with libbilliard.BytesPool(WORKER, workers=1) as pool:
        task = pool.submit(b"sleep:30")
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            task.result(timeout=60)
        assert time.monotonic() - start < 10
        timer.join()
        assert task.cancel() is True


def test_errors_carry_code_and_message(pool):
    slow = pool.submit(b"sleep:5")
    with pytest.raises(libbilliard.Timeout) as info:
        slow.result(timeout=0.05)
    assert info.value.code == -2 and info.value.name == "BILLIARD_ETIMEDOUT"
    assert slow.cancel() is True
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(libbilliard.NotFound):
        libbilliard.Task(pool, 987654321).result(1)
    pool.close()
    with pytest.raises(libbilliard.Closed) as closed:
        pool.submit(b"echo:late")
    assert closed.value.code == -3 and "closed" in closed.value.message


def test_a_program_that_cannot_start():
    with pytest.raises(libbilliard.SpawnError) as info:
        libbilliard.BytesPool(["/nonexistent/billiard-python-worker"], workers=1)
    assert info.value.code == -6
    assert "/nonexistent/billiard-python-worker" in info.value.message


def test_bad_arguments_are_errors_not_crashes():
    with pytest.raises(libbilliard.BilliardError) as info:
        libbilliard.BytesPool(WORKER, workers=1, prefetch=100000)
    assert info.value.code == -1
    with pytest.raises(libbilliard.BilliardError):
        libbilliard.BytesPool(WORKER, workers=1, soft_time_limit=2, hard_time_limit=1)


def test_waiting_does_not_hold_the_gil(pool):
    # Another Python thread runs on while this one blocks in the library:
    # its longest pause stays well below one 200 ms wait slice (a wait
    # holding the GIL would stop it for a whole slice at a time).
    longest = [0.0]
    stop = threading.Event()

    def spin():
        last = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            longest[0] = max(longest[0], now - last)
            last = now

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.05)
        longest[0] = 0.0
        assert pool.submit(b"sleep:1").result(30).value() == b"slept"
    finally:
        stop.set()
        thread.join()
    assert longest[0] < 0.15, longest[0]


def test_asyncio_through_the_pool_fd(pool):
    async def main():
        tasks = [pool.submit(f"echo:{i}") for i in range(50)]
        results = await asyncio.gather(*tasks)
        assert [r.data for r in results] == [str(i).encode() for i in range(50)]
        pool.submit(b"echo:any")
        any_result = await asyncio.wait_for(pool.wait_async(), 30)
        assert any_result.data == b"any"
        # The loop stays free while a task runs.
        ticks = 0
        slow = asyncio.ensure_future(pool.submit(b"sleep:0.3"))
        while not slow.done():
            ticks += 1
            await asyncio.sleep(0.01)
        assert ticks >= 10 and slow.result().value() == b"slept"

    asyncio.run(main())


def test_fileno_works_with_select(pool):
    import select
    pool.submit(b"echo:x")
    readable, _, _ = select.select([pool], [], [], 30)
    assert readable == [pool]
    assert pool.wait(0.5).data == b"x"


def test_forkserver_start_method():
    with libbilliard.BytesPool(WORKER, workers=2, start_method=StartMethod.FORKSERVER) as pool:
        assert pool.map([b"echo:a", b"echo:b"], timeout=30) == [b"a", b"b"]


def test_shutdown_reaps_every_worker_and_is_idempotent():
    pool = libbilliard.BytesPool(WORKER, workers=2)
    pids = pool.worker_pids()
    assert len(pids) == 2 and all(alive(p) for p in pids)
    pool.shutdown()
    pool.shutdown()
    assert not any(alive(p) for p in pids)
    with pytest.raises(libbilliard.Closed):
        pool.submit(b"echo:late")


def test_a_block_that_raises_stops_the_workers_at_once():
    start = time.monotonic()
    with pytest.raises(RuntimeError):
        with libbilliard.BytesPool(WORKER, workers=2) as pool:
            pids = pool.worker_pids()
            pool.submit(b"sleep:30")
            raise RuntimeError("out")
    assert time.monotonic() - start < 20  # the 30 s task was not waited for
    assert not any(alive(p) for p in pids)


def test_finalizer_frees_a_dropped_pool():
    pool = libbilliard.BytesPool(WORKER, workers=2)
    pids = pool.worker_pids()
    del pool
    gc.collect()
    assert not any(alive(p) for p in pids)


def test_worker_main_outside_a_pool_is_an_error():
    with pytest.raises(libbilliard.BilliardError) as info:
        libbilliard.worker_main(lambda data: data)
    assert info.value.code == -1


def test_readme_example_runs(tmp_path):
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "README.md")) as f:
        readme = f.read()
    code = next(block.split("```", 1)[0] for block in readme.split("```python\n")[1:]
                if "# worker.py" in block)
    host, worker = code.split("# worker.py\n")
    (tmp_path / "host.py").write_text(host)
    (tmp_path / "worker.py").write_text(worker)
    out = subprocess.run([sys.executable, "host.py"], cwd=tmp_path, timeout=60,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "OK b'HELLO'\nOK b'WORLD'\n"


def test_shutdown_while_other_threads_wait_and_submit_never_frees_the_pool_under_them():
    """One close rule: shutdown terminates (waking every waiter and blocked
    submit), waits for the calls in flight, then frees; later calls raise
    Closed. Without it this segfaulted or corrupted the heap."""
    for _ in range(9):
        pool = libbilliard.BytesPool(WORKER, workers=2, max_queued=4)
        pids = pool.worker_pids()
        errors = []
        start = threading.Barrier(17)

        def waiter():
            start.wait()
            try:
                while True:
                    try:
                        pool.wait(timeout=0.001)
                    except libbilliard.Timeout:
                        pass
                    pool.stats()
                    pool.worker_pids()
            except libbilliard.Closed:
                pass
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        def submitter():
            start.wait()
            try:
                while True:
                    task = pool.submit(b"sleep:0.05")
                    try:
                        task.result(timeout=5)
                    except libbilliard.NotFound:
                        pass  # a waiter's pool.wait() took it first, as it may
            except libbilliard.Closed:
                pass
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=waiter) for _ in range(12)]
        threads += [threading.Thread(target=submitter) for _ in range(4)]
        for t in threads:
            t.start()
        start.wait()
        time.sleep(0.1)
        # Several threads close at once; each returns once the pool is freed.
        closers = [threading.Thread(target=pool.shutdown, kwargs={"wait": False})
                   for _ in range(3)]
        for c in closers:
            c.start()
        for c in closers:
            c.join(timeout=30)
            assert not c.is_alive(), "a shutdown hung"
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive(), "a thread hung after shutdown"
        assert not errors, errors
        with pytest.raises(libbilliard.Closed):
            pool.submit(b"echo:late")
        with pytest.raises(libbilliard.Closed):
            pool.wait(timeout=0)
        assert not any(alive(pid) for pid in pids)


def test_worker_pids_lists_every_worker_however_many():
    with libbilliard.BytesPool(WORKER, workers=70) as big:
        assert len(set(big.worker_pids())) == 70


def test_errors_pickle_and_say_where_they_live():
    import pickle
    error = libbilliard.SpawnError(-6, "no worker")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is libbilliard.SpawnError
    assert (again.code, again.message, str(again)) == (error.code, error.message, str(error))
    assert libbilliard.SpawnError.__module__ == "libbilliard"
    result = libbilliard.Result(task_id=1, tag=0, outcome=Outcome.FAILED, data=b"boom", pid=0,
                                exit_code=-1, signal=0, queued_us=0, running_us=0)
    assert str(pickle.loads(pickle.dumps(libbilliard.TaskError(result)))) == \
        str(libbilliard.TaskError(result))
