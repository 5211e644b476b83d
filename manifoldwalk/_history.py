"""The walk's history record of a state: its columns, computed on the device, read on the host.

:func:`describe_values` builds a record as 0-d arrays (traceable, so a compiled loop can write
it into a device buffer); :func:`row_of` turns the host copy into the record's dict;
:func:`describe` does both; :func:`check_columns` checks a history read back (resuming, loading).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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


def check_columns(history: Any, what: str) -> None:
    """Check that ``history`` is a dict of 1-D numeric columns of one length whose count
    columns hold whole numbers (a resumed walk reads its rows back; a ragged or damaged
    history failed there with a raw ``IndexError`` or ``OverflowError``).

    Args:
        history: the history (a result's ``history``).
        what: what it is, for the message (``"resume_from: the result's history"``).

    Raises:
        ValueError: naming ``what``, the columns and what is wrong with them.
    """
    if not isinstance(history, Mapping):
        raise ValueError(f"{what} is a {type(history).__name__}, not a dict of columns.")
    lengths: dict[str, int] = {}
    for name, column in history.items():
        a = np.asarray(column)
        if not isinstance(name, str) or a.ndim != 1 or a.dtype.kind not in "biuf":
            raise ValueError(
                f"{what}: the column {name!r} has shape {a.shape} and dtype {a.dtype}; a history "
                "column is a 1-D array of numbers."
            )
        if name in COUNT_COLUMNS and (
            a.dtype.kind == "b" or not (np.all(np.isfinite(a)) and np.all(a == np.round(a)))
        ):
            raise ValueError(f"{what}: the count column {name!r} holds values that are not counts.")
        lengths[name] = a.shape[0]
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise ValueError(
            f"{what}: its columns have different lengths ({shown}); a history has one value "
            "per column in every row."
        )
    if any(lengths.values()) and "n_predictor" not in lengths:
        raise ValueError(f"{what} has rows but no 'n_predictor' column.")
