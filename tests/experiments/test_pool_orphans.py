"""Worker processes of ``reproduce --jobs 2`` die with their parent, however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the workers through /proc (Linux)"
)


def _children(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_die_when_the_main_process_is_killed(tmp_path):
    out = tmp_path / "runs"
    argv = ["reproduce", "iris-ff", "--seeds", "2", "--jobs", "2", "--out", str(out), "--quiet"]
    # a walk far too long to finish: the workers are mid-walk when the parent is killed
    argv += ["--steps", "1000000", "--epochs", "1", "--wd-epochs", "1", "--wd-lambdas", "0"]
    main = subprocess.Popen(
        [sys.executable, "-m", "manifoldwalk", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        configs = [out / "iris-ff" / f"seed-{s:03d}" / "config.json" for s in (0, 1)]
        deadline = time.monotonic() + 180
        while not all(c.exists() for c in configs):  # both workers have started their seed
            assert main.poll() is None, "reproduce ended before its workers started"
            assert time.monotonic() < deadline, "the workers did not start in 3 minutes"
            time.sleep(0.2)
        workers = _children(main.pid)
        assert len(workers) >= 2, workers  # two workers (and the resource tracker)
        os.kill(main.pid, signal.SIGKILL)
        main.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "workers outlived their parent"
        assert not any((c.parent / "DONE").exists() for c in configs)
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
        for w in workers:  # never leave a stray process behind, whatever happened above
            if _alive(w):
                os.kill(w, signal.SIGKILL)
