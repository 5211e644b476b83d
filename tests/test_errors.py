"""Bad input gets an error (or a stop reason) that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Sphere

TOP = np.array([0.0, 1.0])


@pytest.mark.parametrize(
    ("theta0", "match"),
    [
        (np.array([np.nan, 1.0]), "NaN or inf"),
        (np.array([np.inf, 1.0]), "NaN or inf"),
        (np.zeros((2, 1)), "1-D"),
        (np.array([0, 1]), "dtype"),
        (np.array([0.0, 1.0], dtype=np.float16), "float16; the walk needs float32 or float64"),
        (np.array([0.0, 1.0 + 0j]), "complex parameters are not supported"),
        (np.zeros(0), "empty"),
        ([0.0, 1.0], "numpy, torch or jax array"),
    ],
)
def test_bad_starting_points_are_refused_by_name(theta0, match):
    with pytest.raises(mw.ProblemError, match=match):
        mw.walk(Circle(), theta0)


def test_a_start_at_an_exact_minimum_is_singular():
    with pytest.raises(mw.ProblemError, match="singular"):
        mw.walk(Sphere(np.ones(3)), np.zeros(3))


def test_missing_methods_are_listed():
    class Half:
        def loss(self, x):
            return float(x @ x)

    with pytest.raises(mw.ProblemError, match="lacks grad, reg, reg_grad|lacks reg, reg_grad"):
        mw.walk(Half(), TOP)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": lambda x: x * x, "grad": lambda x: 2 * x}, "scalar"),
        ({"loss": lambda x: x @ x, "grad": lambda x: 2 * x[:1]}, "shape"),
        ({"loss": lambda x: x @ x, "grad": lambda x: (2 * x).astype(np.float32)}, "dtype"),
        (
            {"loss": lambda x: x @ x, "grad": lambda x: 2 * x, "reg": lambda x: x}
            | {"reg_grad": lambda x: np.ones_like(x)},
            "Problem.reg",
        ),
    ],
)
def test_problems_returning_the_wrong_thing_are_caught_at_the_start(kwargs, match):
    with pytest.raises(mw.ProblemError, match=match):
        mw.walk(mw.make_problem(**kwargs), TOP.copy())


def test_make_problem_needs_a_gradient():
    with pytest.raises(mw.ProblemError, match="loss_and_grad"):
        mw.make_problem(lambda x: x @ x)
    with pytest.raises(mw.ProblemError, match="callable"):
        mw.make_problem(lambda x: x @ x, grad=3)


@pytest.mark.parametrize("given", ["reg", "reg_grad"])
def test_make_problem_refuses_half_a_regulariser(given):
    # R = sum(x) paired with the default gradient 2θ walked to "stationary" on an R it
    # never minimised
    fns = {"reg": lambda x: x.sum(), "reg_grad": lambda x: np.ones_like(x)}
    missing = "reg_grad" if given == "reg" else "reg"
    with pytest.raises(mw.ProblemError, match=f"got {given}= without {missing}="):
        mw.make_problem(loss_and_grad=lambda x: (x @ x, 2 * x), **{given: fns[given]})


def test_make_problem_from_a_fused_callable_walks():
    p = mw.make_problem(
        loss_and_grad=lambda x: (x @ x, 2 * x),
        reg=lambda x: x.sum(),
        reg_grad=lambda x: np.ones_like(x),
    )
    r = mw.walk(p, TOP.copy())
    assert np.linalg.norm(r.theta + np.ones(2) / np.sqrt(2)) < 1e-3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (lambda: {"stop": mw.Stop(max_steps=0)}, "max_steps"),
        (lambda: {"record": mw.Record(every=1.5)}, "every"),
        (lambda: {"record": mw.Record(trajectory_every=0)}, "trajectory_every"),
        (lambda: {"tolerance": mw.Tolerance(tau=0.0)}, "tau"),
        (lambda: {"scheme": "fast"}, "scheme"),
        (lambda: {"scheme": mw.get_scheme("default", corrector="gauss")}, "corrector"),
        (lambda: {"stop": mw.Stop(stall_patience=0)}, "stall_patience"),
        (
            lambda: {"scheme": mw.get_scheme("default", max_corrector_steps=0)},
            "max_corrector_steps",
        ),
    ],
)
def test_bad_options_name_themselves(options, match):
    """A bad option is refused where it is written (the option group checks itself), by name."""
    with pytest.raises(ValueError, match=match):
        mw.walk(Circle(), TOP.copy(), **options())


@pytest.mark.parametrize("name", ["reg", "step", "loss"])
def test_a_metric_may_not_overwrite_a_history_column(name):
    # a metric called "reg" silently replaced the column with its own values
    with pytest.raises(ValueError, match=f"'{name}' is a built-in history column.*Reserved: step"):
        mw.walk(
            Circle(),
            TOP.copy(),
            stop=mw.Stop(max_steps=3),
            record=mw.Record(metrics={name: lambda t: 123.0}),
        )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            lambda: {"scheme": mw.get_scheme("default", predictor_step=0.01)},
            r"step-size rule.*ConstantStep\(eta\)",
        ),
        (lambda: {"record": mw.Record(metrics=[float])}, "metrics must be a dict"),
        (lambda: {"record": mw.Record(metrics={"x": 3.0})}, r"metrics\['x'\] must be a callable"),
        (lambda: {"record": mw.Record(callback="print")}, "callback must be None or callable"),
        (lambda: {"resume_from": "r.npz"}, r"WalkResult.load\('r.npz'\)"),
        (lambda: {"level": "1"}, "level must be None or a finite number"),
        (lambda: {"stop": {"max_steps": 3}}, r"stop must be a manifoldwalk.Stop"),
        (lambda: {"driver": 8}, r"driver must be None, manifoldwalk.Eager"),
    ],
)
def test_mistyped_arguments_say_what_to_pass(options, match):
    with pytest.raises(TypeError, match=match):
        mw.walk(Circle(), TOP.copy(), **options())


def test_unreachable_level_is_reported():
    with pytest.raises(mw.ProblemError, match="could not project"):
        mw.walk(Circle(), TOP.copy(), level=-1.0)


@pytest.mark.parametrize(
    ("problem", "theta0", "kwargs", "match"),
    [
        (Circle(), np.array([0.0, 1.0, 0.0]), {}, r"Circle has 2 variables but θ has shape \(3,\)"),
        (Circle(), TOP, {"direction": lambda t: t[:1]}, r"θ's shape \(2,\), got shape \(1,\)"),
        (Circle(), TOP, {"direction": lambda t: 1.0}, r"θ's shape \(2,\), got a float"),
        (
            Circle(),
            TOP,
            {"direction": mw.TowardTarget(np.ones(3))},
            r"target has shape \(3,\) but θ0 has shape \(2,\)",
        ),
    ],
)
def test_wrong_lengths_are_refused_with_the_shapes(problem, theta0, kwargs, match):
    # these failed with raw matmul or broadcast errors, or (a length-1 r) broadcast silently
    with pytest.raises(mw.ProblemError, match=match):
        mw.walk(problem, theta0.copy(), **kwargs, stop=mw.Stop(max_steps=3))
