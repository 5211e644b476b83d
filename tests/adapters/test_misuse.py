"""Misuse the adapters catch when a model is wrapped, each with a message that says what to do.

One test per mistake, on tiny models; each checks the error type (or the warning) and the
key words of its message.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from manifoldwalk.problem import ProblemError

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 4)).astype(np.float32)
LABELS = RNG.integers(0, 3, size=24)


def _torch():
    torch = pytest.importorskip("torch")
    import manifoldwalk_torch

    return torch, torch.nn, manifoldwalk_torch


def _jax():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import manifoldwalk_jax

    params = {
        "w": jnp.asarray(RNG.normal(size=(4, 3)) * 0.1, jnp.float32),
        "b": jnp.zeros(3, jnp.float32),
    }
    return jax, jnp, manifoldwalk_jax, params


def _keras():
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    import manifoldwalk_tf

    return keras, manifoldwalk_tf


def _torch_net(nn, *middle):
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), *middle, nn.Linear(5, 3))


def _keras_net(keras, dtype=None, middle=()):
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, activation="tanh", dtype=dtype),
            *middle,
            keras.layers.Dense(3, dtype=dtype),
        ]
    )


def _jax_apply(p, x):
    return x @ p["w"] + p["b"]


def _jax_ce(jax, jnp):
    def ce(outputs, labels):
        logp = jax.nn.log_softmax(outputs)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    return ce


@pytest.fixture(autouse=True)
def _no_untrained_warnings_unless_asked():
    """The tiny nets are untrained: their warning is checked where it is the subject."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the model looks untrained")
        yield


# 1 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "jax", "keras"])
def test_half_precision_models_are_refused_with_the_conversion(framework):
    if framework == "torch":
        torch, nn, mt = _torch()
        for half in (torch.float16, torch.bfloat16):
            with pytest.raises(TypeError, match=r"float32 or float64.*model\.float\(\)"):
                mt.from_model(_torch_net(nn).to(half), nn.CrossEntropyLoss(), (X, LABELS))
    elif framework == "jax":
        jax, jnp, mj, params = _jax()
        half = jax.tree.map(lambda p: p.astype(jnp.float16), params)
        with pytest.raises(TypeError, match=r"float16.*float32 or float64.*astype\(jnp\.float32\)"):
            mj.from_apply(_jax_apply, half, _jax_ce(jax, jnp), (X, LABELS))
    else:
        keras, mt = _keras()
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        with pytest.raises(TypeError, match=r"mixed_float16.*float32 or float64.*float32 policy"):
            mt.from_model(_keras_net(keras, "mixed_float16"), loss, (X, LABELS))


# 2 -----------------------------------------------------------------------------------------


def test_a_meta_device_model_is_refused_with_to_empty():
    torch, nn, mt = _torch()
    with torch.device("meta"):
        model = _torch_net(nn)
    with pytest.raises(ProblemError, match=r"meta device.*no values.*to_empty\(device="):
        mt.from_model(model, nn.CrossEntropyLoss(), (X, LABELS))


# 3 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_swapped_model_and_loss_name_the_order(framework):
    order = r"swapped.*from_model\(model, loss_fn, data\)"
    if framework == "torch":
        torch, nn, mt = _torch()
        with pytest.raises(TypeError, match=order):
            mt.from_model(nn.CrossEntropyLoss(), _torch_net(nn), (X, LABELS))
        with pytest.raises(TypeError, match=order):
            mt.from_model(nn.functional.cross_entropy, _torch_net(nn), (X, LABELS))
    else:
        keras, mt = _keras()
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        with pytest.raises(TypeError, match=order):
            mt.from_model(loss, _keras_net(keras), (X, LABELS))


# 4 -----------------------------------------------------------------------------------------


def test_a_keras_loss_class_is_refused_with_instantiate_it():
    keras, mt = _keras()
    with pytest.raises(TypeError, match=r"class .*SparseCategoricalCrossentropy.*instantiate"):
        mt.from_model(_keras_net(keras), keras.losses.SparseCategoricalCrossentropy, (X, LABELS))


# 5 -----------------------------------------------------------------------------------------


def test_from_apply_arguments_out_of_order_name_the_order():
    jax, jnp, mj, params = _jax()
    ce = _jax_ce(jax, jnp)
    order = r"from_apply\(apply_fn, params, loss_fn, data\)"
    with pytest.raises(TypeError, match=f"out of order.*{order}"):
        mj.from_apply(params, _jax_apply, ce, (X, LABELS))  # params first
    with pytest.raises(TypeError, match=f"out of order.*{order}"):
        mj.from_apply(_jax_apply, ce, params, (X, LABELS))  # loss_fn where params belong
    with pytest.raises(ProblemError, match=f"apply_fn.*fails.*{order}"):
        mj.from_apply(ce, params, _jax_apply, (X, LABELS))  # apply_fn and loss_fn swapped


