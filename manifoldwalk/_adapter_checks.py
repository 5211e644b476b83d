"""Framework-free checks and bookkeeping shared by the adapters' problems (``manifoldwalk_*``).

The JAX, Keras and PyTorch problems validate their data and batch sizes, and assemble the
results of ``evaluate``, the same way; those pieces work on plain shapes and Python numbers and
live here, in numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manifoldwalk.problem import ProblemError

__all__ = [
    "EVAL_TASKS",
    "accuracy_shape_error",
    "check_batch_size",
    "check_callable",
    "check_eval_task",
    "check_examples",
    "check_pair",
    "eval_metrics",
]

EVAL_TASKS = ("classification", "regression")
"""The tasks an adapter's ``evaluate`` knows: accuracy or mean squared error."""


def check_eval_task(task: str) -> None:
    """Raise unless ``task`` is one of :data:`EVAL_TASKS`.

    Raises:
        ValueError: An unknown task.
    """
    if task not in EVAL_TASKS:
        raise ValueError(f"task must be one of {EVAL_TASKS}, got {task!r}.")


def check_callable(name: str, fn: Any) -> None:
    """Raise unless ``fn`` (the argument ``name``, e.g. ``"loss_fn"``) is callable.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}.")


def check_batch_size(batch_size: int | None, what: str) -> int | None:
    """Return ``batch_size`` as an int (or None), after checking it is None or positive.

    Args:
        batch_size: The batch size, or None for one full batch.
        what: The argument's name, for the error message.

    Returns:
        None, or the batch size as a Python int.

    Raises:
        ValueError: A non-integer (bools included) or a batch size below 1.
    """
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"{what} must be a positive integer or None, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"{what} must be positive, got {batch_size}.")
    return int(batch_size)


def check_pair(data: Any, what: str) -> None:
    """Raise unless ``data`` is a pair ``(x, y)`` (a tuple or list of two).

    Raises:
        TypeError: ``data`` is not a pair.
    """
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"{what} must be a pair (x, y) of arrays, got {type(data).__name__}.")


def check_examples(what: str, x_shape: tuple[Any, ...], y_shape: tuple[Any, ...]) -> None:
    """Check that inputs and targets have a leading example axis of the same, non-zero length.

    Args:
        what: What is checked, to start the error message (``"data"``, ``"evaluate"``).
        x_shape: The inputs' shape.
        y_shape: The targets' shape.

    Raises:
        ProblemError: A scalar input or target, different lengths, or no examples.
    """
    if len(x_shape) == 0 or len(y_shape) == 0:
        raise ProblemError(f"{what}: x and y must have a leading example axis.")
    if x_shape[0] != y_shape[0]:
        raise ProblemError(
            f"{what}: inputs and targets must have the same number of examples, got "
            f"{x_shape[0]} inputs and {y_shape[0]} targets."
        )
    if x_shape[0] == 0:
        raise ProblemError(f"{what}: there are no examples.")


def accuracy_shape_error(shape: tuple[Any, ...]) -> ProblemError:
    """Return the error for accuracy asked of outputs without one column per class.

    Args:
        shape: The model's output shape.

    Returns:
        A :class:`~manifoldwalk.problem.ProblemError` to raise.
    """
    return ProblemError(
        "evaluate: accuracy takes the argmax over the outputs' last axis, but the "
        f"model has outputs of shape {shape}; give it one output per class, "
        'or use task="regression".'
    )


def eval_metrics(
    task: str, loss_sum: float, metric_sum: float, n: int, metric_n: int | None = None
) -> dict[str, float]:
    """Assemble ``evaluate``'s result from sums over batches.

    Args:
        task: ``"classification"`` (the metric is ``"accuracy"``) or ``"regression"``
            (``"mse"``).
        loss_sum: Σ over batches of the batch's mean loss × its size.
        metric_sum: Σ of correct predictions (classification) or of the metric's numerator.
        n: The number of examples.
        metric_n: What ``metric_sum`` is divided by; defaults to ``n``.

    Returns:
        ``{"loss": loss_sum / n, metric: metric_sum / metric_n}``.
    """
    metric = "accuracy" if task == "classification" else "mse"
    return {"loss": loss_sum / n, metric: metric_sum / (n if metric_n is None else metric_n)}
