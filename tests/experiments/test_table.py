"""Table I from synthetic run directories: grouping by directory, λ labels, one-seed rows, errors.

The run directories here hold only what :func:`build_table` reads (``summary.json``,
``config.json`` and the ``DONE`` marker), so no training is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from manifoldwalk.cli import main
from manifoldwalk.experiments import build_table, format_table
from manifoldwalk.experiments.rundir import atomic_write_json, mark_done, seed_dir


def _seed(out: Path, seed: int, accuracy: dict[float, float], experiment: str = "iris-ff") -> Path:
    """A finished seed whose weight-decay test and validation accuracy at λ is ``accuracy[λ]``."""
    d = seed_dir(out, experiment, seed)
    wd = []
    for lam, acc in accuracy.items():
        wd.append({"lam": lam, "split": "full", "test_metric": acc, "val_metric": float("nan")})
        wd.append({"lam": lam, "split": "val", "test_metric": acc, "val_metric": acc})
    summary = {
        "experiment": experiment,
        "metric": "accuracy",
        "seed": seed,
        "phase1": {"test_metric": 0.8},
        "walk": {"test_metric": 0.9},
        "wd": wd,
    }
    atomic_write_json(d / "summary.json", summary)
    atomic_write_json(d / "config.json", {"seed": seed, "options": {"wd_reg": "l2"}})
    mark_done(d)
    return d


def test_copies_of_an_experiment_in_nested_directories_are_separate_rows(tmp_path):
    # the layout of docs/results.md: runs/<experiment> and, nested, runs/grid14/<experiment>
    root = tmp_path / "runs"
    _seed(root, 0, {0.0: 0.90, 1e-3: 0.80})
    _seed(root, 1, {0.0: 0.80, 1e-3: 0.70})
    _seed(root / "grid14", 0, {0.0: 0.50, 3e-2: 0.95})
    top, nested = build_table(root)
    assert (top.label, top.seeds, top.by_test.lam) == ("runs/iris-ff", [0, 1], 0.0)
    assert (nested.label, nested.seeds, nested.by_test.lam) == ("runs/grid14/iris-ff", [0], 3e-2)
    assert top.walk[0] == pytest.approx(0.9) and top.by_test.mean == pytest.approx(0.85)
    assert nested.directory == root / "grid14" / "iris-ff"
    text = format_table([top, nested])
    assert "| runs/iris-ff | 2 |" in text and "| runs/grid14/iris-ff | 1 |" in text
    # alone, an experiment keeps its plain name, wherever it is
    (only,) = build_table(root / "grid14")
    assert only.label == "iris-ff" and only.seeds == [0]
    (only,) = build_table(root / "iris-ff")
    assert only.label == "iris-ff" and only.seeds == [0, 1]


def test_an_experiment_directory_holding_a_nested_copy_keeps_them_apart(tmp_path):
    exp = tmp_path / "iris-ff"
    _seed(tmp_path, 0, {0.0: 0.9})
    _seed(exp, 0, {0.0: 0.5})  # iris-ff/iris-ff/seed-000
    from manifoldwalk.experiments.table import experiment_groups

    labels = [g.label for g in experiment_groups(exp)]
    assert labels == ["iris-ff", "iris-ff/iris-ff"]
    assert [r.by_test.mean for r in build_table(exp)] == [pytest.approx(0.9), pytest.approx(0.5)]


@pytest.mark.parametrize(
    ("lam", "text"),
    [
        (0.0, "0"),
        (1e-2, "1e-2"),
        (3e-2, "3e-2"),
        (5e-1, "5e-1"),
        (1.0, "1e0"),
        (1e6, "1e6"),
        (2.5e-3, "2.5e-3"),
    ],
)
def test_lambda_is_shown_as_it_is_not_rounded_to_a_power_of_ten(tmp_path, lam, text):
    _seed(tmp_path, 0, {lam: 0.95, 7e-7: 0.5})
    _seed(tmp_path, 1, {lam: 0.93, 7e-7: 0.5})
    (row,) = build_table(tmp_path)
    assert row.by_test.lam == lam and row.by_val.lam == lam
    line = format_table([row]).splitlines()[2]
    assert line.split(" | ")[5] == text and line.split(" | ")[7] == text


def test_one_seed_shows_the_mean_without_a_spread(tmp_path):
    _seed(tmp_path, 4, {0.0: 0.95})
    line = format_table(build_table(tmp_path)).splitlines()[2]
    assert line.startswith("| iris-ff | 1 | 80.00% | 90.00% | 95.00% | 0 | 95.00% | 0 |")
    assert "–%" not in line


def test_a_missing_or_empty_directory_is_named_as_such(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_table(tmp_path / "missing")
    assert main(["table", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        build_table(tmp_path / "a-file")
    (tmp_path / "iris-ff" / "seed-000").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no finished run .*1 unfinished"):
        build_table(tmp_path)


def test_a_weight_decay_result_that_is_no_number_is_named_where_it_is_left_out(tmp_path):
    _seed(tmp_path, 0, {0.0: 0.80, 1e-3: 0.95})
    _seed(tmp_path, 1, {0.0: 0.80, 1e-3: float("nan")})  # e.g. a diverged run at that λ
    (row,) = build_table(tmp_path)
    assert row.by_test.lam == 0.0 and row.by_val.lam == 0.0  # 1e-3 has no mean to compare
    text = format_table([row])
    d = tmp_path / "iris-ff"
    assert (
        f"Note, iris-ff: λ=1e-3 left out of 'λ by test': its test accuracy is not a number for "
        f"seed 1 ({d})" in text
    )
    assert (
        "λ=1e-3 left out of 'λ by val': its validation accuracy is not a number for seed 1" in text
    )
    assert "λ=0 left out" not in text
