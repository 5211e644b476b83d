"""Iris (Fisher 1936) from scikit-learn: a seeded stratified 120/30 split, z-scored features."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._base import Dataset
from ._split import check_count, make_rng, stratified_split, zscore

__all__ = ["IRIS_N_TRAIN", "load_iris"]

IRIS_N_TRAIN = 120
"""Training examples in the paper's split (the other 30 of the 150 are the test set)."""

_SOURCE = (
    "Iris (Fisher 1936; UCI Machine Learning Repository, CC BY 4.0) "
    "as shipped with scikit-learn (sklearn.datasets.load_iris)"
)


def _iris_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's Iris features (150, 4) and labels (150,).

    Raises:
        ImportError: If scikit-learn is not installed, naming the extra that provides it.
    """
    try:
        from sklearn.datasets import load_iris as sklearn_load_iris
    except ImportError as exc:
        raise ImportError(
            "the Iris loader needs scikit-learn, which ships the data: "
            "pip install manifoldwalk[data]"
        ) from exc
    x, y = sklearn_load_iris(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)


def load_iris(
    *, seed: int, n_train: int = IRIS_N_TRAIN, dtype: npt.DTypeLike = np.float32
) -> Dataset:
    """Load Iris split into train and test, stratified by class and seeded.

    The 150 examples are split so that each of the 3 classes keeps its share of the test set
    (10 test examples per class for the default 120/30 split). The 4 features are z-scored with
    the training mean and standard deviation.

    Args:
        seed: Seed of the split; equal seeds give equal splits.
        n_train: Number of training examples (the rest are test), between 1 and 149.
        dtype: Floating dtype of the features (float32 by default).

    Returns:
        A classification :class:`Dataset` with ``x`` of shape ``(n, 4)``, int64 labels in
        ``{0, 1, 2}`` and ``n_classes=3``.

    Raises:
        ImportError: If scikit-learn is missing (``pip install manifoldwalk[data]``).
        TypeError, ValueError: If ``seed`` or ``n_train`` is invalid.
    """
    x, y = _iris_arrays()
    check_count("n_train", n_train, 1, len(y) - 1)
    train, test = stratified_split(y, len(y) - n_train, make_rng(seed))
    x_train, x_test = zscore(x[train], x[test])
    return Dataset(
        x_train=x_train.astype(dtype),
        y_train=y[train],
        x_test=x_test.astype(dtype),
        y_test=y[test],
        task="classification",
        n_classes=3,
        name="iris",
        source=_SOURCE,
    )
