"""check_gradient: the Taylor-remainder test on the analytic problems (slope 2 when right)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manifoldwalk import GradientCheck, check_gradient, make_problem
from manifoldwalk.problems import Circle, Quadric, QuadricDistance, Sphere


def random_quadric(seed: int, n: int) -> Quadric:
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return Quadric(m @ m.T + n * np.eye(n), rng.normal(size=n), rng.normal(size=n))


def scaled_gradient(problem, factor: float):
    """The same loss with its gradient multiplied by ``factor`` (a wrong gradient)."""
    return make_problem(problem.loss, lambda x: factor * problem.grad(x))


def test_result_fields():
    report = check_gradient(Circle(), np.array([0.6, 0.8]))
    assert isinstance(report, GradientCheck)
    assert report.t.shape == report.errors.shape == (51,)
    assert report.t[0] == pytest.approx(1e-8) and report.t[-1] == pytest.approx(1.0)
    assert len(report.window) == 11
    assert report.passed and "consistent" in report.message
    assert f"{report.slope:.3f}" in report.message


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 12), point_seed=st.integers(0, 1000))
def test_correct_gradient_has_slope_two(seed, n, point_seed):
    problem = random_quadric(seed, n)
    x = np.random.default_rng(point_seed).normal(size=n)
    report = check_gradient(problem, x, seed=point_seed)
    assert report.passed, report.message
    assert abs(report.slope - 2.0) <= 0.05


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 12),
    factor=st.sampled_from([1.1, 0.9, 1.5, -1.0]),
)
def test_wrong_gradient_has_slope_one(seed, n, factor):
    problem = random_quadric(seed, n)
    x = np.random.default_rng(seed).normal(size=n) + 1.0
    report = check_gradient(scaled_gradient(problem, factor), x, seed=seed)
    assert not report.passed
    assert abs(report.slope - 1.0) <= 0.1, report.message
    assert "NOT consistent" in report.message


@pytest.mark.parametrize(
    "problem",
    [Circle(), Sphere([1.0, -2.0, 0.5]), QuadricDistance(np.diag([1.0, 2.0, 3.0]), [1, 1, 1])],
    ids=["circle", "sphere", "quadric-distance"],
)
def test_analytic_problems_pass(problem):
    x = np.linspace(0.3, 0.9, problem.dim)
    assert check_gradient(problem, x).passed
    assert not check_gradient(scaled_gradient(problem, 1.1), x).passed


def test_float32_passes_on_the_resolved_steps():
    problem = random_quadric(0, 5)
    x = np.random.default_rng(1).normal(size=5).astype(np.float32)
    report = check_gradient(problem, x)
    assert report.passed, report.message
    assert report.t[report.window[0]] > 1e-5  # the smallest steps are below float32 rounding


def test_given_direction_is_used():
    problem = Circle()
    x = np.array([0.6, 0.8])
    d = np.array([1.0, 0.0])
    assert check_gradient(problem, x, direction=d).passed
    # along d the wrong gradient is right: only its component on d is tested
    wrong = make_problem(problem.loss, lambda v: problem.grad(v) + np.array([0.0, 1.0]))
    assert check_gradient(wrong, x, direction=d).passed
    assert not check_gradient(wrong, x, direction=np.array([0.0, 1.0])).passed


def test_linear_loss_is_exact_to_rounding():
    c = np.array([1.0, -2.0, 3.0])
    problem = make_problem(lambda x: c @ x, lambda x: c)
    report = check_gradient(problem, np.ones(3))
    assert report.passed and np.isnan(report.slope)
    assert "rounding floor" in report.message


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_non_finite_loss_fails():
    problem = make_problem(lambda x: np.log(x[0]), lambda x: np.array([1 / x[0], 0.0]))
    report = check_gradient(problem, np.array([0.5, 0.0]), direction=np.array([-1.0, 0.0]))
    assert not report.passed and "not finite" in report.message


def test_bad_arguments():
    x = np.array([0.6, 0.8])
    with pytest.raises(ValueError, match="t_range"):
        check_gradient(Circle(), x, t_range=(1.0, 1e-3))
    with pytest.raises(ValueError, match="window"):
        check_gradient(Circle(), x, window=2)
    with pytest.raises(ValueError, match="shape"):
        check_gradient(Circle(), x, direction=np.ones(3))
    with pytest.raises(ValueError, match="non-zero"):
        check_gradient(Circle(), x, direction=np.zeros(2))


def test_torch_arrays_stay_torch():
    torch = pytest.importorskip("torch")
    problem = random_quadric(3, 6)
    x = torch.linspace(-1, 1, 6, dtype=torch.float64)
    assert check_gradient(problem, x).passed
    assert not check_gradient(scaled_gradient(problem, 1.1), x).passed


# ---- below float64 ---------------------------------------------------------------------------


class Float32Quadric:
    """A random quadric evaluated in float32, with a float64 copy (``as_float64``) if asked."""

    def __init__(self, seed: int, n: int, factor: float = 1.0, copy: bool = True):
        self.exact, self.factor, self.copy = random_quadric(seed, n), factor, copy
        self.dtype = np.float32

    def loss(self, x):
        return np.asarray(self.exact.loss(x.astype(np.float64)), dtype=x.dtype)

    def grad(self, x):
        return (self.factor * self.exact.grad(x.astype(np.float64))).astype(x.dtype)

    def reg(self, x):
        return x @ x

    def reg_grad(self, x):
        return 2 * x

    def as_float64(self):
        return self if self.copy else None


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 12), copy=st.booleans())
def test_float32_correct_gradient_passes(seed, n, copy):
    problem = Float32Quadric(seed, n, copy=copy)
    x = np.random.default_rng(seed).normal(size=n).astype(np.float32)
    report = check_gradient(problem, x, seed=seed)
    assert report.passed, report.message
    assert ("float64 copy" in report.message) == copy


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 12),
    factor=st.sampled_from([1.1, 0.9, 1.5, -1.0]),
    copy=st.booleans(),
)
def test_float32_wrong_gradient_fails(seed, n, factor, copy):
    problem = Float32Quadric(seed, n, factor, copy=copy)
    x = (np.random.default_rng(seed).normal(size=n) + 1.0).astype(np.float32)
    report = check_gradient(problem, x, seed=seed)
    assert not report.passed, report.message
    assert "NOT consistent" in report.message


def test_float32_copy_can_be_declined():
    problem = Float32Quadric(0, 5)
    x = np.random.default_rng(1).normal(size=5).astype(np.float32)
    copied = check_gradient(problem, x)
    assert "float64 copy" in copied.message and copied.passed
    assert abs(copied.slope - 2.0) <= 0.05
    as_is = check_gradient(problem, x, float64=False)
    assert as_is.passed and "central differences" in as_is.message
    assert as_is.t[as_is.window[0]] > 1e-6  # the smallest steps do not resolve L's change


def test_float32_noisy_loss_within_measured_rounding():
    """Rounding noise far above float32's ulp (a long sum, say) widens the acceptance."""
    exact = random_quadric(4, 6)
    rng = np.random.default_rng(0)

    def loss(x):
        value = exact.loss(x.astype(np.float64))
        return np.float32(value * (1 + 2e-6 * rng.standard_normal()))

    def grad(x):
        return exact.grad(x.astype(np.float64)).astype(np.float32)

    x = np.random.default_rng(5).normal(size=6).astype(np.float32)
    for seed in range(20):
        assert check_gradient(make_problem(loss, grad), x, seed=seed).passed
    wrong = make_problem(loss, lambda v: 1.1 * grad(v))
    assert not check_gradient(wrong, x).passed


def test_float32_flat_loss_cannot_tell():
    problem = make_problem(lambda x: np.float32(1.0) + 0 * x[0], lambda x: np.zeros_like(x))
    report = check_gradient(problem, np.ones(3, dtype=np.float32))
    assert report.passed and "cannot tell" in report.message
