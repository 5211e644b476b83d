"""The numbers behind the phase-2 and compute-vs-performance figures.

Phase 2 (the paper's Figs. 2–6): the angle between ∇L and ∇R, R = ‖θ‖², the training loss,
the test loss and the test accuracy (or MSE) against predictor steps, as mean ± std bands over
seeds (:mod:`manifoldwalk.plots.bands`), with the weight-decay runs at the best λ as reference
values. Compute (Fig. 7): the test metric against example-wise gradient evaluations, phase 1
included, for the walk and for weight decay at the best λ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from manifoldwalk.experiments.table import mean_std
from manifoldwalk.plots.bands import Band, seed_band
from manifoldwalk.plots.runs import ExperimentRuns

__all__ = [
    "BUDGET_STOPS",
    "PHASE2_QUANTITIES",
    "ComputeSeries",
    "compute_series",
    "phase2_bands",
    "quantity_label",
    "wd_reference",
]

PHASE2_QUANTITIES = ("angle", "reg", "train_loss", "test_loss", "test_metric")
"""The phase-2 panels, top to bottom (``test_metric`` is ``test_accuracy`` or ``test_mse``)."""


BUDGET_STOPS = frozenset({"max_steps", "max_total_steps"})
"""Stop reasons of a walk that used its whole step budget (any other reason stopped it early)."""


def _grid(exp: ExperimentRuns, xs: list[np.ndarray]) -> np.ndarray:
    """Every recorded x up to where the first seed that used its whole budget ends.

    Seeds that spent their budget end at slightly different x when x counts gradients (or
    predictor steps under a total-step budget); past the first of those ends the band would be
    over a shrinking, arbitrary set of seeds, so it stops there. Seeds that stopped early drop
    out of the band where they stopped.
    """
    grid = np.unique(np.concatenate(xs))
    ends = [x[-1] for s, x in zip(exp.seeds, xs, strict=True) if s.stop_reason in BUDGET_STOPS]
    if len(ends) > 1:
        grid = grid[grid <= min(ends)]
    return grid


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
        "train_loss": "training loss",
        "test_loss": "test loss",
        "test_metric": "test accuracy (%)" if metric == "accuracy" else "test MSE",
    }[name]


def _column(name: str, metric: str) -> str:
    return {"reg": "reg", "test_metric": f"test_{metric}"}.get(name, name)


def _scale(name: str, metric: str) -> float:
    return 100.0 if name == "test_metric" and metric == "accuracy" else 1.0


def phase2_bands(exp: ExperimentRuns) -> dict[str, Band]:
    """Mean ± std over seeds of each phase-2 quantity against predictor steps.

    Args:
        exp: The experiment's runs.

    Returns:
        Quantity (:data:`PHASE2_QUANTITIES`) → band over the predictor steps any seed recorded
        (up to where the first seed that spent its whole budget ends); accuracy in percent.
    """
    xs = [s.metrics["n_predictor"] for s in exp.seeds]
    grid = _grid(exp, xs)
    out = {}
    for name in PHASE2_QUANTITIES:
        col, k = _column(name, exp.metric), _scale(name, exp.metric)
        out[name] = seed_band(xs, [s.metrics[col] * k for s in exp.seeds], grid)
    return out


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
        walk=seed_band(xs, ys, _grid(exp, xs)),
        phase1_grads=float(np.mean([s.summary["phase1"]["example_grads"] for s in exp.seeds])),
        wd_grads=float(np.mean([r["example_grads"] for r in records])),
        wd_metric=mean_std(float(r["test_metric"]) * k for r in records),
        lam=lam,
        metric=exp.metric,
    )
