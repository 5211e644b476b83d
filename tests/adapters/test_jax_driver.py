"""The compiled JAX driver (``driver=Chunked(K)``) walks the same path as the eager engine.

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
from _same_walk import assert_same_walk
from manifoldwalk_jax import compiled, from_apply, walk_batch

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Quadric, QuadricDistance
from manifoldwalk.step import state_leaves


@pytest.fixture(autouse=True, scope="module")
def _x64() -> Any:
    """float64 for this module only."""
    with jax.enable_x64(True):
        yield


def both(problem: Any, theta0: Any, ks: tuple[int, ...], **options: Any) -> mw.WalkResult:
    """Walk eagerly and with each K; assert the same walk; return the eager result."""
    eager = mw.walk(problem, theta0, **options)
    for k in ks:
        assert_same_walk(
            mw.walk(problem, theta0, **options, driver=mw.Chunked(steps_per_sync=k)), eager
        )
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
        stop=mw.Stop(max_steps=300),
        record=mw.Record(every=3, trajectory_every=25),
    )
    assert r.stop_reason == "max_steps" and r.n_corrector > 0
    assert len(r.history["step"]) == 101 and r.trajectory.shape == (13, 2)


def test_ellipsoid_default_scheme_stationary():
    q = Quadric(np.diag([1.0, 2.0, 3.0]), c=np.array([1.0, -1.0, 0.5]))
    start = jnp.asarray(q.point_on_level(np.array([0.3, 1.0, 1.0])))
    r = both(compiled(q), start, (64,), stop=mw.Stop(max_steps=400))
    assert r.stop_reason == "stationary"
    np.testing.assert_allclose(np.asarray(r.theta), q.solution(), atol=1e-4)


def test_distance_to_an_ellipsoid_reaches_a_kkt_point():
    q = QuadricDistance(np.diag([1.0, 4.0, 9.0]), p=np.array([2.0, 1.0, 0.5]))
    start = jnp.asarray(q.point_on_level(np.array([1.0, 1.0, 1.0])))
    r = both(
        compiled(q),
        start,
        (7,),
        scheme="paper",
        stop=mw.Stop(max_steps=300),
        record=mw.Record(every=10),
    )
    assert r.n_predictor > 10


def test_no_records_along_the_way_in_every_driver():
    r = both(
        compiled(Circle()),
        top(),
        (1, 7),
        scheme="paper",
        stop=mw.Stop(max_steps=50),
        record=mw.Record(every=None),
    )
    assert list(r.history["n_predictor"]) == [0, 50]


def test_max_total_steps_counts_corrector_steps_too():
    r = both(compiled(Circle()), top(), (5,), scheme="paper", stop=mw.Stop(max_total_steps=150))
    assert r.stop_reason == "max_total_steps" and r.n_predictor + r.n_corrector == 150


def test_authors_corrector_fails_and_keeps_the_last_on_level_point():
    authors = mw.get_scheme("authors", max_corrector_steps=40)
    r = both(compiled(Circle()), top(), (7,), scheme=authors)
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
    r = both(compiled(_nan_left_of(-0.3)), top(), (64,), stop=mw.Stop(max_steps=300))
    assert r.stop_reason == "non_finite" and np.isfinite(r.loss)
    assert float(r.theta[0]) >= -0.3 and abs(r.loss - 1.0) <= 1e-5


def _before_each_chunk(problem: Any, before: Any) -> None:
    """Make every chunk call of ``problem`` run ``before(carry) -> carry`` first."""
    build = problem.compile_loop

    def compile_loop(loop: Any) -> Any:
        chunk = build(loop)
        return lambda carry: chunk(before(carry))

    problem.compile_loop = compile_loop


def _counting_chunks(problem: Any) -> list[int]:
    """Make ``problem``'s chunks record the ``n_limit`` of every call; returns that list."""
    limits: list[int] = []
    _before_each_chunk(problem, lambda carry: limits.append(int(carry.n_limit)) or carry)
    return limits


