"""The walk refuses bad input by name: problems whose loss is not a real floating scalar or of
another array type, tolerances and levels out of range, counts too large for a compiled loop,
and ``resume_from`` results it cannot continue."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import manifoldwalk as mw
from manifoldwalk.problems import Circle

TOP = np.array([0.0, 1.0])
SHORT = mw.Stop(max_steps=5)


def _circle_with_loss(value):
    """The circle's gradient with a loss that returns ``value(θ)``."""
    return mw.make_problem(loss_and_grad=lambda x: (value(x), 2 * x))


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (lambda x: [float(x @ x)], r"list \[1.0\]"),
        (lambda x: "1.0", "str '1.0'"),
        (lambda x: complex(x @ x), r"complex \(1\+0j\)"),
        (lambda x: np.complex128(x @ x), "a numpy.complex128 of dtype complex128"),
        (lambda x: bool(x @ x > 0.5), "bool True"),
        (lambda x: np.bool_(x @ x > 0.5), "numpy.bool"),
        (lambda x: 1, "int 1"),
        (lambda x: np.array(1), "a numpy.ndarray of dtype int64"),
        (lambda x: None, "NoneType None"),
    ],
)
def test_a_loss_that_is_not_a_real_floating_scalar_is_refused_at_the_start(value, named):
    # these failed with raw TypeErrors, or walked: a bool loss stopped "stationary" off the
    # level set, a complex or integer one was cast
    with pytest.raises(mw.ProblemError, match=f"Problem.loss\\(θ\\) returned {named}") as err:
        mw.walk(_circle_with_loss(value), TOP.copy(), stop=SHORT)
    assert "it must return a real floating scalar: a Python float" in str(err.value)


def test_a_regulariser_returning_a_bool_is_refused():
    p = mw.make_problem(
        loss_and_grad=lambda x: (x @ x, 2 * x), reg=lambda x: x[0] > 0, reg_grad=np.ones_like
    )
    with pytest.raises(mw.ProblemError, match=r"Problem.reg\(θ\) returned numpy.bool"):
        mw.walk(p, TOP.copy(), stop=SHORT)


def test_a_python_float_loss_walks():
    # the loss-noise measure failed on it with "array_namespace requires at least one
    # non-scalar array input"
    p = mw.make_problem(
        loss_and_grad=lambda x: (float(x @ x), 2 * x), reg=lambda x: x.sum(), reg_grad=np.ones_like
    )
    r = mw.walk(p, TOP.copy())
    assert r.stop_reason == "stationary"
    np.testing.assert_allclose(r.theta, -np.ones(2) / math.sqrt(2), atol=1e-4)


T_TOP = torch.tensor([0.0, 1.0], dtype=torch.float64)


@pytest.mark.parametrize(
    ("problem", "theta0", "named"),
    [
        (  # was AttributeError: 'Tensor' object has no attribute 'astype'
            lambda: _circle_with_loss(lambda x: torch.as_tensor(x) @ torch.as_tensor(x)),
            TOP,
            r"loss\(θ\) returned a torch.Tensor for a θ of type numpy.ndarray",
        ),
        (  # was TypeError: reshape(): argument 'input' must be Tensor, not numpy.float64
            lambda: mw.make_problem(loss_and_grad=lambda x: (np.float64(x @ x), 2 * x)),
            T_TOP,
            r"loss\(θ\) returned a numpy.float64 for a θ of type torch.Tensor",
        ),
        (  # was "returned dtype float64 but θ is torch.float64", naming no array type
            lambda: mw.make_problem(loss_and_grad=lambda x: (x @ x, 2 * x.numpy())),
            T_TOP,
            r"grad\(θ\) returned a numpy.ndarray but θ is a torch.Tensor",
        ),
    ],
)
def test_values_of_another_array_type_are_refused_by_name(problem, theta0, named):
    with pytest.raises(mw.ProblemError, match=named):
        mw.walk(problem(), theta0.clone() if torch.is_tensor(theta0) else theta0.copy(), stop=SHORT)


@pytest.mark.parametrize(
    ("direction", "named"),
    [
        (lambda t: np.ones(2), "returned a numpy.ndarray for a θ of type torch.Tensor"),
        (lambda t: [1.0, 0.0], "must return an array of θ's shape"),
    ],
)
def test_a_direction_of_another_array_type_is_refused(direction, named):
    # a numpy r for a torch θ failed in the step with a raw matmul TypeError
    with pytest.raises(mw.ProblemError, match=named):
        mw.walk(Circle(), T_TOP.clone(), direction=direction, stop=SHORT)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: mw.Tolerance(tau=math.inf), r"tau must be a positive number \(finite: 0 < tau"),
        (lambda: mw.Tolerance(tau=math.nan), "tau must be a positive number"),
        (lambda: mw.Tolerance(tau=-1.0), "tau must be a positive number"),
        (lambda: mw.Tolerance(rtol=math.inf), r"rtol must be a non-negative number \(finite: 0 ≤"),
        (lambda: mw.Tolerance(atol=math.inf), "atol must be a non-negative number"),
        (
            lambda: mw.Tolerance(rtol=10**400),
            r"rtol .* got 1000000000000000000000000000000000000\.\.\.",
        ),
        (lambda: mw.Stop(kkt_tol=math.inf), "kkt_tol must be a non-negative number"),
        (lambda: mw.Stop(kkt_tol="1e-6"), "kkt_tol must be a non-negative number"),
        (lambda: mw.Stop(kkt_tol=10**400), "kkt_tol must be a non-negative number"),
        (lambda: mw.Stop(singular_tol=math.inf), "singular_tol must be a non-negative number"),
    ],
)
def test_infinite_or_unreadable_tolerances_are_refused_with_the_range(make, named):
    # tau=inf and rtol=inf counted every point as on the level set (the walk left it);
    # 10**400 gave a raw OverflowError, a string kkt_tol a raw TypeError
    with pytest.raises(ValueError, match=named):
        make()


