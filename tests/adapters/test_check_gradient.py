"""check_gradient on small random nets: no false alarms, every 10 % gradient bug caught
(PyTorch, JAX and Keras; float32 nets checked on their float64 copies).

The full counts (200 checks per case, Keras too) are benchmarks/check_gradient_alarms.py's.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from manifoldwalk import check_gradient

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CHECKS = 15
"""Random nets per case (seeds 0, 1, ...)."""


def net(seed: int) -> dict[str, Any]:
    """A random small MLP and data set, framework-free (numpy float64)."""
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 8)), *rng.integers(3, 17, size=int(rng.integers(1, 3))), 3]
    weights = [
        (rng.normal(size=(a, b)) / np.sqrt(a), 0.1 * rng.normal(size=b))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    n = int(rng.integers(8, 65))
    classify = bool(seed % 2)
    x = rng.normal(size=(n, sizes[0]))
    y = rng.integers(0, 3, size=n) if classify else rng.normal(size=(n, 3))
    return {"weights": weights, "x": x, "y": y, "classify": classify, "act": seed % 3}


def torch_problem(spec: dict[str, Any], dtype: str) -> Any:
    torch = pytest.importorskip("torch")
    manifoldwalk_torch = pytest.importorskip("manifoldwalk_torch")
    nn = torch.nn
    layers: list[Any] = []
    for w, b in spec["weights"]:
        lin = nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w.T))
            lin.bias.copy_(torch.as_tensor(b))
        layers += [lin, (nn.Tanh, nn.ReLU, nn.Sigmoid)[spec["act"]]()]
    model = nn.Sequential(*layers[:-1]).to(getattr(torch, dtype))
    loss = nn.CrossEntropyLoss() if spec["classify"] else nn.MSELoss()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return manifoldwalk_torch.from_model(
            model, loss, (torch.as_tensor(spec["x"]), torch.as_tensor(spec["y"]))
        )


def jax_problem(spec: dict[str, Any], dtype: str) -> Any:
    jax = pytest.importorskip("jax")
    manifoldwalk_jax = pytest.importorskip("manifoldwalk_jax")
    jnp = jax.numpy
    act = (jnp.tanh, jax.nn.relu, jax.nn.sigmoid)[spec["act"]]
    params = [(jnp.asarray(w, dtype), jnp.asarray(b, dtype)) for w, b in spec["weights"]]

    def apply(p: Any, x: Any) -> Any:
        for w, b in p[:-1]:
            x = act(x @ w + b)
        return x @ p[-1][0] + p[-1][1]

    def loss(out: Any, y: Any) -> Any:
        if spec["classify"]:
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None], 1))
        return jnp.mean((out - y) ** 2)

    y = jnp.asarray(spec["y"]) if spec["classify"] else jnp.asarray(spec["y"], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return manifoldwalk_jax.from_apply(apply, params, loss, (jnp.asarray(spec["x"], dtype), y))


def tf_problem(spec: dict[str, Any], dtype: str) -> Any:
    pytest.importorskip("tensorflow")
    manifoldwalk_tf = pytest.importorskip("manifoldwalk_tf")
    import keras

    act = ("tanh", "relu", "sigmoid")[spec["act"]]
    model = keras.Sequential([keras.Input((spec["weights"][0][0].shape[0],), dtype=dtype)])
    for i, (w, _) in enumerate(spec["weights"]):
        last = i == len(spec["weights"]) - 1
        model.add(keras.layers.Dense(w.shape[1], None if last else act, dtype=dtype))
    for layer, (w, b) in zip(model.layers, spec["weights"], strict=True):
        layer.set_weights([w.astype(dtype), b.astype(dtype)])
    if spec["classify"]:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    else:
        loss = keras.losses.MeanSquaredError(dtype=dtype)
    y = spec["y"] if spec["classify"] else spec["y"].astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return manifoldwalk_tf.from_model(model, loss, (spec["x"].astype(dtype), y))


class Once:
    """``problem`` with its float64 copy made once (the Keras copy clones the model)."""

    def __init__(self, problem: Any):
        self.problem, self.copy = problem, problem.as_float64()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.problem, name)

    def as_float64(self) -> Any:
        return self.copy


class Buggy:
    """``problem`` with its gradient multiplied by a 0/1/−1/1.1 mask (the loss untouched);
    the bug travels to the float64 copy."""

    def __init__(self, problem: Any, mask: np.ndarray):
        self.problem, self.mask = problem, mask

    def loss(self, theta: Any) -> Any:
        return self.problem.loss(theta)

    def grad(self, theta: Any) -> Any:
        return self.loss_and_grad(theta)[1]

    def reg(self, theta: Any) -> Any:
        return self.problem.reg(theta)

    def reg_grad(self, theta: Any) -> Any:
        return self.problem.reg_grad(theta)

    def loss_and_grad(self, theta: Any) -> tuple[Any, Any]:
        loss, grad = self.problem.loss_and_grad(theta)
        xp_mask = self.mask.astype(np.float64)
        if hasattr(grad, "detach"):
            import torch

            return loss, grad * torch.as_tensor(xp_mask, dtype=grad.dtype)
        return loss, grad * xp_mask.astype(grad.dtype)

    def as_float64(self) -> Buggy | None:
        copy = self.problem.as_float64()
        return None if copy is None else Buggy(copy, self.mask)


def bugs(spec: dict[str, Any], n: int, seed: int) -> dict[str, np.ndarray]:
    """Gradient masks: ×1.1, the first weight matrix zeroed, the last layer's sign flipped."""
    w_in = spec["weights"][0][0].size  # θ starts with the first layer's weight (all adapters)
    last = sum(w.size for w, _ in spec["weights"][-1:])
    zero, flip = np.ones(n), np.ones(n)
    zero[:w_in] = 0.0
    flip[n - last - spec["weights"][-1][1].size : n - spec["weights"][-1][1].size] = -1.0
    return {"scale": np.full(n, 1.1), "zero-block": zero, "sign-flip": flip}


