"""Unit tests of the small pieces: step-size rules, correctors, directions, schemes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk.correctors import get_corrector
from manifoldwalk.directions import as_direction


def cos_deg(deg: float) -> np.ndarray:
    return np.asarray(math.cos(math.radians(deg)))


YES, NO = np.asarray(True), np.asarray(False)


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
    c = mw.NewtonCorrector()(
        np.asarray(dev), g, g @ g, np.zeros(3), np.asarray(0.0), np.zeros(3), NO
    )
    assert g @ c.delta == pytest.approx(-dev, rel=1e-9)  # L + ∇L·δ = L0 for linear L


def test_gradient_corrector_moves_orthogonally_to_the_predictor_and_is_capped():
    grad = np.array([1.0, 1.0, 0.0])
    dir_p = np.array([1.0, 0.0, 0.0])
    corr = mw.GradientCorrector(mw.ConstantStep(10.0))  # huge step, capped at the level set
    c = corr(np.asarray(0.5), grad, grad @ grad, dir_p, np.asarray(10.0), np.zeros(3), NO)
    assert c.delta @ dir_p == pytest.approx(0.0, abs=1e-15)
    assert grad @ c.delta == pytest.approx(-0.5)  # stops exactly at the linearised level set
    uncapped = mw.GradientCorrector(mw.ConstantStep(10.0), cap=False)
    c2 = uncapped(np.asarray(0.5), grad, grad @ grad, dir_p, np.asarray(10.0), np.zeros(3), NO)
    assert np.linalg.norm(c2.delta) == pytest.approx(10.0)


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
    assert s.predictor_step.eta_min == 1e-5 and s.corrector.step_rule.eta_init == 1e-6
    assert mw.get_scheme("authors", eta_c=1e-7).corrector.step_rule == mw.ConstantStep(1e-7)
    with pytest.raises(ValueError, match="gradient corrector"):
        mw.get_scheme("default", eta_c=1e-6)
