"""``manifoldwalk connect``, ``ensemble``, ``list`` and ``plot`` on the studies, at toy size."""

from __future__ import annotations

import csv
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from manifoldwalk.cli import main
from manifoldwalk.experiments import rundir

CONNECT = ["connect", "iris-ff", "--nets", "2", "--steps", "20", "--epochs", "2", "--quiet"]
ENSEMBLE = [
    "ensemble",
    "iris-ff",
    "--walks",
    "2",
    "--steps",
    "5",
    "--reg-steps",
    "5",
    "--epochs",
    "2",
    "--wd-epochs",
    "2",
    "--wd-lambdas",
    "1e-3",
    "--no-sharpness",
    "--quiet",
]
REPRODUCE = ["reproduce", "iris-ff", "--seeds", "1", "--steps", "50", "--epochs", "2"]
REPRODUCE += ["--wd-epochs", "2", "--wd-lambdas", "0", "--quiet"]


def run(argv: list[str]) -> tuple[int, str, str]:
    """Run the command; its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both studies of iris-ff in one output root."""
    root = tmp_path_factory.mktemp("runs")
    for argv in (CONNECT, ENSEMBLE):
        status, _, err = run([*argv, "--out", str(root)])
        assert status == 0, err
    return root


def test_list_names_the_studies() -> None:
    status, out, _ = run(["list"])
    assert status == 0
    studies = out.split("studies")[-1]
    assert "connect " in studies and "ensemble " in studies


def test_the_commands_write_finished_studies_and_print_their_numbers(runs) -> None:
    for study in ("connect", "ensemble"):
        assert rundir.is_finished(runs / "iris-ff" / study)
    status, out, _ = run([*CONNECT, "--out", str(runs)])  # finished: read back, printed again
    assert status == 0
    assert "0→1    max_steps" in out and "1→0    max_steps" in out
    assert f"run directory: {runs / 'iris-ff' / 'connect'}" in out
    status, out, _ = run([*ENSEMBLE, "--out", str(runs)])
    assert status == 0
    assert "−∇R walk" in out and "WD λ=0.001" in out and "random walks' reg:" in out


def test_other_options_are_refused_naming_the_flag(runs) -> None:
    status, _, err = run([*CONNECT, "--out", str(runs), "--steps", "21"])
    assert status == 2
    assert "steps (--steps): 20 there, 21 asked" in err
    status, _, err = run([*ENSEMBLE, "--out", str(runs), "--sharpness"])
    assert status == 2
    assert "sharpness (--sharpness): False there, True asked" in err


@pytest.mark.filterwarnings("ignore:the model looks untrained", "ignore:iris-ff. no 1-walk")
def test_plot_draws_the_studies_and_the_experiments_beside_them(runs, tmp_path) -> None:
    status, _, err = run([*REPRODUCE, "--out", str(runs)])
    assert status == 0, err
    plots = tmp_path / "plots"
    status, out, err = run(
        ["plot", str(runs), "--out", str(plots), "--grid", "4", "--surfaces", "1", "--no-endpoints"]
    )
    assert status == 0, err
    assert "iris-ff connect: wrote 2 files" in out and "iris-ff ensemble: wrote 2 files" in out
    assert (plots / "iris-ff" / "phase2.png").is_file(), "the experiment's figures as before"
    for study in ("connect", "ensemble"):
        assert (plots / "iris-ff" / study / f"{study}.png").stat().st_size > 1000
    with open(plots / "iris-ff" / "connect" / "connect.csv", newline="") as f:
        pairs = list(csv.DictReader(f))
    assert [(p["i"], p["j"], p["stop_reason"]) for p in pairs] == [
        ("0", "1", "max_steps"),
        ("1", "0", "max_steps"),
    ]


def test_plot_of_one_study_directory_draws_it_alone(runs, tmp_path) -> None:
    status, out, err = run(["plot", str(runs / "iris-ff" / "ensemble"), "--out", str(tmp_path)])
    assert status == 0, err
    assert out.startswith("iris-ff ensemble: wrote 2 files")
    assert sorted(p.name for p in (tmp_path / "iris-ff" / "ensemble").iterdir()) == [
        "ensemble.csv",
        "ensemble.png",
    ]


def test_plot_of_a_directory_without_runs_or_studies_is_an_error(tmp_path) -> None:
    status, _, err = run(["plot", str(tmp_path), "--out", str(tmp_path / "plots")])
    assert status == 2
    assert "no finished run" in err
