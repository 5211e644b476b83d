"""``manifoldwalk_jax.from_loss``: a loss of the parameters and a batch of any structure.

Exactness against one batch (unequal batches, dicts, nesting, streamed batches, weights of
one's own), a model that computes its own loss, the walk, evaluate with metrics, the float64
copy, the compiled drivers, and the errors at build time.
"""

from __future__ import annotations

from collections import UserDict
from typing import Any

import jax
import jax.numpy as jnp
import manifoldwalk_jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk
from manifoldwalk import Chunked, Stop, check_gradient
from manifoldwalk.problem import ProblemError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N, D, K = 29, 3, 3
"""Examples, inputs, classes of the test data."""


@pytest.fixture(autouse=True, scope="module")
def _x64() -> Any:
    """float64 for this module (the adapter never touches JAX's config)."""
    with jax.enable_x64(True):
        yield


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (float64), a second input and integer labels."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, D)), rng.normal(size=(N, 2)), rng.integers(0, K, N)


def init(seed: int = 0, dtype: Any = jnp.float64) -> dict[str, jax.Array]:
    rng = np.random.default_rng(100 + seed)
    return {
        "w": jnp.asarray(rng.normal(size=(D, 5)) / 2, dtype),
        "v": jnp.asarray(rng.normal(size=(2, 5)) / 2, dtype),
        "b": jnp.asarray(0.1 * rng.normal(size=5), dtype),
        "out": jnp.asarray(rng.normal(size=(5, K)) / 2, dtype),
    }


def logits(p: dict[str, jax.Array], x: jax.Array, z: jax.Array) -> jax.Array:
    """A two-input tanh net."""
    return jnp.tanh(x @ p["w"] + z @ p["v"] + p["b"]) @ p["out"]


def xent(lg: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(lg), y[:, None], axis=1))


def dict_loss(p: dict[str, jax.Array], b: dict[str, Any]) -> jax.Array:
    return xent(logits(p, b["x"], b["z"]), b["y"])


def dicts(x: np.ndarray, z: np.ndarray, y: np.ndarray, cuts: list[int]) -> list[dict]:
    return [{"x": x[a:b], "z": z[a:b], "y": y[a:b]} for a, b in zip(cuts, cuts[1:], strict=False)]


def assert_same(a: Any, b: Any, theta: jax.Array, rtol: float = 1e-12) -> None:
    """Equal loss and gradient at θ, to rounding."""
    (la, ga), (lb, gb) = a.loss_and_grad(theta), b.loss_and_grad(theta)
    assert float(la) == pytest.approx(float(lb), rel=rtol)
    scale = float(jnp.max(jnp.abs(ga)))
    np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), rtol=0, atol=rtol * scale)
    assert float(a.loss(theta)) == pytest.approx(float(la), rel=rtol)


@settings(max_examples=8, deadline=None)
@given(cuts=st.lists(st.integers(1, N - 1), min_size=1, max_size=4, unique=True))
def test_unequal_batches_equal_one_batch(cuts):
    x, z, y = data()
    params = init()
    one = manifoldwalk_jax.from_loss(dict_loss, params, {"x": x, "z": z, "y": y})
    many = manifoldwalk_jax.from_loss(dict_loss, params, dicts(x, z, y, [0, *sorted(cuts), N]))
    assert not many.streamed
    assert_same(one, many, one.theta0 * 1.3)


def test_equal_batches_are_scanned_as_one_group():
    """Batches of one shape are stacked (one scanned group), the short last one apart."""
    x, z, y = data()
    many = manifoldwalk_jax.from_loss(dict_loss, init(), dicts(x, z, y, list(range(0, N, 4)) + [N]))
    groups = many._data[0]
    assert len(groups) == 2 and groups[0][0][0].shape == (7, 4, D)
    one = manifoldwalk_jax.from_loss(dict_loss, init(), {"x": x, "z": z, "y": y})
    assert_same(one, many, one.theta0)


def test_nested_batches_and_other_values():
    """Tuples of inputs, a dict of targets, a string and a number in the batch, a UserDict."""
    x, z, y = data(1)

    def loss(p, b):
        (xb, zb), target = b
        assert target["kind"] == "labels" and target["scale"] == 1.0
        return xent(logits(p, xb, zb), target["y"]) * target["scale"]

    def batch(a: int, b: int) -> Any:
        return ((x[a:b], z[a:b]), UserDict({"y": y[a:b], "kind": "labels", "scale": 1.0}))

    one = manifoldwalk_jax.from_loss(dict_loss, init(1), {"x": x, "z": z, "y": y})
    nested = manifoldwalk_jax.from_loss(loss, init(1), [batch(0, 10), batch(10, 25), batch(25, N)])
    assert_same(one, nested, one.theta0 * 0.7)


