"""The regulariser R(θ) and its gradient, jitted, on θ's device."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from manifoldwalk.problem import ProblemError

RegFn = Callable[[jax.Array], jax.Array]

REG_NAMES = ("l2", "l2-weights")
"""The named regularisers: θᵀθ over all parameters, or over the weights (rank ≥ 2) only."""


@jax.jit
def _l2(theta: jax.Array) -> jax.Array:
    return jnp.sum(theta * theta)


@jax.jit
def _l2_grad(theta: jax.Array) -> jax.Array:
    return 2 * theta


@jax.jit
def _masked_l2(theta: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(mask * theta * theta)


@jax.jit
def _masked_l2_grad(theta: jax.Array, mask: jax.Array) -> jax.Array:
    return 2 * mask * theta


def make_reg(reg: str | RegFn, theta0: jax.Array, weight_mask: jax.Array) -> tuple[RegFn, RegFn]:
    """``(R, ∇R)`` as jitted functions of flat θ.

    Args:
        reg: ``"l2"`` (θᵀθ), ``"l2-weights"`` (θᵀθ over entries where ``weight_mask`` is 1),
            or a differentiable function of the flat θ (a jax.Array) returning a scalar.
        theta0: a θ to check a callable ``reg`` on (its output shape only; nothing runs).
        weight_mask: 1 on weight entries (parameters of rank ≥ 2), 0 elsewhere.

    Raises:
        ValueError: an unknown regulariser name.
        ProblemError: a callable that does not return a scalar.
        TypeError: ``reg`` is neither a name nor a callable.
    """
    if isinstance(reg, str):
        if reg == "l2":
            return _l2, _l2_grad
        if reg == "l2-weights":
            return (lambda t: _masked_l2(t, weight_mask)), (
                lambda t: _masked_l2_grad(t, weight_mask)
            )
        raise ValueError(f"reg must be one of {REG_NAMES} or a callable, got {reg!r}.")
    if not callable(reg):
        raise TypeError(f"reg must be one of {REG_NAMES} or a callable, got {type(reg).__name__}.")
    shape = jax.eval_shape(reg, theta0).shape
    if shape != ():
        raise ProblemError(f"reg(θ) must return a scalar, got shape {shape}.")
    value = jax.jit(lambda t: jnp.asarray(reg(t), dtype=t.dtype))
    return value, jax.jit(jax.grad(lambda t: jnp.asarray(reg(t), dtype=t.dtype)))
