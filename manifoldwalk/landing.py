"""A predictor that lands on the level set: loss-only probes before the gradient is taken.

A tangent step of length η leaves a curved level set by about ½κη² (κ the normal curvature
along the step); the library's schemes take long steps and let the Newton corrector bring
them back, so their excursions off the level set reach thousands of tolerances on trained
nets. :class:`LandingPredictor` wraps a predictor (a
:class:`~manifoldwalk.predictors.TangentPredictor`, or one wrapped in
:class:`~manifoldwalk.predictors.DriftCompensated`) and, before the gradient at the new point
is taken, searches the line through the predicted point along the start's Newton direction
−∇L/‖∇L‖² for the level set with a few loss-only evaluations (forward passes, no gradient):

1. the first probe is the correction the last landing needed, scaled by η² (free second-order
   prediction: exact where the curvature is constant);
2. the second is a Newton step from it with the line's linear slope (−1 in these units);
3. every further one a secant step through the last two.

The probe nearest the level set is taken if it lies within ``cap`` tolerances of it; else the
step is refused (the walk stays where it is and spends that step's gradient evaluation on the
same point) and the next one is shorter. So every point where the walk takes a gradient lies
within ``cap`` tolerances of the level set, whatever the curvature: a hard bound, paid for in
refusals and shorter steps where the level set curves sharply. The secant's slope feeds the
next step's length: where the loss along the line is far from linear (a root about to vanish),
η may grow less, which keeps refusals rare.

All of it is array operations (a fixed number of probes, ``where`` selections), so the piece
runs eagerly, under ``jax.jit`` and in the compiled drivers; the walk binds the problem's loss
to it (:meth:`LandingPredictor.bind_loss`) when it builds its step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from manifoldwalk._array import Array, inverse, namespace, safe_divide, scalar_like, zero_count
from manifoldwalk.predictors import Predictor, wrapped_tangent_fields
from manifoldwalk.step_sizes import StepRule

__all__ = ["LANDING_BOUND", "LandingPredictor", "LandingState"]

LANDING_BOUND = 8.0
"""The bound (in level tolerances) that ``get_scheme(name, landing=LANDING_BOUND)`` holds."""


class LandingState(NamedTuple):
    """The state of a :class:`LandingPredictor`.

    Attributes:
        inner: the wrapped predictor's state (its ``eta``, ``direction``, ``started``, ``cos``
            and ``n_stall`` are readable here too).
        curv: the last landing's correction along −∇L/‖∇L‖² per unit η² (in loss units: the
            line's first probe is ``curv``·η²).
        n_loss: loss-only evaluations so far.
        n_refused: predictor steps refused so far (no probe within the bound).
        probe_dev: the largest |L − L0| at a probe (points the walk tried, never moved to).
    """

    inner: Any
    curv: Array
    n_loss: Array
    n_refused: Array
    probe_dev: Array

    eta, direction, started, cos, n_stall = wrapped_tangent_fields()


@dataclass(frozen=True)
class LandingPredictor:
    """A predictor whose steps land within ``cap`` tolerances of the level set (see the module
    docstring).

    Attributes:
        inner: the wrapped predictor: a :class:`~manifoldwalk.predictors.TangentPredictor`,
            or one wrapped (e.g. in :class:`~manifoldwalk.predictors.DriftCompensated`). Its
            tangent predictor's ``max_excursion`` is set to ``cap``: that is how a refusal and
            the slope shorten the next step.
        cap: the bound, in level tolerances, on |L − L0| where the walk takes a gradient
            after a predictor step (> 0).
        probes: loss-only evaluations per predictor step (≥ 2).
        shrink: a refused step's η is multiplied by at most this before the next try, in
            (0, 1).
        slope_target: where the secant's slope along the line is below this in magnitude
            (1 where the loss is linear along it), η may grow by at most |slope|/target
            (between ¼ and 4×) at the next step, in (0, 1].
        loss: the loss θ ↦ L(θ) (a 0-d array of θ's dtype); None until the walk binds it.

    Raises:
        ValueError: a parameter out of range, or an ``inner`` without a tangent predictor.
    """

    inner: Predictor
    cap: float = LANDING_BOUND
    probes: int = 3
    shrink: float = 0.5
    slope_target: float = 0.7
    loss: Callable[[Array], Array] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.cap, int | float) and math.isfinite(self.cap) and self.cap > 0):
            raise ValueError(f"LandingPredictor: cap must be a positive number, got {self.cap!r}.")
        if not (isinstance(self.probes, int) and self.probes >= 2):
            raise ValueError(
                f"LandingPredictor: probes must be an integer ≥ 2 (a probe and a Newton step), "
                f"got {self.probes!r}."
            )
        if not 0.0 < self.shrink < 1.0:
            raise ValueError(f"LandingPredictor: shrink must lie in (0, 1), got {self.shrink!r}.")
        if not 0.0 < self.slope_target <= 1.0:
            raise ValueError(
                f"LandingPredictor: slope_target must lie in (0, 1], got {self.slope_target!r}."
            )
        object.__setattr__(self, "inner", _with_bound(self.inner, float(self.cap)))

    @property
    def step_rule(self) -> StepRule:
        """The wrapped predictor's step-size rule."""
        return self.inner.step_rule

    def bind_loss(self, loss: Callable[[Array], Array]) -> LandingPredictor:
        """This predictor probing ``loss`` (the walk calls it when it builds its step)."""
        return replace(self, loss=loss)

    def init(self, theta: Array) -> LandingState:
        """See :class:`~manifoldwalk.predictors.Predictor`."""
        zero = scalar_like(0.0, theta)
        return LandingState(
            self.inner.init(theta), zero, zero_count(theta), zero_count(theta), zero
        )

    def step(self, state: LandingState, point: Any) -> tuple[Array, LandingState]:
        """See :class:`~manifoldwalk.predictors.Predictor`; ``point`` must also carry
        ``theta``, ``level`` and ``tau`` (a :class:`~manifoldwalk.step.WalkState` does).

        Raises:
            RuntimeError: no loss was bound (the walk binds it; call :meth:`bind_loss` to
                step by hand).
        """
        if self.loss is None:
            raise RuntimeError(
                "LandingPredictor.step: no loss bound; the walk binds the problem's loss "
                "(make_step does), or call bind_loss(loss) first."
            )
        delta, inner = self.inner.step(state.inner, point)
        xp = namespace(delta)
        eta = inner.eta
        eta_sq = eta * eta
        normal = -inverse(xp, point.grad_sq) * point.grad  # L(x + t·normal) ≈ L(x) − t
        reach = eta * xp.sqrt(point.grad_sq)  # |t| ≤ this: the correction at most η long
        base = point.theta + delta

        def probe(t: Array) -> Array:
            return self.loss(base + t * normal) - point.level

        def clip(t: Array) -> Array:
            return xp.maximum(xp.minimum(t, reach), -reach)

        t_a = clip(state.curv * eta_sq)
        f_a = probe(t_a)
        t_b = clip(t_a + f_a)  # Newton with the linear slope −1
        f_b = probe(t_b)
        nearer = xp.abs(f_b) < xp.abs(f_a)
        best_t, best_f = xp.where(nearer, t_b, t_a), xp.where(nearer, f_b, f_a)
        worst = xp.maximum(xp.abs(f_a), xp.abs(f_b))
        slope = safe_divide(xp, f_b - f_a, t_b - t_a)
        # The first two probes measure how far from linear the loss is along the line, where
        # the first missed by more than a tolerance (else their difference is rounding).
        informative = xp.abs(f_a) > xp.sqrt(point.tau)
        growth = xp.where(informative, xp.abs(slope) / self.slope_target, 4.0)
        for _ in range(self.probes - 2):
            # a secant step where the slope points to a root, else Newton with slope −1
            down = xp.where(slope < 0, slope, -xp.ones_like(slope))
            t_c = clip(t_b - f_b / down)
            f_c = probe(t_c)
            nearer = xp.abs(f_c) < xp.abs(best_f)
            best_t, best_f = xp.where(nearer, t_c, best_t), xp.where(nearer, f_c, best_f)
            worst = xp.maximum(worst, xp.abs(f_c))
            slope = safe_divide(xp, f_c - f_b, t_c - t_b)
            t_a, f_a, t_b, f_b = t_b, f_b, t_c, f_c
        excess = xp.abs(best_f) * inverse(xp, xp.sqrt(point.tau))
        accept = excess <= self.cap
        # Both outcomes tell the tangent predictor's max_excursion feedback how much shorter
        # (or, at most, longer) the next step is to be: ηₙₑₓₜ ≤ η·√(cap/excess).
        growth = xp.minimum(
            xp.maximum(growth, xp.full_like(growth, 0.25)), xp.full_like(growth, 4.0)
        )
        taken = _with_excess(inner, eta, self.cap / (growth * growth))
        refused = _with_excess(
            state.inner, eta, xp.maximum(excess, xp.full_like(excess, self.cap / self.shrink**2))
        )
        new = LandingState(
            _select(xp, accept, taken, refused),
            xp.where(accept, safe_divide(xp, best_t, eta_sq), state.curv),
            state.n_loss + self.probes,
            state.n_refused + xp.astype(~accept, state.n_refused.dtype),
            xp.maximum(state.probe_dev, worst),
        )
        return xp.where(accept, delta + best_t * normal, xp.zeros_like(delta)), new

    def corrected(self, state: LandingState, delta: Array) -> LandingState:
        """See :class:`~manifoldwalk.predictors.Predictor`."""
        return state._replace(inner=self.inner.corrected(state.inner, delta))

    def observe(self, state: LandingState, point: Any, excess: Array) -> LandingState:
        """See :class:`~manifoldwalk.predictors.Predictor`."""
        return state._replace(inner=self.inner.observe(state.inner, point, excess))

    def with_step_rule(self, rule: StepRule) -> LandingPredictor:
        """See :class:`~manifoldwalk.predictors.Predictor`."""
        return replace(self, inner=self.inner.with_step_rule(rule))


def _with_bound(predictor: Any, bound: float) -> Any:
    """``predictor`` with its tangent predictor's ``max_excursion`` set to ``bound``."""
    inner = getattr(predictor, "inner", None)
    if inner is not None:
        return replace(predictor, inner=_with_bound(inner, bound))
    if not hasattr(predictor, "max_excursion"):
        raise ValueError(
            f"LandingPredictor wraps a TangentPredictor (or one wrapped, e.g. in "
            f"DriftCompensated), not {type(predictor).__name__}."
        )
    return replace(predictor, max_excursion=bound)


def _with_excess(state: Any, eta: Array, excess: Array) -> Any:
    """A predictor state whose tangent state records step ``eta`` as having landed
    ``excess`` tolerances off (read by the next step's ``max_excursion`` feedback)."""
    if "inner" in getattr(state, "_fields", ()):
        return state._replace(inner=_with_excess(state.inner, eta, excess))
    xp = namespace(eta)
    excess = xp.astype(excess, state.excess.dtype)
    return state._replace(eta=eta, excess=excess, fresh=xp.zeros_like(state.fresh))


def _select(xp: Any, cond: Array, a: Any, b: Any) -> Any:
    """``where(cond, a, b)`` leaf by leaf over equal nests of NamedTuples (a leaf that is the
    same object in both is kept as it is)."""
    if isinstance(a, tuple):
        return type(a)(*(_select(xp, cond, x, y) for x, y in zip(a, b, strict=True)))
    return a if a is b else xp.where(cond, a, b)
