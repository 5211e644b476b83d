"""Table I rows end to end, the sequential way against the batched ones (not a test).

For each experiment (default iris-ff and mpg-ff) it runs ``reproduce`` for N seeds each way, in
temporary directories, in one process:

- ``sequential`` (``--sweep sequential``): seeds one after another, each phase 1, walk and
  weight-decay run on its own;
- ``batched sweep`` (``--sweep batched``, the default): seeds one after another, each seed's
  weight-decay runs of one training-set length as one batched training;
- ``batched + batch-seeds`` (``--sweep batched --batch-seeds``): phase 1 of all seeds as one
  batched training, the walks batched, every seed's weight-decay runs of one training-set
  length as one batched training.

It prints, per way, seconds per seed for each stage (phase 1, walk, sweep, total: the whole
``run_experiment`` call over the seeds), the ratio sequential / that way, and the largest
difference between its results and the sequential ones: the walk's and every weight-decay
run's test metric, the Table I means and the λ chosen by test and by validation.

Stage times come from the seeds' summaries: phase 1 and the sweep record each run's share of
its batch (so their mean is the stage's time per seed either way); a batched walk records the
time of all the walks together, divided here by the seeds. Both paths first run once at toy
size, untimed, so that neither pays the imports and first calls.

    python benchmarks/table_time.py [--seeds 3] [--experiments iris-ff mpg-ff] [--threads 1]
        [--backend torch] [--repeats 1] [--toy] [--steps N] [--epochs N] [--wd-epochs N]
        [--wd-lambdas 0,1e-3] [--device cpu] [--paths sequential "batched sweep" ...]

``--toy`` runs a few seconds per row (100 walk steps, 2 epochs, 2 λ): a check that the script
works, not a measurement.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters")]

PATHS = {
    "sequential": {"sweep": "sequential", "batch_seeds": False},
    "batched sweep": {"sweep": "batched", "batch_seeds": False},
    "batched + batch-seeds": {"sweep": "batched", "batch_seeds": True},
}
"""The ways a row is run, as ``run_experiment`` keywords (the first is the reference)."""

TOY = {"max_steps": 100, "phase1_epochs": 2, "wd_epochs": 2, "wd_lambdas": (0.0, 1e-3)}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(t) for t in text.split(",") if t.strip())


def run_row(experiment: str, path: str, seeds: int, options: dict[str, Any]) -> dict[str, Any]:
    """Run one experiment's seeds one way in a temporary directory; returns its times (seconds
    per seed by stage) and what is compared: the summaries and the Table I row."""
    from manifoldwalk.experiments import RunConfig, run_experiment
    from manifoldwalk.experiments.rundir import seed_dir
    from manifoldwalk.experiments.table import experiment_table

    with tempfile.TemporaryDirectory(prefix="table_time_") as out:
        config = RunConfig(experiment, out=out, seeds=tuple(range(seeds)), **options)
        start = time.perf_counter()
        summaries = run_experiment(config, show_progress=False, **PATHS[path])
        total = time.perf_counter() - start
        row = experiment_table(seed_dir(out, config.spec.name, 0).parent, config.seeds)
    timing = [s["timing"] for s in summaries]
    walk = [t["walk_s_last_session"] for t in timing]
    if PATHS[path]["batch_seeds"]:  # each seed records the time of all the walks together
        walk = [w / seeds for w in walk]
    return {
        "phase1": statistics.mean(t["phase1_s"] for t in timing),
        "walk": statistics.mean(walk),
        "sweep": statistics.mean(t["wd_s"] for t in timing),
        "total": total / seeds,
        "summaries": summaries,
        "row": row,
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The largest differences between two runs of one row (same seeds)."""
    walk = wd = 0.0
    for sa, sb in zip(a["summaries"], b["summaries"], strict=True):
        walk = max(walk, abs(sa["walk"]["test_metric"] - sb["walk"]["test_metric"]))
        for ra, rb in zip(sa["wd"], sb["wd"], strict=True):
            assert (ra["lam"], ra["split"]) == (rb["lam"], rb["split"])
            for k in ("test_metric", "val_metric"):
                x, y = ra[k], rb[k]
                if isinstance(x, float) and isinstance(y, float) and math.isfinite(x):
                    wd = max(wd, abs(x - y))
    ra, rb = a["row"], b["row"]
    means = [
        abs(ra.walk[0] - rb.walk[0]),
        abs(ra.by_test.mean - rb.by_test.mean),
        abs(ra.by_val.mean - rb.by_val.mean),
    ]
    return {
        "walk test metric": walk,
        "wd test/val metric": wd,
        "table means": max(means),
        "λ by test": f"{ra.by_test.lam:g} / {rb.by_test.lam:g}",
        "λ by val": f"{ra.by_val.lam:g} / {rb.by_val.lam:g}",
        "same λ": ra.by_test.lam == rb.by_test.lam and ra.by_val.lam == rb.by_val.lam,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every row both ways (``--repeats`` times, alternating) and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", nargs="+", default=["iris-ff", "mpg-ff"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--backend", default="torch", choices=["torch", "jax"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of both paths (medians)")
    ap.add_argument("--toy", action="store_true", help="a few seconds a row: a check only")
    ap.add_argument("--steps", type=int, help="the walk's step budget (default: the paper's)")
    ap.add_argument("--epochs", type=int, help="phase-1 epochs (default: the paper's)")
    ap.add_argument("--wd-epochs", type=int, help="weight-decay epochs (default: the paper's)")
    ap.add_argument("--wd-lambdas", type=_floats, help="λ list (default: the paper's 14)")
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    args = ap.parse_args(argv)
    paths = ["sequential", *(p for p in args.paths if p != "sequential")]
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.threads == 1:
        flags = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = flags.strip()
    from manifoldwalk.experiments.backend import load_backend

    load_backend(args.backend).configure(device=args.device, threads=args.threads)
    options: dict[str, Any] = dict(TOY) if args.toy else {}
    for key, value in (
        ("max_steps", args.steps),
        ("phase1_epochs", args.epochs),
        ("wd_epochs", args.wd_epochs),
        ("wd_lambdas", args.wd_lambdas),
    ):
        if value is not None:
            options[key] = value
    options.update(backend=args.backend, device=args.device)
    print(
        f"# table_time: {args.seeds} seeds, backend {args.backend}, device {args.device}, "
        f"threads {args.threads}, load {os.getloadavg()[0]:.2f}, options {options}",
        flush=True,
    )
    print(
        "\n| experiment | way | phase 1 s/seed | walk s/seed | sweep s/seed | total s/seed |\n"
        "|---|---|---|---|---|---|",
        flush=True,
    )
    # imports, first calls and allocator warm-up, paid here by neither path's timing
    warm = dict(TOY, max_steps=20, backend=args.backend, device=args.device)
    for path in paths:
        run_row(args.experiments[0], path, 2, warm)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for experiment in args.experiments:
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
        for r in range(args.repeats):
            order = paths if r % 2 == 0 else list(reversed(paths))
            for path in order:
                res = run_row(experiment, path, args.seeds, options)
                runs[path].append(res)
                print(
                    f"| {experiment} | {path} (round {r + 1}) | {res['phase1']:.2f} | "
                    f"{res['walk']:.2f} | {res['sweep']:.2f} | {res['total']:.2f} |",
                    flush=True,
                )
        results[experiment] = runs
    print(
        "\nMedians over the rounds; ratio = sequential / that way (above 1: faster).\n\n"
        "| experiment | way | phase 1 s/seed | walk s/seed | sweep s/seed | total s/seed |\n"
        "|---|---|---|---|---|---|"
    )
    stages = ("phase1", "walk", "sweep", "total")
    for experiment, runs in results.items():
        med = {p: {k: statistics.median(x[k] for x in runs[p]) for k in stages} for p in paths}
        for path in paths:
            cells = " | ".join(f"{med[path][k]:.2f}" for k in stages)
            print(f"| {experiment} | {path} | {cells} |")
        for path in paths[1:]:
            ratio = " | ".join(
                f"{med['sequential'][k] / med[path][k]:.2f}×" if med[path][k] > 0 else "–"
                for k in stages
            )
            print(f"| {experiment} | ratio, {path} | {ratio} |")
    print("\nLargest differences from the sequential way (first round of each; λ: sequential /")
    print("that way):\n")
    print(
        "| experiment | way | walk test metric | wd test/val metric | table means | λ by test | "
        "λ by val |\n|---|---|---|---|---|---|---|"
    )
    for experiment, runs in results.items():
        for path in paths[1:]:
            d = differences(runs["sequential"][0], runs[path][0])
            print(
                f"| {experiment} | {path} | {d['walk test metric']:.3g} | "
                f"{d['wd test/val metric']:.3g} | {d['table means']:.3g} | {d['λ by test']} | "
                f"{d['λ by val']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
