"""Directions of interest: where the predictor wants to go before ∇L is projected out.

A direction maps (θ, ∇R(θ), the number of predictor steps taken) to a vector r;
the predictor moves along the rejection of r from ∇L. ``optimises`` says whether
r is the negative gradient of some objective, so that stationarity (r parallel to
∇L) and the step-floor stall are meaningful stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from manifoldwalk._array import Array, device_of, namespace, norm, to_host


class Direction(Protocol):
    """What the engine needs from a direction of interest.

    ``optimises``: r is the negative gradient of some objective (stationarity and the
    step-floor stall are then meaningful stops). ``traceable``: the direction can run inside a
    compiled step (no host work). ``reached``: None, or a test θ ↦ 0-d bool array for a
    direction with a target (the walk stops as ``reached_target`` where it holds). A direction
    without ``traceable`` or ``reached`` counts as traceable and without a target.
    """

    optimises: bool
    traceable: bool
    reached: Callable[[Array], Array] | None

    def __call__(self, theta: Array, reg_grad: Array, n_predictor: Array) -> Array:
        """The direction r at θ (before its ∇L component is removed)."""
        ...


def _like(value: Any, theta: Array) -> Array:
    """``value`` as an array in θ's namespace, dtype and device (no copy if already there)."""
    xp = namespace(theta)
    dev = device_of(theta)
    if dev is None:
        return xp.asarray(value, dtype=theta.dtype)
    return xp.asarray(value, dtype=theta.dtype, device=dev)


@dataclass(frozen=True)
class MinimiseReg:
    """r = −∇R: walk the level set lowering the regulariser (the paper's default)."""

    optimises: bool = True
    traceable: ClassVar[bool] = True
    reached: ClassVar[None] = None

    def __call__(self, theta: Array, reg_grad: Array, n_predictor: Array) -> Array:
        """See :class:`Direction`."""
        return -reg_grad


@dataclass(frozen=True)
class RandomWalk:
    """A seeded random walk: r is a standard normal sample, fresh at every predictor step.

    The sample for predictor step k depends only on (``seed``, k), so a resumed walk
    draws the same samples. The default sampler draws on the host with numpy and
    copies the sample to θ's device (one small host copy and one synchronisation
    per step); pass ``sampler(theta, n_predictor) -> array`` to draw on the device,
    e.g. with ``jax.random`` inside a compiled walk.
    """

    seed: int = 0
    sampler: Callable[[Array, Array], Array] | None = None
    optimises: bool = False
    reached: ClassVar[None] = None

    @property
    def traceable(self) -> bool:
        """Whether the direction can run inside a compiled step (only with a device sampler)."""
        return self.sampler is not None

    def __call__(self, theta: Array, reg_grad: Array, n_predictor: Array) -> Array:
        """See :class:`Direction`."""
        if self.sampler is not None:
            return self.sampler(theta, n_predictor)
        (k,) = to_host(n_predictor)
        rng = np.random.default_rng([self.seed, int(k)])
        return _like(rng.standard_normal(theta.shape[0]), theta)


@dataclass(frozen=True)
class TowardTarget:
    """r = θ* − θ: walk toward a target point θ*.

    The walk stops on reaching θ* (within ``tol``·max(1, ‖θ*‖)) or, where θ* is off
    the level set, at its closest point on it (stationarity, or the step floor). On-level
    points only satisfy |L − L0| ≤ √τ, which leaves them up to about √τ/‖∇L‖ off the exact
    level set: a ``tol`` below that cannot be met and the walk ends stalled beside θ*.
    """

    target: Any
    tol: float = 1e-5
    optimises: bool = True
    traceable: ClassVar[bool] = True

    def __call__(self, theta: Array, reg_grad: Array, n_predictor: Array) -> Array:
        """See :class:`Direction`."""
        return _like(self.target, theta) - theta

    def reached(self, theta: Array) -> Array:
        """0-d bool array: whether θ is within tolerance of the target."""
        target = _like(self.target, theta)
        xp = namespace(theta)
        size = norm(xp, target)
        return norm(xp, theta - target) <= self.tol * xp.maximum(size, xp.ones_like(size))


@dataclass(frozen=True)
class FunctionDirection:
    """Any callable θ ↦ r as a direction (``optimises`` if r is a negative gradient)."""

    fn: Callable[[Array], Array]
    optimises: bool = False
    traceable: ClassVar[bool] = True
    reached: ClassVar[None] = None

    def __call__(self, theta: Array, reg_grad: Array, n_predictor: Array) -> Array:
        """See :class:`Direction`."""
        return self.fn(theta)


def as_direction(spec: Any) -> Direction:
    """Turn ``spec`` into a Direction: None → :class:`MinimiseReg`, a callable θ ↦ r →
    :class:`FunctionDirection`, a Direction → itself.

    Raises:
        ValueError: if ``spec`` is none of these.
    """
    if spec is None:
        return MinimiseReg()
    if hasattr(spec, "optimises") and callable(spec):
        return spec
    if callable(spec):
        return FunctionDirection(spec)
    raise ValueError(
        f"direction must be None, a Direction (MinimiseReg, RandomWalk, TowardTarget) or a "
        f"callable θ -> r, got {type(spec).__name__}."
    )


def is_traceable(direction: Any) -> bool:
    """Whether ``direction`` can run inside a compiled step (its ``traceable``; True where a
    direction of the user's own does not say)."""
    return bool(getattr(direction, "traceable", True))


def target_test(direction: Any) -> Callable[[Array], Array] | None:
    """``direction``'s ``reached`` test, or None for a direction without a target."""
    test = getattr(direction, "reached", None)
    return test if callable(test) else None
