"""What drift compensation costs per gradient evaluation (not a timed test).

Walks a PyTorch MNIST-FF-sized net (784-100-100-100-10 tanh, 1000 random examples, float32,
eager, one thread) with ``scheme="default"`` and ``scheme="compensated"`` for the same number of
evaluations, interleaved, and prints the median time per evaluation of each and their ratio.
The compensated walk takes other steps, so this compares step costs, not walks.

    python benchmarks/drift_cost.py [--reps 7] [--evals 150] [--threads 1]

Run with ``PYTHONPATH=.:adapters``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from manifoldwalk_torch import from_model

import manifoldwalk as mw

TIMED_SCHEMES = ("default", "compensated")


def mnist_ff_problem(seed: int = 0):
    """An MNIST-FF-sized problem on random data (the cost does not depend on the data)."""
    torch.manual_seed(seed)
    sizes = (784, 100, 100, 100, 10)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.Tanh()] if i < len(sizes) - 2 else [])
    x, y = torch.randn(1000, 784), torch.randint(0, 10, (1000,))
    return from_model(torch.nn.Sequential(*layers), torch.nn.CrossEntropyLoss(), (x, y))


def main() -> None:
    """Time both schemes, interleaved, and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--evals", type=int, default=150, help="evaluations per walk")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem = mnist_ff_problem()
    per_eval: dict[str, list[float]] = {s: [] for s in TIMED_SCHEMES}
    for _ in range(args.reps):
        for scheme in TIMED_SCHEMES:
            start = time.perf_counter()
            r = mw.walk(
                problem,
                problem.theta0,
                scheme=scheme,
                stop=mw.Stop(max_steps=10**9, max_total_steps=args.evals),
            )
            per_eval[scheme].append((time.perf_counter() - start) / r.n_grad_evals)
    median = {s: statistics.median(v) for s, v in per_eval.items()}
    for scheme in TIMED_SCHEMES:
        print(f"{scheme:<12} {median[scheme] * 1e3:.3f} ms per evaluation (median of {args.reps})")
    print(f"compensated / default: {median['compensated'] / median['default']:.3f}")


if __name__ == "__main__":
    main()
