"""The JAX adapter: the shared backend suite plus JAX-specific checks (x64, jit once, masks)."""

from __future__ import annotations

import weakref
from typing import Any

import jax
import jax.numpy as jnp
import manifoldwalk_jax
import numpy as np
import pytest
from backend_suite import SIZES, BackendSuite, init_layers, small_data
from hypothesis import given, settings
from hypothesis import strategies as st
from manifoldwalk_jax._flat import FlatParams

import manifoldwalk
from manifoldwalk import Stop
from manifoldwalk.problem import ProblemError


@pytest.fixture(autouse=True, scope="module")
def _x64() -> Any:
    """Enable float64 for this module only (the adapter never touches JAX's config)."""
    with jax.enable_x64(True):
        yield


# --------------------------------------------------------------------------------------------
# the model the suite describes, in JAX
# --------------------------------------------------------------------------------------------


def mlp_apply(params: dict, x: jax.Array) -> jax.Array:
    """The tanh MLP ``h @ W + b`` of the suite, on a ``{"layers": [{"w", "b"}, ...]}`` pytree."""
    layers = params["layers"]
    h = x
    for i, layer in enumerate(layers):
        h = h @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            h = jnp.tanh(h)
    return h


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error over all entries."""
    return jnp.mean((outputs - targets) ** 2)


LOSSES = {"classification": cross_entropy, "regression": mse}


def mlp_params(layers: list[tuple[np.ndarray, np.ndarray]], dtype: str) -> dict:
    """The suite's numpy layers as the JAX pytree, on the default device."""
    device = jax.devices()[0]
    return {
        "layers": [
            {"w": jax.device_put(jnp.asarray(w, dtype), device), "b": jnp.asarray(b, dtype)}
            for w, b in layers
        ]
    }


class TestJaxAdapter(BackendSuite):
    """The shared suite on ``manifoldwalk_jax.from_apply``."""

    framework = "jax"
    adapter_module = "manifoldwalk_jax"
    framework_modules = ("jax", "jaxlib")
    extra = "jax"
    array_type = jax.Array

    _built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def make_mlp_problem(
        self, layers, x, y, *, task, dtype, reg="l2", batch_size=None, freeze_first=False
    ):
        params = mlp_params(layers, dtype)
        trainable = {"layers": [not (freeze_first and i == 0) for i in range(len(layers))]}
        data = (jnp.asarray(x, dtype), jnp.asarray(y, dtype if task == "regression" else None))
        problem = manifoldwalk_jax.from_apply(
            mlp_apply,
            params,
            LOSSES[task],
            data,
            reg=reg,
            batch_size=batch_size,
            trainable=trainable if freeze_first else None,
        )
        self._built[problem] = (freeze_first, task, data)
        return problem

    def canonical(self, problem, theta):
        freeze_first, *_ = self._built[problem]
        layers = problem.unflatten(theta)["layers"][1 if freeze_first else 0 :]
        return [np.asarray(layer[k], dtype=np.float64) for layer in layers for k in ("w", "b")]

    def to_numpy(self, theta):
        return np.asarray(theta)

    def from_numpy(self, array, like):
        return jax.device_put(jnp.asarray(array, like.dtype), self.device_of(like))

    def roundtrip(self, problem, theta):
        _, task, data = self._built[problem]
        params = problem.unflatten(theta)
        return manifoldwalk_jax.from_apply(mlp_apply, params, LOSSES[task], data).theta0

    def device_of(self, theta):
        (device,) = theta.devices()
        return device

    def model_device(self, problem):
        return jax.devices()[0]

    def make_untrainable(self):
        x, y = small_data("classification")
        return manifoldwalk_jax.from_apply(lambda p, x: x[:, :3], {}, cross_entropy, (x, y))

    def make_mismatched(self):
        x, y = small_data("classification")
        params = mlp_params(init_layers(SIZES, seed=0), "float64")
        return manifoldwalk_jax.from_apply(mlp_apply, params, cross_entropy, (x, y[:-1]))

    def make_nonscalar_loss(self):
        x, y = small_data("classification")
        params = mlp_params(init_layers(SIZES, seed=0), "float64")

        def per_example(logits, labels):
            return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1)

        return manifoldwalk_jax.from_apply(mlp_apply, params, per_example, (x, y))

    def make_integer_params(self):
        x, y = small_data("classification")
        params = mlp_params(init_layers(SIZES, seed=0), "float64")
        params["layers"][0]["b"] = jnp.zeros(SIZES[1], dtype=jnp.int32)
        return manifoldwalk_jax.from_apply(mlp_apply, params, cross_entropy, (x, y))


