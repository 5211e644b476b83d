"""Drift compensation (``DriftCompensated``): the predictor learns the corrector's return."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Sphere


def _constant_step_walk(problem, x0, gain: float, steps: int = 60) -> mw.WalkResult:
    predictor = mw.TangentPredictor(mw.ConstantStep(0.01))
    if gain > 0:
        predictor = mw.DriftCompensated(predictor, gain=gain)
    scheme = mw.get_scheme("compensated").replace(predictor=predictor)
    return mw.walk(problem, x0, scheme=scheme, stop=mw.Stop(max_steps=steps))


@settings(max_examples=20, deadline=None)
@given(
    dim=st.integers(2, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_compensation_saves_most_corrections_on_spheres(dim, seed):
    # On ‖x‖² = 1 a tangent step of 0.01 raises L by 1e-4 > √τ = 1e-5: without compensation
    # every predictor step needs a correction; the learnt drift (the step back towards the
    # centre) makes most steps land on the level set.
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(dim)
    x0 /= np.linalg.norm(x0)
    problem = Sphere(rng.standard_normal(dim))
    plain = _constant_step_walk(problem, x0, 0.0)
    compensated = _constant_step_walk(problem, x0, 0.5)
    assert plain.stop_reason == compensated.stop_reason == "max_steps"
    assert plain.n_corrector >= plain.n_predictor  # the premise: one correction per step
    assert compensated.n_corrector <= 0.5 * plain.n_corrector
    assert abs(compensated.loss - 1.0) <= 1e-5


def test_without_gain_the_compensated_scheme_is_its_plain_rule():
    scheme = mw.get_scheme("compensated")
    unwrapped = scheme.replace(predictor=scheme.predictor.inner)
    plain = mw.walk(Circle(), np.array([0.0, 1.0]), scheme=unwrapped)
    default_rule = mw.walk(
        Circle(),
        np.array([0.0, 1.0]),
        scheme=mw.get_scheme("default", predictor_step=scheme.predictor.step_rule),
    )
    assert plain.n_grad_evals == default_rule.n_grad_evals
    np.testing.assert_array_equal(plain.theta, default_rule.theta)


@pytest.mark.parametrize(("field", "value"), [("gain", -0.1), ("gain", 1.5), ("cap", 0.0)])
def test_bad_drift_settings_are_refused(field, value):
    inner = mw.get_scheme("compensated").predictor.inner
    with pytest.raises(ValueError, match=field):
        mw.DriftCompensated(inner, **{field: value})
