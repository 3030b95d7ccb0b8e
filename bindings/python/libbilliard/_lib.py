"""The C API, declared with ctypes: every function used has its argtypes
and restype. Internal: use the classes in libbilliard instead.

The library is found by, in order: $LIBBILLIARD_PATH (a path), then the
copy pip built into this package (_libbilliard*.so, see pyproject.toml) or
into the installed package when this is the source tree, then the one
cargo built in a source checkout (target/release, target/debug), then the
soname libbilliard.so.0.1 through the system loader (LD_LIBRARY_PATH,
ldconfig's cache). ctypes.CDLL releases the GIL around every call, so a
blocking wait never holds it.
"""
import ctypes
import glob
import os
from ctypes import (CFUNCTYPE, POINTER, c_bool, c_char_p, c_int, c_int32, c_int64, c_size_t,
                    c_uint32, c_uint64, c_void_p)

# The ABI this binding is written for (BILLIARD_ABI_VERSION, BILLIARD_SONAME
# in billiard.h). Loading a library with another ABI fails at import.
ABI_VERSION = 100
SONAME = "libbilliard.so.0.1"

OK = 0
EINVAL, ETIMEDOUT, ECLOSED, EFULL, ENOTFOUND = -1, -2, -3, -4, -5
ESPAWN, ERESTARTS, ENOMEM, EIO, EPANIC = -6, -7, -8, -9, -10
SUBMIT_NONBLOCK = 1
LIMIT_DEFAULT = -1
LIMIT_NONE = 0
NOTICE_STARTED, NOTICE_SOFT_LIMIT, NOTICE_WORKER_STARTED, NOTICE_WORKER_EXITED = 1, 2, 4, 8
TASK_QUEUED, TASK_SENT, TASK_RUNNING, TASK_DONE = 1, 2, 3, 4


class TaskOpts(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("tag", c_uint64),
        ("soft_time_limit_ms", c_int64),
        ("hard_time_limit_ms", c_int64),
    ]


class Stats(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("workers", c_uint32),
        ("busy", c_uint32),
        ("idle", c_uint32),
        ("target", c_uint32),
        ("reserved", c_uint32),
        ("queued", c_uint64),
        ("running", c_uint64),
        ("uncollected", c_uint64),
        ("outcomes", c_uint64 * 8),
        ("restarts", c_uint64),
        ("recycles", c_uint64),
    ]


class WorkerInfo(ctypes.Structure):
    _fields_ = [
        ("pid", c_int32),
        ("state", c_int32),
        ("task_id", c_uint64),
        ("tasks_done", c_uint64),
        ("rss_bytes", c_uint64),
    ]


class Notice(ctypes.Structure):
    _fields_ = [
        ("kind", c_int32),
        ("pid", c_int32),
        ("task_id", c_uint64),
        ("tag", c_uint64),
        ("time_us", c_uint64),
        ("elapsed_us", c_uint64),
    ]


class TaskInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("state", c_int32),
        ("pid", c_int32),
        ("reserved", c_int32),
        ("tag", c_uint64),
        ("started_us", c_uint64),
    ]


AFTER_FORK = CFUNCTYPE(c_int, c_void_p)
AT_EXIT = CFUNCTYPE(None, c_void_p)
FORK_SERVER = CFUNCTYPE(c_int, c_void_p, c_int)


class WorkerHooks(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("reserved", c_uint32),
        ("after_fork", AFTER_FORK),
        ("at_exit", AT_EXIT),
        ("ctx", c_void_p),
    ]


Config = c_void_p
PoolPtr = c_void_p
ResultPtr = c_void_p
ReplyPtr = c_void_p
# The payload pointer comes as a plain address (c_void_p): a POINTER
# argument would build a ctypes object for every task.
HANDLER = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, c_void_p)

