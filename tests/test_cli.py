"""The ``manifoldwalk`` command: the README's main job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from manifoldwalk.cli import main


def test_circle_prints_the_table_with_the_papers_answer(capsys):
    assert main(["circle", "--schemes", "default", "paper"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isalpha()}
    for scheme in ("default", "paper"):
        x, y, angle = map(float, lines[scheme][1:4])
        assert abs(x + 0.70711) < 1e-3 and abs(y + 0.70711) < 1e-3 and angle > 179.9
    assert "exact minimiser: (-0.70711, -0.70711)" in out


def test_unknown_commands_and_choices_fail_with_a_usage_message():
    done = subprocess.run(
        [sys.executable, "-m", "manifoldwalk", "circle", "--schemes", "fast"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr and "paper" in done.stderr


TINY_REPRODUCE = ["--epochs", "1", "--wd-epochs", "1", "--wd-lambdas", "0", "--quiet"]


def test_an_out_that_is_a_file_is_a_one_line_error_naming_it(tmp_path, capsys):
    out = tmp_path / "afile"
    out.write_text("not a directory")
    assert main(["reproduce", "iris-ff", "--seeds", "1", "--out", str(out), *TINY_REPRODUCE]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(out) in err and "--out" in err, err


def test_permission_errors_are_one_line_errors_naming_the_path(monkeypatch, capsys):
    import manifoldwalk.experiments as experiments

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/ro/runs/iris-ff")

    monkeypatch.setattr(experiments, "run_experiment", denied)
    assert main(["reproduce", "iris-ff", "--out", "/ro/runs", *TINY_REPRODUCE]) == 2
    err = capsys.readouterr().err
    assert err == (
        "manifoldwalk reproduce: error: Permission denied: /ro/runs/iris-ff (choose another --out)\n"
    )


def test_ctrl_c_in_one_process_is_one_line_saying_how_to_resume(monkeypatch, capsys):
    import manifoldwalk.experiments as experiments

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_experiment", interrupted)
    assert main(["reproduce", "iris-ff", "--out", "somewhere", *TINY_REPRODUCE]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kept in somewhere" in err and "rerun the same command" in err


def _live_processes_of_group(pgid: int) -> list[str]:
    """The processes of a process group that still run (zombies, dead already, excepted)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(stat.parent.name)
    return live


def test_ctrl_c_with_parallel_seeds_stops_the_workers_and_exits(tmp_path):
    """Ctrl-C (SIGINT to the process group) while two spawn workers walk: the command stops
    them and exits promptly with status 130, its work kept, without hanging."""
    out = tmp_path / "runs"
    argv = ["reproduce", "iris-ff", "--seeds", "2", "--jobs", "2", "--steps", "1000000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "manifoldwalk", *argv, "--out", str(out), *TINY_REPRODUCE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell's background job inherits SIGINT ignored, and Python then keeps it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 240
        phase1 = [out / "iris-ff" / f"seed-00{k}" / "phase1.npz" for k in (0, 1)]
        while not all(p.exists() for p in phase1):  # both workers are walking
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rerun the same command to resume" in err, err
    time.sleep(0.5)
    assert _live_processes_of_group(proc.pid) == []  # no worker left behind
    assert all(p.exists() for p in phase1)


def test_dataset_errors_name_the_data_dir_option(tmp_path, capsys):
    argv = ["reproduce", "mnist-ff", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*argv, *TINY_REPRODUCE]) == 2
    err = capsys.readouterr().err
    assert "MNIST not found" in err and "--data-dir DIR" in err and "load_dataset" not in err
