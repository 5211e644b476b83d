"""The level tolerance: relative to L0 by default, widened to the loss's noise, reported."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk.options import DEFAULT_RTOL
from manifoldwalk.problems import Circle, Sphere

TOP = np.array([0.0, 1.0])


@settings(max_examples=25, deadline=None)
@given(
    log_level=st.floats(-8.0, 2.0),
    dim=st.integers(2, 6),
    seed=st.integers(0, 2**32 - 1),
    scheme=st.sampled_from(["default", "compensated"]),
)
def test_the_relative_tolerance_holds_at_every_record_over_levels_1e_8_to_1e2(
    log_level, dim, seed, scheme
):
    """On ‖x‖² = L0 with L0 drawn over ten decades, the library's schemes hold
    |L − L0| ≤ 1e-5·L0 (the float64 default) at every recorded point and reach the exact
    minimiser of cᵀx, whatever the scale of L0."""
    level = 10.0**log_level
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(dim)
    x0 = rng.standard_normal(dim)
    x0 *= np.sqrt(level) / np.linalg.norm(x0)
    problem = Sphere(c)
    r = mw.walk(problem, x0, scheme=scheme, stop=mw.Stop(max_steps=20_000, kkt_tol=1e-7))
    assert r.converged, r.message
    assert r.tolerance == pytest.approx(DEFAULT_RTOL["float64"] * r.level, rel=1e-9)
    deviations = np.abs(r.history["loss"] - r.level)
    assert np.all(deviations <= r.tolerance * (1 + 1e-9))
    assert r.max_relative_deviation <= DEFAULT_RTOL["float64"] * (1 + 1e-9)
    radius = np.sqrt(level)
    np.testing.assert_allclose(r.theta, problem.solution(level), atol=1e-3 * radius)


def test_the_paper_schemes_keep_their_absolute_tau():
    for name in ("paper", "authors"):
        r = mw.walk(Circle(), TOP.copy(), scheme=name, stop=mw.Stop(max_steps=50))
        assert r.options["tau"] == 1e-10 and r.tolerance == pytest.approx(1e-5)


def test_a_float32_walk_uses_the_float32_default():
    r = mw.walk(Circle(), TOP.astype(np.float32), stop=mw.Stop(max_steps=50))
    assert r.tolerance == pytest.approx(DEFAULT_RTOL["float32"], rel=1e-6)


class Noisy(Circle):
    """The circle with a loss whose evaluation errs by up to 1e-5, differently at every θ (a
    deterministic function of θ's bits, as rounding is), its gradient exact."""

    def loss_and_grad(self, x):
        loss, grad = super().loss_and_grad(x)
        bits = int(np.bitwise_xor.reduce(np.asarray(x, dtype=np.float64).view(np.uint64)))
        error = np.random.default_rng(bits).uniform(-1e-5, 1e-5)
        return loss + error, grad

    def loss(self, x):
        return self.loss_and_grad(x)[0]


def test_a_tolerance_below_the_loss_noise_is_widened_with_a_warning_naming_both():
    with pytest.warns(UserWarning, match=r"floating-point noise at θ0 is .*is below 4× it") as w:
        r = mw.walk(Noisy(), TOP.copy(), stop=mw.Stop(max_steps=30))
    message = str(w[0].message)
    assert "holds |L − L0| ≤" in message and "1e-05·|L0|" in message
    noise = r.options["noise"]
    assert noise > 1e-6 and r.tolerance == pytest.approx(4 * noise)
    with pytest.warns(UserWarning, match="keeps it"):
        kept = mw.walk(Noisy(), TOP.copy(), scheme="paper", tolerance=mw.Tolerance(tau=1e-14))
    assert kept.tolerance == pytest.approx(1e-7)


def test_no_warning_where_the_noise_is_far_below_the_tolerance():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = mw.walk(Circle(), TOP.copy(), stop=mw.Stop(max_steps=30))
    assert r.options["noise"] < 1e-14


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": 1e-10, "rtol": 1e-3}, "either tau"),
        ({"rtol": -1.0}, "rtol must be a non-negative number"),
        ({"tau": 0.0}, "tau must be a positive number"),
        ({"atol": "x"}, "atol must be a non-negative number"),
    ],
)
def test_bad_tolerances_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mw.Tolerance(**kwargs)


def test_the_bound_on_excursions_keeps_the_predictor_near_the_level_set():
    """The library's default scheme strays ~10⁴ tolerances off the circle between
    corrections; with ``max_excursion=8``, within that bound on this problem."""

    bounded = mw.walk(Circle(), TOP.copy(), scheme=mw.get_scheme("default", max_excursion=8))
    unbounded = mw.walk(Circle(), TOP.copy(), scheme="default")
    assert unbounded.max_deviation > 100 * unbounded.tolerance
    # (up to the change of the curvature over one step)
    assert bounded.max_deviation <= 8.5 * bounded.tolerance
    assert bounded.converged and unbounded.converged
    compensated = mw.get_scheme("compensated", max_excursion=8)
    assert compensated.predictor.inner.max_excursion == 8  # the wrapped predictor's
