"""The experiment backend for JAX (same functions as ``manifoldwalk_torch.experiment``).

A *model* here is the pair ``(apply_fn, params)``; training returns a new pair. float64 nets
need ``jax_enable_x64``: :func:`build_net` turns it on when asked for float64 (experiment runs
only; the adapter itself never changes JAX's configuration).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk_jax import nets, training
from manifoldwalk_jax.batch import walk_batch
from manifoldwalk_jax.problem import JaxProblem, _as_data, from_apply

__all__ = [
    "COMPILED_WALKS",
    "NETS",
    "build_net",
    "configure",
    "from_numpy",
    "make_problem",
    "train",
    "walk_batch",
]

NETS = ("ff", "mnist-cnv", "cifar10-cnv")
"""The net kinds :func:`build_net` knows."""

COMPILED_WALKS = True
"""The experiment runner walks this backend's problems with the compiled driver
(``walk(..., steps_per_sync=K)``, K the experiment's record interval): the same path as the
eager driver, 1.1–1.5× faster per step on the Iris net on this CPU (docs/compiled.md)."""

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
    if dtype not in ("float32", "float64"):
        raise ValueError(f"unknown dtype {dtype!r}; choose 'float32' or 'float64'")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    dt = jnp.dtype(dtype)
    if net == "ff":
        return nets.apply_ff, nets.init_ff(seed, tuple(input_shape), n_out, tuple(hidden), dt)
    if net == "mnist-cnv":
        return nets.apply_cnv, nets.init_mnist_cnv(seed, n_out, dt)
    if net == "cifar10-cnv":
        return nets.apply_cnv, nets.init_cifar10_cnv(seed, n_out, dt)
    raise ValueError(f"unknown net {net!r}; choose one of {', '.join(NETS)}")


def train(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    epochs: int,
    weight_decay: float = 0.0,
    reg: str = "l2",
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Model, int]:
    """Train with Adam(1e-3), minibatches of 32, on ``L + weight_decay · R``.

    Args:
        model: ``(apply_fn, params)`` from :func:`build_net`.
        x, y: The training data.
        task: ``"classification"`` or ``"regression"``.
        epochs: Passes over the data.
        weight_decay: λ.
        reg: ``"l2"`` or ``"l2-weights"``.
        seed: Seeds the shuffling.
        progress: Called after every epoch as ``progress(epoch, epochs, loss)``.

    Returns:
        ``((apply_fn, trained params), n_example_grads)``.
    """
    apply_fn, params = model
    result = training.train(
        params,
        (x, y),
        task=task,
        epochs=epochs,
        weight_decay=weight_decay,
        reg=reg,
        seed=seed,
        progress=progress,
        apply_fn=apply_fn,
    )
    return (apply_fn, result.params), int(result.n_example_grads)


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
    """
    dtype = problem.theta0.dtype
    data = _as_data((x, y), problem._device, "held_out")
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
