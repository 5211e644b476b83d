"""Named walk schemes: which corrector and predictor step-size rule to combine.

``"paper"`` is the paper's scheme as written, ``"authors"`` what the authors'
code does, ``"default"`` the library's fastest combination on the analytic
suite, ``"compensated"`` the default with a drift-compensated predictor, the
fewest gradient evaluations on the paper's nets (``benchmarks/analytic_schemes.py``
and ``benchmarks/grad_evals.py`` measure them; docs/schemes.md records the
figures and how each differs from the paper).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from manifoldwalk._checks import is_count
from manifoldwalk.correctors import (
    Corrector,
    GradientCorrector,
    NewtonCorrector,
    authors_corrector,
    get_corrector,
)
from manifoldwalk.step_sizes import AngleRule, StepRule


@dataclass(frozen=True)
class Scheme:
    """A predictor/corrector combination.

    Attributes:
        name: the scheme's name.
        corrector: the corrector piece.
        predictor_step: the predictor's step-size rule.
        reset_after_corrector: set η_p to its floor after every corrector step (paper, authors).
        max_corrector_steps: consecutive corrector steps after which the walk stops as failed.
        drift_gain: drift compensation (0: off, the paper's pure tangent predictor). Each
            predictor step adds η_p²·w, where w is learnt from the corrector steps: each one,
            δ, adds ``drift_gain``·δ/Ση_p² (the η_p² of the predictor steps it undoes). The
            predictor then anticipates the return to the level set that the corrector would
            otherwise make in separate evaluations. In (0, 1]; 0.5 is measured best.
        drift_cap: the added η_p²·w is at most ``drift_cap``·η_p long.

    Raises:
        ValueError: ``drift_gain`` outside [0, 1] or ``drift_cap`` not positive.
    """

    name: str
    corrector: Corrector
    predictor_step: StepRule
    reset_after_corrector: bool
    max_corrector_steps: int
    drift_gain: float = 0.0
    drift_cap: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.drift_gain <= 1.0:
            raise ValueError(
                f"Scheme {self.name!r}: drift_gain must lie in [0, 1] (0 turns drift "
                f"compensation off), got {self.drift_gain}."
            )
        if not self.drift_cap > 0.0:
            raise ValueError(f"Scheme {self.name!r}: drift_cap must be > 0, got {self.drift_cap}.")

    def replace(self, **changes: object) -> Scheme:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def paper_scheme() -> Scheme:
    """The paper's scheme as written: angle rule on both the predictor and the corrector."""
    return Scheme(
        name="paper",
        corrector=GradientCorrector(),
        predictor_step=AngleRule(eta_init=1e-4, eta_min=1e-4, eta_max=0.1),
        reset_after_corrector=True,
        max_corrector_steps=10_000,
    )


def authors_scheme() -> Scheme:
    """What the authors' code does: as the paper, but the corrector step stays 1e-4."""
    return paper_scheme().replace(name="authors", corrector=authors_corrector(1e-4))


def default_scheme() -> Scheme:
    """The library's default: Newton corrector, a looser and faster angle rule, no reset."""
    return Scheme(
        name="default",
        corrector=NewtonCorrector(),
        predictor_step=AngleRule(
            threshold_deg=15.0, grow=1.5, shrink=0.5, eta_init=1e-3, eta_min=1e-8, eta_max=1.0
        ),
        reset_after_corrector=False,
        max_corrector_steps=100,
    )


def compensated_scheme() -> Scheme:
    """The default's Newton corrector with drift compensation and a looser angle rule.

    The fewest gradient evaluations measured on the paper's nets (docs/schemes.md): each
    predictor step also makes the correction the corrector keeps having to make (see
    :class:`Scheme`'s ``drift_gain``), so longer predictor steps stay near the level set.
    """
    return default_scheme().replace(
        name="compensated",
        predictor_step=AngleRule(
            threshold_deg=45.0, grow=1.5, shrink=0.5, eta_init=1e-3, eta_min=1e-8, eta_max=0.2
        ),
        drift_gain=0.5,
        drift_cap=0.5,
    )


SCHEMES = {
    "default": default_scheme,
    "paper": paper_scheme,
    "authors": authors_scheme,
    "compensated": compensated_scheme,
}
"""Schemes selectable by name."""


def get_scheme(
    name: str | Scheme,
    *,
    corrector: str | Corrector | None = None,
    predictor_step: StepRule | None = None,
    eta_min: float | None = None,
    eta_max: float | None = None,
    eta_c: float | None = None,
    max_corrector_steps: int | None = None,
) -> Scheme:
    """Look up a scheme by name and apply the caller's overrides.

    Args:
        name: ``"default"``, ``"compensated"``, ``"paper"``, ``"authors"`` or a
            :class:`Scheme`.
        corrector: a corrector name (``"paper"``, ``"authors"``, ``"newton"``) or object.
        predictor_step: a step-size rule for the predictor.
        eta_min, eta_max: the predictor's step floor and ceiling (angle rules only).
        eta_c: the gradient corrector's initial (or, for ``"authors"``, constant) step size.
        max_corrector_steps: consecutive corrector steps before the walk stops as failed.

    Returns:
        The configured :class:`Scheme`.

    Raises:
        ValueError: an unknown name, an override that does not apply to the pieces chosen, or
            a ``max_corrector_steps`` below 1.
        TypeError: a ``predictor_step`` that is not a step-size rule.
    """
    if isinstance(name, Scheme):
        scheme = name
    else:
        try:
            scheme = SCHEMES[name]()
        except KeyError:
            raise ValueError(
                f"unknown scheme {name!r}; choose one of {', '.join(SCHEMES)}."
            ) from None
    if corrector is not None:
        scheme = scheme.replace(corrector=get_corrector(corrector))
    if predictor_step is not None:
        if not (
            callable(getattr(predictor_step, "update", None))
            and hasattr(predictor_step, "eta_init")
            and hasattr(predictor_step, "eta_min")
        ):
            raise TypeError(
                f"predictor_step must be a step-size rule, got {type(predictor_step).__name__} "
                f"{predictor_step!r}; for a constant step pass predictor_step=ConstantStep(eta) "
                "(manifoldwalk.ConstantStep), or an AngleRule(...)."
            )
        scheme = scheme.replace(predictor_step=predictor_step)
    if eta_min is not None or eta_max is not None:
        rule = scheme.predictor_step
        if not isinstance(rule, AngleRule):
            raise ValueError("eta_min/eta_max apply to an AngleRule predictor step only.")
        lo = rule.eta_min if eta_min is None else eta_min
        hi = rule.eta_max if eta_max is None else eta_max
        init = min(max(rule.eta_init, lo), hi)
        scheme = scheme.replace(
            predictor_step=dataclasses.replace(rule, eta_min=lo, eta_max=hi, eta_init=init)
        )
    if eta_c is not None:
        corr = scheme.corrector
        if not isinstance(corr, GradientCorrector):
            raise ValueError("eta_c applies to the gradient corrector ('paper' or 'authors') only.")
        rule = corr.step_rule
        if isinstance(rule, AngleRule):
            rule = dataclasses.replace(rule, eta_init=eta_c, eta_min=min(rule.eta_min, eta_c))
        else:
            rule = dataclasses.replace(rule, eta=eta_c)
        scheme = scheme.replace(corrector=dataclasses.replace(corr, step_rule=rule))
    if max_corrector_steps is not None:
        if not is_count(max_corrector_steps):
            raise ValueError(
                "max_corrector_steps must be None (the scheme's) or a positive integer, got "
                f"{max_corrector_steps!r}."
            )
        scheme = scheme.replace(max_corrector_steps=int(max_corrector_steps))
    return scheme
