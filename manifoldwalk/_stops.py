"""The walk's stop rules, written once for the host and for a compiled loop.

Every stop rule is a scalar test on a handful of values of the current state (its *look*):
whether it is on the level set, finite, ‖∇L‖, the stationarity, the counters. :class:`StopRules`
lists the tests in priority order as conditions built from comparisons and ``&`` only, so the
same list is evaluated on host floats (the eager driver: :meth:`StopRules.reason`) and on 0-d
device arrays inside a compiled loop (:meth:`StopRules.code`, a branch-free ``where`` chain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from manifoldwalk._array import Array, namespace, pack_scalars, to_host
from manifoldwalk.step import WalkState


@dataclass(frozen=True)
class StopRule:
    """One stop rule: a name, its meaning, and a scalar test on a state's look.

    Attributes:
        name: the stop reason it gives.
        meaning: the reason in words (:data:`STOP_REASONS`).
        condition: ``(look, rules) -> bool or 0-d bool array``, built from comparisons and
            ``&`` only, so that it runs on host floats and on device arrays alike.
        applies: ``rules -> bool``: whether the rule is checked in a walk with these rules.
        details: ``(final record, look, rules) -> str``: figures appended to the message.
    """

    name: str
    meaning: str
    condition: Callable[[Mapping[str, Any], Any], Any]
    applies: Callable[[Any], bool] = lambda rules: True
    details: Callable[[Mapping[str, float], Mapping[str, Any], Any], str] = lambda final, v, rules: (
        ""
    )


RULES = (
    StopRule(
        "non_finite",
        "the walk met NaN or inf (in the loss, its gradient, ∇R or the direction)",
        lambda v, r: v["nonfinite"],
    ),
    StopRule(
        "singular",
        "‖∇L‖ vanished: the level set is singular here (an exact minimum?)",
        lambda v, r: v["on"] & (v["gnorm"] <= r.singular_tol),
        details=lambda final, v, r: f" (‖∇L‖ = {v['gnorm']:.3g})",
    ),
    StopRule(
        "reached_target",
        "reached the target point",
        lambda v, r: v["on"] & v["reached"],
        applies=lambda r: r.has_reached,
    ),
    StopRule(
        "stationary",
        "stationary: the KKT residual ‖∇R + λ∇L‖/‖∇R‖ fell below kkt_tol",
        lambda v, r: v["on"] & (v["stat"] <= r.kkt_tol),
        applies=lambda r: r.optimises,
        details=lambda final, v, r: f" ({final['kkt']:.3g} ≤ {r.kkt_tol:g})",
    ),
    StopRule(
        "stalled",
        "stalled at the step floor: η_p is at its minimum and the predictor keeps reversing",
        lambda v, r: v["on"] & (v["n_stall"] >= r.stall_patience),
        applies=lambda r: r.optimises,
    ),
    # A compiled loop passes the budgets in the look (device values of its carry, so that a
    # walk with another budget reuses the compiled chunk); the host uses the rules' own.
    StopRule(
        "max_steps",
        "the predictor-step budget (max_steps) is spent",
        lambda v, r: v["on"] & (v["n_pred"] >= v.get("max_steps", r.max_steps)),
    ),
    StopRule(
        "max_total_steps",
        "the total-step budget (max_total_steps) is spent",
        lambda v, r: v["n_pred"] + v["n_corr"] >= v.get("max_total_steps", r.max_total_steps),
        applies=lambda r: r.max_total_steps is not None,
    ),
    StopRule(
        "corrector_failed",
        "the corrector failed to get back under τ in max_corrector_steps steps",
        lambda v, r: v["n_consec"] >= r.max_corrector_steps,
        details=lambda final, v, r: (
            f" ({int(v['n_consec'])} steps); θ is the last point on the level set"
        ),
    ),
)
"""Every stop rule a state can trigger, highest priority first. Adding a rule is one entry
here (and, where it reads a value the look lacks, one more entry in :meth:`StopRules.look`)."""

STOP_ORDER = tuple(rule.name for rule in RULES)
"""The stop reasons a state can trigger, highest priority first; code ``i + 1`` is entry ``i``.

