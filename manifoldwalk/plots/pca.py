"""Exact, memory-bounded PCA of many weight vectors through their n×n Gram matrix.

The points are ``n`` weight vectors of ``P`` parameters each, stored in run files (one array of
rows per file). They never sit in memory as one ``n × P`` matrix: :func:`gram_matrix` reads
blocks of parameters (columns) of every point, ``n × b`` at a time, and accumulates the
uncentred Gram matrix ``G = X Xᵀ`` in float64. Centring is then exact algebra on ``G``
(``Gc = J G J`` with ``J = I − 11ᵀ/n``), restricted to any subset of the points, and the top
eigenpairs of ``Gc`` give the principal components: ``Xc = U S Vᵀ`` so ``Gc = U S² Uᵀ``, the
scores are ``U S`` and the components ``Vᵀ = S⁻¹ Uᵀ Xc``, built by a second pass over the same
blocks. With CIFAR10-CNV (685,450 parameters, 4,000 points) the largest arrays are ``G``
(n² floats) and one block.

Conventions follow scikit-learn's ``PCA``: explained variance ``s²/(n−1)``, ratio ``s²/Σs²``
and the sign of each component chosen so that its entry of largest magnitude is positive.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg

__all__ = [
    "PCAResult",
    "PointSet",
    "exact_pca",
    "gram_matrix",
    "npz_array",
    "pca_from_gram",
    "plane_points",
    "project",
]

_BLOCK_BYTES = 64 * 2**20
"""Default memory for one block of points (n × b float64 values)."""


def npz_array(path: str | os.PathLike[str], key: str) -> np.ndarray:
    """Open one array of an ``.npz`` file, memory-mapped when it is stored uncompressed.

    The run files are written uncompressed (:func:`numpy.savez`), so the array is mapped
    straight from the file and slicing a block of columns reads only those bytes. A compressed
    member is read whole.

    Args:
        path: The ``.npz`` file.
        key: The array's name in it (e.g. ``"theta"``).

    Returns:
        The array (a read-only :class:`numpy.memmap` where possible).

    Raises:
        KeyError: If the file has no array ``key``.
        ValueError: If the member holds pickled objects.
    """
    path = Path(path)
    member = f"{key}.npy"
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise KeyError(f"{path} has no array {key!r} (it holds {zf.namelist()})") from None
        if info.compress_type != zipfile.ZIP_STORED:
            with np.load(path, allow_pickle=False) as f:
                return f[key]
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                with np.load(path, allow_pickle=False) as whole:
                    return whole[key]
            header = f.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}:{key} holds Python objects; refusing to unpickle it")
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
    offset = info.header_offset + 30 + name_len + extra_len + header
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(
        path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset
    )


class PointSet:
    """``n`` points of dimension ``P`` held as row selections of several 2-D arrays.

    Args:
        parts: ``(array, rows)`` pairs: ``array`` is ``(m, P)`` (a memmap, an array), ``rows``
            the indices of its rows that are points, in order. The points are the selected rows
            of the first part, then of the second, and so on.

    Raises:
        ValueError: If there are no points or the parts disagree on ``P``.
    """

    def __init__(self, parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.parts = [(a, np.asarray(r, dtype=np.intp)) for a, r in parts]
        self.parts = [(a, r) for a, r in self.parts if len(r)]
        if not self.parts:
            raise ValueError("no points: every part selects zero rows")
        dims = {a.shape[1] for a, _ in self.parts}
        if len(dims) != 1:
            raise ValueError(f"the points have different dimensions: {sorted(dims)}")
        self.n_params: int = dims.pop()
        self.n_points: int = sum(len(r) for _, r in self.parts)

    @classmethod
    def from_array(cls, x: np.ndarray) -> PointSet:
        """All rows of one ``(n, P)`` array as the points.

        Args:
            x: The points, one per row.

        Returns:
            The point set.
        """
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"expected an (n, P) array of points, got shape {x.shape}")
        return cls([(x, np.arange(x.shape[0]))])

    def block(self, start: int, stop: int) -> np.ndarray:
        """Columns ``start:stop`` of every point, as a float64 ``(n, stop − start)`` array.

        Args:
            start: The first parameter.
            stop: One past the last parameter.

        Returns:
            The block.
        """
        out = np.empty((self.n_points, stop - start), dtype=np.float64)
        row = 0
        for a, r in self.parts:
            out[row : row + len(r)] = a[r, start:stop]
            row += len(r)
        return out

    def column_blocks(self, block: int | None = None) -> list[tuple[int, int]]:
        """The ``(start, stop)`` column ranges that cover ``P`` in blocks of ``block``.

        Args:
            block: Columns per block (None: as many as fit 64 MiB of float64 for ``n`` points).

        Returns:
            The ranges, in order.

        Raises:
            ValueError: If ``block`` is not positive.
        """
        if block is None:
            block = max(1, _BLOCK_BYTES // (8 * self.n_points))
        if block < 1:
            raise ValueError(f"block must be a positive number of columns, got {block}")
        return [(j, min(j + block, self.n_params)) for j in range(0, self.n_params, block)]


def gram_matrix(points: PointSet, *, block: int | None = None) -> np.ndarray:
    """The uncentred Gram matrix ``X Xᵀ`` of the points, accumulated over parameter blocks.

    Args:
        points: The ``n`` points.
        block: Parameters per block (None: 64 MiB of float64 per block).

    Returns:
        An ``(n, n)`` float64 array.
    """
    n = points.n_points
    gram = np.zeros((n, n), dtype=np.float64)
    for start, stop in points.column_blocks(block):
        xb = points.block(start, stop)
        gram += xb @ xb.T
    return gram


@dataclass
class PCAResult:
    """The top principal components of a set of points.

    Attributes:
        mean: The points' mean, ``(P,)`` float64.
        components: ``(k, P)`` unit-norm, orthogonal directions, by decreasing variance.
        explained_variance: ``(k,)`` variance along each, ``s²/(n−1)``.
        explained_variance_ratio: ``(k,)`` share of the total variance along each.
        scores: ``(n, k)`` coordinates of the points, ``(x − mean) · components``.
        total_variance: The total variance ``Σ s²/(n−1)`` (all components).
        n_points: ``n``.
        rows: The indices (into the point set) of the points analysed.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    scores: np.ndarray
    total_variance: float
    n_points: int
    rows: np.ndarray

    @property
    def n_components(self) -> int:
        """The number of components ``k``."""
        return int(self.components.shape[0])


