"""The result of a walk, and saving and loading it without pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk import _state_io
from manifoldwalk._array import Array, to_numpy
from manifoldwalk._stops import STOP_REASONS
from manifoldwalk.step import WalkState

__all__ = ["CONVERGED", "STOP_REASONS", "WalkResult"]

CONVERGED = frozenset({"stationary", "stalled", "reached_target"})
"""Stop reasons that mean the walk reached what its direction was looking for."""


@dataclass
class WalkResult:
    """What a walk found and why it stopped (in the manner of ``scipy.optimize.OptimizeResult``).

    Attributes:
        theta: the final point, always on the level set (the last good point if the
            walk failed), in θ0's array type and device.
        level: L0, the level walked.
        loss, reg: L and R at ``theta``.
        angle: angle between ∇L and ∇R at ``theta``, in degrees (180 at a minimum of R).
        lam: the Lagrange multiplier λ = −∇R·∇L/‖∇L‖².
        kkt: the KKT residual ‖∇R + λ∇L‖/‖∇R‖.
        n_predictor, n_corrector: steps of each kind.
        n_grad_evals: loss-and-gradient evaluations, the start and any projection included.
        max_deviation: the largest |L − L0| seen at any point, corrector steps included.
        max_predictor_step: the longest predictor step taken (η_p of that step).
        tolerance: the bound on |L − L0| the walk held on the level set (``Tolerance``'s,
            widened to the loss's noise where that was larger).
        max_relative_deviation: the largest |L − L0|/|L0| over the points on the level set
            (every point the walk counted as on it, recorded or not).
        stop_reason: a key of :data:`STOP_REASONS`.
        message: the stop reason in words, with the figures behind it.
        history: columns recorded at on-level points every ``record_every`` predictor steps.
        trajectory: every ``trajectory_every``-th on-level θ as rows of a 2-D array.
        state: the walk's full state when it stopped, for :func:`manifoldwalk.walk`'s ``resume_from``.
        options: the options the walk ran with (JSON-able), for the record.
    """

    theta: Array
    level: float
    loss: float
    reg: float
    angle: float
    lam: float
    kkt: float
    n_predictor: int
    n_corrector: int
    n_grad_evals: int
    max_deviation: float
    max_predictor_step: float
    tolerance: float
    max_relative_deviation: float
    stop_reason: str
    message: str
    history: dict[str, np.ndarray] = field(default_factory=dict)
    trajectory: Array = None
    state: WalkState | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        """True when the walk stopped because it found what its direction looks for."""
        return self.stop_reason in CONVERGED

    def __repr__(self) -> str:
        return (
            f"WalkResult({self.stop_reason}: {self.n_predictor} predictor + "
            f"{self.n_corrector} corrector steps, {self.n_grad_evals} gradient evaluations, "
            f"R={self.reg:.6g}, angle={self.angle:.4f}°, kkt={self.kkt:.3g}, "
            f"max|L-L0|={self.max_deviation:.3g}, on-level max|L-L0|/|L0|="
            f"{self.max_relative_deviation:.3g})"
        )

    def save(self, path: str | Path) -> None:
        """Write the result to an ``.npz`` file that holds no pickled objects."""
        arrays: dict[str, np.ndarray] = {"theta": to_numpy(self.theta)}
        if self.trajectory is not None:
            arrays["trajectory"] = to_numpy(self.trajectory)
        for name, column in self.history.items():
            arrays[f"history/{name}"] = np.asarray(column)
        meta = {k: getattr(self, k) for k in _SCALAR_FIELDS}
        meta["options"] = self.options
        if self.state is not None:
            state_arrays, meta["state_layout"] = _state_io.flatten(self.state)
            arrays.update({f"state/{k}": v for k, v in state_arrays.items()})
        arrays["meta"] = np.array(json.dumps(meta))
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> WalkResult:
        """Read a result written by :meth:`save` (numpy arrays, never unpickling).

        Raises:
            ValueError: if the file is not a saved WalkResult.
        """
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files or "theta" not in data.files:
                raise ValueError(f"{path} is not a saved WalkResult (no meta/theta entries).")
            meta = json.loads(str(data["meta"]))
            history = {k[8:]: data[k] for k in data.files if k.startswith("history/")}
            state_items = {k[6:]: data[k] for k in data.files if k.startswith("state/")}
            layout = meta.pop("state_layout", None)
            if layout is not None:
                state = _state_io.unflatten(state_items, layout)
            elif state_items:  # a file whose state was one flat record
                corrector = meta.get("options", {}).get("corrector")
                state = _state_io.from_flat_fields(state_items, corrector)
            else:
                state = None
            trajectory = data["trajectory"] if "trajectory" in data.files else None
            theta = data["theta"]
        options = meta.pop("options")
        for name in ("tolerance", "max_relative_deviation"):  # files saved before they were
            meta.setdefault(name, float("nan"))
        return cls(
            theta=theta,
            history=history,
            trajectory=trajectory,
            state=state,
            options=options,
            **meta,
        )


_SCALAR_FIELDS = (
    "level",
    "loss",
    "reg",
    "angle",
    "lam",
    "kkt",
    "n_predictor",
    "n_corrector",
    "n_grad_evals",
    "max_deviation",
    "max_predictor_step",
    "tolerance",
    "max_relative_deviation",
    "stop_reason",
    "message",
)