@pytest.mark.parametrize(
    ("theta0", "options", "error", "named"),
    [
        (TOP, {"level": 1e200}, ValueError, r"L0 = 1e\+200 gives a threshold .* beyond the range"),
        (
            TOP.astype(np.float32),
            {"level": 1e39},
            mw.ProblemError,
            r"level=1e\+39 is beyond the range of θ's dtype float32",
        ),
        (
            TOP.astype(np.float32),
            {"tolerance": mw.Tolerance(tau=1e300)},
            ValueError,
            r"\(L − L0\)² ≤ 1e\+300, beyond the range of θ's dtype float32",
        ),
    ],
)
def test_levels_and_thresholds_beyond_the_dtype_are_refused(theta0, options, error, named):
    # level=1e200 raised a raw OverflowError; τ = 1e300 in float32 became inf in the state
    with pytest.raises(error, match=named):
        mw.walk(Circle(), theta0.copy(), **options, stop=SHORT)


def _first_walk():
    return mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=20))


def test_resuming_a_result_of_another_problem_of_the_same_length_is_refused():
    # a walk of another function (or the same one at another level) went on silently
    first = _first_walk()
    with pytest.raises(ValueError, match=r"not a walk of this problem.*L = 1\.0.*gives L = 4\.0"):
        mw.walk(_scaled_circle(4.0), TOP.copy(), scheme="paper", resume_from=first)


def _scaled_circle(k: float):
    """L = k·(x² + y²): the circle's level sets, other values."""
    return mw.make_problem(
        loss_and_grad=lambda x: (k * (x @ x), 2 * k * x),
        reg=lambda x: x.sum(),
        reg_grad=np.ones_like,
    )


def test_resuming_in_another_dtype_is_refused():
    first = _first_walk()
    with pytest.raises(ValueError, match="walked in float64 but θ0 is float32"):
        mw.walk(Circle(), TOP.astype(np.float32), scheme="paper", resume_from=first)


@pytest.mark.parametrize("field", ["theta", "loss", "level"])
def test_resuming_from_a_state_holding_nan_is_refused_by_name(field):
    # a NaN checkpoint was returned as "the last point on the level set"
    first = _first_walk()
    broken = first.state._replace(**{field: np.full_like(getattr(first.state, field), np.nan)})
    first.state = broken
    with pytest.raises(ValueError, match=f"holds NaN or inf in {field}.*result.theta"):
        mw.walk(Circle(), TOP.copy(), scheme="paper", resume_from=first)


def test_resuming_a_ragged_history_is_refused_by_name():
    # a raw IndexError on every rerun
    first = _first_walk()
    first.history["reg"] = first.history["reg"][:-3]
    with pytest.raises(ValueError, match=r"history: its columns have different lengths.*reg: 18"):
        mw.walk(Circle(), TOP.copy(), scheme="paper", resume_from=first)


def test_a_walk_that_stopped_on_nan_is_not_resumed():
    nan_left = mw.make_problem(
        loss_and_grad=lambda x: (
            np.where(x[0] < -0.5, np.nan, x @ x),
            2 * x,
        ),
        reg=lambda x: x.sum(),
        reg_grad=np.ones_like,
    )
    first = mw.walk(nan_left, TOP.copy(), scheme="paper")
    assert first.stop_reason == "non_finite"
    with pytest.raises(ValueError, match="'non_finite'.*no finite point to continue from"):
        mw.walk(nan_left, TOP.copy(), scheme="paper", resume_from=first)


def test_the_same_problem_resumes_after_the_checks():
    first = _first_walk()
    whole = mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=40))
    rest = mw.walk(
        Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=40), resume_from=first
    )
    np.testing.assert_array_equal(rest.theta, whole.theta)


def test_huge_counts_mean_never_in_a_compiled_loop_too():
    # each of these counts raised a raw OverflowError from JAX in a chunked walk ("An overflow
    # was encountered while parsing an argument to a jitted computation"); eager walks took them
    from manifoldwalk_jax import compiled

    jnp = pytest.importorskip("jax.numpy")
    options = {
        "scheme": mw.get_scheme("default", max_corrector_steps=10**30),
        "stop": mw.Stop(max_steps=30, stall_patience=10**30),
        "record": mw.Record(every=10**30, trajectory_every=10**30),
    }
    eager = mw.walk(Circle(), TOP.astype(np.float32), **options)
    theta0 = jnp.asarray(TOP, dtype=jnp.float32)
    chunked = mw.walk(compiled(Circle()), theta0, **options, driver=mw.Chunked(16))
    assert chunked.n_predictor == eager.n_predictor == 30
    assert len(chunked.history["step"]) == len(eager.history["step"]) == 2  # start and end
    np.testing.assert_allclose(np.asarray(chunked.theta), eager.theta, rtol=1e-5)


def test_a_chunk_size_beyond_a_walk_is_refused():
    # K = 2**40 failed inside XLA's buffer allocation with a raw TypeError
    from manifoldwalk_jax import compiled

    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(ValueError, match="steps_per_sync=1099511627776 is more steps than a walk"):
        mw.walk(compiled(Circle()), jnp.asarray(TOP, dtype=jnp.float32), driver=mw.Chunked(2**40))