@pytest.mark.parametrize(
    ("make", "options", "k"),
    [
        (
            lambda: compiled(Circle()),
            dict(
                scheme=mw.get_scheme("authors", max_corrector_steps=40),
                record=mw.Record(trajectory_every=5),
            ),
            5,
        ),
        (lambda: compiled(_nan_left_of(-0.3)), dict(stop=mw.Stop(max_steps=300)), 5),
    ],
)
def test_an_off_level_stop_replays_one_chunk_to_the_last_good_point(make, options, k):
    """The chunk that reached the last good state runs once more, up to that state only: θ is
    the eager walk's last good point, and no chunk runs again when the walk stops on level."""
    eager = mw.walk(make(), top(), **options)
    problem = make()
    limits = _counting_chunks(problem)
    chunked = mw.walk(problem, top(), **options, driver=mw.Chunked(steps_per_sync=k))
    assert_same_walk(chunked, eager)
    assert limits[:-1] == [k] * (len(limits) - 1) and 0 < limits[-1] < k
    assert chunked.state is not None and float(chunked.state.theta[0]) != float(chunked.theta[0])
    on_level = _counting_chunks(problem)
    assert (
        mw.walk(
            problem, top(), stop=mw.Stop(max_steps=5), driver=mw.Chunked(steps_per_sync=k)
        ).stop_reason
        == "max_steps"
    )
    assert on_level == [k] * len(on_level)


def test_a_replayed_chunk_that_lands_off_the_level_set_warns_at_the_callers_line():
    """A device that does not reproduce the replayed chunk (here: its θ doubled) gets a
    warning that points at the line that called ``walk``, and θ is still returned."""
    problem = compiled(Circle())

    def unreproducible(carry: Any) -> Any:
        if int(carry.n_limit) < 5:  # the replay: every walk chunk runs 5 steps
            carry = carry._replace(state=carry.state._replace(theta=2 * carry.state.theta))
        return carry

    _before_each_chunk(problem, unreproducible)
    options = dict(scheme=mw.get_scheme("authors", max_corrector_steps=40), driver=mw.Chunked(5))
    with pytest.warns(RuntimeWarning, match="did not reproduce the chunk") as w:
        r = mw.walk(problem, top(), **options)
    assert w[0].filename == __file__
    assert r.stop_reason == "corrector_failed" and np.all(np.isfinite(np.asarray(r.theta)))


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
    record = mw.Record(every=5, metrics=metrics, trajectory_every=10)
    eager = mw.walk(
        p, top(), scheme="paper", record=record.replace(callback=make_callback("eager"))
    )
    chunked = mw.walk(
        p,
        top(),
        scheme="paper",
        record=record.replace(callback=make_callback("k64")),
        driver=mw.Chunked(steps_per_sync=64),
    )
    assert_same_walk(chunked, eager)
    assert eager.stop_reason == "callback" and eager.n_predictor == 45
    assert [n for t, n in seen if t == "eager"] == [n for t, n in seen if t == "k64"]
    assert [n for t, n in seen if t == "k64"] == list(range(0, 50, 5))
    assert list(eager.history)[-2:] == ["x_plus_y", "norm"]


def test_resumed_chunked_walk_continues_the_same_path():
    p = compiled(Circle())
    whole = mw.walk(
        p, top(), scheme="paper", stop=mw.Stop(max_steps=200), driver=mw.Chunked(steps_per_sync=16)
    )
    first = mw.walk(
        p, top(), scheme="paper", stop=mw.Stop(max_steps=90), driver=mw.Chunked(steps_per_sync=16)
    )
    rest = mw.walk(
        p,
        top(),
        scheme="paper",
        resume_from=first,
        stop=mw.Stop(max_steps=200),
        driver=mw.Chunked(steps_per_sync=16),
    )
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
    r = both(
        problem,
        problem.theta0,
        (7,),
        scheme=scheme,
        stop=mw.Stop(max_steps=150),
        record=mw.Record(every=10),
    )
    assert r.stop_reason in ("max_steps", "stationary") and r.n_predictor > 20


