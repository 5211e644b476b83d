"""Predictors: the on-level step along the level set, each owning its state.

A predictor is a small piece in the manner of optax's transformations: :meth:`Predictor.init`
returns its state (a NamedTuple of arrays), and pure functions return the new state:

- :meth:`~Predictor.step` at an on-level point: the displacement and the new state;
- :meth:`~Predictor.corrected` after a corrector step moved θ (a predictor may learn from it);
- :meth:`~Predictor.observe` once the new point is evaluated (values best formed while the
  point's vectors are fresh), told how far off the level set it is.

Every predictor state exposes the fields the rest of the walk reads: ``eta`` (the last step
size), ``direction`` (the last unit direction, zero before the first), ``started`` (whether
there was one), ``cos`` (the cosine between the point's tangent direction and ``direction``)
and ``n_stall`` (reversals at the step floor). A wrapper's state forwards them from the state
it wraps (see :class:`DriftState`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

from manifoldwalk._array import (
    Array,
    dot,
    inverse,
    namespace,
    safe_divide,
    scalar_like,
    zero_count,
)
from manifoldwalk.step_sizes import StepRule

__all__ = [
    "DriftCompensated",
    "DriftState",
    "Predictor",
    "TangentPredictor",
    "TangentState",
]


class Predictor(Protocol):
    """What the walk needs from a predictor (see the module docstring)."""

    step_rule: StepRule
    """The step-size rule of the tangent step (scheme overrides such as ``eta_min`` edit it)."""

    def init(self, theta: Array) -> Any:
        """The state before the first step, on θ's device and in its dtype."""
        ...

    def step(self, state: Any, point: Any) -> tuple[Array, Any]:
        """The displacement of a predictor step from ``point`` and the new state.

        ``point`` has the fields of :class:`~manifoldwalk.step.PointData` (a
        :class:`~manifoldwalk.step.WalkState` is one)."""
        ...

    def corrected(self, state: Any, delta: Array) -> Any:
        """The state after a corrector step moved θ by ``delta``."""
        ...

    def observe(self, state: Any, point: Any, excess: Array) -> Any:
        """The state once the point the step moved to is evaluated; ``excess`` is its
        |L − L0| in units of the level tolerance (above 1: off the level set)."""
        ...

    def with_step_rule(self, rule: StepRule) -> Predictor:
        """This predictor with another step-size rule."""
        ...


class TangentState(NamedTuple):
    """The state of a :class:`TangentPredictor`.

    Attributes:
        eta: the step size η_p of the last predictor step (the initial one before any).
        direction: the last unit predictor direction d̂_p (zeros before the first).
        started: whether a predictor step was taken.
        cos: the cosine between the current point's tangent direction and ``direction``
            (0 before the first step; formed when the point is evaluated).
        n_stall: predictor reversals at the step floor so far.
        excess: how far the last predictor step landed off the level set, in units of the
            level tolerance (0 before the first).
        fresh: whether the last step was a predictor step (its landing is still to observe).
    """

    eta: Array
    direction: Array
    started: Array
    cos: Array
    n_stall: Array
    excess: Array
    fresh: Array


