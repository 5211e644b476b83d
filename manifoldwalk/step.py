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
    """Everything a walk step reads and writes; all fields are arrays.

    Point data (at ``theta``): ``loss``, ``grad``, ``grad_sq`` = ‖∇L‖², ``pred`` (the
    rejection of the direction of interest r from ∇L, unnormalised), its norm ``pred_norm``
    and ``stationarity`` = ‖pred‖/‖r‖ (∇R is not kept: a history record forms it from θ).
    Walk data: ``level`` L0, ``tau``, the step sizes ``eta_p``/``eta_c``, the last unit
    predictor/corrector directions ``dir_p``/``dir_c`` and whether they exist
    (``has_p``/``has_c``), step counters, ``n_stall`` (predictor reversals at the step floor
    so far), ``cos_p`` (the cosine between ``pred`` and ``dir_p``, 0 before the first
    predictor step: formed where ``pred`` is, while it is still in cache), ``max_dev``
    (largest |L − L0| seen) and ``max_step`` (longest predictor step taken). Drift
    compensation (schemes with ``drift_gain > 0``, see :class:`~manifoldwalk.schemes.Scheme`):
    ``drift`` is the learnt displacement per unit η_p² added to every predictor step (a 0-d
    zero when the scheme does not compensate, so other schemes carry no extra vector),
    ``eta_sq_sum`` the sum of η_p² over the predictor steps since the last corrector step.
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
    eta_p: Array
    eta_c: Array
    dir_p: Array
    dir_c: Array
    has_p: Array
    has_c: Array
    n_predictor: Array
    n_corrector: Array
    n_evals: Array
    n_consec_corr: Array
    n_stall: Array
    cos_p: Array
    max_dev: Array
    max_step: Array
    drift: Array
    eta_sq_sum: Array


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
    n_evals: int = 1,
    point: PointData | None = None,
) -> WalkState:
    """The state at the start of a walk from ``theta`` (already on its level set).

    Args:
        problem, direction, scheme: the walk's pieces.
        theta: the starting point.
        level: L0; defaults to L(θ).
        tau: the absolute deviation threshold on (L − L0)².
        n_evals: loss-and-gradient evaluations spent so far (1 for the start itself).
        point: ``evaluate(theta)`` if the caller already has it.
    """
    xp = namespace(theta)
    zero_i = zero_count(theta)
    if point is None:
        point = make_evaluate(problem, direction)(theta, zero_i)
    level = point.loss if level is None else as_scalar(level, theta)
    false = scalar_like(False, theta, dtype=xp.bool)
    return WalkState(
        theta=theta,
        **point._asdict(),
        level=level,
        tau=scalar_like(tau, theta),
        eta_p=scalar_like(scheme.predictor_step.eta_init, theta),
        eta_c=scalar_like(scheme.corrector.eta_init, theta),
        dir_p=xp.zeros_like(theta),
        dir_c=xp.zeros_like(theta),
        has_p=false,
        has_c=false,
        n_predictor=zero_i,
        n_corrector=zero_i,
        n_evals=zero_i + n_evals,
        n_consec_corr=zero_i,
        n_stall=zero_i,
        cos_p=xp.zeros_like(point.loss),
        max_dev=xp.abs(point.loss - level),
        max_step=xp.zeros_like(point.loss),
        drift=xp.zeros_like(theta) if scheme.drift_gain > 0 else xp.zeros_like(point.loss),
        eta_sq_sum=xp.zeros_like(point.loss),
    )


def fit_drift(state: WalkState, scheme: Scheme) -> WalkState:
    """``state`` with its drift shaped for ``scheme``: a vector (zeros where the state had
    none) when the scheme compensates drift, a 0-d zero otherwise (a state resumed under
    another scheme than the one that saved it)."""
    xp = namespace(state.theta)
    wanted = scheme.drift_gain > 0
    if wanted == (state.drift.ndim == 1 and state.drift.shape == state.theta.shape):
        return state
    drift = xp.zeros_like(state.theta) if wanted else xp.zeros_like(state.loss)
    return state._replace(drift=drift)


def cos_between(xp: Any, pred: Array, pred_norm: Array, dir_p: Array) -> Array:
    """The cosine between ``pred`` (of norm ``pred_norm``) and the unit (or zero) vector
    ``dir_p``: a state's ``cos_p``."""
    return dot(xp, pred, dir_p) * inverse(xp, pred_norm)


def _larger_finite(xp: Any, old: Array, new: Array) -> Array:
    """``max(old, new)`` for 0-d arrays, keeping ``old`` where ``new`` is NaN or inf (a walk
    that stops on a non-finite loss reports the largest deviation of its finite points)."""
    return xp.where(xp.isfinite(new) & (new > old), new, old)


StepFunction = Callable[..., WalkState]
"""``step(state, on=None) -> state``: see :func:`make_step`."""


