"""The start of a walk: checks of θ0 and the direction, the first evaluation, the projection
onto a given level, and naming what is not finite."""

from __future__ import annotations

import warnings

import numpy as np

from manifoldwalk._array import Array, namespace, safe_divide, to_host, to_numpy, zero_count
from manifoldwalk._noise import NOISE_SAMPLES, loss_noise
from manifoldwalk.directions import Direction
from manifoldwalk.options import NOISE_FACTOR, Tolerance
from manifoldwalk.problem import Problem, ProblemError, _type_name
from manifoldwalk.schemes import Scheme
from manifoldwalk.step import PointData, WalkState, as_scalar, init_state, make_evaluate


def check_direction(direction: Direction, problem: Problem, theta0: Array) -> None:
    """Evaluate the direction once at θ0 and check its shape (a wrong one fails, or worse
    broadcasts silently, inside the step)."""
    target = getattr(direction, "target", None)
    if target is not None and tuple(np.shape(target)) != tuple(theta0.shape):
        raise ProblemError(
            f"{type(direction).__name__}'s target has shape {tuple(np.shape(target))} but θ0 has "
            f"shape {tuple(theta0.shape)}; give a target point of θ0's shape."
        )
    r = direction(theta0, problem.reg_grad(theta0), zero_count(theta0))
    shape = getattr(r, "shape", None)
    if shape is None or tuple(shape) != tuple(theta0.shape):
        got = f"a {type(r).__name__}" if shape is None else f"shape {tuple(shape)}"
        raise ProblemError(
            f"the direction {type(direction).__name__} must return an array of θ's shape "
            f"{tuple(theta0.shape)}, got {got}."
        )
    try:
        same_kind = namespace(r) is namespace(theta0)
    except TypeError:
        same_kind = False
    if not same_kind:  # a numpy r for a torch θ failed with a raw error inside the step
        raise ProblemError(
            f"the direction {type(direction).__name__} returned a {_type_name(r)} for a θ of "
            f"type {_type_name(theta0)}; return an array of θ's array type and device."
        )


def start(
    problem: Problem,
    direction: Direction,
    scheme: Scheme,
    theta0: Array,
    level: float | None,
    tolerance: Tolerance,
    singular_tol: float,
) -> tuple[WalkState, float | None]:
    """Evaluate θ0, project it onto {L = level} if a level is given, and build the state.

    Returns:
        The state and the loss's noise measured at θ0 (None where not measured)."""
    xp = namespace(theta0)
    evaluate = make_evaluate(problem, direction)
    zero = zero_count(theta0)
    point = evaluate(theta0, zero)
    reg0 = as_scalar(problem.reg(theta0), theta0)
    loss0, gnorm0, reg0, stat0 = to_host(
        point.loss, xp.sqrt(point.grad_sq), reg0, point.stationarity
    )
    if not (np.isfinite(loss0) and np.isfinite(gnorm0) and np.isfinite(stat0)):
        which = what_is_not_finite(problem, direction, theta0, point)
        raise ProblemError(f"{which} at θ0 holds NaN or inf (L = {loss0}).")
    if not np.isfinite(reg0):
        raise ProblemError(f"the regulariser at θ0 is not finite (R = {reg0}).")
    if gnorm0 <= singular_tol:
        raise ProblemError(
            f"‖∇L(θ0)‖ = {gnorm0:.3g} vanishes: θ0 is a critical point of L (an exact minimum?) "
            "and the level set is singular there, so there is no tangent space to walk in. "
            "Start from a point with L slightly above its minimum (e.g. stop training earlier)."
        )
    target = loss0 if level is None else float(level)
    bound, noise = level_bound(problem, theta0, tolerance, target, float(loss0), point.grad)
    tau_abs = bound * bound
    check_range(theta0, level, target, tau_abs, tolerance)
    theta, n_grad_evals = theta0, 1
    if level is not None:
        theta, point, n_grad_evals = project(evaluate, theta0, point, target, tau_abs, singular_tol)
    state = init_state(problem, direction, scheme, theta, target, tau_abs, n_grad_evals, point)
    return state, noise


