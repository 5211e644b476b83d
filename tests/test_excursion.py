"""The landing predictor (``get_scheme(name, landing=cap)``): every point where the walk takes a
gradient lies within ``cap`` level tolerances of the level set, at no more gradient evaluations
than the plain scheme on the analytic problems, on every backend and driver."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk.landing import LANDING_BOUND, LandingPredictor
from manifoldwalk.problems import Circle, Quadric, Sphere

TOP = np.array([0.0, 1.0])
SLACK = 1 + 1e-9  # the probe's loss and the gradient evaluation's may differ in the last bits


@settings(max_examples=25, deadline=None)
@given(
    log_level=st.floats(-8.0, 2.0),
    dim=st.integers(2, 6),
    seed=st.integers(0, 2**32 - 1),
    scheme=st.sampled_from(["default", "compensated"]),
)
def test_landings_stay_within_the_bound_on_spheres_over_levels_1e_8_to_1e2(
    log_level, dim, seed, scheme
):
    """On ‖x‖² = L0 (constant curvature), L0 drawn over ten decades: every point the walk
    evaluates lies within 8 tolerances of L0, every on-level point within one, each predictor
    step costs three loss-only probes, and the walk still reaches the exact minimiser."""
    level = 10.0**log_level
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(dim)
    x0 = rng.standard_normal(dim)
    x0 *= np.sqrt(level) / np.linalg.norm(x0)
    problem = Sphere(c)
    r = mw.walk(
        problem,
        x0,
        scheme=mw.get_scheme(scheme, landing=LANDING_BOUND),
        stop=mw.Stop(max_steps=20_000, kkt_tol=1e-7),
    )
    assert r.converged, r.message
    assert r.max_deviation <= LANDING_BOUND * r.tolerance * SLACK
    assert np.all(np.abs(r.history["loss"] - r.level) <= r.tolerance * SLACK)
    state = r.state.predictor
    assert int(state.n_loss) == 3 * r.n_predictor
    np.testing.assert_allclose(r.theta, problem.solution(level), atol=1e-3 * np.sqrt(level))


@settings(max_examples=20, deadline=None)
@given(
    dim=st.integers(2, 8),
    seed=st.integers(0, 2**32 - 1),
    cap=st.sampled_from([2.0, 8.0, 100.0]),
)
def test_the_bound_is_hard_where_the_curvature_changes(dim, seed, cap):
    """On random ellipsoids (eigenvalues 1–100: the curvature changes along the walk) the bound
    holds at every evaluated point, whatever it is; steps that cannot land are refused."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    a = q @ np.diag(rng.uniform(1.0, 100.0, dim)) @ q.T
    a = 0.5 * (a + a.T)
    x0 = rng.standard_normal(dim)
    x0 /= np.sqrt(x0 @ a @ x0)
    r = mw.walk(
        Quadric(a, None, rng.standard_normal(dim)),
        x0,
        scheme=mw.get_scheme("default", landing=cap),
        stop=mw.Stop(max_steps=5_000),
    )
    assert r.max_deviation <= cap * r.tolerance * SLACK, r.message
    assert r.converged, r.message


def test_on_the_circle_landing_costs_no_more_gradient_evaluations():
    """The default scheme strays ~10⁴ tolerances off the circle between corrections; landing
    holds it within 8 for fewer gradient evaluations (measured: 70 against 115)."""
    plain = mw.walk(Circle(), TOP.copy(), scheme="default")
    for name in ("default", "compensated"):
        landed = mw.walk(Circle(), TOP.copy(), scheme=mw.get_scheme(name, landing=8))
        assert landed.converged and plain.converged
        assert plain.max_deviation > 1000 * plain.tolerance
        assert landed.max_deviation <= 8 * landed.tolerance * SLACK
        assert landed.n_grad_evals <= plain.n_grad_evals
        np.testing.assert_allclose(landed.theta, plain.theta, atol=1e-6)


def _same_path(result: mw.WalkResult, eager: mw.WalkResult) -> None:
    assert result.stop_reason == eager.stop_reason
    assert (result.n_predictor, result.n_corrector) == (eager.n_predictor, eager.n_corrector)
    np.testing.assert_array_equal(result.history["n_corrector"], eager.history["n_corrector"])
    np.testing.assert_allclose(np.asarray(result.theta), eager.theta, rtol=1e-9, atol=1e-12)


A = np.diag([1.0, 4.0, 9.0])
START = np.array([1.0, 0.0, 0.0])
OPTIONS = {
    "scheme": mw.get_scheme("compensated", landing=8),
    "stop": mw.Stop(max_steps=300),
    "record": mw.Record(every=1),
}


@pytest.fixture(scope="module")
def eager() -> mw.WalkResult:
    result = mw.walk(Quadric(A, None, np.ones(3)), START.copy(), **OPTIONS)
    assert result.converged and int(result.state.predictor.n_loss) > 0
    return result


@pytest.mark.parametrize("k", [1, 7])
def test_the_jax_chunked_driver_takes_the_eager_path(eager, k):
    jax = pytest.importorskip("jax")
    from manifoldwalk_jax import compiled

    with jax.enable_x64(True):
        problem = compiled(Quadric(A, None, np.ones(3)))
        result = mw.walk(
            problem, jax.numpy.asarray(START), **OPTIONS, driver=mw.Chunked(steps_per_sync=k)
        )
    _same_path(result, eager)


def test_torch_arrays_take_the_eager_path(eager):
    torch = pytest.importorskip("torch")
    _same_path(mw.walk(Quadric(A, None, np.ones(3)), torch.tensor(START), **OPTIONS), eager)


def test_a_resumed_walk_continues_the_same_path():
    scheme = mw.get_scheme("default", landing=8)
    whole = mw.walk(Circle(), TOP.copy(), scheme=scheme, stop=mw.Stop(max_steps=40))
    half = mw.walk(Circle(), TOP.copy(), scheme=scheme, stop=mw.Stop(max_steps=20))
    rest = mw.walk(
        Circle(), half.theta, scheme=scheme, stop=mw.Stop(max_steps=40), resume_from=half
    )
    assert rest.n_grad_evals == whole.n_grad_evals
    np.testing.assert_array_equal(rest.theta, whole.theta)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cap": 0.0}, "cap must be a positive number"),
        ({"cap": float("inf")}, "cap must be a positive number"),
        ({"probes": 1}, "probes must be an integer"),
        ({"shrink": 1.0}, "shrink must lie in"),
        ({"slope_target": 0.0}, "slope_target must lie in"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, match):
    inner = mw.get_scheme("default").predictor
    with pytest.raises(ValueError, match=match):
        LandingPredictor(inner, **kwargs)


def test_misuse_says_what_to_do():
    with pytest.raises(ValueError, match="not both"):
        mw.get_scheme("default", landing=8, max_excursion=8)
    with pytest.raises(ValueError, match="wraps a TangentPredictor"):
        LandingPredictor(mw.get_scheme("default").corrector)
    landing = mw.get_scheme("default", landing=8).predictor
    assert landing.inner.max_excursion == 8  # the refusals shorten the next step through it
    again = mw.get_scheme(mw.get_scheme("default", landing=8), landing=2).predictor
    assert again.cap == 2 and again.inner.max_excursion == 2  # re-bounded, not wrapped twice
    assert not isinstance(again.inner, LandingPredictor)
    with pytest.raises(RuntimeError, match="bind_loss"):
        landing.step(landing.init(TOP), None)
