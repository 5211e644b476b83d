"""The regularisers R(θ) and their gradients, jitted, on θ's device (chosen by
:class:`~manifoldwalk.adapter_api.ModelProblem`)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from manifoldwalk.adapter_api import ProblemError

RegFn = Callable[[jax.Array], jax.Array]


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


def l2_reg() -> tuple[RegFn, RegFn]:
    """``(θ ↦ θᵀθ, θ ↦ 2θ)``, jitted.

    Returns:
        ``(R, ∇R)``.
    """
    return _l2, _l2_grad


def weights_reg(mask: jax.Array) -> tuple[RegFn, RegFn]:
    """``(θ ↦ Σ mask·θ², θ ↦ 2·mask·θ)``, jitted: θᵀθ over the weight entries only.

    Args:
        mask: 1 on weight entries (parameters of rank ≥ 2), 0 elsewhere, in θ's dtype and
            where θ lives.

    Returns:
        ``(R, ∇R)``.
    """
    return (lambda t: _masked_l2(t, mask)), (lambda t: _masked_l2_grad(t, mask))


def callable_reg(reg: RegFn, theta0: jax.Array) -> tuple[RegFn, RegFn]:
    """``(R, ∇R)`` for a differentiable function of the flat θ, jitted (∇R by ``jax.grad``).

    Args:
        reg: the function, of a ``jax.Array`` θ, returning a scalar.
        theta0: a θ to check ``reg`` on (its output shape only; nothing runs).

    Returns:
        ``(R, ∇R)``, each returning θ's dtype.

    Raises:
        ProblemError: ``reg`` does not return a scalar.
    """
    shape = jax.eval_shape(reg, theta0).shape
    if shape != ():
        raise ProblemError(f"reg(θ) must return a scalar, got shape {shape}.")
    value = jax.jit(lambda t: jnp.asarray(reg(t), dtype=t.dtype))
    return value, jax.jit(jax.grad(lambda t: jnp.asarray(reg(t), dtype=t.dtype)))
