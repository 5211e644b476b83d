"""The walk of a seed (or of several seeds batched), in checkpointed segments.

A walk runs in segments of ``checkpoint_every`` predictor steps (a multiple of
``save_every``); after each segment its θs (``walk/thetas-<n>.npz``), its checkpoint
(``walk/checkpoint.npz``) and ``metrics.csv`` are saved, so an interrupted walk continues from
its last checkpoint on the same path the uninterrupted walk takes. A checkpoint is reused only
when the run's index vouches for it and for every θ file up to it, and when it holds a finite θ
of the net's size, a walk state and history columns of one length; otherwise it is named on
stderr and the walk starts again from phase 1's θ. :func:`walk_seeds` runs that
loop for one seed or for several seeds batched by the backend; :func:`walk_segment` is the one
place that calls :func:`manifoldwalk.walk` or the backend's ``walk_batch`` and spells out the
walk's keyword options. With ``sharpness_every`` N the records 0, N, 2N, … (counted from the
walk's start, across resumes) also measure the sharpness
(:func:`~manifoldwalk.experiments._sharpness.along_walk`).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._seed import Seed, Stage, damaged
from manifoldwalk.experiments._sharpness import COLUMNS as SHARPNESS_COLUMNS
from manifoldwalk.experiments._sharpness import along_walk
from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.experiments.definitions import Experiment
from manifoldwalk.experiments.progress import ProgressBar

__all__ = [
    "CHECKPOINT",
    "SeedWalk",
    "checkpoint_problem",
    "thetas_problem",
    "walk_seeds",
    "walk_segment",
    "write_metrics",
]


def _metric_fns(backend: ModuleType, problem: Any, ds: Any, task: str) -> dict[str, Callable]:
    """``test_loss`` and ``test_<metric>`` callables sharing one evaluation per θ.

    The test set is moved into the framework (and onto the device) once, here, not at every
    record.
    """
    memo: dict[str, Any] = {"theta": None, "value": None}
    x_test, y_test = backend.held_out(problem, ds.x_test, ds.y_test)

    def evaluate(theta: Any) -> dict[str, float]:
        if memo["theta"] is not theta:
            memo["theta"] = theta
            memo["value"] = problem.evaluate(theta, x_test, y_test, task=task)
        return memo["value"]

    key = "accuracy" if task == "classification" else "mse"
    return {
        "test_loss": lambda t: evaluate(t)["loss"],
        f"test_{key}": lambda t: evaluate(t)[key],
    }


CHECKPOINT = "walk/checkpoint.npz"
_THETAS = re.compile(r"walk/thetas-([0-9]{8})\.npz")


def write_metrics(
    files: rundir.RunFiles, history: dict[str, np.ndarray], n_train: int, metric: str
) -> None:
    """Write the walk's ``metrics.csv`` from its history (one row a record).

    Args:
        files: The seed's run files (its directory and index).
        history: The walk's history (with ``test_loss`` and ``test_<metric>``; the sharpness
            columns where measured, NaN elsewhere).
        n_train: Training examples (an evaluation's example gradients).
        metric: ``"accuracy"`` or ``"mse"``.
    """
    n = len(history["step"])
    cols = {
        "step": history["step"],
        "n_predictor": history["n_predictor"],
        "n_corrector": history["n_corrector"],
        "n_grad_evals": history["n_grad_evals"],
        "example_grads": history["n_grad_evals"] * n_train,
        "train_loss": history["loss"],
        "deviation": history["deviation"],
        "reg": history["reg"],
        "angle": history["angle"],
        "kkt": history["kkt"],
        "eta_p": history["eta_p"],
        "test_loss": history["test_loss"],
        f"test_{metric}": history[f"test_{metric}"],
        # always written (NaN where not measured), so that every seed's file has one header
        **{c: history.get(c, np.full(n, np.nan)) for c in SHARPNESS_COLUMNS},
    }
    ints = {"step", "n_predictor", "n_corrector", "n_grad_evals", "example_grads"}
    rows = [[int(cols[c][i]) if c in ints else float(cols[c][i]) for c in cols] for i in range(n)]
    files.write_csv("metrics.csv", list(cols), rows)


def _history_columns(metric: str) -> tuple[str, ...]:
    """The history columns ``metrics.csv`` is written from."""
    return (
        "step",
        "n_predictor",
        "n_corrector",
        "n_grad_evals",
        "loss",
        "deviation",
        "reg",
        "angle",
        "kkt",
        "eta_p",
        "test_loss",
        f"test_{metric}",
    )


def _finite_vector(value: Any, n: int, what: str) -> str | None:
    """Why ``value`` is no finite vector of length ``n`` (None when it is)."""
    a = np.asarray(to_numpy(value))
    if a.shape != (n,) or a.dtype.kind != "f":
        return f"{what} has shape {a.shape} and dtype {a.dtype}; the net has {n} parameters"
    if not np.isfinite(a).all():
        return f"{what} holds {int((~np.isfinite(a)).sum())} non-finite values"
    return None


def checkpoint_problem(prev: Any, n_params: int, metric: str) -> str | None:
    """Why a loaded checkpoint cannot be resumed from (None when it can).

    Args:
        prev: The loaded WalkResult.
        n_params: The net's parameter count.
        metric: ``"accuracy"`` or ``"mse"`` (its history records ``test_<metric>``).

    Returns:
        The reason in words: a θ (the result's or its state's) not finite or of another
        length, no state, a non-finite level or loss, history columns missing, not 1-D or of
        different lengths; None for a sound checkpoint.
    """
    for value, what in (
        (prev.theta, "its θ"),
        (getattr(prev.state, "theta", None), "its state's θ"),
    ):
        if value is None:
            return "it holds no walk state to resume from"
        why = _finite_vector(value, n_params, what)
        if why is not None:
            return why
    for name in ("loss", "level"):
        v = np.asarray(to_numpy(getattr(prev.state, name)))
        if v.size != 1 or not np.isfinite(v).all():
            return f"its state's {name} is {v!r}, not a finite number"
    history = prev.history or {}
    missing = [c for c in _history_columns(metric) if c not in history]
    if missing:
        return f"its history lacks the columns {missing}"
    lengths = {k: np.shape(v) for k, v in history.items()}
    if any(len(shape) != 1 for shape in lengths.values()):
        return f"its history columns are not all 1-D: {lengths}"
    if len({shape[0] for shape in lengths.values()}) != 1:
        return f"its history columns have different lengths: {lengths}"
    if not isinstance(prev.n_predictor, int) or prev.n_predictor < 0:
        return f"its predictor step count {prev.n_predictor!r} is no count"
    return None


def thetas_problem(data: bytes, n_params: int) -> str | None:
    """Why the bytes of a ``walk/thetas-<n>.npz`` file are no saved walk segment (None: they are).

    Args:
        data: The file's bytes.
        n_params: The net's parameter count.

    Returns:
        The reason in words (it does not load; ``steps`` is not a 1-D integer array;
        ``theta`` is not ``(len(steps), n_params)`` floats), or None.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            steps, theta = f["steps"], f["theta"]
    except Exception as err:  # noqa: BLE001 (any failure to load means damaged)
        return f"it does not load ({type(err).__name__}: {err})"
    if steps.ndim != 1 or steps.dtype.kind not in "iu":
        return f"its steps have shape {steps.shape} and dtype {steps.dtype}"
    if theta.shape != (len(steps), n_params) or theta.dtype.kind != "f":
        return (
            f"its theta has shape {theta.shape} and dtype {theta.dtype}; expected "
            f"({len(steps)}, {n_params}) floats"
        )
    return None


def _load_checkpoint(files: rundir.RunFiles, n_params: int, metric: str) -> Any:
    """The walk's last checkpoint in the run (a WalkResult), or None: none saved, or one that
    cannot be resumed from (named on stderr: see :func:`checkpoint_problem`), or a θ file up to
    it that is missing, not vouched for by the run's index or damaged."""
    import manifoldwalk as mw

    ckpt = files.directory / CHECKPOINT
    if not ckpt.exists():
        return None
    again = "walking again from phase 1's θ0"
    why = files.problem(CHECKPOINT)
    if why is not None:
        damaged(ckpt, why, again)
        return None
    try:
        prev = mw.WalkResult.load(ckpt)
        why = checkpoint_problem(prev, n_params, metric)
    except Exception as err:  # a truncated zip raises BadZipFile, EOFError, ValueError…
        why = f"{type(err).__name__}: {err}"
    if why is not None:
        damaged(ckpt, why, again)
        return None
    on_disk = {
        p.relative_to(files.directory).as_posix()
        for p in (files.directory / "walk").glob("thetas-*.npz")
    }
    for name in sorted(on_disk | set(files.names)):
        m = _THETAS.fullmatch(name)
        if m is None or int(m[1]) > prev.n_predictor:
            continue  # past the checkpoint: the walk writes it again
        why = files.problem(name)
        if why is None:
            why = thetas_problem(files.read_bytes(name), n_params)
        if why is not None:  # the saved path has a hole: the walk is redone (it is seeded)
            damaged(files.directory / name, why, again)
            return None
    return prev


def _needs_segment(config: RunConfig, spec: Experiment, prev: Any) -> bool:
    """Whether the walk has another checkpointed segment to run after ``prev``."""
    if prev is None:
        return True
    if config.budget == "total":
        return False
    return prev.stop_reason == "max_steps" and prev.n_predictor < spec.max_steps


def _segment_end(config: RunConfig, spec: Experiment, prev: Any) -> int:
    """Where the next checkpointed segment after ``prev`` (None: the first) ends: its last
    predictor step, or with a ``"total"`` budget the walk's whole budget of steps (one
    segment)."""
    if config.budget == "total":
        return spec.max_steps
    every = config.save_every
    seg = max(every, (config.checkpoint_every // every) * every)
    n0 = 0 if prev is None else prev.n_predictor
    return min(spec.max_steps, (n0 // seg + 1) * seg)


@dataclass
class SeedWalk:
    """One seed's walk in progress: its last segment's result and its recording.

    Attributes:
        seed: The seed, after its phase 1.
        prev: The WalkResult of its last segment (None before the first).
        metrics: The test-set metrics recorded with the history.
        bar: Its progress bar.
        progress: The walk's callback moving the bar.
    """

    seed: Seed
    prev: Any
    metrics: dict[str, Callable]
    bar: ProgressBar
    progress: Callable[[dict], None]


def walk_segment(
    config: RunConfig,
    backend: ModuleType,
    spec: Experiment,
    walks: list[SeedWalk],
    end: int,
    *,
    batched: bool,
) -> list[Any]:
    """Run the next segment of each walk, from its last result to ``end``.

    The one place that calls :func:`manifoldwalk.walk` and the backend's ``walk_batch`` and
    that spells out their keyword options.

    Args:
        config: The configuration (scheme, budget, save interval).
        backend: The experiment backend module.
        spec: The experiment (step sizes, threshold, record interval).
        walks: The walks, all of whose next segments end at ``end``.
        end: Where the segment ends (see :func:`_segment_end`).
        batched: Walk them together through ``backend.walk_batch``; otherwise one by one
            through :func:`manifoldwalk.walk`.

    Returns:
        The segments' WalkResults, in the order of ``walks``.
    """
    import manifoldwalk as mw

    total = config.budget == "total"
    # the authors' step sizes belong to the gradient-corrector schemes; the Newton ones keep
    # their own
    gradient = config.scheme in ("authors", "paper")
    step_sizes = {"eta_min": spec.eta_min, "eta_c": spec.eta_c} if gradient else {}
    options = dict(
        scheme=mw.get_scheme(config.scheme, **step_sizes),
        # a total budget counts every step: no predictor-step limit, the walk stops at ``end``
        stop=mw.Stop(max_steps=10**12 if total else end, max_total_steps=end if total else None),
        # the paper's schemes walk by the experiment's absolute τ; the library's by their own
        # relative tolerance
        tolerance=mw.Tolerance(tau=spec.tau) if gradient else None,
    )

    def record(w: SeedWalk) -> mw.Record:
        return mw.Record(
            every=spec.record_every,
            trajectory_every=config.save_every,
            metrics=w.metrics,
            callback=w.progress,
        )

    if batched:
        return backend.walk_batch(
            [w.seed.problem for w in walks],
            [w.seed.theta0 for w in walks],
            record=[record(w) for w in walks],
            resume_from=[w.prev for w in walks],
            driver=mw.Chunked(spec.record_every),
            **options,
        )
    # the compiled driver, K steps per host synchronisation with K the record interval, for a
    # backend that asks for it (``COMPILED_WALKS``); the eager driver otherwise
    compiled = getattr(backend, "COMPILED_WALKS", False)
    driver = mw.Chunked(spec.record_every) if compiled else mw.Eager()
    return [
        mw.walk(
            w.seed.problem,
            w.seed.theta0,
            **options,
            record=record(w),
            resume_from=w.prev,
            driver=driver,
        )
        for w in walks
    ]


def _save_segment(
    files: rundir.RunFiles, result: Any, n0: int, every: int, n_train: int, metric: str
) -> None:
    """Write a finished segment: its θs, the checkpoint (trajectory dropped) and metrics.csv."""
    traj = np.asarray(to_numpy(result.trajectory), dtype=np.float32)
    steps = n0 + every * np.arange(len(traj), dtype=np.int64)
    files.write_npz(f"walk/thetas-{result.n_predictor:08d}.npz", steps=steps, theta=traj)
    result.trajectory = None
    # written, flushed and recorded as every other file of the run
    files.write_with(CHECKPOINT, result.save)
    write_metrics(files, result.history, n_train, metric)


def _walk_bar(
    stage: Stage, config: RunConfig, spec: Experiment, seed: int, prev: Any
) -> ProgressBar:
    """The walk's progress bar, counting from where a resumed walk stood."""
    total = config.budget == "total"
    done = 0
    if prev is not None and not total:
        done = prev.n_predictor
    elif prev is not None:
        steps = prev.history.get("step")
        done = int(steps[-1]) if steps is not None and len(steps) else 0
    return stage.bar(spec.max_steps, f"seed {seed} walk", "steps", initial=done)


def _progress(bar: ProgressBar, spec: Experiment, total: bool) -> Callable[[dict], None]:
    """The walk's callback: move the bar at each record."""

    def progress(row: dict[str, float]) -> None:
        count = row["step"] if total else row["n_predictor"]
        bar.update(int(count), f"R {row['reg']:.4g} acc/mse {row[f'test_{spec.metric}']:.4g}")

    return progress


def _start_walk(config: RunConfig, backend: ModuleType, spec: Experiment, s: Seed) -> SeedWalk:
    """A seed's walk from its last checkpoint (None: from phase 1's θ0), with its bar."""
    prev = _load_checkpoint(s.files, int(s.problem.n_params), spec.metric)
    bar = _walk_bar(s.stage, config, spec, s.seed, prev)
    metrics = _metric_fns(backend, s.problem, s.ds, spec.task)
    if config.sharpness_every:  # a resumed walk continues the schedule of records
        done = 0 if prev is None else len(prev.history["step"])
        metrics.update(along_walk(s.problem, config.sharpness_every, done))
    return SeedWalk(s, prev, metrics, bar, _progress(bar, spec, config.budget == "total"))


def walk_seeds(
    config: RunConfig,
    backend: ModuleType,
    spec: Experiment,
    seeds: list[Seed],
    *,
    batched: bool = False,
) -> list[tuple[Any, float]]:
    """Run (or continue) the walks of ``seeds`` in checkpointed segments.

    Every seed's segments, files and results are those of its walk alone; batched, seeds whose
    next segment ends at the same step run together in one ``backend.walk_batch`` call.

    Args:
        config: The configuration.
        backend: The experiment backend module.
        spec: The experiment.
        seeds: The seeds, after their phase 1.
        batched: Walk them together through the backend's ``walk_batch``.

    Returns:
        For each seed, its final WalkResult and the seconds its walk took here (batched: the
        time of all the walks together).
    """
    walks = [_start_walk(config, backend, spec, s) for s in seeds]
    start = time.perf_counter()
    while True:
        groups: dict[int, list[SeedWalk]] = {}
        for w in walks:
            if _needs_segment(config, spec, w.prev):
                groups.setdefault(_segment_end(config, spec, w.prev), []).append(w)
        if not groups:
            break
        for end, group in groups.items():
            results = walk_segment(config, backend, spec, group, end, batched=batched)
            for w, result in zip(group, results, strict=True):
                n0 = 0 if w.prev is None else w.prev.n_predictor
                n_train = len(w.seed.ds.x_train)
                _save_segment(w.seed.files, result, n0, config.save_every, n_train, spec.metric)
                w.prev = result
    elapsed = time.perf_counter() - start
    for w in walks:  # metrics.csv also when nothing was left to walk
        write_metrics(w.seed.files, w.prev.history, len(w.seed.ds.x_train), spec.metric)
        w.bar.close()
    return [(w.prev, elapsed) for w in walks]