def _kept_first(kept: list) -> dict:
    """A metric that keeps the θs it is given (as a user's may)."""

    def first(theta: jax.Array) -> float:
        kept.append(theta)
        return float(theta[0])

    return {"first": first}


@pytest.mark.parametrize(
    ("scheme", "overrides"),
    [("paper", {}), ("default", {}), ("authors", {"max_corrector_steps": 8, "eta_c": 0.5})],
)
def test_the_eager_drivers_donated_step_walks_the_same_path(scheme, overrides):
    """The eager driver asks the JAX hook for a step that donates its state: the same walk bit
    for bit as the step that does not, and every array the caller holds stays alive (θ0, an
    earlier result resumed from, the θs a metric kept, the trajectory)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
    results, kept = {}, {}
    options = {"scheme": mw.get_scheme(scheme, **overrides)}
    for donate in (True, False):
        problem = from_apply(_apply, _mlp(4, 8, 3, 1), _xent, (x, y))
        if not donate:
            problem.compile_step = lambda step: jax.jit(step)  # the plain protocol
        theta0, kept[donate] = problem.theta0, []
        first = mw.walk(problem, theta0, **options, stop=mw.Stop(max_steps=30))
        results[donate] = r = mw.walk(
            problem,
            theta0,
            resume_from=first,
            **options,
            stop=mw.Stop(max_steps=90),
            record=mw.Record(trajectory_every=7, metrics=_kept_first(kept[donate])),
        )
        arrays = [
            theta0,
            first.theta,
            *state_leaves(first.state),
            *kept[donate],
            r.trajectory,
            r.theta,
        ]
        assert not any(a.is_deleted() for a in arrays)
    a, b = results[True], results[False]
    assert_same_walk(a, b)
    for k in a.history:  # and bit for bit
        np.testing.assert_array_equal(a.history[k], b.history[k], err_msg=k)
    for u, v in (
        (a.theta, b.theta),
        (a.trajectory, b.trajectory),
        *zip(state_leaves(a.state), state_leaves(b.state), strict=True),
    ):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    np.testing.assert_array_equal(np.asarray(kept[True]), np.asarray(kept[False]))
    if scheme == "authors":
        assert results[True].stop_reason == "corrector_failed"


def test_a_hook_swapped_for_a_plain_one_is_not_served_the_cached_donating_step():
    """The step cache keys on whether the hook donates: after a walk that cached a donating
    step, a problem whose hook is replaced by a plain ``jax.jit`` compiles its own step, and
    the caller's θ0 stays alive."""
    rng = np.random.default_rng(1)
    problem = from_apply(
        _apply, _mlp(4, 8, 3, 1), _xent, (rng.normal(size=(20, 4)), rng.integers(0, 3, size=20))
    )
    mw.walk(problem, problem.theta0, stop=mw.Stop(max_steps=5))
    plain = []
    problem.compile_step = lambda step: plain.append(step) or jax.jit(step)
    theta0 = jnp.array(problem.theta0, copy=True)
    mw.walk(problem, theta0, stop=mw.Stop(max_steps=5))
    assert len(plain) == 1 and not theta0.is_deleted()


def test_problem_without_the_hook_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="compile_loop hook.*manifoldwalk_jax.compiled"):
        mw.walk(Circle(), top(), stop=mw.Stop(max_steps=5), driver=mw.Chunked(steps_per_sync=8))


@pytest.mark.parametrize("k", [0, -3, 2.5])
def test_bad_steps_per_sync(k):
    with pytest.raises(ValueError, match="steps_per_sync must be a positive integer"):
        mw.walk(
            compiled(Circle()),
            top(),
            stop=mw.Stop(max_steps=5),
            driver=mw.Chunked(steps_per_sync=k),
        )


