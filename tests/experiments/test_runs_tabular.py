"""End-to-end runs of iris-ff and mpg-ff: run directories, resume, Table I, the command line."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from _runs_helpers import TINY, run_files

from manifoldwalk.cli import main
from manifoldwalk.datasets import DatasetError
from manifoldwalk.experiments import (
    RunConfig,
    _walk_stage,
    _weight_decay,
    build_table,
    format_table,
    run_experiment,
    run_seed,
)
from manifoldwalk.experiments import runner as runner_mod
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.rundir import is_finished, mark_done, seed_dir

IRIS_ARGS = ["--steps", "200", "--epochs", "2", "--wd-epochs", "2", "--wd-lambdas", "0,1e-3"]


@pytest.fixture(scope="module")
def iris_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two seeds of iris-ff through the command line (torch, 200 steps, 2 epochs, 2 λ)."""
    out = tmp_path_factory.mktemp("runs")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        status = main(
            ["reproduce", "iris-ff", "--seeds", "2", "--out", str(out), "--quiet", *IRIS_ARGS]
        )
    assert status == 0
    return out, buf.getvalue()


def test_reproduce_writes_complete_run_directories(iris_runs):
    out, printed = iris_runs
    assert "| iris-ff | 2 |" in printed and "96.67 ± 0.00%" in printed and "1e-3" in printed
    for seed in (0, 1):
        d = seed_dir(out, "iris-ff", seed)
        assert is_finished(d)
        config = json.loads((d / "config.json").read_text())
        assert config["seed"] == seed and config["options"]["scheme"] == "authors"
        assert config["experiment"]["eta_min"] == 1e-5 and config["experiment"]["eta_c"] == 1e-6
        m = list(csv.DictReader((d / "metrics.csv").open()))
        assert [int(r["n_predictor"]) for r in m] == [0, 50, 100, 150, 200]
        assert {"test_loss", "test_accuracy", "deviation", "angle", "example_grads"} <= set(m[0])
        assert all(float(r["deviation"]) <= 1e-5 + 1e-12 for r in m)
        saved = [np.load(p, allow_pickle=False) for p in sorted((d / "walk").glob("thetas-*.npz"))]
        steps = np.concatenate([s["steps"] for s in saved])
        assert list(steps) == [0, 50, 100, 150, 200]
        assert all(s["theta"].dtype == np.float32 and s["theta"].shape[1] == 21003 for s in saved)
        final = np.load(d / "final.npz", allow_pickle=False)["theta"]
        np.testing.assert_allclose(saved[-1]["theta"][-1], final.astype(np.float32))
        wd = list(csv.DictReader((d / "wd.csv").open()))
        assert [(float(r["lam"]), r["split"]) for r in wd] == [
            (0.0, "full"),
            (0.0, "val"),
            (1e-3, "full"),
            (1e-3, "val"),
        ]
        assert int(wd[0]["example_grads"]) == 2 * 120 and int(wd[1]["example_grads"]) == 2 * 96
        assert len(list((d / "wd").glob("*.npz"))) == 4


def test_table_matches_an_independent_recomputation_from_the_csvs(iris_runs):
    out, _ = iris_runs
    (row,) = build_table(out)
    walk, full, val = [], {}, {}
    for seed in (0, 1):
        d = seed_dir(out, "iris-ff", seed)
        with (d / "metrics.csv").open() as f:
            walk.append(float(list(csv.DictReader(f))[-1]["test_accuracy"]))
        with (d / "wd.csv").open() as f:
            for r in csv.DictReader(f):
                lam = float(r["lam"])
                if r["split"] == "full":
                    full.setdefault(lam, []).append(float(r["test_metric"]))
                else:
                    val.setdefault(lam, []).append(float(r["val_metric"]))
    assert row.walk[0] == pytest.approx(sum(walk) / 2)
    assert row.walk[1] == pytest.approx(abs(walk[0] - walk[1]) / 2**0.5)
    lam_test = max(sorted(full), key=lambda k: sum(full[k]))
    lam_val = max(sorted(val), key=lambda k: sum(val[k]))
    assert row.by_test.lam == lam_test and row.by_val.lam == lam_val
    assert row.by_test.mean == pytest.approx(sum(full[lam_test]) / 2)
    assert row.by_val.mean == pytest.approx(sum(full[lam_val]) / 2)
    assert row.seeds == [0, 1] and row.unfinished == 0


