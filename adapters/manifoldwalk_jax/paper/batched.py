"""Many trainings of one net at once: :func:`train_batched`, the batched form of the backend's
``train`` for the weight-decay sweep (every λ, both splits) and for phase 1 across seeds.

The M members' parameter pytrees and Adam states are stacked along a leading member axis and
:func:`manifoldwalk_jax.paper.training`'s own minibatch step runs under ``jax.vmap``, so every
operation is batched over the members and one compiled call advances all of them by one
minibatch. Adam is elementwise and each member's objective ``L_m + λ_m·R`` depends on its own
parameters only, so member m follows the path its own ``train`` call would, up to the rounding of
the batched products (not bit for bit).

Members may train on different data of equal length (e.g. different seeds' subsets): the distinct
training sets are stored once, end to end, and each member's minibatch is gathered from its own
set by global index, so the λ of one sweep share one copy of their data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk._training_result import check_train_options, check_train_set

from . import training

__all__ = ["BATCH_SIZE", "LEARNING_RATE", "Model", "train_batched"]

BATCH_SIZE = 32
"""Minibatch size (as the backend's ``train``)."""

LEARNING_RATE = 1e-3
"""Adam's learning rate (as the backend's ``train``)."""

Model = tuple[Callable[[Any, jax.Array], jax.Array], Any]
"""A JAX paper model: ``(apply_fn, params)``."""


# The stacked parameters and states are this module's own copies, so XLA may write the new ones
# over them (measured on iris-ff, 14 float64 members: 3.3 ms of CPU a step against 5.0 without).
@partial(jax.jit, static_argnames=("apply_fn", "task", "reg", "size"), donate_argnums=(0, 1))
def _batched_step(
    params: Any,
    state: training.AdamState,
    x: jax.Array,
    y: jax.Array,
    perm: jax.Array,
    lo: jax.Array,
    lr: jax.Array,
    weight_decay: jax.Array,
    *,
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    task: str,
    reg: str,
    size: int,
) -> tuple[Any, training.AdamState, jax.Array]:
    """One Adam step of every member on its minibatch ``perm[m, lo:lo+size]``.

    ``params``, ``state`` and ``weight_decay`` carry the member axis; ``x``, ``y`` are the
    distinct training sets end to end and ``perm`` holds global row indices ``(M, n)``. Slicing
    the minibatch here (``lo`` a traced scalar, ``size`` static) keeps one compiled call per step
    and two programs in all (full minibatches and the smaller last one). Returns the stacked
    parameters, states and each member's summed minibatch data loss ``(M,)``.
    """
    idx = jax.lax.dynamic_slice_in_dim(perm, lo, size, axis=1)
    step = partial(training._step, apply_fn=apply_fn, task=task, reg=reg)
    return jax.vmap(step, in_axes=(0, 0, None, None, 0, None, 0))(
        params, state, x, y, idx, lr, weight_decay
    )


def _check_lengths(**columns: Sequence[Any]) -> int:
    """Return the number of members after checking every per-member sequence has it."""
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"train_batched: give one entry per member in every list, got lengths {lengths}"
        )
    m = next(iter(lengths.values()))
    if m == 0:
        raise ValueError("train_batched: no members; give at least one model")
    return m


def _check_models(models: Sequence[Any]) -> tuple[Callable[[Any, jax.Array], jax.Array], list]:
    """Return the shared ``apply_fn`` and each member's params after checking the members are one
    net: the same apply function, pytree structure, leaf shapes, dtypes and devices."""
    for m, model in enumerate(models):
        if not (isinstance(model, tuple | list) and len(model) == 2 and callable(model[0])):
            raise ValueError(
                f"train_batched: models[{m}] is not an (apply_fn, params) pair; pass models from "
                "manifoldwalk_jax.paper.build_net"
            )
    apply_fn = models[0][0]
    params = [model[1] for model in models]
    leaves0, tree0 = jax.tree_util.tree_flatten(params[0])
    if not leaves0:
        raise ValueError("train_batched: models[0] has no parameters")

    def signature(leaves: list[Any]) -> list[tuple[Any, ...]]:
        return [(jnp.shape(a), jnp.result_type(a), _devices(a)) for a in leaves]

    sig0 = signature(leaves0)
    for m, p in enumerate(params[1:], start=1):
        leaves, tree = jax.tree_util.tree_flatten(p)
        if models[m][0] != apply_fn or tree != tree0 or signature(leaves) != sig0:
            raise ValueError(
                f"train_batched: models[{m}] is not the same net as models[0] (apply function, "
                "layers, shapes, dtype or device differ); build every member with the same "
                "build_net arguments"
            )
    return apply_fn, params


def _devices(a: Any) -> frozenset[Any] | None:
    """The devices an array lives on (None for a non-JAX array)."""
    return frozenset(a.devices()) if isinstance(a, jax.Array) else None


