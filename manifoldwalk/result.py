"""The result of a walk, and saving and loading it without pickle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk import _json, _result_io, _state_io
from manifoldwalk._array import Array, to_numpy
from manifoldwalk._atomic import atomic_file
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
        angle: angle between ∇L and ∇R at ``theta``, in degrees: 0 or 180 at a stationary
            point of R on the level set, where ∇R is parallel to ∇L (180 where R falls as L
            rises, as for R = x + y on the circle; 0 where both rise together, as for ‖θ‖² on
            a level set of Σθ⁴).
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
        stop_reason: a key of :data:`STOP_REASONS` (``"error"`` only on the result attached
            to an exception that ended the walk, as ``err.walk_result``).
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
        """Write the result to an ``.npz`` file that holds no pickled objects.

        The file is written whole or not at all (a temporary file beside it, fsync, rename), so
        an interrupted save leaves an earlier file at ``path`` as it was.

        Args:
            path: The file to write (its directory is created if needed; no suffix is added).
        """
        arrays: dict[str, np.ndarray] = {"theta": to_numpy(self.theta)}
        if self.trajectory is not None:
            arrays["trajectory"] = to_numpy(self.trajectory)
        for name, column in self.history.items():
            arrays[f"history/{name}"] = np.asarray(column)
        meta = {k: getattr(self, k) for k in _result_io.SCALAR_FIELDS}
        meta["options"] = self.options
        if self.state is not None:
            state_arrays, meta["state_layout"] = _state_io.flatten(self.state)
            arrays.update({f"state/{k}": v for k, v in state_arrays.items()})
        # strict JSON: a non-finite number is null with a note beside it
        arrays["meta"] = np.array(_json.dumps(meta))
        with atomic_file(path) as f:  # an interrupted save leaves the previous file whole
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> WalkResult:
        """Read a result written by :meth:`save` (numpy arrays, never unpickling).

        Every part is checked as it is read, and no member is given more memory than it
        holds (:mod:`manifoldwalk._result_io`).

        Raises:
            ValueError: the file is not a saved WalkResult or is damaged, naming the file and
                the problem: not an ``.npz`` (zip) archive, a truncated or corrupted member, an
                array of Python objects, no ``meta`` or ``theta``, metadata that is not the JSON
                a result saves (fields missing, unknown or of the wrong type), a θ that is not
                a finite 1-D float array, a trajectory of the wrong shape, history columns of
                different lengths, or a walk state that does not rebuild.
            OSError: the file cannot be opened (missing, a directory, no permission).
        """
        with open(path, "rb") as f:  # (a path that cannot be opened stays an OSError)
            try:
                fields = _result_io.result_fields(_result_io.read_members(f))
            except _result_io.Damaged as err:
                raise ValueError(f"{path} cannot be loaded as a WalkResult: {err}.") from None
            except Exception as err:  # whatever else a damaged archive raises (zipfile, zlib,
                # numpy's header parser, ...): the file is not a result this can read
                raise ValueError(
                    f"{path} cannot be loaded as a WalkResult: it is damaged "
                    f"({type(err).__name__}: {err})."
                ) from err
        return cls(**fields)
