"""Seeded splitting and subsetting, and z-scoring with training statistics."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_count",
    "make_rng",
    "random_split",
    "random_subset",
    "stratified_split",
    "zscore",
]


def make_rng(seed: int) -> np.random.Generator:
    """Return numpy's default generator for a non-negative integer seed.

    Args:
        seed: The seed; the same seed always gives the same split or subset.

    Returns:
        A fresh ``numpy.random.Generator`` (PCG64).

    Raises:
        TypeError: If ``seed`` is not an integer (booleans are refused).
        ValueError: If ``seed`` is negative.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.default_rng(int(seed))


def check_count(what: str, count: int, low: int, high: int) -> None:
    """Check that a count is an integer within bounds.

    Args:
        what: Name of the count, used in the message.
        count: The value to check.
        low: Smallest allowed value.
        high: Largest allowed value.

    Raises:
        TypeError: If ``count`` is not an integer (booleans are refused).
        ValueError: If ``count`` is outside ``[low, high]``.
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {type(count).__name__}")
    if not low <= count <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {count}")


def random_subset(n_total: int, n_subset: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n_subset`` distinct indices out of ``range(n_total)`` uniformly at random.

    Args:
        n_total: Number of examples available.
        n_subset: Number to draw, ``1 <= n_subset <= n_total``.
        rng: Generator that decides the draw.

    Returns:
        The drawn indices, int64, sorted increasingly.

    Raises:
        ValueError: If ``n_subset`` is out of range.
    """
    check_count("n_subset", n_subset, 1, n_total)
    return np.sort(rng.choice(n_total, size=n_subset, replace=False)).astype(np.int64)


def random_split(n: int, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` at random into train and test indices.

    Args:
        n: Number of examples.
        n_test: Size of the test part, ``1 <= n_test <= n - 1``.
        rng: Generator that decides the split.

    Returns:
        ``(train_idx, test_idx)``: disjoint, together ``range(n)``, each sorted, int64.

    Raises:
        ValueError: If ``n_test`` is out of range.
    """
    check_count("n_test", n_test, 1, n - 1)
    perm = rng.permutation(n)
    return np.sort(perm[n_test:]).astype(np.int64), np.sort(perm[:n_test]).astype(np.int64)


def _stratum_quotas(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Share ``n_test`` among classes in proportion to ``counts`` (largest remainders first)."""
    exact = n_test * counts / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[: n_test - quotas.sum()]] += 1
    return quotas


def stratified_split(
    y: np.ndarray, n_test: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split examples at random so that each class keeps its share in the test part.

    Each class contributes ``n_test * count / n`` test examples, rounded so that the total is
    exactly ``n_test`` (the largest fractional parts are rounded up; ties go to the lower label).

    Args:
        y: Class labels, shape ``(n,)``.
        n_test: Size of the test part, ``1 <= n_test <= n - 1``.
        rng: Generator that decides which examples of each class are held out.

    Returns:
        ``(train_idx, test_idx)``: disjoint, together ``range(n)``, each sorted, int64.

    Raises:
        ValueError: If ``y`` is not one-dimensional or ``n_test`` is out of range.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    check_count("n_test", n_test, 1, len(y) - 1)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quotas = _stratum_quotas(counts, n_test)
    test_parts = [
        rng.choice(np.flatnonzero(inverse == k), size=quotas[k], replace=False)
        for k in range(len(classes))
    ]
    is_test = np.zeros(len(y), dtype=bool)
    is_test[np.concatenate(test_parts)] = True
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def zscore(
    x_train: np.ndarray, x_test: np.ndarray, columns: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise columns with the training mean and standard deviation.

    Statistics are computed in float64 over the training rows only (population standard
    deviation, ``ddof=0``) and applied to both parts; a constant training column is centred
    but not scaled.

    Args:
        x_train: Training inputs, shape ``(n_train, n_features)``.
        x_test: Test inputs, shape ``(n_test, n_features)``.
        columns: Boolean mask or integer indices of the columns to standardise; all if None.

    Returns:
        ``(x_train_z, x_test_z)``, new float64 arrays; columns not selected are unchanged.

    Raises:
        ValueError: If the arrays are not two-dimensional with the same number of columns.
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"need 2-d arrays with equal columns, got {x_train.shape}, {x_test.shape}")
    cols = np.arange(x_train.shape[1]) if columns is None else np.asarray(columns)
    mean = x_train[:, cols].mean(axis=0)
    std = x_train[:, cols].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train_z, test_z = x_train.copy(), x_test.copy()
    train_z[:, cols] = (x_train[:, cols] - mean) / std
    test_z[:, cols] = (x_test[:, cols] - mean) / std
    return train_z, test_z
