"""The analytic problems' closed-form answers, checked independently."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.optimize import NonlinearConstraint, minimize

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Quadric, QuadricDistance, is_local_min, kkt_residual
from manifoldwalk.testing import ellipsoid_cases


@given(case=ellipsoid_cases())
def test_quadric_solution_is_a_feasible_kkt_minimum_below_random_feasible_points(case):
    p, x = case.problem, case.solution
    assert p.loss(x) == pytest.approx(case.level, rel=1e-10)
    assert kkt_residual(p, x) < 1e-8
    assert is_local_min(p, x)
    rng = np.random.default_rng(0)
    others = [p.point_on_level(rng.standard_normal(p.dim)) for _ in range(50)]
    assert all(p.reg(x) <= p.reg(o) + 1e-12 for o in others)


@settings(max_examples=10)
@given(case=ellipsoid_cases(max_dim=6))
def test_walk_agrees_with_scipy_trust_constr_started_nearby(case):
    p = case.problem
    r = mw.walk(p, case.x0)
    constraint = NonlinearConstraint(
        p.loss, case.level, case.level, jac=p.grad, hess=lambda x, v: v[0] * p.loss_hessian()
    )
    start = np.asarray(r.theta) + 1e-2 * np.random.default_rng(1).standard_normal(p.dim)
    ref = minimize(
        p.reg,
        start,
        jac=p.reg_grad,
        hess=lambda x: p.reg_hessian(),
        method="trust-constr",
        constraints=[constraint],
        options={"gtol": 1e-10, "xtol": 1e-12, "maxiter": 5000},
    )
    assert np.linalg.norm(np.asarray(r.theta) - ref.x) < 1e-3


def test_circle_is_the_papers_problem():
    c = Circle()
    assert np.allclose(c.solution(1.0), -np.ones(2) / np.sqrt(2))
    assert c.loss(np.array([0.0, 1.0])) == 1.0 and c.reg(np.array([0.5, 0.25])) == 0.75


def test_distance_on_an_ellipsoid_has_no_closed_form_but_walks_to_a_kkt_local_minimum():
    p = QuadricDistance(np.diag([1.0, 4.0, 9.0]), p=np.array([2.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="closed form"):
        p.solution(1.0)
    x0 = p.point_on_level(np.array([-1.0, 1.0, 1.0]))
    r = mw.walk(p, x0)
    assert r.converged
    assert kkt_residual(p, np.asarray(r.theta)) < 1e-5
    assert is_local_min(p, np.asarray(r.theta))


def test_quadric_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        Quadric(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        Quadric(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="non-zero"):
        Quadric(np.eye(2), c=np.zeros(2))
    with pytest.raises(ValueError, match="positive-definite"):
        Quadric(np.diag([1.0, -1.0])).solution(1.0)
