"""The compiled JAX driver (``steps_per_sync=K``) walks the same path as the eager engine.

Each case walks once eagerly (the jitted step, one host synchronisation per step) and once or
more in chunks of K steps inside ``lax.while_loop``, and compares stop reasons, step counts,
history rows, trajectories and θ.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from manifoldwalk_jax import compiled, from_apply, walk_batch

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Quadric, QuadricDistance

COUNTS = ("step", "n_predictor", "n_corrector", "n_grad_evals")


@pytest.fixture(autouse=True, scope="module")
def _x64() -> Any:
    """float64 for this module only."""
    with jax.enable_x64(True):
        yield


def assert_same_walk(chunked: mw.WalkResult, eager: mw.WalkResult, rtol: float = 1e-9) -> None:
    """Same stop, counts and history rows; values and θ within floating-point tolerance."""
    assert np.asarray(eager.theta).dtype == np.float64
    assert chunked.stop_reason == eager.stop_reason, (chunked.message, eager.message)
    assert chunked.message.split(" (")[0] == eager.message.split(" (")[0]
    for k in ("n_predictor", "n_corrector", "n_grad_evals"):
        assert getattr(chunked, k) == getattr(eager, k), k
    assert list(chunked.history) == list(eager.history)
    for k, column in eager.history.items():
        if k in COUNTS:
            np.testing.assert_array_equal(chunked.history[k], column, err_msg=k)
        else:
            np.testing.assert_allclose(chunked.history[k], column, rtol=rtol, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(np.asarray(chunked.theta), np.asarray(eager.theta), rtol, 1e-12)
    if eager.trajectory is None:
        assert chunked.trajectory is None
    else:
        np.testing.assert_allclose(
            np.asarray(chunked.trajectory), np.asarray(eager.trajectory), rtol, 1e-12
        )
    for k in ("loss", "reg", "max_deviation", "max_predictor_step"):
        np.testing.assert_allclose(float(getattr(chunked, k)), float(getattr(eager, k)), rtol)


def both(problem: Any, theta0: Any, ks: tuple[int, ...], **options: Any) -> mw.WalkResult:
    """Walk eagerly and with each K; assert the same walk; return the eager result."""
    eager = mw.walk(problem, theta0, **options)
    for k in ks:
        assert_same_walk(mw.walk(problem, theta0, steps_per_sync=k, **options), eager)
    return eager


def top() -> jax.Array:
    """(0, 1), in float64 (made inside the tests, where x64 is on)."""
    return jnp.asarray([0.0, 1.0])


def test_circle_papers_scheme_max_steps_with_trajectory():
    r = both(
        compiled(Circle()),
        top(),
        (1, 7, 64),
        scheme="paper",
        max_steps=300,
        record_every=3,
        trajectory_every=25,
    )
    assert r.stop_reason == "max_steps" and r.n_corrector > 0
    assert len(r.history["step"]) == 101 and r.trajectory.shape == (13, 2)


def test_ellipsoid_default_scheme_stationary():
    q = Quadric(np.diag([1.0, 2.0, 3.0]), c=np.array([1.0, -1.0, 0.5]))
    start = jnp.asarray(q.point_on_level(np.array([0.3, 1.0, 1.0])))
    r = both(compiled(q), start, (64,), max_steps=400)
    assert r.stop_reason == "stationary"
    np.testing.assert_allclose(np.asarray(r.theta), q.solution(), atol=1e-4)


def test_distance_to_an_ellipsoid_reaches_a_kkt_point():
    q = QuadricDistance(np.diag([1.0, 4.0, 9.0]), p=np.array([2.0, 1.0, 0.5]))
    start = jnp.asarray(q.point_on_level(np.array([1.0, 1.0, 1.0])))
    r = both(compiled(q), start, (7,), scheme="paper", max_steps=300, record_every=10)
    assert r.n_predictor > 10


def test_max_total_steps_counts_corrector_steps_too():
    r = both(compiled(Circle()), top(), (5,), scheme="paper", max_total_steps=150)
    assert r.stop_reason == "max_total_steps" and r.n_predictor + r.n_corrector == 150


def test_authors_corrector_fails_and_keeps_the_last_on_level_point():
    r = both(compiled(Circle()), top(), (7,), scheme="authors", max_corrector_steps=40)
    assert r.stop_reason == "corrector_failed"
    assert abs(r.loss - 1.0) <= 1e-5


def _nan_left_of(x0: float) -> mw.Problem:
    """L = ‖x‖², R = x + y, but L is NaN once x < x0: the walk to −(1, 1)/√2 meets it."""

    def loss_and_grad(x):
        bad = x[0] < x0
        return jnp.where(bad, jnp.nan, x @ x), jnp.where(bad, jnp.nan, 2.0 * x)

    return mw.make_problem(
        loss_and_grad=loss_and_grad, reg=lambda x: jnp.sum(x), reg_grad=jnp.ones_like
    )


def test_non_finite_keeps_the_last_good_point():
    r = both(compiled(_nan_left_of(-0.3)), top(), (64,), max_steps=300)
    assert r.stop_reason == "non_finite" and np.isfinite(r.loss)
    assert float(r.theta[0]) >= -0.3 and abs(r.loss - 1.0) <= 1e-5


def test_toward_target_reaches_it():
    target = jnp.asarray([1.0, 0.0])
    r = both(compiled(Circle()), top(), (7,), direction=mw.TowardTarget(target, tol=1e-3))
    assert r.stop_reason == "reached_target"


def test_callback_and_metrics_run_on_the_host_at_every_record():
    seen: list[tuple[str, int]] = []

    def make_callback(tag: str):
        def callback(row: dict[str, float]) -> bool:
            seen.append((tag, row["n_predictor"]))
            return row["n_predictor"] >= 45

        return callback

    metrics = {"x_plus_y": lambda th: float(jnp.sum(th)), "norm": lambda th: float(th @ th)}
    p = compiled(Circle())
    options = dict(scheme="paper", record_every=5, metrics=metrics, trajectory_every=10)
    eager = mw.walk(p, top(), callback=make_callback("eager"), **options)
    chunked = mw.walk(p, top(), callback=make_callback("k64"), steps_per_sync=64, **options)
    assert_same_walk(chunked, eager)
    assert eager.stop_reason == "callback" and eager.n_predictor == 45
    assert [n for t, n in seen if t == "eager"] == [n for t, n in seen if t == "k64"]
    assert [n for t, n in seen if t == "k64"] == list(range(0, 50, 5))
    assert list(eager.history)[-2:] == ["x_plus_y", "norm"]


def test_resumed_chunked_walk_continues_the_same_path():
    p = compiled(Circle())
    whole = mw.walk(p, top(), scheme="paper", max_steps=200, steps_per_sync=16)
    first = mw.walk(p, top(), scheme="paper", max_steps=90, steps_per_sync=16)
    rest = mw.walk(p, top(), scheme="paper", max_steps=200, steps_per_sync=16, resume_from=first)
    assert_same_walk(rest, whole)


def _mlp(x_dim: int, hidden: int, n_out: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    sizes = [(x_dim, hidden), (hidden, n_out)]
    return {
        "layers": [
            {"w": jnp.asarray(rng.normal(size=s) / np.sqrt(s[0])), "b": jnp.zeros(s[1])}
            for s in sizes
        ]
    }


def _apply(params: dict, x: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
    return h @ params["layers"][1]["w"] + params["layers"][1]["b"]


def _xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


@pytest.mark.parametrize("scheme", ["paper", "default"])
def test_small_net_same_path(scheme):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, size=40)
    problem = from_apply(_apply, _mlp(4, 8, 3, 1), _xent, (x, y))
    r = both(problem, problem.theta0, (7,), scheme=scheme, max_steps=150, record_every=10)
    assert r.stop_reason in ("max_steps", "stationary") and r.n_predictor > 20


def test_problem_without_the_hook_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="compile_loop hook.*manifoldwalk_jax.compiled"):
        mw.walk(Circle(), top(), max_steps=5, steps_per_sync=8)


@pytest.mark.parametrize("k", [0, -3, 2.5])
def test_bad_steps_per_sync(k):
    with pytest.raises(ValueError, match="steps_per_sync must be None or a positive integer"):
        mw.walk(compiled(Circle()), top(), max_steps=5, steps_per_sync=k)


def test_host_sampled_random_walk_cannot_be_compiled():
    with pytest.raises(ValueError, match="draws on the host"):
        mw.walk(
            compiled(Circle()),
            top(),
            direction=mw.RandomWalk(seed=0),
            max_steps=5,
            steps_per_sync=8,
        )


def _seed_problems(n: int) -> list:
    """n problems of one tiny net on n random datasets of equal shapes."""
    problems = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
        problems.append(from_apply(_apply, _mlp(4, 8, 3, 10 + seed), _xent, (x, y)))
    return problems


def test_walk_batch_gives_each_seed_its_own_walk():
    problems = _seed_problems(3)
    stops = (30, 70, 10**9)  # seed i's callback stops it at its own step; the last runs out

    def stopper(at: int):
        return lambda row: row["n_predictor"] >= at

    options = dict(scheme="paper", max_steps=120, record_every=10, trajectory_every=40)
    batch = walk_batch(problems, steps_per_sync=32, callback=[stopper(a) for a in stops], **options)
    for p, at, got in zip(problems, stops, batch, strict=True):
        alone = mw.walk(p, p.theta0, callback=stopper(at), **options)
        assert_same_walk(got, alone)
    assert [r.stop_reason for r in batch] == ["callback", "callback", "max_steps"]
    assert [r.n_predictor for r in batch] == [30, 70, 120]


def test_walk_batch_refuses_problems_of_other_shapes():
    a, b = _seed_problems(2)
    rng = np.random.default_rng(5)
    other = from_apply(
        _apply, _mlp(4, 8, 3, 1), _xent, (rng.normal(size=(41, 4)), np.zeros(41, int))
    )
    with pytest.raises(ValueError, match="other shapes"):
        walk_batch([a, other], max_steps=3)
    with pytest.raises(ValueError, match="3 entries for 2 problems"):
        walk_batch([a, b], thetas=[a.theta0] * 3, max_steps=3)