# --------------------------------------------------------------------------------------------
# JAX-specific checks
# --------------------------------------------------------------------------------------------


def _problem(dtype: str = "float64", **kwargs: Any) -> manifoldwalk_jax.JaxProblem:
    x, y = small_data("classification")
    params = mlp_params(init_layers(SIZES, seed=0), dtype)
    loss = kwargs.pop("loss", cross_entropy)
    return manifoldwalk_jax.from_apply(mlp_apply, params, loss, (x, y), **kwargs)


@pytest.mark.parametrize("batch_size", [None, 7, 5])
def test_loss_and_grad_is_traced_once(batch_size):
    traces = []

    def counting_loss(logits, labels):
        traces.append(logits.shape)  # runs only while JAX traces
        return cross_entropy(logits, labels)

    problem = _problem(loss=counting_loss, batch_size=batch_size)
    problem.loss_and_grad(problem.theta0)
    after_first = len(traces)
    rng = np.random.default_rng(0)
    for _ in range(20):
        theta = problem.theta0 + jnp.asarray(rng.normal(size=problem.n_params) * 1e-3)
        loss, grad = problem.loss_and_grad(theta)
        assert loss.dtype == grad.dtype == jnp.float64
    assert len(traces) == after_first


def test_batched_accumulation_exact_when_batches_divide_and_when_one_batch():
    full = _problem()
    loss_f, grad_f = full.loss_and_grad(full.theta0)
    for batch_size in (5, 64):  # batches that divide n exactly; one batch holding all
        batched = _problem(batch_size=batch_size)
        loss_b, grad_b = batched.loss_and_grad(batched.theta0)
        np.testing.assert_allclose(float(loss_b), float(loss_f), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(grad_b), np.asarray(grad_f), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(float(batched.loss(batched.theta0)), float(loss_f), rtol=1e-13)


def test_numpy_theta_is_refused_with_the_conversion_to_make():
    """A numpy θ (a loaded WalkResult's) is refused by name, not by the array API's namespace
    error; ``unflatten`` takes one."""
    problem = _problem()
    theta = np.asarray(problem.theta0)
    for call in (
        lambda: manifoldwalk.walk(problem, theta, stop=Stop(max_steps=1)),
        lambda: problem.loss(theta),
    ):
        with pytest.raises(TypeError, match=r"jax.Array, got numpy.ndarray.*jnp.asarray"):
            call()
    assert jax.tree.all(
        jax.tree.map(jnp.array_equal, problem.unflatten(theta), problem.unflatten(problem.theta0))
    )


def test_float32_params_without_x64_and_config_untouched():
    with jax.enable_x64(False):
        problem = _problem("float32")
        assert problem.theta0.dtype == jnp.float32
        loss, grad = problem.loss_and_grad(problem.theta0)
        assert grad.dtype == jnp.float32 and loss.dtype == jnp.float32
        assert not jax.config.jax_enable_x64
    assert jax.config.jax_enable_x64


def test_frozen_by_full_mask_and_by_closure_agree():
    layers = init_layers(SIZES, seed=0)
    x, y = small_data("classification")
    params = mlp_params(layers, "float64")
    mask = {"layers": [{"w": False, "b": False}, {"w": True, "b": True}, {"w": True, "b": True}]}
    masked = manifoldwalk_jax.from_apply(mlp_apply, params, cross_entropy, (x, y), trainable=mask)
    first = params["layers"][0]

    def apply_closed(rest, x):
        return mlp_apply({"layers": [first, *rest["layers"]]}, x)

    rest = {"layers": params["layers"][1:]}
    closed = manifoldwalk_jax.from_apply(apply_closed, rest, cross_entropy, (x, y))
    assert masked.n_params == closed.n_params == sum(w.size + b.size for w, b in layers[1:])
    np.testing.assert_array_equal(np.asarray(masked.theta0), np.asarray(closed.theta0))
    (la, ga), (lb, gb) = masked.loss_and_grad(masked.theta0), closed.loss_and_grad(closed.theta0)
    assert float(la) == pytest.approx(float(lb), rel=1e-14)
    np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), rtol=1e-12)
    # the frozen leaves come back unchanged, whatever θ is
    tree = masked.unflatten(jnp.zeros(masked.n_params))
    np.testing.assert_array_equal(np.asarray(tree["layers"][0]["w"]), layers[0][0])
    assert float(jnp.sum(jnp.abs(tree["layers"][2]["w"]))) == 0.0
    np.testing.assert_array_equal(np.asarray(masked.flatten(tree)), np.zeros(masked.n_params))


