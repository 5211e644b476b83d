"""The weight-decay sweep of a seed: every λ trained on the full training set and on a fit split.

Each run is saved (``wd/<split>-<i>.json`` and ``.npz``, ``i`` the λ's position in the list)
before the next starts, so an interrupted sweep keeps its finished runs; ``wd.csv`` lists them.
A saved run is reused only when the run's index vouches for both files (an edited record that
still parses is trained again, named on stderr) and its record holds the numbers a run records.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk import _json
from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._seed import Stage, build_net, damaged
from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.experiments.definitions import Experiment

__all__ = ["run_weight_decay", "wd_run"]

_WD_COLUMNS = [
    "lam",
    "split",
    "epochs",
    "example_grads",
    "train_loss",
    "test_loss",
    "test_metric",
    "val_loss",
    "val_metric",
]
"""The columns of ``wd.csv``."""


NOT_MEASURED = "nan: not measured (a run on the full training set has no validation split)"
"""The note beside the validation loss and metric of a ``"full"`` run (written as null)."""


def _val_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, validation) indices carving ``fraction`` of ``n`` training examples."""
    order = np.random.default_rng([seed, 20240607]).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def wd_run(
    config: RunConfig,
    backend: ModuleType,
    spec: Experiment,
    ds: Any,
    seed: int,
    lam: float,
    split: str,
    fit: np.ndarray,
    val: np.ndarray,
) -> tuple[dict[str, Any], np.ndarray]:
    """One weight-decay training run, from the seed's initialisation.

    Args:
        config: The configuration (its regulariser ``wd_reg``).
        backend: The experiment backend module.
        spec: The experiment (its net, task, metric and epochs).
        ds: The seed's dataset.
        seed: The seed (of the initialisation and the shuffling).
        lam: The weight-decay λ.
        split: ``"full"`` (trained on ``fit``, all examples) or ``"val"`` (trained on ``fit``,
            scored on ``val``).
        fit: Indices of the training examples trained on.
        val: Indices of the held-out validation examples (used for ``"val"``).

    Returns:
        ``(record, theta)``: the run's record (a row of ``wd.csv`` plus its wall time; a
        ``"full"`` run's validation loss and metric are NaN, noted as :data:`NOT_MEASURED`)
        and its final θ as numpy.
    """
    model = build_net(backend, spec, ds, seed)
    x, y = ds.x_train[fit], ds.y_train[fit]
    start = time.perf_counter()
    model, n_ex = backend.train(
        model,
        x,
        y,
        task=spec.task,
        epochs=spec.wd_epochs,
        weight_decay=lam,
        reg=config.wd_reg,
        seed=seed,
    )
    problem = backend.make_problem(model, x, y, task=spec.task)
    theta = problem.theta0
    test = problem.evaluate(theta, ds.x_test, ds.y_test, task=spec.task)
    record = {
        "lam": float(lam),
        "split": split,
        "epochs": spec.wd_epochs,
        "example_grads": n_ex,
        "train_loss": float(problem.loss(theta)),
        "test_loss": test["loss"],
        "test_metric": test[spec.metric],
        "val_loss": math.nan,
        "val_metric": math.nan,
        "wall_time": time.perf_counter() - start,
    }
    if split == "val":
        held = problem.evaluate(theta, ds.x_train[val], ds.y_train[val], task=spec.task)
        record["val_loss"], record["val_metric"] = held["loss"], held[spec.metric]
    else:  # written as null, with this note beside it (strict JSON)
        record["val_loss_note"] = record["val_metric_note"] = NOT_MEASURED
    return record, to_numpy(theta)


def _record_problem(record: Any) -> str | None:
    """Why a decoded weight-decay record is not one run's record (None: it is)."""
    if not isinstance(record, dict):
        return "it holds no record"
    for k in ("epochs", "example_grads"):
        v = record.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < math.inf:
            return f"its {k!r} is {v!r}, not a count"
    for k in ("train_loss", "test_loss", "test_metric", "val_loss", "val_metric"):
        v = record.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return f"its {k!r} is {v!r}, not a number"
    return None


def _saved_run(files: rundir.RunFiles, name: str, lam: float, split: str) -> dict[str, Any] | None:
    """The saved record of the run of ``lam`` on ``split`` (None: not saved, or named on
    stderr as damaged: not vouched for by the run's index, not loading, not a record).

    Raises:
        ValueError: The file holds the run of another λ or split.
    """
    path = files.directory / name
    if not path.exists():
        return None
    again = f"training λ={lam:g} ({split}) again"
    try:
        record = _json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        damaged(path, err, again)
        return None
    if isinstance(record, dict) and (
        record.get("lam") != float(lam) or record.get("split") != split
    ):
        # the files are named by position in the λ list: never pair a λ with another's run
        raise ValueError(
            f"{path} holds the weight-decay run of λ={record.get('lam')!r} "
            f"({record.get('split')}), not of λ={float(lam)!r} ({split}); the run directory "
            "was made with another λ list: choose another --out or delete that directory"
        )
    npz = name.removesuffix(".json") + ".npz"
    for each in (name, npz):
        why = files.problem(each)
        if why is not None:
            damaged(files.directory / each, why, again)
            return None
    why = _record_problem(record)
    if why is None:
        err = rundir.npz_error(path.with_suffix(".npz"))
        why = None if err is None else f"{type(err).__name__}: {err}"
        if why is not None:
            path = path.with_suffix(".npz")
    if why is not None:
        damaged(path, why, again)
        return None
    return record


def run_weight_decay(
    config: RunConfig,
    backend: ModuleType,
    spec: Experiment,
    ds: Any,
    seed: int,
    d: Path,
    stage: Stage,
    files: rundir.RunFiles | None = None,
) -> list[dict[str, Any]]:
    """Every λ on the full training set and on the fit split (λ chosen on validation).

    Runs already saved in ``d / "wd"`` (and vouched for by the run's index) are read back;
    the others are trained and saved.

    Args:
        config: The configuration (its λ list and validation share).
        backend: The experiment backend module.
        spec: The experiment.
        ds: The seed's dataset.
        seed: The seed.
        d: The seed's run directory.
        stage: The seed's progress reporting.
        files: The run's record of its files (None: ``d``'s, read afresh).

    Returns:
        The runs' records, λ by λ, ``"full"`` before ``"val"``.

    Raises:
        ValueError: A saved file holds the run of another λ (the directory was made with
            another λ list).
    """
    files = files if files is not None else rundir.RunFiles(d)
    n = len(ds.x_train)
    fit_all = np.arange(n)
    fit, val = _val_split(n, config.val_fraction, seed)
    jobs = [(i, lam, s) for i, lam in enumerate(config.lambdas) for s in ("full", "val")]
    bar = stage.bar(len(jobs), f"seed {seed} weight decay", "runs")
    records = []
    for k, (i, lam, split) in enumerate(jobs):
        name = f"wd/{split}-{i:02d}.json"
        record = _saved_run(files, name, lam, split)
        if record is None:
            idx = fit_all if split == "full" else fit
            record, theta = wd_run(config, backend, spec, ds, seed, lam, split, idx, val)
            files.write_npz(name.removesuffix(".json") + ".npz", theta=theta.astype(np.float32))
            files.write_json(name, record)
        records.append(record)
        bar.update(k + 1, f"λ={lam:g} {split}")
    bar.close()
    rows = [[r[c] for c in _WD_COLUMNS] for r in records]
    files.write_csv("wd.csv", _WD_COLUMNS, rows)
    return records
