"""The sharpness in ``manifoldwalk reproduce``: at the walk's start and end, at the weight-decay
nets, along the walk every N records (resumed on schedule), in the table, and older runs
without it.

The reference values come from ARPACK (``scipy.sparse.linalg.eigsh``) on the adapter's exact
Hessian-vector products, independently of the project's Lanczos.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from scipy.sparse.linalg import LinearOperator, eigsh  # noqa: E402

from manifoldwalk import _json  # noqa: E402
from manifoldwalk.cli import main  # noqa: E402
from manifoldwalk.experiments import RunConfig, _walk_stage, run_seed  # noqa: E402
from manifoldwalk.experiments._seed import build_net, load_data  # noqa: E402
from manifoldwalk.experiments._sharpness import TOL, seed_sharpness  # noqa: E402
from manifoldwalk.experiments.backend import load_backend  # noqa: E402
from manifoldwalk.experiments.config import check_config  # noqa: E402
from manifoldwalk.experiments.rundir import DONE, RunFiles, mark_done, seed_dir  # noqa: E402
from manifoldwalk.experiments.table import build_table, format_table, rebuild  # noqa: E402

#: A run of seconds: 2 epochs, 2 λ, 300 walk steps recorded every 50 (7 records), checkpoints
#: every 100 steps (so that a walk can be cut and resumed between segments).
TINY = dict(
    max_steps=300,
    checkpoint_every=100,
    phase1_epochs=2,
    wd_epochs=2,
    wd_lambdas=(0.0, 1e-3),
    record_every=50,
)
SHARP = ("sharpness", "sharpness_tangent")


def _run(out: Path, **extra) -> Path:
    config = RunConfig("iris-ff", out=str(out), **TINY, **extra)
    run_seed(config, 0, show_progress=False)
    return seed_dir(out, "iris-ff", 0)


@pytest.fixture(scope="module")
def every2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 0 of iris-ff with ``sharpness_every=2``; returns its seed directory."""
    return _run(tmp_path_factory.mktemp("every2"), sharpness_every=2)


def _metrics(d: Path) -> dict[str, np.ndarray]:
    rows = list(csv.DictReader((d / "metrics.csv").open()))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def _summary(d: Path) -> dict:
    return _json.loads((d / "summary.json").read_bytes())


