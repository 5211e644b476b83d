"""The eager driver with a compiled step that consumes the state it is given.

A ``compile_step`` hook that takes ``donate=True`` may write the new state into the old one's
memory (JAX: ``donate_argnums``). The driver must then never hand the step the caller's θ0 or
resumed state, must keep copies of the θs it gives the metrics and the trajectory, and must
replay the last good state when the walk stops off the level set. Here a numpy "compiler"
destroys every array of the state it was given that its result does not reuse (NaN, flipped
flags, wild counts), as a device frees donated buffers: a walk with it must equal, bit for bit,
the same walk whose compiled step leaves its input alone.
"""

from __future__ import annotations

import warnings
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
import manifoldwalk._eager as driver
from manifoldwalk.problems import Circle
from manifoldwalk.step import state_leaves


def _destroy(given_state: Any, result: Any) -> None:
    """Overwrite every writable array of ``given_state`` that shares no memory with ``result``."""
    kept = [y for y in (*state_leaves(result[0]), result[1]) if isinstance(y, np.ndarray)]
    for x in state_leaves(given_state):
        if not (isinstance(x, np.ndarray) and x.flags.writeable):
            continue
        if any(np.shares_memory(x, y) for y in kept):
            continue
        if x.dtype == bool:
            x[...] = ~x
        elif np.issubdtype(x.dtype, np.integer):
            x[...] = -(2**40)
        else:
            x[...] = np.nan


class Plain(Circle):
    """The circle with a compile hook that wraps the step (compiling nothing) and leaves its
    input alone: the plain ``compile_step(fn)`` protocol."""

    def compile_step(self, step: Any) -> Any:
        return lambda state: step(state)


