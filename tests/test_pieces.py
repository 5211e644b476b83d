"""Unit tests of the small pieces: step-size rules, correctors, directions, schemes."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk._array import angle_between, namespace
from manifoldwalk.correctors import get_corrector
from manifoldwalk.directions import as_direction


def cos_deg(deg: float) -> np.ndarray:
    return np.asarray(math.cos(math.radians(deg)))


YES, NO = np.asarray(True), np.asarray(False)


class Point(NamedTuple):
    """The point data a corrector reads."""

    grad: np.ndarray
    grad_sq: np.ndarray


def correct(corrector, dev, grad, dir_p, eta=0.0, dir_prev=None, has_prev=NO) -> np.ndarray:
    """The displacement of ``corrector`` from its state (η, last direction, whether there was
    one) at a point with L − L0 = ``dev`` and gradient ``grad``."""
    state = corrector.init(np.asarray(grad, dtype=float))
    if hasattr(state, "eta"):
        prev = np.zeros_like(grad) if dir_prev is None else dir_prev
        state = state._replace(eta=np.asarray(eta), direction=prev, started=has_prev)
    delta, _ = corrector.correct(state, np.asarray(dev), Point(grad, grad @ grad), dir_p)
    return delta


@given(eta=st.floats(1e-4, 0.1), turn=st.floats(0.0, 180.0))
def test_angle_rule_grows_below_threshold_shrinks_above_and_clamps(eta, turn):
    rule = mw.AngleRule(threshold_deg=0.1, grow=1.1, shrink=0.1, eta_min=1e-4, eta_max=0.1)
    new = float(rule.update(np.asarray(eta), cos_deg(turn), YES))
    expected = eta * 1.1 if turn < 0.1 * 0.999 else eta * 0.1
    if turn < 0.1 * 0.999 or turn > 0.1 * 1.001:  # away from the threshold itself
        assert new == pytest.approx(min(max(expected, 1e-4), 0.1))


def test_angle_rule_keeps_eta_on_the_first_step():
    rule = mw.AngleRule()
    assert float(rule.update(np.asarray(0.05), cos_deg(90), NO)) == 0.05


def test_constant_step_never_changes():
    assert float(mw.ConstantStep(1e-3).update(np.asarray(1e-3), cos_deg(179), YES)) == 1e-3


@pytest.mark.parametrize(
    "kwargs", [{"eta_min": 0.0}, {"eta_min": 1.0, "eta_max": 0.1}, {"grow": 0.9}, {"shrink": 1.5}]
)
def test_angle_rule_rejects_bad_constants(kwargs):
    with pytest.raises(ValueError):
        mw.AngleRule(**kwargs)


@given(
    g=st.lists(st.floats(-10, 10), min_size=3, max_size=3),
    dev=st.floats(-1, 1).filter(lambda d: abs(d) > 1e-6),
)
def test_newton_corrector_zeroes_the_linearised_deviation(g, dev):
    g = np.asarray(g)
    if g @ g < 1e-6:
        return
    delta = correct(mw.NewtonCorrector(), dev, g, np.zeros(3))
    assert g @ delta == pytest.approx(-dev, rel=1e-9)  # L + ∇L·δ = L0 for linear L


def test_gradient_corrector_moves_orthogonally_to_the_predictor_and_is_capped():
    grad = np.array([1.0, 1.0, 0.0])
    dir_p = np.array([1.0, 0.0, 0.0])
    corr = mw.GradientCorrector(mw.ConstantStep(10.0))  # huge step, capped at the level set
    delta = correct(corr, 0.5, grad, dir_p, eta=10.0)
    assert delta @ dir_p == pytest.approx(0.0, abs=1e-15)
    assert grad @ delta == pytest.approx(-0.5)  # stops exactly at the linearised level set
    uncapped = mw.GradientCorrector(mw.ConstantStep(10.0), cap=False)
    delta2 = correct(uncapped, 0.5, grad, dir_p, eta=10.0)
    assert np.linalg.norm(delta2) == pytest.approx(10.0)


def test_random_walk_samples_depend_only_on_seed_and_step():
    theta = np.zeros(5)
    a = mw.RandomWalk(seed=3)(theta, theta, np.asarray(7))
    b = mw.RandomWalk(seed=3)(theta, theta, np.asarray(7))
    c = mw.RandomWalk(seed=3)(theta, theta, np.asarray(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_toward_target_points_at_the_target_and_knows_when_it_is_there():
    d = mw.TowardTarget(np.array([1.0, 2.0]), tol=1e-6)
    theta = np.array([0.0, 0.0])
    assert np.array_equal(d(theta, theta, np.asarray(0)), [1.0, 2.0])
    assert not d.reached(theta) and d.reached(np.array([1.0, 2.0 + 1e-7]))
    assert not d.reached(np.array([1.0, 2.0 + 1e-5]))


def test_names_resolve_and_unknown_names_list_the_choices():
    assert isinstance(get_corrector("newton"), mw.NewtonCorrector)
    assert get_corrector("authors").step_rule == mw.ConstantStep(1e-4)
    with pytest.raises(ValueError, match="newton"):
        get_corrector("nope")
    with pytest.raises(ValueError, match="paper"):
        mw.get_scheme("nope")
    with pytest.raises(ValueError, match="callable"):
        as_direction(42)


def test_scheme_overrides_apply_to_their_pieces():
    s = mw.get_scheme("paper", eta_min=1e-5, eta_c=1e-6, corrector=None)
    assert s.predictor.step_rule.eta_min == 1e-5 and s.corrector.step_rule.eta_init == 1e-6
    assert mw.get_scheme("authors", eta_c=1e-7).corrector.step_rule == mw.ConstantStep(1e-7)
    with pytest.raises(ValueError, match="gradient corrector"):
        mw.get_scheme("default", eta_c=1e-6)


def _reference_angle(u: np.ndarray, v: np.ndarray) -> float:
    """The angle between the float vectors, exact to 50 digits (mpmath), then rounded."""
    import mpmath

    with mpmath.workdps(50):

        def dot(a: np.ndarray, b: np.ndarray) -> mpmath.mpf:
            return mpmath.fsum(
                mpmath.mpf(float(x)) * mpmath.mpf(float(y)) for x, y in zip(a, b, strict=True)
            )

        uu, vv, uv = dot(u, u), dot(v, v), dot(u, v)
        return float(mpmath.acos(max(-1, min(1, uv / mpmath.sqrt(uu * vv)))))


@given(
    n=st.integers(2, 40),
    seed=st.integers(0, 2**32 - 1),
    offset=st.floats(1e-9, 1.0),
    side=st.sampled_from([1.0, -1.0, 0.0]),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_angle_between_is_accurate_to_a_few_ulps_of_pi_near_0_and_pi(n, seed, offset, side, dtype):
    """v = side·s·u + offset·‖u‖·w: angles near 0 (side 1), near π (side −1) or anywhere (0).

    The reference is computed in 50 digits from the same rounded inputs, so the bound is on
    the formula's own error: 4 ulps of π in the dtype (acos of the cosine misses tiny angles
    entirely: at 1e-9 rad the float64 cosine rounds to 1)."""
    rng = np.random.default_rng(seed)
    u, w = rng.standard_normal(n), rng.standard_normal(n)
    v = side * rng.uniform(0.1, 10.0) * u + offset * np.linalg.norm(u) * w
    u, v = u.astype(dtype), v.astype(dtype)
    got = float(angle_between(namespace(u), u, v))
    assert abs(got - _reference_angle(u, v)) <= 4 * np.finfo(dtype).eps * np.pi


def test_angle_between_is_zero_where_a_vector_is_zero():
    z, u = np.zeros(3), np.array([1.0, 2.0, 3.0])
    for a, b in ((z, u), (u, z), (z, z)):
        assert float(angle_between(namespace(a), a, b)) == 0.0
