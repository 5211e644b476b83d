"""An exception raised inside a walk (by the loss, a metric or the callback, or an interrupt)
keeps the walk done so far: it is re-raised with ``.walk_result``, a WalkResult with stop reason
"error" at the last good point, that resumes on the path of the uninterrupted walk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import manifoldwalk as mw
from manifoldwalk.problems import Circle
from manifoldwalk.step import state_leaves

TOP = np.array([0.0, 1.0])
OPTIONS = {"scheme": "paper", "stop": mw.Stop(max_steps=120)}


class FailsOnCall(Circle):
    """The circle whose loss raises ``error`` at its ``at``-th evaluation (a data server gone,
    a device out of memory)."""

    def __init__(self, at: int, error: BaseException) -> None:
        super().__init__()
        self.calls, self.at, self.error = 0, at, error

    def loss_and_grad(self, x: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return super().loss_and_grad(x)


def _uninterrupted() -> mw.WalkResult:
    return mw.walk(Circle(), TOP.copy(), **OPTIONS)


def _assert_resumes_the_same_path(partial: mw.WalkResult) -> None:
    whole = _uninterrupted()
    rest = mw.walk(Circle(), TOP.copy(), **OPTIONS, resume_from=partial)
    assert (rest.n_predictor, rest.n_corrector) == (whole.n_predictor, whole.n_corrector)
    np.testing.assert_array_equal(rest.theta, whole.theta)
    for key in ("n_predictor", "n_grad_evals", "reg"):
        np.testing.assert_array_equal(rest.history[key], whole.history[key])


def _assert_on_level(partial: mw.WalkResult) -> None:
    assert partial.stop_reason == "error" and not partial.converged
    assert (partial.loss - partial.level) ** 2 <= 1e-10  # the paper's τ
    assert partial.history["reg"][-1] == partial.reg  # the last row is the point returned


@pytest.mark.parametrize("error", [RuntimeError("data server went away"), KeyboardInterrupt()])
def test_an_error_in_the_loss_keeps_the_walk_so_far(error):
    # the walk so far was lost
    with pytest.raises(type(error)) as info:
        mw.walk(FailsOnCall(60, error), TOP.copy(), **OPTIONS)
    partial = info.value.walk_result
    _assert_on_level(partial)
    assert partial.n_predictor > 40  # the walk up to the step that raised
    assert type(error).__name__ in partial.message
    assert any(".walk_result" in note for note in info.value.__notes__)
    _assert_resumes_the_same_path(partial)


def test_an_error_in_the_callback_keeps_the_rows_up_to_it():
    def callback(row: dict) -> None:
        if row["n_predictor"] == 40:
            raise ValueError("callback failed")

    with pytest.raises(ValueError, match="callback failed") as info:
        mw.walk(Circle(), TOP.copy(), **OPTIONS, record=mw.Record(callback=callback))
    partial = info.value.walk_result
    _assert_on_level(partial)
    assert partial.n_predictor == 40 and partial.history["n_predictor"][-1] == 40
    _assert_resumes_the_same_path(partial)


def test_an_error_in_a_metric_keeps_the_walk_and_leaves_that_row_unmeasured():
    def metric(theta: Any) -> float:
        if theta[0] < -0.01:
            raise ZeroDivisionError("metric failed")
        return float(theta[0])

    with pytest.raises(ZeroDivisionError) as info:
        mw.walk(Circle(), TOP.copy(), **OPTIONS, record=mw.Record(metrics={"x": metric}))
    partial = info.value.walk_result
    _assert_on_level(partial)
    x = partial.history["x"]
    assert np.isnan(x[-1]) and np.all(np.isfinite(x[:-1])) and x[-2] >= -0.01


def test_an_error_while_the_partial_result_is_built_is_noted_not_raised():
    class RegFails(Circle):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def reg(self, x: Any) -> Any:  # R is needed for every record, the partial one too
            self.calls += 1
            if self.calls > 30:
                raise OSError("R failed")
            return super().reg(x)

    with pytest.raises(OSError, match="R failed") as info:
        mw.walk(RegFails(), TOP.copy(), **OPTIONS)
    assert not hasattr(info.value, "walk_result")
    assert any("could not be kept (OSError: R failed)" in n for n in info.value.__notes__)


def _ruin(given: Any, out: Any) -> None:
    """Overwrite the float arrays of ``given`` that ``out`` does not reuse (a donated buffer)."""
    kept = [y for y in (*state_leaves(out[0]), out[1]) if isinstance(y, np.ndarray)]
    for x in state_leaves(given):
        if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.flags.writeable:
            if not any(np.shares_memory(x, y) for y in kept):
                x[...] = np.nan


class DonatingInterrupted(Circle):
    """A compiled step that consumes the state it is given (as JAX's donation does), and an
    interrupt at its ``at``-th call, after the input is consumed."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.calls, self.at = 0, at

    def compile_step(self, step: Any, donate: bool = False) -> Any:
        def run(state: Any) -> Any:
            self.calls += 1
            out = step(state)
            if donate:
                _ruin(state, out)
            if self.calls == self.at:
                raise KeyboardInterrupt
            return out

        return run


def test_an_interrupt_of_a_step_that_consumed_its_state_keeps_a_replayed_good_state():
    # the driver must not read the consumed state: the last good one is replayed from a copy
    with pytest.raises(KeyboardInterrupt) as info:
        mw.walk(DonatingInterrupted(at=90), TOP.copy(), **OPTIONS)
    partial = info.value.walk_result
    assert all(np.all(np.isfinite(np.asarray(x))) for x in state_leaves(partial.state))
    _assert_on_level(partial)
    _assert_resumes_the_same_path(partial)


def test_chunked_walks_keep_the_walk_so_far():
    from manifoldwalk_jax import compiled

    jnp = pytest.importorskip("jax.numpy")

    class Interrupted:
        """A compiled problem whose chunk is interrupted at its third call."""

        def __init__(self) -> None:
            self.inner, self.calls = compiled(Circle()), 0

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def compile_loop(self, loop: Any) -> Any:
            chunk = self.inner.compile_loop(loop)

            def run(carry: Any) -> Any:
                self.calls += 1
                if self.calls == 3:
                    raise KeyboardInterrupt
                return chunk(carry)

            return run

    def callback(row: dict) -> None:
        if row["n_predictor"] == 40:
            raise ValueError("callback failed")

    theta0 = jnp.asarray(TOP)
    options = {"stop": mw.Stop(max_steps=120), "driver": mw.Chunked(16)}  # the default scheme
    with pytest.raises(KeyboardInterrupt) as info:
        mw.walk(Interrupted(), theta0, **options)
    partial = info.value.walk_result
    assert partial.stop_reason == "error" and partial.n_predictor + partial.n_corrector == 32
    assert (partial.loss - partial.level) ** 2 <= partial.tolerance**2
    p = compiled(Circle())
    rest = mw.walk(p, theta0, **options, resume_from=partial)
    whole = mw.walk(p, theta0, **options)
    assert whole.stop_reason == "stationary" and rest.n_predictor == whole.n_predictor
    np.testing.assert_array_equal(np.asarray(rest.theta), np.asarray(whole.theta))
    with pytest.raises(ValueError, match="callback failed") as info:
        mw.walk(p, theta0, **options, record=mw.Record(every=10, callback=callback))
    partial = info.value.walk_result
    assert partial.stop_reason == "error" and partial.history["n_predictor"][-1] == 40
