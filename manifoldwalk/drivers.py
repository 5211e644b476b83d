"""The walk's drivers: how the pure step is run to a stop.

:class:`Eager` copies a handful of scalars to the host once per step to decide whether to
record or stop; :class:`Chunked` runs up to K steps per host synchronisation on the device
through the problem's ``compile_loop`` hook. Both take the same path and decide with the same
stop rules; pass one as ``walk(..., driver=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from manifoldwalk._checks import is_count

if TYPE_CHECKING:
    from manifoldwalk.driver import PreparedWalk
    from manifoldwalk.result import WalkResult

__all__ = ["Chunked", "Eager"]


@dataclass(frozen=True)
class Eager:
    """One host synchronisation per step.

    Attributes:
        compile_step: let the problem compile the step where it offers to (a Problem's
            optional ``compile_step(fn) -> fn``; the JAX adapter jit-compiles it), with the
            stop rules' look fused in, so that the host copies one small vector per step; a
            hook that can (JAX's) writes each new state into the old one's memory. Skipped for
            directions that are not traceable (``RandomWalk`` with its host sampler).
    """

    compile_step: bool = True

    def run(self, prepared: PreparedWalk) -> WalkResult:
        """Run ``prepared`` to a stop (see :meth:`PreparedWalk.until_stop`)."""
        return prepared.until_stop(self.compile_step)


@dataclass(frozen=True)
class Chunked:
    """Up to K steps per host synchronisation, through the problem's ``compile_loop`` hook
    (JAX and PyTorch problems of the adapters; wrap an analytic problem on jax arrays with
    ``manifoldwalk_jax.compiled``). Same path, history, stop reasons and result as
    :class:`Eager`; with metrics or a callback a chunk also ends at each record-due point, so
    that they run on the host.

    Attributes:
        steps_per_sync: K ≥ 1.
        steps_per_iteration: M ≥ 1: each iteration of the compiled loop runs M masked steps
            (a step after a stop, a record pause or the chunk's K steps leaves the state as it
            was), so the loop's predicate is read once per M steps; the same path. Meant for
            small nets on a GPU. The PyTorch chunk masks every step already; compiled, its
            graph holds M steps (where M = 1: K steps up to 4, else the largest divisor of K
            up to 4), called several times per chunk.

    Raises:
        ValueError: K or M not a positive integer.
    """

    steps_per_sync: int
    steps_per_iteration: int = 1

    def __post_init__(self) -> None:
        if not is_count(self.steps_per_sync):
            raise ValueError(
                f"steps_per_sync must be a positive integer, got {self.steps_per_sync!r}."
            )
        if not is_count(self.steps_per_iteration):
            raise ValueError(
                f"steps_per_iteration must be a positive integer, got {self.steps_per_iteration!r}."
            )

    def run(self, prepared: PreparedWalk) -> WalkResult:
        """Run ``prepared`` to a stop (see :meth:`PreparedWalk.run_chunked`)."""
        return prepared.run_chunked(self.steps_per_sync, self.steps_per_iteration)


def as_driver(spec: Any) -> Any:
    """``spec`` as a driver: None → :class:`Eager`, an object with ``run(prepared)`` → itself.

    Raises:
        TypeError: anything else (with what to pass).
    """
    if spec is None:
        return Eager()
    if callable(getattr(spec, "run", None)):  # a driver of the caller's own
        return spec
    raise TypeError(
        f"driver must be None, manifoldwalk.Eager(...) or manifoldwalk.Chunked(steps_per_sync=K), "
        f"got {type(spec).__name__} {spec!r}."
    )
