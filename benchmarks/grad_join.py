"""A JAX problem's flat gradient joined in place or by one concatenate, by data size (not a test).

``JaxProblem`` differentiates the loss leaf by leaf and joins the leaves' gradients into the
flat ∇L (``manifoldwalk_jax._flat.FlatParams.join``): on a CPU in place, largest part first,
elsewhere with one ``concatenate``. On XLA:CPU a concatenate (or the pad an update of a zero
vector at one end turns into) fuses the cheap reductions that make the bias gradients and
evaluates them again for each of the P entries it writes, which costs more the fewer the
examples are. This prints, for MNIST-FF (99,710 parameters, float32) on N random examples, the
floor (K value-and-gradient evaluations in one ``lax.while_loop``) and one compiled walk chunk
of K default-scheme steps, per step, with the gradient joined both ways, timed interleaved in
one run; ratios are over the floor of the same join, and "paired" is the median over the rounds
of the step over the floor of the same round.

    python benchmarks/grad_join.py [--examples 16 64 256 1000] [--k 48] [--reps 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import (  # noqa: E402
    chunked_walk,
    describe_threads,
    random_data,
    set_threads,
    time_interleaved,
)

JOINS = {"in place": True, "concatenate": False}
"""Row label -> ``in_place`` of ``FlatParams.value_and_grad``."""


def problem_with_join(n_examples: int, in_place: bool):
    """A MNIST-FF ``JaxProblem`` on the first ``n_examples`` random examples (float32) whose
    gradient is joined as ``in_place`` says."""
    import jax
    from manifoldwalk_jax import paper as backend

    model = backend.build_net("ff", (784,), 10, seed=0, dtype="float32")
    x, y = random_data(0, (784,))
    p = backend.make_problem(model, x[:n_examples], y[:n_examples], task="classification")
    p._loss_and_grad = jax.jit(p._flat.value_and_grad(p._loss_of, in_place))
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, nargs="+", default=[16, 64, 256, 1000])
    ap.add_argument("--k", type=int, default=48, help="steps per chunk and floor call")
    ap.add_argument("--reps", type=int, default=15, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    from perf import jax_floor

    print(f"# MNIST-FF, float32, K = {args.k}, {args.reps} rounds, {describe_threads('jax')}")
    print("| examples | join | floor ms/step | walk ms/step | walk / floor | paired |")
    print("|---|---|---|---|---|---|")
    for n in args.examples:
        fns = {}
        for label, in_place in JOINS.items():
            p = problem_with_join(n, in_place)
            fns[f"{label} floor"] = jax_floor(p, args.k)
            fns[f"{label} walk"] = chunked_walk(p, args.k)
        times = time_interleaved(fns, args.reps, warmup=2)
        for label in JOINS:
            floor, walk = times[f"{label} floor"], times[f"{label} walk"]
            f_ms = statistics.median(floor) / args.k * 1e3
            w_ms = statistics.median(walk) / args.k * 1e3
            paired = statistics.median(w / f for w, f in zip(walk, floor, strict=True))
            print(f"| {n} | {label} | {f_ms:.3f} | {w_ms:.3f} | {w_ms / f_ms:.3f} | {paired:.3f} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
