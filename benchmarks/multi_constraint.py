"""A k-constraint walk's step against its floor, k value-and-gradient evaluations (not a test).

The paper's MNIST-FF net (784-100-100-100-10 tanh, 99,710 parameters, float32, PyTorch) on 1000
random examples split into k equal subsets, one ``manifoldwalk_torch.from_model`` problem per
subset, stacked with ``manifoldwalk.stack``: the walk holds the k subsets' losses fixed and
lowers ‖θ‖². For each k it times, interleaved repetition by repetition (so that machine noise hits
both alike), and prints medians:

- ``floor``: the k problems' ``loss_and_grad(θ)``, one after the other;
- ``step``: one step of the k-constraint walk (``prepare_constrained``, then ``run.advance`` and
  its stop test): the same k evaluations at the point it moves to, stacked into L and J, the
  Gram matrix J Jᵀ, and the predictor's or the corrector's algebra.

The ratio step / floor is reported as the ratio of the medians and, "paired", as the median of
the per-round ratios (target ≤ 1.10).

    python benchmarks/multi_constraint.py [--ks 2 5 10] [--reps 30] [--threads 1] [--clock cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

WARMUP = 5
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]


def build(k: int):
    """The stacked problem of k subsets and its start (the net's weights as adapter_overhead's)."""
    import manifoldwalk_torch
    import torch
    from adapter_overhead import mnist_ff_weights, random_data
    from torch import nn

    import manifoldwalk as mw

    modules: list[nn.Module] = []
    layers = mnist_ff_weights()
    for i, (w, b) in enumerate(layers):
        linear = nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(w.T))
            linear.bias.copy_(torch.as_tensor(b))
        modules += [linear] + ([nn.Tanh()] if i < len(layers) - 1 else [])
    model = nn.Sequential(*modules)
    x, y = random_data()
    parts = np.array_split(np.arange(len(x)), k)
    with warnings.catch_warnings():  # random weights: "the model looks untrained"
        warnings.simplefilter("ignore", UserWarning)
        problems = [
            manifoldwalk_torch.from_model(
                model, nn.CrossEntropyLoss(), (torch.as_tensor(x[i]), torch.as_tensor(y[i]))
            )
            for i in parts
        ]
    return problems, mw.stack(problems), problems[0].theta0


def time_interleaved(fns: dict[str, Callable[[], Any]], reps: int, clock: Callable[[], float]):
    """``adapter_overhead.time_interleaved`` with a choice of clock: each function ``warmup``
    times, then ``reps`` rounds of one call each, the order rotating from round to round."""
    for fn in fns.values():
        for _ in range(WARMUP):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = clock()
            fns[name]()
            times[name].append(clock() - start)
    return times


def time_k(k: int, reps: int, clock: Callable[[], float]) -> dict[str, float]:
    """Median times (seconds) of the floor and the step for k subsets, and the paired ratio."""
    import manifoldwalk as mw
    from manifoldwalk.multi import prepare_constrained

    problems, stacked, theta = build(k)
    run, state = prepare_constrained(stacked, theta, record=mw.Record(every=None))
    box = {"state": state}

    def floor():
        for p in problems:
            p.loss_and_grad(theta)

    def step():
        s = run.advance(box["state"])
        run.reason(s)
        box["state"] = s

    times = time_interleaved({"floor": floor, "step": step}, reps, clock)
    ratios = [s / f for s, f in zip(times["step"], times["floor"], strict=True)]
    s = box["state"]
    return {
        "floor": statistics.median(times["floor"]),
        "step": statistics.median(times["step"]),
        "paired": statistics.median(ratios),
        "steps": f"{s.n_pred} predictor + {s.n_corr} corrector",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: time.perf_counter; cpu: time.process_time, this process's CPU time (with "
        "--threads 1, steadier than wall time on a machine that other jobs share)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, reps {args.reps}, "
        f"{args.clock} clock, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print("| k | floor: k × loss_and_grad (ms) | step (ms) | step / floor | paired | steps timed |")
    print("|---|---|---|---|---|---|")
    for k in args.ks:
        r = time_k(k, args.reps, CLOCKS[args.clock])
        print(
            f"| {k} | {1e3 * r['floor']:.2f} | {1e3 * r['step']:.2f} | "
            f"{r['step'] / r['floor']:.3f} | {r['paired']:.3f} | {r['steps']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