@dataclass(frozen=True)
class TangentPredictor:
    """The paper's predictor: θ ← θ + η_p·d̂ with d the rejection of the direction of interest
    from ∇L, η_p from ``step_rule`` (told how far d̂ turned since the last predictor step).

    Attributes:
        step_rule: the predictor's step-size rule.
        reset_after_corrector: set η_p to the rule's floor after every corrector step (the
            paper's and the authors' scheme).
        max_excursion: None, or how far (in units of the level tolerance) a predictor step may
            land off the level set: a step that landed further makes the next one shorter, by
            the square root of the ratio (the excursion grows as η_p²), aiming at the bound.

    Raises:
        ValueError: ``max_excursion`` not positive.
    """

    step_rule: StepRule
    reset_after_corrector: bool = False
    max_excursion: float | None = None

    def __post_init__(self) -> None:
        if self.max_excursion is not None and not self.max_excursion > 0:
            raise ValueError(
                f"TangentPredictor: max_excursion must be None or positive, got "
                f"{self.max_excursion!r}."
            )

    @property
    def floor(self) -> float:
        """η_p at or below which a reversal counts as a stall (the rule's floor, within
        rounding)."""
        return self.step_rule.eta_min * (1.0 + 1e-6)

    def init(self, theta: Array) -> TangentState:
        """See :class:`Predictor`."""
        xp = namespace(theta)
        zero = scalar_like(0.0, theta)
        return TangentState(
            eta=scalar_like(self.step_rule.eta_init, theta),
            direction=xp.zeros_like(theta),
            started=scalar_like(False, theta, dtype=xp.bool),
            cos=zero,
            n_stall=zero_count(theta),
            excess=zero,
            fresh=scalar_like(False, theta, dtype=xp.bool),
        )

    def step(self, state: TangentState, point: Any) -> tuple[Array, TangentState]:
        """See :class:`Predictor`."""
        xp = namespace(point.pred)
        eta = self.step_rule.update(state.eta, state.cos, state.started)
        if self.max_excursion is not None:
            # the last landing scales as η²: the η that would have landed at the bound
            aim = safe_divide(xp, self.max_excursion, state.excess)
            allowed = xp.where(aim > 0, state.eta * xp.sqrt(aim), eta)
            floor = xp.full_like(eta, self.step_rule.eta_min)
            eta = xp.maximum(xp.minimum(eta, allowed), floor)
        # The new unit direction is formed first and the step reads it, not pred: then nothing
        # reads the old pred once θ moves, and a compiled loop can overwrite it in place.
        direction = inverse(xp, point.pred_norm) * point.pred
        # Reversals at the floor are counted, never reset: near an optimum a walk at its
        # floor can settle into a two-step cycle that would reset a consecutive count forever.
        stalled = state.started & (state.cos < 0) & (eta <= self.floor)
        new = TangentState(
            eta=eta,
            direction=direction,
            started=xp.ones_like(state.started),
            cos=state.cos,
            n_stall=state.n_stall + xp.astype(stalled, state.n_stall.dtype),
            excess=state.excess,
            fresh=xp.ones_like(state.fresh),
        )
        return eta * direction, new

    def corrected(self, state: TangentState, delta: Array) -> TangentState:
        """See :class:`Predictor`: η_p drops to its floor where the scheme resets it."""
        xp = namespace(state.eta)
        state = state._replace(fresh=xp.zeros_like(state.fresh))
        if not self.reset_after_corrector:
            return state
        return state._replace(eta=xp.full_like(state.eta, self.step_rule.eta_min))

    def observe(self, state: TangentState, point: Any, excess: Array) -> TangentState:
        """See :class:`Predictor`: the cosine between the new point's tangent direction and
        the last one, formed while ``pred`` is fresh, and where a predictor step just landed,
        how far off the level set."""
        xp = namespace(point.pred)
        cos = dot(xp, point.pred, state.direction) * inverse(xp, point.pred_norm)
        if self.max_excursion is None:
            return state._replace(cos=cos)
        landed = xp.where(state.fresh, excess, state.excess)
        return state._replace(cos=cos, excess=landed, fresh=xp.zeros_like(state.fresh))

    def with_step_rule(self, rule: StepRule) -> TangentPredictor:
        """See :class:`Predictor`."""
        return replace(self, step_rule=rule)


def wrapped_tangent_fields() -> tuple[property, ...]:
    """Properties ``eta``, ``direction``, ``started``, ``cos`` and ``n_stall`` that read a
    wrapping state's ``inner`` :class:`TangentState` (NamedTuples cannot share a mixin).

    Returns:
        The five properties, in that order.
    """
    names = ("eta", "direction", "started", "cos", "n_stall")
    return tuple(
        property(lambda self, n=n: getattr(self.inner, n), doc=f"The wrapped state's ``{n}``.")
        for n in names
    )


