"""The Keras / TensorFlow adapter: the shared backend suite plus TF-specific checks
(one trace, Keras loss order, non-trainable variables, the numpy seam)."""

from __future__ import annotations

import os
import weakref
from typing import Any

from manifoldwalk import Chunked, Stop

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import manifoldwalk_tf  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from backend_suite import (  # noqa: E402
    SIZES,
    BackendSuite,
    assert_same_walk,
    init_layers,
    rel_err,
    small_data,
)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from manifoldwalk.problem import ProblemError  # noqa: E402

# --------------------------------------------------------------------------------------------
# the model the suite describes, in Keras
# --------------------------------------------------------------------------------------------


def make_mlp(layers: list[tuple[np.ndarray, np.ndarray]], dtype: str) -> keras.Sequential:
    """A Keras tanh MLP holding the suite's numpy ``layers`` (Dense kernels are (in, out))."""
    model = keras.Sequential([keras.Input((layers[0][0].shape[0],), dtype=dtype)])
    for i, (w, _) in enumerate(layers):
        activation = "tanh" if i < len(layers) - 1 else None
        model.add(keras.layers.Dense(w.shape[1], activation=activation, dtype=dtype))
    for layer, (w, b) in zip(model.layers, layers, strict=True):
        layer.set_weights([w, b])
    return model


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy of integer labels, called as ``(outputs, targets)``."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def mse(outputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Mean squared error over all entries."""
    return tf.reduce_mean(tf.square(outputs - targets))


LOSSES = {"classification": cross_entropy, "regression": mse}


def _device_type(device: str) -> str:
    return tf.DeviceSpec.from_string(device).device_type.lower()


class TestTFAdapter(BackendSuite):
    """The shared suite on ``manifoldwalk_tf.from_model``."""

    framework = "tensorflow"
    adapter_module = "manifoldwalk_tf"
    framework_modules = ("tensorflow", "keras")
    extra = "tensorflow"
    array_type = np.ndarray

    _built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def make_mlp_problem(
        self, layers, x, y, *, task, dtype, reg="l2", batch_size=None, freeze_first=False
    ):
        model = make_mlp(layers, dtype)
        if freeze_first:
            model.layers[0].trainable = False
        data = (x.astype(dtype), y.astype(dtype) if task == "regression" else y)
        problem = manifoldwalk_tf.from_model(
            model, LOSSES[task], data, reg=reg, batch_size=batch_size
        )
        self._built[problem] = (task, data)
        return problem

    def canonical(self, problem, theta):
        return [np.asarray(a, dtype=np.float64) for a in problem.unflatten(theta)]

    def to_numpy(self, theta):
        return np.asarray(theta)

    def from_numpy(self, array, like):
        return np.asarray(array, dtype=like.dtype)

    def roundtrip(self, problem, theta):
        task, data = self._built[problem]
        problem.assign(theta)
        return manifoldwalk_tf.from_model(problem.model, LOSSES[task], data).theta0

    def device_of(self, theta):
        assert isinstance(theta, np.ndarray)
        return "cpu"  # the seam: θ is a host numpy array

    def model_device(self, problem):
        return _device_type(problem.model.trainable_variables[0].value.device)

    def quartic_reg(self):
        return lambda theta: tf.reduce_sum(theta**4)

    def make_untrainable(self):
        x, y = small_data("classification")
        model = make_mlp(init_layers(SIZES, seed=0), "float64")
        for layer in model.layers:
            layer.trainable = False
        return manifoldwalk_tf.from_model(model, cross_entropy, (x, y))

    def make_mismatched(self):
        x, y = small_data("classification")
        model = make_mlp(init_layers(SIZES, seed=0), "float64")
        return manifoldwalk_tf.from_model(model, cross_entropy, (x, y[:-1]))

    def make_nonscalar_loss(self):
        x, y = small_data("classification")
        model = make_mlp(init_layers(SIZES, seed=0), "float64")

        def per_example(logits, labels):
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

        return manifoldwalk_tf.from_model(model, per_example, (x, y))

    def make_integer_params(self):
        x, y = small_data("classification")
        model = keras.Sequential(
            [keras.Input((SIZES[0],), dtype="float64"), _Counted(), keras.layers.Dense(3)]
        )
        return manifoldwalk_tf.from_model(model, cross_entropy, (x, y))