A ``"callback"`` stop (the host's callable) ranks after ``"singular"``: see
:data:`BEFORE_CALLBACK`.
"""

STOP_REASONS = {rule.name: rule.meaning for rule in RULES} | {
    "callback": "a callback asked to stop",
    "error": (
        "an exception (raised by the loss, a metric or the callback, or an interrupt) ended "
        "the walk"
    ),
}
"""Every stop reason a walk can give, with its meaning. An ``"error"`` result is never
returned: it is attached to the exception that ended the walk, which is re-raised (see
:func:`manifoldwalk.walk`)."""

_BY_NAME = {rule.name: rule for rule in RULES}

BEFORE_CALLBACK = frozenset({"non_finite", "singular"})
"""Stop reasons that win over a callback's request (the callback is not even called)."""

LOOK_KEYS = (
    "on",
    "nonfinite",
    "gnorm",
    "stat",
    "n_stall",
    "n_consec",
    "n_pred",
    "n_corr",
    "reached",
)
"""The values of a state that the stop rules read, in the order :meth:`StopRules.look` gives."""

_FLAGS = ("on", "nonfinite", "reached")


@dataclass(frozen=True)
class StopRules:
    """The walk's stop rules (see :func:`manifoldwalk.walk` for each option's meaning).

    Attributes:
        optimises: whether the direction optimises (stationarity and stall stops apply).
        has_reached: whether the direction has a ``reached(θ)`` test.
        kkt_tol: stationarity tolerance.
        stall_patience: predictor reversals at the step floor before a stall stop.
        max_steps: predictor-step budget.
        max_total_steps: predictor-plus-corrector budget, or None.
        max_corrector_steps: consecutive corrector steps before a failure stop.
        singular_tol: ‖∇L‖ at or below which the level set counts as singular.
    """

    optimises: bool
    has_reached: bool
    kkt_tol: float
    stall_patience: int
    max_steps: int
    max_total_steps: int | None
    max_corrector_steps: int
    singular_tol: float

    def look(self, s: WalkState, direction: Any) -> tuple[Array, ...]:
        """The values of :data:`LOOK_KEYS` at ``s`` as 0-d arrays on θ's device (no host copy).

        Args:
            s: the state.
            direction: the walk's direction (its ``reached`` test is used if it has one).

        Returns:
            A tuple of 0-d arrays in the order of :data:`LOOK_KEYS`.
        """
        xp = namespace(s.theta)
        dev = s.loss - s.level
        # stationarity is ‖pred‖/‖r‖, finite exactly where the direction r is (0 for r = 0):
        # a scalar test that catches a NaN ∇R or direction before θ steps along it
        finite = xp.isfinite(s.loss) & xp.isfinite(s.grad_sq) & xp.isfinite(s.stationarity)
        reached = (
            direction.reached(s.theta) if self.has_reached else xp.zeros_like(s.predictor.started)
        )
        return (
            dev * dev <= s.tau,
            ~finite,
            xp.sqrt(s.grad_sq),
            s.stationarity,
            s.predictor.n_stall,
            s.n_consec_corr,
            s.n_predictor,
            s.n_corrector,
            reached,
        )

    def host_look(self, s: WalkState, direction: Any) -> dict[str, Any]:
        """:meth:`look` copied to the host in one transfer, flags as bools, the rest as floats."""
        return host_values(to_host(*self.look(s, direction)))

    def packed_look(self, s: WalkState, direction: Any) -> Array:
        """:meth:`look` packed into one 1-D array on θ's device (traceable; a compiled step
        returns it and the host reads it with :func:`host_values` of its list)."""
        return pack_scalars(*self.look(s, direction))

    def tests(self, v: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """The stop conditions at a look ``v``, highest priority first.

        Args:
            v: the look, as host values (bools and floats) or as 0-d arrays; a compiled loop
                adds its run-time budgets ``"max_steps"`` and ``"max_total_steps"`` (else
                the rules' own are used).

        Returns:
            ``(reason, condition)`` pairs; a condition is a bool or a 0-d bool array.
        """
        return [(rule.name, rule.condition(v, self)) for rule in RULES if rule.applies(self)]

    def reason(self, v: Mapping[str, Any]) -> str | None:
        """The stop reason at a host look ``v`` (see :meth:`host_look`), or None to go on."""
        for reason, condition in self.tests(v):
            if condition:
                return reason
        return None

    def without_budgets(self) -> StopRules:
        """These rules with the step budgets zeroed: what a compiled chunk closes over (the
        budgets travel in its carry), so rules that differ only in budgets share a chunk."""
        total = None if self.max_total_steps is None else 0
        return dataclasses.replace(self, max_steps=0, max_total_steps=total)

    def code(self, v: Mapping[str, Array]) -> Array:
        """The stop code at a device look: 0 to go on, else 1 + the index in :data:`STOP_ORDER`.

        Branch-free (a ``where`` chain from the lowest priority up), for compiled loops.
        """
        xp = namespace(v["gnorm"])
        code = xp.zeros_like(v["n_pred"])
        for reason, condition in reversed(self.tests(v)):
            code = xp.where(condition, STOP_ORDER.index(reason) + 1, code)
        return code


def host_values(values: list[float]) -> dict[str, Any]:
    """A look copied to the host (floats in :data:`LOOK_KEYS` order) as a dict, flags as bools."""
    v = dict(zip(LOOK_KEYS, values, strict=True))
    for k in _FLAGS:
        v[k] = bool(v[k])
    return v


def reason_of(code: int) -> str | None:
    """The stop reason of a stop code (see :meth:`StopRules.code`), or None for 0."""
    return STOP_ORDER[code - 1] if code else None


def details(reason: str, final: Mapping[str, float], v: Mapping[str, Any], rules: StopRules) -> str:
    """The figures behind a stop, appended to its meaning in a result's message."""
    rule = _BY_NAME.get(reason)
    return "" if rule is None else rule.details(final, v, rules)
