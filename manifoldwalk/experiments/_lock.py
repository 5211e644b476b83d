"""One process at a time per run: an advisory lock on the experiment's directory.

Two ``manifoldwalk reproduce`` (or two ``ensemble`` / ``connect``) commands given the same
``--out`` would both resume the same unfinished seed and write the same files, and the table
would then count runs that neither process alone produced. Each command therefore holds an
exclusive :func:`fcntl.flock` on ``OUT/EXPERIMENT/.<command>.lock`` while it runs; a second one
is refused at once with the first one's process id, host and start time. Different commands on
one experiment (``reproduce`` and ``ensemble`` write different subdirectories) do not block each
other. The operating system drops the lock when its process ends, however it ends, so a killed
run leaves nothing to clean up (the lock file itself stays, empty of meaning). Where ``fcntl``
does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunLocked", "exclusive"]


class RunLocked(ValueError):
    """Another process is running the same command in the same run directory."""


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold the lock of ``command`` on ``directory`` for the body of the ``with``.

    Args:
        directory: The experiment's directory, ``OUT/EXPERIMENT`` (created if missing).
        command: What runs there (``"reproduce"``, ``"ensemble"``, ``"connect"``); names the
            lock file ``.<command>.lock``.

    Yields:
        Nothing; the lock is held until the ``with`` ends.

    Raises:
        RunLocked: Another process holds the lock (its pid, host and start time are named).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".{command}.lock"
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise RunLocked(
                f"{holder} is running `manifoldwalk {command}` in {directory}; two at once would "
                f"write the same run files. Wait for it to finish (running the command again "
                f"then resumes what is left), or give another --out."
            ) from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} since {stamp}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