class _Counted(keras.layers.Layer):
    """A layer with an integer trainable variable (which Keras allows and the walk cannot use)."""

    def build(self, input_shape: Any) -> None:
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return x


# --------------------------------------------------------------------------------------------
# TF-specific checks
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> tuple[keras.Sequential, np.ndarray, np.ndarray]:
    """One float64 model and data shared by the checks that do not change the model."""
    x, y = small_data("classification")
    return make_mlp(init_layers(SIZES, seed=0), "float64"), x, y


@pytest.mark.parametrize("batch_size", [None, 7, 5])
def test_tf_function_is_traced_once(small, batch_size):
    model, x, y = small
    traces = []

    def counting_loss(logits, labels):
        traces.append(1)  # Python runs only while TensorFlow traces
        return cross_entropy(logits, labels)

    problem = manifoldwalk_tf.from_model(model, counting_loss, (x, y), batch_size=batch_size)
    problem.loss_and_grad(problem.theta0)
    problem.loss(problem.theta0)
    after_first = len(traces)
    rng = np.random.default_rng(0)
    for _ in range(30):
        theta = problem.theta0 + rng.normal(size=problem.n_params) * 1e-3
        loss, grad = problem.loss_and_grad(theta)
        problem.loss(theta)
        assert isinstance(loss, np.ndarray) and loss.shape == () and loss.dtype == np.float64
        assert isinstance(grad, np.ndarray) and grad.dtype == np.float64
    assert len(traces) == after_first


def test_batched_accumulation_exact_when_batches_divide_and_when_one_batch(small):
    model, x, y = small
    full = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    loss_f, grad_f = full.loss_and_grad(full.theta0)
    for batch_size in (5, 64):  # batches that divide n exactly; one batch holding all
        batched = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), batch_size=batch_size)
        loss_b, grad_b = batched.loss_and_grad(batched.theta0)
        np.testing.assert_allclose(loss_b, loss_f, rtol=1e-13)
        np.testing.assert_allclose(grad_b, grad_f, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(batched.loss(batched.theta0), loss_f, rtol=1e-13)


def test_keras_losses_are_called_in_keras_order(small):
    model, x, y = small
    plain = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    loss_p, grad_p = plain.loss_and_grad(plain.theta0)
    for keras_loss in (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
        keras.losses.CategoricalCrossentropy(from_logits=True, dtype="float64"),
    ):
        targets = y if "Sparse" in type(keras_loss).__name__ else np.eye(SIZES[-1])[y]
        problem = manifoldwalk_tf.from_model(model, keras_loss, (x, targets))
        loss_k, grad_k = problem.loss_and_grad(problem.theta0)
        np.testing.assert_allclose(loss_k, loss_p, rtol=1e-12)
        np.testing.assert_allclose(grad_k, grad_p, rtol=1e-10, atol=1e-14)
    # a plain function from keras.losses is in Keras order too, and per example: refused
    with pytest.raises(ProblemError, match="SparseCategoricalCrossentropy"):
        manifoldwalk_tf.from_model(model, keras.losses.sparse_categorical_crossentropy, (x, y))


def test_non_trainable_variables_are_excluded_and_untouched():
    x, y = small_data("classification")
    model = keras.Sequential(
        [
            keras.Input((SIZES[0],), dtype="float64"),
            keras.layers.Dense(6, activation="tanh", dtype="float64"),
            keras.layers.BatchNormalization(dtype="float64"),
            keras.layers.Dense(3, dtype="float64"),
        ]
    )
    bn = model.layers[1]
    bn.moving_mean.assign(np.full(6, 0.3))
    bn.moving_variance.assign(np.full(6, 2.0))
    problem = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), reg="l2-weights")
    assert len(model.non_trainable_variables) == 2
    assert problem.n_params == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert problem.n_params == (5 * 6 + 6) + (6 + 6) + (6 * 3 + 3)
    # inference mode: the loss uses the moving statistics, and nothing is written
    before = [v.numpy().copy() for v in model.variables]
    theta = problem.theta0 * 1.5
    loss, _ = problem.loss_and_grad(theta)
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)
    problem.assign(theta)
    expected = cross_entropy(model(x, training=False), y).numpy()
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.full(6, 0.3))
    # "l2-weights": the two kernels only, not biases, gamma or beta
    kernels = [v.numpy() for v in model.trainable_variables if len(v.shape) == 2]
    assert float(problem.reg(theta)) == pytest.approx(sum(float(np.sum(k * k)) for k in kernels))


