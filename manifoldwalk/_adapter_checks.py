"""Framework-free checks and bookkeeping shared by the adapters' problems (``manifoldwalk_*``).

The JAX, Keras and PyTorch problems validate their data and batch sizes, and assemble the
results of ``evaluate``, the same way; those pieces work on plain shapes and Python numbers and
live here, in numpy only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from manifoldwalk.problem import ProblemError

__all__ = [
    "EVAL_TASKS",
    "UNTRAINED_RATIO",
    "accuracy_shape_error",
    "check_batch_size",
    "check_callable",
    "check_eval_task",
    "check_examples",
    "check_pair",
    "check_plain_pair",
    "eval_metrics",
    "half_precision_error",
    "loss_entry",
    "reg_not_differentiable",
    "stochastic_layers_message",
    "trivial_loss",
    "warn_if_untrained",
]

UNTRAINED_RATIO = 0.9
"""The fraction of the trivial loss at or above which L0 is taken for an untrained model's."""

HALF_DTYPES = ("float16", "bfloat16")
"""The floating dtypes a walk refuses: too coarse for its small steps and loss differences."""

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


def check_plain_pair(data: Any, what: str, instead: str) -> None:
    """Raise unless ``data`` is a pair ``(x, y)`` of two arrays, neither a structure of them.

    ``from_model`` / ``from_apply`` call the model on ``x`` as one array; a model of several
    inputs or of a dict batch goes through the adapter's ``from_loss``, which this names. A
    nested Python list of numbers, or a list of equally shaped rows, one per example, is one
    array and passes.

    Args:
        data: what the user passed as ``(x, y)``.
        what: what is checked, to start the error message (``"data"``, ``"evaluate"``).
        instead: the adapter's call that takes such data, shown in the message.

    Raises:
        TypeError: ``data`` is not a pair, or its ``x`` or ``y`` is a mapping (a dict batch) or
            a tuple or list holding arrays or mappings (several inputs or targets).
    """
    check_pair(data, what)
    lengths = [_example_count(part) for part in data]
    for name, part, other in (("x", data[0], lengths[1]), ("y", data[1], lengths[0])):
        kind = _structure(part, other)
        if kind is not None:
            raise TypeError(
                f"{what}: {name} is {kind}, but this problem takes {name} as one array (the "
                f"model is called as model(x), the loss as loss_fn(outputs, y)). For a model of "
                f"several inputs or of a dict batch use {instead}: it takes batches of any "
                "structure."
            )


