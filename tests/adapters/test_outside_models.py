"""Models and problems written the way a researcher outside the project writes them.

A model of several inputs or of a dict batch handed to ``from_model`` / ``from_apply`` is
refused with a message naming ``from_loss``, whose suggested call then gives the same loss; a
``loss_fn`` returning a container of its loss (a dict, ``(loss, aux)``) is told where the loss
is; PyTorch's ``assign`` takes a loaded result's numpy θ; the curvature and the gradient check
work on a Problem that offers only ``loss_and_grad``, and refuse a k-constraint stack by name.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk import curvature
from manifoldwalk._adapter_checks import check_plain_pair
from manifoldwalk.problem import ProblemError

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

RNG = np.random.default_rng(0)
N = 20
X = RNG.normal(size=(N, 3))
Z = RNG.normal(size=(N, 2))
Y = (X[:, 0] > Z[:, 1]).astype(np.int64)


# --- structured inputs: the core check ------------------------------------------------------


@given(n=st.integers(1, 6), d=st.integers(1, 4), k=st.integers(2, 4))
def test_one_array_passes_and_several_inputs_are_refused(n, d, k):
    x, y = np.zeros((n, d)), np.zeros(n)
    for plain in ((x, y), (x.tolist(), y.tolist()), (list(x), y), ([], [])):
        check_plain_pair(plain, "data", "F()")  # one array (or no examples) in any spelling
    several = [np.zeros((n, d + i)) for i in range(k)]  # unequal shapes never stack
    for x_struct, kind in (({"a": x, "b": x}, "dict"), (several, "list"), ([{"a": x}], "list")):
        with pytest.raises(TypeError, match=rf"data: x is a {kind}.*use F\(\)"):
            check_plain_pair((x_struct, y), "data", "F()")
    with pytest.raises(TypeError, match=r"evaluate: y is a dict"):
        check_plain_pair((x, {"y": y}), "evaluate", "F()")
    if k != n:  # k equally shaped inputs are not k rows of n examples
        with pytest.raises(TypeError, match=rf"x is a tuple of {k} arrays"):
            check_plain_pair((tuple(x for _ in range(k)), y), "data", "F()")


# --- PyTorch ----------------------------------------------------------------------------------


def _torch():
    torch = pytest.importorskip("torch")
    import manifoldwalk_torch

    torch.set_num_threads(1)
    return torch, manifoldwalk_torch


def _torch_two_inputs(torch):
    class TwoInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a = torch.nn.Linear(3, 4, dtype=torch.float64)
            self.b = torch.nn.Linear(2, 4, dtype=torch.float64)

        def forward(self, x, z):
            return self.a(x) + self.b(z)

    class DictInputs(TwoInputs):
        def forward(self, batch):  # type: ignore[override]
            return super().forward(batch["x"], batch["z"])

    return TwoInputs(), DictInputs()


@pytest.mark.filterwarnings("ignore:the model looks untrained")
def test_torch_from_model_refuses_several_inputs_and_from_loss_takes_them():
    torch, mt = _torch()
    two, by_dict = _torch_two_inputs(torch)
    loss = torch.nn.CrossEntropyLoss()
    x, z, y = (torch.as_tensor(a) for a in (X, Z, Y))
    for model, inputs in ((two, (x, z)), (by_dict, {"x": x, "z": z})):
        with pytest.raises(TypeError, match=r"x is a (tuple|dict).*manifoldwalk_torch\.from_loss"):
            mt.from_model(model, loss, (inputs, y))
        with pytest.raises(TypeError, match=r"x is a (tuple|dict).*from_loss"):
            mt.from_model(model, loss, (inputs, y), groups=y)
    loader = torch.utils.data.DataLoader(
        [({"x": x[i], "z": z[i]}, y[i]) for i in range(N)], batch_size=8
    )
    with pytest.raises(TypeError, match=r"each DataLoader batch: x is a dict.*from_loss"):
        mt.from_model(by_dict, loss, loader).loss(torch.zeros(28, dtype=torch.float64))
    plain = mt.from_model(torch.nn.Linear(3, 4, dtype=torch.float64), loss, (x, y))
    with pytest.raises(TypeError, match=r"evaluate: x is a dict"):
        plain.evaluate(plain.theta0, {"x": x}, y)
    # the calls the message suggests give the loss of the model on its inputs
    by_tuple = mt.from_loss(two, lambda m, b: loss(m(*b[0]), b[1]), ((x, z), y))
    by_keys = mt.from_loss(by_dict, lambda m, b: loss(m(b[0]), b[1]), ({"x": x, "z": z}, y))
    with torch.no_grad():
        expected = loss(two(x, z), y)
    for problem in (by_tuple, by_keys):
        torch.testing.assert_close(problem.loss(problem.theta0), expected)


@pytest.mark.parametrize(
    ("wrap", "match"),
    [
        (lambda loss: {"loss": loss, "acc": 1.0}, r"got a dict.*holds the loss as \['loss'\]"),
        (lambda loss: (loss, {"acc": 1.0}), r"got a tuple.*holds the loss as \[0\]"),
        (lambda loss: {"loss": None}, r"Its \['loss'\] is None"),
    ],
)
def test_torch_a_loss_in_a_container_is_pointed_to(wrap, match):
    torch, mt = _torch()
    model, _ = _torch_two_inputs(torch)
    f = torch.nn.functional.cross_entropy
    data = ((torch.as_tensor(X), torch.as_tensor(Z)), torch.as_tensor(Y))
    with pytest.raises(ProblemError, match=match):
        mt.from_loss(model, lambda m, b: wrap(f(m(*b[0]), b[1])), data)


@pytest.mark.filterwarnings("ignore:the model looks untrained")
def test_torch_assign_takes_a_loaded_results_numpy_theta(tmp_path):
    torch, mt = _torch()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    data = (torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y))
    problem = mt.from_model(model, torch.nn.CrossEntropyLoss(), data)
    result = mw.walk(problem, problem.theta0, stop=mw.Stop(max_steps=5))
    result.save(tmp_path / "walk.npz")
    loaded = mw.WalkResult.load(tmp_path / "walk.npz")
    assert isinstance(loaded.theta, np.ndarray)
    assert problem.assign(loaded.theta) is model
    torch.testing.assert_close(problem.theta0, result.theta, rtol=0, atol=0)
    with torch.no_grad():
        assert float(torch.nn.functional.cross_entropy(model(data[0]), data[1])) == result.loss
    with pytest.raises(TypeError, match=r"dtype torch\.float64 but the model is torch\.float32"):
        problem.assign(loaded.theta.astype(np.float64))  # no silent rounding
    with pytest.raises(ValueError, match="length 26"):
        problem.assign(loaded.theta[:-1])


# --- JAX --------------------------------------------------------------------------------------


def _jax():
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import manifoldwalk_jax

    params = {
        "a": jnp.asarray(RNG.normal(size=(3, 2)), jnp.float32),
        "b": jnp.ones((2, 2), jnp.float32),
    }
    return jnp, manifoldwalk_jax, params


def test_jax_from_apply_refuses_a_dict_of_inputs_and_from_loss_takes_it():
    jnp, mj, params = _jax()

    def apply_fn(p, x):
        return x["x"] @ p["a"] + x["z"] @ p["b"]

    def loss_fn(out, y):
        return jnp.mean((out[:, 0] - y) ** 2)

    data = ({"x": X.astype(np.float32), "z": Z.astype(np.float32)}, Y.astype(np.float32))
    with pytest.raises(
        TypeError, match=r"x is a dict with keys 'x', 'z'.*manifoldwalk_jax\.from_loss"
    ):
        mj.from_apply(apply_fn, params, loss_fn, data)
    with pytest.raises(TypeError, match=r"x is a dict.*from_loss"):  # not "per example (0)"
        mj.from_apply(apply_fn, params, loss_fn, data, groups=Y)
    suggested = mj.from_loss(lambda p, b: loss_fn(apply_fn(p, b[0]), b[1]), params, data)
    expected = loss_fn(apply_fn(params, data[0]), data[1])
    np.testing.assert_allclose(float(suggested.loss(suggested.theta0)), float(expected), rtol=1e-6)


@pytest.mark.parametrize(
    ("wrap", "match"),
    [
        (lambda loss: {"loss": loss}, r"got a dict.*holds the loss as \['loss'\]"),
        (lambda loss: (loss, {"n": loss}), r"got a tuple.*holds the loss as \[0\]"),
    ],
)
def test_jax_a_loss_in_a_container_is_pointed_to(wrap, match):
    jnp, mj, params = _jax()
    with pytest.raises(ProblemError, match=match):
        mj.from_loss(
            lambda p, b: wrap(jnp.mean(b[0] @ p["a"])),
            params,
            (X.astype(np.float32), Y.astype(np.float32)),
        )


# --- Keras / TensorFlow -----------------------------------------------------------------------


def test_keras_from_model_refuses_a_list_of_inputs_and_from_loss_takes_it():
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    import manifoldwalk_tf

    keras.utils.set_random_seed(0)
    xi, zi = keras.Input((3,)), keras.Input((2,))
    model = keras.Model([xi, zi], keras.layers.Dense(2)(keras.layers.Concatenate()([xi, zi])))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    data = ([X.astype(np.float32), Z.astype(np.float32)], Y)
    with pytest.raises(TypeError, match=r"x is a list of 2 arrays.*manifoldwalk_tf\.from_loss"):
        manifoldwalk_tf.from_model(model, loss, data)
    with pytest.raises(ProblemError, match=r"holds the loss as \[0\]"):
        manifoldwalk_tf.from_loss(model, lambda m, b: (loss(b[1], m(b[0])), 0.0), data)
    suggested = manifoldwalk_tf.from_loss(
        model, lambda m, b: loss(b[1], m(b[0], training=False)), data
    )
    expected = float(loss(Y, model(data[0], training=False)))
    assert float(suggested.loss(suggested.theta0)) == pytest.approx(expected, rel=1e-6)


# --- a Problem of one's own with only loss_and_grad --------------------------------------------


class Superellipse:
    """L = Σθ⁴ (its level sets are superellipses), R = θᵀθ; the fused evaluation only."""

    def loss_and_grad(self, theta):
        return np.sum(theta**4), 4 * theta**3

    def reg(self, theta):
        return theta @ theta

    def reg_grad(self, theta):
        return 2 * theta


class SuperellipseWithHvp(Superellipse):
    def hvp(self, theta, v):
        return 12 * theta**2 * v


def test_curvature_and_gradient_check_on_a_fused_only_problem():
    theta = np.array([0.8, 0.7, -0.3])
    hessian = np.diag(12 * theta**2)
    g = 4 * theta**3
    u = g / np.linalg.norm(g)
    tangent = (np.eye(3) - np.outer(u, u)) @ hessian @ (np.eye(3) - np.outer(u, u))
    exact = SuperellipseWithHvp()
    got = curvature.top_eigenvalues(exact, theta, k=2, tangent=True).values
    np.testing.assert_allclose(got, np.linalg.eigvalsh(tangent)[::-1][:2], rtol=1e-10)
    assert curvature.sharpness(exact, tangent=True)(theta) == pytest.approx(got[0], rel=1e-10)
    by_differences = curvature.top_eigenvalues(Superellipse(), theta, k=1, finite_difference=True)
    np.testing.assert_allclose(by_differences.values, [hessian.max()], rtol=1e-5)
    report = mw.check_gradient(Superellipse(), theta)
    assert report.passed, report.message
    assert mw.walk(Superellipse(), theta, stop=mw.Stop(max_steps=3)).n_predictor == 3


def test_curvature_and_gradient_check_refuse_a_stack_by_name():
    circle = mw.make_problem(loss_and_grad=lambda t: (t @ t, 2 * t))
    plane = mw.make_problem(lambda t: t[0] - t[1] + 1.0, lambda t: np.array([1.0, -1.0, 0.0]))
    stacked = mw.stack([circle, plane])
    theta = np.array([0.5, 0.5, 0.1])
    for measure in (
        lambda: curvature.top_eigenvalues(stacked, theta, finite_difference=True),
        lambda: curvature.hessian_trace(stacked, theta),
        lambda: mw.check_gradient(stacked, theta),
    ):
        with pytest.raises(ProblemError, match=r"k-constraint problem.*one of its losses"):
            measure()