def test_assign_writes_the_model_and_unflatten_matches(small):
    model, x, y = small
    problem = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    original = problem.theta0.copy()
    theta = original + 0.25
    try:
        problem.assign(theta)
        got = [v.numpy() for v in model.trainable_variables]
        for a, b in zip(got, problem.unflatten(theta), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(problem.flatten(got), theta)
        loss = problem.loss(theta)
        np.testing.assert_allclose(cross_entropy(model(x), y).numpy(), loss, rtol=1e-13)
    finally:
        problem.assign(original)
    with pytest.raises(ProblemError, match="expected 6 arrays"):
        problem.flatten(got[:-1])


def test_unbuilt_model_is_built_and_float32_is_kept():
    x, y = small_data("classification")
    model = keras.Sequential([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])
    assert not model.built
    problem = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))  # x is float64
    assert problem.n_params == 5 * 4 + 4 + 4 * 3 + 3
    loss, grad = problem.loss_and_grad(problem.theta0)
    assert problem.theta0.dtype == grad.dtype == loss.dtype == np.float32


def test_nested_list_data_keep_float64_digits():
    """(x, y) given as Python lists give a float64 model the loss and gradient of the arrays
    (TensorFlow would make the floats float32 first)."""
    x, y = small_data("classification")
    model = make_mlp(init_layers(SIZES, seed=0), "float64")
    arrays = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    listed = manifoldwalk_tf.from_model(model, cross_entropy, (x.tolist(), y.tolist()))
    loss_a, grad_a = arrays.loss_and_grad(arrays.theta0)
    loss_l, grad_l = listed.loss_and_grad(listed.theta0)
    assert abs(float(loss_l) - float(loss_a)) <= 1e-12 * float(loss_a)
    assert rel_err(grad_l, grad_a) <= 1e-12


def test_per_example_loss_is_reported_with_the_probe_size():
    """The loss is probed on a few examples: the shape it reports is the probe's, said so."""
    x, y = small_data("classification")
    model = make_mlp(init_layers(SIZES, seed=0), "float64")

    def per_example(logits, labels):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    assert len(x) > 8
    with pytest.raises(ProblemError, match=r"shape \(8,\) on a probe of the first 8 training"):
        manifoldwalk_tf.from_model(model, per_example, (x, y))


def test_bad_arguments_are_refused(small, monkeypatch):
    model, x, y = small
    with pytest.raises(TypeError, match="Keras 3 model"):
        manifoldwalk_tf.from_model(lambda x: x, cross_entropy, (x, y))
    with pytest.raises(TypeError, match="pair"):
        manifoldwalk_tf.from_model(model, cross_entropy, x)
    with pytest.raises(ValueError, match="batch_size"):
        manifoldwalk_tf.from_model(model, cross_entropy, (x, y), batch_size=0)
    with pytest.raises(ProblemError, match="scalar"):
        manifoldwalk_tf.from_model(model, cross_entropy, (x, y), reg=lambda t: t * t)
    with pytest.raises(TypeError, match="reg"):
        manifoldwalk_tf.from_model(model, cross_entropy, (x, y), reg=3)
    problem = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    with pytest.raises(ProblemError, match="length"):
        problem.loss_and_grad(problem.theta0[:-1])
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=tensorflow"):
        manifoldwalk_tf.from_model(model, cross_entropy, (x, y))


