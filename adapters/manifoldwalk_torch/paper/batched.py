"""Many training runs of one net as one batched computation: a weight-decay sweep, or seeds.

:func:`train_batched` trains M copies of the same architecture — each with its own weights,
training set, λ and shuffling seed — with every operation batched over a leading member axis:
the members' parameters are stacked (``(M, *shape)`` per tensor), the forward pass runs on the
stacked tensors (:mod:`manifoldwalk_torch.paper._stacked`: batched matrix products for the
feed-forward net, :func:`torch.func.vmap` over :func:`torch.func.functional_call` for any other
net), and one Adam updates the stacked tensors. Adam is elementwise and the members' losses are summed, so each member's slice
follows the same algorithm as :func:`manifoldwalk_torch.paper.training.train` on that member
alone; the results agree up to floating-point rounding (batched matrix products round
differently, and Adam is the fused implementation), not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from manifoldwalk._training_result import prepare_training
from manifoldwalk_torch.paper._stacked import stacked_losses
from manifoldwalk_torch.paper.training import ADAM_EPS, _penalised

__all__ = ["train_batched"]

BATCH_SIZE = 32
"""Minibatch size, as the backend's ``train``."""


def train_batched(
    models: Sequence[nn.Module],
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    *,
    task: str,
    epochs: int,
    weight_decays: Sequence[float],
    seeds: Sequence[int],
    reg: str = "l2",
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[list[nn.Module], list[int]]:
    """Train M nets of one architecture at once, each as the backend's ``train`` would.

    Member ``m`` ends as ``train(models[m], xs[m], ys[m], task=task, epochs=epochs,
    weight_decay=weight_decays[m], reg=reg, seed=seeds[m])`` would leave it, up to rounding:
    Adam(1e-3, β=(0.9, 0.999), ε=1e-7) on minibatches of 32 of ``L + λ_m · R``, the training set
    reshuffled every epoch by ``numpy.random.default_rng(seeds[m])`` (as
    :func:`manifoldwalk._training_result.run_epochs` draws), the last minibatch smaller. All
    members take their steps together: at every step member ``m``'s minibatch is
    ``xs[m][perm_m[b*32:(b+1)*32]]``, the members' mean losses are summed and backpropagated
    (each stacked parameter's gradient is then every member's own), ``2·λ_m·p_m`` is added to
    the penalised parameters' gradients (all of them for ``"l2"``, rank >= 2 ones for
    ``"l2-weights"``) and one Adam step updates the stacked tensors. Afterwards each member's
    weights (and buffers) are copied into its model in place, its ``.grad`` holds its last
    step's gradient, and it is left in eval mode, as ``train`` leaves it.

    Nets other than a ``Sequential`` of ``Linear`` and per-example layers run through
    :func:`torch.func.vmap` with ``randomness="different"``: a net with random layers (dropout)
    draws a different mask per member, and not the masks sequential training would draw (the
    paper's nets have none). Nets with normalisation layers, whose forward pass updates running
    statistics in place, are refused.

    Args:
        models: From the backend's ``build_net``: distinct modules of one architecture, dtype
            and device.
        xs: Member ``m``'s training inputs; all of equal length and shape.
        ys: Member ``m``'s targets (integer labels for classification).
        task: ``"classification"`` (mean cross-entropy on logits) or ``"regression"`` (MSE).
        epochs: Passes over each training set.
        weight_decays: Member ``m``'s λ (0: no penalty).
        seeds: Member ``m``'s shuffling seed.
        reg: R: ``"l2"`` (every trainable parameter) or ``"l2-weights"`` (rank >= 2 only).
        progress: Called after every epoch as ``progress(epoch, epochs, loss)``, ``loss`` the
            mean over members of their epoch losses (as ``train`` reports its own).

    Returns:
        ``(models, n_example_grads)``: the trained models in member order (the ones passed in)
        and each member's example-wise gradient count (epochs × its training-set size).

    Raises:
        ValueError: For no members; ``models``, ``xs``, ``ys``, ``weight_decays`` and ``seeds``
            of different lengths; training sets of different lengths or shapes; models of
            different architecture, dtype or device, the same model twice, or a model with
            normalisation layers; and what ``train`` refuses (unknown task or reg, negative
            epochs or λ, an empty training set, inputs and targets of different lengths).
    """
    members = len(models)
    if members == 0:
        raise ValueError("train_batched needs at least one member; got no models")
    counts = {
        "models": members,
        "xs": len(xs),
        "ys": len(ys),
        "weight_decays": len(weight_decays),
        "seeds": len(seeds),
    }
    if len(set(counts.values())) != 1:
        raise ValueError(
            f"one model, input set, target set, weight decay and seed per member are needed; "
            f"got {counts}"
        )
    data = [
        prepare_training((x, y), task, epochs, BATCH_SIZE, lam, reg)
        for x, y, lam in zip(xs, ys, weight_decays, strict=True)
    ]
    n = _common_length(data)
    _check_models(models)
    base = models[0]
    first = next(base.parameters())
    dev, dt = first.device, first.dtype
    is_class = task == "classification"
    x_all, x_of = _stack_unique([d[0] for d in data], dt, dev)
    y_all, y_of = _stack_unique([d[1] for d in data], torch.long if is_class else dt, dev)

    params = {
        k: torch.stack([dict(m.named_parameters())[k].detach() for m in models]).requires_grad_(
            p.requires_grad
        )
        for k, p in base.named_parameters()
    }
    buffers = {
        k: torch.stack([dict(m.named_buffers())[k] for m in models])
        for k, _ in base.named_buffers()
    }
    trainable = [(k, p) for k, p in base.named_parameters() if p.requires_grad]
    penalised = {id(p) for p in _penalised([p for _, p in trainable], reg)}
    trained = [params[k] for k, _ in trainable]
    decayed = [params[k] for k, p in trainable if id(p) in penalised]
    # λ_m along the member axis, broadcast over each parameter's own axes
    lam = torch.tensor([float(w) for w in weight_decays], dtype=dt, device=dev)
    two_lams = {p.ndim: (2.0 * lam).reshape((members,) + (1,) * (p.ndim - 1)) for p in decayed}
    any_decay = any(float(w) for w in weight_decays)
    optimizer = torch.optim.Adam(trained, lr=1e-3, betas=(0.9, 0.999), eps=ADAM_EPS, **_fast(dev))

    losses_of = stacked_losses(base, task)
    x_rows = torch.as_tensor(x_of, device=dev).unsqueeze(1)
    y_rows = torch.as_tensor(y_of, device=dev).unsqueeze(1)

    def step(idx: torch.Tensor) -> torch.Tensor:
        losses = losses_of(params, buffers, x_all[x_rows, idx], y_all[y_rows, idx])
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if any_decay:
            for p in decayed:
                g = p.detach() * two_lams[p.ndim]
                if p.grad is None:  # a parameter the loss does not reach
                    p.grad = g
                else:
                    p.grad.add_(g)
        optimizer.step()
        return losses.detach() * idx.shape[1]

    rngs = [np.random.default_rng(s) for s in seeds]
    for epoch in range(1, epochs + 1):
        # one generator per member, one permutation per epoch: run_epochs' draws
        perms = torch.as_tensor(np.stack([r.permutation(n) for r in rngs]), device=dev)
        total = None
        for lo in range(0, n, BATCH_SIZE):
            loss = step(perms[:, lo : lo + BATCH_SIZE])
            total = loss if total is None else total + loss
        if progress is not None:
            progress(epoch, epochs, float(total.mean()) / n)
    _copy_back(models, params, buffers, epochs > 0)
    return list(models), [epochs * n] * members


def _fast(device: torch.device) -> dict[str, bool]:
    """Adam's fastest implementation on ``device``.

    ``fused=True`` (one kernel per tensor) where torch has it: on the large stacked tensors
    the multi-tensor (``foreach``) update that ``train`` uses makes a dozen passes over memory,
    three times the fused update's time on the Iris-sized net. The two round differently,
    which the batched products do anyway.
    """
    return {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}


def _common_length(data: list[tuple[np.ndarray, np.ndarray, str]]) -> int:
    """The members' common training-set length, after checking their shapes agree."""
    lengths = [len(x) for x, _, _ in data]
    if len(set(lengths)) != 1:
        raise ValueError(
            f"training sets of different lengths {lengths}: all members of one batched call "
            "take the same steps; group members by training-set length and call once per group"
        )
    for what, k in (("inputs", 0), ("targets", 1)):
        shapes = {tuple(d[k].shape) for d in data}
        if len(shapes) != 1:
            raise ValueError(
                f"the members' {what} have different shapes {sorted(shapes)}; every member "
                f"needs {what} of one shape"
            )
    return lengths[0]


def _check_models(models: Sequence[nn.Module]) -> None:
    """Raise ValueError unless the models are distinct modules that can be stacked."""
    if len({id(m) for m in models}) != len(models):
        raise ValueError("the same model object appears more than once; build one model per member")
    base = models[0]
    if any(isinstance(m, nn.modules.batchnorm._NormBase) for m in base.modules()):
        raise ValueError(
            "train_batched cannot train nets with normalisation layers (their running "
            "statistics update in place); train such nets one by one with train"
        )
    if next(base.parameters(), None) is None:
        raise ValueError("the model has no parameters to train")

    def layout(m: nn.Module) -> tuple:
        tensors = [*m.named_parameters(), *m.named_buffers()]
        return repr(m), [(k, t.shape, t.dtype, t.device, t.requires_grad) for k, t in tensors]

    want = layout(base)
    for i, m in enumerate(models[1:], start=1):
        if layout(m) != want:
            raise ValueError(
                f"model {i} differs from model 0 in architecture, dtype or device; every "
                "member must come from the same build_net call arguments (the seed aside)"
            )


def _stack_unique(
    arrays: list[np.ndarray], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, list[int]]:
    """The distinct arrays stacked ``(U, n, ...)`` as tensors, and each member's row in it.

    Members that share a training set (a sweep over λ on one split) share its copy.
    """
    unique: list[np.ndarray] = []
    row_of: list[int] = []
    for a in arrays:
        for u, b in enumerate(unique):
            if a is b or (a.dtype == b.dtype and np.array_equal(a, b)):
                row_of.append(u)
                break
        else:
            row_of.append(len(unique))
            unique.append(a)
    stacked = torch.stack([torch.as_tensor(a, dtype=dtype, device=device) for a in unique])
    return stacked, row_of


def _copy_back(
    models: Sequence[nn.Module],
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    stepped: bool,
) -> None:
    """Copy each member's slice into its model in place (and its last gradient); eval mode."""
    with torch.no_grad():
        for m, model in enumerate(models):
            for k, p in model.named_parameters():
                p.copy_(params[k][m])
                if stepped and params[k].grad is not None:
                    p.grad = params[k].grad[m].clone()
            for k, b in model.named_buffers():
                b.copy_(buffers[k][m])
            model.eval()
