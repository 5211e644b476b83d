"""Walk several constraints at once: {θ : L_i(θ) = c_i, i = 0..k−1}.

A *k-constraint problem* gives the k losses and their k×P Jacobian in one call,
``losses_and_jacobian(θ) -> (L, J)``, besides ``reg`` and ``reg_grad``
(:class:`MultiConstraintProblem`; :func:`manifoldwalk.stack` builds one from k single-constraint
Problems). :func:`walk_constrained` walks the intersection of the k level sets:

- **predictor**: along d = r − Jᵀ G⁻¹ J r, the part of the direction of interest r orthogonal to
  every ∇L_i (G = J Jᵀ, a k×k solve on the host; no P×P matrix), a step η_p·d/‖d‖ with η_p from
  the scheme's step-size rule, told the cosine between successive unit directions;
- **corrector**: the Gauss–Newton minimum-norm step δ = −Jᵀ G⁻¹ (L − c), repeated until every
  |L_i − c_i| is within its bound (the scheme's :class:`~manifoldwalk.Tolerance` applied to
  each level);
- **stops**: the single-constraint walk's reasons; ``stationary`` where ‖d‖/‖r‖ ≤ ``kkt_tol``
  (for r = −∇R the KKT residual ‖∇R + Jᵀλ‖/‖∇R‖), ``singular`` where a gradient vanishes or
  the row-normalised Gram matrix is near-singular, naming the constraints that became
  dependent.

How a problem is told apart: :func:`is_multi_constraint`. A problem with one constraint takes the
single-constraint walk (:func:`manifoldwalk.walk`) unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from manifoldwalk._array import Array, to_host, zero_count
from manifoldwalk._multi_loop import MultiWalk, Rules, State
from manifoldwalk._multi_point import evaluate
from manifoldwalk._multi_start import (
    check_levels,
    check_problem,
    check_scheme,
    level_bounds,
    project,
)
from manifoldwalk.directions import Direction, as_direction
from manifoldwalk.drivers import Chunked, Eager, as_driver
from manifoldwalk.options import Record, Stop, Tolerance
from manifoldwalk.problem import ProblemError, check_theta
from manifoldwalk.result import WalkResult
from manifoldwalk.schemes import Scheme, get_scheme
from manifoldwalk.step import as_scalar

__all__ = [
    "BASE_COLUMNS",
    "MultiConstraintProblem",
    "history_columns",
    "is_multi_constraint",
    "prepare_constrained",
    "walk_constrained",
]

BASE_COLUMNS = (
    "step",
    "n_predictor",
    "n_corrector",
    "n_grad_evals",
    "deviation",
    "reg",
    "angle",
    "kkt",
    "eta_p",
    "eta_c",
    "turn",
)
"""The history columns of a k-constraint walk before the per-constraint ones (see
:func:`history_columns`)."""


@runtime_checkable
class MultiConstraintProblem(Protocol):
    """What :func:`walk_constrained` needs from a problem with k constraints.

    ``losses_and_jacobian(θ)`` returns ``(L, J)``: L the k losses as a 1-D array, J their
    gradients as the rows of a (k, P) array, both in θ's array type, dtype and device; ``reg``
    and ``reg_grad`` are the regulariser R and its gradient, as for a
    :class:`~manifoldwalk.Problem`. Optional: ``n_constraints`` (k, checked against L's length
    at the start), ``dim`` (P) and ``loss_weights`` (k numbers w_i: the history then records
    ``loss`` = Σ_i w_i L_i, e.g. the full-batch mean over groups of examples). A problem may also have ``loss_and_grad`` (or ``loss`` and
    ``grad``): :func:`is_multi_constraint` says which walk it takes.
    """

    def losses_and_jacobian(self, theta: Array) -> tuple[Array, Array]:
        """The k losses, shape (k,), and their Jacobian, shape (k, P)."""
        ...

    def reg(self, theta: Array) -> Array:
        """Regulariser R(θ) as a 0-d array."""
        ...

    def reg_grad(self, theta: Array) -> Array:
        """Gradient ∇R(θ), θ's shape."""
        ...


