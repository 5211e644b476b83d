"""The minibatch losses of M stacked copies of one net, in one batched computation.

:func:`stacked_losses` returns a function of the stacked parameters (``(M, *shape)`` per
tensor), buffers and a minibatch ``(M, B, ...)`` that gives each member's mean data loss. A
``nn.Sequential`` of ``nn.Linear`` layers and parameter-free per-example layers (the paper's
feed-forward net) runs as batched matrix products on the stacked tensors directly; any other net
runs through :func:`torch.func.vmap` over :func:`torch.func.functional_call`, which gives the
same values but costs more Python per call (a quarter of a step of the Iris-sized net).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from manifoldwalk_torch.paper.nets import ChannelsFirst, FlattenNHWC
from manifoldwalk_torch.paper.training import _data_loss

__all__ = ["StackedLosses", "stacked_losses"]

StackedLosses = Callable[
    [dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor
]
"""``losses(params, buffers, xb, yb)``: stacked tensors and an ``(M, B, ...)`` minibatch in,
the ``(M,)`` members' mean data losses out (differentiable)."""

_PER_EXAMPLE = (
    nn.Tanh,
    nn.ReLU,
    nn.Sigmoid,
    nn.Identity,
    nn.AvgPool2d,
    nn.MaxPool2d,
    ChannelsFirst,
    FlattenNHWC,
)
"""Parameter-free layers that map each example on its own (so M·B examples may pass at once)."""


def stacked_losses(model: nn.Module, task: str) -> StackedLosses:
    """The batched loss function of stacked copies of ``model`` (see :data:`StackedLosses`).

    Args:
        model: One member's net (its layers are read; its tensors are not used).
        task: ``"classification"`` (mean cross-entropy on logits) or ``"regression"`` (MSE).

    Returns:
        The function, in training mode (as the backend's ``train`` runs the net). Random layers
        (dropout) draw a different mask per member.
    """
    if _direct(model):
        return _direct_losses(model, task)
    skeleton = copy.deepcopy(model).to("meta")
    skeleton.train()

    def member_loss(
        p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor
    ) -> torch.Tensor:
        return _data_loss(functional_call(skeleton, (p, b), (xb,)), yb, task)

    return vmap(member_loss, randomness="different")


def _direct(model: nn.Module) -> bool:
    """Whether ``model`` is a Sequential of Linear layers and per-example parameter-free ones."""
    if not isinstance(model, nn.Sequential) or next(model.buffers(), None) is not None:
        return False
    for layer in model:
        if isinstance(layer, nn.Linear):
            continue
        if isinstance(layer, nn.Flatten) and layer.start_dim >= 1 and layer.end_dim == -1:
            continue
        if type(layer) not in _PER_EXAMPLE:
            return False
    return True


def _direct_losses(model: nn.Sequential, task: str) -> StackedLosses:
    """:data:`StackedLosses` of a Sequential that :func:`_direct` accepts, without vmap."""
    plan: list[tuple[str, str] | nn.Module] = []  # (weight, bias) names, or a layer
    for i, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            plan.append((f"{i}.weight", f"{i}.bias" if layer.bias is not None else ""))
        else:
            plan.append(layer)

    def losses(
        p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor
    ) -> torch.Tensor:
        members, size = xb.shape[:2]
        h = xb
        for step in plan:
            if isinstance(step, tuple):
                w = p[step[0]].transpose(1, 2)
                h = h.reshape(members, size, -1)
                h = torch.baddbmm(p[step[1]].unsqueeze(1), h, w) if step[1] else torch.bmm(h, w)
            else:  # M·B examples at once
                h = step(h.reshape(members * size, *h.shape[2:]))
                h = h.reshape(members, size, *h.shape[1:])
        if task == "classification":
            each = F.cross_entropy(h.reshape(members * size, -1), yb.reshape(-1), reduction="none")
        else:
            each = F.mse_loss(h, yb.reshape(h.shape), reduction="none")
        return each.reshape(members, -1).mean(1)

    return losses