def _theta(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as f:
        return np.asarray(f["theta"])


def _arpack(theta: np.ndarray, tangent: bool) -> float:
    """The largest eigenvalue of the training loss's Hessian at θ (on the tangent space: of
    P·H·P, P projecting ∇L out), by ARPACK on the adapter's exact Hessian-vector products."""
    import torch

    config = RunConfig("iris-ff", **TINY)
    spec = config.spec
    backend = load_backend("torch")
    ds = load_data(config, spec, 0)
    problem = backend.make_problem(
        build_net(backend, spec, ds, 0), ds.x_train, ds.y_train, task=spec.task
    )
    at = torch.as_tensor(theta, dtype=torch.float64)
    g = problem.grad(at).numpy()
    u = g / np.linalg.norm(g)

    def project(v: np.ndarray) -> np.ndarray:
        return v - u * (u @ v) if tangent else v

    def matvec(v: np.ndarray) -> np.ndarray:
        w = project(np.ravel(v))
        return project(problem.hvp(at, torch.as_tensor(w)).numpy())

    n = theta.size
    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", tol=1e-10, return_eigenvectors=False)[0])


def test_start_end_and_weight_decay_sharpness_are_the_largest_eigenvalues_there(every2):
    rec = _summary(every2)["sharpness"]
    points = {
        "start": _theta(every2 / "phase1.npz"),  # the walk's start
        "end": _theta(every2 / "final.npz"),
    }
    for point, theta in points.items():
        for measure, tangent in (("full", False), ("tangent", True)):
            ref = _arpack(theta, tangent)
            assert abs(rec[point][measure] - ref) <= TOL * abs(ref), (point, measure)
        assert rec[point]["converged"] and 0 < rec[point]["n_hvp"] <= 120
    # the walk moved: start and end differ by far more than the tolerance (the test can fail)
    assert abs(rec["start"]["full"] - rec["end"]["full"]) > 100 * TOL * rec["end"]["full"]
    wd = rec["wd"][1]  # the full-training-set net of λ = 1e-3
    assert wd["lam"] == 1e-3 and [r["lam"] for r in rec["wd"]] == [0.0, 1e-3]
    ref = _arpack(_theta(every2 / "wd" / "full-01.npz"), False)
    assert abs(wd["full"] - ref) <= TOL * abs(ref)
    assert (rec["every"], rec["tol"], rec["hvp"]) == (2, TOL, "exact")
    assert _summary(every2)["timing"]["sharpness_s"] > 0


def test_every_second_record_is_measured_and_the_others_are_nan(every2):
    m = _metrics(every2)
    assert len(m["step"]) == 7  # records at 0, 50, …, 300
    rec = _summary(every2)["sharpness"]
    for col in SHARP:
        measured = np.isfinite(m[col])
        assert measured.tolist() == [i % 2 == 0 for i in range(7)], col
    # record 0 is the walk's start, record 6 its end: the same numbers as the summary's
    assert m["sharpness"][0] == pytest.approx(rec["start"]["full"], rel=1e-9)
    assert m["sharpness_tangent"][0] == pytest.approx(rec["start"]["tangent"], rel=1e-9)
    assert m["sharpness"][6] == pytest.approx(rec["end"]["full"], rel=1e-9)
    assert m["sharpness_tangent"][6] == pytest.approx(rec["end"]["tangent"], rel=1e-9)


def _interrupt_second_metrics_write(monkeypatch) -> None:
    """Kill the walk at its second ``write_metrics`` (after the checkpoint at step 200)."""
    real = _walk_stage.write_metrics
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(_walk_stage, "write_metrics", wrapped)


def test_a_resumed_walk_continues_the_schedule_and_measuring_leaves_the_walk_alone(
    every2, tmp_path, monkeypatch
):
    out = tmp_path / "cut"
    config = RunConfig("iris-ff", out=str(out), sharpness_every=2, **TINY)
    d = seed_dir(out, "iris-ff", 0)
    with monkeypatch.context() as m:
        _interrupt_second_metrics_write(m)
        with pytest.raises(KeyboardInterrupt):
            run_seed(config, 0, show_progress=False)
    assert (d / "walk" / "thetas-00000200.npz").exists() and not (d / "final.npz").exists()
    run_seed(config, 0, show_progress=False)  # resumed from the checkpoint at step 200
    assert (d / "metrics.csv").read_bytes() == (every2 / "metrics.csv").read_bytes()
    assert _summary(d)["sharpness"] == _summary(every2)["sharpness"]
    (d / DONE).unlink()  # resumed again after the walk: its θ is loaded from the checkpoint
    run_seed(config, 0, show_progress=False)
    assert _summary(d)["sharpness"] == _summary(every2)["sharpness"]
    # without measuring along the walk the walk is the same; its columns are all NaN
    plain = _run(tmp_path / "plain")
    a, b = _metrics(every2), _metrics(plain)
    assert list(a) == list(b)
    for col in a:
        if col in SHARP:
            assert np.isnan(b[col]).all(), col
        else:
            np.testing.assert_array_equal(a[col], b[col], err_msg=col)
    assert _summary(plain)["sharpness"]["every"] is None
    assert _summary(plain)["sharpness"]["end"] == _summary(every2)["sharpness"]["end"]


def test_the_setting_is_no_option_of_the_run(every2):
    wanted = RunConfig("iris-ff", sharpness_every=5, **TINY).for_seed(0)
    assert "sharpness_every" not in wanted["options"]
    check_config(every2, wanted)  # another N resumes the same run: not refused
    check_config(every2, RunConfig("iris-ff", sharpness_every=0, **TINY).for_seed(0))
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="sharpness_every"):
            RunConfig("iris-ff", sharpness_every=bad)


def _cli(*argv: str) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(list(argv)) == 0
    return buf.getvalue()


def test_the_table_shows_start_to_end_and_weight_decay_in_every_format(every2, tmp_path):
    shutil.copytree(every2.parent, tmp_path / "iris-ff")
    rec = _summary(every2)["sharpness"]
    (row,) = build_table(tmp_path / "iris-ff")
    start, end = row.sharpness["start"], row.sharpness["end"]
    assert start[0] == rec["start"]["full"] and end[0] == rec["end"]["full"]
    assert row.sharpness["end_tangent"][0] == rec["end"]["tangent"]
    assert math.isnan(start[1])  # one seed: no spread
    lam = row.by_val.lam
    (wd,) = [r for r in rec["wd"] if r["lam"] == lam]
    assert row.sharpness["wd_by_val"][0] == wd["full"]
    assert row.sharpness["wd_by_val_tangent"][0] == wd["tangent"]
    md = _cli("table", str(tmp_path), "--no-files")
    head, _, line = md.splitlines()[:3]
    assert head.endswith("| sharpness, start → end | sharpness, WD λ by val |")
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[-2] == f"{start[0]:.3g} → {end[0]:.3g}" and cells[-1] == f"{wd['full']:.3g}"
    (csv_row,) = csv.DictReader(io.StringIO(_cli("table", str(tmp_path), "--format", "csv")))
    assert float(csv_row["sharpness_start_mean"]) == start[0]
    assert float(csv_row["sharpness_end_tangent_mean"]) == rec["end"]["tangent"]
    assert float(csv_row["sharpness_wd_by_val_mean"]) == wd["full"]
    (obj,) = json.loads((tmp_path / "iris-ff" / "table.json").read_text())
    assert obj["sharpness_end_mean"] == end[0] and obj["sharpness_end_std"] is None