def test_evaluate_checks_its_arguments_and_reads_one_hot(small):
    model, x, y = small
    problem = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    with pytest.raises(ValueError, match="task"):
        problem.evaluate(problem.theta0, x, y, task="ranking")
    with pytest.raises(ProblemError, match="same number of examples"):
        problem.evaluate(problem.theta0, x, y[:3])
    by_label = problem.evaluate(problem.theta0, x, y, batch_size=3)
    keras_ce = keras.losses.CategoricalCrossentropy(from_logits=True, dtype="float64")
    one_hot = manifoldwalk_tf.from_model(model, keras_ce, (x, np.eye(SIZES[-1])[y]))
    by_one_hot = one_hot.evaluate(problem.theta0, x, np.eye(SIZES[-1])[y], batch_size=6)
    assert by_one_hot["accuracy"] == by_label["accuracy"]
    assert by_one_hot["loss"] == pytest.approx(by_label["loss"], rel=1e-12)


# --------------------------------------------------------------------------------------------
# compile=True: the step on tf.Tensor, compiled whole
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reg", "batch_size"), [("l2", None), ("l2-weights", 7)])
def test_compiled_walk_takes_the_eager_path(small, reg, batch_size):
    """A float64 walk compiled with XLA: the same steps, stop and θ as the eager numpy seam."""
    import manifoldwalk as mw

    model, x, y = small
    kwargs = {"reg": reg, "batch_size": batch_size}
    eager = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), **kwargs)
    fast = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), compile=True, **kwargs)
    assert tf.is_tensor(fast.theta0)
    a = mw.walk(eager, eager.theta0, stop=Stop(max_steps=120))
    b = mw.walk(fast, fast.theta0, stop=Stop(max_steps=120))
    assert tf.is_tensor(b.theta) and isinstance(a.theta, np.ndarray)
    assert_same_walk(a, b, a.theta, b.theta.numpy())
    assert eager.evaluate(b.theta, x, y) == pytest.approx(eager.evaluate(a.theta, x, y))


def test_compile_must_be_a_bool(small):
    model, x, y = small
    with pytest.raises(TypeError, match="compile"):
        manifoldwalk_tf.from_model(model, cross_entropy, (x, y), compile="xla")


def test_eager_problems_hand_the_step_back_unchanged(small):
    model, x, y = small
    problem = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))

    def step(state):
        return state

    assert problem.compile_step(step) is step


@pytest.mark.parametrize(
    ("k", "trajectory_every", "scheme"),
    [(1, None, "default"), (16, 10, "default"), (16, None, "compensated")],
)
def test_chunked_walk_takes_the_eager_path(small, k, trajectory_every, scheme):
    """K steps per host sync in one XLA tf.while_loop: the eager walk's path, history and
    trajectory."""
    import manifoldwalk as mw

    model, x, y = small
    eager = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    fast = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), compile=True)
    kw = {
        "stop": Stop(max_steps=120),
        "record": mw.Record(every=5, trajectory_every=trajectory_every),
    }
    kw["scheme"] = scheme
    a = mw.walk(eager, eager.theta0, **kw)
    b = mw.walk(fast, fast.theta0, **kw, driver=Chunked(steps_per_sync=k))
    assert_same_walk(a, b, a.theta, b.theta.numpy())
    assert list(b.history["step"]) == list(a.history["step"])
    if trajectory_every:
        np.testing.assert_allclose(np.asarray(b.trajectory), a.trajectory, rtol=1e-9, atol=1e-12)


def test_chunked_walk_that_fails_to_correct_keeps_the_eager_last_good_point(small):
    """A walk that stops off the level set inside a chunk returns the eager walk's last
    on-level point (the host replays the chunk that reached it)."""
    import manifoldwalk as mw

    model, x, y = small
    eager = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    fast = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), compile=True)
    kw = {
        "scheme": mw.get_scheme("authors", max_corrector_steps=6),
        "tolerance": mw.Tolerance(tau=1e-14),
        "stop": Stop(max_steps=200),
    }
    a = mw.walk(eager, eager.theta0, **kw)
    b = mw.walk(fast, fast.theta0, **kw, driver=Chunked(steps_per_sync=8))
    assert a.stop_reason == "corrector_failed"
    assert_same_walk(a, b, a.theta, b.theta.numpy())


