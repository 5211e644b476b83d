"""What walking S seeds at once costs on PyTorch: ``walk_batch`` against S walks in turn (not a test).

``manifoldwalk_torch.walk_batch`` runs each walk step of S seeds as one ``torch.func.vmap``
call. This times, in one process, interleaved round by round, whole walks of ``--steps``
predictor steps (no stop fires: ``kkt_tol=0``), per step of one seed (one loss-and-gradient
evaluation: the walks' corrector steps and the start's checks count too):

- ``floor``: the adapter's eager value-and-gradient of one seed, S × ``--steps`` times;
- ``floor xS``: the same value-and-gradient ``vmap``-ed over the S seeds (what the batch's
  gradient costs with no walk logic), ``--steps`` times;
- ``walk``: S eager walks (``manifoldwalk.walk``, the default for PyTorch problems), one after
  another;
- ``batch``: ``walk_batch`` of the S seeds (K = ``--k`` steps between host reads of the rows).

It prints the medians per seed-step and the paired ratios (median over rounds of the ratio of
the same round): each walk over its floor, and the batch's speed-up over S walks in turn next
to the floor's (the most a batch can gain where the gradient dominates). Nets: the paper's FF
net (3×100 tanh) on 120 random Iris-sized examples, float64 (``iris-ff``, the experiment's
size, where the step's small operations weigh most), and on 1000 MNIST-sized ones, float32
(``mnist-ff``).

    python benchmarks/torch_batch_seeds.py [--nets iris-ff mnist-ff] [--seeds 4] [--steps 100]
        [--k 48] [--reps 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from manifoldwalk import Chunked

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import set_threads, time_interleaved  # noqa: E402
from batch_seeds import NETS, seed_problems  # noqa: E402


def net_rows(net: str, n_seeds: int, steps: int, k: int, reps: int) -> dict[str, float]:
    """Time one net's floors, walks and batch; returns the medians printed (ms per seed-step)."""
    import torch
    from manifoldwalk_torch import walk_batch
    from manifoldwalk_torch.batch import _extras, _Lane, _stack
    from torch.func import vmap

    import manifoldwalk as mw

    problems = seed_problems(net, n_seeds, framework="torch")
    lane = _Lane(problems[0])
    thetas = torch.stack([p.theta0 for p in problems])
    extras = _stack([_extras(p) for p in problems])
    batches = [
        tuple(torch.stack(t) for t in zip(*(p._data._arrays for p in problems), strict=True))
    ]
    batched_grad = vmap(lambda t, e, b: lane.bind(e, b).loss_and_grad(t))
    options = dict(
        stop=mw.Stop(max_steps=steps, kkt_tol=0.0, stall_patience=10**9),
        record=mw.Record(every=10),
    )

    def floor() -> None:
        for p in problems:
            for _ in range(steps):
                p.loss_and_grad(p.theta0)

    def floor_batched() -> None:
        for _ in range(steps):
            batched_grad(thetas, extras, batches)

    fns = {
        "floor": floor,
        "floor xS": floor_batched,
        "walk": lambda: [mw.walk(p, p.theta0, **options) for p in problems],
        "batch": lambda: walk_batch(problems, **options, driver=Chunked(steps_per_sync=k)),
    }
    # a walk of max_steps predictor steps also takes corrector steps: per evaluation, not per
    # predictor step (the walks are deterministic, so every round makes the same evaluations)
    evals = {key: n_seeds * steps for key in ("floor", "floor xS")}
    for key in ("walk", "batch"):
        evals[key] = sum(r.n_grad_evals for r in fns[key]())
    times = time_interleaved(fns, reps, warmup=1)
    times = {key: [t / evals[key] for t in ts] for key, ts in times.items()}
    med = {key: statistics.median(t) * 1e3 for key, t in times.items()}

    def paired(num: str, den: str) -> float:
        return statistics.median(a / b for a, b in zip(times[num], times[den], strict=True))

    print(f"\n{net}: {problems[0].n_params:,} parameters, S = {n_seeds} seeds, {steps} steps")
    print(
        f"K = {k}, {reps} rounds; {evals['walk']} evaluations per S walks; ms per step (one "
        "evaluation) of one seed"
    )
    print("| what | ms/seed-step | over its floor (paired) | speed-up over S in turn (paired) |")
    print("|---|---|---|---|")
    print(f"| floor, one seed at a time | {med['floor']:.3f} | 1 | |")
    print(
        f"| floor, S seeds vmapped | {med['floor xS']:.3f} | 1 | {paired('floor', 'floor xS'):.2f}x |"
    )
    print(f"| walk, one seed at a time | {med['walk']:.3f} | {paired('walk', 'floor'):.3f} | |")
    print(
        f"| batch (`walk_batch`) | {med['batch']:.3f} | {paired('batch', 'floor xS'):.3f} | "
        f"{paired('walk', 'batch'):.2f}x |"
    )
    return med


def main(argv: list[str] | None = None) -> int:
    """Time every net asked for and print its table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--seeds", type=int, default=4, help="seeds per batch (S)")
    ap.add_argument("--steps", type=int, default=100, help="walk steps per timed walk")
    ap.add_argument("--k", type=int, default=48, help="steps between host reads of the rows")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    import os
    import platform

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"# PyTorch batched seeds: {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {args.threads} thread(s)"
    )
    for net in args.nets:
        net_rows(net, args.seeds, args.steps, args.k, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