def test_host_sampled_random_walk_cannot_be_compiled():
    with pytest.raises(ValueError, match="draws on the host"):
        mw.walk(
            compiled(Circle()),
            top(),
            direction=mw.RandomWalk(seed=0),
            stop=mw.Stop(max_steps=5),
            driver=mw.Chunked(steps_per_sync=8),
        )


def _seed_problems(n: int) -> list:
    """n problems of one tiny net on n random datasets of equal shapes."""
    problems = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
        problems.append(from_apply(_apply, _mlp(4, 8, 3, 10 + seed), _xent, (x, y)))
    return problems


@pytest.fixture(params=["lanes", "plain vmap"])
def batch_runner(request: Any, monkeypatch: Any) -> None:
    """A batch test run both ways a lane runs its chunk: the CPU's (the lanes agree on the
    loop's predicate and on history writes) and the plain ``vmap`` other devices use."""
    import manifoldwalk_jax.batch as batch
    from manifoldwalk_jax.loop import run_chunk

    runner = batch._run_lanes if request.param == "lanes" else run_chunk
    monkeypatch.setattr(batch, "default_runner", lambda platform: runner)


@pytest.mark.usefixtures("batch_runner")
def test_walk_batch_gives_each_seed_its_own_walk():
    problems = _seed_problems(3)
    stops = (30, 70, 10**9)  # seed i's callback stops it at its own step; the last runs out

    def stopper(at: int):
        return lambda row: row["n_predictor"] >= at

    options = dict(scheme="paper", stop=mw.Stop(max_steps=120))
    record = mw.Record(every=10, trajectory_every=40)
    batch = walk_batch(
        problems,
        **options,
        record=[record.replace(callback=stopper(a)) for a in stops],
        driver=mw.Chunked(steps_per_sync=32),
    )
    for p, at, got in zip(problems, stops, batch, strict=True):
        alone = mw.walk(p, p.theta0, **options, record=record.replace(callback=stopper(at)))
        assert_same_walk(got, alone)
    assert [r.stop_reason for r in batch] == ["callback", "callback", "max_steps"]
    assert [r.n_predictor for r in batch] == [30, 70, 120]


@pytest.mark.usefixtures("batch_runner")
def test_walk_batch_seeds_that_fail_to_correct_keep_their_last_good_point():
    """Each seed stops off the level set at its own step, its last good state one or two
    chunks back: the batch replays that seed's chunk and returns what the seed alone would."""
    problems = _seed_problems(3)
    options = dict(
        scheme=mw.get_scheme("authors", max_corrector_steps=6),
        tolerance=mw.Tolerance(tau=1e-14),
        stop=mw.Stop(max_steps=200),
    )
    batch = walk_batch(problems, **options, driver=mw.Chunked(steps_per_sync=8))
    for p, got in zip(problems, batch, strict=True):
        assert_same_walk(got, mw.walk(p, p.theta0, **options))
    assert [r.stop_reason for r in batch] == ["corrector_failed"] * 3
    assert len({r.n_predictor for r in batch}) == 3


def test_walk_batch_refuses_problems_of_other_shapes():
    a, b = _seed_problems(2)
    rng = np.random.default_rng(5)
    other = from_apply(
        _apply, _mlp(4, 8, 3, 1), _xent, (rng.normal(size=(41, 4)), np.zeros(41, int))
    )
    with pytest.raises(ValueError, match="other shapes"):
        walk_batch([a, other], stop=mw.Stop(max_steps=3))
    with pytest.raises(ValueError, match="3 entries for 2 problems"):
        walk_batch([a, b], thetas=[a.theta0] * 3, stop=mw.Stop(max_steps=3))


