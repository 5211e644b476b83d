"""False alarms and caught bugs of ``manifoldwalk.check_gradient`` on small random nets.

For each framework (PyTorch, JAX; Keras with ``--frameworks tf``) and dtype, it builds
``--checks`` random small MLPs (one or two hidden layers of 3–16 tanh, ReLU or sigmoid units,
2–7 inputs, 8–64 random examples, cross-entropy or mean squared error; seed k for the k-th)
and runs ``check_gradient`` at θ0 with ``seed=k``:

* on the correct problem: a failed check is a false alarm;
* on the problem with an injected gradient bug (the loss untouched), one per kind in turn:
  ``scale`` (∇L·1.1), ``zero-block`` (one parameter tensor's gradient zeroed), ``sign-flip``
  (one parameter tensor's gradient negated), ``other-loss`` (the gradient of the loss on the
  first half of the examples). A bug counts as injected when its size |Δ|/|∇L| is at least
  10 % (measured in float64 at θ0); a passed check of one is a missed bug. Smaller ones are
  counted apart.

The float32 rows come in two modes: ``float64 copy`` (the default: the check runs on the
problem's ``as_float64()`` copy, and the bugs travel with it) and ``as is``
(``check_gradient(..., float64=False)``: central differences within the measured rounding).
The ``slope only`` column counts the false alarms the float64 slope test alone would give
(its slope outside 1.8–2.2) on the same checks.

    PYTHONPATH=.:adapters python benchmarks/check_gradient_alarms.py [--checks 200]
        [--frameworks torch jax tf]

JAX runs with ``jax_enable_x64`` on (its float64 rows and copies need it).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from manifoldwalk import check_gradient
from manifoldwalk.diagnostics import SLOPE_RANGE

BUGS = ("scale", "zero-block", "sign-flip", "other-loss")
MIN_BUG = 0.1


class Buggy:
    """A problem with a wrong gradient: ``bug(θ, ∇L)``; the loss is the wrapped problem's.

    ``other`` is the problem whose gradient replaces the right one (``other-loss``).
    """

    def __init__(self, problem: Any, kind: str, block: tuple[int, int], other: Any = None):
        self.problem, self.kind, self.block, self.other = problem, kind, block, other

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
        return loss, self.wrong(theta, grad)

    def wrong(self, theta: Any, grad: Any) -> Any:
        if self.kind == "scale":
            return grad * 1.1
        if self.kind == "other-loss":
            return self.other.loss_and_grad(theta)[1]
        lo, hi = self.block
        factor = 0.0 if self.kind == "zero-block" else -1.0
        mask = np.ones(grad.shape[0])
        mask[lo:hi] = factor
        xp_mask = _like(mask, grad)
        return grad * xp_mask

    def as_float64(self) -> Buggy | None:
        hook = getattr(self.problem, "as_float64", None)
        copy = hook() if hook else None
        if copy is None:
            return None
        other = self.other.as_float64() if self.other is not None else None
        return Buggy(copy, self.kind, self.block, other)


def _like(values: np.ndarray, like: Any) -> Any:
    """``values`` in ``like``'s array type and dtype."""
    mod = type(like).__module__
    if mod.startswith("torch"):
        import torch

        return torch.as_tensor(values, dtype=like.dtype, device=like.device)
    if mod.startswith("jax"):
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=like.dtype)
    import tensorflow as tf

    return tf.constant(values, dtype=like.dtype)


