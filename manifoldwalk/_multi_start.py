"""The start of a k-constraint walk: checks of the problem, the levels and the scheme; the
per-constraint level bounds (widened to each loss's noise); the projection onto given levels."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from manifoldwalk._array import Array, namespace, to_like, to_numpy
from manifoldwalk._gram import name_constraints
from manifoldwalk._multi_point import MultiPoint, correction, evaluate
from manifoldwalk._noise import NOISE_SAMPLES
from manifoldwalk.correctors import NewtonCorrector
from manifoldwalk.options import NOISE_FACTOR, Tolerance
from manifoldwalk.predictors import TangentPredictor
from manifoldwalk.problem import ProblemError
from manifoldwalk.schemes import Scheme
from manifoldwalk.step_sizes import StepRule

MAX_PROJECTION_STEPS = 100
"""Gauss–Newton steps allowed to bring θ0 onto given levels."""


def check_problem(problem: Any, theta: Array) -> int:
    """Check a k-constraint problem at θ0 and return k.

    Raises:
        ProblemError: a missing method, L not a 1-D array of k entries, J not (k, P) in θ's
            dtype and array type, ``n_constraints`` or ``dim`` not matching, R not a scalar or
            ∇R not of θ's shape.
    """
    name = type(problem).__name__
    missing = [
        m
        for m in ("losses_and_jacobian", "reg", "reg_grad")
        if not callable(getattr(problem, m, None))
    ]
    if missing:
        raise ProblemError(
            f"{name} is not a k-constraint problem: it lacks {', '.join(missing)}. It needs "
            "losses_and_jacobian(θ) -> (L (k,), J (k, P)), reg and reg_grad; "
            "manifoldwalk.stack([...]) builds one from single-constraint Problems."
        )
    dim = getattr(problem, "dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool) and dim != theta.shape[0]:
        raise ProblemError(
            f"{name} has {dim} variables but θ has shape {tuple(theta.shape)}; pass a θ0 of "
            f"shape ({dim},)."
        )
    losses, jacobian = problem.losses_and_jacobian(theta)
    shape = getattr(losses, "shape", None)
    if shape is None or len(shape) != 1 or shape[0] < 1:
        got = f"a {type(losses).__name__}" if shape is None else f"shape {tuple(shape)}"
        raise ProblemError(
            f"{name}.losses_and_jacobian(θ) must return L as a 1-D array of the k losses, got "
            f"{got}; stack the losses (e.g. xp.stack([L_0, L_1]))."
        )
    k, p = int(shape[0]), int(theta.shape[0])
    jshape = getattr(jacobian, "shape", None)
    if jshape is None or tuple(jshape) != (k, p):
        got = f"a {type(jacobian).__name__}" if jshape is None else f"shape {tuple(jshape)}"
        raise ProblemError(
            f"{name}.losses_and_jacobian(θ) must return J of shape (k, P) = ({k}, {p}) (one row "
            f"∇L_i per loss, θ has {p} entries), got {got}."
        )
    for what, value in (("L", losses), ("J", jacobian)):
        if namespace(value) is not namespace(theta) or value.dtype != theta.dtype:
            raise ProblemError(
                f"{name}.losses_and_jacobian(θ) returned {what} as {type(value).__name__} of "
                f"dtype {value.dtype}, but θ is {type(theta).__name__} of dtype {theta.dtype}; "
                "return L and J in θ's array type, dtype and device."
            )
    declared = getattr(problem, "n_constraints", None)
    if declared is not None and declared != k:
        raise ProblemError(
            f"{name} declares n_constraints = {declared} but losses_and_jacobian(θ) returned "
            f"{k} losses."
        )
    reg_shape = tuple(getattr(problem.reg(theta), "shape", ()))
    if reg_shape != ():
        raise ProblemError(f"{name}.reg(θ) must return a scalar, got shape {reg_shape}.")
    reg_grad = problem.reg_grad(theta)
    if (
        tuple(getattr(reg_grad, "shape", ())) != tuple(theta.shape)
        or getattr(reg_grad, "dtype", None) != theta.dtype
    ):
        raise ProblemError(
            f"{name}.reg_grad(θ) must return an array of θ's shape {tuple(theta.shape)} and "
            f"dtype {theta.dtype}, got {type(reg_grad).__name__} of shape "
            f"{tuple(getattr(reg_grad, 'shape', ()))}."
        )
    return k


def check_levels(levels: Any, k: int) -> np.ndarray | None:
    """``levels`` as a float64 array of k finite numbers, or None.

    Raises:
        ValueError: not a sequence of k finite numbers.
    """
    if levels is None:
        return None
    if isinstance(levels, str | bytes):
        ok = False
    else:
        try:
            values = np.asarray(levels, dtype=np.float64)
            ok = values.ndim == 1 and bool(np.all(np.isfinite(values)))
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise ValueError(
            f"levels must be None or a sequence of {k} finite numbers, got {levels!r}."
        )
    if values.shape[0] != k:
        raise ValueError(
            f"levels has {values.shape[0]} entries but the problem has {k} constraints; give one "
            f"level per loss (or None to walk the levels at θ0)."
        )
    return values


def check_scheme(scheme: Scheme) -> tuple[StepRule, bool]:
    """The predictor's step rule and its reset-after-corrector flag, where the scheme's pieces
    have a k-constraint form.

    Raises:
        ValueError: a corrector other than Newton's, a drift-compensated predictor or one with
            ``max_excursion``.
    """
    if not isinstance(scheme.corrector, NewtonCorrector):
        raise ValueError(
            f"scheme {scheme.name!r} corrects with {scheme.corrector.name!r}, which has no "
            "k-constraint form: a k-constraint walk corrects with the Gauss–Newton minimum-norm "
            "step. Use scheme='default' or get_scheme(name, corrector='newton')."
        )
    predictor = scheme.predictor
    if not isinstance(predictor, TangentPredictor) or predictor.max_excursion is not None:
        raise ValueError(
            f"scheme {scheme.name!r}: a k-constraint walk takes a plain TangentPredictor (no "
            "drift compensation, no max_excursion); use scheme='default' or replace the "
            "predictor: scheme.replace(predictor=TangentPredictor(rule))."
        )
    return predictor.step_rule, predictor.reset_after_corrector


def losses_noise(problem: Any, theta: Array, point: MultiPoint) -> np.ndarray:
    """The floating-point noise of each loss near θ (as ``manifoldwalk._noise.loss_noise``,
    for the k losses of one evaluation at each of a few points a few ulps away).

    Returns:
        The largest |L_i(θ + δ) − L_i(θ) − ∇L_i·δ| over the samples, shape (k,).
    """
    host = np.asarray(to_numpy(theta), dtype=np.float64)
    dtype = np.asarray(to_numpy(theta[:1])).dtype
    eps = float(np.finfo(dtype).eps)
    jac = np.asarray(to_numpy(point.jacobian), dtype=np.float64)
    size = np.maximum(np.abs(host), np.max(np.abs(host), initial=0.0) * 1e-3 + np.finfo(dtype).tiny)
    rng = np.random.default_rng(20261205)
    xp = namespace(theta)
    worst = np.zeros(jac.shape[0])
    for _ in range(NOISE_SAMPLES):
        signs = rng.choice([-1.0, 1.0], size=host.shape)
        moved_host = (host + 4 * eps * size * signs).astype(dtype)
        delta = moved_host.astype(np.float64) - host
        losses, _ = problem.losses_and_jacobian(to_like(xp, moved_host, theta, theta.dtype))
        values = np.asarray(to_numpy(losses), dtype=np.float64)
        worst = np.maximum(worst, np.abs(values - point.host_losses - jac @ delta))
    return worst


def level_bounds(
    problem: Any, theta: Array, point: MultiPoint, tolerance: Tolerance, levels: np.ndarray
) -> tuple[np.ndarray, list[float] | None]:
    """The bound on |L_i − c_i| for each constraint, and the losses' noise (None if not
    measured): ``tolerance.bound(c_i, dtype)``, a relative one widened to
    :data:`~manifoldwalk.options.NOISE_FACTOR` times the noise of L_i where that is larger
    (with a warning, as the single-constraint walk).

    Raises:
        ProblemError: a bound of 0 (a relative tolerance at a level 0, without ``atol``).
    """
    dtype = str(np.asarray(to_numpy(theta[:1])).dtype)
    bounds = np.array([tolerance.bound(c, dtype) for c in levels])
    noise = None
    if tolerance.check_noise:
        noise = losses_noise(problem, theta, point)
        floor = NOISE_FACTOR * noise
        low = [i for i in range(len(bounds)) if bounds[i] < floor[i]]
        if low:
            action = (
                f"the walk holds {NOISE_FACTOR:g}× the noise instead"
                if tolerance.relative
                else "the walk keeps them and may fail to correct"
            )
            figures = ", ".join(f"{i}: bound {bounds[i]:.3g}, noise {noise[i]:.3g}" for i in low)
            warnings.warn(
                f"the level tolerance of {name_constraints(low)} is below {NOISE_FACTOR:g}× the "
                f"loss's floating-point noise at θ0 ({figures}); {action}. Evaluate in float64 "
                "or pass a looser manifoldwalk.Tolerance.",
                UserWarning,
                stacklevel=4,
            )
            if tolerance.relative:
                bounds = np.maximum(bounds, floor)
    zero = [i for i in range(len(bounds)) if not bounds[i] > 0]
    if zero:
        raise ProblemError(
            f"the level tolerance of {name_constraints(zero)} is 0 (a relative tolerance at a "
            "level of 0): no other point can be on that level set. Pass "
            "tolerance=manifoldwalk.Tolerance(atol=...) for levels at 0."
        )
    return bounds, None if noise is None else [float(x) for x in noise]


def project(
    problem: Any,
    point: MultiPoint,
    levels: np.ndarray,
    bounds: np.ndarray,
    singular_tol: float,
) -> tuple[MultiPoint, int]:
    """Gauss–Newton steps from the point onto {L = levels} until every |L_i − c_i| ≤ its bound.

    Returns:
        The point on the levels and the evaluations made (the start's included).

    Raises:
        ProblemError: the levels are not reached in :data:`MAX_PROJECTION_STEPS` steps, or the
            Jacobian becomes singular or non-finite on the way.
    """
    for n_evals in range(1, MAX_PROJECTION_STEPS + 2):
        dev = np.abs(point.host_losses - levels)
        if np.all(dev * dev <= bounds * bounds):
            return point, n_evals
        if not point.finite or point.gram.is_singular(singular_tol):
            break
        if n_evals <= MAX_PROJECTION_STEPS:
            point = evaluate(problem, point.theta + correction(point, levels))
    worst = int(np.argmax(dev / bounds))
    raise ProblemError(
        f"could not project θ0 onto the levels {list(levels)}: after {n_evals - 1} Gauss–Newton "
        f"steps L_{worst} = {point.host_losses[worst]:.6g} (level {levels[worst]:.6g}). Are the "
        "levels reachable together from θ0 (a non-empty intersection, constraints independent "
        "on it)?"
    )
