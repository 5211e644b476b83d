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
from collections.abc import Callable
from dataclasses import dataclass

from manifoldwalk._checks import is_count
from manifoldwalk.correctors import (
    Corrector,
    GradientCorrector,
    NewtonCorrector,
    authors_corrector,
    get_corrector,
)
from manifoldwalk.landing import LandingPredictor
from manifoldwalk.options import Tolerance
from manifoldwalk.predictors import DriftCompensated, Predictor, TangentPredictor
from manifoldwalk.step_sizes import AngleRule, StepRule


@dataclass(frozen=True)
class Scheme:
    """A named predictor/corrector combination.

    Attributes:
        name: the scheme's name.
        predictor: the predictor piece (:mod:`manifoldwalk.predictors`), e.g. a
            :class:`~manifoldwalk.predictors.TangentPredictor`, or one wrapped in
            :class:`~manifoldwalk.predictors.DriftCompensated`.
        corrector: the corrector piece (:mod:`manifoldwalk.correctors`).
        max_corrector_steps: consecutive corrector steps after which the walk stops as failed.
        tolerance: the level tolerance a walk uses unless given one
            (:class:`~manifoldwalk.Tolerance`): relative for the library's schemes, the paper's
            absolute τ = 1e-10 for ``"paper"`` and ``"authors"``.

    Raises:
        ValueError: ``max_corrector_steps`` not a positive integer.
    """

    name: str
    predictor: Predictor
    corrector: Corrector
    max_corrector_steps: int
    tolerance: Tolerance = Tolerance()

    def __post_init__(self) -> None:
        if not is_count(self.max_corrector_steps):
            raise ValueError(
                f"Scheme {self.name!r}: max_corrector_steps must be a positive integer, got "
                f"{self.max_corrector_steps!r}."
            )

    @property
    def drift_gain(self) -> float:
        """The drift compensation's gain (0 where the predictor does not compensate)."""
        return float(getattr(self.predictor, "gain", 0.0))

    @property
    def drift_cap(self) -> float | None:
        """The drift compensation's cap (None where the predictor does not compensate)."""
        return getattr(self.predictor, "cap", None)

    def replace(self, **changes: object) -> Scheme:
        """A copy with some fields changed (``name``, ``predictor``, ``corrector``,
        ``max_corrector_steps``)."""
        return dataclasses.replace(self, **changes)


MAX_EXCURSION = 8.0
"""A bound on predictor excursions (in units of the level tolerance) that the step-length
feedback aims at: ``get_scheme(name, max_excursion=MAX_EXCURSION)``; not a hard bound (for one,
``get_scheme(name, landing=LANDING_BOUND)``). Off in the named schemes: on the paper's nets it
cost 2–5× the gradient evaluations (measured: docs/schemes.md)."""


def paper_scheme() -> Scheme:
    """The paper's scheme as written: angle rule on both the predictor and the corrector."""
    rule = AngleRule(eta_init=1e-4, eta_min=1e-4, eta_max=0.1)
    return Scheme(
        name="paper",
        predictor=TangentPredictor(rule, reset_after_corrector=True),
        corrector=GradientCorrector(),
        max_corrector_steps=10_000,
        tolerance=Tolerance(tau=1e-10),
    )


def authors_scheme() -> Scheme:
    """What the authors' code does: as the paper, but the corrector step stays 1e-4."""
    return paper_scheme().replace(name="authors", corrector=authors_corrector(1e-4))


def default_scheme() -> Scheme:
    """The library's default: Newton corrector, a looser and faster angle rule, no reset."""
    rule = AngleRule(
        threshold_deg=15.0, grow=1.5, shrink=0.5, eta_init=1e-3, eta_min=1e-8, eta_max=1.0
    )
    return Scheme(
        name="default",
        predictor=TangentPredictor(rule),
        corrector=NewtonCorrector(),
        max_corrector_steps=100,
    )


