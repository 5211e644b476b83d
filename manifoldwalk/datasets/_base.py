"""The result type, the error type and directory lookup shared by every dataset loader."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["Dataset", "DatasetError", "Task", "resolve_data_dir"]

Task = Literal["classification", "regression"]


class DatasetError(ValueError):
    """A dataset could not be found or a file of it was refused (wrong format, truncated, unsafe).

    The message always names the file or directory concerned and, where files are missing, which
    files were expected, where they come from and how to point the loader at them.
    """


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split held as numpy arrays.

    Attributes:
        x_train: Training inputs, shape ``(n_train, ...)``, floating point (float32 by default).
            Tabular data is ``(n, n_features)``; images keep their spatial shape, channel-last:
            ``(n, 28, 28)`` for MNIST-format data and ``(n, 32, 32, 3)`` for CIFAR10, pixels in
            ``[0, 1]``. Models reshape as they need.
        y_train: Training targets: int64 class labels of shape ``(n_train,)`` for classification,
            a float array of shape ``(n_train, 1)`` for regression.
        x_test: Test inputs, laid out as ``x_train``.
        y_test: Test targets, laid out as ``y_train``.
        task: ``"classification"`` or ``"regression"``.
        n_classes: Number of classes for classification, ``None`` for regression.
        name: The dataset's name as accepted by :func:`load_dataset`.
        source: Where the data came from (origin, licence, the directory or file read).

    Equality is identity (arrays do not compare to a single truth value).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: Task
    n_classes: int | None
    name: str
    source: str

    def __post_init__(self) -> None:
        """Check that the fields are consistent with one another.

        Raises:
            ValueError: If the task is unknown, ``n_classes`` does not match the task, or inputs
                and targets disagree in length or layout.
        """
        _check_task(self.task, self.n_classes)
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            _check_pair(split, x, y, self.task)


def _check_task(task: str, n_classes: int | None) -> None:
    """Raise ValueError unless ``task`` is known and ``n_classes`` fits it."""
    if task == "classification":
        if n_classes is None or n_classes < 2:
            raise ValueError(f"classification needs n_classes >= 2, got {n_classes!r}")
    elif task == "regression":
        if n_classes is not None:
            raise ValueError(f"regression must have n_classes=None, got {n_classes!r}")
    else:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def _check_pair(split: str, x: np.ndarray, y: np.ndarray, task: str) -> None:
    """Raise ValueError unless inputs ``x`` and targets ``y`` of one split agree."""
    if len(x) != len(y):
        raise ValueError(f"{split}: {len(x)} inputs but {len(y)} targets")
    if task == "classification" and (y.ndim != 1 or y.dtype != np.int64):
        raise ValueError(
            f"{split}: class labels must be int64 of shape (n,), got {y.dtype} {y.shape}"
        )
    if task == "regression" and y.ndim != 2:
        raise ValueError(f"{split}: regression targets must have shape (n, k), got {y.shape}")


def resolve_data_dir(
    data_dir: str | os.PathLike[str] | None, env_var: str, default: Path | None = None
) -> Path | None:
    """Choose the directory a loader reads: the argument, else the environment, else a default.

    Args:
        data_dir: Directory named by the caller; wins when given.
        env_var: Environment variable consulted when ``data_dir`` is None (empty counts as unset).
        default: Directory used when neither is given, if it exists.

    Returns:
        The chosen directory (``~`` expanded), or None when nothing was named and the default is
        absent. The directory named by the argument or variable is returned even if it does not
        exist, so that the caller can say so.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(env_var, "")
    if from_env:
        return Path(from_env).expanduser()
    if default is not None and default.is_dir():
        return default
    return None
