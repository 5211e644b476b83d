"""The JAX eager driver with its step donating the walk state, against the same step not (not a test).

``walk(jax_problem, θ0)`` runs the eager driver (the default): one jitted step
(the stop rules' look fused in) and one host copy per step. ``JaxProblem.compile_step`` takes
``donate=True`` from the driver, so XLA writes each new state into the old one's buffers;
the driver keeps copies of what it still needs (see ``manifoldwalk.driver``). This times,
interleaved round by round in one process, whole eager walks (no history records along the
way) of:

- ``donating``: a JAX problem as the library builds it (the step donates its state);
- ``plain``: the same net and data, its hook replaced by ``jax.jit(step)`` (the plain
  ``compile_step(fn)`` protocol: no donation);
- ``floor``: as many jitted value-and-gradient calls, dispatched and waited for one by one
  (the eager driver's own floor),

and prints per-step medians and the paired ratios over the floor, then checks that the two
walks took the same path bit for bit (θ and every history column) and that θ0 is alive.

``--stop on`` (default) ends each walk after ``--steps`` predictor steps (``max_steps``), on
the level set, as most stop rules do. ``--stop off`` ends it after ``--steps`` steps in all
(``max_total_steps``), which may land inside a corrector series: the donating walk then
replays its last good state from its latest anchor (at most ``ANCHOR_EVERY`` steps, once),
and that replay is in its time.

    python benchmarks/donated_step.py [--nets ff mnist-cnv] [--steps 300] [--stop on|off]
        [--reps 21] [--scheme default]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]


def rows(net: str, steps: int, stop: str, reps: int, scheme: str = "default") -> list[str]:
    """Time one net's three walks; the markdown rows and the agreement line."""
    import jax
    import numpy as np
    from adapter_overhead import random_data, time_interleaved
    from manifoldwalk_jax import paper as backend
    from perf import NETS, paired_ratios

    import manifoldwalk as mw

    label, name, shape = NETS[net]
    model = backend.build_net(name, shape, 10, seed=0, dtype="float32")
    x, y = random_data(0, shape)
    donating = backend.make_problem(model, x, y, task="classification")
    plain = backend.make_problem(model, x, y, task="classification")
    plain.compile_step = lambda step: jax.jit(step)  # the plain protocol: no donation
    budget = (
        {"max_steps": steps} if stop == "on" else {"max_steps": 10**6, "max_total_steps": steps}
    )
    options = dict(scheme=scheme, record=mw.Record(every=None), stop=mw.Stop(kkt_tol=0.0, **budget))
    results: dict[str, Any] = {}
    first = mw.walk(donating, donating.theta0, **options)  # compiles; counts the steps
    calls = first.n_predictor + first.n_corrector

    def walk(problem: Any, key: str) -> Any:
        def run() -> None:
            results[key] = mw.walk(problem, problem.theta0, **options)

        return run

    value_and_grad = jax.jit(donating._loss_and_grad)

    def floor() -> None:
        for _ in range(calls):
            jax.block_until_ready(
                value_and_grad(donating.theta0, donating._frozen, *donating._data)
            )

    fns = {"floor": floor, "donating": walk(donating, "donating"), "plain": walk(plain, "plain")}
    times = time_interleaved(fns, reps, warmup=1)
    paired = paired_ratios(times)
    out = [
        f"| {label} | {k} | {statistics.median(t) / calls * 1e3:.3f} | {paired[k]:.3f} |"
        for k, t in times.items()
    ]
    a, b = results["donating"], results["plain"]
    same = np.array_equal(np.asarray(a.theta), np.asarray(b.theta)) and all(
        np.array_equal(a.history[k], b.history[k], equal_nan=True) for k in a.history
    )
    out.append(
        f"\n{label}: {a.n_predictor} predictor + {a.n_corrector} corrector steps, stop "
        f"{a.stop_reason!r}; same path bit "
        f"for bit: {same}; θ0 alive after the walks: {not donating.theta0.is_deleted()}; "
        f"donating over plain, paired: {paired['donating'] / paired['plain']:.3f}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the options, time each net, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="+", default=["ff"], choices=["ff", "mnist-cnv", "cifar10-cnv"])
    ap.add_argument("--steps", type=int, default=240, help="each timed walk's step budget")
    ap.add_argument(
        "--stop", choices=["on", "off"], default="on", help="budget: predictor steps / all steps"
    )
    ap.add_argument("--reps", type=int, default=21, help="interleaved rounds")
    ap.add_argument("--scheme", default="default", help="the walks' scheme")
    args = ap.parse_args(argv)
    # one intra-op thread, on the CPU, as benchmarks/perf.py --threads 1
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    print("| net | walk | ms per step | over floor, paired |\n|---|---|---|---|")
    tails = []
    for net in args.nets:
        table = rows(net, args.steps, args.stop, args.reps, args.scheme)
        print("\n".join(table[:-1]), flush=True)
        tails.append(table[-1])
    print("\n".join(tails))
    return 0


if __name__ == "__main__":
    sys.exit(main())
