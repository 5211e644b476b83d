"""``as_float64()`` of Keras problems: the float64 clone ``check_gradient`` runs on.

The copy agrees with the float32 problem to float32 rounding and with a model built in
float64 to float64 rounding; it covers Functional models with dict and integer inputs, nested
models and batch-norm statistics; a subclassed model, or a ``from_loss`` function that cannot
run in float64 on the copy, has none.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Any  # noqa: E402

import keras  # noqa: E402
import manifoldwalk_tf  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from manifoldwalk import check_gradient  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N = 24


def mlp(dtype: str, seed: int = 0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,), dtype=dtype),
            keras.layers.Dense(6, activation="tanh", dtype=dtype),
            keras.layers.Dense(3, dtype=dtype),
        ]
    )


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, 4)).astype(np.float32), rng.integers(0, 3, N)


def assert_close(a: tuple[Any, Any], b: tuple[Any, Any], rtol: float) -> None:
    """Equal ``(L, ∇L)`` to ``rtol`` (the gradient relative to its largest entry)."""
    assert float(a[0]) == pytest.approx(float(b[0]), rel=rtol)
    scale = np.abs(np.asarray(b[1], np.float64)).max()
    np.testing.assert_allclose(np.asarray(a[1], np.float64), b[1], rtol=0, atol=rtol * scale)


def test_copy_agrees_with_float32_and_with_a_float64_built_model():
    x, y = data()
    model = mlp("float32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    problem = manifoldwalk_tf.from_model(model, loss, (x, y), batch_size=10)
    copy = problem.as_float64()
    assert copy.dtype == np.float64 and copy.model is not model and copy.as_float64() is copy
    assert all(v.dtype == "float32" for v in model.variables)
    theta = problem.theta0 * np.float32(1.2)
    got = copy.loss_and_grad(theta.astype(np.float64))
    assert got[0].dtype == np.float64 and got[1].dtype == np.float64
    assert_close(got, problem.loss_and_grad(theta), rtol=2e-6)
    # the same net built in float64 from the start, its weights θ
    twin = mlp("float64")
    twin.set_weights([w.astype(np.float64) for w in problem.unflatten(theta)])
    loss64 = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    ref = manifoldwalk_tf.from_model(twin, loss64, (x, y))
    assert_close(got, ref.loss_and_grad(ref.theta0), rtol=1e-12)


def test_functional_model_with_dict_and_integer_inputs_nesting_and_batch_norm():
    rng = np.random.default_rng(1)
    batch = {
        "x": rng.normal(size=(N, 4)).astype(np.float32),
        "k": rng.integers(0, 5, (N, 1)),
        "y": rng.normal(size=(N, 2)).astype(np.float32),
    }
    keras.utils.set_random_seed(1)
    xin = keras.Input((4,), name="x")
    kin = keras.Input((1,), name="k", dtype="int32")
    embed = keras.layers.Flatten()(keras.layers.Embedding(5, 3)(kin))
    inner = keras.Sequential([keras.Input((7,)), keras.layers.Dense(5, activation="relu")])
    norm = keras.layers.BatchNormalization()
    h = norm(inner(keras.layers.Concatenate()([xin, embed])))
    model = keras.Model({"x": xin, "k": kin}, keras.layers.Dense(2)(h))
    norm.moving_mean.assign(np.linspace(-1, 1, 5).astype(np.float32))

    def mse(m, b):
        return tf.reduce_mean(tf.square(m({"x": b["x"], "k": b["k"]}, training=False) - b["y"]))

    problem = manifoldwalk_tf.from_loss(model, mse, batch)
    copy = problem.as_float64()
    assert copy is not None and copy.dtype == np.float64
    moving = [v for v in copy.model.non_trainable_variables if "moving_mean" in v.path]
    np.testing.assert_allclose(moving[0].numpy(), np.linspace(-1, 1, 5), rtol=1e-7)
    theta = problem.theta0
    got = copy.loss_and_grad(theta.astype(np.float64))
    assert_close(got, problem.loss_and_grad(theta), 2e-6)
    # a change of L that float32 cannot resolve: the copy computes in float64 throughout
    d = rng.normal(size=theta.shape[0])
    step = copy.loss(theta.astype(np.float64) + 1e-9 * d) - got[0]
    assert float(step) == pytest.approx(1e-9 * float(got[1] @ d), rel=1e-3)


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.dense(x)


def test_subclassed_model_has_no_copy_and_the_check_runs_as_is():
    x, y = data(2)
    model = Subclassed()
    model(x[:1])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    problem = manifoldwalk_tf.from_model(model, loss, (x, y))
    assert problem.as_float64() is None
    report = check_gradient(problem, problem.theta0)
    assert report.passed and "central differences" in report.message


def test_from_loss_copy_where_the_loss_runs_in_float64():
    x, y = data(3)
    model = mlp("float32", seed=3)
    batches = [{"x": x[:10], "y": y[:10]}, {"x": x[10:], "y": y[10:]}]

    def plain(m, b):  # TensorFlow ops compute in the model's dtype
        logits = m(b["x"], training=False)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(b["y"], logits))

    problem = manifoldwalk_tf.from_loss(model, plain, batches)
    copy = problem.as_float64()
    assert copy.dtype == np.float64 and copy.streamed is False
    theta = problem.theta0
    assert_close(copy.loss_and_grad(theta.astype(np.float64)), problem.loss_and_grad(theta), 2e-6)
    assert "float64 copy" in check_gradient(problem, theta).message

    float32_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras_loss = manifoldwalk_tf.from_loss(
        model, lambda m, b: float32_loss(b["y"], m(b["x"], training=False)), batches
    )
    assert keras_loss.as_float64() is None  # the loss object computes in float32
    closed = manifoldwalk_tf.from_loss(model, lambda m, b: plain(model, b), batches)
    assert closed.as_float64() is None  # it runs the float32 model, not the copy
