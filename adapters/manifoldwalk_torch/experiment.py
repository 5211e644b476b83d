"""The experiment backend for PyTorch: the paper's nets, training and evaluation behind the
framework-neutral interface that :mod:`manifoldwalk.experiments.runner` calls.

Every backend module (``manifoldwalk_torch.experiment``, ``manifoldwalk_jax.experiment``,
``manifoldwalk_tf.experiment``) offers the same functions: :func:`configure`, :func:`build_net`,
:func:`train`, :func:`make_problem` and :func:`from_numpy`. A *model* is whatever the framework
trains (here an ``nn.Module``); θ is the adapter's flat array, evaluated with the problem's own
``evaluate`` and copied to the host with ``manifoldwalk._array.to_numpy``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from manifoldwalk_torch import nets, training
from manifoldwalk_torch.problem import TorchProblem, from_model

__all__ = [
    "NETS",
    "build_net",
    "configure",
    "from_numpy",
    "make_problem",
    "train",
]

NETS = ("ff", "mnist-cnv", "cifar10-cnv")
"""The net kinds :func:`build_net` knows."""

_DEVICE = {"device": "cpu"}


def configure(*, device: str = "cpu", threads: int | None = None) -> None:
    """Choose the device and the number of intra-op CPU threads for what follows.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        threads: Intra-op threads (``torch.set_num_threads``); None leaves torch's default.
            Small nets run fastest on one thread.

    Raises:
        ValueError: For an unknown device, or ``"cuda"`` where CUDA is not available.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose 'cpu' or 'cuda'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch.cuda.is_available() is False")
    _DEVICE["device"] = device
    if threads is not None:
        torch.set_num_threads(int(threads))


def _dtype(name: str) -> torch.dtype:
    try:
        return {"float32": torch.float32, "float64": torch.float64}[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose 'float32' or 'float64'") from None


def build_net(
    net: str,
    input_shape: Sequence[int],
    n_out: int,
    *,
    hidden: Sequence[int] = (100, 100, 100),
    seed: int,
    dtype: str = "float32",
) -> torch.nn.Module:
    """Build one of the paper's nets, Glorot-normal initialised from ``seed``.

    Args:
        net: ``"ff"``, ``"mnist-cnv"`` or ``"cifar10-cnv"``.
        input_shape: The shape of one input.
        n_out: Outputs (classes, or 1 for regression).
        hidden: Hidden widths of the feed-forward net.
        seed: Seeds the initialisation.
        dtype: ``"float32"`` or ``"float64"``.

    Returns:
        The net, on the configured device.

    Raises:
        ValueError: For an unknown net or dtype.
    """
    dt = _dtype(dtype)
    if net == "ff":
        model = nets.ff_net(tuple(input_shape), n_out, tuple(hidden), dtype=dt, seed=seed)
    elif net == "mnist-cnv":
        model = nets.mnist_cnv(n_out, dtype=dt, seed=seed)
    elif net == "cifar10-cnv":
        model = nets.cifar10_cnv(n_out, dtype=dt, seed=seed)
    else:
        raise ValueError(f"unknown net {net!r}; choose one of {', '.join(NETS)}")
    return model.to(_DEVICE["device"])


def train(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    epochs: int,
    weight_decay: float = 0.0,
    reg: str = "l2",
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[torch.nn.Module, int]:
    """Train with Adam(1e-3), minibatches of 32, on ``L + weight_decay · R`` (in place).

    Args:
        model: From :func:`build_net`.
        x, y: The training inputs and targets.
        task: ``"classification"`` or ``"regression"``.
        epochs: Passes over the data.
        weight_decay: λ.
        reg: ``"l2"`` (all parameters) or ``"l2-weights"`` (kernels only).
        seed: Seeds the shuffling.
        progress: Called after every epoch as ``progress(epoch, epochs, loss)``.

    Returns:
        ``(model, n_example_grads)``: the trained model and the example-wise gradient count.
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


def _loss_fn(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if task == "classification":
        return F.cross_entropy
    return lambda out, target: F.mse_loss(out, target.reshape(out.shape))


def make_problem(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, task: str, reg: str = "l2"
) -> TorchProblem:
    """Wrap the model's full-batch training loss as a Problem (θ0: its current parameters).

    Args:
        model: The net.
        x, y: The training data.
        task: ``"classification"`` (cross-entropy) or ``"regression"`` (MSE).
        reg: The regulariser R of the walk.

    Returns:
        A :class:`~manifoldwalk_torch.TorchProblem`.
    """
    return from_model(model, _loss_fn(task), (x, y), reg=reg)


def from_numpy(array: np.ndarray, like: Any) -> torch.Tensor:
    """Turn a NumPy vector into a flat θ with the dtype and device of ``like``.

    Args:
        array: The values.
        like: A flat θ of the problem.

    Returns:
        A tensor like ``like``.
    """
    return torch.as_tensor(np.asarray(array), dtype=like.dtype, device=like.device).clone()
