"""The compiled JAX walk driver: K walk steps per host synchronisation in ``lax.while_loop``.

``manifoldwalk.walk(problem, theta0, driver=Chunked(K))`` calls the problem's
``compile_loop(loop)`` hook with the engine's :class:`~manifoldwalk._chunked.DeviceLoop` (the
step, the stop rules, the history and trajectory buffers as pure functions);
:func:`compile_loop` jit-compiles it around ``jax.lax.while_loop``, writing buffer rows with
``lax.dynamic_update_index_in_dim``. :class:`JaxProblem` has the hook; :func:`compiled` adds it
(and ``compile_step``) to any problem whose functions JAX can trace, e.g. the analytic problems
of ``manifoldwalk.problems`` on jax arrays.

Compiled chunks are kept in a small per-problem
:class:`~manifoldwalk._compile_cache.CompileCache`, keyed by
:meth:`DeviceLoop.cache_key`, so a second walk of the same problem with the same options
(another start, a resumed walk) reuses the compiled chunk instead of tracing and compiling it
again. With ``walk(..., driver=Chunked(K, steps_per_iteration=M))``, M > 1, each ``while`` iteration runs M masked
steps and writes rows with a select instead of ``lax.cond``: no branch inside the iteration, so
on a GPU the host reads a loop predicate once per M steps instead of at every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from manifoldwalk.adapter_api import Carry, CompileCache, DeviceLoop


def put_row(
    buffer: jax.Array, i: jax.Array, due: jax.Array, make_row: Callable[[], jax.Array]
) -> jax.Array:
    """``buffer`` with row ``i`` replaced by ``make_row()`` where ``due`` holds (in place, and
    the row computed only then, inside a compiled loop; both sides under ``vmap``)."""

    def write(b: jax.Array) -> jax.Array:
        return lax.dynamic_update_index_in_dim(b, make_row().astype(b.dtype), i, 0)

    return lax.cond(due, write, lambda b: b, buffer)


def put_select(
    buffer: jax.Array, i: jax.Array, due: jax.Array, make_row: Callable[[], jax.Array]
) -> jax.Array:
    """As :func:`put_row`, branch-free: row ``i`` becomes ``where(due, make_row(), row i)``.

    The row is computed at every call (the history record: a few passes over θ); no
    ``lax.cond``, whose predicate a GPU reads on the host.
    """
    old = lax.dynamic_index_in_dim(buffer, i, 0, keepdims=False)
    row = jnp.where(due, make_row().astype(buffer.dtype), old)
    return lax.dynamic_update_index_in_dim(buffer, row, i, 0)


def run_chunk(loop: DeviceLoop, carry: Carry) -> Carry:
    """``loop.run`` in ``lax.while_loop``: rows by :func:`put_row` (M = 1) or :func:`put_select`."""
    put = put_row if loop.steps_per_iteration == 1 else put_select
    return loop.run(carry, put, lax.while_loop)


def compile_loop(
    loop: DeviceLoop,
    cache: CompileCache | None = None,
    *,
    jit: Callable[..., Any] = jax.jit,
    place: Callable[[Any], Any] | None = None,
) -> Callable[[Carry], Carry]:
    """One chunk of ``loop`` (at most K steps) as a jitted function ``carry -> carry``.

    Args:
        loop: the engine's device loop.
        cache: where to keep the compiled chunk for later walks of the same problem with the
            same options (None: compile anew).
        jit: the compiler (a sharded problem passes its own, with the data as arguments).
        place: puts the carry where the chunk expects it before each call (default:
            :func:`committed`, on θ's device).

    Returns:
        The compiled chunk; the walk's host side calls it once per synchronisation.
    """

    put = place or committed

    def build() -> Callable[[Carry], Carry]:
        jitted = jit(lambda carry: run_chunk(loop, carry))

        def chunk(carry: Carry) -> Carry:
            return jitted(put(carry))

        return chunk

    return build() if cache is None else cache.get(loop, build)


def jit_step(step: Callable[..., Any], donate: bool = False) -> Callable[..., Any]:
    """``jax.jit(step)``, donating its first argument (the walk state) where ``donate``: XLA
    then writes the new state into the old one's buffers instead of fresh ones, which saves
    allocating a state per step where the step is cheap next to its state (measured:
    docs/performance.md); the caller must not read a state it has passed."""
    return jax.jit(step, donate_argnums=0) if donate else jax.jit(step)


def committed(tree: Any) -> Any:
    """``tree``'s arrays committed to θ's device (its first leaf's), so that every call of a
    compiled chunk sees the same input placement and reuses one compilation."""
    device = next(iter(jax.tree_util.tree_leaves(tree)[0].devices()))
    return jax.device_put(tree, device)


class CompiledProblem:
    """A traceable Problem with the JAX hooks: ``compile_step`` and ``compile_loop``.

    Build it with :func:`compiled`. It forwards the Problem protocol to the wrapped problem.

    Attributes:
        problem: the wrapped problem.
        loop_cache: the compiled chunks of earlier walks
            (:class:`~manifoldwalk._compile_cache.CompileCache`).
    """

    def __init__(self, problem: Any) -> None:
        self.problem = problem
        self.loop_cache = CompileCache()

    def loss(self, theta: jax.Array) -> jax.Array:
        """L(θ) of the wrapped problem."""
        return self.problem.loss(theta)

    def grad(self, theta: jax.Array) -> jax.Array:
        """∇L(θ) of the wrapped problem."""
        return self.problem.grad(theta)

    def loss_and_grad(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """L(θ) and ∇L(θ) (fused where the wrapped problem has ``loss_and_grad``)."""
        fused = getattr(self.problem, "loss_and_grad", None)
        if callable(fused):
            return fused(theta)
        return self.problem.loss(theta), self.problem.grad(theta)

    def reg(self, theta: jax.Array) -> jax.Array:
        """R(θ) of the wrapped problem."""
        return self.problem.reg(theta)

    def reg_grad(self, theta: jax.Array) -> jax.Array:
        """∇R(θ) of the wrapped problem."""
        return self.problem.reg_grad(theta)

    def compile_step(
        self, step: Callable[[Any], Any], donate: bool = False
    ) -> Callable[[Any], Any]:
        """``jax.jit(step)`` (the eager driver's step as one XLA computation); ``donate``: see
        :func:`jit_step`."""
        return jit_step(step, donate)

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Carry], Carry]:
        """See :func:`compile_loop` (cached in :attr:`loop_cache`)."""
        return compile_loop(loop, self.loop_cache)

    def __getattr__(self, name: str) -> Any:
        # the wrapped problem's other attributes (solution(), A, ...), read-only
        if name in ("problem", "loop_cache"):
            raise AttributeError(name)
        return getattr(self.problem, name)


def compiled(problem: Any) -> CompiledProblem:
    """Give a problem written in array-API operations the compiled JAX drivers.

    Args:
        problem: a Problem whose methods JAX can trace on jax arrays (the analytic problems
            of ``manifoldwalk.problems``, ``make_problem`` of jax functions, ...).

    Returns:
        A :class:`CompiledProblem`; walk it with
        ``manifoldwalk.walk(p, theta0, driver=Chunked(K))`` with a jax θ0.

    Raises:
        TypeError: ``problem`` lacks ``reg`` or ``reg_grad``.
    """
    for name in ("reg", "reg_grad"):
        if not callable(getattr(problem, name, None)):
            raise TypeError(f"compiled() needs a Problem; {type(problem).__name__} lacks {name}.")
    return CompiledProblem(problem)
