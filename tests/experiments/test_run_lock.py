"""One process at a time per experiment directory and command (``_lock.exclusive``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from _runs_helpers import TINY

from manifoldwalk.experiments import RunConfig, run_experiment
from manifoldwalk.experiments._lock import RunLocked, exclusive
from manifoldwalk.experiments.rundir import seed_dir


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path) -> None:
    with exclusive(tmp_path, "reproduce"):
        with pytest.raises(RunLocked, match=rf"process {os.getpid()} on .* since .*another --out"):
            with exclusive(tmp_path, "reproduce"):
                pass  # pragma: no cover
        with exclusive(tmp_path, "ensemble"):  # another command on the same experiment: free
            pass
    with exclusive(tmp_path, "reproduce"):  # released
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path) -> None:
    code = (
        "import sys, time\n"
        "from manifoldwalk.experiments._lock import exclusive\n"
        f"with exclusive({str(tmp_path)!r}, 'reproduce'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=rf"process {child.pid} "):
            with exclusive(tmp_path, "reproduce"):
                pass  # pragma: no cover
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the lock with the process
        try:
            with exclusive(tmp_path, "reproduce"):
                break
        except RunLocked:
            assert time.monotonic() < deadline, "the lock outlived its process"
            time.sleep(0.05)


def test_reproduce_refuses_a_directory_another_process_is_running(tmp_path) -> None:
    config = RunConfig("iris-ff", out=str(tmp_path), max_steps=20, **TINY)
    exp_dir = seed_dir(tmp_path, "iris-ff", 0).parent
    with exclusive(exp_dir, "reproduce"):
        with pytest.raises(RunLocked, match="manifoldwalk reproduce"):
            run_experiment(config, show_progress=False)
    assert not seed_dir(tmp_path, "iris-ff", 0).exists(), "nothing was written while refused"
    (summary,) = run_experiment(config, show_progress=False)  # free again: it runs
    assert summary["seed"] == 0
