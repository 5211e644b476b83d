"""Walks that hold several constraints at once: exact optima on analytic intersections, the
level kept for every constraint, dependent constraints named, k = 1 equal to today's walk,
array types, records and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk._array import namespace
from manifoldwalk.problems import (
    Circle,
    EllipsoidHyperplane,
    Quadric,
    Sphere,
    SphereHyperplane,
    TwoSpheres,
)

TIGHT = mw.Tolerance(rtol=1e-10)
KKT_TOL = 1e-9


# --- drawn intersections ---------------------------------------------------------------------


def _ellipsoid_matrix(rng: np.random.Generator, n: int, sphere: bool) -> np.ndarray:
    if sphere:
        return np.eye(n)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = q @ np.diag(rng.uniform(1.0, 20.0, n)) @ q.T
    return 0.5 * (a + a.T)


class Permuted:
    """A k-constraint problem with its constraints in another order (levels given in that
    order too), so that a curved constraint is not always constraint 0."""

    def __init__(self, problem, order):
        self.problem, self.order = problem, np.asarray(order)
        self.n_constraints = len(order)

    def _original(self, levels):
        out = np.empty(len(self.order))
        out[self.order] = levels
        return out

    def losses_and_jacobian(self, x):
        losses, jac = self.problem.losses_and_jacobian(x)
        return losses[self.order], jac[self.order]

    def reg(self, x):
        return self.problem.reg(x)

    def reg_grad(self, x):
        return self.problem.reg_grad(x)

    def solution(self, levels):
        return self.problem.solution(self._original(levels))

    def point_on_levels(self, u, levels):
        return self.problem.point_on_levels(u, self._original(levels))


def _permuted(problem, levels, x0, rng):
    order = rng.permutation(len(levels))
    return Permuted(problem, order), levels[order], x0


@st.composite
def hyperplane_cases(draw, sphere: bool, permute: bool = True):
    """(problem, levels, start): an ellipsoid (or sphere) of dimension 3..8 cut by 1..3
    hyperplanes through a drawn point of it, a start drawn on the intersection; the constraints
    in a drawn order where ``permute``."""
    n = draw(st.integers(3, 8))
    m = draw(st.integers(1, min(3, n - 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = _ellipsoid_matrix(rng, n, sphere)
    a, c = rng.standard_normal((m, n)), rng.standard_normal(n)
    rho = draw(st.floats(0.5, 5.0))
    u = rng.standard_normal(n)
    z = u * np.sqrt(rho / (u @ A @ u))  # a point of the ellipsoid the hyperplanes pass through
    problem = SphereHyperplane(a, c) if sphere else EllipsoidHyperplane(A, a, c)
    levels = np.concatenate([[rho], a @ z])
    _, r2 = problem.centre_and_radius_sq(levels)
    assume(r2 > 0.05 * rho)  # a slice of some size, not a near-tangent one
    x0 = problem.point_on_levels(rng.standard_normal(n), levels)
    return _permuted(problem, levels, x0, rng) if permute else (problem, levels, x0)


@st.composite
def two_sphere_cases(draw):
    """(problem, levels, start): the spheres ‖x‖² = ρ0 and ‖x − p‖² = ρ1 through a drawn point,
    in a drawn order."""
    n = draw(st.integers(3, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p, c = rng.standard_normal(n) * draw(st.floats(0.3, 3.0)), rng.standard_normal(n)
    z = rng.standard_normal(n) * draw(st.floats(0.5, 2.0))
    problem = TwoSpheres(p, c)
    levels = np.array([z @ z, (z - p) @ (z - p)])
    _, r2 = problem._slice.centre_and_radius_sq(problem.plane_levels(levels))
    assume(r2 > 0.05 * levels[0])
    x0 = problem.point_on_levels(rng.standard_normal(n), levels)
    return _permuted(problem, levels, x0, rng)


def _away_from_the_optimum(problem, levels, x0) -> None:
    """Skip a start (nearly) at the minimiser, or at the maximiser, where r has no tangent part."""
    x_star = problem.solution(levels)
    assume(np.linalg.norm(x0 - x_star) > 1e-3 * max(1.0, np.linalg.norm(x_star)))
    _, jac = problem.losses_and_jacobian(x0)
    c = problem.reg_grad(x0)
    residual = c - jac.T @ np.linalg.lstsq(jac.T, c, rcond=None)[0]
    assume(np.linalg.norm(residual) > 1e-2 * np.linalg.norm(c))


def _check_on_every_level(problem, result, levels) -> None:
    """Every kept point holds every constraint within the result's bound (L recomputed here)."""
    bounds = np.asarray(result.tolerance)
    for theta in np.asarray(result.trajectory):
        losses, _ = problem.losses_and_jacobian(theta)
        assert np.all(np.abs(losses - levels) <= bounds), (losses - levels, bounds)
    dev = np.stack([result.history[f"deviation_{i}"] for i in range(len(levels))], axis=1)
    assert np.all(dev <= bounds)


