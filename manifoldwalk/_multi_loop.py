"""The eager loop of a k-constraint walk: predictor and corrector steps, stop rules, records,
and the result.

The loop mirrors the single-constraint eager driver (:mod:`manifoldwalk._eager`): at each
point it decides whether to stop (the same reasons, in the same order), records where due, and
otherwise takes one step, a predictor step along the tangent part of the direction of interest
where every constraint is within its bound, else a Gauss–Newton corrector step; each step costs
one ``losses_and_jacobian`` evaluation at the point it moves to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from manifoldwalk._array import Array, namespace, to_host, zero_count
from manifoldwalk._multi_point import (
    MultiPoint,
    Tangent,
    corrected,
    describe,
    evaluate,
    moved,
    tangent,
)
from manifoldwalk.directions import Direction, target_test
from manifoldwalk.options import Record
from manifoldwalk.result import STOP_REASONS, WalkResult
from manifoldwalk.step_sizes import StepRule

NO_RECORDS = 2**31 - 1
"""The record interval that ``Record(every=None)`` stands for (only the start and the end)."""

MEANINGS = STOP_REASONS | {
    "singular": "the level set is singular here",
    "stationary": "stationary: the KKT residual ‖∇R + Jᵀλ‖/‖∇R‖ (‖d‖/‖r‖ for another "
    "direction) fell below kkt_tol",
    "corrector_failed": "the corrector failed to bring every constraint within its bound in "
    "max_corrector_steps steps",
}
"""The stop reasons' meanings, where k constraints change the words (the names are
:data:`~manifoldwalk.STOP_REASONS`')."""


@dataclass(frozen=True)
class Rules:
    """The stop rules' settings (see :func:`manifoldwalk.multi.walk_constrained`)."""

    optimises: bool
    kkt_tol: float
    stall_patience: int
    max_steps: int
    max_total_steps: int | None
    max_corrector_steps: int
    singular_tol: float


class State(NamedTuple):
    """The walk at one point.

    Attributes:
        point: the evaluation there.
        tangent: the tangent part of the direction of interest (on-level, regular points only).
        on: every constraint within its bound (and L, J finite).
        singular: the Gram matrix is singular there (see :class:`~manifoldwalk._gram.Gram`).
        n_pred, n_corr, n_evals, n_consec, n_stall: counters (``n_consec``: corrector steps
            since the last predictor step; ``n_stall``: reversals at the step floor).
        eta: the last predictor step size (the rule's initial one before any).
        direction: the tangent direction d of the last predictor step, not normalised (None
            before the first); ``direction_norm`` is ‖d‖.
        max_dev: the largest max_i |L_i − c_i| at any finite point.
        max_on: the largest |L_i − c_i| per constraint at on-level points.
        max_step: the longest predictor step.
    """

    point: MultiPoint
    tangent: Tangent | None
    on: bool
    singular: bool
    n_pred: int
    n_corr: int
    n_evals: int
    n_consec: int
    n_stall: int
    eta: float
    direction: Array | None
    direction_norm: float
    max_dev: float
    max_on: np.ndarray
    max_step: float

    @property
    def good(self) -> bool:
        """Whether the walk may return this point: on the level set, regular, finite."""
        return self.on and not self.singular and self.tangent is not None and self.tangent.finite


CARRIED = State._fields[4:]
"""The fields of :class:`State` a step carries over (counters and step data); the first four
describe the point itself."""


