"""Phase-1 and weight-decay training in JAX: Adam on minibatches of L + λ·R.

The loop, its signature and its result match ``manifoldwalk_torch.paper.training`` and
``manifoldwalk_tf.paper.training``; the shuffling is the same for a given seed, so a net that
starts from the same weights follows the same path in each framework up to float round-off.

Adam is written here in a few lines (:func:`adam_init`, :func:`adam_update`) rather than taken
from optax, to keep the adapter's dependencies to JAX alone. It is the standard algorithm
(Kingma & Ba, Algorithm 1; the form of ``torch.optim.Adam`` and ``optax.adam``): ε is added to
the bias-corrected ``sqrt(v̂)``; β = (0.9, 0.999), ε = 1e-7 (Keras' default).

Each minibatch step is one compiled call (the data stay on the device; the step gathers its
minibatch by index). A whole epoch under ``lax.scan`` is much slower for the convolutional
nets on XLA's CPU backend (measured: docs/performance.md), so the epoch loop stays in Python;
the loss is brought to the host once an epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk._training_result import REGS as _REGS
from manifoldwalk._training_result import TrainResult as _TrainResult
from manifoldwalk._training_result import prepare_training, run_epochs

from .nets import apply_cnv, apply_ff

__all__ = [
    "ADAM_EPS",
    "AdamState",
    "TrainResult",
    "adam_init",
    "adam_update",
    "data_loss",
    "full_batch_loss",
    "penalty",
    "train",
]

ADAM_EPS = 1e-7
"""Adam's ε (Keras' default)."""


class AdamState(NamedTuple):
    """Adam's state: the step count and the first and second moment pytrees."""

    count: jax.Array
    mu: Any
    nu: Any


def adam_init(params: Any) -> AdamState:
    """Return a fresh Adam state for ``params``.

    Args:
        params: The parameter pytree.

    Returns:
        Step count 0 and zero moments shaped like ``params``.
    """
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return AdamState(jnp.zeros((), jnp.int32), zeros, zeros)


def adam_update(
    grads: Any,
    state: AdamState,
    params: Any,
    lr: float | jax.Array = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = ADAM_EPS,
) -> tuple[Any, AdamState]:
    """Take one Adam step.

    ``m ← β1 m + (1-β1) g``, ``v ← β2 v + (1-β2) g²``,
    ``θ ← θ - lr · (m / (1-β1ᵗ)) / (sqrt(v / (1-β2ᵗ)) + ε)``.

    Args:
        grads: The gradient, a pytree like ``params``.
        state: The state from :func:`adam_init` or the previous step.
        params: The current parameters.
        lr: The learning rate.
        b1: β1, the first moment's decay.
        b2: β2, the second moment's decay.
        eps: ε, added to ``sqrt(v̂)``.

    Returns:
        The new parameters and the new state.
    """
    count = state.count + 1
    mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
    nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)

    def step(p: jax.Array, m: jax.Array, v: jax.Array) -> jax.Array:
        t = count.astype(p.dtype)
        upd = (m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + eps)
        return p - jnp.asarray(lr, p.dtype) * upd

    new = jax.tree_util.tree_map(step, params, mu, nu)
    return new, AdamState(count, mu, nu)


class TrainResult(_TrainResult):
    """What :func:`train` returns: :class:`manifoldwalk._training_result.TrainResult`, whose
    ``model`` is the trained parameter pytree, also available as :attr:`params`."""

    @property
    def params(self) -> Any:
        """The trained parameter pytree (the same object as :attr:`model`)."""
        return self.model


def data_loss(outputs: jax.Array, targets: jax.Array, task: str) -> jax.Array:
    """Return the mean data loss of a batch.

    Args:
        outputs: Logits ``(n, k)`` (classification) or predictions ``(n, 1)`` (regression).
        targets: Integer labels ``(n,)`` or values reshapeable to ``outputs.shape``.
        task: ``"classification"`` (mean cross-entropy on logits) or ``"regression"`` (mean
            squared error).

    Returns:
        A scalar.
    """
    if task == "classification":
        logp = jax.nn.log_softmax(outputs, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, targets[:, None], axis=-1))
    return jnp.mean(jnp.square(outputs - jnp.reshape(targets, outputs.shape)))


def penalty(params: Any, reg: str = "l2") -> jax.Array:
    """Return the regulariser R of a parameter pytree.

    Args:
        params: The parameters.
        reg: ``"l2"``: squared L2 norm of every leaf, biases included (the walk's R);
            ``"l2-weights"``: only leaves of rank >= 2 (kernels; the authors' baseline).

    Returns:
        A scalar.

    Raises:
        ValueError: If ``reg`` is unknown.
    """
    if reg not in _REGS:
        raise ValueError(f"reg must be one of {_REGS}, got {reg!r}")
    leaves = jax.tree_util.tree_leaves(params)
    if reg == "l2-weights":
        leaves = [leaf for leaf in leaves if leaf.ndim >= 2]
    return sum((jnp.sum(jnp.square(leaf)) for leaf in leaves), jnp.zeros((), leaves[0].dtype))


