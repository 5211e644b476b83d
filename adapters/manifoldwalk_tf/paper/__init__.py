"""The paper backend for Keras / TensorFlow (feed-forward nets only).

Same functions as ``manifoldwalk_torch.paper``; θ is a flat NumPy array (the TF adapter's
seam). The convolutional experiments are offered by the PyTorch and JAX backends (the
convolutional Keras nets of :mod:`manifoldwalk_tf.paper.nets` serve the cross-framework
checks). The training loop is in :mod:`manifoldwalk_tf.paper.training`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from manifoldwalk.experiments._paper_parts import check_held_out, paper_train
from manifoldwalk_tf import TFProblem, from_model
from manifoldwalk_tf.paper import nets, training

__all__ = [
    "NETS",
    "build_net",
    "configure",
    "from_numpy",
    "held_out",
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


train = paper_train(training.train)
"""Train with Adam(1e-3), minibatches of 32, on ``L + weight_decay · R``, in place (see
:meth:`~manifoldwalk.experiments.backend.PaperBackend.train`)."""


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
        problem: The problem from :func:`make_problem`.
        x: The held-out inputs.
        y: The held-out targets.

    Returns:
        ``(x, y)``, for the evaluation of every history record.

    Raises:
        ProblemError: A scalar input or target, different lengths, or no examples.
    """
    # Through numpy: TensorFlow makes Python floats float32, so float64 data would lose digits.
    data = (tf.convert_to_tensor(a) for a in check_held_out(x, y))
    return tuple(tf.cast(a, problem.dtype) if a.dtype.is_floating else a for a in data)


def from_numpy(array: np.ndarray, like: Any) -> np.ndarray:
    """Return ``array`` with ``like``'s dtype.

    Args:
        array: The values.
        like: A flat θ of the problem.

    Returns:
        A NumPy array.
    """
    return np.asarray(array, dtype=np.asarray(like).dtype).copy()
