"""The PCA of walks' kept points: which points, whose, at which step, and how many components
carry variance.

The points of each walk are row selections of arrays (:class:`~manifoldwalk.plots.pca.PointSet`
parts): a :class:`~manifoldwalk.WalkResult`'s ``trajectory`` in memory, or the memory-mapped
``walk/thetas-*.npz`` files of a run directory. :func:`trajectory_pca` analyses them all with the
exact, memory-bounded Gram-matrix PCA of :mod:`~manifoldwalk.plots.pca` and keeps the Gram
matrix, so that the PCA of the first ``k`` walks (one loss surface per ``k``) costs no further
pass over the parameters but the components'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.plots.pca import PCAResult, PointSet, gram_matrix, pca_from_gram

__all__ = [
    "MIN_VARIANCE_RATIO",
    "TrajectoryPCA",
    "result_points",
    "significant_components",
    "trajectory_pca",
]

MIN_VARIANCE_RATIO = 1e-6
"""Components explaining less than this share of the variance are not drawn (they hold
rounding, not a direction the walks took)."""

Parts = list[tuple[np.ndarray, np.ndarray]]


def significant_components(ratio: np.ndarray, threshold: float = MIN_VARIANCE_RATIO) -> int:
    """How many leading components explain at least ``threshold`` of the variance each.

    Args:
        ratio: The explained-variance ratios, decreasing.
        threshold: The smallest share that counts.

    Returns:
        The count.
    """
    return int(np.sum(np.asarray(ratio) >= threshold))


def result_points(results: Sequence[Any], every: int = 1) -> tuple[list[Parts], list[np.ndarray]]:
    """The kept θ of each result as point-set parts, with the predictor step of each point.

    A walk keeps θ every ``trajectory_every`` predictor steps (``Record(trajectory_every=…)``),
    so its i-th kept point is at predictor step ``i · trajectory_every``.

    Args:
        results: :class:`~manifoldwalk.WalkResult` s (any array type; copied to numpy).
        every: Keep every ``every``-th point of each trajectory (1: all).

    Returns:
        ``(parts, steps)``: per result, its ``[(array, rows)]`` and the rows' steps.

    Raises:
        ValueError: No results, ``every < 1``, or a result without a trajectory (the message
            says how to record one).
    """
    if not results:
        raise ValueError("no walks: pass at least one WalkResult")
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    parts, steps = [], []
    for i, r in enumerate(results):
        traj = None if r.trajectory is None else np.asarray(to_numpy(r.trajectory))
        if traj is None or traj.ndim != 2 or len(traj) == 0:
            raise ValueError(
                f"result {i} kept no trajectory; walk with "
                "record=Record(trajectory_every=k) to keep every k-th θ"
            )
        rows = np.arange(0, len(traj), every)
        stride = int((getattr(r, "options", None) or {}).get("trajectory_every") or 1)
        parts.append([(traj, rows)])
        steps.append(rows * stride)
    return parts, steps


@dataclass(frozen=True)
class TrajectoryPCA:
    """The PCA of every walk's points.

    Attributes:
        pca: The analysis of all points.
        points: The points (parts in walk order).
        gram: Their uncentred Gram matrix (for the PCA of subsets).
        walk_index: ``(n,)`` which walk each point belongs to.
        steps: ``(n,)`` each point's predictor step.
        n_walks: The number of walks.
        block: Parameters per block of the passes over the points.
    """

    pca: PCAResult
    points: PointSet
    gram: np.ndarray
    walk_index: np.ndarray
    steps: np.ndarray
    n_walks: int
    block: int | None = None

    def first_walks(self, k: int, n_components: int = 2) -> PCAResult:
        """The PCA of the points of the first ``k`` walks (the same analysis when ``k`` is all).

        Args:
            k: The number of walks.
            n_components: Components wanted.

        Returns:
            The analysis; its ``rows`` index :attr:`walk_index` and :attr:`steps`.
        """
        if k >= self.n_walks:
            return self.pca
        rows = np.flatnonzero(self.walk_index < k)
        return pca_from_gram(
            self.points, self.gram, n_components=n_components, rows=rows, block=self.block
        )


def trajectory_pca(
    parts: Sequence[Parts],
    steps: Sequence[np.ndarray],
    *,
    n_components: int = 6,
    block: int | None = None,
) -> TrajectoryPCA:
    """The exact PCA of the walks' points, through their Gram matrix over parameter blocks.

    Args:
        parts: Per walk, its points as ``[(array, rows)]``.
        steps: Per walk, its points' predictor steps.
        n_components: Components wanted (fewer when the points span fewer).
        block: Parameters per block (None: 64 MiB of float64 per block).

    Returns:
        The :class:`TrajectoryPCA`.

    Raises:
        ValueError: Fewer than 2 points, or walks of different lengths of θ.
    """
    owner = [np.full(len(s), i) for i, s in enumerate(steps)]
    points = PointSet([p for walk in parts for p in walk])
    gram = gram_matrix(points, block=block)
    pca = pca_from_gram(points, gram, n_components=n_components, block=block)
    return TrajectoryPCA(
        pca=pca,
        points=points,
        gram=gram,
        walk_index=np.concatenate(owner),
        steps=np.concatenate([np.asarray(s) for s in steps]),
        n_walks=len(parts),
        block=block,
    )
