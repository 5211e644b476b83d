"""First and second ``walk(..., driver=Chunked(K))`` on one JAX problem: the compile cache.

The compiled driver keeps its compiled chunk on the problem (``problem.loop_cache``), so a
second walk with the same options does not trace and compile again. For the MNIST-FF net
(784-100-100-100-10 tanh) on 1000 random examples in float32 it times, per repetition, on a
fresh problem: the first walk of N steps (tracing and compiling included), a second walk with
the same options (cache hit), and a walk from another start (θ0 + noise, same shapes: cache
hit too). Each repetition does the same on a second fresh problem whose cache has size 0 (every
walk compiles), interleaved so that machine noise hits both alike.
Medians over the repetitions (not a test).

    python benchmarks/walk_cache.py [--threads 1] [--reps 5] [--steps 200] [--k 50] [--m 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import mnist_ff_weights, random_data, set_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Time first and second walks; print the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="intra-op threads (set before jax is imported)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions, each on a fresh problem")
    ap.add_argument("--steps", type=int, default=200, help="predictor steps per walk")
    ap.add_argument("--k", type=int, default=50, help="steps per host sync (K)")
    ap.add_argument("--m", type=int, default=1, help="steps per while iteration (M)")
    args = ap.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    import jax
    import jax.numpy as jnp
    import manifoldwalk_jax

    import manifoldwalk as mw

    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    layers, (x, y) = mnist_ff_weights(), random_data()
    params = [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in layers]

    def apply_fn(p, xb):
        h = xb
        for i, layer in enumerate(p):
            h = h @ layer["w"] + layer["b"]
            h = jnp.tanh(h) if i < len(p) - 1 else h
        return h

    def loss_fn(out, t):
        picked = jnp.take_along_axis(out, t[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(out, axis=-1) - picked)

    options = dict(
        driver=mw.Chunked(steps_per_sync=args.k, steps_per_iteration=args.m),
        stop=mw.Stop(max_steps=args.steps, kkt_tol=0.0),
        record=mw.Record(every=10),
    )
    names = ("first walk", "second walk", "other start")
    times: dict[str, list[float]] = {f"{c} {n}": [] for c in ("cache", "no cache") for n in names}
    for rep in range(args.reps):
        for cache in ("cache", "no cache"):
            problem = manifoldwalk_jax.from_apply(apply_fn, params, loss_fn, (x, y))
            if cache == "no cache":
                problem.loop_cache.maxsize = 0
            noise = jax.random.normal(jax.random.key(rep), problem.theta0.shape) * 1e-3
            other = problem.theta0 + noise.astype(problem.theta0.dtype)
            for name, theta in zip(names, (problem.theta0, problem.theta0, other), strict=True):
                t0 = time.perf_counter()
                r = mw.walk(problem, theta, **options)
                times[f"{cache} {name}"].append(time.perf_counter() - t0)
                assert r.n_predictor == args.steps, r.message
    print(
        f"MNIST-FF, {len(x)} examples, float32, {args.steps} predictor steps, K={args.k}, "
        f"M={args.m}, {args.reps} repetitions (fresh problems each), JAX {jax.__version__}"
    )
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        each = ", ".join(f"{v:.2f}" for v in t)
        print(f"  {name:<21} median {med[name]:7.3f} s  ({each})")
    saved = med["no cache second walk"] - med["cache second walk"]
    ratio = med["cache first walk"] / med["cache second walk"]
    print(f"  first / second walk with the cache: {ratio:.2f}x; saved per later walk {saved:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