def _walk_to_the_optimum(problem, levels, x0) -> None:
    _away_from_the_optimum(problem, levels, x0)
    result = mw.walk_constrained(
        problem,
        x0,
        tolerance=TIGHT,
        stop=mw.Stop(kkt_tol=KKT_TOL, max_steps=5_000),
        record=mw.Record(every=1, trajectory_every=1),
    )
    assert result.converged, result.message
    x_star = problem.solution(levels)
    assert np.linalg.norm(result.theta - x_star) <= 1e-6 * max(1.0, np.linalg.norm(x_star))
    assert result.level == pytest.approx(list(levels), rel=1e-12, abs=1e-12)
    _check_on_every_level(problem, result, levels)


@settings(max_examples=20)
@given(case=hyperplane_cases(sphere=True))
def test_sphere_cut_by_hyperplanes_walks_to_the_exact_minimiser(case):
    _walk_to_the_optimum(*case)


@settings(max_examples=20)
@given(case=hyperplane_cases(sphere=False))
def test_ellipsoid_cut_by_hyperplanes_walks_to_the_exact_minimiser(case):
    _walk_to_the_optimum(*case)


@settings(max_examples=20)
@given(case=two_sphere_cases())
def test_two_spheres_walk_to_the_exact_minimiser(case):
    _walk_to_the_optimum(*case)


# --- the closed forms themselves -------------------------------------------------------------


@settings(max_examples=20)
@given(case=st.one_of(hyperplane_cases(sphere=False), two_sphere_cases()))
def test_closed_forms_are_feasible_stationary_and_below_other_points(case):
    problem, levels, _ = case
    x_star = problem.solution(levels)
    losses, jac = problem.losses_and_jacobian(x_star)
    np.testing.assert_allclose(losses, levels, rtol=1e-10, atol=1e-10)
    c = problem.reg_grad(x_star)
    residual = c - jac.T @ np.linalg.lstsq(jac.T, c, rcond=None)[0]
    assert np.linalg.norm(residual) <= 1e-9 * np.linalg.norm(c)
    rng = np.random.default_rng(0)
    others = [
        problem.point_on_levels(rng.standard_normal(x_star.shape[0]), levels) for _ in range(50)
    ]
    assert problem.reg(x_star) <= min(problem.reg(x) for x in others) + 1e-12


@settings(max_examples=20)
@given(case=hyperplane_cases(sphere=True, permute=False))
def test_the_sphere_formula_equals_the_ellipsoid_reduction(case):
    problem, levels, _ = case
    ellipsoid = EllipsoidHyperplane(np.eye(problem.dim), problem.planes, problem.c)
    np.testing.assert_allclose(problem.solution(levels), ellipsoid.solution(levels), atol=1e-12)


def test_problems_refuse_empty_intersections_and_bad_shapes():
    p = SphereHyperplane([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="empty or one point"):
        p.solution([1.0, 2.0])
    with pytest.raises(ValueError, match="levels must be"):
        p.solution([1.0])
    with pytest.raises(ValueError, match="at most n − 2"):
        SphereHyperplane(np.eye(3)[:2], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="span of the hyperplanes"):
        SphereHyperplane([1.0, 0.0, 0.0], [2.0, 0.0, 0.0])


# --- dependent constraints -------------------------------------------------------------------


def test_the_same_constraint_twice_is_refused_naming_both():
    p = Sphere([1.0, 2.0, 3.0])
    with pytest.raises(mw.ProblemError, match="constraints 0 and 1 became dependent"):
        mw.walk_constrained(mw.stack([p, p]), np.array([1.0, 0.0, 0.0]))


def test_a_tangent_hyperplane_is_refused_naming_both():
    a = np.array([1.0, 1.0, 0.0])
    p = SphereHyperplane(a, [0.0, 0.0, 1.0])
    touch = 2.0 * a / np.linalg.norm(a)  # ‖x‖² = 4 and aᵀx = 2‖a‖ meet only here
    with pytest.raises(mw.ProblemError, match="constraints 0 and 1 became dependent"):
        mw.walk_constrained(p, touch, levels=[4.0, 2.0 * np.linalg.norm(a)])


class Crossing:
    """{x2 = 0, x3 = 0, x2 − x0·x1 = 0}: two lines crossing at the origin, where the gradients
    of constraints 0 and 2 coincide; constraint 1 stays independent."""

    n_constraints = 3

    def losses_and_jacobian(self, x):
        losses = np.array([x[2], x[3], x[2] - x[0] * x[1]])
        jac = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [-x[1], -x[0], 1, 0]], dtype=float)
        return losses, jac

    def reg(self, x):
        return x @ x

    def reg_grad(self, x):
        return 2 * x


