"""What the walk step's inner products cost in JAX's compiled chunk (not a test).

The compiled JAX chunk stays a few per cent over its floor (K value-and-gradient evaluations in
one ``lax.while_loop``) on MNIST-FF. This finds how much of that the step's inner products of
θ-sized vectors are (the default scheme takes four per step: ‖∇L‖², r·∇L, ‖pred‖² and the
cosine pred·d̂_p): in one process, interleaved round by round, it times the floor and one chunk
of K steps per scheme with the core's ``dot`` written three ways, each chunk traced with its
form and compiled before timing:

- ``dots``: ``matmul`` of the two vectors (the library's form; XLA:CPU makes it a dot);
- ``sums``: ``sum(a * b)`` (in a loop on its own it gives the dot's value and time to the
  last bit and microsecond: XLA rewrites it as the same dot);
- ``free``: ``a[0] * b[0] + 1``, reading one entry: what the chunk would cost if inner products
  cost nothing. The walk it takes is wrong (the step sizes and branches come from these
  numbers), but every other operation of the step runs as before: every branch is formed and
  selected in a compiled step whatever its values. No stop rule can fire (unbounded budgets, τ
  so large that every point is on the level set), and each chunk is checked to take its K
  steps.

MNIST-FF (99,710 parameters), 1000 random examples, float32; per step the median and the
paired ratio over the floor (the median over rounds of the chunk's time over the floor's in the
same round).

    python benchmarks/jax_dots.py [--threads 1] [--reps 20] [--k 48] [--schemes default paper]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from manifoldwalk import Record, Stop, Tolerance

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import random_data, set_threads, time_interleaved  # noqa: E402

MODULES = ("manifoldwalk.step", "manifoldwalk.correctors")
"""The modules whose ``dot`` the chunk's step calls (the step and the paper's corrector)."""


def forms() -> dict[str, Callable[[Any, Any, Any], Any]]:
    """The three ways of writing ``dot(xp, a, b)`` compared (see the module doc)."""
    from manifoldwalk._array import dot

    return {
        "dots": dot,
        "sums": lambda xp, a, b: xp.sum(a * b),
        # + 1: the walk's scalars stay finite (an all-zero gradient entry would make ‖∇L‖² 0).
        "free": lambda xp, a, b: a[0] * b[0] + 1,
    }


def full_chunk(problem: Any, k: int, scheme: str) -> Callable[[], Any]:
    """One compiled chunk of K walk steps from θ0 (traced and compiled now), timed from the same
    start each call; raises if the chunk stops before its K steps."""
    from manifoldwalk.driver import prepare_walk

    options = dict(
        stop=Stop(max_steps=10**9, kkt_tol=0.0, stall_patience=10**9), record=Record(every=None)
    )
    walk = prepare_walk(
        problem, problem.theta0, scheme=scheme, **options, tolerance=Tolerance(tau=1e30)
    )
    host = walk.host(k)
    chunk = problem.compile_loop(host.loop)

    def run() -> Any:
        return chunk(host.carry).look.block_until_ready()

    taken = int(chunk(host.carry).n_done)
    if taken != k:
        raise RuntimeError(f"the {scheme} chunk stopped after {taken} of its {k} steps")
    return run


def main(argv: list[str] | None = None) -> int:
    """Time the floor and each scheme's chunk with each form of the inner product; print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="intra-op threads (set before JAX is imported)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--k", type=int, default=48, help="steps per chunk")
    ap.add_argument("--schemes", nargs="+", default=["default", "paper"])
    args = ap.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    import importlib

    import jax
    from manifoldwalk_jax import paper as backend
    from perf import chunk_table, jax_floor

    modules = [importlib.import_module(m) for m in MODULES]

    def problem():  # a new problem each time: its chunk cache must not hand back another form
        model = backend.build_net("ff", (784,), 10, seed=0, dtype="float32")
        x, y = random_data(0, (784,))
        return backend.make_problem(model, x, y, task="classification")

    fns = {"floor": jax_floor(problem(), args.k)}
    written = forms()
    for scheme in args.schemes:
        for form, dot in written.items():
            for module in modules:
                module.dot = dot
            try:
                chunk = full_chunk(problem(), args.k, scheme)
            finally:
                for module in modules:
                    module.dot = written["dots"]
            fns[f"{scheme}, {form}"] = chunk
    times = time_interleaved(fns, args.reps, warmup=1)
    print(f"JAX {jax.__version__}, MNIST-FF, K = {args.k}, {args.reps} rounds")
    print(chunk_table(times, args.k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
