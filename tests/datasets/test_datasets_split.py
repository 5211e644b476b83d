"""Seeded splits, subsets and z-scoring (manifoldwalk.datasets._split)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manifoldwalk.datasets._split import (
    make_rng,
    random_split,
    random_subset,
    stratified_split,
    zscore,
)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def labels_and_test_size(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """Random class labels (2-6 classes, 2-80 examples) and a valid test size."""
    y = np.array(draw(st.lists(st.integers(0, 5), min_size=2, max_size=80)))
    return y, draw(st.integers(1, len(y) - 1))


@settings(max_examples=60, deadline=None)
@given(data=labels_and_test_size(), seed=SEEDS)
def test_stratified_split_partitions_with_proportional_class_counts(
    data: tuple[np.ndarray, int], seed: int
) -> None:
    y, n_test = data
    train, test = stratified_split(y, n_test, make_rng(seed))
    assert len(test) == n_test
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
    for label in np.unique(y):
        exact = n_test * np.sum(y == label) / len(y)
        assert np.floor(exact) <= np.sum(y[test] == label) <= np.ceil(exact)


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS)
def test_stratified_split_is_reproducible_per_seed(seed: int) -> None:
    y = np.repeat(np.arange(3), 50)
    first = stratified_split(y, 30, make_rng(seed))
    second = stratified_split(y, 30, make_rng(seed))
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(np.bincount(y[first[1]]), [10, 10, 10])


def test_different_seeds_give_different_splits() -> None:
    y = np.repeat(np.arange(3), 50)
    tests = {tuple(stratified_split(y, 30, make_rng(seed))[1]) for seed in range(5)}
    assert len(tests) == 5


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 500), data=st.data(), seed=SEEDS)
def test_random_split_partitions(n: int, data: st.DataObject, seed: int) -> None:
    n_test = data.draw(st.integers(1, n - 1))
    train, test = random_split(n, n_test, make_rng(seed))
    assert (len(train), len(test)) == (n - n_test, n_test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))


@settings(max_examples=40, deadline=None)
@given(n_total=st.integers(1, 1000), data=st.data(), seed=SEEDS)
def test_random_subset_draws_distinct_sorted_indices(
    n_total: int, data: st.DataObject, seed: int
) -> None:
    n_subset = data.draw(st.integers(1, n_total))
    idx = random_subset(n_total, n_subset, make_rng(seed))
    assert len(idx) == n_subset
    assert idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0)
    assert idx[0] >= 0
    assert idx[-1] < n_total
    np.testing.assert_array_equal(idx, random_subset(n_total, n_subset, make_rng(seed)))


@pytest.mark.parametrize("bad", [0, 11, -1])
def test_random_subset_refuses_impossible_sizes(bad: int) -> None:
    with pytest.raises(ValueError, match="n_subset"):
        random_subset(10, bad, make_rng(0))


@pytest.mark.parametrize("bad", [0, 10])
def test_splits_refuse_empty_parts(bad: int) -> None:
    with pytest.raises(ValueError, match="n_test"):
        random_split(10, bad, make_rng(0))
    with pytest.raises(ValueError, match="n_test"):
        stratified_split(np.arange(10) % 2, bad, make_rng(0))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None])
def test_make_rng_refuses_bad_seeds(seed: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        make_rng(seed)  # type: ignore[arg-type]


def test_make_rng_accepts_numpy_integers() -> None:
    assert make_rng(np.int64(3)).random() == make_rng(3).random()


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, n=st.integers(3, 50))
def test_zscore_uses_training_statistics(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    x_train = rng.normal(5.0, 3.0, size=(n, 4))
    x_test = rng.normal(-2.0, 0.5, size=(7, 4))
    train_z, test_z = zscore(x_train, x_test)
    np.testing.assert_allclose(train_z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(train_z.std(axis=0), 1.0, rtol=1e-9)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    np.testing.assert_allclose(test_z, (x_test - mean) / std, rtol=1e-12)


def test_zscore_leaves_unselected_and_constant_columns_sane() -> None:
    x_train = np.array([[1.0, 7.0, 0.0], [3.0, 7.0, 1.0]])
    x_test = np.array([[2.0, 8.0, 1.0]])
    train_z, test_z = zscore(x_train, x_test, columns=np.array([0, 1]))
    np.testing.assert_allclose(train_z, [[-1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(test_z, [[0.0, 1.0, 1.0]])


def test_zscore_refuses_mismatched_columns() -> None:
    with pytest.raises(ValueError, match="columns"):
        zscore(np.zeros((3, 2)), np.zeros((3, 3)))