class DriftState(NamedTuple):
    """The state of a :class:`DriftCompensated` predictor.

    Attributes:
        inner: the wrapped predictor's state (its fields are readable here too).
        drift: the learnt displacement per unit η_p² added to every predictor step.
        eta_sq_sum: Ση_p² over the predictor steps since the last corrector step.
        restart: whether the last step was a corrector step (the next predictor step starts
            a new sum).
    """

    inner: Any
    drift: Array
    eta_sq_sum: Array
    restart: Array

    eta, direction, started, cos, n_stall = wrapped_tangent_fields()


@dataclass(frozen=True)
class DriftCompensated:
    """A predictor that also makes the correction the corrector keeps having to make.

    The predictor's excursion off the level set comes back step after step (the level set
    curves the same way for a while), so each predictor step adds η_p²·w, at most
    ``cap``·η_p long (a stale w must not swamp the tangent step), and each corrector step δ
    teaches w ← w + ``gain``·δ/Ση_p² over the predictor steps it undoes: an integral
    controller, and ``gain`` < 1 keeps it from ringing.

    Attributes:
        inner: the wrapped predictor (a :class:`TangentPredictor`).
        gain: in (0, 1]; 0.5 is measured best (docs/schemes.md).
        cap: the added η_p²·w is at most ``cap``·η_p long (> 0).

    Raises:
        ValueError: ``gain`` outside (0, 1] or ``cap`` not positive.
    """

    inner: Predictor
    gain: float = 0.5
    cap: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.gain <= 1.0:
            raise ValueError(
                f"DriftCompensated: gain must lie in (0, 1], got {self.gain}; leave the "
                "predictor unwrapped to walk without drift compensation."
            )
        if not self.cap > 0.0:
            raise ValueError(f"DriftCompensated: cap must be > 0, got {self.cap}.")

    @property
    def step_rule(self) -> StepRule:
        """The wrapped predictor's step-size rule."""
        return self.inner.step_rule

    def init(self, theta: Array) -> DriftState:
        """See :class:`Predictor`."""
        xp = namespace(theta)
        zero = scalar_like(0.0, theta)
        restart = scalar_like(False, theta, dtype=xp.bool)
        return DriftState(self.inner.init(theta), xp.zeros_like(theta), zero, restart)

    def step(self, state: DriftState, point: Any) -> tuple[Array, DriftState]:
        """See :class:`Predictor`."""
        delta, inner = self.inner.step(state.inner, point)
        xp = namespace(delta)
        eta = inner.eta
        eta_sq = eta * eta
        drift_norm = xp.sqrt(dot(xp, state.drift, state.drift))
        delta = (
            delta + xp.minimum(eta_sq, safe_divide(xp, self.cap * eta, drift_norm)) * state.drift
        )
        restarted = xp.where(state.restart, xp.zeros_like(eta_sq), state.eta_sq_sum)
        return delta, DriftState(
            inner, state.drift, restarted + eta_sq, xp.zeros_like(state.restart)
        )

    def corrected(self, state: DriftState, delta: Array) -> DriftState:
        """See :class:`Predictor`: the corrector's step teaches the drift."""
        xp = namespace(delta)
        drift = state.drift + safe_divide(xp, self.gain, state.eta_sq_sum) * delta
        inner = self.inner.corrected(state.inner, delta)
        return DriftState(inner, drift, state.eta_sq_sum, xp.ones_like(state.restart))

    def observe(self, state: DriftState, point: Any, excess: Array) -> DriftState:
        """See :class:`Predictor`."""
        return state._replace(inner=self.inner.observe(state.inner, point, excess))

    def with_step_rule(self, rule: StepRule) -> DriftCompensated:
        """See :class:`Predictor`."""
        return replace(self, inner=self.inner.with_step_rule(rule))