def test_walking_into_a_crossing_stops_naming_the_dependent_constraints():
    result = mw.walk_constrained(
        Crossing(),
        np.array([1.0, 0.0, 0.0, 0.0]),
        direction=mw.TowardTarget(np.zeros(4)),
        tolerance=mw.Tolerance(atol=1e-12),
        stop=mw.Stop(singular_tol=1e-8),
    )
    assert result.stop_reason == "singular", result.message
    assert "constraints 0 and 2 became dependent" in result.message
    # θ is the last regular point: the smallest normalised Gram eigenvalue there is ≈ x0²/4
    assert 1e-5 < abs(result.theta[0]) < 1.0
    assert np.all(result.theta[1:] == 0)


# --- k = 1 is today's walk -------------------------------------------------------------------


class OneConstraint:
    """A Problem as a 1-constraint problem: its loss and gradient as L (1,) and J (1, P)."""

    def __init__(self, problem):
        self.problem = problem

    def losses_and_jacobian(self, x):
        loss, grad = self.problem.loss_and_grad(x)
        return np.reshape(loss, (1,)), np.reshape(grad, (1, -1))

    def reg(self, x):
        return self.problem.reg(x)

    def reg_grad(self, x):
        return self.problem.reg_grad(x)


def test_a_stack_of_one_is_the_problem_and_walks_bit_for_bit():
    p = Circle()
    assert mw.stack([p]) is p and not mw.is_multi_constraint(p)
    x0 = np.array([0.0, 1.0])
    a = mw.walk(p, x0, stop=mw.Stop(max_steps=300))
    b = mw.walk_constrained(mw.stack([p]), x0, stop=mw.Stop(max_steps=300))
    assert np.array_equal(a.theta, b.theta) and a.stop_reason == b.stop_reason
    for name, column in a.history.items():
        assert np.array_equal(column, b.history[name]), name
    c = mw.walk_constrained(p, x0, levels=[0.5], stop=mw.Stop(max_steps=300))
    assert np.array_equal(c.theta, mw.walk(p, x0, level=0.5, stop=mw.Stop(max_steps=300)).theta)


@pytest.mark.parametrize("scheme", ["default", "paper+newton"])
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 8))
def test_the_k_constraint_path_with_one_constraint_follows_todays_walk(scheme, seed, n):
    # "paper+newton": the paper's step rule, η_p reset after each correction, absolute τ
    scheme = mw.get_scheme("paper", corrector="newton") if scheme == "paper+newton" else scheme
    rng = np.random.default_rng(seed)
    p = Quadric(_ellipsoid_matrix(rng, n, sphere=False), None, rng.standard_normal(n))
    x0 = p.point_on_level(rng.standard_normal(n), 1.0)
    stop = mw.Stop(max_steps=60)
    a = mw.walk(p, x0, scheme=scheme, stop=stop)
    b = mw.walk_constrained(OneConstraint(p), x0, scheme=scheme, stop=stop)
    assert (a.stop_reason, a.n_predictor, a.n_corrector) == (
        b.stop_reason,
        b.n_predictor,
        b.n_corrector,
    )
    assert np.array_equal(a.history["n_corrector"], b.history["n_corrector"])
    np.testing.assert_allclose(b.theta, a.theta, atol=1e-10)
    np.testing.assert_allclose(b.history["reg"], a.history["reg"], atol=1e-10)
    np.testing.assert_allclose(b.history["kkt"], a.history["kkt"], atol=1e-8)


def test_is_multi_constraint_tells_the_kinds_apart():
    both = SphereHyperplane([1.0, 0.0, 0.0], [0.0, 1.0, 1.0])
    both.loss_and_grad = Circle().loss_and_grad  # a Jacobian method wins over loss_and_grad
    one = OneConstraint(Circle())
    one.n_constraints = 1
    assert mw.is_multi_constraint(both) and mw.is_multi_constraint(mw.stack([Circle(), Circle()]))
    assert not mw.is_multi_constraint(Circle()) and not mw.is_multi_constraint(one)


