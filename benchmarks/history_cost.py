"""What the history record costs an eager walk: ``Record(every=...)`` 1 (the default), 10, 50, None.

A record (``manifoldwalk._history.describe``) forms ∇R, λ, the KKT residual, two angles and R:
several passes over θ and one host synchronisation. This times whole eager walks of a fixed
number of steps (``max_total_steps``; no other stop can fire) of the default scheme on the
PyTorch nets of ``eager_step.py`` (the Iris-sized FF net, 120 examples, float64; MNIST-FF, 1000
random examples, float32; one intra-op thread), the four settings interleaved round by round,
and prints the median time per step and each setting over ``None`` (paired).

    python benchmarks/history_cost.py [--reps 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adapter_overhead import time_interleaved  # noqa: E402
from eager_step import TORCH_NETS, torch_problem  # noqa: E402
from perf import paired_ratios  # noqa: E402

SETTINGS = {"1": 1, "10": 10, "50": 50, "None": None}


def main(argv: list[str] | None = None) -> int:
    """Time the walks and print the table."""
    import manifoldwalk as mw

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--steps", type=int, default=200, help="steps per walk (default 200)")
    args = ap.parse_args(argv)
    stop = mw.Stop(max_steps=10**9, max_total_steps=args.steps, kkt_tol=0.0, stall_patience=10**9)
    print("| net | record_every | ms per step | / None (paired) |\n|---|---|---|---|")
    for net in TORCH_NETS:
        p = torch_problem(net)
        fns = {
            key: functools.partial(mw.walk, p, p.theta0, stop=stop, record=mw.Record(every=every))
            for key, every in SETTINGS.items()
        }
        times = time_interleaved(fns, args.reps, warmup=1)
        over = paired_ratios(times, floor="None")
        for key, t in times.items():
            ms = statistics.median(t) / args.steps * 1e3
            print(f"| {net} | {key} | {ms:.3f} | {over[key]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