def test_table_command_rebuilds_the_printed_table(iris_runs, capsys):
    out, printed = iris_runs
    assert main(["table", str(out)]) == 0
    assert capsys.readouterr().out == printed
    assert format_table(build_table(out)) in printed


def test_mpg_regression_reports_mse(tmp_path):
    # the library's default scheme: after 2 epochs the authors' tiny constant corrector step
    # cannot hold MPG's large loss on its level (it stops as corrector_failed, slowly)
    config = RunConfig("mpg-ff", out=str(tmp_path), max_steps=150, scheme="default", **TINY)
    summary = run_seed(config, 3, show_progress=False)
    assert summary["metric"] == "mse" and summary["n_train"] == 314 and summary["n_test"] == 78
    d = seed_dir(tmp_path, "mpg-ff", 3)
    header = (d / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["test_mse", "sharpness", "sharpness_tangent"]
    text = format_table(build_table(tmp_path))
    assert "mpg-ff (MSE)" in text and "5.36 ± 0.27" in text and "%" not in text.splitlines()[2]


def _interrupt_after(monkeypatch, module, name: str, calls: int) -> None:
    """Make ``module.<name>`` raise on its ``calls``-th call (a kill in the middle of a stage)."""
    real = getattr(module, name)
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            raise KeyboardInterrupt(f"simulated kill in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


def test_interrupted_runs_resume_to_the_uninterrupted_result(tmp_path, monkeypatch):
    # the sequential sweep: its resumed runs equal the uninterrupted ones bit for bit (a
    # batched sweep's, up to rounding: tests/test_batched_sweep.py)
    options = dict(max_steps=300, checkpoint_every=100, **TINY)
    whole = RunConfig("iris-ff", out=str(tmp_path / "whole"), **options)
    run_seed(whole, 0, show_progress=False, sweep="sequential")
    broken = RunConfig("iris-ff", out=str(tmp_path / "broken"), **options)
    d = seed_dir(broken.out, "iris-ff", 0)
    with monkeypatch.context() as m:  # killed during the walk, after the checkpoint at 200
        _interrupt_after(m, _walk_stage, "write_metrics", 2)
        with pytest.raises(KeyboardInterrupt):
            run_seed(broken, 0, show_progress=False, sweep="sequential")
    assert (d / "walk" / "thetas-00000200.npz").exists() and not (d / "final.npz").exists()
    with monkeypatch.context() as m:  # killed during the weight-decay sweep
        _interrupt_after(m, _weight_decay, "train_members", 3)
        with pytest.raises(KeyboardInterrupt):
            run_seed(broken, 0, show_progress=False, sweep="sequential")
    assert not is_finished(d)
    (d / "wd" / "full-00.json").write_text('{"lam": 0.0, "spl')  # a half-written file
    (d / "wd" / ".val-00.json.xyz.tmp").write_text("{")  # a temporary file left by a kill
    run_seed(broken, 0, show_progress=False, sweep="sequential")
    assert is_finished(d)
    a, b = run_files(seed_dir(whole.out, "iris-ff", 0)), run_files(d)
    b = {k: v for k, v in b.items() if not k.endswith(".tmp")}
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


def test_finished_seeds_are_skipped_and_damaged_ones_redone(tmp_path, monkeypatch):
    config = RunConfig("iris-ff", out=str(tmp_path), max_steps=100, **TINY)
    first = run_seed(config, 0, show_progress=False)
    d = seed_dir(tmp_path, "iris-ff", 0)
    before = run_files(d)
    with monkeypatch.context() as m:
        m.setattr(runner_mod, "load_backend", lambda name: pytest.fail("a finished seed re-ran"))
        again = run_seed(config, 0, show_progress=False)
        assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)
    metrics = d / "metrics.csv"
    metrics.write_bytes(metrics.read_bytes()[:-10])  # truncated after the run finished
    assert not is_finished(d)
    run_seed(config, 0, show_progress=False)
    assert is_finished(d) and run_files(d) == before


def test_a_directory_of_other_options_is_refused(tmp_path):
    run_seed(RunConfig("iris-ff", out=str(tmp_path), max_steps=50, **TINY), 0, show_progress=False)
    (seed_dir(tmp_path, "iris-ff", 0) / "DONE").unlink()
    other = RunConfig("iris-ff", out=str(tmp_path), max_steps=60, **TINY)
    with pytest.raises(ValueError, match="max_steps"):
        run_seed(other, 0, show_progress=False)


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_other_backends_run_iris(tmp_path, backend):
    config = RunConfig(
        "iris-ff", out=str(tmp_path), backend=backend, dtype="float32", max_steps=100, **TINY
    )
    summary = run_seed(config, 0, show_progress=False)
    walk = summary["walk"]
    assert walk["n_predictor"] == 100 and abs(walk["train_loss"] - walk["level"]) <= 1e-5
    with open(seed_dir(tmp_path, "iris-ff", 0) / "metrics.csv") as f:
        start = next(csv.DictReader(f))
    assert walk["reg"] < float(start["reg"])  # the walk lowered R = ‖θ‖²
    assert 0.0 <= summary["walk"]["test_metric"] <= 1.0
    assert is_finished(seed_dir(tmp_path, "iris-ff", 0))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["reproduce", "iris"], ["invalid choice", "iris-ff", "mpg-ff", "fashion-cnv"]),
        (["reproduce", "iris-ff", "--backend", "pytorch"], ["torch", "jax", "tensorflow"]),
        (["reproduce", "iris-ff", "--scheme", "fast"], ["authors", "paper", "default"]),
        (["table", "/nonexistent/dir"], ["/nonexistent/dir does not exist"]),
    ],
)
def test_command_line_errors_are_one_line_listing_the_choices(argv, words):
    done = subprocess.run(
        [sys.executable, "-m", "manifoldwalk", *argv], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr


def test_unknown_names_in_the_python_api_list_the_valid_ones():
    with pytest.raises(ValueError, match="iris-ff.*mpg-ff"):
        RunConfig("iris")
    with pytest.raises(ValueError, match="torch, jax, tensorflow"):
        RunConfig("iris-ff", backend="mxnet")
    with pytest.raises(ValueError, match="l2, l2-weights"):
        RunConfig("iris-ff", wd_reg="l1")


@pytest.mark.parametrize("name", ["torch", "jax", "tensorflow"])
def test_held_out_data_evaluate_like_numpy(name):
    """The runner moves the test set into the framework once; evaluating it there gives what
    the numpy arrays give."""
    backend = load_backend(name)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, size=40)
    model = backend.build_net("ff", (4,), 3, hidden=(5,), seed=0, dtype="float32")
    problem = backend.make_problem(model, x, y, task="classification")
    x_held, y_held = backend.held_out(problem, x, y)
    assert not isinstance(x_held, np.ndarray)  # in the framework, not numpy
    theta = problem.theta0
    assert problem.evaluate(theta, x_held, y_held) == pytest.approx(
        problem.evaluate(theta, x, y), rel=1e-6
    )


