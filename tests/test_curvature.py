"""manifoldwalk.curvature against exact spectra and traces of quadrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk import curvature
from manifoldwalk.problem import ProblemError
from manifoldwalk.problems import Circle, Quadric


@st.composite
def quadrics(draw: st.DrawFn) -> tuple[Quadric, np.ndarray, np.ndarray]:
    """A quadric with eigenvalues drawn from a small set (so repeats occur), and a point."""
    n = draw(st.integers(2, 9))
    values = np.array(
        draw(st.lists(st.sampled_from([-3.0, -0.5, 0.25, 1.0, 2.0, 7.0]), min_size=n, max_size=n))
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = q @ np.diag(values) @ q.T
    a = 0.5 * (a + a.T)
    return Quadric(a), rng.standard_normal(n), values


def tangent_spectrum(problem: Quadric, x: np.ndarray) -> np.ndarray:
    """The eigenvalues of ∇²L on the tangent space at x, from an orthonormal basis of it."""
    g = problem.grad(x)
    basis = np.linalg.svd(np.eye(len(x)) - np.outer(g, g) / (g @ g))[0][:, : len(x) - 1]
    return np.sort(np.linalg.eigvalsh(basis.T @ problem.loss_hessian() @ basis))[::-1]


@settings(max_examples=60, deadline=None)
@given(quadrics(), st.integers(1, 4))
def test_top_eigenvalues_exact_on_quadrics_with_repeats(case, k):
    problem, x, values = case
    k = min(k, len(x))
    found = curvature.top_eigenvalues(problem, x, k)
    exact = np.sort(2.0 * values)[::-1][:k]
    np.testing.assert_allclose(found.values, exact, atol=1e-9 * max(1.0, abs(exact[0])))
    assert found.converged and not found.tangent


@settings(max_examples=60, deadline=None)
@given(quadrics(), st.integers(1, 3))
def test_tangent_eigenvalues_are_those_of_the_restricted_hessian(case, k):
    problem, x, _ = case
    k = min(k, len(x) - 1)
    found = curvature.top_eigenvalues(problem, x, k, tangent=True)
    exact = tangent_spectrum(problem, x)[:k]
    np.testing.assert_allclose(found.values, exact, atol=1e-9 * max(1.0, abs(exact[0])))
    assert found.tangent


@settings(max_examples=60, deadline=None)
@given(quadrics())
def test_exact_traces(case):
    problem, x, values = case
    assert curvature.hessian_trace(problem, x, exact=True).value == pytest.approx(
        2.0 * values.sum(), abs=1e-9
    )
    restricted = curvature.hessian_trace(problem, x, tangent=True, exact=True)
    assert restricted.value == pytest.approx(tangent_spectrum(problem, x).sum(), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=12),
    st.integers(1, 5),
    st.integers(0, 1000),
)
def test_hutchinson_is_exact_for_a_diagonal_hessian(diag, n_samples, seed):
    # zᵀDz = tr D for every Rademacher z: the estimate has no variance
    problem = Quadric(np.diag(diag))
    est = curvature.hessian_trace(problem, np.ones(len(diag)), n_samples=n_samples, seed=seed)
    assert est.value == pytest.approx(2.0 * sum(diag), abs=1e-9)
    assert est.n_hvp == n_samples and not est.exact


def test_hutchinson_is_unbiased_within_its_standard_error():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    problem = Quadric(q @ np.diag(rng.uniform(-1, 4, 40)) @ q.T)
    x = rng.standard_normal(40)
    for tangent in (False, True):
        exact = curvature.hessian_trace(problem, x, tangent=tangent, exact=True).value
        est = curvature.hessian_trace(problem, x, tangent=tangent, n_samples=400, seed=1)
        assert 0 < est.stderr < 0.2 * abs(exact)
        assert abs(est.value - exact) < 4 * est.stderr


def test_lanczos_converges_before_exhausting_a_large_problem():
    rng = np.random.default_rng(2)
    n = 400
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    values = np.concatenate([[10.0, 9.0, 8.0], rng.uniform(-1, 1, n - 3)])
    problem = Quadric(q @ np.diag(values) @ q.T)
    found = curvature.top_eigenvalues(problem, rng.standard_normal(n), 3, tol=1e-8)
    np.testing.assert_allclose(found.values, [20.0, 18.0, 16.0], rtol=1e-7)
    assert found.converged and found.n_hvp < 100


class _GradientOnly:
    """A quadric seen through its gradient alone (no hvp method)."""

    def __init__(self, problem: Quadric) -> None:
        self.grad = problem.grad


def test_finite_differences_without_an_hvp_method():
    problem, x = Quadric(np.diag([3.0, 1.0, -2.0])), np.array([0.3, -1.0, 2.0])
    with pytest.raises(ProblemError, match="finite_difference=True"):
        curvature.top_eigenvalues(_GradientOnly(problem), x)
    found = curvature.top_eigenvalues(_GradientOnly(problem), x, 2, finite_difference=True)
    np.testing.assert_allclose(found.values, [6.0, 2.0], rtol=1e-6)


def test_bad_arguments_are_named():
    problem, x = Circle(), np.array([0.6, 0.8])
    with pytest.raises(ValueError, match="k = 2 exceeds"):
        curvature.top_eigenvalues(problem, x, 2, tangent=True)
    with pytest.raises(ValueError, match="k must be"):
        curvature.top_eigenvalues(problem, x, 0)
    with pytest.raises(ValueError, match="n_samples"):
        curvature.hessian_trace(problem, x, n_samples=0)
    with pytest.raises(ProblemError, match="tangent space"):
        curvature.top_eigenvalues(problem, np.zeros(2), tangent=True)


def test_torch_arrays_give_the_numpy_answer():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    problem = Quadric(q @ np.diag([4.0, 4.0, 1.0, 0.5, -1.0, 2.0]) @ q.T)
    x = rng.standard_normal(6)
    for tangent in (False, True):
        ref = curvature.top_eigenvalues(problem, x, 2, tangent=tangent).values
        got = curvature.top_eigenvalues(problem, torch.tensor(x), 2, tangent=tangent).values
        np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_sharpness_as_a_walk_metric():
    # L = |x|² has ∇²L = 2I: the sharpness on the circle's tangent line is 2 at every point
    problem = Circle()
    result = mw.walk(
        problem,
        np.array([0.0, 1.0]),
        stop=mw.Stop(max_steps=30),
        record=mw.Record(every=5, metrics={"sharpness": curvature.sharpness(problem)}),
    )
    column = np.asarray(result.history["sharpness"])
    assert len(column) >= 3
    np.testing.assert_allclose(column, 2.0, rtol=1e-12)
