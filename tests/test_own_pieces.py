"""A piece of the user's own, with memory, plugged into a scheme without touching the engine.

The chord corrector keeps the gradient at the first corrector step of each series and steps
along it for the rest of the series (Newton's method with a frozen Jacobian): its state is the
kept gradient, the predictor count at which the series began, and how many series it has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings

import manifoldwalk as mw
from manifoldwalk._array import dot, namespace
from manifoldwalk.problems import Circle
from manifoldwalk.step import named_leaves
from manifoldwalk.testing import check_reaches, check_stationary, ellipsoid_cases

TOP = np.array([0.0, 1.0])


class ChordState(NamedTuple):
    grad: Any
    series_at: Any
    n_series: Any


@dataclass(frozen=True)
class ChordCorrector:
    """δ = −(L − L0)·g0/(g0·∇L): the linearised deviation zeroed along the series' first ∇L."""

    name: str = "chord"

    def init(self, theta: Any) -> ChordState:
        xp = namespace(theta)
        minus_one = xp.asarray(-1)
        return ChordState(xp.zeros_like(theta), minus_one, xp.zeros_like(minus_one))

    def correct(self, state: ChordState, deviation: Any, point: Any, dir_p: Any):
        xp = namespace(point.grad)
        new = point.n_predictor != state.series_at  # a predictor step came in between
        g0 = xp.where(new, point.grad, state.grad)
        delta = -(deviation / dot(xp, g0, point.grad)) * g0
        kept = ChordState(
            g0, xp.asarray(point.n_predictor), state.n_series + xp.astype(new, state.n_series.dtype)
        )
        return delta, kept


def chord_scheme() -> mw.Scheme:
    # short predictor steps: a chord (frozen-gradient) series converges only near the level set
    return mw.get_scheme("default", eta_max=0.05).replace(name="chord", corrector=ChordCorrector())


def test_the_chord_corrector_walks_to_the_optimum_and_keeps_its_memory():
    r = mw.walk(Circle(), TOP.copy(), scheme=chord_scheme(), stop=mw.Stop(max_steps=2000))
    assert r.stop_reason == "stationary"
    np.testing.assert_allclose(r.theta, -np.ones(2) / np.sqrt(2), atol=1e-4)
    assert abs(r.loss - 1.0) <= 1e-5
    series = int(r.state.corrector.n_series)
    assert 0 < series <= r.n_corrector  # a series is one or more corrector steps
    assert r.options["corrector"] == "chord"


@settings(max_examples=15, deadline=None)
@given(case=ellipsoid_cases())
def test_the_chord_corrector_reaches_the_exact_minimiser_on_ellipsoids(case):
    r = mw.walk(
        case.problem,
        case.x0,
        scheme=chord_scheme(),
        stop=mw.Stop(max_steps=200_000, kkt_tol=1e-8),
        record=mw.Record(every=None),
    )
    check_stationary(r, 1e-8)
    check_reaches(r, case.solution, 1e-3)


def test_a_walk_with_the_chord_corrector_saves_and_resumes_on_the_same_path(tmp_path):
    whole = mw.walk(Circle(), TOP.copy(), scheme=chord_scheme(), stop=mw.Stop(max_steps=40))
    first = mw.walk(Circle(), TOP.copy(), scheme=chord_scheme(), stop=mw.Stop(max_steps=15))
    first.save(tmp_path / "part.npz")
    loaded = mw.WalkResult.load(tmp_path / "part.npz")
    assert type(loaded.state.corrector).__name__ == "ChordState"  # rebuilt without pickle
    rest = mw.walk(
        Circle(), TOP.copy(), scheme=chord_scheme(), resume_from=loaded, stop=mw.Stop(max_steps=40)
    )
    assert (rest.n_predictor, rest.n_corrector) == (whole.n_predictor, whole.n_corrector)
    np.testing.assert_array_equal(rest.theta, whole.theta)
    assert int(rest.state.corrector.n_series) == int(whole.state.corrector.n_series)


@pytest.mark.parametrize("on", [True, False])
def test_a_step_told_its_branch_carries_the_chord_state_as_the_selecting_step_does(on):
    problem, scheme, direction = Circle(), chord_scheme(), mw.MinimiseReg()
    step = mw.make_step(problem, direction, scheme)
    level = 1.0 if on else 1.01  # off the level set: the walk opens with corrector steps
    state = mw.init_state(problem, direction, scheme, TOP.copy(), level=level)
    for _ in range(6):
        told, plain = step(state, on), step(state)
        for (name, a), (_, b) in zip(named_leaves(told), named_leaves(plain), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
        state = plain
        on = float(state.loss - state.level) ** 2 <= float(state.tau)
