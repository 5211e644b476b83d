"""Run one experiment: for every seed, phase 1 → the walk → the weight-decay sweep.

:func:`run_seed` does one seed and writes its run directory (layout in
:mod:`manifoldwalk.experiments.rundir`); :func:`run_experiment` does every seed, skipping the
finished ones and running the rest in parallel processes. Every stage saves what it produced
before the next starts, so an interrupted seed resumes where it stopped: phase 1 is loaded, the
walk continues from its last checkpoint (every ``checkpoint_every`` predictor steps, on the same
path the uninterrupted walk takes) and finished weight-decay runs are kept.

The frameworks are reached only through an experiment backend module
(``manifoldwalk_torch.experiment`` and its JAX / Keras twins), imported by name at run time.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments.backend import BACKENDS, load_backend
from manifoldwalk.experiments.definitions import WD_LAMBDAS, Experiment, get_experiment
from manifoldwalk.experiments.progress import ProgressBar

__all__ = [
    "BACKENDS",
    "SCHEMES",
    "WD_REGS",
    "RunConfig",
    "load_backend",
    "run_experiment",
    "run_seed",
    "run_seeds_batched",
]

SCHEMES = ("authors", "paper", "default", "compensated")
"""Walk schemes: the authors' code (Table I), the paper as written, the library's default,
and the default with drift compensation (the fewest gradient evaluations, docs/schemes.md)."""

WD_REGS = ("l2", "l2-weights")
"""Weight-decay regularisers: all parameters (as the walk) or kernels only (the authors' Keras)."""

BUDGETS = ("predictor", "total")
"""How the step budget counts: predictor steps (the authors' code) or all steps (the text)."""

_METRIC_COLUMNS = (
    "step",
    "n_predictor",
    "n_corrector",
    "n_grad_evals",
    "example_grads",
    "train_loss",
    "deviation",
    "reg",
    "angle",
    "kkt",
    "eta_p",
    "test_loss",
)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines an experiment's runs (written to each ``config.json``).

    Attributes:
        experiment: The experiment's name (see :data:`~manifoldwalk.experiments.EXPERIMENTS`).
        out: The output root; seed ``k`` writes ``out/<experiment>/seed-<k>``.
        seeds: The seeds to run.
        backend: ``"torch"``, ``"jax"`` or ``"tensorflow"`` (feed-forward nets only).
        device: ``"cpu"`` or ``"cuda"``.
        scheme: The walk's scheme (default ``"authors"``, which produced Table I).
        max_steps: The walk's step budget (None: the experiment's).
        budget: ``"predictor"`` (count predictor steps, as the authors' code) or ``"total"``.
        phase1_epochs: Phase-1 epochs (None: the experiment's, 100).
        wd_epochs: Epochs of each weight-decay run (None: the experiment's).
        wd_lambdas: The λ sweep (None: {0} ∪ {1e-6 … 1e6}).
        wd_reg: R of the weight-decay objective: ``"l2"`` (all parameters, as the walk) or
            ``"l2-weights"`` (kernels only, the authors' Keras baseline).
        val_fraction: The share of the training set held out to choose λ honestly.
        record_every: Predictor steps between metric records (None: the experiment's).
        save_every: Predictor steps between saved θ (float32).
        checkpoint_every: Predictor steps between walk checkpoints (a multiple of save_every).
        dtype: ``"float32"`` or ``"float64"`` (None: the experiment's).
        data_dir: Directory of the image datasets' files (None: their defaults).
        n_train: Training examples (None: the paper's).
        eta_min: The predictor's step floor (None: the experiment's).
        eta_c: The authors' corrector step (None: the experiment's).
        tau: The deviation threshold (None: the experiment's).
    """

    experiment: str
    out: str = "runs"
    seeds: tuple[int, ...] = (0,)
    backend: str = "torch"
    device: str = "cpu"
    scheme: str = "authors"
    max_steps: int | None = None
    budget: str = "predictor"
    phase1_epochs: int | None = None
    wd_epochs: int | None = None
    wd_lambdas: tuple[float, ...] | None = None
    wd_reg: str = "l2"
    val_fraction: float = 0.2
    record_every: int | None = None
    save_every: int = 50
    checkpoint_every: int = 1000
    dtype: str | None = None
    data_dir: str | None = None
    n_train: int | None = None
    eta_min: float | None = None
    eta_c: float | None = None
    tau: float | None = None

    def __post_init__(self) -> None:
        """Check the options; raises ValueError naming the valid choices."""
        get_experiment(self.experiment)
        for name, value, choices in (
            ("backend", self.backend, BACKENDS),
            ("device", self.device, ("cpu", "cuda")),
            ("scheme", self.scheme, SCHEMES),
            ("budget", self.budget, BUDGETS),
            ("wd_reg", self.wd_reg, WD_REGS),
            ("dtype", self.dtype, (None, "float32", "float64")),
        ):
            if value not in choices:
                valid = ", ".join(str(c) for c in choices if c is not None)
                raise ValueError(f"unknown {name} {value!r}; choose one of: {valid}")
        for name in ("max_steps", "phase1_epochs", "wd_epochs", "record_every", "n_train"):
            value = getattr(self, name)
            least = 0 if "epochs" in name else 1
            if value is not None and value < least:
                raise ValueError(f"{_named(name)} must be at least {least}, got {value}")
        for name in ("save_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_named(name)} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if not self.seeds:
            raise ValueError("need at least one seed")
        if min(self.seeds) < 0:
            raise ValueError(f"seeds must be >= 0, got {min(self.seeds)}; pass --first-seed >= 0")
        if self.wd_lambdas is not None:
            # checked here, before anything runs (a bad λ used to fail only when reached)
            if len(self.wd_lambdas) == 0:
                raise ValueError(
                    "wd_lambdas is empty; pass at least one λ (e.g. --wd-lambdas 0,1e-3) or "
                    "leave it out for the paper's grid"
                )
            bad = [v for v in self.wd_lambdas if not (math.isfinite(v) and v >= 0)]
            if bad:
                raise ValueError(
                    f"weight-decay λ must be finite and >= 0, got {', '.join(map(str, bad))}"
                )
            if len(set(self.wd_lambdas)) != len(self.wd_lambdas):
                raise ValueError(f"wd_lambdas lists a λ twice: {list(self.wd_lambdas)}")

    @property
    def spec(self) -> Experiment:
        """The experiment with this configuration's overrides applied."""
        exp = get_experiment(self.experiment)
        overrides = {
            "max_steps": self.max_steps,
            "phase1_epochs": self.phase1_epochs,
            "wd_epochs": self.wd_epochs,
            "record_every": self.record_every,
            "dtype": self.dtype,
            "eta_min": self.eta_min,
            "eta_c": self.eta_c,
            "tau": self.tau,
        }
        return replace(exp, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def lambdas(self) -> tuple[float, ...]:
        """The weight-decay sweep actually run."""
        return tuple(self.wd_lambdas) if self.wd_lambdas is not None else WD_LAMBDAS

    def for_seed(self, seed: int) -> dict[str, Any]:
        """The JSON written to one seed's ``config.json`` (options, resolved experiment, seed).

        Args:
            seed: The seed.

        Returns:
            A JSON-serialisable dict.
        """
        options = asdict(self)
        options.pop("seeds")
        options.pop("out")
        return {
            "seed": seed,
            "options": options,
            "experiment": self.spec.to_dict(),
            "wd_lambdas": list(self.lambdas),
        }


def _load_data(config: RunConfig, spec: Experiment, seed: int) -> Any:
    from manifoldwalk.datasets import load_dataset

    packaged = spec.dataset in ("iris", "auto-mpg")
    return load_dataset(
        spec.dataset,
        seed=seed,
        data_dir=None if packaged else config.data_dir,
        n_train=config.n_train,
        dtype=np.dtype(spec.dtype),
    )


def _val_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, validation) indices carving ``fraction`` of ``n`` training examples."""
    order = np.random.default_rng([seed, 20240607]).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class _Stage:
    """Progress reporting for one stage of one seed (a bar, or nothing)."""

    def __init__(self, show: bool, plain: bool) -> None:
        self.show = show
        self.interval = 15.0 if plain else None

    def bar(self, total: int, label: str, unit: str, initial: int = 0) -> ProgressBar:
        return ProgressBar(
            total, label, unit=unit, enabled=self.show, interval=self.interval, initial=initial
        )


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


def _damaged(path: Path, err: BaseException, action: str) -> None:
    """Say on stderr that a saved file does not load and what is done instead."""
    print(
        f"manifoldwalk: {path} is damaged ({type(err).__name__}: {err}); {action}", file=sys.stderr
    )


def _phase1(backend, spec, ds, seed, d: Path, stage: _Stage) -> tuple[Any, Any, dict[str, Any]]:
    """Train (or reload) phase 1; returns the problem, θ0 and phase 1's record."""
    shape, n_out = ds.x_train.shape[1:], ds.n_classes or ds.y_train.shape[1]
    model = backend.build_net(
        spec.net, shape, n_out, hidden=spec.hidden, seed=seed, dtype=spec.dtype
    )
    path = d / "phase1.npz"
    saved = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                saved = {k: f[k] for k in f.files}
            if "theta" not in saved:
                raise ValueError("no theta array in it")
        except Exception as err:  # a truncated zip raises BadZipFile, EOFError, ValueError…
            _damaged(path, err, "training phase 1 again")
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


def _write_metrics(d: Path, history: dict[str, np.ndarray], n_train: int, metric: str) -> None:
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
    }
    ints = {"step", "n_predictor", "n_corrector", "n_grad_evals", "example_grads"}
    rows = [[int(cols[c][i]) if c in ints else float(cols[c][i]) for c in cols] for i in range(n)]
    rundir.atomic_write_csv(d / "metrics.csv", list(cols), rows)


def _load_checkpoint(d: Path) -> Any:
    """The walk's last checkpoint in run directory ``d`` (a WalkResult), or None."""
    import manifoldwalk as mw

    ckpt = d / "walk" / "checkpoint.npz"
    if not ckpt.exists():
        return None
    try:
        prev = mw.WalkResult.load(ckpt)
    except Exception as err:  # a truncated zip raises BadZipFile, EOFError, ValueError…
        _damaged(ckpt, err, "walking again from phase 1's θ0")
        return None
    for path in sorted((d / "walk").glob("thetas-*.npz")):
        err = rundir.npz_error(path)
        if err is not None:  # the saved path has a hole: the walk is redone (it is seeded)
            _damaged(path, err, "walking again from phase 1's θ0")
            return None
    return prev


def _needs_segment(config: RunConfig, spec: Experiment, prev: Any) -> bool:
    """Whether the walk has another checkpointed segment to run after ``prev``."""
    if prev is None:
        return True
    if config.budget == "total":
        return False
    return prev.stop_reason == "max_steps" and prev.n_predictor < spec.max_steps


def _segment_options(config: RunConfig, spec: Experiment, prev: Any) -> dict[str, Any]:
    """The walk options of the next checkpointed segment after ``prev`` (None: the first)."""
    every = config.save_every
    seg = max(every, (config.checkpoint_every // every) * every)
    total = config.budget == "total"
    n0 = 0 if prev is None else prev.n_predictor
    target = spec.max_steps if total else min(spec.max_steps, (n0 // seg + 1) * seg)
    # the authors' step sizes belong to the gradient-corrector schemes; the Newton ones keep
    # their own
    gradient = config.scheme in ("authors", "paper")
    step_sizes = {"eta_min": spec.eta_min, "eta_c": spec.eta_c} if gradient else {}
    return dict(
        scheme=config.scheme,
        max_steps=10**12 if total else target,
        max_total_steps=spec.max_steps if total else None,
        **step_sizes,
        tau=spec.tau,
        record_every=spec.record_every,
        trajectory_every=every,
    )


def _driver_options(backend: ModuleType, spec: Experiment) -> dict[str, Any]:
    """The compiled driver, K steps per host synchronisation with K the record interval, for a
    backend that asks for it (``COMPILED_WALKS``); the eager driver otherwise."""
    return (
        {"steps_per_sync": spec.record_every} if getattr(backend, "COMPILED_WALKS", False) else {}
    )


def _save_segment(d: Path, result: Any, n0: int, every: int, n_train: int, metric: str) -> None:
    """Write a finished segment: its θs, the checkpoint (trajectory dropped) and metrics.csv."""
    traj = np.asarray(to_numpy(result.trajectory), dtype=np.float32)
    steps = n0 + every * np.arange(len(traj), dtype=np.int64)
    rundir.atomic_write_npz(
        d / "walk" / f"thetas-{result.n_predictor:08d}.npz", steps=steps, theta=traj
    )
    result.trajectory = None
    ckpt = d / "walk" / "checkpoint.npz"
    tmp = ckpt.with_name(".checkpoint.tmp.npz")
    result.save(tmp)
    os.replace(tmp, ckpt)
    _write_metrics(d, result.history, n_train, metric)


def _walk_bar(stage: _Stage, config: RunConfig, spec: Experiment, seed: int, prev: Any):
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


def _walk(config, backend, spec, ds, problem, theta0, seed, d: Path, stage: _Stage):
    """Run (or continue) the walk in checkpointed segments; returns the final WalkResult."""
    import manifoldwalk as mw

    prev = _load_checkpoint(d)
    metrics = _metric_fns(backend, problem, ds, spec.task)
    bar = _walk_bar(stage, config, spec, seed, prev)
    progress = _progress(bar, spec, config.budget == "total")
    start = time.perf_counter()
    while _needs_segment(config, spec, prev):
        n0 = 0 if prev is None else prev.n_predictor
        result = mw.walk(
            problem,
            theta0,
            **_segment_options(config, spec, prev),
            **_driver_options(backend, spec),
            metrics=metrics,
            callback=progress,
            resume_from=prev,
        )
        _save_segment(d, result, n0, config.save_every, len(ds.x_train), spec.metric)
        prev = result
    _write_metrics(d, prev.history, len(ds.x_train), spec.metric)  # also when nothing was left
    bar.close()
    return prev, time.perf_counter() - start


def _walk_batch(config, backend, spec, seeds: list[_Seed], stage: _Stage) -> list[Any]:
    """The walks of several seeds in checkpointed segments, batched by the backend.

    Every seed's segments, files and results are those of :func:`_walk`; seeds whose next
    segment has the same options run together in one ``backend.walk_batch`` call.
    """
    prevs = [_load_checkpoint(s.d) for s in seeds]
    metrics = [_metric_fns(backend, s.problem, s.ds, spec.task) for s in seeds]
    bars = [_walk_bar(stage, config, spec, s.seed, p) for s, p in zip(seeds, prevs, strict=True)]
    progress = [_progress(bar, spec, config.budget == "total") for bar in bars]
    start = time.perf_counter()
    while True:
        groups: dict[str, list[int]] = {}
        for i in range(len(seeds)):
            if _needs_segment(config, spec, prevs[i]):
                key = json.dumps(_segment_options(config, spec, prevs[i]), sort_keys=True)
                groups.setdefault(key, []).append(i)
        if not groups:
            break
        for key, idx in groups.items():
            results = backend.walk_batch(
                [seeds[i].problem for i in idx],
                [seeds[i].theta0 for i in idx],
                metrics=[metrics[i] for i in idx],
                callback=[progress[i] for i in idx],
                resume_from=[prevs[i] for i in idx],
                steps_per_sync=spec.record_every,
                **json.loads(key),
            )
            for i, result in zip(idx, results, strict=True):
                n0 = 0 if prevs[i] is None else prevs[i].n_predictor
                s = seeds[i]
                _save_segment(s.d, result, n0, config.save_every, len(s.ds.x_train), spec.metric)
                prevs[i] = result
    elapsed = time.perf_counter() - start
    for s, prev, bar in zip(seeds, prevs, bars, strict=True):
        _write_metrics(s.d, prev.history, len(s.ds.x_train), spec.metric)
        bar.close()
    return [(prev, elapsed) for prev in prevs]


def _wd_run(config, backend, spec, ds, seed, lam, split, fit, val) -> tuple[dict, np.ndarray]:
    """One weight-decay training run; returns its record and final θ."""
    shape, n_out = ds.x_train.shape[1:], ds.n_classes or ds.y_train.shape[1]
    model = backend.build_net(
        spec.net, shape, n_out, hidden=spec.hidden, seed=seed, dtype=spec.dtype
    )
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
        "val_loss": float("nan"),
        "val_metric": float("nan"),
        "wall_time": time.perf_counter() - start,
    }
    if split == "val":
        held = problem.evaluate(theta, ds.x_train[val], ds.y_train[val], task=spec.task)
        record["val_loss"], record["val_metric"] = held["loss"], held[spec.metric]
    return record, to_numpy(theta)


def _weight_decay(config, backend, spec, ds, seed, d: Path, stage: _Stage) -> list[dict]:
    """Every λ on the full training set and on the fit split (λ chosen on validation)."""
    n = len(ds.x_train)
    fit_all = np.arange(n)
    fit, val = _val_split(n, config.val_fraction, seed)
    jobs = [(i, lam, s) for i, lam in enumerate(config.lambdas) for s in ("full", "val")]
    bar = stage.bar(len(jobs), f"seed {seed} weight decay", "runs")
    records = []
    for k, (i, lam, split) in enumerate(jobs):
        path = d / "wd" / f"{split}-{i:02d}.json"
        record = None
        if path.exists():
            try:
                record = rundir.read_json(path)
            except (OSError, ValueError):
                record = None
        if record is not None and (record.get("lam") != float(lam) or record.get("split") != split):
            # the files are named by position in the λ list: never pair a λ with another's run
            raise ValueError(
                f"{path} holds the weight-decay run of λ={record.get('lam')!r} "
                f"({record.get('split')}), not of λ={float(lam)!r} ({split}); the run directory "
                "was made with another λ list: choose another --out or delete that directory"
            )
        if record is not None:
            err = rundir.npz_error(path.with_suffix(".npz"))
            if err is not None:
                _damaged(path.with_suffix(".npz"), err, f"training λ={lam:g} ({split}) again")
                record = None
        if record is None:
            idx = fit_all if split == "full" else fit
            record, theta = _wd_run(config, backend, spec, ds, seed, lam, split, idx, val)
            rundir.atomic_write_npz(path.with_suffix(".npz"), theta=theta.astype(np.float32))
            rundir.atomic_write_json(path, record)
        records.append(record)
        bar.update(k + 1, f"λ={lam:g} {split}")
    bar.close()
    cols = [
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
    rundir.atomic_write_csv(d / "wd.csv", cols, [[r[c] for c in cols] for r in records])
    return records


#: The command-line flag of each option, for the message refusing a run directory.
_FLAGS = {
    "max_steps": "--steps",
    "phase1_epochs": "--epochs",
    "n_train": "--n-train",
}


def _named(option: str) -> str:
    """An option's name with its command-line flag, e.g. ``max_steps (--steps)``."""
    return f"{option} ({_FLAGS.get(option, '--' + option.replace('_', '-'))})"


def _check_config(d: Path, wanted: dict[str, Any]) -> None:
    """Refuse a run directory that holds work made with other options than ``wanted``.

    Finished and unfinished directories alike: a finished seed of other options must not be
    mixed into this run's table. A directory whose only file is ``config.json`` holds no work
    and is no conflict.

    Raises:
        ValueError: Naming the differing options and what to do.
    """
    wanted = json.loads(json.dumps(wanted))  # tuples → lists, as read back
    path = d / "config.json"
    if not path.exists():
        return
    work = [p for p in d.rglob("*") if p.is_file() and p.name != "config.json"]
    if not any(not p.name.endswith(".tmp") for p in work):
        return
    try:
        have = rundir.read_json(path)
    except (OSError, ValueError):
        return  # a damaged config.json: the run is unfinished (DONE hashes it) and rewritten
    if have == wanted:
        return
    theirs = have.get("options", {}) if isinstance(have, dict) else {}
    diff = [
        f"{_named(k)}: {theirs.get(k)!r} there, {wanted['options'].get(k)!r} asked"
        for k in sorted(set(theirs) | set(wanted["options"]))
        if theirs.get(k) != wanted["options"].get(k)
    ]
    raise ValueError(
        f"{d} holds a run made with other options ({'; '.join(diff) or 'experiment settings'}); "
        "choose another --out or delete that directory"
    )


def _write_config(d: Path, wanted: dict[str, Any]) -> None:
    """Write ``config.json`` (once the data loaded: a failed start leaves no claim)."""
    rundir.atomic_write_json(d / "config.json", wanted)


def run_seed(
    config: RunConfig,
    seed: int,
    *,
    show_progress: bool = True,
    plain: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run one seed (or finish an interrupted one) and return its summary.

    A finished, intact run directory (see :func:`~manifoldwalk.experiments.rundir.is_finished`)
    is not run again: its summary is read back.

    Args:
        config: The configuration.
        seed: The seed (of the net's initialisation, the shuffling, the data subset or split).
        show_progress: Draw progress bars on stderr.
        plain: Progress as occasional plain lines (for parallel workers and logs).
        threads: CPU threads for the framework (None: one, the fastest for these small nets on
            a shared CPU; parallelism comes from running seeds side by side with ``jobs``).

    Returns:
        The summary written to ``summary.json``.

    Raises:
        ValueError: The run directory holds a run (finished or not) with other options, or a
            weight-decay file of another λ.
        ImportError: The backend's framework is missing.
        manifoldwalk.datasets.DatasetError: The dataset's files are missing.
    """
    spec = config.spec
    d = rundir.seed_dir(config.out, spec.name, seed)
    _check_config(d, config.for_seed(seed))
    if rundir.is_finished(d):
        return rundir.read_json(d / "summary.json")
    s = _start_seed(config, seed, d, _Stage(show_progress, plain), threads)
    result, walk_time = _walk(config, s.backend, spec, s.ds, s.problem, s.theta0, seed, d, s.stage)
    return _finish_seed(config, s, result, walk_time)


@dataclass
class _Seed:
    """One seed between its phase 1 and its walk (what the walk and the rest need)."""

    seed: int
    d: Path
    backend: ModuleType
    stage: _Stage
    ds: Any
    problem: Any
    theta0: Any
    p1: dict[str, Any]


def _start_seed(config: RunConfig, seed: int, d: Path, stage: _Stage, threads) -> _Seed:
    """Prepare seed ``seed``'s run directory, load its data and run (or reload) phase 1 (the
    caller has checked the directory's config)."""
    spec = config.spec
    backend = load_backend(config.backend)
    backend.configure(device=config.device, threads=threads or 1)
    ds = _load_data(config, spec, seed)
    d.mkdir(parents=True, exist_ok=True)
    (d / rundir.DONE).unlink(missing_ok=True)
    _write_config(d, config.for_seed(seed))
    problem, theta0, p1 = _phase1(backend, spec, ds, seed, d, stage)
    return _Seed(seed, d, backend, stage, ds, problem, theta0, p1)


def _finish_seed(config: RunConfig, s: _Seed, result: Any, walk_time: float) -> dict[str, Any]:
    """After the walk: the final θ, the weight-decay sweep and the summary (then DONE)."""
    spec, d, ds, p1, seed = config.spec, s.d, s.ds, s.p1, s.seed
    rundir.atomic_write_npz(d / "final.npz", theta=to_numpy(result.theta))
    wd = _weight_decay(config, s.backend, spec, ds, seed, d, s.stage)
    h = result.history
    n_train = len(ds.x_train)
    summary = {
        "experiment": spec.name,
        "seed": seed,
        "metric": spec.metric,
        "n_train": n_train,
        "n_test": len(ds.x_test),
        "n_params": int(s.problem.n_params),
        "phase1": {k: v for k, v in p1.items() if k != "wall_time"},
        "walk": {
            "stop_reason": result.stop_reason,
            "n_predictor": result.n_predictor,
            "n_corrector": result.n_corrector,
            "n_grad_evals": result.n_grad_evals,
            "example_grads": result.n_grad_evals * n_train,
            "level": result.level,
            "train_loss": result.loss,
            "max_deviation": float(result.max_deviation),
            "reg": result.reg,
            "angle": result.angle,
            "test_loss": float(h["test_loss"][-1]),
            "test_metric": float(h[f"test_{spec.metric}"][-1]),
        },
        "wd": [{k: v for k, v in r.items() if k != "wall_time"} for r in wd],
        "timing": {
            "phase1_s": p1.get("wall_time"),
            "walk_s_last_session": walk_time,
            "wd_s": sum(r.get("wall_time", 0.0) for r in wd),
        },
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    rundir.atomic_write_json(d / "summary.json", summary)
    rundir.mark_done(d)
    return summary


def run_seeds_batched(
    config: RunConfig,
    seeds: list[int],
    *,
    show_progress: bool = True,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Run several seeds with their walks batched on one device (``--batch-seeds``).

    Phase 1 and the weight-decay sweep run per seed, as in :func:`run_seed`; the walks of all
    seeds run together through the backend's ``walk_batch`` (JAX: one ``vmap``-ed compiled
    loop; PyTorch: each step ``vmap``-ed over the seeds). Every seed's run directory ends as
    :func:`run_seed` leaves it (same files, same summary up to floating-point tolerance and
    timings).

    Args:
        config: The configuration.
        seeds: The seeds (finished ones are read back, not run).
        show_progress: Draw progress bars on stderr.
        threads: CPU threads for the framework (None: one).

    Returns:
        The seeds' summaries, in the order of ``seeds``.

    Raises:
        ValueError: The backend cannot batch walks (``jax`` and ``torch`` can), or as :func:`run_seed`.
    """
    spec = config.spec
    backend = load_backend(config.backend)
    if not callable(getattr(backend, "walk_batch", None)):
        raise ValueError(
            f"--batch-seeds needs --backend jax or torch; the {config.backend} backend walks "
            "one seed at a time"
        )
    summaries: dict[int, dict[str, Any]] = {}
    started = []
    for seed in seeds:  # every seed's directory is checked before any work starts
        _check_config(rundir.seed_dir(config.out, spec.name, seed), config.for_seed(seed))
    for seed in seeds:
        d = rundir.seed_dir(config.out, spec.name, seed)
        if rundir.is_finished(d):
            summaries[seed] = rundir.read_json(d / "summary.json")
        else:
            started.append(_start_seed(config, seed, d, _Stage(show_progress, False), threads))
    if started:
        walked = _walk_batch(config, backend, spec, started, started[0].stage)
        for s, (result, walk_time) in zip(started, walked, strict=True):
            summaries[s.seed] = _finish_seed(config, s, result, walk_time)
    return [summaries[seed] for seed in seeds]


def _worker(config: RunConfig, seed: int, threads: int | None) -> dict[str, Any]:
    return run_seed(config, seed, show_progress=True, plain=True, threads=threads)


def _ignore_sigint() -> None:
    """Worker initialiser: Ctrl-C reaches the whole process group, but stopping the workers is
    the parent's job (a worker that caught it would carry on with the next seed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(pool: ProcessPoolExecutor, futures: list[Any]) -> None:
    """Stop a pool of seed workers now: cancel the queued seeds, terminate the running ones.

    What the workers saved is kept: every file is written atomically, so a terminated seed
    resumes from its last checkpoint on the next run. A second Ctrl-C during the stop is ignored.
    """
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for fut in futures:
            fut.cancel()
        # no public API reaches the worker processes; without terminating them shutdown waits
        # for every running seed to finish
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for proc in processes:
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
    finally:
        if main:
            signal.signal(signal.SIGINT, old)


def run_experiment(
    config: RunConfig,
    *,
    jobs: int = 1,
    show_progress: bool = True,
    threads: int | None = None,
    batch_seeds: bool = False,
) -> list[dict[str, Any]]:
    """Run every seed of ``config`` (finished seeds are skipped), ``jobs`` at a time.

    Args:
        config: The configuration.
        jobs: Seeds run in parallel worker processes (1: in this process).
        show_progress: Draw progress on stderr.
        threads: CPU threads per seed for the framework (None: one).
        batch_seeds: Walk all unfinished seeds together on one device (see
            :func:`run_seeds_batched`; needs the ``jax`` backend and ``jobs == 1``).

    Returns:
        The seeds' summaries, in seed order.

    Raises:
        ValueError: For ``jobs < 1``, ``batch_seeds`` with ``jobs > 1`` or a backend that
            cannot batch, a seed directory (finished or not) of other options (checked for
            every seed before any work starts), or a problem in a seed (re-raised from the
            worker).
        KeyboardInterrupt: On Ctrl-C, after stopping the worker processes (what they saved is
            kept; running again resumes).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if batch_seeds:
        if jobs != 1:
            raise ValueError("--batch-seeds walks every seed in one process; leave --jobs at 1")
        return run_seeds_batched(
            config, list(config.seeds), show_progress=show_progress, threads=threads
        )
    spec = config.spec
    for seed in config.seeds:  # refuse before any work starts, finished seeds included
        _check_config(rundir.seed_dir(config.out, spec.name, seed), config.for_seed(seed))
    todo = [
        s for s in config.seeds if not rundir.is_finished(rundir.seed_dir(config.out, spec.name, s))
    ]
    done = len(config.seeds) - len(todo)
    bar = ProgressBar(
        len(config.seeds), f"{spec.name} seeds", unit="seeds", enabled=show_progress, initial=done
    )
    bar.update(done, f"{done} already finished" if done else "")
    if jobs == 1 or len(todo) <= 1:
        for seed in todo:
            run_seed(config, seed, show_progress=show_progress, threads=threads)
            done += 1
            bar.update(done)
    else:
        per_job = threads or 1
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_ignore_sigint)
        futures: list[Any] = []
        interrupted = False
        try:
            futures = [pool.submit(_worker, config, s, per_job) for s in todo]
            for fut in as_completed(futures):
                fut.result()
                done += 1
                bar.update(done)
        except KeyboardInterrupt:
            interrupted = True
            _stop_pool(pool, futures)
            raise
        finally:
            if not interrupted:  # a seed that failed lets the others finish (as before)
                pool.shutdown(wait=True)
    bar.close()
    return [
        rundir.read_json(rundir.seed_dir(config.out, spec.name, s) / "summary.json")
        for s in config.seeds
    ]