def check_range(
    theta0: Array, level: float | None, target: float, tau: float, tolerance: Tolerance
) -> None:
    """Refuse a level or a threshold τ on (L − L0)² that θ's dtype cannot hold: it became inf
    in the walk's state, where an infinite τ counts every point as on the level set.

    Raises:
        ProblemError: a ``level`` beyond the dtype's range.
        ValueError: a tolerance whose τ overflows the dtype.
    """
    dtype = np.asarray(to_numpy(theta0[:1])).dtype
    largest = float(np.finfo(dtype).max)
    if level is not None and not abs(float(level)) <= largest:
        raise ProblemError(
            f"level={level!r} is beyond the range of θ's dtype {dtype} (|level| ≤ {largest:.3g}); "
            "walk a level the dtype can hold."
        )
    if not tau <= largest:
        raise ValueError(
            f"the tolerance {tolerance} at L0 = {target:.6g} gives a threshold (L − L0)² ≤ "
            f"{tau:.3g}, beyond the range "
            f"of θ's dtype {dtype} (≤ {largest:.3g}), where it would count every point as on the "
            "level set; pass a smaller manifoldwalk.Tolerance."
        )


def level_bound(
    problem: Problem,
    theta0: Array,
    tolerance: Tolerance,
    level: float,
    loss0: float,
    grad0: Array,
) -> tuple[float, float | None]:
    """The bound on |L − L0| a walk holds, and the loss's noise measured at θ0 (None if not
    measured).

    A relative tolerance below :data:`~manifoldwalk.options.NOISE_FACTOR` times the noise is
    widened to that, with a warning naming both; an absolute ``tau`` is kept, with a warning.
    """
    dtype = str(np.asarray(to_numpy(theta0[:1])).dtype)
    bound = tolerance.bound(level, dtype)
    if not tolerance.check_noise:
        return bound, None
    noise = loss_noise(problem, theta0, loss0, grad0)
    floor = NOISE_FACTOR * noise
    if bound < floor:
        scale = abs(level) if level else 1.0
        what = (
            f"the relative tolerance (|L − L0| ≤ {bound:.3g}, {bound / scale:.2g}·|L0|)"
            if tolerance.relative
            else f"the absolute tolerance τ = {tolerance.tau:g} (|L − L0| ≤ {bound:.3g})"
        )
        action = (
            f"the walk holds |L − L0| ≤ {floor:.3g} ({floor / scale:.2g}·|L0|) instead"
            if tolerance.relative
            else "the walk keeps it and may fail to correct"
        )
        warnings.warn(
            f"the loss's floating-point noise at θ0 is {noise:.3g} ({noise / scale:.2g}·|L0|, "
            f"measured from {NOISE_SAMPLES} evaluations a few ulps away); {what} is below "
            f"{NOISE_FACTOR:g}× it, so {action}. Evaluate the model in float64 for a tighter "
            "level set, or pass a looser manifoldwalk.Tolerance.",
            UserWarning,
            stacklevel=5,
        )
        if tolerance.relative:
            bound = floor
    return bound, noise


def project(evaluate, theta, point: PointData, level: float, tau: float, singular_tol: float):
    """Newton steps from θ onto {L = level} until (L − level)² ≤ τ."""
    xp = namespace(theta)
    zero = zero_count(theta)
    for n_grad_evals in range(1, 101):
        loss, gnorm = to_host(point.loss, xp.sqrt(point.grad_sq))
        if (loss - level) * (loss - level) <= tau:  # (``**`` raises OverflowError on floats)
            return theta, point, n_grad_evals
        if not (np.isfinite(loss) and gnorm > singular_tol):
            break
        theta = theta - safe_divide(xp, point.loss - level, point.grad_sq) * point.grad
        point = evaluate(theta, zero)
    raise ProblemError(
        f"could not project θ0 onto the level set {{L = {level}}}: after {n_grad_evals} Newton steps "
        f"L = {loss:.6g}, ‖∇L‖ = {gnorm:.3g}. Is the level reachable from θ0 (above the "
        "minimum of L, below where ∇L vanishes)?"
    )


def what_is_not_finite(
    problem: Problem, direction: Direction, theta: Array, point: PointData | WalkState
) -> str:
    """Which of L, ∇L, ∇R or the direction is NaN or inf at θ, where ``point`` (θ's
    evaluation) failed the finiteness test (looked at once, at the start or the stop: the
    step's look tests only scalars)."""
    xp = namespace(theta)
    loss_ok, grad_ok = to_host(xp.isfinite(point.loss), xp.isfinite(point.grad_sq))
    if not loss_ok:
        return "the loss L"
    if not grad_ok:
        return "the loss's gradient ∇L"
    # the loss is finite: the direction r was not (the look's stationarity test)
    (reg_grad_ok,) = to_host(xp.all(xp.isfinite(problem.reg_grad(theta))))
    if not reg_grad_ok:
        return "the regulariser's gradient ∇R"
    return f"the direction of interest ({type(direction).__name__})"
