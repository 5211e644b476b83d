"""The walk's option groups: when to stop, what to record, how level is level.

Each is a frozen dataclass that checks itself when built, so a bad option fails where it is
written, with its name, not deep inside a walk. :func:`manifoldwalk.walk` takes them as
``stop=Stop(...)``, ``record=Record(...)`` and ``tolerance=Tolerance(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from manifoldwalk._checks import is_count
from manifoldwalk._history import HISTORY_COLUMNS

__all__ = ["Record", "Stop", "Tolerance"]


def _count(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not is_count(value):
        kind = "None or a positive integer" if optional else "a positive integer"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")


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
        ValueError: a budget or patience that is not a positive integer, a negative
            ``kkt_tol`` or ``singular_tol``.
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
        if not self.kkt_tol >= 0:
            raise ValueError(f"kkt_tol must be non-negative, got {self.kkt_tol!r}.")
        if not self.singular_tol >= 0:
            raise ValueError(f"singular_tol must be non-negative, got {self.singular_tol!r}.")

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


@dataclass(frozen=True)
class Tolerance:
    """How close to L0 a point must be to count as on the level set: (L − L0)² ≤ τ.

    Attributes:
        tau: the threshold on (L − L0)² (the paper's 1e-10).
        relative: read ``tau`` relative to L0², i.e. as a threshold on ((L − L0)/L0)².

    Raises:
        ValueError: ``tau`` not positive.
    """

    tau: float = 1e-10
    relative: bool = False

    def __post_init__(self) -> None:
        try:
            ok = not isinstance(self.tau, bool) and float(self.tau) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"tau must be a positive number, got {self.tau!r}.")

    def absolute(self, level: float) -> float:
        """The threshold on (L − L0)² at L0 = ``level``."""
        return self.tau * level**2 if self.relative else self.tau