_SIGNATURES = {
    "billiard_version": (c_char_p, []),
    "billiard_abi_version": (c_int, []),
    "billiard_strerror": (c_char_p, [c_int]),
    "billiard_errname": (c_char_p, [c_int]),
    "billiard_last_error": (c_char_p, []),
    "billiard_config_new": (c_int, [POINTER(Config)]),
    "billiard_config_free": (None, [Config]),
    "billiard_config_set_workers": (c_int, [Config, c_uint32]),
    "billiard_config_set_start_method": (c_int, [Config, c_int]),
    "billiard_config_set_worker_argv": (c_int, [Config, POINTER(c_char_p), c_size_t]),
    "billiard_config_set_worker_env_inherit": (c_int, [Config, c_bool]),
    "billiard_config_set_worker_env": (c_int, [Config, c_char_p, c_char_p]),
    "billiard_config_set_worker_cwd": (c_int, [Config, c_char_p]),
    "billiard_config_set_max_queued": (c_int, [Config, c_size_t]),
    "billiard_config_set_prefetch": (c_int, [Config, c_uint32]),
    "billiard_config_set_start_timeout": (c_int, [Config, c_int64]),
    "billiard_config_set_soft_time_limit": (c_int, [Config, c_uint64]),
    "billiard_config_set_hard_time_limit": (c_int, [Config, c_uint64]),
    "billiard_config_set_kill_grace": (c_int, [Config, c_uint64]),
    "billiard_config_set_max_tasks_per_worker": (c_int, [Config, c_uint64, c_uint64]),
    "billiard_config_set_soft_memory_limit": (c_int, [Config, c_uint64]),
    "billiard_config_set_hard_memory_limit": (c_int, [Config, c_uint64]),
    "billiard_config_set_restart_intensity": (c_int, [Config, c_uint32, c_uint64]),
    "billiard_config_set_notices": (c_int, [Config, c_uint32]),
    "billiard_config_set_fork_server_callback": (c_int, [Config, FORK_SERVER, c_void_p]),
    "billiard_task_opts_init": (c_int, [POINTER(TaskOpts)]),
    "billiard_pool_new": (c_int, [Config, POINTER(PoolPtr)]),
    "billiard_pool_submit": (c_int, [PoolPtr, c_char_p, c_size_t, POINTER(TaskOpts),
                                     POINTER(c_uint64)]),
    "billiard_pool_wait": (c_int, [PoolPtr, c_int64, POINTER(ResultPtr)]),
    "billiard_task_wait": (c_int, [PoolPtr, c_uint64, c_int64, POINTER(ResultPtr)]),
    "billiard_task_cancel": (c_int, [PoolPtr, c_uint64]),
    "billiard_task_cancel_signal": (c_int, [PoolPtr, c_uint64, c_int]),
    "billiard_task_signal": (c_int, [PoolPtr, c_uint64, c_int]),
    "billiard_task_status": (c_int, [PoolPtr, c_uint64, POINTER(TaskInfo)]),
    "billiard_pool_notices": (c_int, [PoolPtr, POINTER(Notice), c_size_t, POINTER(c_size_t)]),
    "billiard_pool_set_notices": (c_int, [PoolPtr, c_uint32]),
    "billiard_pool_restart": (c_int, [PoolPtr]),
    "billiard_pool_fd": (c_int, [PoolPtr]),
    "billiard_pool_close": (c_int, [PoolPtr]),
    "billiard_pool_join": (c_int, [PoolPtr, c_int64]),
    "billiard_pool_terminate": (c_int, [PoolPtr]),
    "billiard_pool_free": (None, [PoolPtr]),
    "billiard_pool_resize": (c_int, [PoolPtr, c_uint32]),
    "billiard_pool_stats": (c_int, [PoolPtr, POINTER(Stats)]),
    "billiard_pool_workers": (c_int, [PoolPtr, POINTER(WorkerInfo), c_size_t,
                                      POINTER(c_size_t)]),
    "billiard_result_task_id": (c_uint64, [ResultPtr]),
    "billiard_result_tag": (c_uint64, [ResultPtr]),
    "billiard_result_outcome": (c_int, [ResultPtr]),
    "billiard_result_data": (c_void_p, [ResultPtr, POINTER(c_size_t)]),
    "billiard_result_pid": (c_int, [ResultPtr]),
    "billiard_result_exit_code": (c_int, [ResultPtr]),
    "billiard_result_signal": (c_int, [ResultPtr]),
    "billiard_result_queued_us": (c_uint64, [ResultPtr]),
    "billiard_result_running_us": (c_uint64, [ResultPtr]),
    "billiard_result_free": (None, [ResultPtr]),
    "billiard_reply_write": (c_int, [ReplyPtr, c_char_p, c_size_t]),
    "billiard_reply_error": (c_int, [ReplyPtr, c_char_p]),
    "billiard_worker_main": (c_int, [HANDLER, c_void_p]),
    "billiard_worker_main_hooks": (c_int, [HANDLER, c_void_p, POINTER(WorkerHooks)]),
    "billiard_worker_set_error": (None, [c_char_p]),
    "billiard_forkserver_serve": (c_int, [c_int, HANDLER, c_void_p, POINTER(WorkerHooks)]),
    "billiard_worker_soft_limit_reached": (c_bool, []),
}


def _bundled():
    """The library pip built into a package, if any: this package's copy;
    else, when this is the source tree imported while the package is
    also installed, the installed copy; else, in a source checkout, the
    library cargo built there (release, then debug)."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "_libbilliard*.so")))
    if found:
        return found[0]
    try:
        from importlib import metadata
        files = metadata.distribution("libbilliard").files or []
        for f in files:
            if f.name.startswith("_libbilliard") and f.name.endswith(".so"):
                path = str(f.locate())
                if os.path.exists(path):
                    return path
    except Exception:  # not installed, or metadata unreadable: look further
        pass
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    for profile in ("release", "debug"):
        path = os.path.join(root, "target", profile, "libbilliard.so")
        if os.path.exists(os.path.join(root, "Cargo.toml")) and os.path.exists(path):
            return path
    return None


def _declare(handle):
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(handle, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _load():
    path = os.environ.get("LIBBILLIARD_PATH") or _bundled() or SONAME
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise ImportError(
            f"cannot load libbilliard ({path}): {exc}; install the package with pip "
            "(which builds it), install the library (make install) or set LIBBILLIARD_PATH "
            "to its path") from exc
    _declare(lib)
    if lib.billiard_abi_version() != ABI_VERSION:
        raise ImportError(
            f"libbilliard {lib.billiard_version().decode()} at {path} has ABI "
            f"{lib.billiard_abi_version()}; this binding is written for ABI {ABI_VERSION}")
    return lib, path


lib, _path = _load()

# The same library, its functions called *without* releasing the GIL: for
# calls that never block (a non-blocking wait, a result's fields, an
# unbounded submit). Each release is a chance for another Python thread to
# take the GIL and make this one wait for it back: on a busy pool that
# handoff, not the library, was most of a call's time.
fast = ctypes.PyDLL(_path)
_declare(fast)