def is_multi_constraint(problem: Any) -> bool:
    """Whether ``problem`` is walked as a k-constraint problem (:func:`walk_constrained`).

    True where it has a callable ``losses_and_jacobian``, whatever else it has (a
    ``loss_and_grad`` too, say), unless it declares ``n_constraints == 1``: such a problem, and
    any problem without ``losses_and_jacobian``, is a single-constraint
    :class:`~manifoldwalk.Problem` for :func:`manifoldwalk.walk` (``stack([p])`` is ``p``).

    Args:
        problem: any object.

    Returns:
        True for a k-constraint problem.
    """
    if not callable(getattr(problem, "losses_and_jacobian", None)):
        return False
    return getattr(problem, "n_constraints", None) != 1


def history_columns(k: int, total: bool = False) -> tuple[str, ...]:
    """The history columns of a k-constraint walk, before any metrics.

    :data:`BASE_COLUMNS` as in the single-constraint walk, where ``deviation`` is
    max_i |L_i − c_i|, ``angle`` the angle (degrees) between ∇R and the span of the ∇L_i (0 at
    a KKT point), ``kkt`` ‖∇R + Jᵀλ‖/‖∇R‖ and ``eta_c`` 0 (the Gauss–Newton corrector has no
    step size); then, for a problem with ``loss_weights`` (``total``), ``loss`` = Σ_i w_i L_i
    (the full-batch mean loss of a ``groups=`` problem); then ``loss_i``, ``deviation_i`` =
    |L_i − c_i| and ``lam_i`` (the multiplier λ_i with ∇R + Σ λ_i ∇L_i orthogonal to every
    ∇L_i) for i = 0..k−1.

    Args:
        k: the number of constraints.
        total: whether the problem has ``loss_weights`` (a ``loss`` column).

    Returns:
        The column names.
    """
    per = tuple(f"{name}_{i}" for name in ("loss", "deviation", "lam") for i in range(k))
    return BASE_COLUMNS + (("loss",) if total else ()) + per


def walk_constrained(
    problem: Any,
    theta0: Array,
    *,
    scheme: str | Scheme = "default",
    direction: Direction | Callable[[Array], Array] | None = None,
    levels: Sequence[float] | None = None,
    tolerance: Tolerance | None = None,
    stop: Stop = Stop(),
    record: Record = Record(),
    resume_from: WalkResult | None = None,
    driver: Eager | Chunked | None = None,
) -> WalkResult:
    """Walk {θ : L_i(θ) = c_i for every i} of a k-constraint problem from ``theta0``.

    A problem that :func:`is_multi_constraint` calls single-constraint (a plain Problem, or
    ``stack([p])``) is handed to :func:`manifoldwalk.walk` as it is, with ``level=levels[0]``:
    the same walk, bit for bit. Otherwise the walk runs eagerly on the host (θ stays in its
    array type and device; only k-vectors and k×k matrices come to the host), as the module
    docstring says.

    The result is a :class:`~manifoldwalk.WalkResult` whose ``level``, ``loss``, ``lam`` and
    ``tolerance`` are lists of k floats (c_i, L_i at ``theta``, λ_i, the bound on |L_i − c_i|);
    ``angle`` and ``kkt`` are ∇R's angle to the span of the ∇L_i and the KKT residual;
    ``max_deviation`` is the largest |L_i − c_i| at any point, ``max_relative_deviation`` the
    largest |L_i − c_i|/|c_i| at on-level points; ``n_grad_evals`` counts
    ``losses_and_jacobian`` calls (each k value-and-gradient evaluations); ``history`` has the
    columns of :func:`history_columns`; ``state`` is None (a k-constraint walk does not resume).

    Args:
        problem: a k-constraint problem (:class:`MultiConstraintProblem`), or a Problem.
        theta0: the start, a finite 1-D float array (numpy, torch or jax).
        scheme: a scheme whose corrector is Newton's and whose predictor is a plain
            :class:`~manifoldwalk.TangentPredictor` (``"default"``, or e.g.
            ``get_scheme("paper", corrector="newton")``); its step-size rule,
            ``max_corrector_steps`` and tolerance are used.
        direction: the direction of interest (None: minimise R), as for ``walk``.
        levels: the k levels c_i (None: L_i(θ0)); θ0 is first brought onto them with
            Gauss–Newton steps.
        tolerance: the level tolerance, applied to each constraint (None: the scheme's;
            a relative one is widened to each loss's measured noise where that is larger).
        stop: budgets and tolerances; ``singular_tol`` bounds each ‖∇L_i‖ and Ĝ's smallest
            eigenvalue relative to its largest (Ĝ the Gram matrix of the normalised ∇L_i).
        record: history rows, trajectory, metrics and callback, as for ``walk``.
        resume_from: must be None for k ≥ 2.
        driver: None or ``Eager()``; ``Chunked(K)`` warns and runs eagerly for k ≥ 2.

    Returns:
        A :class:`~manifoldwalk.WalkResult` (see above).

    Raises:
        ProblemError: a bad θ0 or problem (L, J of the wrong shape, dtype or array type), a
            start where the constraints are dependent or a gradient vanishes (naming them), a
            level of 0 under a relative tolerance, levels not reachable from θ0.
        ValueError: ``levels`` not k finite numbers, a scheme without a k-constraint form, a
            ``resume_from``, or a metric named like a history column.
        TypeError: an option group of the wrong type.
    """
    if not is_multi_constraint(problem):
        from manifoldwalk.driver import walk  # (the driver routes k-constraint problems here)

        level = None if levels is None else float(check_levels(levels, 1)[0])
        return walk(
            problem,
            theta0,
            scheme=scheme,
            direction=direction,
            level=level,
            tolerance=tolerance,
            stop=stop,
            record=record,
            resume_from=resume_from,
            driver=driver,
        )
    if resume_from is not None:
        raise ValueError(
            "resume_from: a k-constraint walk does not resume; run it again from the result's "
            "theta (walk_constrained(problem, result.theta, levels=result.level, ...))."
        )
    if isinstance(as_driver(driver), Chunked):
        warnings.warn(
            "a k-constraint walk runs eagerly: driver=Chunked(...) is ignored.",
            UserWarning,
            stacklevel=2,
        )
    run, state = prepare_constrained(
        problem,
        theta0,
        scheme=scheme,
        direction=direction,
        levels=levels,
        tolerance=tolerance,
        stop=stop,
        record=record,
    )
    return run.run(state)