def pca_from_gram(
    points: PointSet,
    gram: np.ndarray,
    *,
    n_components: int = 6,
    rows: Sequence[int] | np.ndarray | None = None,
    block: int | None = None,
) -> PCAResult:
    """The top principal components of (a subset of) the points, from their Gram matrix.

    One more pass over the points' blocks computes the mean and the components. Components
    beyond the rank of the centred points (variance 0) are left out, so ``k`` may be smaller
    than ``n_components``.

    Args:
        points: The point set ``gram`` was computed from.
        gram: :func:`gram_matrix` of ``points``.
        n_components: The number of components wanted.
        rows: The points to analyse (None: all).
        block: Parameters per block (None: 64 MiB of float64 per block).

    Returns:
        The :class:`PCAResult`.

    Raises:
        ValueError: If fewer than 2 points are selected, ``n_components < 1`` or ``gram`` does
            not match ``points``.
    """
    n_all = points.n_points
    if gram.shape != (n_all, n_all):
        raise ValueError(f"gram has shape {gram.shape}, expected ({n_all}, {n_all})")
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}")
    idx = np.arange(n_all) if rows is None else np.asarray(rows, dtype=np.intp)
    n = len(idx)
    if n < 2:
        raise ValueError(f"PCA needs at least 2 points, got {n}")
    everything = n == n_all and np.array_equal(idx, np.arange(n_all))
    g = gram if everything else gram[np.ix_(idx, idx)]
    scale = max(float(g.max()), -float(g.min()))
    row_mean = g.mean(axis=1)
    gc = g - row_mean[:, None]  # Gc = J G J, built in place in one n×n array
    gc -= row_mean[None, :]
    gc += row_mean.mean()
    del g
    total = float(np.trace(gc))
    k = min(n_components, n - 1, points.n_params)
    # eigh reads one triangle of the (symmetric) matrix and may overwrite it
    values, vectors = scipy.linalg.eigh(gc, subset_by_index=[n - k, n - 1], overwrite_a=True)
    del gc
    values, vectors = values[::-1], vectors[:, ::-1]
    # eigenvalues below the rounding error of the centred Gram matrix are zero variance
    tol = max(1e-10 * max(values[0], 0.0), 64 * np.finfo(float).eps * n * scale)
    keep = values > tol
    values, vectors = values[keep], vectors[:, keep]
    s = np.sqrt(values)
    # Vᵀ = S⁻¹ Uᵀ Xc, one block of parameters at a time
    weights = (vectors / s).T  # (k, n)
    mean = np.empty(points.n_params)
    components = np.empty((len(s), points.n_params))
    for start, stop in points.column_blocks(block):
        xb = points.block(start, stop)
        if not everything:
            xb = xb[idx]
        mean[start:stop] = xb.mean(axis=0)
        xb -= mean[start:stop]
        components[:, start:stop] = weights @ xb
    scores = vectors * s
    # scikit-learn's sign convention: the largest-magnitude entry of each component is positive
    signs = np.sign(components[np.arange(len(s)), np.argmax(np.abs(components), axis=1)])
    signs[signs == 0] = 1.0
    components *= signs[:, None]
    scores *= signs[None, :]
    dof = n - 1
    return PCAResult(
        mean=mean,
        components=components,
        explained_variance=values / dof,
        explained_variance_ratio=values / total if total > 0 else np.zeros_like(values),
        scores=scores,
        total_variance=total / dof,
        n_points=n,
        rows=idx,
    )


