"""``manifoldwalk_tf.from_loss``: a Keras model's loss on batches of any structure.

Exactness against one batch (unequal batches, dicts, nesting, a streamed ``tf.data`` pipeline),
a model that computes its own loss, the model's variables untouched, the walk (eager and
compiled), evaluate with metrics, and the errors at build time.
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

import manifoldwalk  # noqa: E402
from manifoldwalk import Chunked, Stop  # noqa: E402
from manifoldwalk.problem import ProblemError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N, D, K = 29, 3, 3
"""Examples, inputs, classes of the test data."""


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, D)), rng.normal(size=(N, 2)), rng.integers(0, K, N)


def two_input_model(seed: int = 0, dtype: str = "float64") -> keras.Model:
    """A Functional model of a dict of two inputs."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((D,), name="x", dtype=dtype)
    z = keras.Input((2,), name="z", dtype=dtype)
    h = keras.layers.Dense(5, activation="tanh", dtype=dtype)(
        keras.layers.Concatenate(dtype=dtype)([x, z])
    )
    return keras.Model({"x": x, "z": z}, keras.layers.Dense(K, dtype=dtype)(h))


def xent(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def dict_loss(model: keras.Model, b: dict[str, Any]) -> tf.Tensor:
    return xent(model({"x": b["x"], "z": b["z"]}, training=False), b["y"])


def dicts(x: np.ndarray, z: np.ndarray, y: np.ndarray, cuts: list[int]) -> list[dict]:
    return [{"x": x[a:b], "z": z[a:b], "y": y[a:b]} for a, b in zip(cuts, cuts[1:], strict=False)]


def assert_same(a: Any, b: Any, theta: np.ndarray, rtol: float = 1e-12) -> None:
    """Equal loss and gradient at θ, to rounding."""
    (la, ga), (lb, gb) = a.loss_and_grad(theta), b.loss_and_grad(theta)
    assert float(la) == pytest.approx(float(lb), rel=rtol)
    np.testing.assert_allclose(ga, gb, rtol=0, atol=rtol * np.abs(ga).max())
    assert float(a.loss(theta)) == pytest.approx(float(la), rel=rtol)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return two_input_model()


@pytest.mark.parametrize("cuts", [[0, 10, N], [0, 4, 8, 12, 16, 20, 24, 28, N], [0, 1, 17, 20, N]])
def test_unequal_batches_equal_one_batch_and_leave_the_model(model, cuts):
    x, z, y = data()
    before = [v.numpy().copy() for v in model.variables]
    one = manifoldwalk_tf.from_loss(model, dict_loss, {"x": x, "z": z, "y": y})
    many = manifoldwalk_tf.from_loss(model, dict_loss, dicts(x, z, y, cuts))
    assert not many.streamed and one.dtype == np.float64
    assert_same(one, many, one.theta0 * 1.3)
    for v, w in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), w)


def test_nested_batches_and_a_streamed_pipeline(model):
    """Tuples of inputs with a dict of targets and a string; a ``tf.data`` pipeline streamed."""
    x, z, y = data(1)

    def nested_loss(m, b):
        (xb, zb), target = b
        assert target["kind"] == "labels"
        return xent(m({"x": xb, "z": zb}, training=False), target["y"])

    nested = [((x[a:b], z[a:b]), {"y": y[a:b], "kind": "labels"}) for a, b in ((0, 9), (9, N))]
    one = manifoldwalk_tf.from_loss(model, dict_loss, {"x": x, "z": z, "y": y})
    assert_same(one, manifoldwalk_tf.from_loss(model, nested_loss, nested), one.theta0 * 0.7)
    pipeline = tf.data.Dataset.from_tensor_slices({"x": x, "z": z, "y": y}).batch(8)
    streamed = manifoldwalk_tf.from_loss(model, dict_loss, pipeline)
    assert streamed.streamed
    assert_same(one, streamed, one.theta0 * 0.7)
    with pytest.raises(ProblemError, match="compile=True needs the training data as one batch"):
        manifoldwalk_tf.from_loss(model, dict_loss, pipeline, compile=True)