def test_walk_batch_refuses_seeds_the_first_model_does_not_compute():
    """Two closures of one code over other activations pass the structural check; the batch
    would walk seed 1 with seed 0's function, so it refuses, naming the seed."""

    def make_apply(act):
        def apply_fn(params: dict, x: jax.Array) -> jax.Array:
            h = act(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
            return h @ params["layers"][1]["w"] + params["layers"][1]["b"]

        return apply_fn

    rng = np.random.default_rng(0)
    data = (rng.normal(size=(40, 4)), rng.integers(0, 3, size=40))
    tanh = from_apply(make_apply(jnp.tanh), _mlp(4, 8, 3, 1), _xent, data)
    relu = from_apply(make_apply(jax.nn.relu), _mlp(4, 8, 3, 1), _xent, data)
    with pytest.raises(ValueError, match=r"problems\[1\] is not the function.*gives loss"):
        walk_batch([tanh, relu], stop=mw.Stop(max_steps=3))
    other_reg = from_apply(
        make_apply(jnp.tanh), _mlp(4, 8, 3, 2), _xent, data, reg=lambda t: jnp.sum(t**4)
    )
    with pytest.raises(ValueError, match=r"problems\[1\].*gives regulariser"):
        walk_batch([tanh, other_reg], stop=mw.Stop(max_steps=3))
    # the same function of other parameters passes; each seed keeps its own level
    other = from_apply(make_apply(jnp.tanh), _mlp(4, 8, 3, 2), _xent, data)
    batch = walk_batch([tanh, other], stop=mw.Stop(max_steps=3))
    assert batch[1].level == pytest.approx(float(other.loss(other.theta0)), rel=1e-12)


# --- several masked steps per while-loop iteration (steps_per_iteration=M) --------------------


def stops_mid_iteration(r: mw.WalkResult, k: int, m: int) -> bool:
    """Whether a walk of full K-step chunks (no host pauses) stopped inside an M-step iteration,
    before its chunk's K-th step (so that masked steps follow the stop)."""
    return (r.n_predictor + r.n_corrector) % k % m != 0


@pytest.mark.parametrize("m", [1, 3, 8])
def test_masked_iterations_take_the_eager_path(m):
    """K = 13 is not a multiple of 3 or 8; the budget stop fires inside an iteration."""
    options = {
        "scheme": "paper",
        "stop": mw.Stop(max_steps=300),
        "record": mw.Record(every=3, trajectory_every=25),
    }
    eager = mw.walk(compiled(Circle()), top(), **options)
    chunked = mw.walk(
        compiled(Circle()),
        top(),
        **options,
        driver=mw.Chunked(steps_per_sync=13, steps_per_iteration=m),
    )
    assert_same_walk(chunked, eager)
    assert eager.stop_reason == "max_steps" and eager.n_corrector > 0
    assert m == 1 or stops_mid_iteration(eager, 13, m)


@pytest.mark.parametrize("m", [3])
def test_masked_iterations_stationary_and_non_finite_stops(m):
    q = Quadric(np.diag([1.0, 2.0, 3.0]), c=np.array([1.0, -1.0, 0.5]))
    start = jnp.asarray(q.point_on_level(np.array([0.3, 1.0, 1.0])))
    eager = mw.walk(compiled(q), start, stop=mw.Stop(max_steps=400))
    chunked = mw.walk(
        compiled(q),
        start,
        stop=mw.Stop(max_steps=400),
        driver=mw.Chunked(steps_per_sync=13, steps_per_iteration=m),
    )
    assert_same_walk(chunked, eager)
    assert eager.stop_reason == "stationary"
    assert m == 1 or stops_mid_iteration(eager, 13, m)
    p = compiled(_nan_left_of(-0.3))
    eager = mw.walk(p, top(), stop=mw.Stop(max_steps=300))
    assert_same_walk(
        mw.walk(
            p,
            top(),
            stop=mw.Stop(max_steps=300),
            driver=mw.Chunked(steps_per_sync=64, steps_per_iteration=m),
        ),
        eager,
    )
    assert eager.stop_reason == "non_finite"
    assert m == 1 or stops_mid_iteration(eager, 64, m)


@pytest.mark.parametrize("m", [3])
def test_masked_iterations_pause_for_host_records_mid_iteration(m):
    """Record(every=5) with metrics and a callback: chunks end at pauses inside iterations of M
    steps; the host records there and the next chunk goes on."""
    seen: dict[str, list[int]] = {"eager": [], "chunked": []}

    def callback(tag: str):
        def stop(row: dict[str, float]) -> bool:
            seen[tag].append(row["n_predictor"])
            return row["n_predictor"] >= 45

        return stop

    record = mw.Record(every=5, trajectory_every=10)
    record = record.replace(metrics={"x_plus_y": lambda th: float(jnp.sum(th))})
    eager = mw.walk(
        compiled(Circle()), top(), scheme="paper", record=record.replace(callback=callback("eager"))
    )
    chunked = mw.walk(
        compiled(Circle()),
        top(),
        scheme="paper",
        record=record.replace(callback=callback("chunked")),
        driver=mw.Chunked(steps_per_sync=64, steps_per_iteration=m),
    )
    assert_same_walk(chunked, eager)
    assert chunked.stop_reason == "callback" and chunked.n_predictor == 45
    assert seen["chunked"] == seen["eager"] == list(range(0, 50, 5))
    steps = chunked.history["step"]  # the pauses: where each chunk ended
    assert any(int(n) % m for n in np.diff(steps))


@pytest.mark.parametrize("m", [1, 3, 8])
def test_masked_iterations_small_net(m):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, size=40)
    problem = from_apply(_apply, _mlp(4, 8, 3, 1), _xent, (x, y))
    options = dict(
        scheme="paper",
        stop=mw.Stop(max_steps=150),
        record=mw.Record(every=10, trajectory_every=20),
    )
    eager = mw.walk(problem, problem.theta0, **options)
    chunked = mw.walk(
        problem,
        problem.theta0,
        **options,
        driver=mw.Chunked(steps_per_sync=7, steps_per_iteration=m),
    )
    assert_same_walk(chunked, eager)
    assert m == 1 or stops_mid_iteration(eager, 7, m)


