"""``manifoldwalk plot`` on a tiny 2-seed run: every file, the numbers behind them, the errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from manifoldwalk.cli import main
from manifoldwalk.experiments.rundir import read_csv, seed_dir
from manifoldwalk.plots import PlotOptions, load_runs, plot_runs
from manifoldwalk.plots.evaluate import rebuild
from manifoldwalk.plots.figures import require_matplotlib
from manifoldwalk.plots.pca import PointSet, exact_pca

TINY_RUN = ["--steps", "100", "--epochs", "2", "--wd-epochs", "2", "--wd-lambdas", "0,1e-3"]
GRID = 6

EXPECTED = {
    "phase2.png",
    "phase2.csv",
    "compute.png",
    "compute.csv",
    "compute.json",
    "pca.png",
    "pca.json",
    "surface-1.png",
    "surface-1.npz",
    "surface-all.png",
    "surface-all.npz",
    "endpoints.csv",
    "endpoints.md",
    "report.md",
    "report.html",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """Two seeds of iris-ff (100 walk steps, 2 epochs, 2 λ), then ``manifoldwalk plot``."""
    runs = tmp_path_factory.mktemp("runs")
    out = tmp_path_factory.mktemp("plots")
    with redirect_stdout(io.StringIO()):
        assert (
            main(["reproduce", "iris-ff", "--seeds", "2", "--out", str(runs), "--quiet", *TINY_RUN])
            == 0
        )
    buf = io.StringIO()
    # the default surfaces are of 1, 3 and all walks: with 2 seeds the 3-walk one is left out
    with redirect_stdout(buf), pytest.warns(UserWarning, match="no 3-walk loss surface"):
        status = main(["plot", str(runs), "--out", str(out), "--grid", str(GRID), "--quiet"])
    assert status == 0
    return runs, out / "iris-ff", buf.getvalue()


def test_plot_writes_every_expected_file(tiny):
    _, d, printed = tiny
    assert {p.name for p in d.iterdir()} == EXPECTED
    for name in EXPECTED:
        assert (d / name).stat().st_size > 0
        assert f"  {name}" in printed
    assert (d / "phase2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("compute.json", "pca.json"):  # strict JSON: no NaN or Infinity
        json.loads((d / name).read_text(), parse_constant=lambda c: pytest.fail(f"{c}: NaN"))
    assert "endpoint averaging (iris-ff)" in printed


def test_phase2_bands_are_numpys_mean_and_sample_std_of_the_seeds(tiny):
    runs, d, _ = tiny
    band = read_csv(d / "phase2.csv")
    seeds = [read_csv(seed_dir(runs, "iris-ff", s) / "metrics.csv") for s in (0, 1)]
    np.testing.assert_array_equal(band["predictor_steps"], seeds[0]["n_predictor"])
    assert (band["seeds_running"] == 2).all()
    for name, col, k in [
        ("angle", "angle", 1),
        ("reg", "reg", 1),
        ("deviation", "deviation", 1),
        ("train_loss", "train_loss", 1),
        ("test_loss", "test_loss", 1),
        ("test_metric", "test_accuracy", 1),  # files hold accuracy as a fraction
    ]:
        stack = np.array([s[col] * k for s in seeds])
        np.testing.assert_allclose(band[f"{name}_mean"], stack.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(
            band[f"{name}_std"], stack.std(axis=0, ddof=1), rtol=1e-9, atol=1e-15
        )


def test_compute_starts_after_phase_1_and_weight_decay_is_its_best_lambda(tiny):
    runs, d, _ = tiny
    comp = read_csv(d / "compute.csv")
    info = json.loads((d / "compute.json").read_text())
    summaries = [
        json.loads((seed_dir(runs, "iris-ff", s) / "summary.json").read_text()) for s in (0, 1)
    ]
    grads = [
        s["phase1"]["example_grads"]
        + read_csv(seed_dir(runs, "iris-ff", s["seed"]) / "metrics.csv")["example_grads"]
        for s in summaries
    ]
    assert comp["example_grads"][0] == min(g[0] for g in grads)
    assert comp["example_grads"][-1] == min(g[-1] for g in grads)  # the first budget end
    assert info["phase1_example_grads"] == summaries[0]["phase1"]["example_grads"]
    (exp,) = load_runs(runs)
    lam = exp.best_lambda
    assert info["wd_lambda"] == lam == exp.row.by_test.lam
    wd = [r for s in summaries for r in s["wd"] if r["lam"] == lam and r["split"] == "full"]
    assert info["wd_example_grads"] == np.mean([r["example_grads"] for r in wd])
    acc = [r["test_metric"] for r in wd]  # a fraction, as in every file
    assert info["wd_test_metric_mean"] == pytest.approx(np.mean(acc))
    assert info["wd_test_metric_std"] == pytest.approx(np.std(acc, ddof=1), abs=1e-12)


def _trajectory(runs: Path, seed: int) -> np.ndarray:
    walk = seed_dir(runs, "iris-ff", seed) / "walk"
    pts, seen = [], set()
    for f in sorted(walk.glob("thetas-*.npz")):
        with np.load(f, allow_pickle=False) as z:
            for s, t in zip(z["steps"], z["theta"], strict=True):
                if int(s) not in seen:
                    seen.add(int(s))
                    pts.append(t)
    return np.array(pts, dtype=np.float64)


def test_pca_and_surface_numbers(tiny):
    runs, d, _ = tiny
    x = np.concatenate([_trajectory(runs, 0), _trajectory(runs, 1)])
    assert x.shape == (6, 21003)  # steps 0, 50, 100 of two seeds
    ref = exact_pca(PointSet.from_array(x), n_components=6)
    info = json.loads((d / "pca.json").read_text())
    assert info["n_points"] == 6 and info["seeds"] == [0, 1]
    np.testing.assert_allclose(info["explained_variance_ratio"], ref.explained_variance_ratio)
    surf = np.load(d / "surface-all.npz", allow_pickle=False)
    assert surf["loss"].shape == (GRID, GRID)
    np.testing.assert_allclose(np.abs(surf["scores"]), np.abs(ref.scores[:, :2]), atol=1e-8)
    # the grid spans the projected points, and its losses are the training loss of seed 0's
    # problem at mean + a·pc1 + b·pc2 (signs of the components as in the file's scores)
    signs = np.sign(np.sum(surf["scores"] * ref.scores[:, :2], axis=0))
    ev = rebuild(load_runs(runs)[0].seeds[0])
    for i, j in [(0, 0), (GRID - 1, 2), (3, GRID - 1)]:
        a, b = surf["a"][i], surf["b"][j]
        theta = ref.mean + a * signs[0] * ref.components[0] + b * signs[1] * ref.components[1]
        assert surf["loss"][j, i] == pytest.approx(ev.train_loss(theta), rel=1e-9)
    for k in range(2):
        lo, hi = surf["scores"][:, k].min(), surf["scores"][:, k].max()
        axis = surf["a"] if k == 0 else surf["b"]
        assert axis[0] < lo and axis[-1] > hi
    one = np.load(d / "surface-1.npz", allow_pickle=False)
    assert (one["seed_index"] == 0).all() and len(one["scores"]) == 3


def test_endpoint_averaging_matches_the_runs_and_the_average(tiny):
    runs, d, _ = tiny
    rows = read_csv(d / "endpoints.csv")
    exp = load_runs(runs)[0]
    for i, s in enumerate(exp.seeds):
        assert rows["own_test_loss"][i] == pytest.approx(s.summary["walk"]["test_loss"], rel=1e-9)
        assert rows["own_train_loss"][i] == pytest.approx(s.summary["walk"]["train_loss"], rel=1e-9)
    average = np.mean([s.final_theta() for s in exp.seeds], axis=0)
    ev = rebuild(exp.seeds[1])
    assert rows["avg_test_loss"][1] == pytest.approx(ev.test(average)["loss"], rel=1e-12)
    table = (d / "endpoints.md").read_text()
    lines = table.strip().splitlines()  # header, separator, two seeds, the mean
    assert len(lines) == 5 and lines[2].startswith("| 0 |") and lines[4].startswith("| mean |")


def test_report_holds_the_table_the_figures_and_the_environment(tiny):
    _, d, _ = tiny
    md = (d / "report.md").read_text()
    for part in (
        "## Table I row",
        "| iris-ff | 2 |",
        "(phase2.png)",
        "(pca.png)",
        "(surface-all.png)",
        "## Endpoint averaging",
        "## Configuration",
        "## Environment",
        '"matplotlib"',
        '"device": "cpu"',
    ):
        assert part in md, part
    page = (d / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 5
    assert "<table>" in page and 'src="phase2' not in page


def test_the_torch_backends_batched_losses_equal_one_loss_per_point(tiny):
    runs, _, _ = tiny
    ev = rebuild(load_runs(runs)[0].seeds[0])
    rng = np.random.default_rng(0)
    origin = rng.normal(size=21003) * 0.1
    basis = rng.normal(size=(2, 21003)) * 0.01
    coords = rng.normal(size=(7, 2))
    batched = ev.backend.plane_losses(
        ev.problem,
        ev.data.x_train,
        ev.data.y_train,
        task="classification",
        origin=origin,
        basis=basis,
        coords=coords,
        chunk=3,
    )
    one_by_one = [ev.train_loss(origin + c @ basis) for c in coords]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-10)


def test_svg_and_selected_surfaces_through_the_python_api(tiny, tmp_path):
    runs, _, _ = tiny
    (result,) = plot_runs(
        runs,
        tmp_path,
        PlotOptions(fmt="svg", grid=3, surfaces=("1",), endpoints=False, show_progress=False),
    )
    names = {p.name for p in result.files}
    assert {"phase2.svg", "compute.svg", "pca.svg", "surface-1.svg"} <= names
    assert "surface-all.svg" not in names and "endpoints.csv" not in names
    assert (tmp_path / "iris-ff" / "pca.svg").read_text().lstrip().startswith("<?xml")


def test_copies_of_an_experiment_in_nested_directories_are_plotted_apart(tiny, tmp_path):
    # the layout of docs/results.md: runs/<experiment> and a copy in runs/grid14/<experiment>
    runs, _, _ = tiny
    root = tmp_path / "runs"
    shutil.copytree(runs / "iris-ff", root / "iris-ff")
    shutil.copytree(runs / "iris-ff" / "seed-000", root / "grid14" / "iris-ff" / "seed-000")
    top, nested = load_runs(root)
    assert (top.label, [s.seed for s in top.seeds]) == ("runs/iris-ff", [0, 1])
    assert (nested.label, [s.seed for s in nested.seeds]) == ("runs/grid14/iris-ff", [0])
    assert nested.row.seeds == [0] and nested.row.label == nested.label
    options = PlotOptions(grid=3, surfaces=("1", "5"), show_progress=False)
    with pytest.warns(UserWarning) as caught:
        results = plot_runs(root, tmp_path / "plots", options)
    said = [str(w.message) for w in caught]
    assert "runs/grid14/iris-ff: no endpoint averaging: only 1 seed finished" in said
    assert any("no 5-walk loss surface: only" in m for m in said)
    assert [r.directory for r in results] == [
        tmp_path / "plots" / "runs" / "iris-ff",
        tmp_path / "plots" / "runs" / "grid14" / "iris-ff",
    ]
    for r, seeds in zip(results, ([0, 1], [0]), strict=True):
        assert json.loads((r.directory / "pca.json").read_text())["seeds"] == seeds
    md = (results[1].directory / "report.md").read_text()
    assert md.startswith("# runs/grid14/iris-ff: report\n\n1 finished seed (0).")
    assert "| runs/grid14/iris-ff | 1 |" in md and "seeds)" not in md
    assert "Not drawn: no 5-walk loss surface: only 1 seed finished." in md
    assert "mean over 1 seeds" not in md and "± –" not in md
    # averaging one seed's final θ is that θ: not done, and said so
    assert "Not drawn: no endpoint averaging: only 1 seed finished." in md
    assert not results[1].endpoints and not (results[1].directory / "endpoints.csv").exists()
    assert results[0].notes == ["no 5-walk loss surface: only 2 seeds finished"]
    assert len(results[0].endpoints) == 2


def test_files_of_an_earlier_call_are_kept_and_not_claimed(tiny, tmp_path):
    runs, _, _ = tiny
    options = dict(grid=3, surfaces=("1",), endpoints=False, show_progress=False)
    plot_runs(runs / "iris-ff", tmp_path, PlotOptions(fmt="svg", **options))
    (result,) = plot_runs(runs / "iris-ff", tmp_path, PlotOptions(fmt="png", **options))
    stale = ["compute.svg", "pca.svg", "phase2.svg", "surface-1.svg"]
    assert [p.name for p in result.stale] == stale
    assert all(p.exists() for p in result.stale)  # the user's files: not deleted
    assert not any(p.suffix == ".svg" for p in result.files)
    md = (result.directory / "report.md").read_text()
    assert "left from an earlier `manifoldwalk plot` and not part of this report: " in md
    assert ", ".join(f"`{n}`" for n in stale) in md and "(phase2.svg)" not in md


def test_plot_never_writes_through_a_link_out_of_its_output(tiny, tmp_path, capsys):
    runs, _, _ = tiny
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("keep me")
    secret.chmod(0o600)
    out = tmp_path / "plots"
    (out / "iris-ff").mkdir(parents=True)
    for name in ("phase2.png", "report.html", "surface-1.npz"):
        (out / "iris-ff" / name).symlink_to(secret)
    os.link(secret, out / "iris-ff" / "phase2.csv")
    args = ["plot", str(runs), "--out", str(out), "--grid", "3", "--surfaces", "1"]
    assert main([*args, "--no-endpoints", "--quiet"]) == 0
    capsys.readouterr()
    assert secret.read_text() == "keep me" and stat.S_IMODE(secret.stat().st_mode) == 0o600
    for name in ("phase2.png", "report.html", "surface-1.npz", "phase2.csv"):
        written = out / "iris-ff" / name
        assert not written.is_symlink() and written.stat().st_ino != secret.stat().st_ino
    assert (out / "iris-ff" / "phase2.png").read_bytes()[:4] == b"\x89PNG"
    # a linked experiment directory is refused, by name, before anything is written there
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "iris-ff").symlink_to(secret.parent, target_is_directory=True)
    assert main(["plot", str(runs), "--out", str(linked), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{linked / 'iris-ff'} is a link; refusing to write through it" in err
    assert [p.name for p in secret.parent.iterdir()] == ["secret.txt"]


def test_a_directory_without_runs_fails_with_a_clear_message(tmp_path, capsys):
    (tmp_path / "iris-ff" / "seed-000").mkdir(parents=True)  # started, never finished
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err
    assert (
        "no finished run directories" in err
        and "1 unfinished" in err
        and "manifoldwalk reproduce" in err
    )
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    assert not (tmp_path / "plots").exists()


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="unknown format 'gif'"):
        PlotOptions(fmt="gif")
    with pytest.raises(ValueError, match="positive numbers or 'all'"):
        PlotOptions(surfaces=("two",))


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"manifoldwalk\[plot\]"):
        require_matplotlib()


def test_the_package_imports_without_matplotlib_or_a_framework():
    code = (
        "import sys, manifoldwalk.plots, manifoldwalk.cli; "
        "bad = [m for m in ('matplotlib', 'torch', 'jax', 'tensorflow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
