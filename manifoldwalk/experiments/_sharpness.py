"""The sharpness of a seed's nets: the largest Hessian eigenvalue of the training loss.

Measured by :func:`manifoldwalk.curvature.top_eigenvalues` (Lanczos, from Hessian-vector
products on the framework's device) twice at each point: for the full Hessian and on the level
set's tangent space (∇L projected out: the curvature the walk sees). :func:`seed_sharpness`
measures phase 1's θ0 (the walk's start), the walk's final θ and every weight-decay net trained
on the full training set, for ``summary.json``; :func:`along_walk` gives the walk's metrics
that measure every N-th history record (the ``sharpness`` columns of ``metrics.csv``).

Every measurement starts Lanczos from the same seeded vector, so a rerun gives the same numbers.
A Lanczos run takes at most :data:`MAX_HVP` products, each costing about two to three gradient
evaluations; a point (both runs) took 6–15 on iris-ff and 20–22 on mnist5k-ff.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy

__all__ = [
    "COLUMNS",
    "MAX_HVP",
    "SEED",
    "TOL",
    "along_walk",
    "measure",
    "seed_sharpness",
]

TOL = 1e-4
"""Lanczos stops once the Ritz residual is ≤ TOL·|λ₁| (the value is then that close or
closer); reachable in float32."""

SEED = 0
"""The seed of Lanczos' starting vector: fixed, so that a rerun measures the same number."""

MAX_HVP = 60
"""Hessian-vector products per Lanczos run at most (:func:`top_eigenvalues`' default for k=1)."""

COLUMNS = ("sharpness", "sharpness_tangent")
"""The history columns (and ``metrics.csv`` columns): full Hessian, tangent space."""


def _largest(problem: Any, theta: Any, tangent: bool, exact: bool) -> tuple[float, bool, int]:
    """The largest eigenvalue, whether Lanczos converged, and its Hessian-vector products;
    NaN where the tangent space is undefined (∇L = 0)."""
    from manifoldwalk import curvature
    from manifoldwalk.problem import ProblemError

    try:
        top = curvature.top_eigenvalues(
            problem,
            theta,
            1,
            tangent=tangent,
            tol=TOL,
            max_iter=MAX_HVP,
            seed=SEED,
            finite_difference=not exact,
        )
    except ProblemError:  # ∇L(θ) = 0: the level set has no tangent space there
        return math.nan, False, 0
    return float(top.values[0]), bool(top.converged), int(top.n_hvp)


def measure(problem: Any, theta: Any) -> dict[str, Any]:
    """The sharpness at one point: full Hessian and tangent space.

    Args:
        problem: The training loss's Problem (its ``hvp`` is used; without one, central
            differences of the gradient).
        theta: The point, the problem's flat θ.

    Returns:
        ``{"full", "tangent"}`` (the largest eigenvalues; ``tangent`` NaN where ∇L = 0),
        ``"converged"`` (both Lanczos runs reached :data:`TOL`) and ``"n_hvp"`` (the
        Hessian-vector products used).
    """
    exact = callable(getattr(problem, "hvp", None))
    full, ok_full, n_full = _largest(problem, theta, False, exact)
    tangent, ok_tangent, n_tangent = _largest(problem, theta, True, exact)
    out: dict[str, Any] = {
        "full": full,
        "tangent": tangent,
        "converged": ok_full and ok_tangent,
        "n_hvp": n_full + n_tangent,
    }
    if math.isnan(tangent):
        out["tangent_note"] = "nan: ∇L = 0 here, so the level set has no tangent space"
    return out


def along_walk(problem: Any, every: int, done: int) -> dict[str, Callable[[Any], float]]:
    """The walk's metrics measuring the sharpness at every ``every``-th history record.

    The records are counted from the walk's first (record 0, phase 1's θ0, is measured), so a
    resumed walk continues the schedule: ``done`` is the number of records it already holds.
    Records between are NaN (not measured). Both metrics share one measurement per record.

    Args:
        problem: The walk's problem.
        every: Measure records 0, every, 2·every, … (≥ 1).
        done: Records the walk holds already (0 for a walk from its start).

    Returns:
        ``{"sharpness": θ ↦ full, "sharpness_tangent": θ ↦ tangent}``, for
        ``Record(metrics=…)``.
    """
    state: dict[str, Any] = {"theta": None, "count": done, "value": (math.nan, math.nan)}

    def at(theta: Any) -> tuple[float, float]:
        # one count per record: the metrics of a record all get the same θ object
        if state["theta"] is not theta:
            state["theta"] = theta
            due = state["count"] % every == 0
            state["count"] += 1
            m = measure(problem, theta) if due else {"full": math.nan, "tangent": math.nan}
            state["value"] = (m["full"], m["tangent"])
        return state["value"]

    return {COLUMNS[0]: lambda t: at(t)[0], COLUMNS[1]: lambda t: at(t)[1]}


def _wd_theta(files: Any, name: str) -> np.ndarray:
    with np.load(io.BytesIO(files.read_bytes(name)), allow_pickle=False) as f:
        return np.asarray(f["theta"])


def seed_sharpness(
    backend: Any,
    problem: Any,
    theta0: Any,
    theta: Any,
    lambdas: Iterable[float],
    files: Any,
    every: int | None,
) -> dict[str, Any]:
    """The sharpness record of a finished seed (``summary.json``'s ``sharpness``).

    Args:
        backend: The experiment backend (turns a saved weight-decay θ into the problem's).
        problem: The walk's problem (the training loss on the full training set).
        theta0: Phase 1's θ, where the walk started.
        theta: The walk's final θ (the framework's, or numpy: a walk loaded from its
            checkpoint).
        lambdas: The weight-decay λ list; the net of λ number i is ``wd/full-<i>.npz``.
        files: The seed's run files.
        every: The ``--sharpness-every`` of the session that finished the seed (None: the
            default; 0: no sharpness).

    Returns:
        ``start`` and ``end`` (see :func:`measure`), ``wd`` (one :func:`measure` per λ, with
        its ``lam``), ``tol``, ``seed``, ``hvp`` (``"exact"`` or ``"finite differences"``),
        ``every`` and ``wall_time`` (s); with ``every`` 0, only ``every`` and ``wall_time``.
    """
    if every == 0:
        return {"every": 0, "wall_time": 0.0}
    start = time.perf_counter()
    wd = []
    for i, lam in enumerate(lambdas):
        at = backend.from_numpy(_wd_theta(files, f"wd/full-{i:02d}.npz"), theta0)
        wd.append({"lam": float(lam), **measure(problem, at)})
    end = backend.from_numpy(np.asarray(to_numpy(theta)), theta0)
    record = {
        "start": measure(problem, theta0),
        "end": measure(problem, end),
        "wd": wd,
        "tol": TOL,
        "seed": SEED,
        "hvp": "exact" if callable(getattr(problem, "hvp", None)) else "finite differences",
        "every": every,
    }
    record["wall_time"] = time.perf_counter() - start
    return record