def test_later_walks_reuse_the_compiled_step_and_chunk(small, monkeypatch):
    """A second walk with the same options neither traces the chunk nor compiles the step
    again, and walks the same path."""
    import manifoldwalk_tf.problem as tf_problem

    import manifoldwalk as mw

    built: list[int] = []
    make = tf_problem.chunk_runner
    monkeypatch.setattr(tf_problem, "chunk_runner", lambda loop: built.append(1) or make(loop))
    model, x, y = small
    fast = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), compile=True)
    kw = {"stop": Stop(max_steps=30), "record": mw.Record(every=5)}
    a, b = (mw.walk(fast, fast.theta0, **kw, driver=Chunked(steps_per_sync=8)) for _ in range(2))
    assert len(built) == 1 and len(fast.loop_cache) == 1
    np.testing.assert_array_equal(b.theta.numpy(), a.theta.numpy())
    compile_step = fast.compile_step
    calls: list[int] = []
    fast.compile_step = lambda step: calls.append(1) or compile_step(step)
    c, d = (mw.walk(fast, fast.theta0, **kw) for _ in range(2))
    assert len(calls) == 1 and len(fast.step_cache) == 1
    np.testing.assert_array_equal(d.theta.numpy(), c.theta.numpy())
    mw.walk(fast, fast.theta0, **kw | {"scheme": "paper"}, driver=Chunked(steps_per_sync=8))
    assert len(built) == 2  # another scheme: another chunk


@pytest.mark.parametrize("scheme", ["paper", "default"])
def test_float32_compiled_chunks_run_in_float32(scheme):
    """A float32 model's compiled chunk stays float32 (the paper's corrector once made a float64
    sign, which TensorFlow refuses to multiply with float32)."""
    import manifoldwalk as mw

    x, y = small_data("classification")
    model = make_mlp(init_layers(SIZES, seed=0), "float32")
    fast = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), compile=True)
    r = mw.walk(
        fast, fast.theta0, scheme=scheme, stop=Stop(max_steps=20), driver=Chunked(steps_per_sync=8)
    )
    # (every step forms the corrector's candidate too, so it ran even where no step corrected)
    assert r.theta.dtype == tf.float32 and r.n_predictor == 20


def test_chunked_walk_needs_compile(small):
    import manifoldwalk as mw

    model, x, y = small
    problem = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    with pytest.raises(ProblemError, match="compile=True"):
        mw.walk(problem, problem.theta0, stop=Stop(max_steps=5), driver=Chunked(steps_per_sync=4))


def test_namespace_fills_float64_without_a_float32_detour():
    from manifoldwalk_tf._namespace import TensorFlowNamespace as xp

    like = tf.zeros(3, dtype=tf.float64)
    assert xp.full_like(like, 0.2).numpy().tolist() == [0.2, 0.2, 0.2]
    assert xp.full_like(like, tf.constant(0.2, tf.float64)).numpy()[0] == 0.2
    assert xp.full_like(like, 2, dtype=tf.int64).dtype == tf.int64


@settings(max_examples=20, deadline=None)
@given(
    n=st.one_of(st.integers(1, 70), st.sampled_from([96, 128, 1000, 1023])),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
)
def test_vector_dot_in_blocks_is_the_inner_product(n, dtype, seed):
    """The namespace's inner product of two vectors inside a compiled function (summed in
    blocks of 32) is a·b, for lengths below, at and between multiples of the block, to the
    round-off of a sum of n products in its dtype."""
    from manifoldwalk_tf._namespace import TensorFlowNamespace as xp

    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n))
    dot = tf.function(xp.matmul, jit_compile=True)
    got = float(dot(tf.constant(a, dtype), tf.constant(b, dtype)))
    a_r, b_r = a.astype(dtype).astype(np.float64), b.astype(dtype).astype(np.float64)
    eps = np.finfo(dtype).eps
    assert abs(got - a_r @ b_r) <= 2 * n * eps * (np.abs(a_r) @ np.abs(b_r))
