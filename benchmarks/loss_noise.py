"""The floating-point noise of the training loss near a trained minimum (not a test).

For each framework, dtype and net (the paper's Iris and Auto-MPG nets on their real data, phase
1 as the paper trains them, and the MNIST-FF net on 1000 random examples trained the same way)
it prints L0 and two measures of how precisely L can be evaluated there:

- ``noise``: the engine's own measure (:func:`manifoldwalk._noise.loss_noise`, run by every
  walk with a relative tolerance at its start): the largest |L(θ0 + δ) − L(θ0) − ∇L·δ| over
  perturbations δ of a few ulps of θ0;
- ``|L − L64|``: the evaluation's distance from the same net evaluated in float64 (float32 only).

Both divided by L0 give the relative noise that bounds how tight a relative level tolerance can
be (docs/schemes.md).

    python benchmarks/loss_noise.py [--frameworks torch jax] [--nets iris-ff mpg-ff mnist-ff]
        [--seeds 3] [--epochs 100]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters")]


def dataset(net: str, seed: int, dtype: str):
    """(x, y, task, epochs) for a net: Iris and Auto-MPG as the paper has them, MNIST-FF on
    1000 random examples."""
    from manifoldwalk.datasets import load_dataset

    if net == "mnist-ff":
        rng = np.random.default_rng(seed)
        x = rng.uniform(0, 1, (1000, 784)).astype(dtype)
        y = rng.integers(0, 10, 1000)
        return x, y, "classification"
    ds = load_dataset(
        {"iris-ff": "iris", "mpg-ff": "auto-mpg"}[net], seed=seed, dtype=np.dtype(dtype)
    )
    task = "regression" if net == "mpg-ff" else "classification"
    return ds.x_train, ds.y_train, task


def measure(framework: str, net: str, dtype: str, seed: int, epochs: int) -> dict[str, float]:
    """Train one net and measure its loss noise at the trained point."""
    from manifoldwalk._array import to_host, to_numpy
    from manifoldwalk._noise import loss_noise
    from manifoldwalk.experiments.backend import load_backend

    backend = load_backend(framework)
    x, y, task = dataset(net, seed, dtype)
    n_out = 10 if net == "mnist-ff" else (3 if net == "iris-ff" else y.shape[1])
    hidden = (100, 100, 100) if net == "mnist-ff" else (100, 100, 100, 100)
    model = backend.build_net("ff", x.shape[1:], n_out, hidden=hidden, seed=seed, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = backend.train(model, x, y, task=task, epochs=epochs, seed=seed)
        problem = backend.make_problem(model, x, y, task=task)
    theta = problem.theta0
    loss, grad = problem.loss_and_grad(theta)
    (l0,) = to_host(loss)
    noise = loss_noise(problem, theta, float(l0), grad, samples=16)
    row = {"L0": float(l0), "noise": noise, "rel_noise": noise / abs(float(l0))}
    if dtype == "float32":
        model64 = backend.build_net(
            "ff", x.shape[1:], n_out, hidden=hidden, seed=seed, dtype="float64"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p64 = backend.make_problem(model64, x.astype(np.float64), y, task=task)
        theta64 = backend.from_numpy(np.asarray(to_numpy(theta), dtype=np.float64), p64.theta0)
        (l64,) = to_host(p64.loss(theta64))
        row["vs64"] = abs(float(l0) - float(l64))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frameworks", nargs="+", default=["torch", "jax"])
    ap.add_argument("--nets", nargs="+", default=["iris-ff", "mpg-ff", "mnist-ff"])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=100)
    args = ap.parse_args()
    if "jax" in args.frameworks:
        import jax

        jax.config.update("jax_enable_x64", True)
    print("| framework | net | dtype | seed | L0 | noise | noise / L0 | abs(L − L64) / L0 |")
    print("|---|---|---|---|---|---|---|---|")
    for fw in args.frameworks:
        for net in args.nets:
            for dtype in args.dtypes:
                for seed in range(args.seeds):
                    r = measure(fw, net, dtype, seed, args.epochs)
                    vs = f"{r['vs64'] / r['L0']:.2e}" if "vs64" in r else ""
                    print(
                        f"| {fw} | {net} | {dtype} | {seed} | {r['L0']:.3e} | {r['noise']:.2e} | "
                        f"{r['rel_noise']:.2e} | {vs} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
