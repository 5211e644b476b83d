"""The adapter's torch namespace against ``array_api_compat.torch``, per call (not a test).

The eager PyTorch walk step calls the array-API namespace about a hundred times per step, most
often on 0-d tensors. This times, for each call the adapter's :data:`TORCH` answers with torch
directly, microseconds per call through ``array_api_compat.torch`` and through :data:`TORCH`
(medians of interleaved rounds, one intra-op thread) and their ratio; then one eager-driver step
of an eager PyTorch problem (``scheme="paper"`` and the default, as ``walk`` runs it) with the
core's ``namespace()`` answering ``array_api_compat.torch`` and with it answering :data:`TORCH`,
interleaved round by round in one process, over the problem's ``loss_and_grad`` (the floor): the
Iris-sized FF net (4-100-100-100-3 tanh, 120 examples, float64) and MNIST-FF (784-100-100-100-10,
1000 random examples, float32):

    python benchmarks/torch_namespace.py [--reps 15] [--n 99710] [--step-reps 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from manifoldwalk import Record, Stop

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE / "adapters"), str(HERE / "benchmarks")]


def calls(n: int) -> dict[str, Callable[[Any], Any]]:
    """The timed calls, each a function of a namespace."""
    import torch

    x, y = torch.tensor(0.3), torch.tensor(0.7)
    c = x < y
    v, w = torch.randn(n), torch.randn(n)
    return {
        "where(0-d bool, 0-d, 0-d)": lambda xp: xp.where(c, x, y),
        "maximum(0-d, 0-d)": lambda xp: xp.maximum(x, y),
        "minimum(0-d, 0-d)": lambda xp: xp.minimum(x, y),
        "atan2(0-d, 0-d)": lambda xp: xp.atan2(x, y),
        f"matmul(vector, vector), n = {n}": lambda xp: xp.matmul(v, w),
    }


def time_call(fn: Callable[[Any], Any], xp: Any, number: int) -> float:
    """Microseconds per call of ``fn(xp)`` over ``number`` calls."""
    t = time.perf_counter()
    for _ in range(number):
        fn(xp)
    return (time.perf_counter() - t) / number * 1e6


def step_rows(net: str, reps: int) -> list[str]:
    """The eager driver's step through each namespace over the floor (paired medians)."""
    import array_api_compat.torch as compat
    import torch
    from adapter_overhead import time_interleaved
    from eager_step import TORCH_NETS, torch_problem
    from manifoldwalk_torch._namespace import TORCH
    from perf import eager_driver_step, paired_ratios

    from manifoldwalk._array import register_namespace
    from manifoldwalk.driver import prepare_walk

    dtype = TORCH_NETS[net][3]
    p = torch_problem(net)

    def step(scheme: str, xp: Any) -> Callable[[], None]:
        run = prepare_walk(
            p,
            p.theta0,
            scheme=scheme,
            stop=Stop(max_steps=10**9, kkt_tol=0.0),
            record=Record(every=None),
        )
        one = eager_driver_step(run)

        def timed() -> None:
            register_namespace(torch.Tensor, xp)  # the core's namespace() answers xp from now
            one()

        return timed

    fns: dict[str, Callable[[], Any]] = {"floor": lambda: p.loss_and_grad(p.theta0)}
    for scheme in ("paper", "default"):
        fns[f"{scheme}, compat"] = step(scheme, compat)
        fns[f"{scheme}, TORCH"] = step(scheme, TORCH)
    times = time_interleaved(fns, reps, warmup=3)
    paired = paired_ratios(times)
    register_namespace(torch.Tensor, TORCH)
    rows = []
    for scheme in ("paper", "default"):
        gain = paired_ratios(times, floor=f"{scheme}, compat")[f"{scheme}, TORCH"]
        rows.append(
            f"| {net}, {dtype} | {scheme} | {statistics.median(times['floor']) * 1e6:.0f} | "
            f"{paired[f'{scheme}, compat']:.3f} | {paired[f'{scheme}, TORCH']:.3f} | {gain:.3f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print one row per call: compat µs, ours µs, ours over compat (medians)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--n", type=int, default=99_710, help="vector length for matmul")
    ap.add_argument("--step-reps", type=int, default=30, help="rounds of the step rows")
    args = ap.parse_args(argv)

    import array_api_compat.torch as compat
    import torch
    from manifoldwalk_torch._namespace import TORCH

    torch.set_num_threads(1)
    print(f"# torch {torch.__version__}, one intra-op thread, {args.reps} interleaved rounds")
    print("| call | array_api_compat.torch µs | TORCH µs | TORCH / compat (paired) |")
    print("|---|---|---|---|")
    for name, fn in calls(args.n).items():
        number = 200 if "matmul" in name else 5000
        theirs, ours = [], []
        for _ in range(args.reps):
            theirs.append(time_call(fn, compat, number))
            ours.append(time_call(fn, TORCH, number))
        paired = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
        row = f"| {name} | {statistics.median(theirs):.2f} | {statistics.median(ours):.2f} |"
        print(f"{row} {paired:.2f} |")
    print(
        "\n| net | scheme | floor µs | step / floor, compat | step / floor, TORCH | TORCH / compat |"
    )
    print("|---|---|---|---|---|---|")
    for net in ("iris-ff", "mnist-ff"):
        print("\n".join(step_rows(net, args.step_reps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