def test_integer_leaf_may_be_frozen():
    x, y = small_data("classification")
    params = mlp_params(init_layers(SIZES, seed=0), "float64")
    params["step"] = jnp.asarray(3, dtype=jnp.int32)
    mask = {"layers": True, "step": False}
    problem = manifoldwalk_jax.from_apply(
        lambda p, x: mlp_apply(p, x), params, cross_entropy, (x, y), trainable=mask
    )
    assert int(problem.unflatten(problem.theta0)["step"]) == 3


def test_bad_masks_and_leaves_are_refused():
    x, y = small_data("classification")
    params = mlp_params(init_layers(SIZES, seed=0), "float64")
    with pytest.raises(ProblemError, match="structure"):
        manifoldwalk_jax.from_apply(
            mlp_apply, params, cross_entropy, (x, y), trainable={"other": True}
        )
    with pytest.raises(TypeError, match="bools"):
        manifoldwalk_jax.from_apply(
            mlp_apply, params, cross_entropy, (x, y), trainable={"layers": 1}
        )
    with pytest.raises(ProblemError, match="not an array"):
        manifoldwalk_jax.from_apply(mlp_apply, {**params, "act": jnp.tanh}, cross_entropy, (x, y))
    with pytest.raises(ProblemError, match="no trainable parameters"):
        manifoldwalk_jax.from_apply(
            mlp_apply, params, cross_entropy, (x, y), trainable={"layers": False}
        )
    with pytest.raises(ProblemError, match="structure"):
        _problem().flatten({"layers": []})
    # mixed trainable dtypes would be promoted in θ and cut back in the model: refused
    mixed = jax.tree.map(lambda a: a, params)
    mixed["layers"][0]["b"] = mixed["layers"][0]["b"].astype(jnp.bfloat16)
    with pytest.raises(TypeError, match=r"mix dtypes \['bfloat16', 'float64'\].*astype"):
        manifoldwalk_jax.from_apply(mlp_apply, mixed, cross_entropy, (x, y))


def test_bad_arguments_are_refused():
    x, y = small_data("classification")
    params = mlp_params(init_layers(SIZES, seed=0), "float64")
    with pytest.raises(TypeError, match="apply_fn"):
        manifoldwalk_jax.from_apply(None, params, cross_entropy, (x, y))
    with pytest.raises(TypeError, match="pair"):
        manifoldwalk_jax.from_apply(mlp_apply, params, cross_entropy, x)
    with pytest.raises(ValueError, match="batch_size"):
        manifoldwalk_jax.from_apply(mlp_apply, params, cross_entropy, (x, y), batch_size=0)
    with pytest.raises(ProblemError, match="scalar"):
        manifoldwalk_jax.from_apply(mlp_apply, params, cross_entropy, (x, y), reg=lambda t: t * t)
    with pytest.raises(TypeError, match="reg"):
        manifoldwalk_jax.from_apply(mlp_apply, params, cross_entropy, (x, y), reg=3)


