"""Hypothesis strategies for analytic constrained problems with known answers."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "manifoldwalk.testing needs hypothesis: pip install manifoldwalk[testing]"
    ) from err

from manifoldwalk.problems import Quadric, QuadricDistance


class AnalyticCase(NamedTuple):
    """A problem, a start on its level set, the level, and the exact minimiser (or None)."""

    problem: Quadric
    x0: np.ndarray
    level: float
    solution: np.ndarray | None


def _orthogonal(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


@st.composite
def ellipsoid_cases(
    draw: st.DrawFn,
    min_dim: int = 2,
    max_dim: int = 20,
    eig_range: tuple[float, float] = (1.0, 100.0),
    sphere: bool = False,
    level: float = 1.0,
) -> AnalyticCase:
    """Minimise cᵀx on {xᵀAx = level}: random SPD A (eigenvalues in ``eig_range``; the
    identity if ``sphere``), random c, a random start on the level set.

    The start is kept away from the two points where c is normal to the level set
    (the minimiser and the maximiser), where the walk has nowhere to go.
    """
    dim = draw(st.integers(min_dim, max_dim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if sphere:
        a = np.eye(dim)
    else:
        eigs = rng.uniform(*eig_range, dim)
        q = _orthogonal(rng, dim)
        a = q @ np.diag(eigs) @ q.T
        a = 0.5 * (a + a.T)
    c = rng.standard_normal(dim)
    problem = Quadric(a, None, c)
    x0 = problem.point_on_level(rng.standard_normal(dim), level)
    g, r = problem.grad(x0), problem.reg_grad(x0)
    cos = abs(g @ r) / (np.linalg.norm(g) * np.linalg.norm(r))
    from hypothesis import assume

    assume(cos < 0.99)  # not (nearly) at the maximiser or the minimiser already
    return AnalyticCase(problem, x0, level, problem.solution(level))


@st.composite
def sphere_distance_cases(
    draw: st.DrawFn, min_dim: int = 2, max_dim: int = 20, level: float = 1.0
) -> AnalyticCase:
    """The nearest point to p on the sphere {‖x‖² = level}: R = ‖x − p‖² (non-linear)."""
    dim = draw(st.integers(min_dim, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.standard_normal(dim) * draw(st.floats(0.2, 5.0))
    problem = QuadricDistance(np.eye(dim), p)
    x0 = problem.point_on_level(rng.standard_normal(dim), level)
    from hypothesis import assume

    cos = (x0 @ p) / (np.linalg.norm(x0) * np.linalg.norm(p))
    assume(cos > -0.99)  # not at the farthest point, where the walk has nowhere to go
    return AnalyticCase(problem, x0, level, problem.solution(level))
