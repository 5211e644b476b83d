"""The paper backend for PyTorch: the paper's nets, training and evaluation behind the
framework-neutral interface that the experiment layer calls.

Every paper backend (``manifoldwalk_torch.paper``, ``manifoldwalk_jax.paper``,
``manifoldwalk_tf.paper``) implements :class:`manifoldwalk.experiments.backend.PaperBackend`:
:func:`configure`, :func:`build_net`, :func:`train`, :func:`make_problem`, :func:`held_out` and
:func:`from_numpy`. The nets are in :mod:`manifoldwalk_torch.paper.nets`, the training loop in
:mod:`manifoldwalk_torch.paper.training`. A *model* is whatever the framework trains (here an
``nn.Module``); θ is the adapter's flat array, evaluated with the problem's own
``evaluate`` and copied to the host with ``manifoldwalk._array.to_numpy``. This one also has
:func:`plane_losses`, the batched loss over many weight vectors that the loss-surface figures
use (with a backend that lacks it, they evaluate one ``problem.loss`` per point), and
:func:`train_batched`, many ``train`` runs of one net (a weight-decay sweep, seeds) as one
batched computation (:mod:`manifoldwalk_torch.paper.batched`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from manifoldwalk.experiments._paper_parts import (
    NETS,
    check_dtype,
    check_held_out,
    check_net,
    paper_train,
)
from manifoldwalk_torch import TorchProblem, from_model, walk_batch
from manifoldwalk_torch.paper import nets, training
from manifoldwalk_torch.paper.batched import train_batched

__all__ = [
    "NETS",
    "build_net",
    "configure",
    "from_numpy",
    "held_out",
    "make_problem",
    "plane_losses",
    "train",
    "train_batched",
    "walk_batch",
]

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
    dt = getattr(torch, check_dtype(dtype))
    if check_net(net) == "ff":
        model = nets.ff_net(tuple(input_shape), n_out, tuple(hidden), dtype=dt, seed=seed)
    else:
        builder = nets.mnist_cnv if net == "mnist-cnv" else nets.cifar10_cnv
        model = builder(n_out, dtype=dt, seed=seed)
    return model.to(_DEVICE["device"])


train = paper_train(training.train)
"""Train with Adam(1e-3), minibatches of 32, on ``L + weight_decay · R``, in place (see
:meth:`~manifoldwalk.experiments.backend.PaperBackend.train`)."""


def _loss_fn(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if task == "classification":
        return F.cross_entropy
    return lambda out, target: F.mse_loss(out, target.reshape(out.shape))


def make_problem(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, task: str, reg: str = "l2"
) -> TorchProblem:
    """Wrap the model's full-batch training loss as a Problem (θ0: its current parameters).

    The model is left in eval mode, where the problem evaluates it anyway: a model left in
    training mode costs the adapter a switch to eval mode and back at every evaluation (a walk
    of the module tree at every evaluation; measured: docs/performance.md). :func:`train` puts it
    back in training mode.

    Args:
        model: The net.
        x, y: The training data.
        task: ``"classification"`` (cross-entropy) or ``"regression"`` (MSE).
        reg: The regulariser R of the walk.

    Returns:
        A :class:`~manifoldwalk_torch.TorchProblem`.
    """
    model.eval()
    return from_model(model, _loss_fn(task), (x, y), reg=reg)


def held_out(problem: TorchProblem, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, ...]:
    """The held-out set as tensors on the problem's device (floating data in θ's dtype), made once.

    Args:
        problem: The problem from :func:`make_problem`.
        x: The held-out inputs.
        y: The held-out targets.

    Returns:
        ``(x, y)``, for the evaluation of every history record.

    Raises:
        ProblemError: A scalar input or target, different lengths, or no examples.
    """
    return tuple(_on_device(a, problem) for a in check_held_out(x, y))


def _on_device(array: np.ndarray, problem: TorchProblem) -> torch.Tensor:
    """``array`` on the problem's device, floating values in θ's dtype (integer labels kept)."""
    tensor = torch.as_tensor(np.asarray(array), device=problem.device)
    return tensor.to(problem.dtype) if tensor.is_floating_point() else tensor


def from_numpy(array: np.ndarray, like: Any) -> torch.Tensor:
    """Turn a NumPy vector into a flat θ with the dtype and device of ``like``.

    Args:
        array: The values.
        like: A flat θ of the problem.

    Returns:
        A tensor like ``like``.
    """
    return torch.as_tensor(np.asarray(array), dtype=like.dtype, device=like.device).clone()


def plane_losses(
    problem: TorchProblem,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    origin: np.ndarray,
    basis: np.ndarray,
    coords: np.ndarray,
    chunk: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The mean loss on ``(x, y)`` at ``origin + c · basis`` for every row ``c`` of ``coords``.

    The weight vectors are built on the problem's device, ``chunk`` at a time, and evaluated
    together with :func:`torch.func.vmap` over the model's functional call (eval mode, no
    autograd); the data go to the device once.

    Args:
        problem: From :func:`make_problem` (its model, dtype and device are used).
        x, y: The examples (e.g. the training set).
        task: ``"classification"`` (cross-entropy) or ``"regression"`` (MSE).
        origin: ``(P,)`` the origin of the plane (e.g. the PCA mean).
        basis: ``(k, P)`` the directions (e.g. the top-2 principal components).
        coords: ``(m, k)`` the points' coordinates.
        chunk: Weight vectors per vmapped call (lower it when the device runs out of memory).
        progress: Called as ``progress(done, m)`` after every chunk.

    Returns:
        ``(m,)`` float64 losses.

    Raises:
        ValueError: For mismatched shapes or a chunk below 1.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    origin, basis = np.asarray(origin), np.atleast_2d(np.asarray(basis))
    coords = np.atleast_2d(np.asarray(coords))
    if origin.shape != (problem.n_params,) or basis.shape[1:] != (problem.n_params,):
        raise ValueError(
            f"origin {origin.shape} and basis {basis.shape} must have {problem.n_params} columns"
        )
    if coords.shape[1] != basis.shape[0]:
        raise ValueError(f"coords have {coords.shape[1]} columns for {basis.shape[0]} directions")
    dev, dt = problem.device, problem.dtype
    xt, yt = _on_device(x, problem), _on_device(y, problem)
    yt = yt if yt.is_floating_point() else yt.long()
    o = torch.as_tensor(origin, dtype=dt, device=dev)
    b = torch.as_tensor(basis, dtype=dt, device=dev)
    c = torch.as_tensor(coords, dtype=dt, device=dev)
    loss_fn, model = _loss_fn(task), problem.model

    def one(theta: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, problem.unflatten(theta), (xt,)), yt)

    batched = vmap(one)
    out, m = [], coords.shape[0]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, m, chunk):
                out.append(batched(o + c[start : start + chunk] @ b))
                if progress is not None:
                    progress(min(start + chunk, m), m)
    finally:
        model.train(was_training)
    return torch.cat(out).to(torch.float64).cpu().numpy() if out else np.zeros(0)