@pytest.fixture(scope="module")
def x64() -> Any:
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        yield


BUILDERS = {"torch": torch_problem, "jax": jax_problem, "tf": tf_problem}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("framework", ["torch", "jax", "tf"])
def test_no_false_alarms_and_bugs_caught(framework, dtype, request):
    if framework == "jax":
        request.getfixturevalue("x64")
    build = BUILDERS[framework]
    alarms, missed = [], []
    # (JAX compiles every net and its float64 copy: fewer of them keep the suite short; the
    # benchmark checks 200)
    for seed in range(4 if framework == "jax" else CHECKS):
        spec = net(seed)
        problem = Once(build(spec, dtype)) if framework == "tf" else build(spec, dtype)
        report = check_gradient(problem, problem.theta0, seed=seed)
        if not report.passed:
            alarms.append((seed, report.message))
        if dtype == "float32":
            assert "float64 copy" in report.message
        for kind, mask in bugs(spec, problem.n_params, seed).items():
            if check_gradient(Buggy(problem, mask), problem.theta0, seed=seed).passed:
                missed.append((seed, kind))
    assert not alarms
    assert not missed


def test_torch_float32_as_is_has_no_false_alarms():
    for seed in range(CHECKS):
        problem = torch_problem(net(seed), "float32")
        report = check_gradient(problem, problem.theta0, seed=seed, float64=False)
        assert report.passed, (seed, report.message)
        assert "central differences" in report.message


def test_torch_float64_copy_is_float64_and_leaves_the_model():
    torch = pytest.importorskip("torch")
    problem = torch_problem(net(0), "float32")
    copy = problem.as_float64()
    assert copy.dtype == torch.float64 and copy.model is not problem.model
    assert next(problem.model.parameters()).dtype == torch.float32
    theta = problem.theta0
    assert abs(float(copy.loss(theta.double())) - float(problem.loss(theta))) <= 1e-5
    assert copy.as_float64() is copy


def test_jax_float64_copy_needs_x64():
    jax = pytest.importorskip("jax")
    with jax.enable_x64(False):
        problem = jax_problem(net(1), "float32")
        assert problem.as_float64() is None
        report = check_gradient(problem, problem.theta0)
        assert report.passed and "central differences" in report.message
    with jax.enable_x64(True):
        problem = jax_problem(net(1), "float32")
        copy = problem.as_float64()
        assert copy.dtype == jax.numpy.float64
        assert copy.as_float64() is copy