# --- stack and array types -------------------------------------------------------------------


def _plane(a: np.ndarray):
    def loss_and_grad(x):
        xp = namespace(x)
        const = xp.asarray(a, dtype=x.dtype)
        return xp.sum(const * x), const + 0 * x

    return mw.make_problem(loss_and_grad=loss_and_grad)


def test_a_stack_walks_as_the_analytic_intersection():
    rng = np.random.default_rng(7)
    a, c = rng.standard_normal(5), rng.standard_normal(5)
    analytic = SphereHyperplane(a, c)
    stacked = mw.stack([Sphere(c), _plane(a)])
    levels = np.array([2.0, 0.4])
    x0 = analytic.point_on_levels(rng.standard_normal(5), levels)
    stop = mw.Stop(max_steps=80)
    ra = mw.walk_constrained(analytic, x0, stop=stop)
    rs = mw.walk_constrained(stacked, x0, stop=stop)
    assert (ra.n_predictor, ra.n_corrector) == (rs.n_predictor, rs.n_corrector)
    np.testing.assert_allclose(rs.theta, ra.theta, atol=1e-10)


def _ellipsoid_slice(seed: int = 11, n: int = 6):
    rng = np.random.default_rng(seed)
    A, a = _ellipsoid_matrix(rng, n, False), rng.standard_normal((2, n))
    problem = EllipsoidHyperplane(A, a, rng.standard_normal(n))
    z = rng.standard_normal(n)
    z *= np.sqrt(2.0 / (z @ A @ z))
    levels = np.concatenate([[2.0], a @ z])
    return problem, levels, problem.point_on_levels(rng.standard_normal(n), levels)


def test_torch_arrays_give_the_numpy_answer():
    torch = pytest.importorskip("torch")
    problem, levels, x0 = _ellipsoid_slice()
    options = dict(tolerance=TIGHT, stop=mw.Stop(kkt_tol=KKT_TOL), record=mw.Record(every=5))
    ref = mw.walk_constrained(problem, x0, **options)
    on_torch = mw.walk_constrained(problem, torch.tensor(x0), **options)
    assert isinstance(on_torch.theta, torch.Tensor) and on_torch.theta.dtype == torch.float64
    assert (on_torch.stop_reason, on_torch.n_predictor) == (ref.stop_reason, ref.n_predictor)
    np.testing.assert_allclose(on_torch.theta.numpy(), ref.theta, atol=1e-9)
    np.testing.assert_allclose(ref.theta, problem.solution(levels), atol=1e-6)


def test_jax_arrays_take_the_numpy_path():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as tests/test_array_backends.py
    problem, _, x0 = _ellipsoid_slice()
    options = dict(stop=mw.Stop(max_steps=15), record=mw.Record(every=1))
    ref = mw.walk_constrained(problem, x0, **options)
    on_jax = mw.walk_constrained(problem, jax.numpy.asarray(x0), **options)
    assert isinstance(on_jax.theta, jax.Array) and on_jax.theta.dtype == jax.numpy.float64
    assert np.array_equal(on_jax.history["n_corrector"], ref.history["n_corrector"])
    np.testing.assert_allclose(np.asarray(on_jax.theta), ref.theta, atol=1e-10)


def test_a_stack_of_torch_problems_walks_on_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, c = rng.standard_normal(4), rng.standard_normal(4)
    stacked = mw.stack([Sphere(c), _plane(a)])
    x0 = SphereHyperplane(a, c).point_on_levels(rng.standard_normal(4), [1.0, 0.2])
    r = mw.walk_constrained(
        stacked, torch.tensor(x0), tolerance=TIGHT, stop=mw.Stop(kkt_tol=KKT_TOL)
    )
    assert isinstance(r.theta, torch.Tensor)
    np.testing.assert_allclose(
        r.theta.numpy(), SphereHyperplane(a, c).solution([1.0, 0.2]), atol=1e-6
    )


# --- stops, records, options -----------------------------------------------------------------


def _slice_case(seed: int = 5, n: int = 5):
    rng = np.random.default_rng(seed)
    problem = SphereHyperplane(rng.standard_normal(n), rng.standard_normal(n))
    levels = np.array([3.0, 0.5])
    return problem, levels, problem.point_on_levels(rng.standard_normal(n), levels)


