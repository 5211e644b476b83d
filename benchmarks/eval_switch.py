"""What switching a PyTorch model into eval mode costs each evaluation (not a test).

``TorchProblem`` evaluates the model in eval mode and restores the user's modes after, at every
loss-and-gradient evaluation; a model left in training mode (``nn.Module``'s default, and the
runner's after phase 1) pays the switch every walk step. This times, interleaved round by
round, on the Iris-sized FF net (4-100-100-100-3 tanh, 120 random examples, float64: what
``manifoldwalk reproduce iris-ff`` walks) and on MNIST-FF (784-100-100-100-10, 1000 examples,
float32):

- ``eval model``: ``loss_and_grad`` with the model already in eval mode (no switch);
- ``train model``: the same with the model in training mode (the switch the adapter makes);
- ``train model, Module.eval/train``: the same with the switch made by ``Module.eval()`` and
  ``Module.train()``, walking the whole module tree each time.

It prints per-call medians and each row over ``eval model`` (paired: the median of per-round
ratios).

    python benchmarks/eval_switch.py [--reps 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import time_interleaved  # noqa: E402

NETS = {"iris-ff": ((4,), 3, 120, "float64"), "mnist-ff": ((784,), 10, 1000, "float32")}
"""Net name: (input shape, classes, examples, dtype)."""


@contextlib.contextmanager
def module_eval_train(model) -> Iterator[None]:
    """The switch as ``Module.eval()`` / ``Module.train()`` make it (the adapter's old one)."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def net_rows(net: str, reps: int) -> None:
    """Time one net's three rows and print them."""
    import numpy as np
    import torch
    from manifoldwalk_torch import paper as backend
    from manifoldwalk_torch import problem as torch_problem

    shape, n_out, n_examples, dtype = NETS[net]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n_examples, *shape)).astype(dtype)
    y = rng.integers(0, n_out, size=n_examples)
    problems = {}
    for training in (False, True):  # two copies of the same net, one in each mode
        model = backend.build_net("ff", shape, n_out, seed=0, dtype=dtype)
        problems[training] = backend.make_problem(
            model.train(training), x, y, task="classification"
        )
    adapters_switch = torch_problem.eval_mode

    def call(training: bool, switch=adapters_switch):
        problem = problems[training]
        theta = problem.theta0

        def run() -> None:
            torch_problem.eval_mode = switch
            try:
                problem.loss_and_grad(theta)
            finally:
                torch_problem.eval_mode = adapters_switch

        return run

    fns = {
        "eval model": call(False),
        "train model": call(True),
        "train model, Module.eval/train": call(True, module_eval_train),
    }
    times = time_interleaved(fns, reps, warmup=10)
    print(
        f"\n{net}: {int(problems[True].n_params):,} parameters, torch {torch.__version__}, {reps} rounds"
    )
    print("| what | ms per loss_and_grad | over eval model (paired) |\n|---|---|---|")
    for key, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(t, times["eval model"], strict=True))
        print(f"| {key} | {statistics.median(t) * 1e3:.3f} | {ratio:.3f} |")


def main(argv: list[str] | None = None) -> int:
    """Time both nets and print their tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    for net in NETS:
        net_rows(net, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
