"""The connectivity study at toy size (iris-ff, 2 nets of 2 epochs, 40 walk steps a pair):
its run directory, resume, refusal, numbers recomputed from the saved θ, and its figure."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from _study_helpers import Calls, iris_problem, load_npz, stamps, without_timing

import manifoldwalk
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._lock import RunLocked, exclusive
from manifoldwalk.studies import (
    ConnectConfig,
    connectivity_figure,
    load_study,
    run_connectivity,
)
from manifoldwalk.studies._bench import Bench
from manifoldwalk.studies.connectivity import _PathProbe, line_losses

TOY = dict(experiment="iris-ff", nets=2, steps=40, phase1_epochs=2, line_points=11)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[ConnectConfig, dict]:
    """One toy study, run once for the module."""
    config = ConnectConfig(out=str(tmp_path_factory.mktemp("runs")), **TOY)
    return config, run_connectivity(config, show_progress=False)


@pytest.fixture(scope="module")
def iris():
    return iris_problem()


def test_the_study_writes_a_finished_run_directory(study) -> None:
    config, summary = study
    d = config.directory
    assert d == Path(config.out) / "iris-ff" / "connect"
    listing = rundir.finished_files(d)
    assert listing is not None, "DONE missing or not intact"
    expected = {"config.json", "summary.json"}
    expected |= {f"nets/net-0{k}.npz" for k in (0, 1)} | {f"nets/level-0{k}.npz" for k in (0, 1)}
    expected |= {f"pairs/{p}.{x}" for p in ("00-01", "01-00") for x in ("npz", "json")}
    assert set(listing) == expected
    config_json = json.loads((d / "config.json").read_text())
    assert config_json["study"] == "connect" and config_json["options"]["steps"] == 40
    assert [(p["i"], p["j"]) for p in summary["pairs"]] == [(0, 1), (1, 0)]
    assert summary == rundir.read_json(d / "summary.json")


def test_a_second_call_recomputes_nothing(study, monkeypatch) -> None:
    config, summary = study
    before = stamps(config.directory)
    monkeypatch.setattr(manifoldwalk, "walk", Calls(manifoldwalk.walk, forbid=True))
    monkeypatch.setattr(Bench, "train", Calls(Bench.train, forbid=True))
    monkeypatch.setattr(Bench, "make", Calls(Bench.make, forbid=True))
    assert run_connectivity(config, show_progress=False) == summary
    assert stamps(config.directory) == before


def test_an_interrupted_study_redoes_only_what_is_missing_or_damaged(
    study, tmp_path, monkeypatch, capsys
) -> None:
    config, summary = study
    copy = ConnectConfig(out=str(tmp_path), **TOY)
    shutil.copytree(config.directory, copy.directory)
    (copy.directory / rundir.DONE).unlink()  # killed before the end
    damaged = copy.directory / "pairs" / "01-00.npz"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    walks = Calls(manifoldwalk.walk)
    monkeypatch.setattr(manifoldwalk, "walk", walks)
    monkeypatch.setattr(Bench, "train", Calls(Bench.train, forbid=True))
    again = run_connectivity(copy, show_progress=False)
    assert walks.n == 1, "only the damaged pair is walked again"
    assert str(damaged) in capsys.readouterr().err
    assert without_timing(again) == without_timing(summary)
    assert rundir.is_finished(copy.directory)


def test_a_study_another_process_is_running_is_refused(tmp_path) -> None:
    config = ConnectConfig(out=str(tmp_path), **TOY)
    with exclusive(config.directory.parent, "connect"):
        with pytest.raises(RunLocked, match="manifoldwalk connect"):
            run_connectivity(config, show_progress=False)
    assert not config.directory.exists(), "nothing was written while refused"


@pytest.mark.parametrize(
    ("change", "named"),
    [({"steps": 41}, "steps (--steps): 40 there, 41 asked"), ({"level": 0.5}, "level (--level)")],
)
def test_a_directory_of_other_options_is_refused_by_name(study, change, named) -> None:
    config, _ = study
    before = stamps(config.directory)
    other = ConnectConfig(out=config.out, **{**TOY, **change})
    with pytest.raises(ValueError, match=rf"other options \(.*{re.escape(named)}"):
        run_connectivity(other, show_progress=False)
    assert stamps(config.directory) == before


def test_the_numbers_are_those_of_the_saved_points(study, iris) -> None:
    config, summary = study
    d = config.directory
    _, problem, _ = iris
    backend = iris[0]

    def theta(a: np.ndarray):
        return backend.from_numpy(a, problem.theta0)

    def loss(a: np.ndarray) -> float:
        return float(problem.loss(theta(a)))

    trained = [load_npz(d / f"nets/net-0{k}.npz")["theta"] for k in (0, 1)]
    level = max(loss(t) for t in trained)
    assert summary["level"] == level
    level_thetas = [load_npz(d / f"nets/level-0{k}.npz")["theta"] for k in (0, 1)]
    for t in level_thetas:  # on the level set, within the walk's float64 tolerance
        assert abs(loss(t) - level) <= 1e-5 * level
    for p in summary["pairs"]:
        a, b = level_thetas[p["i"]], level_thetas[p["j"]]
        saved = load_npz(d / f"pairs/0{p['i']}-0{p['j']}.npz")
        end = saved["theta_end"]
        t = np.linspace(0.0, 1.0, TOY["line_points"])
        line = [loss((1 - s) * a + s * b) for s in t]
        assert p["line_barrier"] == pytest.approx(max(line) - level, rel=1e-12, abs=1e-15)
        gap = [loss((1 - s) * end + s * b) for s in t]
        assert p["gap_barrier"] == pytest.approx(max(gap) - level, rel=1e-12, abs=1e-15)
        assert p["gap_dip"] == pytest.approx(min(gap) - level, rel=1e-12, abs=1e-15)
        remaining = np.linalg.norm(end - b) / np.linalg.norm(a - b)
        assert p["remaining"] == pytest.approx(remaining, rel=1e-12)
        assert 0 < p["remaining"] < 1, "the walk moved toward its target"
        assert p["end_loss"] == pytest.approx(loss(end), rel=1e-12)
        assert abs(p["end_loss"] - level) <= 1e-5 * level
        assert p["walk_barrier"] == max(p["path_barrier"], p["gap_barrier"])
        grad_end = problem.grad(theta(end)).detach().numpy()
        assert p["resolution"] == pytest.approx(
            p["tolerance"] / np.linalg.norm(grad_end), rel=1e-12
        )
        assert p["tolerance"] == pytest.approx(1e-5 * level, rel=1e-12)  # float64's rtol
        path = np.concatenate([saved["rec_loss"], saved["mid_loss"]])
        assert p["path_barrier"] == max(path) - level
        assert len(saved["mid_loss"]) == len(saved["rec_loss"]) - 1
        assert p["n_predictor"] == 40 and p["stop_reason"] == "max_steps"


def test_line_losses_are_the_loss_on_the_segment() -> None:
    a, b = np.array([1.0, -2.0]), np.array([3.0, 4.0])
    t, values = line_losses(lambda x: float(x @ x), a, b, 5)
    assert list(t) == [0.0, 0.25, 0.5, 0.75, 1.0]
    expected = [float(((1 - s) * a + s * b) @ ((1 - s) * a + s * b)) for s in t]
    assert list(values) == expected


def test_the_path_probe_records_progress_and_the_loss_between_records() -> None:
    class Squares:  # a bench whose loss is |θ|²
        @staticmethod
        def loss(theta: np.ndarray) -> float:
            return float(theta @ theta)

    a, b = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    points = [a, np.array([2.0, 2.0]) / np.sqrt(2), np.array([0.0, 1.0]), b]
    probe = _PathProbe(Squares(), a, b)
    progress = [probe(p) for p in points]
    assert progress == [1 - np.linalg.norm(p - b) / np.linalg.norm(a - b) for p in points]
    mids = [(p + q) / 2 for p, q in zip(points[:-1], points[1:], strict=True)]
    assert probe.mid_loss == [float(m @ m) for m in mids]
    assert probe.mid_progress == [1 - np.linalg.norm(m - b) / np.linalg.norm(a - b) for m in mids]


def test_the_figure_has_a_panel_per_pair_with_its_curves(study) -> None:
    config, summary = study
    data = load_study(config.directory)
    fig = connectivity_figure(data)
    assert len(fig.axes) == len(summary["pairs"]) == 2
    for ax, p in zip(fig.axes, summary["pairs"], strict=True):
        saved = load_npz(config.directory / f"pairs/0{p['i']}-0{p['j']}.npz")
        straight, walk, gap, level = ax.get_lines()
        assert list(straight.get_ydata()) == list(saved["line_loss"])
        assert max(walk.get_ydata()) - summary["level"] == p["path_barrier"]
        assert list(gap.get_ydata()) == list(saved["gap_loss"])
        assert list(level.get_ydata()) == [summary["level"]] * 2
        assert f"{p['i']} → {p['j']}" in ax.get_title()


def test_a_level_no_net_reaches_skips_every_pair_and_says_why(tmp_path) -> None:
    config = ConnectConfig(out=str(tmp_path), **{**TOY, "level": 1e-9})
    summary = run_connectivity(config, show_progress=False)
    assert all(math.isnan(n["projected_loss"]) for n in summary["nets"])
    assert all("could not project" in n["error"] for n in summary["nets"])
    assert [p["stop_reason"] for p in summary["pairs"]] == ["skipped", "skipped"]
    assert "could not be projected onto L = 1e-09" in summary["pairs"][0]["message"]
    assert summary["overview"] == {"pairs": 0}
    with pytest.raises(ValueError, match="no pair was walked"):
        connectivity_figure(load_study(config.directory))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nets": 1}, r"nets \(--nets\) must be an integer of at least 2"),
        ({"level": -1.0}, r"level \(--level\) must be a finite number above 0"),
        ({"scheme": "authors"}, "unknown scheme 'authors'; choose one of: default, compensated"),
        ({"experiment": "nope"}, "unknown experiment 'nope'"),
    ],
)
def test_bad_options_are_named(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectConfig(**{**TOY, **options})
