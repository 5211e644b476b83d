"""Level-set ensembles: the points that random walks on one level set reach, and what they are.

``manifoldwalk ensemble EXPERIMENT --walks M`` trains one net of an experiment (phase 1, seed
``--seed`` of the initialisation, on the experiment's seed-0 training set) and walks its level
set {L = L(θ0)} with M seeded random walks (:class:`~manifoldwalk.RandomWalk`, constant steps
of ``eta``, ``steps`` predictor steps each). At every point reached it measures the training
loss, R = ‖θ‖², the test loss and metric, the distance from θ0 and the sharpness: the largest
eigenvalue of the Hessian of L, of the full Hessian and of its restriction to the level set's
tangent space (:func:`manifoldwalk.curvature.top_eigenvalues`; Hessian-vector products from the
problem's ``hvp`` where it has one, else central differences of the gradient). The same numbers
are measured at θ0, at the end of the −∇R walk from θ0 (the paper's walk, ``reg_steps``
predictor steps at most) and at nets trained with weight decay (Adam on L + λ·R from the same
initialisation, for each λ of ``wd_lambdas``; their training loss is not the level's).

The run directory ``OUT/<experiment>/ensemble/`` holds (besides ``config.json``,
``index.json``, ``summary.json`` and ``DONE``)::

    nets/start.npz          θ0 after phase 1: theta (the net's dtype), train_loss, seconds
    points/start.npz        θ0 again (theta); .json: its numbers
    points/random-<m>.npz   random walk m's end point (theta); .json: its numbers
    points/reg.npz          the −∇R walk's end point; .json: its numbers
    points/wd-<i>.npz       the net trained with the i-th λ of wd_lambdas; .json: its numbers

``summary.json`` lists every point's numbers and, per quantity, the random walks' mean,
standard deviation, minimum and maximum, with the share of them below each reference point.
A killed study resumes where it stopped (finished points are reused when the index vouches for
them), and a directory made with other options is refused before any work, naming them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._lock import exclusive
from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.studies import _bench
from manifoldwalk.studies._bench import Bench

__all__ = ["QUANTITIES", "EnsembleConfig", "measure_point", "run_ensemble"]

QUANTITIES = (
    "train_loss",
    "reg",
    "test_loss",
    "test_metric",
    "distance",
    "sharpness",
    "sharpness_tangent",
)
"""The numbers measured at every point (the sharpness ones only with ``sharpness=True``)."""

SHARPNESS_TOL = 1e-3
"""The Lanczos tolerance of the sharpness (relative): enough to compare points, and within
reach of finite-difference Hessian-vector products in float32."""

_POINT_KEYS = ("kind", "label", "train_loss", "reg", "test_loss", "test_metric", "distance")


@dataclass(frozen=True)
class EnsembleConfig:
    """The options of a level-set ensemble study (written to its ``config.json``).

    Attributes:
        experiment: The experiment whose net and data are used (``manifoldwalk list``).
        out: The output root; the study writes ``out/<experiment>/ensemble``.
        walks: Random walks (seeds 0 … walks−1 of their directions).
        steps: Predictor steps of each random walk.
        eta: The random walks' constant predictor step (a length in parameter space).
        seed: The seed of the net's initialisation and shuffling (phase 1).
        reg_steps: The −∇R walk's budget of predictor steps (None: the experiment's).
        wd_lambdas: The weight-decay λ of the baseline nets (empty: none).
        wd_epochs: Epochs of each weight-decay net (None: the experiment's).
        sharpness: Measure the sharpness at every point (Lanczos; tens of Hessian-vector
            products a point).
        scheme: The walks' scheme (``"default"`` or ``"compensated"``; the random walks take
            its corrector with constant predictor steps).
        phase1_epochs: Phase-1 epochs (None: the experiment's).
        dtype: ``"float32"`` or ``"float64"`` (None: the experiment's).
        n_train: Training examples (None: the experiment's).
        data_dir: Directory of the image datasets' files (ignored for Iris and Auto-MPG).
        backend: ``"torch"``, ``"jax"`` or ``"tensorflow"``.
        device: ``"cpu"`` or ``"cuda"``.

    Raises:
        ValueError: An unknown experiment, scheme, backend, device or dtype, a count below its
            least value, a step that is not a finite positive number, or a λ that is negative,
            not finite or repeated.
    """

    experiment: str
    out: str = "runs"
    walks: int = 10
    steps: int = 1000
    eta: float = 0.5
    seed: int = 0
    reg_steps: int | None = None
    wd_lambdas: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
    wd_epochs: int | None = None
    sharpness: bool = True
    scheme: str = "default"
    phase1_epochs: int | None = None
    dtype: str | None = None
    n_train: int | None = None
    data_dir: str | None = None
    backend: str = "torch"
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Check the options (see the class's Raises)."""
        object.__setattr__(self, "wd_lambdas", tuple(float(v) for v in self.wd_lambdas))
        self.run_config()
        _bench.check_count("walks", self.walks, 1)
        _bench.check_count("steps", self.steps, 1)
        _bench.check_count("seed", self.seed, 0)
        if self.reg_steps is not None:
            _bench.check_count("reg_steps", self.reg_steps, 1)
        if self.wd_epochs is not None:
            _bench.check_count("wd_epochs", self.wd_epochs, 1)
        _bench.check_positive("eta", self.eta)
        bad = [v for v in self.wd_lambdas if not (math.isfinite(v) and v >= 0)]
        if bad:
            raise ValueError(f"wd_lambdas (--wd-lambdas) must be finite and >= 0, got {bad}")
        if len(set(self.wd_lambdas)) != len(self.wd_lambdas):
            raise ValueError(f"wd_lambdas (--wd-lambdas) lists a λ twice: {list(self.wd_lambdas)}")

    def run_config(self) -> RunConfig:
        """The experiment's run options the study resolves its settings and data through.

        Returns:
            A :class:`~manifoldwalk.experiments.RunConfig`.
        """
        return _bench.run_options(self, wd_epochs=self.wd_epochs)

    @property
    def directory(self) -> Path:
        """The study's run directory, ``out/<experiment>/ensemble``."""
        return _bench.study_dir(self.out, self.run_config().spec.name, "ensemble")

    def record(self) -> dict[str, Any]:
        """The study's ``config.json``: the marker ``"study": "ensemble"`` and its options.

        Returns:
            A JSON-serialisable dict (``reg_steps`` and ``wd_epochs`` resolved).
        """
        run = self.run_config()
        spec = run.spec
        options = {
            "walks": self.walks,
            "steps": self.steps,
            "eta": self.eta,
            "seed": self.seed,
            "reg_steps": spec.max_steps if self.reg_steps is None else self.reg_steps,
            "wd_lambdas": list(self.wd_lambdas),
            "wd_epochs": spec.wd_epochs,
            "sharpness": self.sharpness,
            "scheme": self.scheme,
        }
        return _bench.study_record("ensemble", run, options)


def measure_point(
    bench: Bench, theta: Any, start: np.ndarray, *, sharpness: bool
) -> dict[str, Any]:
    """Every number of a point: training loss, R, test loss and metric, distance, sharpness.

    Args:
        bench: The study's problem and test set.
        theta: The point, the framework's flat θ.
        start: θ0 as numpy (the distance is |θ − θ0|).
        sharpness: Measure the largest Hessian eigenvalue, full and on the tangent space.

    Returns:
        ``{"train_loss", "reg", "test_loss", "test_metric", "distance"}`` and, with
        ``sharpness``, ``"sharpness"``, ``"sharpness_tangent"``, whether each Lanczos run
        converged to :data:`SHARPNESS_TOL` and how the Hessian-vector products were taken.
    """
    from manifoldwalk import curvature

    here = np.asarray(to_numpy(theta), dtype=np.float64)
    out: dict[str, Any] = bench.point(theta)
    out["distance"] = float(np.linalg.norm(here - np.asarray(start, dtype=np.float64)))
    if sharpness:
        for key, tangent in (("sharpness", False), ("sharpness_tangent", True)):
            top = curvature.top_eigenvalues(
                bench.problem,
                theta,
                1,
                tangent=tangent,
                tol=SHARPNESS_TOL,
                finite_difference=True,
            )
            out[key] = float(top.values[0])
            out[f"{key}_converged"] = bool(top.converged)
        exact = callable(getattr(bench.problem, "hvp", None))
        out["hvp"] = "exact" if exact else "finite differences"
    return out


class _Points:
    """The points of one study: each reused when saved, else made, measured and saved."""

    def __init__(
        self, bench: Bench, files: rundir.RunFiles, theta0: np.ndarray, sharpness: bool
    ) -> None:
        self.bench, self.files, self.theta0, self.sharpness = bench, files, theta0, sharpness
        self.start = bench.theta(theta0)
        self.records: list[dict[str, Any]] = []

    def add(self, name: str, meta: dict[str, Any], make: Any) -> None:
        """The point ``points/<name>`` (.npz: θ, .json: its record): reused when the index
        vouches for both and the record is of ``meta``; else ``make()`` → (θ as numpy, the
        record's extra fields), measured and saved."""
        bench, files = self.bench, self.files
        base = f"points/{name}"
        record = _bench.saved_json(files, base + ".json", _POINT_KEYS)
        if record is not None and any(record.get(k) != v for k, v in meta.items()):
            record = None
        fit = _bench.finite_vector(bench.n_params)
        if record is None or _bench.saved_npz(files, base + ".npz", fit) is None:
            theta, extra = make()
            measured = measure_point(
                bench, bench.theta(theta), self.theta0, sharpness=self.sharpness
            )
            record = {**meta, **extra, **measured}
            files.write_npz(base + ".npz", theta=theta)
            files.write_json(base + ".json", record)
        self.records.append(record)

    def walk(self, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """A walk from θ0 with ``options`` (see :func:`manifoldwalk.walk`); its end point and
        the walk's fields of the record."""
        import manifoldwalk as mw

        seconds_from = time.perf_counter()
        result = mw.walk(self.bench.problem, self.start, record=mw.Record(every=None), **options)
        theta = np.array(to_numpy(result.theta))
        return theta, _walked(result, time.perf_counter() - seconds_from)


def _walked(result: Any, seconds: float) -> dict[str, Any]:
    """A walk's fields of its point's record."""
    return {
        "stop_reason": result.stop_reason,
        "n_predictor": result.n_predictor,
        "n_corrector": result.n_corrector,
        "n_grad_evals": result.n_grad_evals,
        "level": float(result.level),
        "max_relative_deviation": float(result.max_relative_deviation),
        "seconds": seconds,
    }


def _statistics(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per quantity: the random walks' mean, std, min and max, and for each other point the
    share of random walks below it."""
    walks = [p for p in points if p["kind"] == "random"]
    out: dict[str, Any] = {}
    for q in QUANTITIES:
        values = np.array([p[q] for p in walks if q in p], dtype=np.float64)
        if len(values) == 0:
            continue
        out[q] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "below": {
                p["label"]: float(np.mean(values < p[q]))
                for p in points
                if p["kind"] != "random" and q in p
            },
        }
    return out


def _start_net(
    bench: Bench, files: rundir.RunFiles, config: EnsembleConfig, show: bool
) -> np.ndarray:
    """θ0: the study's net after phase 1 (``nets/start.npz``, reused when vouched for)."""
    saved = _bench.saved_npz(files, "nets/start.npz", _bench.finite_vector(bench.n_params))
    if saved is not None:
        return saved["theta"]
    spec = bench.spec
    _bench.say(show, f"ensemble {spec.name}: phase 1 ({spec.phase1_epochs} epochs)")
    theta0, seconds = bench.train(config.seed, spec.phase1_epochs)
    loss = bench.loss(bench.theta(theta0))
    files.write_npz("nets/start.npz", theta=theta0, train_loss=loss, seconds=seconds)
    return theta0


def run_ensemble(config: EnsembleConfig, *, show_progress: bool = True) -> dict[str, Any]:
    """Run (or finish, or read back) a level-set ensemble study.

    Args:
        config: The study's options.
        show_progress: Progress on stderr.

    Returns:
        The study's summary (``summary.json``): every point's record (kind ``"start"``,
        ``"random"``, ``"reg"`` or ``"wd"``, its label and numbers; see :func:`measure_point`)
        and ``statistics`` over the random walks' end points.

    Raises:
        ValueError: The run directory holds work of other options (named) or of unknown ones,
            or another process is running this study there (``RunLocked``).
        ImportError: The backend's framework is missing.
        manifoldwalk.datasets.DatasetError: The dataset's files are missing.
    """
    with exclusive(config.directory.parent, "ensemble"):
        return _run_ensemble(config, show_progress)


def _run_ensemble(config: EnsembleConfig, show_progress: bool) -> dict[str, Any]:
    """:func:`run_ensemble` once its lock is held."""
    import manifoldwalk as mw

    d = config.directory
    record = config.record()
    files = _bench.open_study(d, record)
    if files is None:
        return rundir.read_json(d / "summary.json")
    reg_steps = record["options"]["reg_steps"]
    bench = Bench.make(config.run_config())
    spec, show = bench.spec, show_progress
    points = _Points(bench, files, _start_net(bench, files, config, show), config.sharpness)
    points.add("start", {"kind": "start", "label": "θ0"}, lambda: (points.theta0, {}))
    random = mw.get_scheme(config.scheme, predictor_step=mw.ConstantStep(config.eta))
    progress = _bench.bar(show, config.walks, f"ensemble {spec.name} random walks", "walks")
    for m in range(config.walks):
        walk = dict(
            scheme=random, direction=mw.RandomWalk(seed=m), stop=mw.Stop(max_steps=config.steps)
        )
        meta = {"kind": "random", "label": f"random {m}", "walk_seed": m}
        points.add(f"random-{m:02d}", meta, lambda w=walk: points.walk(**w))
        progress.update(m + 1)
    progress.close()

    def reg_walk() -> tuple[np.ndarray, dict[str, Any]]:
        _bench.say(show, f"ensemble {spec.name}: the −∇R walk ({reg_steps} steps at most)")
        return points.walk(scheme=config.scheme, stop=mw.Stop(max_steps=reg_steps))

    points.add("reg", {"kind": "reg", "label": "−∇R walk"}, reg_walk)
    for i, lam in enumerate(config.wd_lambdas):

        def weight_decay(lam: float = lam) -> tuple[np.ndarray, dict[str, Any]]:
            epochs = spec.wd_epochs
            _bench.say(show, f"ensemble {spec.name}: weight decay λ={lam:g} ({epochs} epochs)")
            theta, seconds = bench.train(config.seed, epochs, weight_decay=lam)
            return theta, {"epochs": epochs, "seconds": seconds}

        points.add(
            f"wd-{i:02d}", {"kind": "wd", "label": f"WD λ={lam:g}", "lam": lam}, weight_decay
        )
    records = points.records
    summary = {
        "study": "ensemble",
        "experiment": spec.name,
        "metric": spec.metric,
        "n_train": len(bench.ds.x_train),
        "n_test": len(bench.ds.x_test),
        "n_params": bench.n_params,
        "level": records[0]["train_loss"],
        "points": records,
        "statistics": _statistics(records),
    }
    return _bench.finish(files, summary)