class MultiWalk:
    """A k-constraint walk ready to run (built by :func:`manifoldwalk.multi.walk_constrained`).

    Args:
        problem: the k-constraint problem.
        direction: the direction of interest.
        rule: the predictor's step-size rule; ``reset``: set η_p to its floor after each
            corrector step.
        levels, bounds: c and the bound on each |L_i − c_i| (float64, shape (k,)).
        rules: the stop rules.
        record: what to record.
        options: the JSON-able options for the result.
        weights: the problem's ``loss_weights`` (the history's ``loss`` = Σ_i w_i L_i), or
            None.
    """

    def __init__(
        self,
        problem: Any,
        direction: Direction,
        rule: StepRule,
        reset: bool,
        levels: np.ndarray,
        bounds: np.ndarray,
        rules: Rules,
        record: Record,
        options: dict[str, Any],
        weights: np.ndarray | None = None,
    ) -> None:
        self.problem, self.direction = problem, direction
        self.rule, self.reset, self.floor = rule, reset, rule.eta_min * (1.0 + 1e-6)
        self.levels, self.bounds, self.rules = levels, bounds, rules
        self.every = NO_RECORDS if record.every is None else record.every
        self.trajectory_every = record.trajectory_every
        self.metrics, self.callback = dict(record.metrics), record.callback
        self.options = options
        self.weights = weights
        self.reached = target_test(direction)
        self.zero: Array | None = None  # the direction's step index at 0, on θ's device
        self.rows: list[dict[str, float]] = []
        self.points: list[Array] = []
        self.last_recorded = -1
        self.last_kept = -1

    # --- points and steps -------------------------------------------------------------------

    def look(self, point: MultiPoint, base: dict[str, Any]) -> State:
        """The state at a freshly evaluated point (``base``: its counters and step data)."""
        on = singular = False
        tan = None
        max_dev, max_on = base["max_dev"], base["max_on"]
        if point.finite:
            dev = np.abs(point.host_losses - self.levels)
            max_dev = max(max_dev, float(dev.max()))
            on = bool(np.all(dev * dev <= self.bounds * self.bounds))
            singular = point.gram.is_singular(self.rules.singular_tol)
            if on:
                max_on = np.maximum(max_on, dev)
                if not singular:
                    tan = tangent(
                        self.problem,
                        self.direction,
                        point,
                        self.zero + base["n_pred"],
                        base["direction"],
                        base["direction_norm"],
                    )
        return State(point, tan, on, singular, **{**base, "max_dev": max_dev, "max_on": max_on})

    def start(self, point: MultiPoint, n_evals: int) -> State:
        """The state at the (projected) start."""
        self.zero = zero_count(point.theta)
        k = len(self.levels)
        base = dict(
            n_pred=0, n_corr=0, n_evals=n_evals, n_consec=0, n_stall=0,
            eta=float(self.rule.eta_init), direction=None, direction_norm=0.0, max_dev=0.0,
            max_on=np.zeros(k), max_step=0.0,
        )  # fmt: skip
        return self.look(point, base)

    def advance(self, s: State) -> State:
        """One step from ``s`` (a predictor step where ``s.on``, else a corrector step) and the
        state at the point it moves to."""
        base = {f: getattr(s, f) for f in CARRIED}
        if s.on:
            t = s.tangent
            started = s.direction is not None
            eta = float(self.rule.update(np.float64(s.eta), np.float64(t.cos), np.bool_(started)))
            stalled = started and t.cos < 0 and eta <= self.floor
            # θ + η_p·d/‖d‖ in one pass (a d of 0 steps by 0); d itself is kept for the next
            # cosine, which divides by its norm
            theta = moved(s.point.theta, t.d, eta / t.d_norm if t.d_norm > 0 else 0.0)
            base.update(
                n_pred=s.n_pred + 1, n_consec=0, n_stall=s.n_stall + int(stalled), eta=eta,
                direction=t.d, direction_norm=t.d_norm, max_step=max(s.max_step, eta),
            )  # fmt: skip
        else:
            theta = corrected(s.point, self.levels)
            base.update(n_corr=s.n_corr + 1, n_consec=s.n_consec + 1)
            if self.reset:
                base["eta"] = float(self.rule.eta_min)
        base["n_evals"] = s.n_evals + 1
        return self.look(evaluate(self.problem, theta), base)

    # --- stops -------------------------------------------------------------------------------

    def reason(self, s: State) -> str | None:
        """The stop reason at ``s`` (the single-constraint walk's, in its order), or None."""
        r = self.rules
        if not s.point.finite or (s.on and s.tangent is not None and not s.tangent.finite):
            return "non_finite"
        if s.singular:
            return "singular"
        if s.on and self.reached is not None and bool(to_host(self.reached(s.point.theta))[0]):
            return "reached_target"
        if s.on and r.optimises and s.tangent.stationarity <= r.kkt_tol:
            return "stationary"
        if s.on and r.optimises and s.n_stall >= r.stall_patience:
            return "stalled"
        if s.on and s.n_pred >= r.max_steps:
            return "max_steps"
        if r.max_total_steps is not None and s.n_pred + s.n_corr >= r.max_total_steps:
            return "max_total_steps"
        if s.n_consec >= r.max_corrector_steps:
            return "corrector_failed"
        return None

    def message(self, reason: str, s: State, final: dict[str, float]) -> str:
        """The stop reason in words, with the figures behind it."""
        r = self.rules
        text = MEANINGS[reason]
        if reason == "non_finite":
            return f"the walk met NaN or inf in {self._what_is_not_finite(s)}; θ is the last point on the level set"
        if reason == "singular":
            return (
                f"{text}: {s.point.gram.describe_singular(r.singular_tol)}; θ is the last "
                "regular point on the level set"
            )
        if reason == "stationary":
            return f"{text} ({s.tangent.stationarity:.3g} ≤ {r.kkt_tol:g})"
        if reason == "corrector_failed":
            worst = int(np.argmax(np.abs(s.point.host_losses - self.levels) / self.bounds))
            dev = abs(s.point.host_losses[worst] - self.levels[worst])
            return (
                f"{text} ({s.n_consec} steps; |L_{worst} − c_{worst}| = {dev:.3g} against its "
                f"bound {self.bounds[worst]:.3g}); θ is the last point on the level set"
            )
        return text

    def _what_is_not_finite(self, s: State) -> str:
        """Which of L, J, ∇R or the direction held NaN or inf at ``s``."""
        bad = [i for i, v in enumerate(s.point.host_losses) if not math.isfinite(v)]
        if bad:
            return f"the losses (L_{bad[0]} = {s.point.host_losses[bad[0]]})"
        if not s.point.finite:
            return "the Jacobian J"
        xp = namespace(s.point.theta)
        (ok,) = to_host(xp.all(xp.isfinite(self.problem.reg_grad(s.point.theta))))
        if not ok:
            return "the regulariser's gradient ∇R"
        return f"the direction of interest ({type(self.direction).__name__})"

    # --- records -----------------------------------------------------------------------------

    def record(self, s: State) -> dict[str, float]:
        """Append the history row of an on-level state (metrics included) and return it."""
        counts = {
            "step": s.n_pred + s.n_corr,
            "n_predictor": s.n_pred,
            "n_corrector": s.n_corr,
            "n_grad_evals": s.n_evals,
        }
        row = describe(
            self.problem,
            s.point,
            self.levels,
            counts,
            s.eta,
            s.tangent.d,
            s.direction,
            self.weights,
        )
        for name, fn in self.metrics.items():
            row[name] = float(fn(s.point.theta))
        self.rows.append(row)
        self.last_recorded = s.n_pred
        return row

    def history(self) -> dict[str, np.ndarray]:
        """The recorded rows as columns."""
        names = list(self.rows[0]) if self.rows else []
        return {k: np.array([row[k] for row in self.rows]) for k in names}

    def trajectory(self, like: Array) -> Array | None:
        """The kept on-level points as rows of a 2-D array (None when none are kept)."""
        if not self.trajectory_every:
            return None
        xp = namespace(like)
        if not self.points:
            return xp.reshape(xp.zeros_like(like), (0, like.shape[0]))
        return xp.stack(self.points)

    # --- the loop ----------------------------------------------------------------------------

    def run(self, state: State) -> WalkResult:
        """Step from ``state`` to a stop and return the result."""
        good = state
        while True:
            reason = self.reason(state)
            if state.good:
                good = state
                n = state.n_pred
                row = None
                if n % self.every == 0 and n != self.last_recorded:
                    row = self.record(state)
                every = self.trajectory_every
                if every and n % every == 0 and n != self.last_kept:
                    self.points.append(state.point.theta)
                    self.last_kept = n
                # a good state's reason ranks below a callback's (non_finite and singular
                # states are never good): as in the single-constraint walk
                if row is not None and self.callback is not None and self.callback(row):
                    reason = "callback"
            if reason:
                return self.result(good, state, reason)
            state = self.advance(state)

    def result(self, good: State, last: State, reason: str) -> WalkResult:
        """The result: θ is ``good`` (the last regular on-level point), counts from ``last``."""
        if self.last_recorded != good.n_pred or not self.rows:
            self.record(good)
        final = self.rows[-1]
        k = len(self.levels)
        rel = [
            float(good_max / abs(c)) if c else (0.0 if good_max == 0 else float("inf"))
            for good_max, c in zip(last.max_on, self.levels, strict=True)
        ]
        return WalkResult(
            theta=good.point.theta,
            level=[float(c) for c in self.levels],
            loss=[float(x) for x in good.point.host_losses],
            reg=final["reg"],
            angle=final["angle"],
            lam=[final[f"lam_{i}"] for i in range(k)],
            kkt=final["kkt"],
            n_predictor=last.n_pred,
            n_corrector=last.n_corr,
            n_grad_evals=last.n_evals,
            max_deviation=float(last.max_dev),
            max_predictor_step=float(last.max_step),
            tolerance=[float(b) for b in self.bounds],
            max_relative_deviation=max(rel),
            stop_reason=reason,
            message=self.message(reason, last, final),
            history=self.history(),
            trajectory=self.trajectory(good.point.theta),
            state=None,
            options=self.options,
        )
