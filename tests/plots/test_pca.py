"""The exact Gram-matrix PCA against scikit-learn, and the PCA plane's mapping to weight space."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from manifoldwalk.experiments.rundir import atomic_write_npz
from manifoldwalk.plots.pca import (
    PointSet,
    exact_pca,
    gram_matrix,
    npz_array,
    pca_from_gram,
    plane_points,
    project,
)


def _points(rng: np.random.Generator, n: int, p: int, rank: int) -> np.ndarray:
    """n points in p dimensions, offset far from 0, with well separated variances along
    ``rank`` random orthogonal directions (so every component is well defined)."""
    u, _ = np.linalg.qr(rng.normal(size=(n, rank)))
    v, _ = np.linalg.qr(rng.normal(size=(p, rank)))
    s = 10.0 * 0.5 ** np.arange(rank)
    return 3.0 + rng.normal(size=p) + (u * s) @ v.T


def _assert_matches_sklearn(ours, x: np.ndarray, k: int) -> None:
    ref = PCA(n_components=k, svd_solver="full").fit(x)
    assert ours.n_components == k
    scale = ref.explained_variance_[0]
    np.testing.assert_allclose(ours.explained_variance, ref.explained_variance_, atol=1e-9 * scale)
    np.testing.assert_allclose(
        ours.explained_variance_ratio, ref.explained_variance_ratio_, atol=1e-10
    )
    np.testing.assert_allclose(ours.mean, ref.mean_, atol=1e-10 * np.abs(x).max())
    for i in range(k):  # components up to sign
        c, r = ours.components[i], ref.components_[i]
        sign = np.sign(c @ r)
        assert sign != 0
        np.testing.assert_allclose(c, sign * r, atol=1e-8)
        np.testing.assert_allclose(
            ours.scores[:, i], sign * ref.transform(x)[:, i], atol=1e-8 * np.sqrt(scale)
        )


@settings(max_examples=40)
@given(
    n=st.integers(8, 30),
    p=st.integers(8, 70),
    block=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
)
def test_pca_agrees_with_sklearn(n, p, block, seed):
    rng = np.random.default_rng(seed)
    rank = min(6, n - 1, p)
    x = _points(rng, n, p, rank)
    ours = exact_pca(x, n_components=rank, block=block)
    _assert_matches_sklearn(ours, x, rank)
    assert ours.total_variance == pytest.approx(x.var(axis=0, ddof=1).sum(), rel=1e-9)


@settings(max_examples=25)
@given(n=st.integers(10, 30), block=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_pca_of_a_subset_from_the_full_gram_matrix(n, block, seed):
    rng = np.random.default_rng(seed)
    x = _points(rng, n, 35, 6)
    rows = np.sort(rng.choice(n, size=8, replace=False))
    points = PointSet.from_array(x)
    ours = pca_from_gram(
        points, gram_matrix(points, block=block), n_components=5, rows=rows, block=block
    )
    _assert_matches_sklearn(ours, x[rows], 5)


def test_memory_mapped_run_files_with_row_selections(tmp_path):
    """The path the plots take: several npz files, memory-mapped, some rows of each, in small
    blocks of parameters."""
    rng = np.random.default_rng(7)
    x = _points(rng, 40, 103, 6).astype(np.float32)
    files, parts, expected = [], [], []
    for i, (lo, hi) in enumerate([(0, 15), (15, 31), (31, 40)]):
        path = tmp_path / f"thetas-{i}.npz"
        atomic_write_npz(path, steps=np.arange(lo, hi), theta=x[lo:hi])
        files.append(path)
        arr = npz_array(path, "theta")
        assert isinstance(arr, np.memmap) and arr.dtype == np.float32
        np.testing.assert_array_equal(arr, x[lo:hi])
        rows = np.arange(1 if i else 0, hi - lo)  # drop a repeated first point of a segment
        parts.append((arr, rows))
        expected.append(x[lo:hi][rows])
    ours = exact_pca(PointSet(parts), n_components=6, block=7)
    _assert_matches_sklearn(ours, np.concatenate(expected).astype(np.float64), 6)


def test_npz_array_names_a_missing_array(tmp_path):
    atomic_write_npz(tmp_path / "a.npz", theta=np.zeros((2, 3)))
    with pytest.raises(KeyError, match="no array 'steps'"):
        npz_array(tmp_path / "a.npz", "steps")


def test_rank_deficient_points_give_only_real_components():
    rng = np.random.default_rng(3)
    x = _points(rng, 12, 20, 2)  # two directions of variance only
    ours = exact_pca(x, n_components=6, block=3)
    assert ours.n_components == 2
    _assert_matches_sklearn(ours, x, 2)


@given(
    a=st.floats(-50, 50, allow_nan=False),
    b=st.floats(-50, 50, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_plane_point_maps_to_weight_space_and_back(a, b, seed):
    rng = np.random.default_rng(seed)
    x = _points(rng, 20, 30, 5)
    pca = exact_pca(x, n_components=4, block=4)
    theta = plane_points(pca, np.array([[a, b]]))[0]
    np.testing.assert_allclose(
        theta,
        pca.mean + a * pca.components[0] + b * pca.components[1],
        atol=1e-12 * (1 + abs(a) + abs(b)),
    )
    back = project(pca, theta)
    np.testing.assert_allclose(back[:2], [a, b], atol=1e-9 * (1 + abs(a) + abs(b)))
    np.testing.assert_allclose(back[2:], 0.0, atol=1e-9 * (1 + abs(a) + abs(b)))


def test_plane_points_refuses_more_coordinates_than_components():
    pca = exact_pca(_points(np.random.default_rng(0), 6, 10, 2), n_components=2)
    with pytest.raises(ValueError, match="3 components but the analysis has 2"):
        plane_points(pca, np.zeros((1, 3)))