def test_a_finished_seed_of_other_options_is_refused_before_any_work(tmp_path):
    first = RunConfig("iris-ff", out=str(tmp_path), seeds=(0,), max_steps=50, **TINY)
    run_experiment(first, show_progress=False)
    more = RunConfig("iris-ff", out=str(tmp_path), seeds=(0, 1), max_steps=60, **TINY)
    with pytest.raises(ValueError, match=r"max_steps \(--steps\): 50 there, 60 asked.*--out"):
        run_experiment(more, show_progress=False)
    assert not seed_dir(tmp_path, "iris-ff", 1).exists()  # refused before seed 1 started
    with pytest.raises(ValueError, match="wd_lambdas"):
        run_seed(replace(first, wd_lambdas=(0.0, 1e-2)), 0, show_progress=False)
    assert is_finished(seed_dir(tmp_path, "iris-ff", 0))


def test_a_saved_weight_decay_run_of_another_lambda_is_refused(tmp_path):
    config = RunConfig("iris-ff", out=str(tmp_path), max_steps=50, **TINY)
    run_seed(config, 0, show_progress=False)
    wd = seed_dir(tmp_path, "iris-ff", 0) / "wd"
    a, b = (wd / "full-00.json").read_bytes(), (wd / "full-01.json").read_bytes()
    (wd / "full-00.json").write_bytes(b)
    (wd / "full-01.json").write_bytes(a)
    with pytest.raises(ValueError, match=r"full-00.json holds the weight-decay run of λ=0.001"):
        run_seed(config, 0, show_progress=False)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(wd_lambdas=()), "wd_lambdas is empty"),
        (dict(wd_lambdas=(0.0, -1.0)), "finite and >= 0, got -1.0"),
        (dict(wd_lambdas=(float("nan"),)), "finite and >= 0, got nan"),
        (dict(wd_lambdas=(0.0, 0.0)), "twice"),
        (dict(seeds=(-1, 0)), "seeds must be >= 0"),
        (dict(phase1_epochs=-1), "phase1_epochs (--epochs) must be at least 0, got -1"),
        (dict(max_steps=0), "max_steps (--steps) must be at least 1, got 0"),
        (dict(save_every=0), "save_every (--save-every) must be at least 1"),
    ],
)
def test_bad_options_are_refused_up_front(options, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        RunConfig("iris-ff", **options)


@pytest.mark.parametrize(
    "argv", [["--wd-lambdas", ""], ["--wd-lambdas", "0,nan"], ["--first-seed", "-1"]]
)
def test_bad_command_line_options_fail_before_anything_is_written(tmp_path, capsys, argv):
    out = tmp_path / "out"
    assert main(["reproduce", "iris-ff", "--out", str(out), "--quiet", *IRIS_ARGS, *argv]) == 2
    assert "error:" in capsys.readouterr().err and not out.exists()


def test_a_failed_start_leaves_no_claim_on_the_run_directory(tmp_path):
    for name in ("empty1", "empty2"):  # the second data dir is not "a run of other options"
        (tmp_path / name).mkdir()
        config = RunConfig("mnist-ff", out=str(tmp_path / "out"), data_dir=str(tmp_path / name))
        with pytest.raises(DatasetError):
            run_seed(config, 0, show_progress=False)
    assert not (seed_dir(tmp_path / "out", "mnist-ff", 0) / "config.json").exists()
    d = seed_dir(tmp_path / "old", "mnist-ff", 0)  # left by an earlier version: no work in it
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config.for_seed(0) | {"seed": 7}))
    with pytest.raises(DatasetError):
        run_seed(replace(config, out=str(tmp_path / "old")), 0, show_progress=False)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damaged",
    [
        ("phase1.npz", "walk/checkpoint.npz"),  # rerun: phase 1 retrained, the walk redone
        ("walk/thetas-00000100.npz", "wd/full-00.npz"),  # the checkpoint is sound, a θ is not
    ],
)
def test_truncated_files_are_recomputed_and_never_marked_done(tmp_path, capsys, damaged):
    config = RunConfig("iris-ff", out=str(tmp_path), max_steps=100, **TINY)
    # sequential: a retrained weight-decay run equals the first bit for bit (see above)
    run_seed(config, 0, show_progress=False, sweep="sequential")
    d = seed_dir(tmp_path, "iris-ff", 0)
    before = run_files(d)
    for name in damaged:
        _truncate(d / name)
    run_seed(config, 0, show_progress=False, sweep="sequential")
    err = capsys.readouterr().err
    for name in damaged:
        assert f"{d / name} is damaged" in err, err
    assert is_finished(d) and run_files(d) == before


def test_done_is_not_written_over_a_file_that_does_not_load(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    np.savez(tmp_path / "final.npz", theta=np.zeros(1000))
    mark_done(tmp_path)
    _truncate(tmp_path / "final.npz")
    with pytest.raises(ValueError, match="final.npz does not load"):
        mark_done(tmp_path)
    assert not is_finished(tmp_path)