def test_records_trajectory_metrics_and_callback_are_honoured(tmp_path):
    problem, levels, x0 = _slice_case()
    seen = []

    def callback(row):
        seen.append(row["n_predictor"])
        return row["n_predictor"] >= 12

    result = mw.walk_constrained(
        problem,
        x0,
        record=mw.Record(
            every=4, trajectory_every=3, metrics={"norm": np.linalg.norm}, callback=callback
        ),
    )
    assert result.stop_reason == "callback" and seen == [0, 4, 8, 12]
    h = result.history
    assert list(h["n_predictor"]) == [0, 4, 8, 12]
    assert set(mw.multi.history_columns(2)) <= set(h) and "norm" in h
    np.testing.assert_allclose(h["norm"][-1], np.linalg.norm(result.theta))
    assert np.asarray(result.trajectory).shape == (5, 5)  # points 0, 3, 6, 9, 12
    np.testing.assert_array_equal(np.asarray(result.trajectory)[-1], result.theta)
    assert len(result.level) == len(result.lam) == len(result.tolerance) == 2
    result.save(tmp_path / "r.npz")
    loaded = mw.WalkResult.load(tmp_path / "r.npz")
    assert loaded.level == result.level and loaded.stop_reason == "callback"
    np.testing.assert_array_equal(loaded.history["lam_1"], h["lam_1"])


def test_a_random_walk_stays_on_every_level_to_its_budget():
    problem, levels, x0 = _slice_case(8, 6)
    scheme = mw.get_scheme("default", predictor_step=mw.ConstantStep(0.05))
    result = mw.walk_constrained(
        problem,
        x0,
        scheme=scheme,
        direction=mw.RandomWalk(1),
        stop=mw.Stop(max_steps=40),
        record=mw.Record(trajectory_every=1),
    )
    assert result.stop_reason == "max_steps" and result.n_predictor == 40
    _check_on_every_level(problem, result, levels)
    assert np.linalg.norm(result.theta - x0) > 0.1  # it moved


def test_a_target_on_the_intersection_is_reached():
    problem, levels, x0 = _slice_case()
    target = problem.point_on_levels(np.arange(5.0), levels)
    result = mw.walk_constrained(
        problem,
        x0,
        direction=mw.TowardTarget(target),
        tolerance=TIGHT,
        stop=mw.Stop(max_steps=2000),
    )
    assert result.stop_reason == "reached_target", result.message
    assert np.linalg.norm(result.theta - target) <= 1e-5 * max(1.0, np.linalg.norm(target))


def test_given_levels_are_reached_from_another_start():
    problem, levels, x0 = _slice_case()
    result = mw.walk_constrained(
        problem, x0 * 1.1, levels=levels, tolerance=TIGHT, stop=mw.Stop(kkt_tol=KKT_TOL)
    )
    assert result.converged
    np.testing.assert_allclose(result.theta, problem.solution(levels), atol=1e-6)


def test_a_corrector_out_of_steps_keeps_the_last_on_level_point():
    problem, levels, x0 = _slice_case()
    scheme = mw.get_scheme("default", predictor_step=mw.ConstantStep(0.5), max_corrector_steps=1)
    result = mw.walk_constrained(problem, x0, scheme=scheme, tolerance=TIGHT)
    assert result.stop_reason == "corrector_failed", result.message
    losses, _ = problem.losses_and_jacobian(result.theta)
    assert np.all(np.abs(losses - levels) <= np.asarray(result.tolerance))
    assert "|L_" in result.message


class NanBelow(SphereHyperplane):
    """A slice whose losses turn NaN where R = cᵀx falls below a floor."""

    floor = 0.0

    def losses_and_jacobian(self, x):
        losses, jac = super().losses_and_jacobian(x)
        return (losses * np.nan if self.reg(x) < self.floor else losses), jac


def test_nan_stops_with_the_last_good_point():
    rng = np.random.default_rng(5)
    problem = NanBelow(rng.standard_normal(5), rng.standard_normal(5))
    levels = np.array([3.0, 0.5])
    x0 = problem.point_on_levels(rng.standard_normal(5), levels)
    problem.floor = 0.5 * (problem.reg(x0) + problem.reg(problem.solution(levels)))
    result = mw.walk_constrained(problem, x0)
    assert result.stop_reason == "non_finite" and "the losses" in result.message
    assert np.all(np.isfinite(result.theta)) and problem.reg(result.theta) >= problem.floor