@partial(jax.jit, static_argnames=("apply_fn", "task", "reg"))
def _step(
    params: Any,
    state: AdamState,
    x: jax.Array,
    y: jax.Array,
    idx: jax.Array,
    lr: jax.Array,
    weight_decay: jax.Array,
    *,
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    task: str,
    reg: str,
) -> tuple[Any, AdamState, jax.Array]:
    """One Adam step on the minibatch ``x[idx], y[idx]``; returns params, state and the batch's
    summed data loss (mean loss × batch size)."""

    def objective(p: Any) -> tuple[jax.Array, jax.Array]:
        loss = data_loss(apply_fn(p, x[idx]), y[idx], task)
        return loss + weight_decay.astype(loss.dtype) * penalty(p, reg), loss

    grads, loss = jax.grad(objective, has_aux=True)(params)
    params, state = adam_update(grads, state, params, lr)
    return params, state, loss * idx.shape[0]


@partial(jax.jit, static_argnames=("apply_fn", "task"))
def _loss(
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    task: str,
) -> jax.Array:
    """The mean data loss over one chunk."""
    return data_loss(apply_fn(params, x), y, task)


def train(
    params: Any,
    data: Any,
    *,
    task: str | None = None,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    reg: str = "l2",
    seed: int = 0,
    callback: Callable[[int, Any, float], bool | None] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    apply_fn: Callable[[Any, jax.Array], jax.Array] | None = None,
) -> TrainResult:
    """Train a parameter pytree with Adam on minibatches of ``L + weight_decay · R``.

    Phase 1 of the paper is ``weight_decay=0`` for 100 epochs; the weight-decay baseline is
    ``weight_decay=λ`` for 200 or 500. The training set is reshuffled every epoch by
    ``numpy.random.default_rng(seed)`` (the same order as the PyTorch and Keras loops); the last
    minibatch of an epoch may be smaller. Inputs are cast to the parameters' dtype.

    Args:
        params: The initial parameters (e.g. from :func:`manifoldwalk_jax.paper.nets.init_ff`); not
            modified.
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
        seed: Seeds the shuffling.
        callback: Called after every epoch as ``callback(epoch, params, epoch_loss)`` with
            ``epoch`` counted from 1; returning ``True`` stops training.
        progress: Called after every epoch as ``progress(epoch, epochs, epoch_loss)``.
        apply_fn: ``apply_fn(params, x) -> outputs``, hashable (it is a static argument of the
            compiled step). Defaults to :func:`~manifoldwalk_jax.paper.nets.apply_cnv` when
            ``params`` has a ``"conv"`` entry and :func:`~manifoldwalk_jax.paper.nets.apply_ff`
            otherwise.

    Returns:
        A :class:`TrainResult` whose ``model`` (alias ``params``) is the trained pytree.

    Raises:
        ValueError: For an unknown task or reg, negative epochs or weight decay, a batch size
            below 1, an empty training set, or inputs and targets of different lengths.
    """
    x_np, y_np, task = prepare_training(data, task, epochs, batch_size, weight_decay, reg)
    if apply_fn is None:
        apply_fn = apply_cnv if isinstance(params, dict) and "conv" in params else apply_ff
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    x = jnp.asarray(x_np, dtype=dtype)
    y = jnp.asarray(y_np, dtype=jnp.int32 if task == "classification" else dtype)
    lr_arr = jnp.asarray(lr, dtype)
    wd_arr = jnp.asarray(weight_decay, dtype)
    # The parameters and Adam's state, replaced by every step.
    carry = [params, adam_init(params)]
    kwargs = {"apply_fn": apply_fn, "task": task, "reg": reg}

    def step(idx: jax.Array) -> jax.Array:
        carry[0], carry[1], loss = _step(*carry, x, y, idx, lr_arr, wd_arr, **kwargs)
        return loss

    result = TrainResult(model=params, n_train=len(x_np))
    run_epochs(
        result,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        callback=callback,
        order=lambda perm: jnp.asarray(perm.astype(np.int32)),
        step=step,
        current=lambda: carry[0],
    )
    params = result.model = carry[0]
    result.final_loss = full_batch_loss(params, x, y, task, apply_fn=apply_fn)
    return result


def full_batch_loss(
    params: Any,
    x: Any,
    y: Any,
    task: str,
    *,
    apply_fn: Callable[[Any, jax.Array], jax.Array] = apply_ff,
    chunk: int = 1024,
) -> float:
    """Return the mean data loss over all of ``(x, y)``, evaluated in chunks.

    Args:
        params: The parameters.
        x: Inputs (cast to the parameters' dtype).
        y: Integer labels (classification) or values (regression).
        task: ``"classification"`` or ``"regression"``.
        apply_fn: ``apply_fn(params, x) -> outputs``.
        chunk: Examples per forward pass.

    Returns:
        The mean loss as a Python float.
    """
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    x = jnp.asarray(x, dtype=dtype)
    y = jnp.asarray(y, dtype=jnp.int32 if task == "classification" else dtype)
    total = 0.0
    for lo in range(0, len(x), chunk):
        xb, yb = x[lo : lo + chunk], y[lo : lo + chunk]
        total += float(_loss(params, xb, yb, apply_fn=apply_fn, task=task)) * len(xb)
    return total / len(x)
