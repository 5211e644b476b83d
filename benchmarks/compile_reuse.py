"""First, second and third walk of one compiled problem, per framework: the compile caches.

The eager driver keeps compiled steps in ``problem.step_cache`` and the adapters keep compiled
chunks in ``problem.loop_cache``, so only a problem's first walk with given options traces and
compiles. For a small classifier (20-16-3 tanh MLP, 200 random examples, float32, one fixed
initialisation) it walks the same problem three times, each 30 predictor steps, with the
compiled step (eager driver) and with chunks of K = 8 steps, and prints each walk's wall time
(not a test; medians are not needed: the first walk is seconds, the later ones milliseconds).

    python benchmarks/compile_reuse.py [--frameworks jax tf torch] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from manifoldwalk import Record, Stop

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import set_threads  # noqa: E402

N, SIZES = 200, (20, 16, 3)


def _data() -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], N)
    layers = [
        (rng.normal(size=(a, b)).astype(np.float32) / np.sqrt(a), np.zeros(b, np.float32))
        for a, b in zip(SIZES[:-1], SIZES[1:], strict=True)
    ]
    return x, y, layers


def problem_for(framework: str):
    """A compiled problem of the small classifier in ``framework``."""
    x, y, layers = _data()
    if framework == "torch":
        import manifoldwalk_torch
        import torch

        model = torch.nn.Sequential(
            torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(), torch.nn.Linear(*SIZES[1:])
        )
        with torch.no_grad():
            for layer, (w, b) in zip((model[0], model[2]), layers, strict=True):
                layer.weight.copy_(torch.as_tensor(w.T))
                layer.bias.copy_(torch.as_tensor(b))
        data = (torch.as_tensor(x), torch.as_tensor(y))
        return manifoldwalk_torch.from_model(
            model, torch.nn.CrossEntropyLoss(), data, compile="default"
        )
    if framework == "tf":
        import manifoldwalk_tf
        import tensorflow as tf

        model = tf.keras.Sequential(
            [
                tf.keras.Input((SIZES[0],)),
                tf.keras.layers.Dense(SIZES[1], activation="tanh"),
                tf.keras.layers.Dense(SIZES[2]),
            ]
        )
        model.set_weights([a for layer in layers for a in layer])
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return manifoldwalk_tf.from_model(model, loss, (x, y), compile=True)
    import jax
    import jax.numpy as jnp
    import manifoldwalk_jax

    params = [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in layers]

    def apply_fn(p, xb):
        return jnp.tanh(xb @ p[0]["w"] + p[0]["b"]) @ p[1]["w"] + p[1]["b"]

    def loss_fn(out, t):
        picked = jnp.take_along_axis(out, t[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(out, axis=-1) - picked)

    return manifoldwalk_jax.from_apply(apply_fn, params, loss_fn, (x, y))


def main(argv: list[str] | None = None) -> int:
    """Walk each framework's problem three times per driver; print the wall times."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frameworks", nargs="+", default=["jax", "tf", "torch"])
    ap.add_argument("--threads", type=int, help="intra-op threads")
    args = ap.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    warnings.filterwarnings("ignore")
    import manifoldwalk as mw

    print("| framework | driver | first walk s | second s | third s | steps (pred + corr) |")
    print("|---|---|---|---|---|---|")
    for framework in args.frameworks:
        problem = problem_for(framework)
        for driver, extra in (("compiled step", {}), ("chunks, K=8", {"driver": mw.Chunked(8)})):
            times, r = [], None
            for _ in range(3):
                start = time.perf_counter()
                r = mw.walk(
                    problem,
                    problem.theta0,
                    **extra,
                    stop=Stop(max_steps=30),
                    record=Record(every=10),
                )
                times.append(time.perf_counter() - start)
            cells = " | ".join(f"{t:.2f}" for t in times)
            print(
                f"| {framework} | {driver} | {cells} | {r.n_predictor} + {r.n_corrector} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