def test_max_total_steps_and_chunked_driver():
    problem, _, x0 = _slice_case()
    with pytest.warns(UserWarning, match="runs eagerly"):
        r = mw.walk_constrained(problem, x0, stop=mw.Stop(max_total_steps=15), driver=mw.Chunked(4))
    assert r.stop_reason == "max_total_steps" and r.n_predictor + r.n_corrector == 15


# --- bad input -------------------------------------------------------------------------------


class Shaped(SphereHyperplane):
    """A slice whose L or J comes back in a wrong shape."""

    wrong = "J"

    def losses_and_jacobian(self, x):
        losses, jac = super().losses_and_jacobian(x)
        if self.wrong == "J":
            return losses, jac[:, :-1]
        return losses[:, None], jac


def test_bad_shapes_and_levels_are_named():
    problem, levels, x0 = _slice_case()
    bad = Shaped(problem.planes, problem.c)
    with pytest.raises(
        mw.ProblemError, match=r"J of shape \(k, P\) = \(2, 5\).*got shape \(2, 4\)"
    ):
        mw.walk_constrained(bad, x0)
    bad.wrong = "L"
    with pytest.raises(mw.ProblemError, match="L as a 1-D array"):
        mw.walk_constrained(bad, x0)
    with pytest.raises(ValueError, match="levels has 3 entries but the problem has 2"):
        mw.walk_constrained(problem, x0, levels=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="levels must be None or a sequence"):
        mw.walk_constrained(problem, x0, levels=[1.0, np.nan])
    crossing = Crossing()
    crossing.n_constraints = 2
    with pytest.raises(mw.ProblemError, match="n_constraints = 2 but .* returned 3"):
        mw.walk_constrained(crossing, np.ones(4))


def test_bad_options_are_named():
    problem, levels, x0 = _slice_case()
    with pytest.raises(ValueError, match="Gauss–Newton"):
        mw.walk_constrained(problem, x0, scheme="paper")
    with pytest.raises(ValueError, match="drift compensation"):
        mw.walk_constrained(problem, x0, scheme="compensated")
    with pytest.raises(ValueError, match="does not resume"):
        mw.walk_constrained(problem, x0, resume_from=mw.walk(Circle(), np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="'loss_0'"):
        mw.walk_constrained(problem, x0, record=mw.Record(metrics={"loss_0": np.sum}))
    with pytest.raises(TypeError, match="stop must be"):
        mw.walk_constrained(problem, x0, stop={"max_steps": 3})
    flat = SphereHyperplane(problem.planes, problem.c)
    x_flat = flat.point_on_levels(np.ones(5), [3.0, 0.0])
    with pytest.raises(mw.ProblemError, match="constraint 1 is 0.*atol"):
        mw.walk_constrained(
            flat, x_flat, levels=[3.0, 0.0], tolerance=mw.Tolerance(rtol=1e-8, check_noise=False)
        )


def test_stack_refuses_what_cannot_share_theta():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="empty"):
        mw.stack([])
    with pytest.raises(ValueError, match="different lengths.*problem 0: 2, problem 1: 3"):
        mw.stack([Circle(), Sphere([1.0, 1.0, 1.0])])
    with pytest.raises(mw.ProblemError, match="problem 1 .* k-constraint"):
        mw.stack([Circle(), SphereHyperplane([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])])
    numpy_only = mw.make_problem(
        loss_and_grad=lambda x: (np.sum(np.asarray(x) ** 2), 2 * np.asarray(x))
    )
    stacked = mw.stack([Sphere([1.0, 1.0]), numpy_only])
    with pytest.raises(mw.ProblemError, match="problem 1 .*must share θ"):
        mw.walk_constrained(stacked, torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_walk_routes_a_k_constraint_problem_to_walk_constrained():
    # the same problem, start and options through walk() and walk_constrained() give one walk
    problem = SphereHyperplane([1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 0.5, 0.2])
    start = problem.point_on_levels(np.array([0.3, -0.2, 1.0, 0.5]), [2.0, 0.5])
    via_walk = mw.walk(problem, start, stop=mw.Stop(max_steps=40))
    direct = mw.walk_constrained(problem, start, stop=mw.Stop(max_steps=40))
    np.testing.assert_array_equal(via_walk.theta, direct.theta)
    assert via_walk.level == direct.level and len(via_walk.level) == 2
    given = mw.walk(problem, start, level=[2.0, 0.5], stop=mw.Stop(max_steps=5))
    assert given.level == pytest.approx([2.0, 0.5])