def _make_old(d: Path, seed: int) -> None:
    """Turn a seed directory into one made before the sharpness existed, as seed ``seed``."""
    files = RunFiles(d)
    config = json.loads((d / "config.json").read_text())
    files.write_json("config.json", {**config, "seed": seed})
    summary = _summary(d)
    del summary["sharpness"], summary["timing"]["sharpness_s"]
    files.write_json("summary.json", {**summary, "seed": seed})
    rows = list(csv.reader((d / "metrics.csv").open()))
    keep = [i for i, c in enumerate(rows[0]) if c not in SHARP]
    files.write_csv(
        "metrics.csv", [rows[0][i] for i in keep], [[r[i] for i in keep] for r in rows[1:]]
    )
    mark_done(d, files=files)


def test_a_directory_made_before_the_sharpness_still_tables(every2, tmp_path):
    exp = tmp_path / "iris-ff"
    shutil.copytree(every2, exp / "seed-000")
    shutil.copytree(every2, exp / "seed-001")
    _make_old(exp / "seed-001", 1)
    rows, written, problems = rebuild(tmp_path)
    (row,) = rows
    assert row.seeds == [0, 1] and not problems and exp / "history.csv" in written
    assert row.sharpness["start"][0] == _summary(every2)["sharpness"]["start"]["full"]
    assert any(
        n.startswith("no sharpness recorded by seed 1 (a run made before") for n in row.notes
    )
    # the old seed's history has the sharpness columns, all NaN, so both fit one file
    history = list(csv.DictReader((exp / "history.csv").open()))
    old = [r for r in history if r["seed"] == "1"]
    assert len(old) == 7 and all(r["sharpness"] == "nan" for r in old)
    # a directory of old seeds only: — in the Markdown, null with why in the JSON
    shutil.rmtree(exp / "seed-000")
    (row,) = build_table(exp)
    line = format_table([row]).splitlines()[2]
    assert line.endswith("| — | — |")
    (obj,) = json.loads(_cli("table", str(exp), "--format", "json", "--no-files"))
    assert obj["sharpness_start_mean"] is None
    assert obj["sharpness_start_mean_note"].startswith("nan: no seed has it")


def test_switched_off_it_is_not_measured_and_the_table_says_so(every2, tmp_path):
    files = RunFiles(every2)
    record = seed_sharpness(None, None, None, None, (0.0,), files, 0)
    assert record == {"every": 0, "wall_time": 0.0}  # nothing measured, nothing read
    exp = tmp_path / "iris-ff"
    shutil.copytree(every2, exp / "seed-000")
    d = exp / "seed-000"
    summary = _summary(d)
    summary["sharpness"] = {"every": 0}
    RunFiles(d).write_json("summary.json", summary)
    mark_done(d)
    (row,) = build_table(exp)
    assert math.isnan(row.sharpness["end"][0])
    assert any("run with --sharpness-every 0" in n for n in row.notes)


def test_the_command_line_passes_the_setting_and_refuses_a_negative_one(monkeypatch, capsys):
    import manifoldwalk.experiments as experiments

    seen = {}

    def fake(config, **kwargs):
        seen["every"] = config.sharpness_every
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_experiment", fake)
    assert main(["reproduce", "iris-ff", "--sharpness-every", "3", "--quiet"]) == 130
    assert seen == {"every": 3}
    assert main(["reproduce", "iris-ff", "--quiet"]) == 130 and seen == {"every": None}
    capsys.readouterr()
    assert main(["reproduce", "iris-ff", "--sharpness-every", "-1"]) == 2
    err = capsys.readouterr().err
    assert "sharpness_every (--sharpness-every) must be an integer >= 0" in err
