"""The weight-decay sweep of a seed: every λ trained on the full training set and on a fit split.

Each run is saved (``wd/<split>-<i>.json`` and ``.npz``, ``i`` the λ's position in the list)
as soon as it is trained, so an interrupted sweep keeps its finished runs; ``wd.csv`` lists
them. A saved run is reused only when the run's index vouches for both files (an edited record
that still parses is trained again, named on stderr) and its record holds the numbers a run
records. The missing runs of a seed (with ``--batch-seeds``, of every seed) train together,
grouped by training-set length, in as few batched computations as memory allows
(:func:`run_sweeps`); ``--sweep sequential`` trains them one by one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk import _json
from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._batched_train import (
    MEMORY_BUDGET,
    Member,
    batch_cap,
    can_batch,
    plan_batches,
    train_members,
)
from manifoldwalk.experiments._seed import Stage, build_net, damaged
from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.experiments.definitions import Experiment

__all__ = ["SweepSeed", "run_sweeps", "run_weight_decay"]

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


@dataclass(frozen=True)
class SweepSeed:
    """One seed's part of a weight-decay sweep.

    Attributes:
        seed: The seed (of the initialisation, the shuffling and the validation split).
        ds: The seed's dataset.
        files: The seed's run files (``wd/`` is read and written through them).
        n_params: The net's parameter count, for the members-per-batch rule (None: found by
            building the net).
    """

    seed: int
    ds: Any
    files: rundir.RunFiles
    n_params: int | None = None


@dataclass(frozen=True, eq=False)  # a run is itself: a key by identity
class _Run:
    """One weight-decay run of a sweep: whose, which λ, which split, on which examples."""

    owner: int  # the index of its SweepSeed
    i: int  # the λ's position in the λ list
    lam: float
    split: str
    fit: np.ndarray
    val: np.ndarray

    @property
    def name(self) -> str:
        """The run's record file, relative to the seed directory."""
        return f"wd/{self.split}-{self.i:02d}.json"


def _score(
    backend: ModuleType, spec: Experiment, ds: Any, model: Any, run: _Run, n_ex: int
) -> tuple[dict[str, Any], np.ndarray]:
    """The record of one trained weight-decay run (without its timing) and its final θ.

    A ``"full"`` run's validation loss and metric are NaN, noted as :data:`NOT_MEASURED`.
    """
    x, y = ds.x_train[run.fit], ds.y_train[run.fit]
    with warnings.catch_warnings():  # a large λ leaves a net no better than chance, on purpose
        warnings.filterwarnings("ignore", "the model looks untrained", UserWarning)
        problem = backend.make_problem(model, x, y, task=spec.task)
    theta = problem.theta0
    test = problem.evaluate(theta, ds.x_test, ds.y_test, task=spec.task)
    record = {
        "lam": float(run.lam),
        "split": run.split,
        "epochs": spec.wd_epochs,
        "example_grads": n_ex,
        "train_loss": float(problem.loss(theta)),
        "test_loss": test["loss"],
        "test_metric": test[spec.metric],
        "val_loss": math.nan,
        "val_metric": math.nan,
    }
    if run.split == "val":
        x_val, y_val = ds.x_train[run.val], ds.y_train[run.val]
        held = problem.evaluate(theta, x_val, y_val, task=spec.task)
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
    *,
    batched: bool = True,
    n_params: int | None = None,
) -> list[dict[str, Any]]:
    """Every λ on the full training set and on the fit split (λ chosen on validation).

    Runs already saved in ``d / "wd"`` (and vouched for by the run's index) are read back;
    the others are trained (see :func:`run_sweeps`) and saved.

    Args:
        config: The configuration (its λ list, validation share and regulariser).
        backend: The experiment backend module.
        spec: The experiment.
        ds: The seed's dataset.
        seed: The seed.
        d: The seed's run directory.
        stage: The seed's progress reporting.
        files: The run's record of its files (None: ``d``'s, read afresh).
        batched: Train the runs of one training-set length together (False: one by one, the
            sequential path).
        n_params: The net's parameter count (None: found by building the net).

    Returns:
        The runs' records, λ by λ, ``"full"`` before ``"val"``.

    Raises:
        ValueError: A saved file holds the run of another λ (the directory was made with
            another λ list).
    """
    files = files if files is not None else rundir.RunFiles(d)
    sweep = SweepSeed(seed, ds, files, n_params)
    (records,) = run_sweeps(config, backend, spec, [sweep], stage, batched=batched)
    return records


