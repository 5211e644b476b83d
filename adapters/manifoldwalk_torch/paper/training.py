"""Phase-1 and weight-decay training in PyTorch: Adam on minibatches of L + λ·R.

The same loop, signature and result exist for JAX (``manifoldwalk_jax.paper.training``) and
Keras (``manifoldwalk_tf.paper.training``); the three shuffle identically for a given seed (the
epoch loop is :func:`manifoldwalk._training_result.run_epochs`), so a net that starts from the
same weights follows the same path in each (up to float round-off; Keras' Adam places its ε
slightly differently, see ``manifoldwalk_tf.paper.training``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from manifoldwalk._training_result import REGS as _REGS
from manifoldwalk._training_result import TrainResult, prepare_training, run_epochs

__all__ = ["ADAM_EPS", "TrainResult", "full_batch_loss", "penalty", "train"]

ADAM_EPS = 1e-7
"""Adam's ε: Keras' default 1e-7 rather than torch's 1e-8, for parity with the authors' code."""


def penalty(model: nn.Module, reg: str = "l2") -> torch.Tensor:
    """Return the regulariser R of ``model``'s trainable parameters.

    Args:
        model: The model.
        reg: ``"l2"``: the squared L2 norm of every trainable parameter, biases included (the
            walk's R); ``"l2-weights"``: only parameters of rank >= 2 (kernels; Keras'
            ``kernel_regularizer``, the authors' weight-decay baseline).

    Returns:
        A scalar tensor (differentiable).

    Raises:
        ValueError: If ``reg`` is unknown.
    """
    params = _penalised([p for p in model.parameters() if p.requires_grad], reg)
    return sum((p.square().sum() for p in params), torch.zeros((), device=params[0].device))


def _penalised(params: list[nn.Parameter], reg: str) -> list[nn.Parameter]:
    """The parameters R sums over (see :func:`penalty`); raises ValueError for an unknown reg."""
    if reg not in _REGS:
        raise ValueError(f"reg must be one of {_REGS}, got {reg!r}")
    return [p for p in params if p.ndim >= 2] if reg == "l2-weights" else params


def _add_penalty_grad(params: list[nn.Parameter], weight_decay: float) -> None:
    """Add ∇(λ·R) = 2λp to each penalised parameter's gradient after ``backward()``.

    The same values bit for bit as backpropagating ``loss + λ·penalty(model)`` (autograd forms
    λ·(2p) and adds it to the data gradient, one rounding each, as here; tested), without
    building and walking R's graph: a quarter of an Adam step on the Iris-sized net.
    """
    two_lam = 2.0 * weight_decay
    for p in params:
        g = p.detach() * two_lam
        if p.grad is None:  # a parameter the loss does not reach
            p.grad = g
        else:
            p.grad.add_(g)


def _data_loss(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Mean cross-entropy on logits (classification) or mean squared error (regression)."""
    if task == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out, y.reshape(out.shape))


def train(
    model: nn.Module,
    data: Any,
    *,
    task: str | None = None,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    reg: str = "l2",
    seed: int = 0,
    callback: Callable[[int, nn.Module, float], bool | None] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place with Adam on minibatches of ``L + weight_decay · R``.

    Phase 1 of the paper is ``weight_decay=0`` for 100 epochs; the weight-decay baseline is
    ``weight_decay=λ`` for 200 or 500. Adam: ``torch.optim.Adam(lr, betas=(0.9, 0.999),
    eps=1e-7)`` (Keras' ε). The training set is reshuffled every epoch by
    ``numpy.random.default_rng(seed)`` — the same order as the JAX and Keras loops — and the last
    minibatch of an epoch may be smaller. Inputs are cast to the model's dtype and device.

    Args:
        model: The net, e.g. from :mod:`manifoldwalk_torch.paper.nets`; outputs logits
            (classification) or ``(n, 1)`` predictions (regression).
        data: A :class:`manifoldwalk.datasets.Dataset` (its ``x_train``, ``y_train`` and
            ``task`` are used) or an ``(x, y)`` pair of arrays.
        task: ``"classification"`` (mean cross-entropy on logits, integer labels) or
            ``"regression"`` (mean squared error); defaults to ``data.task``.
        epochs: Passes over the training set.
        batch_size: Minibatch size.
        lr: Adam's learning rate.
        weight_decay: λ, the weight of the penalty R in the objective.
        reg: R: ``"l2"`` (every parameter, biases included; as the walk) or ``"l2-weights"``
            (rank >= 2 parameters only; as the authors' baseline).
        seed: Seeds the shuffling (the model's initialisation is the builder's business).
        callback: Called after every epoch as ``callback(epoch, model, epoch_loss)`` with
            ``epoch`` counted from 1; returning ``True`` stops training.
        progress: Called after every epoch as ``progress(epoch, epochs, epoch_loss)``.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: For an unknown task or reg, negative epochs or weight decay, a batch size
            below 1, an empty training set, or inputs and targets of different lengths.
    """
    x_np, y_np, task = prepare_training(data, task, epochs, batch_size, weight_decay, reg)
    first = next(model.parameters())
    x = torch.as_tensor(x_np, dtype=first.dtype, device=first.device)
    if task == "classification":
        y = torch.as_tensor(y_np, dtype=torch.long, device=first.device)
    else:
        y = torch.as_tensor(y_np, dtype=first.dtype, device=first.device)
    params = [p for p in model.parameters() if p.requires_grad]
    decayed = _penalised(params, reg)
    # foreach: one multi-tensor update instead of a Python loop over the parameters (the
    # default on a GPU, not on a CPU); the same values bit for bit, unlike fused=True.
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=ADAM_EPS, foreach=True)

    def step(idx: torch.Tensor) -> torch.Tensor:
        loss = _data_loss(model(x[idx]), y[idx], task)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if weight_decay:
            _add_penalty_grad(decayed, weight_decay)
        optimizer.step()
        return loss.detach() * len(idx)

    result = TrainResult(model=model, n_train=len(x_np))
    model.train()
    run_epochs(
        result,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        callback=callback,
        order=lambda perm: torch.as_tensor(perm, device=first.device),
        step=step,
        current=lambda: model,
    )
    result.final_loss = full_batch_loss(model, x, y, task)
    return result


def full_batch_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, *, chunk: int = 1024
) -> float:
    """Return the mean data loss of ``model`` over all of ``(x, y)``, evaluated in chunks.

    Args:
        model: The model (put in eval mode).
        x: Inputs, already of the model's dtype and device.
        y: Targets: integer labels (classification) or values (regression).
        task: ``"classification"`` or ``"regression"``.
        chunk: Examples per forward pass.

    Returns:
        The mean loss as a Python float.
    """
    model.eval()
    total = 0.0
    with torch.no_grad():
        for lo in range(0, len(x), chunk):
            xb, yb = x[lo : lo + chunk], y[lo : lo + chunk]
            total += float(_data_loss(model(xb), yb, task)) * len(xb)
    return total / len(x)
