"""The PyTorch adapter's loss-and-gradient against ``functional_call`` and against plain PyTorch.

``TorchProblem.loss_and_grad`` runs the model on views into flat θ swapped into the parameters'
places, resolved once (``manifoldwalk_torch/_slots.py``), with each view its own autograd leaf
and the gradient joined after. The alternative, :func:`torch.func.functional_call`, resolves
every name again at each call and differentiates the flat θ through autograd's split and view
nodes. This times, interleaved round
by round in one process, on the Iris-sized FF net (4-100-100-100-3 tanh, 120 examples, float64:
what ``manifoldwalk reproduce iris-ff`` walks) and MNIST-FF (784-100-100-100-10, 1000 random
examples, float32), one intra-op thread:

- ``adapter``: ``problem.loss_and_grad(θ)`` as it is;
- ``functional_call``: ``loss_and_grad`` through ``functional_call``
  (:func:`loss_and_grad_functional_call`; it splits θ as the adapter does, ``split_with_sizes``
  and tuple shapes);
- ``raw``: the model's own parameters as autograd leaves, ``loss_fn(model(x), y)`` and
  ``torch.autograd.grad`` (no flat θ, the gradient left in pieces, no eval-mode switch):
  PyTorch's plain floor;
- ``step, adapter`` / ``step, functional_call``: one eager-driver step (the default scheme) of
  the problem as it is and of one answering with the ``functional_call`` one, as ``walk`` runs it.

Times are medians; ratios are paired (the median over rounds of the ratio in each round), the
calls over ``adapter`` and the steps over ``step, adapter``.

    python benchmarks/torch_loss_grad.py [--reps 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from manifoldwalk import Record, Stop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adapter_overhead import time_interleaved  # noqa: E402
from eager_step import TORCH_NETS, torch_problem  # noqa: E402
from perf import eager_driver_step, paired_ratios  # noqa: E402


def loss_and_grad_functional_call(problem: Any, x: Any, y: Any) -> Any:
    """A one-batch ``loss_and_grad`` through ``functional_call``, as a function of θ."""
    import torch
    from manifoldwalk_torch._model import eval_mode as _eval_mode
    from torch.func import functional_call

    def loss_and_grad(theta: Any) -> tuple[Any, Any]:
        leaf = theta.detach().requires_grad_(True)
        params = dict(zip(problem.names, problem._views(leaf), strict=True))
        with torch.enable_grad(), _eval_mode(problem.model):
            loss = problem._loss_fn(functional_call(problem.model, params, (x,)), y)
            (g,) = torch.autograd.grad(loss, leaf)
        return loss.detach(), g

    return loss_and_grad


def rows_for(net: str, reps: int) -> list[dict[str, Any]]:
    """The five rows of one net: median µs per call, and each over ``adapter`` (paired)."""
    import torch

    from manifoldwalk.driver import prepare_walk

    adapter, fcall = torch_problem(net), torch_problem(net)
    theta = adapter.theta0
    x, y = next(adapter._data.batches())  # the problem's own tensors, on its device
    fcall.loss_and_grad = loss_and_grad_functional_call(fcall, x, y)  # what the walk calls
    params = list(adapter.model.parameters())

    def raw() -> None:
        torch.autograd.grad(adapter._loss_fn(adapter.model(x), y), params)

    def step(problem: Any) -> Any:
        run = prepare_walk(
            problem, theta, stop=Stop(max_steps=10**9, kkt_tol=0.0), record=Record(every=None)
        )
        return eager_driver_step(run)

    assert all(
        torch.equal(a, b)
        for a, b in zip(adapter.loss_and_grad(theta), fcall.loss_and_grad(theta), strict=True)
    ), "the adapter's loss and gradient changed"
    fns = {
        "adapter": lambda: adapter.loss_and_grad(theta),
        "functional_call": lambda: fcall.loss_and_grad(theta),
        "raw": raw,
        "step, adapter": step(adapter),
        "step, functional_call": step(fcall),
    }
    times = time_interleaved(fns, reps, warmup=3)
    over = paired_ratios(times, floor="adapter")
    steps = paired_ratios(times, floor="step, adapter")
    _, _, n_examples, dtype = TORCH_NETS[net]
    return [
        {
            "net": f"{net}, {n_examples} examples, {dtype}",
            "row": key,
            "us": statistics.median(t) * 1e6,
            "over": steps[key] if key.startswith("step") else over[key],
        }
        for key, t in times.items()
    ]


def main(argv: list[str] | None = None) -> int:
    """Time every net and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=30, help="interleaved rounds (default 30)")
    args = ap.parse_args(argv)
    print("| net | row | µs per call | / adapter (paired; steps over the adapter's step) |")
    print("|---|---|---|---|")
    for net in TORCH_NETS:
        for r in rows_for(net, args.reps):
            print(f"| {r['net']} | {r['row']} | {r['us']:.0f} | {r['over']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
