"""The experiment backend for Keras / TensorFlow (feed-forward nets only).

Same functions as ``manifoldwalk_torch.experiment``; θ is a flat NumPy array (the TF adapter's
seam). The convolutional experiments are offered by the PyTorch and JAX backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from manifoldwalk_tf import nets, training
from manifoldwalk_tf.problem import TFProblem, _as_tensors, from_model

__all__ = [
    "NETS",
    "build_net",
    "configure",
    "from_numpy",
    "make_problem",
    "train",
]

NETS = ("ff",)
"""The net kinds :func:`build_net` knows (feed-forward only)."""


def configure(*, device: str = "cpu", threads: int | None = None) -> None:
    """Check the device and set TensorFlow's intra-op threads.

    Args:
        device: ``"cpu"`` only (this backend is for CPU feed-forward runs).
        threads: Intra-op threads, or None for TensorFlow's default.

    Raises:
        ValueError: For any device but ``"cpu"``.
    """
    if device != "cpu":
        raise ValueError(f"the tensorflow backend runs on 'cpu' only, got {device!r}")
    if threads is not None:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        except RuntimeError:  # already initialised: keep what it has
            pass


def build_net(
    net: str,
    input_shape: Sequence[int],
    n_out: int,
    *,
    hidden: Sequence[int] = (100, 100, 100),
    seed: int,
    dtype: str = "float32",
) -> Any:
    """Build the paper's feed-forward net, Glorot-normal initialised from ``seed``.

    Args:
        net: ``"ff"``.
        input_shape: The shape of one input.
        n_out: Outputs.
        hidden: Hidden widths.
        seed: Seeds the initialisation.
        dtype: ``"float32"`` or ``"float64"``.

    Returns:
        A Keras model.

    Raises:
        ValueError: For a convolutional net (use the torch or jax backend) or an unknown one.
    """
    if net != "ff":
        raise ValueError(
            f"the tensorflow backend builds feed-forward nets only ({net!r} asked for); "
            "use --backend torch or --backend jax"
        )
    return nets.ff_net(tuple(input_shape), n_out, tuple(hidden), dtype=dtype, seed=seed)


def train(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    epochs: int,
    weight_decay: float = 0.0,
    reg: str = "l2",
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Any, int]:
    """Train with Adam(1e-3), minibatches of 32, on ``L + weight_decay · R`` (in place).

    Args:
        model: A Keras model from :func:`build_net`.
        x, y: The training data.
        task: ``"classification"`` or ``"regression"``.
        epochs: Passes over the data.
        weight_decay: λ.
        reg: ``"l2"`` or ``"l2-weights"``.
        seed: Seeds the shuffling.
        progress: Called after every epoch as ``progress(epoch, epochs, loss)``.

    Returns:
        ``(model, n_example_grads)``.
    """
    result = training.train(
        model,
        (x, y),
        task=task,
        epochs=epochs,
        weight_decay=weight_decay,
        reg=reg,
        seed=seed,
        progress=progress,
    )
    return result.model, int(result.n_example_grads)


def make_problem(
    model: Any, x: np.ndarray, y: np.ndarray, *, task: str, reg: str = "l2"
) -> TFProblem:
    """Wrap the model's full-batch training loss as a Problem (θ0: its current weights).

    Args:
        model: The Keras model.
        x, y: The training data.
        task: ``"classification"`` or ``"regression"``.
        reg: The regulariser R of the walk.

    Returns:
        A :class:`~manifoldwalk_tf.TFProblem`.
    """
    return from_model(model, lambda out, t: training.data_loss(out, t, task), (x, y), reg=reg)


def held_out(problem: TFProblem, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, ...]:
    """The held-out set as tensors (floating data in θ's dtype), made once.

    Args:
        problem: The problem from :func:`make_problem`; x, y: the held-out inputs and targets.

    Returns:
        ``(x, y)``, for every history record's evaluation (``runner._metric_fns``).
    """

    return tuple(problem._cast(t) for t in _as_tensors((x, y), "held_out"))


def from_numpy(array: np.ndarray, like: Any) -> np.ndarray:
    """Return ``array`` with ``like``'s dtype.

    Args:
        array: The values.
        like: A flat θ of the problem.

    Returns:
        A NumPy array.
    """
    return np.asarray(array, dtype=np.asarray(like).dtype).copy()
