"""Diagnostics for Problems: the Taylor-remainder gradient check.

After pymanopt's ``tools.diagnostics.check_gradient``: along a random unit direction d,
the remainder E(t) = |L(θ + t·d) − L(θ) − t·∇L(θ)·d| is O(t²) when the gradient is right
and O(t) when it is wrong, so the slope of log E against log t is 2 or 1. The check works on
any Problem and any array type (numpy, torch, jax) through the array API; it copies only
scalars to the host.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from manifoldwalk._array import Array, device_of, dot, namespace, norm, scalar_like, to_host
from manifoldwalk.problem import Problem, loss_and_grad_of

SLOPE_RANGE = (1.8, 2.2)
"""Observed slopes in this range pass the check."""


class GradientCheck(NamedTuple):
    """The outcome of :func:`check_gradient`.

    Attributes:
        slope: the slope of log E(t) against log t on the straightest window of resolved
            points (2 for a correct gradient, 1 for a wrong one); NaN if none was resolved.
        t: the step lengths tried (numpy float64).
        errors: the Taylor remainders E(t) (numpy float64).
        window: indices into ``t`` of the points the slope was fitted on.
        passed: whether ``slope`` lies in :data:`SLOPE_RANGE` (or the remainder is at the
            rounding floor at every t, see ``message``).
        message: the verdict in words, with the figures behind it.
    """

    slope: float
    t: np.ndarray
    errors: np.ndarray
    window: np.ndarray
    passed: bool
    message: str


def _random_unit_direction(theta: Array, seed: int) -> Array:
    """A seeded standard-normal direction of unit norm in θ's array type, dtype and device."""
    xp = namespace(theta)
    sample = np.random.default_rng(seed).standard_normal(theta.shape[0])
    dev = device_of(theta)
    kwargs = {} if dev is None else {"device": dev}
    d = xp.asarray(sample, dtype=theta.dtype, **kwargs)
    return d / norm(xp, d)


def _straightest_window(log_t: np.ndarray, log_e: np.ndarray, length: int) -> tuple[int, float]:
    """Start index and slope of the ``length``-point window with the smallest line-fit residual."""
    best = (np.inf, 0, np.nan)
    for start in range(len(log_t) - length + 1):
        seg = slice(start, start + length)
        coeffs, residual, *_ = np.polyfit(log_t[seg], log_e[seg], 1, full=True)
        res = float(residual[0]) if len(residual) else 0.0
        if res < best[0]:
            best = (res, start, float(coeffs[0]))
    return best[1], best[2]


