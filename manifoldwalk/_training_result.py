"""Framework-free pieces of the paper's training loops (``manifoldwalk_*.paper.training``).

The PyTorch, JAX and Keras loops share their result type, their argument checks, the epoch
loop with its shuffling and its per-epoch bookkeeping; these live here, in numpy only, so that
the three stay the same and shuffle identically for a given seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "REGS",
    "TASKS",
    "EpochCallback",
    "Progress",
    "TrainResult",
    "check_train_options",
    "check_train_set",
    "end_epoch",
    "prepare_training",
    "run_epochs",
    "unpack_train_data",
]

REGS = ("l2", "l2-weights")
"""The regularisers R the training loops know."""

TASKS = ("classification", "regression")
"""The tasks the training loops know."""

Progress = Callable[[int, int, float], None]
"""A loop's progress hook, called after every epoch as ``progress(epoch, epochs, epoch_loss)``."""

EpochCallback = Callable[[int, Any, float], bool | None]
"""A loop's callback, called after every epoch as ``callback(epoch, model, epoch_loss)``; a true
return stops training."""


@dataclass
class TrainResult:
    """What the paper's ``train`` loops return (the same fields in PyTorch, JAX and Keras).

    Attributes:
        model: The trained model (PyTorch, Keras: the one passed in, trained in place; JAX: the
            trained parameter pytree, also available as ``params``).
        losses: Per epoch, the mean data loss L over that epoch's minibatches (each evaluated
            before its update, weighted by batch size; as Keras' ``fit`` reports it). The penalty
            λ·R is not included.
        final_loss: The full-batch data loss L of the final parameters on the training set (the
            level L0 a walk would start from).
        n_example_grads: Example-wise gradient evaluations: epochs run × n_train (the x-axis of
            the paper's Fig. 7).
        epochs: The number of epochs run (fewer than asked when the callback stopped training).
        wall_time: Seconds spent in the loop, compilation or tracing included (the final
            full-batch evaluation excluded).
        n_train: The number of training examples.
    """

    model: Any
    losses: list[float] = field(default_factory=list)
    final_loss: float = float("nan")
    n_example_grads: int = 0
    epochs: int = 0
    wall_time: float = 0.0
    n_train: int = 0


def unpack_train_data(data: Any) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Return ``(x, y, task)`` from a Dataset-like object or an ``(x, y)`` pair.

    Args:
        data: An object with ``x_train`` and ``y_train`` (and optionally ``task``), or a pair.

    Returns:
        The inputs and targets as numpy arrays, and the dataset's task (None for a pair).
    """
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        return np.asarray(data.x_train), np.asarray(data.y_train), getattr(data, "task", None)
    x, y = data
    return np.asarray(x), np.asarray(y), None


def check_train_options(
    task: str | None, epochs: int, batch_size: int, weight_decay: float, reg: str
) -> str:
    """Validate the options of an adapter's ``train``.

    Args:
        task: The task (given, or taken from the dataset).
        epochs: Passes over the training set.
        batch_size: Minibatch size.
        weight_decay: λ.
        reg: The regulariser's name.

    Returns:
        The task.

    Raises:
        ValueError: For an unknown task or reg, negative epochs or weight decay, or a batch size
            below 1.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} (or come from the dataset), got {task!r}")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if reg not in REGS:
        raise ValueError(f"reg must be one of {REGS}, got {reg!r}")
    return task


def check_train_set(x: np.ndarray, y: np.ndarray) -> int:
    """Return the number of training examples after checking that there are some.

    Args:
        x: The inputs.
        y: The targets.

    Returns:
        ``len(x)``.

    Raises:
        ValueError: If the set is empty or ``x`` and ``y`` differ in length.
    """
    n = len(x)
    if n == 0 or len(y) != n:
        raise ValueError(
            f"need a non-empty training set with as many targets as inputs, got "
            f"{n} inputs and {len(y)} targets"
        )
    return n


def end_epoch(
    result: TrainResult,
    epoch: int,
    epochs: int,
    epoch_loss: float,
    model: Any,
    progress: Progress | None,
    callback: EpochCallback | None,
) -> bool:
    """Record a finished epoch in ``result`` and call the loop's hooks.

    Args:
        result: The result being filled (its ``n_train`` set).
        epoch: The epoch just run, counted from 1.
        epochs: The epochs asked for.
        epoch_loss: The epoch's mean data loss.
        model: What the callback receives (the model, or the JAX parameters).
        progress: Called as ``progress(epoch, epochs, epoch_loss)``, if given.
        callback: Called as ``callback(epoch, model, epoch_loss)``, if given.

    Returns:
        Whether the callback asked to stop training.
    """
    result.losses.append(epoch_loss)
    result.epochs = epoch
    result.n_example_grads = epoch * result.n_train
    if progress is not None:
        progress(epoch, epochs, epoch_loss)
    return bool(callback is not None and callback(epoch, model, epoch_loss))


def prepare_training(
    data: Any, task: str | None, epochs: int, batch_size: int, weight_decay: float, reg: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Unpack a loop's training data and check its options (the start of every loop).

    Args:
        data: A Dataset-like object or an ``(x, y)`` pair (see :func:`unpack_train_data`).
        task: The task asked for, or None to take the dataset's.
        epochs: Passes over the training set.
        batch_size: Minibatch size.
        weight_decay: λ.
        reg: The regulariser's name.

    Returns:
        ``(x, y, task)``: the inputs and targets as numpy arrays, and the task.

    Raises:
        ValueError: As :func:`check_train_options` and :func:`check_train_set`.
    """
    x, y, data_task = unpack_train_data(data)
    task = check_train_options(task or data_task, epochs, batch_size, weight_decay, reg)
    check_train_set(x, y)
    return x, y, task


def run_epochs(
    result: TrainResult,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    progress: Progress | None,
    callback: EpochCallback | None,
    order: Callable[[np.ndarray], Any],
    step: Callable[[Any], Any],
    current: Callable[[], Any],
) -> None:
    """Run a loop's epochs: shuffle, step through the minibatches, record each epoch.

    Every epoch draws a permutation of the ``result.n_train`` examples from
    ``numpy.random.default_rng(seed)`` (one generator for the whole run, so the three frameworks
    see the same minibatches), hands it to ``order`` once and ``step`` each slice of
    ``batch_size`` (the last may be smaller). The summed losses stay in the framework until the
    epoch ends, where one ``float`` brings their total to the host. Sets ``result.wall_time``.

    Args:
        result: The result being filled (its ``n_train`` set, at least 1).
        epochs: The epochs asked for.
        batch_size: Minibatch size.
        seed: Seeds the shuffling.
        progress: Called as ``progress(epoch, epochs, epoch_loss)``, if given.
        callback: Called as ``callback(epoch, current(), epoch_loss)``; ``True`` stops training.
        order: Turns the epoch's int64 permutation into what ``step`` slices (e.g. a tensor on
            the device).
        step: Takes one Adam step on the minibatch of the given indices and returns its summed
            data loss (mean loss × batch size), a framework scalar.
        current: Returns what the callback receives (the model, or the current parameters).
    """
    n = result.n_train
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        perm = order(rng.permutation(n))
        total = None
        for lo in range(0, n, batch_size):
            loss = step(perm[lo : lo + batch_size])
            total = loss if total is None else total + loss
        epoch_loss = float(total) / n
        if end_epoch(result, epoch, epochs, epoch_loss, current(), progress, callback):
            break
    result.wall_time = time.perf_counter() - start
