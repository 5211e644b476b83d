"""The walk step as a pure function ``WalkState -> WalkState``.

The state carries, besides θ, everything the next step needs at θ (loss,
gradient, ∇R and the predictor direction), so each step costs exactly one
loss-and-gradient evaluation, at the point it moves to. The step has no Python
branch on array values: predictor and corrector candidates are both formed and
one is selected with ``where``, so the same step runs eagerly on numpy, torch
or jax arrays, or traced under ``jax.jit`` / ``lax.while_loop``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from manifoldwalk._array import (
    Array,
    dot,
    inverse,
    namespace,
    safe_divide,
    scalar_like,
    zero_count,
)
from manifoldwalk.directions import Direction
from manifoldwalk.problem import Problem, loss_and_grad_of
from manifoldwalk.schemes import Scheme


class WalkState(NamedTuple):
    """Everything a walk step reads and writes: the point, the counters and the pieces' states.

    Point data (at ``theta``): ``loss``, ``grad``, ``grad_sq`` = ‖∇L‖², ``pred`` (the
    rejection of the direction of interest r from ∇L, unnormalised), its norm ``pred_norm``
    and ``stationarity`` = ‖pred‖/‖r‖ (∇R is not kept: a history record forms it from θ).
    The level set: ``level`` L0 and ``tau``, the threshold on (L − L0)². Counters:
    ``n_predictor``, ``n_corrector``, ``n_grad_evals`` (loss-and-gradient evaluations),
    ``n_consec_corr`` (corrector steps since the last predictor step), ``max_dev`` (largest
    |L − L0| seen), ``max_on_dev`` (largest |L − L0| at points on the level set) and
    ``max_step`` (longest predictor step taken). The pieces' own states:
    ``predictor`` (see :mod:`manifoldwalk.predictors`; it exposes ``eta``, ``direction``,
    ``started``, ``cos`` and ``n_stall``) and ``corrector`` (see
    :mod:`manifoldwalk.correctors`). All leaves are arrays; the state is a pytree of
    NamedTuples, so compiled loops carry it as it is.
    """

    theta: Array
    loss: Array
    grad: Array
    grad_sq: Array
    pred: Array
    pred_norm: Array
    stationarity: Array
    level: Array
    tau: Array
    n_predictor: Array
    n_corrector: Array
    n_grad_evals: Array
    n_consec_corr: Array
    max_dev: Array
    max_on_dev: Array
    max_step: Array
    predictor: Any
    corrector: Any


class PointData(NamedTuple):
    """What the walk needs to know at one point (see :class:`WalkState`)."""

    loss: Array
    grad: Array
    grad_sq: Array
    pred: Array
    pred_norm: Array
    stationarity: Array


def as_scalar(value: Any, like: Array) -> Array:
    """``value`` (a 0-d array or a float) as a 0-d array of ``like``'s dtype and device."""
    if isinstance(value, int | float) and not hasattr(value, "dtype"):
        return scalar_like(float(value), like)
    xp = namespace(like)
    # No copy: the state keeps what the problem returned, as it keeps the gradient.
    return xp.astype(xp.reshape(value, ()), like.dtype, copy=False)


def make_evaluate(problem: Problem, direction: Direction) -> Callable[[Array, Array], PointData]:
    """Build ``evaluate(θ, n_predictor) -> PointData``: one loss-and-gradient evaluation."""
    loss_and_grad = loss_and_grad_of(problem)

    def evaluate(theta: Array, n_predictor: Array) -> PointData:
        loss, grad = loss_and_grad(theta)
        loss = as_scalar(loss, theta)
        xp = namespace(theta)
        grad_sq = dot(xp, grad, grad)
        # ∇R is not kept in the state (a record forms it again): a compiled loop would write
        # it out at every step, one pass over θ for nothing the step reads.
        r = direction(theta, problem.reg_grad(theta), n_predictor)
        along = safe_divide(xp, dot(xp, r, grad), grad_sq)  # r = pred + along·∇L
        pred = r - along * grad
        pred_sq = dot(xp, pred, pred)
        pred_norm = xp.sqrt(pred_sq)
        # ‖r‖² = ‖pred‖² + along²·‖∇L‖² (orthogonal parts): one pass fewer than norm(r).
        stationarity = pred_norm * inverse(xp, xp.sqrt(pred_sq + along * along * grad_sq))
        return PointData(loss, grad, grad_sq, pred, pred_norm, stationarity)

    return evaluate


def init_state(
    problem: Problem,
    direction: Direction,
    scheme: Scheme,
    theta: Array,
    level: Array | float | None = None,
    tau: float = 1e-10,
    n_grad_evals: int = 1,
    point: PointData | None = None,
) -> WalkState:
    """The state at the start of a walk from ``theta`` (already on its level set).

    Args:
        problem, direction, scheme: the walk's pieces.
        theta: the starting point.
        level: L0; defaults to L(θ).
        tau: the absolute deviation threshold on (L − L0)².
        n_grad_evals: loss-and-gradient evaluations spent so far (1 for the start itself).
        point: ``evaluate(theta)`` if the caller already has it.
    """
    zero_i = zero_count(theta)
    if point is None:
        point = make_evaluate(problem, direction)(theta, zero_i)
    level = point.loss if level is None else as_scalar(level, theta)
    xp = namespace(theta)
    return WalkState(
        theta=theta,
        **point._asdict(),
        level=level,
        tau=scalar_like(tau, theta),
        n_predictor=zero_i,
        n_corrector=zero_i,
        n_grad_evals=zero_i + n_grad_evals,
        n_consec_corr=zero_i,
        max_dev=xp.abs(point.loss - level),
        max_on_dev=xp.zeros_like(point.loss) + xp.abs(point.loss - level),
        max_step=xp.zeros_like(point.loss),
        predictor=scheme.predictor.init(theta),
        corrector=scheme.corrector.init(theta),
    )


