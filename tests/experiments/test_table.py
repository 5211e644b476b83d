"""Table I from synthetic run directories: grouping by directory, λ labels, one-seed rows, errors.

The run directories here hold only what :func:`build_table` reads (``summary.json``,
``config.json`` and the ``DONE`` marker), so no training is needed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from manifoldwalk.cli import main
from manifoldwalk.experiments import build_table, format_table
from manifoldwalk.experiments.rundir import atomic_write_json, mark_done, seed_dir
from manifoldwalk.experiments.table import COLUMNS, format_csv, format_json


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


# --- paired statistics and the CSV / JSON formats ---------------------------------------------


def _paired_seed(out: Path, seed: int, walk: float, wd: float, experiment: str) -> None:
    """A finished seed whose walk ends at ``walk`` and whose one weight-decay λ gives ``wd``."""
    metric = "mse" if experiment == "mpg-ff" else "accuracy"
    d = seed_dir(out, experiment, seed)
    summary = {
        "experiment": experiment,
        "metric": metric,
        "seed": seed,
        "phase1": {"test_metric": wd},
        "walk": {"test_metric": walk},
        "wd": [
            {"lam": 1e-3, "split": "full", "test_metric": wd, "val_metric": float("nan")},
            {"lam": 1e-3, "split": "val", "test_metric": wd, "val_metric": wd},
        ],
    }
    atomic_write_json(d / "summary.json", summary)
    atomic_write_json(d / "config.json", {"seed": seed, "options": {"wd_reg": "l2"}})
    mark_done(d)


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))


@pytest.mark.parametrize(
    ("experiment", "shift", "verdict"),
    [
        ("iris-ff", +0.03, "significant (walk higher)"),
        ("iris-ff", -0.03, "significant (weight decay higher)"),
        ("mpg-ff", -0.5, "significant (walk lower: walk better)"),
        ("mpg-ff", +0.5, "significant (weight decay lower: weight decay better)"),
    ],
)
def test_paired_statistics_match_scipy_and_name_the_better_method(
    tmp_path, experiment, shift, verdict
):
    rng = np.random.default_rng(1)
    wd = rng.uniform(0.8, 0.9, 8) if experiment == "iris-ff" else rng.uniform(6.0, 9.0, 8)
    walk = wd + shift + rng.normal(0, abs(shift) / 10, 8)
    for seed in range(8):
        _paired_seed(tmp_path, seed, float(walk[seed]), float(wd[seed]), experiment)
    (row,) = build_table(tmp_path)
    by_test, by_val = row.paired
    assert (by_test.chosen_by, by_val.chosen_by) == ("test", "val")
    c = by_test.comparison
    d = walk - wd
    assert by_test.seeds == list(range(8)) and c.mean == pytest.approx(d.mean())
    assert c.t_pvalue == pytest.approx(stats.ttest_rel(walk, wd).pvalue, rel=1e-9)
    assert c.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)
    half = stats.t.ppf(0.975, 7) * d.std(ddof=1) / np.sqrt(8)
    assert c.ci95 == pytest.approx((d.mean() - half, d.mean() + half))
    text = format_table([row])
    assert f"| {verdict} |" in text
    assert f"Significant differences: {row.label} (λ by test): " in text
    # the CSV and JSON formats carry the same numbers
    (rec,) = csv.DictReader(io.StringIO(format_csv([row])))
    assert float(rec["paired_by_test_mean"]) == c.mean
    assert float(rec["paired_by_val_t_pvalue"]) == by_val.comparison.t_pvalue
    assert rec["paired_by_test_significant"] == "True"
    assert rec["paired_by_test_verdict"] == verdict
    (obj,) = _strict(format_json([row]))
    assert obj["paired_by_test_differences"] == pytest.approx(d.tolist())
    assert obj["paired_by_test_seeds"] == list(range(8))
    assert obj["paired_by_test_wilcoxon_pvalue"] == c.wilcoxon_pvalue


def test_below_six_seeds_no_difference_is_significant_and_the_table_says_why(tmp_path):
    for seed in range(5):  # walk better on every seed, by a wide margin
        _paired_seed(tmp_path, seed, 0.95 + 0.001 * seed, 0.80 + 0.002 * seed, "iris-ff")
    (row,) = build_table(tmp_path)
    c = row.paired[0].comparison
    assert c.t_pvalue < 1e-4 and c.wilcoxon_pvalue == pytest.approx(2 / 2**5)
    assert not c.significant
    text = format_table([row])
    assert "| iris-ff | test | 1e-3 | 5 | +14.80 pp |" in text
    assert "not significant" in text and "Significant differences: none." in text
    assert "With fewer than 6 seeds the Wilcoxon test cannot reach p < 0.05" in text


def test_a_seed_whose_walk_is_no_number_is_left_out_of_the_paired_comparison(tmp_path):
    for seed, walk in enumerate([0.9, float("nan"), 0.8]):
        _paired_seed(tmp_path, seed, walk, 0.85, "iris-ff")
    (row,) = build_table(tmp_path)
    assert row.paired[0].seeds == [0, 2] and row.paired[0].comparison.n == 2
    assert any(n.startswith("seed 1 left out of 'walk − WD (λ by test)'") for n in row.notes), (
        row.notes
    )
    (obj,) = _strict(format_json([row]))
    assert obj["walk_mean"] is None and obj["walk_mean_note"].startswith("nan")


def test_csv_and_json_have_one_row_per_directory_with_accuracy_as_a_fraction(tmp_path):
    root = tmp_path / "runs"
    _seed(root, 0, {0.0: 0.90, 1e-3: 0.80})
    _seed(root / "grid14", 0, {0.0: 0.50, 3e-2: 0.95})
    _paired_seed(root, 0, 7.0, 8.0, "mpg-ff")
    rows = build_table(root)
    records = list(csv.DictReader(io.StringIO(format_csv(rows))))
    assert [r["label"] for r in records] == ["runs/iris-ff", "runs/grid14/iris-ff", "mpg-ff"]
    assert list(records[0]) == list(COLUMNS)
    iris, nested, mpg = records
    # the paper's 96.67 % is 0.9667 in files; its MSE stays an MSE
    assert float(iris["paper_walk_mean"]) == pytest.approx(0.9667)
    assert float(mpg["paper_walk_mean"]) == pytest.approx(5.36)
    assert float(iris["wd_by_test_mean"]) == 0.9 and float(nested["wd_by_test_lambda"]) == 3e-2
    assert iris["phase1_std"] == "nan" and iris["seed_list"] == "0"
    objects = _strict(format_json(rows))
    assert [o["label"] for o in objects] == [r["label"] for r in records]
    assert objects[0]["phase1_std"] is None
    assert objects[0]["phase1_std_note"] == "nan: one seed (no sample standard deviation)"
    assert objects[0]["paired_by_test_verdict"] == "one seed: no test"
    # the Markdown shows the same accuracy in percent
    assert "| runs/iris-ff | 1 | 80.00% | 90.00% | 90.00% |" in format_table(rows)
