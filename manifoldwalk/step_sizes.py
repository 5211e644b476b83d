"""Step-size rules for the predictor (and the paper's gradient corrector).

A rule maps the current step size η and the cosine of the angle between this
step's unit direction and the previous one of the same kind to the step size to
use now. Rules are pure array functions (no Python branch on values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from manifoldwalk._array import Array, namespace


class StepRule(Protocol):
    """What the engine needs from a step-size rule."""

    eta_init: float
    """Step size of the first step."""
    eta_min: float
    """Smallest step size the rule produces (the step floor)."""

    def update(self, eta: Array, cos_turn: Array, has_prev: Array) -> Array:
        """Step size for this step, given the previous one and how far the direction turned."""
        ...


@dataclass(frozen=True)
class AngleRule:
    """The paper's angle heuristic, with its constants as parameters.

    η ← η·``grow`` when the unit direction turned by less than ``threshold_deg``
    since the previous step of the same kind, η ← η·``shrink`` otherwise, then
    clamped to [``eta_min``, ``eta_max``]. The first step (no previous direction)
    keeps η. The paper uses threshold 0.1°, grow 1.1, shrink 0.1.

    Raises:
        ValueError: on non-positive sizes, ``eta_min > eta_max`` or factors on the wrong side of 1.
    """

    threshold_deg: float = 0.1
    grow: float = 1.1
    shrink: float = 0.1
    eta_init: float = 1e-4
    eta_min: float = 1e-4
    eta_max: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.eta_min <= self.eta_max:
            raise ValueError(
                f"AngleRule needs 0 < eta_min <= eta_max, got {self.eta_min}, {self.eta_max}."
            )
        if not self.eta_min <= self.eta_init <= self.eta_max:
            raise ValueError(
                f"AngleRule: eta_init={self.eta_init} must lie in [eta_min, eta_max] = "
                f"[{self.eta_min}, {self.eta_max}]."
            )
        if not (self.grow >= 1.0 and 0.0 < self.shrink <= 1.0):
            raise ValueError(
                f"AngleRule needs grow >= 1 and 0 < shrink <= 1, got {self.grow}, {self.shrink}."
            )
        if not 0.0 < self.threshold_deg < 180.0:
            raise ValueError(
                f"AngleRule: threshold_deg must be in (0, 180), got {self.threshold_deg}."
            )

    def update(self, eta: Array, cos_turn: Array, has_prev: Array) -> Array:
        """See :class:`StepRule`."""
        xp = namespace(eta)
        straight = cos_turn > math.cos(math.radians(self.threshold_deg))
        new = xp.where(straight, eta * self.grow, eta * self.shrink)
        new = xp.minimum(
            xp.maximum(new, xp.full_like(eta, self.eta_min)), xp.full_like(eta, self.eta_max)
        )
        return xp.where(has_prev, new, eta)


@dataclass(frozen=True)
class ConstantStep:
    """A constant step size ``eta`` (the authors' corrector, by a quirk of their code)."""

    eta: float = 1e-4

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"ConstantStep needs eta > 0, got {self.eta}.")

    @property
    def eta_init(self) -> float:
        """The constant step size."""
        return self.eta

    @property
    def eta_min(self) -> float:
        """The constant step size (it is its own floor)."""
        return self.eta

    def update(self, eta: Array, cos_turn: Array, has_prev: Array) -> Array:
        """See :class:`StepRule`: returns ``eta`` unchanged."""
        return eta
