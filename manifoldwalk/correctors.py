"""Correctors: steps that bring θ back onto the level set {L = L0}, each owning its state.

A corrector is a small piece in the manner of optax's transformations: :meth:`Corrector.init`
returns its state (a NamedTuple of arrays, empty for a corrector without memory) and
:meth:`Corrector.correct` maps the state and the point (L − L0, ∇L, ‖∇L‖², the last unit
predictor direction) to a displacement and the new state. Both are pure array functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from manifoldwalk._array import Array, dot, inverse, namespace, safe_divide, scalar_like
from manifoldwalk.step_sizes import AngleRule, ConstantStep, StepRule


class Corrector(Protocol):
    """What the engine needs from a corrector."""

    name: str
    """The corrector's name, recorded in a result's options."""

    def init(self, theta: Array) -> Any:
        """The state before the first corrector step, on θ's device and in its dtype."""
        ...

    def correct(self, state: Any, deviation: Array, point: Any, dir_p: Array) -> tuple[Array, Any]:
        """The displacement at a point with ``L − L0 = deviation`` and the new state.

        Args:
            state: the corrector's state.
            deviation: L − L0 at the point (0-d).
            point: the point's data (fields of :class:`~manifoldwalk.step.PointData`:
                ``grad``, ``grad_sq``, ...).
            dir_p: the last unit predictor direction (zeros before the first).
        """
        ...


class GradientState(NamedTuple):
    """The state of a :class:`GradientCorrector`: the step size η_c, the last unit corrector
    direction (zeros before the first) and whether there was one."""

    eta: Array
    direction: Array
    started: Array


class NoState(NamedTuple):
    """The state of a piece without memory (e.g. :class:`NewtonCorrector`)."""


@dataclass(frozen=True)
class GradientCorrector:
    """The paper's corrector: a normalised gradient-descent step on D = (L − L0)².

    d_c = ∇D − proj_{d̂_p} ∇D (so the corrector does not undo the predictor),
    θ ← θ − η_c d_c/‖d_c‖, with η_c from ``step_rule``. The paper adapts η_c with
    the angle rule; the authors' code keeps it constant (``ConstantStep(1e-4)``),
    which works only where η_c·‖∇L‖ is far below √τ.

    With ``cap`` (the default for the paper's scheme) a step is never longer than
    the linearised distance to the level set along its own direction,
    |L − L0|/|∇L·d̂_c|: the paper gives η_c no ceiling, and an η_c grown during one
    series of corrector steps would otherwise overshoot the level set at the start
    of the next by up to η_c·‖∇L‖, far beyond the predictor's own excursion. The
    cap changes neither the direction nor η_c's adaptation; ``cap=False`` is the
    uncapped rule.
    """

    step_rule: StepRule = field(
        default_factory=lambda: AngleRule(eta_init=1e-4, eta_min=1e-12, eta_max=0.1)
    )
    name: str = "paper"
    cap: bool = True

    def init(self, theta: Array) -> GradientState:
        """See :class:`Corrector`."""
        xp = namespace(theta)
        started = scalar_like(False, theta, dtype=xp.bool)
        return GradientState(
            scalar_like(self.step_rule.eta_init, theta), xp.zeros_like(theta), started
        )

    def correct(
        self, state: GradientState, deviation: Array, point: Any, dir_p: Array
    ) -> tuple[Array, GradientState]:
        """See :class:`Corrector`."""
        grad, grad_sq = point.grad, point.grad_sq
        xp = namespace(grad)
        # ∇D = 2(L − L0)∇L, so d̂_c = sign(L − L0)·v/‖v‖ with v the rejection of ∇L from
        # d̂_p: scalars first, so each vector is touched once.
        # d̂_p is a unit vector (or zero before the first predictor step), so the rejection
        # needs no division by ‖d̂_p‖², and ‖v‖² = ‖∇L‖² − (∇L·d̂_p)² = ∇L·v.
        along = dot(xp, grad, dir_p)
        v = grad - along * dir_p
        v_sq = xp.maximum(grad_sq - along * along, xp.zeros_like(grad_sq))
        # where(), not xp.sign: array-api-compat's torch sign synchronises with the host; on
        # arrays of θ's dtype (two Python floats would make a float64 and promote θ).
        one = xp.ones_like(deviation)
        scale = xp.where(deviation < 0, -one, one) * inverse(xp, xp.sqrt(v_sq))  # unit = scale·v
        eta_new = self.step_rule.update(
            state.eta, dot(xp, v, state.direction) * scale, state.started
        )
        length = eta_new
        if self.cap:  # at most |L − L0|/|∇L·unit| = |L − L0|/(‖v‖²·|scale|)
            reach = safe_divide(xp, xp.abs(deviation), v_sq * xp.abs(scale))
            length = xp.where(reach > 0, xp.minimum(eta_new, reach), eta_new)
        new = GradientState(eta_new, scale * v, xp.ones_like(state.started))
        return (-length * scale) * v, new


def authors_corrector(eta: float = 1e-4) -> GradientCorrector:
    """The authors' corrector: the paper's direction with a constant step ``eta``."""
    return GradientCorrector(ConstantStep(eta), name="authors", cap=False)


@dataclass(frozen=True)
class NewtonCorrector:
    """Newton projection onto {L = L0}: δ = −(L − L0)·∇L/‖∇L‖².

    The minimum-norm step that zeroes the linearised deviation; it converges
    quadratically, so one or two steps follow a predictor step. It has no step size.
    """

    name: str = "newton"

    def init(self, theta: Array) -> NoState:
        """See :class:`Corrector`: Newton's step has no memory."""
        return NoState()

    def correct(
        self, state: NoState, deviation: Array, point: Any, dir_p: Array
    ) -> tuple[Array, NoState]:
        """See :class:`Corrector`."""
        xp = namespace(point.grad)
        return -safe_divide(xp, deviation, point.grad_sq) * point.grad, state


CORRECTORS = {"paper": GradientCorrector, "authors": authors_corrector, "newton": NewtonCorrector}
"""Correctors selectable by name."""


def get_corrector(spec: str | Corrector) -> Corrector:
    """Return the corrector named ``spec`` (see :data:`CORRECTORS`), or ``spec`` itself.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if isinstance(spec, str):
        try:
            return CORRECTORS[spec]()
        except KeyError:
            raise ValueError(
                f"unknown corrector {spec!r}; choose one of {', '.join(sorted(CORRECTORS))} "
                "or pass a Corrector object."
            ) from None
    if not (callable(getattr(spec, "init", None)) and callable(getattr(spec, "correct", None))):
        raise ValueError(
            f"corrector must be a name or a Corrector (with init and correct), got "
            f"{type(spec).__name__}."
        )
    return spec
