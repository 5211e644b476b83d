"""The adapter's torch namespace against ``array_api_compat.torch``, per call (not a test).

The eager PyTorch walk step calls the array-API namespace about a hundred times per step, most
often on 0-d tensors. This times, for each call the adapter's :data:`TORCH` answers with torch
directly, microseconds per call through ``array_api_compat.torch`` and through :data:`TORCH`
(medians of interleaved rounds, one intra-op thread) and their ratio:

    python benchmarks/torch_namespace.py [--reps 15] [--n 99710]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "adapters")]


def calls(n: int) -> dict[str, Callable[[Any], Any]]:
    """The timed calls, each a function of a namespace."""
    import torch

    x, y = torch.tensor(0.3), torch.tensor(0.7)
    c = x < y
    v, w = torch.randn(n), torch.randn(n)
    return {
        "where(0-d bool, 0-d, 0-d)": lambda xp: xp.where(c, x, y),
        "where(0-d bool, 0-d, 1.0)": lambda xp: xp.where(c, x, 1.0),
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


def main(argv: list[str] | None = None) -> int:
    """Print one row per call: compat µs, ours µs, ours over compat (medians)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--n", type=int, default=99_710, help="vector length for matmul")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
