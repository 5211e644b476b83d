"""The same MLP in PyTorch, JAX and Keras/TensorFlow gives the same loss and gradient.

A 2-hidden-layer tanh MLP (7-9-8-4) with identical weights and data is built in each framework
directly (not through the suites' hooks), wrapped by each adapter's entry point as the API
contract (docs/adapter_api.md) describes, and compared in the canonical layout
``[W1, b1, W2, b2, W3, b3]`` (``W`` as ``(n_in, n_out)``): ≤ 1e-10 relative in float64,
≤ 1e-5 in float32, for the loss, its gradient and the three regularisers.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import manifoldwalk_jax  # noqa: E402
import manifoldwalk_tf  # noqa: E402
import manifoldwalk_torch  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from backend_suite import flat, init_layers, reference_loss_and_grads, rel_err  # noqa: E402
from torch import nn  # noqa: E402

jax.config.update("jax_enable_x64", True)  # float64 JAX arrays (the user's choice to make)

SIZES = (7, 9, 8, 4)
TOL = {"float64": 1e-10, "float32": 1e-5}
FRAMEWORKS = ("torch", "jax", "tensorflow")


def data(task: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(32, SIZES[0]))
    if task == "classification":
        return x, rng.integers(0, SIZES[-1], size=32).astype(np.int64)
    return x, rng.normal(size=(32, SIZES[-1]))


# --- one builder per framework: (problem, canonical(problem, flat) -> list of numpy) --------


def torch_problem(layers, x, y, task, dtype, reg):
    tdtype = getattr(torch, dtype)
    modules: list[nn.Module] = []
    for i, (w, b) in enumerate(layers):
        linear = nn.Linear(*w.shape, dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(w.T))
            linear.bias.copy_(torch.as_tensor(b))
        modules += [linear] + ([nn.Tanh()] if i < len(layers) - 1 else [])
    loss = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
    yt = torch.as_tensor(y) if task == "classification" else torch.as_tensor(y, dtype=tdtype)
    xt = torch.as_tensor(x, dtype=tdtype)
    problem = manifoldwalk_torch.from_model(nn.Sequential(*modules), loss, (xt, yt), reg=reg)

    def canonical(theta):
        parts = problem.unflatten(theta).values()
        return [
            p.detach().double().numpy().T if p.dim() == 2 else p.double().numpy() for p in parts
        ]

    return problem, canonical


def jax_problem(layers, x, y, task, dtype, reg):
    params = [
        {"w": jnp.asarray(w, dtype=dtype), "b": jnp.asarray(b, dtype=dtype)} for w, b in layers
    ]

    def apply_fn(p, xb):
        h = xb
        for i, layer in enumerate(p):
            h = h @ layer["w"] + layer["b"]
            if i < len(p) - 1:
                h = jnp.tanh(h)
        return h

    def ce(out, t):
        return jnp.mean(
            jax.nn.logsumexp(out, axis=-1) - jnp.take_along_axis(out, t[:, None], 1)[:, 0]
        )

    def mse(out, t):
        return jnp.mean((out - t) ** 2)

    yj = jnp.asarray(y) if task == "classification" else jnp.asarray(y, dtype=dtype)
    loss = ce if task == "classification" else mse
    problem = manifoldwalk_jax.from_apply(
        apply_fn, params, loss, (jnp.asarray(x, dtype=dtype), yj), reg=reg
    )

    def canonical(theta):
        tree = problem.unflatten(theta)
        return [np.asarray(layer[k], dtype=np.float64) for layer in tree for k in ("w", "b")]

    return problem, canonical


def tf_problem(layers, x, y, task, dtype, reg):
    model = keras.Sequential(
        [keras.Input((SIZES[0],), dtype=dtype)]
        + [
            keras.layers.Dense(
                w.shape[1], activation="tanh" if i < len(layers) - 1 else None, dtype=dtype
            )
            for i, (w, _) in enumerate(layers)
        ]
    )
    for layer, (w, b) in zip(model.layers, layers, strict=True):
        layer.set_weights([w.astype(dtype), b.astype(dtype)])
    if task == "classification":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    else:
        loss = keras.losses.MeanSquaredError(dtype=dtype)
    yk = y if task == "classification" else y.astype(dtype)
    problem = manifoldwalk_tf.from_model(model, loss, (x.astype(dtype), yk), reg=reg)

    def canonical(theta):
        return [np.asarray(a, dtype=np.float64) for a in problem.unflatten(theta)]

    return problem, canonical


BUILDERS = {"torch": torch_problem, "jax": jax_problem, "tensorflow": tf_problem}


def to_np(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def evaluate_all(task: str, dtype: str, reg="l2") -> dict[str, dict]:
    layers = init_layers(SIZES, seed=4)
    x, y = data(task)
    out = {}
    for name, build in BUILDERS.items():
        problem, canonical = build(layers, x, y, task, dtype, reg)
        theta = problem.theta0
        loss, grad = problem.loss_and_grad(theta)
        out[name] = {
            "theta": flat(canonical(theta)),
            "loss": float(to_np(loss)),
            "grad": flat(canonical(grad)),
            "grad_dtype": to_np(grad).dtype,
            "reg": float(to_np(problem.reg(theta))),
            "reg_grad": flat(canonical(problem.reg_grad(theta))),
        }
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_same_loss_and_gradient_in_every_framework(task, dtype):
    results = evaluate_all(task, dtype)
    tol = TOL[dtype]
    base = results["torch"]
    for name in FRAMEWORKS:
        r = results[name]
        assert r["grad_dtype"] == np.dtype(dtype), name
        np.testing.assert_array_equal(r["theta"], base["theta"])  # the same weights
        assert abs(r["loss"] - base["loss"]) <= tol * abs(base["loss"]), name
        assert rel_err(r["grad"], base["grad"]) <= tol, name
    # and all three agree with the numpy float64 reference
    layers = init_layers(SIZES, seed=4)
    if dtype == "float64":
        ref_loss, ref_grads = reference_loss_and_grads(layers, *data(task), task)
        assert abs(base["loss"] - ref_loss) <= tol * ref_loss
        assert rel_err(base["grad"], flat(ref_grads)) <= tol


@pytest.mark.parametrize("reg", ["l2", "l2-weights"])
def test_same_regulariser_in_every_framework(reg):
    results = evaluate_all("classification", "float64", reg)
    base = results["torch"]
    for name in FRAMEWORKS:
        assert abs(results[name]["reg"] - base["reg"]) <= 1e-12 * base["reg"], name
        assert rel_err(results[name]["reg_grad"], base["reg_grad"]) <= 1e-12, name
