"""Property tests: walks on analytic problems reach the exact constrained optimum.

Drawn with the strategies of ``manifoldwalk.testing`` (random SPD ellipsoids of
dimension 2–20 with eigenvalues in [1, 100] at level 1, random objectives,
random starts on the level set).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import manifoldwalk as mw
from manifoldwalk.testing import (
    check_level_kept,
    check_reaches,
    check_reg_decreasing,
    check_stationary,
    ellipsoid_cases,
    reg_slack,
    sphere_distance_cases,
)

KKT_TOL = 1e-6
SCHEME_CASES = {
    "paper": {"scheme": "paper"},
    "newton": {"scheme": mw.get_scheme("paper", corrector="newton")},
    "default": {"scheme": "default"},
    "compensated": {"scheme": "compensated"},
}


def hessian_norm(problem) -> float:
    return float(np.linalg.norm(problem.loss_hessian(), 2))


def grad_norm(problem, level: float = 1.0) -> float:
    """A bound on ‖∇L‖ on the level set (within √τ): for L = (x − c)ᵀA(x − c),
    ‖∇L‖² = 4(x − c)ᵀA²(x − c) ≤ 2‖∇²L‖·L."""
    return float(np.sqrt(2 * hessian_norm(problem) * (level + 1e-5)))


def _walk_without_history(case, options: dict) -> mw.WalkResult:
    """The walk of a property that reads no history (its records would cost about a step)."""
    return mw.walk(
        case.problem,
        case.x0,
        **options,
        stop=mw.Stop(max_steps=200_000, kkt_tol=KKT_TOL),
        record=mw.Record(every=None),
    )


@pytest.mark.parametrize("options", SCHEME_CASES.values(), ids=SCHEME_CASES.keys())
@given(case=ellipsoid_cases())
def test_walk_reaches_the_exact_minimiser_on_ellipsoids(options, case):
    result = _walk_without_history(case, options)
    check_stationary(result, KKT_TOL)
    check_reaches(result, case.solution, 1e-3)
    check_level_kept(result, hessian_norm(case.problem), grad_norm(case.problem, case.level))


@pytest.mark.parametrize("options", SCHEME_CASES.values(), ids=SCHEME_CASES.keys())
@given(case=sphere_distance_cases())
def test_walk_finds_the_nearest_point_on_spheres(options, case):
    result = _walk_without_history(case, options)
    check_stationary(result, KKT_TOL)
    check_reaches(result, case.solution, 1e-3)
    check_level_kept(result, hessian_norm(case.problem), grad_norm(case.problem, case.level))


@pytest.mark.parametrize("options", SCHEME_CASES.values(), ids=SCHEME_CASES.keys())
@given(case=ellipsoid_cases(max_dim=10))
def test_reg_decreases_until_the_predictor_first_reverses(options, case):
    p = case.problem
    result = mw.walk(
        p, case.x0, **options, stop=mw.Stop(max_steps=200_000), record=mw.Record(every=1)
    )
    lam = float(np.max(np.abs(result.history["lam"])))
    lagrangian = np.linalg.norm(p.reg_hessian() + lam * p.loss_hessian(), 2)
    check_reg_decreasing(result, reg_slack(result, lagrangian))
    optimum = float(case.problem.reg(case.solution))
    assert abs(result.reg - optimum) <= 1e-3 * max(1.0, abs(optimum))
