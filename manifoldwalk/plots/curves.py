"""The numbers behind the walk curves: each walk's recorded columns and their bands over walks.

A walk is a :class:`WalkSeries`: its history columns (``n_predictor``, ``reg``, ``angle``,
``deviation`` = |L − L0|, metric columns…), the level it held and the tolerance it held it to.
:func:`curves_data` puts several walks on one x axis (predictor steps or gradient evaluations)
and gives, per column, the mean ± sample std over the walks running at each x
(:func:`~manifoldwalk.plots.bands.seed_band`) beside each walk's own series. The same numbers
serve :func:`manifoldwalk.plots.walk_curves` (walks in memory) and ``manifoldwalk plot`` (the
run directories' ``metrics.csv``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from manifoldwalk.plots.bands import Band, seed_band

__all__ = [
    "BUDGET_STOPS",
    "CURVE_COLUMNS",
    "Curves",
    "WalkSeries",
    "budget_grid",
    "curves_data",
    "duplicate_columns",
    "series_of",
]

CURVE_COLUMNS = ("angle", "reg", "deviation")
"""The panels every walk has: angle(∇L, ∇R), R, and |L − L0| (what the walk holds)."""

BUDGET_STOPS = frozenset({"max_steps", "max_total_steps"})
"""Stop reasons of a walk that used its whole step budget (any other reason stopped it early)."""


@dataclass(frozen=True)
class WalkSeries:
    """One walk's recorded columns.

    Attributes:
        history: Column name → values, one per record (``n_predictor`` increasing).
        level: L0, the level walked.
        tolerance: The bound on |L − L0| the walk held (NaN: unknown).
        stop_reason: Why it stopped (walks that spent their budget end the common x axis).
    """

    history: Mapping[str, np.ndarray]
    level: float
    tolerance: float = float("nan")
    stop_reason: str = "max_steps"


def series_of(result: Any) -> WalkSeries:
    """A :class:`~manifoldwalk.WalkResult`'s history as a :class:`WalkSeries`.

    ``deviation`` is the history's column where present, else |loss − level| from its
    ``loss`` column (results saved before the column existed).

    Args:
        result: A walk's result (or anything with ``history``, ``level``, ``tolerance`` and
            ``stop_reason``).

    Returns:
        The series, float64 columns.

    Raises:
        ValueError: The result has no history rows.
    """
    history = {k: np.asarray(v, dtype=np.float64) for k, v in result.history.items()}
    if not history or len(next(iter(history.values()))) == 0:
        raise ValueError(
            "the result has no history rows; walk with record=Record(every=k) to draw curves"
        )
    level = float(result.level)
    if "deviation" not in history and "loss" in history:
        history["deviation"] = np.abs(history["loss"] - level)
    tolerance = float(getattr(result, "tolerance", float("nan")))
    return WalkSeries(history, level, tolerance, str(getattr(result, "stop_reason", "")))


def budget_grid(xs: Sequence[np.ndarray], stops: Sequence[str]) -> np.ndarray:
    """Every recorded x up to where the first walk that used its whole budget ends.

    Args:
        xs: Per walk, its records' x.
        stops: Per walk, its stop reason.

    Returns:
        The grid, increasing.

    Walks that spent their budget end at slightly different x when x counts gradients; past
    the first of those ends the band would be over a shrinking, arbitrary set of walks, so it
    stops there. Walks that stopped early drop out of the band where they stopped.
    """
    grid = np.unique(np.concatenate(xs)) if xs else np.zeros(0)
    ends = [x[-1] for x, s in zip(xs, stops, strict=True) if s in BUDGET_STOPS and len(x)]
    if len(ends) > 1:
        grid = grid[grid <= min(ends)]
    return grid


@dataclass(frozen=True)
class Curves:
    """Several walks' columns on one x axis.

    Attributes:
        x_name: The history column used as x (``"n_predictor"``, ``"n_grad_evals"``…).
        columns: The columns, in panel order.
        bands: Column → mean ± std band over the walks running at each x.
        walks: Per walk, ``x_name`` and each column (its own records).
        tolerance: Per walk, the tolerance it held |L − L0| to (NaN: unknown).
        labels: Column → axis label (defaults to the column's name).
    """

    x_name: str
    columns: tuple[str, ...]
    bands: dict[str, Band]
    walks: list[dict[str, np.ndarray]]
    tolerance: np.ndarray
    labels: dict[str, str] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """The numbers as flat arrays: ``x`` and ``running`` (the band's grid and walk count),
        ``<column>_mean`` and ``<column>_std``, per walk ``x/<i>`` and ``<column>/<i>``, and
        ``tolerance`` (one per walk)."""
        first = self.bands[self.columns[0]]
        out = {"x": first.x, "running": first.count, "tolerance": self.tolerance}
        for c in self.columns:
            out[f"{c}_mean"], out[f"{c}_std"] = self.bands[c].mean, self.bands[c].std
        for i, walk in enumerate(self.walks):
            out[f"x/{i}"] = walk[self.x_name]
            for c in self.columns:
                out[f"{c}/{i}"] = walk[c]
        return out


def curves_data(
    walks: Sequence[WalkSeries],
    columns: Sequence[str],
    *,
    x: str = "n_predictor",
    labels: Mapping[str, str] | None = None,
) -> Curves:
    """The columns of several walks against ``x``, each walk's own and as bands over walks.

    Args:
        walks: The walks (at least one).
        columns: The history columns to show, in order.
        x: The column used as x; it must not decrease along any walk.
        labels: Column → axis label (None: the names).

    Returns:
        The :class:`Curves`; the band's grid is every recorded x up to where the first walk
        that spent its whole budget ends.

    Raises:
        ValueError: No walks, no columns, or a walk lacking ``x`` or a column (the message
            lists the columns it has).
    """
    if not walks:
        raise ValueError("no walks to draw: pass at least one result")
    if not columns:
        raise ValueError("no columns to draw")
    per_walk = []
    for i, w in enumerate(walks):
        missing = [c for c in (x, *columns) if c not in w.history]
        if missing:
            raise ValueError(
                f"walk {i} has no history column {', '.join(map(repr, missing))}; its columns "
                f"are {', '.join(w.history)} (metric columns come from Record(metrics=...))"
            )
        per_walk.append({c: np.asarray(w.history[c], dtype=np.float64) for c in (x, *columns)})
    xs = [w[x] for w in per_walk]
    grid = budget_grid(xs, [w.stop_reason for w in walks])
    bands = {c: seed_band(xs, [w[c] for w in per_walk], grid) for c in columns}
    return Curves(
        x_name=x,
        columns=tuple(columns),
        bands=bands,
        walks=per_walk,
        tolerance=np.array([w.tolerance for w in walks], dtype=np.float64),
        labels={c: (labels or {}).get(c, c) for c in columns},
    )


def duplicate_columns(curves: Curves) -> dict[str, str]:
    """Columns that repeat an earlier one in every walk (e.g. a regression's test loss and
    its test MSE): drawn once.

    Args:
        curves: The walks' curves.

    Returns:
        Dropped column → the earlier column it equals.
    """
    dropped: dict[str, str] = {}
    kept: list[str] = []
    for c in curves.columns:
        same = next(
            (
                k
                for k in kept
                if all(
                    w[k].shape == w[c].shape
                    and np.allclose(w[k], w[c], rtol=1e-12, atol=0.0, equal_nan=True)
                    for w in curves.walks
                )
            ),
            None,
        )
        if same is None:
            kept.append(c)
        else:
            dropped[c] = same
    return dropped
