"""2-D planes through a weight vector: from a PCA, random, or filter-normalised random.

A :class:`Plane` is a centre θc and two directions d1, d2 (rows of a ``(2, P)`` array); its
point at coordinates ``(a, b)`` is ``θc + a·d1 + b·d2`` and a weight vector θ lies at the
least-squares coordinates of ``θ − θc`` in ``(d1, d2)`` (the orthogonal projection onto the
plane; for orthonormal directions simply ``(θ − θc)·d``).

- ``pca``: the top two principal components of the walks' points (unit, orthogonal);
- ``random``: two Gaussian directions, made orthogonal and each scaled to ‖θc‖ (unit length
  when θc = 0), so that a coordinate of 1 is a step as long as θc;
- ``filter``: Li et al., "Visualizing the Loss Landscape of Neural Nets" (2018): two Gaussian
  directions, each *filter* of each parameter tensor scaled to that filter's norm in θc. A
  filter is one output unit's slice of a parameter of rank ≥ 2 (a row of a dense weight, one
  output channel of a convolution kernel); parameters of rank ≤ 1 (biases, normalisation
  scales) get direction 0, as in the paper's figures (its code's ``ignore='biasbn'``). The
  directions are not orthogonalised (nor are the paper's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from manifoldwalk.plots.pca import PCAResult

__all__ = [
    "PLANES",
    "Plane",
    "filter_normalize",
    "filter_plane",
    "pca_plane",
    "random_plane",
    "square_axes",
]

PLANES = ("pca", "random", "filter")
"""The kinds of plane :func:`manifoldwalk.plots.loss_surface` draws."""


@dataclass(frozen=True)
class Plane:
    """A plane through ``center`` spanned by the rows of ``directions``.

    Attributes:
        center: ``(P,)`` float64, the plane's origin.
        directions: ``(2, P)`` float64.
        kind: ``"pca"``, ``"random"`` or ``"filter"``.
        explained_variance_ratio: For a PCA plane, each direction's share of the points'
            variance (None otherwise).
    """

    center: np.ndarray
    directions: np.ndarray
    kind: str
    explained_variance_ratio: np.ndarray | None = None

    def points(self, coords: np.ndarray) -> np.ndarray:
        """Weight vectors at coordinates: ``center + coords · directions``.

        Args:
            coords: ``(m, 2)`` coordinates.

        Returns:
            ``(m, P)`` float64 vectors.
        """
        return self.center + np.atleast_2d(np.asarray(coords, np.float64)) @ self.directions

    def project(self, thetas: np.ndarray) -> np.ndarray:
        """The coordinates of the orthogonal projections of weight vectors onto the plane.

        Args:
            thetas: ``(m, P)`` (or ``(P,)``) weight vectors.

        Returns:
            ``(m, 2)`` (or ``(2,)``) least-squares coordinates.

        Raises:
            ValueError: The two directions are parallel (the plane is a line).
        """
        d = self.directions
        gram = d @ d.T
        if np.linalg.cond(gram) > 1e12:
            raise ValueError("the plane's two directions are parallel; it spans a line")
        rhs = (np.asarray(thetas, np.float64) - self.center) @ d.T
        return np.linalg.solve(gram, rhs.T).T


def pca_plane(pca: PCAResult, center: np.ndarray | None = None) -> Plane:
    """The plane of the top two principal components, through ``center``.

    Args:
        pca: An analysis with at least two components.
        center: The origin (None: the points' mean, the paper's choice).

    Returns:
        The :class:`Plane`.

    Raises:
        ValueError: Fewer than two components.
    """
    if pca.n_components < 2:
        raise ValueError(
            f"a PCA plane needs two principal components; the points have {pca.n_components} "
            "(a walk that barely moved, or a single point): use plane='random' or 'filter'"
        )
    origin = pca.mean if center is None else np.asarray(center, np.float64)
    return Plane(origin, pca.components[:2].copy(), "pca", pca.explained_variance_ratio[:2])


def random_plane(center: np.ndarray, rng: np.random.Generator) -> Plane:
    """Two orthogonal Gaussian directions, each as long as ``center`` (unit when it is 0).

    Args:
        center: ``(P,)`` the origin, ``P ≥ 2``.
        rng: The random generator.

    Returns:
        The :class:`Plane`.

    Raises:
        ValueError: ``P < 2``.
    """
    center = np.asarray(center, np.float64)
    if center.size < 2:
        raise ValueError(f"a plane needs at least 2 parameters, got {center.size}")
    d = rng.standard_normal((2, center.size))
    d[1] -= (d[1] @ d[0]) / (d[0] @ d[0]) * d[0]
    length = float(np.linalg.norm(center)) or 1.0
    d *= length / np.linalg.norm(d, axis=1, keepdims=True)
    return Plane(center, d, "random")


def filter_normalize(
    direction: np.ndarray, center: np.ndarray, shapes: Sequence[tuple[int, ...]], axis: int = 0
) -> np.ndarray:
    """Scale each filter of ``direction`` to the norm of the same filter of ``center``.

    Args:
        direction: ``(P,)`` a direction in flat θ.
        center: ``(P,)`` the weights whose filter norms are matched.
        shapes: The parameters' shapes in θ's order (their sizes add up to ``P``).
        axis: The output-unit axis of a parameter of rank ≥ 2 (0 in PyTorch, whose weights
            are ``(out, in, …)``; −1 in JAX and Keras, whose kernels are ``(…, in, out)``).

    Returns:
        The normalised direction (a new array); parameters of rank ≤ 1 are 0, and so is a
        filter whose centre filter is 0.

    Raises:
        ValueError: The shapes do not add up to ``P``.
    """
    direction = np.asarray(direction, np.float64)
    center = np.asarray(center, np.float64)
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if sum(sizes) != direction.size or direction.shape != center.shape:
        raise ValueError(
            f"the parameter shapes hold {sum(sizes)} values but θ has {direction.size}: "
            "give the shapes of the trainable parameters in θ's order"
        )
    out = np.zeros_like(direction)
    start = 0
    for shape, size in zip(shapes, sizes, strict=True):
        stop = start + size
        if len(shape) >= 2:
            d = np.moveaxis(direction[start:stop].reshape(shape), axis, 0)
            w = np.moveaxis(center[start:stop].reshape(shape), axis, 0)
            d2, w2 = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
            dn = np.linalg.norm(d2, axis=1, keepdims=True)
            wn = np.linalg.norm(w2, axis=1, keepdims=True)
            scaled = np.divide(d2 * wn, dn, out=np.zeros_like(d2), where=dn > 0)
            out[start:stop] = np.moveaxis(scaled.reshape(d.shape), 0, axis).reshape(-1)
        start = stop
    return out


def filter_plane(
    center: np.ndarray,
    shapes: Sequence[tuple[int, ...]],
    rng: np.random.Generator,
    axis: int = 0,
) -> Plane:
    """Two Gaussian directions, filter-normalised to ``center`` (Li et al., 2018).

    Args:
        center: ``(P,)`` the origin (the trained weights).
        shapes: The parameters' shapes in θ's order.
        rng: The random generator.
        axis: The output-unit axis of the parameters (see :func:`filter_normalize`).

    Returns:
        The :class:`Plane`.

    Raises:
        ValueError: The shapes do not add up to ``P``, or no parameter has rank ≥ 2 (every
            direction would be 0).
    """
    center = np.asarray(center, np.float64)
    if not any(len(s) >= 2 for s in shapes):
        raise ValueError(
            "filter normalisation scales the filters of parameters of rank ≥ 2, and these "
            f"shapes {list(shapes)} have none: use plane='random'"
        )
    d = rng.standard_normal((2, center.size))
    d = np.stack([filter_normalize(v, center, shapes, axis) for v in d])
    return Plane(center, d, "filter")


def square_axes(points: np.ndarray, n: int, margin: float = 0.15) -> tuple[np.ndarray, ...]:
    """Grid axes of equal length covering 2-D points with a margin (a square in the plane).

    Both axes span the larger of the points' two ranges, plus ``margin`` of it on each side,
    centred on the points' middle along each axis.

    Args:
        points: ``(m, 2)`` coordinates.
        n: Grid points per axis (at least 2).
        margin: Extra room on each side, as a fraction of the range.

    Returns:
        ``(a, b)``: the two axes, each of length ``n``, increasing.

    Raises:
        ValueError: ``n < 2`` or no points.
    """
    if n < 2:
        raise ValueError(f"the grid needs at least 2 points per axis, got {n}")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"expected (m, 2) points, got shape {points.shape}")
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = float(np.max(hi - lo))
    if span <= 0:
        span = max(float(np.abs(points).max()), 1.0)
    half = span * (0.5 + margin)
    mid = (lo + hi) / 2
    return tuple(np.linspace(m - half, m + half, n) for m in mid)
