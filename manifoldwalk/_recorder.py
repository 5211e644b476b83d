"""The walk's recorder: history rows, the trajectory, metrics and the callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from manifoldwalk._array import Array, namespace, to_like
from manifoldwalk._checks import LARGEST_COUNT
from manifoldwalk._history import COUNT_COLUMNS, HISTORY_COLUMNS, describe
from manifoldwalk.step import WalkState

if TYPE_CHECKING:
    from manifoldwalk.result import WalkResult

NO_RECORDS = LARGEST_COUNT
"""The record interval that ``Record(every=None)`` stands for: the largest 32-bit count (JAX's
default integer), so that n_predictor is a multiple of it only at the start (0) of any walk."""


class Recorder:
    """Keeps the history rows and the trajectory of one walk; calls its metrics and callback.

    Args:
        problem: the walk's problem (a row reads R from it).
        record_every: the record interval in predictor steps.
        trajectory_every: keep every this-many-th on-level θ (None: none).
        metrics: extra history columns, name ↦ callable θ ↦ float.
        callback: called with each row; True stops the walk.
    """

    def __init__(self, problem, record_every, trajectory_every, metrics, callback):
        self.problem = problem
        # a larger interval records nothing more, and would overflow a compiled loop's count
        self.record_every = min(record_every, LARGEST_COUNT)
        self.trajectory_every = trajectory_every and min(trajectory_every, LARGEST_COUNT)
        self.metrics = dict(metrics)
        self.callback = callback
        self.rows: list[dict[str, float]] = []
        self.points: list[Array] = []
        self.prior_trajectory = None
        self.last_recorded = -1
        self.last_kept = -1

    def extend(self, previous: WalkResult) -> None:
        """Start from a previous result's history and trajectory (resuming)."""
        n = len(next(iter(previous.history.values()), []))
        self.rows = [
            {
                k: int(v[i]) if k in COUNT_COLUMNS else float(v[i])
                for k, v in previous.history.items()
            }
            for i in range(n)
        ]  # counts stay ints, as a fresh walk records them
        if self.rows:
            self.last_recorded = int(self.rows[-1]["n_predictor"])
        self.prior_trajectory = previous.trajectory
        if previous.trajectory is not None and len(previous.trajectory):
            self.last_kept = int(previous.n_predictor)

    def due(self, n_predictor: int) -> bool:
        return n_predictor % self.record_every == 0 and n_predictor != self.last_recorded

    def record(
        self,
        state: WalkState,
        own: Callable[[Array], Array] | None = None,
        with_metrics: bool = True,
    ) -> dict[str, float]:
        """Record ``state``; the metrics get ``own(θ)`` where given (a copy they may keep).
        Without ``with_metrics`` (the last row of a walk an exception ended, which a metric
        may have raised) the metric columns of the row are left out (NaN in the history)."""
        row = describe(self.problem, state)
        metrics = self.metrics if with_metrics else {}
        theta = state.theta if own is None or not metrics else own(state.theta)
        for name, fn in metrics.items():
            row[name] = float(fn(theta))
        self.rows.append(row)
        self.last_recorded = int(row["n_predictor"])
        return row

    def keep(
        self, state: WalkState, n_predictor: int, own: Callable[[Array], Array] | None = None
    ) -> None:
        """Keep θ in the trajectory where due (``own(θ)`` where given: a copy)."""
        every = self.trajectory_every
        if every and n_predictor % every == 0 and n_predictor != self.last_kept:
            self.points.append(state.theta if own is None else own(state.theta))
            self.last_kept = n_predictor

    def history(self) -> dict[str, np.ndarray]:
        names = list(HISTORY_COLUMNS) + [m for m in self.metrics if m not in HISTORY_COLUMNS]
        if self.rows:
            names += [k for k in self.rows[0] if k not in names]
        return {k: np.array([row.get(k, np.nan) for row in self.rows]) for k in names}

    def trajectory(self, like: Array) -> Array | None:
        if not self.trajectory_every:
            return self.prior_trajectory
        xp = namespace(like)
        rows = list(self.points)
        if self.prior_trajectory is not None and len(self.prior_trajectory):
            prior = to_like(xp, self.prior_trajectory, like, like.dtype)
            rows = [prior[i] for i in range(prior.shape[0])] + rows
        if not rows:
            return xp.reshape(xp.zeros_like(like), (0, like.shape[0]))
        return xp.stack(rows)