@pytest.mark.parametrize("scheme", ["paper", "compensated"])
def test_walk_batch_with_masked_iterations(scheme):
    problems = _seed_problems(2)
    options = dict(scheme=scheme, stop=mw.Stop(max_steps=60), record=mw.Record(every=10))
    batch = walk_batch(
        problems, **options, driver=mw.Chunked(steps_per_sync=16, steps_per_iteration=2)
    )
    for p, got in zip(problems, batch, strict=True):
        assert_same_walk(got, mw.walk(p, p.theta0, **options))
        # the compensated walk corrects, so it learns (and batches) a drift
        assert scheme == "paper" or got.n_corrector > 0


def test_a_masked_step_changes_nothing():
    """Where the loop's condition is false (here: a host pause), a masked step returns the carry
    as it was, buffers included, though the discarded step lands on a record point."""
    from manifoldwalk_jax.loop import put_row, put_select

    from manifoldwalk._chunked import Carry
    from manifoldwalk.driver import prepare_walk

    run = prepare_walk(
        compiled(Circle()), top(), scheme="paper", record=mw.Record(trajectory_every=1)
    )
    host = run.host(8, steps_per_iteration=2)
    paused = host.carry._replace(pause=jnp.asarray(True))
    assert int(paused.n_rows) == 1 and int(paused.n_points) == 1
    for put in (put_row, put_select):
        out = host.loop.masked_body(paused, put)
        for name, a, b in zip(Carry._fields, out, paused, strict=True):
            for x, y in zip(
                jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True
            ):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
    stepped = host.loop.masked_body(host.carry, put_select)  # not paused: one step, one row
    assert int(stepped.n_done) == 1 and int(stepped.n_rows) == 2


@pytest.mark.parametrize("m", [0, -1, 2.0, True])
def test_bad_steps_per_iteration(m):
    with pytest.raises(ValueError, match="steps_per_iteration must be a positive integer"):
        mw.walk(
            compiled(Circle()),
            top(),
            stop=mw.Stop(max_steps=5),
            driver=mw.Chunked(steps_per_sync=8, steps_per_iteration=m),
        )