class Donating(Circle):
    """The circle whose compile hook takes ``donate``: then its step destroys its input."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def compile_step(self, step: Any, donate: bool = False) -> Any:
        def run(state: Any) -> Any:
            self.calls += 1
            out = step(state)
            if donate:
                _destroy(state, out)
            return out

        return run


class NaNLeftOf:
    """L is NaN once x < -0.5 (the walk to −(1, 1)/√2 meets it), on top of a circle class."""

    def __init__(self, base: type) -> None:
        self.base = base()

    def loss(self, x: Any) -> Any:
        return np.where(x[0] < -0.5, np.nan, self.base.loss(x))

    def grad(self, x: Any) -> Any:
        return self.base.grad(x)

    def reg(self, x: Any) -> Any:
        return self.base.reg(x)

    def reg_grad(self, x: Any) -> Any:
        return self.base.reg_grad(x)

    def compile_step(self, step: Any, **options: Any) -> Any:
        return self.base.compile_step(step, **options)


def assert_same(a: mw.WalkResult, b: mw.WalkResult) -> None:
    """Two results equal bit for bit: θ, counts, stop, history, trajectory and last state."""
    np.testing.assert_array_equal(a.theta, b.theta)
    assert (a.stop_reason, a.message) == (b.stop_reason, b.message)
    assert (a.n_predictor, a.n_corrector, a.n_grad_evals) == (
        b.n_predictor,
        b.n_corrector,
        b.n_grad_evals,
    )
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        np.testing.assert_array_equal(a.history[k], b.history[k], err_msg=k)
    if a.trajectory is None:
        assert b.trajectory is None
    else:
        np.testing.assert_array_equal(a.trajectory, b.trajectory)
    for x, y in zip(state_leaves(a.state), state_leaves(b.state), strict=True):
        np.testing.assert_array_equal(x, y)


def keeping_metric() -> tuple[dict[str, Any], list[Any]]:
    """A metric that keeps every θ it is given (as a user's may); returns it and the list."""
    kept: list[Any] = []

    def first(theta: Any) -> float:
        kept.append(theta)
        return float(theta[0])

    return {"first": first}, kept


@settings(max_examples=30, deadline=None)
@given(
    angle=st.floats(0.05, 1.5),
    scheme=st.sampled_from(["paper", "default", "compensated", "authors"]),
    anchor_every=st.sampled_from([1, 2, 5, 64]),
    trajectory_every=st.sampled_from([None, 1, 3]),
)
def test_a_consuming_step_walks_the_same_path(angle, scheme, anchor_every, trajectory_every):
    theta0 = np.array([np.cos(angle), np.sin(angle)])
    if scheme == "authors":  # its corrector oscillates: the walk stops off the level set
        scheme = mw.get_scheme(scheme, max_corrector_steps=30)
    options = dict(scheme=scheme, stop=mw.Stop(max_steps=60))
    plain_metrics, plain_kept = keeping_metric()
    record = mw.Record(trajectory_every=trajectory_every, metrics=plain_metrics)
    plain = mw.walk(Plain(), theta0.copy(), **options, record=record)
    start = theta0.copy()
    metrics, kept = keeping_metric()
    with mock.patch.object(driver, "ANCHOR_EVERY", anchor_every):
        record = mw.Record(trajectory_every=trajectory_every, metrics=metrics)
        consuming = mw.walk(Donating(), start, **options, record=record)
    assert_same(consuming, plain)
    np.testing.assert_array_equal(start, theta0)  # the caller's θ0 is whole
    np.testing.assert_array_equal(np.array(kept), np.array(plain_kept))


def test_an_off_level_stop_replays_from_the_last_anchor():
    """The authors' corrector fails 30 steps after the last good state: the driver runs the
    steps from its last anchor again (and only then), and returns the plain walk's θ."""
    options = dict(
        scheme=mw.get_scheme("authors", max_corrector_steps=30), stop=mw.Stop(max_steps=200)
    )
    plain = mw.walk(Plain(), np.array([0.0, 1.0]), **options)
    assert plain.stop_reason == "corrector_failed"
    p = Donating()
    consuming = mw.walk(p, np.array([0.0, 1.0]), **options)
    assert_same(consuming, plain)
    steps = plain.n_grad_evals - 1
    assert steps < p.calls <= steps + driver.ANCHOR_EVERY + 31
    on_level = Donating()
    mw.walk(on_level, np.array([0.0, 1.0]), scheme="paper", stop=mw.Stop(max_steps=40))
    assert (
        on_level.calls
        == mw.walk(
            Plain(), np.array([0.0, 1.0]), scheme="paper", stop=mw.Stop(max_steps=40)
        ).n_grad_evals
        - 1
    )


def test_a_walk_that_meets_nan_keeps_its_last_good_point():
    plain = mw.walk(NaNLeftOf(Plain), np.array([0.0, 1.0]), record=mw.Record(trajectory_every=2))
    consuming = mw.walk(
        NaNLeftOf(Donating), np.array([0.0, 1.0]), record=mw.Record(trajectory_every=2)
    )
    assert consuming.stop_reason == "non_finite" and consuming.theta[0] >= -0.5
    assert_same(consuming, plain)


def test_resuming_leaves_the_earlier_result_whole():
    first = mw.walk(Donating(), np.array([0.0, 1.0]), scheme="paper", stop=mw.Stop(max_steps=20))
    before = [np.array(x, copy=True) for x in state_leaves(first.state)]
    theta = np.array(first.theta, copy=True)
    resumed = mw.walk(
        Donating(), first.theta, scheme="paper", resume_from=first, stop=mw.Stop(max_steps=50)
    )
    for x, y in zip(state_leaves(first.state), before, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(first.theta, theta)
    plain_first = mw.walk(Plain(), np.array([0.0, 1.0]), scheme="paper", stop=mw.Stop(max_steps=20))
    plain = mw.walk(
        Plain(),
        plain_first.theta,
        scheme="paper",
        resume_from=plain_first,
        stop=mw.Stop(max_steps=50),
    )
    assert_same(resumed, plain)


class Unreproducible(Donating):
    """A device that does not reproduce a step: every call after the first ``limit`` (the
    replay's) starts from θ doubled, far off the level set."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def compile_step(self, step: Any, donate: bool = False) -> Any:
        run = super().compile_step(step, donate)

        def unreproducible(state: Any) -> Any:
            if self.calls >= self.limit:
                state = state._replace(theta=2 * state.theta)
            return run(state)

        return unreproducible


def test_a_replay_that_lands_off_the_level_set_warns_at_the_callers_line():
    options = dict(
        scheme=mw.get_scheme("authors", max_corrector_steps=30), stop=mw.Stop(max_steps=200)
    )
    plain = mw.walk(Plain(), np.array([0.0, 1.0]), **options)
    p = Unreproducible(limit=plain.n_grad_evals - 1)
    with pytest.warns(RuntimeWarning, match="replayed last good state is off the level") as w:
        result = mw.walk(p, np.array([0.0, 1.0]), **options)
    assert w[0].filename == __file__
    assert result.stop_reason == "corrector_failed" and np.all(np.isfinite(result.theta))
    # Reproducible: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mw.walk(Donating(), np.array([0.0, 1.0]), **options)