def net_spec(seed: int) -> dict[str, Any]:
    """The k-th random net and data set, framework-free (numpy float64)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(2, 8)), int(rng.integers(2, 5))
    hidden = [int(h) for h in rng.integers(3, 17, size=int(rng.integers(1, 3)))]
    n = int(rng.integers(8, 65))
    sizes = [n_in, *hidden, n_out]
    weights = [
        (rng.normal(size=(a, b)) / np.sqrt(a), 0.1 * rng.normal(size=b))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    x = rng.normal(size=(n, n_in))
    classify = bool(seed % 2)
    y = rng.integers(0, n_out, size=n) if classify else rng.normal(size=(n, n_out))
    act = ("tanh", "relu", "sigmoid")[seed % 3]
    return {"weights": weights, "x": x, "y": y, "classify": classify, "act": act}


def torch_problems(spec: dict[str, Any], dtype: str) -> tuple[Any, Any]:
    """The spec's net as a PyTorch problem, and the same on the first half of the data."""
    import manifoldwalk_torch
    import torch
    from torch import nn

    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[spec["act"]]
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(spec["weights"]):
        lin = nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w.T))
            lin.bias.copy_(torch.as_tensor(b))
        layers += [lin] if i == len(spec["weights"]) - 1 else [lin, act()]
    model = nn.Sequential(*layers).to(getattr(torch, dtype))
    loss = nn.CrossEntropyLoss() if spec["classify"] else nn.MSELoss()
    x, y = torch.as_tensor(spec["x"]), torch.as_tensor(spec["y"])
    half = x.shape[0] // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            manifoldwalk_torch.from_model(model, loss, (x, y)),
            manifoldwalk_torch.from_model(model, loss, (x[:half], y[:half])),
        )


def jax_problems(spec: dict[str, Any], dtype: str) -> tuple[Any, Any]:
    """The spec's net as a JAX problem, and the same on the first half of the data."""
    import jax
    import jax.numpy as jnp
    import manifoldwalk_jax

    act = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}[spec["act"]]
    params = [(jnp.asarray(w, dtype), jnp.asarray(b, dtype)) for w, b in spec["weights"]]

    def apply(p: Any, x: Any) -> Any:
        for w, b in p[:-1]:
            x = act(x @ w + b)
        w, b = p[-1]
        return x @ w + b

    if spec["classify"]:

        def loss(out: Any, y: Any) -> Any:
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None], 1))

        y = jnp.asarray(spec["y"])
    else:

        def loss(out: Any, y: Any) -> Any:
            return jnp.mean((out - y) ** 2)

        y = jnp.asarray(spec["y"], dtype)
    x = jnp.asarray(spec["x"], dtype)
    half = x.shape[0] // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            manifoldwalk_jax.from_apply(apply, params, loss, (x, y)),
            manifoldwalk_jax.from_apply(apply, params, loss, (x[:half], y[:half])),
        )


def tf_problems(spec: dict[str, Any], dtype: str) -> tuple[Any, Any]:
    """The spec's net as a Keras problem, and the same on the first half of the data."""
    import keras
    import manifoldwalk_tf
    import tensorflow as tf

    keras.backend.set_floatx(dtype)
    layers = [keras.Input((spec["x"].shape[1],), dtype=dtype)]
    for i, (w, _) in enumerate(spec["weights"]):
        last = i == len(spec["weights"]) - 1
        layers.append(keras.layers.Dense(w.shape[1], None if last else spec["act"], dtype=dtype))
    model = keras.Sequential(layers)
    for layer, (w, b) in zip(model.layers, spec["weights"], strict=True):
        layer.set_weights([w.astype(dtype), b.astype(dtype)])
    if spec["classify"]:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        y = tf.constant(spec["y"])
    else:
        loss = keras.losses.MeanSquaredError()
        y = tf.constant(spec["y"], dtype)
    x = tf.constant(spec["x"], dtype)
    half = int(x.shape[0]) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            manifoldwalk_tf.from_model(model, loss, (x, y)),
            manifoldwalk_tf.from_model(model, loss, (x[:half], y[:half])),
        )


BUILDERS = {"torch": torch_problems, "jax": jax_problems, "tf": tf_problems}


