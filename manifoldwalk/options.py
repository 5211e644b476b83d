"""The walk's option groups: when to stop, what to record, how level is level.

Each is a frozen dataclass that checks itself when built, so a bad option fails where it is
written, with its name, not deep inside a walk. :func:`manifoldwalk.walk` takes them as
``stop=Stop(...)``, ``record=Record(...)`` and ``tolerance=Tolerance(...)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from manifoldwalk._checks import is_count

__all__ = ["Record", "Stop", "Tolerance"]


def _count(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not is_count(value):
        kind = "None or a positive integer" if optional else "a positive integer"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")


def _real(name: str, value: Any, positive: bool = False) -> None:
    """Refuse anything but a finite real number ≥ 0 (> 0 where ``positive``), by name and with
    the allowed range: NaN, inf, a bool, a string, or an int too large for a float (which
    failed later with a raw ``OverflowError``)."""
    try:
        number = float(value) if not isinstance(value, bool | str | bytes) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    low_ok = number > 0 if positive else number >= 0
    if not (low_ok and math.isfinite(number)):
        allowed = f"0 < {name} < inf" if positive else f"0 ≤ {name} < inf"
        kind = "positive" if positive else "non-negative"
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"{name} must be a {kind} number (finite: {allowed}), got {shown}.")


@dataclass(frozen=True)
class Stop:
    """When a walk stops (besides NaN, a singular level set and a failing corrector).

    Attributes:
        max_steps: the predictor-step budget (the authors' code counts these).
        max_total_steps: a budget on predictor plus corrector steps (the paper's text), or None.
        kkt_tol: stop as stationary when ‖r − proj_∇L r‖/‖r‖ ≤ kkt_tol, which for r = −∇R is
            the KKT residual ‖∇R + λ∇L‖/‖∇R‖ (both the 180° and the 0° case).
        stall_patience: stop as stalled after this many predictor reversals at the step floor
            (counted over the whole walk).
        singular_tol: stop (or refuse to start) where ‖∇L‖ ≤ this: the level set is singular.

    Raises:
        ValueError: a budget or patience that is not a positive integer; a ``kkt_tol`` or
            ``singular_tol`` that is not a finite number ≥ 0.
    """

    max_steps: int = 20_000
    max_total_steps: int | None = None
    kkt_tol: float = 1e-6
    stall_patience: int = 100
    singular_tol: float = 1e-12

    def __post_init__(self) -> None:
        _count("max_steps", self.max_steps)
        _count("max_total_steps", self.max_total_steps, optional=True)
        _count("stall_patience", self.stall_patience)
        _real("kkt_tol", self.kkt_tol)
        _real("singular_tol", self.singular_tol)

    def replace(self, **changes: Any) -> Stop:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Record:
    """What a walk records along the way.

    Attributes:
        every: record a history row every this many predictor steps (at on-level points).
            None: only the start and the point the walk returns (each record costs several
            passes over θ and a host synchronisation).
        trajectory_every: keep every this-many-th on-level θ in ``trajectory`` (None: none).
        metrics: extra history columns, name ↦ callable θ ↦ float (e.g. test loss); they run
            only when a record is taken. Names must differ from the built-in columns.
        callback: called with each history row (a dict); returning True stops the walk.

    Raises:
        ValueError: an interval that is not None or a positive integer; a metric named like a
            built-in history column.
        TypeError: ``metrics`` not a mapping of names to callables, ``callback`` not callable.
    """

    every: int | None = 1
    trajectory_every: int | None = None
    metrics: Mapping[str, Callable[[Any], float]] = field(default_factory=dict)
    callback: Callable[[dict[str, float]], bool | None] | None = None

    def __post_init__(self) -> None:
        from manifoldwalk._history import HISTORY_COLUMNS  # (the history module reads the step)

        _count("Record.every", self.every, optional=True)
        _count("Record.trajectory_every", self.trajectory_every, optional=True)
        metrics = {} if self.metrics is None else self.metrics
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"metrics must be a dict of name -> callable θ -> float, got "
                f"{type(metrics).__name__}; e.g. Record(metrics={{'test_loss': f}})."
            )
        for name, fn in metrics.items():
            if not isinstance(name, str):
                raise TypeError(f"metrics: names must be strings, got {name!r}.")
            if name in HISTORY_COLUMNS:
                raise ValueError(
                    f"metrics: the name {name!r} is a built-in history column and would "
                    f"overwrite it; rename the metric. Reserved: {', '.join(HISTORY_COLUMNS)}."
                )
            if not callable(fn):
                raise TypeError(
                    f"metrics[{name!r}] must be a callable θ -> float, got {type(fn).__name__}."
                )
        object.__setattr__(self, "metrics", dict(metrics))
        if self.callback is not None and not callable(self.callback):
            raise TypeError(
                f"callback must be None or callable, got {type(self.callback).__name__}."
            )

    def replace(self, **changes: Any) -> Record:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)


DEFAULT_RTOL = {"float64": 1e-5, "float32": 1e-3}
"""The relative level tolerance of the library's schemes by θ's dtype, where it is not given: far
above the loss's floating-point noise near a trained minimum (measured: docs/schemes.md)."""

NOISE_FACTOR = 4.0
"""A relative tolerance is widened to this many times the loss's measured noise at θ0."""


@dataclass(frozen=True)
class Tolerance:
    """How close to L0 a point must be to count as on the level set.

    Relative (the library's schemes): |L − L0| ≤ ``rtol``·|L0| + ``atol``, ``rtol`` by default
    the dtype's (:data:`DEFAULT_RTOL`). Absolute (the paper's and the authors' schemes):
    (L − L0)² ≤ ``tau``.

    Attributes:
        rtol: the relative tolerance (None: the dtype's default).
        atol: the absolute part of a relative tolerance (for a level near 0).
        tau: an absolute threshold on (L − L0)² instead (the paper's 1e-10); not with
            ``rtol``/``atol``.
        check_noise: measure the loss's floating-point noise at θ0 (a few loss evaluations) and
            warn where the tolerance is below :data:`NOISE_FACTOR` times it; a relative
            tolerance is then widened to that, an absolute ``tau`` is kept.

    Raises:
        ValueError: a value that is not a finite number ≥ 0 (``tau``: > 0; NaN and inf are
            refused), or ``tau`` with ``rtol``/``atol``.
    """

    rtol: float | None = None
    atol: float = 0.0
    tau: float | None = None
    check_noise: bool = True

    def __post_init__(self) -> None:
        for name in ("rtol", "atol", "tau"):
            value = getattr(self, name)
            if value is not None:
                try:  # an infinite tau or rtol counted every point as on the level set
                    _real(name, value, positive=name == "tau")
                except ValueError as err:
                    raise ValueError(f"Tolerance: {err}") from None
        if self.tau is not None and (self.rtol is not None or self.atol):
            raise ValueError(
                "Tolerance: give either tau (an absolute threshold on (L − L0)²) or rtol/atol "
                f"(|L − L0| ≤ rtol·|L0| + atol), not both; got tau={self.tau!r}, "
                f"rtol={self.rtol!r}, atol={self.atol!r}."
            )

    @property
    def relative(self) -> bool:
        """Whether the tolerance is relative to L0 (no ``tau``)."""
        return self.tau is None

    def bound(self, level: float, dtype_name: str) -> float:
        """The bound on |L − L0| at L0 = ``level`` for θ of dtype ``dtype_name``."""
        if self.tau is not None:
            return float(self.tau) ** 0.5
        rtol = (
            DEFAULT_RTOL.get(dtype_name, DEFAULT_RTOL["float64"])
            if self.rtol is None
            else self.rtol
        )
        return float(rtol) * abs(float(level)) + float(self.atol)

    def replace(self, **changes: Any) -> Tolerance:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)
