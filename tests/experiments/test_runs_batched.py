"""``reproduce --batch-seeds``: two iris-ff seeds walked together end as two walked alone
(JAX and PyTorch)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _runs_helpers import TINY

import manifoldwalk as mw
from manifoldwalk.cli import main
from manifoldwalk.experiments import RunConfig, run_experiment
from manifoldwalk.experiments.rundir import is_finished, seed_dir

_VOLATILE = {"wall_time", "timing"}


def _close(a, b, path: str) -> None:
    """JSON-like values equal, floats within floating-point tolerance."""
    if isinstance(a, dict):
        assert set(a) - _VOLATILE == set(b) - _VOLATILE, path
        for k in set(a) - _VOLATILE:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10, err_msg=path)
    else:
        assert a == b, path


def _cell(text: str) -> float | str:
    """A CSV cell as a float where it is a number (so it compares with tolerance)."""
    try:
        return float(text)
    except ValueError:
        return text


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def assert_same_run(a: Path, b: Path) -> None:
    """The same files; JSON, CSV and npz contents equal up to floating-point tolerance."""
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    files_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    for name in ("DONE", "index.json"):  # they hold the other files' hashes: compared one by one
        assert name in files_a
        files_a.remove(name)
        files_b.remove(name)
    assert files_a == files_b
    for rel in files_a:
        pa, pb = a / rel, b / rel
        if pa.name == "provenance.json":  # when and how each session ran: not the run's results
            continue
        if pa.suffix == ".json":
            _close(json.loads(pa.read_text()), json.loads(pb.read_text()), rel)
        elif pa.suffix == ".csv":
            ra, rb = _csv(pa), _csv(pb)
            assert ra[0] == rb[0] and len(ra) == len(rb), rel
            for x, y in zip(ra[1:], rb[1:], strict=True):
                _close([_cell(c) for c in x], [_cell(c) for c in y], rel)
        elif pa.suffix == ".npz":
            with np.load(pa, allow_pickle=False) as fa, np.load(pb, allow_pickle=False) as fb:
                assert sorted(fa.files) == sorted(fb.files), rel
                for k in set(fa.files) - _VOLATILE:
                    if k == "meta":  # a saved WalkResult's JSON scalars
                        _close(json.loads(str(fa[k])), json.loads(str(fb[k])), f"{rel}:{k}")
                    elif fa[k].dtype.kind in "fc":
                        np.testing.assert_allclose(fa[k], fb[k], rtol=1e-6, atol=1e-9, err_msg=k)
                    else:
                        np.testing.assert_array_equal(fa[k], fb[k], err_msg=f"{rel}:{k}")
        else:
            assert pa.read_bytes() == pb.read_bytes(), rel


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_batched_seeds_end_as_seeds_walked_alone(tmp_path, monkeypatch, backend):
    pytest.importorskip(backend)
    options = dict(TINY, seeds=(0, 1), backend=backend, max_steps=120, wd_lambdas=(0.0,))
    alone = RunConfig("iris-ff", out=str(tmp_path / "alone"), **options)
    together = RunConfig("iris-ff", out=str(tmp_path / "together"), **options)
    syncs = []
    walk = mw.walk

    def recording_walk(*args, **kwargs):
        syncs.append(getattr(kwargs.get("driver"), "steps_per_sync", None))
        return walk(*args, **kwargs)

    monkeypatch.setattr(mw, "walk", recording_walk)
    run_experiment(alone, show_progress=False)
    # walked alone, a JAX seed takes the compiled driver, K steps per sync = the record
    # interval; a PyTorch seed the eager driver
    assert syncs and set(syncs) == {alone.spec.record_every if backend == "jax" else None}
    # Phase 1 and the weight-decay runs are per seed either way: the batched run resumes from
    # the same phase 1 and finished weight-decay runs (as an interrupted run does) and walks.
    for seed in (0, 1):
        a = seed_dir(alone.out, "iris-ff", seed)
        b = seed_dir(together.out, "iris-ff", seed)
        (b / "wd").mkdir(parents=True)
        shutil.copy(a / "phase1.npz", b / "phase1.npz")
        for f in (a / "wd").iterdir():
            shutil.copy(f, b / "wd" / f.name)
        shutil.copy(a / "config.json", b / "config.json")  # the record that vouches for them
        shutil.copy(a / "index.json", b / "index.json")
    summaries = run_experiment(together, show_progress=False, batch_seeds=True)
    assert [s["seed"] for s in summaries] == [0, 1]
    for seed in (0, 1):
        a = seed_dir(alone.out, "iris-ff", seed)
        b = seed_dir(together.out, "iris-ff", seed)
        assert is_finished(a) and is_finished(b)
        assert_same_run(a, b)
    # the walks differ between seeds (a batch that mixed them up would not)
    w = [
        json.loads((seed_dir(together.out, "iris-ff", s) / "summary.json").read_text())
        for s in (0, 1)
    ]
    assert w[0]["walk"]["reg"] != w[1]["walk"]["reg"]
    assert w[0]["walk"]["n_predictor"] == 120


def test_batch_seeds_with_a_backend_that_cannot_batch_is_a_one_line_error(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    status = main(
        ["reproduce", "iris-ff", "--seeds", "2", "--out", str(tmp_path), "--quiet"]
        + ["--backend", "tensorflow", "--batch-seeds", "--steps", "10"]
    )
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "--batch-seeds needs --backend jax or torch" in err
    assert not any(tmp_path.iterdir())
