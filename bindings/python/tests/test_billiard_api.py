"""libbilliard.Pool's own promises (issue: billiard's Pool for Python):
the main script's functions and classes in workers, the worker hooks,
limits, deaths, restarts, callbacks, billiard's crashes that do not happen
here, and the package's install. Real workers throughout; times only
bound behaviour, generously."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import billiard.exceptions
import pytest

import libbilliard
from helpers import kill_one
from libbilliard import Pool
from libbilliard.exceptions import (RestartFreqExceeded, SoftTimeLimitExceeded, Terminated,
                                    TimeLimitExceeded, WorkerLostError)

CONTEXTS = ["forkserver", "spawn", "fork"]


def sqr(x):
    return x * x


def slow_sqr(x, wait=0.05):
    time.sleep(wait)
    return x * x


def sleeper(seconds):
    time.sleep(seconds)
    return "slept"


def catch_soft(seconds):
    try:
        time.sleep(seconds)
    except billiard.exceptions.SoftTimeLimitExceeded:
        return "soft limit raised in the task"
    return "slept"


def crash():
    os._exit(3)


def getpid():
    return os.getpid()


INIT_PID = None


def slow_init(marker):
    global INIT_PID
    time.sleep(2.0)  # longer than the pool's time limit
    INIT_PID = os.getpid()
    atexit_marker = os.path.join(marker, f"{os.getpid()}")
    import atexit
    atexit.register(_append, atexit_marker, "atexit")


def init_pid():
    return INIT_PID


def _append(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")


class OnExit:
    """on_process_exit, picklable: appends to DIR/PID."""

    def __init__(self, marker):
        self.marker = marker

    def __call__(self, pid, exitcode):
        _append(os.path.join(self.marker, str(pid)), f"on_process_exit {exitcode}")


def failing_init():
    raise RuntimeError("the initializer refused")


def run_script(tmp_path, text, timeout=120, **kwargs):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(text))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, **kwargs)


def readme_quickstart():
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    with open(readme) as f:
        return f.read().split("```python\n", 2)[1].split("```", 1)[0]


@pytest.mark.parametrize("context", CONTEXTS)
def test_the_cards_quickstart_runs_with_only_its_import_changed(tmp_path, context):
    code = readme_quickstart()
    assert "from libbilliard import Pool" in code
    if context != "forkserver":  # the default
        code = code.replace("Pool(processes=3)", f"Pool(processes=3, context={context!r})")
    proc = run_script(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[0, 1, 4, 9, 16]\n"


def test_fork_context_keeps_closures_and_state_without_importing_main_again(tmp_path):
    # Under "fork" the workers are forks of this process (through a fork
    # server it forks): a lambda initializer with a closure, and state made
    # before the pool, are there; the script's top level runs once.
    proc = run_script(tmp_path, """
        import os
        from libbilliard import Pool

        with open("top-level-runs", "a") as f:
            f.write(f"{os.getpid()}\\n")
        STATE = {}

        def read_state(key):
            return STATE.get(key), os.getpid()

        if __name__ == "__main__":
            STATE["loaded"] = "before the pool"
            secret = "captured"
            with Pool(2, context="fork", initializer=lambda: STATE.update(init=secret)) as pool:
                values = pool.map(read_state, ["loaded", "init"])
            print(values[0][0], values[1][0], all(pid != os.getpid() for _, pid in values))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "before the pool captured True\n"
    assert len((tmp_path / "top-level-runs").read_text().split()) == 1