def check_gradient(
    problem: Problem,
    theta: Array,
    *,
    direction: Array | None = None,
    seed: int = 0,
    t_range: tuple[float, float] = (1e-8, 1.0),
    n_points: int = 51,
    window: int = 11,
) -> GradientCheck:
    """Check a Problem's gradient at θ with the Taylor-remainder test.

    Computes E(t) = |L(θ + t·d) − L(θ) − t·∇L(θ)·d| for ``n_points`` step lengths t spaced
    logarithmically over ``t_range`` and fits a line to log E against log t on the
    ``window`` consecutive points where it is straightest, among the points where E is above
    the rounding floor of the loss (100 ulp of |L|). A correct gradient gives slope 2, a wrong
    one slope 1. Where E is at the rounding floor for every t (L is linear along d to working
    precision) the first-order model is exact and the check passes with slope NaN.

    Costs one loss-and-gradient evaluation and ``n_points`` loss evaluations.

    Run it in float64 where you can: in float32, near a minimum (small ∇L), the O(t) error
    term of a slightly wrong gradient may stay below rounding at every step length where the
    O(t²) term is resolved, so a 10 % gradient error can pass unnoticed.

    Args:
        problem: any :class:`~manifoldwalk.Problem` (``loss_and_grad`` is used where present).
        theta: the point, a flat float array in the problem's array type.
        direction: the direction d (θ's shape); default a seeded random unit vector.
        seed: the seed of the random direction.
        t_range: the smallest and largest step length.
        n_points: how many step lengths to try.
        window: how many consecutive points the slope is fitted on (at least 3).

    Returns:
        A :class:`GradientCheck` with the slope, the t values, the errors and the verdict.

    Raises:
        ValueError: on a bad ``t_range``, ``n_points`` or ``window``, or a direction of the
            wrong shape or zero norm.
    """
    lo, hi = (float(v) for v in t_range)
    if not 0 < lo < hi:
        raise ValueError(f"t_range must be (lo, hi) with 0 < lo < hi, got {t_range!r}.")
    if not 3 <= window <= n_points:
        raise ValueError(f"need 3 <= window <= n_points, got window={window}, n_points={n_points}.")
    xp = namespace(theta)
    if direction is None:
        direction = _random_unit_direction(theta, seed)
    elif tuple(direction.shape) != tuple(theta.shape):
        raise ValueError(
            f"direction has shape {tuple(direction.shape)}, θ has {tuple(theta.shape)}."
        )
    loss0, grad = loss_and_grad_of(problem)(theta)
    if isinstance(loss0, int | float):
        loss0 = scalar_like(float(loss0), theta)
    f0, slope_d, d_norm = to_host(loss0, dot(xp, grad, direction), norm(xp, direction))
    if d_norm == 0:
        raise ValueError("direction must be non-zero.")
    eps = float(xp.finfo(theta.dtype).eps)
    t = np.logspace(np.log10(lo), np.log10(hi), n_points)
    values = np.array([_as_float(problem.loss(theta + float(ti) * direction)) for ti in t])
    errors = np.abs(values - f0 - t * slope_d)
    floor = 100 * eps * (np.abs(f0) + np.abs(values) + np.abs(t * slope_d))
    finite = np.isfinite(errors)
    resolved = np.flatnonzero(finite & (errors > floor))
    return _verdict(t, errors, resolved, finite, window)


def _verdict(
    t: np.ndarray, errors: np.ndarray, resolved: np.ndarray, finite: np.ndarray, window: int
) -> GradientCheck:
    """Fit the slope on the resolved points and phrase the verdict."""
    if not finite.all():
        return GradientCheck(
            np.nan,
            t,
            errors,
            np.array([], dtype=int),
            False,
            "the loss is not finite at some θ + t·d; check the loss or narrow t_range.",
        )
    if resolved.size == 0:
        return GradientCheck(
            np.nan,
            t,
            errors,
            resolved,
            True,
            "the Taylor remainder is at the rounding floor for every t: L is linear along d to "
            "working precision and the first-order model t·∇L·d is exact, so the gradient "
            "agrees along d (no slope to report).",
        )
    # Fit on the longest run of consecutive resolved points, in windows of `window` points.
    runs = np.split(resolved, np.flatnonzero(np.diff(resolved) > 1) + 1)
    run = max(runs, key=len)
    length = min(window, len(run))
    if length < 3:
        return GradientCheck(
            np.nan,
            t,
            errors,
            run,
            False,
            f"only {len(run)} consecutive step lengths lift the remainder above rounding; "
            "widen t_range or use float64.",
        )
    log_t, log_e = np.log10(t[run]), np.log10(errors[run])
    start, slope = _straightest_window(log_t, log_e, length)
    used = run[start : start + length]
    passed = bool(SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1])
    verdict = "consistent with the loss" if passed else "NOT consistent with the loss"
    message = (
        f"slope {slope:.3f} of log E against log t on t in [{t[used[0]]:.2g}, {t[used[-1]]:.2g}]"
        f" (2 expected, {SLOPE_RANGE[0]}–{SLOPE_RANGE[1]} passes): the gradient is {verdict}."
    )
    return GradientCheck(slope, t, errors, used, passed, message)


def _as_float(value: Any) -> float:
    """A 0-d array or a Python number as a float (one host copy)."""
    if isinstance(value, int | float):
        return float(value)
    return to_host(value)[0]
