"""Phase 1 of a seed: train the net from its initialisation (or reload what was trained).

The trained θ and phase 1's record are saved to ``phase1.npz``; a damaged file is trained again.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._seed import Stage, build_net, damaged
from manifoldwalk.experiments.definitions import Experiment

__all__ = ["run_phase1"]


def run_phase1(
    backend: ModuleType, spec: Experiment, ds: Any, seed: int, d: Path, stage: Stage
) -> tuple[Any, Any, dict[str, Any]]:
    """Train (or reload) phase 1 of one seed.

    Args:
        backend: The experiment backend module.
        spec: The experiment (its net, task, metric and phase-1 epochs).
        ds: The seed's dataset.
        seed: The seed (of the initialisation and the shuffling).
        d: The seed's run directory (``phase1.npz`` is read and written there).
        stage: The seed's progress reporting.

    Returns:
        ``(problem, theta0, record)``: the adapter's problem on the training set, phase 1's θ
        and its record (train and test loss, test metric, example gradients, wall time).
    """
    model = build_net(backend, spec, ds, seed)
    path = d / "phase1.npz"
    saved = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                saved = {k: f[k] for k in f.files}
            if "theta" not in saved:
                raise ValueError("no theta array in it")
        except Exception as err:  # a truncated zip raises BadZipFile, EOFError, ValueError…
            damaged(path, err, "training phase 1 again")
            saved = None
    if saved is not None:
        problem = backend.make_problem(model, ds.x_train, ds.y_train, task=spec.task)
        theta0 = backend.from_numpy(saved["theta"], problem.theta0)
        record = {k: float(v) for k, v in saved.items() if k != "theta"}
        return problem, theta0, record
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
    rundir.atomic_write_npz(path, theta=to_numpy(theta0), **record)
    return problem, theta0, record