class SelfLoss(keras.Model):
    """A subclassed model that returns its own loss from a dict holding the labels."""

    def __init__(self) -> None:
        super().__init__(dtype="float64")
        self.hidden = keras.layers.Dense(5, activation="tanh", dtype="float64")
        self.out = keras.layers.Dense(K, dtype="float64")

    def call(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        logits = self.out(self.hidden(tf.concat([batch["x"], batch["z"]], axis=1)))
        return xent(logits, batch["y"])


def test_a_model_computing_its_own_loss_is_built_and_agrees():
    """An unbuilt subclassed model is built by the first batch; its own loss equals the same
    net's through from_model."""
    x, z, y = data(2)
    own = SelfLoss()
    problem = manifoldwalk_tf.from_loss(own, lambda m, b: m(b), dicts(x, z, y, [0, 12, N]))
    assert own.built and problem.n_params == (D + 2) * 5 + 5 + 5 * K + K
    twin = keras.Sequential([keras.Input((D + 2,), dtype="float64"), own.hidden, own.out])
    ref = manifoldwalk_tf.from_model(twin, xent, (np.concatenate([x, z], 1), y), batch_size=12)
    assert_same(problem, ref, problem.theta0 * 1.1)


def trained() -> tuple[keras.Model, list[dict], dict]:
    x, z, y = data(3)
    m = two_input_model(3)
    whole = {"x": x, "z": z, "y": y}
    m.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(True))
    m.fit({"x": x, "z": z}, y, epochs=150, batch_size=N, verbose=0)
    return m, dicts(x, z, y, [0, 10, 20, N]), whole


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled-chunked"])
def test_walk_holds_the_loss_and_lowers_r(compiled):
    m, batches, _ = trained()
    problem = manifoldwalk_tf.from_loss(m, dict_loss, batches, compile=compiled)
    loss0, reg0 = float(problem.loss(problem.theta0)), float(problem.reg(problem.theta0))
    kw = {"driver": Chunked(16)} if compiled else {}
    result = manifoldwalk.walk(problem, problem.theta0, stop=Stop(max_steps=60), **kw)
    assert result.reg < 0.95 * reg0
    assert abs(float(problem.loss(result.theta)) - loss0) <= 1e-3 * loss0


def test_evaluate_takes_batches_and_metrics_of_ones_own(model):
    x, z, y = data(4)
    batches = dicts(x, z, y, [0, 11, N])
    problem = manifoldwalk_tf.from_loss(model, dict_loss, batches)

    def acc(m, b):
        hits = tf.equal(tf.argmax(m({"x": b["x"], "z": b["z"]}, training=False), -1), b["y"])
        return tf.reduce_mean(tf.cast(hits, tf.float64))

    theta = problem.theta0 * 0.8
    out = problem.evaluate(theta, batches, metrics={"acc": acc, "two": lambda m, b: 2})
    problem.assign(theta)  # the reference, computed with the variables written
    whole = {"x": x, "z": z, "y": y}
    assert out["loss"] == pytest.approx(float(dict_loss(model, whole)), rel=1e-12)
    assert out["acc"] == pytest.approx(float(acc(model, whole)), rel=1e-12)
    assert out["two"] == 2.0
    problem.assign(problem.theta0)
    with pytest.raises(ValueError, match='"loss" is always reported'):
        problem.evaluate(theta, batches, metrics={"loss": acc})
    with pytest.raises(ProblemError, match="metric 'rows' must return the batch's mean"):
        problem.evaluate(theta, batches, metrics={"rows": lambda m, b: b["x"][:, 0]})


@pytest.mark.parametrize(
    ("loss", "match", "cause"),
    [
        (lambda m, b: m({"x": b["x"], "z": b["z"]}), r"got a tensor of shape \(29, 3\)", None),
        (lambda m, b: tf.reduce_sum(b["y"]), "got a tensor of shape \\(\\) and dtype int64", None),
        (lambda m, b: tf.constant(1.0), "does not depend on the model's trainable variables", None),
        (lambda m, b: float(dict_loss(m, b)), "got float", None),
        (lambda m, b: dict_loss(m, b["inputs"]), "fails on the first batch: 'inputs'", KeyError),
    ],
)
def test_build_time_errors_name_what_the_loss_did(model, loss, match, cause):
    x, z, y = data()
    with pytest.raises(ProblemError, match=match) as info:
        manifoldwalk_tf.from_loss(model, loss, {"x": x, "z": z, "y": y})
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)


def test_arguments_out_of_order(model):
    x, z, y = data()
    batch = {"x": x, "z": z, "y": y}
    with pytest.raises(TypeError, match="swapped"):
        manifoldwalk_tf.from_loss(dict_loss, model, batch)
    with pytest.raises(TypeError, match="a function of targets and outputs"):
        manifoldwalk_tf.from_loss(model, keras.losses.SparseCategoricalCrossentropy(), batch)


def test_docs_example_runs():
    """The Keras example of docs/adapters.md's "`from_loss` in JAX and Keras" runs."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "adapters.md").read_text("utf-8")
    body = text.split("#### `from_loss` in JAX and Keras\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, re.S)
    example = next(b for b in blocks if "import manifoldwalk_tf\n" in b)
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(example, "docs/adapters.md", "exec"), namespace)  # noqa: S102
    result, problem = namespace["result"], namespace["problem"]
    assert result.n_predictor == 300 and result.reg < float(problem.reg(problem.theta0))