def test_evaluate_checks_its_arguments():
    problem = _problem()
    x, y = small_data("classification", seed=5)
    with pytest.raises(ValueError, match="task"):
        problem.evaluate(problem.theta0, x, y, task="ranking")
    with pytest.raises(ProblemError, match="same number of examples"):
        problem.evaluate(problem.theta0, x, y[:3])
    with pytest.raises(ValueError, match="batch_size"):
        problem.evaluate(problem.theta0, x, y, batch_size=-1)


def test_evaluate_accuracy_reads_one_hot_labels():
    problem = _problem(loss=lambda outputs, targets: jnp.mean(outputs**2))
    x, y = small_data("classification", seed=5)
    by_label = problem.evaluate(problem.theta0, x, y, batch_size=3)
    by_one_hot = problem.evaluate(problem.theta0, x, np.eye(SIZES[-1])[y], batch_size=3)
    assert by_one_hot == by_label
    assert 0.0 < by_label["accuracy"] < 1.0


def test_evaluate_refuses_accuracy_of_a_single_output():
    x, y = small_data("classification")
    params = mlp_params(init_layers((5, 4, 1), seed=0), "float64")
    problem = manifoldwalk_jax.from_apply(mlp_apply, params, mse, (x, y[:, None] * 1.0))
    with pytest.raises(ProblemError, match="one output per class"):
        problem.evaluate(problem.theta0, x, y)
    assert set(problem.evaluate(problem.theta0, x, y * 1.0, task="regression")) == {"loss", "mse"}


def test_assign_returns_the_pytree():
    problem = _problem()
    theta = problem.theta0 * 2
    tree = problem.assign(theta)
    assert jax.tree_util.tree_structure(tree) == jax.tree_util.tree_structure(
        problem.unflatten(problem.theta0)
    )
    np.testing.assert_array_equal(np.asarray(problem.flatten(tree)), np.asarray(theta))


# --- the flat gradient: joined in place (CPU) or by one concatenate ---------------------------

_leaf_shapes = st.lists(
    st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple), min_size=1, max_size=6
)


@settings(max_examples=25)
@given(shapes=_leaf_shapes, dtypes=st.lists(st.sampled_from(["float32", "float64"]), min_size=6))
def test_join_inverts_the_split_in_place_and_by_concatenate(shapes, dtypes):
    rng = np.random.default_rng(len(shapes))
    params = {
        f"leaf{i}": jnp.asarray(rng.normal(size=shape), dtype=dtype)
        for i, (shape, dtype) in enumerate(zip(shapes, dtypes[: len(shapes)], strict=True))
    }
    flat = FlatParams(params)
    theta = flat.theta0  # ravel_pytree's θ (mixed leaf dtypes: each value exact in its leaf's)
    parts = flat._unravel(theta)
    for in_place in (True, False):
        joined = jax.jit(lambda p, in_place=in_place: flat.join(p, theta.dtype, in_place))(parts)
        assert joined.dtype == theta.dtype
        np.testing.assert_array_equal(np.asarray(joined), np.asarray(theta))


@pytest.mark.parametrize("in_place", [True, False])
def test_leafwise_gradient_equals_the_gradient_through_flat_theta(in_place):
    problem = _problem()
    frozen, (x, y) = problem._frozen, problem._data
    theta = problem.theta0 * 1.1
    value_and_grad = jax.jit(problem._flat.value_and_grad(problem._loss_of, in_place))
    loss, grad = value_and_grad(theta, frozen, x, y)
    loss_ref, grad_ref = jax.value_and_grad(problem._loss_at)(theta, frozen, x, y)
    assert float(loss) == pytest.approx(float(loss_ref), rel=1e-14)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(grad_ref), rtol=1e-12, atol=1e-16)
    assert grad.dtype == theta.dtype