@pytest.mark.parametrize("context", CONTEXTS)
def test_functions_and_classes_of_the_main_script_work_in_workers(tmp_path, context):
    proc = run_script(tmp_path, f"""
        from libbilliard import Pool

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        class MainError(Exception):
            pass

        def flip(p):
            return Point(p.y, p.x)

        def fail(text):
            raise MainError(text)

        if __name__ == "__main__":
            with Pool(2, context={context!r}) as pool:
                p = pool.apply(flip, (Point(1, 2),))
                assert type(p) is Point and (p.x, p.y) == (2, 1)
                try:
                    pool.apply(fail, ("raised in a worker",))
                except MainError as exc:
                    assert exc.args == ("raised in a worker",)
                else:
                    raise AssertionError("no MainError")
            print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


def test_a_script_without_the_main_guard_gets_an_error_not_a_fork_bomb(tmp_path):
    proc = run_script(tmp_path, """
        from libbilliard import Pool
        def sqr(x):
            return x * x
        pool = Pool(2, context="spawn")
        print(pool.map(sqr, range(3)))
    """)
    assert proc.returncode != 0
    assert "if __name__ == '__main__':" in proc.stderr


@pytest.mark.parametrize("context", ["forkserver", "spawn"])
def test_workers_see_the_hosts_sys_path_and_working_directory(tmp_path, context):
    lib = tmp_path / "extra"
    lib.mkdir()
    (lib / "extra_module.py").write_text("import os\ndef where():\n    return os.getcwd()\n")
    work = tmp_path / "work"
    work.mkdir()
    proc = run_script(tmp_path, f"""
        import os, sys
        sys.path.insert(0, {str(lib)!r})
        os.chdir({str(work)!r})
        from libbilliard import Pool
        import extra_module
        if __name__ == "__main__":
            with Pool(1, context={context!r}) as pool:
                print(pool.apply(extra_module.where))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{work}\n"


@pytest.mark.parametrize("context", CONTEXTS)
def test_initializer_once_per_worker_outside_the_time_limit_then_exit_hooks_in_order(
        tmp_path, context):
    pool = Pool(2, slow_init, (str(tmp_path),), timeout=1.0, context=context,
                on_process_exit=OnExit(str(tmp_path)))
    pids = {w.pid for w in pool._pool}
    results = [pool.apply_async(init_pid) for _ in range(10)]
    got = [r.get(60) for r in results]
    assert set(got) <= pids and None not in got  # each ran in an initialized worker
    pool.close()
    pool.join()
    for pid in pids:
        with open(tmp_path / str(pid)) as f:
            assert f.read() == "on_process_exit 0\natexit\n"


def test_a_failing_initializer_is_a_failed_start_with_its_message():
    with pytest.raises(libbilliard.SpawnError, match="the initializer refused"):
        Pool(1, failing_init)


def test_unpicklable_arguments_fail_that_call_and_the_pool_goes_on():
    with Pool(1) as pool:
        result = pool.apply_async(sqr, (lambda: 1,))
        with pytest.raises(Exception) as info:
            result.get(30)
        assert "pickle" in str(info.value).lower() or "lambda" in str(info.value)
        assert pool.apply(sqr, (3,)) == 9


# billiard 4.3.2 os._exit()s its own host in each of these three.

def test_map_with_pool_time_limits_works():  # celery/billiard#385
    with Pool(2, timeout=30, soft_timeout=20) as pool:
        assert pool.map(slow_sqr, range(20)) == [x * x for x in range(20)]


def test_imap_with_enable_timeouts_works():
    with Pool(2, enable_timeouts=True) as pool:
        assert list(pool.imap(slow_sqr, range(20))) == [x * x for x in range(20)]


def test_imap_with_maxtasksperchild_works_while_workers_recycle():
    with Pool(2, maxtasksperchild=2) as pool:
        before = {w.pid for w in pool._pool}
        assert list(pool.imap(slow_sqr, range(30))) == [x * x for x in range(30)]
        assert sorted(pool.imap_unordered(sqr, range(30))) == [x * x for x in range(30)]
        assert not before & {w.pid for w in pool._pool}  # every first worker recycled


def test_a_killed_worker_fails_its_task_with_worker_lost_error_at_once():
    started = threading.Event()
    with Pool(2) as pool:
        result = pool.apply_async(sleeper, (300,), accept_callback=lambda pid, t: started.set())
        assert started.wait(30)
        pid = result.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        # billiard waits lost_worker_timeout (10 s) first.
        with pytest.raises(WorkerLostError, match="signal 9"):
            result.get(timeout=8)
        assert pool.apply(sqr, (4,)) == 16  # replaced


def test_soft_time_limit_raises_inside_the_task_and_exceptions_are_billiards():
    assert SoftTimeLimitExceeded is billiard.exceptions.SoftTimeLimitExceeded
    for name in ("WorkerLostError", "TimeLimitExceeded", "Terminated", "RestartFreqExceeded"):
        assert getattr(libbilliard.exceptions, name) is getattr(billiard.exceptions, name)
    with Pool(1, soft_timeout=1.0, timeout=60) as pool:
        # The worker imports this module first (in no task's time): beside
        # a CPU hog, importing it inside the task took longer than the soft
        # limit, which then fired before the task's try.
        pool.apply(getpid)
        assert pool.apply(catch_soft, (60,)) == "soft limit raised in the task"
    with Pool(1) as pool:  # per call, on a pool without limits
        with pytest.raises(SoftTimeLimitExceeded):
            pool.apply_async(sleeper, (60,), soft_timeout=0.3).get(60)


def test_exceptions_without_billiard_have_billiards_names_and_bases(tmp_path):
    proc = run_script(tmp_path, """
        import sys
        sys.modules["billiard"] = None  # as if billiard were not installed
        import multiprocessing
        import libbilliard.exceptions as e
        assert e.SoftTimeLimitExceeded.__module__ == "libbilliard.exceptions"
        for name in ("WorkerLostError", "SoftTimeLimitExceeded", "TimeLimitExceeded",
                     "Terminated", "RestartFreqExceeded", "MaybeEncodingError"):
            assert getattr(e, name).__bases__ == (Exception,), name
        assert e.TimeoutError is multiprocessing.TimeoutError
        import libbilliard
        assert libbilliard.ExceptionInfo.__bases__ == (object,)
        print(str(e.TimeLimitExceeded(1.5)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "TimeLimitExceeded(1.5,)\n"


def test_per_call_hard_limit_without_enable_timeouts_and_its_callback():
    calls = []
    with Pool(1) as pool:
        result = pool.apply_async(sleeper, (60,), timeout=0.5,
                                  timeout_callback=lambda **kw: calls.append(kw))
        with pytest.raises(TimeLimitExceeded):
            result.get(60)
        assert calls == [{"soft": False, "timeout": 0.5}]
        assert pool.apply(sqr, (5,)) == 25


def test_a_soft_limit_at_or_above_the_hard_one_gives_way_to_it():
    calls = []
    with Pool(1, timeout=0.5, soft_timeout=1) as pool:
        result = pool.apply_async(sleeper, (60,), timeout_callback=lambda **kw: calls.append(kw))
        with pytest.raises(TimeLimitExceeded):
            result.get(60)
        assert calls == [{"soft": False, "timeout": 0.5}]  # no soft one first
        with pytest.raises(TimeLimitExceeded):
            pool.apply_async(sleeper, (60,), soft_timeout=2, timeout=0.5).get(60)


def test_soft_timeout_callback_runs_in_the_host():
    calls = []
    with Pool(1) as pool:
        pool.apply(getpid)  # the module imported first, as above
        result = pool.apply_async(catch_soft, (60,), soft_timeout=1.0,
                                  timeout_callback=lambda **kw: calls.append(kw))
        assert result.get(60) == "soft limit raised in the task"
        assert calls == [{"soft": True, "timeout": 1.0}]


def test_too_many_crashes_raise_restart_freq_exceeded_and_the_host_lives():
    pool = Pool(1, max_restarts=2, max_restart_freq=600)
    try:
        waiting = [pool.apply_async(sleeper, (0.01,)) for _ in range(3)]
        crashes = [pool.apply_async(crash) for _ in range(4)]
        outcomes = []
        for result in waiting + crashes:
            try:
                result.get(60)
                outcomes.append("ok")
            except WorkerLostError:
                outcomes.append("lost")
            except RestartFreqExceeded:
                outcomes.append("restarts")
        assert outcomes[:3] == ["ok"] * 3
        assert "restarts" in outcomes
        with pytest.raises(RestartFreqExceeded):
            pool.apply_async(sqr, (2,))
    finally:
        pool.terminate()
        pool.join()


def test_terminate_job_ends_the_task_with_terminated():
    started = threading.Event()
    with Pool(2) as pool:
        result = pool.apply_async(sleeper, (300,), accept_callback=lambda pid, t: started.set())
        assert started.wait(30)
        pool.terminate_job(result.worker_pids()[0], signal.SIGKILL)
        with pytest.raises(Terminated) as info:
            result.get(30)
        assert info.value.args == (-signal.SIGKILL,)


def test_terminate_ends_pending_calls_with_terminated():
    pool = Pool(1)
    result = pool.apply_async(sleeper, (300,))
    pool.terminate()
    with pytest.raises(Terminated):
        result.get(30)
    pool.join()


def test_accept_callback_accepted_and_worker_pids():
    seen = []
    with Pool(1) as pool:
        pid = pool._pool[0].pid
        result = pool.apply_async(sqr, (3,), accept_callback=lambda p, t: seen.append((p, t)),
                                  correlation_id="abc")
        assert result.get(30) == 9
        assert result.accepted() and result.successful()
        assert result.worker_pids() == [pid]
        assert result.correlation_id == "abc"
        assert seen[0][0] == pid and abs(seen[0][1] - time.monotonic()) < 60


def test_grow_shrink_restart_and_the_pool_list():
    with Pool(1) as pool:
        assert pool.did_start_ok()
        first = pool._pool
        assert len(first) == 1 and first[0].is_alive()
        pool.grow(2)
        deadline = time.monotonic() + 60
        while len(pool._pool) != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pool._pool) == 3
        pool.shrink(2)
        while len(pool._pool) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pool._pool) == 1
        before = {w.pid for w in pool._pool}
        pool.restart()
        while ({w.pid for w in pool._pool} & before or not pool._pool) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert not {w.pid for w in pool._pool} & before
        assert pool.apply(sqr, (6,)) == 36
        with pytest.raises(ValueError):
            pool.shrink(1)


def test_process_up_and_down_callbacks():
    ups, downs = [], []
    with Pool(1, maxtasksperchild=1, on_process_up=lambda p: ups.append(p.pid),
              on_process_down=lambda p: downs.append(p.pid)) as pool:
        first = pool._pool[0].pid
        for i in range(3):
            assert pool.apply(sqr, (i,)) == i * i
        deadline = time.monotonic() + 60
        while (len(ups) < 3 or len(downs) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert ups[0] == first and len(set(ups)) >= 3
    assert first in downs
    # Each worker once, however short its life (workers' own notices, not a
    # poll that a worker recycled within its interval would slip past).
    assert len(ups) == len(set(ups)) and len(downs) == len(set(downs))
    assert set(downs) <= set(ups)


def test_putlocks_make_apply_async_wait_for_room():
    with Pool(1, putlocks=True) as pool:
        pool.apply_async(sleeper, (1.5,))  # runs
        time.sleep(0.3)
        pool.apply_async(sleeper, (0.01,))  # waits to start: the queue is full
        start = time.monotonic()
        third = pool.apply_async(sqr, (7,))  # waits for room
        assert time.monotonic() - start > 0.5
        assert third.get(30) == 49


def test_unknown_keywords_are_accepted_as_billiard_does():
    with Pool(1, no_such_option=True, threads=False, synack=True) as pool:
        assert pool.apply(sqr, (2,)) == 4


def test_library_path_override_and_the_bundled_library():
    code = "import libbilliard._lib as l; print(l.lib._name)"
    bundled = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items()
                                  if k != "LIBBILLIARD_PATH"}, check=True).stdout.strip()
    assert os.path.basename(bundled).startswith("_libbilliard")
    assert os.path.dirname(bundled) == os.path.dirname(libbilliard.__file__)
    other = os.environ.get("TEST_LIBBILLIARD_DEBUG")
    if not other:
        pytest.skip("TEST_LIBBILLIARD_DEBUG names no other build of the library")
    chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, LIBBILLIARD_PATH=other), check=True)
    assert chosen.stdout.strip() == other


def hold_memory(mib):
    global HELD
    HELD = bytearray(mib << 20)
    for i in range(0, len(HELD), 4096):
        HELD[i] = 1  # touched: private resident memory
    return os.getpid()


def test_max_memory_per_child_replaces_the_worker_after_the_task():
    with Pool(1, max_memory_per_child=64 * 1024) as pool:  # KiB, as billiard
        first = pool.apply(getpid)
        assert pool.apply(getpid) == first  # below the limit: kept
        assert pool.apply(hold_memory, (200,)) == first  # the task itself completes
        assert pool.apply(getpid) != first  # then its worker was replaced


def test_accepted_and_worker_pids_of_a_running_call_without_callbacks():
    with Pool(1) as pool:
        pid = pool._pool[0].pid
        result = pool.apply_async(sleeper, (300,))
        deadline = time.monotonic() + 60
        while not result.accepted() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert result.accepted() and result.worker_pids() == [pid]
        pool.terminate_job(pid)
        with pytest.raises(Terminated):
            result.get(30)
        done = pool.map_async(sqr, range(4), chunksize=1)
        assert done.get(30) == [0, 1, 4, 9]
        assert done.accepted() and set(done.worker_pids()) <= {w.pid for w in pool._pool}


def test_large_items_are_mapped_in_smaller_chunks_with_the_same_answer():
    items = [bytes([i]) * (700 << 10) for i in range(12)]
    with Pool(2) as pool:
        assert pool.map(len, items) == [700 << 10] * 12
        assert pool.map(bytes, items) == items


def test_callbacks_follow_the_results_and_errors_reach_error_callback():
    events = []
    with Pool(2) as pool:
        ok = pool.apply_async(sqr, (3,), callback=lambda v: events.append(("ok", v)))
        bad = pool.apply_async(failing_init, error_callback=lambda e: events.append(
            ("err", type(e.exception).__name__, "refused" in e.traceback)))
        assert ok.get(30) == 9
        with pytest.raises(RuntimeError):
            bad.get(30)
        assert not bad.successful() and ok.successful()
    assert sorted(events) == [("err", "RuntimeError", True), ("ok", 9)]


def test_exception_info_is_billiards_kind():
    infos = []
    with Pool(1) as pool:
        result = pool.apply_async(failing_init, error_callback=infos.append)
        with pytest.raises(RuntimeError):
            result.get(30)
    import billiard.einfo
    info = infos[0]
    assert isinstance(info, billiard.einfo.ExceptionInfo)
    assert info.exc_info[:2] == (RuntimeError, info.exception)
    assert "the initializer refused" in str(info) and info.internal is False


STORED = None


def store(data):
    global STORED
    STORED = data


def stored_length():
    return len(STORED)


def test_a_large_setup_goes_through_a_file_that_is_removed_at_the_end():
    pool = Pool(1, store, (b"x" * 300_000,), context="spawn")
    path = pool._engine.setup_file
    assert path is not None and os.path.exists(path)
    assert pool.apply(stored_length) == 300_000
    pool.close()
    pool.join()
    assert not os.path.exists(path)


def test_a_pool_from_the_interactive_interpreter_runs_builtins():
    proc = subprocess.run(
        [sys.executable, "-c", "from libbilliard import Pool\n"
         "with Pool(2) as pool:\n    print(pool.map(abs, [-1, -2, 3]))"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[1, 2, 3]\n"


def test_a_forked_child_of_the_host_leaves_the_pool_alone():
    with Pool(1) as pool:
        pid = os.fork()
        if pid == 0:  # the copy refuses calls and frees only itself at exit
            try:
                pool.apply_async(sqr, (2,))
            except Exception:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert pool.apply(sqr, (3,)) == 9


def test_many_threads_waiting_on_results_as_they_arrive():
    with Pool(2) as pool:
        results = [pool.apply_async(slow_sqr, (i, 0.001)) for i in range(400)]
        got = {}

        def waiter(k):
            for i in range(k, 400, 8):
                got[i] = results[i].get(60)
            for i in range(399 - k, -1, -8):  # the same results again, from another side
                assert results[i].get(60) == i * i

        threads = [threading.Thread(target=waiter, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert got == {i: i * i for i in range(400)}


def exits(code):
    sys.exit(code)


def test_sys_exit_in_a_task_is_its_answer_and_the_worker_goes_on():
    with Pool(1) as pool:
        pid = pool.apply(getpid)
        with pytest.raises(SystemExit) as info:
            pool.apply(exits, (3,))
        assert info.value.code == 3
        assert pool.apply(getpid) == pid


def test_a_task_can_use_a_pool_of_its_own(tmp_path):
    proc = run_script(tmp_path, """
        from libbilliard import Pool
        def sqr(x):
            return x * x
        def inner(n):
            with Pool(1) as p:
                return p.map(sqr, range(n))
        if __name__ == "__main__":
            for ctx in ("forkserver", "spawn", "fork"):
                with Pool(1, context=ctx) as pool:
                    print(ctx, pool.apply(inner, (4,)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{c} [0, 1, 4, 9]" for c in ("forkserver", "spawn", "fork")]


def test_workers_killed_at_random_every_call_gets_one_outcome():
    with Pool(2, maxtasksperchild=25) as pool:
        results = [pool.apply_async(slow_sqr, (i, 0.005)) for i in range(400)]
        kills = 0
        deadline = time.monotonic() + 60
        while kills < 10 and time.monotonic() < deadline and not results[-1].ready():
            kills += kill_one([w.pid for w in pool._pool])
            time.sleep(0.05)
        values, lost = 0, 0
        for i, result in enumerate(results):
            try:
                assert result.get(60) == i * i
                values += 1
            except WorkerLostError:
                lost += 1
        assert values + lost == 400 and values > 0
        assert lost <= kills  # one running task per killed worker, at most
        assert pool.map(sqr, range(10)) == [x * x for x in range(10)]


def test_the_source_tree_imports_without_a_library_path():
    # Run from bindings/python, `import libbilliard` is the source tree: it
    # finds the library the installed package (or cargo) built.
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import libbilliard, libbilliard._lib as l; "
            "print(libbilliard.__file__); print(l.lib._name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True,
                         text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "LIBBILLIARD_PATH"})
    assert out.returncode == 0, out.stderr
    package, library = out.stdout.split()
    assert package.startswith(source) and os.path.exists(library)


def interrupted_sleep(seconds):
    time.sleep(seconds)
    return "not interrupted"


def test_workers_ignore_sigint_and_a_map_hard_limit_names_the_pools_limit():
    started = threading.Event()
    with Pool(1) as pool:
        result = pool.apply_async(interrupted_sleep, (1.0,),
                                  accept_callback=lambda pid, t: started.set())
        assert started.wait(30)
        os.kill(result.worker_pids()[0], signal.SIGINT)  # Ctrl-C is the host's
        assert result.get(30) == "not interrupted"
    with Pool(1, timeout=0.5) as pool:
        with pytest.raises(TimeLimitExceeded) as info:
            pool.map(sleeper, [60])
        assert info.value.args == (0.5,)


def test_on_timeout_set_and_cancel_bracket_each_call():
    calls = []
    with Pool(1, timeout=30, soft_timeout=20,
              on_timeout_set=lambda r, soft, hard: calls.append(("set", r, soft, hard)),
              on_timeout_cancel=lambda r: calls.append(("cancel", r))) as pool:
        result = pool.apply_async(sqr, (4,))
        assert result.get(30) == 16
    assert calls == [("set", result, 20, 30), ("cancel", result)]


def wait_for(check, timeout=60):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class SelectorLoop:
    """The least an event loop offers (kombu's Hub has the same two
    methods): readers on fds, run by hand here."""

    def __init__(self):
        import selectors
        self.selectors = selectors
        self.sel = selectors.DefaultSelector()

    def add_reader(self, fd, callback):
        self.sel.register(fd, self.selectors.EVENT_READ, callback)

    def remove_reader(self, fd):
        self.sel.unregister(fd)

    def run_until(self, check, timeout=30):
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out"
            for key, _ in self.sel.select(0.1):
                key.data(key.fd)

    def readers(self):
        return len(self.sel.get_map())


def test_results_through_an_event_loop_without_a_result_thread():
    loop = SelectorLoop()
    pool = Pool(2, threads=False)
    try:
        pool.register_with_event_loop(loop)
        got, where = [], []
        pool.apply_async(sqr, (3,), callback=lambda v: (got.append(v),
                                                        where.append(threading.current_thread())))
        time.sleep(0.5)
        assert got == []  # nothing is delivered unless the loop runs
        loop.run_until(lambda: got)
        assert got == [9] and where == [threading.main_thread()]
        assert "libbilliard-results" not in [t.name for t in threading.enumerate()]
        last = pool.apply_async(slow_sqr, (4, 0.5))
        pool.close()
        pool.join()  # delivers the rest on this thread, without the loop
        assert last.get(0) == 16
        assert loop.readers() == 0  # the pool's fd left the loop before it closed
    finally:
        pool.terminate()


def test_threads_false_without_a_loop_starts_the_thread_at_the_first_task():
    with Pool(1, threads=False) as pool:
        assert "libbilliard-results" not in [t.name for t in threading.enumerate()]
        assert pool.apply(sqr, (5,)) == 25
        with pytest.raises(RuntimeError, match="result thread"):
            pool.register_with_event_loop(SelectorLoop())


def test_semaphore_is_released_once_per_outcome_and_resized_with_the_pool():
    semaphore_mod = pytest.importorskip("kombu.asynchronous.semaphore")
    sem = semaphore_mod.LaxBoundedSemaphore(2)
    ran = []
    with Pool(2, semaphore=sem) as pool:
        for func in (sqr, crash):  # the host takes a slot per task, as Celery's worker does
            sem.acquire(ran.append, func.__name__)
        assert sem.value == 0 and ran == ["sqr", "crash"]
        ok = pool.apply_async(sqr, (2,))
        lost = pool.apply_async(crash)
        assert ok.get(30) == 4
        with pytest.raises(WorkerLostError):
            lost.get(30)
        assert sem.value == 2  # one release each: a success and a death
        pool.grow(2)
        assert sem.initial_value == 4
        pool.shrink(1)
        assert sem.initial_value == 3


def test_apply_result_terminate_stops_a_queued_call_and_a_running_one():
    with Pool(1, prefetch=1) as pool:
        running = pool.apply_async(sleeper, (60,))
        queued = pool.apply_async(getpid)
        wait_for(running.accepted)
        queued.terminate(signal.SIGUSR2)
        with pytest.raises(Terminated) as info:
            queued.get(30)
        assert info.value.args[0] == -signal.SIGUSR2  # billiard's rule: minus the signal
        assert not queued.accepted()  # it never ran
        start = time.monotonic()
        running.terminate(signal.SIGKILL)
        with pytest.raises(Terminated):
            running.get(30)
        assert time.monotonic() - start < 10
        assert pool.apply(sqr, (6,)) == 36


def test_prefetch_one_never_holds_a_call_behind_a_long_one():
    with Pool(2, prefetch=1) as pool:
        long = pool.apply_async(sleeper, (60,))
        wait_for(long.accepted)
        shorts = [pool.apply_async(slow_sqr, (i, 0.01)) for i in range(20)]
        assert [r.get(30) for r in shorts] == [i * i for i in range(20)]
        assert not long.ready()  # all twenty ran beside it, on the other worker
