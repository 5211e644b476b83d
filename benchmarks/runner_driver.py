"""The experiment runner's JAX walk: the eager driver against the compiled one (not a test).

``manifoldwalk reproduce --backend jax`` walks with ``Chunked(K)``, K the record interval
(``manifoldwalk_jax.paper.COMPILED_WALKS``). This walks the Iris-sized FF net (4-100-100-
100-3 tanh, 120 random examples, float64) as the runner does for iris-ff (the authors' scheme,
η_min 1e-5, η_c 1e-6, a history record and a trajectory point every 50 predictor steps) with
each driver, in rounds: the first round of each includes its compilations, later ones do not.
It prints wall time, steps and time per step (predictor and corrector steps).

    python benchmarks/runner_driver.py [--steps 3000] [--rounds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import set_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Walk with both drivers for the rounds asked; print one line per walk."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="predictor steps per walk")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, help="one XLA thread if 1 (default: XLA's own)")
    args = ap.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    import numpy as np
    from manifoldwalk_jax import paper as backend

    import manifoldwalk as mw

    model = backend.build_net("ff", (4,), 3, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(120, 4)), rng.integers(0, 3, size=120)
    problem = backend.make_problem(model, x, y, task="classification")
    options = dict(
        scheme=mw.get_scheme("authors", eta_min=1e-5, eta_c=1e-6),
        stop=mw.Stop(max_steps=args.steps),
        record=mw.Record(every=50, trajectory_every=50),
    )
    print(
        "| round | driver | wall s | predictor + corrector steps | ms/step |\n|---|---|---|---|---|"
    )
    for r in range(args.rounds):
        for name, extra in (("eager", {}), ("compiled, K = 50", {"driver": mw.Chunked(50)})):
            start = time.perf_counter()
            result = mw.walk(problem, problem.theta0, **options, **extra)
            wall = time.perf_counter() - start
            steps = result.n_predictor + result.n_corrector
            print(f"| {r} | {name} | {wall:.2f} | {steps} | {wall / steps * 1e3:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
