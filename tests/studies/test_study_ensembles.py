"""The level-set ensemble study at toy size (iris-ff, 2 epochs, 3 random walks of 8 steps, one
weight-decay λ): its run directory, resume, refusal, numbers recomputed from the saved θ, and
its figure."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from _study_helpers import Calls, iris_problem, load_npz, stamps, without_timing

import manifoldwalk
from manifoldwalk import curvature
from manifoldwalk.experiments import rundir
from manifoldwalk.studies import EnsembleConfig, ensemble_figure, load_study, run_ensemble
from manifoldwalk.studies._bench import Bench
from manifoldwalk.studies.ensembles import SHARPNESS_TOL

TOY = dict(
    experiment="iris-ff",
    walks=3,
    steps=8,
    eta=0.05,
    reg_steps=8,
    wd_lambdas=(1e-3,),
    wd_epochs=2,
    phase1_epochs=2,
)
NAMES = ["start", "random-00", "random-01", "random-02", "reg", "wd-00"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnsembleConfig, dict]:
    """One toy study, run once for the module."""
    config = EnsembleConfig(out=str(tmp_path_factory.mktemp("runs")), **TOY)
    return config, run_ensemble(config, show_progress=False)


@pytest.fixture(scope="module")
def iris():
    return iris_problem()


def test_the_study_writes_a_finished_run_directory(study) -> None:
    config, summary = study
    d = config.directory
    assert d == Path(config.out) / "iris-ff" / "ensemble"
    listing = rundir.finished_files(d)
    assert listing is not None, "DONE missing or not intact"
    expected = {"config.json", "summary.json", "nets/start.npz"}
    expected |= {f"points/{n}.{x}" for n in NAMES for x in ("npz", "json")}
    assert set(listing) == expected
    options = json.loads((d / "config.json").read_text())["options"]
    assert options["walks"] == 3 and options["wd_lambdas"] == [1e-3] and options["seed"] == 0
    kinds = [p["kind"] for p in summary["points"]]
    assert kinds == ["start", "random", "random", "random", "reg", "wd"]
    assert [p["stop_reason"] for p in summary["points"][1:4]] == ["max_steps"] * 3
    assert summary == rundir.read_json(d / "summary.json")


def test_a_second_call_recomputes_nothing(study, monkeypatch) -> None:
    config, summary = study
    before = stamps(config.directory)
    monkeypatch.setattr(manifoldwalk, "walk", Calls(manifoldwalk.walk, forbid=True))
    monkeypatch.setattr(Bench, "make", Calls(Bench.make, forbid=True))
    assert run_ensemble(config, show_progress=False) == summary
    assert stamps(config.directory) == before


def test_an_interrupted_study_redoes_only_what_is_missing_or_damaged(
    study, tmp_path, monkeypatch, capsys
) -> None:
    config, summary = study
    copy = replace(config, out=str(tmp_path))
    shutil.copytree(config.directory, copy.directory)
    (copy.directory / rundir.DONE).unlink()
    (copy.directory / "points" / "random-02.json").unlink()  # killed before it was written
    edited = copy.directory / "points" / "wd-00.json"
    edited.write_text(edited.read_text().replace('"kind"', '"kind" ', 1))  # parses, not vouched
    walks, trains = Calls(manifoldwalk.walk), Calls(Bench.train)
    monkeypatch.setattr(manifoldwalk, "walk", walks)
    monkeypatch.setattr(Bench, "train", trains)
    again = run_ensemble(copy, show_progress=False)
    assert (walks.n, trains.n) == (1, 1), "random walk 2 and the weight-decay net, nothing else"
    assert str(edited) in capsys.readouterr().err
    assert without_timing(again) == without_timing(summary)
    assert rundir.is_finished(copy.directory)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"eta": 0.06}, "eta (--eta): 0.05 there, 0.06 asked"),
        ({"wd_lambdas": (1e-2,)}, "wd_lambdas (--wd-lambdas): [0.001] there, [0.01] asked"),
        ({"sharpness": False}, "sharpness (--sharpness): True there, False asked"),
    ],
)
def test_a_directory_of_other_options_is_refused_by_name(study, change, named) -> None:
    config, _ = study
    before = stamps(config.directory)
    with pytest.raises(ValueError, match=r"other options \(.*" + re.escape(named)):
        run_ensemble(replace(config, **change), show_progress=False)
    assert stamps(config.directory) == before


def test_the_numbers_are_those_of_the_saved_points(study, iris) -> None:
    config, summary = study
    backend, problem, ds = iris
    x_test, y_test = backend.held_out(problem, ds.x_test, ds.y_test)
    d = config.directory
    start = load_npz(d / "nets/start.npz")["theta"]
    level = float(problem.loss(backend.from_numpy(start, problem.theta0)))
    assert summary["level"] == level
    for name, p in zip(NAMES, summary["points"], strict=True):
        a = load_npz(d / f"points/{name}.npz")["theta"]
        theta = backend.from_numpy(a, problem.theta0)
        test = problem.evaluate(theta, x_test, y_test, task="classification")
        assert p["reg"] == pytest.approx(float(a @ a), rel=1e-12)
        assert p["train_loss"] == pytest.approx(float(problem.loss(theta)), rel=1e-12)
        assert p["test_loss"] == pytest.approx(test["loss"], rel=1e-12)
        assert p["test_metric"] == test["accuracy"]
        assert p["distance"] == pytest.approx(np.linalg.norm(a - start), rel=1e-12, abs=1e-15)
        for key, tangent in (("sharpness", False), ("sharpness_tangent", True)):
            top = curvature.top_eigenvalues(
                problem, theta, 1, tangent=tangent, tol=SHARPNESS_TOL, finite_difference=True
            )
            assert p[key] == pytest.approx(top.values[0], rel=1e-9)
        if p["kind"] in ("random", "reg"):  # walks hold the level; weight decay does not
            assert abs(p["train_loss"] - level) <= 1e-5 * level
        if p["kind"] == "random":  # each walk moved, and no two alike
            assert p["distance"] > 0.05
    walks = [p for p in summary["points"] if p["kind"] == "random"]
    assert len({p["distance"] for p in walks}) == 3
    stats = summary["statistics"]["reg"]
    values = [p["reg"] for p in walks]
    assert stats["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert stats["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    reg_end = summary["points"][4]["reg"]
    assert stats["below"]["−∇R walk"] == np.mean(np.array(values) < reg_end)
    assert reg_end < summary["points"][0]["reg"], "the −∇R walk lowered R"


def test_the_figure_has_a_panel_per_quantity_with_every_point(study) -> None:
    config, summary = study
    data = load_study(config.directory)
    fig = ensemble_figure(data)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "R = ‖θ‖²",
        "test loss",
        "test accuracy",
        "sharpness (largest Hessian eigenvalue)",
    ]
    points = summary["points"]
    walks = [p for p in points if p["kind"] == "random"]
    for ax, q in zip(fig.axes, ["reg", "test_loss", "test_metric", "sharpness"], strict=True):
        dots, *marks = ax.get_lines()
        assert list(dots.get_ydata()) == [p[q] for p in walks]
        assert [m.get_ydata()[0] for m in marks] == [p[q] for p in points if p["kind"] != "random"]
    # without the sharpness, three panels
    lean = {**summary, "points": [{k: v for k, v in p.items() if "sharp" not in k} for p in points]}
    assert len(ensemble_figure(replace(data, summary=lean)).axes) == 3
    # a quantity spanning more than 20x gets a log axis, the others stay linear
    spread = {**summary, "points": [{**p, "sharpness": 1.0} for p in points]}
    spread["points"][-1]["sharpness"] = 50.0
    scales = [ax.get_yscale() for ax in ensemble_figure(replace(data, summary=spread)).axes]
    assert scales[-1] == "log"
    assert scales[0] == "linear"
    flat = {**summary, "points": [{**p, "sharpness": 1.0 + 0.1 * i} for i, p in enumerate(points)]}
    assert ensemble_figure(replace(data, summary=flat)).axes[-1].get_yscale() == "linear"
    # a regression's test metric is its test loss (MSE): drawn once
    mse = {**summary, "points": [{**p, "test_metric": p["test_loss"]} for p in points]}
    titles = [ax.get_title() for ax in ensemble_figure(replace(data, summary=mse)).axes]
    assert titles == ["R = ‖θ‖²", "test loss", "sharpness (largest Hessian eigenvalue)"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"walks": 0}, r"walks \(--walks\) must be an integer of at least 1"),
        ({"eta": 0.0}, r"eta \(--eta\) must be a finite number above 0"),
        ({"wd_lambdas": (1e-3, 1e-3)}, "lists a λ twice"),
        ({"wd_lambdas": (-1.0,)}, "must be finite and >= 0"),
    ],
)
def test_bad_options_are_named(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        EnsembleConfig(**{**TOY, **options})
