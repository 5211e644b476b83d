"""The walk's options, directions, stop reasons and results on analytic problems."""

from __future__ import annotations

import numpy as np
import pytest

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Quadric, Sphere
from manifoldwalk.step import named_leaves

TOP = np.array([0.0, 1.0])
CORNER = -np.ones(2) / np.sqrt(2)


@pytest.mark.parametrize("scheme", ["default", "paper", "compensated"])
def test_circle_reaches_the_papers_answer(scheme):
    r = mw.walk(Circle(), TOP.copy(), scheme=scheme)
    assert r.converged, r.message
    assert np.linalg.norm(r.theta - CORNER) < 1e-3
    assert r.angle == pytest.approx(180.0, abs=0.1)
    assert r.n_grad_evals == r.n_predictor + r.n_corrector + 1


@pytest.mark.parametrize("scheme", sorted(mw.SCHEMES))
def test_a_float32_walk_stays_float32(scheme):
    """Every scheme keeps θ's dtype: no Python float pair may make a float64 that promotes θ
    (the gradient corrector's sign once did, in every step, since both candidates are formed)."""
    r = mw.walk(Circle(), TOP.astype(np.float32), scheme=scheme, stop=mw.Stop(max_steps=30))
    assert r.n_predictor + r.n_corrector > 30  # both kinds of step were taken
    assert r.theta.dtype == np.float32
    vectors = {"/" + k: v for k, v in named_leaves(r.state) if np.ndim(v) == 1}
    assert {"/theta", "/grad", "/pred"} <= set(vectors)
    assert any(k.startswith("/predictor/") and k.endswith("/direction") for k in vectors)
    assert {k: v.dtype for k, v in vectors.items()} == dict.fromkeys(vectors, np.float32)


def test_authors_constant_corrector_works_where_its_step_is_small_enough():
    # The authors' corrector needs eta_c·‖∇L‖ far below √τ: here 5e-8·2 = 1e-7 ≪ 1e-5.
    r = mw.walk(
        Circle(), TOP.copy(), scheme=mw.get_scheme("authors", eta_c=5e-8, max_corrector_steps=10**5)
    )
    assert r.converged, r.message
    assert np.linalg.norm(r.theta - CORNER) < 1e-3


def test_authors_default_corrector_oscillates_and_stops_as_failed_keeping_a_good_point():
    r = mw.walk(Circle(), TOP.copy(), scheme=mw.get_scheme("authors", max_corrector_steps=500))
    assert r.stop_reason == "corrector_failed"
    assert "last point on the level set" in r.message
    assert abs(r.loss - 1.0) <= 1e-5  # θ is the last on-level point


def test_level_option_projects_the_start_onto_the_requested_level():
    r = mw.walk(
        Sphere(np.ones(3)),
        np.array([0.0, 0.0, 1.0]),
        level=4.0,
        tolerance=mw.Tolerance(tau=1e-10),
    )
    assert r.level == 4.0 and abs(r.loss - 4.0) <= 1e-5
    assert np.linalg.norm(r.theta - Sphere(np.ones(3)).solution(4.0)) < 1e-3


def test_relative_tolerance_scales_with_the_level():
    big = mw.walk(
        Circle(),
        1e3 * TOP,
        tolerance=mw.Tolerance(rtol=1e-5),
        stop=mw.Stop(max_steps=5),
    )
    assert big.options["rtol"] == 1e-5 and big.tolerance == pytest.approx(1e-5 * 1e6)
    assert big.max_relative_deviation <= 1e-5


def test_random_walk_stays_on_the_level_set_and_is_reproducible():
    # A random direction turns at every step, so an angle rule would shrink η to its
    # floor: random walks take a constant step.
    runs = [
        mw.walk(
            Sphere(np.ones(5)),
            np.eye(5)[0],
            scheme=mw.get_scheme("default", predictor_step=mw.ConstantStep(0.01)),
            direction=mw.RandomWalk(seed=1),
            stop=mw.Stop(max_steps=300),
        )
        for _ in range(2)
    ]
    assert runs[0].stop_reason == "max_steps"
    assert np.array_equal(runs[0].theta, runs[1].theta)
    assert abs(runs[0].loss - 1.0) <= 1e-5
    assert np.linalg.norm(runs[0].theta - np.eye(5)[0]) > 0.1  # it went somewhere


def test_toward_target_on_the_level_set_reaches_it():
    target = np.array([np.cos(2.0), np.sin(2.0)])
    # On-level points lie within √τ/‖∇L‖ = 5e-6 of the unit circle: ask for 1e-5.
    r = mw.walk(Circle(), np.array([1.0, 0.0]), direction=mw.TowardTarget(target, tol=1e-5))
    assert r.stop_reason == "reached_target"
    assert np.linalg.norm(r.theta - target) <= 1e-5


def test_toward_target_off_the_level_set_stops_at_its_closest_point():
    target = np.array([3.0, 4.0])
    r = mw.walk(Circle(), np.array([1.0, 0.0]), direction=mw.TowardTarget(target))
    assert r.stop_reason in ("stationary", "stalled")
    assert np.linalg.norm(r.theta - target / 5.0) < 1e-3


def test_any_callable_is_a_direction():
    r = mw.walk(
        Circle(),
        TOP.copy(),
        direction=lambda th: np.array([-1.0, -1.0]),
        stop=mw.Stop(max_steps=50),
    )
    assert r.options["direction"] == "FunctionDirection" and r.stop_reason == "max_steps"
    assert r.theta[0] < 0  # moved toward smaller x + y


