"""The inputs a JAX problem is built from: the arguments' order, the data as device arrays,
θ's device, and float64 copies."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import jax
import jax.numpy as jnp

from manifoldwalk.adapter_api import ProblemError, check_examples, check_plain_pair

FROM_LOSS = (
    "manifoldwalk_jax.from_loss(lambda p, b: loss_fn(apply_fn(p, b[0]), b[1]), params, (x, y))"
)
"""The call the data errors point to for inputs that are not one array."""


def _to_float64(a: Any) -> Any:
    """A floating array (or leaf) cast to float64; anything else as it is."""
    dtype = getattr(a, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
        return jnp.asarray(a, dtype=jnp.float64)
    return a


def _check_order(apply_fn: Any, params: Any, loss_fn: Any) -> None:
    """Raise where the arguments are plainly out of order: ``from_apply(apply_fn, params,
    loss_fn, data)``.

    Raises:
        TypeError: ``apply_fn`` or ``loss_fn`` not callable, or ``params`` a function.
    """
    is_function = inspect.isroutine(params) or isinstance(params, functools.partial)
    if callable(apply_fn) and callable(loss_fn) and not is_function:
        return
    got = ", ".join(
        f"{name}={'a function' if callable(a) else 'a ' + type(a).__name__}"
        for name, a in (("apply_fn", apply_fn), ("params", params), ("loss_fn", loss_fn))
    )
    raise TypeError(
        f"from_apply got {got}: the arguments are out of order. The order is "
        "from_apply(apply_fn, params, loss_fn, data): apply_fn(params, x) and "
        "loss_fn(outputs, targets) are functions, params the parameter pytree."
    )


def _first_line(err: Exception) -> str:
    """An exception's message, first line only, without a trailing full stop."""
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__).rstrip(".")


def _single_device(theta: jax.Array) -> Any:
    """The one device θ lives on (the adapter does not shard)."""
    devices = theta.devices()
    if len(devices) != 1:
        raise ProblemError(
            f"the parameters span {len(devices)} devices; manifoldwalk_jax needs them on one."
        )
    return next(iter(devices))


def _as_data(data: Any, device: Any, what: str) -> tuple[jax.Array, jax.Array]:
    """``(x, y)`` as jax arrays on ``device``, checked to be of equal length.

    Raises:
        TypeError: ``data`` is not a pair of two arrays (a dict or a tuple of arrays as ``x``:
            ``from_loss`` takes those).
        ProblemError: inputs and targets of different lengths, or no examples.
    """
    check_plain_pair(data, what, FROM_LOSS)
    x, y = (jax.device_put(jnp.asarray(a), device) for a in data)
    check_examples(what, x.shape, y.shape)
    return x, y
