"""The figures of docs/analysis.md: a small PyTorch MLP on scikit-learn's digits, trained, walked
and drawn with :mod:`manifoldwalk.plots`.

    python examples/analysis_figures.py --out docs/figures/analysis

Three seeds of a 64-32-10 tanh MLP (float64, 2,410 parameters) are trained with full-batch
Adam on 1,000 of the 1,797 digits (the rest is the test set) to a training loss near 10⁻³, then
walked with the library's default scheme for ``--steps`` predictor steps, lowering R = ‖θ‖²
while the training loss stays at its level; every 10th step records a history row (with the
test accuracy as a metric column) and keeps θ. The script then draws, with the plotting API:

    curves.png          walk_curves of the three walks (mean ± 1 std)
    pca.png             pca_trajectories of the three walks
    surface-pca.png     loss_surface, PCA plane of seed 0's walk, through its final θ
    surface-filter.png  loss_surface, filter-normalised plane (Li et al., 2018) through the
                        same θ, with the walk projected
    surface-random.png  loss_surface, random plane through the same θ

and prints the time of each part.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from manifoldwalk_torch import from_model
from sklearn.datasets import load_digits
from torch import nn

import manifoldwalk as mw
from manifoldwalk.plots import loss_surface, pca_trajectories, walk_curves

DPI = 90


def data() -> tuple[torch.Tensor, ...]:
    """The digits, pixels scaled to [0, 1], split 1,000 / 797 by a fixed permutation."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x = torch.as_tensor(x[order] / 16.0, dtype=torch.float64)
    y = torch.as_tensor(y[order])
    return x[:1000], y[:1000], x[1000:], y[1000:]


def trained(seed: int, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    """A 64-32-10 tanh MLP trained with full-batch Adam."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def main() -> None:
    """Train, walk and draw; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/analysis"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--grid", type=int, default=41)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, x_test, y_test = data()
    problems, results = [], []
    for seed in range(args.seeds):
        t = time.perf_counter()
        model = trained(seed, x, y, args.epochs)
        trained_s = time.perf_counter() - t
        problem = from_model(model, nn.CrossEntropyLoss(), (x, y))

        def test_acc(theta, problem=problem):
            return problem.evaluate(theta, x_test, y_test)["accuracy"]

        record = mw.Record(every=10, trajectory_every=10, metrics={"test_accuracy": test_acc})
        t = time.perf_counter()
        result = mw.walk(problem, problem.theta0, stop=mw.Stop(max_steps=args.steps), record=record)
        walk_s = time.perf_counter() - t
        print(
            f"seed {seed}: trained {trained_s:.1f} s to L0 = {result.level:.3g}; walked "
            f"{walk_s:.1f} s: {result}; test accuracy "
            f"{result.history['test_accuracy'][0]:.4f} -> {result.history['test_accuracy'][-1]:.4f}"
        )
        problems.append(problem)
        results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    walk_curves(results).save(args.out / "curves.png", dpi=DPI)
    pca_trajectories(results).save(args.out / "pca.png", dpi=DPI)
    print(f"curves and PCA: {time.perf_counter() - t:.1f} s")
    first = results[0]
    for plane in ("pca", "filter", "random"):
        t = time.perf_counter()
        fig = loss_surface(
            problems[0],
            first.theta,
            results=[first],
            plane=plane,
            resolution=args.grid,
            show_progress=False,
        )
        fig.save(args.out / f"surface-{plane}.png", dpi=DPI)
        loss = fig.data["loss"]
        print(
            f"{plane} plane: {args.grid}x{args.grid} losses in {time.perf_counter() - t:.1f} s, "
            f"from {loss.min():.3g} to {loss.max():.3g}"
        )


if __name__ == "__main__":
    main()