def test_steps_per_iteration_belongs_to_the_compiled_driver():
    """M is an option of the chunked driver only: the eager driver has none, and a chunked
    driver needs K as well as M."""
    with pytest.raises(TypeError, match="steps_per_iteration"):
        mw.Eager(steps_per_iteration=4)
    with pytest.raises(TypeError, match="steps_per_sync"):
        mw.Chunked(steps_per_iteration=4)
    with pytest.raises(ValueError, match="steps_per_iteration must be a positive integer"):
        mw.walk(compiled(Circle()), top(), driver=mw.Chunked(8, steps_per_iteration=0))


# --- the compiled chunk is cached on the problem ---------------------------------------------


def _traced_circle() -> tuple[Any, dict[str, int]]:
    """Circle's L and R under compiled(); ``count["traces"]`` counts evaluations of L while
    JAX traces (the eager start's evaluations do not count)."""
    count = {"traces": 0}
    circle = Circle()

    def loss_and_grad(x):
        if isinstance(x, jax.core.Tracer):
            count["traces"] += 1
        return circle.loss(x), circle.grad(x)

    p = mw.make_problem(loss_and_grad=loss_and_grad, reg=circle.reg, reg_grad=circle.reg_grad)
    return compiled(p), count


def test_a_second_walk_reuses_the_compiled_chunk():
    p, count = _traced_circle()
    options = dict(
        scheme="paper",
        stop=mw.Stop(max_steps=120),
        record=mw.Record(every=3, trajectory_every=20),
    )
    first = mw.walk(p, top(), **options, driver=mw.Chunked(steps_per_sync=16))
    traced = count["traces"]
    assert traced > 0 and len(p.loop_cache) == 1
    again = mw.walk(p, top(), **options, driver=mw.Chunked(steps_per_sync=16))
    assert count["traces"] == traced  # not traced again
    assert_same_walk(again, first)
    # another start of the same shape: the same chunk, and the eager walk from there
    other = jnp.asarray([1.0, 0.0])
    got = mw.walk(p, other, **options, driver=mw.Chunked(steps_per_sync=16))
    assert count["traces"] == traced
    assert_same_walk(got, mw.walk(p, other, **options))
    # a resumed walk with the original options: the same chunk again
    half = mw.walk(
        p,
        top(),
        **options | {"stop": mw.Stop(max_steps=51)},
        driver=mw.Chunked(steps_per_sync=16),
    )
    traced = count["traces"]
    rest = mw.walk(p, top(), resume_from=half, **options, driver=mw.Chunked(steps_per_sync=16))
    assert count["traces"] == traced
    assert_same_walk(rest, first)


def test_the_cache_never_serves_a_wrong_chunk():
    p, count = _traced_circle()
    base = dict(scheme="paper", stop=mw.Stop(max_steps=120), record=mw.Record(every=3))
    mw.walk(p, top(), **base, driver=mw.Chunked(steps_per_sync=16))
    traced = count["traces"]
    # τ lives in the walk state and the step budgets in the carry, not in the traced chunk:
    # no new trace, and the eager result
    totals = [
        {"stop": mw.Stop(max_steps=120, max_total_steps=300)},
        {"stop": mw.Stop(max_steps=30, max_total_steps=100)},
    ]
    for same in [{"tolerance": mw.Tolerance(tau=1e-6)}, {"stop": mw.Stop(max_steps=80)}, *totals]:
        got = mw.walk(p, top(), **base | same, driver=mw.Chunked(steps_per_sync=16))
        if same is totals[0]:  # a budget where there was none: a rule more, traced anew
            assert count["traces"] > traced
            traced = count["traces"]
        assert count["traces"] == traced, same
        assert_same_walk(got, mw.walk(p, top(), **base | same))
        traced = count["traces"]  # the eager walk's jitted step traced (once: cached after)
    # another scheme, another stop rule, another K or M, another dtype: traced anew, and right
    changed = [
        (base | {"scheme": "default"}, 16, 1),
        (base | {"scheme": mw.get_scheme("paper", eta_max=0.05)}, 16, 1),  # the step rule alone
        (base | {"stop": mw.Stop(max_steps=120, kkt_tol=1e-3)}, 16, 1),
        (base | {"record": mw.Record(every=3, trajectory_every=10)}, 16, 1),
        (base, 9, 1),
        (base, 16, 2),
    ]
    for options, k, m in changed:
        before = count["traces"]
        got = mw.walk(
            p, top(), **options, driver=mw.Chunked(steps_per_sync=k, steps_per_iteration=m)
        )
        assert count["traces"] > before, (options, k, m)
        assert_same_walk(got, mw.walk(p, top(), **options))
    assert len(p.loop_cache) == p.loop_cache.maxsize == 4  # bounded: the oldest went first
    before = count["traces"]
    mw.walk(
        p, top(), **base, driver=mw.Chunked(steps_per_sync=16)
    )  # the first chunk was the oldest: evicted
    assert count["traces"] > before
    before = count["traces"]
    r32 = mw.walk(p, top().astype(jnp.float32), **base, driver=mw.Chunked(steps_per_sync=9))
    assert count["traces"] > before and r32.theta.dtype == jnp.float32