def _larger_finite(xp: Any, old: Array, new: Array) -> Array:
    """``max(old, new)`` for 0-d arrays, keeping ``old`` where ``new`` is NaN or inf (a walk
    that stops on a non-finite loss reports the largest deviation of its finite points)."""
    return xp.where(xp.isfinite(new) & (new > old), new, old)


StepFunction = Callable[..., WalkState]
"""``step(state, on=None) -> state``: see :func:`make_step`."""


def make_step(problem: Problem, direction: Direction, scheme: Scheme) -> StepFunction:
    """Build the pure step function for a problem, a direction and a scheme.

    At a point with (L − L0)² ≤ τ the step is the scheme's predictor, elsewhere its
    corrector; either way the new point is evaluated once.

    The returned ``step(state, on=None)`` forms both candidates and selects with ``where``
    (traceable: compiled loops call it so). A caller that already knows on the host whether
    ``state`` is on the level set (the eager driver) passes ``on=True`` or ``on=False``: the
    step then forms only the branch it takes and returns the same values bit for bit.

    Args:
        problem, direction, scheme: the walk's pieces.

    Returns:
        The step function ``step(state: WalkState, on: bool | None = None) -> WalkState``.
    """
    evaluate = make_evaluate(problem, direction)
    predictor, corrector = scheme.predictor, scheme.corrector
    bind = getattr(predictor, "bind_loss", None)
    if callable(bind):  # a predictor that probes the loss, without its gradient, before landing
        predictor = bind(lambda theta: as_scalar(problem.loss(theta), theta))

    # Each branch returns (displacement, predictor state, corrector state, max_step).
    def predict(xp: Any, s: WalkState) -> tuple[Any, ...]:
        delta, p = predictor.step(s.predictor, s)
        return delta, p, s.corrector, xp.maximum(s.max_step, p.eta)

    def correct(xp: Any, s: WalkState) -> tuple[Any, ...]:
        delta, c = corrector.correct(s.corrector, s.loss - s.level, s, s.predictor.direction)
        return delta, predictor.corrected(s.predictor, delta), c, s.max_step

    def step(s: WalkState, on: bool | None = None) -> WalkState:
        xp = namespace(s.theta)
        if on is None:
            dev = s.loss - s.level
            on_arr = dev * dev <= s.tau
            moved = select(xp, on_arr, predict(xp, s), correct(xp, s))
            is_p = xp.astype(on_arr, s.n_predictor.dtype)
        else:
            moved = predict(xp, s) if on else correct(xp, s)
            is_p = 1 if on else 0
        delta, p_state, c_state, max_step = moved
        theta = s.theta + delta
        n_predictor = s.n_predictor + is_p
        point = evaluate(theta, n_predictor)
        dev = xp.abs(point.loss - s.level)
        on_level = dev * dev <= s.tau
        return WalkState(
            theta=theta,
            **point._asdict(),
            level=s.level,
            tau=s.tau,
            n_predictor=n_predictor,
            n_corrector=s.n_corrector + (1 - is_p),
            n_grad_evals=s.n_grad_evals + 1,
            n_consec_corr=(s.n_consec_corr + 1) * (1 - is_p),
            max_dev=_larger_finite(xp, s.max_dev, dev),
            max_on_dev=xp.where(on_level, _larger_finite(xp, s.max_on_dev, dev), s.max_on_dev),
            max_step=max_step,
            predictor=predictor.observe(p_state, point, dev * inverse(xp, xp.sqrt(s.tau))),
            corrector=c_state,
        )

    return step


def select(xp: Any, cond: Array, a: Any, b: Any) -> Any:
    """``where(cond, a, b)`` leaf by leaf over equal nests of tuples (NamedTuples kept).

    A leaf that is the same object in both (a field a branch left as it was) is taken as it
    is: no ``where`` is formed for it, so a compiled step does no vector pass for it.
    """
    if isinstance(a, tuple):  # (identity is asked of arrays only: Dynamo traces that)
        parts = [select(xp, cond, x, y) for x, y in zip(a, b, strict=True)]
        return type(a)(*parts) if hasattr(a, "_fields") else type(a)(parts)
    return a if a is b else xp.where(cond, a, b)


def state_leaves(state: Any) -> list[Array]:
    """The arrays of a state (or any nest of tuples), depth first."""
    return [leaf for _, leaf in named_leaves(state)]


def named_leaves(state: Any, prefix: str = "") -> list[tuple[str, Array]]:
    """The arrays of a state (or any nest of NamedTuples) with their paths, depth first:
    ``[("theta", θ), ..., ("predictor/eta", η_p), ...]``."""
    if not isinstance(state, tuple):
        return [(prefix, state)]
    names = getattr(state, "_fields", None) or [str(i) for i in range(len(state))]
    out: list[tuple[str, Array]] = []
    for name, part in zip(names, state, strict=True):
        out += named_leaves(part, f"{prefix}/{name}" if prefix else name)
    return out


def map_state(fn: Callable[[Array], Array], state: Any) -> Any:
    """``fn`` applied to every array of a state (or any nest of tuples), structure kept."""
    if isinstance(state, tuple):
        parts = [map_state(fn, part) for part in state]
        return type(state)(*parts) if hasattr(state, "_fields") else type(state)(parts)
    return fn(state)
