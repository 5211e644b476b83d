"""Drift compensation (``Scheme.drift_gain``): the predictor learns the corrector's return."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Sphere


def _constant_step_walk(problem, x0, gain: float, steps: int = 60) -> mw.WalkResult:
    scheme = mw.get_scheme("compensated").replace(
        drift_gain=gain, predictor_step=mw.ConstantStep(0.01)
    )
    return mw.walk(problem, x0, scheme=scheme, max_steps=steps)


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
    plain = mw.walk(Circle(), np.array([0.0, 1.0]), scheme=scheme.replace(drift_gain=0.0))
    default_rule = mw.walk(
        Circle(),
        np.array([0.0, 1.0]),
        scheme="default",
        predictor_step=scheme.predictor_step,
    )
    assert plain.n_grad_evals == default_rule.n_grad_evals
    np.testing.assert_array_equal(plain.theta, default_rule.theta)


@pytest.mark.parametrize(
    ("field", "value"), [("drift_gain", -0.1), ("drift_gain", 1.5), ("drift_cap", 0.0)]
)
def test_bad_drift_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        mw.get_scheme("compensated").replace(**{field: value})
