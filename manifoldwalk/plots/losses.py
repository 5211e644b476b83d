"""Losses of any problem at weight vectors given as numpy arrays, for loss surfaces.

A loss surface asks for the training loss at many weight vectors ``origin + c · basis``.
:func:`plane_evaluator` returns what evaluates them: the problem itself when it offers a batched
``plane_losses(origin, basis, coords, *, chunk, progress)`` (the run directories' rebuilt
problems do, with ``torch.func.vmap`` over the net), otherwise a :class:`ProblemLosses` that
converts each vector to the problem's own array type (its ``theta0``'s type, dtype and device,
or the centre's) and calls ``problem.loss`` once per point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from manifoldwalk._array import namespace, to_like, to_numpy

__all__ = ["ProblemLosses", "plane_evaluator"]


class ProblemLosses:
    """A problem's loss at numpy weight vectors, one ``problem.loss`` call per vector.

    Args:
        problem: Any Problem (``loss(θ)`` on its own array type).
        like: A θ of the problem (its array type, dtype and device are used).
    """

    def __init__(self, problem: Any, like: Any) -> None:
        self.problem = problem
        self.like = like
        self._xp = namespace(like)

    def theta(self, vector: np.ndarray) -> Any:
        """A numpy vector as the problem's θ (the array type, dtype and device of ``like``).

        Args:
            vector: ``(P,)`` values.

        Returns:
            The θ.
        """
        return to_like(self._xp, np.asarray(vector), self.like, self.like.dtype)

    def loss(self, vector: np.ndarray) -> float:
        """The problem's loss at a numpy weight vector.

        Args:
            vector: ``(P,)`` values.

        Returns:
            L as a float.
        """
        return float(to_numpy(self.problem.loss(self.theta(vector))))

    def plane_losses(
        self,
        origin: np.ndarray,
        basis: np.ndarray,
        coords: np.ndarray,
        *,
        chunk: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Losses at ``origin + c · basis`` for every row ``c`` of ``coords``.

        Args:
            origin: ``(P,)``.
            basis: ``(k, P)``.
            coords: ``(m, k)``.
            chunk: Points between two progress reports.
            progress: Called as ``progress(done, m)``.

        Returns:
            ``(m,)`` float64 losses.
        """
        coords = np.atleast_2d(np.asarray(coords, np.float64))
        out = np.empty(len(coords))
        for i, c in enumerate(coords):
            out[i] = self.loss(origin + c @ basis)
            if progress is not None and ((i + 1) % chunk == 0 or i + 1 == len(coords)):
                progress(i + 1, len(coords))
        return out


def plane_evaluator(problem: Any, like: Any) -> Any:
    """What evaluates ``problem``'s loss over a plane: itself if it batches, else a loop.

    Args:
        problem: Any Problem, or an object with a batched ``plane_losses`` method.
        like: A θ of the problem (used when looping).

    Returns:
        An object with ``plane_losses(origin, basis, coords, *, chunk, progress)``.

    Raises:
        TypeError: ``problem`` has neither ``plane_losses`` nor ``loss``.
    """
    if callable(getattr(problem, "plane_losses", None)):
        return problem
    if not callable(getattr(problem, "loss", None)):
        raise TypeError(
            f"{type(problem).__name__} has no loss(θ): pass the Problem the walks were made on"
        )
    return ProblemLosses(problem, like)
