"""The training loss over a grid in a plane (:mod:`~manifoldwalk.plots.planes`).

Grid point ``(a[i], b[j])`` is the weight vector ``center + a[i]·d1 + b[j]·d2``; its loss is
evaluated by an evaluator with ``plane_losses(origin, basis, coords, *, chunk, progress)``
(:func:`~manifoldwalk.plots.losses.plane_evaluator`: batched on the device where the problem
offers it, one loss per point otherwise), with a progress bar for long grids
(:func:`~manifoldwalk.plots.progress.progress_bar`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manifoldwalk.plots.planes import Plane
from manifoldwalk.plots.progress import progress_bar

__all__ = ["grid_coords", "surface_losses"]


def grid_coords(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every grid point's coordinates, row by row: ``(a[i], b[j])`` at row ``j·len(a) + i``.

    Args:
        a: The first axis.
        b: The second axis.

    Returns:
        ``(len(a)·len(b), 2)`` coordinates (reshape values to ``(len(b), len(a))``).
    """
    aa, bb = np.meshgrid(np.asarray(a, float), np.asarray(b, float))
    return np.column_stack([aa.ravel(), bb.ravel()])


def surface_losses(
    evaluator: Any,
    plane: Plane,
    a: np.ndarray,
    b: np.ndarray,
    *,
    chunk: int = 64,
    show_progress: bool = True,
    label: str = "loss surface",
) -> np.ndarray:
    """The loss over the grid ``a × b`` of ``plane``.

    Args:
        evaluator: Has ``plane_losses(origin, basis, coords, *, chunk, progress)``.
        plane: The plane.
        a: Coordinates along the first direction.
        b: Coordinates along the second.
        chunk: Weight vectors evaluated together (batched evaluators) or between progress
            reports.
        show_progress: Draw a progress bar.
        label: The progress bar's label.

    Returns:
        ``(len(b), len(a))`` float64 losses: row ``j``, column ``i`` at ``(a[i], b[j])``.
    """
    coords = grid_coords(a, b)
    bar = progress_bar(len(coords), label, unit="points", enabled=show_progress)
    try:
        losses = evaluator.plane_losses(
            plane.center,
            plane.directions,
            coords,
            chunk=chunk,
            progress=lambda done, total: bar.update(done),
        )
    finally:
        bar.close()
    return np.asarray(losses, dtype=np.float64).reshape(len(b), len(a))