def make_step(problem: Problem, direction: Direction, scheme: Scheme) -> StepFunction:
    """Build the pure step function for a problem, a direction and a scheme.

    At a point with (L − L0)² ≤ τ the step is a predictor: θ + η_p·d̂ with d the
    rejection of the direction of interest from ∇L and η_p from the scheme's step
    rule; otherwise it is the scheme's corrector. Either way the new point is
    evaluated once.

    The returned ``step(state, on=None)`` forms both candidates and selects with ``where``
    (traceable: compiled loops call it so). A caller that already knows on the host whether
    ``state`` is on the level set (the eager driver's look) passes ``on=True`` or
    ``on=False``: the step then forms only the branch it takes, and returns the same values
    bit for bit with fewer operations (a predictor step skips the corrector's vector passes,
    and no vector ``where`` is formed).

    Args:
        problem, direction, scheme: the walk's pieces.

    Returns:
        The step function ``step(state: WalkState, on: bool | None = None) -> WalkState``.
    """
    evaluate = make_evaluate(problem, direction)
    rule = scheme.predictor_step
    corrector = scheme.corrector
    floor = rule.eta_min * (1.0 + 1e-6)

    compensate = scheme.drift_gain > 0
    gain, cap = scheme.drift_gain, scheme.drift_cap

    # Each branch returns the fields it changes, the same keys in both: the displacement
    # "delta", then WalkState fields. Vector work is kept to few passes over θ: scalars are
    # formed first, then each vector is touched once (the step runs at the floor of one
    # gradient on big nets).

    def predictor_fields(xp, s: WalkState) -> dict[str, Array]:
        eta_p = rule.update(s.eta_p, s.cos_p, s.has_p)
        # The new unit predictor direction is formed first and the step reads it, not pred:
        # then nothing reads the old pred once θ moves, and a compiled loop can overwrite it
        # in place (XLA:CPU copied pred and dir_p every step when the step read pred).
        dir_p = inverse(xp, s.pred_norm) * s.pred
        delta, drift, eta_sq_sum = eta_p * dir_p, s.drift, s.eta_sq_sum
        if compensate:
            # The predictor's excursion off the level set comes back step after step (the
            # level set curves the same way for a while), so each predictor step adds
            # η_p²·drift, the correction learnt so far per unit η_p² (see
            # corrector_fields), at most cap·η_p long: a stale drift must not swamp the
            # tangent step.
            eta_sq = eta_p * eta_p
            drift_norm = xp.sqrt(dot(xp, s.drift, s.drift))
            delta = delta + xp.minimum(eta_sq, safe_divide(xp, cap * eta_p, drift_norm)) * drift
            after_corrector = s.n_consec_corr > 0
            eta_sq_sum = xp.where(after_corrector, xp.zeros_like(eta_sq), s.eta_sq_sum) + eta_sq
        # Reversals at the step floor are counted, never reset: near an optimum a walk at
        # its floor can settle into a two-step cycle (reverse, then one step on) that
        # would reset a count of consecutive reversals forever.
        stalled = s.has_p & (s.cos_p < 0) & (eta_p <= floor)
        return {
            "delta": delta,
            "eta_p": eta_p,
            "eta_c": s.eta_c,
            "dir_p": dir_p,
            "dir_c": s.dir_c,
            "n_stall": s.n_stall + xp.astype(stalled, s.n_stall.dtype),
            "max_step": xp.maximum(s.max_step, eta_p),
            "drift": drift,
            "eta_sq_sum": eta_sq_sum,
        }

    def corrector_fields(xp, s: WalkState) -> dict[str, Array]:
        corr = corrector(s.loss - s.level, s.grad, s.grad_sq, s.dir_p, s.eta_c, s.dir_c, s.has_c)
        drift = s.drift
        if compensate:
            # The corrector steps that undo the predictor's excursion point the same way
            # series after series, so each corrector step δ teaches the drift gain·δ/Ση_p²
            # over the predictor steps it is undoing (an integral controller: gain < 1
            # keeps it from ringing).
            drift = s.drift + safe_divide(xp, gain, s.eta_sq_sum) * corr.delta
        eta_p = s.eta_p
        if scheme.reset_after_corrector:
            eta_p = xp.full_like(s.eta_p, rule.eta_min)
        return {
            "delta": corr.delta,
            "eta_p": eta_p,
            "eta_c": corr.eta,
            "dir_p": s.dir_p,
            "dir_c": corr.direction,
            "n_stall": s.n_stall,
            "max_step": s.max_step,
            "drift": drift,
            "eta_sq_sum": s.eta_sq_sum,
        }

    def step(s: WalkState, on: bool | None = None) -> WalkState:
        xp = namespace(s.theta)
        if on is None:
            dev = s.loss - s.level
            on_arr = dev * dev <= s.tau
            p, c = predictor_fields(xp, s), corrector_fields(xp, s)
            # Fields a branch leaves as they were (Newton's dir_c) need no select.
            f = {k: p[k] if p[k] is c[k] else xp.where(on_arr, p[k], c[k]) for k in p}
            f["has_p"], f["has_c"] = s.has_p | on_arr, s.has_c | ~on_arr
            is_p = xp.astype(on_arr, s.n_predictor.dtype)
        else:
            f = predictor_fields(xp, s) if on else corrector_fields(xp, s)
            true = xp.ones_like(s.has_p)
            f["has_p"], f["has_c"] = (true, s.has_c) if on else (s.has_p, true)
            is_p = 1 if on else 0

        theta = s.theta + f.pop("delta")
        n_predictor = s.n_predictor + is_p
        point = evaluate(theta, n_predictor)
        return WalkState(
            theta=theta,
            **point._asdict(),
            level=s.level,
            tau=s.tau,
            **f,
            n_predictor=n_predictor,
            n_corrector=s.n_corrector + (1 - is_p),
            n_evals=s.n_evals + 1,
            n_consec_corr=(s.n_consec_corr + 1) * (1 - is_p),
            cos_p=cos_between(xp, point.pred, point.pred_norm, f["dir_p"]),
            max_dev=_larger_finite(xp, s.max_dev, xp.abs(point.loss - s.level)),
        )

    return step
