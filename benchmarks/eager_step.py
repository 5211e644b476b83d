"""The eager driver's step over its floor, on small problems and PyTorch nets (not a test).

The eager driver (``walk(problem, theta0)`` with the default driver, ``Eager()``) runs the engine's step
as Python calls on the arrays: on an analytic problem or a small net its scalar bookkeeping
costs as much as the problem's own gradient. This times, interleaved round by round:

- ``numpy sphere``: the nearest point on the unit sphere in 10 dimensions (the walk properties'
  problem, ``QuadricDistance``), ``scheme="paper"`` from a fixed start for a fixed number of
  steps: microseconds per step with history at every predictor step (``Record(every=1)``, the
  default) and without (``Record(every=...)`` beyond the walk), over the problem's own
  ``loss_and_grad`` (the floor);
- ``torch <net>``: one eager-driver step of an eager PyTorch problem (``scheme="paper"`` and the
  default) as ``walk`` runs it, the stop rules' host look included, over the adapter's
  ``loss_and_grad`` (the floor): the Iris-sized FF net (4-100-100-100-3 tanh, 120 examples,
  float64: what ``manifoldwalk reproduce iris-ff`` walks) and MNIST-FF (784-100-100-100-10,
  1000 random examples, float32); one intra-op thread.

``--root DIR`` imports ``manifoldwalk`` (and its adapters) from another checkout, so that two
versions are compared by running this script on each in turn (a ``git worktree`` of the older
commit): ``python benchmarks/eager_step.py --root /tmp/old``.

    python benchmarks/eager_step.py [--reps 30] [--root DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "benchmarks"))

from adapter_overhead import time_interleaved  # noqa: E402
from perf import eager_driver_step, paired_ratios  # noqa: E402

SPHERE_STEPS = 3000
"""Steps of each timed numpy walk (a round times one walk per variant)."""


def numpy_rows(reps: int) -> list[dict[str, Any]]:
    """The numpy sphere walk, per step, with and without history, over its floor."""
    import numpy as np

    import manifoldwalk as mw
    from manifoldwalk import Record, Stop
    from manifoldwalk.problems import QuadricDistance

    rng = np.random.default_rng(0)
    problem = QuadricDistance(np.eye(10), rng.standard_normal(10) * 2.0)
    x0 = problem.point_on_level(rng.standard_normal(10), 1.0)
    options = dict(
        scheme="paper",
        stop=Stop(max_steps=10**9, max_total_steps=SPHERE_STEPS, kkt_tol=0.0, stall_patience=10**9),
    )

    def walk(record_every: int) -> Callable[[], Any]:
        return lambda: mw.walk(problem, x0, **options, record=Record(every=record_every))

    def floor() -> None:
        for _ in range(SPHERE_STEPS):
            problem.loss_and_grad(x0)

    result = walk(1)()
    assert result.n_predictor + result.n_corrector == SPHERE_STEPS, result.message
    fns = {"floor": floor, "walk, history every step": walk(1), "walk, no history": walk(10**9)}
    times = time_interleaved(fns, reps, warmup=1)
    paired = paired_ratios(times)
    return [
        {
            "problem": "numpy sphere, dim 10, paper",
            "row": k,
            "us_per_step": statistics.median(t) / SPHERE_STEPS * 1e6,
            "over_floor": paired[k],
        }
        for k, t in times.items()
    ]


TORCH_NETS = {"iris-ff": ((4,), 3, 120, "float64"), "mnist-ff": ((784,), 10, 1000, "float32")}
"""Input shape, classes, examples and dtype of the PyTorch nets timed here."""


def torch_problem(net: str) -> Any:
    """An eager PyTorch problem of ``net`` (a key of :data:`TORCH_NETS`) on random data, with
    one intra-op thread."""
    import numpy as np
    import torch
    from manifoldwalk_torch import paper as backend

    shape, n_out, n_examples, dtype = TORCH_NETS[net]
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n_examples, *shape)).astype(dtype)
    y = rng.integers(0, n_out, size=n_examples)
    model = backend.build_net("ff", shape, n_out, seed=0, dtype=dtype)
    return backend.make_problem(model, x, y, task="classification")


def torch_rows(net: str, reps: int) -> list[dict[str, Any]]:
    """One eager-driver step of an eager PyTorch problem over its ``loss_and_grad``."""
    from manifoldwalk import Record, Stop
    from manifoldwalk._eager import make_advance
    from manifoldwalk.driver import prepare_walk

    _, _, n_examples, dtype = TORCH_NETS[net]
    p = torch_problem(net)

    def eager_step(scheme: str) -> Callable[[], None]:
        run = prepare_walk(
            p,
            p.theta0,
            scheme=scheme,
            stop=Stop(max_steps=10**9, kkt_tol=0.0),
            record=Record(every=10**9),
        )
        advance = make_advance(run.problem, run.direction, run.scheme, run.rules, True)
        if len(inspect.signature(advance).parameters) > 1:
            return eager_driver_step(run)  # the step told its branch, as walk() runs it
        box: dict[str, Any] = {"s": run.state}  # a checkout before c4162bb: no branch

        def one() -> None:
            box["s"], _ = advance(box["s"])

        return one

    fns = {"floor": lambda: p.loss_and_grad(p.theta0)}
    fns |= {f"step, {s}": eager_step(s) for s in ("paper", "default")}
    times = time_interleaved(fns, reps, warmup=1)
    paired = paired_ratios(times)
    return [
        {
            "problem": f"torch {net}, {n_examples} examples, {dtype}",
            "row": k,
            "us_per_step": statistics.median(t) * 1e6,
            "over_floor": paired[k],
        }
        for k, t in times.items()
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the rows and print them (and write them as JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=30, help="interleaved rounds (default 30)")
    ap.add_argument("--root", type=Path, default=HERE, help="the checkout to import from")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    # An editable install's finder answers before sys.path: drop it so that --root decides.
    sys.meta_path = [
        f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
    ]
    sys.path[:0] = [str(root), str(root / "adapters")]

    import manifoldwalk

    print(f"manifoldwalk from {Path(manifoldwalk.__file__).parent}")
    rows = numpy_rows(max(args.reps // 3, 5))
    for net in ("iris-ff", "mnist-ff"):
        rows += torch_rows(net, args.reps)
    print("| problem | row | µs per step | / floor (paired) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['problem']} | {r['row']} | {r['us_per_step']:.1f} | {r['over_floor']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"root": str(root), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
