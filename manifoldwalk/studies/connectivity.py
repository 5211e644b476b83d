"""Level-set connectivity: walk between independently trained nets on one level set.

``manifoldwalk connect EXPERIMENT --nets N`` trains N nets of an experiment on the *same*
training set (the experiment's seed-0 split) from N initialisations (seeds 0 … N−1), brings
them to one common training loss c (by default the largest of their losses) with the walk's
``level=`` projection (Newton steps onto {L = c}), and for every ordered pair (i → j) walks
net i toward net j on that level set with :class:`~manifoldwalk.TowardTarget`. Each pair
reports:

- ``remaining``: |θ_end − θ_j| / |θ_i − θ_j| at the walk's end (0: it reached net j);
- ``stop_reason``: why the walk stopped (``reached_target``; ``stationary`` or ``stalled``:
  it found the point of the level set nearest θ_j locally and can get no closer; ``max_steps``;
  ``corrector_failed``);
- ``path_barrier``: the largest training loss, minus c, on the polygon through the walk's
  recorded on-level points (every ``path_every`` predictor steps), evaluated at those points
  and at the midpoint of each of its segments — a continuous path from θ_i to θ_end;
- ``line_barrier``: the largest loss, minus c, at ``line_points`` evenly spaced points of the
  straight line (1 − t)·θ_i + t·θ_j (the mode-connectivity baseline);
- ``gap_barrier``: the same on the straight line from θ_end to θ_j (what a path of the walk
  plus a straight last piece would still cross; ≈ 0 when the walk reached θ_j);
- ``gap_dip``: the smallest loss, minus c, on that gap (below 0: the straight gap crosses a
  valley of L, and θ_end and θ_j lie on its two walls: the walk stopped ``stationary`` with θ_j
  straight down ∇L from it, reachable on the level set only around the valley, if at all);
- ``walk_barrier``: the larger of the two: the barrier of a complete path from θ_i to θ_j,
  the walk's polygon closed by the straight gap;
- ``resolution``: the walk's level tolerance over ‖∇L‖ at its end, how far apart along ∇L two
  points that both count as on the level set may lie: a walk that stops ``stationary`` within
  about this distance of θ_j has reached it as closely as the tolerance can tell.

The run directory ``OUT/<experiment>/connect/`` holds (besides ``config.json``,
``index.json``, ``summary.json`` and ``DONE``)::

    nets/net-<k>.npz     net k after phase 1: theta (the net's dtype), train_loss, seconds
    nets/level-<k>.npz   net k projected onto {L = c}: theta, loss, level, n_grad_evals
    pairs/<i>-<j>.npz    the pair's end point theta_end; the loss along the walk (rec_progress,
                         rec_loss at the recorded points; mid_progress, mid_loss at the
                         midpoints), along the straight line (line_t, line_loss) and along the
                         last gap (gap_t, gap_loss); progress = 1 − |θ − θ_j| / |θ_i − θ_j|
    pairs/<i>-<j>.json   the pair's numbers (see above)

A killed study resumes where it stopped (finished nets, projections and pairs are reused when
the index vouches for them; a pair's walk is redone from its start), and a directory made with
other options is refused before any work, naming the options.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._lock import exclusive
from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.studies import _bench
from manifoldwalk.studies._bench import Bench

__all__ = ["REACHED", "ConnectConfig", "line_losses", "run_connectivity"]

REACHED = 1e-3
"""A pair counts as reached when its walk ends within this fraction of the distance."""

_PAIR_KEYS = (
    "i",
    "j",
    "level",
    "remaining",
    "stop_reason",
    "path_barrier",
    "line_barrier",
    "gap_barrier",
    "gap_dip",
    "walk_barrier",
    "resolution",
)


@dataclass(frozen=True)
class ConnectConfig:
    """The options of a connectivity study (written to its ``config.json``).

    Attributes:
        experiment: The experiment whose net and data are used (``manifoldwalk list``).
        out: The output root; the study writes ``out/<experiment>/connect``.
        nets: Nets trained (seeds 0 … nets−1); ``nets·(nets−1)`` ordered pairs are walked.
        steps: Each pair's budget of predictor steps.
        level: The common training loss c (None: the largest of the nets' losses after phase 1,
            so that every net is projected upward, away from its minimum).
        scheme: The walk's scheme (``"default"`` or ``"compensated"``).
        target_tol: :class:`~manifoldwalk.TowardTarget`'s tolerance (relative to |θ_j|).
        line_points: Points on the straight line between two nets (the baseline barrier).
        path_every: Predictor steps between the recorded points of the walk's path.
        phase1_epochs: Phase-1 epochs (None: the experiment's).
        dtype: ``"float32"`` or ``"float64"`` (None: the experiment's).
        n_train: Training examples (None: the experiment's).
        data_dir: Directory of the image datasets' files (ignored for Iris and Auto-MPG).
        backend: ``"torch"``, ``"jax"`` or ``"tensorflow"``.
        device: ``"cpu"`` or ``"cuda"``.

    Raises:
        ValueError: An unknown experiment, scheme, backend, device or dtype, a count below its
            least value, or a level or tolerance that is not a finite positive number.
    """

    experiment: str
    out: str = "runs"
    nets: int = 3
    steps: int = 2000
    level: float | None = None
    scheme: str = "default"
    target_tol: float = 1e-5
    line_points: int = 51
    path_every: int = 1
    phase1_epochs: int | None = None
    dtype: str | None = None
    n_train: int | None = None
    data_dir: str | None = None
    backend: str = "torch"
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Check the options (see the class's Raises)."""
        self.run_config()
        _bench.check_count("nets", self.nets, 2)
        _bench.check_count("steps", self.steps, 1)
        _bench.check_count("line_points", self.line_points, 2)
        _bench.check_count("path_every", self.path_every, 1)
        _bench.check_positive("target_tol", self.target_tol)
        if self.level is not None:
            _bench.check_positive("level", self.level)

    def run_config(self) -> RunConfig:
        """The experiment's run options the study resolves its settings and data through.

        Returns:
            A :class:`~manifoldwalk.experiments.RunConfig`.
        """
        return _bench.run_options(self)

    @property
    def directory(self) -> Path:
        """The study's run directory, ``out/<experiment>/connect``."""
        return _bench.study_dir(self.out, self.run_config().spec.name, "connect")

    def record(self) -> dict[str, Any]:
        """The study's ``config.json``: the marker ``"study": "connect"`` and its options.

        Returns:
            A JSON-serialisable dict.
        """
        options = {
            "nets": self.nets,
            "steps": self.steps,
            "level": self.level,
            "scheme": self.scheme,
            "target_tol": self.target_tol,
            "line_points": self.line_points,
            "path_every": self.path_every,
        }
        return _bench.study_record("connect", self.run_config(), options)


def line_losses(loss: Any, a: Any, b: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The training loss at ``n`` evenly spaced points of the segment from ``a`` to ``b``.

    Args:
        loss: θ ↦ L(θ) (a Problem's ``loss``).
        a: The start, a flat θ of the problem's array type.
        b: The end, likewise.
        n: Points, both ends included (at least 2).

    Returns:
        ``(t, losses)``: t in [0, 1] and L((1 − t)·a + t·b), as float64 arrays.
    """
    t = np.linspace(0.0, 1.0, n)
    return t, np.array([float(loss((1.0 - s) * a + s * b)) for s in t])


class _PathProbe:
    """A walk metric that follows the path: progress toward the target at every record, and
    the training loss at the midpoint of the segment from the previous record."""

    def __init__(self, bench: Bench, start: np.ndarray, target: np.ndarray) -> None:
        self.bench = bench
        self.target = target
        self.scale = float(np.linalg.norm(start - target))
        self.prev: Any = None
        self.mid_progress: list[float] = []
        self.mid_loss: list[float] = []

    def progress_of(self, theta: Any) -> float:
        """1 − |θ − θ_j| / |θ_i − θ_j|."""
        here = np.asarray(to_numpy(theta), dtype=np.float64)
        return 1.0 - float(np.linalg.norm(here - self.target)) / self.scale

    def __call__(self, theta: Any) -> float:
        if self.prev is not None:
            mid = (self.prev + theta) * 0.5
            self.mid_progress.append(self.progress_of(mid))
            self.mid_loss.append(self.bench.loss(mid))
        self.prev = theta + 0  # a copy: the record's θ is kept past the step
        return self.progress_of(theta)


def _projected(
    bench: Bench, files: rundir.RunFiles, k: int, theta: np.ndarray, level: float, scheme: Any
) -> dict[str, Any]:
    """Net ``k`` projected onto {L = level} (saved, or reused when saved for this level)."""
    import manifoldwalk as mw
    from manifoldwalk.driver import prepare_walk

    name = f"nets/level-{k:02d}.npz"
    check = _bench.finite_vector(bench.n_params)

    def fit(arrays: dict[str, np.ndarray]) -> str | None:
        if "level" not in arrays or float(arrays["level"]) != level:
            return "it was projected onto another level"
        return check(arrays)

    saved = _bench.saved_npz(files, name, fit)
    if saved is not None:
        return {"theta": saved["theta"], "loss": float(saved["loss"]), "error": None}
    try:
        run = prepare_walk(bench.problem, bench.theta(theta), level=level, scheme=scheme)
    except mw.ProblemError as err:  # the level cannot be reached from this net
        return {"theta": None, "loss": math.nan, "error": str(err)}
    state = run.state
    projected = np.array(to_numpy(state.theta))
    loss = bench.loss(state.theta)
    evals = int(np.asarray(to_numpy(state.n_grad_evals)))
    files.write_npz(name, theta=projected, loss=loss, level=level, n_grad_evals=evals)
    return {"theta": projected, "loss": loss, "error": None}


def _walk_pair(
    bench: Bench, config: ConnectConfig, a: np.ndarray, b: np.ndarray, level: float
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Walk from ``a`` toward ``b`` on {L = level}; the pair's record and arrays."""
    import manifoldwalk as mw

    start = time.perf_counter()
    probe = _PathProbe(bench, a, b)
    ta, tb = bench.theta(a), bench.theta(b)
    t, line = line_losses(bench.problem.loss, ta, tb, config.line_points)
    distance = float(np.linalg.norm(a - b))
    record: dict[str, Any] = {"level": level, "distance": distance}
    try:
        result = mw.walk(
            bench.problem,
            ta,
            scheme=config.scheme,
            direction=mw.TowardTarget(tb, tol=config.target_tol),
            level=level,
            stop=mw.Stop(max_steps=config.steps),
            record=mw.Record(every=config.path_every, metrics={"progress": probe}),
        )
    except mw.ProblemError as err:
        end = a
        record.update(stop_reason="error", message=str(err), n_predictor=0, n_corrector=0)
        record.update(n_grad_evals=0, max_deviation=math.nan, tolerance=math.nan)
        rec_progress, rec_loss = np.zeros(1), np.array([bench.loss(ta)])
    else:
        end = np.array(to_numpy(result.theta))
        record.update(
            stop_reason=result.stop_reason,
            message=result.message,
            n_predictor=result.n_predictor,
            n_corrector=result.n_corrector,
            n_grad_evals=result.n_grad_evals,
            max_deviation=float(result.max_deviation),
            tolerance=float(result.tolerance),
        )
        rec_progress = np.asarray(result.history["progress"], dtype=np.float64)
        rec_loss = np.asarray(result.history["loss"], dtype=np.float64)
    gap_t, gap = line_losses(bench.problem.loss, bench.theta(end), tb, config.line_points)
    mid_loss = np.asarray(probe.mid_loss, dtype=np.float64)
    path = np.concatenate([rec_loss, mid_loss])
    remaining_abs = float(np.linalg.norm(end - b))
    grad_end = np.linalg.norm(np.asarray(to_numpy(bench.problem.grad(bench.theta(end)))))
    record.update(
        remaining=remaining_abs / distance,
        remaining_abs=remaining_abs,
        # how far apart two points of the level set may lie along ∇L: tolerance / ‖∇L‖
        resolution=float(record["tolerance"] / grad_end) if grad_end > 0 else math.inf,
        end_loss=bench.loss(bench.theta(end)),
        on_level_max=float(rec_loss.max() - level),
        path_barrier=float(path.max() - level),
        line_barrier=float(line.max() - level),
        gap_barrier=float(gap.max() - level),
        gap_dip=float(gap.min() - level),
        walk_barrier=float(max(path.max(), gap.max()) - level),
        seconds=time.perf_counter() - start,
    )
    arrays = {
        "theta_end": end,
        "rec_progress": rec_progress,
        "rec_loss": rec_loss,
        "mid_progress": np.asarray(probe.mid_progress, dtype=np.float64),
        "mid_loss": mid_loss,
        "line_t": t,
        "line_loss": line,
        "gap_t": gap_t,
        "gap_loss": gap,
    }
    return record, arrays


def _overview(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's headline numbers over the pairs walked."""
    walked = [p for p in pairs if p["stop_reason"] != "skipped"]
    if not walked:
        return {"pairs": 0}
    rem = np.array([p["remaining"] for p in walked])
    return {
        "pairs": len(walked),
        "reached": int(np.sum(rem <= REACHED)),
        "stop_reasons": dict(Counter(p["stop_reason"] for p in walked)),
        "remaining_median": float(np.median(rem)),
        "remaining_max": float(np.max(rem)),
        "path_barrier_max": float(max(p["path_barrier"] for p in walked)),
        "gap_barrier_max": float(max(p["gap_barrier"] for p in walked)),
        "walk_barrier_max": float(max(p["walk_barrier"] for p in walked)),
        "line_barrier_min": float(min(p["line_barrier"] for p in walked)),
        "line_barrier_median": float(np.median([p["line_barrier"] for p in walked])),
    }


def _trained(bench: Bench, files: rundir.RunFiles, k: int, show: bool) -> dict[str, Any]:
    """Net ``k`` after phase 1 (``nets/net-<k>.npz``: saved, or reused when vouched for)."""
    name = f"nets/net-{k:02d}.npz"
    saved = _bench.saved_npz(files, name, _bench.finite_vector(bench.n_params))
    if saved is not None:
        return saved
    epochs = bench.spec.phase1_epochs
    _bench.say(show, f"connect {bench.spec.name}: training net {k} ({epochs} epochs)")
    theta, seconds = bench.train(k, epochs)
    loss = bench.loss(bench.theta(theta))
    files.write_npz(name, theta=theta, train_loss=loss, seconds=seconds)
    return {"theta": theta, "train_loss": np.float64(loss)}


def _pair(
    bench: Bench,
    files: rundir.RunFiles,
    config: ConnectConfig,
    nets: list[dict[str, Any]],
    pair: tuple[int, int],
    level: float,
) -> dict[str, Any]:
    """The record of the walk from net i to net j (saved, or reused when the index vouches for
    its two files and it was walked on this level); a pair with a net off the level is
    skipped, saying why."""
    i, j = pair
    bad = [k for k in pair if nets[k]["error"] is not None]
    if bad:
        why = f"net {bad[0]} could not be projected onto L = {level:.6g}"
        return {"i": i, "j": j, "level": level, "stop_reason": "skipped", "message": why}
    name = f"pairs/{i:02d}-{j:02d}"
    record = _bench.saved_json(files, name + ".json", _PAIR_KEYS)
    if record is not None and (record["i"], record["j"], record["level"]) != (i, j, level):
        record = None
    if record is not None and _bench.saved_npz(files, name + ".npz", _pair_arrays) is not None:
        return record
    record, arrays = _walk_pair(bench, config, nets[i]["theta"], nets[j]["theta"], level)
    record = {"i": i, "j": j, **record}
    files.write_npz(name + ".npz", **arrays)
    files.write_json(name + ".json", record)
    return record


def run_connectivity(config: ConnectConfig, *, show_progress: bool = True) -> dict[str, Any]:
    """Run (or finish, or read back) a connectivity study.

    Args:
        config: The study's options.
        show_progress: Progress on stderr.

    Returns:
        The study's summary (``summary.json``): the level, each net, each pair's record (see
        the module docstring) and an ``overview`` (pairs whose walk ended within
        :data:`REACHED` of the distance, stop reasons, the largest barrier of the walks' paths
        against the straight lines' barriers).

    Raises:
        ValueError: The run directory holds work of other options (named) or of unknown ones,
            or another process is running this study there (``RunLocked``).
        ImportError: The backend's framework is missing.
        manifoldwalk.datasets.DatasetError: The dataset's files are missing.
    """
    with exclusive(config.directory.parent, "connect"):
        return _run_connectivity(config, show_progress)


def _run_connectivity(config: ConnectConfig, show_progress: bool) -> dict[str, Any]:
    """:func:`run_connectivity` once its lock is held."""
    import manifoldwalk as mw

    d = config.directory
    files = _bench.open_study(d, config.record())
    if files is None:
        return rundir.read_json(d / "summary.json")
    bench = Bench.make(config.run_config())
    spec, show = bench.spec, show_progress
    start = time.perf_counter()
    trained = [_trained(bench, files, k, show) for k in range(config.nets)]
    train_s = time.perf_counter() - start
    losses = [float(t["train_loss"]) for t in trained]
    level = max(losses) if config.level is None else float(config.level)
    scheme = mw.get_scheme(config.scheme)
    nets = [
        {
            "seed": k,
            "train_loss": losses[k],
            **_projected(bench, files, k, t["theta"], level, scheme),
        }
        for k, t in enumerate(trained)
    ]
    pairs = []
    todo = list(permutations(range(config.nets), 2))
    progress = _bench.bar(show, len(todo), f"connect {spec.name} pairs", "pairs")
    start = time.perf_counter()
    for n, (i, j) in enumerate(todo):
        pairs.append(_pair(bench, files, config, nets, (i, j), level))
        progress.update(n + 1, f"{i}→{j}: {pairs[-1]['stop_reason']}")
    progress.close()
    summary = {
        "study": "connect",
        "experiment": spec.name,
        "metric": spec.metric,
        "n_train": len(bench.ds.x_train),
        "n_params": bench.n_params,
        "level": level,
        "level_rule": "given (--level)" if config.level is not None else "max of the nets' losses",
        "nets": [
            {
                "seed": n["seed"],
                "train_loss": n["train_loss"],
                "projected_loss": n["loss"],
                "error": n["error"],
            }
            for n in nets
        ],
        "pairs": pairs,
        "overview": _overview(pairs),
        "timing": {
            "train_s_last_session": train_s,
            "pairs_s_last_session": time.perf_counter() - start,
        },
    }
    return _bench.finish(files, summary)


def _pair_arrays(arrays: dict[str, np.ndarray]) -> str | None:
    """Why a saved pair's arrays are unfit (None: fit)."""
    missing = {"theta_end", "rec_loss", "mid_loss", "line_t", "line_loss"} - set(arrays)
    if missing:
        return f"it lacks the arrays {sorted(missing)}"
    if not np.isfinite(arrays["theta_end"]).all():
        return "its theta_end holds non-finite values"
    return None
