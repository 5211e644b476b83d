"""Phase 1 of a seed: train the net from its initialisation (or reload what was trained).

The trained θ and phase 1's record are saved to ``phase1.npz``. A saved file is reused only
when the run's index vouches for it and it holds a finite θ of the net's size and a number for
each record; otherwise it is named on stderr and phase 1 is trained again.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._seed import Stage, build_net, damaged
from manifoldwalk.experiments.definitions import Experiment

__all__ = ["run_phase1"]

_RECORD = ("train_loss", "test_loss", "test_metric", "example_grads")
"""The numbers phase 1 records beside θ (and its wall time)."""

PHASE1 = "phase1.npz"


class _Unfit(ValueError):
    """A saved phase 1 that loads but cannot be used (said in words, without a type name)."""


def _saved_phase1(
    files: rundir.RunFiles, n_params: Callable[[], int]
) -> dict[str, np.ndarray] | None:
    """The saved ``phase1.npz`` when it can be reused; None when there is none or it is named
    on stderr as damaged (not vouched for, not loading, a θ not finite or not of length
    ``n_params()``, a record missing or no finite number)."""
    path = files.directory / PHASE1
    if not path.exists():
        return None
    why = files.problem(PHASE1)
    if why is not None:
        damaged(path, why, "training phase 1 again")
        return None
    try:
        with np.load(io.BytesIO(files.read_bytes(PHASE1)), allow_pickle=False) as f:
            saved = {k: f[k] for k in f.files}
        theta = saved.get("theta")
        if theta is None:
            raise _Unfit("no theta array in it")
        if theta.ndim != 1 or theta.dtype.kind != "f":
            raise _Unfit(f"its theta has shape {theta.shape} and dtype {theta.dtype}")
        if not np.isfinite(theta).all():
            raise _Unfit(f"its theta holds {int((~np.isfinite(theta)).sum())} non-finite values")
        for k in _RECORD:
            v = saved.get(k)
            if v is None or v.shape != () or v.dtype.kind not in "fiu" or not math.isfinite(v):
                raise _Unfit(f"its record {k!r} is missing or no finite number")
    except Exception as err:  # a truncated zip raises BadZipFile, EOFError, ValueError…
        damaged(path, str(err) if isinstance(err, _Unfit) else err, "training phase 1 again")
        return None
    n = n_params()
    if theta.shape[0] != n:
        damaged(
            path,
            f"its theta has {theta.shape[0]} values; the net has {n}",
            "training phase 1 again",
        )
        return None
    return saved


def run_phase1(
    backend: ModuleType,
    spec: Experiment,
    ds: Any,
    seed: int,
    d: Path,
    stage: Stage,
    files: rundir.RunFiles | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train (or reload) phase 1 of one seed.

    Args:
        backend: The experiment backend module.
        spec: The experiment (its net, task, metric and phase-1 epochs).
        ds: The seed's dataset.
        seed: The seed (of the initialisation and the shuffling).
        d: The seed's run directory (``phase1.npz`` is read and written there).
        stage: The seed's progress reporting.
        files: The run's record of its files (None: ``d``'s, read afresh).

    Returns:
        ``(problem, theta0, record)``: the adapter's problem on the training set, phase 1's θ
        and its record (train and test loss, test metric, example gradients, wall time).
    """
    files = files if files is not None else rundir.RunFiles(d)
    made: dict[str, Any] = {}

    def n_params() -> int:  # the saved θ's length is checked against the net it belongs to
        made["problem"] = backend.make_problem(
            build_net(backend, spec, ds, seed), ds.x_train, ds.y_train, task=spec.task
        )
        return int(made["problem"].n_params)

    saved = _saved_phase1(files, n_params)
    if saved is not None:
        problem = made["problem"]
        theta0 = backend.from_numpy(saved["theta"], problem.theta0)
        record = {k: float(v) for k, v in saved.items() if k != "theta"}
        return problem, theta0, record
    model = build_net(backend, spec, ds, seed)
    bar = stage.bar(spec.phase1_epochs, f"seed {seed} phase 1", "epochs")
    start = time.perf_counter()
    model, n_ex = backend.train(
        model,
        ds.x_train,
        ds.y_train,
        task=spec.task,
        epochs=spec.phase1_epochs,
        seed=seed,
        progress=lambda e, total, loss: bar.update(e, f"loss {loss:.3g}"),
    )
    bar.close()
    problem = backend.make_problem(model, ds.x_train, ds.y_train, task=spec.task)
    theta0 = problem.theta0
    test = problem.evaluate(theta0, ds.x_test, ds.y_test, task=spec.task)
    record = {
        "train_loss": float(problem.loss(theta0)),
        "test_loss": test["loss"],
        "test_metric": test[spec.metric],
        "example_grads": float(n_ex),
        "wall_time": time.perf_counter() - start,
    }
    files.write_npz(PHASE1, theta=to_numpy(theta0), **record)
    return problem, theta0, record