def prepare_constrained(
    problem: Any,
    theta0: Array,
    *,
    scheme: str | Scheme = "default",
    direction: Direction | Callable[[Array], Array] | None = None,
    levels: Sequence[float] | None = None,
    tolerance: Tolerance | None = None,
    stop: Stop = Stop(),
    record: Record = Record(),
) -> tuple[MultiWalk, State]:
    """Check the options, evaluate the start and build a k-constraint walk without running it.

    :func:`walk_constrained` is ``run.run(state)`` of what this returns (benchmarks time
    ``run.advance(state)``, one step).

    Args:
        problem, theta0, scheme, ...: as for :func:`walk_constrained` (a k-constraint problem).

    Returns:
        The walk (:class:`~manifoldwalk._multi_loop.MultiWalk`) and its starting state.

    Raises:
        ProblemError, ValueError, TypeError: as :func:`walk_constrained`.
    """
    scheme = get_scheme(scheme)
    tolerance = scheme.tolerance if tolerance is None else tolerance
    _check_types(stop=stop, record=record, tolerance=tolerance)
    rule, reset = check_scheme(scheme)
    direction = as_direction(direction)
    check_theta(theta0)
    k = check_problem(problem, theta0)
    given = check_levels(levels, k)
    _check_direction(direction, problem, theta0)
    weights = _loss_weights(problem, k)
    _check_metric_names(record, k, weights is not None)
    point = evaluate(problem, theta0)
    _check_start(problem, point, stop.singular_tol)
    target = point.host_losses.copy() if given is None else given
    bounds, noise = level_bounds(problem, theta0, point, tolerance, target)
    n_evals = 1
    if given is not None:
        point, n_evals = project(problem, point, target, bounds, stop.singular_tol)
    rules = Rules(
        optimises=bool(direction.optimises),
        kkt_tol=stop.kkt_tol,
        stall_patience=stop.stall_patience,
        max_steps=stop.max_steps,
        max_total_steps=stop.max_total_steps,
        max_corrector_steps=scheme.max_corrector_steps,
        singular_tol=stop.singular_tol,
    )
    options = {
        "scheme": scheme.name,
        "corrector": scheme.corrector.name,
        "direction": type(direction).__name__,
        "n_constraints": k,
        "levels": None if given is None else [float(c) for c in given],
        "rtol": tolerance.rtol,
        "atol": tolerance.atol,
        "tau": tolerance.tau,
        "max_steps": stop.max_steps,
        "max_total_steps": stop.max_total_steps,
        "kkt_tol": stop.kkt_tol,
        "stall_patience": stop.stall_patience,
        "singular_tol": stop.singular_tol,
        "max_corrector_steps": scheme.max_corrector_steps,
        "record_every": record.every,
        "trajectory_every": record.trajectory_every,
        "noise": noise,
    }
    run = MultiWalk(
        problem, direction, rule, reset, target, bounds, rules, record, options, weights
    )
    return run, run.start(point, n_evals)


