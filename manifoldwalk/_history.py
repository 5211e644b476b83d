"""The walk's history record of a state: its columns, computed on the device, read on the host.

:func:`describe_values` builds a record as 0-d arrays (traceable, so a compiled loop can write
it into a device buffer); :func:`row_of` turns the host copy into the record's dict;
:func:`describe` does both.
"""

from __future__ import annotations

from collections.abc import Sequence

from manifoldwalk._array import (
    DEG,
    Array,
    angle_between,
    angle_from_rejection,
    dot,
    namespace,
    norm,
    reject,
    safe_divide,
    to_host,
)
from manifoldwalk.problem import Problem
from manifoldwalk.step import WalkState, as_scalar

HISTORY_COLUMNS = (
    "step",
    "n_predictor",
    "n_corrector",
    "n_grad_evals",
    "loss",
    "deviation",
    "reg",
    "angle",
    "lam",
    "kkt",
    "eta_p",
    "eta_c",
    "turn",
)
"""Columns of :attr:`WalkResult.history`, before any caller-supplied metrics."""

COUNT_COLUMNS = ("step", "n_predictor", "n_corrector", "n_grad_evals")
"""The history columns that are counts (recorded as ints)."""


def describe_values(problem: Problem, state: WalkState) -> tuple[Array, ...]:
    """The history record of a state as 0-d arrays in :data:`HISTORY_COLUMNS` order.

    Nothing is copied to the host, and nothing branches on values: the function runs
    eagerly or traced inside a compiled loop.

    Args:
        problem: the walk's problem (for R).
        state: the state.

    Returns:
        A tuple of 0-d arrays (counts are integer arrays, the rest θ's dtype).
    """
    g, gr = state.grad, problem.reg_grad(state.theta)
    xp = namespace(g)
    gr_g = dot(xp, gr, g)
    lam = -safe_divide(xp, gr_g, state.grad_sq)
    # ∇R's rejection from ∇L gives the KKT residual and the angle between them
    rejection = norm(xp, reject(xp, gr, g, state.grad_sq, gr_g))
    kkt = safe_divide(xp, rejection, norm(xp, gr))
    return (
        state.n_predictor + state.n_corrector,
        state.n_predictor,
        state.n_corrector,
        state.n_grad_evals,
        state.loss,
        xp.abs(state.loss - state.level),
        as_scalar(problem.reg(state.theta), state.loss),
        angle_from_rejection(xp, rejection, state.grad_sq, gr_g) * DEG,
        lam,
        kkt,
        state.predictor.eta,
        getattr(state.corrector, "eta", xp.zeros_like(state.loss)),  # 0: no step size (Newton)
        xp.where(
            state.predictor.started,
            angle_between(xp, state.pred, state.predictor.direction) * DEG,
            0.0,
        ),
    )


def describe_vector(problem: Problem, state: WalkState) -> Array:
    """:func:`describe_values` stacked into one 1-D array of θ's dtype (a buffer row)."""
    xp = namespace(state.theta)
    return xp.stack([xp.astype(v, state.theta.dtype) for v in describe_values(problem, state)])


def row_of(values: Sequence[float]) -> dict[str, float]:
    """The record dict of host values in :data:`HISTORY_COLUMNS` order (counts as ints)."""
    row = dict(zip(HISTORY_COLUMNS, (float(v) for v in values), strict=True))
    for k in COUNT_COLUMNS:
        row[k] = int(round(row[k]))
    return row


def describe(problem: Problem, state: WalkState) -> dict[str, float]:
    """The history record of a state.

    Counts, L, |L − L0|, R, the angle between ∇L and ∇R (degrees), λ, the KKT
    residual, the step sizes, and ``turn``: the angle (degrees) between the predictor
    direction about to be taken and the previous one (0 before the first).

    Args:
        problem: the walk's problem.
        state: the state.

    Returns:
        A dict keyed by :data:`HISTORY_COLUMNS` (one host synchronisation).
    """
    return row_of(to_host(*describe_values(problem, state)))
