"""What a seed's run was made with: ``provenance.json``, one record per session that worked on it.

A record holds the manifoldwalk version, the git commit and whether the work tree was dirty
(when manifoldwalk runs from a git checkout of its own repository; null otherwise), Python,
numpy, the framework and its version, the device, dtype and CPU threads, the command line and
when the session started. A resumed seed appends its session's record, so the file says which
software made which part of the run. It is recorded in the run's index and listed in ``DONE``
like every other file, but it is no option of the run: it takes no part in the comparison that
refuses a directory of other options (a run resumed with a newer commit is the same run).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._seed import damaged

__all__ = ["PROVENANCE", "FRAMEWORKS", "git_state", "record_session", "session_record"]

PROVENANCE = "provenance.json"
"""The name of the file, in each seed's run directory."""

FRAMEWORKS = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}
"""Backend name → the distribution whose version is recorded."""


def _git(directory: Path, *args: str) -> str | None:
    """The output of ``git -C directory args`` (stripped), or None when it fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def git_state(package: Path | None = None) -> dict[str, Any]:
    """The git commit manifoldwalk runs from, when it runs from a checkout of its repository.

    Only a work tree whose top level holds this very package counts: a virtual environment
    inside some other repository gives no commit.

    Args:
        package: The package's directory (None: the installed ``manifoldwalk``'s).

    Returns:
        ``{"commit": <40 hex digits>, "dirty": bool}`` (dirty: tracked files differ from the
        commit), or ``{"commit": None, "dirty": None}`` when there is no such checkout or git
        is missing.
    """
    import manifoldwalk

    here = (package or Path(manifoldwalk.__file__).parent).resolve()
    none = {"commit": None, "dirty": None}
    top = _git(here, "rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() / here.name != here:
        return none
    commit = _git(here, "rev-parse", "HEAD")
    if not commit:
        return none
    status = _git(here, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _version(distribution: str) -> str | None:
    """An installed distribution's version (None: not installed)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        module = sys.modules.get(distribution)
        return getattr(module, "__version__", None)


def session_record(
    *, backend: str, device: str, dtype: str, threads: int, started: datetime | None = None
) -> dict[str, Any]:
    """The provenance record of this session.

    Args:
        backend: The framework's backend name (``"torch"``, ``"jax"``, ``"tensorflow"``).
        device: ``"cpu"`` or ``"cuda"``.
        dtype: The floating dtype the run uses.
        threads: The CPU threads the framework was given.
        started: When the session started (None: now), recorded in UTC.

    Returns:
        A JSON-serialisable dict (its fields are documented in docs/run_format.md).
    """
    import manifoldwalk

    when = (started or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "manifoldwalk": manifoldwalk.__version__,
        "git": git_state(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "framework": backend,
        "framework_version": _version(FRAMEWORKS.get(backend, backend)),
        "device": device,
        "dtype": dtype,
        "threads": int(threads),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "started": when.isoformat(timespec="seconds"),
    }


def record_session(files: rundir.RunFiles, record: dict[str, Any]) -> None:
    """Append this session's record to the seed's ``provenance.json`` (through its index).

    The records of earlier sessions are kept when the index vouches for the file and it holds
    a list of records; otherwise the file is named on stderr and started afresh.

    Args:
        files: The seed's run files.
        record: What :func:`session_record` gives.
    """
    sessions: list[Any] = []
    path = files.directory / PROVENANCE
    if path.exists():
        why = files.problem(PROVENANCE)
        if why is None:
            try:
                loaded = rundir.read_json(path)
                sessions = loaded["sessions"] if isinstance(loaded, dict) else None
                if not isinstance(sessions, list):
                    raise ValueError("it holds no list of sessions")
            except (OSError, ValueError, KeyError) as err:
                why, sessions = f"{type(err).__name__}: {err}", []
        if why is not None:
            damaged(path, why, "starting its record of sessions afresh")
    files.write_json(PROVENANCE, {"sessions": [*sessions, record]})
