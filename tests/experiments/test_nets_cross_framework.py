"""The same net with the same weights computes the same thing in PyTorch, JAX and Keras, and the
three training loops follow the same path from the same start.

Weights move through the shared layout of ``get_weights`` / ``set_weights`` (Keras': dense
kernels ``(in, out)``, convolution kernels HWIO, kernel then bias per layer); this checks the
torch OIHW ↔ HWIO conversion and that the torch CNV flattens its last feature map in NHWC order.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from manifoldwalk_jax.paper import nets as jnets  # noqa: E402
from manifoldwalk_jax.paper import training as jtraining  # noqa: E402
from manifoldwalk_tf.paper import nets as knets  # noqa: E402
from manifoldwalk_tf.paper import training as ktraining  # noqa: E402
from manifoldwalk_torch.paper import nets as tnets  # noqa: E402
from manifoldwalk_torch.paper import training as ttraining  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _template(init):
    """The jax parameter structure (shapes and dtypes only; nothing is compiled or run)."""
    return jax.eval_shape(init)


def _outputs(torch_model, jax_params, jax_apply, keras_model, x: np.ndarray):
    """The three frameworks' outputs for the batch ``x``."""
    with torch.no_grad():
        t = torch_model(torch.as_tensor(x)).numpy()
    j = np.asarray(jax.jit(jax_apply)(jax_params, x))
    k = np.asarray(keras_model(x)) if keras_model is not None else None
    return t, j, k


@pytest.mark.parametrize(
    ("builders", "x_shape"),
    [
        (
            (
                lambda: tnets.ff_net(4, 3, seed=5),
                lambda: jnets.init_ff(0, 4, 3),
                lambda: knets.ff_net(4, 3),
            ),
            (16, 4),
        ),
        (
            (
                lambda: tnets.ff_net((28, 28), 10, seed=5),
                lambda: jnets.init_ff(0, (28, 28), 10),
                lambda: knets.ff_net((28, 28), 10),
            ),
            (6, 28, 28),
        ),
    ],
    ids=["iris-ff", "mnist-ff"],
)
def test_ff_same_weights_same_outputs(builders, x_shape) -> None:
    build_torch, init_jax, build_keras = builders
    torch_model = build_torch()
    weights = tnets.get_weights(torch_model)
    params = jnets.set_weights(_template(init_jax), weights)
    keras_model = build_keras()
    knets.set_weights(keras_model, weights)
    x = np.random.default_rng(0).normal(size=x_shape).astype(np.float32)
    t, j, k = _outputs(torch_model, params, jnets.apply_ff, keras_model, x)
    assert np.abs(t).max() > 0.1  # the comparison is not between zeros
    np.testing.assert_allclose(j, t, rtol=0, atol=1e-5)
    np.testing.assert_allclose(k, t, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("build_torch", "init_jax", "build_keras", "x_shape"),
    [
        (tnets.mnist_cnv, jnets.init_mnist_cnv, knets.mnist_cnv, (4, 28, 28)),
        (tnets.cifar10_cnv, jnets.init_cifar10_cnv, knets.cifar10_cnv, (2, 32, 32, 3)),
    ],
    ids=["mnist-cnv", "cifar10-cnv"],
)
def test_cnv_same_weights_same_outputs(build_torch, init_jax, build_keras, x_shape) -> None:
    torch_model = build_torch(seed=5)
    weights = tnets.get_weights(torch_model)
    params = jnets.set_weights(_template(lambda: init_jax(0)), weights)
    keras_model = build_keras()
    knets.set_weights(keras_model, weights)
    x = np.random.default_rng(1).random(x_shape, dtype=np.float32)
    t, j, k = _outputs(torch_model, params, jnets.apply_cnv, keras_model, x)
    assert np.abs(t).max() > 0.1
    np.testing.assert_allclose(j, t, rtol=0, atol=1e-5)
    np.testing.assert_allclose(k, t, rtol=0, atol=1e-5)
    # The check has teeth: flattening NCHW instead of NHWC changes the outputs.
    wrong = torch.nn.Sequential(*list(torch_model)[:7], torch.nn.Flatten(1), *list(torch_model)[8:])
    with torch.no_grad():
        assert np.abs(wrong(torch.as_tensor(x)).numpy() - t).max() > 1e-3


def test_training_loops_follow_the_same_path(iris) -> None:
    """From one start, with one seed: the same shuffles, loss, penalty and Adam in all three."""
    torch_model = tnets.ff_net(4, 3, hidden=(32, 32), seed=3)
    weights = tnets.get_weights(torch_model)
    params = jnets.set_weights(_template(lambda: jnets.init_ff(0, 4, 3, (32, 32))), weights)
    keras_model = knets.ff_net(4, 3, hidden=(32, 32))
    knets.set_weights(keras_model, weights)
    options = {"epochs": 3, "weight_decay": 1e-3, "seed": 11}
    t = ttraining.train(torch_model, iris, **options)
    j = jtraining.train(params, iris, **options)
    k = ktraining.train(keras_model, iris, **options)
    np.testing.assert_allclose(j.losses, t.losses, rtol=1e-5)
    assert j.final_loss == pytest.approx(t.final_loss, rel=1e-5)
    # Measured: 2e-7 apart; torch's default eps (1e-8) instead of 1e-7 would put them 8e-6 apart.
    for wj, wt in zip(jnets.get_weights(j.params), tnets.get_weights(torch_model), strict=True):
        np.testing.assert_allclose(wj, wt, rtol=0, atol=1e-6)
    # Keras adds Adam's eps before the bias correction: a slightly different path (measured:
    # losses 1.5e-5 apart relatively, weights 2e-4).
    np.testing.assert_allclose(k.losses, t.losses, rtol=1e-4)
    for wk, wt in zip(knets.get_weights(keras_model), tnets.get_weights(torch_model), strict=True):
        np.testing.assert_allclose(wk, wt, rtol=0, atol=1e-3)
    # ...and a different seed gives a different path.
    other = jtraining.train(params, iris, **{**options, "seed": 12})
    assert np.abs(np.array(other.losses) - np.array(j.losses)).max() > 1e-4
