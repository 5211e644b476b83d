"""The training loss over a grid in the plane of the top two principal components.

Grid point ``(a, b)`` is the weight vector ``mean + a·pc1 + b·pc2``
(:func:`~manifoldwalk.plots.pca.plane_points`); its loss is evaluated through the seed's
problem, many points at a time on the device. The grid spans the projected trajectories with a
margin on every side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from manifoldwalk.experiments.progress import ProgressBar
from manifoldwalk.plots.evaluate import SeedProblem
from manifoldwalk.plots.pca import PCAResult

__all__ = ["Surface", "grid_axes", "grid_coords", "loss_surface"]


def grid_axes(points: np.ndarray, n: int = 100, margin: float = 0.15) -> tuple[np.ndarray, ...]:
    """Evenly spaced grid axes covering 2-D points with a margin.

    Args:
        points: ``(m, 2)`` coordinates (e.g. the projected trajectories).
        n: Grid points per axis (at least 2).
        margin: Extra room on each side, as a fraction of the points' range on that axis.

    Returns:
        ``(a, b)``: the two axes, each of length ``n``, increasing.

    Raises:
        ValueError: If ``n < 2`` or there are no points.
    """
    if n < 2:
        raise ValueError(f"the grid needs at least 2 points per axis, got {n}")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"expected (m, 2) points, got shape {points.shape}")
    axes = []
    for j in range(2):
        lo, hi = float(points[:, j].min()), float(points[:, j].max())
        span = hi - lo if hi > lo else max(abs(lo), 1.0)
        axes.append(np.linspace(lo - margin * span, hi + margin * span, n))
    return axes[0], axes[1]


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


@dataclass
class Surface:
    """The training loss over a grid in the PC1–PC2 plane.

    Attributes:
        a: PC1 coordinates of the grid columns.
        b: PC2 coordinates of the grid rows.
        loss: ``(len(b), len(a))`` training loss at ``mean + a·pc1 + b·pc2``.
        seed: The seed whose training set (and net) gave the loss.
    """

    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    seed: int


def loss_surface(
    evaluator: SeedProblem,
    pca: PCAResult,
    a: np.ndarray,
    b: np.ndarray,
    *,
    chunk: int = 256,
    show_progress: bool = True,
    label: str = "loss surface",
) -> Surface:
    """Evaluate the training loss over the grid ``a × b`` in the top-2 PCA plane.

    Args:
        evaluator: The seed's rebuilt problem (:func:`~manifoldwalk.plots.evaluate.rebuild`).
        pca: The analysis whose mean and first two components span the plane.
        a: PC1 coordinates.
        b: PC2 coordinates.
        chunk: Weight vectors evaluated together on the device.
        show_progress: Draw a progress bar on stderr.
        label: The progress bar's label.

    Returns:
        The :class:`Surface`.

    Raises:
        ValueError: If the analysis has fewer than two components.
    """
    if pca.n_components < 2:
        raise ValueError(
            f"the loss surface needs two principal components, the points have {pca.n_components}"
        )
    coords = grid_coords(a, b)
    bar = ProgressBar(len(coords), label, unit="points", enabled=show_progress)
    losses = evaluator.plane_losses(
        pca.mean,
        pca.components[:2],
        coords,
        chunk=chunk,
        progress=lambda done, total: bar.update(done),
    )
    bar.close()
    return Surface(
        a=np.asarray(a, float),
        b=np.asarray(b, float),
        loss=np.asarray(losses, dtype=np.float64).reshape(len(b), len(a)),
        seed=evaluator.seed,
    )