def _check_data(
    xs: Sequence[Any], ys: Sequence[Any]
) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Return the members' inputs and targets as numpy arrays and the common training-set length,
    after checking every set is non-empty, as long as the others and of the same example shape."""
    x_np = [np.asarray(x) for x in xs]
    y_np = [np.asarray(y) for y in ys]
    for m, (x, y) in enumerate(zip(x_np, y_np, strict=True)):
        try:
            check_train_set(x, y)
        except ValueError as err:
            raise ValueError(f"train_batched: member {m}: {err}") from None
    n = len(x_np[0])
    for m, (x, y) in enumerate(zip(x_np, y_np, strict=True)):
        if len(x) != n:
            raise ValueError(
                f"train_batched: members' training sets differ in length ({len(x)} examples in "
                f"member {m}, {n} in member 0); group members by training-set length and call "
                "train_batched once per group"
            )
        if x.shape[1:] != x_np[0].shape[1:] or y.shape[1:] != y_np[0].shape[1:]:
            raise ValueError(
                f"train_batched: member {m}'s examples have shape {x.shape[1:]} -> {y.shape[1:]}, "
                f"member 0's {x_np[0].shape[1:]} -> {y_np[0].shape[1:]}; every member must train "
                "on data of the same kind"
            )
    return x_np, y_np, n


def _distinct_sets(
    xs: list[np.ndarray], ys: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The distinct ``(x, y)`` training sets and, per member, the index of its set.

    Members sharing a set (the same arrays, or equal ones) share one copy on the device.
    """
    set_x: list[np.ndarray] = []
    set_y: list[np.ndarray] = []
    owner = np.empty(len(xs), dtype=np.int64)
    for m, (x, y) in enumerate(zip(xs, ys, strict=True)):
        for u, (ux, uy) in enumerate(zip(set_x, set_y, strict=True)):
            same_x = x is ux or np.array_equal(x, ux)
            if same_x and (y is uy or np.array_equal(y, uy)):
                owner[m] = u
                break
        else:
            owner[m] = len(set_x)
            set_x.append(x)
            set_y.append(y)
    return set_x, set_y, owner


def _stack(trees: Sequence[Any]) -> Any:
    """Stack pytrees of one structure along a new leading member axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def train_batched(
    models: Sequence[Model],
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    *,
    task: str,
    epochs: int,
    weight_decays: Sequence[float],
    seeds: Sequence[int],
    reg: str = "l2",
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[list[Model], list[int]]:
    """Train M copies of one net, each with its own data, λ and shuffling seed, in one batched
    computation.

    Member m ends where ``train(models[m], xs[m], ys[m], task=task, epochs=epochs,
    weight_decay=weight_decays[m], reg=reg, seed=seeds[m])`` would leave it (Adam(1e-3),
    minibatches of 32 reshuffled every epoch by ``numpy.random.default_rng(seeds[m])``, the last
    one smaller), equal up to floating-point rounding: the members' parameters and Adam states are
    stacked and the backend's minibatch step runs vmapped over them, one compiled call per
    minibatch for all members.

    Args:
        models: ``(apply_fn, params)`` pairs from :func:`manifoldwalk_jax.paper.build_net`, all
            the same net (architecture, dtype, device); not modified.
        xs: Member m's training inputs; every member's set has the same length n.
        ys: Member m's targets (integer labels or values).
        task: ``"classification"`` or ``"regression"``.
        epochs: Passes over each training set.
        weight_decays: Member m's λ (0 for phase 1).
        seeds: Member m's shuffling seed.
        reg: ``"l2"`` (every parameter) or ``"l2-weights"`` (kernels only), as ``train``.
        progress: Called after every epoch as ``progress(epoch, epochs, loss)``, ``loss`` the mean
            over members of their epoch losses (each the mean minibatch data loss, as ``train``
            reports it). Without it the loop never waits for the device between epochs.

    Returns:
        ``(models, n_example_grads)``: the trained ``(apply_fn, params)`` pairs in member order
        and each member's example-wise gradient count (epochs × n).

    Raises:
        ValueError: For no members; per-member lists of different lengths; models that are not
            one net; training sets of different lengths or example shapes (group members by
            training-set length); and whatever ``train`` refuses (unknown task or reg, negative
            epochs or λ, an empty set, inputs and targets of different lengths).
    """
    n_members = _check_lengths(
        models=models, xs=xs, ys=ys, weight_decays=weight_decays, seeds=seeds
    )
    for m, lam in enumerate(weight_decays):
        try:
            task = check_train_options(task, epochs, BATCH_SIZE, lam, reg)
        except ValueError as err:
            raise ValueError(f"train_batched: member {m}: {err}") from None
    apply_fn, params = _check_models(models)
    x_np, y_np, n = _check_data(xs, ys)
    rngs = [np.random.default_rng(seed) for seed in seeds]  # a bad seed fails before training
    if epochs == 0:
        return [(apply_fn, p) for p in params], [0] * n_members

    dtype = jax.tree_util.tree_leaves(params[0])[0].dtype
    set_x, set_y, owner = _distinct_sets(x_np, y_np)
    x = jnp.asarray(np.concatenate(set_x), dtype=dtype)
    y = jnp.asarray(np.concatenate(set_y), dtype=jnp.int32 if task == "classification" else dtype)
    offsets = (owner * n)[:, None]  # member m's rows start at owner[m]·n
    lr = jnp.asarray(LEARNING_RATE, dtype)
    wd = jnp.asarray(np.asarray(weight_decays, dtype=np.float64), dtype)
    stacked = _stack(params)
    state = _stack([training.adam_init(p) for p in params])
    options = {"apply_fn": apply_fn, "task": task, "reg": reg}
    starts = range(0, n, BATCH_SIZE)

    for epoch in range(1, epochs + 1):
        # One generator per member, one permutation each per epoch: train's order, member-wise.
        perm = np.stack([rng.permutation(n) for rng in rngs]) + offsets
        perm_dev = jnp.asarray(perm.astype(np.int32))
        total = None
        for lo in starts:
            size = min(BATCH_SIZE, n - lo)
            stacked, state, loss = _batched_step(
                stacked, state, x, y, perm_dev, np.int32(lo), lr, wd, size=size, **options
            )
            if progress is not None:
                total = loss if total is None else total + loss
        if progress is not None:
            progress(epoch, epochs, float(jnp.mean(total)) / n)

    trained = [
        (apply_fn, jax.tree_util.tree_map(lambda leaf, m=m: leaf[m], stacked))
        for m in range(n_members)
    ]
    return trained, [epochs * n] * n_members
