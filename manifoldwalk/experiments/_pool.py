"""Seeds run side by side in worker processes, stopped at once on Ctrl-C, gone with their parent.

What the workers save is kept when they are stopped: every file is written atomically, so a
terminated seed resumes from its last checkpoint on the next run. A worker never outlives the
process that started it (killed with ``kill -9``, say): on Linux the kernel sends it SIGKILL
when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog thread in the
worker ends it within a fraction of a second of its parent's death.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

__all__ = ["run_in_processes"]

_PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process gets when its parent dies (Linux)."""

WATCH_INTERVAL = 0.25
"""Seconds between a worker's checks that its parent is alive."""


def _parent_gone(parent: int) -> bool:
    """Whether the process ``parent`` that started this one has died (this one was handed to
    another parent, or ``parent`` no longer exists)."""
    if os.getppid() != parent:
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _watch_parent(parent: int) -> None:
    """Watchdog thread of a worker: end the worker at once when its parent has died."""
    while not _parent_gone(parent):
        time.sleep(WATCH_INTERVAL)
    os._exit(1)  # no cleanup: what the seed saved is complete (atomic writes)


def _die_with_parent(parent: int) -> None:
    """Make this worker process end when ``parent`` dies: the kernel's parent-death signal on
    Linux, and a watchdog thread everywhere (for other systems, and for a parent that died
    before the signal was asked for)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still ends the worker
    if _parent_gone(parent):
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _init_worker(parent: int) -> None:
    """Worker initialiser: die with the parent ``parent``, and ignore Ctrl-C: it reaches the
    whole process group, but stopping the workers is the parent's job (a worker that caught it
    would carry on with the next seed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


def _stop_pool(pool: ProcessPoolExecutor, futures: list[Any]) -> None:
    """Stop a pool of seed workers now: cancel the queued seeds, terminate the running ones.

    What the workers saved is kept: every file is written atomically, so a terminated seed
    resumes from its last checkpoint on the next run. A second Ctrl-C during the stop is ignored.
    """
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for fut in futures:
            fut.cancel()
        # no public API reaches the worker processes; without terminating them shutdown waits
        # for every running seed to finish
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for proc in processes:
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
    finally:
        if main:
            signal.signal(signal.SIGINT, old)


def run_in_processes(
    task: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    jobs: int,
    on_done: Callable[[], None],
) -> None:
    """Run ``task(*args)`` for every ``args`` of ``calls`` in ``jobs`` spawned worker processes.

    A call that fails lets the others finish, then its exception is raised here. The workers
    end when this process dies, however it dies (see the module's docstring).

    Args:
        task: A module-level function (the workers import it by name).
        calls: The arguments of each call (picklable).
        jobs: Worker processes.
        on_done: Called in this process after each call that finished.

    Raises:
        KeyboardInterrupt: On Ctrl-C, after stopping the workers (see :func:`_stop_pool`).
        Exception: What a failed call raised in its worker.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
    )
    futures: list[Any] = []
    interrupted = False
    try:
        futures = [pool.submit(task, *args) for args in calls]
        for fut in as_completed(futures):
            fut.result()
            on_done()
    except KeyboardInterrupt:
        interrupted = True
        _stop_pool(pool, futures)
        raise
    finally:
        if not interrupted:  # a seed that failed lets the others finish
            pool.shutdown(wait=True)
