"""Mean ± sample standard deviation over seeds of series that may stop at different points.

Each seed contributes a series ``y(x)`` recorded at increasing ``x`` (predictor steps, gradient
evaluations). On a common grid a seed counts from its first ``x`` to its last — *while it is
running* — and is read off its own records there (linearly interpolated between two records
when the grid point falls between them; exactly its record when the grids agree). The band at
``x`` is the mean and sample standard deviation (ddof 1) over the seeds running at ``x``; with
a single seed running the standard deviation is undefined (NaN) and no band is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Band", "count_changes", "seed_band"]


@dataclass(frozen=True)
class Band:
    """A mean ± std band over seeds.

    Attributes:
        x: The grid, increasing.
        mean: The mean over the seeds running at each ``x`` (NaN where none is).
        std: The sample standard deviation (ddof 1) over them (NaN where fewer than 2 are).
        count: How many seeds are running at each ``x``.
    """

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray


def _on_grid(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One seed's series on ``grid``: NaN outside its span (NaN records are skipped)."""
    out = np.full(grid.shape, np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return out
    inside = (grid >= x[0]) & (grid <= x[-1])
    out[inside] = np.interp(grid[inside], x, y)
    return out


def seed_band(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], grid: np.ndarray | None = None
) -> Band:
    """The mean ± sample std over seeds of the series ``ys[i](xs[i])``, on a common grid.

    Args:
        xs: Per seed, the increasing positions of its records.
        ys: Per seed, the values (as long as its ``xs``); a NaN value counts as not recorded.
        grid: Where to compute the band (None: every position any seed recorded).

    Returns:
        The :class:`Band`.

    Raises:
        ValueError: If ``xs`` and ``ys`` differ in number or length, or an ``xs`` decreases.
    """
    if len(xs) != len(ys):
        raise ValueError(f"got {len(xs)} x series but {len(ys)} y series")
    series = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"seed {i}: x has shape {x.shape} but y has {y.shape}")
        if np.any(np.diff(x) < 0):
            raise ValueError(f"seed {i}: the x positions must increase")
        series.append((x, y))
    if grid is None:
        grid = np.unique(np.concatenate([x for x, _ in series])) if series else np.zeros(0)
    grid = np.asarray(grid, dtype=np.float64)
    values = np.array([_on_grid(grid, x, y) for x, y in series]).reshape(len(series), len(grid))
    count = np.isfinite(values).sum(axis=0)
    total = np.where(np.isfinite(values), values, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.full(grid.shape, np.nan), where=count > 0)
    sq = np.where(np.isfinite(values), (values - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(sq, count - 1, out=np.full(grid.shape, np.nan), where=count > 1))
    return Band(x=grid, mean=mean, std=std, count=count)


def count_changes(band: Band) -> list[tuple[float, int]]:
    """Where the number of running seeds changes along the band.

    Args:
        band: A band.

    Returns:
        ``(x, count)`` pairs: the first grid point at which ``count`` seeds are running, for
        every change after the first point.
    """
    c = band.count
    idx = np.flatnonzero(np.diff(c)) + 1
    return [(float(band.x[i]), int(c[i])) for i in idx]
