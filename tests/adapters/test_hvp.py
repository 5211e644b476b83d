"""Hessian-vector products of the adapters' problems against dense Hessians of tiny nets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from manifoldwalk import curvature

torch = pytest.importorskip("torch")


def tangent_top(hessian: np.ndarray, grad: np.ndarray, k: int) -> np.ndarray:
    """The k largest eigenvalues of the Hessian on the tangent space (∇L projected out)."""
    basis = np.linalg.svd(np.eye(len(grad)) - np.outer(grad, grad) / (grad @ grad))[0]
    basis = basis[:, : len(grad) - 1]
    return np.sort(np.linalg.eigvalsh(basis.T @ hessian @ basis))[::-1][:k]


def torch_net_and_dense_hessian(data_kind: str):
    import manifoldwalk_torch as mt
    from torch import nn

    torch.manual_seed(0)
    x = torch.randn(40, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]

    def loss(t):
        parts = t.split([int(np.prod(s)) for s in shapes])
        params = {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}
        return nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an untrained net: the walk's warning, not ours
        if data_kind == "one batch":
            problem = mt.from_model(model, nn.CrossEntropyLoss(), (x, y))
        elif data_kind == "loader":
            loader = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(x, y), batch_size=15
            )
            problem = mt.from_model(model, nn.CrossEntropyLoss(), loader)
        else:
            batches = [{"x": x[:25], "y": y[:25]}, {"x": x[25:], "y": y[25:]}]
            problem = mt.from_loss(
                model, lambda m, b: nn.functional.cross_entropy(m(b["x"]), b["y"]), batches
            )
    theta = problem.theta0
    hessian = torch.autograd.functional.hessian(loss, theta).numpy()
    return problem, theta, hessian


@pytest.mark.parametrize("data_kind", ["one batch", "loader", "from_loss batches"])
def test_torch_hvp_and_spectrum_match_the_dense_hessian(data_kind):
    problem, theta, hessian = torch_net_and_dense_hessian(data_kind)
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.standard_normal(hessian.shape[0])
        got = problem.hvp(theta, torch.as_tensor(v)).numpy()
        np.testing.assert_allclose(got, hessian @ v, atol=1e-12)
    top = curvature.top_eigenvalues(problem, theta, 3)
    np.testing.assert_allclose(
        top.values, np.sort(np.linalg.eigvalsh(hessian))[::-1][:3], atol=1e-10
    )
    grad = problem.grad(theta).numpy()
    restricted = curvature.top_eigenvalues(problem, theta, 2, tangent=True)
    np.testing.assert_allclose(restricted.values, tangent_top(hessian, grad, 2), atol=1e-10)
    trace = curvature.hessian_trace(problem, theta, exact=True)
    assert trace.value == pytest.approx(np.trace(hessian), abs=1e-10)


def test_torch_hvp_checks_its_vector():
    problem, theta, _ = torch_net_and_dense_hessian("one batch")
    with pytest.raises(ValueError):
        problem.hvp(theta, theta[:-1])
    with pytest.raises(TypeError):
        problem.hvp(theta, theta.float())


@pytest.mark.parametrize("data_kind", ["one batch", "from_loss batches"])
def test_jax_hvp_and_spectrum_match_the_dense_hessian(data_kind):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as tests/test_array_backends.py does
    import jax.numpy as jnp
    import manifoldwalk_jax as mj

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(k1, (40, 4), dtype=jnp.float64)
    y = jax.random.randint(k2, (40,), 0, 3)

    def apply_fn(p, x):
        return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss_fn(logits, y):
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])

    params = {
        "w1": 0.5 * jax.random.normal(k1, (4, 6), dtype=jnp.float64),
        "b1": jnp.zeros(6, dtype=jnp.float64),
        "w2": 0.5 * jax.random.normal(k2, (6, 3), dtype=jnp.float64),
        "b2": jnp.zeros(3, dtype=jnp.float64),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an untrained net
        if data_kind == "one batch":
            problem = mj.from_apply(apply_fn, params, loss_fn, (x, y))
        else:
            batches = [{"x": x[:25], "y": y[:25]}, {"x": x[25:], "y": y[25:]}]
            problem = mj.from_loss(
                lambda p, b: loss_fn(apply_fn(p, b["x"]), b["y"]), params, batches
            )
    theta = problem.theta0
    # the dense Hessian of the same loss, by jax.hessian through the adapter's unflatten
    hessian = np.asarray(
        jax.hessian(lambda t: loss_fn(apply_fn(problem.unflatten(t), x), y))(theta)
    )
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.standard_normal(hessian.shape[0])
        got = np.asarray(problem.hvp(theta, jnp.asarray(v)))
        np.testing.assert_allclose(got, hessian @ v, atol=1e-12)
    top = curvature.top_eigenvalues(problem, theta, 2)
    np.testing.assert_allclose(
        top.values, np.sort(np.linalg.eigvalsh(hessian))[::-1][:2], atol=1e-10
    )


def test_keras_hvp_matches_the_dense_hessian_in_float64():
    tf = pytest.importorskip("tensorflow")
    import keras
    import manifoldwalk_tf as mtf

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="tanh", dtype="float64"),
            keras.layers.Dense(3, dtype="float64"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an untrained net
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # floatx: float32
        problem = mtf.from_model(model, loss, (x, y))
    theta = problem.theta0
    # a float64 model's loss is computed in float64, not in the Keras loss object's float32
    logits = model(x).numpy()
    exact = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(40), y])
    assert float(problem.loss(theta)) == pytest.approx(exact, rel=1e-14)
    t = tf.constant(np.asarray(theta))
    with tf.GradientTape() as outer:
        outer.watch(t)
        with tf.GradientTape() as inner:
            inner.watch(t)
            value = problem._tf_loss(t)
        grad = inner.gradient(value, t)
    hessian = outer.jacobian(grad, t).numpy()
    for _ in range(3):
        v = rng.standard_normal(hessian.shape[0])
        np.testing.assert_allclose(np.asarray(problem.hvp(theta, v)), hessian @ v, atol=1e-12)
    top = curvature.top_eigenvalues(problem, theta, 2)
    np.testing.assert_allclose(
        top.values, np.sort(np.linalg.eigvalsh(hessian))[::-1][:2], atol=1e-10
    )
