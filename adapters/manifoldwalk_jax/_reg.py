"""The regularisers R(θ) and their gradients, jitted, on θ's device (chosen by
:class:`~manifoldwalk.adapter_api.ModelProblem`)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from manifoldwalk.adapter_api import ProblemError, reg_not_differentiable

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
        ProblemError: ``reg`` does not return a scalar, or ``jax.grad`` cannot differentiate
            it at θ0 (it fails under tracing, e.g. calls numpy; its gradient does not depend
            on θ, e.g. through ``stop_gradient``; or its gradient there is not finite).
    """
    try:
        shape = jax.eval_shape(reg, theta0).shape
    except Exception as err:
        raise reg_not_differentiable(reg, _WRITTEN_IN, _first_line(err)) from err
    if shape != ():
        raise ProblemError(f"reg(θ) must return a scalar, got shape {shape}.")
    value = jax.jit(lambda t: jnp.asarray(reg(t), dtype=t.dtype))
    grad = jax.jit(jax.grad(lambda t: jnp.asarray(reg(t), dtype=t.dtype)))
    _check_differentiable(reg, theta0, grad)
    return value, grad


_WRITTEN_IN = "JAX (jax.numpy operations)"


def _check_differentiable(reg: RegFn, theta0: jax.Array, grad: RegFn) -> None:
    """Raise unless ``reg``'s derivative at θ0 depends on the tangent (structurally nonzero)
    and its gradient there is finite: a regulariser ``jax.grad`` differentiates to zeros
    (``stop_gradient``) is a mistake the walk would not notice."""
    _, jvp = jax.linearize(reg, theta0)
    jaxpr = jax.make_jaxpr(jvp)(theta0).jaxpr
    live = {id(v) for v in jaxpr.invars}
    for eqn in jaxpr.eqns:
        if any(id(v) in live for v in eqn.invars):
            live.update(id(v) for v in eqn.outvars)
    if not any(id(v) in live for v in jaxpr.outvars):
        raise reg_not_differentiable(
            reg, _WRITTEN_IN, "its value does not depend on θ under jax.grad"
        )
    if not bool(jnp.all(jnp.isfinite(grad(theta0)))):
        raise reg_not_differentiable(reg, _WRITTEN_IN, "a non-finite gradient")


def _first_line(err: Exception) -> str:
    """An exception's message, first line only, without a trailing full stop."""
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__).rstrip(".")
