"""Correctors: steps that bring θ back onto the level set {L = L0}.

A corrector maps (θ, L − L0, ∇L, ‖∇L‖², the last unit predictor direction, its
own step size and last unit direction) to a displacement and its updated step
size and direction. Correctors are pure array functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from manifoldwalk._array import Array, dot, inverse, namespace, safe_divide
from manifoldwalk.step_sizes import AngleRule, ConstantStep, StepRule


class Correction(NamedTuple):
    """A corrector's output: the displacement and its updated step size and direction."""

    delta: Array
    eta: Array
    direction: Array


class Corrector(Protocol):
    """What the engine needs from a corrector."""

    name: str
    eta_init: float
    """Initial corrector step size (unused by step-size-free correctors)."""

    def __call__(
        self,
        deviation: Array,
        grad: Array,
        grad_sq: Array,
        dir_p: Array,
        eta: Array,
        dir_prev: Array,
        has_prev: Array,
    ) -> Correction:
        """The correction at a point with ``L − L0 = deviation`` and gradient ``grad``."""
        ...


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

    @property
    def eta_init(self) -> float:
        """Initial corrector step size."""
        return self.step_rule.eta_init

    def __call__(self, deviation, grad, grad_sq, dir_p, eta, dir_prev, has_prev) -> Correction:
        """See :class:`Corrector`."""
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
        eta_new = self.step_rule.update(eta, dot(xp, v, dir_prev) * scale, has_prev)
        length = eta_new
        if self.cap:  # at most |L − L0|/|∇L·unit| = |L − L0|/(‖v‖²·|scale|)
            reach = safe_divide(xp, xp.abs(deviation), v_sq * xp.abs(scale))
            length = xp.where(reach > 0, xp.minimum(eta_new, reach), eta_new)
        return Correction((-length * scale) * v, eta_new, scale * v)


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
    eta_init: float = 0.0

    def __call__(self, deviation, grad, grad_sq, dir_p, eta, dir_prev, has_prev) -> Correction:
        """See :class:`Corrector`."""
        xp = namespace(grad)
        return Correction(-safe_divide(xp, deviation, grad_sq) * grad, eta, dir_prev)


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
    if not callable(spec):
        raise ValueError(f"corrector must be a name or a Corrector, got {type(spec).__name__}.")
    return spec