def test_streamed_batches_equal_held_ones_and_compile_per_batch():
    """A generator function is streamed: one jitted call per batch, the step not compiled
    whole, Chunked refused; the values are those of the held batches."""
    x, z, y = data(2)
    batches = dicts(x, z, y, [0, 7, 14, 21, 28, N])

    def stream():
        yield from batches

    held = manifoldwalk_jax.from_loss(dict_loss, init(2), batches)
    streamed = manifoldwalk_jax.from_loss(dict_loss, init(2), stream)
    assert streamed.streamed and not held.streamed
    assert_same(held, streamed, held.theta0 * 1.1)
    step = lambda s: s  # noqa: E731
    assert streamed.compile_step(step) is step
    with pytest.raises(ProblemError, match="needs the batches on the device"):
        manifoldwalk.walk(streamed, streamed.theta0, driver=Chunked(4))


def test_batch_size_callable_weights_the_mean():
    """Weights of one's own (tokens per batch, not rows): the weighted mean of batch means."""
    rng = np.random.default_rng(3)
    x, z, y = data(3)
    mask = rng.random(N) < 0.6
    mask[[0, 12, 20]] = True

    def masked(p, b):
        per = -jnp.take_along_axis(
            jax.nn.log_softmax(logits(p, b["x"], b["z"])), b["y"][:, None], 1
        )
        return jnp.sum(per[:, 0] * b["m"]) / jnp.sum(b["m"])

    cuts = [0, 12, 20, N]
    batches = [
        {"x": x[a:b], "z": z[a:b], "y": y[a:b], "m": mask[a:b] * 1.0}
        for a, b in zip(cuts, cuts[1:], strict=False)
    ]
    tokens = manifoldwalk_jax.from_loss(
        masked, init(3), batches, batch_size=lambda b: int(b["m"].sum())
    )
    whole = manifoldwalk_jax.from_loss(masked, init(3), {"x": x, "z": z, "y": y, "m": mask * 1.0})
    assert_same(whole, tokens, whole.theta0)
    rows = manifoldwalk_jax.from_loss(masked, init(3), batches)
    assert abs(float(rows.loss(rows.theta0)) - float(whole.loss(whole.theta0))) > 1e-6


def test_a_model_computing_its_own_loss_and_from_apply_agree():
    """``loss_fn`` may be the model itself returning its loss; from_apply with batch_size is the
    same path and gives the same values."""
    x, z, y = data(4)
    xz = np.concatenate([x, z], axis=1)

    def model(p, batch):  # returns outputs and its loss, as Hugging Face models do
        lg = jnp.tanh(batch["inputs"] @ jnp.concatenate([p["w"], p["v"]]) + p["b"]) @ p["out"]
        return {"logits": lg, "loss": xent(lg, batch["labels"])}

    own = manifoldwalk_jax.from_loss(
        lambda p, b: model(p, b)["loss"],
        init(4),
        [{"inputs": xz[a:b], "labels": y[a:b]} for a, b in ((0, 10), (10, 20), (20, N))],
    )

    def apply_fn(p, inputs):
        return model(p, {"inputs": inputs, "labels": y[:1]})["logits"]

    applied = manifoldwalk_jax.from_apply(apply_fn, init(4), xent, (xz, y), batch_size=10)
    assert_same(own, applied, own.theta0 * 0.9)


def trained(seed: int = 5) -> tuple[dict, list[dict], dict]:
    """Parameters trained to a low loss on the dict batches, the batches, and the whole set."""
    x, z, y = data(seed)
    params = init(seed)
    whole = {"x": x, "z": z, "y": y}
    grad = jax.jit(jax.grad(lambda p: dict_loss(p, whole)))
    for _ in range(300):
        params = jax.tree.map(lambda p, g: p - 0.5 * g, params, grad(params))
    return params, dicts(x, z, y, [0, 10, 20, N]), whole


@pytest.mark.parametrize("driver", [None, Chunked(16)], ids=["eager", "chunked"])
def test_walk_holds_the_loss_and_lowers_r(driver):
    params, batches, _ = trained()
    problem = manifoldwalk_jax.from_loss(dict_loss, params, batches)
    loss0, reg0 = float(problem.loss(problem.theta0)), float(problem.reg(problem.theta0))
    kw = {} if driver is None else {"driver": driver}
    result = manifoldwalk.walk(problem, problem.theta0, stop=Stop(max_steps=60), **kw)
    assert isinstance(result.theta, jax.Array)
    assert result.reg < 0.95 * reg0
    assert abs(float(problem.loss(result.theta)) - loss0) <= 1e-3 * loss0