def test_history_metrics_trajectory_and_callback():
    seen = []

    def stop_at_ten(record):
        seen.append(record["n_predictor"])
        return record["n_predictor"] >= 10

    r = mw.walk(
        Circle(),
        TOP.copy(),
        record=mw.Record(
            every=2,
            trajectory_every=5,
            metrics={"x_plus_y": lambda th: float(th.sum())},
            callback=stop_at_ten,
        ),
    )
    assert r.stop_reason == "callback"
    assert list(r.history["n_predictor"]) == [0, 2, 4, 6, 8, 10]
    assert seen == [0, 2, 4, 6, 8, 10]
    assert np.allclose(r.history["x_plus_y"], r.history["reg"])
    assert r.trajectory.shape == (3, 2)  # predictor steps 0, 5, 10
    assert np.allclose((r.trajectory**2).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("scheme", ["paper", "default"])
def test_record_every_none_records_only_the_start_and_the_returned_point(scheme):
    every = mw.walk(Circle(), TOP.copy(), scheme=scheme, stop=mw.Stop(max_steps=40))
    none = mw.walk(
        Circle(),
        TOP.copy(),
        scheme=scheme,
        stop=mw.Stop(max_steps=40),
        record=mw.Record(every=None),
    )
    assert list(none.history["n_predictor"]) == [0, every.n_predictor]
    for k, column in none.history.items():  # the same rows as the full history's ends
        np.testing.assert_array_equal(column, every.history[k][[0, -1]], err_msg=k)
    np.testing.assert_array_equal(none.theta, every.theta)
    assert none.options["record_every"] is None


def test_budgets_stop_the_walk_on_the_level_set():
    r = mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=100))
    assert r.stop_reason == "max_steps" and r.n_predictor == 100
    t = mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_total_steps=100))
    assert t.stop_reason == "max_total_steps" and t.n_predictor + t.n_corrector == 100
    assert abs(t.loss - 1.0) <= 1e-5


class NaNAfter:
    """The circle, but L turns NaN beyond x < -0.5: a blow-up mid-walk."""

    def __init__(self):
        self.inner = Circle()

    def loss_and_grad(self, x):
        loss, grad = self.inner.loss_and_grad(x)
        return (np.nan, grad) if x[0] < -0.5 else (loss, grad)

    def reg(self, x):
        return self.inner.reg(x)

    def reg_grad(self, x):
        return self.inner.reg_grad(x)


def test_nan_mid_walk_stops_with_a_reason_and_keeps_the_last_good_point():
    r = mw.walk(NaNAfter(), TOP.copy())
    assert r.stop_reason == "non_finite"
    assert "NaN" in r.message and "last point" in r.message
    assert r.theta[0] >= -0.5 and abs(r.loss - 1.0) <= 1e-5


def test_a_nan_loss_names_the_loss_and_keeps_max_deviation_finite():
    r = mw.walk(NaNAfter(), TOP.copy())
    assert "NaN or inf in the loss L;" in r.message
    # max_deviation was max(…, NaN) = NaN: it is now the largest over the finite points
    assert 0 < r.max_deviation < 0.1


def _left_of(x0, value, *, nan):
    """``value`` where θ[0] ≥ x0, NaN (if ``nan``) to its left."""
    return lambda x: value(x) * (np.nan if nan and x[0] < x0 else 1.0)


def test_a_nan_regulariser_mid_walk_is_named_and_the_last_good_point_has_a_finite_r():
    # R = x + y (and ∇R) turn NaN left of x = -0.3; the stop blamed the loss, and the
    # returned point carried R = NaN
    p = mw.make_problem(
        loss_and_grad=lambda x: (x @ x, 2 * x),
        reg=_left_of(-0.3, np.sum, nan=True),
        reg_grad=_left_of(-0.3, np.ones_like, nan=True),
    )
    r = mw.walk(p, TOP.copy())
    assert r.stop_reason == "non_finite"
    assert "NaN or inf in the regulariser's gradient ∇R" in r.message
    assert r.theta[0] >= -0.3 and np.isfinite(r.reg) and np.isfinite(r.max_deviation)
    assert np.all(np.isfinite(r.history["reg"]))


def test_a_nan_direction_mid_walk_is_named():
    r = mw.walk(
        Circle(), TOP.copy(), direction=_left_of(-0.3, lambda t: -np.ones_like(t), nan=True)
    )
    assert r.stop_reason == "non_finite"
    assert "NaN or inf in the direction of interest (FunctionDirection)" in r.message
    assert r.theta[0] >= -0.3 and abs(r.loss - 1.0) <= 1e-5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reg": lambda x: np.nan, "reg_grad": lambda x: 2 * x}, "regulariser at θ0"),
        ({"reg": np.sum, "reg_grad": lambda x: x * np.nan}, "gradient ∇R at θ0"),
    ],
)
def test_a_non_finite_regulariser_at_the_start_is_refused(kwargs, match):
    p = mw.make_problem(loss_and_grad=lambda x: (x @ x, 2 * x), **kwargs)
    with pytest.raises(mw.ProblemError, match=match):
        mw.walk(p, TOP.copy())


def test_a_non_finite_direction_at_the_start_is_refused():
    with pytest.raises(mw.ProblemError, match=r"direction of interest \(FunctionDirection\) at θ0"):
        mw.walk(Circle(), TOP.copy(), direction=lambda t: np.full_like(t, np.nan))


def test_linear_objective_on_a_translated_ellipsoid_matches_the_closed_form():
    p = Quadric(np.diag([1.0, 4.0]), b=np.array([0.5, -1.0]), c=np.array([1.0, 2.0]))
    x0 = p.point_on_level(np.array([0.0, 1.0]), 2.0)
    r = mw.walk(p, x0)
    assert np.linalg.norm(r.theta - p.solution(2.0)) < 1e-4