def compensated_scheme() -> Scheme:
    """The default's Newton corrector with drift compensation and a looser angle rule.

    The fewest gradient evaluations measured on the paper's nets (docs/schemes.md): each
    predictor step also makes the correction the corrector keeps having to make (see
    :class:`~manifoldwalk.predictors.DriftCompensated`), so longer predictor steps stay near
    the level set.
    """
    rule = AngleRule(
        threshold_deg=45.0, grow=1.5, shrink=0.5, eta_init=1e-3, eta_min=1e-8, eta_max=0.2
    )
    return default_scheme().replace(
        name="compensated",
        predictor=DriftCompensated(TangentPredictor(rule), gain=0.5, cap=0.5),
    )


SCHEMES: dict[str, Callable[[], Scheme]] = {
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
    max_excursion: float | None = None,
    landing: float | None = None,
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
        max_excursion: bound the predictor's excursions off the level set to about this many
            tolerances (see :class:`~manifoldwalk.TangentPredictor`; e.g.
            :data:`MAX_EXCURSION`): feedback from the last landing, not a hard bound.
        landing: land every predictor step within this many tolerances of the level set by
            loss-only probes before its gradient is taken, refusing a step that cannot
            (:class:`~manifoldwalk.landing.LandingPredictor`; e.g.
            :data:`~manifoldwalk.landing.LANDING_BOUND`): a hard bound on ``max_deviation``.
            Not with ``max_excursion``.

    Returns:
        The configured :class:`Scheme`.

    Raises:
        ValueError: an unknown name, an override that does not apply to the pieces chosen,
            a ``max_corrector_steps`` below 1, or both ``max_excursion`` and ``landing``.
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
        scheme = scheme.replace(predictor=scheme.predictor.with_step_rule(predictor_step))
    if eta_min is not None or eta_max is not None:
        rule = scheme.predictor.step_rule
        if not isinstance(rule, AngleRule):
            raise ValueError("eta_min/eta_max apply to an AngleRule predictor step only.")
        lo = rule.eta_min if eta_min is None else eta_min
        hi = rule.eta_max if eta_max is None else eta_max
        init = min(max(rule.eta_init, lo), hi)
        rule = dataclasses.replace(rule, eta_min=lo, eta_max=hi, eta_init=init)
        scheme = scheme.replace(predictor=scheme.predictor.with_step_rule(rule))
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
    if max_excursion is not None and landing is not None:
        raise ValueError(
            "give max_excursion (feedback on the step length) or landing (a hard bound by "
            f"loss-only probes), not both; got max_excursion={max_excursion!r}, "
            f"landing={landing!r}."
        )
    if max_excursion is not None:
        scheme = scheme.replace(predictor=_with_excursion(scheme.predictor, max_excursion))
    if landing is not None:
        predictor = scheme.predictor
        if isinstance(predictor, LandingPredictor):  # a landing scheme: another bound
            predictor = predictor.inner
        scheme = scheme.replace(predictor=LandingPredictor(predictor, cap=landing))
    if max_corrector_steps is not None:
        if not is_count(max_corrector_steps):
            raise ValueError(
                "max_corrector_steps must be None (the scheme's) or a positive integer, got "
                f"{max_corrector_steps!r}."
            )
        scheme = scheme.replace(max_corrector_steps=int(max_corrector_steps))
    return scheme


def _with_excursion(predictor: Predictor, bound: float) -> Predictor:
    """``predictor`` (a tangent predictor, or one wrapped) with ``max_excursion=bound``."""
    inner = getattr(predictor, "inner", None)
    if inner is not None:
        return dataclasses.replace(predictor, inner=_with_excursion(inner, bound))
    if not hasattr(predictor, "max_excursion"):
        raise ValueError(
            f"max_excursion applies to a TangentPredictor (or one wrapped), not to "
            f"{type(predictor).__name__}."
        )
    return dataclasses.replace(predictor, max_excursion=bound)