def test_directions_are_keyed_by_value():
    p, count = _traced_circle()
    traces = []
    for target in ([1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]):
        d = mw.TowardTarget(jnp.asarray(target), tol=1e-3)
        before = count["traces"]
        got = mw.walk(p, top(), direction=d, driver=mw.Chunked(steps_per_sync=7))
        traces.append(count["traces"] - before)
        assert_same_walk(got, mw.walk(p, top(), direction=d))
        assert got.stop_reason == "reached_target"
    assert traces[0] > 0 and traces[1] > 0 and traces[2] == 0  # the third: the first's chunk
    assert len(p.loop_cache) == 2


def test_unhashable_pieces_are_compiled_each_time():
    class Toward:
        """A direction that defines __eq__ and no __hash__ (so it cannot be a key)."""

        optimises = True

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Toward)

        def __call__(self, theta, reg_grad, n_predictor):
            return -reg_grad

    p, count = _traced_circle()
    eager = mw.walk(p, top(), direction=Toward(), stop=mw.Stop(max_steps=50))
    for _ in range(2):
        assert_same_walk(
            mw.walk(
                p,
                top(),
                direction=Toward(),
                stop=mw.Stop(max_steps=50),
                driver=mw.Chunked(steps_per_sync=8),
            ),
            eager,
        )
    assert len(p.loop_cache) == 0


def test_cache_key_tells_ints_from_floats():
    from manifoldwalk._compile_cache import value_key as _key

    assert _key(1) != _key(1.0) and _key(True) != _key(1) and _key(-0.0) != _key(0.0)
    assert _key(mw.get_scheme("paper")) == _key(mw.get_scheme("paper"))
    assert _key(mw.get_scheme("paper")) != _key(mw.get_scheme("paper", eta_max=0.2))


def test_walk_batch_reuses_its_compiled_chunk(monkeypatch):
    import manifoldwalk_jax.batch as batch

    built: list[int] = []
    make = batch._batched_chunk

    def counting(*args: Any) -> Any:
        built.append(1)
        return make(*args)

    monkeypatch.setattr(batch, "_batched_chunk", counting)
    problems = _seed_problems(2)
    options = dict(
        scheme="paper",
        stop=mw.Stop(max_steps=40),
        record=mw.Record(every=10),
        driver=mw.Chunked(16),
    )
    first = walk_batch(problems, **options)
    second = walk_batch(problems, **options)
    assert len(built) == 1 and len(problems[0].loop_cache) == 1
    for a, b in zip(first, second, strict=True):
        assert_same_walk(a, b)
    # a budget: the same chunk
    shorter = walk_batch(problems, **options | {"stop": mw.Stop(max_steps=30)})
    assert len(built) == 1 and all(r.n_predictor == 30 for r in shorter)
    walk_batch(problems, **options | {"scheme": "default"})
    assert len(built) == 2
