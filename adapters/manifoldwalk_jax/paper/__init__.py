"""The paper backend for JAX (same functions as ``manifoldwalk_torch.paper``).

The nets are in :mod:`manifoldwalk_jax.paper.nets`, the training loop in
:mod:`manifoldwalk_jax.paper.training`, many trainings of one net at once (a weight-decay sweep,
phase 1 across seeds) in :mod:`manifoldwalk_jax.paper.batched`.

A *model* here is the pair ``(apply_fn, params)``; training returns a new pair. float64 nets
need ``jax_enable_x64``: :func:`build_net` turns it on when asked for float64 (experiment runs
only; the adapter itself never changes JAX's configuration).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk.experiments._paper_parts import (
    NETS,
    check_dtype,
    check_held_out,
    check_net,
    paper_train,
)
from manifoldwalk_jax import JaxProblem, from_apply, walk_batch
from manifoldwalk_jax.paper import nets, training
from manifoldwalk_jax.paper.batched import train_batched

__all__ = [
    "COMPILED_WALKS",
    "NETS",
    "build_net",
    "configure",
    "from_numpy",
    "held_out",
    "make_problem",
    "train",
    "train_batched",
    "walk_batch",
]

COMPILED_WALKS = True
"""The experiment runner walks this backend's problems with the compiled driver
(``walk(..., driver=Chunked(K))``, K the experiment's record interval): the same path as the
eager driver, faster per step on the small nets (measured: docs/compiled.md)."""

Model = tuple[Callable[[Any, jax.Array], jax.Array], Any]


def configure(*, device: str = "cpu", threads: int | None = None) -> None:
    """Check the device; JAX places arrays on its default device.

    Args:
        device: ``"cpu"`` or ``"cuda"`` (a GPU must then be JAX's default backend).
        threads: Ignored (XLA sizes its own thread pool).

    Raises:
        ValueError: For an unknown device, or ``"cuda"`` without a JAX GPU backend.
    """
    del threads
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose 'cpu' or 'cuda'")
    if device == "cuda" and jax.default_backend() != "gpu":
        raise ValueError(f"device 'cuda' asked for, but JAX's backend is {jax.default_backend()}")


def build_net(
    net: str,
    input_shape: Sequence[int],
    n_out: int,
    *,
    hidden: Sequence[int] = (100, 100, 100),
    seed: int,
    dtype: str = "float32",
) -> Model:
    """Build one of the paper's nets, Glorot-normal initialised from ``seed``.

    Args:
        net: ``"ff"``, ``"mnist-cnv"`` or ``"cifar10-cnv"``.
        input_shape: The shape of one input.
        n_out: Outputs.
        hidden: Hidden widths of the feed-forward net.
        seed: Seeds the initialisation.
        dtype: ``"float32"`` or ``"float64"`` (enables ``jax_enable_x64``).

    Returns:
        ``(apply_fn, params)``.

    Raises:
        ValueError: For an unknown net or dtype.
    """
    if check_dtype(dtype) == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    dt = jnp.dtype(dtype)
    if check_net(net) == "ff":
        return nets.apply_ff, nets.init_ff(seed, tuple(input_shape), n_out, tuple(hidden), dt)
    init = nets.init_mnist_cnv if net == "mnist-cnv" else nets.init_cifar10_cnv
    return nets.apply_cnv, init(seed, n_out, dt)


def _train_pair(model: Model, data: Any, **options: Any) -> training.TrainResult:
    """:func:`manifoldwalk_jax.paper.training.train` on the parameters of ``(apply_fn, params)``;
    the result's ``model`` is the pair with the trained parameters."""
    apply_fn, params = model
    result = training.train(params, data, apply_fn=apply_fn, **options)
    return dataclasses.replace(result, model=(apply_fn, result.params))


train = paper_train(_train_pair)
"""Train with Adam(1e-3), minibatches of 32, on ``L + weight_decay · R``; returns
``((apply_fn, trained params), n_example_grads)`` (see
:meth:`~manifoldwalk.experiments.backend.PaperBackend.train`)."""


def make_problem(
    model: Model, x: np.ndarray, y: np.ndarray, *, task: str, reg: str = "l2"
) -> JaxProblem:
    """Wrap the model's full-batch training loss as a Problem (θ0: its current parameters).

    Args:
        model: ``(apply_fn, params)``.
        x, y: The training data.
        task: ``"classification"`` or ``"regression"``.
        reg: The regulariser R of the walk.

    Returns:
        A :class:`~manifoldwalk_jax.JaxProblem`.
    """
    apply_fn, params = model
    dt = jax.tree_util.tree_leaves(params)[0].dtype
    xs = jnp.asarray(x, dtype=dt)
    ys = jnp.asarray(y) if task == "classification" else jnp.asarray(y, dtype=dt)
    return from_apply(
        apply_fn, params, lambda out, t: training.data_loss(out, t, task), (xs, ys), reg=reg
    )


def held_out(problem: JaxProblem, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, ...]:
    """The held-out set as jax arrays on θ's device (floating data in θ's dtype), made once.

    Args:
        problem: The problem from :func:`make_problem`.
        x, y: The held-out inputs and targets.

    Returns:
        ``(x, y)``.

    Raises:
        ProblemError: A scalar input or target, different lengths, or no examples.
    """
    dtype = problem.theta0.dtype
    device = next(iter(problem.theta0.devices()))  # the one device the adapter keeps θ on
    data = (jax.device_put(jnp.asarray(a), device) for a in check_held_out(x, y))
    return tuple(a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in data)


def from_numpy(array: np.ndarray, like: Any) -> jax.Array:
    """Turn a NumPy vector into a flat θ of ``like``'s dtype.

    Args:
        array: The values.
        like: A flat θ of the problem.

    Returns:
        A ``jax.Array``.
    """
    return jnp.asarray(np.asarray(array), dtype=like.dtype)