def exact_pca(
    points: PointSet | np.ndarray,
    *,
    n_components: int = 6,
    rows: Sequence[int] | np.ndarray | None = None,
    block: int | None = None,
) -> PCAResult:
    """PCA of the points by :func:`gram_matrix` then :func:`pca_from_gram`.

    Args:
        points: A :class:`PointSet` or an ``(n, P)`` array.
        n_components: The number of components wanted.
        rows: The points to analyse (None: all).
        block: Parameters per block (None: 64 MiB of float64 per block).

    Returns:
        The :class:`PCAResult`.
    """
    if not isinstance(points, PointSet):
        points = PointSet.from_array(points)
    gram = gram_matrix(points, block=block)
    return pca_from_gram(points, gram, n_components=n_components, rows=rows, block=block)


def project(pca: PCAResult, theta: np.ndarray) -> np.ndarray:
    """Coordinates of weight vectors in the principal components: ``(θ − mean) · components``.

    Args:
        pca: The analysis.
        theta: One ``(P,)`` vector or ``(m, P)`` vectors.

    Returns:
        ``(k,)`` or ``(m, k)`` coordinates.
    """
    theta = np.asarray(theta, dtype=np.float64)
    return (theta - pca.mean) @ pca.components.T


def plane_points(pca: PCAResult, coords: np.ndarray) -> np.ndarray:
    """Weight vectors at coordinates of the leading components: ``mean + coords · components``.

    Args:
        pca: The analysis.
        coords: ``(m, j)`` coordinates along the first ``j`` components (e.g. ``j = 2`` for the
            plane of PC1 and PC2).

    Returns:
        ``(m, P)`` float64 weight vectors.

    Raises:
        ValueError: If ``coords`` names more components than the analysis has.
    """
    coords = np.atleast_2d(np.asarray(coords, dtype=np.float64))
    j = coords.shape[1]
    if j > pca.n_components:
        raise ValueError(f"coords name {j} components but the analysis has {pca.n_components}")
    return pca.mean + coords @ pca.components[:j]