def test_evaluate_takes_batches_and_metrics_of_ones_own():
    params, batches, whole = trained(6)
    problem = manifoldwalk_jax.from_loss(dict_loss, params, batches)

    def acc(p, b):
        hits = jnp.argmax(logits(p, b["x"], b["z"]), -1) == b["y"]
        return jnp.mean(hits.astype(jnp.float64))

    theta = problem.theta0
    out = problem.evaluate(theta, batches, metrics={"acc": acc, "two": lambda p, b: 2})
    direct = acc(params, whole)
    assert out["loss"] == pytest.approx(float(dict_loss(params, whole)), rel=1e-12)
    assert out["acc"] == pytest.approx(float(direct), rel=1e-12)
    assert out["two"] == 2.0
    streamed = problem.evaluate(np.asarray(theta), lambda: iter(batches), metrics={"acc": acc})
    assert streamed["acc"] == pytest.approx(out["acc"], rel=1e-12)
    with pytest.raises(ValueError, match='"loss" is always reported'):
        problem.evaluate(theta, batches, metrics={"loss": acc})
    with pytest.raises(ProblemError, match="metric 'rows' must return the batch's mean"):
        problem.evaluate(theta, batches, metrics={"rows": lambda p, b: b["x"][:, 0]})


def test_float64_copy_and_check_gradient():
    x, z, y = data(7)
    params32 = jax.tree.map(lambda a: a.astype(jnp.float32), init(7))
    batches = [
        {"x": x[:15].astype(np.float32), "z": z[:15], "y": y[:15]},
        {"x": x[15:], "z": z[15:], "y": y[15:]},
    ]
    problem = manifoldwalk_jax.from_loss(dict_loss, params32, batches)
    assert problem.dtype == jnp.float32 and problem.loss(problem.theta0).dtype == jnp.float32
    copy = problem.as_float64()
    assert copy.dtype == jnp.float64 and copy.as_float64() is copy
    theta = problem.theta0
    l32, g32 = problem.loss_and_grad(theta)
    l64, g64 = copy.loss_and_grad(theta.astype(jnp.float64))
    assert float(l64) == pytest.approx(float(l32), rel=1e-5)
    np.testing.assert_allclose(
        np.asarray(g64), np.asarray(g32), atol=1e-5 * float(jnp.abs(g64).max())
    )
    report = check_gradient(problem, theta)
    assert report.passed and "float64 copy" in report.message
    with jax.enable_x64(False):
        p32 = manifoldwalk_jax.from_loss(dict_loss, jax.tree.map(np.asarray, params32), batches)
        assert p32.as_float64() is None


@pytest.mark.parametrize(
    ("loss", "match", "cause"),
    [
        (lambda p, b: logits(p, b["x"], b["z"]), r"scalar, got an array of shape \(29, 3\)", None),
        (lambda p, b: jnp.sum(b["y"]), "an integer scalar", None),
        (lambda p, b: dict_loss(p, b) * 1j, "a complex scalar", None),
        (lambda p, b: (dict_loss(p, b), 0.0), "got a tuple of arrays", None),
        (lambda p, b: dict_loss(p, b["inputs"]), r"fails on the first batch .*'inputs'", KeyError),
        (lambda p, b: p["w"] @ b["y"], "fails on the first batch", TypeError),
    ],
)
def test_build_time_errors_name_what_the_loss_did(loss, match, cause):
    x, z, y = data()
    with pytest.raises(ProblemError, match=match) as info:
        manifoldwalk_jax.from_loss(loss, init(), {"x": x, "z": z, "y": y})
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)


def test_arguments_out_of_order_and_bad_data():
    x, z, y = data()
    batch = {"x": x, "z": z, "y": y}
    with pytest.raises(TypeError, match="swapped"):
        manifoldwalk_jax.from_loss(init(), dict_loss, batch)
    with pytest.raises(TypeError, match="loss_fn takes one argument"):
        manifoldwalk_jax.from_loss(lambda p: 0.0, init(), batch)
    with pytest.raises(TypeError, match="one-shot iterator"):
        manifoldwalk_jax.from_loss(dict_loss, init(), iter([batch]))
    with pytest.raises(ProblemError, match="empty"):
        manifoldwalk_jax.from_loss(dict_loss, init(), [])


def docs_example(framework_module: str) -> str:
    """The example of docs/adapters.md's "`from_loss` in JAX and Keras" that imports
    ``framework_module``."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "adapters.md").read_text("utf-8")
    body = text.split("#### `from_loss` in JAX and Keras\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, re.S)
    return next(b for b in blocks if f"import {framework_module}\n" in b)


def test_docs_example_runs():
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(docs_example("manifoldwalk_jax"), "docs/adapters.md", "exec"), namespace)  # noqa: S102
    result, problem = namespace["result"], namespace["problem"]
    assert result.n_predictor == 300 and result.reg < float(problem.reg(problem.theta0))
    assert len(result.history["test_acc"]) >= 3
