"""The compiled chunk's step under a conditional against both sides selected (not a test).

A chunk with one step per ``while`` iteration (M = 1, the default) runs each step under its
framework's conditional (``lax.cond``, ``tf.cond``; :meth:`DeviceLoop.body` with a branch): a
predictor step forms only the predictor, a corrector step only the corrector, and nothing is
selected between them. Before 2026-11-29 the chunk formed both sides and selected with
``where``, as it still does for M > 1 (a GPU reads a conditional's predicate on the host).
This prints, per backend and scheme, from one run of interleaved repetitions on MNIST-FF
(1000 random examples, float32): the floor (K value-and-gradient evaluations in the same
compiled loop, no walk logic), the chunk as shipped ("branch") and the chunk with both sides
selected ("select"), each per step over the floor (paired: median of the rounds' ratios),
and branch over select (paired).

    python benchmarks/step_branch.py [--backends jax tf] [--threads 1] [--reps 20] [--k 48]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import chunked_walk, random_data, time_interleaved  # noqa: E402
from perf import SCHEMES, jax_floor, paired_ratios, tf_floor  # noqa: E402


def selecting(loop: Any) -> Any:
    """``loop`` with both sides of every step formed and selected (no conditional), compiled
    on its own (no cache key: it must not be served the branched chunk)."""
    run = loop.run
    loop.run = lambda c, put, while_loop, branch=None: run(c, put, while_loop)
    loop.cache_key = lambda: None
    return loop


def problem_of(backend: str, threads: int | None) -> Any:
    """The MNIST-FF problem on 1000 random examples, float32, for ``backend``."""
    x, y = random_data(0, (784,))
    if backend == "jax":
        from manifoldwalk_jax import experiment as jx

        model = jx.build_net("ff", (784,), 10, seed=0, dtype="float32")
        return jx.make_problem(model, x, y, task="classification")
    import manifoldwalk_tf
    from manifoldwalk_tf import experiment as tx
    from manifoldwalk_tf.training import data_loss

    tx.configure(device="cpu", threads=threads)
    model = tx.build_net("ff", (784,), 10, seed=0, dtype="float32")
    loss = lambda out, t: data_loss(out, t, "classification")  # noqa: E731
    return manifoldwalk_tf.from_model(model, loss, (x, y), compile=True)


def compare(backend: str, k: int, reps: int, threads: int | None) -> list[str]:
    """Time the floor and both chunks for every scheme; the table's lines."""
    p = problem_of(backend, threads)
    floor = jax_floor if backend == "jax" else tf_floor
    fns: dict[str, Callable[[], Any]] = {"floor": floor(p, k)}
    for scheme in SCHEMES:
        fns[f"{scheme} branch"] = chunked_walk(p, k, scheme)
        fns[f"{scheme} select"] = chunked_walk(p, k, scheme, adapt=selecting)
    times = time_interleaved(fns, reps, warmup=2)
    paired = paired_ratios(times)  # every call is k steps: the per-step ratio is the same
    floor_ms = statistics.median(times["floor"]) * 1e3 / k
    lines = [
        f"### {backend}: floor {floor_ms:.3f} ms per value-and-gradient (K = {k}, {reps} rounds)",
        "",
        "| scheme | branch / floor | select / floor | branch / select |",
        "|---|---|---|---|",
    ]
    for scheme in SCHEMES:
        b, s = times[f"{scheme} branch"], times[f"{scheme} select"]
        both = statistics.median(x / y for x, y in zip(b, s, strict=True))
        lines.append(
            f"| {scheme} | {paired[f'{scheme} branch']:.3f} | {paired[f'{scheme} select']:.3f} "
            f"| {both:.3f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the comparison, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", nargs="+", choices=["jax", "tf"], default=["jax", "tf"])
    ap.add_argument("--threads", type=int, help="intra-op threads (set before import)")
    ap.add_argument("--reps", type=int, default=20, help="interleaved repetitions")
    ap.add_argument("--k", type=int, default=48, help="steps per compiled chunk (K)")
    args = ap.parse_args(argv)
    if args.threads:
        eigen = "true" if args.threads > 1 else "false"
        flags = f"--xla_cpu_multi_thread_eigen={eigen}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {flags}").strip()
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    for backend in args.backends:
        print("\n".join(compare(backend, args.k, args.reps, args.threads)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
