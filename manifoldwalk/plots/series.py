"""The numbers behind the phase-2 and compute-vs-performance figures.

Phase 2 (the paper's Figs. 2–6): the angle between ∇L and ∇R, R = ‖θ‖², |L − L0| (what the
walk holds), the test loss and the test accuracy (or MSE) against predictor steps, each seed's
own and as mean ± std bands over seeds (:mod:`manifoldwalk.plots.curves`, the same numbers as
:func:`manifoldwalk.plots.walk_curves` draws for walks in memory), with the weight-decay runs
at the best λ as reference values. Compute (Fig. 7): the test metric against example-wise gradient evaluations, phase 1
included, for the walk and for weight decay at the best λ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from manifoldwalk.experiments.table import mean_std
from manifoldwalk.plots.bands import Band, seed_band
from manifoldwalk.plots.curves import BUDGET_STOPS, Curves, WalkSeries, budget_grid, curves_data
from manifoldwalk.plots.runs import ExperimentRuns, SeedRun

__all__ = [
    "BUDGET_STOPS",
    "PHASE2_PANELS",
    "PHASE2_QUANTITIES",
    "ComputeSeries",
    "compute_series",
    "phase2_bands",
    "phase2_curves",
    "quantity_label",
    "seed_series",
    "wd_reference",
]

PHASE2_QUANTITIES = ("angle", "reg", "deviation", "train_loss", "test_loss", "test_metric")
"""The phase-2 quantities (``test_metric`` is ``test_accuracy`` or ``test_mse``; ``deviation``
is |L − L0|, each seed's distance from its own level)."""

PHASE2_PANELS = ("angle", "reg", "deviation", "test_loss", "test_metric")
"""The phase-2 panels, top to bottom: the training loss is drawn as what the walk holds,
|L − L0| against the tolerance, not as L's spread over the seeds' levels."""


def quantity_label(name: str, metric: str) -> str:
    """The axis label of a phase-2 quantity.

    Args:
        name: One of :data:`PHASE2_QUANTITIES`.
        metric: ``"accuracy"`` or ``"mse"``.

    Returns:
        A label with its unit.
    """
    return {
        "angle": "angle(∇L, ∇R) (degrees)",
        "reg": "R = ‖θ‖²",
        "deviation": "|L − L0| (training loss)",
        "train_loss": "training loss",
        "test_loss": "test loss",
        "test_metric": "test accuracy (%)" if metric == "accuracy" else "test MSE",
    }[name]


def _scale(name: str, metric: str) -> float:
    return 100.0 if name == "test_metric" and metric == "accuracy" else 1.0


def seed_series(run: SeedRun) -> WalkSeries:
    """A seed's ``metrics.csv`` as a :class:`~manifoldwalk.plots.curves.WalkSeries` with the
    phase-2 quantities as columns (accuracy in percent).

    ``deviation`` is the file's column where present, else |train loss − level|; a seed whose
    summary names no level and whose file has no ``deviation`` has no such column.

    Args:
        run: The seed.

    Returns:
        The series.
    """
    m = run.metrics
    history = {k: np.asarray(v, dtype=np.float64) for k, v in m.items()}
    history["test_metric"] = m[f"test_{run.metric}"] * _scale("test_metric", run.metric)
    walk = run.summary.get("walk", {})
    level = float(walk.get("level", float("nan")))
    if "deviation" not in history and np.isfinite(level) and "train_loss" in history:
        history["deviation"] = np.abs(history["train_loss"] - level)
    return WalkSeries(
        history, level, float(walk.get("tolerance", float("nan"))), str(walk["stop_reason"])
    )


def phase2_curves(exp: ExperimentRuns, quantities: Sequence[str] = PHASE2_QUANTITIES) -> Curves:
    """Each seed's phase-2 quantities against predictor steps, and their bands over seeds.

    Args:
        exp: The experiment's runs.
        quantities: The quantities wanted; those some seed lacks (``deviation`` in runs that
            recorded neither it nor their level) are left out.

    Returns:
        The :class:`~manifoldwalk.plots.curves.Curves` (accuracy in percent), the bands over
        the predictor steps any seed recorded, up to where the first seed that spent its whole
        budget ends.
    """
    walks = [seed_series(s) for s in exp.seeds]
    have = [q for q in quantities if all(q in w.history for w in walks)]
    labels = {q: quantity_label(q, exp.metric) for q in have}
    return curves_data(walks, have, x="n_predictor", labels=labels)


def phase2_bands(exp: ExperimentRuns) -> dict[str, Band]:
    """Mean ± std over seeds of each phase-2 quantity against predictor steps.

    Args:
        exp: The experiment's runs.

    Returns:
        Quantity (:data:`PHASE2_QUANTITIES`, those recorded) → band over the predictor steps
        any seed recorded (up to where the first seed that spent its whole budget ends);
        accuracy in percent.
    """
    return phase2_curves(exp).bands


def wd_reference(exp: ExperimentRuns) -> dict[str, tuple[float, float]]:
    """Weight decay at the best λ (by test, the paper's choice): mean and std over seeds.

    R is computed from the saved weight vectors; the losses and the metric are the runs'
    records. The angle has no weight-decay counterpart.

    Args:
        exp: The experiment's runs.

    Returns:
        Quantity → ``(mean, std)``; accuracy in percent.
    """
    lam = exp.best_lambda
    records = [s.wd_record(lam, "full") for s in exp.seeds]
    scale = _scale("test_metric", exp.metric)
    regs = []
    for s in exp.seeds:
        theta = s.wd_theta(lam, "full")
        regs.append(float(theta @ theta))
    return {
        "reg": mean_std(regs),
        "train_loss": mean_std(float(r["train_loss"]) for r in records),
        "test_loss": mean_std(float(r["test_loss"]) for r in records),
        "test_metric": mean_std(float(r["test_metric"]) * scale for r in records),
    }


@dataclass
class ComputeSeries:
    """Test metric against example-wise gradient evaluations.

    Attributes:
        walk: The walk's band over cumulative example-wise gradients (phase 1 included).
        phase1_grads: Phase 1's example-wise gradients (mean over seeds).
        wd_grads: Weight decay's example-wise gradients at the best λ (mean over seeds).
        wd_metric: Its test metric, ``(mean, std)`` over seeds.
        lam: The best λ.
        metric: ``"accuracy"`` (in percent) or ``"mse"``.
    """

    walk: Band
    phase1_grads: float
    wd_grads: float
    wd_metric: tuple[float, float]
    lam: float
    metric: str


def compute_series(exp: ExperimentRuns) -> ComputeSeries:
    """The numbers of the compute-vs-performance figure.

    The walk's x is phase 1's example-wise gradients plus the walk's count at each record; the
    seeds' x differ (corrector steps vary), so the band is on the union of their records, each
    seed read off its own series while it is running, up to where the first seed that spent
    its whole budget ends.

    Args:
        exp: The experiment's runs.

    Returns:
        The :class:`ComputeSeries`.
    """
    k = _scale("test_metric", exp.metric)
    col = f"test_{exp.metric}"
    xs = [s.summary["phase1"]["example_grads"] + s.metrics["example_grads"] for s in exp.seeds]
    ys = [s.metrics[col] * k for s in exp.seeds]
    lam = exp.best_lambda
    records = [s.wd_record(lam, "full") for s in exp.seeds]
    return ComputeSeries(
        walk=seed_band(xs, ys, budget_grid(xs, [s.stop_reason for s in exp.seeds])),
        phase1_grads=float(np.mean([s.summary["phase1"]["example_grads"] for s in exp.seeds])),
        wd_grads=float(np.mean([r["example_grads"] for r in records])),
        wd_metric=mean_std(float(r["test_metric"]) * k for r in records),
        lam=lam,
        metric=exp.metric,
    )
