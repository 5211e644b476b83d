"""Iris: seeded stratified 120/30 split, z-scored with training statistics."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manifoldwalk.datasets import Dataset, load_dataset, load_iris


def test_iris_shapes_types_and_task() -> None:
    ds = load_iris(seed=0)
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape == (120, 4)
    assert ds.x_test.shape == (30, 4)
    assert ds.y_train.shape == (120,)
    assert ds.y_test.shape == (30,)
    assert ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int64
    assert (ds.task, ds.n_classes, ds.name) == ("classification", 3, "iris")
    assert "scikit-learn" in ds.source


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_iris_test_set_has_ten_of_each_class(seed: int) -> None:
    ds = load_iris(seed=seed)
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=3), [10, 10, 10])
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=3), [40, 40, 40])


def test_iris_features_are_zscored_with_training_statistics() -> None:
    ds = load_iris(seed=3, dtype=np.float64)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, rtol=1e-12)
    assert np.abs(ds.x_test.mean(axis=0)).max() > 1e-3  # not standardised by its own statistics


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    """Rows of ``a`` in lexicographic order (a canonical form of the multiset of rows)."""
    return a[np.lexsort(a.T[::-1])]


def test_iris_split_partitions_the_150_examples_with_one_scaling() -> None:
    from sklearn.datasets import load_iris as sklearn_iris

    x, y = sklearn_iris(return_X_y=True)
    ds = load_iris(seed=5, dtype=np.float64)
    z = np.concatenate([ds.x_train, ds.x_test])
    # A positive affine map keeps order, so sorted columns pair up; one fit per column must
    # map train and test back onto exactly the 150 original rows, labels included.
    restored = np.empty_like(z)
    for j in range(z.shape[1]):
        scale, shift = np.polyfit(np.sort(z[:, j]), np.sort(x[:, j]), 1)
        restored[:, j] = z[:, j] * scale + shift
    labels = np.concatenate([ds.y_train, ds.y_test])
    np.testing.assert_allclose(
        _sorted_rows(np.column_stack([restored, labels])),
        _sorted_rows(np.column_stack([x, y])),
        atol=1e-9,
    )


def test_iris_split_is_reproducible_and_seed_dependent() -> None:
    a, b, c = load_iris(seed=11), load_iris(seed=11), load_iris(seed=12)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_iris_custom_train_size_and_dispatch() -> None:
    ds = load_dataset("IRIS", seed=0, n_train=90)
    assert len(ds.x_train) == 90
    assert len(ds.x_test) == 60
    np.testing.assert_array_equal(np.bincount(ds.y_test), [20, 20, 20])


def test_iris_without_scikit_learn_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install manifoldwalk\[data\]"):
        load_iris(seed=0)
