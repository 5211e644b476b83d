"""Seeds run side by side in worker processes, stopped at once on Ctrl-C.

What the workers save is kept when they are stopped: every file is written atomically, so a
terminated seed resumes from its last checkpoint on the next run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

__all__ = ["run_in_processes"]


def _ignore_sigint() -> None:
    """Worker initialiser: Ctrl-C reaches the whole process group, but stopping the workers is
    the parent's job (a worker that caught it would carry on with the next seed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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

    A call that fails lets the others finish, then its exception is raised here.

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
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_ignore_sigint)
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