def _check_types(**groups: Any) -> None:
    """Refuse an option group of the wrong type by name."""
    kinds = {"stop": Stop, "record": Record, "tolerance": Tolerance}
    for name, value in groups.items():
        kind = kinds[name]
        if not isinstance(value, kind):
            raise TypeError(
                f"{name} must be a manifoldwalk.{kind.__name__}, got {type(value).__name__} "
                f"{value!r}; e.g. {name}=manifoldwalk.{kind.__name__}(...)."
            )


def _check_direction(direction: Direction, problem: Any, theta0: Array) -> None:
    """Evaluate the direction once at θ0 and check its shape."""
    r = direction(theta0, problem.reg_grad(theta0), zero_count(theta0))
    shape = getattr(r, "shape", None)
    if shape is None or tuple(shape) != tuple(theta0.shape):
        got = f"a {type(r).__name__}" if shape is None else f"shape {tuple(shape)}"
        raise ProblemError(
            f"the direction {type(direction).__name__} must return an array of θ's shape "
            f"{tuple(theta0.shape)}, got {got}."
        )


def _loss_weights(problem: Any, k: int) -> np.ndarray | None:
    """The problem's ``loss_weights`` (k finite numbers: the history's ``loss`` is
    Σ_i w_i L_i), or None where it declares none.

    Raises:
        ProblemError: weights that are not k finite numbers.
    """
    weights = getattr(problem, "loss_weights", None)
    if weights is None:
        return None
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ProblemError(
            f"{type(problem).__name__}.loss_weights must be {k} numbers, got {weights!r}."
        ) from err
    if w.shape != (k,) or not np.all(np.isfinite(w)):
        raise ProblemError(
            f"{type(problem).__name__}.loss_weights must be {k} finite numbers (one per "
            f"constraint), got {weights!r}."
        )
    return w


def _check_metric_names(record: Record, k: int, total: bool = False) -> None:
    """Refuse a metric named like one of the k-constraint history columns."""
    columns = history_columns(k, total)
    clash = [name for name in record.metrics if name in columns]
    if clash:
        raise ValueError(
            f"metrics: {', '.join(map(repr, clash))} would overwrite built-in history columns "
            f"of a {k}-constraint walk; rename them. Reserved: {', '.join(columns)}."
        )


def _check_start(problem: Any, point: Any, singular_tol: float) -> None:
    """Refuse a start where L or J is not finite, or the constraints are dependent."""
    if not point.finite:
        bad = [i for i, v in enumerate(point.host_losses) if not np.isfinite(v)]
        what = f"L_{bad[0]}" if bad else "the Jacobian J"
        raise ProblemError(f"{what} at θ0 holds NaN or inf (L = {list(point.host_losses)}).")
    if point.gram.is_singular(singular_tol):
        raise ProblemError(
            f"at θ0 {point.gram.describe_singular(singular_tol)}: the intersection of the level "
            "sets is singular there (no tangent space of the expected dimension to walk in). "
            "Drop a redundant constraint, or start elsewhere."
        )
    (reg0,) = to_host(as_scalar(problem.reg(point.theta), point.theta))
    if not np.isfinite(reg0):
        raise ProblemError(f"the regulariser at θ0 is not finite (R = {reg0}).")