def _example_count(part: Any) -> int | None:
    """The leading length of an array or a nested list (None for anything else)."""
    shape = getattr(part, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    return len(part) if isinstance(part, tuple | list) else None


def _structure(part: Any, n_other: int | None) -> str | None:
    """How ``part`` is a structure of arrays (``"a dict with keys 'a', 'b'"``), or None."""
    if isinstance(part, Mapping):
        keys = ", ".join(repr(k) for k in list(part)[:5])
        return f"a {type(part).__name__} with keys {keys}"
    if not isinstance(part, tuple | list) or not part:
        return None
    if any(isinstance(item, Mapping) for item in part):
        return f"a {type(part).__name__} holding dicts"
    shapes = [getattr(item, "shape", None) for item in part]
    if not any(shape is not None and len(shape) > 0 for shape in shapes):
        return None  # numbers or nested lists: one array
    # equally shaped rows, one per example, stack into one array
    if (
        len(set(map(tuple, filter(None, shapes)))) == 1
        and None not in shapes
        and len(part) == n_other
    ):
        return None
    return f"a {type(part).__name__} of {len(part)} arrays"


def loss_entry(value: Any, is_loss: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """Where the loss sits in a container a ``loss_fn`` returned instead of it, or None.

    Args:
        value: what ``loss_fn`` returned.
        is_loss: whether a value is a usable loss (the framework's 0-d floating tensor).

    Returns:
        ``(path, item)``: ``"['loss']"`` for a mapping with a ``"loss"`` entry, ``".loss"`` for
        an object with a ``loss`` attribute (a model output dataclass), ``"[0]"`` for a tuple
        or list whose first item is a loss (``(loss, aux)``), with what is there (None where a
        model left its loss out); None for anything else.
    """
    if hasattr(value, "loss"):  # first: a Hugging Face output is a mapping without None keys
        return ".loss", value.loss
    if isinstance(value, Mapping):
        return ("['loss']", value["loss"]) if "loss" in value else None
    if isinstance(value, tuple | list) and value and is_loss(value[0]):
        return "[0]", value[0]
    return None


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


def half_precision_error(dtype: Any, remedy: str) -> TypeError:
    """Return the error for a half-precision (float16 or bfloat16) model.

    Args:
        dtype: the model's dtype, as the framework names it.
        remedy: what to do, e.g. ``"model.float() (or model.double())"``.

    Returns:
        A TypeError to raise.
    """
    return TypeError(
        f"the model is in {dtype}; a level-set walk needs float32 or float64 (half precision "
        "cannot resolve the small steps and loss changes the walk takes): convert it first "
        f"with {remedy}, then wrap it."
    )


def reg_not_differentiable(reg: Any, framework: str, detail: str) -> ProblemError:
    """Return the error for a callable ``reg`` whose gradient at θ0 the framework cannot take.

    Args:
        reg: the user's regulariser (named in the message).
        framework: the framework and its operations, e.g. ``"PyTorch (torch operations)"``.
        detail: what went wrong (an error's first line, or "a NaN gradient").

    Returns:
        A :class:`~manifoldwalk.problem.ProblemError` to raise.
    """
    name = getattr(reg, "__name__", None) or type(reg).__name__
    return ProblemError(
        f"reg={name} is not differentiable: its gradient at θ0 failed ({detail}). A callable "
        f"reg must be a differentiable function of the flat θ written in {framework}: no "
        "detach/stop_gradient, no numpy, no conversion to Python numbers."
    )


def stochastic_layers_message(found: list[str], adapter: str, how: str = "") -> str:
    """The warning for a model holding layers that behave differently in training.

    Args:
        found: the layers, as ``"name (Type)"``.
        adapter: the adapter's package, e.g. ``"manifoldwalk_torch"``.
        how: how the adapter puts the model in eval mode, ending in ``": "`` (or empty).

    Returns:
        The message.
    """
    return (
        f"the model holds dropout or batch-norm layers: {', '.join(found)}. The walk needs "
        f"the loss to be a deterministic function of θ, so {adapter} evaluates the "
        f"model in eval mode ({how}dropout off, batch norm on its running statistics): the "
        "level set walked is that of the eval-mode loss."
    )


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _close(a: float, b: float) -> bool:
    return bool(np.isfinite(a) and abs(a - b) <= 1e-3 * max(abs(b), 1e-6))


def trivial_loss(
    outputs: Any, targets: Any, probe_loss: float, all_targets: Any
) -> tuple[str, float] | None:
    """The loss of the best constant prediction, where the loss is recognised.

    The loss is recognised from its value on a few examples (``probe_loss`` on ``outputs``
    and ``targets``): the mean softmax cross-entropy of logits, the mean cross-entropy of
    probabilities (against class indices or one-hot rows), or the mean squared error over
    examples and outputs. The trivial loss is then that of predicting the class frequencies
    (their entropy: log K for K balanced classes) or the targets' mean (their variance).

    Args:
        outputs: the model's outputs on a few examples (numpy, examples first).
        targets: those examples' targets.
        probe_loss: the user's loss on them.
        all_targets: every training target (for the class frequencies or the variance).

    Returns:
        ``("cross-entropy", H)`` or ``("MSE", variance)``; None where the loss is not one of
        these (nothing to compare with).
    """
    out = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(targets)
    y_all = np.asarray(all_targets)
    if out.ndim < 1 or out.shape[0] != y.shape[0] or not np.all(np.isfinite(out)):
        return None
    if (
        out.ndim == 2
        and out.shape[1] >= 2
        and y.ndim == 1
        and np.issubdtype(y.dtype, np.integer)
        and y.min() >= 0
        and y.max() < out.shape[1]
    ):
        rows = np.arange(y.shape[0])
        candidates = [-_log_softmax(out)[rows, y].mean()]
        if np.all(out > 0):
            candidates.append(-np.log(out[rows, y]).mean())
        if any(_close(probe_loss, c) for c in candidates):
            freq = np.bincount(y_all.reshape(-1), minlength=out.shape[1]) / y_all.size
            freq = freq[freq > 0]
            return "cross-entropy", float(-(freq * np.log(freq)).sum())
        return None
    if y.size != out.size:
        return None
    y = y.astype(np.float64).reshape(out.shape)
    if _close(probe_loss, float(((out - y) ** 2).mean())):
        y_all = y_all.astype(np.float64).reshape(y_all.shape[0], -1)
        return "MSE", float(y_all.var(axis=0).mean())
    if out.ndim == 2 and out.shape[1] >= 2 and np.all((y == 0) | (y == 1)):
        candidates = [-(y * _log_softmax(out)).sum(axis=1).mean()]
        if np.all(out > 0):
            candidates.append(-(y * np.log(out)).sum(axis=1).mean())
        if any(_close(probe_loss, c) for c in candidates):
            freq = y_all.reshape(y_all.shape[0], -1).astype(np.float64).mean(axis=0)
            freq = freq[freq > 0]
            return "cross-entropy", float(-(freq * np.log(freq)).sum())
    return None


def warn_if_untrained(loss0: float, trivial: tuple[str, float] | None, stacklevel: int) -> None:
    """Warn when L0 is not well below the trivial loss: the model looks untrained.

    Args:
        loss0: the training loss at θ0.
        trivial: :func:`trivial_loss`'s result (None: nothing to compare with, no warning).
        stacklevel: passed to :func:`warnings.warn`, to point at the user's call.

    Warns:
        UserWarning: L0 ≥ :data:`UNTRAINED_RATIO` × the trivial loss (and the trivial loss
            is positive).
    """
    if trivial is None:
        return
    kind, value = trivial
    if value <= 0 or not loss0 >= UNTRAINED_RATIO * value:
        return
    what = "predicting the class frequencies" if kind == "cross-entropy" else "predicting the mean"
    warnings.warn(
        f"the model looks untrained: its training loss L0 = {loss0:.4g} is not well below "
        f"the trivial {kind} {value:.4g} (that of {what}), so the walk would explore a "
        "high-loss level set. Train the model first, then wrap it.",
        UserWarning,
        stacklevel=stacklevel + 1,
    )