# 6 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "jax", "keras"])
def test_a_regulariser_the_framework_cannot_differentiate_is_refused(framework):
    def my_reg_detached(t):
        return total(stop(t) ** 2)

    def my_reg_numpy(t):
        return wrap(np.sum(to_numpy(t) ** 2))

    wrap = lambda v: v  # noqa: E731
    if framework == "torch":
        torch, nn, mt = _torch()
        stop, to_numpy, total, wrap = (
            torch.detach,
            (lambda t: t.detach().numpy()),
            torch.sum,
            torch.as_tensor,
        )

        def build(reg):
            return mt.from_model(_torch_net(nn), nn.CrossEntropyLoss(), (X, LABELS), reg=reg)

        words = "PyTorch"
    elif framework == "jax":
        jax, jnp, mj, params = _jax()
        stop, to_numpy, total = jax.lax.stop_gradient, np.asarray, jnp.sum

        def build(reg):
            return mj.from_apply(_jax_apply, params, _jax_ce(jax, jnp), (X, LABELS), reg=reg)

        words = "JAX"
    else:
        keras, mt = _keras()
        import tensorflow as tf

        stop, to_numpy, total = tf.stop_gradient, (lambda t: t.numpy()), tf.reduce_sum
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def build(reg):
            return mt.from_model(_keras_net(keras), loss, (X, LABELS), reg=reg)

        words = "TensorFlow"
    for reg in (my_reg_detached, my_reg_numpy):
        with pytest.raises(
            ProblemError, match=f"reg={reg.__name__} is not differentiable.*{words}"
        ):
            build(reg)


# 7 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "jax", "keras"])
def test_an_untrained_net_warns_with_l0_and_the_trivial_loss(framework):
    regression = RNG.normal(size=(24, 3)).astype(np.float32)
    if framework == "torch":
        torch, nn, mt = _torch()
        cases = [
            (lambda: mt.from_model(_torch_net(nn), nn.CrossEntropyLoss(), (X, LABELS)), "cross"),
            (lambda: mt.from_model(_torch_net(nn), nn.MSELoss(), (X, regression)), "MSE"),
        ]
    elif framework == "jax":
        jax, jnp, mj, params = _jax()

        def mse(outputs, targets):
            return jnp.mean((outputs - targets) ** 2)

        cases = [
            (lambda: mj.from_apply(_jax_apply, params, _jax_ce(jax, jnp), (X, LABELS)), "cross"),
            (lambda: mj.from_apply(_jax_apply, params, mse, (X, regression)), "MSE"),
        ]
    else:
        keras, mt = _keras()
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        mse = keras.losses.MeanSquaredError()
        cases = [
            (lambda: mt.from_model(_keras_net(keras), ce, (X, LABELS)), "cross"),
            (lambda: mt.from_model(_keras_net(keras), mse, (X, regression)), "MSE"),
        ]
    for build, kind in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build()
        said = [w for w in caught if "looks untrained" in str(w.message)]
        assert len(said) == 1, [str(w.message) for w in caught]
        message = str(said[0].message)
        assert said[0].category is UserWarning and said[0].filename == __file__
        assert "L0 = " in message and f"trivial {kind}" in message and "Train the model" in message


def test_a_trained_net_or_an_unknown_loss_does_not_warn():
    torch, nn, mt = _torch()
    x = torch.as_tensor(X)
    labels = x[:, :3].argmax(dim=1)
    trained = nn.Linear(4, 3)
    with torch.no_grad():  # logits 20·x[:, :3]: L0 far below the trivial loss
        trained.weight.copy_(20 * torch.eye(3, 4))
        trained.bias.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mt.from_model(trained, nn.CrossEntropyLoss(), (x, labels))

        def half_cross_entropy(outputs, targets):  # not a loss the adapter recognises
            return 0.5 * nn.functional.cross_entropy(outputs, targets)

        mt.from_model(_torch_net(nn), half_cross_entropy, (x, labels))


# 8 -----------------------------------------------------------------------------------------


def test_batch_norm_statistics_changed_after_wrapping_are_reported():
    torch, nn, mt = _torch()
    model = _torch_net(nn, nn.BatchNorm1d(5))
    with pytest.warns(UserWarning, match="batch-norm"):
        problem = mt.from_model(model, nn.CrossEntropyLoss(), (X, LABELS))
    problem.loss_and_grad(problem.theta0)
    model.train()
    model(torch.as_tensor(X))  # a training-mode pass updates the running statistics
    for evaluate in (problem.loss_and_grad, problem.loss):
        with pytest.raises(ProblemError, match=r"buffer .* changed after the model was wrapped"):
            evaluate(problem.theta0)
    with pytest.raises(ProblemError, match="Wrap the model again"):
        problem.evaluate(problem.theta0, X, LABELS)


# 9 -----------------------------------------------------------------------------------------


def test_keras_dropout_and_batch_norm_warn_as_torch_does():
    keras, mt = _keras()
    _, nn, mt_torch = _torch()
    layers = [keras.layers.Dropout(0.2, name="drop"), keras.layers.BatchNormalization(name="bn")]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.warns(UserWarning, match="dropout or batch-norm") as keras_said:
        mt.from_model(_keras_net(keras, middle=layers), loss, (X, LABELS))
    with pytest.warns(UserWarning, match="dropout or batch-norm") as torch_said:
        mt_torch.from_model(_torch_net(nn, nn.Dropout(0.2)), nn.CrossEntropyLoss(), (X, LABELS))
    keras_text = next(str(w.message) for w in keras_said if "batch-norm" in str(w.message))
    torch_text = next(str(w.message) for w in torch_said if "batch-norm" in str(w.message))
    assert "drop (Dropout), bn (BatchNormalization)" in keras_text
    assert keras_said[0].filename == __file__
    # the same sentence after the layers' names, but for the adapter and how it sets eval mode
    tail = torch_text.split(". ", 1)[1]
    expected = tail.replace("manifoldwalk_torch", "manifoldwalk_tf").replace(
        "eval mode (dropout", "eval mode (training=False: dropout"
    )
    assert keras_text.split(". ", 1)[1] == expected
