"""Phase 1 of a seed: train the net from its initialisation (or reload what was trained).

The trained θ and phase 1's record are saved to ``phase1.npz``. With ``--batch-seeds`` the
seeds' phase 1 train together (:func:`run_phase1_seeds`). A saved file is reused only
when the run's index vouches for it and it holds a finite θ of the net's size and a number for
each record; otherwise it is named on stderr and phase 1 is trained again.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._batched_train import (
    MEMORY_BUDGET,
    Member,
    batch_cap,
    plan_batches,
    train_members,
)
from manifoldwalk.experiments._seed import Stage, build_net, damaged
from manifoldwalk.experiments.definitions import Experiment

__all__ = ["Phase1Seed", "run_phase1", "run_phase1_seeds"]

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


@dataclass(frozen=True)
class Phase1Seed:
    """One seed's phase 1.

    Attributes:
        seed: The seed (of the initialisation and the shuffling).
        ds: The seed's dataset.
        files: The seed's run files (``phase1.npz`` is read and written through them).
    """

    seed: int
    ds: Any
    files: rundir.RunFiles


def run_phase1(
    backend: ModuleType,
    spec: Experiment,
    ds: Any,
    seed: int,
    d: Path,
    stage: Stage,
    files: rundir.RunFiles | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train (or reload) phase 1 of one seed, through the backend's ``train``.

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
        and its record (train and test loss, test metric, example gradients, wall time, and
        ``batched``, the seeds trained together: 1).
    """
    files = files if files is not None else rundir.RunFiles(d)
    (out,) = run_phase1_seeds(backend, spec, [Phase1Seed(seed, ds, files)], stage, batched=False)
    return out


def run_phase1_seeds(
    backend: ModuleType,
    spec: Experiment,
    seeds: Sequence[Phase1Seed],
    stage: Stage,
    *,
    batched: bool = True,
    budget: int = MEMORY_BUDGET,
) -> list[tuple[Any, Any, dict[str, Any]]]:
    """Train (or reload) phase 1 of several seeds, the missing ones together (``--batch-seeds``).

    A seed whose ``phase1.npz`` can be reused is not trained again. The others train in
    batches of equal training-set length (each seed has its own data subset or split) through
    :func:`~manifoldwalk.experiments._batched_train.train_members`, at most as many as
    :func:`~manifoldwalk.experiments._batched_train.members_per_batch` allows; each seed's
    ``phase1.npz`` is written as soon as its batch finishes, its ``wall_time`` the batch's
    wall time shared equally among the seeds trained together (``batched`` of them).

    Args:
        backend: The experiment backend module.
        spec: The experiment (its net, task, metric and phase-1 epochs).
        seeds: The seeds.
        stage: Progress reporting.
        batched: Train the missing seeds together where the backend can (False: one by one
            through the backend's ``train``).
        budget: Bytes a batch may take, by the estimate of ``members_per_batch``.

    Returns:
        For each seed, in order, ``(problem, theta0, record)`` as :func:`run_phase1` gives.
    """
    out: list[tuple[Any, Any, dict[str, Any]] | None] = [None] * len(seeds)
    for k, s in enumerate(seeds):
        made: dict[str, Any] = {}

        def n_params(s: Phase1Seed = s, made: dict[str, Any] = made) -> int:
            # the saved θ's length is checked against the net it belongs to
            net = build_net(backend, spec, s.ds, s.seed)
            made["problem"] = backend.make_problem(net, s.ds.x_train, s.ds.y_train, task=spec.task)
            return int(made["problem"].n_params)

        saved = _saved_phase1(s.files, n_params)
        if saved is not None:
            problem = made["problem"]
            theta0 = backend.from_numpy(saved["theta"], problem.theta0)
            record = {name: float(v) for name, v in saved.items() if name != "theta"}
            out[k] = (problem, theta0, record)
    missing = [k for k, o in enumerate(out) if o is None]
    if missing:
        first = seeds[missing[0]]
        cap = batch_cap(backend, spec, first.ds, first.seed, budget=budget) if batched else 1
        batches = plan_batches([len(seeds[k].ds.x_train) for k in missing], cap)
        epochs = spec.phase1_epochs
        if len(seeds) == 1:
            label = f"seed {first.seed} phase 1"
        else:
            label = f"phase 1 of {len(missing)} seeds"
            label += f" in {len(batches)} batches" if len(batches) > 1 else ""
        bar = stage.bar(epochs * len(batches), label, "epochs")
        for b, idx in enumerate(batches):
            group = [seeds[missing[j]] for j in idx]

            def epoch_done(e: int, total: int, loss: float, b: int = b) -> None:
                bar.update(b * epochs + e, f"loss {loss:.3g}")

            members = [
                Member(
                    build_net(backend, spec, s.ds, s.seed), s.ds.x_train, s.ds.y_train, 0.0, s.seed
                )
                for s in group
            ]
            start = time.perf_counter()
            models, counts, together = train_members(
                backend,
                members,
                task=spec.task,
                epochs=epochs,
                batched=batched,
                progress=epoch_done,
            )
            scored = [_score(backend, spec, s, m) for s, m in zip(group, models, strict=True)]
            share = (time.perf_counter() - start) / len(group)  # training and scoring
            for j, s, (problem, theta0, record), n_ex in zip(
                idx, group, scored, counts, strict=True
            ):
                record.update(example_grads=float(n_ex), wall_time=share, batched=float(together))
                s.files.write_npz(PHASE1, theta=to_numpy(theta0), **record)
                out[missing[j]] = (problem, theta0, record)
        bar.close()
    return [o for o in out if o is not None]


def _score(
    backend: ModuleType, spec: Experiment, s: Phase1Seed, model: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """A trained phase 1's problem, θ and scores (train and test loss, test metric)."""
    ds = s.ds
    problem = backend.make_problem(model, ds.x_train, ds.y_train, task=spec.task)
    theta0 = problem.theta0
    test = problem.evaluate(theta0, ds.x_test, ds.y_test, task=spec.task)
    record = {
        "train_loss": float(problem.loss(theta0)),
        "test_loss": test["loss"],
        "test_metric": test[spec.metric],
    }
    return problem, theta0, record
