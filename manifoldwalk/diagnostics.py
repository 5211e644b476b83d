"""Diagnostics for Problems: the Taylor-remainder gradient check.

After pymanopt's ``tools.diagnostics.check_gradient``: along a random unit direction d,
the remainder E(t) = |L(θ + t·d) − L(θ) − t·∇L(θ)·d| is O(t²) when the gradient is right
and O(t) when it is wrong, so the slope of log E against log t is 2 or 1. The check works on
any Problem and any array type (numpy, torch, jax) through the array API; it copies only
scalars to the host.

Below float64 the slope is unreliable: the remainder rises above the rounding of L only at
step lengths where the terms of third order and up (or a ReLU's kinks) bend it, so a correct
gradient can fail (41 false alarms in 200 checks of small float32 nets,
docs/measurements/check_gradient_2026-12-05.md). There the check runs on the problem's
float64 copy where it has one (``as_float64()``), and otherwise compares ∇L·d with central
differences of L within their measured spread and the measured rounding of L.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from manifoldwalk._array import Array, device_of, dot, namespace, norm, scalar_like, to_host
from manifoldwalk.problem import Problem, loss_and_grad_of, loss_of

SLOPE_RANGE = (1.8, 2.2)
"""Observed slopes in this range pass the check (in float64)."""

RESOLVED_CHANGE = 100.0
"""Below float64, central differences are trusted only at step lengths t where the change
|L(θ + t·d) − L(θ − t·d)| is at least this many times the measured rounding of L."""


class GradientCheck(NamedTuple):
    """The outcome of :func:`check_gradient`.

    Attributes:
        slope: the slope of log E(t) against log t on the straightest window of resolved
            points (2 for a correct gradient, 1 for a wrong one); NaN if none was resolved.
            Below float64 (without a float64 copy) it is reported but the verdict rests on
            the central differences (see :func:`check_gradient`).
        t: the step lengths tried (numpy float64).
        errors: the Taylor remainders E(t) (numpy float64).
        window: indices into ``t`` of the points the slope was fitted on (below float64
            without a float64 copy: of the step lengths whose central differences were
            compared with ∇L·d).
        passed: whether ``slope`` lies in :data:`SLOPE_RANGE` (or the remainder is at the
            rounding floor at every t, see ``message``); below float64 without a float64
            copy, whether ∇L·d agrees with the central differences of L.
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
    float64: bool = True,
) -> GradientCheck:
    """Check a Problem's gradient at θ with the Taylor-remainder test.

    Computes E(t) = |L(θ + t·d) − L(θ) − t·∇L(θ)·d| for ``n_points`` step lengths t spaced
    logarithmically over ``t_range`` and fits a line to log E against log t on the
    ``window`` consecutive points where it is straightest, among the points where E is above
    the rounding floor of the loss (100 ulp of |L|). A correct gradient gives slope 2, a wrong
    one slope 1. Where E is at the rounding floor for every t (L is linear along d to working
    precision) the first-order model is exact and the check passes with slope NaN.

    Costs one loss-and-gradient evaluation and ``n_points`` loss evaluations.

    Below float64 (θ in float32, say) the slope is unreliable, so:

    * where the problem has a float64 copy (``problem.as_float64()`` returning a Problem,
      as the PyTorch problems, the JAX problems with ``jax_enable_x64`` on and the Keras
      problems of Sequential and Functional models do) and
      ``float64`` is True, the check runs on that copy at θ cast to float64 (the same
      seeded direction), with the float64 verdict above; the message says so;
    * otherwise ∇L·d is compared with the central differences
      D(t) = (L(θ + t·d) − L(θ − t·d)) / 2t (``n_points`` more loss evaluations). The
      rounding of L is measured from the even part L(θ + t·d) + L(θ − t·d) − 2·L(θ) at the
      smallest quarter of the step lengths (where its t² term is below rounding); only step
      lengths where |L(θ + t·d) − L(θ − t·d)| is :data:`RESOLVED_CHANGE` times that are
      used. On the ``window`` consecutive such t where D(t) spreads least (its plateau, below
      the steps where third-order terms or kinks bend it), the check passes when
      |∇L·d − median D| is within that spread, plus the rounding of L over the smallest t
      there, plus the rounding of the dot product. If no step length resolves the change
      of L, nothing can be told and the check passes, saying so.

    A check along one direction sees only the gradient's error along it: an error of 10 %
    of |∇L| almost always shows (its component along a random d is rarely near zero), but
    run a few seeds for a firm answer. In float32 without a float64 copy the check is weaker
    where ∇L·d is small against the rounding of L (near a minimum, or a ReLU net whose kinks
    bend D(t) at the step lengths that resolve it): on small random float32 PyTorch nets it
    gave 4 false alarms in 200 checks and missed 7 of 188 bugs of ≥ 10 %, against none on
    the float64 copy (docs/measurements/check_gradient_2026-12-05.md).

    Args:
        problem: any :class:`~manifoldwalk.Problem` (``loss_and_grad`` is used where present;
            one with only ``loss_and_grad`` works too).
        theta: the point, a flat float array in the problem's array type.
        direction: the direction d (θ's shape); default a seeded random unit vector.
        seed: the seed of the random direction.
        t_range: the smallest and largest step length.
        n_points: how many step lengths to try.
        window: how many consecutive points the slope is fitted on (at least 3); below
            float64 without a float64 copy, how many the central differences' plateau spans.
        float64: below float64, use the problem's float64 copy (``as_float64()``) where it
            has one. False checks the problem as it is.

    Returns:
        A :class:`GradientCheck` with the slope, the t values, the errors and the verdict.

    Raises:
        ValueError: on a bad ``t_range``, ``n_points`` or ``window``, or a direction of the
            wrong shape or zero norm.
        ProblemError: the problem has no loss of its own (neither ``loss`` nor
            ``loss_and_grad``: a k-constraint stack).
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
    eps = float(xp.finfo(theta.dtype).eps)
    if float64 and eps > _FLOAT64_EPS:
        copy = _float64_copy(problem)
        if copy is not None:
            if to_host(norm(xp, direction))[0] == 0:
                raise ValueError("direction must be non-zero.")
            report = check_gradient(
                copy,
                xp.astype(theta, xp.float64),
                direction=xp.astype(direction, xp.float64),
                t_range=t_range,
                n_points=n_points,
                window=window,
            )
            note = f"checked on the problem's float64 copy (θ is {_dtype_name(theta)}): "
            return report._replace(message=note + report.message)
    loss = loss_of(problem)  # a problem may offer only the fused evaluation
    loss0, grad = loss_and_grad_of(problem)(theta)
    if isinstance(loss0, int | float):
        loss0 = scalar_like(float(loss0), theta)
    f0, slope_d, d_norm, abs_terms = to_host(
        loss0,
        dot(xp, grad, direction),
        norm(xp, direction),
        xp.sum(xp.abs(grad * direction)),
    )
    if d_norm == 0:
        raise ValueError("direction must be non-zero.")
    t = np.logspace(np.log10(lo), np.log10(hi), n_points)
    values = np.array([_as_float(loss(theta + float(ti) * direction)) for ti in t])
    errors = np.abs(values - f0 - t * slope_d)
    floor = 100 * eps * (np.abs(f0) + np.abs(values) + np.abs(t * slope_d))
    finite = np.isfinite(errors)
    resolved = np.flatnonzero(finite & (errors > floor))
    report = _verdict(t, errors, resolved, finite, window)
    if eps <= _FLOAT64_EPS or not finite.all():
        return report
    behind = np.array([_as_float(loss(theta - float(ti) * direction)) for ti in t])
    return _central_verdict(report, f0, values, behind, slope_d, abs_terms, eps, window)


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


def _central_verdict(
    report: GradientCheck,
    f0: float,
    ahead: np.ndarray,
    behind: np.ndarray,
    slope_d: float,
    abs_terms: float,
    eps: float,
    window: int,
) -> GradientCheck:
    """The verdict below float64: ∇L·d against the plateau of the central differences.

    Args:
        report: the slope test's outcome (its slope and t are kept).
        f0: L(θ).
        ahead, behind: L(θ + t·d) and L(θ − t·d) at ``report.t``.
        slope_d: ∇L·d.
        abs_terms: Σ|∇L_i·d_i|, the scale of the rounding of ∇L·d.
        eps: θ's machine epsilon.
        window: the plateau's length in step lengths.
    """
    t = report.t
    behind_finite = np.isfinite(behind)
    if not behind_finite.all():
        return report._replace(
            slope=np.nan,
            window=np.array([], dtype=int),
            passed=False,
            message="the loss is not finite at some θ − t·d; check the loss or narrow t_range.",
        )
    # the rounding of L, measured: the even part L(θ+td) + L(θ−td) − 2L(θ) is c₂t² plus
    # rounding, and its t² term is below rounding at the smallest steps
    even = np.abs(ahead + behind - 2 * f0) / 2
    quarter = max(len(t) // 4, 1)
    noise = max(float(np.max(even[:quarter])), 4 * eps * abs(f0))
    change = np.abs(ahead - behind)
    central = (ahead - behind) / (2 * t)
    usable = np.flatnonzero(change >= RESOLVED_CHANGE * noise)
    dot_rounding = 16 * eps * abs_terms
    if usable.size == 0:
        return report._replace(
            window=usable,
            passed=True,
            message=(
                f"the change of L along d stays within {RESOLVED_CHANGE:g} times the rounding"
                f" of L ({noise:.2g}) at every t: L is flat along d to working precision, so"
                " the check cannot tell; use float64 or widen t_range."
            ),
        )
    runs = np.split(usable, np.flatnonzero(np.diff(usable) > 1) + 1)
    run = max(runs, key=len)
    length = min(window, len(run))
    best = (np.inf, run[:length])
    for start in range(len(run) - length + 1):
        seg = run[start : start + length]
        spread = float(np.ptp(central[seg]))
        if spread < best[0]:
            best = (spread, seg)
    spread, used = best
    plateau = float(np.median(central[used]))
    tolerance = spread + noise / t[used[0]] + dot_rounding
    gap = abs(slope_d - plateau)
    passed = bool(gap <= tolerance)
    verdict = "consistent with the loss" if passed else "NOT consistent with the loss"
    message = (
        f"∇L·d = {slope_d:.6g} against central differences {plateau:.6g} (median on t in "
        f"[{t[used[0]]:.2g}, {t[used[-1]]:.2g}]): off by {gap:.2g}, tolerance {tolerance:.2g} "
        f"(their spread {spread:.2g}, rounding of L {noise:.2g} over t, of ∇L·d "
        f"{dot_rounding:.2g}): the gradient is {verdict}. (Slope of the remainder, not used "
        f"below float64: {report.slope:.3f}.)"
    )
    return report._replace(window=used, passed=passed, message=message)


def _float64_copy(problem: Problem) -> Problem | None:
    """The problem's float64 copy from its ``as_float64()`` hook, or None where it has none."""
    hook = getattr(problem, "as_float64", None)
    if hook is None:
        return None
    return hook()


def _dtype_name(theta: Array) -> str:
    """θ's dtype as a short name (``float32``)."""
    return str(theta.dtype).rsplit(".", 1)[-1]


_FLOAT64_EPS = float(np.finfo(np.float64).eps)
"""Machine epsilon of float64: dtypes at least this precise get the slope test."""


def _as_float(value: Any) -> float:
    """A 0-d array or a Python number as a float (one host copy)."""
    if isinstance(value, int | float):
        return float(value)
    return to_host(value)[0]