def _host(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy().astype(np.float64)
    return np.asarray(a, dtype=np.float64)


def blocks_of(problem: Any) -> list[tuple[int, int]]:
    """The parameter tensors' index ranges in θ (from ``unflatten`` of 0, 1, 2, ...)."""
    theta0 = problem.theta0
    index = _like(np.arange(theta0.shape[0], dtype=np.float64), theta0)
    leaves = problem.unflatten(index)
    leaves = leaves.values() if isinstance(leaves, dict) else _tree_leaves(leaves)
    spans = []
    for leaf in leaves:
        idx = _host(leaf).ravel()
        spans.append((int(idx.min()), int(idx.max()) + 1))
    return sorted(spans)


def _tree_leaves(tree: Any) -> list[Any]:
    import jax

    return jax.tree_util.tree_leaves(tree)


def bug_size(bug: Buggy, ref: Any) -> float:
    """|Δ|/|∇L| at θ0, measured on the float64 problem ``ref`` (a Buggy over it)."""
    theta = ref.problem.theta0
    _, right = ref.problem.loss_and_grad(theta)
    wrong = ref.wrong(theta, right)
    right, wrong = _host(right), _host(wrong)
    return float(np.linalg.norm(wrong - right) / np.linalg.norm(right))


def run(framework: str, checks: int) -> list[dict[str, Any]]:
    """The rows of one framework's table."""
    build = BUILDERS[framework]
    rows = []
    for dtype, modes in (("float64", ("default",)), ("float32", ("float64 copy", "as is"))):
        counts = {
            m: {
                "alarms": 0,
                "slope": 0,
                "caught": 0,
                "injected": 0,
                "small": 0,
                "small_caught": 0,
                "missed": [],
            }
            for m in modes
        }
        start = time.perf_counter()
        for k in range(checks):
            spec = net_spec(k)
            problem, half = build(spec, dtype)
            ref, ref_half = (problem, half) if dtype == "float64" else build(spec, "float64")
            blocks = blocks_of(problem)
            rng = np.random.default_rng(10_000 + k)
            block = blocks[int(rng.integers(len(blocks)))]
            kind = BUGS[k % len(BUGS)]
            bug = Buggy(problem, kind, block, half)
            size = bug_size(Buggy(ref, kind, block, ref_half), Buggy(ref, kind, block, ref_half))
            for mode in modes:
                c = counts[mode]
                use64 = mode != "as is"
                report = check_gradient(problem, problem.theta0, seed=k, float64=use64)
                c["alarms"] += not report.passed
                c["slope"] += not (SLOPE_RANGE[0] <= report.slope <= SLOPE_RANGE[1])
                caught = not check_gradient(bug, problem.theta0, seed=k, float64=use64).passed
                if size >= MIN_BUG:
                    c["injected"] += 1
                    c["caught"] += caught
                    if not caught:
                        c["missed"].append(f"{k}:{kind}:{size:.2f}")
                else:
                    c["small"] += 1
                    c["small_caught"] += caught
        seconds = time.perf_counter() - start
        for mode in modes:
            rows.append(
                {
                    "framework": framework,
                    "dtype": dtype,
                    "mode": mode,
                    "checks": checks,
                    "seconds": seconds,
                    **counts[mode],
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--frameworks", nargs="+", default=["torch", "jax"], choices=BUILDERS)
    args = parser.parse_args()
    if "torch" in args.frameworks:
        import torch

        torch.set_num_threads(1)
    if "jax" in args.frameworks:
        import jax

        jax.config.update("jax_enable_x64", True)
    print(
        "| framework | dtype | mode | false alarms / checks | slope only | caught / injected "
        "(≥ 10 %) | caught / smaller | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    missed = []
    for framework in args.frameworks:
        for r in run(framework, args.checks):
            print(
                f"| {r['framework']} | {r['dtype']} | {r['mode']} | {r['alarms']} / "
                f"{r['checks']} | {r['slope']} | {r['caught']} / {r['injected']} | "
                f"{r['small_caught']} / {r['small']} | {r['seconds']:.0f} |",
                flush=True,
            )
            missed += [f"{r['framework']} {r['dtype']} {r['mode']}: {m}" for m in r["missed"]]
    print("\nmissed bugs (seed:kind:size):", ", ".join(missed) or "none")


if __name__ == "__main__":
    main()
