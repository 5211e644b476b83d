"""Assembling an image classification dataset from uint8 arrays (MNIST-format data, CIFAR10)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._base import Dataset
from ._split import random_subset

__all__ = ["image_dataset"]


def _to_unit(images: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray:
    """Convert uint8 pixels to ``dtype`` in ``[0, 1]`` (a contiguous copy)."""
    out = np.ascontiguousarray(images, dtype=dtype)
    out /= 255
    return out


def image_dataset(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    n_train: int,
    rng: np.random.Generator,
    dtype: npt.DTypeLike,
    n_classes: int,
    name: str,
    source: str,
) -> Dataset:
    """Build a classification dataset from a seeded training subset and the full test set.

    Args:
        train: Training ``(images, labels)``: uint8 pixels and int64 labels.
        test: Test ``(images, labels)``, laid out as ``train``.
        n_train: Training examples drawn without replacement.
        rng: Generator that decides the training subset.
        dtype: Floating dtype of the pixels, which are scaled to ``[0, 1]``.
        n_classes: Number of classes.
        name: The dataset's name.
        source: Where the data came from.

    Returns:
        The :class:`Dataset`, its images keeping their spatial shape.

    Raises:
        TypeError, ValueError: If ``n_train`` is not an integer in ``1..len(train labels)``.
    """
    train_images, train_labels = train
    test_images, test_labels = test
    subset = random_subset(len(train_labels), n_train, rng)
    return Dataset(
        x_train=_to_unit(train_images[subset], dtype),
        y_train=train_labels[subset],
        x_test=_to_unit(test_images, dtype),
        y_test=test_labels,
        task="classification",
        n_classes=n_classes,
        name=name,
        source=source,
    )