def run_sweeps(
    config: RunConfig,
    backend: ModuleType,
    spec: Experiment,
    seeds: Sequence[SweepSeed],
    stage: Stage,
    *,
    batched: bool = True,
    budget: int = MEMORY_BUDGET,
) -> list[list[dict[str, Any]]]:
    """The weight-decay sweeps of several seeds, their missing runs trained in batches.

    Every saved run (vouched for by its seed's index) is read back. The missing runs of all
    the seeds are grouped by training-set length (``"full"`` runs train on all n examples,
    ``"val"`` runs on the fit split) and each group is trained as one batched computation
    (:func:`~manifoldwalk.experiments._batched_train.train_members`), split where it would
    exceed ``budget`` (:func:`~manifoldwalk.experiments._batched_train.members_per_batch`;
    with a backend that cannot batch, one run at a time). Each run's files are written as soon
    as its batch finishes, so a kill loses only the batch in training. A run's record holds
    ``batched``, the runs trained together, and ``wall_time``, the batch's wall time (training
    and scoring) shared equally among them. Sequential (``batched=False``), every run trains alone through the
    backend's ``train``, λ by λ, ``"full"`` before ``"val"``.

    Args:
        config: The configuration (its λ list, validation share and regulariser).
        backend: The experiment backend module.
        spec: The experiment (its net, task, metric and epochs).
        seeds: The seeds' parts of the sweep.
        stage: Progress reporting.
        batched: Train the runs of one length together (False: the sequential path).
        budget: Bytes a batch may take, by the estimate of ``members_per_batch``.

    Returns:
        For each seed (in the order of ``seeds``), its runs' records, λ by λ, ``"full"``
        before ``"val"``; each seed's ``wd.csv`` is written.

    Raises:
        ValueError: A saved file holds the run of another λ (the directory was made with
            another λ list); checked for every seed before any training.
    """
    runs: list[_Run] = []
    for k, s in enumerate(seeds):
        n = len(s.ds.x_train)
        fit, val = _val_split(n, config.val_fraction, s.seed)
        every = np.arange(n)
        for i, lam in enumerate(config.lambdas):
            runs.append(_Run(k, i, lam, "full", every, val))
            runs.append(_Run(k, i, lam, "val", fit, val))
    records: dict[_Run, dict[str, Any]] = {}
    for run in runs:
        saved = _saved_run(seeds[run.owner].files, run.name, run.lam, run.split)
        if saved is not None:
            records[run] = saved
    missing = [run for run in runs if run not in records]
    batches = _batches(backend, spec, seeds, missing, batched, budget)
    bar = stage.bar(len(runs), _label(seeds, len(missing), len(batches)), "runs", len(records))
    for b, batch in enumerate(batches):
        done = len(records)

        def epoch_done(e: int, total: int, loss: float, b: int = b, done: int = done) -> None:
            bar.update(done, f"batch {b + 1}/{len(batches)}, epoch {e}/{total}, loss {loss:.3g}")

        members = []
        for run in batch:
            s = seeds[run.owner]
            model = build_net(backend, spec, s.ds, s.seed)
            x, y = s.ds.x_train[run.fit], s.ds.y_train[run.fit]
            members.append(Member(model, x, y, run.lam, s.seed))
        start = time.perf_counter()
        models, counts, together = train_members(
            backend,
            members,
            task=spec.task,
            epochs=spec.wd_epochs,
            reg=config.wd_reg,
            batched=batched,
            progress=epoch_done,
        )
        scored = [
            _score(backend, spec, seeds[run.owner].ds, model, run, n_ex)
            for run, model, n_ex in zip(batch, models, counts, strict=True)
        ]
        share = (time.perf_counter() - start) / len(batch)  # training and scoring
        for run, (record, theta) in zip(batch, scored, strict=True):
            files = seeds[run.owner].files
            record["wall_time"] = share
            record["batched"] = together
            files.write_npz(run.name.removesuffix(".json") + ".npz", theta=theta.astype(np.float32))
            files.write_json(run.name, record)
            records[run] = record
        bar.update(len(records), f"batch {b + 1}/{len(batches)} done")
    bar.close()
    out: list[list[dict[str, Any]]] = [[] for _ in seeds]
    for run in runs:
        out[run.owner].append(records[run])
    for s, mine in zip(seeds, out, strict=True):
        rows = [[r[c] for c in _WD_COLUMNS] for r in mine]
        s.files.write_csv("wd.csv", _WD_COLUMNS, rows)
    return out


def _label(seeds: Sequence[SweepSeed], missing: int, batches: int) -> str:
    """The sweep's progress label, e.g. ``"weight decay: 280 runs in 2 batches"``."""
    who = f"seed {seeds[0].seed} " if len(seeds) == 1 else ""
    return f"{who}weight decay: {missing} runs in {batches} batch{'es' if batches != 1 else ''}"


def _batches(
    backend: ModuleType,
    spec: Experiment,
    seeds: Sequence[SweepSeed],
    missing: list[_Run],
    batched: bool,
    budget: int,
) -> list[list[_Run]]:
    """The missing runs in the batches they train in (each alone when not batched or when the
    backend cannot batch)."""
    if not missing:
        return []
    if not (batched and can_batch(backend)):
        return [[run] for run in missing]
    first = seeds[missing[0].owner]
    cap = batch_cap(backend, spec, first.ds, first.seed, first.n_params, budget)
    return [[missing[j] for j in idx] for idx in plan_batches([len(r.fit) for r in missing], cap)]
